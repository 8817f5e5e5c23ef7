/* Unit tests of conv2d: forward against a naive direct convolution, finite-difference checks
 * of d_in / d_weight / d_bias on odd shapes covering every schedule (per-image, batched
 * chunks, the 1x1 direct path with its weight-panel forward and d_in, Winograd F(2x2, 3x3)
 * for 3x3/1/1), accumulation, NULL-gradient skipping and argument errors. The Winograd kernels
 * are also called directly on small shapes (partial tiles, chunks that split images, rows
 * wider than a chunk) and checked against a naive direct backward. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ops/weight_grad.h"
#include "ops/weight_panels.h"
#include "ops/winograd.h"
#include "ops/winograd4.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* Which schedule a shape is expected to take; checked through the workspace size so a change
 * of the tuning constants that moves a test off its path is noticed. */
enum path { PATH_ANY, PATH_PER_IMAGE, PATH_BATCHED, PATH_DIRECT, PATH_WINOGRAD };

struct conv_case {
    struct ptl_conv2d_shape s;
    int ho, wo;
    int kernel; /* 1: call the Winograd kernels directly instead of ptl_conv2d_* */
    size_t n_in, n_w, n_out;
    float *in, *w, *b, *out, *r, *ws; /* r: fixed random weights of the loss sum(out * r) */
};

static void case_init_kernel(struct conv_case *c, struct ptl_conv2d_shape s, int with_bias,
                             int kernel)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->kernel = kernel;
    cr_assert_eq(ptl_conv2d_output_size(&s, &c->ho, &c->wo), 0, "%s", ptl_error_message());
    c->n_in = (size_t)s.n * s.c_in * s.h * s.w;
    c->n_w = (size_t)s.c_out * s.c_in * s.kh * s.kw;
    c->n_out = (size_t)s.n * s.c_out * c->ho * c->wo;
    c->in = tc_alloc(c->n_in);
    c->w = tc_alloc(c->n_w);
    c->b = with_bias ? tc_alloc((size_t)s.c_out) : NULL;
    c->out = tc_alloc(c->n_out);
    c->r = tc_alloc(c->n_out);
    c->ws = tc_alloc(kernel ? ptl__winograd_workspace_floats(&s)
                            : ptl_conv2d_workspace_floats(&s));
    tc_fill(c->in, c->n_in, 11, -1.0f, 1.0f);
    tc_fill(c->w, c->n_w, 12, -1.0f, 1.0f);
    if (c->b)
        tc_fill(c->b, (size_t)s.c_out, 13, -1.0f, 1.0f);
    tc_fill(c->r, c->n_out, 14, -1.0f, 1.0f);
}

static void case_init(struct conv_case *c, struct ptl_conv2d_shape s, int with_bias)
{
    case_init_kernel(c, s, with_bias, 0);
}

static void case_free(struct conv_case *c)
{
    free(c->in);
    free(c->w);
    free(c->b);
    free(c->out);
    free(c->r);
    free(c->ws);
}

/* Lanes the conv2d workspace is sized for, with `units` units of work (conv2d.c). */
static int lanes_for(int units)
{
    int cap = ptl_threads_available() < 16 ? ptl_threads_available() : 16;
    return units < 2 ? 1 : units < cap ? units : cap;
}

/* conv2d.c's workspace for units of g images on l lanes: per lane the column buffer (none for
 * a 1x1 stride-1 conv per image), or ops/weight_grad.c's scratch where that is larger, the
 * unit's C_out GEMM rows (g > 1), and with d_weight transposed (up to 256 output channels, or
 * in ops/weight_grad.c from 8 input channels and 2 units) the transposed d_out and d_weight^T;
 * else l - 1 d_weight copies; in lanes, with a panel of pixels per image, the weights packed
 * by ops/weight_panels.c and its scratch per lane; for a 1x1 stride-1 conv, ops/weight_panels.c's
 * whole-batch workspace where that is larger. */
static size_t expected_workspace(const struct ptl_conv2d_shape *s, size_t p, size_t g, int l)
{
    size_t k = (size_t)s->c_in * s->kh * s->kw, m = (size_t)s->c_out, cols = g * p;
    int direct = s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 &&
                 s->pad_h == 0 && s->pad_w == 0;
    int plain_direct = g == 1 && direct;
    int packable = s->c_in >= 8;
    int transposed = s->c_out <= 256 || (packable && (s->n + g - 1) / g >= 2);
    int ho = (s->h + 2 * s->pad_h - s->kh) / s->stride_h + 1;
    int wo = (s->w + 2 * s->pad_w - s->kw) / s->stride_w + 1;
    struct ptl__conv_geom geom = {s->c_in,   s->h,     s->w,     s->kh, s->kw, s->stride_h,
                                  s->stride_w, s->pad_h, s->pad_w, ho,    wo};
    size_t col = plain_direct ? 0 : k * cols;
    size_t packed = transposed && packable ? ptl__weight_grad_floats(&geom, s->c_out, (int)g) : 0;
    size_t lane = (col > packed ? col : packed) + (g > 1 ? m * cols : 0) +
                  (transposed ? m * cols + m * k : 0);
    size_t units = l * lane + (transposed ? 0 : (size_t)(l - 1) * m * k);
    if (!direct && l >= 2 && !ptl__winograd_applies(s) && ptl__weight_panels_apply((long)p)) {
        size_t fwd = ptl__weight_panels_packed_floats((int)k, (int)m);
        size_t din = ptl__weight_panels_packed_floats((int)m, (int)k);
        units += (fwd > din ? fwd : din) + l * ptl__weight_panels_scratch_floats();
    }
    int t = ptl_threads_available();
    size_t fwd = direct ? ptl__weight_panels_floats((int)k, (int)p, (int)m, t) : 0;
    size_t din = direct ? ptl__weight_panels_floats((int)m, (int)p, (int)k, t) : 0;
    size_t panels = fwd > din ? fwd : din;
    return units > panels ? units : panels;
}

