/* Weights by PyTorch state_dict name in HDF5 files: ptl_weights_load and ptl_weights_save.
 *
 * The file format (docs/weights.md): one dataset per state_dict entry at the root, named like
 * the entry; floating point values with the entry's shape, integer scalars for counters.
 * Loading validates the whole file against the model (names, shapes, types) and reads every
 * value into a staging buffer before the first byte of the model changes, so a failed load
 * leaves the model as it was. Saving writes "PATH.tmp.<pid>", fsyncs it and renames it over
 * PATH, so a failed save leaves any existing PATH as it was.
 *
 * Loading also reads a training checkpoint's model/ group (checkpoint.c), so a checkpoint
 * works wherever weights do. Checkpoints themselves (optimizer, latent states) are written by
 * checkpoint.c. The
 * HDF5 library is the parallel build used serially here (default property lists, no MPI); the
 * error, locking and atomic-write plumbing shared with ptl forward is in h5util.c.
 */
#include "ptl/io.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/h5util.h"
#include "ptl/core.h"

/* Names listed in messages: how many at most, so one line stays readable. */
#define NAMES_IN_MESSAGE 4

/* "[64,3,7,7]" ("[]" for a scalar). */
static void format_shape(char *buf, size_t size, int ndim, const hsize_t *dims)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%llu", i ? "," : "",
                                (unsigned long long)dims[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

/* A comma-separated list of the first few names, ending in "..." when cut. */
struct name_list {
    char *buf;
    size_t size;
    size_t shown, max_names;
    int cut;
};

static void list_add(struct name_list *l, const char *name)
{
    if (l->cut)
        return;
    size_t len = strlen(l->buf);
    const char *sep = l->shown ? ", " : "";
    if (l->shown < l->max_names && len + strlen(sep) + strlen(name) + 5 < l->size) {
        snprintf(l->buf + len, l->size - len, "%s%s", sep, name);
        l->shown++;
    } else {
        snprintf(l->buf + len, l->size - len, "%s...", sep);
        l->cut = 1;
    }
}

/* ---------------- loading ---------------- */

/* One link at the root of the file. */
struct file_item {
    char *name;
    long entry; /* matching model entry, or -1 */
    int is_dataset;
    int ndim; /* -1 for a null dataspace */
    hsize_t dims[H5S_MAX_RANK];
    H5T_class_t cls;
    size_t staged; /* offset of its values in the staging buffer */
};

struct load_ctx {
    const char *path;
    hid_t file;
    hid_t root; /* where the entries are: the file's root, or a checkpoint's model/ group */
    struct file_item *items;
    size_t n_items;
    long *match; /* per model entry: index into items, or -1 */
    float *staging;
    int backbone_only; /* PTL_LOAD_BACKBONE: entries of other roles are not matched */
};

static void load_ctx_free(struct load_ctx *c)
{
    for (size_t i = 0; i < c->n_items; i++)
        free(c->items[i].name);
    free(c->items);
    free(c->match);
    free(c->staging);
    if (c->root != c->file)
        ptl_h5_close_id(&c->root, H5Gclose);
    ptl_h5_close_id(&c->file, H5Fclose);
}

/* Checks that path is a readable, non-empty HDF5 file before HDF5 sees it, so the common
 * mistakes get plain messages instead of HDF5's. */
static int check_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return ptl_error(PTL_EIO, "weights %s: cannot open (%s)", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ptl_error(PTL_EIO, "weights %s: is a directory, not an HDF5 file", path);
    if (access(path, R_OK) != 0)
        return ptl_error(PTL_EIO, "weights %s: cannot read (%s)", path, strerror(errno));
    if (st.st_size == 0)
        return ptl_error(PTL_EFORMAT, "weights %s: not an HDF5 file (empty)", path);
    htri_t is_h5 = ptl_h5_is_hdf5(path);
    if (is_h5 == 0)
        return ptl_error(PTL_EFORMAT, "weights %s: not an HDF5 file", path);
    if (is_h5 < 0) { /* a signature, but HDF5 cannot read what follows it */
        char why[PTL_H5_REASON_SIZE];
        return ptl_error(PTL_EFORMAT, "weights %s: truncated or corrupt (%s)", path,
                         ptl_h5_reason(why));
    }
    return PTL_OK;
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const struct file_item *)a)->name, ((const struct file_item *)b)->name);
}

