/* ptl/data.h - datasets, packed HDF5 files, samplers and augmentation.
 *
 * A dataset is one split ("train", "test", "query", "gallery", ...) of one source: per-sample
 * metadata (labels, cameras, source paths) in memory, images read on demand as uint8 in
 * (C, H, W) order. Every sample of a dataset has the same shape: image files are resized to
 * the size given at open time (or must all share one size).
 *
 * Sources (docs/data.md): Fashion-MNIST/MNIST IDX files (gzip or not), CIFAR-10/100 binary,
 * ImageNet-style class folders, the person-ReID layouts Market-1501, DukeMTMC-reID, CUHK03-NP
 * (labelled or detected) and MSMT17, and ptl's own packed HDF5 files (ptl data pack).
 */
#ifndef PTL_DATA_H
#define PTL_DATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ptl_dataset;

struct ptl_data_options {
    const char *format; /* NULL or "auto" (detect from the path), "idx", "cifar10", "cifar100",
                           "folders", "market1501", "dukemtmc", "cuhk03-labeled",
                           "cuhk03-detected", "msmt17", "packed" */
    int height, width;  /* size image files are resized to; 0, 0: keep their own (uniform)
                           size. Ignored by IDX, CIFAR and packed sources. */
    int skip_bad;       /* 0: an unreadable image or a bad label is an error naming the file;
                           1: such a sample is dropped with one log line on stderr, counted */
};

/* Opens split `split` of the source at `path`. Splits: "train" and "test" for classification
 * sources ("val" too for folders that have it); "train", "query" and "gallery" for ReID
 * sources. Errors (PTL_EIO, PTL_EFORMAT, PTL_ERANGE, PTL_EINVAL) name the file, and for a
 * missing or empty split the split. */
int ptl_dataset_open(struct ptl_dataset **out, const char *path, const char *split,
                     const struct ptl_data_options *o);
void ptl_dataset_close(struct ptl_dataset *ds);

/* The detected or given format name ("idx", "market1501", ...). */
const char *ptl_dataset_format(const struct ptl_dataset *ds);
int ptl_dataset_size(const struct ptl_dataset *ds);
void ptl_dataset_shape(const struct ptl_dataset *ds, int *c, int *h, int *w);
/* Training labels in [0, classes): the class, or for ReID the identity relabelled in order of
 * first appearance of the sorted identities (train split); for query/gallery the raw identity
 * (>= 0; 0 is Market-1501's distractor). */
const int32_t *ptl_dataset_labels(const struct ptl_dataset *ds);
/* Number of distinct training labels (classification: the source's class count). */
int ptl_dataset_classes(const struct ptl_dataset *ds);
/* Camera of each sample (0-based), or NULL when the source has none. */
const int32_t *ptl_dataset_cameras(const struct ptl_dataset *ds);
/* Source file of sample i (relative to the source root), or NULL for IDX/CIFAR. */
const char *ptl_dataset_path_of(const struct ptl_dataset *ds, int i);
/* Samples dropped by skip_bad. */
int ptl_dataset_skipped(const struct ptl_dataset *ds);

/* Reads samples indices[0..n) into out (n * C * H * W bytes, sample after sample). Safe to
 * call from one thread at a time per dataset. */
int ptl_dataset_read(struct ptl_dataset *ds, const int32_t *indices, int n, uint8_t *out);

/* Writes every split of the source at `src` into one packed HDF5 file (layout in
 * docs/data.md), images resized to height x width when they are files. Written to a
 * temporary name and renamed, so an existing `out` survives any failure. `log` (a FILE *,
 * may be NULL) gets one progress line per split. */
int ptl_data_pack(const char *src, const char *out, const struct ptl_data_options *o, void *log);

/* Prints what a packed file (or any source) holds: format, splits, counts, shapes, classes,
 * cameras. */
int ptl_data_info(const char *path, const struct ptl_data_options *o, void *file /* FILE * */);

/* ---- samplers: which samples make each batch of an epoch ----
 * The order of epoch e is drawn from the stream of (seed, e) alone (a sampler-only stream,
 * distinct from the augmentation streams of the same seed), so any rank can compute any part
 * of it. The order holds the dataset indices of the `pool` given at init. */
