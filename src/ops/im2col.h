/* im2col / col2im: the data movement that turns a convolution into a GEMM. Internal to libptl
 * (shared by conv2d forward and backward); not part of the public API.
 *
 * Column matrix layout for a run of `images` consecutive images:
 *   col (C*KH*KW, ld_col), row r = (c*KH + kh)*KW + kw, column img*HO*WO + oh*WO + ow,
 * so ld_col = images*HO*WO packs the images side by side (one GEMM for all of them) and
 * ld_col = HO*WO is the classic per-image matrix. */
#ifndef PTL_OPS_IM2COL_H
#define PTL_OPS_IM2COL_H

#include <stddef.h>

/* Geometry of one image and its kernel; ho/wo are the output size. */
struct ptl__conv_geom {
    int c, h, w;
    int kh, kw;
    int sh, sw;
    int ph, pw;
    int ho, wo;
};

/* Output positions o in [*lo, *hi) (of `out` along one axis) whose kernel tap k reads input
 * position o*s - p + k inside [0, len). */
void ptl__conv_valid_range(int out, int len, int s, int p, int k, int *lo, int *hi);

/* col <- patches of in (images, C, H, W); zero where the kernel sits on padding. */
void ptl__im2col(float *col, size_t ld_col, const float *in, int images,
                 const struct ptl__conv_geom *g);

/* d_in (images, C, H, W) += the patches of col scattered back (the adjoint of ptl__im2col).
 * col is scratch: entries that sit on padding may be overwritten with zeros. */
void ptl__col2im_add(float *d_in, float *col, size_t ld_col, int images,
                     const struct ptl__conv_geom *g);

#endif
