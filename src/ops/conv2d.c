/* conv2d (groups 1, NCHW, fp32) as GEMMs on BLIS: forward, backward, shape checks, workspace.
 *
 * With K = C_in*KH*KW and P = H_out*W_out, image n is one GEMM
 *     out_n (C_out, P) = weight (C_out, K) x col_n (K, P),     col_n = im2col(in_n).
 * Backward: d_weight += d_out_n (C_out, P) x col_n^T, and d_in_n += col2im(weight^T x d_out_n).
 *
 * Work goes in units of G images, G chosen per shape by conv_plan_make():
 * - G = 1 (large P): the GEMM writes straight into the NCHW output; a 1x1 stride-1 pad-0
 *   conv needs no im2col at all (the input image already is col_n, d_in_n takes the GEMM
 *   result directly).
 * - G > 1 (small P, e.g. ResNet layer4 at 4x2): the G images are laid side by side in one
 *   (K, G*P) column matrix so the GEMM is wide enough to run at speed; the output is then
 *   scattered to NCHW (and d_out gathered the other way). The copies are O(C_out*G*P) against
 *   O(C_out*K*G*P) GEMM flops.
 * For up to TRANSPOSE_MAX_C_OUT output channels d_weight is computed transposed,
 *     d_weight^T (K, C_out) += col_n (K, P) x d_out_n^T,
 * and added back transposed at the end: BLIS's skx kernels pack a GEMM operand stored by
 * columns (col^T, in the plain form) with a scalar loop, at up to half the speed. Where a
 * unit runs on one thread, ops/weight_grad.c computes it from its own packed panels (no
 * im2col, no second packing by BLIS); else d_out_n is transposed by rows (ops/transpose.c)
 * for a BLIS GEMM.
 *
 * Threads: units run in parallel ("lanes") when the thread count T is small (up to the cores
 * this process may run on, and at most PTL_CONV_LANES_MAX): each thread takes whole units with
 * single-threaded GEMMs, in one parallel region per call, so there are no BLIS barriers inside
 * the many small GEMMs (measured in docs/performance.md). Each lane sums d_weight over its
 * units, into its own d_weight^T, or (plain form) lane 0 in place and the others into copies;
 * the sums are added up at the end in lane order. The workspace holds one set of unit buffers
 * per lane (and the copies); it is sized for the most lanes the process could use, not for N.
 * Too few units, and more threads than that, keep BLIS's own threading.
 *
 * Weights packed once per call (ops/weight_panels.c), where each per-image GEMM had BLIS pack
 * all of them again, wherever the output images have at least a micro-kernel panel of pixels:
 * - 1x1 stride-1 pad-0 convs: the whole forward and d_in, on all threads (ResNet-50's 1x1 convs
 *   at 256x128, batch 16, 2 threads: 256 -> 64 at 64x32 forward 9.5 -> 5.7 ms, 1024 -> 256
 *   at 16x8 4.3 -> 3.8 ms);
 * - the others in lanes: each unit's forward and d_col GEMMs on the packed weights against its
 *   column matrix, the output written per image in place (no scatter_out): a 3x3 stride-2
 *   BConv-Cell gate 64 -> 512 at 32x16 forward 8.0 -> 7.2 ms, ResNet-50's stem 19.4 -> 14.0.
 *   Packing their pixel panels straight from the image instead of from im2col's matrix lost
 *   (the stem 13.9 -> 18.4 ms, 512 -> 512 3x3 at 8x4 8.9 -> 19.7 ms).
 *
 * 3x3 stride-1 pad-1 convs with enough channels and tiles take Winograd F(2x2, 3x3) instead
 * (ops/winograd.c: 2.25x fewer multiplications, its own chunked workspace) for the forward and
 * d_in, and for d_weight only with a row-preferring micro-kernel or above TRANSPOSE_MAX_C_OUT
 * outputs (wino_weight_grad()); their forward and d_in go on to F(4x4, 3x3) on planes from 16x8
 * (ops/winograd4.c: 4x fewer), and that d_weight from 32x16 (512 pixels). */
#include "ptl/ops.h"

#include <limits.h>
#include <omp.h>
#include <string.h>

#include "ops/check.h"
#include "ops/gemm.h"
#include "ops/im2col.h"
#include "ops/transpose.h"
#include "ops/weight_grad.h"
#include "ops/weight_panels.h"
#include "ops/winograd.h"

