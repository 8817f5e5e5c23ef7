/* Winograd F(2x2, 3x3) convolution. See winograd.h for the maths.
 *
 * Tiles: output tile (i, j) of an image covers outputs rows 2i..2i+1, columns 2j..2j+1 and reads
 * the input patch rows 2i-1..2i+2, columns 2j-1..2j+2 (zero outside: padding 1, and the partial
 * last tile of an odd size). Tiles are numbered over the batch: t = (img * th + i) * tw + j.
 *
 * Forward and backward data run one fused pass per block of tiles (a few micro-panels of
 * tiles, one OpenMP thread per block): the input transform writes the block's 16 V[xi] straight
 * into the packed layout of BLIS's sgemm micro-kernel, the kernel multiplies them with the
 * transformed weights (packed once per call), and the output transform turns each slice of
 * output channels back into pixels while it is still in cache. Nothing the size of the batch
 * passes through memory twice, and BLIS packs nothing (docs/performance.md: the same 16 GEMMs
 * ran at 96 GFLOPS through bli_sgemm, 137 on packed panels through the micro-kernel).
 * Tiles go on the side of the micro-kernel along which it stores C contiguously (B's nr for a
 * row-preferring kernel such as haswell's 6x16, A's mr for a column-preferring one such as
 * skx's 32x12), so that the output transform reads each channel's tiles as one contiguous run
 * (with tiles on B's side the skx kernel left it a strided gather: forward 5.0 -> 3.4 ms for
 * 64 -> 64 channels at 32x16, batch 32, 2 threads, Zen 5, with the AVX2 copies below).
 *
 * Backward weights sums dU[xi] += (A dY A^T)[xi] x V[xi]^T over chunks of tile rows (K = tiles:
 * long products; dot_gemm for small weights, BLIS GEMMs for large ones), then maps dU back with
 * G^T dU G.
 *
 * The transform loops that run on whole rows (input_tiles, block_input, block_output) and
 * dot_gemm have an AVX2 copy (PTL_SIMD_CLONES); dout_tiles has none, as its AVX2 copy was no
 * faster (slower on 8x4 planes).
 *
 * Workspace (every region 64-byte aligned):
 *   forward           Up (C_out rows, K = C_in) | one block buffer per thread
 *   backward weights  dU [16][C_out][C_in] | X [16][C_in][T] | Y [16][C_out][T]
 *   backward data     Up (C_in rows, K = C_out, the turned kernel) | block buffers
 * The two backward phases run one after the other and share the space. */
#include "ops/winograd.h"
#include "ops/winograd4.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "ops/check.h"
#include "ops/gemm.h"
#include "ops/vmath.h"
#include "ptl/core.h"

/* Winograd beats im2col from these channel counts and tiles per batch on; below, the transforms
 * and the transformed weights cost more than the 2.25x fewer multiplications save. Measured
 * fwd+bwd, Winograd / im2col time, 1-2 threads: 32x16 planes at 16 channels 0.7-0.85x, at 32
 * 1.0-1.1x, at 64 1.2-1.5x; 512 channels at 256+ tiles 1.2-1.4x.
 * With WINO_WIDE_CHANNELS in and out, from WINO_WIDE_MIN_TILES: once the blocks were sized to
 * give every thread one (wino_make), Zen 4, 2 threads, batch 16 at 8x4 (128 tiles), im2col /
 * Winograd time per pass: 512 channels 1.1-1.7x (ResNet-50's layer4), 256 1.24-1.38x, 128
 * 0.98-1.27x, 64 0.92-0.99x; at 64 tiles (batch 32 at 4x2) 512 channels 0.9-1.2x, 256
 * 0.86-1.48x, 128 0.87-1.09x.
 * With WINO_FEW_WEIGHTS (C_in x C_out) from WINO_FEW_MIN_TILES: once few tiles shared one
 * block (fused_few), the same, fwd+bwd, im2col / Winograd time: 512 -> 512 at 64 tiles
 * 1.28x (ResNet-18's layer4 at 128x64, batch 32; 1.35x on one thread), at 32 tiles 1.05x;
 * 256 -> 512 at 64 tiles 0.96-1.08x, 256 -> 256 about 1.0x (so not those). */
#define WINO_MIN_CHANNELS 64
#define WINO_MIN_TILES 256
#define WINO_WIDE_CHANNELS 256
#define WINO_WIDE_MIN_TILES 128
#define WINO_FEW_WEIGHTS (512 * 512)
#define WINO_FEW_MIN_TILES 32
/* The weight gradient's 16 products dU[xi] = Y[xi] X[xi]^T (K = tiles; winograd4.c's 36 too)
 * run as row dot products (dot_gemm) below PTL_WINO_DOT_MAX_WEIGHTS (winograd.h) = C_in *
 * C_out, through BLIS from there: measured on Zen 5, 2 threads, d_weight of a batch of 32:
 * 64 -> 64 channels at 32x16 9.1 -> 6.9 ms, 128 at 16x8 5.8 either way, 256 at 8x4 4.8 -> 6.3
 * (dot_gemm reads all of X once per DOT_M rows of Y, which BLIS's packed blocks avoid). */
/* Tiles per chunk of the weight gradient: its GEMMs need a wide T to run at speed (64 was
 * clearly slower), and the chunk's 16*(C_in+C_out)*T floats should stay in the last-level
 * cache. Through BLIS 256-1024 measured alike, 2048 slower; dot_gemm sums each block of dU
 * once per chunk and runs best at 1024 (64 channels: 8.9 ms at 128 tiles, 8.4 at 256, 7.4 at
 * 512, 7.0 at 1024, 7.1 at 2048). */
#define WINO_CHUNK_TILES 512
#define DOT_CHUNK_TILES 1024
/* Tiles per block of the weight-gradient transform loops (SIMD lanes over a tile row). */
#define JB 32
/* Fused blocks: at least BLOCK_TILES tiles (whole micro-panels: 48 with haswell's 16 tile
 * lanes, 64 with skx's 32), and the output channels in slices small enough that a slice's 16
 * results (SLICE_FLOATS: 16 x 96 x 48 floats, 295 KB) stay in L2 until the output transform
 * reads them. 32, 48 and 64 tiles ran alike in a GEMM-only test (134-138 GFLOPS, 64 -> 256
 * channels, 2 threads). */
#define BLOCK_TILES 48
#define SLICE_FLOATS (16 * 96 * 48)
/* With large weights (C_in * C_out above WIDE_WEIGHTS: 4 MB packed) each block reads them
 * all from the last-level cache or memory: wider blocks (and narrower slices, to keep the
 * slice in L2) read them fewer times: 512x512 at 256 tiles, fwd+bwd 79 GFLOPS at 48 tiles
 * per block, 103 at 128 (2 threads). */
