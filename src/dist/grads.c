/* Gradient averaging over ranks in buckets overlapped with backward (dist.h).
 *
 * Buckets are built once, in the order backward completes the entries' gradients, each about
 * dist.bucket_mb. When backward has completed a bucket's last entry, its MPI_Iallreduce starts:
 * in place when the bucket's entries fill one range of the gradient buffer (the usual case),
 * else on a staging copy filled entry by entry and copied back as soon as the bucket
 * completes. Every node's completion polls the requests in flight (MPI_Test), because Open MPI
 * progresses non-blocking collectives only inside MPI calls. Frozen roles are not sent. Every
 * rank builds the same buckets from the same graph, so the collectives are issued in the same
 * order everywhere. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/dist.h"

struct bucket {
    size_t first, count; /* its entries: s->entries[first .. first + count) */
    size_t floats;
    float *staging;      /* packed copy in entry order, or NULL: reduced in place */
    float *data;         /* what is reduced: staging, or the gradients at the range's start */
    size_t remaining;    /* entries not yet complete in this backward */
    MPI_Request req;
    int started, done;
    double start_us;
};

struct ptl_grad_sync {
    struct ptl_model *m;
    struct ptl_trace *trace;
    int *entries;        /* communicated entries in readiness order */
    size_t *pos;         /* staging offset of each of them */
    int *bucket_of;      /* per model entry: its bucket, or -1 (frozen, not communicated) */
    size_t *slot_of;     /* per model entry: index into entries[] */
    struct bucket *b;
    int n_buckets, in_flight;
    float *staging;
    size_t floats;
    int divide;          /* finish divides by the ranks (else the loss was pre-scaled) */
    int in_place;        /* buckets reduced in place, without copies */
};

/* A finished bucket goes back into the gradients at once, divided by the number of ranks, so
 * the copy-out of every bucket but the last runs while backward still computes. */
static void unpack(struct ptl_grad_sync *s, const struct bucket *b)
{
    float *grads = ptl_model_grads(s->m);
    const float inv = s->divide ? 1.0f / (float)ptl_world()->size : 1.0f;
    if (b->staging == NULL) { /* reduced in place */
        for (size_t j = 0; s->divide && j < b->floats; j++)
            b->data[j] *= inv;
        return;
    }
    for (size_t i = b->first; i < b->first + b->count; i++) {
        const struct ptl_entry *en = ptl_model_entry(s->m, (size_t)s->entries[i]);
        const float *src = s->staging + s->pos[i];
        float *dst = grads + en->offset;
        for (size_t j = 0; j < en->count; j++)
            dst[j] = src[j] * inv;
    }
}

static void poll_in_flight(struct ptl_grad_sync *s)
{
    for (int k = 0; k < s->n_buckets && s->in_flight > 0; k++) {
        struct bucket *b = &s->b[k];
        if (!b->started || b->done)
            continue;
        int flag = 0;
        MPI_Test(&b->req, &flag, MPI_STATUS_IGNORE);
        if (flag) {
            b->done = 1;
            s->in_flight--;
            if (s->trace)
                ptl_trace_event(s->trace, "allreduce", "comm", b->start_us,
                                ptl_trace_now(s->trace));
            unpack(s, b);
        }
    }
}

static int start_bucket(struct ptl_grad_sync *s, struct bucket *b)
{
    b->started = 1;
    b->start_us = s->trace ? ptl_trace_now(s->trace) : 0;
    int err = MPI_Iallreduce(MPI_IN_PLACE, b->data, (int)b->floats, MPI_FLOAT, MPI_SUM,
                             MPI_COMM_WORLD, &b->req);
    if (err != MPI_SUCCESS)
        return ptl_error(PTL_EMPI, "gradient allreduce: MPI_Iallreduce failed (error %d)", err);
    s->in_flight++;
    return PTL_OK;
}

