/* Winograd F(4x4, 3x3): the forward and backward data of 3x3 stride-1 pad-1 convs on planes
 * with room for its 4x4 output tiles (ptl__winograd4_applies), and their d_weight on larger
 * planes still (ptl__winograd4_weight_applies; smaller ones keep winograd.c's F(2x2, 3x3)).
 * See winograd4.h for the maths.
 *
 * Why: per output and channel pair F(2x2, 3x3) does 4 multiplications and its transformed tiles
 * hold 4 values; F(4x4, 3x3) does 2.25 and holds 2.25, so both the micro-kernel's work and the
 * transforms' memory traffic shrink. Measured against F(2x2, 3x3) on Zen 4, 2 threads, forward
 * (docs/performance.md): 64 -> 64 at 32x16, batch 32, 1.23-1.27x faster; 128 -> 128 at 16x8
 * 1.07-1.11x; 256 -> 256 at 8x4 0.91-0.97x (hence the plane bound).
 *
 * The driver is winograd.c's fused one with 36 products instead of 16: per block of tiles (one
 * OpenMP thread each) the input transform writes the block's 36 V[xi] straight into the packed
 * layout of BLIS's micro-kernel, the kernel multiplies them with the transformed weights
 * (packed once per call), and the output transform turns each slice of output channels back
 * into pixels while it is in cache. Tiles sit on the kernel's stored side (ptl__ukernel_sides).
 *
 * Tiles: tile (i, j) of an image covers outputs rows 4i..4i+3, columns 4j..4j+3 (fewer at the
 * bottom and right edges) and reads the input patch rows 4i-1..4i+4, columns 4j-1..4j+4, zero
 * outside. Tiles are numbered over the batch: t = (img * th + i) * tw + j.
 *
 * The weight gradient runs as winograd.c's does, over chunks of tile rows: the input and d_out
 * transforms of a chunk, then the 36 products dU[xi] += (A dY A^T)[xi] x V[xi]^T through
 * winograd.c's ptl__winograd_weight_products, then d_weight += G^T dU G.
 *
 * Workspace (64-byte aligned regions): forward and backward data, the packed transformed
 * weights, then one block buffer per thread (36 tile panels of the block, and one slice of the
 * 36 products); the weight gradient, dU and one chunk's two transforms. */
#include "ops/winograd4.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "ops/check.h"
#include "ops/gemm.h"
#include "ops/vmath.h"
#include "ops/winograd.h"
#include "ptl/core.h"

/* F(4x4, 3x3) from output planes of this many pixels on: 16x8 gained, 8x4 lost (see above).
 * Its d_weight only from W4_WEIGHT_MIN_PIXELS: against F(2x2, 3x3)'s, on Zen 4 (2 threads,
 * docs/performance.md), 64 -> 64 at 64x32 and 64 -> 256 at 64x32 ran 1.18-1.44x as fast,
 * 128 -> 128 at 32x16 alike, 64 -> 64 at 32x16 and 128 -> 128 at 16x8 slower (0.87-0.99x,
 * 0.74-0.81x): on short tile rows its transforms' per-row work dominates. Measured again once
 * both kept their per-transform buffers off one cache set (ptl__wino_xi_stride), d_weight
 * alone, F(2x2) / F(4x4) time: at 32x16, 64 -> 64 1.1x, 64 -> 256 1.19x, 128 -> 128 1.16-1.34x,
 * 256 -> 256 1.3x; at 16x8, 128 -> 128 0.97-1.09x, 256 -> 256 1.04-1.08x (so from 32x16). */
#define W4_MIN_PIXELS 128
#define W4_WEIGHT_MIN_PIXELS 512
#define T36 36
/* Tiles per block (whole tile panels) and output channels per slice: 32 and 24 measured best
 * of 16-64 and 24-96 on 64-256 channels (a slice's 36 results, 36 x 24 x 32 floats, 110 KB,
 * stay in L2). */
#define BLOCK_TILES 32
#define SLICE_ROWS 24
/* Tiles per SIMD run of the input transform along a tile row. */
#define JB 16
#define UK_MAX 64
#define NB_MAX (BLOCK_TILES + UK_MAX)
#define SLOTS_MAX 16
/* Tiles per chunk of the weight gradient (BLIS products, row dot products): the 16-transform
 * chunks of winograd.c scaled by 16/36, so that a chunk's transforms take the same memory. */
#define CHUNK_TILES 256
#define DOT_CHUNK_TILES 512
#define ALIGN_FLOATS 16

static const float zeros[4 * JB + 2];

