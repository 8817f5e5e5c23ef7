/* IDX reader: Fashion-MNIST and MNIST as distributed (train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-* for the test split), gzip-compressed or not. The whole split
 * goes into memory (60000 x 28 x 28 is 47 MB).
 *
 * Every header field is checked against the file: magic numbers (2051 images, 2049 labels),
 * dimensions, equal counts, and the data really being there (a header may promise more than the
 * file holds; the data is read in pieces so such a header cannot make us allocate its promise
 * up front). Labels outside 0..9 are an error naming the file and sample, or with skip_bad
 * dropped with one stderr line each.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io/dataset_impl.h"
#include "ptl/core.h"

#define IDX_CLASSES 10
#define IDX_IMAGES_MAGIC 2051u
#define IDX_LABELS_MAGIC 2049u
/* Largest image side accepted; real IDX files have 28. */
#define IDX_MAX_SIDE 4096u
/* Bytes read (and allocated) at a time. */
#define IDX_PIECE (16u << 20)

struct idx_file {
    char path[4200];
    gzFile gz;
};

/* Opens root/base, or root/base.gz when there is no plain file. */
static int idx_open(struct idx_file *f, const char *root, const char *base)
{
    struct stat st;
    snprintf(f->path, sizeof f->path, "%s/%s", root, base);
    if (stat(f->path, &st) != 0) {
        snprintf(f->path, sizeof f->path, "%s/%s.gz", root, base);
        if (stat(f->path, &st) != 0)
            return ptl_error(PTL_EIO, "%s/%s[.gz]: no such file", root, base);
    }
    f->gz = gzopen(f->path, "rb");
    if (f->gz == NULL)
        return ptl_error(PTL_EIO, "%s: cannot open (%s)", f->path,
                         errno ? strerror(errno) : "out of memory");
    gzbuffer(f->gz, 1u << 17);
    return PTL_OK;
}

/* Reads up to len bytes; returns the count read, or -1 with an error recorded when the gzip
 * stream is corrupt or reading fails. */
static long long idx_read(struct idx_file *f, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t want = len - done < IDX_PIECE ? len - done : IDX_PIECE;
        int got = gzread(f->gz, (char *)buf + done, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f->gz, &zerr);
            ptl_error(PTL_EFORMAT, "%s: cannot read: %s", f->path,
                      zerr == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (got == 0)
            break;
        done += (size_t)got;
    }
    return (long long)done;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the header: the magic and ndims 32-bit counts. */
static int idx_header(struct idx_file *f, uint32_t magic, int ndims, uint32_t *dims)
{
    unsigned char h[16];
    size_t len = 4 + 4 * (size_t)ndims;
    long long got = idx_read(f, h, len);
    if (got < 0)
        return PTL_EFORMAT;
    if ((size_t)got < len)
        return ptl_error(PTL_EFORMAT, "%s: truncated: %lld bytes, shorter than the %zu-byte header",
                         f->path, got, len);
    if (be32(h) != magic)
        return ptl_error(PTL_EFORMAT, "%s: magic number %u, expected %u (IDX unsigned bytes, %d-D%s)",
                         f->path, be32(h), magic, ndims,
                         be32(h) == (magic == IDX_IMAGES_MAGIC ? IDX_LABELS_MAGIC : IDX_IMAGES_MAGIC)
                             ? magic == IDX_IMAGES_MAGIC ? ": this is a label file"
                                                         : ": this is an image file"
                             : "");
    for (int i = 0; i < ndims; i++)
        dims[i] = be32(h + 4 + 4 * i);
    return PTL_OK;
}

/* Reads exactly count items of item bytes (the body the header announced) into *out, growing
 * the buffer as data arrives, then checks nothing follows. */
static int idx_body(struct idx_file *f, size_t count, size_t item, const char *what,
                    uint8_t **out)
{
    size_t total = count * item, have = 0, cap = 0;
    uint8_t *buf = NULL;
    *out = NULL;
    while (have < total) {
        size_t want = total - have < IDX_PIECE ? total - have : IDX_PIECE;
        if (have + want > cap) {
            size_t ncap = cap ? cap * 2 : want;
            if (ncap > total)
                ncap = total;
            if (ncap < have + want)
                ncap = have + want;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                return ptl_error(PTL_ENOMEM, "%s: out of memory for %zu bytes", f->path, ncap);
            }
            buf = nb;
            cap = ncap;
        }
        long long got = idx_read(f, buf + have, want);
        if (got < 0) {
            free(buf);
            return PTL_EFORMAT;
        }
        have += (size_t)got;
        if ((size_t)got < want) {
            free(buf);
            return ptl_error(PTL_EFORMAT,
                             "%s: truncated: the header announces %zu %s, the file ends after "
                             "%zu of them",
                             f->path, count, what, have / item);
        }
    }
    unsigned char extra;
    long long more = idx_read(f, &extra, 1);
    if (more != 0) {
        free(buf);
        if (more < 0)
            return PTL_EFORMAT;
        return ptl_error(PTL_EFORMAT, "%s: data after the %zu %s the header announces", f->path,
                         count, what);
    }
    *out = buf;
    return PTL_OK;
}

