/* Unit tests of the core layer: error reporting, the thread setting, the counter-based RNG. */
#include <blis.h>
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "core/memory.h"
#include "ptl/core.h"

Test(error, records_message_and_returns_code)
{
    int rc = ptl_error(PTL_EINVAL, "conv2d: kernel %dx%d larger than input", 3, 3);
    cr_assert_eq(rc, PTL_EINVAL);
    cr_assert_str_eq(ptl_error_message(), "conv2d: kernel 3x3 larger than input");
    ptl_error_clear();
    cr_assert_str_eq(ptl_error_message(), "");
}

Test(error, wrapping_the_previous_message_is_safe)
{
    ptl_error(PTL_EINVAL, "kernel 3x3 larger than input");
    ptl_error(PTL_EINVAL, "resnet18: conv2d 'layer1.0.conv1': %s", ptl_error_message());
    cr_assert_str_eq(ptl_error_message(),
                     "resnet18: conv2d 'layer1.0.conv1': kernel 3x3 larger than input");
}

Test(error, long_message_is_truncated_not_overflowed)
{
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ptl_error(PTL_EIO, "%s", big);
    cr_assert(strlen(ptl_error_message()) < sizeof big - 1);
    cr_assert(strlen(ptl_error_message()) > 100);
}

Test(error, every_code_has_a_distinct_description)
{
    const int codes[] = {PTL_OK, PTL_EINVAL, PTL_ENOMEM, PTL_EIO, PTL_EFORMAT, PTL_EMPI, PTL_ERANGE};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_assert_str_neq(ptl_strerror(codes[i]), ptl_strerror(codes[j]));
    cr_assert_str_eq(ptl_strerror(-999), "unknown error");
}

Test(threads, set_controls_blis_and_openmp)
{
    int two = ptl_threads_available() < 2 ? 1 : 2;
    cr_assert_eq(ptl_threads_set(2), PTL_OK);
    cr_assert_eq(ptl_threads_get(), two);
    cr_assert_eq(bli_thread_get_num_threads(), two);
    cr_assert_eq(omp_get_max_threads(), two);
    cr_assert_eq(ptl_threads_set(1), PTL_OK);
    cr_assert_eq(bli_thread_get_num_threads(), 1);
    cr_assert_eq(omp_get_max_threads(), 1);
    cr_assert_eq(ptl_threads_set(0), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "threads") != NULL);
}

/* More threads than the cores this process may run on: as many as the cores (BLIS's spinning
 * barriers made a 2-thread conv test on one core run for minutes). */
Test(threads, set_stops_at_the_cores_available)
{
    int cores = ptl_threads_available();
    cr_assert_eq(ptl_threads_set(cores + 1), PTL_OK);
    cr_assert_eq(ptl_threads_get(), cores);
    cr_assert_eq(bli_thread_get_num_threads(), cores);
    cr_assert_eq(omp_get_max_threads(), cores);
    cr_assert_eq(ptl_threads_set(1), PTL_OK);
}

Test(threads, env_variable_is_parsed_and_checked)
{
    unsetenv("PTL_THREADS");
    cr_assert_eq(ptl_threads_from_env(), ptl_threads_available());
    cr_assert_geq(ptl_threads_available(), 1);
    setenv("PTL_THREADS", "3", 1);
    cr_assert_eq(ptl_threads_from_env(), 3);
    const char *bad[] = {"0", "-2", "two", "4x", "99999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("PTL_THREADS", bad[i], 1);
        cr_assert_eq(ptl_threads_from_env(), PTL_EINVAL, "PTL_THREADS=%s accepted", bad[i]);
        cr_assert(strstr(ptl_error_message(), "PTL_THREADS") != NULL);
    }
    unsetenv("PTL_THREADS");
}

Test(rng, streams_are_reproducible_and_independent)
{
    struct ptl_rng a, b, c;
    ptl_rng_init(&a, 42, 7);
    ptl_rng_init(&b, 42, 7);
    ptl_rng_init(&c, 42, 8);
    int same_as_other_stream = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ptl_rng_u64(&a);
        cr_assert_eq(x, ptl_rng_u64(&b));
        same_as_other_stream += x == ptl_rng_u64(&c);
    }
    cr_assert_eq(same_as_other_stream, 0);
}

Test(rng, jump_to_any_position)
{
    struct ptl_rng a, b;
    ptl_rng_init(&a, 1, 0);
    for (int i = 0; i < 100; i++)
        ptl_rng_u64(&a);
    ptl_rng_init(&b, 1, 0);
    b.counter = 100; /* what a rank does to start at another sample's position */
    cr_assert_eq(ptl_rng_u64(&a), ptl_rng_u64(&b));
}

Test(rng, distributions_have_the_right_moments)
{
    enum { N = 200000 };
    static float x[N];
    struct ptl_rng r;
    ptl_rng_init(&r, 2024, 3);
    ptl_rng_fill_uniform(&r, x, N, -1.0f, 3.0f);
    double s = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(x[i] >= -1.0f && x[i] < 3.0f);
        s += x[i];
    }
    cr_assert_float_eq(s / N, 1.0, 0.02);
    ptl_rng_fill_normal(&r, x, N, 0.5f, 2.0f);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++)
        m += x[i];
    m /= N;
    for (int i = 0; i < N; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= N - 1;
    cr_assert_float_eq(m, 0.5, 0.02);
    cr_assert_float_eq(sqrt(v), 2.0, 0.02);
}

Test(rng, fills_equal_single_draws_for_any_thread_count)
{
    enum { N = 100000 };
    static float a[N], b[N];
    struct ptl_rng r1, r2;
    for (int threads = 1; threads <= 2; threads++) {
        ptl_threads_set(threads);
        ptl_rng_init(&r1, 5, 1);
        ptl_rng_init(&r2, 5, 1);
        ptl_rng_fill_normal(&r1, a, N, 0.0f, 1.0f);
        for (int i = 0; i < N; i++)
            b[i] = ptl_rng_normal(&r2);
        cr_assert_arr_eq(a, b, sizeof a);
        cr_assert_eq(r1.counter, r2.counter);
        ptl_rng_fill_uniform(&r1, a, N, 0.0f, 1.0f);
        for (int i = 0; i < N; i++)
            b[i] = ptl_rng_uniform(&r2);
        cr_assert_arr_eq(a, b, sizeof a);
        cr_assert_eq(r1.counter, r2.counter);
    }
    ptl_threads_set(1);
}

/* Large buffers come on 2 MiB boundaries (so whole huge pages back them), any size is usable
 * to its last byte, and the calloc form is zeroed. */
Test(memory, large_buffers_are_aligned_usable_and_zeroed)
{
    const size_t sizes[] = {0, 1, 4096, (2u << 20) - 4, (2u << 20) + 4, 5u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = ptl__alloc_large(sizes[i]);
        cr_assert_not_null(p, "%zu bytes", sizes[i]);
        if (sizes[i] >= (2u << 20))
            cr_assert_eq((uintptr_t)p % (2u << 20), 0, "%zu bytes at %p", sizes[i], (void *)p);
        memset(p, 0xab, sizes[i]);
        free(p);
        unsigned char *z = ptl__calloc_large(sizes[i]);
        cr_assert_not_null(z);
        for (size_t b = 0; b < sizes[i]; b += 4093)
            cr_assert_eq(z[b], 0, "byte %zu of %zu", b, sizes[i]);
        if (sizes[i])
            cr_assert_eq(z[sizes[i] - 1], 0);
        free(z);
    }
}

Test(version, matches_package)
{
    cr_assert_str_eq(ptl_version(), PACKAGE_VERSION_STRING);
}