struct w4 {
    int n, c, m, h, w; /* batch, input channels, output channels, plane */
    int th, tw;        /* tiles per column and per row of an image */
    long ntiles;       /* tiles in the batch */
    int lt, lc;        /* lanes of a tile panel (stored side) and of a channel panel */
    int nb, mb;        /* tiles per block, output channels per slice */
    int slots;         /* block buffers in the workspace */
    int dot;           /* the weight gradient's products as row dot products, not BLIS */
};

/* k_ch input and m_ch output channels: (c, m) for the forward, (m, c) for backward data. */
static void w4_make(const struct ptl_conv2d_shape *s, int k_ch, int m_ch, struct w4 *g)
{
    g->n = s->n;
    g->c = k_ch;
    g->m = m_ch;
    g->h = s->h;
    g->w = s->w;
    g->th = (s->h + 3) / 4;
    g->tw = (s->w + 3) / 4;
    g->ntiles = (long)s->n * g->th * g->tw;
    ptl__ukernel_sides(ptl__ukernel(), &g->lt, &g->lc);
    g->nb = (BLOCK_TILES + g->lt - 1) / g->lt * g->lt; /* <= NB_MAX */
    g->mb = (SLICE_ROWS + g->lc - 1) / g->lc * g->lc;
    int cap = ptl_threads_available();
    g->slots = cap < SLOTS_MAX ? cap : SLOTS_MAX;
    g->dot = (long)k_ch * m_ch < PTL_WINO_DOT_MAX_WEIGHTS;
}

int ptl__winograd4_applies(const struct ptl_conv2d_shape *s)
{
    return (long)s->h * s->w >= W4_MIN_PIXELS && ptl__ukernel_fits(ptl__ukernel(), UK_MAX);
}

int ptl__winograd4_weight_applies(const struct ptl_conv2d_shape *s)
{
    return (long)s->h * s->w >= W4_WEIGHT_MIN_PIXELS && ptl__winograd4_applies(s);
}

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

static size_t panel_stride(int width, int k)
{
    return round_up((size_t)width * k, ALIGN_FLOATS);
}

static size_t packed_floats(const struct w4 *g)
{
    return T36 * (size_t)((g->m + g->lc - 1) / g->lc) * panel_stride(g->lc, g->c);
}

/* Floats from one transform xi to the next in a block buffer: its tile panels, its slice of
 * results (ptl__wino_xi_stride: no power-of-two steps between the 36 streams). */
static size_t tiles_xs(const struct w4 *g)
{
    return ptl__wino_xi_stride((size_t)(g->nb / g->lt) * panel_stride(g->lt, g->c));
}

static size_t slice_xs(const struct w4 *g)
{
    return ptl__wino_xi_stride((size_t)g->mb * g->nb);
}

static size_t tiles_floats(const struct w4 *g)
{
    return T36 * tiles_xs(g);
}

static size_t block_floats(const struct w4 *g)
{
    return tiles_floats(g) + T36 * slice_xs(g);
}

static size_t pass_floats(const struct w4 *g)
{
    return round_up(packed_floats(g), ALIGN_FLOATS) + g->slots * block_floats(g);
}

/* Tile rows per chunk of the weight gradient: about CHUNK_TILES tiles, at least one row. */
static int chunk_rows(const struct w4 *g)
{
    long rows = (long)g->n * g->th, cr = (g->dot ? DOT_CHUNK_TILES : CHUNK_TILES) / g->tw;
    cr = cr < 1 ? 1 : cr;
    return (int)(cr < rows ? cr : rows);
}

/* The weight gradient's dU [36][C_out][C_in], X [36][C_in][T] and Y [36][C_out][T]. */
static size_t weight_floats(const struct w4 *g)
{
    size_t tiles = (size_t)chunk_rows(g) * g->tw;
    return T36 * (ptl__wino_xi_stride((size_t)g->m * g->c) + ptl__wino_xi_stride(tiles * g->c) +
                  ptl__wino_xi_stride(tiles * g->m));
}

size_t ptl__winograd4_workspace_floats(const struct ptl_conv2d_shape *s)
{
    struct w4 fwd, bwd;
    w4_make(s, s->c_in, s->c_out, &fwd);
    w4_make(s, s->c_out, s->c_in, &bwd);
    size_t a = pass_floats(&fwd), b = pass_floats(&bwd), w = weight_floats(&fwd);
    a = a > b ? a : b;
    return (a > w ? a : w) + ALIGN_FLOATS;
}

