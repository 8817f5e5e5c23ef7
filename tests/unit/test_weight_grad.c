/* ops/weight_grad.c, the transposed conv weight gradient on its own packed panels, against a
 * direct sum in double: K panels that cross from one tap's channels into the next, partial
 * output-channel panels, pixel chunks that end inside an image, strides, padding, non-square
 * kernels, 1x1 convs packed from NCHW, and accumulation. tests/unit/kernel_sets.sh runs this on every BLIS kernel set the
 * CPU has, so both panel orientations (skx's column-stored C, haswell's row-stored) are
 * checked on any machine. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "gradcheck.h"
#include "ops/weight_grad.h"

/* dwt (K, m) with K in im2col's row order, in double */
static void reference(double *dwt, const float *x, const float *dy, int images,
                      const struct ptl__conv_geom *g, int m)
{
    const int k = g->c * g->kh * g->kw, p = g->ho * g->wo;
    for (size_t i = 0; i < (size_t)k * m; i++)
        dwt[i] = 0.0;
    for (int n = 0; n < images; n++)
        for (int c = 0; c < g->c; c++)
            for (int kh = 0; kh < g->kh; kh++)
                for (int kw = 0; kw < g->kw; kw++)
                    for (int oh = 0; oh < g->ho; oh++)
                        for (int ow = 0; ow < g->wo; ow++) {
                            int ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                            if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                                continue;
                            double v = x[(((size_t)n * g->c + c) * g->h + ih) * g->w + iw];
                            double *row = dwt + ((size_t)(c * g->kh + kh) * g->kw + kw) * m;
                            for (int o = 0; o < m; o++)
                                row[o] += v * dy[((size_t)n * m + o) * p + oh * g->wo + ow];
                        }
}

/* One call with first = 1, then one that adds onto it: the result must be the reference,
 * then twice the reference. */
static void check(int images, int c, int h, int w, int m, int kh, int kw, int s, int pad)
{
    if (!ptl__weight_grad_available())
        cr_skip_test("no usable BLIS micro-kernel");
    struct ptl__conv_geom g = {c, h, w, kh, kw, s, s, pad, pad, 0, 0};
    g.ho = (h + 2 * pad - kh) / s + 1;
    g.wo = (w + 2 * pad - kw) / s + 1;
    const size_t nx = (size_t)images * c * h * w, ny = (size_t)images * m * g.ho * g.wo;
    const size_t nk = (size_t)c * kh * kw * m;
    float *x = tc_alloc(nx), *dy = tc_alloc(ny), *dwt = tc_alloc(nk), *want = tc_alloc(nk);
    float *scratch = tc_alloc(ptl__weight_grad_floats(&g, m, images));
    double *ref = malloc(nk * sizeof *ref);
    cr_assert_not_null(ref);
    tc_fill(x, nx, 21, -1.0f, 1.0f);
    tc_fill(dy, ny, 22, -1.0f, 1.0f);
    tc_fill(dwt, nk, 23, -5.0f, 5.0f); /* first = 1 must overwrite this */
    reference(ref, x, dy, images, &g, m);
    for (size_t i = 0; i < nk; i++)
        want[i] = (float)ref[i];
    ptl__weight_grad(dwt, x, dy, images, &g, m, scratch, 1);
    double err = tc_rel_err(dwt, want, nk, 1e-3);
    cr_assert_lt(err, 1e-5, "first: relative error %g (C %d, C_out %d, %dx%d s%d p%d)", err, c, m,
                 kh, kw, s, pad);
    ptl__weight_grad(dwt, x, dy, images, &g, m, scratch, 0);
    for (size_t i = 0; i < nk; i++)
        want[i] = (float)(2.0 * ref[i]);
    err = tc_rel_err(dwt, want, nk, 1e-3);
    cr_assert_lt(err, 1e-5, "accumulated: relative error %g", err);
    free(x);
    free(dy);
    free(dwt);
    free(want);
    free(scratch);
    free(ref);
}

/* 64 channels, 64 outputs: whole panels, most tiles written in place */
Test(weight_grad, resnet_layer1_like)
{
    check(2, 64, 12, 10, 64, 3, 3, 1, 1);
}

/* 13 channels: K panels that hold the end of one tap and the start of the next; 40 outputs:
 * the last output-channel panel partial; 3 x 210 pixels: a chunk boundary inside an image */
Test(weight_grad, panels_across_taps_and_chunks)
{
    check(3, 13, 15, 14, 40, 3, 3, 1, 1);
}

/* fewer channels than a panel has lanes: several taps per K panel */
Test(weight_grad, few_channels_many_taps_per_panel)
{
    check(2, 5, 9, 11, 33, 3, 2, 2, 2);
    check(1, 1, 6, 7, 3, 5, 5, 1, 2);
}

/* strides and padding that leave whole output rows and columns on the padding */
Test(weight_grad, stride_and_wide_padding)
{
    check(2, 17, 7, 9, 20, 3, 3, 3, 3);
    check(2, 24, 16, 8, 128, 3, 3, 2, 1);
}

/* 1x1 kernels, stride 1 (K panels packed straight from the NCHW images) and 2; one-pixel
 * images batched; 29 channels (a last panel of 5 lanes), 3 x 210 pixels (a chunk boundary
 * inside an image) */
Test(weight_grad, pointwise_and_one_pixel_images)
{
    check(2, 32, 8, 6, 48, 1, 1, 1, 0);
    check(3, 29, 15, 14, 40, 1, 1, 1, 0);
    check(3, 40, 8, 6, 24, 1, 1, 2, 0);
    check(5, 16, 1, 1, 12, 1, 1, 1, 0);
}
