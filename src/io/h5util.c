/* HDF5 helpers shared by weights.c and ptl forward (h5util.h): one-line error reasons
 * instead of HDF5's stack dumps, best-effort file locking, atomic replacement of a file, and
 * plain float arrays in and out. The HDF5 library is the parallel build used serially here
 * (default property lists, no MPI).
 */
#include "io/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptl/core.h"

/* ---------------- HDF5 error handling ---------------- */

void ptl_h5_quiet_begin(struct ptl_h5_quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ptl_h5_quiet_end(const struct ptl_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t innermost_cb(unsigned n, const H5E_error2_t *err, void *data)
{
    if (n == 0) {
        char *buf = data;
        /* Some entries carry only a message number; its text is the next best reason. */
        if (err->desc && err->desc[0])
            snprintf(buf, PTL_H5_REASON_SIZE, "%s", err->desc);
        else
            H5Eget_msg(err->min_num, NULL, buf, PTL_H5_REASON_SIZE);
    }
    return 0;
}

const char *ptl_h5_reason(char buf[PTL_H5_REASON_SIZE])
{
    snprintf(buf, PTL_H5_REASON_SIZE, "HDF5 gave no reason");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, buf);
    return buf;
}

void ptl_h5_close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0)
        closer(*id);
    *id = -1;
}

/* ---------------- files ---------------- */

hid_t ptl_h5_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* Some Lustre and NFS mounts of clusters have no locks: lock only where locks work. */
#if H5_VERSION_GE(1, 12, 1) || (H5_VERSION_GE(1, 10, 7) && !H5_VERSION_GE(1, 12, 0))
    if (fapl >= 0)
        H5Pset_file_locking(fapl, 1, 1);
#endif
    return fapl >= 0 ? fapl : H5P_DEFAULT;
}

void ptl_h5_fapl_close(hid_t fapl)
{
    if (fapl != H5P_DEFAULT)
        H5Pclose(fapl);
}

htri_t ptl_h5_is_hdf5(const char *path)
{
#if H5_VERSION_GE(1, 12, 0)
    return H5Fis_accessible(path, H5P_DEFAULT);
#else
    return H5Fis_hdf5(path);
#endif
}

hid_t ptl_h5_create(const char *path, int track_order, char why[PTL_H5_REASON_SIZE])
{
    hid_t fcpl = -1;
    if (track_order) {
        fcpl = H5Pcreate(H5P_FILE_CREATE);
        if (fcpl >= 0)
            H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    }
    hid_t fapl = ptl_h5_fapl();
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl >= 0 ? fcpl : H5P_DEFAULT, fapl);
    if (file < 0)
        ptl_h5_reason(why); /* before the next HDF5 call clears the stack */
    ptl_h5_close_id(&fcpl, H5Pclose);
    ptl_h5_fapl_close(fapl);
    return file;
}

int ptl_h5_write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int ndim,
                         const hsize_t *dims, const void *data, char why[PTL_H5_REASON_SIZE])
{
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t ds =
        space < 0 ? -1
                  : H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1 : H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (st < 0)
        ptl_h5_reason(why);
    /* Closing can flush and so fail too; the first failure is the one reported. */
    if (ds >= 0 && H5Dclose(ds) < 0 && st >= 0) {
        st = -1;
        ptl_h5_reason(why);
    }
    if (space >= 0)
        H5Sclose(space);
    return st < 0 ? -1 : 0;
}

/* ---------------- checksums ---------------- */

unsigned long long ptl_h5_checksum(const void *data, size_t n)
{
    /* Odd 64-bit constants: multiplying by them is a bijection, so a changed word always
     * changes its lane. */
    const uint64_t k[4] = {0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL,
                           0xD6E8FEB86659FD93ULL};
    uint64_t lane[4] = {1, 2, 3, 4};
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * (size_t)l, 8);
            lane[l] = (lane[l] ^ w) * k[l];
        }
    uint64_t tail = 0;
    for (size_t j = 0; i + j < n; j++)
        tail |= (uint64_t)p[i + j] << (8 * (j % 8));
    uint64_t h = (uint64_t)n * k[0] ^ (tail * k[1]);
    for (int l = 0; l < 4; l++)
        h = (h ^ (lane[l] >> 29) ^ lane[l]) * k[(l + 1) % 4];
    return h ^ (h >> 32);
}

