/* Internal: a conv's transposed weight gradient straight from BLIS's micro-kernel, for
 * ops/conv2d.c. The caller's alternative is im2col then a GEMM, which has BLIS pack the column
 * matrix once more (on skx with a scalar strided loop); this driver writes the packed panels
 * itself, from an image turned channels-last, so each panel row is a short contiguous copy. */
#ifndef PTL_OPS_WEIGHT_GRAD_H
#define PTL_OPS_WEIGHT_GRAD_H

#include <stddef.h>

#include "ops/im2col.h"

/* The micro-kernel the driver needs is there (ptl__ukernel is usable). */
int ptl__weight_grad_available(void);

/* Floats of scratch ptl__weight_grad needs for `images` images of geometry g and c_out output
 * channels (its own alignment included). */
size_t ptl__weight_grad_floats(const struct ptl__conv_geom *g, int c_out, int images);

/* dwt (K, c_out), K = C*KH*KW with im2col's row order, = (first) or += the sum over the images
 * of col_n x d_out_n^T, col_n = im2col(x_n): the conv's d_weight transposed. x (images, C, H,
 * W), dy (images, c_out, HO*WO). Runs on the calling thread. */
void ptl__weight_grad(float *dwt, const float *x, const float *dy, int images,
                      const struct ptl__conv_geom *g, int c_out, float *scratch, int first);

#endif
