/* Unit tests of batch normalisation: training and eval forward against double-precision
 * references (incl. running-stat updates), finite-difference gradients for the input, gamma and
 * beta in both modes, the near-cancelling n*hw = 2 case, accumulation and argument errors, and
 * the split (SyncBN) phases against the whole-batch kernels with processes emulated by slices. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* Per-channel batch mean and biased variance in double, straight from the definition. */
static void ref_stats(const float *x, const struct ptl_batchnorm_shape *s, int ch, double *mean,
                      double *var)
{
    double m = 0, v = 0;
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->hw; j++)
            m += x[((size_t)i * s->c + ch) * s->hw + j];
    m /= (double)s->n * s->hw;
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->hw; j++) {
            double d = x[((size_t)i * s->c + ch) * s->hw + j] - m;
            v += d * d;
        }
    *mean = m;
    *var = v / ((double)s->n * s->hw);
}

static size_t numel(const struct ptl_batchnorm_shape *s)
{
    return (size_t)s->n * s->c * s->hw;
}

Test(batchnorm, train_forward_and_running_stats)
{
    /* Channel 2 sits at 1000 with spread 1: E[x^2] - E[x]^2 in float would lose it all. */
    struct ptl_batchnorm_shape s = {3, 3, 7, 1e-5f, 0.1f};
    size_t n = numel(&s);
    float *x = tc_alloc(n), *y = tc_alloc(n);
    tc_fill(x, n, 1, -2.0f, 3.0f);
    for (int i = 0; i < s.n; i++)
        for (int j = 0; j < s.hw; j++)
            x[((size_t)i * s.c + 2) * s.hw + j] += 1000.0f;
    const float gamma[3] = {1.5f, -0.5f, 2.0f}, beta[3] = {0.1f, 0.0f, -3.0f};
    float mean[3], invstd[3], rm[3] = {0.5f, -1.0f, 2.0f}, rv[3] = {1.0f, 2.0f, 0.5f};
    const float rm0[3] = {0.5f, -1.0f, 2.0f}, rv0[3] = {1.0f, 2.0f, 0.5f};
    cr_assert_eq(ptl_batchnorm_forward_train(y, mean, invstd, rm, rv, x, gamma, beta, &s), PTL_OK);
    const double count = (double)s.n * s.hw;
    for (int ch = 0; ch < s.c; ch++) {
        double m, v;
        ref_stats(x, &s, ch, &m, &v);
        double is = 1.0 / sqrt(v + s.eps);
        cr_expect(fabs(mean[ch] - m) <= 1e-6 * fabs(m) + 1e-7, "save_mean[%d]", ch);
        cr_expect(fabs(invstd[ch] - is) <= 1e-6 * is, "save_invstd[%d] %g vs %g", ch,
                  (double)invstd[ch], is);
        double want_rm = 0.9 * rm0[ch] + 0.1 * m;
        double want_rv = 0.9 * rv0[ch] + 0.1 * v * count / (count - 1); /* unbiased */
        cr_expect(fabs(rm[ch] - want_rm) <= 1e-6 * fabs(want_rm) + 1e-7, "running_mean[%d]", ch);
        cr_expect(fabs(rv[ch] - want_rv) <= 1e-6 * want_rv, "running_var[%d] %g vs %g", ch,
                  (double)rv[ch], want_rv);
        for (int i = 0; i < s.n; i++)
            for (int j = 0; j < s.hw; j++) {
                size_t k = ((size_t)i * s.c + ch) * s.hw + j;
                double want = (x[k] - m) * is * gamma[ch] + beta[ch];
                cr_assert(fabs(y[k] - want) <= 1e-4 * (fabs(want) + 1), "out[%zu] %g vs %g", k,
                          (double)y[k], want);
            }
    }

    /* affine = False is gamma 1, beta 0; running stats may be left out. */
    float *y2 = tc_alloc(n);
    const float ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0};
    cr_assert_eq(ptl_batchnorm_forward_train(y, mean, invstd, NULL, NULL, x, ones, zeros, &s),
                 PTL_OK);
    cr_assert_eq(ptl_batchnorm_forward_train(y2, mean, invstd, NULL, NULL, x, NULL, NULL, &s),
                 PTL_OK);
    cr_assert_eq(memcmp(y, y2, n * sizeof *y), 0);
    free(x);
    free(y);
    free(y2);
}

