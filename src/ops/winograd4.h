/* Winograd F(4x4, 3x3) for the forward and backward data of 3x3, stride-1, pad-1 convs whose
 * planes hold enough 4x4 tiles, and for their d_weight on larger planes (groups 1, NCHW, fp32).
 * Internal to libptl: winograd.c hands it the shapes ptl__winograd4_applies() (and, for
 * d_weight, ptl__winograd4_weight_applies()) accepts among its own.
 *
 * Each 4x4 block of outputs is one tile, computed from the 6x6 input patch around it (points
 * 0, +-1, +-2 and infinity):
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 * so a block of tiles is 36 GEMMs M[xi] (C_out, T) = U[xi] (C_out, C_in) x V[xi] (C_in, T),
 * run on BLIS's micro-kernel with the transforms fused around them (winograd4.c). Backward data
 * is the same on d_out with each kernel turned by 180 degrees and C_in, C_out swapped. Its
 * rounding error is larger than F(2x2, 3x3)'s (the transforms' coefficients reach 8 and 1/24):
 * about 1e-5 of the output's scale at 64-256 channels against a double-precision conv. */
#ifndef PTL_OPS_WINOGRAD4_H
#define PTL_OPS_WINOGRAD4_H

#include <stddef.h>

#include "ptl/ops.h"

/* 1 when a shape that ptl__winograd_applies() accepts should take F(4x4, 3x3) for its forward
 * and backward data: planes of W4_MIN_PIXELS and more, and a micro-kernel the driver takes. */
int ptl__winograd4_applies(const struct ptl_conv2d_shape *s);

/* 1 when such a shape's d_weight should take F(4x4, 3x3) too: larger planes still. */
int ptl__winograd4_weight_applies(const struct ptl_conv2d_shape *s);

/* Floats of scratch for any of the three passes: the transformed weights and one block buffer per thread
 * (as many threads as this process may use cores). Does not grow with the batch. */
size_t ptl__winograd4_workspace_floats(const struct ptl_conv2d_shape *s);

/* out (N, C_out, H, W) = conv(in) (+ bias when not NULL). */
int ptl__winograd4_forward(float *out, const float *in, const float *weight, const float *bias,
                           const struct ptl_conv2d_shape *s, float *workspace);

/* d_in (N, C_in, H, W) += dL/d_in from d_out (N, C_out, H, W). */
int ptl__winograd4_backward_data(float *d_in, const float *d_out, const float *weight,
                                 const struct ptl_conv2d_shape *s, float *workspace);

/* d_weight (C_out, C_in, 3, 3) += dL/d_weight from d_out and in: dU[xi] += (A dY A^T)[xi] x
 * V[xi]^T over chunks of tiles, then d_weight += G^T dU G. */
int ptl__winograd4_backward_weight(float *d_weight, const float *d_out, const float *in,
                                   const struct ptl_conv2d_shape *s, float *workspace);

#endif
