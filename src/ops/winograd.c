/* Winograd F(2x2, 3x3) convolution. See winograd.h for the maths.
 *
 * Tiles: output tile (i, j) of an image covers outputs rows 2i..2i+1, columns 2j..2j+1 and reads
 * the input patch rows 2i-1..2i+2, columns 2j-1..2j+2 (zero outside: padding 1, and the partial
 * last tile of an odd size). Tiles are numbered over the batch: t = (img * th + i) * tw + j.
 *
 * Forward and backward data run one fused pass per block of tiles (a few micro-panels of nb
 * tiles, one OpenMP thread per block): the input transform writes the block's 16 V[xi] straight
 * into the packed layout of BLIS's sgemm micro-kernel, the kernel multiplies them with the
 * transformed weights (packed once per call), and the output transform turns each slice of
 * output channels back into pixels while it is still in cache. Nothing the size of the batch
 * passes through memory twice, and BLIS packs nothing (docs/performance.md: the same 16 GEMMs
 * ran at 96 GFLOPS through bli_sgemm, 137 on packed panels through the micro-kernel).
 *
 * Backward weights sums dU[xi] += (A dY A^T)[xi] x V[xi]^T over chunks of tile rows with BLIS
 * GEMMs (K = tiles: long, efficient GEMMs), then maps dU back with G^T dU G.
 *
 * Workspace (every region 64-byte aligned):
 *   forward           Up (C_out rows, K = C_in) | one block buffer per thread
 *   backward weights  dU [16][C_out][C_in] | X [16][C_in][T] | Y [16][C_out][T]
 *   backward data     Up (C_in rows, K = C_out, the turned kernel) | block buffers
 * The two backward phases run one after the other and share the space. */
#include "ops/winograd.h"

#include <omp.h>
#include <stdint.h>

#include "ops/check.h"
#include "ops/gemm.h"
#include "ptl/core.h"

/* Winograd beats im2col from these channel counts and tiles per batch on; below, the transforms
 * and the transformed weights cost more than the 2.25x fewer multiplications save. Measured
 * fwd+bwd, Winograd / im2col time, 1-2 threads: 32x16 planes at 16 channels 0.7-0.85x, at 32
 * 1.0-1.1x, at 64 1.2-1.5x; 512 channels at 64-128 tiles per batch 0.7-1.0x, at 256+ 1.2-1.4x. */
#define WINO_MIN_CHANNELS 64
#define WINO_MIN_TILES 256
/* Tiles per chunk of the weight gradient: its GEMMs need a wide T to run at speed (64 was
 * clearly slower), and the chunk's 16*(C_in+C_out)*T floats should stay in the last-level
 * cache; 256-1024 measured alike within the noise of the shared test machine. */
#define WINO_CHUNK_TILES 512
/* Tiles per block of the weight-gradient transform loops (SIMD lanes over a tile row). */
#define JB 32
/* Fused blocks: BLOCK_PANELS micro-panels of tiles (48 tiles with BLIS's 6x16 kernel), and the
 * output channels in slices of about BLOCK_ROWS, so that a slice's 16 results (16 x 96 x 48
 * floats, 295 KB) stay in L2 until the output transform reads them. 32, 48 and 64 tiles ran
 * alike in a GEMM-only test (134-138 GFLOPS, 64 -> 256 channels, 2 threads). */
#define BLOCK_PANELS 3
#define BLOCK_ROWS 96
/* With large weights (C_in * C_out above WIDE_WEIGHTS: 4 MB packed) each block reads them
 * all from the last-level cache or memory: wider blocks (and narrower slices, to keep the
 * slice in L2) read them fewer times: 512x512 at 256 tiles, fwd+bwd 79 GFLOPS at 48 tiles
 * per block, 103 at 128 (2 threads). */
#define WIDE_WEIGHTS (256 * 256)
#define WIDE_PANELS 8
/* Largest micro-kernel block the fused driver takes (its per-lane arrays are on the stack). */
#define UK_MAX 64
/* Most threads the workspace has block buffers for (bounded by the cores anyway). */
#define SLOTS_MAX 16
#define ALIGN_FLOATS 16 /* 64 bytes */

