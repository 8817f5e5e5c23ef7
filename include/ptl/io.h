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

#ifdef __cplusplus
}
#endif
#endif