static void assert_path(const struct ptl_conv2d_shape *s, int ho, int wo, enum path want)
{
    size_t p = (size_t)ho * wo;
    size_t ws = ptl_conv2d_workspace_floats(s);
    int wino = ptl__winograd_applies(s);
    cr_assert_eq(wino, want == PATH_WINOGRAD || (want == PATH_ANY && wino),
                 "Winograd path %s", wino ? "taken, not expected" : "expected, not taken");
    switch (want) {
    case PATH_WINOGRAD:
        /* with skx's kernel small weights take d_weight from the im2col GEMMs (conv2d.c),
         * whose workspace may be the larger */
        cr_assert_geq(ws, ptl__winograd_workspace_floats(s), "Winograd workspace");
        break;
    case PATH_DIRECT: {
        int l = lanes_for(s->n);
        cr_assert_eq(ws, expected_workspace(s, p, 1, l),
                     "expected the 1x1 direct per-image path with %d lanes", l);
        break;
    }
    case PATH_PER_IMAGE: {
        int l = lanes_for(s->n);
        cr_assert_eq(ws, expected_workspace(s, p, 1, l),
                     "expected the per-image im2col path with %d lanes", l);
        break;
    }
    case PATH_BATCHED: {
        /* units of g images, about 512 GEMM columns (conv2d.c's BATCH_COLS) */
        size_t g = (512 + p - 1) / p < (size_t)s->n ? (512 + p - 1) / p : (size_t)s->n;
        int l = lanes_for((int)((s->n + g - 1) / g));
        cr_assert(g > 1, "expected the batched path: %zu pixels need no batching", p);
        cr_assert_eq(ws, expected_workspace(s, p, g, l),
                     "expected the batched path, %zu images per unit, %d lanes", g, l);
        break;
    }
    case PATH_ANY: break;
    }
}

/* Direct convolution in double: the reference for the forward. */
static void naive_conv(double *out, const struct conv_case *c)
{
    const struct ptl_conv2d_shape *s = &c->s;
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->c_out; o++)
            for (int oh = 0; oh < c->ho; oh++)
                for (int ow = 0; ow < c->wo; ow++) {
                    double acc = c->b ? c->b[o] : 0.0;
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int kh = 0; kh < s->kh; kh++)
                            for (int kw = 0; kw < s->kw; kw++) {
                                int ih = oh * s->stride_h - s->pad_h + kh;
                                int iw = ow * s->stride_w - s->pad_w + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                acc += (double)c->in[((size_t)(n * s->c_in + ci) * s->h + ih) *
                                                         s->w + iw] *
                                       c->w[((size_t)(o * s->c_in + ci) * s->kh + kh) * s->kw +
                                            kw];
                            }
                    out[((size_t)(n * s->c_out + o) * c->ho + oh) * c->wo + ow] = acc;
                }
}

static double conv_loss(void *ctx)
{
    struct conv_case *c = ctx;
    int rc = c->kernel ? ptl__winograd_forward(c->out, c->in, c->w, c->b, &c->s, c->ws)
                       : ptl_conv2d_forward(c->out, c->in, c->w, c->b, &c->s, c->ws);
    cr_assert_eq(rc, 0, "%s", ptl_error_message());
    return tc_dot(c->out, c->r, c->n_out);
}

