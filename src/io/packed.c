/* Packed HDF5 datasets (docs/data.md): the writer behind ptl_data_pack and the reader for
 * format "packed".
 *
 * Layout: per split a group /<split>/ with `images` uint8 (N, C, H, W) chunked by a few samples,
 * `labels` int32 (N), and when the source has them `cameras` int32 (N) and `paths` (N,
 * variable-length UTF-8 strings); group attribute `classes` (and `skipped`); root attributes
 * `ptl_packed_version` (1), `source_format`, `source_path`, `splits` (comma-separated) and
 * `classes` (one per split). Image, label and camera chunks carry Fletcher-32 checksums, so a
 * corrupted chunk is an error, never silently wrong pixels or labels.
 *
 * The reader keeps the metadata in memory and reads images by hyperslab on demand through a
 * one-chunk cache (sequential reads touch each chunk once); nothing else is loaded. HDF5 is not
 * thread-safe in Debian's build, so every HDF5 call here holds one process-wide lock. HDF5's
 * error printing is off during our calls; failures become one line naming the file.
 */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"
#include "io/h5util.h"
#include "ptl/core.h"

/* Target bytes of one image chunk, and the most samples in one: small enough that a random
 * sample costs little more than itself, large enough for cheap sequential reads (measured in
 * docs/data.md). */
#define CHUNK_BYTES (32u << 10)
#define CHUNK_MAX_SAMPLES 64
/* Samples per write while packing (rounded to whole chunks). */
#define PACK_BATCH_BYTES (16u << 20)
/* Largest image side and channel count accepted from a file. */
#define MAX_SIDE 65536
#define MAX_CHANNELS 4
/* Largest block the reader caches (a file with bigger chunks is read in smaller blocks). */
#define CACHE_MAX_BYTES (32u << 20)

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

/* HDF5 under our lock and with its printing off. */
struct h5_section {
    struct ptl_h5_quiet q;
};

static void h5_enter(struct h5_section *s)
{
    pthread_mutex_lock(&h5_lock);
    ptl_h5_quiet_begin(&s->q);
}

static void h5_leave(const struct h5_section *s)
{
    ptl_h5_quiet_end(&s->q);
    pthread_mutex_unlock(&h5_lock);
}

static int samples_per_chunk(size_t sample)
{
    size_t k = CHUNK_BYTES / sample;
    if (k < 1)
        k = 1;
    if (k > CHUNK_MAX_SAMPLES)
        k = CHUNK_MAX_SAMPLES;
    return (int)k;
}

static hid_t utf8_vlen_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0))
        ptl_h5_close_id(&t, H5Tclose);
    return t;
}

/* ================= writing ================= */

struct ptl_packed_writer {
    hid_t file;
    char path[4096];
    char source_format[32];
    char source_path[4096];
    int nsplits;
    char splits[PTL_PACKED_MAX_SPLITS][32];
    int classes[PTL_PACKED_MAX_SPLITS];
};

static int write_error(const struct ptl_packed_writer *w, const char *what)
{
    char why[PTL_H5_REASON_SIZE];
    return ptl_error(PTL_EIO, "%s: cannot write %s (%s)", w->path, what, ptl_h5_reason(why));
}

int ptl_packed_create(struct ptl_packed_writer **out, const char *path, const char *source_format,
                      const char *source_path)
{
    *out = NULL;
    struct ptl_packed_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->source_format, sizeof w->source_format, "%s", source_format);
    snprintf(w->source_path, sizeof w->source_path, "%s", source_path);
    char why[PTL_H5_REASON_SIZE] = "";
    struct h5_section s;
    h5_enter(&s);
    /* The 1.10 file format checksums all metadata (superblock, object headers, chunk indexes):
     * a damaged file is then an error rather than a crash inside HDF5, which follows
     * corrupted addresses of the older format blindly. Readers need HDF5 1.10 or later. */
    hid_t fapl = ptl_h5_fapl();
    hid_t own = fapl == H5P_DEFAULT ? H5Pcreate(H5P_FILE_ACCESS) : fapl;
    if (own >= 0 && H5Pset_libver_bounds(own, H5F_LIBVER_V110, H5F_LIBVER_LATEST) >= 0)
        w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, own);
    else
        w->file = -1;
    if (w->file < 0)
        ptl_h5_reason(why);
    if (own != fapl)
        ptl_h5_close_id(&own, H5Pclose);
    ptl_h5_fapl_close(fapl);
    h5_leave(&s);
    if (w->file < 0) {
        free(w);
        return ptl_error(PTL_EIO, "%s: cannot create (%s)", path, why);
    }
    *out = w;
    return PTL_OK;
}

