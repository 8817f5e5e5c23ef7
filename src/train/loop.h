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
    double last_checkpoint_time;   /* ptl_now() of the last checkpoint (or the start) */
    char *config_text;      /* the resolved config, for checkpoints */
    int next_batch;         /* batch index of the next step within t->epoch */
    int resumed;            /* the run continues from a checkpoint */
    long last_checkpoint_step; /* step of the last checkpoint written or resumed from */
    int stop_signal;        /* the signal that asked the run to stop, or 0 */
};

/* Writes RUN_DIR/checkpoints/ckpt-<step>.h5 (resume.c): collective, rank 0 writes, the run's
 * state is not changed. */
int ptl_trainer_checkpoint(struct ptl_trainer *t);
/* Loads the checkpoint `spec` names ("auto": RUN_DIR/checkpoints/latest, else the newest that
 * verifies; none is fine) into a set-up trainer. Collective. */
int ptl_trainer_resume(struct ptl_trainer *t, const char *spec);

/* SIGUSR1/SIGTERM: ask the run to checkpoint and stop at the next step boundary (stop.c). */
void ptl_stop_install(void);
void ptl_stop_uninstall(void);
int ptl_stop_requested(void); /* the signal number, or 0 */

/* What ptl_train_run does besides the config. */
struct ptl_train_options {
    const char *trace_path; /* write a Chrome trace of the run there, or NULL */
    const char *resume;     /* NULL, "auto" or a checkpoint path */
};

/* Trains as the config says, writing into run_dir (created if needed; without a resume, a
 * run_dir that already holds a run's metrics.jsonl is refused, so nothing saved is
 * overwritten): config.yaml, metrics.jsonl, checkpoints/, final.h5 (rank 0 writes them). On
 * several ranks every rank calls it; an error on one rank during training ends the whole job
 * (ptl_dist_abort), errors before and after training come back on the ranks that had them.
 * Returns PTL_ESTOPPED after a SIGUSR1/SIGTERM made it checkpoint and stop. opt may be NULL. */
int ptl_train_run(const struct ptl_config *cfg, const char *run_dir,
                  const struct ptl_train_options *opt, struct ptl_eval_result *final,
                  double *seconds);

/* Builds the config's model for the evaluation data, loads `weights` strictly and evaluates. */
int ptl_eval_run(const struct ptl_config *cfg, const char *weights, struct ptl_eval_result *r);

#endif
