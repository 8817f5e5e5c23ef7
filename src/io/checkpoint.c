/* Training checkpoints (io.h, docs/checkpoint.md): one HDF5 file holding everything a run
 * needs to continue bit-identically - the model by PyTorch name, the optimizer state under the
 * same names, every rank's BConv-Cell latent states and BatchNorm statistics, the merged ones
 * for resuming on another number of ranks, the data position, the seeds and the config.
 *
 * Every dataset carries a 64-bit checksum of its values (ptl_h5_checksum, checked on every
 * load; HDF5's Fletcher-32 filter halved load speed) and the file uses the 1.10 format, which
 * checksums all metadata (attributes included); opening a checkpoint for a resume reads every
 * dataset once, so any flipped byte or truncation is found before a byte of the run changes. Files are
 * written whole or not at all (ptl_h5_commit_atomic). Rank 0 writes; the trainer gathers the
 * per-rank parts first. */
#include "ptl/io.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/h5util.h"
#include "ptl/core.h"
#include "ptl/model.h"
#include "ptl/train.h"

#define FORMAT_NAME "ptl-checkpoint"

/* ---------------- writing ---------------- */

struct writer {
    const struct ptl_ckpt_contents *c;
    const char *path;
    hid_t file;
    char why[PTL_H5_REASON_SIZE];
};

static int fail_write(struct writer *w, const char *what)
{
    return ptl_error(PTL_EIO, "checkpoint %s: cannot write %s (%s)", w->path, what, w->why);
}

static int attr(struct writer *w, hid_t loc, const char *name, hid_t type, const void *value);

/* A dataset with its checksum (shape dims[ndim]; ndim 0 is stored as one element).
 * Contiguous, so loading reads it straight into place; the "checksum" attribute
 * (ptl_h5_checksum of the values as written) is checked on every load. */
static int put(struct writer *w, hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
               int ndim, const hsize_t *dims, const void *data)
{
    hsize_t one = 1, n = 1;
    if (ndim == 0) {
        ndim = 1;
        dims = &one;
    }
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    unsigned long long sum = ptl_h5_checksum(data, (size_t)n * H5Tget_size(mem_type));
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = space >= 0 ? H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                                       H5P_DEFAULT)
                          : -1;
    int rc = ds >= 0 && (n == 0 || H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                            data) >= 0)
                 ? 0
                 : -1;
    if (rc != 0)
        ptl_h5_reason(w->why);
    if (rc == 0 && attr(w, ds, "checksum", H5T_NATIVE_ULLONG, &sum) != 0)
        rc = -2;
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0) {
        rc = -1;
        ptl_h5_reason(w->why);
    }
    ptl_h5_close_id(&space, H5Sclose);
    return rc == 0 ? PTL_OK : rc == -2 ? PTL_EIO : fail_write(w, name);
}

static int put_floats(struct writer *w, hid_t loc, const char *name, int ndim,
                      const hsize_t *dims, const float *data)
{
    return put(w, loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, data);
}

static int attr(struct writer *w, hid_t loc, const char *name, hid_t type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space >= 0 ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t st = a >= 0 ? H5Awrite(a, type, value) : -1;
    if (st < 0)
        ptl_h5_reason(w->why);
    ptl_h5_close_id(&a, H5Aclose);
    ptl_h5_close_id(&space, H5Sclose);
    return st < 0 ? fail_write(w, name) : PTL_OK;
}

static int attr_long(struct writer *w, hid_t loc, const char *name, long long v)
{
    int64_t x = v;
    return attr(w, loc, name, H5T_NATIVE_INT64, &x);
}

static int attr_u64(struct writer *w, hid_t loc, const char *name, uint64_t v)
{
    return attr(w, loc, name, H5T_NATIVE_UINT64, &v);
}

static int attr_string(struct writer *w, hid_t loc, const char *name, const char *s)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0 || H5Tset_size(type, strlen(s) + 1) < 0) {
        ptl_h5_reason(w->why);
        ptl_h5_close_id(&type, H5Tclose);
        return fail_write(w, name);
    }
    int rc = attr(w, loc, name, type, s);
    H5Tclose(type);
    return rc;
}

