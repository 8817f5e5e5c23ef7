/* Unit tests of max/avg pooling and adaptive pooling: PyTorch-computed values, naive references,
 * finite-difference gradients on odd shapes, accumulation and argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* Distinct values 0.05 apart (a permutation of 0..n-1, scaled), so no window holds a tie that
 * a finite-difference step of 1e-2 could flip. n must not be a multiple of 37. */
static void fill_distinct(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.05f * (float)((i * 37) % n) - 1.0f;
}

static size_t in_size(const struct ptl_pool2d_shape *s)
{
    return (size_t)s->n * s->c * s->h * s->w;
}

/* ---- naive references ---- */

/* Max pool by scanning every kernel tap: padding taps are skipped, strict > keeps the first,
 * a NaN always wins (so the last NaN of a window), as in PyTorch. */
static void ref_maxpool(float *out, int32_t *am, const float *in, const struct ptl_pool2d_shape *s,
                        int ho, int wo)
{
    for (int p = 0; p < s->n * s->c; p++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++) {
                float best = -INFINITY;
                int at = -1;
                for (int ki = 0; ki < s->kh; ki++)
                    for (int kj = 0; kj < s->kw; kj++) {
                        int ih = oh * s->stride_h - s->pad_h + ki;
                        int iw = ow * s->stride_w - s->pad_w + kj;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                            continue;
                        float v = in[(size_t)p * s->h * s->w + ih * s->w + iw];
                        if (at < 0 || v > best || isnan(v)) {
                            best = v;
                            at = ih * s->w + iw;
                        }
                    }
                out[((size_t)p * ho + oh) * wo + ow] = best;
                am[((size_t)p * ho + oh) * wo + ow] = at;
            }
}

/* Avg pool: with count_include_pad every window (floor mode) spans KH*KW padded cells. */
static void ref_avgpool(float *out, const float *in, const struct ptl_pool2d_shape *s, int ho,
                        int wo, int count_include_pad)
{
    for (int p = 0; p < s->n * s->c; p++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++) {
                double sum = 0;
                int valid = 0;
                for (int ki = 0; ki < s->kh; ki++)
                    for (int kj = 0; kj < s->kw; kj++) {
                        int ih = oh * s->stride_h - s->pad_h + ki;
                        int iw = ow * s->stride_w - s->pad_w + kj;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                            continue;
                        sum += in[(size_t)p * s->h * s->w + ih * s->w + iw];
                        valid++;
                    }
                out[((size_t)p * ho + oh) * wo + ow] =
                    (float)(sum / (count_include_pad ? s->kh * s->kw : valid));
            }
}

/* ---- PyTorch values (torch 1.13, float64) ---- */

Test(pool, avgpool_matches_pytorch_values)
{
    /* x = arange(20).reshape(1, 1, 4, 5), kernel 3, stride 2, padding 1. */
    float x[20], y[6];
    for (int i = 0; i < 20; i++)
        x[i] = (float)i;
    struct ptl_pool2d_shape s = {1, 1, 4, 5, 3, 3, 2, 2, 1, 1};
    int ho, wo;
    cr_assert_eq(ptl_pool2d_output_size(&s, &ho, &wo), PTL_OK);
    cr_assert(ho == 2 && wo == 3, "output %dx%d, want 2x3", ho, wo);
    const double with_pad[6] = {4.0 / 3, 3.0, 8.0 / 3, 7.0, 12.0, 9.0};
    const double without_pad[6] = {3.0, 4.5, 6.0, 10.5, 12.0, 13.5};
    cr_assert_eq(ptl_avgpool2d_forward(y, x, &s, 1), PTL_OK);
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(y[i], with_pad[i], 1e-6, "count_include_pad=1 [%d]", i);
    cr_assert_eq(ptl_avgpool2d_forward(y, x, &s, 0), PTL_OK);
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(y[i], without_pad[i], 1e-6, "count_include_pad=0 [%d]", i);
}