int ptl_h5_read_checked(hid_t loc, const char *name, hid_t mem_type, void *dst, size_t bytes,
                        char why[PTL_H5_REASON_SIZE])
{
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0 || (bytes > 0 && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)) {
        ptl_h5_reason(why);
        ptl_h5_close_id(&ds, H5Dclose);
        return -1;
    }
    int rc = 0;
    if (H5Aexists(ds, "checksum") > 0) {
        unsigned long long want = 0;
        hid_t a = H5Aopen(ds, "checksum", H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_ULLONG, &want) < 0) {
            ptl_h5_reason(why);
            rc = -1;
        } else if (ptl_h5_checksum(dst, bytes) != want) {
            snprintf(why, PTL_H5_REASON_SIZE, "checksum mismatch");
            rc = -2;
        }
        ptl_h5_close_id(&a, H5Aclose);
    }
    H5Dclose(ds);
    return rc;
}

/* ---------------- atomic replacement ---------------- */

/* Flushes a closed file's data to stable storage. */
static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno; /* close must not hide fsync's reason */
    close(fd);
    errno = saved;
    return rc;
}

/* Makes the rename durable; best effort, as some file systems refuse fsync on directories. */
static void fsync_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    (void)fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

int ptl_h5_commit_atomic(const char *what, const char *path, ptl_h5_fill_fn fill, void *ctx)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return ptl_error(PTL_EINVAL, "%s %s: path too long", what, path);
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    /* Creating it ourselves first gives a plain errno message for the usual failures
     * (directory missing or not writable) instead of HDF5's. */
    int rc = PTL_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        rc = ptl_error(PTL_EIO, "%s %s: cannot create %s (%s)", what, path, tmp, strerror(errno));
    } else {
        close(fd);
        rc = fill(tmp, ctx);
    }
    if (rc == 0 && fsync_path(tmp, O_RDONLY) != 0)
        rc = ptl_error(PTL_EIO, "%s %s: cannot sync %s (%s)", what, path, tmp, strerror(errno));
    ptl_h5_quiet_end(&q);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ptl_error(PTL_EIO, "%s %s: cannot rename %s into place (%s)", what, path, tmp,
                       strerror(errno));
    if (rc != 0) {
        unlink(tmp); /* the old file, if any, was never touched */
        return rc;
    }
    fsync_parent(path);
    return PTL_OK;
}

/* ---------------- float arrays ---------------- */

/* Everything but the checks on the file itself, which need no HDF5 file id. */
static int read_open(const char *what, const char *path, hid_t f, const char *dataset, int ndim,
                     const char *layout, float **out, int dims[])
{
    char why[PTL_H5_REASON_SIZE];
    int rc = PTL_OK;
    hid_t ds = -1, space = -1, type = -1;
    if (H5Lexists(f, dataset, H5P_DEFAULT) <= 0 || (ds = H5Dopen2(f, dataset, H5P_DEFAULT)) < 0) {
        rc = ptl_error(PTL_EFORMAT, "%s %s: no dataset '%s' (expected float %s)", what, path,
                       dataset, layout);
        goto done;
    }
    space = H5Dget_space(ds);
    type = H5Dget_type(ds);
    hsize_t d[H5S_MAX_RANK];
    int nd = space >= 0 ? H5Sget_simple_extent_dims(space, d, NULL) : -1;
    if (type < 0 || nd < 0) {
        rc = ptl_error(PTL_EFORMAT, "%s %s: %s: truncated or corrupt (%s)", what, path, dataset,
                       ptl_h5_reason(why));
        goto done;
    }
    int is_float = H5Tget_class(type) == H5T_FLOAT;
    if (nd != ndim || !is_float) {
        rc = ptl_error(PTL_EFORMAT, "%s %s: dataset '%s' must be float %s, it is %s %d-D", what,
                       path, dataset, layout, is_float ? "float" : "non-float", nd);
        goto done;
    }
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        /* int dims for the caller, and the byte count must fit a size_t. */
        if (d[i] < 1 || d[i] > INT_MAX || total > SIZE_MAX / sizeof(float) / d[i]) {
            rc = ptl_error(PTL_EFORMAT, "%s %s: dataset '%s' has an empty or too large shape", what,
                           path, dataset);
            goto done;
        }
        dims[i] = (int)d[i];
        total *= (size_t)d[i];
    }
    *out = malloc(total * sizeof(float));
    if (*out == NULL) {
        rc = ptl_error(PTL_ENOMEM, "%s %s: out of memory for %zu floats", what, path, total);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        rc = ptl_error(PTL_EFORMAT, "%s %s: %s: truncated or corrupt (%s)", what, path, dataset,
                       ptl_h5_reason(why));
        free(*out);
        *out = NULL;
    }
