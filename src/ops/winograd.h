/* Winograd F(2x2, 3x3) convolution for 3x3, stride-1, pad-1 convs (groups 1, NCHW, fp32).
 * Internal to libptl: conv2d.c calls it for the shapes ptl__winograd_applies() accepts, and
 * keeps the public contracts (gradients accumulate, workspace bounded by a chunk of tiles).
 *
 * Each 2x2 block of outputs is one tile, computed from the 4x4 input patch around it:
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A.
 * Over a block of T tiles the 16 element-wise products become 16 GEMMs
 *     M[xi] (C_out, T) = U[xi] (C_out, C_in) x V[xi] (C_in, T),
 * run on BLIS's micro-kernel with the transforms fused around them (winograd.c).
 * Backward data is the same forward on d_out with the kernel turned by 180 degrees (an index
 * permutation of U, transposed); backward weights sums dU[xi] += (A dY A^T)[xi] x V[xi]^T over
 * chunks of tiles and maps it back with d_weight += G^T dU G. The forward and backward data of
 * shapes ptl__winograd4_applies() accepts go to F(4x4, 3x3) instead (winograd4.h). */
#ifndef PTL_OPS_WINOGRAD_H
#define PTL_OPS_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

#include "ptl/ops.h"

/* 1 when conv2d should take the Winograd path for this (already validated) shape: 3x3 kernel,
 * stride 1, padding 1, channel counts where it measured faster than im2col, and a BLIS whose
 * micro-kernel the fused blocks can drive. */
int ptl__winograd_applies(const struct ptl_conv2d_shape *s);

/* 1 when the forward and backward data of this shape run as one block of all the batch's tiles
 * shared by the threads (few tiles, large weights: winograd.c's fused_few). */
int ptl__winograd_few_tiles(const struct ptl_conv2d_shape *s);

/* Floats of scratch for forward and backward: the transformed weights (or their gradient) plus
 * one block buffer per thread, or one chunk of transformed tiles. Does not grow with the batch;
 * sized for as many threads as this process may use cores. */
size_t ptl__winograd_workspace_floats(const struct ptl_conv2d_shape *s);

/* out (N, C_out, H, W) = conv(in) (+ bias when not NULL). The shape must satisfy
 * ptl__winograd_applies(); buffers are not checked here (conv2d.c does). */
int ptl__winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                          const struct ptl_conv2d_shape *s, float *workspace);

/* Floats from one transform xi to the next in a buffer that holds one matrix of `floats` per
 * transform (the weight gradient's dU and transformed tiles, the fused blocks' tile panels and
 * result slices, in winograd.c and winograd4.c): rounded up to whole cache lines, plus one.
 * The sizes are mostly powers of two (64 x 64, 128 channels x 512 tiles), and 16 or 36 streams
 * a power of two apart fall into one cache set and evict each other (8-way L1 and L2 on the
 * Zen 4 measured): the transforms write one value to each, G^T dU G and the output transform
 * read one from each (docs/performance.md). */
static inline size_t ptl__wino_xi_stride(size_t floats)
{
    return (floats + 15) / 16 * 16 + 16;
}

/* Packing transformed weights a run of whole panel columns at a time (winograd.c and
 * winograd4.c): one SIMD loop over the run's kernels, then one copy per transform (a column at a
 * time, the copies of lc floats each cost more than the arithmetic). offs[e] = where the kernel
 * of lane e % lanes, column e / lanes of a run sits in the weights, from the run's first kernel
 * (row_step floats from one lane to the next, col_step from one column to the next). Returns the
 * columns per run, PTL_WINO_PACK_LANES / lanes, or 0 where the offsets would not fit an int. */
#define PTL_WINO_PACK_LANES 128
static inline int ptl__wino_pack_offsets(int *offs, int lanes, size_t row_step, size_t col_step)
{
    const int cols = PTL_WINO_PACK_LANES / lanes;
    if ((size_t)lanes * row_step + (size_t)cols * col_step > INT32_MAX)
        return 0;
    for (int e = 0; e < cols * lanes; e++)
        offs[e] = (int)((size_t)(e % lanes) * row_step + (size_t)(e / lanes) * col_step);
    return cols;
}

/* For winograd4.c's weight gradient, which shares the products: du[xi] (m, c) (+)= dyt[xi]
 * (m, t) x v[xi]^T (t, c) for the nx transforms (each buffer's xi at ptl__wino_xi_stride), as
 * row dot products (dot: below PTL_WINO_DOT_MAX_WEIGHTS = m * c) or single-threaded BLIS GEMMs,
 * shared out among the calling team's threads (an orphaned omp for; call it from every thread
 * of a parallel region). */
#define PTL_WINO_DOT_MAX_WEIGHTS (128 * 128)
void ptl__winograd_weight_products(float *du, const float *dyt, const float *v, int nx, int m,
                                   int c, int t, int add, int dot);

/* d_in += dL/d_in and d_weight += dL/d_weight; either may be NULL (not both). No bias. */
int ptl__winograd_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                           const float *weight, const struct ptl_conv2d_shape *s,
                           float *workspace);

#endif