static const float zeros[2 * JB + 2];

struct wino {
    int n, c, m, h, w; /* batch, C_in, C_out, H = H_out, W = W_out */
    int th, tw;        /* tiles per column and per row of an image */
    long rows;         /* tile rows in the batch: n * th */
    long ntiles;       /* tiles in the batch: rows * tw */
    int chunk_rows;    /* tile rows per weight-gradient chunk */
    size_t tiles;      /* tiles per full chunk: chunk_rows * tw */
    int mr, nr;        /* the micro-kernel's block */
    int nb, mb;        /* fused block: tiles (BLOCK_ or WIDE_PANELS * nr), rows per slice */
    int slots;         /* block buffers in the workspace */
};

static int ukernel_usable(const struct ptl__ukernel *u)
{
    return u->fn && u->mr >= 1 && u->mr <= UK_MAX && u->nr >= 1 && u->nr <= UK_MAX;
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
    long cr = WINO_CHUNK_TILES / g->tw;
    if (cr < 1)
        cr = 1;
    if (cr > g->rows)
        cr = g->rows;
    g->chunk_rows = (int)cr;
    g->tiles = (size_t)cr * g->tw;
    const struct ptl__ukernel *u = ptl__ukernel();
    g->mr = ukernel_usable(u) ? u->mr : 1;
    g->nr = ukernel_usable(u) ? u->nr : 1;
    int panels = (long)g->m * g->c > WIDE_WEIGHTS ? WIDE_PANELS : BLOCK_PANELS;
    g->nb = panels * g->nr;
    int rows = BLOCK_ROWS * BLOCK_PANELS / panels; /* the same slice size */
    g->mb = rows < g->mr ? g->mr : (rows + g->mr - 1) / g->mr * g->mr;
    /* Threads never exceed the cores this process may use, so sizing by them now holds. */
    int cap = ptl_threads_available();
    g->slots = cap < SLOTS_MAX ? cap : SLOTS_MAX;
}

