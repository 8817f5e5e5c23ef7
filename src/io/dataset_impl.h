/* The inside of struct ptl_dataset, shared by the readers (idx.c, cifar.c, packed.c,
 * folders.c, reid.c) and the front end (dataset.c). A reader fills the metadata arrays and
 * either `pixels` (all images in memory, small sources) or the `read` hook. */
#ifndef PTL_IO_DATASET_IMPL_H
#define PTL_IO_DATASET_IMPL_H

#include <stdint.h>
#include <stdio.h>

#include "ptl/data.h"

struct ptl_dataset {
    char format[32];
    char root[4096];   /* the path given to ptl_dataset_open */
    char split[32];
    int n;
    int c, h, w;
    int classes;
    int32_t *labels;   /* n (owned) */
    int32_t *cameras;  /* n or NULL (owned) */
    char **paths;      /* n or NULL (owned, each malloc'd) */
    int skipped;
    uint8_t *pixels;   /* n * c * h * w, or NULL when `read` is set (owned) */
    /* Reads one sample i into out (c * h * w bytes). */
    int (*read)(struct ptl_dataset *ds, int i, uint8_t *out);
    void (*close)(struct ptl_dataset *ds); /* frees `priv` */
    void *priv;
};

/* Readers: each fills ds (format, n, shape, classes, labels, ...) for ds->split from ds->root.
 * Return 0 or a PTL_E* code with a message naming the file. */
int ptl_idx_open(struct ptl_dataset *ds, const struct ptl_data_options *o);
int ptl_cifar_open(struct ptl_dataset *ds, const struct ptl_data_options *o, int hundred);
int ptl_packed_open(struct ptl_dataset *ds, const struct ptl_data_options *o);
int ptl_folders_open(struct ptl_dataset *ds, const struct ptl_data_options *o);
/* layout: "market1501", "dukemtmc", "cuhk03-labeled", "cuhk03-detected", "msmt17" */
int ptl_reid_open(struct ptl_dataset *ds, const struct ptl_data_options *o, const char *layout);

/* Image files (image.c), JPEG or PNG recognised by content, not name. Errors name the file.
 * ptl_image_size: the file's own size. ptl_image_load: decodes into out (c * h * w bytes,
 * (C, H, W) order) with c = 1 (grey) or 3 (RGB), converting as needed, resized bilinearly
 * (like PIL's resize) from the file's size to h x w. */
int ptl_image_size(const char *path, int *h, int *w);
int ptl_image_load(const char *path, int c, int h, int w, uint8_t *out);
/* Like ptl_image_load without resizing: the file must be h x w (an error naming it otherwise). */
int ptl_image_load_exact(const char *path, int c, int h, int w, uint8_t *out);

/* Readers of image files (folders.c, shared with reid.c). ptl_image_names: the image files
 * (*.jpg, *.jpeg, *.png in any case, not hidden) directly inside dir, sorted bytewise; *names
 * and each name malloc'd. ptl_image_files_setup: once ds->n, ds->paths (relative to ds->root),
 * ds->labels and optionally ds->cameras are filled, settles the shape (3 channels, o's size or
 * the first image's), under o->skip_bad drops (one stderr line each, counted in ds->skipped)
 * the files whose header cannot be read or whose size differs when there is no o size, and
 * installs the on-demand `read` hook and `close`. */
int ptl_image_names(const char *dir, char ***names, int *n);
void ptl_image_names_free(char **names, int n);
int ptl_image_files_setup(struct ptl_dataset *ds, const struct ptl_data_options *o);

/* Detects the format of the source at path ("idx", "cifar10", "market1501", ...) or returns
 * PTL_EFORMAT naming what was looked for. */
int ptl_data_detect(const char *path, char *format, size_t size);

/* ---- packed HDF5 files (packed.c; layout in docs/data.md), used by dataset.c ---- */
#define PTL_PACKED_VERSION 1
#define PTL_PACKED_MAX_SPLITS 8

/* Root attributes of a packed file. */
struct ptl_packed_meta {
    int version;
    char source_format[32];
    char source_path[4096];
    int nsplits;
    char splits[PTL_PACKED_MAX_SPLITS][32];
};

/* Reads the root attributes of the packed file path (errors name the file). */
int ptl_packed_meta(const char *path, struct ptl_packed_meta *m);

/* Writing: create, one add_split per split, close. add_split reads ds in batches; with
 * skip_bad a sample whose read fails is dropped with a line on stderr. close(w, 1) writes the
 * root attributes and closes; close(w, 0) only closes (the caller removes the file). Both
 * free w. */
struct ptl_packed_writer;
int ptl_packed_create(struct ptl_packed_writer **w, const char *path, const char *source_format,
                      const char *source_path);
int ptl_packed_add_split(struct ptl_packed_writer *w, struct ptl_dataset *ds, int skip_bad,
                         FILE *log);
int ptl_packed_close(struct ptl_packed_writer *w, int commit);

#endif