static float *align_up(float *p)
{
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* r = B^T d for a 6-vector d; B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 * 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]. */
#define B_T(d0, d1, d2, d3, d4, d5, r0, r1, r2, r3, r4, r5)                                      \
    do {                                                                                         \
        r0 = 4.0f * d0 - 5.0f * d2 + d4;                                                         \
        r1 = -4.0f * (d1 + d2) + d3 + d4;                                                        \
        r2 = 4.0f * (d1 - d2) - d3 + d4;                                                         \
        r3 = 2.0f * (d3 - d1) - d2 + d4;                                                         \
        r4 = 2.0f * (d1 - d3) - d2 + d4;                                                         \
        r5 = 4.0f * d1 - 5.0f * d3 + d5;                                                         \
    } while (0)

/* r = A^T m for a 6-vector m; A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
#define A_T(m0, m1, m2, m3, m4, m5, r0, r1, r2, r3)                                              \
    do {                                                                                         \
        const float a12 = m1 + m2, d12 = m1 - m2, a34 = m3 + m4, d34 = m3 - m4;                  \
        r0 = m0 + a12 + a34;                                                                     \
        r1 = d12 + 2.0f * d34;                                                                   \
        r2 = a12 + 4.0f * a34;                                                                   \
        r3 = d12 + 8.0f * d34 + m5;                                                              \
    } while (0)

/* out[(6a + b) * xs + j], j < nj <= JB: B^T d B of the 6x6 input patches of nj consecutive tiles
 * along a tile row of the (H, W) plane p, the first patch's top-left corner at (y0, x0), zero
 * outside the plane. Columns first over whole rows, so the loops run over contiguous floats. */
static inline __attribute__((always_inline)) void tile_row_input(float *restrict out, size_t xs,
                                                                 const float *p, int y0, int x0,
                                                                 int nj, const struct w4 *g)
{
    const int ncol = 4 * nj + 2;
    const int lo = x0 < 0 ? -x0 : 0, hi = g->w - x0 < ncol ? g->w - x0 : ncol;
    const float *rp[6];
    int off[6];
    for (int r = 0; r < 6; r++) {
        int y = y0 + r, inside = y >= 0 && y < g->h;
        rp[r] = inside ? p + (size_t)y * g->w : zeros;
        off[r] = inside ? x0 : 0;
    }
    float t[6][4 * JB + 2];
    for (int q = 0; q < lo; q++)
        for (int a = 0; a < 6; a++)
            t[a][q] = 0.0f;
#pragma omp simd
    for (int q = lo; q < hi; q++)
        B_T(rp[0][off[0] + q], rp[1][off[1] + q], rp[2][off[2] + q], rp[3][off[3] + q],
            rp[4][off[4] + q], rp[5][off[5] + q], t[0][q], t[1][q], t[2][q], t[3][q], t[4][q],
            t[5][q]);
    for (int q = hi; q < ncol; q++)
        for (int a = 0; a < 6; a++)
            t[a][q] = 0.0f;
    for (int a = 0; a < 6; a++) {
        const float *e = t[a];
        float *o = out + (size_t)(6 * a) * xs;
#pragma omp simd
        for (int j = 0; j < nj; j++)
            B_T(e[4 * j], e[4 * j + 1], e[4 * j + 2], e[4 * j + 3], e[4 * j + 4], e[4 * j + 5],
                o[j], o[xs + j], o[2 * xs + j], o[3 * xs + j], o[4 * xs + j], o[5 * xs + j]);
    }
}

/* A run of a block's tiles along one tile row: lanes l0..l0+n, tiles j0..j0+n-1 of tile row i
 * of image img; in: channel 0 of the image in the input; out: the first tile's first output in
 * channel 0 of the output; last_cols: outputs in the run's last tile row (4 unless at the right
 * edge); rows: output rows of the tile row (4 unless at the bottom edge). */
struct tile_run {
    int l0, n, i, j0, last_cols, rows;
    long in, out;
};

static int tile_runs(struct tile_run *runs, long t0, int nt, const struct w4 *g)
{
    const long per_img = (long)g->th * g->tw, plane = (long)g->h * g->w;
    int count = 0;
    for (int l = 0; l < nt;) {
        const long t = t0 + l, img = t / per_img;
        const int i = (int)(t % per_img / g->tw), j0 = (int)(t % g->tw);
        const int n = g->tw - j0 < nt - l ? g->tw - j0 : nt - l;
        const int last = g->w - 4 * (j0 + n - 1), rows = g->h - 4 * i;
        runs[count++] = (struct tile_run){
            .l0 = l,
            .n = n,
            .i = i,
            .j0 = j0,
            .last_cols = last < 4 ? last : 4,
            .rows = rows < 4 ? rows : 4,
            .in = img * g->c * plane,
            .out = img * g->m * plane + (long)(4 * i) * g->w + 4 * j0,
        };
        l += n;
    }
    return count;
}