#define WIDE_WEIGHTS (256 * 256)
#define WIDE_TILES 128
/* Few tiles with large weights (above WIDE_WEIGHTS): at most FEW_MAX_TILES tiles in the batch
 * make one block that all threads share (fused_few), each thread taking slices of output
 * channels and transforming the weights of its slice itself (16 x mb x K floats, about
 * FEW_SLICE_FLOATS: stays in L2) instead of the whole call's transformed weights going through
 * memory first (16 MB at 512 -> 512 channels, for 64 tiles' worth of products). */
#define FEW_MAX_TILES 128
#define FEW_SLICE_FLOATS (16 * 24 * 512)
#define FEW_INPUT_CHANNELS 16
/* Largest micro-kernel block the fused driver takes, and so the most tiles in a block (its
 * per-tile arrays are on the stack). */
#define UK_MAX 64
#define NB_MAX (WIDE_TILES + UK_MAX)
_Static_assert(FEW_MAX_TILES + UK_MAX <= NB_MAX, "a shared block must fit the per-tile arrays");
/* Most threads the workspace has block buffers for (bounded by the cores anyway). */
#define SLOTS_MAX 16
#define ALIGN_FLOATS 16 /* 64 bytes */

static const float zeros[2 * JB + 2];

struct wino {
    int n, c, m, h, w; /* batch, C_in, C_out, H = H_out, W = W_out */
    int th, tw;        /* tiles per column and per row of an image */
    long rows;         /* tile rows in the batch: n * th */
    long ntiles;       /* tiles in the batch: rows * tw */
    int dot;           /* the weight gradient's products run on dot_gemm, not BLIS */
    int chunk_rows;    /* tile rows per weight-gradient chunk */
    size_t tiles;      /* tiles per full chunk: chunk_rows * tw */
    int lt, lc;        /* lanes of a tile micro-panel (the kernel's stored side) and of a
                        * channel micro-panel (ptl__ukernel_sides) */
    int nb, mb;        /* fused block: tiles (whole tile panels), output channels per slice */
    int slots;         /* block buffers in the workspace */
    int few;           /* one block of all the batch's tiles, threads taking slices (fused_few) */
};

static int ukernel_usable(const struct ptl__ukernel *u)
{
    return ptl__ukernel_fits(u, UK_MAX);
}

static void wino_make(const struct ptl_conv2d_shape *s, struct wino *g)
{
    g->n = s->n;
    g->c = s->c_in;
    g->m = s->c_out;
    g->h = s->h;
    g->w = s->w;
    g->th = (s->h + 1) / 2;
    g->tw = (s->w + 1) / 2;
    g->rows = (long)s->n * g->th;
    g->ntiles = g->rows * g->tw;
    g->dot = (long)g->m * g->c < PTL_WINO_DOT_MAX_WEIGHTS;
    long cr = (g->dot ? DOT_CHUNK_TILES : WINO_CHUNK_TILES) / g->tw;
    if (cr < 1)
        cr = 1;
    if (cr > g->rows)
        cr = g->rows;
    g->chunk_rows = (int)cr;
    g->tiles = (size_t)cr * g->tw;
    const struct ptl__ukernel *u = ptl__ukernel();
    const int usable = ukernel_usable(u);
    g->lt = g->lc = 1;
    if (usable)
        ptl__ukernel_sides(u, &g->lt, &g->lc);
    /* Threads never exceed the cores this process may use, so sizing by them now holds. */
    int cap = ptl_threads_available();
    g->slots = cap < SLOTS_MAX ? cap : SLOTS_MAX;
    /* Blocks are the fused passes' unit of parallel work: no wider than a thread's share of
     * the tiles (one block of 128 tiles left ResNet-50's layer4 at 8x4, batch 16, on one
     * thread: forward 15 -> 9-11 ms on two). */
    long want = (long)g->m * g->c > WIDE_WEIGHTS ? WIDE_TILES : BLOCK_TILES;
    long share = (g->ntiles + g->slots - 1) / g->slots;
    want = share < want ? share : want;
    g->nb = (int)((want + g->lt - 1) / g->lt * g->lt); /* <= NB_MAX */
    int rows = SLICE_FLOATS / (16 * g->nb) / g->lc * g->lc;
    g->mb = rows < g->lc ? g->lc : rows;
    g->few = (long)g->m * g->c > WIDE_WEIGHTS && g->ntiles <= FEW_MAX_TILES;
    if (g->few) {
        int k = g->c > g->m ? g->c : g->m;
        g->nb = (int)((g->ntiles + g->lt - 1) / g->lt * g->lt);
        rows = FEW_SLICE_FLOATS / (16 * k) / g->lc * g->lc;
        g->mb = rows < g->lc ? g->lc : rows;
    }
}

int ptl__winograd_applies(const struct ptl_conv2d_shape *s)
{
    long long tiles = (long long)s->n * ((s->h + 1) / 2) * ((s->w + 1) / 2);
    int wide = s->c_in >= WINO_WIDE_CHANNELS && s->c_out >= WINO_WIDE_CHANNELS;
    long long min_tiles = (long long)s->c_in * s->c_out >= WINO_FEW_WEIGHTS ? WINO_FEW_MIN_TILES
                          : wide                                            ? WINO_WIDE_MIN_TILES
                                                                            : WINO_MIN_TILES;
    return s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 &&
           s->pad_w == 1 && s->c_in >= WINO_MIN_CHANNELS && s->c_out >= WINO_MIN_CHANNELS &&
           tiles >= min_tiles && ukernel_usable(ptl__ukernel());
}

int ptl__winograd_few_tiles(const struct ptl_conv2d_shape *s)
{
    struct wino g;
    wino_make(s, &g);
    return g.few;
}

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* Floats from one packed micro-panel (width x k) to the next: each starts 64-byte aligned. */
static size_t panel_stride(int width, int k)
{
    return round_up((size_t)width * k, ALIGN_FLOATS);
}

/* Floats of the packed transformed weights: `rows` channels in whole lc-panels, K = k. */
static size_t packed_floats(const struct wino *g, int rows, int k)
{
    return 16 * (size_t)((rows + g->lc - 1) / g->lc) * panel_stride(g->lc, k);
}

/* Floats from one transform xi to the next in a block buffer: its tile panels over k channels,
 * its slice of results (ptl__wino_xi_stride: no power-of-two steps between the 16 streams). */
static size_t tiles_xs(const struct wino *g, int k)
{
    return ptl__wino_xi_stride((size_t)(g->nb / g->lt) * panel_stride(g->lt, k));
}

static size_t slice_xs(const struct wino *g)
{
    return ptl__wino_xi_stride((size_t)g->mb * g->nb);
}

/* Floats of one thread's block buffer for k input channels: the block's packed V (16 x k x nb)
 * and one slice of results (16 x mb x nb). */
