/* Internal: exp, sigmoid and tanh written so that gcc vectorises them inside `#pragma omp simd`
 * loops (no calls, no branches, no tables). glibc's expf/tanhf are scalar calls, and the
 * BConv-Cells spend most of their element-wise time in them.
 *
 * Accuracy against double (tests/unit/test_activation.c): exp and sigmoid within 2e-7
 * relative (sigmoid's subnormal tail within half a subnormal step), tanh within 1e-7 absolute.
 */
#ifndef PTL_OPS_VMATH_H
#define PTL_OPS_VMATH_H

#include <stdint.h>
#include <string.h>

/* For the hot loops that use these: an AVX2 copy of the function beside the portable one, picked
 * at load time by the CPU (gcc's target_clones). Twice the lanes, 2.4x faster on the
 * BConv-Cell gate maths (docs/performance.md); the build stays portable. Without FMA
 * contraction (-std=c17), both copies give the same result for each element. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PTL_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* ... plus an AVX-512 copy, for loops bound by arithmetic (exp, division) rather than by
 * memory: the BConv-Cell gate maths ran 1.6-2x faster with it on Zen 5 (docs/performance.md);
 * the data-movement loops (pooling, Winograd transforms) ran slower with it. */
#define PTL_SIMD_CLONES_WIDE                                                                       \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PTL_SIMD_CLONES
#define PTL_SIMD_CLONES_WIDE
#endif

/* 2^n for n in [-126, 127], built from the exponent bits. */
static inline __attribute__((always_inline)) float ptl__vpow2i(int32_t n)
{
    int32_t bits = (n + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* e^x, x clamped to [-110, 88.7]: x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-6
 * polynomial, times 2^n applied in two halves so that results down in the subnormal range
 * (x < -87.3) are rounded once, correctly, like expf's. */
static inline __attribute__((always_inline)) float ptl__vexp(float x)
{
    x = x > 88.7f ? 88.7f : x;
    x = x < -110.0f ? -110.0f : x;
    /* Round x/ln2 to the nearest integer by adding and removing 1.5 * 2^23 (no branch, no
     * SSE4.1 round instruction needed). */
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    int32_t n = (int32_t)fn;
    float r = x - fn * 0.693359375f; /* ln2 split in two so that fn * ln2 is exact */
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t n1 = n >> 1; /* arithmetic shift: both halves stay normal for n >= -159 */
    return p * ptl__vpow2i(n1) * ptl__vpow2i(n - n1);
}

/* 1 / (1 + e^-x) from e = e^-|x| <= 1: 1 / (1 + e) for x >= 0, e / (1 + e) below, so neither
 * side overflows and the far negative side keeps its subnormal values. */
static inline __attribute__((always_inline)) float ptl__vsigmoid(float x)
{
    float e = ptl__vexp(-__builtin_fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

/* tanh: Cephes' odd polynomial for |x| < 0.625 (where 1 - 2/(e^2x + 1) cancels), the exp form
 * elsewhere; |x| >= 9 gives +-1 exactly as in float. */
static inline __attribute__((always_inline)) float ptl__vtanh(float x)
{
    float ax = __builtin_fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float a = ax > 9.0f ? 9.0f : ax;
    float big = __builtin_copysignf(1.0f - 2.0f / (ptl__vexp(2.0f * a) + 1.0f), x);
    return ax < 0.625f ? small : big;
}

#endif
