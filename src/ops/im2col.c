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
 * patch row becomes one short gather loop - per-row overhead dominated the 4x2 case. */
#include "ops/im2col.h"

#include <string.h>

#include "ops/check.h"

/* Kernel widths up to this use the precomputed range table; wider ones compute in place. */
#define KW_TABLE 64
/* Rows shorter than this are copied by a loop rather than memcpy. */
#define SHORT_ROW 16
/* Largest gather table (ints, on the stack: 16 KiB). */
#define GATHER_MAX 4096

/* Output columns ow in [*lo, *hi) read input column ow*s - p + k inside [0, w). */
static void valid_range(int wo, int w, int s, int p, int k, int *lo, int *hi)
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
        valid_range(g->wo, g->w, g->sw, g->pw, kw, &t->lo[kw], &t->hi[kw]);
}

static void range_of(const struct ranges *t, const struct ptl__conv_geom *g, int kw, int *lo,
                     int *hi)
{
    if (kw < KW_TABLE) {
        *lo = t->lo[kw];
        *hi = t->hi[kw];
    } else {
        valid_range(g->wo, g->w, g->sw, g->pw, kw, lo, hi);
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

void ptl__im2col(float *col, size_t ld_col, const float *in, int images,
                 const struct ptl__conv_geom *g)
{
    const size_t img_cols = (size_t)g->ho * g->wo, plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * g->kh * g->kw * img_cols;
    int idx[GATHER_MAX];
    if (gather_table(idx, g)) {
        im2col_gather(col, ld_col, in, images, g, idx);
        return;
    }
    struct ranges t;
    ranges_init(&t, g);
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

void ptl__col2im_add(float *d_in, const float *col, size_t ld_col, int images,
                     const struct ptl__conv_geom *g)
{
    const size_t img_cols = (size_t)g->ho * g->wo, plane_len = (size_t)g->h * g->w;
    const size_t work = (size_t)images * g->c * g->kh * g->kw * img_cols;
    int idx[GATHER_MAX];
    if (gather_table(idx, g)) {
        col2im_gather(d_in, col, ld_col, images, g, idx);
        return;
    }
    struct ranges t;
    ranges_init(&t, g);
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