/* Collects the root link names (H5Literate: one pass; looking links up by index instead
 * re-sorts the whole link table on every call in HDF5 1.10). */
struct name_vec {
    char **names;
    size_t n, cap;
};

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    struct name_vec *v = data;
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        char **p = realloc(v->names, cap * sizeof *p);
        if (p == NULL)
            return -1;
        v->names = p;
        v->cap = cap;
    }
    v->names[v->n] = strdup(name);
    return v->names[v->n++] ? 0 : -1;
}

/* Shape and type class of item it (if it is a dataset). */
static int describe_item(struct load_ctx *c, struct file_item *it)
{
    char why[PTL_H5_REASON_SIZE];
    hid_t obj = H5Oopen(c->root, it->name, H5P_DEFAULT);
    if (obj < 0)
        return ptl_error(PTL_EFORMAT, "weights %s: %s: truncated or corrupt (%s)", c->path,
                         it->name, ptl_h5_reason(why));
    it->is_dataset = H5Iget_type(obj) == H5I_DATASET;
    int rc = PTL_OK;
    if (it->is_dataset) {
        hid_t space = H5Dget_space(obj);
        int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
        if (nd < 0)
            ptl_h5_reason(why);
        hid_t type = nd >= 0 ? H5Dget_type(obj) : -1;
        if (nd >= 0 && type < 0)
            ptl_h5_reason(why);
        if (nd < 0 || type < 0) {
            rc = ptl_error(PTL_EFORMAT, "weights %s: %s: truncated or corrupt (%s)", c->path,
                           it->name, why);
        } else {
            it->ndim = H5Sget_simple_extent_type(space) == H5S_NULL ? -1 : nd;
            if (nd > 0)
                H5Sget_simple_extent_dims(space, it->dims, NULL);
            it->cls = H5Tget_class(type);
        }
        if (space >= 0)
            H5Sclose(space);
        if (type >= 0)
            H5Tclose(type);
    }
    H5Oclose(obj);
    return rc;
}

/* Lists the root links, sorted by name, with the shape and type class of each dataset. */
static int read_directory(struct load_ctx *c)
{
    char why[PTL_H5_REASON_SIZE];
    struct name_vec v = {0};
    herr_t st = H5Literate(c->root, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, collect_name, &v);
    if (st < 0)
        ptl_h5_reason(why);
    int rc = PTL_OK;
    c->items = calloc(v.n ? v.n : 1, sizeof *c->items);
    if (st < 0)
        rc = ptl_error(PTL_EFORMAT, "weights %s: truncated or corrupt (%s)", c->path, why);
    else if (c->items == NULL)
        rc = ptl_error(PTL_ENOMEM, "weights %s: out of memory for %zu names", c->path, v.n);
    for (size_t k = 0; k < v.n; k++) {
        if (c->items == NULL) {
            free(v.names[k]);
            continue;
        }
        c->items[c->n_items++] = (struct file_item){.name = v.names[k], .entry = -1};
    }
    free(v.names);
    for (size_t k = 0; rc == 0 && k < c->n_items; k++)
        rc = describe_item(c, &c->items[k]);
    if (rc == 0)
        qsort(c->items, c->n_items, sizeof *c->items, cmp_item);
    return rc;
}

/* Whether a dataset of dims[ndim] fits entry e. Like PyTorch's load_state_dict, a
 * one-element 1-D tensor is accepted for a scalar (files from old PyTorch versions). */
static int shape_fits(const struct ptl_entry *e, const struct file_item *it)
{
    if (e->ndim == 0 && it->ndim == 1 && it->dims[0] == 1)
        return 1;
    if (it->ndim != e->ndim)
        return 0;
    for (int d = 0; d < e->ndim; d++)
        if (it->dims[d] != (hsize_t)e->shape[d])
            return 0;
    return 1;
}

static const char *class_name(H5T_class_t cls)
{
    switch (cls) {
    case H5T_INTEGER:
        return "integer";
    case H5T_FLOAT:
        return "float";
    case H5T_STRING:
        return "string";
    case H5T_COMPOUND:
        return "compound";
    case H5T_ENUM:
        return "enum";
    case H5T_ARRAY:
        return "array";
    default:
        return "not a number";
    }
}