/* A chunked dataset of n (x inner dims) elements, its first dimension extensible so that
 * samples dropped while packing can be cut off at the end; checksum adds Fletcher-32 (which
 * HDF5 has only for fixed-size types, so not for the paths). */
static hid_t create_chunked(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims,
                            const hsize_t *chunk, int checksum)
{
    hsize_t maxdims[4];
    for (int i = 0; i < ndim; i++)
        maxdims[i] = i == 0 ? H5S_UNLIMITED : dims[i];
    hid_t space = H5Screate_simple(ndim, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, ndim, chunk) >= 0 &&
        (!checksum || H5Pset_fletcher32(dcpl) >= 0))
        d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ptl_h5_close_id(&dcpl, H5Pclose);
    ptl_h5_close_id(&space, H5Sclose);
    return d;
}

/* Writes rows [first, first + count) of a dataset whose first dimension is the sample. */
static herr_t write_rows(hid_t d, hid_t mem_type, int ndim, const hsize_t *dims, hsize_t first,
                         hsize_t count, const void *data)
{
    hsize_t start[4] = {first, 0, 0, 0}, cnt[4];
    for (int i = 0; i < ndim; i++)
        cnt[i] = i == 0 ? count : dims[i];
    hid_t fspace = H5Dget_space(d);
    hid_t mspace = H5Screate_simple(ndim, cnt, NULL);
    herr_t st = -1;
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0)
        st = H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, data);
    ptl_h5_close_id(&mspace, H5Sclose);
    ptl_h5_close_id(&fspace, H5Sclose);
    return st;
}

static herr_t write_int_attr(hid_t loc, const char *name, int ndim, hsize_t n, const int *v)
{
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = space < 0 ? -1 : H5Acreate2(loc, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT, v);
    ptl_h5_close_id(&a, H5Aclose);
    ptl_h5_close_id(&space, H5Sclose);
    return st;
}

static herr_t write_str_attr(hid_t loc, const char *name, const char *value)
{
    hid_t t = utf8_vlen_type();
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = t < 0 || space < 0 ? -1 : H5Acreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, t, &value);
    ptl_h5_close_id(&a, H5Aclose);
    ptl_h5_close_id(&space, H5Sclose);
    ptl_h5_close_id(&t, H5Tclose);
    return st;
}

/* The per-sample metadata of the kept samples. */
static int write_meta(struct ptl_packed_writer *w, hid_t g, const struct ptl_dataset *ds,
                      const int32_t *kept, int n)
{
    hsize_t dims[1] = {(hsize_t)n};
    hsize_t chunk[1] = {(hsize_t)(n < 65536 ? n : 65536)};
    int32_t *v = malloc((size_t)n * sizeof *v);
    if (v == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", w->path);
    int rc = PTL_OK;
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        const int32_t *src = pass == 0 ? ds->labels : ds->cameras;
        const char *name = pass == 0 ? "labels" : "cameras";
        if (src == NULL)
            continue;
        for (int i = 0; i < n; i++)
            v[i] = src[kept[i]];
        hid_t d = create_chunked(g, name, H5T_STD_I32LE, 1, dims, chunk, 1);
        herr_t st = d < 0 ? -1 : write_rows(d, H5T_NATIVE_INT32, 1, dims, 0, (hsize_t)n, v);
        if (st < 0)
            rc = write_error(w, name);
        ptl_h5_close_id(&d, H5Dclose);
    }
    free(v);
    if (rc != 0 || ds->paths == NULL)
        return rc;
    const char **p = malloc((size_t)n * sizeof *p);
    hid_t t = utf8_vlen_type();
    if (p == NULL || t < 0) {
        free(p);
        ptl_h5_close_id(&t, H5Tclose);
        return ptl_error(PTL_ENOMEM, "%s: out of memory", w->path);
    }
    for (int i = 0; i < n; i++)
        p[i] = ds->paths[kept[i]] ? ds->paths[kept[i]] : "";
    hid_t d = create_chunked(g, "paths", t, 1, dims, chunk, 0);
    if (d < 0 || write_rows(d, t, 1, dims, 0, (hsize_t)n, p) < 0)
        rc = write_error(w, "paths");
    ptl_h5_close_id(&d, H5Dclose);
    ptl_h5_close_id(&t, H5Tclose);
    free(p);
    return rc;
}

