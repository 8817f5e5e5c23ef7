/* im2col / col2im for conv2d (layout in im2col.h).
 *
 * Loop order: threads split (channel, image) pairs with the channel outer, so one thread
 * walks consecutive images of a channel and fills each column-matrix row as one contiguous
 * stream even when images are tiny (ResNet layer4: 4x2 pixels per image, 32 images a row).
 * col2im writes only the (channel, image) plane it owns: no two threads share an input
 * element. Per kernel column kw the range of output columns that land inside the image is
 * computed once per call, so the inner loops are branch-free copies: memcpy for long rows,
 * a plain loop for short ones (a call per 2-float row costs more than the copy).
 * Small images (KH*KW*HO*WO <= GATHER_MAX) skip the row logic altogether: a table gives, for
 * every kernel tap and output pixel, the input offset (or -1 on padding), and each image's
 * patch row becomes one short gather loop - per-row overhead dominated the 4x2 case.
 * Stride 1 with W_out == W ("same" width: every 3x3 pad-1 conv of a ResNet) is the fastest
 * case: a kernel tap then shifts the whole plane by one offset, so the valid output rows are
 * one contiguous copy (or add), followed by zeroing the few edge columns that the kernel puts
 * on padding. That is what the per-image and the batched schedules mostly run. */
#include "ops/im2col.h"

#include <string.h>

#include "ops/check.h"

/* Kernel widths up to this use the precomputed range table; wider ones compute in place. */
#define KW_TABLE 64
/* Rows shorter than this are copied by a loop rather than memcpy. */
#define SHORT_ROW 16
/* Output planes smaller than this use the gather table rather than the shift path. */
#define SHIFT_MIN_PIXELS 64
/* Largest gather table (ints, on the stack: 16 KiB). */
#define GATHER_MAX 4096