Test(pool, maxpool_ties_match_pytorch)
{
    /* Ties everywhere: PyTorch keeps the first maximum in scan order. k2 s1 p1 on 3x3. */
    const float x[9] = {1, 3, 3, 2, 3, 1, 0, 2, 2};
    const float want_y[16] = {1, 3, 3, 3, 2, 3, 3, 3, 2, 3, 3, 2, 0, 2, 2, 2};
    const int32_t want_i[16] = {0, 1, 1, 2, 3, 1, 1, 2, 3, 4, 4, 8, 6, 7, 7, 8};
    struct ptl_pool2d_shape s = {1, 1, 3, 3, 2, 2, 1, 1, 1, 1};
    float y[16];
    int32_t am[16];
    cr_assert_eq(ptl_maxpool2d_forward(y, am, x, &s), PTL_OK);
    for (int i = 0; i < 16; i++) {
        cr_expect_eq(y[i], want_y[i], "out[%d]", i);
        cr_expect_eq(am[i], want_i[i], "argmax[%d] = %d, want %d", i, am[i], want_i[i]);
    }
}

Test(pool, maxpool_ties_nan_and_inf_on_wide_rows)
{
    /* Rows wide enough for the vectorised interior columns, values from a small set so most
     * windows hold ties (after a ReLU most values are exactly 0), some -inf and NaN. */
    const struct ptl_pool2d_shape shapes[] = {
        {2, 3, 7, 41, 3, 3, 2, 2, 1, 1}, /* ResNet's stem pool */
        {1, 2, 6, 37, 3, 3, 1, 1, 1, 1},
        {1, 2, 5, 40, 2, 2, 2, 2, 0, 0},
        {1, 1, 4, 33, 1, 5, 1, 3, 0, 2},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const struct ptl_pool2d_shape *s = &shapes[c];
        int ho, wo;
        cr_assert_eq(ptl_pool2d_output_size(s, &ho, &wo), PTL_OK);
        size_t n = in_size(s), m = (size_t)s->n * s->c * ho * wo;
        float *x = malloc(n * sizeof *x), *y = malloc(m * sizeof *y), *ry = malloc(m * sizeof *ry);
        int32_t *am = malloc(m * sizeof *am), *ram = malloc(m * sizeof *ram);
        cr_assert(x && y && ry && am && ram);
        for (size_t i = 0; i < n; i++) {
            unsigned r = ((uint32_t)i * 2654435761u >> 10) % 64; /* a hash of i */
            x[i] = r == 0 ? NAN : r < 8 ? -INFINITY : r < 40 ? 0.0f : (float)(r % 3);
        }
        ref_maxpool(ry, ram, x, s, ho, wo);
        cr_assert_eq(ptl_maxpool2d_forward(y, am, x, s), PTL_OK);
        for (size_t i = 0; i < m; i++) {
            cr_expect(isnan(ry[i]) ? isnan(y[i]) : y[i] == ry[i], "shape %zu out[%zu] = %g, want %g",
                      c, i, (double)y[i], (double)ry[i]);
            cr_expect_eq(am[i], ram[i], "shape %zu argmax[%zu] = %d, want %d", c, i, am[i], ram[i]);
        }
        free(x);
        free(y);
        free(ry);
        free(am);
        free(ram);
    }
}

Test(pool, adaptive_matches_pytorch_values)
{
    /* 5x7 -> 3x4: rows [0,2) [1,4) [3,5), columns [0,2) [1,4) [3,6) [5,7): bins overlap. */
    float x[35], y[12];
    for (int i = 0; i < 35; i++)
        x[i] = (float)i;
    const float want[12] = {4.0f,  5.5f,  7.5f,  9.0f,  14.5f, 16.0f,
                            18.0f, 19.5f, 25.0f, 26.5f, 28.5f, 30.0f};
    cr_assert_eq(ptl_adaptive_avgpool2d_forward(y, x, 1, 1, 5, 7, 3, 4), PTL_OK);
    for (int i = 0; i < 12; i++)
        cr_expect_float_eq(y[i], want[i], 1e-6f, "out[%d]", i);

    const float t[9] = {1, 3, 3, 2, 3, 1, 0, 2, 2};
    const int32_t want_i[4] = {1, 1, 4, 4};
    int32_t am[4];
    cr_assert_eq(ptl_adaptive_maxpool2d_forward(y, am, t, 1, 1, 3, 3, 2, 2), PTL_OK);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(y[i], 3.0f);
        cr_expect_eq(am[i], want_i[i], "argmax[%d] = %d", i, am[i]);
    }
}