static hid_t group(struct writer *w, hid_t loc, const char *name)
{
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        ptl_h5_reason(w->why);
        fail_write(w, name);
    }
    return g;
}

/* Every entry of the model (the averaged view: parameters are the same on every rank). */
static int write_model(struct writer *w, hid_t g)
{
    struct ptl_model *m = w->c->model;
    int rc = PTL_OK;
    for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(m); i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        const float *v = ptl_model_entry_data(m, i);
        hsize_t dims[4];
        for (int d = 0; d < e->ndim; d++)
            dims[d] = (hsize_t)e->shape[d];
        if (e->kind == PTL_ENTRY_COUNTER) {
            int64_t x = (int64_t)llroundf(v[0]);
            rc = put(w, g, e->name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, dims, &x);
        } else {
            rc = put_floats(w, g, e->name, e->ndim, dims, v);
        }
    }
    return rc;
}

/* optimizer/<state>/<param name> for every state buffer and trainable entry. */
static int write_optimizer(struct writer *w, hid_t g)
{
    struct ptl_optimizer *o = w->c->optim;
    struct ptl_model *m = w->c->model;
    int rc = attr_long(w, g, "steps", ptl_optimizer_steps(o));
    for (int s = 0; rc == 0 && s < ptl_optimizer_state_count(o); s++) {
        const char *name;
        const float *buf = ptl_optimizer_state(o, s, &name);
        hid_t sg = group(w, g, name);
        if (sg < 0)
            return PTL_EIO;
        for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(m); i++) {
            const struct ptl_entry *e = ptl_model_entry(m, i);
            if (e->kind != PTL_ENTRY_PARAM)
                continue;
            hsize_t dims[4];
            for (int d = 0; d < e->ndim; d++)
                dims[d] = (hsize_t)e->shape[d];
            rc = put_floats(w, sg, e->name, e->ndim, dims, buf + e->offset);
        }
        H5Gclose(sg);
    }
    return rc;
}

/* latent/<who>/<state name> (slots, floats per slot) from a packed array in state order. */
static int write_latent(struct writer *w, hid_t g, const char *who, const float *packed)
{
    struct ptl_model *m = w->c->model;
    hid_t lg = group(w, g, who);
    if (lg < 0)
        return PTL_EIO;
    int rc = PTL_OK;
    size_t at = 0;
    for (int i = 0; rc == 0 && i < ptl_model_state_count(m); i++) {
        char name[160];
        size_t per;
        int slots = ptl_model_state_slots(m, i);
        if (slots == 0 || ptl_model_state_info(m, i, name, sizeof name, &per) != 0)
            continue;
        hsize_t dims[2] = {(hsize_t)slots, per};
        rc = put_floats(w, lg, name, 2, dims, packed + at);
        at += (size_t)slots * per;
    }
    H5Gclose(lg);
    return rc;
}

/* buffers/rank<r>/<name>: one rank's BatchNorm running statistics (not counters). */
static int write_rank_buffers(struct writer *w, hid_t g, const char *who, const float *buffers)
{
    struct ptl_model *m = w->c->model;
    hid_t bg = group(w, g, who);
    if (bg < 0)
        return PTL_EIO;
    int rc = PTL_OK;
    for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(m); i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        if (e->kind != PTL_ENTRY_BUFFER)
            continue;
        hsize_t dims[4];
        for (int d = 0; d < e->ndim; d++)
            dims[d] = (hsize_t)e->shape[d];
        rc = put_floats(w, bg, e->name, e->ndim, dims, buffers + e->offset);
    }
    H5Gclose(bg);
    return rc;
}