/* The model's grads_ready hook. An MPI error here is fatal for the whole job: the other ranks
 * are already inside the collective. */
static void on_ready(void *ctx, const int *entries, int count)
{
    struct ptl_grad_sync *s = ctx;
    const float *grads = ptl_model_grads(s->m);
    for (int i = 0; i < count; i++) {
        int e = entries[i];
        int k = s->bucket_of[e];
        if (k < 0)
            continue;
        const struct ptl_entry *en = ptl_model_entry(s->m, (size_t)e);
        if (s->b[k].staging)
            memcpy(s->staging + s->pos[s->slot_of[e]], grads + en->offset,
                   en->count * sizeof(float));
        if (--s->b[k].remaining == 0 && start_bucket(s, &s->b[k]) != 0)
            ptl_dist_abort(1, ptl_error_message());
    }
    poll_in_flight(s);
}

static int communicated(const struct ptl_entry *en, const float lr_scale[PTL_ROLE_COUNT])
{
    return en->kind == PTL_ENTRY_PARAM && en->used && lr_scale[en->role] > 0;
}

/* Whether bucket b's entries fill one range of the flat gradient buffer exactly (then it is
 * reduced in place, without copies), and where that range starts. */
static int contiguous(struct ptl_grad_sync *s, const struct bucket *b, size_t *start)
{
    size_t lo = (size_t)-1, hi = 0;
    for (size_t i = b->first; i < b->first + b->count; i++) {
        const struct ptl_entry *en = ptl_model_entry(s->m, (size_t)s->entries[i]);
        lo = en->offset < lo ? en->offset : lo;
        hi = en->offset + en->count > hi ? en->offset + en->count : hi;
    }
    *start = lo;
    return b->count > 0 && hi - lo == b->floats; /* entries never overlap */
}

int ptl_grad_sync_create(struct ptl_grad_sync **out, struct ptl_model *m,
                         const float lr_scale[PTL_ROLE_COUNT], size_t bucket_bytes, int divide,
                         struct ptl_trace *trace)
{
    *out = NULL;
    size_t n = ptl_model_entry_count(m);
    struct ptl_grad_sync *s = calloc(1, sizeof *s);
    int *order = malloc((n ? n : 1) * sizeof *order);
    if (s == NULL || order == NULL) {
        free(s);
        free(order);
        return ptl_error(PTL_ENOMEM, "gradient sync: out of memory");
    }
    s->m = m;
    s->trace = trace;
    s->divide = divide;
    s->entries = malloc((n ? n : 1) * sizeof *s->entries);
    s->pos = malloc((n ? n : 1) * sizeof *s->pos);
    s->bucket_of = malloc((n ? n : 1) * sizeof *s->bucket_of);
    s->slot_of = malloc((n ? n : 1) * sizeof *s->slot_of);
    s->b = calloc(n ? n : 1, sizeof *s->b);
    int ordered = s->entries && s->pos && s->bucket_of && s->slot_of && s->b
                      ? ptl_model_grad_order(m, order)
                      : ptl_error(PTL_ENOMEM, "gradient sync: out of memory");
    if (ordered < 0) {
        free(order);
        ptl_grad_sync_free(s);
        return ordered;
    }
    size_t limit = bucket_bytes / sizeof(float) ? bucket_bytes / sizeof(float) : 1, used = 0;
    for (size_t e = 0; e < n; e++)
        s->bucket_of[e] = -1;
    for (int i = 0; i < ordered; i++) {
        const struct ptl_entry *en = ptl_model_entry(m, (size_t)order[i]);
        if (!communicated(en, lr_scale))
            continue;
        struct bucket *b = &s->b[s->n_buckets];
        if (b->count == 0)
            b->first = used;
        s->entries[used] = order[i];
        s->slot_of[order[i]] = used;
        s->bucket_of[order[i]] = s->n_buckets;
        used++;
        b->count++;
        b->floats += en->count;
        s->floats += en->count;
        if (b->floats >= limit)
            s->n_buckets++;
    }
    if (s->n_buckets < (int)n && s->b[s->n_buckets].count > 0)
        s->n_buckets++;
    free(order);
    /* Staging offsets for the buckets that cannot be reduced in place, packed one after the
     * other. */
    size_t staged = 0, start;
    for (int k = 0; k < s->n_buckets; k++)
        if (!contiguous(s, &s->b[k], &start))
            for (size_t i = s->b[k].first; i < s->b[k].first + s->b[k].count; i++) {
                s->pos[i] = staged;
                staged += ptl_model_entry(m, (size_t)s->entries[i])->count;
            }
    s->staging = malloc((staged ? staged : 1) * sizeof *s->staging);
    if (s->staging == NULL) {
        ptl_grad_sync_free(s);
        return ptl_error(PTL_ENOMEM, "gradient sync: out of memory for %zu floats", staged);
    }
    s->in_place = 0;
    for (int k = 0; k < s->n_buckets; k++) {
        struct bucket *b = &s->b[k];
        if (contiguous(s, b, &start)) {
            b->data = ptl_model_grads(m) + start;
            s->in_place++;
        } else {
            b->staging = b->data = s->staging + s->pos[b->first];
        }
    }
    int rc = ptl_model_set_grads_ready(m, on_ready, s);
    if (rc != 0) {
        ptl_grad_sync_free(s);
        return rc;
    }
    *out = s;
    return PTL_OK;
}