/* Forward against the naive conv, then gradients against finite differences. */
static void check_conv(struct ptl_conv2d_shape s, int with_bias, enum path want)
{
    struct conv_case c;
    case_init(&c, s, with_bias);
    assert_path(&s, c.ho, c.wo, want);

    cr_assert_eq(ptl_conv2d_forward(c.out, c.in, c.w, c.b, &s, c.ws), 0, "%s",
                 ptl_error_message());
    double *ref = calloc(c.n_out, sizeof *ref);
    cr_assert_not_null(ref);
    naive_conv(ref, &c);
    double diff = 0, scale = 1e-6;
    for (size_t i = 0; i < c.n_out; i++) {
        diff = fmax(diff, fabs(c.out[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    free(ref);
    cr_assert(diff <= 1e-5 * scale, "forward differs from the direct conv: %g (scale %g)", diff,
              scale);

    float *d_in = tc_alloc(c.n_in), *d_w = tc_alloc(c.n_w);
    float *d_b = with_bias ? tc_alloc((size_t)s.c_out) : NULL;
    cr_assert_eq(ptl_conv2d_backward(d_in, d_w, d_b, c.r, c.in, c.w, &s, c.ws), 0, "%s",
                 ptl_error_message());
    /* The loss is linear in every input, so a large step costs nothing in accuracy. */
    tc_assert_gradcheck("conv2d d_in", conv_loss, &c, c.in, d_in, c.n_in, 0.05f, 2e-3, 2e-3);
    tc_assert_gradcheck("conv2d d_weight", conv_loss, &c, c.w, d_w, c.n_w, 0.05f, 2e-3, 2e-3);
    if (with_bias)
        tc_assert_gradcheck("conv2d d_bias", conv_loss, &c, c.b, d_b, (size_t)s.c_out, 0.05f,
                            2e-3, 2e-3);
    free(d_in);
    free(d_w);
    free(d_b);
    case_free(&c);
}

#define SHAPE(N, C, H, W, M, KH, KW, SH, SW, PH, PW)                                              \
    ((struct ptl_conv2d_shape){N, C, H, W, M, KH, KW, SH, SW, PH, PW})

Test(conv2d, one_pixel_images_1x1_kernel)
{
    check_conv(SHAPE(2, 3, 1, 1, 4, 1, 1, 1, 1, 0, 0), 1, PATH_BATCHED);
}

Test(conv2d, one_pixel_images_3x3_kernel_pad1)
{
    check_conv(SHAPE(3, 3, 1, 1, 2, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
}

Test(conv2d, batch_one_takes_the_per_image_path)
{
    check_conv(SHAPE(1, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1), 1, PATH_PER_IMAGE);
}

Test(conv2d, stride_larger_than_kernel)
{
    check_conv(SHAPE(2, 3, 8, 8, 3, 2, 2, 3, 3, 0, 0), 1, PATH_ANY);
}

Test(conv2d, padding_larger_than_half_the_kernel)
{
    check_conv(SHAPE(2, 2, 4, 5, 3, 3, 3, 1, 1, 2, 2), 1, PATH_ANY);
}

Test(conv2d, non_square_kernel_stride_padding)
{
    check_conv(SHAPE(2, 3, 9, 6, 4, 3, 2, 2, 1, 1, 0), 1, PATH_ANY);
}

Test(conv2d, kernel_exactly_covers_padded_input)
{
    check_conv(SHAPE(2, 2, 2, 3, 3, 4, 5, 1, 1, 1, 1), 0, PATH_ANY);
}

Test(conv2d, conv1_like_7x7_stride2_pad3_no_bias)
{
    check_conv(SHAPE(2, 3, 11, 9, 4, 7, 7, 2, 2, 3, 3), 0, PATH_ANY);
}

Test(conv2d, downsample_1x1_stride2)
{
    check_conv(SHAPE(2, 4, 7, 7, 3, 1, 1, 2, 2, 0, 0), 0, PATH_ANY);
}

Test(conv2d, direct_1x1_per_image)
{
    check_conv(SHAPE(2, 3, 24, 24, 4, 1, 1, 1, 1, 0, 0), 1, PATH_DIRECT);
}

Test(conv2d, direct_1x1_small_images_batched)
{
    check_conv(SHAPE(3, 3, 4, 5, 4, 1, 1, 1, 1, 0, 0), 1, PATH_BATCHED);
}

static void check_accumulates(struct ptl_conv2d_shape s);

/* 1x1 stride-1 convs go per image from 128 output pixels (ResNet-50's layer3 at 256x128 and
 * the PTL fuse convs beside it), other kernels from 512; on two threads as image lanes. */
Test(conv2d, direct_1x1_per_image_from_128_pixels)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(4, 6, 16, 8, 5, 1, 1, 1, 1, 0, 0), 1, PATH_DIRECT);
    check_conv(SHAPE(4, 6, 12, 10, 5, 1, 1, 1, 1, 0, 0), 1, PATH_BATCHED);
    check_conv(SHAPE(4, 6, 16, 8, 5, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    check_accumulates(SHAPE(4, 6, 16, 8, 5, 1, 1, 1, 1, 0, 0));
}

Test(conv2d, per_image_3x3_large_output)
{
    check_conv(SHAPE(2, 2, 24, 24, 3, 3, 3, 1, 1, 1, 1), 1, PATH_PER_IMAGE);
}

Test(conv2d, batched_chunks_with_a_remainder)
{
    /* P = 300 -> chunks of 7 images: 7 + 2 */
    check_conv(SHAPE(9, 2, 15, 20, 3, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
}

/* Large outputs go through im2col's row-copy path (the gather table would not fit). */
Test(conv2d, row_path_stride2_pad1)
{
    check_conv(SHAPE(2, 2, 64, 64, 3, 3, 3, 2, 2, 1, 1), 1, PATH_PER_IMAGE);
}

Test(conv2d, row_path_non_square_stride_and_padding)
{
    check_conv(SHAPE(1, 2, 40, 30, 3, 3, 5, 2, 1, 2, 1), 1, PATH_PER_IMAGE);
}

/* Shapes big enough for the OpenMP loops (im2col, col2im, bias) to fork, on two threads. */
Test(conv2d, two_threads_batched)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(4, 8, 20, 20, 6, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    /* lanes of 2-image units: 9 units, the last one a single image */
    check_conv(SHAPE(17, 2, 15, 20, 3, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    check_accumulates(SHAPE(17, 2, 15, 20, 3, 3, 3, 1, 1, 1, 1));
}

Test(conv2d, two_threads_per_image)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(2, 8, 24, 24, 6, 3, 3, 1, 1, 1, 1), 1, PATH_PER_IMAGE);
}

/* Image lanes (one thread per image, single-threaded GEMMs) on two threads: an even batch, an
 * odd one too small to share (BLIS threads instead), an odd one large enough to share with a
 * remainder, and the 1x1 direct path (per-lane d_weight copies, as for im2col). Run on
 * a 1-core affinity, these take the plain per-image path and must pass all the same. */
Test(conv2d, two_threads_image_lanes)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(4, 5, 47, 45, 7, 3, 3, 2, 2, 1, 1), 1, PATH_PER_IMAGE);
    check_conv(SHAPE(3, 5, 47, 45, 7, 3, 3, 2, 2, 1, 1), 0, PATH_PER_IMAGE);
    check_conv(SHAPE(9, 3, 26, 24, 4, 3, 3, 1, 1, 0, 0), 1, PATH_PER_IMAGE);
    check_conv(SHAPE(4, 6, 24, 24, 5, 1, 1, 1, 1, 0, 0), 1, PATH_DIRECT);
    check_accumulates(SHAPE(4, 5, 47, 45, 7, 3, 3, 2, 2, 1, 1));
    check_accumulates(SHAPE(4, 6, 24, 24, 5, 1, 1, 1, 1, 0, 0));
}

/* In lanes the forward and d_in GEMMs run on weights packed once per call
 * (ops/weight_panels.c): K over two chunks, partial channel panels, and images whose pixels end
 * inside a panel, per image and side by side in batched units. */
Test(conv2d, two_threads_lanes_on_packed_weights)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(4, 32, 40, 30, 13, 3, 3, 1, 1, 0, 0), 1, PATH_PER_IMAGE);
    check_conv(SHAPE(26, 40, 14, 12, 30, 3, 3, 2, 2, 1, 1), 0, PATH_BATCHED);
    check_conv(SHAPE(4, 30, 20, 18, 14, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    check_accumulates(SHAPE(26, 40, 14, 12, 30, 3, 3, 2, 2, 1, 1));
}

/* Over 256 output channels d_weight is not computed transposed (conv2d.c's
 * TRANSPOSE_MAX_C_OUT): lane copies summed at the end, per image, batched and 1x1. */
Test(conv2d, wide_output_plain_weight_gradient)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(4, 2, 24, 24, 260, 3, 3, 1, 1, 1, 1), 1, PATH_PER_IMAGE);
    check_conv(SHAPE(9, 2, 6, 5, 260, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    check_conv(SHAPE(4, 3, 24, 24, 260, 1, 1, 1, 1, 0, 0), 0, PATH_DIRECT);
    check_accumulates(SHAPE(4, 2, 24, 24, 260, 3, 3, 1, 1, 1, 1));
    check_accumulates(SHAPE(9, 2, 6, 5, 260, 3, 3, 1, 1, 1, 1));
}

/* ... except from 8 input channels with 2 units or more: transposed on ops/weight_grad.c's
 * panels in lanes (and on one thread); a single unit stays plain. */
Test(conv2d, wide_output_packed_weight_gradient)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_conv(SHAPE(4, 9, 46, 46, 260, 3, 3, 2, 2, 1, 1), 1, PATH_PER_IMAGE);
    check_conv(SHAPE(9, 8, 6, 5, 260, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    check_conv(SHAPE(3, 8, 6, 5, 260, 3, 3, 1, 1, 1, 1), 1, PATH_BATCHED);
    check_conv(SHAPE(4, 10, 24, 24, 300, 1, 1, 1, 1, 0, 0), 0, PATH_DIRECT);
    check_accumulates(SHAPE(4, 9, 46, 46, 260, 3, 3, 2, 2, 1, 1));
    check_accumulates(SHAPE(9, 8, 6, 5, 260, 3, 3, 1, 1, 1, 1));
    cr_assert_eq(ptl_threads_set(1), 0);
    check_conv(SHAPE(2, 9, 24, 22, 270, 3, 3, 1, 1, 1, 1), 0, PATH_PER_IMAGE);
}

/* Backward twice from zero gives exactly twice one call; NULL gradients skip their work. */
static void check_accumulates(struct ptl_conv2d_shape s)
{
    struct conv_case c;
    case_init(&c, s, 1);
    float *once[3], *twice[3], *only[3];
    size_t len[3] = {c.n_in, c.n_w, (size_t)s.c_out};
    for (int i = 0; i < 3; i++) {
        once[i] = tc_alloc(len[i]);
        twice[i] = tc_alloc(len[i]);
        only[i] = tc_alloc(len[i]);
    }
    cr_assert_eq(ptl_conv2d_backward(once[0], once[1], once[2], c.r, c.in, c.w, &s, c.ws), 0);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(ptl_conv2d_backward(twice[0], twice[1], twice[2], c.r, c.in, c.w, &s, c.ws),
                     0);
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < len[i]; j++)
            cr_assert_float_eq(twice[i][j], 2.0f * once[i][j], 1e-4f * (1 + fabsf(once[i][j])),
                               "gradient %d element %zu did not accumulate", i, j);
    /* each gradient alone */
    cr_assert_eq(ptl_conv2d_backward(only[0], NULL, NULL, c.r, c.in, c.w, &s, c.ws), 0);
    cr_assert_eq(ptl_conv2d_backward(NULL, only[1], NULL, c.r, c.in, c.w, &s, c.ws), 0);
    cr_assert_eq(ptl_conv2d_backward(NULL, NULL, only[2], c.r, c.in, c.w, &s, c.ws), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_lt(tc_rel_err(only[i], once[i], len[i], 1e-6), 1e-6, "gradient %d alone", i);
        free(once[i]);
        free(twice[i]);
        free(only[i]);
    }
    case_free(&c);
}

Test(conv2d, backward_accumulates_per_image)
{
    check_accumulates(SHAPE(2, 2, 24, 24, 3, 3, 3, 1, 1, 1, 1));
}

Test(conv2d, backward_accumulates_batched)
{
    check_accumulates(SHAPE(9, 2, 15, 20, 3, 3, 3, 1, 1, 1, 1));
}

Test(conv2d, backward_accumulates_direct_1x1)
{
    check_accumulates(SHAPE(2, 3, 24, 24, 4, 1, 1, 1, 1, 0, 0));
}

/* ---- Winograd F(2x2, 3x3) ---- */

/* Direct backward in double: d_in and d_weight of the loss sum(out * dy). */
static void naive_backward(double *d_in, double *d_w, const struct conv_case *c, const float *dy)
{
    const struct ptl_conv2d_shape *s = &c->s;
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->c_out; o++)
            for (int oh = 0; oh < c->ho; oh++)
                for (int ow = 0; ow < c->wo; ow++) {
                    double g = dy[((size_t)(n * s->c_out + o) * c->ho + oh) * c->wo + ow];
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int kh = 0; kh < s->kh; kh++)
                            for (int kw = 0; kw < s->kw; kw++) {
                                int ih = oh * s->stride_h - s->pad_h + kh;
                                int iw = ow * s->stride_w - s->pad_w + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                size_t ii = ((size_t)(n * s->c_in + ci) * s->h + ih) * s->w + iw;
                                size_t wi = ((size_t)(o * s->c_in + ci) * s->kh + kh) * s->kw + kw;
                                d_in[ii] += g * c->w[wi];
                                d_w[wi] += g * c->in[ii];
                            }
                }
}

/* max |(got - start) - want| / max |want| */
static double accumulated_err(const float *got, const float *start, const double *want, size_t n)
{
    double diff = 0, scale = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - start[i] - want[i]);
        if (!(d <= diff))
            diff = d;
        scale = fmax(scale, fabs(want[i]));
    }
    return diff / scale;
}

/* Forward against the naive conv; backward, accumulated into gradients that already hold
 * values, against the naive backward (d_bias against the sums); then finite differences at
 * fd_checks points of d_in and d_weight. kernel: call the Winograd kernels directly (any
 * channel count), else conv2d, which must take the Winograd path. */
static void check_wino(struct ptl_conv2d_shape s, int with_bias, int kernel, size_t fd_checks)
{
    struct conv_case c;
    case_init_kernel(&c, s, with_bias, kernel);
    if (!kernel)
        assert_path(&s, c.ho, c.wo, PATH_WINOGRAD);
    cr_assert(c.ho == s.h && c.wo == s.w);
    int rc = kernel ? ptl__winograd_forward(c.out, c.in, c.w, c.b, &s, c.ws)
                    : ptl_conv2d_forward(c.out, c.in, c.w, c.b, &s, c.ws);
    cr_assert_eq(rc, 0, "%s", ptl_error_message());
    double *ref = calloc(c.n_out, sizeof *ref);
    cr_assert_not_null(ref);
    naive_conv(ref, &c);
    float *zero = tc_alloc(c.n_out);
    double err = accumulated_err(c.out, zero, ref, c.n_out);
    cr_assert(err <= 1e-5, "Winograd forward differs from the direct conv: %g relative", err);
    free(zero);
    free(ref);

    float *d_in = tc_alloc(c.n_in), *d_w = tc_alloc(c.n_w), *d_b = NULL;
    float *in0 = tc_alloc(c.n_in), *w0 = tc_alloc(c.n_w);
    tc_fill(in0, c.n_in, 21, -1.0f, 1.0f);
    tc_fill(w0, c.n_w, 22, -1.0f, 1.0f);
    memcpy(d_in, in0, c.n_in * sizeof *d_in);
    memcpy(d_w, w0, c.n_w * sizeof *d_w);
    if (with_bias && !kernel)
        d_b = tc_alloc((size_t)s.c_out);
    rc = kernel ? ptl__winograd_backward(d_in, d_w, c.r, c.in, c.w, &s, c.ws)
                : ptl_conv2d_backward(d_in, d_w, d_b, c.r, c.in, c.w, &s, c.ws);
    cr_assert_eq(rc, 0, "%s", ptl_error_message());
    double *g_in = calloc(c.n_in, sizeof *g_in), *g_w = calloc(c.n_w, sizeof *g_w);
    cr_assert(g_in && g_w);
    naive_backward(g_in, g_w, &c, c.r);
    err = accumulated_err(d_in, in0, g_in, c.n_in);
    cr_assert(err <= 1e-5, "Winograd d_in differs from the direct backward: %g relative", err);
    err = accumulated_err(d_w, w0, g_w, c.n_w);
    cr_assert(err <= 1e-5, "Winograd d_weight differs from the direct backward: %g relative", err);
    if (d_b) {
        int p = c.ho * c.wo;
        for (int o = 0; o < s.c_out; o++) {
            double sum = 0;
            for (int n = 0; n < s.n; n++)
                for (int j = 0; j < p; j++)
                    sum += c.r[((size_t)n * s.c_out + o) * p + j];
            cr_assert_float_eq(d_b[o], sum, 1e-4 * (1 + fabs(sum)), "d_bias[%d]", o);
        }
    }

    /* finite differences of the loss against the gradient this call added */
    for (size_t i = 0; i < c.n_in; i++)
        d_in[i] -= in0[i];
    for (size_t i = 0; i < c.n_w; i++)
        d_w[i] -= w0[i];
    struct tc_gradcheck_result r =
        tc_gradcheck(conv_loss, &c, c.in, d_in, c.n_in, 0.05f, 2e-3, 2e-3, fd_checks);
    cr_assert(r.checked > 0 && r.worst <= 1.0, "Winograd d_in: element %zu: %.7g vs FD %.7g",
              r.worst_at, r.analytic, r.numeric);
    r = tc_gradcheck(conv_loss, &c, c.w, d_w, c.n_w, 0.05f, 2e-3, 2e-3, fd_checks);
    cr_assert(r.checked > 0 && r.worst <= 1.0, "Winograd d_weight: element %zu: %.7g vs FD %.7g",
              r.worst_at, r.analytic, r.numeric);
    free(d_in);
    free(d_w);
    free(d_b);
    free(in0);
    free(w0);
    free(g_in);
    free(g_w);
    case_free(&c);
}

/* The kernels alone, any channel count: partial tiles (odd sizes), one image */
Test(winograd, kernel_odd_sizes_one_image)
{
    check_wino(SHAPE(1, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1), 1, 1, 256);
}

/* several chunks whose boundaries fall inside images, and a last partial chunk */
Test(winograd, kernel_chunks_split_images)
{
    struct ptl_conv2d_shape s = SHAPE(3, 2, 33, 45, 3, 3, 3, 1, 1, 1, 1);
    cr_assert_gt(ptl__winograd_workspace_floats(&s), 0);
    check_wino(s, 0, 1, 256);
}

/* a tile row wider than a whole chunk (one row per chunk) and many SIMD blocks per row */
Test(winograd, kernel_rows_wider_than_a_chunk)
{
    check_wino(SHAPE(2, 2, 3, 2051, 2, 3, 3, 1, 1, 1, 1), 1, 1, 256);
}

/* output channels in two slices of the fused blocks, the last mr-panel partial, and blocks of
 * tiles that cross images and end part-way through a panel */
Test(winograd, kernel_channel_slices_and_partial_blocks)
{
    check_wino(SHAPE(3, 5, 9, 11, 103, 3, 3, 1, 1, 1, 1), 1, 1, 64);
}

/* large weights take the wide blocks (C_in * C_out above 256 * 256) */
Test(winograd, kernel_wide_blocks)
{
    check_wino(SHAPE(2, 257, 5, 7, 259, 3, 3, 1, 1, 1, 1), 0, 1, 24);
}

/* few tiles with large weights share one block (fused_few), on one thread and on two: 36 tiles
 * (a partial tile panel on every kernel), input channels in transform chunks with a short last
 * one (263 = 16 * 16 + 7), output channels in slices with a partial last slice and channel
 * panel, odd plane sizes (tiles cut at both edges), bias; d_in runs it with 263 outputs. */
Test(winograd, kernel_few_tiles_share_one_block)
{
    struct ptl_conv2d_shape s = SHAPE(3, 263, 5, 7, 261, 3, 3, 1, 1, 1, 1);
    cr_assert(ptl__winograd_few_tiles(&s));
    cr_assert_eq(ptl_threads_set(1), 0);
    check_wino(s, 1, 1, 24);
    cr_assert_eq(ptl_threads_set(2), 0);
    check_wino(s, 1, 1, 24);
}

/* planes smaller than one tile, and a single row / column */
Test(winograd, kernel_tiny_planes)
{
    check_wino(SHAPE(2, 2, 1, 1, 3, 3, 3, 1, 1, 1, 1), 1, 1, 256);
    check_wino(SHAPE(2, 3, 1, 6, 2, 3, 3, 1, 1, 1, 1), 0, 1, 256);
    check_wino(SHAPE(1, 1, 5, 1, 1, 3, 3, 1, 1, 1, 1), 1, 1, 256);
    check_wino(SHAPE(3, 2, 2, 2, 2, 3, 3, 1, 1, 1, 1), 0, 1, 256);
}

/* F(4x4, 3x3) for the forward and d_in (winograd4.c): tiles cut at the bottom (19 = 4*4 + 3)
 * and right (14 = 3*4 + 2) edges, output channels in two slices with a partial channel panel,
 * and blocks of tiles that cross images and end part-way (2 x 20 tiles). */
Test(winograd, f4_tiles_cut_at_both_edges)
{
    struct ptl_conv2d_shape s = SHAPE(2, 5, 19, 14, 29, 3, 3, 1, 1, 1, 1);
    cr_assert(ptl__winograd4_applies(&s));
    check_wino(s, 1, 1, 64);
}

/* ... and its d_weight on planes from 512 pixels: tiles cut at both edges (47 = 11*4 + 3,
 * 45 = 11*4 + 1), two chunks of tile rows, the second starting inside an image. */
Test(winograd, f4_weight_gradient_over_chunks)
{
    struct ptl_conv2d_shape s = SHAPE(4, 3, 47, 45, 5, 3, 3, 1, 1, 1, 1);
    cr_assert(ptl__winograd4_weight_applies(&s));
    check_wino(s, 0, 1, 64);
}

/* A shape on one side of a path's threshold: `rule` (ptl__winograd_applies and the like) must
 * give `want` for it. */
struct path_case {
    const char *name;
    struct ptl_conv2d_shape s;
    int want;
};

static void check_path_rule(int (*rule)(const struct ptl_conv2d_shape *), const char *rule_name,
                            const struct path_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(rule(&cases[i].s) != 0, cases[i].want, "%s(%s) should be %d", rule_name,
                     cases[i].name, cases[i].want);
}

#define CHECK_PATH_RULE(rule, cases)                                                               \
    check_path_rule(rule, #rule, cases, sizeof cases / sizeof *cases)

/* F(4x4, 3x3) takes planes from 16x8 on, its d_weight from 32x16; smaller keep F(2x2, 3x3). */
Test(winograd, f4_only_on_planes_with_room)
{
    struct ptl_conv2d_shape layer2 = SHAPE(32, 128, 16, 8, 128, 3, 3, 1, 1, 1, 1);
    const struct path_case planes[] = {
        {"layer2", layer2, 1},
        {"layer3", SHAPE(32, 256, 8, 4, 256, 3, 3, 1, 1, 1, 1), 0},
        {"short_plane", SHAPE(32, 128, 15, 8, 128, 3, 3, 1, 1, 1, 1), 0},
    };
    const struct path_case weight_planes[] = {
        {"layer2", layer2, 0},
        {"resnet50_layer1", SHAPE(16, 64, 64, 32, 64, 3, 3, 1, 1, 1, 1), 1},
        {"resnet18_layer1", SHAPE(32, 64, 32, 16, 64, 3, 3, 1, 1, 1, 1), 1},
        {"short_weight_plane", SHAPE(32, 64, 31, 16, 64, 3, 3, 1, 1, 1, 1), 0},
    };
    CHECK_PATH_RULE(ptl__winograd4_applies, planes);
    CHECK_PATH_RULE(ptl__winograd4_weight_applies, weight_planes);
    cr_assert_geq(ptl__winograd_workspace_floats(&layer2),
                  ptl__winograd4_workspace_floats(&layer2));
}

/* one direction only: the other gradient stays untouched */
Test(winograd, kernel_one_gradient_at_a_time)
{
    struct conv_case c;
    struct ptl_conv2d_shape s = SHAPE(2, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1);
    case_init_kernel(&c, s, 0, 1);
    float *both_in = tc_alloc(c.n_in), *both_w = tc_alloc(c.n_w);
    float *only_in = tc_alloc(c.n_in), *only_w = tc_alloc(c.n_w);
    cr_assert_eq(ptl__winograd_backward(both_in, both_w, c.r, c.in, c.w, &s, c.ws), 0);
    cr_assert_eq(ptl__winograd_backward(only_in, NULL, c.r, c.in, c.w, &s, c.ws), 0);
    cr_assert_eq(ptl__winograd_backward(NULL, only_w, c.r, c.in, c.w, &s, c.ws), 0);
    cr_assert_lt(tc_rel_err(only_in, both_in, c.n_in, 1e-6), 1e-6, "d_in alone");
    cr_assert_lt(tc_rel_err(only_w, both_w, c.n_w, 1e-6), 1e-6, "d_weight alone");
    free(both_in);
    free(both_w);
    free(only_in);
    free(only_w);
    case_free(&c);
}

/* conv2d takes the Winograd path: C_in != C_out, odd sizes, N > 1, bias */
Test(winograd, conv2d_path_cin_ne_cout_bias)
{
    check_wino(SHAPE(2, 64, 23, 21, 96, 3, 3, 1, 1, 1, 1), 1, 0, 12);
}

/* one large image, no bias */
Test(winograd, conv2d_path_one_image_no_bias)
{
    check_wino(SHAPE(1, 96, 33, 31, 64, 3, 3, 1, 1, 1, 1), 0, 0, 12);
}

/* two threads share out transforms and GEMMs */
Test(winograd, conv2d_path_two_threads)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    check_wino(SHAPE(3, 64, 17, 19, 64, 3, 3, 1, 1, 1, 1), 1, 0, 12);
}

/* few tiles (128) with wide weights: two threads share one block of all the tiles */
Test(winograd, conv2d_path_few_tiles_wide_weights)
{
    struct ptl_conv2d_shape s = SHAPE(8, 272, 8, 8, 256, 3, 3, 1, 1, 1, 1);
    cr_assert(ptl__winograd_few_tiles(&s));
    cr_assert_eq(ptl_threads_set(2), 0);
    check_wino(s, 0, 0, 12);
}

/* more tiles, or smaller weights, keep blocks of tiles per thread */
Test(winograd, few_tiles_only_with_large_weights)
{
    const struct path_case cases[] = {
        {"many_tiles", SHAPE(9, 272, 8, 8, 256, 3, 3, 1, 1, 1, 1), 0},
        {"small_weights", SHAPE(8, 256, 8, 8, 256, 3, 3, 1, 1, 1, 1), 0},
    };
    CHECK_PATH_RULE(ptl__winograd_few_tiles, cases);
}

Test(winograd, conv2d_path_accumulates_and_null_gradients)
{
    check_accumulates(SHAPE(2, 64, 23, 21, 64, 3, 3, 1, 1, 1, 1));
}

/* The Winograd thresholds: below them 3x3/1/1 convs keep im2col, from them on they take it. */
Test(winograd, small_shapes_keep_im2col)
{
    const struct path_case cases[] = {
        {"few_channels", SHAPE(32, 32, 32, 16, 32, 3, 3, 1, 1, 1, 1), 0},
        {"few_tiles", SHAPE(2, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1), 0},
        {"stride2", SHAPE(32, 64, 32, 16, 64, 3, 3, 2, 2, 1, 1), 0},
        {"resnet_layer1", SHAPE(32, 64, 32, 16, 64, 3, 3, 1, 1, 1, 1), 1},
        /* from 128 tiles with 256 channels in and out (ResNet-50's layer4 at 256x128, batch
         * 16), from 256 with fewer */
        {"resnet50_layer4", SHAPE(16, 512, 8, 4, 512, 3, 3, 1, 1, 1, 1), 1},
        {"narrow_128_tiles", SHAPE(16, 256, 8, 4, 255, 3, 3, 1, 1, 1, 1), 0},
        {"wide_64_tiles", SHAPE(32, 256, 4, 2, 512, 3, 3, 1, 1, 1, 1), 0},
        /* from 32 tiles with 512 x 512 channels (ResNet-18's layer4 at 128x64 from batch 16) */
        {"resnet18_layer4", SHAPE(16, 512, 4, 2, 512, 3, 3, 1, 1, 1, 1), 1},
        {"tiles_16", SHAPE(8, 512, 4, 2, 512, 3, 3, 1, 1, 1, 1), 0},
        {"weights_511", SHAPE(16, 511, 4, 2, 512, 3, 3, 1, 1, 1, 1), 0},
    };
    CHECK_PATH_RULE(ptl__winograd_applies, cases);
}

Test(conv2d, workspace_is_bounded_by_the_chunk_not_the_batch)
{
    /* ResNet-18 layer4 at 128x64 input, 4x2 outputs: Winograd at these batch sizes; with 32
     * channels the batched im2col schedule. */
    for (int c = 32; c <= 512; c += 480) {
        struct ptl_conv2d_shape mid = SHAPE(512, c, 4, 2, c, 3, 3, 1, 1, 1, 1);
        struct ptl_conv2d_shape big = mid;
        big.n = 4096;
        cr_assert_eq(ptl__winograd_applies(&big), c == 512);
        size_t full = (size_t)c * 9 * 4096 * 8; /* im2col of the whole batch */
        cr_assert_gt(ptl_conv2d_workspace_floats(&big), 0);
        cr_assert_eq(ptl_conv2d_workspace_floats(&big), ptl_conv2d_workspace_floats(&mid),
                     "workspace grows with the batch (%d channels)", c);
        cr_assert_lt(ptl_conv2d_workspace_floats(&big), full / 4);
    }
}

Test(conv2d, output_size_follows_pytorch)
{
    int ho, wo;
    struct ptl_conv2d_shape s = SHAPE(32, 3, 128, 64, 64, 7, 7, 2, 2, 3, 3);
    cr_assert_eq(ptl_conv2d_output_size(&s, &ho, &wo), 0);
    cr_assert_eq(ho, 64);
    cr_assert_eq(wo, 32);
    s = SHAPE(1, 1, 5, 5, 1, 2, 3, 3, 2, 0, 1);
    cr_assert_eq(ptl_conv2d_output_size(&s, &ho, &wo), 0);
    cr_assert_eq(ho, 2);
    cr_assert_eq(wo, 3);
}

/* ---- errors ---- */

static void expect_error(int rc, const char *part1, const char *part2)
{
    cr_assert_eq(rc, PTL_EINVAL, "expected PTL_EINVAL, got %d", rc);
    const char *msg = ptl_error_message();
    cr_assert(strstr(msg, part1) != NULL, "message '%s' lacks '%s'", msg, part1);
    cr_assert(strstr(msg, part2) != NULL, "message '%s' lacks '%s'", msg, part2);
}

Test(conv2d_errors, bad_shapes)
{
    int ho, wo;
    struct ptl_conv2d_shape s = SHAPE(1, 0, 5, 5, 2, 3, 3, 1, 1, 0, 0);
    expect_error(ptl_conv2d_output_size(&s, &ho, &wo), "conv2d", "positive");
    s = SHAPE(1, 1, 5, 5, 2, 3, 3, 0, 1, 0, 0);
    expect_error(ptl_conv2d_output_size(&s, &ho, &wo), "conv2d", "stride");
    s = SHAPE(1, 1, 5, 5, 2, 3, 3, 1, 1, -1, 0);
    expect_error(ptl_conv2d_output_size(&s, &ho, &wo), "conv2d", "padding");
    s = SHAPE(1, 1, 3, 3, 2, 5, 5, 1, 1, 0, 0);
    expect_error(ptl_conv2d_output_size(&s, &ho, &wo), "conv2d", "larger than padded input");
    s = SHAPE(1, 1, 3, 8, 2, 1, 9, 1, 1, 0, 0);
    expect_error(ptl_conv2d_output_size(&s, &ho, &wo), "conv2d", "larger than padded input");
    cr_assert_eq(ptl_conv2d_workspace_floats(&s), 0);
    expect_error(ptl_conv2d_output_size(NULL, &ho, &wo), "conv2d", "shape is NULL");
    float buf[64] = {0};
    expect_error(ptl_conv2d_forward(buf, buf, buf, NULL, &s, buf), "conv2d_forward",
                 "larger than padded input");
    expect_error(ptl_conv2d_backward(buf, buf, NULL, buf, buf, buf, &s, buf), "conv2d_backward",
                 "larger than padded input");
}

Test(conv2d_errors, null_buffers)
{
    struct ptl_conv2d_shape s = SHAPE(1, 2, 3, 3, 2, 3, 3, 1, 1, 1, 1);
    float buf[256] = {0};
    expect_error(ptl_conv2d_forward(NULL, buf, buf, NULL, &s, buf), "conv2d_forward", "out");
    expect_error(ptl_conv2d_forward(buf, NULL, buf, NULL, &s, buf), "conv2d_forward", "in");
    expect_error(ptl_conv2d_forward(buf, buf, NULL, NULL, &s, buf), "conv2d_forward", "weight");
    expect_error(ptl_conv2d_forward(buf, buf, buf, NULL, &s, NULL), "conv2d_forward",
                 "workspace");
    expect_error(ptl_conv2d_backward(buf, buf, NULL, NULL, buf, buf, &s, buf), "conv2d_backward",
                 "d_out");
    expect_error(ptl_conv2d_backward(buf, buf, NULL, buf, NULL, buf, &s, buf), "conv2d_backward",
                 "in is NULL");
    expect_error(ptl_conv2d_backward(buf, buf, NULL, buf, buf, NULL, &s, buf), "conv2d_backward",
                 "weight");
    expect_error(ptl_conv2d_backward(buf, NULL, NULL, buf, buf, buf, &s, NULL), "conv2d_backward",
                 "workspace");
    /* Optional pieces really are optional. */
    cr_assert_eq(ptl_conv2d_backward(NULL, NULL, buf, buf, buf, buf, &s, NULL), 0);
    /* a 1x1 conv needs scratch only for its d_weight^T: d_out^T and d_weight^T, or
     * ops/weight_grad.c's panels */
    struct ptl_conv2d_shape d = SHAPE(1, 2, 3, 3, 2, 1, 1, 1, 1, 0, 0);
    size_t need = ptl_conv2d_workspace_floats(&d);
    cr_assert_geq(need, 2 * 9 + 2 * 2);
    expect_error(ptl_conv2d_backward(buf + 96, buf + 128, NULL, buf, buf + 32, buf + 64, &d, NULL),
                 "conv2d_backward", "workspace");
    float *ws = malloc(need * sizeof *ws);
    cr_assert_not_null(ws);
    cr_assert_eq(ptl_conv2d_backward(buf + 96, buf + 128, NULL, buf, buf + 32, buf + 64, &d, ws),
                 0);
    free(ws);
}
