/* Internal: a conv's forward and d_in GEMMs straight from BLIS's micro-kernel, with the
 * weights packed once per call, for ops/conv2d.c: whole 1x1 convs (ptl__weight_panels_gemm),
 * or the packed weights against one unit's column matrix at a time (ptl__weight_panels_pack,
 * then ptl__weight_panels_run per unit). The alternative, a BLIS GEMM per image (or per few
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

/* Floats of w_t (r, k) packed, and of one thread's scratch for ptl__weight_panels_run (both
 * with their own alignment included). */
size_t ptl__weight_panels_packed_floats(int k, int r);
size_t ptl__weight_panels_scratch_floats(void);

/* wp <- w_t (r, k) packed (element (i, kk) at w[i * w_rs + kk * w_cs]). Shares the work among
 * the threads of the enclosing parallel region (all of them must call it; it ends with their
 * barrier), or runs on the calling thread outside one. */
void ptl__weight_panels_pack(float *wp, const float *w, int r, int k, size_t w_rs, size_t w_cs);

/* On the calling thread, for each of n images of p pixels:
 *     y_i (r, p) = (accumulate ? y_i : 0) + w_t (r, k) x x_i (k, p),
 * w_t packed by ptl__weight_panels_pack; element (row, q) of x_i at x + i*x_img + row*x_row + q,
 * of y_i at y + i*y_img + row*y_row + q (images side by side in one column matrix: x_img = p,
 * x_row = n*p; NCHW: x_img = k*p, x_row = p). */
void ptl__weight_panels_run(float *y, size_t y_img, size_t y_row, const float *x, size_t x_img,
                            size_t x_row, int n, int p, int k, int r, const float *wp,
                            int accumulate, float *scratch);

#endif