/* Reads samples [first, first + count) into buf; with skip_bad, per sample after a failure,
 * keeping the good ones. Returns the number kept (their indices appended to kept) or < 0. */
static int read_batch(struct ptl_dataset *ds, int first, int count, int skip_bad, uint8_t *buf,
                      int32_t *idx, int32_t *kept, int *nkept, int *dropped)
{
    for (int i = 0; i < count; i++)
        idx[i] = first + i;
    int rc = ptl_dataset_read(ds, idx, count, buf);
    if (rc == 0) {
        memcpy(kept + *nkept, idx, (size_t)count * sizeof *idx);
        *nkept += count;
        return count;
    }
    if (!skip_bad)
        return rc;
    size_t sample = (size_t)ds->c * ds->h * ds->w;
    int got = 0;
    for (int i = 0; i < count; i++) {
        if (ptl_dataset_read(ds, &idx[i], 1, buf + (size_t)got * sample) != 0) {
            fprintf(stderr, "ptl: %s: skipped\n", ptl_error_message());
            (*dropped)++;
            continue;
        }
        kept[(*nkept)++] = idx[i];
        got++;
    }
    return got;
}

static int add_split(struct ptl_packed_writer *w, hid_t g, struct ptl_dataset *ds, int skip_bad,
                     int *written, int *dropped)
{
    size_t sample = (size_t)ds->c * ds->h * ds->w;
    int cs = samples_per_chunk(sample);
    int batch = cs * (int)(PACK_BATCH_BYTES / sample / (size_t)cs > 0
                               ? PACK_BATCH_BYTES / sample / (size_t)cs
                               : 1);
    if (batch > ds->n)
        batch = ds->n;
    hsize_t dims[4] = {(hsize_t)ds->n, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
    hsize_t chunk[4] = {(hsize_t)cs, dims[1], dims[2], dims[3]};
    uint8_t *buf = malloc((size_t)batch * sample);
    int32_t *idx = malloc((size_t)batch * sizeof *idx);
    int32_t *kept = malloc((size_t)ds->n * sizeof *kept);
    int rc = PTL_OK, nkept = 0;
    struct h5_section s;
    if (buf == NULL || idx == NULL || kept == NULL) {
        rc = ptl_error(PTL_ENOMEM, "%s: out of memory for a batch of %d samples", w->path, batch);
        goto done;
    }
    h5_enter(&s);
    hid_t d = create_chunked(g, "images", H5T_STD_U8LE, 4, dims, chunk, 1);
    if (d < 0)
        rc = write_error(w, "images");
    h5_leave(&s);
    for (int first = 0; rc == 0 && first < ds->n; first += batch) {
        int count = ds->n - first < batch ? ds->n - first : batch;
        int pos = nkept;
        /* Reading calls the source's reader, which may be HDF5 (repacking): not under the lock. */
        int got = read_batch(ds, first, count, skip_bad, buf, idx, kept, &nkept, dropped);
        if (got < 0) {
            rc = got;
            break;
        }
        h5_enter(&s);
        if (got > 0 && write_rows(d, H5T_NATIVE_UCHAR, 4, dims, (hsize_t)pos, (hsize_t)got, buf) < 0)
            rc = write_error(w, "images");
        h5_leave(&s);
    }
    h5_enter(&s);
    if (rc == 0 && nkept == 0)
        rc = ptl_error(PTL_EFORMAT, "%s: split '%s': every sample was skipped", ds->root,
                       ds->split);
    if (rc == 0 && nkept < ds->n) {
        dims[0] = (hsize_t)nkept;
        if (H5Dset_extent(d, dims) < 0)
            rc = write_error(w, "images");
    }
    if (d >= 0 && H5Dclose(d) < 0 && rc == 0)
        rc = write_error(w, "images");
    if (rc == 0)
        rc = write_meta(w, g, ds, kept, nkept);
    int skipped = ds->skipped + *dropped;
    if (rc == 0 && (write_int_attr(g, "classes", 0, 1, &ds->classes) < 0 ||
                    write_int_attr(g, "skipped", 0, 1, &skipped) < 0))
        rc = write_error(w, "split attributes");
    h5_leave(&s);
    *written = nkept;
done:
    free(buf);
    free(idx);
    free(kept);
    return rc;
}

int ptl_packed_add_split(struct ptl_packed_writer *w, struct ptl_dataset *ds, int skip_bad,
                         FILE *log)
{
    if (w->nsplits >= PTL_PACKED_MAX_SPLITS)
        return ptl_error(PTL_EINVAL, "%s: more than %d splits", w->path, PTL_PACKED_MAX_SPLITS);
    if (strchr(ds->split, ',') || strchr(ds->split, '/') || ds->split[0] == '.')
        return ptl_error(PTL_EINVAL, "%s: split name '%s' cannot be a group name", w->path,
                         ds->split);
    struct h5_section s;
    h5_enter(&s);
    hid_t g = H5Gcreate2(w->file, ds->split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = g < 0 ? write_error(w, ds->split) : PTL_OK;
    h5_leave(&s);
    int written = 0, dropped = 0;
    if (rc == 0)
        rc = add_split(w, g, ds, skip_bad, &written, &dropped);
    h5_enter(&s);
    if (g >= 0 && H5Gclose(g) < 0 && rc == 0)
        rc = write_error(w, ds->split);
    h5_leave(&s);
    if (rc != 0)
        return rc;
    snprintf(w->splits[w->nsplits], sizeof w->splits[0], "%s", ds->split);
    w->classes[w->nsplits++] = ds->classes;
    if (log) {
        fprintf(log, "%s: %d samples of %dx%dx%d, %d classes", ds->split, written, ds->c, ds->h,
                ds->w, ds->classes);
        if (ds->skipped + dropped)
            fprintf(log, ", %d skipped", ds->skipped + dropped);
        fputc('\n', log);
        fflush(log);
    }
    return PTL_OK;
}

int ptl_packed_close(struct ptl_packed_writer *w, int commit)
{
    int rc = PTL_OK;
    struct h5_section s;
    h5_enter(&s);
    if (commit) {
        char list[PTL_PACKED_MAX_SPLITS * 33] = "";
        for (int i = 0; i < w->nsplits; i++) {
            strcat(list, i ? "," : "");
            strcat(list, w->splits[i]);
        }
        int version = PTL_PACKED_VERSION;
        if (write_int_attr(w->file, "ptl_packed_version", 0, 1, &version) < 0 ||
            write_str_attr(w->file, "source_format", w->source_format) < 0 ||
            write_str_attr(w->file, "source_path", w->source_path) < 0 ||
            write_str_attr(w->file, "splits", list) < 0 ||
            (w->nsplits > 0 &&
             write_int_attr(w->file, "classes", 1, (hsize_t)w->nsplits, w->classes) < 0))
            rc = write_error(w, "the root attributes");
    }
    if (H5Fclose(w->file) < 0 && commit && rc == 0)
        rc = write_error(w, "the file");
    h5_leave(&s);
    free(w);
    return rc;
}

/* ================= reading ================= */

struct packed_priv {
    hid_t file, images;
    size_t sample;
    int block;           /* samples per cached block (the chunk size, or less) */
    uint8_t *cache;      /* block * sample bytes */
    int cache_first;     /* first sample in the cache */
    int cache_count;     /* samples in the cache (0: empty) */
};

static void packed_close(struct ptl_dataset *ds)
{
    struct packed_priv *p = ds->priv;
    if (p == NULL)
        return;
    struct h5_section s;
    h5_enter(&s);
    ptl_h5_close_id(&p->images, H5Dclose);
    ptl_h5_close_id(&p->file, H5Fclose);
    h5_leave(&s);
    free(p->cache);
    free(p);
    ds->priv = NULL;
}

static int packed_read(struct ptl_dataset *ds, int i, uint8_t *out)
{
    struct packed_priv *p = ds->priv;
    if (i < p->cache_first || i >= p->cache_first + p->cache_count) {
        int first = i / p->block * p->block;
        int count = ds->n - first < p->block ? ds->n - first : p->block;
        hsize_t start[4] = {(hsize_t)first, 0, 0, 0};
        hsize_t cnt[4] = {(hsize_t)count, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
        char why[PTL_H5_REASON_SIZE] = "";
        struct h5_section s;
        h5_enter(&s);
        hid_t fspace = H5Dget_space(p->images);
        hid_t mspace = H5Screate_simple(4, cnt, NULL);
        herr_t st = -1;
        if (fspace >= 0 && mspace >= 0 &&
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0)
            st = H5Dread(p->images, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, p->cache);
        if (st < 0)
            ptl_h5_reason(why);
        ptl_h5_close_id(&mspace, H5Sclose);
        ptl_h5_close_id(&fspace, H5Sclose);
        h5_leave(&s);
        if (st < 0) {
            p->cache_count = 0;
            return ptl_error(PTL_EFORMAT, "%s: %s/images: cannot read samples %d..%d: corrupt (%s)",
                             ds->root, ds->split, first, first + count - 1, why);
        }
        p->cache_first = first;
        p->cache_count = count;
    }
    memcpy(out, p->cache + (size_t)(i - p->cache_first) * p->sample, p->sample);
    return PTL_OK;
}

/* Everything below runs inside one h5_section (packed_open). */

static int corrupt(const char *path, const char *what)
{
    char why[PTL_H5_REASON_SIZE];
    return ptl_error(PTL_EFORMAT, "%s: %s: truncated or corrupt (%s)", path, what,
                     ptl_h5_reason(why));
}

/* Integer attribute name of loc (one element): 0, -1 if missing or not an integer, -2 if
 * HDF5 cannot even tell (damaged metadata; the reason is on its stack). */
static int read_int_attr(hid_t loc, const char *name, int *v)
{
    htri_t there = H5Aexists(loc, name);
    if (there <= 0)
        return there < 0 ? -2 : -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    int rc = -1;
    if (t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
        H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, H5T_NATIVE_INT, v) >= 0)
        rc = 0;
    ptl_h5_close_id(&sp, H5Sclose);
    ptl_h5_close_id(&t, H5Tclose);
    ptl_h5_close_id(&a, H5Aclose);
    return rc;
}

/* String attribute (variable or fixed length, scalar) into buf; < 0 if missing or not a string. */
static int read_str_attr(hid_t loc, const char *name, char *buf, size_t size)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    int rc = -1;
    buf[0] = '\0';
    if (t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_STRING &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(t) > 0) {
            char *s = NULL;
            hid_t mt = utf8_vlen_type();
            if (mt >= 0 && H5Aread(a, mt, &s) >= 0) {
                snprintf(buf, size, "%s", s ? s : "");
                rc = 0;
                H5free_memory(s);
            }
            ptl_h5_close_id(&mt, H5Tclose);
        } else {
            size_t len = H5Tget_size(t);
            char *s = len > 0 && len < (1u << 20) ? calloc(1, len + 1) : NULL;
            if (s && H5Aread(a, t, s) >= 0) {
                snprintf(buf, size, "%s", s);
                rc = 0;
            }
            free(s);
        }
    }
    ptl_h5_close_id(&sp, H5Sclose);
    ptl_h5_close_id(&t, H5Tclose);
    ptl_h5_close_id(&a, H5Aclose);
    return rc;
}