static int write_run(struct writer *w, hid_t g)
{
    const struct ptl_ckpt_run *r = &w->c->run;
    int rc = attr_long(w, g, "step", r->step);
    if (rc == 0)
        rc = attr_long(w, g, "epoch", r->epoch);
    if (rc == 0)
        rc = attr_long(w, g, "next_batch", r->next_batch);
    if (rc == 0)
        rc = attr_long(w, g, "batches_per_epoch", r->batches_per_epoch);
    if (rc == 0)
        rc = attr_long(w, g, "global_batch", r->global_batch);
    if (rc == 0)
        rc = attr_long(w, g, "world_size", r->world_size);
    if (rc == 0)
        rc = attr_u64(w, g, "seed", r->seed);
    if (rc == 0)
        rc = attr_string(w, g, "arch", r->arch);
    if (rc == 0)
        rc = attr_string(w, g, "shard", r->shard);
    if (rc == 0)
        rc = attr_string(w, g, "optimizer", r->optimizer);
    if (rc == 0) {
        const char *text = w->c->config_text ? w->c->config_text : "";
        hsize_t n = strlen(text);
        /* As bytes (uint8), with its checksum; h5py: bytes(f["run/config"][()]). */
        rc = put(w, g, "config", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &n, n ? text : "");
    }
    if (rc == 0 && w->c->rank_seeds) {
        hsize_t dims[2] = {(hsize_t)r->world_size, 2};
        rc = put(w, g, "rank_seeds", H5T_STD_U64LE, H5T_NATIVE_UINT64, 2, dims, w->c->rank_seeds);
    }
    return rc;
}

static int fill(const char *tmp, void *ctx)
{
    struct writer *w = ctx;
    const struct ptl_ckpt_contents *c = w->c;
    hid_t fapl = ptl_h5_fapl();
    hid_t own = fapl == H5P_DEFAULT ? H5Pcreate(H5P_FILE_ACCESS) : fapl;
    w->file = -1;
    if (own >= 0 && H5Pset_libver_bounds(own, H5F_LIBVER_V110, H5F_LIBVER_LATEST) >= 0)
        w->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, own);
    if (w->file < 0)
        ptl_h5_reason(w->why);
    if (own != fapl)
        ptl_h5_close_id(&own, H5Pclose);
    ptl_h5_fapl_close(fapl);
    if (w->file < 0)
        return ptl_error(PTL_EIO, "checkpoint %s: cannot create %s (%s)", w->path, tmp, w->why);
    int rc = attr_string(w, w->file, "format", FORMAT_NAME);
    if (rc == 0)
        rc = attr_long(w, w->file, "format_version", PTL_CKPT_FORMAT_VERSION);
    if (rc == 0)
        rc = attr_string(w, w->file, "ptl_version", ptl_version());
    if (rc == 0)
        rc = attr_long(w, w->file, "created", (long long)time(NULL));
    const char *groups[] = {"run", "model", "optimizer", "latent", "buffers"};
    for (int k = 0; rc == 0 && k < 5; k++) {
        hid_t g = group(w, w->file, groups[k]);
        if (g < 0) {
            rc = PTL_EIO;
            break;
        }
        if (k == 0)
            rc = write_run(w, g);
        else if (k == 1)
            rc = write_model(w, g);
        else if (k == 2)
            rc = write_optimizer(w, g);
        else if (k == 3) {
            if (c->latent_merged)
                rc = write_latent(w, g, "merged", c->latent_merged);
            for (int r = 0; rc == 0 && c->latent_ranks && r < c->run.world_size; r++) {
                char who[32];
                snprintf(who, sizeof who, "rank%d", r);
                rc = write_latent(w, g, who, c->latent_ranks + (size_t)r * c->latent_floats);
            }
        } else {
            size_t nb = ptl_model_buffer_floats(c->model);
            for (int r = 0; rc == 0 && c->buffers_ranks && r < c->run.world_size; r++) {
                char who[32];
                snprintf(who, sizeof who, "rank%d", r);
                rc = write_rank_buffers(w, g, who, c->buffers_ranks + (size_t)r * nb);
            }
        }
        H5Gclose(g);
    }
    if (H5Fclose(w->file) < 0 && rc == 0)
        rc = ptl_error(PTL_EIO, "checkpoint %s: cannot finish %s (%s)", w->path, tmp,
                       ptl_h5_reason(w->why));
    return rc;
}

int ptl_ckpt_save(const char *path, const struct ptl_ckpt_contents *c)
{
    if (path == NULL || c == NULL || c->model == NULL || c->optim == NULL)
        return ptl_error(PTL_EINVAL, "checkpoint save: needs a path, a model and an optimizer");
    struct writer w = {.c = c, .path = path, .file = -1};
    return ptl_h5_commit_atomic("checkpoint", path, fill, &w);
}