/* Images whose output has at least this many pixels get their own GEMM; smaller ones are
 * batched up to about BATCH_COLS GEMM columns per chunk (measured: docs/performance.md).
 * 1x1 stride-1 convs need no im2col per image, so batching them costs a gather and a scatter
 * that per-image GEMMs avoid: they go per image from 128 pixels (ResNet-50's layer3 at
 * 256x128, 2 threads: 85 -> 115 GFLOPS fwd+bwd; at 32 pixels per-image was slower). */
#define PER_IMAGE_MIN_PIXELS 512
#define DIRECT_PER_IMAGE_MIN_PIXELS 128
#define BATCH_COLS 512
/* d_weight is computed transposed (see the header) up to this C_out, and above it where
 * ops/weight_grad.c takes it in lanes. BLIS's skx kernels pack a column-stored operand with a
 * scalar loop whose cost is spread over the C_out rows of d_weight: on Zen 5 one core ran
 * ResNet's stem (64x147x2048) at 40 GFLOPS plain and 125 transposed, a 128x576x512 stride-2
 * conv at 94 and 140. At C_out 512 in a single unit (ResNet-18's layer4: BLIS's threads, no
 * lanes) the plain form runs at speed and the transposes cost more than the GEMM gains
 * (4.4 -> 5.5 ms); in lanes with the packed panels the lanes' d_weight^T sums cost less than
 * the plain GEMM's two strided packings (Zen 5, batch 32, 2 threads: a 64 -> 512 stride-2
 * BConv-Cell gate 10.1 -> 8.1 ms, 256 -> 2048 124-144 -> 116, ResNet-50's 128 -> 512 1x1
 * 9.0 -> 8.1; docs/performance.md). */
#define TRANSPOSE_MAX_C_OUT 256
/* With a column-preferring micro-kernel (skx's), Winograd's d_weight (transforms of the input
 * and of d_out over the whole batch, memory-bound, half its time) lost to the transposed
 * GEMM for every shape that has one (up to TRANSPOSE_MAX_C_OUT outputs): Zen 5, 2 threads,
 * batch 32, with im2col + BLIS: 64 -> 64 channels at 32x16 7.5 -> 6.1-6.9 ms, 128 -> 128 at
 * 16x8 5.9 -> 5.3, 64 -> 256 at 32x16 (a BConv-Cell gate) 24.4 -> 17.5; with ops/weight_grad.c
 * also 256 -> 256 at 8x4, 4.7 -> 3.9 (d_in and d_weight together 8.0 -> 7.6), and at 16x8
 * alike. With haswell's row-preferring kernel on the same CPU Winograd kept 64 -> 64 to
 * 256 -> 256 (l1 7.3 against 7.7 ms, 256 at 8x4 5.7 against 7.1), so it keeps d_weight there
 * (docs/performance.md). */
/* The transposed d_weight runs on ops/weight_grad.c's own panels from this many input channels
 * on: its panel rows are then copies of whole runs of channels. With 3 (ResNet's stem) the
 * rows are four 3-float pieces and im2col + BLIS won (Zen 5, batch 32, 2 threads: 7.5 against
 * 9.9 ms); 8 channels ran 3.7 -> 3.5 ms, 64 -> 64 at 32x16 6.7 -> 5.6. */
#define PACKED_MIN_C_IN 8
/* Most image lanes: beyond this, per-lane buffers cost more memory than BLIS threading saves.
 * A build with -DPTL_CONV_LANES_MAX=1 has no lanes (how docs/performance.md measured them). */
#ifndef PTL_CONV_LANES_MAX
#define PTL_CONV_LANES_MAX 16
#endif

struct conv_plan {
    struct ptl__conv_geom g;
    int n, m;   /* batch, C_out */
    int k;      /* C_in*KH*KW: the GEMM inner dimension */
    int p;      /* H_out*W_out: GEMM columns per image */
    int direct; /* 1x1, stride 1, pad 0: the input is its own column matrix */
    int group;  /* images per unit, side by side in one GEMM (1 = per-image) */
    int units;  /* ceil(n / group) */
    int transpose; /* d_weight computed transposed (TRANSPOSE_MAX_C_OUT, or wide and packed) */
    int packed;    /* ... by ops/weight_grad.c where a unit runs on one thread */
    int lanes_cap; /* most lanes the workspace is sized for (1: none) */
    int panels;        /* forward and d_in by ops/weight_panels.c (direct, P >= a panel) */
    int panel_threads; /* most threads the workspace is sized for there */
    int unit_panels;   /* other convs in lanes: each unit's GEMMs on weights packed once */
};

