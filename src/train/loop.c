/* The training loop (loop.h): data -> augment -> forward -> loss -> backward -> optimizer,
 * evaluations, checkpoints, metrics and the final weights. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptl/core.h"
#include "ptl/io.h"
#include "ptl/ops.h"
#include "train/loop.h"

/* Independent seeds for the independent random streams of a run, so the data order, the
 * augmentations and the model's draws never share counters. */
static uint64_t derive_seed(uint64_t seed, uint64_t purpose)
{
    struct ptl_rng r;
    ptl_rng_init(&r, seed, 0xd1ce0000ULL + purpose);
    return ptl_rng_u64(&r);
}

static int join(char *out, size_t size, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size)
        return ptl_error(PTL_EINVAL, "%s/%s: path too long", dir, name);
    return PTL_OK;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return ptl_error(PTL_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return ptl_error(PTL_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return ptl_error(PTL_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return ptl_error(PTL_EIO, "%s: not a directory", buf);
    return PTL_OK;
}

static int set_threads(const struct ptl_config *cfg)
{
    long t = ptl_config_int(cfg, "run.threads");
    if (t == 0) {
        int n = ptl_dist_default_threads();
        if (n < 0)
            return n;
        t = n;
    }
    int rc = ptl_threads_set((int)t);
    if (rc == 0 && ptl_threads_get() < t) /* from run.threads, PTL_THREADS or Slurm */
        fprintf(stderr, "ptl: %ld threads asked for, but this process may run on %d core(s): "
                        "running %d\n",
                t, ptl_threads_get(), ptl_threads_get());
    return rc;
}

/* The config's model for inputs of c x h x w and `classes` outputs, with model.weights
 * loaded as model.load says. */
static int build_model(struct ptl_model **out, const struct ptl_config *cfg, int c, int h, int w,
                       int classes, const char *weights, enum ptl_load_mode mode, FILE *log)
{
    struct ptl_model_config mc = {
        .classes = classes,
        .in_c = c,
        .in_h = h,
        .in_w = w,
        .seed = (uint64_t)ptl_config_int(cfg, "run.seed"),
        .eval_state_global = strcmp(ptl_config_string(cfg, "model.eval_state"), "global") == 0,
        .cell_history = (int)ptl_config_int(cfg, "model.cell_history"),
    };
    int rc = ptl_model_create(out, ptl_config_string(cfg, "model.arch"), &mc);
    if (rc != 0)
        return ptl_error(rc, "config model.arch: %s", ptl_error_message());
    if (weights && *weights) {
        struct ptl_load_report rep;
        rc = ptl_weights_load(*out, weights, mode, &rep);
        if (rc != 0) {
            ptl_model_free(*out);
            *out = NULL;
            return rc;
        }
        if (log && (rep.missing || rep.unexpected))
            fprintf(log,
                    "weights %s: %zu entries loaded; %zu kept their initialisation (%s); "
                    "%zu in the file not used (%s)\n",
                    weights, rep.loaded, rep.missing, rep.missing_names, rep.unexpected,
                    rep.unexpected_names);
    }
    return PTL_OK;
}

static enum ptl_load_mode load_mode(const struct ptl_config *cfg)
{
    const char *m = ptl_config_string(cfg, "model.load");
    return strcmp(m, "strict") == 0     ? PTL_LOAD_STRICT
           : strcmp(m, "backbone") == 0 ? PTL_LOAD_BACKBONE
                                        : PTL_LOAD_PARTIAL;
}

static int optim_from_config(struct ptl_optim_config *o, const struct ptl_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->kind = strcmp(ptl_config_string(cfg, "optim.name"), "adam") == 0 ? PTL_OPTIM_ADAM
                                                                         : PTL_OPTIM_SGD;
    o->lr = (float)ptl_config_float(cfg, "optim.lr");
    o->weight_decay = (float)ptl_config_float(cfg, "optim.weight_decay");
    o->momentum = (float)ptl_config_float(cfg, "optim.momentum");
    o->dampening = (float)ptl_config_float(cfg, "optim.dampening");
    o->nesterov = ptl_config_bool(cfg, "optim.nesterov");
    double betas[2] = {0.9, 0.999};
    ptl_config_list(cfg, "optim.betas", betas, 2);
    o->beta1 = (float)betas[0];
    o->beta2 = (float)betas[1];
    o->eps = (float)ptl_config_float(cfg, "optim.eps");
    o->amsgrad = ptl_config_bool(cfg, "optim.amsgrad");
    o->lr_scale[PTL_ROLE_BACKBONE] = (float)ptl_config_float(cfg, "optim.lr_backbone");
    o->lr_scale[PTL_ROLE_CELLS] = (float)ptl_config_float(cfg, "optim.lr_cells");
    o->lr_scale[PTL_ROLE_HEAD] = (float)ptl_config_float(cfg, "optim.lr_head");
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return ptl_error(PTL_EINVAL,
                         "config optim.nesterov: needs optim.momentum > 0 and optim.dampening 0");
    return PTL_OK;
}

static int schedule_from_config(struct ptl_schedule *s, const struct ptl_config *cfg)
{
    memset(s, 0, sizeof *s);
    const char *name = ptl_config_string(cfg, "schedule.name");
    s->kind = strcmp(name, "multistep") == 0 ? PTL_SCHEDULE_MULTISTEP
              : strcmp(name, "cosine") == 0  ? PTL_SCHEDULE_COSINE
                                             : PTL_SCHEDULE_CONSTANT;
    s->base_lr = (float)ptl_config_float(cfg, "optim.lr");
    double ms[16];
    s->n_milestones = ptl_config_list(cfg, "schedule.milestones", ms, 16);
    if (s->n_milestones > 16)
        return ptl_error(PTL_EINVAL, "config schedule.milestones: at most 16");
    for (int i = 0; i < s->n_milestones; i++) {
        s->milestones[i] = (int)ms[i];
        if (i > 0 && s->milestones[i] <= s->milestones[i - 1])
            return ptl_error(PTL_EINVAL, "config schedule.milestones: must increase");
    }
    if (s->kind == PTL_SCHEDULE_MULTISTEP && s->n_milestones == 0)
        return ptl_error(PTL_EINVAL, "config schedule.milestones: multistep needs milestones");
    s->gamma = (float)ptl_config_float(cfg, "schedule.gamma");
    s->t_max = (int)ptl_config_int(cfg, "train.epochs");
    s->eta_min = (float)ptl_config_float(cfg, "schedule.eta_min");
    s->warmup_steps = ptl_config_int(cfg, "schedule.warmup_steps");
    s->warmup_factor = (float)ptl_config_float(cfg, "schedule.warmup_factor");
    return ptl_schedule_check(s);
}

static void trainer_free(struct ptl_trainer *t)
{
    ptl_watchdog_stop();
    free(t->config_text);
    ptl_grad_sync_free(t->sync);
    ptl_trace_free(t->trace);
    if (t->debug)
        fclose(t->debug);
    ptl_progress_close(&t->progress);
    ptl_loss_free(&t->loss);
    ptl_sampler_free(&t->sampler);
    ptl_optimizer_free(t->optim);
    ptl_model_free(t->model);
    if (t->eval.test.ds)
        ptl_evaluator_close(&t->eval);
    if (t->train.ds)
        ptl_view_close(&t->train);
    free(t->labels);
    free(t->x);
}

/* This rank's part of the data (loop.h) and the sampler that draws it. */
static int shard_setup(struct ptl_trainer *t, const struct ptl_config *cfg, int pk, int p, int k)
{
    const struct ptl_world *w = t->world;
    t->shard_local = strcmp(ptl_config_string(cfg, "data.shard"), "local") == 0;
    if (t->batch % w->size != 0)
        return ptl_config_error(cfg, "data.batch",
                                "the global batch of %d does not divide over %d ranks", t->batch,
                                w->size);
    if (pk && p % w->size != 0)
        return ptl_config_error(cfg, "data.pk",
                                "%d identities per batch do not divide over %d ranks (each rank "
                                "needs whole identities for the triplet loss)",
                                p, w->size);
    t->local_batch = t->batch / w->size;
    t->slot0 = w->rank * t->local_batch;
    const int32_t *pool = t->train.pool, *labels = t->train.labels;
    int n = t->train.n, sampler_batch = t->batch;
    uint64_t seed = t->sampler_seed;
    t->merge.weight = 1;
    if (t->shard_local && w->size > 1) {
        /* Rank r owns the r-th contiguous block of the selection, as when each node reads its
         * own files; it draws whole batches from it with a seed of its own. */
        long lo = (long)w->rank * t->train.n / w->size;
        long hi = (long)(w->rank + 1) * t->train.n / w->size;
        pool += lo;
        labels += lo;
        n = (int)(hi - lo);
        seed = derive_seed(t->seed, 16 + (uint64_t)w->rank);
        sampler_batch = t->local_batch;
        p /= w->size;
    }
    if (!pk && sampler_batch > n)
        return ptl_error(PTL_EINVAL,
                         "config data.batch: %d is larger than the %d training samples %s",
                         sampler_batch, n,
                         t->shard_local && w->size > 1 ? "of this rank's part (data.shard local)"
                                                       : "selected");
    t->merge.weight = n; /* latent.merge weighted: by the training samples a rank draws from */
    int rc = ptl_sampler_init(&t->sampler, pk ? PTL_SAMPLER_PK : PTL_SAMPLER_SHUFFLE, seed,
                              sampler_batch, p, k, pool, labels, n);
    if (rc == 0)
        rc = ptl_sampler_set_epoch(&t->sampler, 0);
    return rc;
}

/* Everything but the files: data, model, optimizer, sampler. */
static int trainer_setup(struct ptl_trainer *t, const struct ptl_config *cfg)
{
    t->cfg = cfg;
    t->world = ptl_world();
    if ((t->config_text = ptl_config_text(cfg)) == NULL)
        return ptl_error(PTL_ENOMEM, "train: out of memory");
    t->seed = (uint64_t)ptl_config_int(cfg, "run.seed");
    t->sampler_seed = derive_seed(t->seed, 1);
    t->augment_seed = derive_seed(t->seed, 2);
    int rc = set_threads(cfg);
    if (rc == 0)
        rc = ptl_view_open(&t->train, cfg, ptl_config_string(cfg, "data.train_split"), 1);
    if (rc == 0)
        rc = ptl_evaluator_open(&t->eval, cfg);
    if (rc == 0)
        rc = ptl_augment_from_config(&t->augment, cfg, t->train.c);
    if (rc != 0)
        return rc;
    t->in_c = t->train.c;
    ptl_augment_out_size(&t->augment, t->train.h, t->train.w, &t->in_h, &t->in_w);

    long classes = ptl_config_int(cfg, "model.classes");
    if (classes == 0)
        classes = t->train.classes;
    else if (classes < t->train.classes)
        return ptl_error(PTL_EINVAL, "config model.classes: %ld, but the training data has %d "
                                     "labels", classes, t->train.classes);
    rc = build_model(&t->model, cfg, t->in_c, t->in_h, t->in_w, (int)classes,
                     ptl_config_string(cfg, "model.weights"), load_mode(cfg), stderr);
    if (rc != 0)
        return rc;

    struct ptl_optim_config oc;
    rc = optim_from_config(&oc, cfg);
    if (rc == 0)
        rc = ptl_optimizer_create(&t->optim, t->model, &oc);
    if (rc == 0)
        rc = schedule_from_config(&t->schedule, cfg);
    if (rc == 0)
        rc = ptl_loss_init(&t->loss, cfg, t->model);
    if (rc != 0)
        return rc;

    t->batch = (int)ptl_config_int(cfg, "data.batch");
    int pk = strcmp(ptl_config_string(cfg, "data.sampler"), "pk") == 0;
    double pkv[2] = {4, 4};
    ptl_config_list(cfg, "data.pk", pkv, 2);
    if (pk && (int)(pkv[0] * pkv[1]) != t->batch)
        return ptl_error(PTL_EINVAL, "config data.batch: %d, but data.pk is %d x %d = %d",
                         t->batch, (int)pkv[0], (int)pkv[1], (int)(pkv[0] * pkv[1]));
    rc = shard_setup(t, cfg, pk, (int)pkv[0], (int)pkv[1]);
    if (rc != 0)
        return rc;
    t->epochs = ptl_config_int(cfg, "train.epochs");
    t->labels = malloc((size_t)t->local_batch * sizeof *t->labels);
    t->x = malloc((size_t)t->local_batch * t->in_c * t->in_h * t->in_w * sizeof *t->x);
    if (t->labels == NULL || t->x == NULL)
        return ptl_error(PTL_ENOMEM, "train: out of memory for a batch of %d", t->local_batch);
    return ptl_merge_parse(&t->merge, ptl_config_string(cfg, "latent.merge")) != 0
               ? ptl_config_error(cfg, "latent.merge", "%s", ptl_error_message())
               : PTL_OK;
}

/* The parts of setup that talk to the other ranks; every rank reaches it only after all ranks
 * set up without error. */
static int trainer_connect(struct ptl_trainer *t, const char *trace_path)
{
    const struct ptl_config *cfg = t->cfg;
    long bpe = t->sampler.batches_per_epoch;
    int rc = ptl_dist_min_long(&bpe); /* data.shard local: partitions may differ by a batch */
    if (rc != 0)
        return rc;
    t->batches_per_epoch = (int)bpe;
    long planned = t->epochs * bpe;
    long steps = ptl_config_int(cfg, "train.steps");
    t->max_steps = steps > 0 && steps < planned ? steps : planned;
    t->merge_every = ptl_config_int(cfg, "latent.merge_every");
    t->sync_bn = ptl_config_bool(cfg, "dist.sync_bn");
    if (trace_path && (rc = ptl_trace_create(&t->trace)) != 0)
        return rc;
    if (t->world->size == 1)
        return PTL_OK;
    ptl_model_set_slot_base(t->model, t->slot0);
    if (t->sync_bn)
        ptl_model_set_bn_sum(t->model, ptl_dist_sum_doubles, NULL);
    struct ptl_optim_config oc;
    rc = optim_from_config(&oc, cfg);
    if (rc == 0)
        rc = ptl_grad_sync_create(&t->sync, t->model, oc.lr_scale,
                                  (size_t)(ptl_config_float(cfg, "dist.bucket_mb") * 1048576.0),
                                  0, t->trace);
    if (rc == 0)
        rc = ptl_watchdog_start(ptl_config_float(cfg, "dist.timeout"));
    return rc;
}

/* 64-bit FNV-1a of n floats' bytes: a cheap fingerprint to compare ranks' copies. */
static unsigned long long fingerprint(const float *v, size_t n)
{
    const unsigned char *b = (const unsigned char *)v;
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n * sizeof *v; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* Debug mode: every rank must hold bit-identical parameters after a step. Collective. */
static int check_params_agree(struct ptl_trainer *t, unsigned long long *mine)
{
    *mine = fingerprint(ptl_model_params(t->model), ptl_model_param_floats(t->model));
    if (t->world->size == 1)
        return PTL_OK;
    unsigned long long all[4096];
    if (t->world->size > 4096)
        return PTL_OK;
    int rc = ptl_dist_allgather_u64(*mine, all);
    for (int r = 1; rc == 0 && r < t->world->size; r++)
        if (all[r] != all[0])
            rc = ptl_error(PTL_EIO, "train: after step %ld the parameters of rank %d differ from "
                                    "rank 0's (fingerprints %016llx and %016llx)",
                           t->step, r, all[r], all[0]);
    return rc;
}

static unsigned long long state_fingerprint(struct ptl_model *m)
{
    unsigned long long h = 0;
    for (int i = 0; i < ptl_model_state_count(m); i++) {
        int slots = ptl_model_state_slots(m, i);
        size_t per;
        if (slots > 0 && ptl_model_state_info(m, i, NULL, 0, &per) == 0)
            h = h * 31 + fingerprint(ptl_model_state_data(m, i, slots), per * (size_t)slots);
    }
    return h;
}

static int is_root(const struct ptl_trainer *t)
{
    return t->world->rank == 0;
}

/* Phase boundaries: the watchdog's heartbeat and the trace's events. */
static double phase(struct ptl_trainer *t, const char *name)
{
    ptl_watchdog_beat(name, t->step);
    return t->trace ? ptl_trace_now(t->trace) : 0;
}

static void trace_event(struct ptl_trainer *t, const char *name, const char *cat, double since)
{
    if (t->trace)
        ptl_trace_event(t->trace, name, cat, since, ptl_trace_now(t->trace));
}

static int checkpoint_due_here(struct ptl_trainer *t)
{
    long every = ptl_config_int(t->cfg, "checkpoint.every_steps");
    double minutes = ptl_config_float(t->cfg, "checkpoint.every_minutes");
    return (every > 0 && t->step % every == 0) ||
           (minutes > 0 && ptl_now() - t->last_checkpoint_time >= 60 * minutes);
}

static void scale_loss_gradients(struct ptl_trainer *t, float factor)
{
    for (int i = 0; i < ptl_model_output_count(t->model); i++) {
        float *d = t->loss.d_out[i];
        size_t n = (size_t)t->local_batch * (size_t)ptl_model_output_dim(t->model, i);
        for (size_t k = 0; d && k < n; k++)
            d[k] *= factor;
    }
}

/* One optimizer step on global batch b of the current epoch; this rank computes its slots.
 * *checkpoint_due: whether rank 0 wants a checkpoint now; t->stop_signal: whether any rank
 * was asked to stop (every rank gets the same answers, so the collective checkpoint is
 * entered by all or none). */
static int train_step(struct ptl_trainer *t, int b, int *checkpoint_due)
{
    double t0 = ptl_now(), ts = phase(t, "data loading");
    const int32_t *idx = ptl_sampler_batch(&t->sampler, b);
    if (!t->shard_local)
        idx += t->slot0;
    for (int j = 0; j < t->local_batch; j++)
        t->labels[j] = t->train.label_of[idx[j]];
    /* Augmentation streams are keyed by the global slot, whatever rank draws it. */
    uint64_t key0 = (uint64_t)(t->epoch * t->batches_per_epoch + b) * (uint64_t)t->batch +
                    (uint64_t)t->slot0;
    int rc = ptl_view_batch(&t->train, idx, t->local_batch, &t->augment, 1, t->augment_seed, key0,
                            t->x);
    if (rc != 0)
        return rc;
    trace_event(t, "data", "io", ts);
    double t1 = ptl_now();
    ts = phase(t, "forward");
    rc = ptl_model_forward(t->model, t->x, t->local_batch, 1);
    if (rc == 0)
        rc = ptl_loss_compute(&t->loss, t->model, t->labels, t->local_batch);
    if (rc != 0)
        return rc;
    trace_event(t, "forward", "compute", ts);
    /* The merge of this step's latent states travels while backward runs. */
    struct ptl_latent_merge *merge = NULL;
    int merging = t->world->size > 1 && t->merge.kind != PTL_MERGE_NONE &&
                  (t->step + 1) % t->merge_every == 0;
    if (merging && (rc = ptl_latent_merge_begin(&merge, t->model, &t->merge)) != 0)
        return rc;
    double t2 = ptl_now();
    ts = phase(t, "backward");
    ptl_model_zero_grad(t->model);
    if (t->sync) {
        /* Each rank's loss is the mean over its slots: scaled by 1/R, the sum over ranks that
         * the allreduce makes is the global batch's gradient (exact for R a power of 2). */
        scale_loss_gradients(t, 1.0f / (float)t->world->size);
        ptl_grad_sync_begin(t->sync);
    }
    rc = ptl_model_backward(t->model, (const float *const *)t->loss.d_out, NULL);
    if (rc != 0)
        return rc;
    trace_event(t, "backward", "compute", ts);
    phase(t, "gradient allreduce");
    if (t->sync && (rc = ptl_grad_sync_finish(t->sync)) != 0)
        return rc;
    if (merge) {
        ts = phase(t, "latent merge");
        rc = ptl_latent_merge_end(merge, &t->last_merge);
        if (rc != 0)
            return rc;
        trace_event(t, "latent merge", "comm", ts);
    }
    /* Losses averaged over ranks (each rank's is the mean over its slots), and rank 0's
     * checkpoint clock and stop requests. */
    double sums[5] = {t->loss.total, t->loss.ce, t->loss.triplet, 0, ptl_stop_requested()};
    t->step++;
    t->next_batch = b + 1;
    sums[3] = is_root(t) && checkpoint_due_here(t);
    if (t->world->size > 1 && (rc = ptl_dist_sum_doubles(NULL, sums, 5)) != 0)
        return rc;
    for (int i = 0; i < 3; i++)
        sums[i] /= t->world->size;
    *checkpoint_due = sums[3] > 0;
    /* Any rank asked to stop: all stop (naming this rank's signal, else SIGUSR1). */
    if (sums[4] > 0 && t->stop_signal == 0)
        t->stop_signal = ptl_stop_requested() ? ptl_stop_requested() : SIGUSR1;
    if (sums[0] != sums[0])
        return ptl_error(PTL_ERANGE, "train: the loss is NaN at step %ld (lower optim.lr?)",
                         t->step);
    double t3 = ptl_now();
    ts = phase(t, "optimizer");
    float lr = ptl_schedule_lr(&t->schedule, t->step - 1, t->epoch);
    rc = ptl_optimizer_step(t->optim, lr);
    if (rc != 0)
        return rc;
    trace_event(t, "optimizer", "compute", ts);
    double t4 = ptl_now();
    if (t->debug) {
        unsigned long long fp;
        rc = check_params_agree(t, &fp);
        fprintf(t->debug,
                "step %ld epoch %ld batch %d samples %d..%d loss %.9g ce %.9g triplet %.9g "
                "lr %.9g data %.4f forward %.4f backward+sync %.4f optimizer %.4f s "
                "params %016llx",
                t->step, t->epoch, b, idx[0], idx[t->local_batch - 1], sums[0], sums[1], sums[2],
                (double)lr, t1 - t0, t2 - t1, t3 - t2, t4 - t3, fp);
        if (merge)
            fprintf(t->debug, " merged-states %016llx spread %.6g rms %.6g",
                    state_fingerprint(t->model), t->last_merge.spread, t->last_merge.rms);
        fputc('\n', t->debug);
        fflush(t->debug);
        if (rc != 0)
            return rc;
    }
    if (merge && is_root(t) && t->progress.metrics) {
        char extra[160];
        snprintf(extra, sizeof extra, "\"step\":%ld,\"spread\":%.6g,\"rms\":%.6g,\"floats\":%zu",
                 t->step, t->last_merge.spread, t->last_merge.rms, t->last_merge.floats);
        if (t->step % ptl_config_int(t->cfg, "run.log_every") == 0)
            ptl_progress_event(&t->progress, "latent_merge", extra);
    }
    if (is_root(t))
        ptl_progress_step(&t->progress, t->step, t->epoch, sums[0], sums[1], sums[2], lr,
                          t->batch);
    return PTL_OK;
}

/* Makes the ranks' models agree before an evaluation (method.md): latent states
 * merged, BatchNorm running statistics averaged (already equal under dist.sync_bn). */
static int agree_before_use(struct ptl_trainer *t)
{
    if (t->world->size == 1)
        return PTL_OK;
    double ts = phase(t, "latent merge");
    int rc = ptl_latent_merge(t->model, &t->merge, &t->last_merge);
    if (rc == 0 && !t->sync_bn)
        rc = ptl_dist_average_buffers(t->model);
    trace_event(t, "merge before use", "comm", ts);
    return rc;
}

static int evaluate_now(struct ptl_trainer *t)
{
    int rc = agree_before_use(t);
    if (rc != 0)
        return rc;
    /* latent.merge none: evaluate from the mean state, then give each rank its own back. */
    float *own = NULL;
    if (t->world->size > 1 && t->merge.kind == PTL_MERGE_NONE) {
        struct ptl_merge_spec mean = {PTL_MERGE_MEAN, 0, 1};
        size_t n = ptl_model_states_floats(t->model);
        if ((own = malloc((n ? n : 1) * sizeof *own)) == NULL)
            return ptl_error(PTL_ENOMEM, "train: out of memory for the latent states");
        ptl_model_states_copy(t->model, own, 1);
        rc = ptl_latent_merge(t->model, &mean, NULL);
    }
    double ts = phase(t, "evaluation");
    if (rc == 0)
        rc = ptl_evaluate(&t->eval, t->model, t->cfg, &t->last_eval);
    trace_event(t, "evaluation", "compute", ts);
    if (own) {
        ptl_model_states_copy(t->model, own, 0);
        free(own);
    }
    if (rc == 0) {
        t->evaluated = 1;
        if (is_root(t))
            ptl_progress_eval(&t->progress, t->step, t->epoch, &t->last_eval);
    }
    return rc;
}

/* Rank 0: the run directory and its files. The other ranks only open their debug logs, after
 * rank 0 made the directory. */
static int run_files(struct ptl_trainer *t, const char *run_dir, int resuming)
{
    char path[4200];
    if (!is_root(t))
        return PTL_OK;
    int rc = make_dirs(run_dir);
    if (rc == 0)
        rc = join(path, sizeof path, run_dir, "metrics.jsonl");
    if (rc != 0)
        return rc;
    if (!resuming && access(path, F_OK) == 0)
        return ptl_error(PTL_EINVAL,
                         "%s already holds a run (%s): choose a new --out directory, or "
                         "continue it with --resume auto",
                         run_dir, path);
    char ck[4200];
    rc = join(ck, sizeof ck, run_dir, "checkpoints");
    if (rc == 0)
        rc = make_dirs(ck);
    char cfg_path[4200];
    if (rc == 0)
        rc = join(cfg_path, sizeof cfg_path, run_dir, "config.yaml");
    /* A resumed run keeps the config it started with (checkpoints hold theirs too). */
    if (rc == 0 && !(resuming && access(cfg_path, F_OK) == 0))
        rc = ptl_config_write(t->cfg, cfg_path);
    if (rc == 0)
        rc = ptl_progress_open(&t->progress, path, t->max_steps,
                               (int)ptl_config_int(t->cfg, "run.log_every"));
    return rc;
}

static int open_debug_log(struct ptl_trainer *t)
{
    if (!ptl_config_bool(t->cfg, "run.debug_log"))
        return PTL_OK;
    char name[64], path[4200];
    if (is_root(t))
        snprintf(name, sizeof name, "debug.log");
    else
        snprintf(name, sizeof name, "debug.rank%d.log", t->world->rank);
    int rc = join(path, sizeof path, t->run_dir, name);
    if (rc == 0 && (t->debug = fopen(path, "a")) == NULL)
        rc = ptl_error(PTL_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
    if (rc == 0) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        fprintf(t->debug, "rank %d of %d pid %ld host %s threads %d slots %d..%d\n",
                t->world->rank, t->world->size, (long)getpid(), host, ptl_threads_get(),
                t->slot0, t->slot0 + t->local_batch - 1);
        fflush(t->debug);
    }
    return rc;
}

static int checkpoint_now(struct ptl_trainer *t)
{
    double ts = phase(t, "writing a checkpoint");
    int rc = ptl_trainer_checkpoint(t);
    trace_event(t, "checkpoint", "io", ts);
    return rc;
}

static int train_loop(struct ptl_trainer *t)
{
    long eval_every = ptl_config_int(t->cfg, "train.eval_every");
    int rc = PTL_OK;
    t->last_checkpoint_time = ptl_now();
    long first = t->epoch; /* 0, or the resumed epoch, whose latent states are restored */
    long last = t->epoch;  /* the epoch the last step was taken in */
    for (; t->epoch < t->epochs && t->step < t->max_steps && rc == 0; t->epoch++) {
        last = t->epoch;
        rc = ptl_sampler_set_epoch(&t->sampler, t->epoch);
        if (!(t->resumed && t->epoch == first)) {
            ptl_model_reset_state(t->model, (uint64_t)t->epoch);
            t->next_batch = 0;
        }
        for (int b = t->next_batch;
             rc == 0 && b < t->batches_per_epoch && t->step < t->max_steps; b++) {
            int due = 0;
            rc = train_step(t, b, &due);
            if (rc == 0 && (due || t->stop_signal))
                rc = checkpoint_now(t);
            if (rc == 0 && t->stop_signal)
                return ptl_error(PTL_ESTOPPED,
                                 "stopped by signal %d at step %ld after writing "
                                 "%s/checkpoints/ckpt-%010ld.h5 (continue with --resume auto)",
                                 t->stop_signal, t->step, t->run_dir, t->step);
        }
        if (rc == 0 && eval_every > 0 && (t->epoch + 1) % eval_every == 0 &&
            t->step < t->max_steps)
            rc = evaluate_now(t);
    }
    t->epoch = last;
    /* The end is a checkpoint too (a finished run resumes to its final evaluation). */
    if (rc == 0 && t->last_checkpoint_step != t->step)
        rc = checkpoint_now(t);
    if (rc == 0)
        rc = evaluate_now(t);
    return rc;
}

/* Collective: fails on every rank when setup failed on any. The lowest failing rank keeps its
 * message; every other rank's becomes "another rank failed ...", which the CLI leaves unprinted,
 * so R ranks failing alike (a bad config) print one line, not R. */
static int agree(struct ptl_trainer *t, int rc, const char *what)
{
    int size = t->world->size;
    if (size == 1 || !ptl_dist_any(rc != 0))
        return rc;
    unsigned long long failed[4096];
    int first = 0;
    if (size <= 4096 && ptl_dist_allgather_u64(rc != 0, failed) == 0)
        while (first < size && !failed[first])
            first++;
    if (rc != 0 && first == t->world->rank)
        return rc;
    return ptl_error(rc ? rc : PTL_EINVAL, "another rank failed %s (rank %d: see its message)",
                     what, first);
}

int ptl_train_run(const struct ptl_config *cfg, const char *run_dir,
                  const struct ptl_train_options *opt, struct ptl_eval_result *final,
                  double *seconds)
{
    struct ptl_train_options none = {NULL, NULL};
    if (opt == NULL)
        opt = &none;
    const char *trace_path = opt->trace_path;
    struct ptl_trainer t;
    memset(&t, 0, sizeof t);
    double t0 = ptl_now();
    snprintf(t.run_dir, sizeof t.run_dir, "%s", run_dir);
    int rc = agree(&t, trainer_setup(&t, cfg), "to set up");
    if (rc == 0)
        rc = agree(&t, trainer_connect(&t, trace_path), "to set up");
    if (rc == 0 && opt->resume)
        rc = agree(&t, ptl_trainer_resume(&t, opt->resume), "to resume");
    if (rc == 0)
        rc = agree(&t, run_files(&t, run_dir, opt->resume != NULL), "to create the run directory");
    if (rc == 0)
        rc = agree(&t, open_debug_log(&t), "to open its debug log");
    if (rc == 0) {
        if (is_root(&t)) {
            char extra[800];
            size_t bucket_floats = 0;
            int buckets = t.sync ? ptl_grad_sync_buckets(t.sync, &bucket_floats, NULL) : 0;
            snprintf(extra, sizeof extra,
                     "\"from_step\":%ld,\"arch\":\"%s\",\"train_samples\":%d,\"batch\":%d,\"steps\":%ld,"
                     "\"threads\":%d,\"ranks\":%d,\"shard\":\"%s\",\"buckets\":%d,"
                     "\"bucket_floats\":%zu,\"version\":\"%s\",\"blas\":\"%s\"",
                     t.step, ptl_model_arch(t.model), t.train.n, t.batch, t.max_steps,
                     ptl_threads_get(),
                     t.world->size, t.shard_local ? "local" : "global", buckets, bucket_floats,
                     ptl_version(), ptl_blis_kernels());
            ptl_progress_event(&t.progress, t.resumed ? "resume" : "start", extra);
        }
        ptl_stop_install();
        rc = train_loop(&t);
        ptl_stop_uninstall();
        /* Mid-training the other ranks may be inside a collective: end the job. */
        if (rc != 0 && rc != PTL_ESTOPPED && t.world->size > 1)
            ptl_dist_abort(1, ptl_error_message());
    }
    char path[4200];
    if (rc == 0 && is_root(&t) && (rc = join(path, sizeof path, run_dir, "final.h5")) == 0)
        rc = ptl_weights_save(t.model, path);
    if (rc == 0 && t.trace) {
        ptl_watchdog_beat("writing the trace", t.step);
        rc = ptl_trace_write(t.trace, trace_path);
    }
    if (t.progress.metrics) {
        char extra[128];
        snprintf(extra, sizeof extra, "\"status\":\"%s\",\"steps\":%ld",
                 rc == 0 ? "ok" : rc == PTL_ESTOPPED ? "stopped" : "failed", t.step);
        ptl_progress_event(&t.progress, "end", extra);
    }
    if (final)
        *final = t.last_eval;
    if (seconds)
        *seconds = ptl_now() - t0;
    trainer_free(&t);
    return rc;
}

int ptl_eval_run(const struct ptl_config *cfg, const char *weights, struct ptl_eval_result *r)
{
    struct ptl_evaluator e;
    int rc = set_threads(cfg);
    if (rc == 0)
        rc = ptl_evaluator_open(&e, cfg);
    if (rc != 0)
        return rc;
    struct ptl_augment a;
    struct ptl_model *m = NULL;
    int oh, ow;
    rc = ptl_augment_from_config(&a, cfg, e.test.c);
    if (rc == 0) {
        ptl_augment_out_size(&a, e.test.h, e.test.w, &oh, &ow);
        long classes = ptl_config_int(cfg, "model.classes");
        if (classes == 0) { /* as in training: the number of training labels */
            struct ptl_split_view train;
            rc = ptl_view_open(&train, cfg, ptl_config_string(cfg, "data.train_split"), 1);
            classes = rc == 0 ? train.classes : 0;
            if (rc == 0)
                ptl_view_close(&train);
        }
        if (rc == 0)
            rc = build_model(&m, cfg, e.test.c, oh, ow, (int)classes, weights, PTL_LOAD_STRICT,
                             NULL);
    }
    if (rc == 0)
        rc = ptl_evaluate(&e, m, cfg, r);
    ptl_model_free(m);
    ptl_evaluator_close(&e);
    return rc;
}
