/* Internal: a 1x1 conv's forward and d_in straight from BLIS's micro-kernel, with the weights
 * packed once per call, for ops/conv2d.c. The alternative, a BLIS GEMM per image (or per few
 * images), has BLIS pack the whole weight matrix again for every call, on skx with a scalar
 * strided loop (docs/performance.md, 2026-11-29). */
#ifndef PTL_OPS_WEIGHT_PANELS_H
#define PTL_OPS_WEIGHT_PANELS_H

#include <stddef.h>

/* The driver takes images of p pixels: the micro-kernel is there and each image has at least
 * one full panel of pixels (smaller ones would fill a fraction of each tile). */
int ptl__weight_panels_apply(long p);

/* Floats of workspace ptl__weight_panels_gemm needs for r output rows over k input rows of p
 * pixels, with up to `threads` threads (its own alignment included); 0 where it does not
 * apply. */
size_t ptl__weight_panels_floats(int k, int p, int r, int threads);

/* For each of the n images x_n (k, p):
 *     y_n (r, p) = (accumulate ? y_n : 0) + w_t (r, k) x x_n,
 * element (i, kk) of w_t at w[i * w_rs + kk * w_cs] (a 1x1 conv's forward: w_t = weight,
 * w_rs = k, w_cs = 1; its d_in: w_t = weight^T over d_out's channels). Runs on up to `threads`
 * OpenMP threads; the result does not depend on how many. */
void ptl__weight_panels_gemm(float *y, const float *x, int n, int k, int p, int r,
                             const float *w, size_t w_rs, size_t w_cs, int accumulate,
                             float *workspace, int threads);

#endif
