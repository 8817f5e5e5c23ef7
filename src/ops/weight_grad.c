/* A conv's transposed weight gradient, d_weight^T (K, C_out) = sum_n col_n x d_out_n^T, with
 * BLIS's micro-kernel on panels packed here (layout in ops/gemm.h):
 * - output-channel panels: d_out_n transposed by rows (ops/transpose.c), every pixel of the
 *   unit, packed once;
 * - K panels: K is walked tap-major, i' = (kh*KW + kw)*C + c, so the lanes of a panel are
 *   consecutive channels of one tap (or of two, where a tap's channels end). With the images
 *   turned channels-last first, a panel row (one output pixel) is one or two contiguous
 *   copies of channels, or zeros where the tap sits on padding. A 1x1 stride-1 conv skips
 *   the channels-last copy: its panels are transposed straight from the NCHW images. The
 *   pixels go in chunks of KC, so a K panel stays in L1 while every output-channel panel
 *   passes over it.
 * A tile whose K lanes are one tap's channels and whose output channels are all real is
 * written into d_weight^T in place (im2col's row order: channel c of tap t is row c*KH*KW + t,
 * so the lanes are KH*KW*C_out floats apart); the others go through a small buffer.
 *
 * Why: im2col then one GEMM has BLIS pack the column matrix a second time, on skx with a
 * scalar strided loop, and for C_out = 64 each packed element feeds only 64 multiply-adds
 * (docs/performance.md, 2026-11-29). */
#include "ops/weight_grad.h"

#include <stdint.h>
#include <string.h>

#include "ops/gemm.h"
#include "ops/transpose.h"

/* Output pixels per chunk: a K panel (KC x 12 floats on skx, 24 KB) stays in L1. 128 was
 * slower, 256-1024 ran alike (64 -> 64 channels at 32x16; 64 -> 256 at 64x32). */
#define KC 512
/* Largest micro-kernel block handled (its K lanes are described on the stack). */
#define UK_MAX 64
#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

int ptl__weight_grad_available(void)
{
    return ptl__ukernel_fits(ptl__ukernel(), UK_MAX);
}

/* Lanes of an output-channel panel (ol) and of a K panel (cl): the output channels go on the
 * side the kernel stores contiguously (ptl__ukernel_sides), so in-place tiles write whole
 * columns of C_out. */
struct layout {
    size_t hwc, ap, bp, ct; /* floats of each region, rounded to 64 bytes */
};

