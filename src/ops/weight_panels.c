/* y_n = w_t x x_n for a batch of images (a 1x1 conv), on BLIS's micro-kernel (layout in
 * ops/gemm.h) with panels packed here:
 * - channel panels: w_t cut into panels of `cl` rows, packed once per call by all threads;
 * - pixel panels: `pl` consecutive pixels of one image, per block of pixels and K chunk.
 * The pixels go on the side the micro-kernel stores contiguously, so a full tile is written
 * in place into the NCHW output (pixels 1 float apart, rows P apart); edge tiles go
 * through a small buffer. Work items are blocks of BLOCK_PIXELS pixels (their pixel panels
 * stay in L2 while each channel panel's K chunk, in L1, passes over them), split further by
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
/* Largest micro-kernel block handled (the edge buffer is sized by it). */
#define UK_MAX 64
#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* Lanes of a pixel panel (pl) and of a channel panel (cl): pixels on the side the kernel
 * stores contiguously. */
static void lanes_of(const struct ptl__ukernel *u, int *pl, int *cl)
{
    *pl = u->row_pref ? u->nr : u->mr;
    *cl = u->row_pref ? u->mr : u->nr;
}

int ptl__weight_panels_apply(long p)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    if (!ptl__ukernel_fits(u, UK_MAX))
        return 0;
    int pl, cl;
    lanes_of(u, &pl, &cl);
    return p >= pl;
}

struct layout {
    size_t wp, thread; /* floats of each region, rounded to 64 bytes */
    int block_panels;          /* pixel panels per work item */
};

static struct layout layout_of(int k, int r)
{
    int pl, cl;
    lanes_of(ptl__ukernel(), &pl, &cl);
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

/* a (kc, pl): a[kk*pl + i] = x(k0 + kk, q0 + i) of an image x (k, p), for i < len; zero up to
 * pl. */
static void pack_pixels(float *restrict a, int pl, int kc, int k0, const float *restrict x,
                        int p, int q0, int len)
{
    for (int kk = 0; kk < kc; kk++) {
        float *dst = a + (size_t)kk * pl;
        memcpy(dst, x + (size_t)(k0 + kk) * p + q0, sizeof(float) * (size_t)len);
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

/* The (pixel, row) tile of a panel pair, element (i, j) at c[i + j*ld]. */
static void tile(const struct ptl__ukernel *u, int kc, const float *a, const float *b,
                 float beta, float *c, long ld)
{
    if (u->row_pref)
        ptl__ukernel_run(u, kc, b, a, beta, c, ld, 1, NULL, NULL);
    else
        ptl__ukernel_run(u, kc, a, b, beta, c, 1, ld, NULL, NULL);
}

void ptl__weight_panels_gemm(float *y, const float *x, int n, int k, int p, int r,
                             const float *w, size_t w_rs, size_t w_cs, int accumulate,
                             float *workspace, int threads)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    int pl, cl;
    lanes_of(u, &pl, &cl);
    const struct layout l = layout_of(k, r);
    const size_t img_in = (size_t)k * p, img_out = (size_t)r * p;
    const int cpan = (r + cl - 1) / cl, ppi = (p + pl - 1) / pl, panels = n * ppi;
    const int blocks = (panels + l.block_panels - 1) / l.block_panels;
    threads = threads > 1 ? threads : 1;
    int parts = blocks >= 2 * threads ? 1 : (2 * threads + blocks - 1) / blocks;
    parts = parts < cpan ? parts : cpan;
    const int items = blocks * parts;

    float *wp = (float *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);
    float *thread0 = wp + l.wp;

#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
        for (int b = 0; b < cpan; b++)
            pack_channels(wp, b, cl, r, (size_t)k, w, w_rs, w_cs);
        float *ap = thread0 + (size_t)omp_get_thread_num() * l.thread;
        float *ct = ap + round_up((size_t)l.block_panels * pl * KC, ALIGN_FLOATS);
#pragma omp for schedule(static)
        for (int it = 0; it < items; it++) {
            const int blk = it / parts, part = it % parts;
            const int b0 = (int)((long)cpan * part / parts);
            const int b1 = (int)((long)cpan * (part + 1) / parts);
            const int q0 = blk * l.block_panels;
            const int q1 = q0 + l.block_panels < panels ? q0 + l.block_panels : panels;
            for (int k0 = 0; k0 < k; k0 += KC) {
                const int kc = k - k0 < KC ? k - k0 : KC;
                const int add = accumulate || k0 > 0;
                for (int q = q0; q < q1; q++) {
                    const int img = q / ppi, px = q % ppi * pl;
                    pack_pixels(ap + (size_t)(q - q0) * pl * kc, pl, kc, k0, x + img * img_in, p,
                                px, p - px < pl ? p - px : pl);
                }
                for (int b = b0; b < b1; b++) {
                    const float *bw = wp + ((size_t)b * k + k0) * cl;
                    const int rows = r - b * cl < cl ? r - b * cl : cl;
                    for (int q = q0; q < q1; q++) {
                        const int img = q / ppi, px = q % ppi * pl;
                        const int len = p - px < pl ? p - px : pl;
                        const float *a = ap + (size_t)(q - q0) * pl * kc;
                        float *c = y + img * img_out + (size_t)b * cl * p + px;
                        if (len == pl && rows == cl) {
                            tile(u, kc, a, bw, add ? 1.0f : 0.0f, c, p);
                            continue;
                        }
                        tile(u, kc, a, bw, 0.0f, ct, pl);
                        for (int j = 0; j < rows; j++) {
                            float *dst = c + (size_t)j * p;
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
    }
}