/* A Winograd shape (ptl__winograd_applies) whose d_weight Winograd computes too; the others
 * take the GEMM path for it (ops/weight_grad.c, or im2col + BLIS). */
static int wino_weight_grad(const struct ptl_conv2d_shape *s)
{
    return ptl__ukernel()->row_pref || s->c_out > TRANSPOSE_MAX_C_OUT;
}

static int conv_plan_make(const char *op, const struct ptl_conv2d_shape *s, struct conv_plan *pl)
{
    PTL_CHECK(s != NULL, "%s: shape is NULL", op);
    PTL_CHECK(s->n >= 1 && s->c_in >= 1 && s->h >= 1 && s->w >= 1 && s->c_out >= 1 &&
                  s->kh >= 1 && s->kw >= 1,
              "%s: sizes must be positive (n=%d c_in=%d h=%d w=%d c_out=%d kh=%d kw=%d)", op,
              s->n, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw);
    PTL_CHECK(s->stride_h >= 1 && s->stride_w >= 1, "%s: stride %dx%d must be >= 1", op,
              s->stride_h, s->stride_w);
    PTL_CHECK(s->pad_h >= 0 && s->pad_w >= 0, "%s: padding %dx%d must be >= 0", op, s->pad_h,
              s->pad_w);
    long long hp = (long long)s->h + 2LL * s->pad_h, wp = (long long)s->w + 2LL * s->pad_w;
    PTL_CHECK(s->kh <= hp && s->kw <= wp,
              "%s: kernel %dx%d larger than padded input %lldx%lld (input %dx%d, padding %dx%d)",
              op, s->kh, s->kw, hp, wp, s->h, s->w, s->pad_h, s->pad_w);
    long long ho = (hp - s->kh) / s->stride_h + 1, wo = (wp - s->kw) / s->stride_w + 1;
    long long k = (long long)s->c_in * s->kh * s->kw, p = ho * wo;
    /* GEMM sizes and leading dimensions are ints. */
    PTL_CHECK(k <= INT_MAX && p <= INT_MAX && (long long)s->c_out * p <= INT_MAX &&
                  (long long)s->c_in * s->h * s->w <= INT_MAX,
              "%s: shape too large (C_in*KH*KW=%lld, H_out*W_out=%lld)", op, k, p);
    pl->g = (struct ptl__conv_geom){s->c_in,    s->h,     s->w,     s->kh,    s->kw,   s->stride_h,
                                    s->stride_w, s->pad_h, s->pad_w, (int)ho, (int)wo};
    pl->n = s->n;
    pl->m = s->c_out;
    pl->k = (int)k;
    pl->p = (int)p;
    pl->direct = s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 &&
                 s->pad_h == 0 && s->pad_w == 0;
    if (p >= (pl->direct ? DIRECT_PER_IMAGE_MIN_PIXELS : PER_IMAGE_MIN_PIXELS) || s->n == 1) {
        pl->group = 1;
    } else {
        long long grp = (BATCH_COLS + p - 1) / p;
        pl->group = (int)(grp < s->n ? grp : s->n);
    }
    /* Lanes are bounded by the cores this process may use, which no thread setting can
     * exceed at run time, so a workspace sized now stays large enough. */
    pl->units = (s->n + pl->group - 1) / pl->group;
    const int packable = s->c_in >= PACKED_MIN_C_IN && ptl__weight_grad_available();
    pl->transpose = s->c_out <= TRANSPOSE_MAX_C_OUT || (packable && pl->units >= 2);
    pl->packed = pl->transpose && packable;
    int cap = ptl_threads_available();
    cap = cap < PTL_CONV_LANES_MAX ? cap : PTL_CONV_LANES_MAX;
    pl->lanes_cap = pl->units >= 2 ? (pl->units < cap ? pl->units : cap) : 1;
    pl->panels = pl->direct && ptl__weight_panels_apply(p);
    pl->unit_panels = !pl->direct && pl->lanes_cap >= 2 && !ptl__winograd_applies(s) &&
                      ptl__weight_panels_apply(p);
    pl->panel_threads = ptl_threads_available();
    return PTL_OK;
}

/* Lanes for this call: all T threads when T fits the cap and the units spread evenly enough
 * (a remainder is fine once every lane has several units); else 1 (BLIS threads the GEMMs). */
static int run_lanes(const struct conv_plan *pl)
{
    int t = omp_get_max_threads();
    if (pl->lanes_cap < 2 || t < 2 || t > pl->lanes_cap)
        return 1;
    return pl->units % t == 0 || pl->units >= 4 * t ? t : 1;
}

