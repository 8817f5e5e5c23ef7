/* Out-of-place transpose in 8x8 blocks held in vector registers: eight rows are loaded, turned
 * by three rounds of two-register shuffles (unpack, pair shuffle, 128-bit halves: the AVX
 * transpose), and stored as eight rows. Scalar copies do the edges. An AVX2 copy of the
 * function runs where the CPU has it (PTL_SIMD_CLONES); the portable copy gets the same
 * shuffles split into SSE halves.
 *
 * Why: BLIS 0.9's skx kernel set packs a GEMM operand B stored by columns with a scalar strided
 * loop. A conv's d_weight = d_out x col^T is such a GEMM, and ran at 40 GFLOPS per core on
 * Zen 5 against 89 with col^T stored by rows (docs/performance.md); transposing col first
 * costs a fraction of that (45 GB/s read + write here). */
#include "ops/transpose.h"

#include <string.h>

#include "ops/vmath.h"

typedef float vf8 __attribute__((vector_size(32)));

/* Three rounds of two-register shuffles, written out with named registers: as loops over
 * arrays gcc kept the rows on the stack and ran at half the speed. */
#define UNPACK_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define UNPACK_HI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define PAIRS_LO(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define PAIRS_HI(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define HALVES_LO(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define HALVES_HI(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15)

/* dst[0..8) = v, or += v */
static inline __attribute__((always_inline)) void store_row(float *dst, vf8 v, int add)
{
    if (add) {
        vf8 d;
        memcpy(&d, dst, sizeof d);
        v += d;
    }
    memcpy(dst, &v, sizeof v);
}

/* dst rows j < 8 (+)= column j of the 8x8 block at src */
static inline __attribute__((always_inline)) void block8(float *restrict dst, size_t ld_dst,
                                                         const float *restrict src,
                                                         size_t ld_src, int add)
{
    vf8 r0, r1, r2, r3, r4, r5, r6, r7;
    memcpy(&r0, src, sizeof r0);
    memcpy(&r1, src + ld_src, sizeof r1);
    memcpy(&r2, src + 2 * ld_src, sizeof r2);
    memcpy(&r3, src + 3 * ld_src, sizeof r3);
    memcpy(&r4, src + 4 * ld_src, sizeof r4);
    memcpy(&r5, src + 5 * ld_src, sizeof r5);
    memcpy(&r6, src + 6 * ld_src, sizeof r6);
    memcpy(&r7, src + 7 * ld_src, sizeof r7);
    /* rows interleaved in pairs */
    vf8 t0 = UNPACK_LO(r0, r1), t1 = UNPACK_HI(r0, r1), t2 = UNPACK_LO(r2, r3),
        t3 = UNPACK_HI(r2, r3), t4 = UNPACK_LO(r4, r5), t5 = UNPACK_HI(r4, r5),
        t6 = UNPACK_LO(r6, r7), t7 = UNPACK_HI(r6, r7);
    /* 4x4 blocks transposed within each 128-bit half */
    vf8 s0 = PAIRS_LO(t0, t2), s1 = PAIRS_HI(t0, t2), s2 = PAIRS_LO(t1, t3),
        s3 = PAIRS_HI(t1, t3), s4 = PAIRS_LO(t4, t6), s5 = PAIRS_HI(t4, t6),
        s6 = PAIRS_LO(t5, t7), s7 = PAIRS_HI(t5, t7);
    /* low halves give columns 0-3, high halves columns 4-7 */
    vf8 c0 = HALVES_LO(s0, s4), c1 = HALVES_LO(s1, s5), c2 = HALVES_LO(s2, s6),
        c3 = HALVES_LO(s3, s7), c4 = HALVES_HI(s0, s4), c5 = HALVES_HI(s1, s5),
        c6 = HALVES_HI(s2, s6), c7 = HALVES_HI(s3, s7);
    store_row(dst, c0, add);
    store_row(dst + ld_dst, c1, add);
    store_row(dst + 2 * ld_dst, c2, add);
    store_row(dst + 3 * ld_dst, c3, add);
    store_row(dst + 4 * ld_dst, c4, add);
    store_row(dst + 5 * ld_dst, c5, add);
    store_row(dst + 6 * ld_dst, c6, add);
    store_row(dst + 7 * ld_dst, c7, add);
}

