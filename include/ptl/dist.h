/* ptl - data parallelism over MPI ranks: the world, gradient averaging in buckets overlapped
 * with backward, merging of BConv-Cell latent states, SyncBN sums, a watchdog that ends a job
 * whose ranks stopped making progress, and a Chrome-trace timeline.
 *
 * With one process and no MPI launcher in the environment nothing here touches MPI: a world of
 * one rank costs nothing and needs no mpirun. */
#ifndef PTL_DIST_H
#define PTL_DIST_H

#include <stddef.h>

#include "ptl/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the world ---- */

struct ptl_world {
    int rank, size;             /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* among the ranks of this node (MPI_COMM_TYPE_SHARED) */
    int mpi;                    /* 1 when MPI was initialised (launched by mpirun/srun) */
};

/* Initialises MPI (MPI_Init_thread, FUNNELED) when the process was started by an MPI launcher
 * (mpirun/mpiexec, or srun with PMIx); otherwise a world of one rank without MPI. */
int ptl_dist_init(int *argc, char ***argv);
/* The world (a world of one before ptl_dist_init). */
const struct ptl_world *ptl_world(void);
/* Finalises MPI if ptl_dist_init started it. */
void ptl_dist_finalize(void);
/* Ends every rank of the job now (MPI_Abort) after printing "ptl: rank R: msg" on stderr.
 * With one rank it exits with `status`. */
_Noreturn void ptl_dist_abort(int status, const char *msg);

/* Collective helpers on MPI_COMM_WORLD (no-ops on one rank). */
int ptl_dist_sum_doubles(void *ctx, double *values, int count); /* a ptl_model_sum_fn */
int ptl_dist_sum_floats(float *values, size_t count);
int ptl_dist_min_long(long *value);
int ptl_dist_broadcast(void *data, size_t bytes, int root);
/* Gathers `count` floats of every rank into out[size * count] on rank `root` (out is not used
 * elsewhere). */
int ptl_dist_gather_floats(const float *mine, size_t count, float *out, int root);
/* Sums `count` floats of every rank into rank `root` (in place there). */
int ptl_dist_reduce_floats(float *values, size_t count, int root);
/* 1 on every rank when `failed` is nonzero on any rank. */
int ptl_dist_any(int failed);
/* Every rank's 64-bit value, gathered into out[size] on every rank. */
int ptl_dist_allgather_u64(unsigned long long value, unsigned long long *out);

/* Threads per rank when the config leaves it open: PTL_THREADS, else SLURM_CPUS_PER_TASK, else
 * this process's cores divided among the ranks of the node that share them. */
int ptl_dist_default_threads(void);

/* ---- gradient averaging ---- */

struct ptl_grad_sync;
struct ptl_trace;

/* Sums the gradients of the trainable entries (lr_scale of their role > 0; frozen roles are
 * not communicated) over all ranks in buckets of about bucket_bytes of the flat gradient
 * buffer, and with divide != 0 divides them by the number of ranks (the trainer instead scales
 * the loss gradient by 1 / ranks before backward, which saves a pass over the gradients). Each
 * bucket's MPI_Iallreduce starts as soon as backward has completed its entries (the model's
 * grads_ready hook, which this installs); a bucket whose entries fill one range of the
 * gradient buffer is reduced in place, others through a staging copy. trace may be NULL. */
int ptl_grad_sync_create(struct ptl_grad_sync **out, struct ptl_model *m,
                         const float lr_scale[PTL_ROLE_COUNT], size_t bucket_bytes, int divide,
                         struct ptl_trace *trace);
void ptl_grad_sync_free(struct ptl_grad_sync *s);
/* Before backward. */
void ptl_grad_sync_begin(struct ptl_grad_sync *s);
/* After backward: waits for every bucket (and divides, if asked). */
int ptl_grad_sync_finish(struct ptl_grad_sync *s);
/* Buckets, the floats they carry and how many are reduced in place (for logs and benchmarks);
 * floats and in_place may be NULL. */
int ptl_grad_sync_buckets(const struct ptl_grad_sync *s, size_t *floats, int *in_place);

/* ---- latent states ---- */

enum ptl_merge_kind { PTL_MERGE_NONE, PTL_MERGE_MEAN, PTL_MERGE_WEIGHTED, PTL_MERGE_EMA };

struct ptl_merge_spec {
    enum ptl_merge_kind kind;
    double alpha;  /* EMA: state <- (1 - alpha) * own + alpha * mean */
    double weight; /* WEIGHTED: this rank's weight (its share of the training samples) */
};

/* Parses latent.merge: "none", "mean", "weighted" or "ema:ALPHA" with 0 < ALPHA <= 1. */
int ptl_merge_parse(struct ptl_merge_spec *spec, const char *text);

struct ptl_merge_report {
    double spread;   /* RMS over ranks and values of (own state - mean) before the merge */
    double rms;      /* RMS of the mean state (to read the spread against) */
    size_t floats;   /* floats merged per rank */
};

/* Merges every latent state of m across ranks as spec says (kind NONE: nothing). All ranks
 * must hold the same number of slots. report may be NULL. */
int ptl_latent_merge(struct ptl_model *m, const struct ptl_merge_spec *spec,
                     struct ptl_merge_report *report);

/* The same in two halves, so the merge travels while backward runs (backward reads no latent
 * state): begin packs the states and starts a non-blocking allreduce, end waits and writes the
 * merged states back. Nothing may run a training forward in between. */
struct ptl_latent_merge;
int ptl_latent_merge_begin(struct ptl_latent_merge **out, struct ptl_model *m,
                           const struct ptl_merge_spec *spec);
/* Completes (and frees) a merge begun with ptl_latent_merge_begin. */
int ptl_latent_merge_end(struct ptl_latent_merge *g, struct ptl_merge_report *report);

/* Averages the BatchNorm running statistics (the model's buffers) over ranks. */
int ptl_dist_average_buffers(struct ptl_model *m);

/* ---- watchdog ---- */

/* Starts a thread that ends the whole job (ptl_dist_abort) when this rank has not called
 * ptl_watchdog_beat for `seconds`, naming the phase it was stuck in. No-op on one rank or
 * with seconds <= 0. */
int ptl_watchdog_start(double seconds);
/* Marks progress; phase is a static string ("forward", "gradient allreduce", ...); a negative
 * step keeps the last one. */
void ptl_watchdog_beat(const char *phase, long step);
void ptl_watchdog_stop(void);

/* ---- trace ---- */

/* Chrome trace events of this rank (chrome://tracing, Perfetto): complete events with a name,
 * a category, a start and a duration. */
int ptl_trace_create(struct ptl_trace **out);
void ptl_trace_free(struct ptl_trace *t);
/* Microseconds since the trace was created, on this rank's clock. */
double ptl_trace_now(const struct ptl_trace *t);
void ptl_trace_event(struct ptl_trace *t, const char *name, const char *category, double start_us,
                     double end_us);
/* Gathers every rank's events to rank 0, which writes one JSON file (pid = rank). Collective. */
int ptl_trace_write(struct ptl_trace *t, const char *path);

#ifdef __cplusplus
}
#endif
#endif