/* ---- fixed-window pooling: references and gradients on odd shapes ---- */

struct pool_ctx {
    const struct ptl_pool2d_shape *s;
    int max, count_include_pad;
    float *x, *y, *r; /* (N, C, H, W), (N, C, Ho, Wo), (N, C, Ho, Wo) */
    int32_t *am;
    size_t n_out;
};

static double pool_loss(void *p)
{
    struct pool_ctx *c = p;
    int rc = c->max ? ptl_maxpool2d_forward(c->y, c->am, c->x, c->s)
                    : ptl_avgpool2d_forward(c->y, c->x, c->s, c->count_include_pad);
    cr_assert_eq(rc, PTL_OK);
    return tc_dot(c->y, c->r, c->n_out);
}

static const struct ptl_pool2d_shape shapes[] = {
    /* n, c, h, w, kh, kw, stride, pad */
    {2, 3, 5, 7, 3, 2, 2, 3, 1, 1}, /* non-square kernel and stride, padding = kernel / 2 */
    {1, 3, 8, 7, 2, 2, 3, 3, 0, 0}, /* stride larger than the kernel: cells no window sees */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, /* 1x1 image */
    {2, 1, 4, 5, 3, 3, 1, 1, 1, 1}, /* overlapping windows */
    {1, 2, 3, 6, 3, 5, 1, 2, 1, 2}, /* padding on a wide kernel, kernel == padded width - 1 */
};

static void check_pool_shape(const struct ptl_pool2d_shape *s, int max, int cip)
{
    int ho, wo;
    cr_assert_eq(ptl_pool2d_output_size(s, &ho, &wo), PTL_OK, "%s", ptl_error_message());
    size_t n_in = in_size(s), n_out = (size_t)s->n * s->c * ho * wo;
    float *x = tc_alloc(n_in), *y = tc_alloc(n_out), *want = tc_alloc(n_out);
    float *r = tc_alloc(n_out), *dx = tc_alloc(n_in), *dx2 = tc_alloc(n_in);
    int32_t *am = tc_alloc_bytes(n_out * sizeof *am), *want_am = tc_alloc_bytes(n_out * 4);
    fill_distinct(x, n_in);
    tc_fill(r, n_out, 99, -1.0f, 1.0f);
    char what[96];
    snprintf(what, sizeof what, "%s %dx%dx%dx%d k%dx%d s%dx%d p%dx%d cip %d",
             max ? "maxpool" : "avgpool", s->n, s->c, s->h, s->w, s->kh, s->kw, s->stride_h,
             s->stride_w, s->pad_h, s->pad_w, cip);

    if (max) {
        cr_assert_eq(ptl_maxpool2d_forward(y, am, x, s), PTL_OK);
        ref_maxpool(want, want_am, x, s, ho, wo);
        cr_assert_eq(memcmp(am, want_am, n_out * sizeof *am), 0, "%s: argmax differs", what);
        cr_assert_eq(ptl_maxpool2d_backward(dx, r, am, s), PTL_OK);
        cr_assert_eq(ptl_maxpool2d_backward(dx2, r, am, s), PTL_OK);
        cr_assert_eq(ptl_maxpool2d_backward(dx2, r, am, s), PTL_OK);
    } else {
        cr_assert_eq(ptl_avgpool2d_forward(y, x, s, cip), PTL_OK);
        ref_avgpool(want, x, s, ho, wo, cip);
        cr_assert_eq(ptl_avgpool2d_backward(dx, r, s, cip), PTL_OK);
        cr_assert_eq(ptl_avgpool2d_backward(dx2, r, s, cip), PTL_OK);
        cr_assert_eq(ptl_avgpool2d_backward(dx2, r, s, cip), PTL_OK);
    }
    cr_assert(tc_rel_err(y, want, n_out, 1.0) <= 1e-6, "%s: forward differs from reference", what);
    for (size_t i = 0; i < n_in; i++)
        cr_assert_float_eq(dx2[i], 2.0f * dx[i], 1e-6f, "%s: backward does not accumulate", what);

    struct pool_ctx c = {s, max, cip, x, y, r, am, n_out};
    tc_assert_gradcheck(what, pool_loss, &c, x, dx, n_in, 1e-2f, 1e-4, 1e-3);
    free(x);
    free(y);
    free(want);
    free(r);
    free(dx);
    free(dx2);
    free(am);
    free(want_am);
}