/* The image is its own column matrix: no im2col, no column buffer. */
static int plain_direct(const struct conv_plan *pl)
{
    return pl->direct && pl->group == 1;
}

/* One lane's scratch for a unit of G images (cols = G*P):
 *   col (K, cols)     im2col's output, and d_col in backward (none when plain_direct); with
 *                     pl->packed also ops/weight_grad.c's scratch (it runs before d_col);
 *   yb  (C_out, cols) the GEMM's output before scatter_out, or the gathered d_out (G > 1);
 * and with pl->transpose, for d_weight^T (K, C_out) += col x d_out^T:
 *   dyt (cols, C_out) the unit's d_out, transposed image by image;
 *   dwt (K, C_out)    this lane's sum of d_weight^T over its units. */
struct lane_bufs {
    float *col, *yb, *dyt, *dwt;
};

/* Floats of the col region. */
static size_t col_floats(const struct conv_plan *pl)
{
    size_t col = plain_direct(pl) ? 0 : (size_t)pl->k * pl->group * pl->p;
    size_t wg = pl->packed ? ptl__weight_grad_floats(&pl->g, pl->m, pl->group) : 0;
    return col > wg ? col : wg;
}

static size_t lane_floats(const struct conv_plan *pl)
{
    size_t cols = (size_t)pl->group * pl->p, mk = (size_t)pl->m * pl->k;
    return col_floats(pl) + (pl->group > 1 ? (size_t)pl->m * cols : 0) +
           (pl->transpose ? (size_t)pl->m * cols + mk : 0);
}

static struct lane_bufs lane_bufs_at(const struct conv_plan *pl, float *workspace, int lane)
{
    size_t cols = (size_t)pl->group * pl->p;
    struct lane_bufs b;
    b.col = workspace + (size_t)lane * lane_floats(pl);
    b.yb = b.col + col_floats(pl);
    b.dyt = b.yb + (pl->group > 1 ? (size_t)pl->m * cols : 0);
    b.dwt = b.dyt + (pl->transpose ? (size_t)pl->m * cols : 0);
    return b;
}

/* ops/weight_panels.c's workspace for the forward and d_in. */
static size_t panel_floats(const struct conv_plan *pl)
{
    if (!pl->panels)
        return 0;
    size_t fwd = ptl__weight_panels_floats(pl->k, pl->p, pl->m, pl->panel_threads);
    size_t din = ptl__weight_panels_floats(pl->m, pl->p, pl->k, pl->panel_threads);
    return fwd > din ? fwd : din;
}

/* The unit path's workspace up to its weight panels: all lanes' unit buffers, then (without
 * pl->transpose) lanes_cap - 1 d_weight copies. */
static size_t unit_floats(const struct conv_plan *pl)
{
    return (size_t)pl->lanes_cap * lane_floats(pl) +
           (pl->transpose ? 0 : (size_t)(pl->lanes_cap - 1) * pl->m * pl->k);
}

/* With pl->unit_panels, after unit_floats(): the packed weights (for the forward, or
 * transposed for d_in: room for the larger), then each lane's ops/weight_panels.c scratch. */
static size_t unit_panel_weight_floats(const struct conv_plan *pl)
{
    size_t fwd = ptl__weight_panels_packed_floats(pl->k, pl->m);
    size_t din = ptl__weight_panels_packed_floats(pl->m, pl->k);
    return fwd > din ? fwd : din;
}

static size_t unit_panel_floats(const struct conv_plan *pl)
{
    if (!pl->unit_panels)
        return 0;
    return unit_panel_weight_floats(pl) +
           (size_t)pl->lanes_cap * ptl__weight_panels_scratch_floats();
}

static float *unit_panel_weights(const struct conv_plan *pl, float *workspace)
{
    return workspace + unit_floats(pl);
}

static float *unit_panel_scratch(const struct conv_plan *pl, float *workspace, int lane)
{
    return unit_panel_weights(pl, workspace) + unit_panel_weight_floats(pl) +
           (size_t)lane * ptl__weight_panels_scratch_floats();
}

/* The larger of the whole-batch 1x1 path's workspace and the unit path's. */
static size_t plan_workspace(const struct conv_plan *pl)
{
    size_t units = unit_floats(pl) + unit_panel_floats(pl);
    size_t panels = panel_floats(pl);
    return units > panels ? units : panels;
}

/* Threads for ops/weight_panels.c: all of them, up to what the workspace was sized for. */
static int panel_threads(const struct conv_plan *pl)
{
    int t = omp_get_max_threads();
    return t < pl->panel_threads ? t : pl->panel_threads;
}

