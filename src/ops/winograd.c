/* Winograd F(2x2, 3x3) convolution: transforms (OpenMP, SIMD over the tiles of a tile row) and
 * the 16 GEMMs per chunk (single-threaded BLIS calls shared out among the OpenMP threads). See
 * winograd.h for the maths.
 *
 * Tiles: output tile (i, j) of an image covers outputs rows 2i..2i+1, columns 2j..2j+1 and reads
 * the input patch rows 2i-1..2i+2, columns 2j-1..2j+2 (zero outside: padding 1, and the partial
 * last tile of an odd size). Tile rows of all images are numbered r = img * th + i; a chunk is
 * a run of whole tile rows, its tiles numbered t = (r - r0) * tw + j.
 *
 * Workspace: U [16][C_out][C_in], dU [16][C_out][C_in], X [16][C_in][T], Y [16][C_out][T]:
 *   forward          X = V(in),            Y = M
 *   backward weights X = V(in),            Y = A dY A^T        dU += Y[xi] x X[xi]^T
 *   backward data    Y = V(d_out),         X = M' (d_in tiles) */
#include "ops/winograd.h"

#include <omp.h>

#include "ops/check.h"
#include "ops/gemm.h"

/* Winograd beats im2col from these channel counts and tiles per batch on; below, the transforms
 * and the transformed weights cost more than the 2.25x fewer multiplications save. Measured
 * fwd+bwd, Winograd / im2col time, 1-2 threads: 32x16 planes at 16 channels 0.7-0.85x, at 32
 * 1.0-1.1x, at 64 1.2-1.5x; 512 channels at 64-128 tiles per batch 0.7-1.0x, at 256+ 1.2-1.4x. */
#define WINO_MIN_CHANNELS 64
#define WINO_MIN_TILES 256
/* Tiles per chunk: the GEMMs need a wide T to run at speed (64 was clearly slower), and the
 * chunk's 16*(C_in+C_out)*T floats should stay in the last-level cache; 256-1024 measured
 * alike within the noise of the shared test machine. */
#define WINO_CHUNK_TILES 512
/* Tiles per block of the transform loops (the SIMD lanes run over the tiles of a row). */
#define JB 32

static const float zeros[2 * JB + 2];

struct wino {
    int n, c, m, h, w; /* batch, C_in, C_out, H = H_out, W = W_out */
    int th, tw;        /* tiles per column and per row of an image */
    long rows;         /* tile rows in the batch: n * th */
    int chunk_rows;    /* tile rows per chunk */
    size_t tiles;      /* tiles per full chunk: chunk_rows * tw */
};

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
    long cr = WINO_CHUNK_TILES / g->tw;
    if (cr < 1)
        cr = 1;
    if (cr > g->rows)
        cr = g->rows;
    g->chunk_rows = (int)cr;
    g->tiles = (size_t)cr * g->tw;
}

int ptl__winograd_applies(const struct ptl_conv2d_shape *s)
{
    long long tiles = (long long)s->n * ((s->h + 1) / 2) * ((s->w + 1) / 2);
    return s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 &&
           s->pad_w == 1 && s->c_in >= WINO_MIN_CHANNELS && s->c_out >= WINO_MIN_CHANNELS &&
           tiles >= WINO_MIN_TILES;
}

