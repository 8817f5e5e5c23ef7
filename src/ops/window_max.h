/* Internal: the max and its position over one clipped window of an (H, W) plane, shared by the
 * fixed-window and adaptive max pools. */
#ifndef PTL_OPS_WINDOW_MAX_H
#define PTL_OPS_WINDOW_MAX_H

#include <math.h>
#include <stdint.h>

/* Rows [h0, h1), columns [w0, w1) of x (row length w), both non-empty. As in PyTorch, the
 * first maximum in scan order (row by row) wins a tie, a NaN always wins (the last NaN, as each
 * replaces the one before), and an all -inf window reports its first cell. */
static inline void ptl__window_max(const float *x, int w, int h0, int h1, int w0, int w1, float *y,
                                   int32_t *am)
{
    float best = -INFINITY;
    int32_t best_at = h0 * w + w0;
    for (int ih = h0; ih < h1; ih++)
        for (int iw = w0; iw < w1; iw++) {
            float v = x[ih * w + iw];
            if (v > best || isnan(v)) {
                best = v;
                best_at = ih * w + iw;
            }
        }
    *y = best;
    *am = best_at;
}

#endif