Test(pool, maxpool_forward_and_gradients)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        check_pool_shape(&shapes[i], 1, 0);
}

Test(pool, avgpool_forward_and_gradients)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_pool_shape(&shapes[i], 0, 1);
        check_pool_shape(&shapes[i], 0, 0);
    }
}

Test(pool, output_size_follows_floor_mode)
{
    struct ptl_pool2d_shape s = {1, 1, 7, 6, 3, 2, 2, 4, 1, 1};
    int ho = 0, wo = 0;
    cr_assert_eq(ptl_pool2d_output_size(&s, &ho, &wo), PTL_OK);
    cr_assert(ho == 4 && wo == 2, "got %dx%d, want 4x2", ho, wo); /* (7+2-3)/2+1, (6+2-2)/4+1 */
}

/* ---- adaptive pooling ---- */

/* Bins from floating-point floor/ceil, independent of the integer arithmetic under test. */
static void ref_bin(int i, int in, int out, int *start, int *end)
{
    *start = (int)floor((double)i * in / out);
    *end = (int)ceil((double)(i + 1) * in / out);
}

struct adaptive_ctx {
    int max, n, c, h, w, ho, wo;
    float *x, *y, *r;
    int32_t *am;
};

static double adaptive_loss(void *p)
{
    struct adaptive_ctx *c = p;
    int rc = c->max
                 ? ptl_adaptive_maxpool2d_forward(c->y, c->am, c->x, c->n, c->c, c->h, c->w, c->ho,
                                                  c->wo)
                 : ptl_adaptive_avgpool2d_forward(c->y, c->x, c->n, c->c, c->h, c->w, c->ho, c->wo);
    cr_assert_eq(rc, PTL_OK);
    return tc_dot(c->y, c->r, (size_t)c->n * c->c * c->ho * c->wo);
}