enum ptl_sampler_kind {
    PTL_SAMPLER_SHUFFLE = 0, /* a seeded permutation of the pool; the last partial batch is
                                dropped in training */
    PTL_SAMPLER_PK = 1,      /* P identities x K images, like the MGN release's RandomSampler:
                                every identity once per epoch in shuffled order, each giving K
                                distinct images (drawn with replacement when it has fewer);
                                n_identities / P batches per epoch */
};

struct ptl_sampler {
    enum ptl_sampler_kind kind;
    uint64_t seed;
    int batch;          /* global batch (P * K for PK) */
    int p, k;
    int pool_size;
    int32_t *pool;      /* dataset indices this sampler draws from (owned) */
    int32_t *labels;    /* label of each pool entry (owned, PK only) */
    long epoch;         /* epoch the order below belongs to (-1 before the first) */
    int32_t *order;     /* batches_per_epoch * batch dataset indices */
    int batches_per_epoch;
    void *priv;         /* implementation state */
};

/* pool: n dataset indices; labels: the label of each (needed by PK, may be NULL otherwise).
 * PTL_EINVAL when a pool is smaller than one batch, P exceeds its identities or batch != P*K. */
int ptl_sampler_init(struct ptl_sampler *s, enum ptl_sampler_kind kind, uint64_t seed, int batch,
                     int p, int k, const int32_t *pool, const int32_t *labels, int n);
void ptl_sampler_free(struct ptl_sampler *s);
/* Draws the order of epoch `epoch` (idempotent for the same epoch). */
int ptl_sampler_set_epoch(struct ptl_sampler *s, long epoch);
/* Dataset indices of global batch b of the current epoch: batch entries (NULL before the first
 * set_epoch or when b is outside [0, batches_per_epoch)). */
const int32_t *ptl_sampler_batch(const struct ptl_sampler *s, int b);

/* ---- augmentation: uint8 (C, H, W) -> normalised float (C, out_h, out_w) ----
 * Train mode, in this order: resize to (resize_h, resize_w) if set, horizontal flip with
 * probability flip, zero-pad by pad and random crop back, random erasing with probability
 * erase (area erase_area, aspect erase_ratio..1/erase_ratio, filled with the normalised mean,
 * i.e. 0, like the release's RandomErasing), then (x / 255 - mean[c]) / std[c]. Eval mode:
 * resize and normalise only. Every random draw comes from the stream (seed, key) where key
 * identifies the sample's use: the training loop passes the sample's global slot since the
 * start of training, (epoch * batches_per_epoch + batch) * batch + slot, so an augmentation
 * never depends on the rank or thread that makes it, and a sample drawn twice in one P x K
 * batch gets two different augmentations. */
struct ptl_augment {
    int resize_h, resize_w; /* 0: no resize */
    float flip;             /* probability */
    int pad;
    float erase;            /* probability */
    float erase_area[2];    /* default 0.02, 0.4 (used when both are 0) */
    float erase_ratio;      /* in (0, 1]; default 0.3 (used when 0) */
    int channels;
    float mean[3], std[3];
};

/* Output size of an augmented sample of an input of h x w. */
void ptl_augment_out_size(const struct ptl_augment *a, int h, int w, int *out_h, int *out_w);
/* The checks ptl_augment_apply makes, for a c x h x w input: call it once before a parallel
 * loop over samples, where a per-thread error message would be lost. */
int ptl_augment_validate(const struct ptl_augment *a, int c, int h, int w);
/* dst: c * out_h * out_w floats. Resize is bilinear with half-pixel centres and no
 * antialiasing (torch's interpolate(mode="bilinear", align_corners=False)); the pad is pixel
 * value 0 (black, before normalisation) like torchvision's RandomCrop(padding=pad). Pure and
 * thread-safe: call it from parallel loops. PTL_EINVAL on bad settings or c != channels. */
int ptl_augment_apply(const struct ptl_augment *a, const uint8_t *src, int c, int h, int w,
                      float *dst, int train, uint64_t seed, uint64_t key);

#ifdef __cplusplus
}
#endif
#endif