Test(batchnorm, eval_forward_uses_running_stats)
{
    struct ptl_batchnorm_shape s = {1, 3, 1, 1e-3f, 0.1f}; /* BatchNorm1d on one sample */
    const float x[3] = {1.0f, -2.0f, 0.5f}, rm[3] = {0.5f, 1.0f, -1.0f},
                rv[3] = {4.0f, 0.25f, 1.0f};
    const float gamma[3] = {2.0f, 1.0f, -1.0f}, beta[3] = {0.0f, 1.0f, 0.5f};
    float y[3];
    cr_assert_eq(ptl_batchnorm_forward_eval(y, x, gamma, beta, rm, rv, &s), PTL_OK);
    for (int ch = 0; ch < 3; ch++) {
        double want = (x[ch] - rm[ch]) / sqrt(rv[ch] + 1e-3) * gamma[ch] + beta[ch];
        cr_expect_float_eq(y[ch], want, 1e-6, "out[%d] = %g, want %g", ch, (double)y[ch], want);
    }
    cr_assert_eq(ptl_batchnorm_forward_eval(y, x, NULL, NULL, rm, rv, &s), PTL_OK);
    for (int ch = 0; ch < 3; ch++)
        cr_expect_float_eq(y[ch], (x[ch] - rm[ch]) / sqrt(rv[ch] + 1e-3), 1e-6);
}

/* loss = sum(bn(x; gamma, beta) * r) in double, training or eval mode. */
struct bn_ctx {
    const struct ptl_batchnorm_shape *s;
    int train;
    float *x, *y, *r, *gamma, *beta, *rm, *rv, *mean, *invstd;
};

static double bn_loss(void *p)
{
    struct bn_ctx *c = p;
    int rc = c->train
                 ? ptl_batchnorm_forward_train(c->y, c->mean, c->invstd, NULL, NULL, c->x, c->gamma,
                                               c->beta, c->s)
                 : ptl_batchnorm_forward_eval(c->y, c->x, c->gamma, c->beta, c->rm, c->rv, c->s);
    cr_assert_eq(rc, PTL_OK);
    return tc_dot(c->y, c->r, numel(c->s));
}

