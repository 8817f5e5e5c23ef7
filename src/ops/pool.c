/* Fixed-window 2-D pooling: max pool (with argmax for backward) and average pool, kernel,
 * stride and zero/-inf padding, floor output size (ceil_mode = False), PyTorch semantics.
 * Adaptive (output-size driven) pooling lives in adaptive_pool.c. */
#include <math.h>
#include <stdint.h>

#include "ops/check.h"
#include "ops/vmath.h"
#include "ops/window_max.h"
#include "ptl/ops.h"

/* Validates the shape for op and gives the output size; the rules are PyTorch's. */
static int pool_output_size(const char *op, const struct ptl_pool2d_shape *s, int *h_out,
                            int *w_out)
{
    PTL_CHECK_PTR(op, s);
    PTL_CHECK(s->n >= 1 && s->c >= 1 && s->h >= 1 && s->w >= 1,
              "%s: input sizes must be >= 1 (got n=%d, c=%d, h=%d, w=%d)", op, s->n, s->c, s->h,
              s->w);
    PTL_CHECK(s->kh >= 1 && s->kw >= 1, "%s: kernel must be >= 1 (got %dx%d)", op, s->kh, s->kw);
    PTL_CHECK(s->stride_h >= 1 && s->stride_w >= 1, "%s: stride must be >= 1 (got %dx%d)", op,
              s->stride_h, s->stride_w);
    PTL_CHECK(s->pad_h >= 0 && s->pad_w >= 0, "%s: padding must be >= 0 (got %dx%d)", op, s->pad_h,
              s->pad_w);
    PTL_CHECK(s->pad_h <= s->kh / 2 && s->pad_w <= s->kw / 2,
              "%s: padding %dx%d must be at most half the kernel %dx%d", op, s->pad_h, s->pad_w,
              s->kh, s->kw);
    PTL_CHECK((long long)s->n * s->c <= INT32_MAX, "%s: n*c = %lld is too large", op,
              (long long)s->n * s->c);
    /* The argmax is an int32 index into one (H, W) plane. */
    PTL_CHECK((long long)s->h * s->w <= INT32_MAX, "%s: plane %dx%d is too large", op, s->h, s->w);
    long long ph = (long long)s->h + 2LL * s->pad_h, pw = (long long)s->w + 2LL * s->pad_w;
    PTL_CHECK(ph >= s->kh && pw >= s->kw,
              "%s: kernel %dx%d is larger than the padded input %lldx%lld", op, s->kh, s->kw, ph,
              pw);
    if (h_out != NULL)
        *h_out = (int)((ph - s->kh) / s->stride_h + 1);
    if (w_out != NULL)
        *w_out = (int)((pw - s->kw) / s->stride_w + 1);
    return PTL_OK;
}

int ptl_pool2d_output_size(const struct ptl_pool2d_shape *s, int *h_out, int *w_out)
{
    return pool_output_size("pool2d", s, h_out, w_out);
}

static inline int big(const struct ptl_pool2d_shape *s)
{
    return (long long)s->n * s->c * s->h * s->w >= PTL_OMP_MIN_ELEMENTS;
}

/* ptl__window_max's result for one output row's columns [lo, hi), whose windows lie inside the
 * row: the window cells are visited in the same order, each for all columns at once, so the
 * compiler can make the compare-and-select vector code (after a ReLU the winner is a coin toss, and
 * the scalar loop's branch mispredicted on most cells: 16 ms for ResNet's stem pool at batch 32).
 */
static inline __attribute__((always_inline)) void
interior_max_at(const float *x, int w, int h0, int h1, int kw, int sw, int pw, int lo, int hi,
                float *restrict y, int32_t *restrict am)
{
    for (int ow = lo; ow < hi; ow++) {
        y[ow] = -INFINITY;
        am[ow] = h0 * w + ow * sw - pw;
    }
    for (int ih = h0; ih < h1; ih++)
        for (int j = 0; j < kw; j++) {
            const float *row = x + (size_t)ih * w + j - pw;
            int32_t at0 = ih * w + j - pw;
#pragma omp simd
            for (int ow = lo; ow < hi; ow++) {
                float v = row[ow * sw];
                int take = v > y[ow] || v != v;
                y[ow] = take ? v : y[ow];
                am[ow] = take ? at0 + ow * sw : am[ow];
            }
        }
}

