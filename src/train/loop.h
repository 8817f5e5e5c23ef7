/* The training loop of `ptl train` and the evaluation of `ptl eval` (one process; the
 * distributed issue splits each global batch over ranks inside the same loop).
 *
 * A trainer holds every piece of run state explicitly - model, optimizer, sampler position,
 * seeds, the latent states inside the model - so a checkpoint can capture it and a rank can
 * own its part of it. */
#ifndef PTL_TRAIN_LOOP_H
#define PTL_TRAIN_LOOP_H

#include <stdint.h>

#include "ptl/config.h"
#include "ptl/data.h"
#include "ptl/dist.h"
#include "ptl/model.h"
#include "ptl/train.h"
#include "train/evaluate.h"
#include "train/loss.h"
#include "train/pipeline.h"
#include "train/progress.h"

struct ptl_trainer {
    const struct ptl_config *cfg;
    char run_dir[4096];
    struct ptl_split_view train;
    struct ptl_evaluator eval;
    struct ptl_model *model;
    struct ptl_optimizer *optim;
    struct ptl_schedule schedule;
    struct ptl_sampler sampler;
    struct ptl_augment augment;
    struct ptl_loss loss;
    struct ptl_progress progress;
    uint64_t seed, sampler_seed, augment_seed;
    int batch, in_c, in_h, in_w; /* batch: the global batch (over all ranks) */
    /* Distribution (dist.h): this rank's part of every global batch is slots
     * [slot0, slot0 + local_batch). data.shard global: those slots of the global batch every
     * rank draws; local: a whole batch of this rank's own partition of the data. */
    const struct ptl_world *world;
    int local_batch, slot0, shard_local;
    int batches_per_epoch;  /* the same on every rank */
    struct ptl_grad_sync *sync;  /* NULL on one rank */
    struct ptl_merge_spec merge;
    long merge_every;
    int sync_bn;
    struct ptl_merge_report last_merge;
    struct ptl_trace *trace;     /* --trace, or NULL */
    long epochs, max_steps; /* max_steps: global step the run ends at */
    long step;              /* global steps done */
    long epoch;             /* current epoch (0-based) */
    int32_t *labels;        /* one batch */
    float *x;               /* one batch of inputs */
    struct ptl_eval_result last_eval;
    int evaluated;
    FILE *debug;            /* RUN_DIR/debug.log, debug.rank<R>.log (run.debug_log), or NULL */
    double last_snapshot;   /* ptl_now() of the last weights snapshot (or the start) */
};

/* Trains as the config says, writing into run_dir (created if needed; a run_dir that already
 * holds a run's metrics.jsonl is refused, so nothing saved is overwritten):
 * config.yaml, metrics.jsonl, checkpoints/, final.h5 (rank 0 writes them). On several ranks
 * every rank calls it; an error on one rank during training ends the whole job
 * (ptl_dist_abort), errors before and after training come back on the ranks that had them.
 * trace_path: write a Chrome trace of the run there (NULL: none). */
int ptl_train_run(const struct ptl_config *cfg, const char *run_dir, const char *trace_path,
                  struct ptl_eval_result *final, double *seconds);

/* Builds the config's model for the evaluation data, loads `weights` strictly and evaluates. */
int ptl_eval_run(const struct ptl_config *cfg, const char *weights, struct ptl_eval_result *r);

#endif