static size_t block_floats(const struct wino *g, int k)
{
    return 16 * (tiles_xs(g, k) + slice_xs(g));
}

/* fused_few: floats from one transform to the next in a slice's transformed weights (mb
 * channels, K = k). */
static size_t few_weight_xs(const struct wino *g, int k)
{
    return ptl__wino_xi_stride((size_t)(g->mb / g->lc) * panel_stride(g->lc, k));
}

/* fused_few's workspace for k input channels: the shared block's V, then per thread a slice's
 * transformed weights and results. */
static size_t few_floats(const struct wino *g, int k)
{
    return 16 * tiles_xs(g, k) + g->slots * 16 * (few_weight_xs(g, k) + slice_xs(g));
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

size_t ptl__winograd_workspace_floats(const struct ptl_conv2d_shape *s)
{
    struct wino g;
    wino_make(s, &g);
    size_t fwd = g.few ? few_floats(&g, g.c)
                       : packed_floats(&g, g.m, g.c) + g.slots * block_floats(&g, g.c);
    size_t bwd_data = g.few ? few_floats(&g, g.m)
                            : packed_floats(&g, g.c, g.m) + g.slots * block_floats(&g, g.m);
    size_t bwd_weight = 16 * (ptl__wino_xi_stride((size_t)g.m * g.c) +
                              ptl__wino_xi_stride(g.tiles * g.c) +
                              ptl__wino_xi_stride(g.tiles * g.m));
    size_t f4 = ptl__winograd4_applies(s) ? ptl__winograd4_workspace_floats(s) : 0;
    /* + room to align the start */
    return max_size(f4, max_size(fwd, max_size(bwd_data, bwd_weight)) + ALIGN_FLOATS);
}

static float *align_up(float *p)
{
    uintptr_t a = ((uintptr_t)p + 63) & ~(uintptr_t)63;
    return (float *)a;
}

/* ---- transforms ---- */

/* Offset of channel ch's (H, W) plane, in an (N, cc, H, W) tensor, of the image that holds
 * global tile row r; *i gets the row's index within that image. */
static inline size_t tile_row_plane(const struct wino *g, int cc, int ch, long r, int *i)
{
    *i = (int)(r % g->th);
    return ((size_t)(r / g->th) * cc + ch) * (size_t)g->h * g->w;
}

/* out[(4a + b) * xs + j], j < nj <= JB: B^T d B of the 4x4 input patches of nj consecutive tiles
 * along a tile row of the (H, W) plane p, the first patch's top-left corner at row y0, column
 * x0 (zero outside the plane). Rows are loaded whole, so the loops run over contiguous columns.
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], applied to the rows, then the columns. */
static inline __attribute__((always_inline)) void tile_row_input(float *restrict out, size_t xs,
                                                                 const float *p, int y0, int x0,
                                                                 int nj, const struct wino *g)
{
    const int ncol = 2 * nj + 2;
    const int lo = x0 < 0 ? -x0 : 0, hi = g->w - x0 < ncol ? g->w - x0 : ncol;
    /* Rows above/below the plane read zeros; so do the columns beyond it (t below). */
    const float *rp[4];
    int off[4];
    for (int r = 0; r < 4; r++) {
        int y = y0 + r, inside = y >= 0 && y < g->h;
        rp[r] = inside ? p + (size_t)y * g->w : zeros;
        off[r] = inside ? x0 : 0;
    }
    float t[4][2 * JB + 2];
    for (int q = 0; q < lo; q++)
        t[0][q] = t[1][q] = t[2][q] = t[3][q] = 0.0f;
#pragma omp simd
    for (int q = lo; q < hi; q++) {
        float d0 = rp[0][off[0] + q], d1 = rp[1][off[1] + q];
        float d2 = rp[2][off[2] + q], d3 = rp[3][off[3] + q];
        t[0][q] = d0 - d2;
        t[1][q] = d1 + d2;
        t[2][q] = d2 - d1;
        t[3][q] = d1 - d3;
    }
    for (int q = hi; q < ncol; q++)
        t[0][q] = t[1][q] = t[2][q] = t[3][q] = 0.0f;
    for (int a = 0; a < 4; a++) {
        const float *e = t[a];
        float *o0 = out + (size_t)(4 * a) * xs, *o1 = o0 + xs, *o2 = o1 + xs, *o3 = o2 + xs;
#pragma omp simd
        for (int j = 0; j < nj; j++) {
            float e0 = e[2 * j], e1 = e[2 * j + 1], e2 = e[2 * j + 2], e3 = e[2 * j + 3];
            o0[j] = e0 - e2;
            o1[j] = e1 + e2;
            o2[j] = e2 - e1;
            o3[j] = e1 - e3;
        }
    }
}

/* v [16][cc][rows*tw] = B^T d B of the 4x4 input patches of tile rows r0..r0+rows of x
 * (N, cc, H, W). */
static PTL_SIMD_CLONES void input_tiles(float *v, const float *x, int cc, const struct wino *g,
                                        long r0, int rows)
{
    const int h = g->h, w = g->w, tw = g->tw;
    const size_t ld = (size_t)rows * tw, xs = ptl__wino_xi_stride((size_t)cc * ld);
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < cc; ch++) {
        for (int rr = 0; rr < rows; rr++) {
            int i;
            const float *p = x + tile_row_plane(g, cc, ch, r0 + rr, &i); /* (H, W) */
            float *dst = v + (size_t)ch * ld + (size_t)rr * tw;
            /* The loop is latency-bound on short rows: fetch the rows two tile rows ahead. */
            for (int k = 0; k < 4; k++) {
                int y = 2 * i + 3 + k;
                if (y < h)
                    for (int q = 0; q < w; q += 16)
                        __builtin_prefetch(p + (size_t)y * w + q);
            }
            for (int j0 = 0; j0 < tw; j0 += JB)
                tile_row_input(dst + j0, xs, p, 2 * i - 1, 2 * j0 - 1,
                               tw - j0 < JB ? tw - j0 : JB, g);
        }
    }
}

/* v [16][cc][rows*tw] = A dY A^T of the 2x2 blocks of dy (N, cc, H, W) (zero beyond the
 * image), the adjoint of the output transform. A = [1 0; 1 1; 1 -1; 0 -1]. */
