/* Counter-based RNG: value i of a stream is a pure function of (seed, stream, i), so any rank
 * can produce any sample's random numbers without drawing the ones before it. */
#include "ptl/core.h"

#include <math.h>

/* SplitMix64 finaliser: a strong 64-bit bijective mixer. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ptl_rng_init(struct ptl_rng *rng, uint64_t seed, uint64_t stream)
{
    rng->key = mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (stream * 0xd1b54a32d192ed03ULL + 1));
    rng->counter = 0;
}

static uint64_t at(const struct ptl_rng *rng, uint64_t c);

uint64_t ptl_rng_u64(struct ptl_rng *rng)
{
    return at(rng, rng->counter++);
}

float ptl_rng_uniform(struct ptl_rng *rng)
{
    /* 24 high bits: every value exactly representable, strictly below 1. */
    return (float)(ptl_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

/* Value `c` of the stream, without moving it: lets the fills below run in parallel. */
static uint64_t at(const struct ptl_rng *rng, uint64_t c)
{
    return mix64(rng->key ^ mix64(c + 0x9e3779b97f4a7c15ULL));
}

/* Box-Muller on (0, 1] x [0, 1) from values c and c + 1, in float: initialising a network
 * draws tens of millions of these, and float precision is all a float weight keeps. One normal
 * per two values keeps the stream position a simple function of how many were drawn. */
static float normal_at(const struct ptl_rng *rng, uint64_t c)
{
    float u1 = ((float)(at(rng, c) >> 40) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = (float)(at(rng, c + 1) >> 40) * (1.0f / 16777216.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

float ptl_rng_normal(struct ptl_rng *rng)
{
    float v = normal_at(rng, rng->counter);
    rng->counter += 2;
    return v;
}

/* Initialising a large network draws tens of millions of values: the fills use every thread.
 * Results do not depend on the thread count, since value i depends only on its counter. */
enum { FILL_PARALLEL_MIN = 1 << 16 };

void ptl_rng_fill_normal(struct ptl_rng *rng, float *x, size_t n, float mean, float stddev)
{
    const uint64_t c0 = rng->counter;
#pragma omp parallel for if (n >= FILL_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        x[i] = mean + stddev * normal_at(rng, c0 + 2 * (uint64_t)i);
    rng->counter = c0 + 2 * (uint64_t)n;
}

void ptl_rng_fill_uniform(struct ptl_rng *rng, float *x, size_t n, float lo, float hi)
{
    const uint64_t c0 = rng->counter;
#pragma omp parallel for if (n >= FILL_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * ((float)(at(rng, c0 + i) >> 40) * (1.0f / 16777216.0f));
    rng->counter = c0 + (uint64_t)n;
}