static void check_bn_grad(int n, int c, int hw, int train)
{
    struct ptl_batchnorm_shape s = {n, c, hw, 1e-5f, 0.1f};
    size_t len = numel(&s);
    float *x = tc_alloc(len), *y = tc_alloc(len), *r = tc_alloc(len);
    float *dx = tc_alloc(len), *dx2 = tc_alloc(len);
    float gamma[8], beta[8], rm[8], rv[8], mean[8], invstd[8];
    float dg[8] = {0}, db[8] = {0}, dg2[8] = {0}, db2[8] = {0};
    cr_assert(c <= 8);
    tc_fill(x, len, 100 + len, -2.0f, 2.0f);
    tc_fill(r, len, 200 + len, -1.0f, 1.0f);
    tc_fill(gamma, c, 3, 0.5f, 2.0f);
    tc_fill(beta, c, 4, -1.0f, 1.0f);
    tc_fill(rm, c, 5, -0.5f, 0.5f);
    tc_fill(rv, c, 6, 0.5f, 2.0f);
    char what[64];
    snprintf(what, sizeof what, "batchnorm %s n%d c%d hw%d", train ? "train" : "eval", n, c, hw);

    for (int rep = 0; rep < 2; rep++) { /* once into dx, twice into dx2 */
        if (train) {
            cr_assert_eq(
                ptl_batchnorm_forward_train(y, mean, invstd, NULL, NULL, x, gamma, beta, &s),
                PTL_OK);
            cr_assert_eq(ptl_batchnorm_backward_train(dx2, dg2, db2, r, x, mean, invstd, gamma, &s),
                         PTL_OK);
            if (rep == 0)
                cr_assert_eq(
                    ptl_batchnorm_backward_train(dx, dg, db, r, x, mean, invstd, gamma, &s),
                    PTL_OK);
        } else {
            cr_assert_eq(ptl_batchnorm_backward_eval(dx2, dg2, db2, r, x, gamma, rm, rv, &s),
                         PTL_OK);
            if (rep == 0)
                cr_assert_eq(ptl_batchnorm_backward_eval(dx, dg, db, r, x, gamma, rm, rv, &s),
                             PTL_OK);
        }
    }
    for (size_t i = 0; i < len; i++)
        cr_assert_float_eq(dx2[i], 2.0f * dx[i], 1e-5f, "%s: d_in does not accumulate", what);
    for (int ch = 0; ch < c; ch++) {
        cr_assert_float_eq(dg2[ch], 2.0f * dg[ch], 1e-5f, "%s: d_gamma does not accumulate", what);
        cr_assert_float_eq(db2[ch], 2.0f * db[ch], 1e-5f, "%s: d_beta does not accumulate", what);
    }

    struct bn_ctx ctx = {&s, train, x, y, r, gamma, beta, rm, rv, mean, invstd};
    tc_assert_gradcheck(what, bn_loss, &ctx, x, dx, len, 1e-2f, 2e-3, 1e-2);
    tc_assert_gradcheck(what, bn_loss, &ctx, gamma, dg, c, 1e-2f, 2e-3, 1e-2);
    tc_assert_gradcheck(what, bn_loss, &ctx, beta, db, c, 1e-2f, 2e-3, 1e-2);
    free(x);
    free(y);
    free(r);
    free(dx);
    free(dx2);
}

Test(batchnorm, gradients_match_finite_differences)
{
    for (int train = 0; train <= 1; train++) {
        check_bn_grad(2, 3, 5, train);   /* BatchNorm2d, odd spatial size */
        check_bn_grad(4, 3, 1, train);   /* BatchNorm1d */
        check_bn_grad(1, 3, 4, train);   /* batch 1: statistics over space only */
        check_bn_grad(3, 1, 9, train);   /* one channel */
        check_bn_grad(16, 2, 25, train); /* longer sums */
    }
}

Test(batchnorm, two_values_per_channel_gradient_is_accurate)
{
    /* n*hw = 2: x_hat = +-1 almost exactly and d_in is a near-total cancellation of order
     * eps/var. Compare with the analytic formula evaluated in double. */
    struct ptl_batchnorm_shape s = {2, 3, 1, 1e-5f, 0.1f};
    float x[6], y[6], r[6], mean[3], invstd[3], dx[6] = {0};
    const float gamma[3] = {1.0f, 2.0f, -0.5f};
    tc_fill(x, 6, 31, 2.0f, 8.0f);
    tc_fill(r, 6, 32, -1.0f, 1.0f);
    cr_assert_eq(ptl_batchnorm_forward_train(y, mean, invstd, NULL, NULL, x, gamma, NULL, &s),
                 PTL_OK);
    cr_assert_eq(ptl_batchnorm_backward_train(dx, NULL, NULL, r, x, mean, invstd, gamma, &s),
                 PTL_OK);
    float want[6];
    for (int ch = 0; ch < 3; ch++) {
        double m, v;
        ref_stats(x, &s, ch, &m, &v);
        double is = 1.0 / sqrt(v + s.eps), mdy = 0, mdyx = 0;
        for (int i = 0; i < 2; i++) {
            mdy += r[i * 3 + ch] / 2.0;
            mdyx += r[i * 3 + ch] * (x[i * 3 + ch] - m) * is / 2.0;
        }
        for (int i = 0; i < 2; i++)
            want[i * 3 + ch] =
                (float)(gamma[ch] * is * (r[i * 3 + ch] - mdy - (x[i * 3 + ch] - m) * is * mdyx));
    }
    double err = tc_rel_err(dx, want, 6, 1e-30);
    cr_assert(err <= 1e-3, "relative error %g of d_in (max |d_in| %g)", err,
              (double)fabsf(want[0]));
}