static void dout_tiles(float *v, const float *dy, int cc, const struct wino *g, long r0, int rows)
{
    const int h = g->h, w = g->w, tw = g->tw;
    const size_t ld = (size_t)rows * tw, xs = ptl__wino_xi_stride((size_t)cc * ld);
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < cc; ch++) {
        for (int rr = 0; rr < rows; rr++) {
            int i;
            const float *p = dy + tile_row_plane(g, cc, ch, r0 + rr, &i);
            const float *src[2] = {p + (size_t)(2 * i) * w,
                                   2 * i + 1 < h ? p + (size_t)(2 * i + 1) * w : NULL};
            float *dst = v + (size_t)ch * ld + (size_t)rr * tw;
            for (int j0 = 0; j0 < tw; j0 += JB) {
                int nj = tw - j0 < JB ? tw - j0 : JB;
                int ncol = 2 * nj, col0 = 2 * j0;
                int hi = w - col0 < ncol ? w - col0 : ncol;
                /* Inside the plane the rows are read in place; at the last row of an odd H
                 * or the last column of an odd W, from a copy padded with zeros (copying
                 * every row cost a third of this function: short memcpys). */
                const float *e0 = src[0] + col0, *e1 = src[1] ? src[1] + col0 : NULL;
                float e[2][2 * JB];
                if (!e1 || hi < ncol) {
                    for (int k = 0; k < 2; k++) {
                        int q = 0;
                        if (src[k])
                            for (; q < hi; q++)
                                e[k][q] = src[k][col0 + q];
                        for (; q < ncol; q++)
                            e[k][q] = 0.0f;
                    }
                    e0 = e[0];
                    e1 = e[1];
                }
                /* Tile j's block (a b; c d): rows of A dY are (a b), (a+c b+d), (a-c b-d),
                 * (-c -d); each row (p q) then gives p, p+q, p-q, -q. One pass, 16 stores. */
                float *o = dst + j0;
#pragma omp simd
                for (int j = 0; j < nj; j++) {
                    const float a = e0[2 * j], b = e0[2 * j + 1];
                    const float c = e1[2 * j], d = e1[2 * j + 1];
                    const float p1 = a + c, q1 = b + d, p2 = a - c, q2 = b - d;
                    o[j] = a;
                    o[xs + j] = a + b;
                    o[2 * xs + j] = a - b;
                    o[3 * xs + j] = -b;
                    o[4 * xs + j] = p1;
                    o[5 * xs + j] = p1 + q1;
                    o[6 * xs + j] = p1 - q1;
                    o[7 * xs + j] = -q1;
                    o[8 * xs + j] = p2;
                    o[9 * xs + j] = p2 + q2;
                    o[10 * xs + j] = p2 - q2;
                    o[11 * xs + j] = -q2;
                    o[12 * xs + j] = -c;
                    o[13 * xs + j] = -c - d;
                    o[14 * xs + j] = -c + d;
                    o[15 * xs + j] = d;
                }
            }
        }
    }
}

/* ---- transformed weights ---- */

/* u[(4a + b) * stride] = the 16 values G g G^T of the kernel g (3, 3).
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. Named scalars, no arrays: with t[4][3] on
 * the stack every kernel stalled on storing t by elements and reading it back as vectors. */
static inline __attribute__((always_inline)) void g_row(float *u, size_t stride, float a0,
                                                        float a1, float a2)
{
    u[0] = a0;
    u[stride] = 0.5f * (a0 + a1 + a2);
    u[2 * stride] = 0.5f * (a0 - a1 + a2);
    u[3 * stride] = a2;
}

static inline __attribute__((always_inline)) void
kernel_tile_of(float *u, size_t stride, float g00, float g01, float g02, float g10, float g11,
               float g12, float g20, float g21, float g22)
{
    /* rows of G g, then each row times G^T */
    g_row(u, stride, g00, g01, g02);
    g_row(u + 4 * stride, stride, 0.5f * (g00 + g10 + g20), 0.5f * (g01 + g11 + g21),
          0.5f * (g02 + g12 + g22));
    g_row(u + 8 * stride, stride, 0.5f * (g00 - g10 + g20), 0.5f * (g01 - g11 + g21),
          0.5f * (g02 - g12 + g22));
    g_row(u + 12 * stride, stride, g20, g21, g22);
}

static inline __attribute__((always_inline)) void kernel_tile(float *u, size_t stride,
                                                              const float *k)
{
    kernel_tile_of(u, stride, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]);
}

/* The 16 transformed weight matrices as channel micro-panels of lc lanes, element (channel j,
 * k) at panel[k * lc + j] (the micro-kernel's packed A layout for a row-preferring kernel, B's
 * for a column-preferring one): forward, U[xi] (C_out channels, K = C_in); turned (backward
 * data), the 180-degree turned kernel transposed, U[turn xi]^T (C_in channels, K = C_out).
 * Lanes past the last channel are zero.
 *
 * G J = P G with P swapping rows 0 and 3, so the turned kernel's U'[a][b] = U[p(a)][p(b)],
 * p = (3 1 2 0); the permutation is its own inverse. */
static const int turn16[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};

/* Where the kernel of panel lane j, column k sits in weight (m, c, 3, 3): j * row_step +
 * k * col_step floats from the panel's first kernel. */
static void pack_steps(const struct wino *g, int turned, size_t *row_step, size_t *col_step)
{
    *row_step = turned ? 9 : (size_t)g->c * 9;
    *col_step = turned ? (size_t)g->c * 9 : 9;
}

/* Column k = col of panel pn, one kernel per lane, into up (the panel's start in transform 0;
 * xs floats from one transform to the next). For the last panel when it is partial. */
static inline __attribute__((always_inline)) void pack_panel_col(float *up, size_t xs,
                                                                  const float *weight,
                                                                  const struct wino *g,
                                                                  int turned, int pn, int col)
{
    const int lanes = g->lc, rows = turned ? g->c : g->m;
    size_t row_step, col_step;
    pack_steps(g, turned, &row_step, &col_step);
    const int row0 = pn * lanes, full = rows - row0 < lanes ? rows - row0 : lanes;
    const float *src = weight + (size_t)row0 * row_step + (size_t)col * col_step;
    float u[16][UK_MAX];
#pragma omp simd
    for (int j = 0; j < full; j++)
        kernel_tile(&u[0][j], UK_MAX, src + (size_t)j * row_step);
    for (int xi = 0; xi < 16; xi++) {
        float *dst = up + (size_t)(turned ? turn16[xi] : xi) * xs + (size_t)col * lanes;
        int j = 0;
        for (; j < full; j++)
            dst[j] = u[xi][j];
        for (; j < lanes; j++)
            dst[j] = 0.0f;
    }
}

/* Whole panel columns pack in runs (ptl__wino_pack_offsets): column by column, 30% of a
 * 512 x 512 forward at 64 tiles went to packing. cols = 0: the per-column path does it all. */
#define PACK_LANES PTL_WINO_PACK_LANES
struct pack_run {
    int cols; /* panel columns per run */
    int offs[PACK_LANES];
};

static void pack_run_make(struct pack_run *r, const struct wino *g, int turned)
{
    size_t row_step, col_step;
    pack_steps(g, turned, &row_step, &col_step);
    r->cols = ptl__wino_pack_offsets(r->offs, g->lc, row_step, col_step);
}