/* ---------------- reading ---------------- */

struct ptl_ckpt {
    char path[4096];
    hid_t file;
    struct ptl_ckpt_run run;
    char *config_text;
    long long format_version;
    int has_rank_buffers;
};

static int read_attr(hid_t loc, const char *name, hid_t type, void *out)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    herr_t st = a >= 0 ? H5Aread(a, type, out) : -1;
    ptl_h5_close_id(&a, H5Aclose);
    return st < 0 ? -1 : 0;
}

static int read_attr_string(hid_t loc, const char *name, char *out, size_t size)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    size_t n = ft >= 0 ? H5Tget_size(ft) : 0;
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = -1;
    char *buf = n ? malloc(n + 1) : NULL;
    if (buf && mt >= 0 && H5Tset_size(mt, n) >= 0 && H5Aread(a, mt, buf) >= 0) {
        buf[n] = '\0';
        snprintf(out, size, "%s", buf);
        rc = 0;
    }
    free(buf);
    ptl_h5_close_id(&mt, H5Tclose);
    ptl_h5_close_id(&ft, H5Tclose);
    ptl_h5_close_id(&a, H5Aclose);
    return rc;
}

/* Every object under root, recursively (the 1.10 and 1.12 APIs differ). */
#if H5_VERSION_GE(1, 12, 0)
typedef H5O_info2_t visit_info;
static herr_t visit(hid_t root, H5O_iterate2_t fn, void *ctx)
{
    return H5Ovisit3(root, H5_INDEX_NAME, H5_ITER_INC, fn, ctx, H5O_INFO_BASIC);
}
#else
typedef H5O_info_t visit_info;
static herr_t visit(hid_t root, H5O_iterate_t fn, void *ctx)
{
    return H5Ovisit2(root, H5_INDEX_NAME, H5_ITER_INC, fn, ctx, H5O_INFO_BASIC);
}
#endif

/* Reads every dataset once and checks its checksum. */
struct verify_ctx {
    const char *path;
    int rc;
    void *buf;
    size_t cap;
    long datasets;
};

static herr_t verify_one(hid_t root, const char *name, const visit_info *info, void *data)
{
    struct verify_ctx *v = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    char why[PTL_H5_REASON_SIZE] = "";
    hid_t ds = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    hid_t type = ds >= 0 ? H5Dget_type(ds) : -1;
    hid_t native = type >= 0 ? H5Tget_native_type(type, H5T_DIR_ASCEND) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t size = native >= 0 ? H5Tget_size(native) : 0;
    int has_sum = ds >= 0 && H5Aexists(ds, "checksum") > 0;
    ptl_h5_close_id(&ds, H5Dclose);
    int ok = n >= 0 && size > 0;
    if (ok && (size_t)n * size > v->cap) {
        void *p = realloc(v->buf, (size_t)n * size);
        if (p == NULL) {
            v->rc = ptl_error(PTL_ENOMEM, "checkpoint %s: out of memory reading %s", v->path,
                              name);
            ok = 0;
        } else {
            v->buf = p;
            v->cap = (size_t)n * size;
        }
    }
    int st = ok ? ptl_h5_read_checked(root, name, native, v->buf, (size_t)n * size, why) : -1;
    if (ok && st == 0 && !has_sum) {
        snprintf(why, sizeof why, "no checksum");
        st = -2;
    }
    if (st != 0 && v->rc == 0) {
        if (st == -1 && why[0] == '\0')
            ptl_h5_reason(why);
        v->rc = ptl_error(PTL_EFORMAT, "checkpoint %s: dataset %s is damaged (%s)", v->path, name,
                          why[0] ? why : "unreadable");
    }
    ptl_h5_close_id(&native, H5Tclose);
    ptl_h5_close_id(&type, H5Tclose);
    ptl_h5_close_id(&space, H5Sclose);
    v->datasets++;
    return v->rc == 0 ? 0 : 1;
}