/* v [36][panels][k][lt]: B^T d B of the block's nt tiles over the k channels of x, as tile
 * micro-panels (lanes past nt are zero). */
static PTL_SIMD_CLONES void block_input(float *restrict v, const float *restrict x,
                                        const struct tile_run *runs, int nruns, int nt,
                                        const struct w4 *g)
{
    const int lt = g->lt, used = (nt + lt - 1) / lt;
    const size_t plane = (size_t)g->h * g->w, ps = panel_stride(lt, g->c), xs = tiles_xs(g);
    float st[T36][NB_MAX]; /* st[xi][lane] */
    for (int xi = 0; xi < T36; xi++)
        for (int l = nt; l < used * lt; l++)
            st[xi][l] = 0.0f;
    for (int ch = 0; ch < g->c; ch++) {
        for (int r = 0; r < nruns; r++) {
            const struct tile_run *u = &runs[r];
            const float *p = x + u->in + ch * plane;
            for (int j = 0; j < u->n; j += JB)
                tile_row_input(&st[0][u->l0 + j], NB_MAX, p, 4 * u->i - 1,
                               4 * (u->j0 + j) - 1, u->n - j < JB ? u->n - j : JB, g);
        }
        for (int xi = 0; xi < T36; xi++) {
            float *dst = v + xi * xs + (size_t)ch * lt;
            for (int pn = 0; pn < used; pn++, dst += ps)
                memcpy(dst, &st[xi][pn * lt], sizeof(float) * (size_t)lt);
        }
    }
}

/* row[4j + k] (+)= o[k][l0 + j] + b for the run's nfull whole tiles, then `part` columns of one
 * more. Separate loops for set and add, so each vectorises. */
static inline __attribute__((always_inline)) void store_row(float *restrict row,
                                                            const float (*o)[NB_MAX], int l0,
                                                            int nfull, int part, float b,
                                                            int accumulate)
{
    if (accumulate) {
        for (int j = 0; j < nfull; j++)
            for (int k = 0; k < 4; k++)
                row[4 * j + k] += o[k][l0 + j] + b;
    } else {
        for (int j = 0; j < nfull; j++)
            for (int k = 0; k < 4; k++)
                row[4 * j + k] = o[k][l0 + j] + b;
    }
    for (int k = 0; k < part; k++)
        row[4 * nfull + k] = accumulate ? row[4 * nfull + k] + o[k][l0 + nfull] + b
                                        : o[k][l0 + nfull] + b;
}

/* y (N, m, H, W) (+)= A^T M A (+ bias) for output channels o0..o0+rows of the block's tiles,
 * mm [36][mb][nb] (element (channel, tile) at channel * nb + tile). */
static PTL_SIMD_CLONES void block_output(float *restrict y, const float *restrict mm,
                                         const float *bias, int accumulate, int o0, int rows,
                                         const struct tile_run *runs, int nruns, int nt,
                                         const struct w4 *g)
{
    const size_t plane = (size_t)g->h * g->w, xs = slice_xs(g);
    for (int r = 0; r < rows; r++) {
        const float b = bias ? bias[o0 + r] : 0.0f;
        const float *q[T36];
        for (int k = 0; k < T36; k++)
            q[k] = mm + k * xs + (size_t)r * g->nb;
        float out[4][4][NB_MAX]; /* out[row][column][tile] */
#pragma omp simd
        for (int l = 0; l < nt; l++) {
            float s0[6], s1[6], s2[6], s3[6]; /* rows of A^T M */
            for (int c = 0; c < 6; c++)
                A_T(q[c][l], q[6 + c][l], q[12 + c][l], q[18 + c][l], q[24 + c][l], q[30 + c][l],
                    s0[c], s1[c], s2[c], s3[c]);
            A_T(s0[0], s0[1], s0[2], s0[3], s0[4], s0[5], out[0][0][l], out[0][1][l],
                out[0][2][l], out[0][3][l]);
            A_T(s1[0], s1[1], s1[2], s1[3], s1[4], s1[5], out[1][0][l], out[1][1][l],
                out[1][2][l], out[1][3][l]);
            A_T(s2[0], s2[1], s2[2], s2[3], s2[4], s2[5], out[2][0][l], out[2][1][l],
                out[2][2][l], out[2][3][l]);
            A_T(s3[0], s3[1], s3[2], s3[3], s3[4], s3[5], out[3][0][l], out[3][1][l],
                out[3][2][l], out[3][3][l]);
        }
        float *ch = y + (size_t)(o0 + r) * plane;
        for (int k = 0; k < nruns; k++) {
            const struct tile_run *u = &runs[k];
            const int nfull = u->n - (u->last_cols < 4);
            for (int a = 0; a < u->rows; a++) {
                store_row(ch + u->out + (long)a * g->w, out[a], u->l0, nfull,
                          u->last_cols < 4 ? u->last_cols : 0, b, accumulate);
            }
        }
    }
}