/* dst[0..4) = the low (high: hi = 1) half of v, or += it */
static inline __attribute__((always_inline)) void store_half(float *dst, vf8 v, int hi, int add)
{
    float h[4];
    memcpy(h, (const float *)&v + 4 * hi, sizeof h);
    for (int i = 0; i < 4; i++)
        dst[i] = add ? dst[i] + h[i] : h[i];
}

/* dst rows j < 8 (+)= column j of the 4x8 block at src (four rows left over from the 8-row
 * blocks, e.g. the last third of a 12-lane panel): two rounds of the shuffles give columns j
 * and j + 4 in the two halves of one register. */
static inline __attribute__((always_inline)) void block4(float *restrict dst, size_t ld_dst,
                                                         const float *restrict src,
                                                         size_t ld_src, int add)
{
    vf8 r0, r1, r2, r3;
    memcpy(&r0, src, sizeof r0);
    memcpy(&r1, src + ld_src, sizeof r1);
    memcpy(&r2, src + 2 * ld_src, sizeof r2);
    memcpy(&r3, src + 3 * ld_src, sizeof r3);
    vf8 t0 = UNPACK_LO(r0, r1), t1 = UNPACK_HI(r0, r1), t2 = UNPACK_LO(r2, r3),
        t3 = UNPACK_HI(r2, r3);
    vf8 s0 = PAIRS_LO(t0, t2), s1 = PAIRS_HI(t0, t2), s2 = PAIRS_LO(t1, t3),
        s3 = PAIRS_HI(t1, t3);
    store_half(dst, s0, 0, add);
    store_half(dst + ld_dst, s1, 0, add);
    store_half(dst + 2 * ld_dst, s2, 0, add);
    store_half(dst + 3 * ld_dst, s3, 0, add);
    store_half(dst + 4 * ld_dst, s0, 1, add);
    store_half(dst + 5 * ld_dst, s1, 1, add);
    store_half(dst + 6 * ld_dst, s2, 1, add);
    store_half(dst + 7 * ld_dst, s3, 1, add);
}

/* dst (+)= src transposed, scalar, for rows r0..r0+h and columns c0..cols (what the blocks
 * leave). */
static inline __attribute__((always_inline)) void scalar_part(float *restrict dst, size_t ld_dst,
                                                              const float *restrict src,
                                                              size_t ld_src, int r0, int h,
                                                              int c0, int cols, int add)
{
    for (int c = c0; c < cols; c++)
        for (int i = r0; i < r0 + h; i++) {
            float v = src[(size_t)i * ld_src + c];
            float *d = &dst[(size_t)c * ld_dst + i];
            *d = add ? *d + v : v;
        }
}

/* The loops, with `add` a constant after inlining: no test in the inner block. */
static inline __attribute__((always_inline)) void transpose_loops(float *restrict dst,
                                                                  size_t ld_dst,
                                                                  const float *restrict src,
                                                                  size_t ld_src, int rows,
                                                                  int cols, int add)
{
    int r = 0;
    for (; r + 8 <= rows; r += 8) {
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            block8(dst + (size_t)c * ld_dst + r, ld_dst, src + (size_t)r * ld_src + c, ld_src,
                   add);
        scalar_part(dst, ld_dst, src, ld_src, r, 8, c, cols, add);
    }
    if (r + 4 <= rows) {
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            block4(dst + (size_t)c * ld_dst + r, ld_dst, src + (size_t)r * ld_src + c, ld_src,
                   add);
        scalar_part(dst, ld_dst, src, ld_src, r, 4, c, cols, add);
        r += 4;
    }
    scalar_part(dst, ld_dst, src, ld_src, r, rows - r, 0, cols, add);
}

PTL_SIMD_CLONES void ptl__transpose(float *restrict dst, size_t ld_dst, const float *restrict src,
                                    size_t ld_src, int rows, int cols, int add)
{
    if (add)
        transpose_loops(dst, ld_dst, src, ld_src, rows, cols, 1);
    else
        transpose_loops(dst, ld_dst, src, ld_src, rows, cols, 0);
}
