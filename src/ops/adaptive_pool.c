/* Adaptive 2-D pooling (avg and max) to a requested output size with PyTorch's bins:
 * output row i pools input rows [floor(i*H/Ho), ceil((i+1)*H/Ho)), columns alike. Global
 * pooling (the usual head of a CNN) is Ho = Wo = 1. Fixed-window pooling lives in pool.c. */
#include <math.h>
#include <stdint.h>

#include "ops/check.h"
#include "ops/window_max.h"
#include "ptl/ops.h"

static int check_shape(const char *op, int n, int c, int h, int w, int h_out, int w_out)
{
    PTL_CHECK(n >= 1 && c >= 1 && h >= 1 && w >= 1,
              "%s: input sizes must be >= 1 (got n=%d, c=%d, h=%d, w=%d)", op, n, c, h, w);
    PTL_CHECK(h_out >= 1 && w_out >= 1, "%s: output size must be >= 1 (got %dx%d)", op, h_out,
              w_out);
    PTL_CHECK((long long)h_out * w_out <= INT32_MAX, "%s: output %dx%d is too large", op, h_out,
              w_out);
    PTL_CHECK((long long)n * c <= INT32_MAX, "%s: n*c = %lld is too large", op, (long long)n * c);
    /* The argmax is an int32 index into one (H, W) plane. */
    PTL_CHECK((long long)h * w <= INT32_MAX, "%s: plane %dx%d is too large", op, h, w);
    return PTL_OK;
}

/* First and one-past-last input index of bin i of `out` bins over `in` cells. */
static inline int bin_start(int i, int in, int out)
{
    return (int)(((long long)i * in) / out);
}

static inline int bin_end(int i, int in, int out)
{
    return (int)(((long long)(i + 1) * in + out - 1) / out);
}

static inline int big(int n, int c, int h, int w)
{
    return (long long)n * c * h * w >= PTL_OMP_MIN_ELEMENTS;
}

int ptl_adaptive_avgpool2d_forward(float *out, const float *in, int n, int c, int h, int w,
                                   int h_out, int w_out)
{
    static const char op[] = "adaptive_avgpool2d_forward";
    int rc = check_shape(op, n, c, h, w, h_out, w_out);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, in);

    const int planes = n * c;
#pragma omp parallel for if (big(n, c, h, w))
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * h * w;    /* (H, W) */
        float *y = out + (size_t)p * h_out * w_out; /* (H_out, W_out) */
        for (int oh = 0; oh < h_out; oh++) {
            int h0 = bin_start(oh, h, h_out), h1 = bin_end(oh, h, h_out);
            for (int ow = 0; ow < w_out; ow++) {
                int w0 = bin_start(ow, w, w_out), w1 = bin_end(ow, w, w_out);
                double sum = 0.0; /* global pooling sums a whole plane */
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        sum += x[(size_t)ih * w + iw];
                y[oh * w_out + ow] = (float)(sum / ((double)(h1 - h0) * (w1 - w0)));
            }
        }
    }
    return PTL_OK;
}

int ptl_adaptive_avgpool2d_backward(float *d_in, const float *d_out, int n, int c, int h, int w,
                                    int h_out, int w_out)
{
    static const char op[] = "adaptive_avgpool2d_backward";
    int rc = check_shape(op, n, c, h, w, h_out, w_out);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    if (d_in == NULL)
        return PTL_OK;

    const int planes = n * c;
    /* Bins overlap when H is not a multiple of Ho, so one plane stays on one thread. */
#pragma omp parallel for if (big(n, c, h, w))
    for (int p = 0; p < planes; p++) {
        float *dx = d_in + (size_t)p * h * w;                /* (H, W) */
        const float *dy = d_out + (size_t)p * h_out * w_out; /* (H_out, W_out) */
        for (int oh = 0; oh < h_out; oh++) {
            int h0 = bin_start(oh, h, h_out), h1 = bin_end(oh, h, h_out);
            for (int ow = 0; ow < w_out; ow++) {
                int w0 = bin_start(ow, w, w_out), w1 = bin_end(ow, w, w_out);
                float g = dy[oh * w_out + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[(size_t)ih * w + iw] += g;
            }
        }
    }
    return PTL_OK;
}

int ptl_adaptive_maxpool2d_forward(float *out, int32_t *argmax, const float *in, int n, int c,
                                   int h, int w, int h_out, int w_out)
{
    static const char op[] = "adaptive_maxpool2d_forward";
    int rc = check_shape(op, n, c, h, w, h_out, w_out);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, argmax);
    PTL_CHECK_PTR(op, in);

    const int planes = n * c;
#pragma omp parallel for if (big(n, c, h, w))
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * h * w;    /* (H, W) */
        float *y = out + (size_t)p * h_out * w_out; /* (H_out, W_out) */
        int32_t *am = argmax + (size_t)p * h_out * w_out;
        for (int oh = 0; oh < h_out; oh++) {
            int h0 = bin_start(oh, h, h_out), h1 = bin_end(oh, h, h_out);
            for (int ow = 0; ow < w_out; ow++) {
                int w0 = bin_start(ow, w, w_out), w1 = bin_end(ow, w, w_out);
                ptl__window_max(x, w, h0, h1, w0, w1, &y[oh * w_out + ow], &am[oh * w_out + ow]);
            }
        }
    }
    return PTL_OK;
}

int ptl_adaptive_maxpool2d_backward(float *d_in, const float *d_out, const int32_t *argmax, int n,
                                    int c, int h, int w, int h_out, int w_out)
{
    static const char op[] = "adaptive_maxpool2d_backward";
    int rc = check_shape(op, n, c, h, w, h_out, w_out);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, argmax);
    if (d_in == NULL)
        return PTL_OK;

    const int32_t plane = h * w;
    const size_t n_out = (size_t)n * c * h_out * w_out;
    /* A corrupt argmax would write out of bounds: check it all before touching d_in. */
    for (size_t i = 0; i < n_out; i++)
        if (argmax[i] < 0 || argmax[i] >= plane)
            return ptl_error(PTL_ERANGE, "%s: argmax[%zu] = %d is outside the %dx%d plane", op, i,
                             (int)argmax[i], h, w);

    const int planes = n * c;
#pragma omp parallel for if (big(n, c, h, w))
    for (int p = 0; p < planes; p++) {
        float *dx = d_in + (size_t)p * plane;
        const float *dy = d_out + (size_t)p * h_out * w_out;
        const int32_t *am = argmax + (size_t)p * h_out * w_out;
        for (int i = 0; i < h_out * w_out; i++)
            dx[am[i]] += dy[i];
    }
    return PTL_OK;
}
