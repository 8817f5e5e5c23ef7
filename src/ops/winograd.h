/* Internal: Winograd F(2x2, 3x3) convolution (placeholder, being written). */
#ifndef PTL_OPS_WINOGRAD_H
#define PTL_OPS_WINOGRAD_H
#endif