int ptl__winograd_applies(const struct ptl_conv2d_shape *s)
{
    long long tiles = (long long)s->n * ((s->h + 1) / 2) * ((s->w + 1) / 2);
    return s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 &&
           s->pad_w == 1 && s->c_in >= WINO_MIN_CHANNELS && s->c_out >= WINO_MIN_CHANNELS &&
           tiles >= WINO_MIN_TILES && ukernel_usable(ptl__ukernel());
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

/* Floats of the packed transformed weights: `rows` rows in whole mr-panels, K = k. */
static size_t packed_floats(const struct wino *g, int rows, int k)
{
    return 16 * (size_t)((rows + g->mr - 1) / g->mr) * panel_stride(g->mr, k);
}

/* Floats of one thread's block buffer for k input channels: the block's packed V (16 x k x nb)
 * and one slice of results (16 x mb x nb). */
static size_t block_floats(const struct wino *g, int k)
{
    return 16 * (size_t)(g->nb / g->nr) * panel_stride(g->nr, k) +
           round_up(16 * (size_t)g->mb * g->nb, ALIGN_FLOATS);
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

size_t ptl__winograd_workspace_floats(const struct ptl_conv2d_shape *s)
{
    struct wino g;
    wino_make(s, &g);
    size_t fwd = packed_floats(&g, g.m, g.c) + g.slots * block_floats(&g, g.c);
    size_t bwd_data = packed_floats(&g, g.c, g.m) + g.slots * block_floats(&g, g.m);
    size_t bwd_weight = 16 * (size_t)g.m * g.c + 16 * g.tiles * ((size_t)g.c + g.m);
    /* + room to align the start */
    return max_size(fwd, max_size(bwd_data, bwd_weight)) + ALIGN_FLOATS;
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

/* v [16][cc][rows*tw] = B^T d B of the 4x4 input patches of tile rows r0..r0+rows of x
 * (N, cc, H, W). B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], applied to rows, then columns. */
static void input_tiles(float *v, const float *x, int cc, const struct wino *g, long r0, int rows)
{
    const int h = g->h, w = g->w, tw = g->tw;
    const size_t ld = (size_t)rows * tw, xs = (size_t)cc * ld;
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < cc; ch++) {
        for (int rr = 0; rr < rows; rr++) {
            int i;
            const float *p = x + tile_row_plane(g, cc, ch, r0 + rr, &i); /* (H, W) */
            const float *src[4];
            for (int k = 0; k < 4; k++) {
                int y = 2 * i - 1 + k;
                src[k] = y >= 0 && y < h ? p + (size_t)y * w : NULL;
            }
            float *dst = v + (size_t)ch * ld + (size_t)rr * tw;
            /* The loop is latency-bound on short rows: fetch the rows two tile rows ahead. */
            for (int k = 0; k < 4; k++) {
                int y = 2 * i + 3 + k;
                if (y < h)
                    for (int q = 0; q < w; q += 16)
                        __builtin_prefetch(p + (size_t)y * w + q);
            }
            for (int j0 = 0; j0 < tw; j0 += JB) {
                int nj = tw - j0 < JB ? tw - j0 : JB;
                int ncol = 2 * nj + 2, col0 = 2 * j0 - 1; /* input column of d[.][0] */
                int lo = col0 < 0 ? -col0 : 0, hi = w - col0 < ncol ? w - col0 : ncol;
                /* Rows above/below the image and columns beyond it read zeros. */
                const float *rp[4];
                int off[4];
                for (int k = 0; k < 4; k++) {
                    rp[k] = src[k] ? src[k] : zeros;
                    off[k] = src[k] ? col0 : 0;
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
                    float *o0 = dst + (size_t)(4 * a) * xs + j0, *o1 = o0 + xs, *o2 = o1 + xs,
                          *o3 = o2 + xs;
#pragma omp simd
                    for (int j = 0; j < nj; j++) {
                        float e0 = e[2 * j], e1 = e[2 * j + 1], e2 = e[2 * j + 2],
                              e3 = e[2 * j + 3];
                        o0[j] = e0 - e2;
                        o1[j] = e1 + e2;
                        o2[j] = e2 - e1;
                        o3[j] = e1 - e3;
                    }
                }
            }
        }
    }
}

/* v [16][cc][rows*tw] = A dY A^T of the 2x2 blocks of dy (N, cc, H, W) (zero beyond the
 * image), the adjoint of the output transform. A = [1 0; 1 1; 1 -1; 0 -1]. */
static void dout_tiles(float *v, const float *dy, int cc, const struct wino *g, long r0, int rows)
{
    const int h = g->h, w = g->w, tw = g->tw;
    const size_t ld = (size_t)rows * tw, xs = (size_t)cc * ld;
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
                float e[2][2 * JB], u[4][2 * JB];
                for (int k = 0; k < 2; k++) {
                    int q = 0;
                    if (src[k])
                        for (; q < hi; q++)
                            e[k][q] = src[k][col0 + q];
                    for (; q < ncol; q++)
                        e[k][q] = 0.0f;
                }
#pragma omp simd
                for (int q = 0; q < ncol; q++) {
                    u[0][q] = e[0][q];
                    u[1][q] = e[0][q] + e[1][q];
                    u[2][q] = e[0][q] - e[1][q];
                    u[3][q] = -e[1][q];
                }
                for (int a = 0; a < 4; a++) {
                    const float *f = u[a];
                    float *o0 = dst + (size_t)(4 * a) * xs + j0, *o1 = o0 + xs, *o2 = o1 + xs,
                          *o3 = o2 + xs;
#pragma omp simd
                    for (int j = 0; j < nj; j++) {
                        float f0 = f[2 * j], f1 = f[2 * j + 1];
                        o0[j] = f0;
                        o1[j] = f0 + f1;
                        o2[j] = f0 - f1;
                        o3[j] = -f1;
                    }
                }
            }
        }
    }
}

/* ---- transformed weights ---- */

