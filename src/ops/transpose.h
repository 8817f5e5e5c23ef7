/* Internal: out-of-place transpose of a float matrix, for GEMM callers that need an operand in
 * the other orientation (ops/conv2d.c, ops/winograd.c). */
#ifndef PTL_OPS_TRANSPOSE_H
#define PTL_OPS_TRANSPOSE_H

#include <stddef.h>

/* dst (cols, rows) = src (rows, cols)^T, or += with add = 1; row i of src starts at
 * src + i * ld_src, row j of dst at dst + j * ld_dst. The two must not overlap. Runs on the
 * calling thread. */
void ptl__transpose(float *restrict dst, size_t ld_dst, const float *restrict src, size_t ld_src,
                    int rows, int cols, int add);

#endif