static int open_checked(struct ptl_ckpt *c, int verify)
{
    char why[PTL_H5_REASON_SIZE] = "";
    struct stat st;
    if (stat(c->path, &st) != 0 || !S_ISREG(st.st_mode))
        return ptl_error(PTL_EIO, "checkpoint %s: no such file", c->path);
    if (st.st_size == 0)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: empty file", c->path);
    htri_t is_h5 = ptl_h5_is_hdf5(c->path);
    if (is_h5 <= 0)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: %s", c->path,
                         is_h5 == 0 ? "not an HDF5 file" : "truncated or corrupt");
    hid_t fapl = ptl_h5_fapl();
    c->file = H5Fopen(c->path, H5F_ACC_RDONLY, fapl);
    if (c->file < 0)
        ptl_h5_reason(why);
    ptl_h5_fapl_close(fapl);
    if (c->file < 0)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: truncated or corrupt (%s)", c->path, why);
    char format[64] = "";
    if (read_attr_string(c->file, "format", format, sizeof format) != 0 ||
        strcmp(format, FORMAT_NAME) != 0)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: not a ptl checkpoint (no format '%s')",
                         c->path, FORMAT_NAME);
    if (read_attr(c->file, "format_version", H5T_NATIVE_LLONG, &c->format_version) != 0)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: no format_version", c->path);
    if (c->format_version != PTL_CKPT_FORMAT_VERSION)
        return ptl_error(PTL_EFORMAT,
                         "checkpoint %s: format version %lld, this ptl reads version %d",
                         c->path, c->format_version, PTL_CKPT_FORMAT_VERSION);
    const char *groups[] = {"run", "model", "optimizer", "latent", "buffers"};
    for (int k = 0; k < 5; k++)
        if (H5Lexists(c->file, groups[k], H5P_DEFAULT) <= 0)
            return ptl_error(PTL_EFORMAT, "checkpoint %s: group /%s is missing", c->path,
                             groups[k]);
    hid_t run = H5Gopen2(c->file, "run", H5P_DEFAULT);
    long long v[6];
    const char *keys[] = {"step", "epoch", "next_batch", "batches_per_epoch", "global_batch",
                          "world_size"};
    int rc = run < 0 ? -1 : 0;
    for (int k = 0; rc == 0 && k < 6; k++)
        if (read_attr(run, keys[k], H5T_NATIVE_LLONG, &v[k]) != 0)
            rc = ptl_error(PTL_EFORMAT, "checkpoint %s: run/%s is missing", c->path, keys[k]);
    if (rc == 0 && (read_attr(run, "seed", H5T_NATIVE_UINT64, &c->run.seed) != 0 ||
                    read_attr_string(run, "arch", c->run.arch, sizeof c->run.arch) != 0 ||
                    read_attr_string(run, "shard", c->run.shard, sizeof c->run.shard) != 0 ||
                    read_attr_string(run, "optimizer", c->run.optimizer,
                                     sizeof c->run.optimizer) != 0))
        rc = ptl_error(PTL_EFORMAT, "checkpoint %s: run attributes are missing", c->path);
    if (rc == 0) {
        c->run.step = v[0];
        c->run.epoch = v[1];
        c->run.next_batch = v[2];
        c->run.batches_per_epoch = v[3];
        c->run.global_batch = (int)v[4];
        c->run.world_size = (int)v[5];
        if (c->run.world_size < 1 || c->run.step < 0 || c->run.global_batch < 1)
            rc = ptl_error(PTL_EFORMAT, "checkpoint %s: run position is invalid", c->path);
    }
    ptl_h5_close_id(&run, H5Gclose);
    if (rc != 0)
        return rc;
    /* Every dataset, once: checksums and truncation. */
    struct verify_ctx vc = {.path = c->path};
    herr_t walked = verify ? visit(c->file, verify_one, &vc) : 0;
    if (walked < 0 && vc.rc == 0)
        vc.rc = ptl_error(PTL_EFORMAT, "checkpoint %s: truncated or corrupt (%s)", c->path,
                          ptl_h5_reason(why));
    if (verify && vc.rc == 0 && vc.datasets == 0)
        vc.rc = ptl_error(PTL_EFORMAT, "checkpoint %s: holds no datasets", c->path);
    free(vc.buf);
    if (vc.rc != 0)
        return vc.rc;
    /* The config text. */
    hid_t ds = H5Lexists(c->file, "run/config", H5P_DEFAULT) > 0
                   ? H5Dopen2(c->file, "run/config", H5P_DEFAULT)
                   : -1;
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    ptl_h5_close_id(&space, H5Sclose);
    ptl_h5_close_id(&ds, H5Dclose);
    c->config_text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (c->config_text &&
        ptl_h5_read_checked(c->file, "run/config", H5T_NATIVE_UINT8, c->config_text, (size_t)n,
                            why) != 0)
        n = -1;
    if (n < 0 || c->config_text == NULL)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: run/config is missing", c->path);
    c->config_text[n] = '\0';
    c->has_rank_buffers = H5Lexists(c->file, "buffers/rank0", H5P_DEFAULT) > 0;
    return PTL_OK;
}