/* The 16 values G g G^T of the kernel g (3, 3), index 4a + b.
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
static void kernel_tile(float u[16], const float *k)
{
    float t[4][3];
    for (int col = 0; col < 3; col++) {
        float g0 = k[col], g1 = k[3 + col], g2 = k[6 + col];
        t[0][col] = g0;
        t[1][col] = 0.5f * (g0 + g1 + g2);
        t[2][col] = 0.5f * (g0 - g1 + g2);
        t[3][col] = g2;
    }
    for (int a = 0; a < 4; a++) {
        u[4 * a + 0] = t[a][0];
        u[4 * a + 1] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
        u[4 * a + 2] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
        u[4 * a + 3] = t[a][2];
    }
}

/* up = the 16 transformed weight matrices in the micro-kernel's packed A layout: forward,
 * U[xi] (C_out rows, K = C_in); turned (backward data), the 180-degree turned kernel
 * transposed, U[turn xi]^T (C_in rows, K = C_out). Rows past the last are zero. */
static void pack_weights(float *up, const float *weight, const struct wino *g, int turned)
{
    /* G J = P G with P swapping rows 0 and 3, so the turned kernel's U'[a][b] = U[p(a)][p(b)],
     * p = (3 1 2 0); the permutation is its own inverse. */
    static const int turn[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};
    const int mr = g->mr, rows = turned ? g->c : g->m, k = turned ? g->m : g->c;
    const size_t ps = panel_stride(mr, k), panels = (size_t)(rows + mr - 1) / mr;
    const size_t xs = panels * ps, mc = (size_t)g->m * g->c;
#pragma omp for schedule(static)
    for (size_t idx = 0; idx < mc; idx++) {
        float u[16];
        kernel_tile(u, weight + idx * 9);
        int o = (int)(idx / g->c), ci = (int)(idx % g->c);
        int row = turned ? ci : o, col = turned ? o : ci;
        float *dst = up + (size_t)(row / mr) * ps + (size_t)col * mr + row % mr;
        for (int xi = 0; xi < 16; xi++)
            dst[(size_t)(turned ? turn[xi] : xi) * xs] = u[xi];
    }
    if (rows % mr) {
#pragma omp for schedule(static)
        for (int xi = 0; xi < 16; xi++) {
            float *last = up + xi * xs + (panels - 1) * ps;
            for (int col = 0; col < k; col++)
                for (int r = rows % mr; r < mr; r++)
                    last[(size_t)col * mr + r] = 0.0f;
        }
    }
}

