/* Samplers: which dataset indices make each global batch of an epoch.
 *
 * The order of epoch e is a pure function of (seed, e): it is drawn from the counter-based
 * stream ptl_rng_init(seed ^ SAMPLER_DOMAIN, e), so every rank computes the same order without
 * communicating, and a resumed run redraws the epoch it stopped in. The domain constant keeps
 * these streams apart from the augmentation streams, which are keyed by (seed, sample key) and
 * would otherwise coincide with epoch e's stream for key e.
 *
 * Shuffle: Fisher-Yates over the pool; the last partial batch is dropped.
 *
 * PK: like the MGN release's RandomSampler (data/sampler.py), not torchreid's
 * RandomIdentitySampler: one epoch visits every identity of the pool once, in shuffled order,
 * and each contributes K of its images, so an epoch has n_identities / P batches (the last
 * partial batch dropped). An identity with at least K images gives K distinct ones (a partial
 * Fisher-Yates); one with fewer is drawn with replacement (uniformly, like torchreid's
 * np.random.choice(replace=True); the release samples without replacement from its list
 * repeated K times, which differs only in the odds of repeats).
 */
#include "ptl/data.h"

#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"

/* "sampler" in ASCII: xor-ed into the seed so sampler streams never equal augment streams. */
#define SAMPLER_DOMAIN 0x73616d706c6572ULL

/* PK state: the pool positions of each identity, identities sorted by label. */
struct pk_index {
    int n_ids;
    int *start;       /* n_ids + 1 offsets into members */
    int32_t *members; /* pool positions grouped by identity, in pool order inside a group */
    int32_t *ids;     /* shuffle buffer for the identities of an epoch */
    int32_t *draw;    /* scratch for the partial Fisher-Yates of one identity */
    int max_count;    /* largest identity */
};

/* Uniform integer in [0, n): the modulo bias is below n / 2^64, far below anything a run sees. */
static uint32_t draw_below(struct ptl_rng *rng, uint32_t n)
{
    return (uint32_t)(ptl_rng_u64(rng) % n);
}

static void pk_free(struct pk_index *pk)
{
    if (!pk)
        return;
    free(pk->start);
    free(pk->members);
    free(pk->ids);
    free(pk->draw);
    free(pk);
}

static int cmp_label_pos(const void *a, const void *b)
{
    const int32_t *x = a, *y = b; /* pairs (label, pool position) */
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Groups the pool by label; identities are sorted by label so the grouping does not depend on
 * hash order or on anything but the pool itself. */
static int pk_build(struct pk_index **out, const int32_t *labels, int n)
{
    int32_t *pairs = malloc(sizeof *pairs * 2 * (size_t)n);
    struct pk_index *pk = calloc(1, sizeof *pk);
    if (!pairs || !pk) {
        free(pairs);
        free(pk);
        return ptl_error(PTL_ENOMEM, "sampler: out of memory grouping %d samples by label", n);
    }
    for (int i = 0; i < n; i++) {
        pairs[2 * i] = labels[i];
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, (size_t)n, 2 * sizeof *pairs, cmp_label_pos);
    int n_ids = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || pairs[2 * i] != pairs[2 * (i - 1)])
            n_ids++;
    pk->n_ids = n_ids;
    pk->start = malloc(sizeof *pk->start * ((size_t)n_ids + 1));
    pk->members = malloc(sizeof *pk->members * (size_t)n);
    pk->ids = malloc(sizeof *pk->ids * (size_t)n_ids);
    if (!pk->start || !pk->members || !pk->ids) {
        free(pairs);
        pk_free(pk);
        return ptl_error(PTL_ENOMEM, "sampler: out of memory grouping %d samples by label", n);
    }
    int id = -1;
    for (int i = 0; i < n; i++) {
        if (i == 0 || pairs[2 * i] != pairs[2 * (i - 1)])
            pk->start[++id] = i;
        pk->members[i] = pairs[2 * i + 1];
    }
    pk->start[n_ids] = n;
    for (int i = 0; i < n_ids; i++)
        if (pk->start[i + 1] - pk->start[i] > pk->max_count)
            pk->max_count = pk->start[i + 1] - pk->start[i];
    pk->draw = malloc(sizeof *pk->draw * (size_t)pk->max_count);
    free(pairs);
    if (!pk->draw) {
        pk_free(pk);
        return ptl_error(PTL_ENOMEM, "sampler: out of memory grouping %d samples by label", n);
    }
    *out = pk;
    return PTL_OK;
}

void ptl_sampler_free(struct ptl_sampler *s)
{
    if (!s)
        return;
    free(s->pool);
    free(s->labels);
    free(s->order);
    if (s->kind == PTL_SAMPLER_PK)
        pk_free(s->priv);
    else
        free(s->priv);
    memset(s, 0, sizeof *s);
    s->epoch = -1;
}