int ptl_ckpt_open(struct ptl_ckpt **out, const char *path, int verify)
{
    *out = NULL;
    struct ptl_ckpt *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ptl_error(PTL_ENOMEM, "checkpoint %s: out of memory", path);
    if ((size_t)snprintf(c->path, sizeof c->path, "%s", path) >= sizeof c->path) {
        free(c);
        return ptl_error(PTL_EINVAL, "checkpoint %s: path too long", path);
    }
    c->file = -1;
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = open_checked(c, verify);
    ptl_h5_quiet_end(&q);
    if (rc != 0) {
        ptl_ckpt_close(c);
        return rc;
    }
    *out = c;
    return PTL_OK;
}

void ptl_ckpt_close(struct ptl_ckpt *c)
{
    if (c == NULL)
        return;
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    ptl_h5_close_id(&c->file, H5Fclose);
    ptl_h5_quiet_end(&q);
    free(c->config_text);
    free(c);
}

const struct ptl_ckpt_run *ptl_ckpt_run_info(const struct ptl_ckpt *c)
{
    return &c->run;
}

const char *ptl_ckpt_config_text(const struct ptl_ckpt *c)
{
    return c->config_text;
}

const char *ptl_ckpt_path(const struct ptl_ckpt *c)
{
    return c->path;
}

/* Reads float dataset name (exactly count values) into dst. */
static int read_exact(struct ptl_ckpt *c, const char *name, float *dst, size_t count)
{
    hid_t ds = H5Lexists(c->file, name, H5P_DEFAULT) > 0 ? H5Dopen2(c->file, name, H5P_DEFAULT)
                                                          : -1;
    if (ds < 0)
        return ptl_error(PTL_EFORMAT, "checkpoint %s: %s is missing", c->path, name);
    hid_t space = H5Dget_space(ds);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int rc = PTL_OK;
    if (n != (hssize_t)count)
        rc = ptl_error(PTL_EFORMAT, "checkpoint %s: %s holds %lld values, the model needs %zu",
                       c->path, name, (long long)n, count);
    ptl_h5_close_id(&space, H5Sclose);
    H5Dclose(ds);
    char why[PTL_H5_REASON_SIZE] = "";
    if (rc == 0 &&
        ptl_h5_read_checked(c->file, name, H5T_NATIVE_FLOAT, dst, count * sizeof *dst, why) != 0)
        rc = ptl_error(PTL_EFORMAT, "checkpoint %s: dataset %s is damaged (%s)", c->path, name,
                       why);
    return rc;
}

int ptl_ckpt_load_model(struct ptl_ckpt *c, struct ptl_model *m)
{
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = PTL_OK;
    for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(m); i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        float *dst = ptl_model_entry_data(m, i);
        char name[512], why[PTL_H5_REASON_SIZE] = "";
        snprintf(name, sizeof name, "model/%s", e->name);
        if (e->kind != PTL_ENTRY_COUNTER) {
            rc = read_exact(c, name, dst, e->count);
            continue;
        }
        int64_t v = 0;
        if (H5Lexists(c->file, name, H5P_DEFAULT) <= 0)
            rc = ptl_error(PTL_EFORMAT, "checkpoint %s: %s is missing", c->path, name);
        else if (ptl_h5_read_checked(c->file, name, H5T_NATIVE_INT64, &v, sizeof v, why) != 0)
            rc = ptl_error(PTL_EFORMAT, "checkpoint %s: dataset %s is damaged (%s)", c->path,
                           name, why);
        else
            dst[0] = (float)v;
    }
    ptl_h5_quiet_end(&q);
    return rc;
}