/* r = G a for a 3-vector a (one column of the kernel, then one row of G g);
 * G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
 * Divisions, not products with rounded reciprocals: those moved a forward's error past the
 * tests' bound (1.02e-5 against 1e-5). In pack_weights' SIMD loops they cost little. */
#define G_COL(a, b, d, r0, r1, r2, r3, r4, r5)                                                   \
    do {                                                                                         \
        r0 = (a) / 4.0f;                                                                         \
        r1 = -((a) + (b) + (d)) / 6.0f;                                                          \
        r2 = -((a) - (b) + (d)) / 6.0f;                                                          \
        r3 = (a) / 24.0f + (b) / 12.0f + (d) / 6.0f;                                             \
        r4 = (a) / 24.0f - (b) / 12.0f + (d) / 6.0f;                                             \
        r5 = (d);                                                                                \
    } while (0)

/* u[xi * stride] = (G g G^T)[xi] of the kernel g (row-major g00..g22). */
static inline __attribute__((always_inline)) void
kernel_tile_of(float *u, size_t stride, float g00, float g01, float g02, float g10, float g11,
               float g12, float g20, float g21, float g22)
{
    float t[6][3]; /* G g */
    G_COL(g00, g10, g20, t[0][0], t[1][0], t[2][0], t[3][0], t[4][0], t[5][0]);
    G_COL(g01, g11, g21, t[0][1], t[1][1], t[2][1], t[3][1], t[4][1], t[5][1]);
    G_COL(g02, g12, g22, t[0][2], t[1][2], t[2][2], t[3][2], t[4][2], t[5][2]);
    for (int r = 0; r < 6; r++)
        G_COL(t[r][0], t[r][1], t[r][2], u[(6 * r) * stride], u[(6 * r + 1) * stride],
              u[(6 * r + 2) * stride], u[(6 * r + 3) * stride], u[(6 * r + 4) * stride],
              u[(6 * r + 5) * stride]);
}

/* ... of the kernel k (3, 3), read turned by 180 degrees when `turned`. */
static inline __attribute__((always_inline)) void kernel_tile(float *u, size_t stride,
                                                              const float *k, int turned)
{
    if (turned)
        kernel_tile_of(u, stride, k[8], k[7], k[6], k[5], k[4], k[3], k[2], k[1], k[0]);
    else
        kernel_tile_of(u, stride, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]);
}

/* up = the 36 transformed weight matrices as channel micro-panels of lc lanes (element
 * (channel j, k) at panel[k * lc + j], zero past the last channel). Forward: channels are C_out,
 * K = C_in. Turned (backward data): channels are C_in, K = C_out, the kernel turned. Whole
 * panels go in runs of columns (ptl__wino_pack_offsets), the last partial one kernel by kernel
 * (as all of them did before: 36 single-float stores and dozens of scalar divisions per kernel,
 * a third of a forward at 256 -> 256 channels on 16x8 planes, batch 16).
 * The weight (C_out, C_in, 3, 3) holds the kernel of (row, col) at row * row_step +
 * col * col_step. */