/* Opens path read-only after the checks HDF5 has no plain message for. */
static int open_file(const char *path, hid_t *file)
{
    struct stat st;
    char why[PTL_H5_REASON_SIZE];
    *file = -1;
    if (stat(path, &st) != 0)
        return ptl_error(PTL_EIO, "%s: cannot open (%s)", path, strerror(errno));
    htri_t is_h5 = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0)
        is_h5 = ptl_h5_is_hdf5(path);
    if (is_h5 < 0)
        return ptl_error(PTL_EFORMAT, "%s: truncated or corrupt (%s)", path, ptl_h5_reason(why));
    if (is_h5 == 0)
        return ptl_error(PTL_EFORMAT, "%s: not an HDF5 file", path);
    hid_t fapl = ptl_h5_fapl();
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (*file < 0)
        ptl_h5_reason(why);
    ptl_h5_fapl_close(fapl);
    if (*file < 0)
        return ptl_error(PTL_EFORMAT, "%s: truncated or corrupt (%s)", path, why);
    int version;
    int got = read_int_attr(*file, "ptl_packed_version", &version);
    if (got == -2) {
        int rc = ptl_error(PTL_EFORMAT, "%s: truncated or corrupt (%s)", path, ptl_h5_reason(why));
        ptl_h5_close_id(file, H5Fclose);
        return rc;
    }
    if (got != 0) {
        ptl_h5_close_id(file, H5Fclose);
        return ptl_error(PTL_EFORMAT,
                         "%s: not a ptl packed dataset (no ptl_packed_version attribute; "
                         "ptl data pack writes them)",
                         path);
    }
    if (version != PTL_PACKED_VERSION) {
        ptl_h5_close_id(file, H5Fclose);
        return ptl_error(PTL_EFORMAT, "%s: packed version %d, this ptl reads version %d", path,
                         version, PTL_PACKED_VERSION);
    }
    return PTL_OK;
}

