/* Unit tests of ptl_sgemm: every transpose combination against a naive triple loop (with
 * padded leading dimensions, alpha and beta), degenerate sizes, and argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* C = alpha op(A) op(B) + beta C in double, row-major with leading dimensions. */
static void naive_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += av * bv;
            }
            double old = beta == 0.0f ? 0.0 : (double)beta * c[(size_t)i * ldc + j];
            c[(size_t)i * ldc + j] = (float)(alpha * acc + old);
        }
}

static void check_gemm(int ta, int tb, int m, int n, int k, int pad, float alpha, float beta)
{
    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    if (lda < 1)
        lda = 1;
    if (ldb < 1)
        ldb = 1;
    if (ldc < 1)
        ldc = 1;
    size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
    float *a = tc_alloc(na), *b = tc_alloc(nb), *c = tc_alloc(nc), *ref = tc_alloc(nc);
    tc_fill(a, na, 1, -1, 1);
    tc_fill(b, nb, 2, -1, 1);
    tc_fill(c, nc, 3, -1, 1);
    memcpy(ref, c, nc * sizeof *c);
    int rc = ptl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    cr_assert_eq(rc, 0, "%s", ptl_error_message());
    naive_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, ref, ldc);
    /* padding columns must be untouched: they are compared too */
    cr_assert_lt(tc_rel_err(c, ref, nc, 1.0), 1e-5, "ta=%d tb=%d m=%d n=%d k=%d", ta, tb, m, n,
                 k);
    free(a);
    free(b);
    free(c);
    free(ref);
}

Test(gemm, all_transpose_combinations_odd_sizes)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(ta, tb, 7, 5, 3, 0, 1.0f, 0.0f);
            check_gemm(ta, tb, 7, 5, 3, 2, 1.5f, 0.5f);
            check_gemm(ta, tb, 33, 17, 65, 1, -0.5f, 1.0f);
            check_gemm(ta, tb, 130, 70, 300, 3, 1.0f, 1.0f);
        }
}

Test(gemm, vectors_and_single_elements)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(ta, tb, 1, 1, 1, 0, 2.0f, 0.0f);
            check_gemm(ta, tb, 1, 9, 4, 0, 1.0f, 1.0f);
            check_gemm(ta, tb, 9, 1, 4, 0, 1.0f, 1.0f);
            check_gemm(ta, tb, 5, 6, 1, 0, 1.0f, 0.25f);
        }
}

Test(gemm, beta_zero_overwrites_nan)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4];
    for (int i = 0; i < 4; i++)
        c[i] = NAN;
    cr_assert_eq(ptl_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(c[i], a[i], 0);
}

Test(gemm, empty_sizes)
{
    float c[4] = {1, 2, 3, 4};
    /* m or n zero: nothing happens, buffers may be NULL */
    cr_assert_eq(ptl_sgemm(0, 0, 0, 2, 2, 1.0f, NULL, 2, NULL, 2, 0.0f, NULL, 2), 0);
    cr_assert_eq(ptl_sgemm(0, 0, 2, 0, 2, 1.0f, NULL, 2, NULL, 1, 0.0f, NULL, 1), 0);
    /* k zero: C = beta C */
    cr_assert_eq(ptl_sgemm(0, 0, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.5f, c, 2), 0, "%s",
                 ptl_error_message());
    cr_assert_float_eq(c[0], 0.5f, 1e-7);
    cr_assert_float_eq(c[3], 2.0f, 1e-7);
}

static void expect_error(int rc, const char *part)
{
    cr_assert_eq(rc, PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "sgemm") != NULL, "%s", ptl_error_message());
    cr_assert(strstr(ptl_error_message(), part) != NULL, "'%s' lacks '%s'", ptl_error_message(),
              part);
}

Test(gemm_errors, bad_arguments)
{
    float x[64] = {0};
    expect_error(ptl_sgemm(2, 0, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2), "trans_a");
    expect_error(ptl_sgemm(0, -1, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2), "trans_b");
    expect_error(ptl_sgemm(0, 0, -1, 2, 2, 1, x, 2, x, 2, 0, x, 2), "negative");
    expect_error(ptl_sgemm(0, 0, 2, 3, 4, 1, x, 3, x, 3, 0, x, 3), "lda");
    expect_error(ptl_sgemm(1, 0, 5, 3, 4, 1, x, 4, x, 3, 0, x, 3), "lda");
    expect_error(ptl_sgemm(0, 0, 2, 3, 4, 1, x, 4, x, 2, 0, x, 3), "ldb");
    expect_error(ptl_sgemm(0, 1, 2, 3, 4, 1, x, 4, x, 3, 0, x, 3), "ldb");
    expect_error(ptl_sgemm(0, 0, 2, 3, 4, 1, x, 4, x, 3, 0, x, 2), "ldc");
    expect_error(ptl_sgemm(0, 0, 2, 3, 4, 1, NULL, 4, x, 3, 0, x, 3), "a is NULL");
    expect_error(ptl_sgemm(0, 0, 2, 3, 4, 1, x, 4, NULL, 3, 0, x, 3), "b is NULL");
    expect_error(ptl_sgemm(0, 0, 2, 3, 4, 1, x, 4, x, 3, 0, NULL, 3), "c is NULL");
}

/* BLIS 0.9.0 runs its reference C kernels on CPUs its table does not know (Zen 4, Zen 5): on
 * any CPU that can run its AVX2 kernels, ptl must not end up there (ops/blis_select.c). */
Test(gemm_kernels, no_reference_kernels_where_avx2_runs)
{
    const char *line = ptl_blis_kernels();
    cr_assert(strncmp(line, "BLIS ", 5) == 0 && strstr(line, ", kernels ") != NULL, "%s", line);
    if (strstr(line, "(set by BLIS_ARCH_TYPE") != NULL)
        cr_skip_test("BLIS_ARCH_TYPE is set: the user chose the kernels (%s)", line);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        cr_skip_test("no AVX2 + FMA on this CPU: %s", line);
    cr_assert(strstr(line, "kernels generic") == NULL, "%s", line);
#else
    cr_skip_test("not x86-64: %s", line);
#endif
}