/* Pairs model entries with file datasets and checks shapes and types, in state_dict order so
 * the first problem reported is the first one a reader of the model would meet. */
static int match_entries(struct load_ctx *c, const struct ptl_model *m, size_t *staging_floats)
{
    size_t n = ptl_model_entry_count(m);
    c->match = malloc((n ? n : 1) * sizeof *c->match);
    if (c->match == NULL)
        return ptl_error(PTL_ENOMEM, "weights %s: out of memory", c->path);
    *staging_floats = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        if (c->backbone_only && e->role != PTL_ROLE_BACKBONE) {
            c->match[i] = -1; /* left as initialised; the file's copy counts as unexpected */
            continue;
        }
        struct file_item key = {.name = (char *)e->name};
        struct file_item *it = bsearch(&key, c->items, c->n_items, sizeof key, cmp_item);
        c->match[i] = it ? it - c->items : -1;
        if (it == NULL)
            continue;
        it->entry = (long)i;
        if (!it->is_dataset)
            return ptl_error(PTL_EFORMAT, "weights %s: %s is a group, not a dataset", c->path,
                             e->name);
        if (it->ndim < 0)
            return ptl_error(PTL_EFORMAT, "weights %s: %s has no data (null dataspace)", c->path,
                             e->name);
        if (!shape_fits(e, it)) {
            char got[160], want[160];
            hsize_t wd[4];
            for (int d = 0; d < e->ndim; d++)
                wd[d] = (hsize_t)e->shape[d];
            format_shape(got, sizeof got, it->ndim, it->dims);
            format_shape(want, sizeof want, e->ndim, wd);
            return ptl_error(PTL_EINVAL, "weights %s: %s has shape %s, the model expects %s",
                             c->path, e->name, got, want);
        }
        int counter = e->kind == PTL_ENTRY_COUNTER;
        if (it->cls != H5T_FLOAT && !(counter && it->cls == H5T_INTEGER))
            return ptl_error(PTL_EFORMAT,
                             "weights %s: %s has an unsupported type (%s), "
                             "expected %s",
                             c->path, e->name, class_name(it->cls),
                             counter ? "an integer or float" : "float32 or float64");
        it->staged = *staging_floats;
        *staging_floats += e->count;
    }
    return PTL_OK;
}

/* Fills the report's counts and name lists from the matching. */
static void fill_report(const struct load_ctx *c, const struct ptl_model *m,
                        struct ptl_load_report *r, size_t max_names)
{
    memset(r, 0, sizeof *r);
    struct name_list miss = {r->missing_names, sizeof r->missing_names, 0, max_names, 0};
    struct name_list unexp = {r->unexpected_names, sizeof r->unexpected_names, 0, max_names, 0};
    for (size_t i = 0; i < ptl_model_entry_count(m); i++) {
        if (c->match[i] >= 0) {
            r->loaded++;
        } else {
            r->missing++;
            list_add(&miss, ptl_model_entry(m, i)->name);
        }
    }
    for (size_t k = 0; k < c->n_items; k++)
        if (c->items[k].entry < 0) {
            r->unexpected++;
            list_add(&unexp, c->items[k].name);
        }
}

/* Bytes per value of a dataset's stored type. */
static size_t describe_size(hid_t ds)
{
    hid_t t = H5Dget_type(ds);
    size_t n = t >= 0 ? H5Tget_size(t) : 0;
    if (t >= 0)
        H5Tclose(t);
    return n;
}

/* Reads one dataset into dst (count floats), converting float64 values and integer counters;
 * a checkpoint's datasets are checked against their checksums. */
