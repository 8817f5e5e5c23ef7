/* ptl/io.h - weights by PyTorch state_dict name in HDF5 files.
 *
 * A weights file holds one dataset per state_dict entry, named exactly like the entry
 * ("layer1.0.conv1.weight"), at the root of the file: float32 with the entry's shape, and int64
 * scalars for counters (num_batches_tracked). tools/torch2h5.py and tools/h52torch.py convert
 * to and from PyTorch; docs/weights.md describes the format and what the loader also accepts
 * (float64 values, int32 or float counters, a [1] vector for a scalar).
 *
 * The HDF5 library is used serially (no MPI needed); its own error printing is off during these
 * calls and failures become one-line messages (ptl_error_message) naming the file and entry.
 */
#ifndef PTL_IO_H
#define PTL_IO_H

#include <stddef.h>
#include <stdio.h>

#include "ptl/model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ptl_load_mode {
    PTL_LOAD_STRICT = 0,  /* like load_state_dict(strict=True): every entry of the model must be
                             in the file and every dataset of the file in the model */
    PTL_LOAD_PARTIAL = 1, /* load what matches by name; missing and unexpected names are
                             reported, not errors (starting a PTL model from a backbone) */
    PTL_LOAD_BACKBONE = 2, /* like PARTIAL, but only entries whose role is the backbone: the
                              head (and any PTL branch) keeps its fresh initialisation, even
                              where the file has entries of the same name (fine-tuning a
                              pre-trained classifier onto new classes) */
};

struct ptl_load_report {
    size_t loaded;       /* entries loaded */
    size_t missing;      /* model entries not in the file */
    size_t unexpected;   /* file datasets not in the model */
    char missing_names[512];    /* the first few, comma-separated, "..." when cut */
    char unexpected_names[512];
};

/* Loads `path` into m by name with shape checks. A shape mismatch (both modes, first one in
 * state_dict order), a file that is not HDF5, a truncated or unreadable file, or (strict mode)
 * any missing or unexpected name (all reported in one message) is an error naming the file
 * and the entry; the model is left unchanged then: every value is read and checked before the
 * model changes. `report` may be NULL; on success it holds the counts and the first few names
 * (also after a strict name mismatch, with loaded = 0). Entries with used == 0 load like the
 * rest. */
int ptl_weights_load(struct ptl_model *m, const char *path, enum ptl_load_mode mode,
                     struct ptl_load_report *report);

/* Writes every entry of m to `path`: written to "PATH.tmp.<pid>", fsynced and renamed over
 * PATH, so on any failure an existing PATH is left exactly as it was and the temporary file
 * is removed. */
int ptl_weights_save(struct ptl_model *m, const char *path);

/* ---- training checkpoints (docs/checkpoint.md) ---- */

#define PTL_CKPT_FORMAT_VERSION 1

struct ptl_optimizer;

/* Where a run stands and what it is. */
struct ptl_ckpt_run {
    long step;              /* global steps done */
    long epoch;             /* epoch of the next step */
    long next_batch;        /* batch index of the next step within that epoch */
    long batches_per_epoch;
    int global_batch, world_size;
    unsigned long long seed;
    char arch[64], shard[16], optimizer[16];
};

/* What ptl_ckpt_save writes. Latent states are packed per rank in the model's state order
 * (ptl_model_state_*: slots x floats per slot each, the same slots on every rank). */
struct ptl_ckpt_contents {
    struct ptl_ckpt_run run;
    const char *config_text;           /* the resolved config */
    struct ptl_model *model;           /* model/<name>: parameters and (averaged) buffers */
    struct ptl_optimizer *optim;       /* optimizer/<state>/<name> and steps */
    const float *latent_merged;        /* latent/merged/<state>, or NULL */
    const float *latent_ranks;         /* world_size x latent_floats, latent/rank<r>/..., or NULL */
    size_t latent_floats;
    const float *buffers_ranks;        /* world_size x buffer floats, buffers/rank<r>/..., or NULL */
    const unsigned long long *rank_seeds; /* world_size x (sampler, augment), or NULL */
};

/* Writes the checkpoint whole or not at all (PATH.tmp.<pid>, fsync, rename, fsync of the
 * directory), every dataset with a 64-bit checksum attribute. */
int ptl_ckpt_save(const char *path, const struct ptl_ckpt_contents *c);

/* An open checkpoint: format and version, every group and the run attributes checked, and with
 * verify != 0 every dataset read once (checksums, truncation). Without verify, damage shows
 * when the damaged part is loaded (every load checks the checksums of what it reads). Errors name the
 * file and what is wrong with it. */
struct ptl_ckpt;
int ptl_ckpt_open(struct ptl_ckpt **out, const char *path, int verify);
void ptl_ckpt_close(struct ptl_ckpt *c);
const struct ptl_ckpt_run *ptl_ckpt_run_info(const struct ptl_ckpt *c);
const char *ptl_ckpt_config_text(const struct ptl_ckpt *c);
const char *ptl_ckpt_path(const struct ptl_ckpt *c);
/* Every parameter and buffer of m from model/ (names and sizes must match; read straight into
 * place, so a failure can leave m partly loaded: for resuming, where it ends the run). For
 * loading with validation before the model changes, ptl_weights_load reads checkpoints too. */
int ptl_ckpt_load_model(struct ptl_ckpt *c, struct ptl_model *m);
int ptl_ckpt_load_optimizer(struct ptl_ckpt *c, struct ptl_optimizer *o, struct ptl_model *m);
/* Latent states of `rank` (-1: the merged ones) into m's cells. */
int ptl_ckpt_load_latent(struct ptl_ckpt *c, struct ptl_model *m, int rank);
/* BatchNorm running statistics of `rank` when the checkpoint has per-rank ones (else no-op). */
int ptl_ckpt_load_buffers(struct ptl_ckpt *c, struct ptl_model *m, int rank);
/* Plain weights (model/ copied to the root: what ptl_weights_save writes, for h52torch.py). */
int ptl_ckpt_export(const char *ckpt, const char *out);
/* Verifies the checkpoint and prints what it holds. */
int ptl_ckpt_print_info(const char *path, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