static void idx_close(struct idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Checks the labels; with skip_bad drops bad ones (and their images) in place. */
static int idx_labels(struct ptl_dataset *ds, const char *path, const uint8_t *raw, int skip_bad)
{
    size_t sample = (size_t)ds->h * ds->w;
    int kept = 0;
    for (int i = 0; i < ds->n; i++) {
        if (raw[i] >= IDX_CLASSES) {
            if (!skip_bad)
                return ptl_error(PTL_ERANGE, "%s: sample %d has label %d, expected 0..%d", path, i,
                                 raw[i], IDX_CLASSES - 1);
            fprintf(stderr, "ptl: %s: sample %d has label %d, expected 0..%d: skipped\n", path, i,
                    raw[i], IDX_CLASSES - 1);
            ds->skipped++;
            continue;
        }
        if (kept != i)
            memmove(ds->pixels + (size_t)kept * sample, ds->pixels + (size_t)i * sample, sample);
        ds->labels[kept++] = raw[i];
    }
    ds->n = kept;
    return PTL_OK;
}

int ptl_idx_open(struct ptl_dataset *ds, const struct ptl_data_options *o)
{
    const char *prefix;
    if (strcmp(ds->split, "train") == 0)
        prefix = "train";
    else if (strcmp(ds->split, "test") == 0)
        prefix = "t10k";
    else
        return ptl_error(PTL_EINVAL, "%s: IDX has splits train and test, not '%s'", ds->root,
                         ds->split);
    char base[64];
    struct idx_file img = {0}, lab = {0};
    uint32_t idims[3], ldims[1];
    uint8_t *raw = NULL;
    snprintf(ds->format, sizeof ds->format, "idx");
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    int rc = idx_open(&lab, ds->root, base);
    if (rc == 0)
        rc = idx_header(&lab, IDX_LABELS_MAGIC, 1, ldims);
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    if (rc == 0)
        rc = idx_open(&img, ds->root, base);
    if (rc == 0)
        rc = idx_header(&img, IDX_IMAGES_MAGIC, 3, idims);
    if (rc != 0)
        goto done;
    if (idims[0] == 0 || idims[0] > INT32_MAX) {
        rc = ptl_error(PTL_EFORMAT, "%s: the header announces %u images", img.path, idims[0]);
        goto done;
    }
    if (idims[1] == 0 || idims[2] == 0 || idims[1] > IDX_MAX_SIDE || idims[2] > IDX_MAX_SIDE) {
        rc = ptl_error(PTL_EFORMAT, "%s: images of %ux%u, expected sides 1..%u", img.path, idims[1],
                       idims[2], IDX_MAX_SIDE);
        goto done;
    }
    if (ldims[0] != idims[0]) {
        rc = ptl_error(PTL_EFORMAT, "%s: %u labels, but %s has %u images", lab.path, ldims[0],
                       img.path, idims[0]);
        goto done;
    }
    ds->n = (int)idims[0];
    ds->c = 1;
    ds->h = (int)idims[1];
    ds->w = (int)idims[2];
    ds->classes = IDX_CLASSES;
    /* Labels first: the cheaper file shows a lying count before the big allocation. */
    rc = idx_body(&lab, (size_t)ds->n, 1, "labels", &raw);
    if (rc == 0)
        rc = idx_body(&img, (size_t)ds->n, (size_t)ds->h * ds->w, "images", &ds->pixels);
    if (rc != 0)
        goto done;
    ds->labels = malloc((size_t)ds->n * sizeof *ds->labels);
    if (ds->labels == NULL) {
        rc = ptl_error(PTL_ENOMEM, "%s: out of memory for %d labels", lab.path, ds->n);
        goto done;
    }
    rc = idx_labels(ds, lab.path, raw, o->skip_bad);
done:
    free(raw);
    idx_close(&img);
    idx_close(&lab);
    return rc;
}
