/* Unit tests of the activations (ReLU, sigmoid, tanh): forward against double-precision
 * references, finite-difference gradients, accumulation, in-place use and argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

typedef int (*act_fwd)(float *, const float *, size_t);
typedef int (*act_bwd)(float *, const float *, const float *, size_t);

/* loss(x) = sum(act(x) * r) in double. */
struct act_ctx {
    act_fwd fwd;
    float *x, *y, *r; /* (n) each */
    size_t n;
};

static double act_loss(void *p)
{
    struct act_ctx *c = p;
    cr_assert_eq(c->fwd(c->y, c->x, c->n), PTL_OK);
    return tc_dot(c->y, c->r, c->n);
}

/* Gradient check of one activation on n inputs in +-[0.1, 3] (away from ReLU's kink at 0). */
static void check_grad(const char *what, act_fwd fwd, act_bwd bwd, size_t n, uint64_t seed)
{
    float *x = tc_alloc(n), *y = tc_alloc(n), *r = tc_alloc(n), *dx = tc_alloc(n);
    tc_fill(x, n, seed, 0.1f, 3.0f);
    for (size_t i = 0; i < n; i += 2)
        x[i] = -x[i];
    tc_fill(r, n, seed + 1, -1.0f, 1.0f);
    cr_assert_eq(fwd(y, x, n), PTL_OK);
    cr_assert_eq(bwd(dx, r, y, n), PTL_OK);
    struct act_ctx c = {fwd, x, y, r, n};
    tc_assert_gradcheck(what, act_loss, &c, x, dx, n, 1e-2f, 1e-3, 1e-2);
    free(x);
    free(y);
    free(r);
    free(dx);
}

Test(activation, relu_forward_values)
{
    const float x[] = {-2.0f, -0.5f, 0.0f, 0.25f, 3.0f, -1e30f, 1e30f, NAN};
    float y[8];
    cr_assert_eq(ptl_relu_forward(y, x, 8), PTL_OK);
    const float want[] = {0.0f, 0.0f, 0.0f, 0.25f, 3.0f, 0.0f, 1e30f};
    for (int i = 0; i < 7; i++)
        cr_expect_eq(y[i], want[i], "relu(%g) = %g", (double)x[i], (double)y[i]);
    cr_expect(isnan(y[7]), "relu(NaN) must stay NaN as in torch.relu");
}

Test(activation, sigmoid_tanh_forward_against_double)
{
    enum { N = 1000 };
    float x[N + 6], y[N + 6];
    tc_fill(x, N, 7, -20.0f, 20.0f);
    const float extreme[] = {-100.0f, 100.0f, -1e30f, 1e30f, -87.0f, 0.0f};
    memcpy(x + N, extreme, sizeof extreme);
    cr_assert_eq(ptl_sigmoid_forward(y, x, N + 6), PTL_OK);
    for (int i = 0; i < N + 6; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        cr_assert(isfinite(y[i]), "sigmoid(%g) is not finite", (double)x[i]);
        cr_assert(fabs(y[i] - want) <= 1e-6 * want + 1e-45, "sigmoid(%g) = %.9g, want %.9g",
                  (double)x[i], (double)y[i], want);
    }
    cr_expect_eq(y[N + 3], 1.0f);
    cr_expect_eq(y[N + 2], 0.0f);
    cr_expect(y[N + 4] > 0.0f, "sigmoid(-87) underflowed to 0");
    cr_assert_eq(ptl_tanh_forward(y, x, N + 6), PTL_OK);
    for (int i = 0; i < N + 6; i++)
        cr_assert(fabs(y[i] - tanh((double)x[i])) <= 1e-6, "tanh(%g) = %.9g", (double)x[i],
                  (double)y[i]);
}

Test(activation, gradients_match_finite_differences)
{
    check_grad("relu", ptl_relu_forward, ptl_relu_backward, 301, 11);
    check_grad("sigmoid", ptl_sigmoid_forward, ptl_sigmoid_backward, 301, 12);
    check_grad("tanh", ptl_tanh_forward, ptl_tanh_backward, 301, 13);
    check_grad("relu n=1", ptl_relu_forward, ptl_relu_backward, 1, 14);
}

