/* The training loop (loop.h): data -> augment -> forward -> loss -> backward -> optimizer,
 * evaluations, weight snapshots, metrics and the final weights. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptl/core.h"
#include "ptl/io.h"
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
        int n = ptl_threads_from_env();
        if (n < 0)
            return n;
        t = n;
    }
    return ptl_threads_set((int)t);
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

/* Everything but the files: data, model, optimizer, sampler. */
static int trainer_setup(struct ptl_trainer *t, const struct ptl_config *cfg)
{
    t->cfg = cfg;
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
    if (!pk && t->batch > t->train.n)
        return ptl_error(PTL_EINVAL,
                         "config data.batch: %d is larger than the %d training samples selected",
                         t->batch, t->train.n);
    rc = ptl_sampler_init(&t->sampler, pk ? PTL_SAMPLER_PK : PTL_SAMPLER_SHUFFLE,
                          t->sampler_seed, t->batch, (int)pkv[0], (int)pkv[1], t->train.pool,
                          t->train.labels, t->train.n);
    if (rc == 0)
        rc = ptl_sampler_set_epoch(&t->sampler, 0);
    if (rc != 0)
        return rc;
    t->epochs = ptl_config_int(cfg, "train.epochs");
    long planned = t->epochs * t->sampler.batches_per_epoch;
    long steps = ptl_config_int(cfg, "train.steps");
    t->max_steps = steps > 0 && steps < planned ? steps : planned;
    t->labels = malloc((size_t)t->batch * sizeof *t->labels);
    t->x = malloc((size_t)t->batch * t->in_c * t->in_h * t->in_w * sizeof *t->x);
    if (t->labels == NULL || t->x == NULL)
        return ptl_error(PTL_ENOMEM, "train: out of memory for a batch of %d", t->batch);
    return PTL_OK;
}

/* One optimizer step on global batch b of the current epoch. */
static int train_step(struct ptl_trainer *t, int b)
{
    double t0 = ptl_now();
    const int32_t *idx = ptl_sampler_batch(&t->sampler, b);
    for (int j = 0; j < t->batch; j++)
        t->labels[j] = t->train.label_of[idx[j]];
    uint64_t key0 = (uint64_t)(t->epoch * t->sampler.batches_per_epoch + b) * (uint64_t)t->batch;
    int rc = ptl_view_batch(&t->train, idx, t->batch, &t->augment, 1, t->augment_seed, key0, t->x);
    double t1 = ptl_now();
    if (rc == 0)
        rc = ptl_model_forward(t->model, t->x, t->batch, 1);
    if (rc == 0)
        rc = ptl_loss_compute(&t->loss, t->model, t->labels, t->batch);
    if (rc != 0)
        return rc;
    if (t->loss.total != t->loss.total)
        return ptl_error(PTL_ERANGE, "train: the loss is NaN at step %ld (lower optim.lr?)",
                         t->step + 1);
    double t2 = ptl_now();
    ptl_model_zero_grad(t->model);
    rc = ptl_model_backward(t->model, (const float *const *)t->loss.d_out, NULL);
    if (rc != 0)
        return rc;
    double t3 = ptl_now();
    float lr = ptl_schedule_lr(&t->schedule, t->step, t->epoch);
    rc = ptl_optimizer_step(t->optim, lr);
    if (rc != 0)
        return rc;
    double t4 = ptl_now();
    t->step++;
    if (t->debug) {
        fprintf(t->debug,
                "step %ld epoch %ld batch %d samples %d..%d loss %.9g ce %.9g triplet %.9g "
                "lr %.9g data %.4f forward %.4f backward %.4f optimizer %.4f s\n",
                t->step, t->epoch, b, idx[0], idx[t->batch - 1], t->loss.total, t->loss.ce,
                t->loss.triplet, (double)lr, t1 - t0, t2 - t1, t3 - t2, t4 - t3);
        fflush(t->debug);
    }
    ptl_progress_step(&t->progress, t->step, t->epoch, t->loss.total, t->loss.ce,
                      t->loss.triplet, lr, t->batch);
    return PTL_OK;
}

static int evaluate_now(struct ptl_trainer *t)
{
    int rc = ptl_evaluate(&t->eval, t->model, t->cfg, &t->last_eval);
    if (rc == 0) {
        t->evaluated = 1;
        ptl_progress_eval(&t->progress, t->step, t->epoch, &t->last_eval);
    }
    return rc;
}

static int is_snapshot_name(const char *name)
{
    size_t n = strlen(name);
    return strncmp(name, "step-", 5) == 0 && n > 8 && strcmp(name + n - 3, ".h5") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Deletes all but the newest `keep` snapshots (names sort by step: zero-padded). */
static void prune_snapshots(const char *dir, long keep)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    char *names[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 4096;)
        if (is_snapshot_name(e->d_name) && (names[n] = strdup(e->d_name)) != NULL)
            n++;
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        if (i < n - keep) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            unlink(path);
        }
        free(names[i]);
    }
}

