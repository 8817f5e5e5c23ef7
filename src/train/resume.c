/* Checkpoints of a training run and resuming from them (loop.h, docs/checkpoint.md).
 *
 * Writing is collective: every rank sends its latent states (and, with per-rank BatchNorm
 * statistics, its buffers) to rank 0, which writes RUN_DIR/checkpoints/ckpt-<step>.h5, then
 * points `latest` at it and deletes the oldest beyond checkpoint.keep_last. Writing changes
 * nothing in the run, so a run that checkpoints continues exactly as one that does not.
 *
 * Resuming: rank 0 picks the checkpoint (`auto`: `latest`, else the newest that verifies; a
 * damaged one is reported and skipped), every rank loads it. On the number of ranks it was
 * written with, every rank gets back its own latent states and statistics, and the run
 * continues bit-identically; on another number, every rank starts from the merged states. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ptl/core.h"
#include "ptl/io.h"
#include "train/loop.h"

enum { MAX_CKPTS = 4096 };

static int is_ckpt_name(const char *name)
{
    size_t n = strlen(name);
    return strncmp(name, "ckpt-", 5) == 0 && n > 8 && strcmp(name + n - 3, ".h5") == 0;
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* Checkpoint names in dir, newest first (names sort by step: zero-padded). */
static int list_ckpts(const char *dir, char **names)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < MAX_CKPTS;)
        if (is_ckpt_name(e->d_name) && (names[n] = strdup(e->d_name)) != NULL)
            n++;
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_desc);
    return n;
}

/* Writes dir/latest = name, atomically (temporary file, fsync, rename, fsync of dir). */
static int point_latest(const char *dir, const char *name)
{
    char tmp[4300], path[4300];
    snprintf(tmp, sizeof tmp, "%s/latest.tmp.%ld", dir, (long)getpid());
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fprintf(f, "%s\n", name) > 0 && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ptl_error(PTL_EIO, "%s: cannot update (%s)", path, strerror(e));
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return PTL_OK;
}

/* Deletes the oldest checkpoints so that `keep` remain counting `current`, the one just
 * written (which `latest` names). Only checkpoints older than it are candidates: newer-named
 * ones (left by a run resumed from an older checkpoint, or damaged ones auto-resume skipped)
 * are neither counted nor deleted, so a fresh checkpoint is never the one pruned. */
static void prune(const char *dir, const char *current, long keep)
{
    /* Temporary files of writers that were killed (ptl_h5_commit_atomic's NAME.tmp.<pid>,
     * point_latest's latest.tmp.<pid>): only this process writes here now, so any other one is
     * a leftover. */
    DIR *d = opendir(dir);
    char mine[64];
    snprintf(mine, sizeof mine, ".tmp.%ld", (long)getpid());
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        const char *tmp = strstr(e->d_name, ".h5.tmp.");
        int ckpt_tmp = strncmp(e->d_name, "ckpt-", 5) == 0 && tmp && strcmp(tmp + 3, mine) != 0;
        int latest_tmp = strncmp(e->d_name, "latest.tmp.", 11) == 0 &&
                         strcmp(e->d_name + 6, mine) != 0;
        if (ckpt_tmp || latest_tmp) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    char *names[MAX_CKPTS];
    int n = list_ckpts(dir, names); /* newest first */
    long kept = 1;                  /* current */
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], current) < 0 && kept++ >= keep) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            unlink(path);
        }
        free(names[i]);
    }
}