static int meta_locked(const char *path, struct ptl_packed_meta *m)
{
    hid_t f;
    memset(m, 0, sizeof *m);
    int rc = open_file(path, &f);
    if (rc != 0)
        return rc;
    m->version = PTL_PACKED_VERSION;
    char list[PTL_PACKED_MAX_SPLITS * 33];
    if (read_str_attr(f, "splits", list, sizeof list) != 0)
        rc = ptl_error(PTL_EFORMAT, "%s: no string attribute 'splits' at the root", path);
    read_str_attr(f, "source_format", m->source_format, sizeof m->source_format);
    read_str_attr(f, "source_path", m->source_path, sizeof m->source_path);
    for (char *tok = rc == 0 ? strtok(list, ",") : NULL; tok; tok = strtok(NULL, ","))
        if (m->nsplits < PTL_PACKED_MAX_SPLITS)
            snprintf(m->splits[m->nsplits++], sizeof m->splits[0], "%s", tok);
    if (rc == 0 && m->nsplits == 0)
        rc = ptl_error(PTL_EFORMAT, "%s: attribute 'splits' lists no split", path);
    ptl_h5_close_id(&f, H5Fclose);
    return rc;
}

int ptl_packed_meta(const char *path, struct ptl_packed_meta *m)
{
    struct h5_section s;
    h5_enter(&s);
    int rc = meta_locked(path, m);
    h5_leave(&s);
    return rc;
}