/* 1x1, stride 1, no padding: image n's column matrix is the image itself. */
static int is_direct(const struct ptl__conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

static struct layout layout_of(const struct ptl__conv_geom *g, int c_out, int images)
{
    int ol, cl;
    ptl__ukernel_sides(ptl__ukernel(), &ol, &cl);
    const size_t cols = (size_t)images * g->ho * g->wo;
    const size_t panels = (size_t)(c_out + ol - 1) / ol;
    struct layout l;
    l.hwc = is_direct(g) ? 0 : round_up((size_t)images * g->h * g->w * g->c, ALIGN_FLOATS);
    l.ap = round_up(panels * ol * cols, ALIGN_FLOATS);
    l.bp = round_up((size_t)cl * (cols < KC ? cols : KC), ALIGN_FLOATS);
    l.ct = round_up((size_t)ol * cl, ALIGN_FLOATS);
    return l;
}

size_t ptl__weight_grad_floats(const struct ptl__conv_geom *g, int c_out, int images)
{
    if (!ptl__weight_grad_available())
        return 0;
    struct layout l = layout_of(g, c_out, images);
    return l.hwc + l.ap + l.bp + l.ct + ALIGN_FLOATS; /* + room to align the start */
}

/* Lanes [lane, lane + len) of a K panel: channels c.. of tap (kh, kw). */
struct run {
    int kh, kw, c, len, lane;
};

/* The runs of the K panel holding rows i0..i0+n of the tap-major K. */
static int panel_runs(struct run *runs, int i0, int n, const struct ptl__conv_geom *g)
{
    int count = 0;
    for (int l = 0; l < n;) {
        const int i = i0 + l, t = i / g->c, c = i % g->c;
        const int len = g->c - c < n - l ? g->c - c : n - l;
        runs[count++] = (struct run){t / g->kw, t % g->kw, c, len, l};
        l += len;
    }
    return count;
}

/* dst rows j < count (cl floats apart) get len floats from src rows j (step floats apart).
 * Fixed lengths for the common panel widths become plain moves (a memcpy call per 12 floats
 * costs more than the copy). */
static inline __attribute__((always_inline)) void copy_rows_len(float *restrict dst, int cl,
                                                                const float *restrict src,
                                                                size_t step, int count, int len)
{
    for (int j = 0; j < count; j++, dst += cl, src += step)
        memcpy(dst, src, sizeof(float) * (size_t)len);
}

static void copy_rows(float *restrict dst, int cl, const float *restrict src, size_t step,
                      int count, int len)
{
    switch (len) {
    case 16:
        copy_rows_len(dst, cl, src, step, count, 16);
        break;
    case 12:
        copy_rows_len(dst, cl, src, step, count, 12);
        break;
    case 8:
        copy_rows_len(dst, cl, src, step, count, 8);
        break;
    case 6:
        copy_rows_len(dst, cl, src, step, count, 6);
        break;
    default:
        for (int j = 0; j < count; j++, dst += cl, src += step)
            for (int l = 0; l < len; l++)
                dst[l] = src[l];
    }
}

static void zero_rows(float *dst, int cl, int count, int len)
{
    for (int j = 0; j < count; j++, dst += cl)
        for (int l = 0; l < len; l++)
            dst[l] = 0.0f;
}

/* bp (kn, cl): row j = the panel's lanes for output pixel q0 + j of the unit (image-major):
 * each run's channels of the input pixel its tap reads, zero on padding and past n lanes.
 * Walked by output rows, so each run's valid stretch is one strided copy loop. */
static void pack_k_panel(float *restrict bp, int cl, int n, const float *restrict hwc,
                         const struct run *runs, int nruns, int q0, int kn,
                         const struct ptl__conv_geom *g)
{
    const int p = g->ho * g->wo, wo = g->wo;
    const size_t img_floats = (size_t)g->h * g->w * g->c, col_step = (size_t)g->sw * g->c;
    if (n < cl)
        zero_rows(bp + n, cl, kn, cl - n);
    for (int j = 0; j < kn;) {
        const int q = q0 + j, img = q / p, oh = q % p / wo, ow0 = q % wo;
        const int seg = wo - ow0 < kn - j ? wo - ow0 : kn - j; /* this output row's pixels */
        const float *im = hwc + img * img_floats;              /* (H, W, C) */
        float *rows = bp + (size_t)j * cl;
        for (int r = 0; r < nruns; r++) {
            const struct run *u = &runs[r];
            float *dst = rows + u->lane;
            const int ih = oh * g->sh - g->ph + u->kh;
            int lo = 0, hi = 0;
            if (ih >= 0 && ih < g->h)
                ptl__conv_valid_range(wo, g->w, g->sw, g->pw, u->kw, &lo, &hi);
            /* the segment's columns ow0..ow0+seg: zero, copy, zero */
            lo = lo < ow0 ? ow0 : lo > ow0 + seg ? ow0 + seg : lo;
            hi = hi < lo ? lo : hi > ow0 + seg ? ow0 + seg : hi;
            zero_rows(dst, cl, lo - ow0, u->len);
            if (hi > lo) {
                const int iw = lo * g->sw - g->pw + u->kw;
                copy_rows(dst + (size_t)(lo - ow0) * cl, cl,
                          im + ((size_t)ih * g->w + iw) * g->c + u->c, col_step, hi - lo, u->len);
            }
            zero_rows(dst + (size_t)(hi - ow0) * cl, cl, ow0 + seg - hi, u->len);
        }
        j += seg;
    }
}

/* pack_k_panel for a 1x1 stride-1 conv: the panel's n channels (from c0) of pixels
 * q0..q0+kn transposed straight from the NCHW images, image by image (no channels-last copy:
 * for ResNet-50's 1x1 convs writing and rereading it took most of d_weight's time). */
static void pack_k_panel_direct(float *restrict bp, int cl, int n, const float *restrict x,
                                int c0, int q0, int kn, const struct ptl__conv_geom *g)
{
    const int p = g->ho * g->wo;
    if (n < cl)
        zero_rows(bp + n, cl, kn, cl - n);
    for (int j = 0; j < kn;) {
        const int q = q0 + j, img = q / p, pix = q % p;
        const int seg = p - pix < kn - j ? p - pix : kn - j;
        ptl__transpose(bp + (size_t)j * cl, (size_t)cl,
                       x + ((size_t)img * g->c + c0) * p + pix, (size_t)p, n, seg, 0);
        j += seg;
    }
}

/* dwt rows of the runs' (channel, tap)s, output channels o0..o0+rows, (+)= ct (ol x lanes). */
static void scatter_tile(float *restrict dwt, const float *restrict ct, int ol, const struct run *runs, int nruns,
                         int o0, int rows, int m, const struct ptl__conv_geom *g, int add)
{
    const int taps = g->kh * g->kw;
    for (int r = 0; r < nruns; r++) {
        const struct run *u = &runs[r];
        for (int j = 0; j < u->len; j++) {
            const float *src = ct + (size_t)(u->lane + j) * ol;
            float *dst = dwt + ((size_t)(u->c + j) * taps + u->kh * g->kw + u->kw) * m + o0;
            if (add)
                for (int o = 0; o < rows; o++)
                    dst[o] += src[o];
            else
                for (int o = 0; o < rows; o++)
                    dst[o] = src[o];
        }
    }
}

void ptl__weight_grad(float *dwt, const float *x, const float *dy, int images,
                      const struct ptl__conv_geom *g, int c_out, float *scratch, int first)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    int ol, cl;
    ptl__ukernel_sides(u, &ol, &cl);
    const int m = c_out, p = g->ho * g->wo, cols = images * p, hw = g->h * g->w;
    const int taps = g->kh * g->kw, k = g->c * taps, panels = (m + ol - 1) / ol;
    const struct layout l = layout_of(g, m, images);
    float *hwc = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *ap = hwc + l.hwc, *bp = ap + l.ap, *ct = bp + l.bp;

    /* the images channels-last (1x1: packed from NCHW instead); d_out as output-channel
     * panels over all the unit's pixels */
    const int direct = is_direct(g);
    for (int i = 0; i < images && !direct; i++)
        ptl__transpose(hwc + (size_t)i * hw * g->c, (size_t)g->c, x + (size_t)i * g->c * hw,
                       (size_t)hw, g->c, hw, 0);
    for (int b = 0; b < panels; b++) {
        const int rows = m - b * ol < ol ? m - b * ol : ol;
        float *pan = ap + (size_t)b * ol * cols;
        if (rows < ol)
            memset(pan, 0, sizeof(float) * (size_t)ol * cols);
        for (int i = 0; i < images; i++)
            ptl__transpose(pan + (size_t)i * p * ol, (size_t)ol,
                           dy + ((size_t)i * m + (size_t)b * ol) * p, (size_t)p, rows, p, 0);
    }

    struct run runs[UK_MAX];
    const long lane_step = (long)taps * m; /* one channel's row of dwt to the next's */
    for (int q0 = 0; q0 < cols; q0 += KC) {
        const int kn = cols - q0 < KC ? cols - q0 : KC;
        const int set = first && q0 == 0;
        for (int i0 = 0; i0 < k; i0 += cl) {
            const int n = k - i0 < cl ? k - i0 : cl;
            const int nruns = panel_runs(runs, i0, n, g);
            if (direct)
                pack_k_panel_direct(bp, cl, n, x, i0, q0, kn, g);
            else
                pack_k_panel(bp, cl, n, hwc, runs, nruns, q0, kn, g);
            const int one_tap = nruns == 1 && n == cl;
            float *row0 = dwt + ((size_t)runs[0].c * taps + runs[0].kh * g->kw + runs[0].kw) * m;
            for (int b = 0; b < panels; b++) {
                const float *a = ap + (size_t)b * ol * cols + (size_t)q0 * ol;
                const int rows = m - b * ol < ol ? m - b * ol : ol;
                if (one_tap && rows == ol) {
                    ptl__ukernel_run_sides(u, kn, a, bp, set ? 0.0f : 1.0f,
                                           row0 + (size_t)b * ol, lane_step, NULL, NULL);
                } else {
                    ptl__ukernel_run_sides(u, kn, a, bp, 0.0f, ct, ol, NULL, NULL);
                    scatter_tile(dwt, ct, ol, runs, nruns, b * ol, rows, m, g, !set);
                }
            }
        }
    }
}
