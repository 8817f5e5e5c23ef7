/* ptl/io.h - weights by PyTorch state_dict name in HDF5 files.
 *
 * A weights file holds one dataset per state_dict entry, named exactly like the entry
 * ("layer1.0.conv1.weight"), at the root of the file: float32 with the entry's shape, and int64
 * scalars for counters (num_batches_tracked). tools/torch2h5.py and tools/h52torch.py convert
 * to and from PyTorch.
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
};

struct ptl_load_report {
    size_t loaded;       /* entries loaded */
    size_t missing;      /* model entries not in the file */
    size_t unexpected;   /* file datasets not in the model */
    char missing_names[512];    /* the first few, comma-separated, "..." when cut */
    char unexpected_names[512];
};

/* Loads `path` into m by name with shape checks. A shape mismatch, a file that is not HDF5,
 * a truncated or unreadable file, or (strict mode) any missing or unexpected name is an error
 * naming the file and the entry; the model is left unchanged then. `report` may be NULL. */
int ptl_weights_load(struct ptl_model *m, const char *path, enum ptl_load_mode mode,
                     struct ptl_load_report *report);

/* Writes every entry of m to `path` (via a temporary file renamed into place, so an existing
 * file is never left half-written). */
int ptl_weights_save(struct ptl_model *m, const char *path);

#ifdef __cplusplus
}
#endif
#endif