/* d_weight (m, c, 3, 3) += G^T dU G, the adjoint of kernel_tile, dU [16][m][c]. */
static void weight_grad(float *d_weight, const float *du, int m, int c)
{
    const size_t mc = (size_t)m * c;
#pragma omp for schedule(static)
    for (size_t idx = 0; idx < mc; idx++) {
        float s[3][4]; /* G^T dU */
        for (int b = 0; b < 4; b++) {
            float d0 = du[(0 + b) * mc + idx], d1 = du[(4 + b) * mc + idx];
            float d2 = du[(8 + b) * mc + idx], d3 = du[(12 + b) * mc + idx];
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

/* Where a block's tiles read and write. in: offset of the patch's top-left corner (row 2i-1,
 * column 2j-1) in channel 0 of its image, with bit r of rows (q of cols) set when patch row r
 * (column q) is inside the image. out: offset of the tile's first output in channel 0. */
struct tile_at {
    long in, out;
    unsigned char rows, cols, right, below; /* right/below: the tile's second column/row */
    unsigned char inside;                   /* the whole 4x4 patch is inside the image */
};

static void locate_tiles(struct tile_at *at, long t0, int nt, const struct wino *g, int k_in,
                         int k_out)
{
    const long per_img = (long)g->th * g->tw, plane = (long)g->h * g->w;
    for (int l = 0; l < nt; l++) {
        long t = t0 + l, img = t / per_img;
        int i = (int)(t % per_img / g->tw), j = (int)(t % g->tw);
        int y0 = 2 * i - 1, x0 = 2 * j - 1;
        at[l].in = img * k_in * plane + (long)y0 * g->w + x0;
        at[l].out = img * k_out * plane + (long)(2 * i) * g->w + 2 * j;
        at[l].rows = at[l].cols = 0;
        for (int r = 0; r < 4; r++) {
            at[l].rows |= (unsigned char)((y0 + r >= 0 && y0 + r < g->h) << r);
            at[l].cols |= (unsigned char)((x0 + r >= 0 && x0 + r < g->w) << r);
        }
        at[l].inside = at[l].rows == 15 && at[l].cols == 15;
        at[l].right = 2 * j + 1 < g->w;
        at[l].below = 2 * i + 1 < g->h;
    }
}

/* A run of a block's tiles along one tile row: tiles l0..l0+n, whose outputs start at `out`
 * (row 2i, column 2j0 of channel 0); tail: the last tile has no second column (odd W). */
struct tile_run {
    int l0, n, tail, below;
    long out;
};

static int tile_runs(struct tile_run *runs, const struct tile_at *at, int nt)
{
    int count = 0;
    for (int l = 0; l < nt; l++) {
        if (l == 0 || at[l].out != at[l - 1].out + 2 || !at[l - 1].right)
            runs[count++] = (struct tile_run){l, 0, 0, at[l].below, at[l].out};
        struct tile_run *r = &runs[count - 1];
        r->n++;
        r->tail = !at[l].right;
    }
    return count;
}

/* row[2j], row[2j+1] (+)= e[j], f[j] for j < nfull, and row[2 nfull] (+)= e[nfull] when the
 * run ends in the middle of a tile (tail). Plain loops the compiler vectorises. */
static inline void store_pairs(float *restrict row, const float *restrict e,
                               const float *restrict f, int nfull, int tail, int accumulate)
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

/* v [16][panels][k][nr] (panel stride g->b_ps): B^T d B of the block's tiles over the k
 * channels of x, in the packed B layout (tile lanes past nt are zero).
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], applied to the rows and to the columns. */
static void block_input(float *restrict v, const float *restrict x, const struct tile_at *at,
                        int nt, int k, const struct wino *g)
{
    const int nr = g->nr, panels = g->nb / nr, w = g->w;
    const long plane = (long)g->h * w;
    const size_t ps = panel_stride(nr, k), xs = panels * ps;
    for (int p = 0; p < panels; p++) {
        const int l0 = p * nr, nl = nt - l0 < nr ? (nt - l0 > 0 ? nt - l0 : 0) : nr;
        for (int ch = 0; ch < k; ch++) {
            float d[4][4][UK_MAX]; /* d[r][q][lane]: the 4x4 patches */
            for (int l = 0; l < nl; l++) {
                const struct tile_at *a = &at[l0 + l];
                const long base = a->in + ch * plane;
                if (a->inside) {
                    for (int r = 0; r < 4; r++)
                        for (int q = 0; q < 4; q++)
                            d[r][q][l] = x[base + r * w + q];
                } else {
                    for (int r = 0; r < 4; r++)
                        for (int q = 0; q < 4; q++)
                            d[r][q][l] = (a->rows >> r & a->cols >> q & 1) ? x[base + r * w + q]
                                                                            : 0.0f;
                }
            }
            for (int l = nl; l < nr; l++) /* lanes without a tile */
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 4; q++)
                        d[r][q][l] = 0.0f;
            float e[4][4][UK_MAX]; /* e[r][b]: row r times B */
            for (int r = 0; r < 4; r++) {
#pragma omp simd
                for (int l = 0; l < nr; l++) {
                    e[r][0][l] = d[r][0][l] - d[r][2][l];
                    e[r][1][l] = d[r][1][l] + d[r][2][l];
                    e[r][2][l] = d[r][2][l] - d[r][1][l];
                    e[r][3][l] = d[r][1][l] - d[r][3][l];
                }
            }
            float *dst = v + p * ps + (size_t)ch * nr;
            for (int b = 0; b < 4; b++) {
                float *o0 = dst + (size_t)b * xs, *o1 = o0 + 4 * xs, *o2 = o1 + 4 * xs,
                      *o3 = o2 + 4 * xs;
#pragma omp simd
                for (int l = 0; l < nr; l++) {
                    o0[l] = e[0][b][l] - e[2][b][l];
                    o1[l] = e[1][b][l] + e[2][b][l];
                    o2[l] = e[2][b][l] - e[1][b][l];
                    o3[l] = e[1][b][l] - e[3][b][l];
                }
            }
        }
    }
}

/* y (N, cc, H, W) (+)= A^T m A (+ bias) for output channels o0..o0+rows of the block's tiles,
 * m [16][mb][nb] (element (row, tile) at row * rs + tile * cs). A^T = [1 1 1 0; 0 1 -1 -1]. */
static void block_output(float *restrict y, const float *restrict mm, long rs, long cs,
                         const float *bias, int accumulate, int o0, int rows,
                         const struct tile_run *runs, int nruns, int nt, const struct wino *g)
{
    const size_t plane = (size_t)g->h * g->w, xs = (size_t)g->mb * g->nb;
    const int w = g->w;
    for (int r = 0; r < rows; r++) {
        const float b = bias ? bias[o0 + r] : 0.0f;
        const float *q[16];
        for (int k = 0; k < 16; k++)
            q[k] = mm + k * xs + r * rs;
        float y00[WIDE_PANELS * UK_MAX], y01[WIDE_PANELS * UK_MAX];
        float y10[WIDE_PANELS * UK_MAX], y11[WIDE_PANELS * UK_MAX];
#pragma omp simd
        for (int l = 0; l < nt; l++) {
            const long c = l * cs;
            /* rows of A^T m: s = m0 + m1 + m2, z = m1 - m2 - m3 (per column) */
            float s0 = q[0][c] + q[4][c] + q[8][c], s1 = q[1][c] + q[5][c] + q[9][c];
            float s2 = q[2][c] + q[6][c] + q[10][c], s3 = q[3][c] + q[7][c] + q[11][c];
            float z0 = q[4][c] - q[8][c] - q[12][c], z1 = q[5][c] - q[9][c] - q[13][c];
            float z2 = q[6][c] - q[10][c] - q[14][c], z3 = q[7][c] - q[11][c] - q[15][c];
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
 * (m_ch rows, K = k_ch), block by block; ws holds g->slots block buffers. */
static void fused_conv(float *y, const float *x, const float *up, const float *bias,
                       int accumulate, int k_ch, int m_ch, const struct wino *g, float *ws)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    const int mr = g->mr, nr = g->nr, nb = g->nb, mb = g->mb, panels = nb / nr;
    const size_t a_ps = panel_stride(mr, k_ch), b_ps = panel_stride(nr, k_ch);
    const size_t a_xs = (size_t)((m_ch + mr - 1) / mr) * a_ps, b_xs = panels * b_ps;
    const size_t y_xs = (size_t)mb * nb;
    const long rs = u->row_pref ? nb : 1, cs = u->row_pref ? 1 : mb;
    const long blocks = (g->ntiles + nb - 1) / nb;
    float *mine = ws + (size_t)omp_get_thread_num() * block_floats(g, k_ch);
    float *v = mine, *mm = mine + 16 * b_xs; /* both 64-byte aligned */
    struct tile_at at[WIDE_PANELS * UK_MAX];
    struct tile_run runs[WIDE_PANELS * UK_MAX];
#pragma omp for schedule(static)
    for (long blk = 0; blk < blocks; blk++) {
        const long t0 = blk * nb;
        const int nt = g->ntiles - t0 < nb ? (int)(g->ntiles - t0) : nb;
        locate_tiles(at, t0, nt, g, k_ch, m_ch);
        const int nruns = tile_runs(runs, at, nt);
        block_input(v, x, at, nt, k_ch, g);
        const int used = (nt + nr - 1) / nr; /* panels with tiles in them */
        for (int o0 = 0; o0 < m_ch; o0 += mb) {
            const int rows = m_ch - o0 < mb ? m_ch - o0 : mb;
            for (int xi = 0; xi < 16; xi++) {
                const float *a = up + xi * a_xs + (size_t)(o0 / mr) * a_ps;
                for (int pm = 0; pm < (rows + mr - 1) / mr; pm++, a += a_ps) {
                    for (int pn = 0; pn < used; pn++) {
                        const float *b = v + xi * b_xs + pn * b_ps;
                        float *c = mm + xi * y_xs + (long)(pm * mr) * rs + (long)(pn * nr) * cs;
                        ptl__ukernel_run(u, k_ch, a, b, 0.0f, c, rs, cs, a, b + b_ps);
                    }
                }
            }
            block_output(y, mm, rs, cs, bias, accumulate, o0, rows, runs, nruns, nt, g);
        }
    }
}

/* ---- backward weights: chunks of tile rows ---- */

/* The chunk's 16 GEMMs are shared out among the OpenMP threads, each on one BLIS thread
 * (ptl__sgemm_single), with no BLIS barriers inside each (docs/performance.md). */
static void sgemm1(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc)
{
    /* Shapes and pointers come from a validated conv: the call cannot fail. */
    ptl__sgemm_single(trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

/* Work items of the GEMM phase: the 16 GEMMs, each cut into `parts` slices when there are
 * more threads than GEMMs. */
static int gemm_parts(void)
{
    int nt = omp_get_num_threads();
    return (nt + 15) / 16;
}

/* part p of n split into `parts` near-equal pieces: [*lo, *hi) */
static void slice(int n, int parts, int p, int *lo, int *hi)
{
    *lo = (int)((long)n * p / parts);
    *hi = (int)((long)n * (p + 1) / parts);
}

/* du[xi] (m, c) (+)= dyt[xi] (m, t) x v[xi]^T (t, c), slices of the m rows. */
static void gemm_weight_grad(float *du, const float *dyt, const float *v, int m, int c, int t,
                             float beta)
{
    const size_t mc = (size_t)m * c;
    const int parts = gemm_parts();
#pragma omp for schedule(static)
    for (int item = 0; item < 16 * parts; item++) {
        int xi = item / parts, lo, hi;
        slice(m, parts, item % parts, &lo, &hi);
        if (hi > lo)
            sgemm1(0, 1, hi - lo, c, t, dyt + ((size_t)xi * m + lo) * t, t, v + (size_t)xi * c * t,
                   t, beta, du + xi * mc + (size_t)lo * c, c);
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
    float *up = align_up(workspace), *blocks = up + packed_floats(&g, g.m, g.c);
#pragma omp parallel num_threads(fused_threads(&g))
    {
        pack_weights(up, weight, &g, 0);
        fused_conv(out, in, up, bias, 0, g.c, g.m, &g, blocks);
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
    if (d_weight) {
        float *du = base, *x = du + 16 * (size_t)m * c, *y = x + 16 * g.tiles * c;
#pragma omp parallel if (parallel_worth(&g))
        {
            for (long r0 = 0; r0 < g.rows; r0 += g.chunk_rows) {
                int rows = g.rows - r0 < g.chunk_rows ? (int)(g.rows - r0) : g.chunk_rows;
                int t = rows * g.tw;
                input_tiles(x, in, c, &g, r0, rows);
                dout_tiles(y, d_out, m, &g, r0, rows);
                gemm_weight_grad(du, y, x, m, c, t, r0 == 0 ? 0.0f : 1.0f);
            }
            weight_grad(d_weight, du, m, c);
        }
    }
    if (d_in) {
        /* d_in += the forward conv of d_out with the turned kernel (the space of the phase
         * above is free again). */
        float *up = base, *blocks = up + packed_floats(&g, c, m);
#pragma omp parallel num_threads(fused_threads(&g))
        {
            pack_weights(up, weight, &g, 1);
            fused_conv(d_in, d_out, up, NULL, 1, m, c, &g, blocks);
        }
    }
    return PTL_OK;
}