int ptl_ckpt_load_optimizer(struct ptl_ckpt *c, struct ptl_optimizer *o, struct ptl_model *m)
{
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = PTL_OK;
    hid_t g = H5Gopen2(c->file, "optimizer", H5P_DEFAULT);
    long long steps = 0;
    if (g < 0 || read_attr(g, "steps", H5T_NATIVE_LLONG, &steps) != 0)
        rc = ptl_error(PTL_EFORMAT, "checkpoint %s: optimizer/steps is missing", c->path);
    ptl_h5_close_id(&g, H5Gclose);
    for (int s = 0; rc == 0 && s < ptl_optimizer_state_count(o); s++) {
        const char *sname;
        float *buf = ptl_optimizer_state(o, s, &sname);
        for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(m); i++) {
            const struct ptl_entry *e = ptl_model_entry(m, i);
            if (e->kind != PTL_ENTRY_PARAM)
                continue;
            char name[512];
            snprintf(name, sizeof name, "optimizer/%s/%s", sname, e->name);
            rc = read_exact(c, name, buf + e->offset, e->count);
        }
    }
    if (rc == 0)
        ptl_optimizer_set_steps(o, (long)steps);
    ptl_h5_quiet_end(&q);
    return rc;
}

int ptl_ckpt_load_latent(struct ptl_ckpt *c, struct ptl_model *m, int rank)
{
    char who[32];
    if (rank < 0)
        snprintf(who, sizeof who, "merged");
    else
        snprintf(who, sizeof who, "rank%d", rank);
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = PTL_OK;
    for (int i = 0; rc == 0 && i < ptl_model_state_count(m); i++) {
        char sname[160], name[256];
        size_t per;
        if (ptl_model_state_info(m, i, sname, sizeof sname, &per) != 0)
            continue;
        snprintf(name, sizeof name, "latent/%s/%s", who, sname);
        if (H5Lexists(c->file, "latent", H5P_DEFAULT) > 0 &&
            H5Lexists(c->file, name, H5P_DEFAULT) <= 0)
            continue; /* saved before the first training forward: no slots yet */
        hid_t ds = H5Dopen2(c->file, name, H5P_DEFAULT);
        hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
        hsize_t dims[2] = {0, 0};
        if (space < 0 || H5Sget_simple_extent_ndims(space) != 2 ||
            H5Sget_simple_extent_dims(space, dims, NULL) < 0 || dims[1] != per)
            rc = ptl_error(PTL_EFORMAT,
                           "checkpoint %s: %s has another shape than the model's state", c->path,
                           name);
        ptl_h5_close_id(&space, H5Sclose);
        ptl_h5_close_id(&ds, H5Dclose);
        float *dst = rc == 0 ? ptl_model_state_data(m, i, (int)dims[0]) : NULL;
        if (rc == 0 && dst == NULL)
            rc = PTL_ENOMEM;
        if (rc == 0)
            rc = read_exact(c, name, dst, (size_t)dims[0] * per);
    }
    ptl_h5_quiet_end(&q);
    return rc;
}

int ptl_ckpt_load_buffers(struct ptl_ckpt *c, struct ptl_model *m, int rank)
{
    if (!c->has_rank_buffers || rank < 0)
        return PTL_OK;
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = PTL_OK;
    float *b = ptl_model_buffers(m);
    for (size_t i = 0; rc == 0 && i < ptl_model_entry_count(m); i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        if (e->kind != PTL_ENTRY_BUFFER)
            continue;
        char name[512];
        snprintf(name, sizeof name, "buffers/rank%d/%s", rank, e->name);
        rc = read_exact(c, name, b + e->offset, e->count);
    }
    ptl_h5_quiet_end(&q);
    return rc;
}

/* ---------------- export and info ---------------- */

struct copy_ctx {
    hid_t src, dst;
    int rc;
    const char *path;
};