Test(activation, backward_accumulates_and_skips_null)
{
    const act_fwd fwd[] = {ptl_relu_forward, ptl_sigmoid_forward, ptl_tanh_forward};
    const act_bwd bwd[] = {ptl_relu_backward, ptl_sigmoid_backward, ptl_tanh_backward};
    enum { N = 50 };
    float x[N], y[N], r[N], once[N], twice[N];
    tc_fill(x, N, 3, -2.0f, 2.0f);
    tc_fill(r, N, 4, -1.0f, 1.0f);
    for (int k = 0; k < 3; k++) {
        memset(once, 0, sizeof once);
        memset(twice, 0, sizeof twice);
        cr_assert_eq(fwd[k](y, x, N), PTL_OK);
        cr_assert_eq(bwd[k](once, r, y, N), PTL_OK);
        cr_assert_eq(bwd[k](twice, r, y, N), PTL_OK);
        cr_assert_eq(bwd[k](twice, r, y, N), PTL_OK);
        double norm = 0;
        for (int i = 0; i < N; i++) {
            cr_assert_float_eq(twice[i], 2.0f * once[i], 1e-6f, "activation %d element %d", k, i);
            norm += fabs(once[i]);
        }
        cr_assert(norm > 0.1, "activation %d: gradient is all zero", k);
        cr_assert_eq(bwd[k](NULL, r, y, N), PTL_OK);
    }
}

Test(activation, in_place_forward_matches_out_of_place)
{
    const act_fwd fwd[] = {ptl_relu_forward, ptl_sigmoid_forward, ptl_tanh_forward};
    enum { N = 40000 }; /* above PTL_OMP_MIN_ELEMENTS: the threaded path too */
    float *x = tc_alloc(N), *y = tc_alloc(N), *z = tc_alloc(N);
    tc_fill(x, N, 5, -4.0f, 4.0f);
    for (int k = 0; k < 3; k++) {
        memcpy(z, x, N * sizeof *x);
        cr_assert_eq(fwd[k](y, x, N), PTL_OK);
        cr_assert_eq(fwd[k](z, z, N), PTL_OK);
        cr_assert_eq(memcmp(y, z, N * sizeof *y), 0, "activation %d in place differs", k);
    }
    free(x);
    free(y);
    free(z);
}

Test(activation, null_buffers_are_errors)
{
    float a[2] = {1, 2}, b[2];
    ptl_error_clear();
    cr_assert_eq(ptl_relu_forward(NULL, a, 2), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "relu") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_sigmoid_forward(b, NULL, 2), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "sigmoid") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_tanh_backward(b, NULL, a, 2), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "tanh") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_relu_backward(b, a, NULL, 2), PTL_EINVAL);
    cr_assert_eq(ptl_sigmoid_backward(b, NULL, a, 2), PTL_EINVAL);
    cr_assert_eq(ptl_tanh_forward(NULL, a, 2), PTL_EINVAL);
    cr_assert_eq(ptl_relu_forward(b, a, 0), PTL_OK);
}

Test(activation, relu_backward_inplace_matches_out_of_place)
{
    enum { N = 40000 }; /* the threaded path too */
    float *x = tc_alloc(N), *y = tc_alloc(N), *g = tc_alloc(N), *want = tc_alloc(N);
    tc_fill(x, N, 21, -2.0f, 2.0f);
    tc_fill(g, N, 22, -1.0f, 1.0f);
    x[0] = 0.0f;
    x[1] = NAN;
    cr_assert_eq(ptl_relu_forward(y, x, N), PTL_OK);
    memset(want, 0, N * sizeof *want);
    cr_assert_eq(ptl_relu_backward(want, g, y, N), PTL_OK);
    cr_assert_eq(ptl_relu_backward_inplace(g, y, N), PTL_OK);
    cr_assert_eq(memcmp(g, want, N * sizeof *g), 0, "in-place ReLU backward differs");
    cr_assert_eq(g[0], 0.0f, "no gradient at 0, as torch's threshold_backward");
    free(x);
    free(y);
    free(g);
    free(want);
}

/* The vectorised exp behind sigmoid (src/ops/vmath.h) scales in two halves to reach the
 * subnormal range: check the whole tail, where sigmoid(x) ~ e^x is subnormal below -87.3. */
Test(activation, sigmoid_subnormal_tail_against_double)
{
    enum { N = 2001 };
    float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = -110.0f + 30.0f * (float)i / (N - 1);
    cr_assert_eq(ptl_sigmoid_forward(y, x, N), PTL_OK);
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]) / (1.0 + exp((double)x[i]));
        cr_assert(fabs(y[i] - want) <= 1e-6 * want + 1e-45, "sigmoid(%.9g) = %.9g, want %.9g",
                  (double)x[i], (double)y[i], want);
    }
}