/* interior_max_at, vectorised, for any stride and for a constant stride 2 (ResNet's stem pool),
 * where the strided loads become vector shuffles instead of gathers (the stem pool at batch 32,
 * 2 threads: 3.4 -> 2.9 ms). */
static PTL_SIMD_CLONES void interior_max_any(const float *x, int w, int h0, int h1, int kw,
                                             int sw, int pw, int lo, int hi, float *restrict y,
                                             int32_t *restrict am)
{
    interior_max_at(x, w, h0, h1, kw, sw, pw, lo, hi, y, am);
}

static PTL_SIMD_CLONES void interior_max_s2(const float *x, int w, int h0, int h1, int kw, int pw,
                                            int lo, int hi, float *restrict y,
                                            int32_t *restrict am)
{
    interior_max_at(x, w, h0, h1, kw, 2, pw, lo, hi, y, am);
}

static void interior_max(const float *x, int w, int h0, int h1, int kw, int sw, int pw, int lo,
                         int hi, float *restrict y, int32_t *restrict am)
{
    if (sw == 2)
        interior_max_s2(x, w, h0, h1, kw, pw, lo, hi, y, am);
    else
        interior_max_any(x, w, h0, h1, kw, sw, pw, lo, hi, y, am);
}

int ptl_maxpool2d_forward(float *out, int32_t *argmax, const float *in,
                          const struct ptl_pool2d_shape *s)
{
    static const char op[] = "maxpool2d_forward";
    int ho, wo;
    int rc = pool_output_size(op, s, &ho, &wo);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, argmax);
    PTL_CHECK_PTR(op, in);

    const int h = s->h, w = s->w, planes = s->n * s->c;
    /* Output columns whose window lies inside the row: [in_lo, in_hi). */
    int in_lo = (s->pad_w + s->stride_w - 1) / s->stride_w;
    int in_hi = w >= s->kw ? (w - s->kw + s->pad_w) / s->stride_w + 1 : 0;
    in_hi = in_hi > wo ? wo : in_hi;
    in_lo = in_lo > in_hi ? in_hi : in_lo;
#pragma omp parallel for if (big(s))
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * h * w; /* (H, W) */
        float *y = out + (size_t)p * ho * wo;    /* (H_out, W_out) */
        int32_t *am = argmax + (size_t)p * ho * wo;
        for (int oh = 0; oh < ho; oh++) {
            int h0 = oh * s->stride_h - s->pad_h, h1 = h0 + s->kh;
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > h ? h : h1;
            for (int ow = 0; ow < wo; ow++)
                if (ow < in_lo || ow >= in_hi) {
                    /* padding is -inf and never chosen: only the clipped window is scanned */
                    int w0 = ow * s->stride_w - s->pad_w, w1 = w0 + s->kw;
                    ptl__window_max(x, w, h0, h1, w0 < 0 ? 0 : w0, w1 > w ? w : w1,
                                    &y[oh * wo + ow], &am[oh * wo + ow]);
                }
            interior_max(x, w, h0, h1, s->kw, s->stride_w, s->pad_w, in_lo, in_hi, &y[oh * wo],
                         &am[oh * wo]);
        }
    }
    return PTL_OK;
}

int ptl_maxpool2d_backward(float *d_in, const float *d_out, const int32_t *argmax,
                           const struct ptl_pool2d_shape *s)
{
    static const char op[] = "maxpool2d_backward";
    int ho, wo;
    int rc = pool_output_size(op, s, &ho, &wo);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, argmax);
    if (d_in == NULL)
        return PTL_OK;

    const int32_t plane = s->h * s->w;
    const size_t n_out = (size_t)s->n * s->c * ho * wo;
    /* A corrupt argmax would write out of bounds: check it all before touching d_in. */
    for (size_t i = 0; i < n_out; i++)
        if (argmax[i] < 0 || argmax[i] >= plane)
            return ptl_error(PTL_ERANGE, "%s: argmax[%zu] = %d is outside the %dx%d plane", op, i,
                             (int)argmax[i], s->h, s->w);

    const int planes = s->n * s->c;
    /* Windows overlap when stride < kernel, so one plane stays on one thread. */