int ptl_conv2d_output_size(const struct ptl_conv2d_shape *s, int *h_out, int *w_out)
{
    struct conv_plan pl;
    int rc = conv_plan_make("conv2d", s, &pl);
    if (rc)
        return rc;
    if (h_out)
        *h_out = pl.g.ho;
    if (w_out)
        *w_out = pl.g.wo;
    return PTL_OK;
}

size_t ptl_conv2d_workspace_floats(const struct ptl_conv2d_shape *s)
{
    struct conv_plan pl;
    if (conv_plan_make("conv2d", s, &pl))
        return 0; /* the op itself reports the bad shape */
    if (!ptl__winograd_applies(s))
        return plan_workspace(&pl);
    size_t wino = ptl__winograd_workspace_floats(s), gemm = plan_workspace(&pl);
    return wino_weight_grad(s) || wino >= gemm ? wino : gemm;
}

/* out (cnt, M, P) = tmp (M, cnt*P) regrouped per image, + bias (M) when given. */
static void scatter_out(float *out, const float *tmp, const float *bias, int cnt, int m, int p)
{
    const size_t ld = (size_t)cnt * p;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)cnt * m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int img = 0; img < cnt; img++) {
        for (int o = 0; o < m; o++) {
            const float *src = tmp + o * ld + (size_t)img * p;  /* (P) */
            float *dst = out + ((size_t)img * m + o) * p;       /* (P) */
            float b = bias ? bias[o] : 0.0f;
            for (int j = 0; j < p; j++)
                dst[j] = src[j] + b;
        }
    }
}

/* dyb (M, cnt*P) = d_out (cnt, M, P) laid side by side: the inverse of scatter_out. */
static void gather_dout(float *dyb, const float *d_out, int cnt, int m, int p)
{
    const size_t ld = (size_t)cnt * p;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)cnt * m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int img = 0; img < cnt; img++) {
        for (int o = 0; o < m; o++) {
            const float *src = d_out + ((size_t)img * m + o) * p; /* (P) */
            float *dst = dyb + o * ld + (size_t)img * p;          /* (P) */
            for (int j = 0; j < p; j++)
                dst[j] = src[j];
        }
    }
}

/* out (M, P) += bias (M) broadcast over the pixels of one image. */
static void add_bias(float *out, const float *bias, int m, int p)
{
#pragma omp parallel for schedule(static) if ((size_t)m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int o = 0; o < m; o++) {
        float *row = out + (size_t)o * p; /* (P) */
        for (int j = 0; j < p; j++)
            row[j] += bias[o];
    }
}

/* d_bias (M) += sums of d_out (N, M, P) over N and P; double across images for accuracy. */
static void bias_grad(float *d_bias, const float *d_out, int n, int m, int p)
{
#pragma omp parallel for schedule(static) if ((size_t)n * m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int o = 0; o < m; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            const float *row = d_out + ((size_t)i * m + o) * p; /* (P) */
            float part = 0.0f;
#pragma omp simd reduction(+ : part)
            for (int j = 0; j < p; j++)
                part += row[j];
            acc += part;
        }
        d_bias[o] += (float)acc;
    }
}

/* ptl_sgemm (BLIS threads) or ptl__sgemm_single (the calling thread: lanes) */
typedef int (*gemm_fn)(int trans_a, int trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);

/* Images [*n0, *n0 + *cnt) of unit u. */
static void unit_images(const struct conv_plan *pl, int u, int *n0, int *cnt)
{
    *n0 = u * pl->group;
    *cnt = pl->n - *n0 < pl->group ? pl->n - *n0 : pl->group;
}

/* With wp (weights packed by ops/weight_panels.c, lanes only) the unit's GEMM runs on them,
 * writing each image's output in place. */