/* Opens g/name, a 1-D dataset of n elements of class cls. */
static int open_vector(const struct ptl_dataset *ds, hid_t g, const char *name, H5T_class_t cls,
                       hid_t *d)
{
    char what[80];
    snprintf(what, sizeof what, "%s/%s", ds->split, name);
    *d = H5Dopen2(g, name, H5P_DEFAULT);
    if (*d < 0)
        return corrupt(ds->root, what);
    hid_t sp = H5Dget_space(*d), t = H5Dget_type(*d);
    hsize_t dims[H5S_MAX_RANK];
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
    H5T_class_t c = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    ptl_h5_close_id(&sp, H5Sclose);
    ptl_h5_close_id(&t, H5Tclose);
    if (nd != 1 || dims[0] != (hsize_t)ds->n || c != cls)
        return ptl_error(PTL_EFORMAT, "%s: %s must be %s (%d), it is %d-D of %lld", ds->root, what,
                         cls == H5T_INTEGER ? "integer" : "strings", ds->n, nd,
                         nd >= 1 ? (long long)dims[0] : 0LL);
    return PTL_OK;
}

/* Reads g/name (int, n) into a new array; checks values >= 0 and, if limit > 0, < limit. */
static int read_ints(const struct ptl_dataset *ds, hid_t g, const char *name, int limit,
                     int32_t **out)
{
    hid_t d;
    *out = NULL;
    int rc = open_vector(ds, g, name, H5T_INTEGER, &d);
    if (rc == 0) {
        *out = malloc((size_t)ds->n * sizeof **out);
        if (*out == NULL)
            rc = ptl_error(PTL_ENOMEM, "%s: out of memory for %d %s", ds->root, ds->n, name);
    }
    if (rc == 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        char what[80];
        snprintf(what, sizeof what, "%s/%s", ds->split, name);
        rc = corrupt(ds->root, what);
    }
    for (int i = 0; rc == 0 && i < ds->n; i++)
        if ((*out)[i] < 0 || (limit > 0 && (*out)[i] >= limit))
            rc = ptl_error(PTL_ERANGE, "%s: %s/%s[%d] = %d, expected 0..%d", ds->root, ds->split,
                           name, i, (*out)[i], limit > 0 ? limit - 1 : INT32_MAX);
    ptl_h5_close_id(&d, H5Dclose);
    return rc;
}