size_t ptl__winograd_workspace_floats(const struct ptl_conv2d_shape *s)
{
    struct wino g;
    wino_make(s, &g);
    return 32 * (size_t)g.m * g.c + 16 * g.tiles * ((size_t)g.c + g.m);
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

/* row[2j], row[2j+1] (+)= e[j], f[j] for j < nfull, and row[2 nfull] (+)= e[nfull] when the
 * image ends in the middle of a tile (odd width, tail = 1). */
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

/* y (N, cc, H, W) = (or += when accumulate) A^T m A (+ bias) for the tiles of tile rows
 * r0..r0+rows, m [16][cc][rows*tw]. A^T = [1 1 1 0; 0 1 -1 -1]. */
static void output_tiles(float *y, const float *mm, const float *bias, int accumulate, int cc,
                         const struct wino *g, long r0, int rows)
{
    const int h = g->h, w = g->w, tw = g->tw;
    const size_t ld = (size_t)rows * tw, xs = (size_t)cc * ld;
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < cc; ch++) {
        for (int rr = 0; rr < rows; rr++) {
            int i;
            float *p = y + tile_row_plane(g, cc, ch, r0 + rr, &i);
            float *dst0 = p + (size_t)(2 * i) * w;
            float *dst1 = 2 * i + 1 < h ? dst0 + w : NULL;
            const float *src = mm + (size_t)ch * ld + (size_t)rr * tw;
            const float b = bias ? bias[ch] : 0.0f;
            for (int j0 = 0; j0 < tw; j0 += JB) {
                int nj = tw - j0 < JB ? tw - j0 : JB;
                const float *q[16];
                for (int k = 0; k < 16; k++)
                    q[k] = src + k * xs + j0;
                float y00[JB], y01[JB], y10[JB], y11[JB];
#pragma omp simd
                for (int j = 0; j < nj; j++) {
                    /* rows of A^T m: s = m0 + m1 + m2, z = m1 - m2 - m3 (per column) */
                    float s0 = q[0][j] + q[4][j] + q[8][j], s1 = q[1][j] + q[5][j] + q[9][j];
                    float s2 = q[2][j] + q[6][j] + q[10][j], s3 = q[3][j] + q[7][j] + q[11][j];
                    float z0 = q[4][j] - q[8][j] - q[12][j], z1 = q[5][j] - q[9][j] - q[13][j];
                    float z2 = q[6][j] - q[10][j] - q[14][j], z3 = q[7][j] - q[11][j] - q[15][j];
                    y00[j] = s0 + s1 + s2 + b;
                    y01[j] = s1 - s2 - s3 + b;
                    y10[j] = z0 + z1 + z2 + b;
                    y11[j] = z1 - z2 - z3 + b;
                }
                /* tiles j < nfull have both output columns inside the image */
                int room = (w - 2 * j0) / 2, nfull = room < nj ? room : nj;
                int tail = nfull < nj;
                store_pairs(dst0 + 2 * j0, y00, y01, nfull, tail, accumulate);
                if (dst1)
                    store_pairs(dst1 + 2 * j0, y10, y11, nfull, tail, accumulate);
            }
        }
    }
}

/* u [16][m][c] = G g G^T for every kernel g of weight (m, c, 3, 3).
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
static void weight_tiles(float *u, const float *weight, int m, int c)
{
    const size_t mc = (size_t)m * c;
#pragma omp for schedule(static)
    for (size_t idx = 0; idx < mc; idx++) {
        const float *k = weight + idx * 9; /* (3, 3) */
        float t[4][3];
        for (int col = 0; col < 3; col++) {
            float g0 = k[col], g1 = k[3 + col], g2 = k[6 + col];
            t[0][col] = g0;
            t[1][col] = 0.5f * (g0 + g1 + g2);
            t[2][col] = 0.5f * (g0 - g1 + g2);
            t[3][col] = g2;
        }
        for (int a = 0; a < 4; a++) {
            u[(4 * a + 0) * mc + idx] = t[a][0];
            u[(4 * a + 1) * mc + idx] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
            u[(4 * a + 2) * mc + idx] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
            u[(4 * a + 3) * mc + idx] = t[a][2];
        }
    }
}

/* d_weight (m, c, 3, 3) += G^T dU G, the adjoint of weight_tiles. */
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

/* ---- the GEMMs ---- */

/* The 16 GEMMs of a chunk are shared out among the OpenMP threads, each on one BLIS thread
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

/* y[xi] (m, t) = op(u[perm xi]) (m, k) x x[xi] (k, t) for the 16 xi, slices of the t columns.
 * Forward: u = U (m = C_out, k = C_in), no transpose; backward data: u = U turned, transposed
 * (m = C_in, k = C_out). */