/* Columns col0..col0+nc (nc <= r->cols) of the whole panel pn, as pack_panel_col. */
static inline __attribute__((always_inline)) void
pack_panel_run(float *up, size_t xs, const float *weight, const struct wino *g, int turned,
               const struct pack_run *r, int pn, int col0, int nc)
{
    size_t row_step, col_step;
    pack_steps(g, turned, &row_step, &col_step);
    const int lanes = g->lc, n = nc * lanes;
    const float *src = weight + (size_t)pn * lanes * row_step + (size_t)col0 * col_step;
    float u[16][PACK_LANES];
#pragma omp simd
    for (int e = 0; e < n; e++) {
        /* int indices, one per tap, so the vectoriser can gather (gcc 12 loads lane by lane) */
        const int o = r->offs[e];
        kernel_tile_of(&u[0][e], PACK_LANES, src[o], src[o + 1], src[o + 2], src[o + 3],
                       src[o + 4], src[o + 5], src[o + 6], src[o + 7], src[o + 8]);
    }
    for (int xi = 0; xi < 16; xi++)
        memcpy(up + (size_t)(turned ? turn16[xi] : xi) * xs + (size_t)col0 * lanes, u[xi],
               sizeof(float) * (size_t)n);
}

/* Columns col0..col0+nc of panel pn: in runs when the panel is whole. */
static inline __attribute__((always_inline)) void
pack_panel_cols(float *up, size_t xs, const float *weight, const struct wino *g, int turned,
                const struct pack_run *r, int pn, int col0, int nc)
{
    const int rows = turned ? g->c : g->m;
    if (r->cols > 0 && (pn + 1) * g->lc <= rows) {
        pack_panel_run(up, xs, weight, g, turned, r, pn, col0, nc);
    } else {
        for (int col = col0; col < col0 + nc; col++)
            pack_panel_col(up, xs, weight, g, turned, pn, col);
    }
}

/* All panels, shared among the team's threads, a run of columns per item. */
static PTL_SIMD_CLONES void pack_weights(float *up, const float *weight, const struct wino *g,
                                         int turned)
{
    const int lanes = g->lc, rows = turned ? g->c : g->m, k = turned ? g->m : g->c;
    const size_t ps = panel_stride(lanes, k), panels = (size_t)(rows + lanes - 1) / lanes;
    const size_t xs = panels * ps;
    struct pack_run r;
    pack_run_make(&r, g, turned);
    const int step = r.cols > 0 ? r.cols : 1, runs = (k + step - 1) / step;
    const long items = (long)panels * runs;
#pragma omp for schedule(static)
    for (long it = 0; it < items; it++) {
        const int pn = (int)(it / runs), col0 = (int)(it % runs) * step;
        pack_panel_cols(up + pn * ps, xs, weight, g, turned, &r, pn, col0,
                        k - col0 < step ? k - col0 : step);
    }
}

/* Panels pn0..pn0+np on the calling thread alone, into up (panel pn0 first, xs floats from one
 * transform to the next): the weights of one slice of output channels. r: pack_run_make's,
 * made once per pass. */
static PTL_SIMD_CLONES void pack_slice(float *up, size_t xs, const float *weight,
                                       const struct wino *g, int turned, const struct pack_run *r,
                                       int pn0, int np)
{
    const int lanes = g->lc, k = turned ? g->m : g->c;
    const size_t ps = panel_stride(lanes, k);
    const int step = r->cols > 0 ? r->cols : 1;
    for (int pn = 0; pn < np; pn++)
        for (int col0 = 0; col0 < k; col0 += step)
            pack_panel_cols(up + pn * ps, xs, weight, g, turned, r, pn0 + pn, col0,
                            k - col0 < step ? k - col0 : step);
}

/* d_weight (m, c, 3, 3) += G^T dU G, the adjoint of kernel_tile, dU [16][m][c]. */
static void weight_grad(float *d_weight, const float *du, int m, int c)
{
    const size_t mc = (size_t)m * c, xs = ptl__wino_xi_stride(mc);
#pragma omp for schedule(static)
    for (size_t idx = 0; idx < mc; idx++) {
        float s[3][4]; /* G^T dU */
        for (int b = 0; b < 4; b++) {
            float d0 = du[(0 + b) * xs + idx], d1 = du[(4 + b) * xs + idx];
            float d2 = du[(8 + b) * xs + idx], d3 = du[(12 + b) * xs + idx];
            s[0][b] = d0 + 0.5f * (d1 + d2);
            s[1][b] = 0.5f * (d1 - d2);
            s[2][b] = 0.5f * (d1 + d2) + d3;
        }
        float *k = d_weight + idx * 9;
        for (int a = 0; a < 3; a++) {
            k[3 * a + 0] += s[a][0] + 0.5f * (s[a][1] + s[a][2]);
            k[3 * a + 1] += 0.5f * (s[a][1] - s[a][2]);
            k[3 * a + 2] += 0.5f * (s[a][1] + s[a][2]) + s[a][3];
        }
    }
}

/* ---- fused blocks: forward and backward data ---- */

/* A run of a block's tiles along one tile row: lanes l0..l0+n, tiles j0..j0+n-1 of tile row i
 * of image img. in: channel 0 of the image in the input; out: the first tile's first output
 * (row 2i, column 2j0) in channel 0 of the output. tail: the last tile has no second column
 * (odd W); below: the tiles have a second row (not the last row of an odd H). */
struct tile_run {
    int l0, n, i, j0, tail, below;
    long in, out;
};

static int tile_runs(struct tile_run *runs, long t0, int nt, const struct wino *g, int k_in,
                     int k_out)
{
    const long per_img = (long)g->th * g->tw, plane = (long)g->h * g->w;
    int count = 0;
    for (int l = 0; l < nt;) {
        const long t = t0 + l, img = t / per_img;
        const int i = (int)(t % per_img / g->tw), j0 = (int)(t % g->tw);
        const int n = g->tw - j0 < nt - l ? g->tw - j0 : nt - l;
        runs[count++] = (struct tile_run){
            .l0 = l,
            .n = n,
            .i = i,
            .j0 = j0,
            .tail = 2 * (j0 + n - 1) + 1 >= g->w,
            .below = 2 * i + 1 < g->h,
            .in = img * k_in * plane,
            .out = img * k_out * plane + (long)(2 * i) * g->w + 2 * j0,
        };
        l += n;
    }
    return count;
}

/* row[2j], row[2j+1] (+)= e[j], f[j] for j < nfull, and row[2 nfull] (+)= e[nfull] when the
 * run ends in the middle of a tile (tail). Plain loops the compiler vectorises. */
