/* Split views and batch assembly for the training loop and evaluation (pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "train/pipeline.h"

enum { MAX_CLASS_FILTER = 1000 };

static int open_dataset(struct ptl_split_view *v, const struct ptl_config *cfg, const char *split)
{
    double size[2] = {0, 0};
    ptl_config_list(cfg, "data.size", size, 2);
    const char *format = ptl_config_string(cfg, "data.format");
    struct ptl_data_options o = {
        .format = format,
        .height = (int)size[0],
        .width = (int)size[1],
        .skip_bad = strcmp(ptl_config_string(cfg, "data.on_error"), "skip") == 0,
    };
    return ptl_dataset_open(&v->ds, ptl_config_string(cfg, "data.path"), split, &o);
}

/* label_of[i] for every dataset index: the class filter's relabelling, or the label itself. */
static int map_labels(struct ptl_split_view *v, const struct ptl_config *cfg)
{
    int n = ptl_dataset_size(v->ds);
    const int32_t *raw = ptl_dataset_labels(v->ds);
    double keep[MAX_CLASS_FILTER];
    int n_keep = ptl_config_list(cfg, "data.classes", keep, MAX_CLASS_FILTER);
    v->label_of = malloc((size_t)(n ? n : 1) * sizeof *v->label_of);
    if (v->label_of == NULL)
        return ptl_error(PTL_ENOMEM, "data %s: out of memory", v->split);
    if (n_keep == 0) {
        memcpy(v->label_of, raw, (size_t)n * sizeof *raw);
        v->classes = ptl_dataset_classes(v->ds);
        return PTL_OK;
    }
    int top = ptl_dataset_classes(v->ds);
    for (int j = 0; j < n_keep; j++) {
        if (keep[j] >= top)
            return ptl_error(PTL_ERANGE, "config data.classes: class %d is not in %s (%d classes)",
                             (int)keep[j], ptl_config_string(cfg, "data.path"), top);
        for (int i = 0; i < j; i++)
            if (keep[i] == keep[j])
                return ptl_error(PTL_EINVAL, "config data.classes: class %d is listed twice",
                                 (int)keep[j]);
    }
    for (int i = 0; i < n; i++) {
        v->label_of[i] = -1;
        for (int j = 0; j < n_keep; j++)
            if (raw[i] == (int32_t)keep[j])
                v->label_of[i] = j;
    }
    v->classes = n_keep;
    return PTL_OK;
}

/* Keeps at most per_class samples of each label: a seeded shuffle of each label's samples
 * (its own stream, so the choice of one class does not depend on the others), then the
 * first per_class of them, restored to dataset order. */
static int choose_per_class(struct ptl_split_view *v, long per_class, uint64_t seed)
{
    int n = ptl_dataset_size(v->ds);
    int32_t *members = malloc((size_t)(n ? n : 1) * sizeof *members);
    if (members == NULL)
        return ptl_error(PTL_ENOMEM, "data %s: out of memory", v->split);
    for (int c = 0; c < v->classes; c++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (v->label_of[i] == c)
                members[m++] = i;
        if (m <= per_class)
            continue;
        struct ptl_rng rng;
        ptl_rng_init(&rng, seed, 0x5e1ec7000ULL + (uint64_t)c);
        for (int i = m - 1; i > 0; i--) {
            int j = (int)(ptl_rng_u64(&rng) % (uint64_t)(i + 1));
            int32_t t = members[i];
            members[i] = members[j];
            members[j] = t;
        }
        for (int i = (int)per_class; i < m; i++)
            v->label_of[members[i]] = -1;
    }
    free(members);
    return PTL_OK;
}