static int forward_unit(float *out, const float *in, const float *weight, const float *bias,
                        const struct conv_plan *pl, const struct lane_bufs *b, int u,
                        gemm_fn gemm, const float *wp, float *scratch)
{
    const int m = pl->m, k = pl->k, p = pl->p;
    int n0, cnt;
    unit_images(pl, u, &n0, &cnt);
    const int cols = cnt * p;
    const float *x = in + (size_t)n0 * pl->g.c * pl->g.h * pl->g.w; /* (cnt, C_in, H, W) */
    float *y = out + (size_t)n0 * m * p;                            /* (cnt, C_out, P) */
    const float *col = x;                                           /* (K, cols) */
    if (!plain_direct(pl)) {
        /* im2col's and the other helpers' parallel loops run on this thread alone inside a
         * lane (nested), on all threads otherwise. */
        ptl__im2col(b->col, (size_t)cols, x, cnt, &pl->g);
        col = b->col;
    }
    if (wp) {
        ptl__weight_panels_run(y, (size_t)m * p, (size_t)p, col, (size_t)p, (size_t)cols, cnt, p, k,
                               m, wp, 0, scratch);
        for (int i = 0; bias && i < cnt; i++)
            add_bias(y + (size_t)i * m * p, bias, m, p);
        return PTL_OK;
    }
    if (pl->group == 1) {
        int rc = gemm(0, 0, m, p, k, 1.0f, weight, k, col, p, 0.0f, y, p);
        if (rc == 0 && bias)
            add_bias(y, bias, m, p);
        return rc;
    }
    int rc = gemm(0, 0, m, cols, k, 1.0f, weight, k, col, cols, 0.0f, b->yb, cols);
    if (rc == 0)
        scatter_out(y, b->yb, bias, cnt, m, p);
    return rc;
}

/* Unit u's d_out as one (C_out, cols) matrix: in place for a single image, else gathered into
 * b->yb. */
static const float *unit_dout(const float *d_out, const struct conv_plan *pl,
                              const struct lane_bufs *b, int u)
{
    int n0, cnt;
    unit_images(pl, u, &n0, &cnt);
    const float *dy = d_out + (size_t)n0 * pl->m * pl->p; /* (cnt, C_out, P) */
    if (pl->group == 1)
        return dy;
    gather_dout(b->yb, dy, cnt, pl->m, pl->p);
    return b->yb;
}

/* Unit u's share of d_weight: with pl->transpose, b->dwt (K, C_out) (+)= col x d_out^T (first:
 * the lane's first unit, which sets it), by ops/weight_grad.c when the unit runs on one
 * thread (single); else d_weight (C_out, K) += dyb x col^T, dyb from unit_dout(). */
static int weight_grad_unit(float *d_weight, const float *d_out, const float *dyb,
                            const float *in, const struct conv_plan *pl,
                            const struct lane_bufs *b, int u, int first, gemm_fn gemm,
                            int single)
{
    const int m = pl->m, k = pl->k, p = pl->p;
    int n0, cnt;
    unit_images(pl, u, &n0, &cnt);
    const int cols = cnt * p;
    const float *x = in + (size_t)n0 * pl->g.c * pl->g.h * pl->g.w; /* (cnt, C_in, H, W) */
    const float *dy = d_out + (size_t)n0 * m * p;                   /* (cnt, C_out, P) */
    if (pl->packed && single) {
        ptl__weight_grad(b->dwt, x, dy, cnt, &pl->g, m, b->col, first);
        return PTL_OK;
    }
    const float *col = x; /* (K, cols) */
    if (!plain_direct(pl)) {
        ptl__im2col(b->col, (size_t)cols, x, cnt, &pl->g);
        col = b->col;
    }
    if (pl->transpose) {
        for (int i = 0; i < cnt; i++) /* dyt rows i*P.. = image i's d_out (C_out, P)^T */
            ptl__transpose(b->dyt + (size_t)i * p * m, (size_t)m, dy + (size_t)i * m * p,
                           (size_t)p, m, p, 0);
        return gemm(0, 0, k, m, cols, 1.0f, col, cols, b->dyt, m, first ? 0.0f : 1.0f, b->dwt,
                    m);
    }
    return gemm(0, 1, m, k, cols, 1.0f, dyb, cols, col, cols, 1.0f, d_weight, k);
}

/* d_in += col2im(weight^T x dyb) for unit u, dyb from unit_dout(); with wpt (weight^T packed
 * by ops/weight_panels.c, lanes only) the GEMM runs on it. */
static int input_grad_unit(float *d_in, const float *dy, const float *weight,
                           const struct conv_plan *pl, const struct lane_bufs *b, int u,
                           gemm_fn gemm, const float *wpt, float *scratch)
{
    const int m = pl->m, k = pl->k, p = pl->p;
    int n0, cnt;
    unit_images(pl, u, &n0, &cnt);
    const int cols = cnt * p;
    float *dx = d_in + (size_t)n0 * pl->g.c * pl->g.h * pl->g.w; /* (cnt, C_in, H, W) */
    if (plain_direct(pl)) /* d_in (C_in, P) += weight^T (C_in, C_out) x dy: no col2im */
        return gemm(1, 0, k, p, m, 1.0f, weight, k, dy, p, 1.0f, dx, p);
    /* d_col (K, cols) = weight^T x dy, in the column buffer */
    int rc = PTL_OK;
    if (wpt)
        ptl__weight_panels_run(b->col, (size_t)p, (size_t)cols, dy, (size_t)p, (size_t)cols, cnt, p,
                               m, k, wpt, 0, scratch);
    else
        rc = gemm(1, 0, k, cols, m, 1.0f, weight, k, dy, cols, 0.0f, b->col, cols);
    if (rc == 0)
        ptl__col2im_add(dx, b->col, (size_t)cols, cnt, &pl->g);
    return rc;
}

