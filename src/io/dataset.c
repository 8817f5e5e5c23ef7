/* The dataset front end (ptl/data.h): ptl_dataset_open picks the reader of the source's format
 * (given, or detected from the path by ptl_data_detect), checks what the reader filled, and
 * serves samples from memory or through the reader's read hook; ptl_data_pack copies every split
 * of a source into a packed HDF5 file (written by packed.c) replaced whole or not at all;
 * ptl_data_info prints what a source holds.
 *
 * The readers (idx.c, cifar.c, packed.c, folders.c, reid.c) know their file layouts; this file
 * knows only the contract in dataset_impl.h.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"
#include "io/h5util.h"
#include "ptl/core.h"

static const char *const format_names[] = {
    "idx",    "cifar10",        "cifar100",        "folders", "market1501", "dukemtmc",
    "cuhk03-labeled", "cuhk03-detected", "msmt17", "packed", NULL};

static int is_reid(const char *format)
{
    return strcmp(format, "market1501") == 0 || strcmp(format, "dukemtmc") == 0 ||
           strcmp(format, "cuhk03-labeled") == 0 || strcmp(format, "cuhk03-detected") == 0 ||
           strcmp(format, "msmt17") == 0;
}

static int known_format(const char *format)
{
    for (const char *const *f = format_names; *f; f++)
        if (strcmp(*f, format) == 0)
            return 1;
    return 0;
}

/* ---------------- detection ---------------- */

static int exists_as(const char *dir, const char *name, int want_dir)
{
    char p[4200];
    struct stat st;
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, name) >= sizeof p || stat(p, &st) != 0)
        return 0;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* Whether dir has at least one subdirectory (an ImageNet-style class folder). */
static int has_subdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            found = exists_as(dir, e->d_name, 1);
    closedir(d);
    return found;
}

/* Last component of path (after resolving it, so "." and "x/" work too), lower-cased. */
static void folder_name(const char *path, char *out, size_t size)
{
    char real[PATH_MAX];
    const char *p = realpath(path, real) ? real : path;
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && p[start - 1] != '/')
        start--;
    size_t n = len - start < size - 1 ? len - start : size - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)p[start + i]);
    out[n] = '\0';
}

int ptl_data_detect(const char *path, char *format, size_t size)
{
    struct stat st;
    const char *f = NULL;
    if (path == NULL || format == NULL || size == 0)
        return ptl_error(PTL_EINVAL, "ptl_data_detect: NULL argument");
    if (stat(path, &st) != 0)
        return ptl_error(PTL_EIO, "%s: cannot open (%s)", path, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        struct ptl_h5_quiet q;
        ptl_h5_quiet_begin(&q);
        htri_t h5 = st.st_size > 0 ? ptl_h5_is_hdf5(path) : 0;
        ptl_h5_quiet_end(&q);
        if (h5 <= 0)
            return ptl_error(PTL_EFORMAT,
                             "%s: a file but not an HDF5 file (a packed dataset is HDF5; other "
                             "sources are folders)",
                             path);
        f = "packed";
    } else if (!S_ISDIR(st.st_mode)) {
        return ptl_error(PTL_EFORMAT, "%s: neither a folder nor a packed file", path);
    } else if (exists_as(path, "train-images-idx3-ubyte", 0) ||
               exists_as(path, "train-images-idx3-ubyte.gz", 0)) {
        f = "idx";
    } else if (exists_as(path, "data_batch_1.bin", 0)) {
        f = "cifar10";
    } else if (exists_as(path, "train.bin", 0) && exists_as(path, "test.bin", 0)) {
        f = "cifar100";
    } else if (exists_as(path, "bounding_box_train", 1)) {
        char name[256];
        folder_name(path, name, sizeof name);
        f = strstr(name, "duke") ? "dukemtmc" : "market1501";
    } else if (exists_as(path, "labeled/bounding_box_train", 1) &&
               exists_as(path, "detected/bounding_box_train", 1)) {
        return ptl_error(PTL_EFORMAT,
                         "%s: CUHK03-NP with labeled/ and detected/ boxes: set the format to "
                         "cuhk03-labeled or cuhk03-detected",
                         path);
    } else if (exists_as(path, "list_train.txt", 0) && exists_as(path, "train", 1)) {
        f = "msmt17";
    } else {
        char train[4200];
        snprintf(train, sizeof train, "%s/train", path);
        if (exists_as(path, "train", 1) && has_subdir(train))
            f = "folders";
    }
    if (f == NULL)
        return ptl_error(PTL_EFORMAT,
                         "%s: unknown dataset layout: looked for train-images-idx3-ubyte[.gz] "
                         "(IDX), data_batch_1.bin (CIFAR-10), train.bin + test.bin (CIFAR-100), "
                         "bounding_box_train/ (Market-1501, DukeMTMC-reID), labeled/ + detected/ "
                         "(CUHK03-NP), list_train.txt + train/ (MSMT17), train/<class>/ (class "
                         "folders); set the format if it is one of these",
                         path);
    if (strlen(f) >= size)
        return ptl_error(PTL_EINVAL, "ptl_data_detect: format buffer too small");
    memcpy(format, f, strlen(f) + 1);
    return PTL_OK;
}