Test(batchnorm, null_gradients_are_skipped)
{
    struct ptl_batchnorm_shape s = {2, 2, 3, 1e-5f, 0.1f};
    float x[12], r[12], mean[2], invstd[2], y[12], dx[12] = {0}, dg[2] = {0};
    const float gamma[2] = {1, 2}, rm[2] = {0, 0}, rv[2] = {1, 1};
    tc_fill(x, 12, 1, -1.0f, 1.0f);
    tc_fill(r, 12, 2, -1.0f, 1.0f);
    cr_assert_eq(ptl_batchnorm_forward_train(y, mean, invstd, NULL, NULL, x, gamma, NULL, &s),
                 PTL_OK);
    cr_assert_eq(ptl_batchnorm_backward_train(NULL, dg, NULL, r, x, mean, invstd, gamma, &s),
                 PTL_OK);
    cr_assert(dg[0] != 0.0f && dg[1] != 0.0f);
    cr_assert_eq(ptl_batchnorm_backward_train(NULL, NULL, NULL, r, x, mean, invstd, NULL, &s),
                 PTL_OK);
    cr_assert_eq(ptl_batchnorm_backward_eval(dx, NULL, NULL, r, x, NULL, rm, rv, &s), PTL_OK);
    for (int i = 0; i < 12; i++) /* gamma NULL, running var 1: d_in = d_out / sqrt(1 + eps) */
        cr_assert_float_eq(dx[i], r[i] / sqrt(1.0 + 1e-5), 1e-6);
}

Test(batchnorm, bad_arguments_are_errors)
{
    float buf[16] = {0}, st[4] = {0, 0, 0, 0}, ones[4] = {1, 1, 1, 1};
    struct ptl_batchnorm_shape one_value = {1, 2, 1, 1e-5f, 0.1f};
    ptl_error_clear();
    cr_assert_eq(ptl_batchnorm_forward_train(buf, st, st, NULL, NULL, buf, NULL, NULL, &one_value),
                 PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "batchnorm") != NULL &&
                  strstr(ptl_error_message(), "more than 1 value") != NULL,
              "message: %s", ptl_error_message());
    cr_assert_eq(ptl_batchnorm_backward_train(buf, NULL, NULL, buf, buf, st, st, NULL, &one_value),
                 PTL_EINVAL);
    /* Eval mode has no such restriction, as in PyTorch. */
    cr_assert_eq(ptl_batchnorm_forward_eval(buf, buf, NULL, NULL, st, ones, &one_value), PTL_OK);

    struct ptl_batchnorm_shape ok = {2, 2, 2, 1e-5f, 0.1f};
    cr_assert_eq(ptl_batchnorm_forward_train(buf, NULL, st, NULL, NULL, buf, NULL, NULL, &ok),
                 PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "save_mean") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_batchnorm_forward_train(buf, st, st, NULL, NULL, NULL, NULL, NULL, &ok),
                 PTL_EINVAL);
    cr_assert_eq(ptl_batchnorm_forward_train(buf, st, st, NULL, NULL, buf, NULL, NULL, NULL),
                 PTL_EINVAL);
    cr_assert_eq(ptl_batchnorm_forward_eval(buf, buf, NULL, NULL, NULL, ones, &ok), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "batchnorm") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_batchnorm_backward_eval(buf, NULL, NULL, NULL, buf, NULL, st, ones, &ok),
                 PTL_EINVAL);
    struct ptl_batchnorm_shape bad_c = {2, 0, 2, 1e-5f, 0.1f};
    cr_assert_eq(ptl_batchnorm_forward_eval(buf, buf, NULL, NULL, st, ones, &bad_c), PTL_EINVAL);
    struct ptl_batchnorm_shape bad_eps = {2, 2, 2, -1.0f, 0.1f};
    cr_assert_eq(ptl_batchnorm_forward_eval(buf, buf, NULL, NULL, st, ones, &bad_eps), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "eps") != NULL, "message: %s", ptl_error_message());
    struct ptl_batchnorm_shape bad_m = {2, 2, 2, 1e-5f, 1.5f};
    cr_assert_eq(ptl_batchnorm_forward_train(buf, st, st, st, st, buf, NULL, NULL, &bad_m),
                 PTL_EINVAL);
}