int ptl_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const struct ptl_conv2d_shape *s, float *workspace)
{
    static const char op[] = "conv2d_forward";
    struct conv_plan pl;
    int rc = conv_plan_make(op, s, &pl);
    if (rc)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, weight);
    const int wino = ptl__winograd_applies(s);
    size_t need = wino ? ptl__winograd_workspace_floats(s) : plan_workspace(&pl);
    PTL_CHECK(workspace != NULL || need == 0,
              "%s: workspace is NULL but this shape needs %zu floats", op, need);
    if (wino)
        return ptl__winograd_forward(out, in, weight, bias, s, workspace);
    if (pl.panels) {
        ptl__weight_panels_gemm(out, in, pl.n, pl.k, pl.p, pl.m, weight, (size_t)pl.k, 1, 0,
                                workspace, panel_threads(&pl));
        if (bias)
            for (int i = 0; i < pl.n; i++)
                add_bias(out + (size_t)i * pl.m * pl.p, bias, pl.m, pl.p);
        return PTL_OK;
    }
    const int lanes = run_lanes(&pl);
    if (lanes > 1) {
        float *wp = pl.unit_panels ? unit_panel_weights(&pl, workspace) : NULL;
#pragma omp parallel num_threads(lanes)
        {
            const int lane = omp_get_thread_num();
            const struct lane_bufs b = lane_bufs_at(&pl, workspace, lane);
            float *scratch = wp ? unit_panel_scratch(&pl, workspace, lane) : NULL;
            if (wp)
                ptl__weight_panels_pack(wp, weight, pl.m, pl.k, (size_t)pl.k, 1);
            /* The shapes were checked by conv_plan_make: the GEMMs cannot fail. */
#pragma omp for schedule(static)
            for (int u = 0; u < pl.units; u++)
                (void)forward_unit(out, in, weight, bias, &pl, &b, u, ptl__sgemm_single, wp,
                                   scratch);
        }
        return PTL_OK;
    }
    const struct lane_bufs b = lane_bufs_at(&pl, workspace, 0);
    for (int u = 0; u < pl.units && rc == 0; u++)
        rc = forward_unit(out, in, weight, bias, &pl, &b, u, ptl_sgemm, NULL, NULL);
    return rc;
}

/* d_weight (C_out, K) += the lanes' d_weight^T sums, or the lane copies 1..lanes-1 (lane 0
 * accumulated in place), in lane order: deterministic for a given thread count. Called by
 * every thread of the parallel region (or outside one, with lanes = 1). */
static void sum_lanes(float *d_weight, const struct conv_plan *pl, float *workspace, int lanes)
{
    const int m = pl->m, k = pl->k;
    const size_t mk = (size_t)m * k;
    if (!pl->transpose) {
        const float *copies = workspace + (size_t)pl->lanes_cap * lane_floats(pl);
#pragma omp for schedule(static)
        for (size_t e = 0; e < mk; e++) {
            float acc = d_weight[e];
            for (int l = 1; l < lanes; l++)
                acc += copies[(size_t)(l - 1) * mk + e];
            d_weight[e] = acc;
        }
        return;
    }
    /* blocks of 64 rows of d_weight^T: lane 1.. summed into lane 0's, then added transposed */
    float *dwt0 = lane_bufs_at(pl, workspace, 0).dwt;
#pragma omp for schedule(static)
    for (int r0 = 0; r0 < k; r0 += 64) {
        int rows = k - r0 < 64 ? k - r0 : 64;
        float *blk = dwt0 + (size_t)r0 * m; /* (rows, C_out) */
        for (int l = 1; l < lanes; l++) {
            const float *add = lane_bufs_at(pl, workspace, l).dwt + (size_t)r0 * m;
            for (size_t e = 0; e < (size_t)rows * m; e++)
                blk[e] += add[e];
        }
        ptl__transpose(d_weight + r0, (size_t)k, blk, (size_t)m, rows, m, 1);
    }
}