static inline __attribute__((always_inline)) void store_pairs(float *restrict row,
                                                              const float *restrict e,
                                                              const float *restrict f, int nfull,
                                                              int tail, int accumulate)
{
    if (accumulate) {
#pragma omp simd
        for (int j = 0; j < nfull; j++) {
            row[2 * j] += e[j];
            row[2 * j + 1] += f[j];
        }
        if (tail)
            row[2 * nfull] += e[nfull];
    } else {
#pragma omp simd
        for (int j = 0; j < nfull; j++) {
            row[2 * j] = e[j];
            row[2 * j + 1] = f[j];
        }
        if (tail)
            row[2 * nfull] = e[nfull];
    }
}

/* v [16][panels][k][lt] (panel stride panel_stride(lt, k)): B^T d B of the block's nt tiles
 * over the k channels of x, as tile micro-panels (lanes past nt are zero). Each channel's
 * tiles are transformed run by run into st, then copied out panel by panel. */
static PTL_SIMD_CLONES void block_input(float *restrict v, const float *restrict x,
                                        const struct tile_run *runs, int nruns, int nt, int k,
                                        int ch0, int ch1, const struct wino *g)
{
    const int lt = g->lt, used = (nt + lt - 1) / lt;
    const size_t plane = (size_t)g->h * g->w, ps = panel_stride(lt, k), xs = tiles_xs(g, k);
    float st[16][NB_MAX]; /* st[xi][lane] */
    for (int xi = 0; xi < 16; xi++)
        for (int l = nt; l < used * lt; l++)
            st[xi][l] = 0.0f;
    for (int ch = ch0; ch < ch1; ch++) {
        for (int r = 0; r < nruns; r++) {
            const struct tile_run *u = &runs[r];
            const float *p = x + u->in + ch * plane;
            for (int j = 0; j < u->n; j += JB)
                tile_row_input(&st[0][u->l0 + j], NB_MAX, p, 2 * u->i - 1,
                               2 * (u->j0 + j) - 1, u->n - j < JB ? u->n - j : JB, g);
        }
        for (int xi = 0; xi < 16; xi++) {
            float *dst = v + xi * xs + (size_t)ch * lt;
            for (int pn = 0; pn < used; pn++, dst += ps) {
                const float *src = &st[xi][pn * lt];
#pragma omp simd
                for (int l = 0; l < lt; l++)
                    dst[l] = src[l];
            }
        }
    }
}

/* y (N, cc, H, W) (+)= A^T m A (+ bias) for output channels o0..o0+rows of the block's tiles,
 * m [16][mb][nb] (element (channel, tile) at channel * nb + tile). A^T = [1 1 1 0; 0 1 -1 -1]. */
static PTL_SIMD_CLONES void block_output(float *restrict y, const float *restrict mm,
                                         const float *bias, int accumulate, int o0, int rows,
                                         const struct tile_run *runs, int nruns, int nt,
                                         const struct wino *g)
{
    const size_t plane = (size_t)g->h * g->w, xs = slice_xs(g);
    const int w = g->w;
    for (int r = 0; r < rows; r++) {
        const float b = bias ? bias[o0 + r] : 0.0f;
        const float *q[16];
        for (int k = 0; k < 16; k++)
            q[k] = mm + k * xs + (size_t)r * g->nb;
        float y00[NB_MAX], y01[NB_MAX], y10[NB_MAX], y11[NB_MAX];
#pragma omp simd
        for (int l = 0; l < nt; l++) {
            /* rows of A^T m: s = m0 + m1 + m2, z = m1 - m2 - m3 (per column) */
            float s0 = q[0][l] + q[4][l] + q[8][l], s1 = q[1][l] + q[5][l] + q[9][l];
            float s2 = q[2][l] + q[6][l] + q[10][l], s3 = q[3][l] + q[7][l] + q[11][l];
            float z0 = q[4][l] - q[8][l] - q[12][l], z1 = q[5][l] - q[9][l] - q[13][l];
            float z2 = q[6][l] - q[10][l] - q[14][l], z3 = q[7][l] - q[11][l] - q[15][l];
            y00[l] = s0 + s1 + s2 + b;
            y01[l] = s1 - s2 - s3 + b;
            y10[l] = z0 + z1 + z2 + b;
            y11[l] = z1 - z2 - z3 + b;
        }
        float *ch = y + (size_t)(o0 + r) * plane;
        for (int k = 0; k < nruns; k++) {
            const struct tile_run *u = &runs[k];
            const int l0 = u->l0, nfull = u->n - u->tail;
            store_pairs(ch + u->out, y00 + l0, y01 + l0, nfull, u->tail, accumulate);
            if (u->below)
                store_pairs(ch + u->out + w, y10 + l0, y11 + l0, nfull, u->tail, accumulate);
        }
    }
}

/* y (N, m_ch, H, W) (+)= the Winograd conv of x (N, k_ch, H, W) with the packed weights up
 * (m_ch channels, K = k_ch), block by block; ws holds g->slots block buffers. */
static void fused_conv(float *y, const float *x, const float *up, const float *bias,
                       int accumulate, int k_ch, int m_ch, const struct wino *g, float *ws)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    const int lt = g->lt, lc = g->lc, nb = g->nb, mb = g->mb;
    const size_t c_ps = panel_stride(lc, k_ch), t_ps = panel_stride(lt, k_ch);
    const size_t c_xs = (size_t)((m_ch + lc - 1) / lc) * c_ps, t_xs = tiles_xs(g, k_ch);
    const size_t y_xs = slice_xs(g);
    const long blocks = (g->ntiles + nb - 1) / nb;
    float *mine = ws + (size_t)omp_get_thread_num() * block_floats(g, k_ch);
    float *v = mine, *mm = mine + 16 * t_xs; /* both 64-byte aligned */
    struct tile_run runs[NB_MAX];
#pragma omp for schedule(static)
    for (long blk = 0; blk < blocks; blk++) {
        const long t0 = blk * nb;
        const int nt = g->ntiles - t0 < nb ? (int)(g->ntiles - t0) : nb;
        const int nruns = tile_runs(runs, t0, nt, g, k_ch, m_ch);
        block_input(v, x, runs, nruns, nt, k_ch, 0, k_ch, g);
        const int used = (nt + lt - 1) / lt; /* tile panels with tiles in them */
        for (int o0 = 0; o0 < m_ch; o0 += mb) {
            const int rows = m_ch - o0 < mb ? m_ch - o0 : mb;
            for (int xi = 0; xi < 16; xi++) {
                const float *cp = up + xi * c_xs + (size_t)(o0 / lc) * c_ps;
                for (int pc = 0; pc < (rows + lc - 1) / lc; pc++, cp += c_ps) {
                    const float *tp = v + xi * t_xs;
                    for (int pt = 0; pt < used; pt++, tp += t_ps) {
                        float *c = mm + xi * y_xs + (size_t)(pc * lc) * nb + pt * lt;
                        /* c[channel * nb + tile]: the tiles on the stored side */
                        ptl__ukernel_run_sides(u, k_ch, tp, cp, 0.0f, c, nb, tp + t_ps, cp);
                    }
                }
            }
            block_output(y, mm, bias, accumulate, o0, rows, runs, nruns, nt, g);
        }
    }
}