static void gemm_tiles(float *y, const float *u, const int *perm, int trans, const float *x,
                       int m, int k, int t)
{
    const size_t mk = (size_t)m * k;
    const int parts = gemm_parts();
#pragma omp for schedule(static)
    for (int item = 0; item < 16 * parts; item++) {
        int xi = item / parts, lo, hi;
        slice(t, parts, item % parts, &lo, &hi);
        if (hi > lo)
            sgemm1(trans, 0, m, hi - lo, k, u + (size_t)(perm ? perm[xi] : xi) * mk,
                   trans ? m : k, x + (size_t)xi * k * t + lo, t, 0.0f,
                   y + (size_t)xi * m * t + lo, t);
    }
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

/* Fork only when each chunk's GEMMs have enough multiply-adds to pay for the three barriers
 * per chunk (always true for the shapes ptl__winograd_applies() accepts). */
static int parallel_worth(const struct wino *g)
{
    return 16 * g->tiles * g->c * g->m >= 64 * (size_t)PTL_OMP_MIN_ELEMENTS;
}

int ptl__winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                          const struct ptl_conv2d_shape *s, float *workspace)
{
    struct wino g;
    wino_make(s, &g);
    const int m = g.m, c = g.c;
    float *u = workspace, *x = u + 32 * (size_t)m * c, *y = x + 16 * g.tiles * c;
    /* One parallel region: threads share out each phase, the barriers between phases are the
     * only synchronisation. */
#pragma omp parallel if (parallel_worth(&g))
    {
        weight_tiles(u, weight, m, c);
        for (long r0 = 0; r0 < g.rows; r0 += g.chunk_rows) {
            int rows = g.rows - r0 < g.chunk_rows ? (int)(g.rows - r0) : g.chunk_rows;
            int t = rows * g.tw;
            input_tiles(x, in, c, &g, r0, rows);
            gemm_tiles(y, u, NULL, 0, x, m, c, t);
            output_tiles(out, y, bias, 0, m, &g, r0, rows);
        }
    }
    return PTL_OK;
}

int ptl__winograd_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                           const float *weight, const struct ptl_conv2d_shape *s,
                           float *workspace)
{
    /* The 180-degree turned kernel in the transformed domain: G J = P G with P swapping rows
     * 0 and 3, so U'[a][b] = U[p(a)][p(b)], p = (3 1 2 0). */
    static const int turn[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};
    struct wino g;
    wino_make(s, &g);
    const int m = g.m, c = g.c;
    const size_t mc = (size_t)m * c;
    float *u = workspace, *du = u + 16 * mc, *x = du + 16 * mc, *y = x + 16 * g.tiles * c;
#pragma omp parallel if (parallel_worth(&g))
    {
        if (d_in)
            weight_tiles(u, weight, m, c);
        for (long r0 = 0; r0 < g.rows; r0 += g.chunk_rows) {
            int rows = g.rows - r0 < g.chunk_rows ? (int)(g.rows - r0) : g.chunk_rows;
            int t = rows * g.tw;
            if (d_weight) {
                input_tiles(x, in, c, &g, r0, rows);
                dout_tiles(y, d_out, m, &g, r0, rows);
                gemm_weight_grad(du, y, x, m, c, t, r0 == 0 ? 0.0f : 1.0f);
            }
            if (d_in) {
                /* V(d_out) into y, d_in tiles into x: the d_weight GEMMs above are done
                 * (barrier at the end of their loop). */
                input_tiles(y, d_out, m, &g, r0, rows);
                gemm_tiles(x, u, turn, 1, y, c, m, t);
                output_tiles(d_in, x, NULL, 1, c, &g, r0, rows);
            }
        }
        if (d_weight)
            weight_grad(d_weight, du, m, c);
    }
    return PTL_OK;
}