int ptl_conv2d_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                        const float *in, const float *weight, const struct ptl_conv2d_shape *s,
                        float *workspace)
{
    static const char op[] = "conv2d_backward";
    struct conv_plan pl;
    int rc = conv_plan_make(op, s, &pl);
    if (rc)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, weight);
    const int wino = ptl__winograd_applies(s);
    size_t need = ptl_conv2d_workspace_floats(s);
    PTL_CHECK(workspace != NULL || need == 0 || (d_in == NULL && d_weight == NULL),
              "%s: workspace is NULL but this shape needs %zu floats", op, need);
    if (d_bias)
        bias_grad(d_bias, d_out, pl.n, pl.m, pl.p);
    if (d_in == NULL && d_weight == NULL)
        return PTL_OK;
    if (wino && wino_weight_grad(s))
        return ptl__winograd_backward(d_in, d_weight, d_out, in, weight, s, workspace);
    if (wino) { /* d_in by Winograd, d_weight below */
        if (d_in)
            rc = ptl__winograd_backward(d_in, NULL, d_out, in, weight, s, workspace);
        if (rc || d_weight == NULL)
            return rc;
        d_in = NULL;
    }
    if (d_in && pl.panels) { /* d_in (C_in, P) += weight^T x d_out_n, d_weight below */
        ptl__weight_panels_gemm(d_in, d_out, pl.n, pl.m, pl.p, pl.k, weight, 1, (size_t)pl.k, 1,
                                workspace, panel_threads(&pl));
        if (d_weight == NULL)
            return PTL_OK;
        d_in = NULL;
    }
    const int lanes = run_lanes(&pl);
    if (lanes > 1) {
        /* d_weight: each lane sums its units into its own d_weight^T (pl.transpose), or lane 0
         * into d_weight in place and lanes 1.. into zeroed copies; summed at the end. */
        const size_t mk = (size_t)pl.m * pl.k;
        float *copies = workspace + (size_t)pl.lanes_cap * lane_floats(&pl);
        float *wpt = d_in && pl.unit_panels ? unit_panel_weights(&pl, workspace) : NULL;
#pragma omp parallel num_threads(lanes)
        {
            const int lane = omp_get_thread_num();
            const struct lane_bufs b = lane_bufs_at(&pl, workspace, lane);
            float *scratch = wpt ? unit_panel_scratch(&pl, workspace, lane) : NULL;
            if (wpt) /* weight^T (K, C_out) */
                ptl__weight_panels_pack(wpt, weight, pl.k, pl.m, 1, (size_t)pl.k);
            float *dw = d_weight;
            if (d_weight && !pl.transpose && lane > 0) {
                dw = copies + (size_t)(lane - 1) * mk;
                memset(dw, 0, mk * sizeof *dw);
            }
            int first = 1;
            /* The shapes were checked by conv_plan_make: the GEMMs cannot fail. */
#pragma omp for schedule(static)
            for (int u = 0; u < pl.units; u++) {
                const float *dyb = d_in || !pl.transpose ? unit_dout(d_out, &pl, &b, u) : NULL;
                if (d_weight)
                    (void)weight_grad_unit(dw, d_out, dyb, in, &pl, &b, u, first,
                                           ptl__sgemm_single, 1);
                if (d_in)
                    (void)input_grad_unit(d_in, dyb, weight, &pl, &b, u, ptl__sgemm_single, wpt,
                                          scratch);
                first = 0;
            }
            if (d_weight && pl.transpose) {
                if (first) /* a lane without units adds nothing */
                    memset(b.dwt, 0, mk * sizeof *b.dwt);
#pragma omp barrier
            }
            if (d_weight)
                sum_lanes(d_weight, &pl, workspace, lanes);
        }
        return PTL_OK;
    }
    const struct lane_bufs b = lane_bufs_at(&pl, workspace, 0);
    for (int u = 0; u < pl.units && rc == 0; u++) {
        const float *dyb = d_in || !pl.transpose ? unit_dout(d_out, &pl, &b, u) : NULL;
        if (d_weight)
            rc = weight_grad_unit(d_weight, d_out, dyb, in, &pl, &b, u, u == 0, ptl_sgemm,
                                  omp_get_max_threads() == 1);
        if (rc == 0 && d_in)
            rc = input_grad_unit(d_in, dyb, weight, &pl, &b, u, ptl_sgemm, NULL, NULL);
    }
    if (rc == 0 && d_weight && pl.transpose) {
#pragma omp parallel
        sum_lanes(d_weight, &pl, workspace, 1);
    }
    return rc;
}