/* Weights snapshot checkpoints/step-<N>.h5 (every parameter and buffer by PyTorch name, like
 * final.h5), keeping the newest checkpoint.keep_last. */
static int snapshot(struct ptl_trainer *t)
{
    char dir[4200], path[4300];
    join(dir, sizeof dir, t->run_dir, "checkpoints");
    snprintf(path, sizeof path, "%s/step-%010ld.h5", dir, t->step);
    int rc = ptl_weights_save(t->model, path);
    if (rc == 0)
        prune_snapshots(dir, ptl_config_int(t->cfg, "checkpoint.keep_last"));
    t->last_snapshot = ptl_now();
    return rc;
}

static int snapshot_due(struct ptl_trainer *t)
{
    long every = ptl_config_int(t->cfg, "checkpoint.every_steps");
    double minutes = ptl_config_float(t->cfg, "checkpoint.every_minutes");
    return (every > 0 && t->step % every == 0) ||
           (minutes > 0 && ptl_now() - t->last_snapshot >= 60 * minutes);
}

static int run_files(struct ptl_trainer *t, const char *run_dir)
{
    char path[4200];
    snprintf(t->run_dir, sizeof t->run_dir, "%s", run_dir);
    int rc = make_dirs(run_dir);
    if (rc == 0)
        rc = join(path, sizeof path, run_dir, "metrics.jsonl");
    if (rc != 0)
        return rc;
    if (access(path, F_OK) == 0)
        return ptl_error(PTL_EINVAL,
                         "%s already holds a run (%s): choose a new --out directory",
                         run_dir, path);
    char ck[4200];
    rc = join(ck, sizeof ck, run_dir, "checkpoints");
    if (rc == 0)
        rc = make_dirs(ck);
    char cfg_path[4200];
    if (rc == 0)
        rc = join(cfg_path, sizeof cfg_path, run_dir, "config.yaml");
    if (rc == 0)
        rc = ptl_config_write(t->cfg, cfg_path);
    if (rc == 0)
        rc = ptl_progress_open(&t->progress, path, t->max_steps,
                               (int)ptl_config_int(t->cfg, "run.log_every"));
    if (rc == 0 && ptl_config_bool(t->cfg, "run.debug_log")) {
        rc = join(path, sizeof path, run_dir, "debug.log");
        if (rc == 0 && (t->debug = fopen(path, "w")) == NULL)
            rc = ptl_error(PTL_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
    }
    return rc;
}

static int train_loop(struct ptl_trainer *t)
{
    long eval_every = ptl_config_int(t->cfg, "train.eval_every");
    int rc = PTL_OK;
    t->last_snapshot = ptl_now();
    for (t->epoch = 0; t->epoch < t->epochs && t->step < t->max_steps && rc == 0; t->epoch++) {
        rc = ptl_sampler_set_epoch(&t->sampler, t->epoch);
        ptl_model_reset_state(t->model, (uint64_t)t->epoch);
        for (int b = 0; rc == 0 && b < t->sampler.batches_per_epoch && t->step < t->max_steps;
             b++) {
            rc = train_step(t, b);
            if (rc == 0 && snapshot_due(t))
                rc = snapshot(t);
        }
        if (rc == 0 && eval_every > 0 && (t->epoch + 1) % eval_every == 0 &&
            t->step < t->max_steps)
            rc = evaluate_now(t);
    }
    if (t->epoch > 0)
        t->epoch--; /* the epoch the last step was taken in */
    if (rc == 0)
        rc = evaluate_now(t);
    return rc;
}

int ptl_train_run(const struct ptl_config *cfg, const char *run_dir, struct ptl_eval_result *final,
                  double *seconds)
{
    struct ptl_trainer t;
    memset(&t, 0, sizeof t);
    double t0 = ptl_now();
    int rc = trainer_setup(&t, cfg);
    if (rc == 0)
        rc = run_files(&t, run_dir);
    if (rc == 0) {
        char extra[512];
        snprintf(extra, sizeof extra,
                 "\"arch\":\"%s\",\"train_samples\":%d,\"batch\":%d,\"steps\":%ld,"
                 "\"threads\":%d,\"version\":\"%s\"",
                 ptl_model_arch(t.model), t.train.n, t.batch, t.max_steps, ptl_threads_get(),
                 ptl_version());
        ptl_progress_event(&t.progress, "start", extra);
        rc = train_loop(&t);
    }
    char path[4200];
    if (rc == 0 && (rc = join(path, sizeof path, run_dir, "final.h5")) == 0)
        rc = ptl_weights_save(t.model, path);
    if (t.progress.metrics) {
        char extra[128];
        snprintf(extra, sizeof extra, "\"status\":\"%s\",\"steps\":%ld",
                 rc == 0 ? "ok" : "failed", t.step);
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