Test(batchnorm, threaded_result_equals_single_thread)
{
    /* Above PTL_OMP_MIN_ELEMENTS; every channel's sums stay on one thread, so bit-identical. */
    struct ptl_batchnorm_shape s = {8, 5, 1000, 1e-5f, 0.1f};
    size_t len = numel(&s);
    float *x = tc_alloc(len), *r = tc_alloc(len), *y[2], *dx[2];
    float mean[2][5], invstd[2][5], dg[2][5] = {{0}}, db[2][5] = {{0}};
    tc_fill(x, len, 41, -1.0f, 3.0f);
    tc_fill(r, len, 42, -1.0f, 1.0f);
    for (int t = 0; t < 2; t++) {
        y[t] = tc_alloc(len);
        dx[t] = tc_alloc(len);
        cr_assert_eq(ptl_threads_set(t + 1), PTL_OK);
        cr_assert_eq(
            ptl_batchnorm_forward_train(y[t], mean[t], invstd[t], NULL, NULL, x, NULL, NULL, &s),
            PTL_OK);
        cr_assert_eq(
            ptl_batchnorm_backward_train(dx[t], dg[t], db[t], r, x, mean[t], invstd[t], NULL, &s),
            PTL_OK);
    }
    cr_assert_eq(memcmp(y[0], y[1], len * sizeof(float)), 0);
    cr_assert_eq(memcmp(dx[0], dx[1], len * sizeof(float)), 0);
    cr_assert_eq(memcmp(dg[0], dg[1], sizeof dg[0]), 0);
    /* Against the double reference: the large-count path uses the saved statistics. */
    for (int ch = 0; ch < s.c; ch++) {
        double m, v;
        ref_stats(x, &s, ch, &m, &v);
        cr_expect(fabs(mean[0][ch] - m) <= 1e-6 * fabs(m), "save_mean[%d]", ch);
        cr_expect(fabs(invstd[0][ch] - 1.0 / sqrt(v + s.eps)) <= 1e-6 / sqrt(v), "invstd[%d]", ch);
    }
    free(x);
    free(r);
    for (int t = 0; t < 2; t++) {
        free(y[t]);
        free(dx[t]);
    }
}

/* ---- split phases (SyncBN): processes emulated by slices of one batch ---- */

/* Runs the split phases on `parts` consecutive sample slices of x (N, C, HW), adding each phase's
 * per-channel sums over the slices by hand where processes would MPI_Allreduce them. Every slice
 * keeps its own running statistics (rm, rv: parts x C), as every process does; d_gamma / d_beta
 * get every slice's share. */