/* fused_conv for few tiles (g->few): the batch's tiles are one block, whose V the threads
 * transform together, channel by channel; then each thread takes slices of mb output channels,
 * packs the slice's transformed weights (the kernel turned for backward data) and runs its
 * products and output transform. ws: few_floats(). */
static void fused_few(float *y, const float *x, const float *weight, const float *bias,
                      int accumulate, int turned, int k_ch, int m_ch, const struct wino *g,
                      float *ws)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    const int lt = g->lt, lc = g->lc, nb = g->nb, mb = g->mb, nt = (int)g->ntiles;
    const size_t c_ps = panel_stride(lc, k_ch), t_ps = panel_stride(lt, k_ch);
    const size_t t_xs = tiles_xs(g, k_ch), u_xs = few_weight_xs(g, k_ch), y_xs = slice_xs(g);
    float *v = ws;
    float *up = ws + 16 * t_xs + (size_t)omp_get_thread_num() * 16 * (u_xs + y_xs);
    float *mm = up + 16 * u_xs;
    struct tile_run runs[NB_MAX];
    const int nruns = tile_runs(runs, 0, nt, g, k_ch, m_ch);
    const int used = (nt + lt - 1) / lt; /* tile panels with tiles in them */
    struct pack_run r;
    pack_run_make(&r, g, turned);
#pragma omp for schedule(static)
    for (int ch = 0; ch < k_ch; ch += FEW_INPUT_CHANNELS)
        block_input(v, x, runs, nruns, nt, k_ch, ch,
                    k_ch - ch < FEW_INPUT_CHANNELS ? k_ch : ch + FEW_INPUT_CHANNELS, g);
    const int slices = (m_ch + mb - 1) / mb;
#pragma omp for schedule(dynamic, 1)
    for (int sl = 0; sl < slices; sl++) {
        const int o0 = sl * mb, rows = m_ch - o0 < mb ? m_ch - o0 : mb;
        const int panels = (rows + lc - 1) / lc;
        pack_slice(up, u_xs, weight, g, turned, &r, o0 / lc, panels);
        for (int xi = 0; xi < 16; xi++) {
            const float *cp = up + xi * u_xs;
            for (int pc = 0; pc < panels; pc++, cp += c_ps) {
                const float *tp = v + xi * t_xs;
                for (int pt = 0; pt < used; pt++, tp += t_ps) {
                    float *c = mm + xi * y_xs + (size_t)(pc * lc) * nb + pt * lt;
                    ptl__ukernel_run_sides(u, k_ch, tp, cp, 0.0f, c, nb, tp + t_ps, cp);
                }
            }
        }
        block_output(y, mm, bias, accumulate, o0, rows, runs, nruns, nt, g);
    }
}

/* ---- backward weights: chunks of tile rows ---- */

/* The chunk's 16 products dU[xi] += Y[xi] X[xi]^T have both operands stored by tile (K). With
 * small weights they run as dot products of rows: blocks of DOT_M x DOT_C entries of dU, one
 * vector accumulator per entry over the chunk's tiles, read straight from the transform
 * buffers. Through BLIS, which packs both operands, 64x64x512 GEMMs ran at 70 GFLOPS on one
 * Zen 5 core (its micro-kernel alone at 186 on packed panels): the packing, not the maths. */
#define DOT_M 3 /* dot_block is written out for these two */
#define DOT_C 4
typedef float vf8 __attribute__((vector_size(32)));

/* The sum of a's lanes as a tree of halves (a chain of eight dependent adds took a third of
 * the time of a block of 256 tiles). */
static inline __attribute__((always_inline)) float hsum8(vf8 a)
{
    a += __builtin_shufflevector(a, a, 4, 5, 6, 7, 0, 1, 2, 3);
    a += __builtin_shufflevector(a, a, 2, 3, 0, 1, 6, 7, 4, 5);
    a += __builtin_shufflevector(a, a, 1, 0, 3, 2, 5, 4, 7, 6);
    return a[0];
}

/* The sum of y[q] x[q] over q < t: one vector accumulator, for the blocks at the edges. */
static inline __attribute__((always_inline)) float dot_row(const float *restrict y,
                                                           const float *restrict x, int t)
{
    vf8 acc = {0}, yv, xv;
    int q = 0;
    for (; q + 8 <= t; q += 8) {
        memcpy(&yv, y + q, sizeof yv);
        memcpy(&xv, x + q, sizeof xv);
        acc += yv * xv;
    }
    float sum = hsum8(acc);
    for (; q < t; q++)
        sum += y[q] * x[q];
    return sum;
}

/* du[i * ldu + j] (+)= sum over q < t of y[i * t + q] x[j * t + q], i < DOT_M, j < DOT_C:
 * twelve named accumulators, so that they stay in registers (16 on AVX2). */
static inline __attribute__((always_inline)) void dot_block(float *restrict du, size_t ldu,
                                                            const float *restrict y,
                                                            const float *restrict x, int t,
                                                            int add)
{
    const size_t ld = (size_t)t;
    vf8 a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0},
        a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0};
    const float *y0 = y, *y1 = y + ld, *y2 = y + 2 * ld;
    const float *x0 = x, *x1 = x + ld, *x2 = x + 2 * ld, *x3 = x + 3 * ld;
    int q = 0;
    for (; q + 8 <= t; q += 8) {
        vf8 u0, u1, u2, v;
        memcpy(&u0, y0 + q, sizeof u0);
        memcpy(&u1, y1 + q, sizeof u1);
        memcpy(&u2, y2 + q, sizeof u2);
        memcpy(&v, x0 + q, sizeof v);
        a00 += u0 * v, a10 += u1 * v, a20 += u2 * v;
        memcpy(&v, x1 + q, sizeof v);
        a01 += u0 * v, a11 += u1 * v, a21 += u2 * v;
        memcpy(&v, x2 + q, sizeof v);
        a02 += u0 * v, a12 += u1 * v, a22 += u2 * v;
        memcpy(&v, x3 + q, sizeof v);
        a03 += u0 * v, a13 += u1 * v, a23 += u2 * v;
    }
    const vf8 acc[DOT_M][DOT_C] = {{a00, a01, a02, a03}, {a10, a11, a12, a13},
                                   {a20, a21, a22, a23}};
    for (int i = 0; i < DOT_M; i++)
        for (int j = 0; j < DOT_C; j++) {
            float sum = hsum8(acc[i][j]);
            for (int r = q; r < t; r++)
                sum += y[i * ld + r] * x[j * ld + r];
            du[i * ldu + j] = add ? du[i * ldu + j] + sum : sum;
        }
}