#pragma omp parallel for if (big(s))
    for (int p = 0; p < planes; p++) {
        float *dx = d_in + (size_t)p * plane;
        const float *dy = d_out + (size_t)p * ho * wo;
        const int32_t *am = argmax + (size_t)p * ho * wo;
        for (int i = 0; i < ho * wo; i++)
            dx[am[i]] += dy[i];
    }
    return PTL_OK;
}

/* Divisor of the window at (oh, ow). PyTorch divides by the window clipped to the padded bounds
 * (H + pad) with count_include_pad, else by the cells inside the input; with floor-mode output
 * sizes no window reaches past H + pad, so the former is always KH*KW. */
static inline int avg_divisor(const struct ptl_pool2d_shape *s, int oh, int ow,
                              int count_include_pad)
{
    if (count_include_pad)
        return s->kh * s->kw;
    int h0 = oh * s->stride_h - s->pad_h, w0 = ow * s->stride_w - s->pad_w;
    int h1 = h0 + s->kh, w1 = w0 + s->kw;
    h0 = h0 < 0 ? 0 : h0;
    w0 = w0 < 0 ? 0 : w0;
    h1 = h1 > s->h ? s->h : h1;
    w1 = w1 > s->w ? s->w : w1;
    return (h1 - h0) * (w1 - w0);
}

int ptl_avgpool2d_forward(float *out, const float *in, const struct ptl_pool2d_shape *s,
                          int count_include_pad)
{
    static const char op[] = "avgpool2d_forward";
    int ho, wo;
    int rc = pool_output_size(op, s, &ho, &wo);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK(count_include_pad == 0 || count_include_pad == 1,
              "%s: count_include_pad must be 0 or 1 (got %d)", op, count_include_pad);

    const int h = s->h, w = s->w, planes = s->n * s->c;
#pragma omp parallel for if (big(s))
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * h * w; /* (H, W) */
        float *y = out + (size_t)p * ho * wo;    /* (H_out, W_out) */
        for (int oh = 0; oh < ho; oh++) {
            int h0 = oh * s->stride_h - s->pad_h, h1 = h0 + s->kh;
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > h ? h : h1;
            for (int ow = 0; ow < wo; ow++) {
                int w0 = ow * s->stride_w - s->pad_w, w1 = w0 + s->kw;
                w0 = w0 < 0 ? 0 : w0;
                w1 = w1 > w ? w : w1;
                double sum = 0.0; /* zero padding adds nothing */
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        sum += x[ih * w + iw];
                y[oh * wo + ow] = (float)(sum / avg_divisor(s, oh, ow, count_include_pad));
            }
        }
    }
    return PTL_OK;
}

int ptl_avgpool2d_backward(float *d_in, const float *d_out, const struct ptl_pool2d_shape *s,
                           int count_include_pad)
{
    static const char op[] = "avgpool2d_backward";
    int ho, wo;
    int rc = pool_output_size(op, s, &ho, &wo);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK(count_include_pad == 0 || count_include_pad == 1,
              "%s: count_include_pad must be 0 or 1 (got %d)", op, count_include_pad);
    if (d_in == NULL)
        return PTL_OK;

    const int h = s->h, w = s->w, planes = s->n * s->c;
    /* Windows overlap when stride < kernel, so one plane stays on one thread. */
#pragma omp parallel for if (big(s))
    for (int p = 0; p < planes; p++) {
        float *dx = d_in + (size_t)p * h * w;          /* (H, W) */
        const float *dy = d_out + (size_t)p * ho * wo; /* (H_out, W_out) */
        for (int oh = 0; oh < ho; oh++) {
            int h0 = oh * s->stride_h - s->pad_h, h1 = h0 + s->kh;
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > h ? h : h1;
            for (int ow = 0; ow < wo; ow++) {
                int w0 = ow * s->stride_w - s->pad_w, w1 = w0 + s->kw;
                w0 = w0 < 0 ? 0 : w0;
                w1 = w1 > w ? w : w1;
                float g = dy[oh * wo + ow] / (float)avg_divisor(s, oh, ow, count_include_pad);
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[ih * w + iw] += g;
            }
        }
    }
    return PTL_OK;
}