static PTL_SIMD_CLONES void pack_weights(float *up, const float *weight, const struct w4 *g,
                                         int turned)
{
    const int lanes = g->lc, rows = g->m, k = g->c;
    const size_t ps = panel_stride(lanes, k), panels = (size_t)(rows + lanes - 1) / lanes;
    const size_t xs = panels * ps;
    const size_t row_step = turned ? 9 : (size_t)k * 9, col_step = turned ? (size_t)rows * 9 : 9;
    int offs[PTL_WINO_PACK_LANES];
    const int cols = ptl__wino_pack_offsets(offs, lanes, row_step, col_step);
    const int step = cols > 0 ? cols : 1, runs = (k + step - 1) / step;
#pragma omp for schedule(static)
    for (long it = 0; it < (long)panels * runs; it++) {
        const int pn = (int)(it / runs), col0 = (int)(it % runs) * step, row0 = pn * lanes;
        const int nc = k - col0 < step ? k - col0 : step;
        float *dst = up + pn * ps + (size_t)col0 * lanes;
        if (cols > 0 && row0 + lanes <= rows) {
            const float *src = weight + (size_t)row0 * row_step + (size_t)col0 * col_step;
            const int n = nc * lanes;
            float u[T36][PTL_WINO_PACK_LANES];
            if (turned) {
#pragma omp simd
                for (int e = 0; e < n; e++) {
                    const int o = offs[e]; /* int indices, one per tap: gathered */
                    kernel_tile_of(&u[0][e], PTL_WINO_PACK_LANES, src[o + 8], src[o + 7],
                                   src[o + 6], src[o + 5], src[o + 4], src[o + 3], src[o + 2],
                                   src[o + 1], src[o]);
                }
            } else {
#pragma omp simd
                for (int e = 0; e < n; e++) {
                    const int o = offs[e];
                    kernel_tile_of(&u[0][e], PTL_WINO_PACK_LANES, src[o], src[o + 1],
                                   src[o + 2], src[o + 3], src[o + 4], src[o + 5], src[o + 6],
                                   src[o + 7], src[o + 8]);
                }
            }
            for (int xi = 0; xi < T36; xi++)
                memcpy(dst + (size_t)xi * xs, u[xi], sizeof(float) * (size_t)n);
            continue;
        }
        for (int col = col0; col < col0 + nc; col++)
            for (int j = 0; j < lanes; j++) {
                float u[T36];
                if (row0 + j < rows)
                    kernel_tile(u, 1,
                                weight + (size_t)(row0 + j) * row_step + (size_t)col * col_step,
                                turned);
                else
                    memset(u, 0, sizeof u);
                for (int xi = 0; xi < T36; xi++)
                    dst[(size_t)xi * xs + (size_t)(col - col0) * lanes + j] = u[xi];
            }
    }
}

/* y (N, m, H, W) (+)= the F(4x4, 3x3) conv of x (N, c, H, W) with the packed weights up. */
static void fused_conv(float *y, const float *x, const float *up, const float *bias,
                       int accumulate, const struct w4 *g, float *blocks)
{
    const struct ptl__ukernel *u = ptl__ukernel();
    const int lt = g->lt, lc = g->lc, nb = g->nb, mb = g->mb;
    const size_t c_ps = panel_stride(lc, g->c), t_ps = panel_stride(lt, g->c);
    const size_t c_xs = (size_t)((g->m + lc - 1) / lc) * c_ps, t_xs = tiles_xs(g);
    const size_t y_xs = slice_xs(g);
    const long nblocks = (g->ntiles + nb - 1) / nb;
    float *v = blocks + (size_t)omp_get_thread_num() * block_floats(g), *mm = v + tiles_floats(g);
    struct tile_run runs[NB_MAX];
#pragma omp for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        const long t0 = blk * nb;
        const int nt = g->ntiles - t0 < nb ? (int)(g->ntiles - t0) : nb;
        const int nruns = tile_runs(runs, t0, nt, g);
        block_input(v, x, runs, nruns, nt, g);
        const int used = (nt + lt - 1) / lt;
        for (int o0 = 0; o0 < g->m; o0 += mb) {
            const int rows = g->m - o0 < mb ? g->m - o0 : mb;
            for (int xi = 0; xi < T36; xi++) {
                const float *cp = up + xi * c_xs + (size_t)(o0 / lc) * c_ps;
                for (int pc = 0; pc < (rows + lc - 1) / lc; pc++, cp += c_ps) {
                    const float *tp = v + xi * t_xs;
                    for (int pt = 0; pt < used; pt++, tp += t_ps) {
                        float *c = mm + xi * y_xs + (size_t)(pc * lc) * nb + pt * lt;
                        ptl__ukernel_run_sides(u, g->c, tp, cp, 0.0f, c, nb, tp + t_ps, cp);
                    }
                }
            }
            block_output(y, mm, bias, accumulate, o0, rows, runs, nruns, nt, g);
        }
    }
}

/* Fork only when there is enough work to pay for the threads: winograd.c's bound, counted in
 * its 2x2 tiles (16 outputs per 4x4 tile, a quarter as many tiles). */
static int parallel_worth(const struct w4 *g)
{
    return (size_t)g->ntiles * 4 * g->c * g->m >= (size_t)PTL_OMP_MIN_ELEMENTS;
}

