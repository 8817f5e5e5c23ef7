/* Unit tests of the element-wise add and mul: values, finite-difference gradients, aliasing of
 * outputs and gradients, accumulation and argument errors. */
#include <criterion/criterion.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

typedef int (*bin_fwd)(float *, const float *, const float *, size_t);

/* loss(a, b) = sum(op(a, b) * r) in double. */
struct bin_ctx {
    bin_fwd fwd;
    float *a, *b, *y, *r; /* (n) each */
    size_t n;
};

static double bin_loss(void *p)
{
    struct bin_ctx *c = p;
    cr_assert_eq(c->fwd(c->y, c->a, c->b, c->n), PTL_OK);
    return tc_dot(c->y, c->r, c->n);
}

Test(eltwise, forward_values)
{
    const float a[] = {1.5f, -2.0f, 0.0f, 3.0f}, b[] = {0.5f, 4.0f, -1.0f, -3.0f};
    float y[4];
    cr_assert_eq(ptl_add_forward(y, a, b, 4), PTL_OK);
    const float sum[] = {2.0f, 2.0f, -1.0f, 0.0f};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(y[i], sum[i]);
    cr_assert_eq(ptl_mul_forward(y, a, b, 4), PTL_OK);
    const float prod[] = {0.75f, -8.0f, -0.0f, -9.0f};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(y[i], prod[i]);
}

Test(eltwise, gradients_match_finite_differences)
{
    enum { N = 257 };
    float *a = tc_alloc(N), *b = tc_alloc(N), *y = tc_alloc(N), *r = tc_alloc(N);
    float *da = tc_alloc(N), *db = tc_alloc(N);
    tc_fill(a, N, 1, -2.0f, 2.0f);
    tc_fill(b, N, 2, -2.0f, 2.0f);
    tc_fill(r, N, 3, -1.0f, 1.0f);
    const bin_fwd fwd[] = {ptl_add_forward, ptl_mul_forward};
    for (int k = 0; k < 2; k++) {
        memset(da, 0, N * sizeof *da);
        memset(db, 0, N * sizeof *db);
        int rc = k == 0 ? ptl_add_backward(da, db, r, N) : ptl_mul_backward(da, db, r, a, b, N);
        cr_assert_eq(rc, PTL_OK);
        struct bin_ctx c = {fwd[k], a, b, y, r, N};
        tc_assert_gradcheck(k == 0 ? "add d_a" : "mul d_a", bin_loss, &c, a, da, N, 1e-2f, 1e-3,
                            1e-2);
        tc_assert_gradcheck(k == 0 ? "add d_b" : "mul d_b", bin_loss, &c, b, db, N, 1e-2f, 1e-3,
                            1e-2);
    }
    free(a);
    free(b);
    free(y);
    free(r);
    free(da);
    free(db);
}

Test(eltwise, backward_accumulates_and_skips_null)
{
    const float a[] = {1, 2, 3}, b[] = {-1, 0.5f, 2}, g[] = {0.5f, -1, 2};
    float da[3] = {1, 1, 1}, db[3] = {0, 0, 0};
    cr_assert_eq(ptl_mul_backward(da, db, g, a, b, 3), PTL_OK);
    cr_assert_eq(ptl_mul_backward(da, db, g, a, b, 3), PTL_OK);
    for (int i = 0; i < 3; i++) {
        cr_expect_float_eq(da[i], 1 + 2 * g[i] * b[i], 1e-6f);
        cr_expect_float_eq(db[i], 2 * g[i] * a[i], 1e-6f);
    }
    cr_assert_eq(ptl_add_backward(da, NULL, g, 3), PTL_OK);
    cr_assert_eq(ptl_add_backward(NULL, db, g, 3), PTL_OK);
    for (int i = 0; i < 3; i++) {
        cr_expect_float_eq(da[i], 1 + 2 * g[i] * b[i] + g[i], 1e-6f);
        cr_expect_float_eq(db[i], 2 * g[i] * a[i] + g[i], 1e-6f);
    }
    cr_assert_eq(ptl_mul_backward(NULL, NULL, g, a, b, 3), PTL_OK);
}

Test(eltwise, outputs_and_gradients_may_alias)
{
    float a[] = {1, -2, 3}, b[] = {4, 5, -6};
    float x[3];
    memcpy(x, a, sizeof a);
    cr_assert_eq(ptl_add_forward(x, x, b, 3), PTL_OK); /* out == a */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(x[i], a[i] + b[i]);
    memcpy(x, b, sizeof b);
    cr_assert_eq(ptl_mul_forward(x, a, x, 3), PTL_OK); /* out == b */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(x[i], a[i] * b[i]);
    memcpy(x, a, sizeof a);
    cr_assert_eq(ptl_mul_forward(x, x, x, 3), PTL_OK); /* x * x in place */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(x[i], a[i] * a[i]);

    /* y = x * x and y = x + x with one gradient buffer for both operands. */
    const float g[] = {1, 0.5f, -1};
    float dx[3] = {0, 0, 0};
    cr_assert_eq(ptl_mul_backward(dx, dx, g, a, a, 3), PTL_OK);
    for (int i = 0; i < 3; i++)
        cr_expect_float_eq(dx[i], 2 * a[i] * g[i], 1e-6f);
    memset(dx, 0, sizeof dx);
    cr_assert_eq(ptl_add_backward(dx, dx, g, 3), PTL_OK);
    for (int i = 0; i < 3; i++)
        cr_expect_float_eq(dx[i], 2 * g[i], 1e-6f);
}

Test(eltwise, threaded_path_matches)
{
    enum { N = 70000 }; /* above PTL_OMP_MIN_ELEMENTS */
    float *a = tc_alloc(N), *b = tc_alloc(N), *y = tc_alloc(N), *da = tc_alloc(N);
    tc_fill(a, N, 8, -1.0f, 1.0f);
    tc_fill(b, N, 9, -1.0f, 1.0f);
    cr_assert_eq(ptl_add_forward(y, a, b, N), PTL_OK);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(y[i], a[i] + b[i]);
    cr_assert_eq(ptl_add_backward(da, NULL, y, N), PTL_OK);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(da[i], y[i]);
    memset(da, 0, N * sizeof *da);
    cr_assert_eq(ptl_mul_forward(y, a, b, N), PTL_OK);
    cr_assert_eq(ptl_mul_backward(da, NULL, y, a, b, N), PTL_OK);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(y[i], a[i] * b[i]);
        cr_assert_eq(da[i], y[i] * b[i]);
    }
    free(a);
    free(b);
    free(y);
    free(da);
}

Test(eltwise, null_buffers_are_errors)
{
    float a[2] = {1, 2}, y[2];
    ptl_error_clear();
    cr_assert_eq(ptl_add_forward(y, a, NULL, 2), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "add") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_mul_forward(NULL, a, a, 2), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "mul") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_add_backward(y, y, NULL, 2), PTL_EINVAL);
    cr_assert_eq(ptl_mul_backward(y, y, a, NULL, a, 2), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "mul") != NULL, "message: %s", ptl_error_message());
}
