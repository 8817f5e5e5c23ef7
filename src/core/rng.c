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

uint64_t ptl_rng_u64(struct ptl_rng *rng)
{
    uint64_t c = rng->counter++;
    return mix64(rng->key ^ mix64(c + 0x9e3779b97f4a7c15ULL));
}

float ptl_rng_uniform(struct ptl_rng *rng)
{
    /* 24 high bits: every value exactly representable, strictly below 1. */
    return (float)(ptl_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

float ptl_rng_normal(struct ptl_rng *rng)
{
    /* Box-Muller on (0, 1] x [0, 1). One value per call keeps the stream position simple. */
    double u1 = ((double)(ptl_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(ptl_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ptl_rng_fill_normal(struct ptl_rng *rng, float *x, size_t n, float mean, float stddev)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean + stddev * ptl_rng_normal(rng);
}

void ptl_rng_fill_uniform(struct ptl_rng *rng, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * ptl_rng_uniform(rng);
}