/* Threads of a fused pass: at most the block buffers the workspace holds. */
static int pass_threads(const struct w4 *g)
{
    int t = omp_get_max_threads();
    return parallel_worth(g) ? (t < g->slots ? t : g->slots) : 1;
}

/* The forward (y = conv(x) + bias) or, turned, backward data (y += conv(x) with the kernel
 * turned and transposed, x = d_out). */
static void run_pass(float *y, const float *x, const float *weight, const float *bias,
                     int turned, const struct w4 *g, float *workspace)
{
    float *up = align_up(workspace), *blocks = up + round_up(packed_floats(g), ALIGN_FLOATS);
#pragma omp parallel num_threads(pass_threads(g))
    {
        pack_weights(up, weight, g, turned);
        fused_conv(y, x, up, bias, /* accumulate */ turned, g, blocks);
    }
}

int ptl__winograd4_forward(float *out, const float *in, const float *weight, const float *bias,
                           const struct ptl_conv2d_shape *s, float *workspace)
{
    struct w4 g;
    w4_make(s, s->c_in, s->c_out, &g);
    run_pass(out, in, weight, bias, 0, &g, workspace);
    return PTL_OK;
}

int ptl__winograd4_backward_data(float *d_in, const float *d_out, const float *weight,
                                 const struct ptl_conv2d_shape *s, float *workspace)
{
    struct w4 g;
    w4_make(s, s->c_out, s->c_in, &g);
    run_pass(d_in, d_out, weight, NULL, 1, &g, workspace);
    return PTL_OK;
}

/* ---- weight gradient: chunks of tile rows ---- */

/* Channel ch's (H, W) plane, in an (N, cc, H, W) tensor, of the image that holds global tile
 * row r; *i gets the row's index within that image. */
static const float *tile_row_plane(const float *t, const struct w4 *g, int cc, int ch, long r,
                                   int *i)
{
    *i = (int)(r % g->th);
    return t + ((size_t)(r / g->th) * cc + ch) * (size_t)g->h * g->w;
}

/* v [36][c][rows*tw] = B^T d B of the 6x6 input patches of tile rows r0..r0+rows of x
 * (N, c, H, W). */
static PTL_SIMD_CLONES void input_tiles(float *v, const float *x, const struct w4 *g, long r0,
                                        int rows)
{
    const size_t ld = (size_t)rows * g->tw, xs = ptl__wino_xi_stride((size_t)g->c * ld);
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < g->c; ch++) {
        for (int rr = 0; rr < rows; rr++) {
            int i;
            const float *p = tile_row_plane(x, g, g->c, ch, r0 + rr, &i);
            float *dst = v + (size_t)ch * ld + (size_t)rr * g->tw;
            for (int j0 = 0; j0 < g->tw; j0 += JB)
                tile_row_input(dst + j0, xs, p, 4 * i - 1, 4 * j0 - 1,
                               g->tw - j0 < JB ? g->tw - j0 : JB, g);
        }
    }
}

/* r = A y for a 4-vector y (A = (A^T)^T, 6x4): the adjoint of A_T. */
#define A_(y0, y1, y2, y3, r0, r1, r2, r3, r4, r5)                                               \
    do {                                                                                         \
        const float a_even = y0 + y2, a_odd = y1 + y3;                                           \
        const float a_even4 = y0 + 4.0f * y2, a_odd8 = 2.0f * y1 + 8.0f * y3;                    \
        r0 = y0;                                                                                 \
        r1 = a_even + a_odd;                                                                     \
        r2 = a_even - a_odd;                                                                     \
        r3 = a_even4 + a_odd8;                                                                   \
        r4 = a_even4 - a_odd8;                                                                   \
        r5 = y3;                                                                                 \
    } while (0)