/* The format to use: the given one (checked) or the detected one. */
static int resolve_format(const char *path, const struct ptl_data_options *o, char *format,
                          size_t size)
{
    const char *given = o ? o->format : NULL;
    if (given == NULL || given[0] == '\0' || strcmp(given, "auto") == 0)
        return ptl_data_detect(path, format, size);
    if (!known_format(given))
        return ptl_error(PTL_EINVAL,
                         "format '%s': unknown (auto, idx, cifar10, cifar100, folders, "
                         "market1501, dukemtmc, cuhk03-labeled, cuhk03-detected, msmt17, packed)",
                         given);
    snprintf(format, size, "%s", given);
    return PTL_OK;
}

/* ---------------- opening ---------------- */

static int check_filled(const struct ptl_dataset *ds)
{
    if (ds->n <= 0)
        return ptl_error(PTL_EFORMAT, "%s: split '%s' is empty", ds->root, ds->split);
    if (ds->c < 1 || ds->h < 1 || ds->w < 1 || ds->labels == NULL ||
        (ds->pixels == NULL && ds->read == NULL))
        return ptl_error(PTL_EFORMAT, "%s: split '%s': the %s reader gave no shape, labels or images",
                         ds->root, ds->split, ds->format);
    return PTL_OK;
}

int ptl_dataset_open(struct ptl_dataset **out, const char *path, const char *split,
                     const struct ptl_data_options *o)
{
    if (out == NULL || path == NULL || split == NULL)
        return ptl_error(PTL_EINVAL, "ptl_dataset_open: NULL argument");
    *out = NULL;
    struct ptl_data_options defaults = {0};
    if (o == NULL)
        o = &defaults;
    if (o->height < 0 || o->width < 0 || (o->height == 0) != (o->width == 0))
        return ptl_error(PTL_EINVAL, "%s: image size %dx%d: give both height and width, or neither",
                         path, o->height, o->width);
    struct ptl_dataset *ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    int rc = PTL_OK;
    if (strlen(path) >= sizeof ds->root)
        rc = ptl_error(PTL_EINVAL, "%.200s...: path too long", path);
    else if (split[0] == '\0' || strlen(split) >= sizeof ds->split)
        rc = ptl_error(PTL_EINVAL, "%s: bad split name '%.40s'", path, split);
    if (rc == 0) {
        snprintf(ds->root, sizeof ds->root, "%s", path);
        snprintf(ds->split, sizeof ds->split, "%s", split);
        rc = resolve_format(path, o, ds->format, sizeof ds->format);
    }
    if (rc == 0) {
        const char *f = ds->format;
        if (strcmp(f, "idx") == 0)
            rc = ptl_idx_open(ds, o);
        else if (strcmp(f, "cifar10") == 0 || strcmp(f, "cifar100") == 0)
            rc = ptl_cifar_open(ds, o, strcmp(f, "cifar100") == 0);
        else if (strcmp(f, "packed") == 0)
            rc = ptl_packed_open(ds, o);
        else if (strcmp(f, "folders") == 0)
            rc = ptl_folders_open(ds, o);
        else
            rc = ptl_reid_open(ds, o, f);
    }
    if (rc == 0)
        rc = check_filled(ds);
    if (rc != 0) {
        ptl_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return PTL_OK;
}

void ptl_dataset_close(struct ptl_dataset *ds)
{
    if (ds == NULL)
        return;
    if (ds->close)
        ds->close(ds);
    if (ds->paths)
        for (int i = 0; i < ds->n; i++)
            free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    free(ds->cameras);
    free(ds->pixels);
    free(ds);
}

/* ---------------- getters ---------------- */

const char *ptl_dataset_format(const struct ptl_dataset *ds)
{
    return ds->format;
}

int ptl_dataset_size(const struct ptl_dataset *ds)
{
    return ds->n;
}

void ptl_dataset_shape(const struct ptl_dataset *ds, int *c, int *h, int *w)
{
    if (c)
        *c = ds->c;
    if (h)
        *h = ds->h;
    if (w)
        *w = ds->w;
}

const int32_t *ptl_dataset_labels(const struct ptl_dataset *ds)
{
    return ds->labels;
}

int ptl_dataset_classes(const struct ptl_dataset *ds)
{
    return ds->classes;
}

const int32_t *ptl_dataset_cameras(const struct ptl_dataset *ds)
{
    return ds->cameras;
}

const char *ptl_dataset_path_of(const struct ptl_dataset *ds, int i)
{
    if (ds->paths == NULL || i < 0 || i >= ds->n)
        return NULL;
    return ds->paths[i];
}

int ptl_dataset_skipped(const struct ptl_dataset *ds)
{
    return ds->skipped;
}

/* ---------------- reading ---------------- */

int ptl_dataset_read(struct ptl_dataset *ds, const int32_t *indices, int n, uint8_t *out)
{
    if (ds == NULL || n < 0 || (n > 0 && (indices == NULL || out == NULL)))
        return ptl_error(PTL_EINVAL, "ptl_dataset_read: NULL argument or negative count");
    /* All indices first: a bad one must not leave a half-filled batch behind unnoticed. */
    for (int k = 0; k < n; k++)
        if (indices[k] < 0 || indices[k] >= ds->n)
            return ptl_error(PTL_ERANGE, "%s (%s): sample index %ld (position %d of the batch) "
                             "outside 0..%d",
                             ds->root, ds->split, (long)indices[k], k, ds->n - 1);
    size_t sample = (size_t)ds->c * ds->h * ds->w;
    for (int k = 0; k < n; k++) {
        uint8_t *dst = out + (size_t)k * sample;
        if (ds->pixels) {
            memcpy(dst, ds->pixels + (size_t)indices[k] * sample, sample);
        } else {
            int rc = ds->read(ds, indices[k], dst);
            if (rc != 0)
                return rc;
        }
    }
    return PTL_OK;
}

/* ---------------- the splits of a source ---------------- */

struct split_list {
    int n;
    char name[PTL_PACKED_MAX_SPLITS][32];
};

static void add_split(struct split_list *l, const char *name)
{
    if (l->n < PTL_PACKED_MAX_SPLITS)
        snprintf(l->name[l->n++], sizeof l->name[0], "%s", name);
}

static int source_splits(const char *path, const char *format, struct split_list *l)
{
    l->n = 0;
    if (strcmp(format, "packed") == 0) {
        struct ptl_packed_meta m;
        int rc = ptl_packed_meta(path, &m);
        if (rc != 0)
            return rc;
        for (int i = 0; i < m.nsplits; i++)
            add_split(l, m.splits[i]);
    } else if (is_reid(format)) {
        add_split(l, "train");
        add_split(l, "query");
        add_split(l, "gallery");
    } else if (strcmp(format, "folders") == 0) {
        add_split(l, "train");
        if (exists_as(path, "val", 1))
            add_split(l, "val");
        if (exists_as(path, "test", 1))
            add_split(l, "test");
    } else {
        add_split(l, "train");
        add_split(l, "test");
    }
    return PTL_OK;
}

/* ---------------- packing ---------------- */

struct pack_ctx {
    const char *src;
    char abs_src[PATH_MAX];
    struct ptl_data_options o; /* format resolved */
    struct split_list splits;
    FILE *log;
};

static int fill_pack(const char *tmp, void *arg)
{
    struct pack_ctx *p = arg;
    struct ptl_packed_writer *w = NULL;
    int rc = ptl_packed_create(&w, tmp, p->o.format, p->abs_src);
    for (int i = 0; rc == 0 && i < p->splits.n; i++) {
        struct ptl_dataset *ds = NULL;
        rc = ptl_dataset_open(&ds, p->src, p->splits.name[i], &p->o);
        if (rc == 0)
            rc = ptl_packed_add_split(w, ds, p->o.skip_bad, p->log);
        ptl_dataset_close(ds);
    }
    if (w) {
        int crc = ptl_packed_close(w, rc == 0);
        if (rc == 0)
            rc = crc;
    }
    return rc;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ptl_data_pack(const char *src, const char *out, const struct ptl_data_options *o, void *log)
{
    if (src == NULL || out == NULL)
        return ptl_error(PTL_EINVAL, "ptl_data_pack: NULL argument");
    struct pack_ctx *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", src);
    char format[32];
    p->src = src;
    p->log = log;
    if (o)
        p->o = *o;
    int rc = resolve_format(src, o, format, sizeof format);
    if (rc == 0 && same_file(src, out))
        rc = ptl_error(PTL_EINVAL, "%s: the output is the source: refusing to overwrite it", out);
    if (rc == 0)
        rc = source_splits(src, format, &p->splits);
    if (rc == 0) {
        p->o.format = format;
        if (realpath(src, p->abs_src) == NULL)
            snprintf(p->abs_src, sizeof p->abs_src, "%s", src);
        rc = ptl_h5_commit_atomic("output", out, fill_pack, p);
    }
    free(p);
    return rc;
}

/* ---------------- info ---------------- */

/* Distinct cameras, or 0 when there are none. */
static int camera_count(const struct ptl_dataset *ds)
{
    if (ds->cameras == NULL)
        return 0;
    int max = -1;
    for (int i = 0; i < ds->n; i++)
        if (ds->cameras[i] > max)
            max = ds->cameras[i];
    if (max < 0)
        return 0;
    char *seen = calloc((size_t)max + 1, 1);
    if (seen == NULL)
        return max + 1;
    int count = 0;
    for (int i = 0; i < ds->n; i++)
        if (ds->cameras[i] >= 0 && !seen[ds->cameras[i]]) {
            seen[ds->cameras[i]] = 1;
            count++;
        }
    free(seen);
    return count;
}

int ptl_data_info(const char *path, const struct ptl_data_options *o, void *file)
{
    FILE *f = file ? file : stdout;
    if (path == NULL)
        return ptl_error(PTL_EINVAL, "ptl_data_info: NULL path");
    char format[32];
    struct split_list splits;
    int rc = resolve_format(path, o, format, sizeof format);
    if (rc == 0)
        rc = source_splits(path, format, &splits);
    if (rc != 0)
        return rc;
    struct ptl_data_options opts = {0};
    if (o)
        opts = *o;
    opts.format = format;
    fprintf(f, "path:   %s\n", path);
    if (strcmp(format, "packed") == 0) {
        struct ptl_packed_meta m;
        rc = ptl_packed_meta(path, &m);
        if (rc != 0)
            return rc;
        fprintf(f, "format: packed (version %d) from %s at %s\n", m.version, m.source_format,
                m.source_path);
    } else {
        fprintf(f, "format: %s\n", format);
    }
    for (int i = 0; i < splits.n; i++) {
        struct ptl_dataset *ds = NULL;
        rc = ptl_dataset_open(&ds, path, splits.name[i], &opts);
        if (rc != 0)
            return rc;
        int cams = camera_count(ds);
        fprintf(f, "split %s: %d samples of %dx%dx%d, %d classes, ", ds->split, ds->n, ds->c,
                ds->h, ds->w, ds->classes);
        if (cams)
            fprintf(f, "%d cameras", cams);
        else
            fprintf(f, "no cameras");
        if (ds->skipped)
            fprintf(f, ", %d skipped", ds->skipped);
        fputc('\n', f);
        ptl_dataset_close(ds);
    }
    return PTL_OK;
}
