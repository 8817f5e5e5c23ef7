/* CIFAR-10 and CIFAR-100 binary versions, as unpacked from cifar-10-binary.tar.gz
 * (data_batch_1.bin .. data_batch_5.bin for train, test_batch.bin for test; records of 1 label
 * byte + 3072 pixel bytes) and cifar-100-binary.tar.gz (train.bin, test.bin; records of a
 * coarse and a fine label byte + 3072 pixels; the fine label, 100 classes, is the one used).
 * Pixels are stored as 1024 red, 1024 green, 1024 blue bytes of a 32x32 image: (C, H, W)
 * already. The whole split goes into memory (50000 images are 154 MB).
 *
 * The files carry no header, so what can be checked is checked: each file's size is a whole
 * number of records, and every label is in range (an error naming the file and sample, or with
 * skip_bad the sample is dropped with one stderr line).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"
#include "ptl/core.h"

#define CIFAR_PIXELS 3072
#define CIFAR_MAX_FILES 5

struct cifar_layout {
    const char *name;
    int label_bytes, classes;
    const char *files[CIFAR_MAX_FILES + 1];
};

static const struct cifar_layout c10_train = {
    "CIFAR-10", 1, 10,
    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
     "data_batch_5.bin", NULL}};
static const struct cifar_layout c10_test = {"CIFAR-10", 1, 10, {"test_batch.bin", NULL}};
static const struct cifar_layout c100_train = {"CIFAR-100", 2, 100, {"train.bin", NULL}};
static const struct cifar_layout c100_test = {"CIFAR-100", 2, 100, {"test.bin", NULL}};

/* Size of each file (checked to be whole records); total records in *n. */
static int cifar_sizes(const char *root, const struct cifar_layout *l, long long *n)
{
    long long rec = l->label_bytes + CIFAR_PIXELS;
    *n = 0;
    for (int i = 0; l->files[i]; i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", root, l->files[i]);
        if (stat(path, &st) != 0)
            return ptl_error(PTL_EIO, "%s: cannot open (%s)", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return ptl_error(PTL_EFORMAT, "%s: not a regular file", path);
        if (st.st_size == 0 || st.st_size % rec != 0)
            return ptl_error(PTL_EFORMAT,
                             "%s: %lld bytes is not a whole number of %lld-byte %s records "
                             "(%d label byte%s + %d pixels)",
                             path, (long long)st.st_size, rec, l->name, l->label_bytes,
                             l->label_bytes > 1 ? "s" : "", CIFAR_PIXELS);
        *n += st.st_size / rec;
    }
    if (*n > INT32_MAX)
        return ptl_error(PTL_EFORMAT, "%s: %lld %s records, too many", root, *n, l->name);
    return PTL_OK;
}

/* Appends the records of one file to ds (labels checked). */
static int cifar_file(struct ptl_dataset *ds, const char *path, const struct cifar_layout *l,
                      int skip_bad, uint8_t *rec, long long cap)
{
    size_t rec_len = (size_t)l->label_bytes + CIFAR_PIXELS;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ptl_error(PTL_EIO, "%s: cannot open (%s)", path, strerror(errno));
    int rc = PTL_OK;
    for (long long i = 0;; i++) {
        size_t got = fread(rec, 1, rec_len, f);
        if (got == 0 && feof(f))
            break;
        if (got != rec_len || ds->n >= cap) {
            /* The size was checked: a short read now is an I/O error or a file that shrank. */
            rc = ptl_error(PTL_EIO, "%s: cannot read record %lld (%s)", path, i,
                           ferror(f) ? strerror(errno) : "file changed while reading");
            break;
        }
        int coarse = l->label_bytes == 2 ? rec[0] : 0;
        int label = rec[l->label_bytes - 1];
        if (label >= l->classes || coarse >= 20) {
            const char *which = coarse >= 20 ? "coarse label" : "label";
            int value = coarse >= 20 ? coarse : label;
            int max = coarse >= 20 ? 19 : l->classes - 1;
            if (!skip_bad) {
                rc = ptl_error(PTL_ERANGE, "%s: sample %lld has %s %d, expected 0..%d", path, i,
                               which, value, max);
                break;
            }
            fprintf(stderr, "ptl: %s: sample %lld has %s %d, expected 0..%d: skipped\n", path, i,
                    which, value, max);
            ds->skipped++;
            continue;
        }
        memcpy(ds->pixels + (size_t)ds->n * CIFAR_PIXELS, rec + l->label_bytes, CIFAR_PIXELS);
        ds->labels[ds->n++] = label;
    }
    fclose(f);
    return rc;
}

int ptl_cifar_open(struct ptl_dataset *ds, const struct ptl_data_options *o, int hundred)
{
    const struct cifar_layout *l;
    int train = strcmp(ds->split, "train") == 0;
    snprintf(ds->format, sizeof ds->format, "%s", hundred ? "cifar100" : "cifar10");
    if (!train && strcmp(ds->split, "test") != 0)
        return ptl_error(PTL_EINVAL, "%s: CIFAR has splits train and test, not '%s'", ds->root,
                         ds->split);
    l = hundred ? (train ? &c100_train : &c100_test) : (train ? &c10_train : &c10_test);
    long long total;
    int rc = cifar_sizes(ds->root, l, &total);
    if (rc != 0)
        return rc;
    ds->c = 3;
    ds->h = 32;
    ds->w = 32;
    ds->classes = l->classes;
    ds->pixels = malloc((size_t)total * CIFAR_PIXELS);
    ds->labels = malloc((size_t)total * sizeof *ds->labels);
    uint8_t *rec = malloc((size_t)l->label_bytes + CIFAR_PIXELS);
    if (ds->pixels == NULL || ds->labels == NULL || rec == NULL)
        rc = ptl_error(PTL_ENOMEM, "%s: out of memory for %lld %s images", ds->root, total,
                       l->name);
    for (int i = 0; rc == 0 && l->files[i]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", ds->root, l->files[i]);
        rc = cifar_file(ds, path, l, o->skip_bad, rec, total);
    }
    free(rec);
    return rc;
}
