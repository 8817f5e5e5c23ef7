/* Unit tests of linear: forward against a naive loop (PyTorch weight layout (out, in)),
 * finite-difference gradients, accumulation, NULL-gradient skipping and argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

struct lin_case {
    int n, in_f, out_f;
    float *in, *w, *b, *out, *r; /* (N, in), (out, in), (out), (N, out), (N, out) */
};

static void lin_init(struct lin_case *c, int n, int in_f, int out_f, int with_bias)
{
    *c = (struct lin_case){n, in_f, out_f, NULL, NULL, NULL, NULL, NULL};
    c->in = tc_alloc((size_t)n * in_f);
    c->w = tc_alloc((size_t)out_f * in_f);
    c->b = with_bias ? tc_alloc((size_t)out_f) : NULL;
    c->out = tc_alloc((size_t)n * out_f);
    c->r = tc_alloc((size_t)n * out_f);
    tc_fill(c->in, (size_t)n * in_f, 21, -1, 1);
    tc_fill(c->w, (size_t)out_f * in_f, 22, -1, 1);
    if (c->b)
        tc_fill(c->b, (size_t)out_f, 23, -1, 1);
    tc_fill(c->r, (size_t)n * out_f, 24, -1, 1);
}

static void lin_free(struct lin_case *c)
{
    free(c->in);
    free(c->w);
    free(c->b);
    free(c->out);
    free(c->r);
}

static double lin_loss(void *ctx)
{
    struct lin_case *c = ctx;
    cr_assert_eq(ptl_linear_forward(c->out, c->in, c->w, c->b, c->n, c->in_f, c->out_f), 0);
    return tc_dot(c->out, c->r, (size_t)c->n * c->out_f);
}

static void check_linear(int n, int in_f, int out_f, int with_bias)
{
    struct lin_case c;
    lin_init(&c, n, in_f, out_f, with_bias);
    cr_assert_eq(ptl_linear_forward(c.out, c.in, c.w, c.b, n, in_f, out_f), 0, "%s",
                 ptl_error_message());
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out_f; o++) {
            double acc = c.b ? c.b[o] : 0.0;
            for (int j = 0; j < in_f; j++)
                acc += (double)c.in[(size_t)i * in_f + j] * c.w[(size_t)o * in_f + j];
            cr_assert(fabs(c.out[(size_t)i * out_f + o] - acc) <= 1e-5 * (1 + fabs(acc)),
                      "forward (%d, %d): %g vs %g", i, o, c.out[(size_t)i * out_f + o], acc);
        }
    float *d_in = tc_alloc((size_t)n * in_f), *d_w = tc_alloc((size_t)out_f * in_f);
    float *d_b = tc_alloc((size_t)out_f);
    cr_assert_eq(ptl_linear_backward(d_in, d_w, with_bias ? d_b : NULL, c.r, c.in, c.w, n, in_f,
                                     out_f),
                 0, "%s", ptl_error_message());
    tc_assert_gradcheck("linear d_in", lin_loss, &c, c.in, d_in, (size_t)n * in_f, 0.05f, 2e-3,
                        2e-3);
    tc_assert_gradcheck("linear d_weight", lin_loss, &c, c.w, d_w, (size_t)out_f * in_f, 0.05f,
                        2e-3, 2e-3);
    if (with_bias)
        tc_assert_gradcheck("linear d_bias", lin_loss, &c, c.b, d_b, (size_t)out_f, 0.05f, 2e-3,
                            2e-3);

    /* a second call accumulates; NULL gradients are skipped */
    float *d_in2 = tc_alloc((size_t)n * in_f), *d_w2 = tc_alloc((size_t)out_f * in_f);
    float *d_b2 = tc_alloc((size_t)out_f);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(ptl_linear_backward(d_in2, NULL, NULL, c.r, c.in, c.w, n, in_f, out_f), 0);
    cr_assert_eq(ptl_linear_backward(NULL, d_w2, NULL, c.r, c.in, c.w, n, in_f, out_f), 0);
    cr_assert_eq(ptl_linear_backward(NULL, d_w2, d_b2, c.r, c.in, c.w, n, in_f, out_f), 0);
    cr_assert_eq(ptl_linear_backward(NULL, NULL, d_b2, c.r, c.in, c.w, n, in_f, out_f), 0);
    for (size_t i = 0; i < (size_t)n * in_f; i++)
        cr_assert_float_eq(d_in2[i], 2 * d_in[i], 1e-5f * (1 + fabsf(d_in[i])));
    for (size_t i = 0; i < (size_t)out_f * in_f; i++)
        cr_assert_float_eq(d_w2[i], 2 * d_w[i], 1e-5f * (1 + fabsf(d_w[i])));
    if (with_bias)
        for (int o = 0; o < out_f; o++)
            cr_assert_float_eq(d_b2[o], 2 * d_b[o], 1e-5f * (1 + fabsf(d_b[o])));
    free(d_in);
    free(d_w);
    free(d_b);
    free(d_in2);
    free(d_w2);
    free(d_b2);
    lin_free(&c);
}

Test(linear, small_with_bias)
{
    check_linear(3, 5, 4, 1);
}

Test(linear, batch_one_no_bias)
{
    check_linear(1, 7, 3, 0);
}

Test(linear, single_feature_in_and_out)
{
    check_linear(4, 1, 1, 1);
}

Test(linear, classifier_like)
{
    check_linear(16, 512, 10, 1);
}

static void expect_error(int rc, const char *op, const char *part)
{
    cr_assert_eq(rc, PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), op) != NULL, "%s", ptl_error_message());
    cr_assert(strstr(ptl_error_message(), part) != NULL, "'%s' lacks '%s'", ptl_error_message(),
              part);
}

Test(linear_errors, bad_arguments)
{
    float x[64] = {0};
    expect_error(ptl_linear_forward(x, x, x, NULL, 0, 2, 2), "linear_forward", "positive");
    expect_error(ptl_linear_forward(x, x, x, NULL, 2, -2, 2), "linear_forward", "positive");
    expect_error(ptl_linear_forward(NULL, x, x, NULL, 2, 2, 2), "linear_forward", "out is NULL");
    expect_error(ptl_linear_forward(x, NULL, x, NULL, 2, 2, 2), "linear_forward", "in is NULL");
    expect_error(ptl_linear_forward(x, x, NULL, x, 2, 2, 2), "linear_forward", "weight is NULL");
    expect_error(ptl_linear_backward(x, x, x, x, x, x, 2, 2, 0), "linear_backward", "positive");
    expect_error(ptl_linear_backward(x, x, x, NULL, x, x, 2, 2, 2), "linear_backward",
                 "d_out is NULL");
    expect_error(ptl_linear_backward(x, NULL, NULL, x, x, NULL, 2, 2, 2), "linear_backward",
                 "weight is NULL");
    expect_error(ptl_linear_backward(NULL, x, NULL, x, NULL, x, 2, 2, 2), "linear_backward",
                 "in is NULL");
}
