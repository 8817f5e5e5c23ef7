/* y_i = w_t x x_i for the images of a 1x1 conv (its input, or d_out for d_in), or for the
 * images side by side in one unit's column matrix, on BLIS's micro-kernel (layout in
 * ops/gemm.h) with panels packed here:
 * - channel panels: w_t cut into panels of `cl` rows, packed once per call by all threads;
 * - pixel panels: `pl` consecutive pixels of one image, per block of pixels and K chunk.
 * The pixels go on the side the micro-kernel stores contiguously, so a full tile is written
 * in place (pixels 1 float apart, rows y_row apart); edge tiles go through a small buffer.
 * Work items are blocks of BLOCK_PIXELS pixels (their pixel panels stay in L2 while each
 * channel panel's K chunk, in L1, passes over them); a whole 1x1 conv splits them further by
 * channel panels when there are too few blocks for the threads. Every output element is
 * computed by one thread in a fixed order, so the result does not depend on the thread count.
 *
 * Why: a BLIS GEMM per image packs the whole weight matrix again on every call (on skx with a
 * scalar strided loop): ResNet-50's 1024 -> 256 1x1 conv packs its 1 MB of weights 16 times
 * per batch of 16 (docs/performance.md, 2026-11-29). */
#include "ops/weight_panels.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "ops/gemm.h"

/* K per chunk: a channel panel's chunk (KC x 12 floats on skx, 12 KB) stays in L1. */
#define KC 256
/* Pixels per work item: the item's pixel panels (BLOCK_PIXELS x KC floats, 512 KB) in L2. */
#define BLOCK_PIXELS 512
/* Largest micro-kernel block taken (a sanity bound: the scratch grows with it). */
#define UK_MAX 64
#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

int ptl__weight_panels_apply(long p)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    if (!ptl__ukernel_fits(u, UK_MAX))
        return 0;
    int pl, cl;
    ptl__ukernel_sides(u, &pl, &cl);
    return p >= pl;
}

struct layout {
    size_t wp, thread; /* floats of each region, rounded to 64 bytes */
    int block_panels;  /* pixel panels per work item */
};

static struct layout layout_of(int k, int r)
{
    int pl, cl;
    ptl__ukernel_sides(ptl__ukernel(), &pl, &cl);
    struct layout l;
    l.block_panels = BLOCK_PIXELS / pl > 1 ? BLOCK_PIXELS / pl : 1;
    l.wp = round_up((size_t)(r + cl - 1) / cl * cl * k, ALIGN_FLOATS);
    l.thread = round_up((size_t)l.block_panels * pl * KC, ALIGN_FLOATS) +
               round_up((size_t)pl * cl, ALIGN_FLOATS);
    return l;
}

size_t ptl__weight_panels_floats(int k, int p, int r, int threads)
{
    if (!ptl__weight_panels_apply(p))
        return 0;
    struct layout l = layout_of(k, r);
    return l.wp + (size_t)(threads > 1 ? threads : 1) * l.thread + ALIGN_FLOATS;
}

size_t ptl__weight_panels_packed_floats(int k, int r)
{
    return layout_of(k, r).wp + ALIGN_FLOATS;
}

size_t ptl__weight_panels_scratch_floats(void)
{
    return layout_of(1, 1).thread + ALIGN_FLOATS;
}