static int read_paths(struct ptl_dataset *ds, hid_t g)
{
    hid_t d, t = -1;
    char what[80];
    snprintf(what, sizeof what, "%s/paths", ds->split);
    int rc = open_vector(ds, g, "paths", H5T_STRING, &d);
    if (rc != 0) {
        ptl_h5_close_id(&d, H5Dclose);
        return rc;
    }
    ds->paths = calloc((size_t)ds->n, sizeof *ds->paths);
    t = H5Dget_type(d);
    size_t fixed = t >= 0 && H5Tis_variable_str(t) == 0 ? H5Tget_size(t) : 0;
    char **v = fixed ? NULL : calloc((size_t)ds->n, sizeof *v);
    char *flat = fixed && fixed < 65536 ? malloc((size_t)ds->n * fixed) : NULL;
    hid_t mt = fixed ? -1 : utf8_vlen_type();
    if (ds->paths == NULL || t < 0 || (fixed ? flat == NULL : v == NULL || mt < 0)) {
        rc = ptl_error(PTL_ENOMEM, "%s: %s: out of memory or bad string type", ds->root, what);
    } else if (H5Dread(d, fixed ? t : mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed ? (void *)flat
                                                                            : (void *)v) < 0) {
        rc = corrupt(ds->root, what);
    } else {
        for (int i = 0; rc == 0 && i < ds->n; i++) {
            const char *s = fixed ? flat + (size_t)i * fixed : v[i];
            size_t len = s == NULL ? 0 : fixed ? strnlen(s, fixed) : strlen(s);
            ds->paths[i] = malloc(len + 1);
            if (ds->paths[i] == NULL) {
                rc = ptl_error(PTL_ENOMEM, "%s: %s: out of memory", ds->root, what);
                break;
            }
            if (len)
                memcpy(ds->paths[i], s, len);
            ds->paths[i][len] = '\0';
        }
        if (!fixed) {
            hid_t sp = H5Dget_space(d);
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(mt, sp, H5P_DEFAULT, v);
#else
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
#endif
            ptl_h5_close_id(&sp, H5Sclose);
        }
    }
    free(v);
    free(flat);
    ptl_h5_close_id(&mt, H5Tclose);
    ptl_h5_close_id(&t, H5Tclose);
    ptl_h5_close_id(&d, H5Dclose);
    return rc;
}