/* du (m, c) (+)= y (m, t) x (c, t)^T, rows of both at stride t. Contracted multiply-adds (FMA)
 * here, as in any GEMM kernel. */
static PTL_SIMD_CLONES __attribute__((optimize("fp-contract=fast"))) void
dot_gemm(float *du, const float *y, const float *x, int m, int c, int t, int add)
{
    const int m_full = m - m % DOT_M, c_full = c - c % DOT_C;
    for (int i = 0; i < m_full; i += DOT_M)
        for (int j = 0; j < c_full; j += DOT_C)
            dot_block(du + (size_t)i * c + j, c, y + (size_t)i * t, x + (size_t)j * t, t, add);
    /* the edges: rows past the last whole block of DOT_M rows, the columns past the last whole
     * block of DOT_C columns */
    for (int i = 0; i < m; i++)
        for (int j = i < m_full ? c_full : 0; j < c; j++) {
            float sum = dot_row(y + (size_t)i * t, x + (size_t)j * t, t);
            du[(size_t)i * c + j] = add ? du[(size_t)i * c + j] + sum : sum;
        }
}

/* Work items of the product phase: the nx products, each cut into `parts` slices of rows when
 * there are more threads than products. */
static int gemm_parts(int nx)
{
    int nt = omp_get_num_threads();
    return (nt + nx - 1) / nx;
}

/* part p of n split into `parts` near-equal pieces: [*lo, *hi) */
static void slice(int n, int parts, int p, int *lo, int *hi)
{
    *lo = (int)((long)n * p / parts);
    *hi = (int)((long)n * (p + 1) / parts);
}

/* (winograd.h) With larger weights the products go through BLIS, each on one BLIS thread
 * (ptl__sgemm_single) as the threads share them out: no BLIS barriers inside each. */
void ptl__winograd_weight_products(float *du, const float *dyt, const float *v, int nx, int m,
                                   int c, int t, int add, int dot)
{
    const size_t du_xs = ptl__wino_xi_stride((size_t)m * c);
    const size_t y_xs = ptl__wino_xi_stride((size_t)m * t);
    const size_t x_xs = ptl__wino_xi_stride((size_t)c * t);
    const int parts = gemm_parts(nx);
#pragma omp for schedule(static)
    for (int item = 0; item < nx * parts; item++) {
        int xi = item / parts, lo, hi;
        slice(m, parts, item % parts, &lo, &hi);
        if (hi <= lo)
            continue;
        float *d = du + xi * du_xs + (size_t)lo * c;
        const float *y = dyt + xi * y_xs + (size_t)lo * t, *x = v + xi * x_xs;
        if (dot)
            dot_gemm(d, y, x, hi - lo, c, t, add);
        else /* shapes from a validated conv: the call cannot fail */
            ptl__sgemm_single(0, 1, hi - lo, c, t, 1.0f, y, t, x, t, add ? 1.0f : 0.0f, d, c);
    }
}

/* ---- forward and backward ---- */

/* Fork only when there is enough work to pay for the threads (always true for the shapes
 * ptl__winograd_applies() accepts). */
static int parallel_worth(const struct wino *g)
{
    return (size_t)g->ntiles * g->c * g->m >= 4 * (size_t)PTL_OMP_MIN_ELEMENTS;
}

/* Threads of a fused pass: at most the block buffers the workspace holds. */
static int fused_threads(const struct wino *g)
{
    int t = omp_get_max_threads();
    return parallel_worth(g) ? (t < g->slots ? t : g->slots) : 1;
}

int ptl__winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                          const struct ptl_conv2d_shape *s, float *workspace)
{
    struct wino g;
    wino_make(s, &g);
    PTL_CHECK(ukernel_usable(ptl__ukernel()), "conv2d: Winograd needs BLIS's sgemm micro-kernel");
    if (ptl__winograd4_applies(s))
        return ptl__winograd4_forward(out, in, weight, bias, s, workspace);
    float *up = align_up(workspace), *blocks = up + packed_floats(&g, g.m, g.c);
#pragma omp parallel num_threads(fused_threads(&g))
    {
        if (g.few) {
            fused_few(out, in, weight, bias, 0, 0, g.c, g.m, &g, up);
        } else {
            pack_weights(up, weight, &g, 0);
            fused_conv(out, in, up, bias, 0, g.c, g.m, &g, blocks);
        }
    }
    return PTL_OK;
}

int ptl__winograd_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                           const float *weight, const struct ptl_conv2d_shape *s,
                           float *workspace)
{
    struct wino g;
    wino_make(s, &g);
    PTL_CHECK(ukernel_usable(ptl__ukernel()), "conv2d: Winograd needs BLIS's sgemm micro-kernel");
    const int m = g.m, c = g.c;
    float *base = align_up(workspace);
    if (d_weight && ptl__winograd4_weight_applies(s)) {
        int rc = ptl__winograd4_backward_weight(d_weight, d_out, in, s, workspace);
        if (rc)
            return rc;
    } else if (d_weight) {
        float *du = base, *x = du + 16 * ptl__wino_xi_stride((size_t)m * c);
        float *y = x + 16 * ptl__wino_xi_stride(g.tiles * c);
#pragma omp parallel if (parallel_worth(&g))
        {
            for (long r0 = 0; r0 < g.rows; r0 += g.chunk_rows) {
                int rows = g.rows - r0 < g.chunk_rows ? (int)(g.rows - r0) : g.chunk_rows;
                int t = rows * g.tw;
                input_tiles(x, in, c, &g, r0, rows);
                dout_tiles(y, d_out, m, &g, r0, rows);
                ptl__winograd_weight_products(du, y, x, 16, m, c, t, r0 != 0, g.dot);
            }
            weight_grad(d_weight, du, m, c);
        }
    }
    if (d_in && ptl__winograd4_applies(s))
        return ptl__winograd4_backward_data(d_in, d_out, weight, s, workspace);
    if (d_in) {
        /* d_in += the forward conv of d_out with the turned kernel (the space of the phase
         * above is free again). */
        float *up = base, *blocks = up + packed_floats(&g, c, m);
#pragma omp parallel num_threads(fused_threads(&g))
        {
            if (g.few) {
                fused_few(d_in, d_out, weight, NULL, 1, 1, m, c, &g, up);
            } else {
                pack_weights(up, weight, &g, 1);
                fused_conv(d_in, d_out, up, NULL, 1, m, c, &g, blocks);
            }
        }
    }
    return PTL_OK;
}