static void check_adaptive(int max, int n, int c, int h, int w, int ho, int wo)
{
    size_t n_in = (size_t)n * c * h * w, n_out = (size_t)n * c * ho * wo;
    float *x = tc_alloc(n_in), *y = tc_alloc(n_out), *r = tc_alloc(n_out);
    float *dx = tc_alloc(n_in), *dx2 = tc_alloc(n_in);
    int32_t *am = tc_alloc_bytes(n_out * sizeof *am);
    fill_distinct(x, n_in);
    tc_fill(r, n_out, 77, -1.0f, 1.0f);
    char what[80];
    snprintf(what, sizeof what, "adaptive %s %dx%dx%dx%d -> %dx%d", max ? "max" : "avg", n, c, h, w,
             ho, wo);

    if (max) {
        cr_assert_eq(ptl_adaptive_maxpool2d_forward(y, am, x, n, c, h, w, ho, wo), PTL_OK);
        cr_assert_eq(ptl_adaptive_maxpool2d_backward(dx, r, am, n, c, h, w, ho, wo), PTL_OK);
        cr_assert_eq(ptl_adaptive_maxpool2d_backward(dx2, r, am, n, c, h, w, ho, wo), PTL_OK);
        cr_assert_eq(ptl_adaptive_maxpool2d_backward(dx2, r, am, n, c, h, w, ho, wo), PTL_OK);
    } else {
        cr_assert_eq(ptl_adaptive_avgpool2d_forward(y, x, n, c, h, w, ho, wo), PTL_OK);
        cr_assert_eq(ptl_adaptive_avgpool2d_backward(dx, r, n, c, h, w, ho, wo), PTL_OK);
        cr_assert_eq(ptl_adaptive_avgpool2d_backward(dx2, r, n, c, h, w, ho, wo), PTL_OK);
        cr_assert_eq(ptl_adaptive_avgpool2d_backward(dx2, r, n, c, h, w, ho, wo), PTL_OK);
    }
    for (int p = 0; p < n * c; p++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++) {
                int h0, h1, w0, w1;
                ref_bin(oh, h, ho, &h0, &h1);
                ref_bin(ow, w, wo, &w0, &w1);
                double sum = 0, best = -INFINITY;
                int best_at = -1;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        float v = x[(size_t)p * h * w + ih * w + iw];
                        sum += v;
                        if (v > best) {
                            best = v;
                            best_at = ih * w + iw;
                        }
                    }
                size_t o = ((size_t)p * ho + oh) * wo + ow;
                double want = max ? best : sum / ((h1 - h0) * (w1 - w0));
                cr_assert_float_eq(y[o], want, 1e-5, "%s: out[%zu] = %g, want %g", what, o,
                                   (double)y[o], want);
                if (max)
                    cr_assert_eq(am[o], best_at, "%s: argmax[%zu]", what, o);
            }
    for (size_t i = 0; i < n_in; i++)
        cr_assert_float_eq(dx2[i], 2.0f * dx[i], 1e-6f, "%s: backward does not accumulate", what);

    struct adaptive_ctx ctx = {max, n, c, h, w, ho, wo, x, y, r, am};
    tc_assert_gradcheck(what, adaptive_loss, &ctx, x, dx, n_in, 1e-2f, 1e-4, 1e-3);
    free(x);
    free(y);
    free(r);
    free(dx);
    free(dx2);
    free(am);
}

Test(pool, adaptive_forward_and_gradients)
{
    for (int max = 0; max <= 1; max++) {
        check_adaptive(max, 2, 3, 5, 7, 3, 4); /* H_out, W_out do not divide H, W */
        check_adaptive(max, 1, 3, 3, 5, 5, 2); /* more output rows than input rows */
        check_adaptive(max, 2, 3, 4, 6, 1, 1); /* global pooling */
        check_adaptive(max, 1, 1, 1, 1, 1, 1); /* 1x1 image */
        check_adaptive(max, 1, 2, 7, 3, 7, 3); /* identity bins */
    }
}

/* ---- errors ---- */

static void expect_error(int rc, int code, const char *op)
{
    cr_expect_eq(rc, code, "%s: got %d", op, rc);
    cr_expect(strstr(ptl_error_message(), op) != NULL, "message '%s' does not name %s",
              ptl_error_message(), op);
}