/* Opens split/images and sets the shape and the read cache. */
static int open_images(struct ptl_dataset *ds, struct packed_priv *p, hid_t g)
{
    char what[80];
    snprintf(what, sizeof what, "%s/images", ds->split);
    if (H5Lexists(g, "images", H5P_DEFAULT) <= 0)
        return ptl_error(PTL_EFORMAT, "%s: no dataset %s", ds->root, what);
    /* Our cache holds the chunk; HDF5's own would only copy it once more. */
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0)
        H5Pset_chunk_cache(dapl, 0, 0, 1.0);
    p->images = H5Dopen2(g, "images", dapl >= 0 ? dapl : H5P_DEFAULT);
    ptl_h5_close_id(&dapl, H5Pclose);
    if (p->images < 0)
        return corrupt(ds->root, what);
    hid_t sp = H5Dget_space(p->images), t = H5Dget_type(p->images);
    hid_t dcpl = H5Dget_create_plist(p->images);
    hsize_t dims[H5S_MAX_RANK], chunk[4] = {1, 1, 1, 1};
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
    int u8 = t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 &&
             H5Tget_sign(t) == H5T_SGN_NONE;
    if (nd == 4 && dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED)
        H5Pget_chunk(dcpl, 4, chunk);
    ptl_h5_close_id(&dcpl, H5Pclose);
    ptl_h5_close_id(&sp, H5Sclose);
    ptl_h5_close_id(&t, H5Tclose);
    if (nd < 0)
        return corrupt(ds->root, what);
    if (nd != 4 || !u8)
        return ptl_error(PTL_EFORMAT, "%s: %s must be uint8 (N, C, H, W), it is %s %d-D", ds->root,
                         what, u8 ? "uint8" : "not uint8", nd);
    if (dims[0] < 1 || dims[0] > INT32_MAX || dims[1] < 1 || dims[1] > MAX_CHANNELS ||
        dims[2] < 1 || dims[2] > MAX_SIDE || dims[3] < 1 || dims[3] > MAX_SIDE)
        return ptl_error(PTL_EFORMAT, "%s: %s has shape (%llu, %llu, %llu, %llu), expected N >= 1, "
                         "C 1..%d, H and W 1..%d",
                         ds->root, what, (unsigned long long)dims[0], (unsigned long long)dims[1],
                         (unsigned long long)dims[2], (unsigned long long)dims[3], MAX_CHANNELS,
                         MAX_SIDE);
    ds->n = (int)dims[0];
    ds->c = (int)dims[1];
    ds->h = (int)dims[2];
    ds->w = (int)dims[3];
    p->sample = (size_t)ds->c * ds->h * ds->w;
    size_t block = chunk[0] >= 1 ? (size_t)chunk[0] : 1;
    if (block * p->sample > CACHE_MAX_BYTES)
        block = CACHE_MAX_BYTES / p->sample > 0 ? CACHE_MAX_BYTES / p->sample : 1;
    p->block = (int)block;
    p->cache = malloc(block * p->sample);
    if (p->cache == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory for a %zu-byte read cache", ds->root,
                         block * p->sample);
    return PTL_OK;
}

static int open_locked(struct ptl_dataset *ds, struct packed_priv *p)
{
    int rc = open_file(ds->root, &p->file);
    if (rc != 0)
        return rc;
    if (H5Lexists(p->file, ds->split, H5P_DEFAULT) <= 0) {
        char list[PTL_PACKED_MAX_SPLITS * 33] = "";
        read_str_attr(p->file, "splits", list, sizeof list);
        return ptl_error(PTL_EINVAL, "%s: no split '%s' (the file has: %s)", ds->root, ds->split,
                         list[0] ? list : "none listed");
    }
    hid_t g = H5Gopen2(p->file, ds->split, H5P_DEFAULT);
    if (g < 0)
        return corrupt(ds->root, ds->split);
    rc = open_images(ds, p, g);
    if (rc == 0 && (read_int_attr(g, "classes", &ds->classes) != 0 || ds->classes < 1))
        rc = ptl_error(PTL_EFORMAT, "%s: split '%s' has no positive integer attribute 'classes'",
                       ds->root, ds->split);
    if (rc == 0 && read_int_attr(g, "skipped", &ds->skipped) != 0)
        ds->skipped = 0;
    /* Training and test labels are classes; query and gallery labels raw identities. */
    int raw_ids = strcmp(ds->split, "query") == 0 || strcmp(ds->split, "gallery") == 0;
    if (rc == 0)
        rc = read_ints(ds, g, "labels", raw_ids ? 0 : ds->classes, &ds->labels);
    if (rc == 0 && H5Lexists(g, "cameras", H5P_DEFAULT) > 0)
        rc = read_ints(ds, g, "cameras", 0, &ds->cameras);
    if (rc == 0 && H5Lexists(g, "paths", H5P_DEFAULT) > 0)
        rc = read_paths(ds, g);
    ptl_h5_close_id(&g, H5Gclose);
    return rc;
}

int ptl_packed_open(struct ptl_dataset *ds, const struct ptl_data_options *o)
{
    (void)o; /* packed images have their size already; bad samples were dropped when packing */
    struct packed_priv *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    p->file = -1;
    p->images = -1;
    snprintf(ds->format, sizeof ds->format, "packed");
    ds->priv = p;
    ds->close = packed_close;
    ds->read = packed_read;
    struct h5_section s;
    h5_enter(&s);
    int rc = open_locked(ds, p);
    h5_leave(&s);
    return rc;
}