void ptl__conv_valid_range(int wo, int w, int s, int p, int k, int *lo, int *hi)
{
    int off = k - p; /* input index of ow = 0 */
    int l = off >= 0 ? 0 : (-off + s - 1) / s;
    int h = (w - 1 - off) >= 0 ? (w - 1 - off) / s + 1 : 0;
    if (h > wo)
        h = wo;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

struct ranges {
    int lo[KW_TABLE], hi[KW_TABLE];
};

static void ranges_init(struct ranges *t, const struct ptl__conv_geom *g)
{
    for (int kw = 0; kw < g->kw && kw < KW_TABLE; kw++)
        ptl__conv_valid_range(g->wo, g->w, g->sw, g->pw, kw, &t->lo[kw], &t->hi[kw]);
}

static void range_of(const struct ranges *t, const struct ptl__conv_geom *g, int kw, int *lo,
                     int *hi)
{
    if (kw < KW_TABLE) {
        *lo = t->lo[kw];
        *hi = t->hi[kw];
    } else {
        ptl__conv_valid_range(g->wo, g->w, g->sw, g->pw, kw, lo, hi);
    }
}

/* dst (WO) <- one output row of kernel tap (kh, kw) from input row src (W) */
static inline void copy_row(float *dst, const float *src, int wo, int lo, int hi, int s, int off)
{
    for (int ow = 0; ow < lo; ow++)
        dst[ow] = 0.0f;
    if (lo < hi) {
        const float *from = src + (lo * s + off); /* input of ow = lo */
        if (s == 1 && hi - lo >= SHORT_ROW)
            memcpy(dst + lo, from, sizeof(float) * (size_t)(hi - lo));
        else if (s == 1)
            for (int j = 0; j < hi - lo; j++)
                dst[lo + j] = from[j];
        else if (s == 2) /* with a constant stride the loads become shuffles (ResNet's stem) */
#pragma omp simd
            for (int j = 0; j < hi - lo; j++)
                dst[lo + j] = from[2 * (size_t)j];
        else
            for (int j = 0; j < hi - lo; j++)
                dst[lo + j] = from[(size_t)j * s];
    }
    for (int ow = hi; ow < wo; ow++)
        dst[ow] = 0.0f;
}

/* idx (KH*KW, HO*WO): input offset h*W + w read by each tap and output pixel, -1 on padding.
 * Returns 0 when the table would not fit. */
static int gather_table(int *idx, const struct ptl__conv_geom *g)
{
    size_t p = (size_t)g->ho * g->wo;
    if ((size_t)g->kh * g->kw * p > GATHER_MAX)
        return 0;
    for (int kh = 0; kh < g->kh; kh++)
        for (int kw = 0; kw < g->kw; kw++) {
            int *row = idx + ((size_t)kh * g->kw + kw) * p; /* (HO*WO) */
            for (int oh = 0; oh < g->ho; oh++)
                for (int ow = 0; ow < g->wo; ow++) {
                    int ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                    int inside = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
                    row[oh * g->wo + ow] = inside ? ih * g->w + iw : -1;
                }
        }
    return 1;
}

static void im2col_gather(float *col, size_t ld_col, const float *in, int images,
                          const struct ptl__conv_geom *g, const int *idx)
{
    const int p = g->ho * g->wo, taps = g->kh * g->kw;
    const size_t plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * taps * p;
#pragma omp parallel for collapse(2) schedule(static) if (work >= PTL_OMP_MIN_ELEMENTS)
    for (int c = 0; c < g->c; c++) {
        for (int t = 0; t < taps; t++) {
            const int *ix = idx + (size_t)t * p;                   /* (HO*WO) */
            float *dst = col + ((size_t)c * taps + t) * ld_col;    /* (images*HO*WO) */
            for (int img = 0; img < images; img++, dst += p) {
                const float *plane = in + ((size_t)img * g->c + c) * plane_len; /* (H, W) */
                for (int j = 0; j < p; j++)
                    dst[j] = ix[j] >= 0 ? plane[ix[j]] : 0.0f;
            }
        }
    }
}

static void col2im_gather(float *d_in, const float *col, size_t ld_col, int images,
                          const struct ptl__conv_geom *g, const int *idx)
{
    const int p = g->ho * g->wo, taps = g->kh * g->kw;
    const size_t plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * taps * p;
#pragma omp parallel for collapse(2) schedule(static) if (work >= PTL_OMP_MIN_ELEMENTS)
    for (int c = 0; c < g->c; c++) {
        for (int img = 0; img < images; img++) {
            float *plane = d_in + ((size_t)img * g->c + c) * plane_len; /* (H, W) */
            for (int t = 0; t < taps; t++) {
                const int *ix = idx + (size_t)t * p; /* (HO*WO) */
                const float *src = col + ((size_t)c * taps + t) * ld_col + (size_t)img * p;
                for (int j = 0; j < p; j++)
                    if (ix[j] >= 0)
                        plane[ix[j]] += src[j];
            }
        }
    }
}

/* The shift path applies (consecutive output rows read consecutive input rows) and pays:
 * on tiny planes its memcpy/memset calls cost more than the gather loop. */
static int shift_ok(const struct ptl__conv_geom *g)
{
    return g->sh == 1 && g->sw == 1 && g->wo == g->w && g->ho * g->wo >= SHIFT_MIN_PIXELS;
}

/* Output rows oh in [*lo, *hi) read input row oh - ph + kh inside [0, h) (stride 1). */
static void shift_rows(const struct ptl__conv_geom *g, int kh, int *lo, int *hi)
{
    ptl__conv_valid_range(g->ho, g->h, 1, g->ph, kh, lo, hi);
}

/* dst (HO, WO) <- plane (H, W) shifted by tap (kh, kw); stride 1, WO == W. */
static void shift_copy(float *restrict dst, const float *restrict plane,
                       const struct ptl__conv_geom *g, int kh, int kw, int lo_w, int hi_w)
{
    const int wo = g->wo, hw = g->h * g->w;
    int r0, r1;
    shift_rows(g, kh, &r0, &r1);
    /* rows on the padding; most taps have none at one end or both (no empty memset calls:
     * they showed in a resnet18 step's profile) */
    if (r0 > 0)
        memset(dst, 0, sizeof(float) * (size_t)r0 * wo);
    if (r1 < g->ho)
        memset(dst + (size_t)r1 * wo, 0, sizeof(float) * (size_t)(g->ho - r1) * wo);
    if (r0 >= r1)
        return;
    /* dst[j], j in [r0*wo, r1*wo), reads plane[j + shift]; clip to the plane, the clipped
     * ends are edge columns that are zeroed below anyway. */
    long shift = (long)(kh - g->ph) * g->w + (kw - g->pw);
    long j0 = (long)r0 * wo, j1 = (long)r1 * wo;
    if (j0 + shift < 0)
        j0 = -shift;
    if (j1 + shift > hw)
        j1 = hw - shift;
    if (j0 < j1)
        memcpy(dst + j0, plane + j0 + shift, sizeof(float) * (size_t)(j1 - j0));
    for (int oh = r0; oh < r1; oh++) {
        float *row = dst + (size_t)oh * wo;
        for (int ow = 0; ow < lo_w; ow++)
            row[ow] = 0.0f;
        for (int ow = hi_w; ow < wo; ow++)
            row[ow] = 0.0f;
    }
}

/* plane (H, W) += src (HO, WO) shifted back by tap (kh, kw); zeroes src's edge columns first
 * (they sit on padding) so that the rest is one contiguous add. */
static void shift_add(float *restrict plane, float *restrict src, const struct ptl__conv_geom *g,
                      int kh, int kw, int lo_w, int hi_w)
{
    const int wo = g->wo, hw = g->h * g->w;
    int r0, r1;
    shift_rows(g, kh, &r0, &r1);
    if (r0 >= r1)
        return;
    for (int oh = r0; oh < r1; oh++) {
        float *row = src + (size_t)oh * wo;
        for (int ow = 0; ow < lo_w; ow++)
            row[ow] = 0.0f;
        for (int ow = hi_w; ow < wo; ow++)
            row[ow] = 0.0f;
    }
    long shift = (long)(kh - g->ph) * g->w + (kw - g->pw);
    long j0 = (long)r0 * wo, j1 = (long)r1 * wo;
    if (j0 + shift < 0)
        j0 = -shift;
    if (j1 + shift > hw)
        j1 = hw - shift;
    float *to = plane + shift;
#pragma omp simd
    for (long j = j0; j < j1; j++)
        to[j] += src[j];
}

static void im2col_shift(float *col, size_t ld_col, const float *in, int images,
                         const struct ptl__conv_geom *g, const struct ranges *t)
{
    const size_t img_cols = (size_t)g->ho * g->wo, plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * g->kh * g->kw * img_cols;
#pragma omp parallel for collapse(2) schedule(static) if (work >= PTL_OMP_MIN_ELEMENTS)
    for (int c = 0; c < g->c; c++) {
        for (int img = 0; img < images; img++) {
            const float *plane = in + ((size_t)img * g->c + c) * plane_len; /* (H, W) */
            for (int kh = 0; kh < g->kh; kh++)
                for (int kw = 0; kw < g->kw; kw++) {
                    size_t r = ((size_t)c * g->kh + kh) * g->kw + kw;
                    int lo, hi;
                    range_of(t, g, kw, &lo, &hi);
                    shift_copy(col + r * ld_col + img * img_cols, plane, g, kh, kw, lo, hi);
                }
        }
    }
}

static void col2im_shift(float *d_in, float *col, size_t ld_col, int images,
                         const struct ptl__conv_geom *g, const struct ranges *t)
{
    const size_t img_cols = (size_t)g->ho * g->wo, plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * g->kh * g->kw * img_cols;
#pragma omp parallel for collapse(2) schedule(static) if (work >= PTL_OMP_MIN_ELEMENTS)
    for (int c = 0; c < g->c; c++) {
        for (int img = 0; img < images; img++) {
            float *plane = d_in + ((size_t)img * g->c + c) * plane_len; /* (H, W) */
            for (int kh = 0; kh < g->kh; kh++)
                for (int kw = 0; kw < g->kw; kw++) {
                    size_t r = ((size_t)c * g->kh + kh) * g->kw + kw;
                    int lo, hi;
                    range_of(t, g, kw, &lo, &hi);
                    shift_add(plane, col + r * ld_col + img * img_cols, g, kh, kw, lo, hi);
                }
        }
    }
}

void ptl__im2col(float *col, size_t ld_col, const float *in, int images,
                 const struct ptl__conv_geom *g)
{
    const size_t img_cols = (size_t)g->ho * g->wo, plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * g->kh * g->kw * img_cols;
    struct ranges t;
    ranges_init(&t, g);
    if (shift_ok(g)) {
        im2col_shift(col, ld_col, in, images, g, &t);
        return;
    }
    int idx[GATHER_MAX];
    if (gather_table(idx, g)) {
        im2col_gather(col, ld_col, in, images, g, idx);
        return;
    }
#pragma omp parallel for collapse(2) schedule(static) if (work >= PTL_OMP_MIN_ELEMENTS)
    for (int c = 0; c < g->c; c++) {
        for (int img = 0; img < images; img++) {
            const float *plane = in + ((size_t)img * g->c + c) * plane_len; /* (H, W) */
            for (int kh = 0; kh < g->kh; kh++) {
                for (int kw = 0; kw < g->kw; kw++) {
                    size_t r = ((size_t)c * g->kh + kh) * g->kw + kw;
                    float *dst = col + r * ld_col + img * img_cols; /* (HO, WO) */
                    int lo, hi;
                    range_of(&t, g, kw, &lo, &hi);
                    for (int oh = 0; oh < g->ho; oh++, dst += g->wo) {
                        int ih = oh * g->sh - g->ph + kh;
                        if (ih < 0 || ih >= g->h)
                            memset(dst, 0, sizeof(float) * (size_t)g->wo);
                        else
                            copy_row(dst, plane + (size_t)ih * g->w, g->wo, lo, hi, g->sw,
                                     kw - g->pw);
                    }
                }
            }
        }
    }
}

void ptl__col2im_add(float *d_in, float *col, size_t ld_col, int images,
                     const struct ptl__conv_geom *g)
{
    const size_t img_cols = (size_t)g->ho * g->wo, plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * g->kh * g->kw * img_cols;
    struct ranges t;
    ranges_init(&t, g);
    if (shift_ok(g)) {
        col2im_shift(d_in, col, ld_col, images, g, &t);
        return;
    }
    int idx[GATHER_MAX];
    if (gather_table(idx, g)) {
        col2im_gather(d_in, col, ld_col, images, g, idx);
        return;
    }
#pragma omp parallel for collapse(2) schedule(static) if (work >= PTL_OMP_MIN_ELEMENTS)
    for (int c = 0; c < g->c; c++) {
        for (int img = 0; img < images; img++) {
            float *plane = d_in + ((size_t)img * g->c + c) * plane_len; /* (H, W) */
            for (int kh = 0; kh < g->kh; kh++) {
                for (int kw = 0; kw < g->kw; kw++) {
                    size_t r = ((size_t)c * g->kh + kh) * g->kw + kw;
                    const float *src = col + r * ld_col + img * img_cols; /* (HO, WO) */
                    int lo, hi;
                    range_of(&t, g, kw, &lo, &hi);
                    if (lo >= hi)
                        continue;
                    for (int oh = 0; oh < g->ho; oh++, src += g->wo) {
                        int ih = oh * g->sh - g->ph + kh;
                        if (ih < 0 || ih >= g->h)
                            continue;
                        /* input of ow = lo */
                        float *dst = plane + (size_t)ih * g->w + (lo * g->sw - g->pw + kw);
                        const float *s = src + lo;
                        if (g->sw == 1)
                            for (int j = 0; j < hi - lo; j++)
                                dst[j] += s[j];
                        else
                            for (int j = 0; j < hi - lo; j++)
                                dst[(size_t)j * g->sw] += s[j];
                    }
                }
            }
        }
    }
}