static int read_values(struct load_ctx *c, const struct file_item *it, const struct ptl_entry *e,
                       float *dst)
{
    char why[PTL_H5_REASON_SIZE];
    hid_t ds = H5Dopen2(c->root, it->name, H5P_DEFAULT);
    if (ds < 0)
        return ptl_error(PTL_EFORMAT, "weights %s: %s: truncated or corrupt (%s)", c->path, e->name,
                         ptl_h5_reason(why));
    herr_t st;
    if (it->cls == H5T_INTEGER) {
        int64_t *tmp = malloc(e->count * sizeof *tmp);
        if (tmp == NULL) {
            H5Dclose(ds);
            return ptl_error(PTL_ENOMEM, "weights %s: %s: out of memory", c->path, e->name);
        }
        st = ptl_h5_read_checked(c->root, it->name, H5T_NATIVE_INT64, tmp,
                                 e->count * sizeof *tmp, why);
        for (size_t k = 0; st >= 0 && k < e->count; k++)
            dst[k] = (float)tmp[k]; /* exact below 2^24 (model.h) */
        free(tmp);
    } else if (it->cls == H5T_FLOAT && describe_size(ds) == sizeof(float)) {
        /* float32, as ptl writes: checked against a checkpoint's checksum when it has one */
        st = ptl_h5_read_checked(c->root, it->name, H5T_NATIVE_FLOAT, dst,
                                 e->count * sizeof *dst, why);
    } else {
        st = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
        if (st < 0)
            ptl_h5_reason(why);
    }
    H5Dclose(ds);
    if (st < 0)
        return ptl_error(PTL_EFORMAT, "weights %s: %s: truncated or corrupt (%s)", c->path, e->name,
                         why);
    return PTL_OK;
}

static int load_validated(struct load_ctx *c, struct ptl_model *m, enum ptl_load_mode mode,
                          struct ptl_load_report *report)
{
    char why[PTL_H5_REASON_SIZE];
    int rc = check_file(c->path);
    if (rc != 0)
        return rc;
    hid_t fapl = ptl_h5_fapl();
    c->file = H5Fopen(c->path, H5F_ACC_RDONLY, fapl);
    if (c->file < 0)
        ptl_h5_reason(why); /* before the next HDF5 call clears the stack */
    ptl_h5_fapl_close(fapl);
    if (c->file < 0)
        return ptl_error(PTL_EFORMAT, "weights %s: truncated or corrupt (%s)", c->path, why);
    c->root = c->file;
    /* A training checkpoint (checkpoint.c) keeps the same entries in its model/ group; one
     * of another format version may store them otherwise. */
    long long version = PTL_CKPT_FORMAT_VERSION;
    if (H5Aexists(c->file, "format_version") > 0) {
        hid_t a = H5Aopen(c->file, "format_version", H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &version) < 0)
            version = -1;
        if (a >= 0)
            H5Aclose(a);
    }
    if (version != PTL_CKPT_FORMAT_VERSION)
        return ptl_error(PTL_EFORMAT, "weights %s: checkpoint format version %lld, this ptl "
                                      "reads version %d",
                         c->path, version, PTL_CKPT_FORMAT_VERSION);
    if (H5Aexists(c->file, "format") > 0 && H5Lexists(c->file, "model", H5P_DEFAULT) > 0 &&
        (c->root = H5Gopen2(c->file, "model", H5P_DEFAULT)) < 0)
        return ptl_error(PTL_EFORMAT, "weights %s: checkpoint without a readable model group (%s)",
                         c->path, ptl_h5_reason(why));
    size_t staging_floats = 0;
    if ((rc = read_directory(c)) != 0 || (rc = match_entries(c, m, &staging_floats)) != 0)
        return rc;

    struct ptl_load_report full;
    fill_report(c, m, &full, 8); /* "the first few" (io.h) */
    if (mode == PTL_LOAD_STRICT && (full.missing || full.unexpected)) {
        struct ptl_load_report brief;
        fill_report(c, m, &brief, NAMES_IN_MESSAGE);
        if (report) {
            *report = full;
            report->loaded = 0;
        }
        return ptl_error(PTL_EINVAL,
                         "weights %s: does not match %s (strict): missing %zu%s%s%s, "
                         "unexpected %zu%s%s%s",
                         c->path, ptl_model_arch(m), brief.missing, brief.missing ? " (" : "",
                         brief.missing_names, brief.missing ? ")" : "", brief.unexpected,
                         brief.unexpected ? " (" : "", brief.unexpected_names,
                         brief.unexpected ? ")" : "");
    }

    /* Everything is checked that can be without reading values; read them all before the
     * model changes, so a read error halfway leaves it untouched. */
    c->staging = malloc((staging_floats ? staging_floats : 1) * sizeof(float));
    if (c->staging == NULL)
        return ptl_error(PTL_ENOMEM, "weights %s: out of memory for %zu values", c->path,
                         staging_floats);
    size_t n = ptl_model_entry_count(m);
    for (size_t i = 0; i < n; i++) {
        if (c->match[i] < 0)
            continue;
        const struct file_item *it = &c->items[c->match[i]];
        if ((rc = read_values(c, it, ptl_model_entry(m, i), c->staging + it->staged)) != 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (c->match[i] < 0)
            continue;
        const struct file_item *it = &c->items[c->match[i]];
        memcpy(ptl_model_entry_data(m, i), c->staging + it->staged,
               ptl_model_entry(m, i)->count * sizeof(float));
    }
    if (report)
        *report = full;
    return PTL_OK;
}