Test(pool, bad_shapes_are_errors)
{
    float buf[64] = {0};
    int32_t am[64] = {0};
    int ho, wo;
    struct ptl_pool2d_shape pad_too_big = {1, 1, 5, 5, 3, 3, 1, 1, 2, 1};
    expect_error(ptl_maxpool2d_forward(buf, am, buf, &pad_too_big), PTL_EINVAL, "maxpool2d");
    cr_expect(strstr(ptl_error_message(), "half") != NULL, "%s", ptl_error_message());
    struct ptl_pool2d_shape kernel_too_big = {1, 1, 1, 4, 5, 1, 1, 1, 1, 0};
    expect_error(ptl_avgpool2d_forward(buf, buf, &kernel_too_big, 1), PTL_EINVAL, "avgpool2d");
    cr_expect(strstr(ptl_error_message(), "larger") != NULL, "%s", ptl_error_message());
    struct ptl_pool2d_shape zero_stride = {1, 1, 4, 4, 2, 2, 0, 1, 0, 0};
    expect_error(ptl_pool2d_output_size(&zero_stride, &ho, &wo), PTL_EINVAL, "pool2d");
    struct ptl_pool2d_shape no_channels = {1, 0, 4, 4, 2, 2, 1, 1, 0, 0};
    expect_error(ptl_maxpool2d_backward(buf, buf, am, &no_channels), PTL_EINVAL, "maxpool2d");
    struct ptl_pool2d_shape ok = {1, 1, 4, 4, 2, 2, 2, 2, 0, 0};
    expect_error(ptl_maxpool2d_forward(buf, NULL, buf, &ok), PTL_EINVAL, "maxpool2d");
    expect_error(ptl_avgpool2d_backward(buf, NULL, &ok, 1), PTL_EINVAL, "avgpool2d");
    expect_error(ptl_avgpool2d_forward(buf, buf, &ok, 2), PTL_EINVAL, "avgpool2d");
    expect_error(ptl_avgpool2d_forward(buf, buf, NULL, 1), PTL_EINVAL, "avgpool2d");

    /* A corrupt argmax is refused before d_in is touched. */
    float d_in[16] = {0}, d_out[4] = {1, 1, 1, 1};
    int32_t bad_am[4] = {0, 5, 16, 3};
    expect_error(ptl_maxpool2d_backward(d_in, d_out, bad_am, &ok), PTL_ERANGE, "maxpool2d");
    for (int i = 0; i < 16; i++)
        cr_expect_eq(d_in[i], 0.0f);
    bad_am[2] = -1;
    expect_error(ptl_adaptive_maxpool2d_backward(d_in, d_out, bad_am, 1, 1, 4, 4, 2, 2), PTL_ERANGE,
                 "adaptive_maxpool2d");

    expect_error(ptl_adaptive_avgpool2d_forward(buf, buf, 1, 1, 4, 4, 0, 2), PTL_EINVAL,
                 "adaptive_avgpool2d");
    expect_error(ptl_adaptive_avgpool2d_forward(buf, buf, 1, 1, 0, 4, 2, 2), PTL_EINVAL,
                 "adaptive_avgpool2d");
    expect_error(ptl_adaptive_maxpool2d_forward(buf, NULL, buf, 1, 1, 4, 4, 2, 2), PTL_EINVAL,
                 "adaptive_maxpool2d");
    expect_error(ptl_adaptive_avgpool2d_backward(buf, NULL, 1, 1, 4, 4, 2, 2), PTL_EINVAL,
                 "adaptive_avgpool2d");
    /* A NULL d_in only skips the work. */
    cr_expect_eq(ptl_maxpool2d_backward(NULL, d_out, am, &ok), PTL_OK);
    cr_expect_eq(ptl_adaptive_avgpool2d_backward(NULL, d_out, 1, 1, 4, 4, 2, 2), PTL_OK);
}

Test(pool, threaded_result_equals_single_thread)
{
    struct ptl_pool2d_shape s = {4, 8, 33, 35, 3, 3, 2, 2, 1, 1}; /* above PTL_OMP_MIN_ELEMENTS */
    int ho, wo;
    cr_assert_eq(ptl_pool2d_output_size(&s, &ho, &wo), PTL_OK);
    size_t n_in = in_size(&s), n_out = (size_t)s.n * s.c * ho * wo;
    float *x = tc_alloc(n_in), *r = tc_alloc(n_out), *y[2], *dx[2];
    int32_t *am = tc_alloc_bytes(n_out * sizeof *am);
    tc_fill(x, n_in, 51, -1.0f, 1.0f);
    tc_fill(r, n_out, 52, -1.0f, 1.0f);
    for (int t = 0; t < 2; t++) {
        y[t] = tc_alloc(n_out);
        dx[t] = tc_alloc(n_in);
        cr_assert_eq(ptl_threads_set(t + 1), PTL_OK);
        cr_assert_eq(ptl_maxpool2d_forward(y[t], am, x, &s), PTL_OK);
        cr_assert_eq(ptl_maxpool2d_backward(dx[t], r, am, &s), PTL_OK);
        cr_assert_eq(ptl_avgpool2d_backward(dx[t], y[t], &s, 0), PTL_OK);
    }
    cr_assert_eq(memcmp(y[0], y[1], n_out * sizeof(float)), 0);
    cr_assert_eq(memcmp(dx[0], dx[1], n_in * sizeof(float)), 0);
    free(x);
    free(r);
    free(am);
    for (int t = 0; t < 2; t++) {
        free(y[t]);
        free(dx[t]);
    }
}