/* w [36][m][rows*tw] = A dY A^T of the 4x4 blocks of dy (N, m, H, W), zero beyond the plane. */
static PTL_SIMD_CLONES void dout_tiles(float *w, const float *dy, const struct w4 *g, long r0,
                                       int rows)
{
    const size_t ld = (size_t)rows * g->tw, xs = ptl__wino_xi_stride((size_t)g->m * ld);
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < g->m; ch++) {
        for (int rr = 0; rr < rows; rr++) {
            int i;
            const float *p = tile_row_plane(dy, g, g->m, ch, r0 + rr, &i);
            float *dst = w + (size_t)ch * ld + (size_t)rr * g->tw;
            for (int j0 = 0; j0 < g->tw; j0 += JB) {
                const int nj = g->tw - j0 < JB ? g->tw - j0 : JB, ncol = 4 * nj, col0 = 4 * j0;
                const int hi = g->w - col0 < ncol ? g->w - col0 : ncol;
                /* the block's 4 rows of dY, zero past the plane's last row and column */
                float e[4][4 * JB];
                for (int k = 0; k < 4; k++) {
                    const int y = 4 * i + k;
                    int q = 0;
                    if (y < g->h)
                        for (; q < hi; q++)
                            e[k][q] = p[(size_t)y * g->w + col0 + q];
                    for (; q < ncol; q++)
                        e[k][q] = 0.0f;
                }
                /* rows of A dY (6 x 4 per tile), then each row times A^T */
                float t[6][4 * JB];
#pragma omp simd
                for (int q = 0; q < ncol; q++)
                    A_(e[0][q], e[1][q], e[2][q], e[3][q], t[0][q], t[1][q], t[2][q], t[3][q],
                       t[4][q], t[5][q]);
                float *o = dst + j0;
                for (int a = 0; a < 6; a++) {
                    float *oa = o + (size_t)(6 * a) * xs;
#pragma omp simd
                    for (int j = 0; j < nj; j++)
                        A_(t[a][4 * j], t[a][4 * j + 1], t[a][4 * j + 2], t[a][4 * j + 3], oa[j],
                           oa[xs + j], oa[2 * xs + j], oa[3 * xs + j], oa[4 * xs + j],
                           oa[5 * xs + j]);
                }
            }
        }
    }
}

/* d_weight (m, c, 3, 3) += G^T dU G, the adjoint of kernel_tile, dU [36][m][c].
 * G^T = [1/4 -1/6 -1/6 1/24 1/24 0; 0 -1/6 1/6 1/12 -1/12 0; 0 -1/6 -1/6 1/6 1/6 1]. */
static void weight_grad(float *d_weight, const float *du, int m, int c)
{
    const size_t mc = (size_t)m * c, xs = ptl__wino_xi_stride(mc);
#pragma omp for schedule(static)
    for (size_t idx = 0; idx < mc; idx++) {
        float s[3][6]; /* G^T dU */
        for (int b = 0; b < 6; b++) {
            const float d0 = du[(0 + b) * xs + idx], d1 = du[(6 + b) * xs + idx];
            const float d2 = du[(12 + b) * xs + idx], d3 = du[(18 + b) * xs + idx];
            const float d4 = du[(24 + b) * xs + idx], d5 = du[(30 + b) * xs + idx];
            s[0][b] = d0 / 4.0f - (d1 + d2) / 6.0f + (d3 + d4) / 24.0f;
            s[1][b] = (d2 - d1) / 6.0f + (d3 - d4) / 12.0f;
            s[2][b] = -(d1 + d2) / 6.0f + (d3 + d4) / 6.0f + d5;
        }
        float *k = d_weight + idx * 9;
        for (int a = 0; a < 3; a++) {
            const float *r = s[a];
            k[3 * a + 0] += r[0] / 4.0f - (r[1] + r[2]) / 6.0f + (r[3] + r[4]) / 24.0f;
            k[3 * a + 1] += (r[2] - r[1]) / 6.0f + (r[3] - r[4]) / 12.0f;
            k[3 * a + 2] += -(r[1] + r[2]) / 6.0f + (r[3] + r[4]) / 6.0f + r[5];
        }
    }
}

int ptl__winograd4_backward_weight(float *d_weight, const float *d_out, const float *in,
                                   const struct ptl_conv2d_shape *s, float *workspace)
{
    struct w4 g;
    w4_make(s, s->c_in, s->c_out, &g);
    const int m = g.m, c = g.c, cr = chunk_rows(&g);
    const long rows = (long)g.n * g.th;
    float *du = align_up(workspace), *x = du + T36 * ptl__wino_xi_stride((size_t)m * c);
    float *y = x + T36 * ptl__wino_xi_stride((size_t)cr * g.tw * c);
#pragma omp parallel if (parallel_worth(&g))
    {
        for (long r0 = 0; r0 < rows; r0 += cr) {
            const int nr = rows - r0 < cr ? (int)(rows - r0) : cr;
            input_tiles(x, in, &g, r0, nr);
            dout_tiles(y, d_out, &g, r0, nr);
            ptl__winograd_weight_products(du, y, x, T36, m, c, nr * g.tw, r0 != 0, g.dot);
        }
        weight_grad(d_weight, du, m, c);
    }
    return PTL_OK;
}