int ptl_weights_load(struct ptl_model *m, const char *path, enum ptl_load_mode mode,
                     struct ptl_load_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (m == NULL || path == NULL)
        return ptl_error(PTL_EINVAL, "weights load: needs a model and a path");
    if (mode != PTL_LOAD_STRICT && mode != PTL_LOAD_PARTIAL && mode != PTL_LOAD_BACKBONE)
        return ptl_error(PTL_EINVAL, "weights %s: unknown load mode %d", path, (int)mode);
    struct load_ctx c = {.path = path, .file = -1, .root = -1, .backbone_only = mode == PTL_LOAD_BACKBONE};
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = load_validated(&c, m, mode, report);
    load_ctx_free(&c);
    ptl_h5_quiet_end(&q);
    return rc;
}

/* ---------------- saving ---------------- */

/* Writes entry i of m as a dataset of its shape: float32 values, int64 counters. */
static int write_entry(hid_t file, struct ptl_model *m, size_t i, const char *path)
{
    char why[PTL_H5_REASON_SIZE];
    const struct ptl_entry *e = ptl_model_entry(m, i);
    const float *v = ptl_model_entry_data(m, i);
    hsize_t dims[4];
    for (int d = 0; d < e->ndim; d++)
        dims[d] = (hsize_t)e->shape[d];
    int counter = e->kind == PTL_ENTRY_COUNTER;
    int64_t *ints = NULL;
    if (counter) {
        ints = malloc((e->count ? e->count : 1) * sizeof *ints);
        if (ints == NULL)
            return ptl_error(PTL_ENOMEM, "weights %s: %s: out of memory", path, e->name);
        for (size_t k = 0; k < e->count; k++)
            ints[k] = (int64_t)llroundf(v[k]);
    }
    int st = ptl_h5_write_dataset(file, e->name, counter ? H5T_STD_I64LE : H5T_IEEE_F32LE,
                                  counter ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, e->ndim, dims,
                                  counter ? (const void *)ints : v, why);
    free(ints);
    if (st != 0)
        return ptl_error(PTL_EIO, "weights %s: cannot write %s (%s)", path, e->name, why);
    return PTL_OK;
}

struct save_ctx {
    struct ptl_model *m;
    const char *path;
};

/* Fills the temporary file of ptl_h5_commit_atomic with every entry, in state_dict order. */
static int fill_entries(const char *tmp, void *ctx)
{
    const struct save_ctx *s = ctx;
    char why[PTL_H5_REASON_SIZE];
    /* Tracking creation order keeps the state_dict order for readers that ask for it
     * (h52torch.py, h5py); the loader matches by name and does not depend on it. */
    hid_t file = ptl_h5_create(tmp, 1, why);
    if (file < 0)
        return ptl_error(PTL_EIO, "weights %s: cannot create %s (%s)", s->path, tmp, why);
    int rc = PTL_OK;
    for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(s->m); i++)
        rc = write_entry(file, s->m, i, s->path);
    if (H5Fclose(file) < 0 && rc == 0)
        rc = ptl_error(PTL_EIO, "weights %s: cannot finish %s (%s)", s->path, tmp,
                       ptl_h5_reason(why));
    return rc;
}

int ptl_weights_save(struct ptl_model *m, const char *path)
{
    if (m == NULL || path == NULL || path[0] == '\0')
        return ptl_error(PTL_EINVAL, "weights save: needs a model and a path");
    struct save_ctx s = {m, path};
    return ptl_h5_commit_atomic("weights", path, fill_entries, &s);
}