done:
    ptl_h5_close_id(&type, H5Tclose);
    ptl_h5_close_id(&space, H5Sclose);
    ptl_h5_close_id(&ds, H5Dclose);
    return rc;
}

static int read_floats(const char *what, const char *path, const char *dataset, int ndim,
                       const char *layout, float **out, int dims[])
{
    char why[PTL_H5_REASON_SIZE];
    struct stat st;
    if (stat(path, &st) != 0)
        return ptl_error(PTL_EIO, "%s %s: cannot open (%s)", what, path, strerror(errno));
    /* Only regular non-empty files go to HDF5: it has no plain message for the others. */
    htri_t is_h5 = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0)
        is_h5 = ptl_h5_is_hdf5(path);
    if (is_h5 <= 0)
        return ptl_error(PTL_EFORMAT, "%s %s: not an HDF5 file", what, path);
    hid_t fapl = ptl_h5_fapl();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0)
        ptl_h5_reason(why); /* before the next HDF5 call clears the stack */
    ptl_h5_fapl_close(fapl);
    if (f < 0)
        return ptl_error(PTL_EFORMAT, "%s %s: truncated or corrupt (%s)", what, path, why);
    int rc = read_open(what, path, f, dataset, ndim, layout, out, dims);
    H5Fclose(f);
    return rc;
}

int ptl_h5_read_floats(const char *what, const char *path, const char *dataset, int ndim,
                       const char *layout, float **out, int dims[])
{
    *out = NULL;
    struct ptl_h5_quiet q;
    ptl_h5_quiet_begin(&q);
    int rc = read_floats(what, path, dataset, ndim, layout, out, dims);
    ptl_h5_quiet_end(&q);
    return rc;
}

struct write_ctx {
    const char *what;
    const struct ptl_h5_array *arrays;
    size_t count;
};

static int fill_arrays(const char *tmp, void *ctx)
{
    const struct write_ctx *w = ctx;
    char why[PTL_H5_REASON_SIZE];
    hid_t f = ptl_h5_create(tmp, 0, why);
    if (f < 0)
        return ptl_error(PTL_EIO, "%s %s: cannot create (%s)", w->what, tmp, why);
    int rc = PTL_OK;
    for (size_t i = 0; rc == 0 && i < w->count; i++) {
        const struct ptl_h5_array *a = &w->arrays[i];
        if (ptl_h5_write_dataset(f, a->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, a->ndim, a->dims,
                                 a->data, why) != 0)
            rc = ptl_error(PTL_EIO, "%s %s: cannot write '%s' (%s)", w->what, tmp, a->name, why);
    }
    if (H5Fclose(f) < 0 && rc == 0)
        rc = ptl_error(PTL_EIO, "%s %s: cannot finish (%s)", w->what, tmp, ptl_h5_reason(why));
    return rc;
}

int ptl_h5_write_floats_atomic(const char *what, const char *path,
                               const struct ptl_h5_array *arrays, size_t count)
{
    struct write_ctx w = {what, arrays, count};
    return ptl_h5_commit_atomic(what, path, fill_arrays, &w);
}