int ptl_sampler_init(struct ptl_sampler *s, enum ptl_sampler_kind kind, uint64_t seed, int batch,
                     int p, int k, const int32_t *pool, const int32_t *labels, int n)
{
    if (!s)
        return ptl_error(PTL_EINVAL, "sampler: no sampler given");
    memset(s, 0, sizeof *s);
    s->epoch = -1;
    if (kind != PTL_SAMPLER_SHUFFLE && kind != PTL_SAMPLER_PK)
        return ptl_error(PTL_EINVAL, "sampler: unknown kind %d", (int)kind);
    if (n <= 0 || !pool)
        return ptl_error(PTL_EINVAL, "sampler: empty pool (%d samples)", n);
    if (batch <= 0)
        return ptl_error(PTL_EINVAL, "sampler: batch size %d, must be >= 1", batch);
    for (int i = 0; i < n; i++)
        if (pool[i] < 0)
            return ptl_error(PTL_ERANGE, "sampler: pool entry %d is a negative index (%d)", i,
                             (int)pool[i]);
    int batches;
    struct pk_index *pk = NULL;
    if (kind == PTL_SAMPLER_SHUFFLE) {
        if (n < batch)
            return ptl_error(PTL_EINVAL,
                             "sampler: pool of %d samples is smaller than one batch of %d", n,
                             batch);
        batches = n / batch;
    } else {
        if (!labels)
            return ptl_error(PTL_EINVAL, "sampler: P x K sampling needs the labels of the pool");
        if (p <= 0 || k <= 0)
            return ptl_error(PTL_EINVAL,
                             "sampler: P x K sampling with P = %d, K = %d; both must "
                             "be >= 1",
                             p, k);
        if ((long)p * k != batch)
            return ptl_error(PTL_EINVAL, "sampler: batch size %d is not P x K = %d x %d = %ld",
                             batch, p, k, (long)p * k);
        int rc = pk_build(&pk, labels, n);
        if (rc)
            return rc;
        if (p > pk->n_ids) {
            int ids = pk->n_ids;
            pk_free(pk);
            return ptl_error(PTL_EINVAL,
                             "sampler: P = %d identities per batch, but the pool has only %d", p,
                             ids);
        }
        batches = pk->n_ids / p;
    }
    s->kind = kind;
    s->seed = seed;
    s->batch = batch;
    s->p = kind == PTL_SAMPLER_PK ? p : 0;
    s->k = kind == PTL_SAMPLER_PK ? k : 0;
    s->pool_size = n;
    s->batches_per_epoch = batches;
    s->priv = kind == PTL_SAMPLER_PK ? (void *)pk : malloc(sizeof(int32_t) * (size_t)n);
    s->pool = malloc(sizeof *s->pool * (size_t)n);
    s->order = malloc(sizeof *s->order * (size_t)batches * (size_t)batch);
    if (labels)
        s->labels = malloc(sizeof *s->labels * (size_t)n);
    if (!s->priv || !s->pool || !s->order || (labels && !s->labels)) {
        ptl_sampler_free(s);
        return ptl_error(PTL_ENOMEM, "sampler: out of memory for a pool of %d samples", n);
    }
    memcpy(s->pool, pool, sizeof *s->pool * (size_t)n);
    if (labels)
        memcpy(s->labels, labels, sizeof *s->labels * (size_t)n);
    return PTL_OK;
}

/* The whole pool is permuted (not only the slots kept) so that the samples that land in the
 * dropped tail change from epoch to epoch. priv is an n-entry scratch copy of the pool. */
static void shuffle_epoch(struct ptl_sampler *s, struct ptl_rng *rng)
{
    const int n = s->pool_size;
    int32_t *perm = s->priv;
    memcpy(perm, s->pool, sizeof *perm * (size_t)n);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)draw_below(rng, (uint32_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memcpy(s->order, perm, sizeof *perm * (size_t)s->batches_per_epoch * (size_t)s->batch);
}

static void pk_epoch(struct ptl_sampler *s, struct ptl_rng *rng)
{
    struct pk_index *pk = s->priv;
    for (int i = 0; i < pk->n_ids; i++)
        pk->ids[i] = i;
    for (int i = pk->n_ids - 1; i > 0; i--) {
        int j = (int)draw_below(rng, (uint32_t)i + 1);
        int32_t t = pk->ids[i];
        pk->ids[i] = pk->ids[j];
        pk->ids[j] = t;
    }
    const int used = s->batches_per_epoch * s->p;
    int32_t *out = s->order;
    /* Identities left out by the dropped partial batch draw no images: the order of the kept
     * batches depends only on the identity shuffle and their own draws. */
    for (int u = 0; u < used; u++) {
        const int id = pk->ids[u];
        const int32_t *mem = pk->members + pk->start[id];
        const int cnt = pk->start[id + 1] - pk->start[id];
        if (cnt >= s->k) {
            memcpy(pk->draw, mem, sizeof *mem * (size_t)cnt);
            for (int t = 0; t < s->k; t++) { /* partial Fisher-Yates from the front */
                int j = t + (int)draw_below(rng, (uint32_t)(cnt - t));
                int32_t x = pk->draw[t];
                pk->draw[t] = pk->draw[j];
                pk->draw[j] = x;
                *out++ = s->pool[pk->draw[t]];
            }
        } else {
            for (int t = 0; t < s->k; t++)
                *out++ = s->pool[mem[draw_below(rng, (uint32_t)cnt)]];
        }
    }
}

int ptl_sampler_set_epoch(struct ptl_sampler *s, long epoch)
{
    if (!s || !s->order)
        return ptl_error(PTL_EINVAL, "sampler: not initialised");
    if (epoch < 0)
        return ptl_error(PTL_EINVAL, "sampler: epoch %ld is negative", epoch);
    if (epoch == s->epoch)
        return PTL_OK;
    struct ptl_rng rng;
    ptl_rng_init(&rng, s->seed ^ SAMPLER_DOMAIN, (uint64_t)epoch);
    if (s->kind == PTL_SAMPLER_SHUFFLE)
        shuffle_epoch(s, &rng);
    else
        pk_epoch(s, &rng);
    s->epoch = epoch;
    return PTL_OK;
}

const int32_t *ptl_sampler_batch(const struct ptl_sampler *s, int b)
{
    if (!s || !s->order || s->epoch < 0 || b < 0 || b >= s->batches_per_epoch)
        return NULL;
    return s->order + (size_t)b * (size_t)s->batch;
}