int ptl_trainer_checkpoint(struct ptl_trainer *t)
{
    const struct ptl_world *w = t->world;
    int root = w->rank == 0, rc = PTL_OK;
    size_t lf = ptl_model_states_floats(t->model);
    size_t nb = ptl_model_buffer_floats(t->model);
    int per_rank_buffers = w->size > 1 && !t->sync_bn;
    float *mine = malloc((lf ? lf : 1) * sizeof *mine);
    float *ranks = root ? malloc((lf ? lf : 1) * (size_t)w->size * sizeof *ranks) : NULL;
    float *merged = root ? calloc(lf ? lf : 1, sizeof *merged) : NULL;
    float *bufs = root && per_rank_buffers ? malloc((nb ? nb : 1) * (size_t)w->size * sizeof *bufs)
                                           : NULL;
    float *avg = root && per_rank_buffers ? calloc(nb ? nb : 1, sizeof *avg) : NULL;
    unsigned long long *seeds = malloc(2 * (size_t)w->size * sizeof *seeds);
    unsigned long long *s1 = malloc((size_t)w->size * sizeof *s1);
    /* Out of memory here would leave the other ranks inside the gathers: end the job. */
    if (mine == NULL || seeds == NULL || s1 == NULL || (root && (ranks == NULL || merged == NULL)) ||
        (root && per_rank_buffers && (bufs == NULL || avg == NULL)))
        ptl_dist_abort(1, "checkpoint: out of memory gathering the ranks' state");
    int failed = 0;
    ptl_model_states_copy(t->model, mine, 1);
    if (ptl_dist_gather_floats(mine, lf, root ? ranks : mine, 0) != 0 ||
        (per_rank_buffers &&
         ptl_dist_gather_floats(ptl_model_buffers(t->model), nb, root ? bufs : mine, 0) != 0) ||
        ptl_dist_allgather_u64(t->sampler.seed, s1) != 0)
        ptl_dist_abort(1, ptl_error_message());
    for (int r = 0; r < w->size; r++) {
        seeds[2 * r] = s1[r];
        seeds[2 * r + 1] = t->augment_seed;
    }
    char dir[4200], name[64], path[4300];
    snprintf(dir, sizeof dir, "%s/checkpoints", t->run_dir);
    snprintf(name, sizeof name, "ckpt-%010ld.h5", t->step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (root && !failed) {
        /* The merged view: the mean over ranks (what another number of ranks starts from). */
        for (int r = 0; r < w->size; r++)
            for (size_t k = 0; k < lf; k++)
                merged[k] += ranks[(size_t)r * lf + k] / (float)w->size;
        float *live = ptl_model_buffers(t->model), *saved = NULL;
        if (per_rank_buffers) { /* model/ holds the averaged statistics, like final.h5 */
            for (int r = 0; r < w->size; r++)
                for (size_t k = 0; k < nb; k++)
                    avg[k] += bufs[(size_t)r * nb + k] / (float)w->size;
            saved = malloc((nb ? nb : 1) * sizeof *saved);
            if (saved == NULL)
                failed = 1;
            else {
                memcpy(saved, live, nb * sizeof *saved);
                memcpy(live, avg, nb * sizeof *live);
            }
        }
        struct ptl_ckpt_contents c = {
            .run = {.step = t->step,
                    .epoch = t->epoch,
                    .next_batch = t->next_batch,
                    .batches_per_epoch = t->batches_per_epoch,
                    .global_batch = t->batch,
                    .world_size = w->size,
                    .seed = t->seed},
            .config_text = t->config_text,
            .model = t->model,
            .optim = t->optim,
            .latent_merged = lf ? merged : NULL,
            .latent_ranks = lf ? ranks : NULL,
            .latent_floats = lf,
            .buffers_ranks = per_rank_buffers ? bufs : NULL,
            .rank_seeds = seeds,
        };
        snprintf(c.run.arch, sizeof c.run.arch, "%s", ptl_model_arch(t->model));
        snprintf(c.run.shard, sizeof c.run.shard, "%s", t->shard_local ? "local" : "global");
        snprintf(c.run.optimizer, sizeof c.run.optimizer, "%s",
                 ptl_config_string(t->cfg, "optim.name"));
        if (!failed)
            rc = ptl_ckpt_save(path, &c);
        if (saved) {
            memcpy(live, saved, nb * sizeof *live);
            free(saved);
        }
        if (rc == 0 && !failed)
            rc = point_latest(dir, name);
        if (rc == 0 && !failed)
            prune(dir, name, ptl_config_int(t->cfg, "checkpoint.keep_last"));
    }
    if (failed && rc == 0)
        rc = ptl_error(PTL_ENOMEM, "checkpoint %s: out of memory", path);
    free(mine);
    free(ranks);
    free(merged);
    free(bufs);
    free(avg);
    free(seeds);
    free(s1);
    t->last_checkpoint_step = t->step;
    t->last_checkpoint_time = ptl_now();
    return rc;
}

/* Rank 0: the checkpoint to resume from, into path ("" = none). */
static int choose(struct ptl_trainer *t, const char *spec, char *path, size_t size)
{
    path[0] = '\0';
    if (strcmp(spec, "auto") != 0) {
        struct ptl_ckpt *c;
        int rc = ptl_ckpt_open(&c, spec, 1);
        if (rc != 0)
            return rc;
        ptl_ckpt_close(c);
        snprintf(path, size, "%s", spec);
        return PTL_OK;
    }
    char dir[4200], latest[4300], name[256] = "";
    snprintf(dir, sizeof dir, "%s/checkpoints", t->run_dir);
    snprintf(latest, sizeof latest, "%s/latest", dir);
    FILE *f = fopen(latest, "r");
    if (f) {
        if (fgets(name, sizeof name, f) == NULL)
            name[0] = '\0';
        fclose(f);
        name[strcspn(name, "\n")] = '\0';
    }
    char *names[MAX_CKPTS];
    int n = list_ckpts(dir, names), found = 0;
    /* `latest` first, then the others newest first. */
    for (int i = -1; i < n && !found; i++) {
        const char *cand = i < 0 ? name : names[i];
        if (cand[0] == '\0' || (i >= 0 && strcmp(cand, name) == 0) || !is_ckpt_name(cand))
            continue;
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", dir, cand);
        struct ptl_ckpt *c;
        if (ptl_ckpt_open(&c, p, 1) == 0) {
            ptl_ckpt_close(c);
            snprintf(path, size, "%s", p);
            found = 1;
        } else {
            fprintf(stderr, "ptl train: skipping %s (%s)\n", p, ptl_error_message());
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    if (!found && n == 0 && name[0] == '\0')
        fprintf(stderr, "ptl train: --resume auto: no checkpoint yet in %s: a new run\n", dir);
    else if (!found)
        fprintf(stderr, "ptl train: --resume auto: no usable checkpoint in %s, starting from "
                        "step 0\n",
                dir);
    return PTL_OK;
}

static int restore(struct ptl_trainer *t, const char *path)
{
    /* Rank 0 verified the whole file when it chose it; loading checks what it reads. */
    struct ptl_ckpt *c;
    int rc = ptl_ckpt_open(&c, path, 0);
    if (rc != 0)
        return rc;
    const struct ptl_ckpt_run *r = ptl_ckpt_run_info(c);
    const char *arch = ptl_model_arch(t->model);
    if (strcmp(r->arch, arch) != 0)
        rc = ptl_error(PTL_EINVAL, "checkpoint %s: was written by a %s run, the config trains %s",
                       path, r->arch, arch);
    else if (r->global_batch != t->batch)
        rc = ptl_error(PTL_EINVAL,
                       "checkpoint %s: global batch %d, the config says data.batch %d (the data "
                       "position would not mean the same)",
                       path, r->global_batch, t->batch);
    else if (r->batches_per_epoch != t->batches_per_epoch)
        rc = ptl_error(PTL_EINVAL,
                       "checkpoint %s: %ld batches per epoch, this config's data gives %d (the "
                       "data selection changed: the position would not mean the same)",
                       path, r->batches_per_epoch, t->batches_per_epoch);
    else if (r->seed != t->seed)
        rc = ptl_error(PTL_EINVAL,
                       "checkpoint %s: run.seed %llu, the config says %llu (the data order and "
                       "augmentations would not continue)",
                       path, r->seed, (unsigned long long)t->seed);
    else if (strcmp(r->optimizer, ptl_config_string(t->cfg, "optim.name")) != 0)
        rc = ptl_error(PTL_EINVAL, "checkpoint %s: optimizer %s, the config says optim.name %s",
                       path, r->optimizer, ptl_config_string(t->cfg, "optim.name"));
    else if (r->step > t->max_steps)
        rc = ptl_error(PTL_EINVAL, "checkpoint %s: at step %ld, past the end of this run (%ld "
                                   "steps)",
                       path, r->step, t->max_steps);
    if (rc == 0)
        rc = ptl_ckpt_load_model(c, t->model);
    if (rc == 0)
        rc = ptl_ckpt_load_optimizer(c, t->optim, t->model);
    /* Same ranks (and sharding): each its own state; otherwise the merged one. */
    int same = r->world_size == t->world->size &&
               strcmp(r->shard, t->shard_local ? "local" : "global") == 0;
    if (rc == 0) {
        ptl_model_reset_state(t->model, (uint64_t)r->epoch);
        rc = ptl_ckpt_load_latent(c, t->model, same ? t->world->rank : -1);
    }
    if (rc == 0 && same)
        rc = ptl_ckpt_load_buffers(c, t->model, t->world->rank);
    if (rc == 0) {
        t->step = r->step;
        t->epoch = r->epoch;
        t->next_batch = (int)r->next_batch;
        t->resumed = 1;
        t->last_checkpoint_step = r->step;
        if (t->world->rank == 0)
            fprintf(stderr, "ptl train: resuming from %s: step %ld, epoch %ld, batch %ld%s\n",
                    path, r->step, r->epoch, r->next_batch,
                    same ? "" : " (merged latent states: another number of ranks or sharding)");
    }
    ptl_ckpt_close(c);
    return rc;
}

int ptl_trainer_resume(struct ptl_trainer *t, const char *spec)
{
    char path[4600] = "";
    int rc = t->world->rank == 0 ? choose(t, spec, path, sizeof path) : PTL_OK;
    /* Rank 0's choice (or failure) for everyone. */
    int ok = rc == 0;
    if (ptl_dist_broadcast(&ok, sizeof ok, 0) != 0 || ptl_dist_broadcast(path, sizeof path, 0))
        return ptl_error(PTL_EMPI, "resume: cannot share the checkpoint's name");
    if (!ok)
        return t->world->rank == 0 ? rc
                                   : ptl_error(PTL_EINVAL, "another rank failed to choose a "
                                                           "checkpoint (rank 0: see its message)");
    if (path[0] == '\0')
        return PTL_OK;
    return restore(t, path);
}