int ptl_view_open(struct ptl_split_view *v, const struct ptl_config *cfg, const char *split,
                  int train)
{
    memset(v, 0, sizeof *v);
    snprintf(v->split, sizeof v->split, "%s", split);
    int rc = open_dataset(v, cfg, split);
    if (rc == 0)
        rc = map_labels(v, cfg);
    if (rc != 0) {
        ptl_view_close(v);
        return rc;
    }
    ptl_dataset_shape(v->ds, &v->c, &v->h, &v->w);
    long per_class = ptl_config_int(cfg, "data.per_class");
    if (train && per_class > 0 &&
        (rc = choose_per_class(v, per_class, (uint64_t)ptl_config_int(cfg, "run.seed"))) != 0) {
        ptl_view_close(v);
        return rc;
    }
    int n = ptl_dataset_size(v->ds);
    long eval_max = train ? 0 : ptl_config_int(cfg, "data.eval_max");
    v->pool = malloc((size_t)(n ? n : 1) * sizeof *v->pool);
    v->labels = malloc((size_t)(n ? n : 1) * sizeof *v->labels);
    const int32_t *cams = ptl_dataset_cameras(v->ds);
    if (cams)
        v->cameras = malloc((size_t)(n ? n : 1) * sizeof *v->cameras);
    if (v->pool == NULL || v->labels == NULL || (cams && v->cameras == NULL)) {
        ptl_view_close(v);
        return ptl_error(PTL_ENOMEM, "data %s: out of memory", split);
    }
    for (int i = 0; i < n && (eval_max == 0 || v->n < eval_max); i++) {
        if (v->label_of[i] < 0)
            continue;
        v->pool[v->n] = i;
        v->labels[v->n] = v->label_of[i];
        if (cams)
            v->cameras[v->n] = cams[i];
        v->n++;
    }
    if (v->n == 0) {
        ptl_view_close(v);
        return ptl_error(PTL_EINVAL, "data %s: split '%s' has no samples after data.classes",
                         ptl_config_string(cfg, "data.path"), split);
    }
    return PTL_OK;
}

void ptl_view_close(struct ptl_split_view *v)
{
    ptl_dataset_close(v->ds);
    free(v->pool);
    free(v->labels);
    free(v->label_of);
    free(v->cameras);
    free(v->raw);
    memset(v, 0, sizeof *v);
}

int ptl_augment_from_config(struct ptl_augment *a, const struct ptl_config *cfg, int c)
{
    memset(a, 0, sizeof *a);
    double resize[2] = {0, 0}, mean[3], std[3];
    ptl_config_list(cfg, "augment.resize", resize, 2);
    a->resize_h = (int)resize[0];
    a->resize_w = (int)resize[1];
    a->flip = (float)ptl_config_float(cfg, "augment.flip");
    a->pad = (int)ptl_config_int(cfg, "augment.pad");
    a->erase = (float)ptl_config_float(cfg, "augment.erase");
    a->erase_area[0] = 0.02f;
    a->erase_area[1] = 0.4f;
    a->erase_ratio = 0.3f;
    a->channels = c;
    int nm = ptl_config_list(cfg, "augment.mean", mean, 3);
    int ns = ptl_config_list(cfg, "augment.std", std, 3);
    if ((nm != 1 && nm != c) || (ns != 1 && ns != c))
        return ptl_error(PTL_EINVAL,
                         "config augment.mean/std: %d and %d values for images of %d channel%s "
                         "(give 1 or %d)",
                         nm, ns, c, c == 1 ? "" : "s", c);
    if ((a->resize_h == 0) != (a->resize_w == 0))
        return ptl_error(PTL_EINVAL, "config augment.resize: give both H and W, or 0, 0");
    for (int i = 0; i < c; i++) {
        a->mean[i] = (float)mean[nm == 1 ? 0 : i];
        a->std[i] = (float)std[ns == 1 ? 0 : i];
    }
    return PTL_OK;
}

int ptl_view_batch(struct ptl_split_view *v, const int32_t *indices, int n,
                   const struct ptl_augment *a, int train, uint64_t seed, uint64_t key0,
                   float *x)
{
    size_t sample = (size_t)v->c * (size_t)v->h * (size_t)v->w;
    if (n > v->raw_cap) {
        uint8_t *r = realloc(v->raw, (size_t)n * sample);
        if (r == NULL)
            return ptl_error(PTL_ENOMEM, "data %s: out of memory for a batch of %d", v->split, n);
        v->raw = r;
        v->raw_cap = n;
    }
    int rc = ptl_augment_validate(a, v->c, v->h, v->w);
    if (rc == 0)
        rc = ptl_dataset_read(v->ds, indices, n, v->raw);
    if (rc != 0)
        return rc;
    int oh, ow;
    ptl_augment_out_size(a, v->h, v->w, &oh, &ow);
    size_t out = (size_t)v->c * (size_t)oh * (size_t)ow;
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int j = 0; j < n; j++)
        failed |= ptl_augment_apply(a, v->raw + (size_t)j * sample, v->c, v->h, v->w,
                                    x + (size_t)j * out, train, seed, key0 + (uint64_t)j) != 0;
    if (failed)
        return ptl_error(PTL_EINVAL, "data %s: augmentation failed", v->split);
    return PTL_OK;
}