static void split_run(const struct ptl_batchnorm_shape *full, int parts, const float *x,
                      const float *dy, const float *gamma, const float *beta, float *y, float *dx,
                      float *rm, float *rv, float *dg, float *db)
{
    const int c = full->c;
    double *sum = calloc(c, sizeof *sum), *part = calloc(c, sizeof *part);
    double *mean = calloc(c, sizeof *mean), *sq = calloc(c, sizeof *sq);
    double *invstd = calloc((size_t)parts * c, sizeof *invstd);
    double *sdy = calloc(2 * (size_t)c, sizeof *sdy), *pdy = calloc(2 * (size_t)c, sizeof *pdy);
    cr_assert(sum && part && mean && sq && invstd && sdy && pdy);
    struct ptl_batchnorm_shape s[8];
    size_t off[8];
    cr_assert(parts <= 8);
    double count = 0;
    for (int p = 0; p < parts; p++) {
        int i0 = full->n * p / parts, i1 = full->n * (p + 1) / parts;
        s[p] = *full;
        s[p].n = i1 - i0;
        off[p] = (size_t)i0 * c * full->hw;
        cr_assert_eq(ptl_batchnorm_split_sum(part, x + off[p], &s[p]), PTL_OK);
        for (int ch = 0; ch < c; ch++)
            sum[ch] += part[ch];
        count += (double)s[p].n * s[p].hw;
    }
    for (int ch = 0; ch < c; ch++)
        mean[ch] = sum[ch] / count;
    for (int p = 0; p < parts; p++) {
        cr_assert_eq(ptl_batchnorm_split_sqdev(part, x + off[p], mean, &s[p]), PTL_OK);
        for (int ch = 0; ch < c; ch++)
            sq[ch] += part[ch];
    }
    for (int p = 0; p < parts; p++)
        cr_assert_eq(ptl_batchnorm_split_forward(y + off[p], invstd + (size_t)p * c,
                                                 rm + (size_t)p * c, rv + (size_t)p * c,
                                                 x + off[p], gamma, beta, mean, sq, count, &s[p]),
                     PTL_OK);
    for (int p = 0; p < parts; p++) {
        cr_assert_eq(memcmp(invstd, invstd + (size_t)p * c, c * sizeof *invstd), 0);
        cr_assert_eq(ptl_batchnorm_split_backward_sums(pdy, pdy + c, dg, db, dy + off[p],
                                                       x + off[p], mean, invstd, &s[p]),
                     PTL_OK);
        for (int k = 0; k < 2 * c; k++)
            sdy[k] += pdy[k];
    }
    for (int p = 0; p < parts; p++)
        cr_assert_eq(ptl_batchnorm_split_backward_input(dx + off[p], dy + off[p], x + off[p],
                                                        gamma, mean, invstd, sdy, sdy + c, count,
                                                        &s[p]),
                     PTL_OK);
    free(sum);
    free(part);
    free(mean);
    free(sq);
    free(invstd);
    free(sdy);
    free(pdy);
}

/* The split phases over `parts` slices against forward_train / backward_train on the whole
 * batch. With one part and n*hw <= 256 (where backward_train recomputes its statistics in
 * double) the two paths do the same arithmetic in the same order: bit-identical. */
static void check_split(int n, int c, int hw, int parts)
{
    struct ptl_batchnorm_shape s = {n, c, hw, 1e-5f, 0.1f};
    size_t len = numel(&s);
    float *x = tc_alloc(len), *dy = tc_alloc(len), *y = tc_alloc(len), *y2 = tc_alloc(len);
    float *dx = tc_alloc(len), *dx2 = tc_alloc(len);
    float gamma[6], beta[6], mean[6], invstd[6], rm[6], rv[6], rm2[8 * 6], rv2[8 * 6];
    float dg[6] = {0}, db[6] = {0}, dg2[6] = {0}, db2[6] = {0};
    cr_assert(c <= 6 && parts <= 8);
    tc_fill(x, len, 7 + len, 1.0f, 5.0f); /* mean ~3 >> std: the two passes matter */
    tc_fill(dy, len, 8 + len, -1.0f, 1.0f);
    tc_fill(gamma, c, 9, 0.5f, 2.0f);
    tc_fill(beta, c, 10, -1.0f, 1.0f);
    tc_fill(rm, c, 11, -0.5f, 0.5f);
    tc_fill(rv, c, 12, 0.5f, 2.0f);
    for (int p = 0; p < parts; p++) {
        memcpy(rm2 + p * c, rm, c * sizeof *rm);
        memcpy(rv2 + p * c, rv, c * sizeof *rv);
    }
    cr_assert_eq(ptl_batchnorm_forward_train(y, mean, invstd, rm, rv, x, gamma, beta, &s), PTL_OK);
    cr_assert_eq(ptl_batchnorm_backward_train(dx, dg, db, dy, x, mean, invstd, gamma, &s), PTL_OK);
    split_run(&s, parts, x, dy, gamma, beta, y2, dx2, rm2, rv2, dg2, db2);

    char what[64];
    snprintf(what, sizeof what, "split n%d c%d hw%d parts %d", n, c, hw, parts);
    if (parts == 1 && (long long)n * hw <= 256) {
        cr_expect_eq(memcmp(y, y2, len * sizeof *y), 0, "%s: out not bit-identical", what);
        cr_expect_eq(memcmp(dx, dx2, len * sizeof *dx), 0, "%s: d_in not bit-identical", what);
        cr_expect_eq(memcmp(dg, dg2, c * sizeof *dg), 0, "%s: d_gamma not bit-identical", what);
        cr_expect_eq(memcmp(db, db2, c * sizeof *db), 0, "%s: d_beta not bit-identical", what);
    }
    double e;
    cr_expect((e = tc_rel_err(y2, y, len, 1e-6)) <= 1e-5, "%s: out rel err %g", what, e);
    cr_expect((e = tc_rel_err(dx2, dx, len, 1e-6)) <= 1e-5, "%s: d_in rel err %g", what, e);
    cr_expect((e = tc_rel_err(dg2, dg, c, 1e-6)) <= 1e-5, "%s: d_gamma rel err %g", what, e);
    cr_expect((e = tc_rel_err(db2, db, c, 1e-6)) <= 1e-5, "%s: d_beta rel err %g", what, e);
    for (int p = 0; p < parts; p++) {
        cr_expect((e = tc_rel_err(rm2 + p * c, rm, c, 1e-6)) <= 1e-6,
                  "%s: running_mean of part %d rel err %g", what, p, e);
        cr_expect((e = tc_rel_err(rv2 + p * c, rv, c, 1e-6)) <= 1e-6,
                  "%s: running_var of part %d rel err %g", what, p, e);
    }
    free(x);
    free(dy);
    free(y);
    free(y2);
    free(dx);
    free(dx2);
}