void ptl_grad_sync_free(struct ptl_grad_sync *s)
{
    if (s == NULL)
        return;
    if (s->m)
        ptl_model_set_grads_ready(s->m, NULL, NULL);
    free(s->entries);
    free(s->pos);
    free(s->bucket_of);
    free(s->slot_of);
    free(s->b);
    free(s->staging);
    free(s);
}

void ptl_grad_sync_begin(struct ptl_grad_sync *s)
{
    for (int k = 0; k < s->n_buckets; k++) {
        s->b[k].remaining = s->b[k].count;
        s->b[k].started = s->b[k].done = 0;
    }
    s->in_flight = 0;
}

int ptl_grad_sync_finish(struct ptl_grad_sync *s)
{
    double w0 = s->trace ? ptl_trace_now(s->trace) : 0;
    /* A bucket a backward never completed would leave the ranks out of step: start it now
     * (every rank misses the same ones, since they run the same graph). */
    for (int k = 0; k < s->n_buckets; k++)
        if (!s->b[k].started) {
            const float *grads = ptl_model_grads(s->m);
            for (size_t i = s->b[k].first; s->b[k].staging && i < s->b[k].first + s->b[k].count;
                 i++) {
                const struct ptl_entry *en = ptl_model_entry(s->m, (size_t)s->entries[i]);
                memcpy(s->staging + s->pos[i], grads + en->offset, en->count * sizeof(float));
            }
            int rc = start_bucket(s, &s->b[k]);
            if (rc != 0)
                return rc;
        }
    for (int k = 0; k < s->n_buckets; k++) {
        struct bucket *b = &s->b[k];
        if (b->done)
            continue;
        if (MPI_Wait(&b->req, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return ptl_error(PTL_EMPI, "gradient allreduce: MPI_Wait failed");
        b->done = 1;
        if (s->trace)
            ptl_trace_event(s->trace, "allreduce", "comm", b->start_us, ptl_trace_now(s->trace));
        unpack(s, b);
    }
    s->in_flight = 0;
    if (s->trace)
        ptl_trace_event(s->trace, "wait", "comm", w0, ptl_trace_now(s->trace));
    return PTL_OK;
}

int ptl_grad_sync_buckets(const struct ptl_grad_sync *s, size_t *floats, int *in_place)
{
    if (floats)
        *floats = s->floats;
    if (in_place)
        *in_place = s->in_place;
    return s->n_buckets;
}