static herr_t copy_one(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    struct copy_ctx *x = data;
    if (H5Ocopy(x->src, name, x->dst, name, H5P_DEFAULT, H5P_DEFAULT) < 0) {
        char why[PTL_H5_REASON_SIZE];
        x->rc = ptl_error(PTL_EIO, "checkpoint export %s: cannot copy %s (%s)", x->path, name,
                          ptl_h5_reason(why));
        return 1;
    }
    return 0;
}

struct export_ctx {
    struct ptl_ckpt *c;
    const char *out;
};

static int fill_export(const char *tmp, void *ctx)
{
    struct export_ctx *e = ctx;
    char why[PTL_H5_REASON_SIZE];
    hid_t dst = ptl_h5_create(tmp, 1, why);
    if (dst < 0)
        return ptl_error(PTL_EIO, "checkpoint export %s: cannot create %s (%s)", e->out, tmp, why);
    hid_t src = H5Gopen2(e->c->file, "model", H5P_DEFAULT);
    struct copy_ctx x = {src, dst, 0, e->out};
    /* In creation order: the state_dict order the checkpoint was written in. */
    if (src < 0 ||
        H5Literate(src, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_one, &x) < 0) {
        if (x.rc == 0)
            x.rc = ptl_error(PTL_EIO, "checkpoint export %s: cannot read the model (%s)",
                             e->c->path, ptl_h5_reason(why));
    }
    ptl_h5_close_id(&src, H5Gclose);
    if (H5Fclose(dst) < 0 && x.rc == 0)
        x.rc = ptl_error(PTL_EIO, "checkpoint export %s: cannot finish (%s)", e->out,
                         ptl_h5_reason(why));
    return x.rc;
}

int ptl_ckpt_export(const char *ckpt, const char *out)
{
    struct ptl_ckpt *c;
    int rc = ptl_ckpt_open(&c, ckpt, 1);
    if (rc != 0)
        return rc;
    struct export_ctx e = {c, out};
    rc = ptl_h5_commit_atomic("weights", out, fill_export, &e);
    ptl_ckpt_close(c);
    return rc;
}

struct info_ctx {
    FILE *out;
    const char *group;
    long count;
    double floats;
};

static herr_t count_one(hid_t root, const char *name, const visit_info *info, void *data)
{
    struct info_ctx *x = data;
    if (info->type != H5O_TYPE_DATASET || strncmp(name, x->group, strlen(x->group)) != 0)
        return 0;
    hid_t ds = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : 0;
    ptl_h5_close_id(&space, H5Sclose);
    ptl_h5_close_id(&ds, H5Dclose);
    x->count++;
    x->floats += (double)n;
    return 0;
}

int ptl_ckpt_print_info(const char *path, FILE *out)
{
    struct ptl_ckpt *c;
    int rc = ptl_ckpt_open(&c, path, 1);
    if (rc != 0)
        return rc;
    const struct ptl_ckpt_run *r = &c->run;
    fprintf(out, "checkpoint %s: format %s version %lld, verified (every dataset's checksum)\n",
            path, FORMAT_NAME, c->format_version);
    fprintf(out, "  run: arch %s, step %ld, epoch %ld, next batch %ld of %ld, global batch %d, "
                 "%d rank%s, shard %s, seed %llu, optimizer %s\n",
            r->arch, r->step, r->epoch, r->next_batch, r->batches_per_epoch, r->global_batch,
            r->world_size, r->world_size == 1 ? "" : "s", r->shard,
            (unsigned long long)r->seed, r->optimizer);
    const char *groups[] = {"model/", "optimizer/", "latent/merged/", "latent/rank", "buffers/"};
    const char *what[] = {"model entries", "optimizer state", "merged latent states",
                          "per-rank latent states", "per-rank BatchNorm statistics"};
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    for (int k = 0; k < 5; k++) {
        struct info_ctx x = {out, groups[k], 0, 0};
        visit(c->file, count_one, &x);
        fprintf(out, "  %-30s %6ld datasets %12.0f values\n", what[k], x.count, x.floats);
    }
    ptl_h5_quiet_end(&q);
    size_t lines = 0;
    for (const char *p = c->config_text; *p; p++)
        lines += *p == '\n';
    fprintf(out, "  config: %zu lines (h5dump -d run/config, or ptl ckpt info --config)\n", lines);
    ptl_ckpt_close(c);
    return PTL_OK;
}