Test(batchnorm, split_phases_equal_whole_batch)
{
    check_split(4, 3, 30, 1);  /* one process: same arithmetic as the whole-batch kernels */
    check_split(2, 5, 1, 1);   /* BatchNorm1d, 2 values per channel */
    check_split(4, 3, 100, 1); /* n*hw > 256: backward_train uses its float statistics */
    check_split(8, 5, 42, 2);
    check_split(8, 5, 42, 4);
    check_split(5, 3, 9, 3);   /* uneven slices: 1, 2, 2 samples */
    check_split(4, 2, 1, 4);   /* BatchNorm1d, one value per channel and process */
}

Test(batchnorm, split_phases_bad_arguments_are_errors)
{
    struct ptl_batchnorm_shape s = {2, 2, 1, 1e-5f, 0.1f};
    float buf[4] = {1, 2, 3, 4}, out[4];
    double mean[2] = {0, 0}, sq[2] = {1, 1}, inv[2];
    ptl_error_clear();
    /* One value per channel over all processes, as PyTorch refuses. */
    struct ptl_batchnorm_shape one = {1, 2, 1, 1e-5f, 0.1f};
    cr_assert_eq(ptl_batchnorm_split_forward(out, inv, NULL, NULL, buf, NULL, NULL, mean, sq, 1.0,
                                             &one),
                 PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "more than 1 value") != NULL, "message: %s",
              ptl_error_message());
    /* A global count below this process's own values is a broken sum. */
    cr_assert_eq(ptl_batchnorm_split_forward(out, inv, NULL, NULL, buf, NULL, NULL, mean, sq, 1.5,
                                             &s),
                 PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "global count") != NULL, "message: %s",
              ptl_error_message());
    cr_assert_eq(ptl_batchnorm_split_backward_input(out, buf, buf, NULL, mean, sq, sq, sq, NAN, &s),
                 PTL_EINVAL);
    cr_assert_eq(ptl_batchnorm_split_sum(NULL, buf, &s), PTL_EINVAL);
    cr_assert_eq(ptl_batchnorm_split_sqdev(sq, buf, NULL, &s), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "batchnorm_split_sqdev") != NULL, "message: %s",
              ptl_error_message());
    cr_assert_eq(ptl_batchnorm_split_backward_sums(sq, NULL, NULL, NULL, buf, buf, mean, inv, &s),
                 PTL_EINVAL);
    struct ptl_batchnorm_shape bad = {0, 2, 1, 1e-5f, 0.1f};
    cr_assert_eq(ptl_batchnorm_split_sum(sq, buf, &bad), PTL_EINVAL);
}
