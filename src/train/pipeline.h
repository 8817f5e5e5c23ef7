/* The data side of a run: one split of a dataset narrowed to the samples a config selects
 * (data.classes, data.per_class, data.eval_max), and batches of it read, augmented and
 * normalised into the model's input tensor. */
#ifndef PTL_TRAIN_PIPELINE_H
#define PTL_TRAIN_PIPELINE_H

#include <stdint.h>

#include "ptl/config.h"
#include "ptl/data.h"

struct ptl_split_view {
    struct ptl_dataset *ds;
    char split[32];
    int32_t *pool;     /* selected dataset indices, in dataset order */
    int32_t *labels;   /* label of each pool entry (after the class filter's relabelling) */
    int32_t *label_of; /* label of every dataset index, -1 when not selected */
    int n;
    int classes;       /* labels are in [0, classes) (ReID query/gallery: raw identities) */
    int32_t *cameras;  /* camera of each pool entry, or NULL */
    int c, h, w;       /* stored sample shape */
    uint8_t *raw;      /* staging for one batch of stored samples */
    int raw_cap;
};

/* Opens `split` of the config's data source and selects its samples: data.classes (train and
 * eval, relabelled in list order), data.per_class (train only, a seeded choice per class),
 * data.eval_max (eval only, the first ones). An empty selection is an error naming the split. */
int ptl_view_open(struct ptl_split_view *v, const struct ptl_config *cfg, const char *split,
                  int train);
void ptl_view_close(struct ptl_split_view *v);

/* The augmentation of the config (augment.*) for samples of c channels. */
int ptl_augment_from_config(struct ptl_augment *a, const struct ptl_config *cfg, int c);

/* Reads the dataset samples `indices` (n, as dataset indices) and augments each into x
 * (n, C, out_h, out_w): sample j uses the stream key key0 + j, so a sample's augmentation
 * depends on its global position, never on the thread or rank that makes it. */
int ptl_view_batch(struct ptl_split_view *v, const int32_t *indices, int n,
                   const struct ptl_augment *a, int train, uint64_t seed, uint64_t key0,
                   float *x);

#endif