static float *aligned(float *p)
{
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* a (kc, pl): a[kk*pl + i] = x[(k0 + kk)*x_row + q0 + i] for i < len; zero up to pl. */
static void pack_pixels(float *restrict a, int pl, int kc, int k0, const float *restrict x,
                        size_t x_row, int q0, int len)
{
    for (int kk = 0; kk < kc; kk++) {
        float *dst = a + (size_t)kk * pl;
        memcpy(dst, x + (size_t)(k0 + kk) * x_row + q0, sizeof(float) * (size_t)len);
        if (len < pl)
            memset(dst + len, 0, sizeof(float) * (size_t)(pl - len));
    }
}

/* Channel panel b of w_t: wp[b*K*cl + kk*cl + j] = w_t(b*cl + j, kk), zero past r rows. */
static void pack_channels(float *restrict wp, int b, int cl, int r, size_t k,
                          const float *restrict w, size_t w_rs, size_t w_cs)
{
    float *d = wp + (size_t)b * k * cl;
    const int rows = r - b * cl < cl ? r - b * cl : cl;
    for (size_t kk = 0; kk < k; kk++) {
        const float *src = w + (size_t)b * cl * w_rs + kk * w_cs;
        for (int j = 0; j < rows; j++)
            d[kk * cl + j] = src[(size_t)j * w_rs];
        for (int j = rows; j < cl; j++)
            d[kk * cl + j] = 0.0f;
    }
}

void ptl__weight_panels_pack(float *wp, const float *w, int r, int k, size_t w_rs, size_t w_cs)
{
    int pl, cl;
    ptl__ukernel_sides(ptl__ukernel(), &pl, &cl);
    const int cpan = (r + cl - 1) / cl;
    wp = aligned(wp);
#pragma omp for schedule(static)
    for (int b = 0; b < cpan; b++)
        pack_channels(wp, b, cl, r, (size_t)k, w, w_rs, w_cs);
}

/* One call's operands (ptl__weight_panels_run's arguments). */
struct operands {
    float *y;
    size_t y_img, y_row;
    const float *x;
    size_t x_img, x_row;
    int n, p, k, r;
    const float *wp;
    int accumulate;
};

/* Pixel panels [q0, q1) (panel q: image q / ppi, pixels from q % ppi * pl) against channel
 * panels [b0, b1), K chunk by K chunk; scratch: the pixel panels' block, then an edge tile. */
static void run_block(const struct operands *o, int q0, int q1, int b0, int b1, float *scratch)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    int pl, cl;
    ptl__ukernel_sides(u, &pl, &cl);
    const struct layout l = layout_of(o->k, o->r);
    const int ppi = (o->p + pl - 1) / pl;
    float *ap = aligned(scratch);
    float *ct = ap + round_up((size_t)l.block_panels * pl * KC, ALIGN_FLOATS);
    for (int k0 = 0; k0 < o->k; k0 += KC) {
        const int kc = o->k - k0 < KC ? o->k - k0 : KC;
        const int add = o->accumulate || k0 > 0;
        for (int q = q0; q < q1; q++) {
            const int img = q / ppi, px = q % ppi * pl;
            pack_pixels(ap + (size_t)(q - q0) * pl * kc, pl, kc, k0, o->x + img * o->x_img,
                        o->x_row, px, o->p - px < pl ? o->p - px : pl);
        }
        for (int b = b0; b < b1; b++) {
            const float *bw = o->wp + ((size_t)b * o->k + k0) * cl;
            const int rows = o->r - b * cl < cl ? o->r - b * cl : cl;
            for (int q = q0; q < q1; q++) {
                const int img = q / ppi, px = q % ppi * pl;
                const int len = o->p - px < pl ? o->p - px : pl;
                const float *a = ap + (size_t)(q - q0) * pl * kc;
                float *c = o->y + img * o->y_img + (size_t)b * cl * o->y_row + px;
                if (len == pl && rows == cl) {
                    ptl__ukernel_run_sides(u, kc, a, bw, add ? 1.0f : 0.0f, c, (long)o->y_row,
                                           NULL, NULL);
                    continue;
                }
                ptl__ukernel_run_sides(u, kc, a, bw, 0.0f, ct, pl, NULL, NULL);
                for (int j = 0; j < rows; j++) {
                    float *dst = c + (size_t)j * o->y_row;
                    const float *src = ct + (size_t)j * pl;
                    if (add)
                        for (int i = 0; i < len; i++)
                            dst[i] += src[i];
                    else
                        for (int i = 0; i < len; i++)
                            dst[i] = src[i];
                }
            }
        }
    }
}

void ptl__weight_panels_run(float *y, size_t y_img, size_t y_row, const float *x, size_t x_img,
                            size_t x_row, int n, int p, int k, int r, const float *wp,
                            int accumulate, float *scratch)
{
    int pl, cl;
    ptl__ukernel_sides(ptl__ukernel(), &pl, &cl);
    const struct layout l = layout_of(k, r);
    const struct operands o = {y, y_img, y_row, x, x_img, x_row, n, p, k, r, aligned((float *)wp),
                               accumulate};
    const int panels = n * ((p + pl - 1) / pl);
    for (int q0 = 0; q0 < panels; q0 += l.block_panels)
        run_block(&o, q0, q0 + l.block_panels < panels ? q0 + l.block_panels : panels, 0,
                  (r + cl - 1) / cl, scratch);
}

void ptl__weight_panels_gemm(float *y, const float *x, int n, int k, int p, int r,
                             const float *w, size_t w_rs, size_t w_cs, int accumulate,
                             float *workspace, int threads)
{
    int pl, cl;
    ptl__ukernel_sides(ptl__ukernel(), &pl, &cl);
    const struct layout l = layout_of(k, r);
    const int cpan = (r + cl - 1) / cl, panels = n * ((p + pl - 1) / pl);
    const int blocks = (panels + l.block_panels - 1) / l.block_panels;
    threads = threads > 1 ? threads : 1;
    int parts = blocks >= 2 * threads ? 1 : (2 * threads + blocks - 1) / blocks;
    parts = parts < cpan ? parts : cpan;
    const int items = blocks * parts;
    float *wp = aligned(workspace);
    const struct operands o = {y, (size_t)r * p, (size_t)p, x, (size_t)k * p, (size_t)p,
                               n, p, k, r, wp, accumulate};

#pragma omp parallel num_threads(threads)
    {
        ptl__weight_panels_pack(wp, w, r, k, w_rs, w_cs);
        float *scratch = wp + l.wp + (size_t)omp_get_thread_num() * l.thread;
#pragma omp for schedule(static)
        for (int it = 0; it < items; it++) {
            const int blk = it / parts, part = it % parts, q0 = blk * l.block_panels;
            run_block(&o, q0, q0 + l.block_panels < panels ? q0 + l.block_panels : panels,
                      (int)((long)cpan * part / parts), (int)((long)cpan * (part + 1) / parts),
                      scratch);
        }
    }
}
