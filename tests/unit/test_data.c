/* Unit tests of the dataset front end and the IDX, CIFAR and packed readers (src/io/dataset.c,
 * idx.c, cifar.c, packed.c): the real Fashion-MNIST files of Debian's dataset-fashion-mnist
 * (counts, shape, first label, pixel and label checksums computed once with NumPy), generated
 * IDX and CIFAR files including broken ones (wrong magic, truncated, counts that disagree,
 * labels out of range as an error and with skip_bad), format detection of every layout, packed
 * round trips (pixels, labels, cameras, paths, samples dropped while packing), truncated and
 * corrupted packed files (an error naming the file or the exact original data, never a crash
 * or wrong data), and a failed pack leaving an existing output untouched. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/dataset_impl.h"
#include "ptl/ptl.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

/* ---- fixtures ---- */

/* A fresh directory per test (Criterion runs each test in its own process). */
static char dir[64];
static char *tmp_path(const char *name)
{
    static char buf[16][256];
    static int next;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ptl-test-data-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    char *p = buf[next++ % 16];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void cleanup(void)
{
    if (dir[0] == '\0')
        return;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(data, .fini = cleanup);

static char *mkdir_tmp(const char *name)
{
    char *p = tmp_path(name);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    cr_assert_eq(system(cmd), 0);
    return p;
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void write_gz(const char *path, const void *bytes, size_t n)
{
    gzFile f = gzopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(gzwrite(f, bytes, (unsigned)n), (int)n);
    gzclose(f);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void touch(const char *dirpath, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dirpath, name);
    write_file(p, "x", 1);
}

static void assert_msg_has(const char *want)
{
    cr_assert(strstr(ptl_error_message(), want) != NULL, "message '%s' lacks '%s'",
              ptl_error_message(), want);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Deterministic sample bytes. */
static uint8_t pix(uint32_t seed, size_t k)
{
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + k * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    return (uint8_t)(x >> 40);
}

/* An IDX split: n images of rows x cols and their labels, with knobs for breaking it. */
struct idx_spec {
    int n, rows, cols;
    const uint8_t *labels;   /* n, or NULL: i % 10 */
    int gz;
    uint32_t image_magic, label_magic; /* 0: the right ones */
    int label_count;         /* 0: n */
    long cut_images;         /* bytes removed from the end of the image file */
    int extra_bytes;         /* bytes appended to the image file */
    uint32_t seed;
};

static void write_idx(const char *d, const char *prefix, struct idx_spec s)
{
    size_t img_len = 16 + (size_t)s.n * s.rows * s.cols + (size_t)s.extra_bytes;
    unsigned char *img = malloc(img_len);
    put32(img, s.image_magic ? s.image_magic : 2051);
    put32(img + 4, (uint32_t)s.n);
    put32(img + 8, (uint32_t)s.rows);
    put32(img + 12, (uint32_t)s.cols);
    for (size_t k = 16; k < img_len; k++)
        img[k] = pix(s.seed, k - 16);
    int nl = s.label_count ? s.label_count : s.n;
    unsigned char *lab = malloc(8 + (size_t)nl);
    put32(lab, s.label_magic ? s.label_magic : 2049);
    put32(lab + 4, (uint32_t)nl);
    for (int i = 0; i < nl; i++)
        lab[8 + i] = s.labels && i < s.n ? s.labels[i] : (uint8_t)(i % 10);
    char p[512];
    const char *ext = s.gz ? ".gz" : "";
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte%s", d, prefix, ext);
    (s.gz ? write_gz : write_file)(p, img, img_len - (size_t)s.cut_images);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte%s", d, prefix, ext);
    (s.gz ? write_gz : write_file)(p, lab, 8 + (size_t)nl);
    free(img);
    free(lab);
}

static struct idx_spec idx_ok(int n, uint32_t seed)
{
    return (struct idx_spec){.n = n, .rows = 5, .cols = 4, .seed = seed};
}

/* A folder with a good train and test split. */
static char *idx_dir(const char *name, int gz)
{
    char *d = mkdir_tmp(name);
    struct idx_spec tr = idx_ok(23, 1), te = idx_ok(7, 2);
    tr.gz = te.gz = gz;
    write_idx(d, "train", tr);
    write_idx(d, "t10k", te);
    return d;
}

static struct ptl_dataset *open_ok(const char *path, const char *split, const char *format)
{
    struct ptl_data_options o = {.format = format};
    struct ptl_dataset *ds = NULL;
    int rc = ptl_dataset_open(&ds, path, split, &o);
    cr_assert_eq(rc, 0, "open %s (%s): %s", path, split, ptl_error_message());
    cr_assert_not_null(ds);
    return ds;
}

static int open_rc(const char *path, const char *split, const char *format, int skip_bad)
{
    struct ptl_data_options o = {.format = format, .skip_bad = skip_bad};
    struct ptl_dataset *ds = (struct ptl_dataset *)1;
    int rc = ptl_dataset_open(&ds, path, split, &o);
    if (rc == 0)
        ptl_dataset_close(ds);
    else
        cr_assert_null(ds, "a failed open must set *out to NULL");
    return rc;
}

/* All samples of ds in order. */
static uint8_t *read_all(struct ptl_dataset *ds)
{
    int n = ptl_dataset_size(ds), c, h, w;
    ptl_dataset_shape(ds, &c, &h, &w);
    uint8_t *out = malloc((size_t)n * c * h * w);
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    cr_assert(out && idx);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    cr_assert_eq(ptl_dataset_read(ds, idx, n, out), 0, "read: %s", ptl_error_message());
    free(idx);
    return out;
}

/* ---- the real Fashion-MNIST ---- */

static void require_fmnist(void)
{
    struct stat st;
    if (stat(FMNIST "/train-images-idx3-ubyte.gz", &st) != 0)
        cr_assert_fail("%s", "Fashion-MNIST is missing at " FMNIST " (install Debian's "
                      "dataset-fashion-mnist: apt-get install dataset-fashion-mnist)");
}

/* Sums computed with NumPy from the same files: plain, position-weighted (k % 251 + 1) over
 * the flat pixel array, and labels weighted by (i % 7 + 1). */
static void check_fmnist(const char *split, int n, int first_label, uint64_t sum, uint64_t wsum,
                         uint64_t lsum)
{
    require_fmnist();
    struct ptl_dataset *ds = open_ok(FMNIST, split, NULL);
    cr_assert_str_eq(ptl_dataset_format(ds), "idx");
    cr_assert_eq(ptl_dataset_size(ds), n);
    int c, h, w;
    ptl_dataset_shape(ds, &c, &h, &w);
    cr_assert(c == 1 && h == 28 && w == 28, "shape %dx%dx%d", c, h, w);
    cr_assert_eq(ptl_dataset_classes(ds), 10);
    cr_assert_null(ptl_dataset_cameras(ds));
    cr_assert_null(ptl_dataset_path_of(ds, 0));
    cr_assert_eq(ptl_dataset_skipped(ds), 0);
    const int32_t *labels = ptl_dataset_labels(ds);
    cr_assert_eq(labels[0], first_label);
    uint64_t ls = 0;
    for (int i = 0; i < n; i++)
        ls += (uint64_t)labels[i] * (uint64_t)(i % 7 + 1);
    cr_assert_eq(ls, lsum, "label checksum %llu, NumPy says %llu", (unsigned long long)ls,
                 (unsigned long long)lsum);
    uint8_t *x = read_all(ds);
    uint64_t s = 0, ws = 0;
    for (size_t k = 0; k < (size_t)n * 784; k++) {
        s += x[k];
        ws += (uint64_t)x[k] * (k % 251 + 1);
    }
    cr_assert_eq(s, sum, "pixel sum %llu, NumPy says %llu", (unsigned long long)s,
                 (unsigned long long)sum);
    cr_assert_eq(ws, wsum, "weighted pixel sum %llu, NumPy says %llu", (unsigned long long)ws,
                 (unsigned long long)wsum);
    free(x);
    ptl_dataset_close(ds);
}

Test(data, fashion_mnist_train)
{
    check_fmnist("train", 60000, 9, 3431114169ull, 432275098992ull, 1078223ull);
}

Test(data, fashion_mnist_test)
{
    check_fmnist("test", 10000, 9, 573469082ull, 72253401797ull, 179773ull);
}

Test(data, fashion_mnist_detected_and_read_checks_indices)
{
    require_fmnist();
    char f[32];
    cr_assert_eq(ptl_data_detect(FMNIST, f, sizeof f), 0, "%s", ptl_error_message());
    cr_assert_str_eq(f, "idx");
    struct ptl_dataset *ds = open_ok(FMNIST, "test", "idx");
    uint8_t buf[3 * 784];
    int32_t good[2] = {0, 9999}, bad[3] = {0, 10000, 1}, neg[1] = {-1};
    cr_assert_eq(ptl_dataset_read(ds, good, 2, buf), 0);
    /* Sample 0 of t10k, pixels 300..309, as NumPy reads them. */
    static const uint8_t want[10] = {157, 166, 135, 154, 168, 140, 0, 0, 0, 0};
    cr_assert_arr_eq(buf + 300, want, 10);
    cr_assert_eq(ptl_dataset_read(ds, bad, 3, buf), PTL_ERANGE);
    assert_msg_has("sample index 10000");
    assert_msg_has("0..9999");
    cr_assert_eq(ptl_dataset_read(ds, neg, 1, buf), PTL_ERANGE);
    assert_msg_has("sample index -1");
    cr_assert_eq(ptl_dataset_read(ds, good, 0, NULL), 0);
    ptl_dataset_close(ds);
    cr_assert_eq(open_rc(FMNIST, "query", NULL, 0), PTL_EINVAL);
    assert_msg_has("'query'");
}

/* ---- generated IDX ---- */

static void check_idx_content(const char *d, const char *split, struct idx_spec s)
{
    struct ptl_dataset *ds = open_ok(d, split, NULL);
    cr_assert_eq(ptl_dataset_size(ds), s.n);
    int c, h, w;
    ptl_dataset_shape(ds, &c, &h, &w);
    cr_assert(c == 1 && h == s.rows && w == s.cols);
    uint8_t *x = read_all(ds);
    for (size_t k = 0; k < (size_t)s.n * s.rows * s.cols; k++)
        cr_assert_eq(x[k], pix(s.seed, k), "pixel %zu", k);
    for (int i = 0; i < s.n; i++)
        cr_assert_eq(ptl_dataset_labels(ds)[i], i % 10);
    free(x);
    ptl_dataset_close(ds);
}

Test(data, idx_plain_and_gzip_read_alike)
{
    for (int gz = 0; gz < 2; gz++) {
        char *d = idx_dir(gz ? "gz" : "plain", gz);
        check_idx_content(d, "train", idx_ok(23, 1));
        check_idx_content(d, "test", idx_ok(7, 2));
    }
}

/* Writes a train split of spec s (and a good test split) and returns the open status. */
static int idx_case(const char *name, struct idx_spec s, int skip_bad)
{
    char *d = mkdir_tmp(name);
    write_idx(d, "train", s);
    write_idx(d, "t10k", idx_ok(3, 9));
    return open_rc(d, "train", "idx", skip_bad);
}

Test(data, idx_wrong_magic)
{
    for (int gz = 0; gz < 2; gz++) {
        struct idx_spec s = idx_ok(12, 1);
        s.gz = gz;
        s.image_magic = 2049;
        cr_assert_eq(idx_case(gz ? "m1gz" : "m1", s, 0), PTL_EFORMAT);
        assert_msg_has(gz ? "m1gz/train-images-idx3-ubyte.gz: magic number 2049, expected 2051"
                          : "m1/train-images-idx3-ubyte: magic number 2049, expected 2051");
        assert_msg_has("label file");
    }
    struct idx_spec s = idx_ok(12, 1);
    s.label_magic = 0x12345678;
    cr_assert_eq(idx_case("m2", s, 0), PTL_EFORMAT);
    assert_msg_has("m2/train-labels-idx1-ubyte: magic number 305419896, expected 2049");
}

Test(data, idx_truncated)
{
    for (int gz = 0; gz < 2; gz++) {
        struct idx_spec s = idx_ok(12, 1);
        s.gz = gz;
        s.cut_images = 30; /* the last sample and a half are missing */
        cr_assert_eq(idx_case(gz ? "t1gz" : "t1", s, 0), PTL_EFORMAT);
        assert_msg_has(gz ? "t1gz/train-images-idx3-ubyte.gz: truncated: the header announces "
                            "12 images, the file ends after 10 of them"
                          : "t1/train-images-idx3-ubyte: truncated: the header announces 12 "
                            "images, the file ends after 10 of them");
    }
    /* Shorter than its header. */
    struct idx_spec s = idx_ok(12, 1);
    s.cut_images = 12 * 20 + 6;
    cr_assert_eq(idx_case("t2", s, 0), PTL_EFORMAT);
    assert_msg_has("t2/train-images-idx3-ubyte: truncated: 10 bytes, shorter than the 16-byte");
    /* A cut gzip stream (not a cut file inside it) names the file too. */
    char *d = idx_dir("t3", 1);
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", d);
    size_t n;
    unsigned char *b = read_file(p, &n);
    write_file(p, b, n - 12);
    free(b);
    cr_assert_eq(open_rc(d, "train", NULL, 0), PTL_EFORMAT);
    assert_msg_has("t3/train-images-idx3-ubyte.gz: ");
    /* A header that promises far more than the file holds fails without allocating it. */
    s = idx_ok(12, 1);
    d = mkdir_tmp("t4");
    write_idx(d, "train", s);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", d);
    b = read_file(p, &n);
    put32(b + 4, 2000000000u);
    write_file(p, b, n);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", d);
    free(b);
    b = read_file(p, &n);
    put32(b + 4, 2000000000u);
    write_file(p, b, n);
    free(b);
    cr_assert_eq(open_rc(d, "train", NULL, 0), PTL_EFORMAT);
    assert_msg_has("t4/train-labels-idx1-ubyte: truncated: the header announces 2000000000 labels, "
                   "the file ends after 12");
}

Test(data, idx_counts_and_sizes)
{
    struct idx_spec s = idx_ok(12, 1);
    s.label_count = 11;
    cr_assert_eq(idx_case("c1", s, 0), PTL_EFORMAT);
    assert_msg_has("c1/train-labels-idx1-ubyte: 11 labels, but ");
    assert_msg_has("c1/train-images-idx3-ubyte has 12 images");
    s = idx_ok(12, 1);
    s.extra_bytes = 5;
    cr_assert_eq(idx_case("c2", s, 0), PTL_EFORMAT);
    assert_msg_has("c2/train-images-idx3-ubyte: data after the 12 images");
    s = idx_ok(12, 1);
    s.rows = 0;
    cr_assert_eq(idx_case("c3", s, 0), PTL_EFORMAT);
    assert_msg_has("c3/train-images-idx3-ubyte: images of 0x4");
    s = idx_ok(0, 1);
    cr_assert_eq(idx_case("c4", s, 0), PTL_EFORMAT);
    assert_msg_has("c4/train-images-idx3-ubyte: the header announces 0 images");
    /* A missing file is named with both spellings. */
    char *d = mkdir_tmp("c5");
    write_idx(d, "train", idx_ok(4, 1));
    cr_assert_eq(open_rc(d, "test", "idx", 0), PTL_EIO);
    assert_msg_has("c5/t10k-labels-idx1-ubyte[.gz]: no such file");
}

Test(data, idx_label_out_of_range_error_or_skip)
{
    uint8_t labels[12] = {0, 1, 2, 3, 10, 5, 6, 255, 8, 9, 0, 1};
    struct idx_spec s = idx_ok(12, 4);
    s.labels = labels;
    cr_assert_eq(idx_case("l1", s, 0), PTL_ERANGE);
    assert_msg_has("l1/train-labels-idx1-ubyte: sample 4 has label 10, expected 0..9");

    char *d = tmp_path("l1");
    struct ptl_data_options o = {.skip_bad = 1};
    struct ptl_dataset *ds = NULL;
    cr_assert_eq(ptl_dataset_open(&ds, d, "train", &o), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_dataset_size(ds), 10);
    cr_assert_eq(ptl_dataset_skipped(ds), 2);
    uint8_t *x = read_all(ds);
    int src[10] = {0, 1, 2, 3, 5, 6, 8, 9, 10, 11};
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(ptl_dataset_labels(ds)[i], labels[src[i]]);
        for (int k = 0; k < 20; k++)
            cr_assert_eq(x[i * 20 + k], pix(4, (size_t)src[i] * 20 + k), "sample %d", i);
    }
    free(x);
    ptl_dataset_close(ds);
    /* Every label bad: skipping leaves an empty split, which is an error naming it. */
    uint8_t all_bad[3] = {11, 12, 13};
    s = idx_ok(3, 4);
    s.labels = all_bad;
    cr_assert_eq(idx_case("l2", s, 1), PTL_EFORMAT);
    assert_msg_has("split 'train' is empty");
}

/* ---- CIFAR ---- */

/* Writes count records of a CIFAR file; labels from label_of(i). */
static void write_cifar(const char *d, const char *name, int count, int hundred, int first,
                        const uint8_t *bad_label_at, int extra)
{
    size_t rec = (size_t)(hundred ? 2 : 1) + 3072;
    unsigned char *b = calloc(1, rec * (size_t)count + (size_t)extra);
    for (int i = 0; i < count; i++) {
        unsigned char *r = b + rec * (size_t)i;
        int g = first + i;
        if (hundred) {
            r[0] = (uint8_t)(g % 20);
            r[1] = (uint8_t)(g * 7 % 100);
        } else {
            r[0] = (uint8_t)(g % 10);
        }
        if (bad_label_at && i == bad_label_at[0])
            r[rec - 3073] = bad_label_at[1];
        for (int k = 0; k < 3072; k++)
            r[rec - 3072 + (size_t)k] = pix((uint32_t)g, (size_t)k);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d, name);
    write_file(p, b, rec * (size_t)count + (size_t)extra);
    free(b);
}

static char *cifar10_dir(const char *name)
{
    char *d = mkdir_tmp(name);
    static const int counts[5] = {3, 2, 1, 2, 2};
    int first = 0;
    for (int i = 0; i < 5; i++) {
        char f[32];
        snprintf(f, sizeof f, "data_batch_%d.bin", i + 1);
        write_cifar(d, f, counts[i], 0, first, NULL, 0);
        first += counts[i];
    }
    write_cifar(d, "test_batch.bin", 4, 0, 100, NULL, 0);
    return d;
}

static void check_cifar(struct ptl_dataset *ds, int n, int first, int hundred)
{
    cr_assert_eq(ptl_dataset_size(ds), n);
    int c, h, w;
    ptl_dataset_shape(ds, &c, &h, &w);
    cr_assert(c == 3 && h == 32 && w == 32);
    cr_assert_eq(ptl_dataset_classes(ds), hundred ? 100 : 10);
    uint8_t *x = read_all(ds);
    for (int i = 0; i < n; i++) {
        int g = first + i;
        cr_assert_eq(ptl_dataset_labels(ds)[i], hundred ? g * 7 % 100 : g % 10, "label %d", i);
        for (int k = 0; k < 3072; k++)
            cr_assert_eq(x[(size_t)i * 3072 + k], pix((uint32_t)g, (size_t)k));
    }
    free(x);
}

Test(data, cifar10_reads_all_batches_in_order)
{
    char *d = cifar10_dir("c10");
    char f[32];
    cr_assert_eq(ptl_data_detect(d, f, sizeof f), 0);
    cr_assert_str_eq(f, "cifar10");
    struct ptl_dataset *ds = open_ok(d, "train", NULL);
    cr_assert_str_eq(ptl_dataset_format(ds), "cifar10");
    check_cifar(ds, 10, 0, 0);
    ptl_dataset_close(ds);
    ds = open_ok(d, "test", NULL);
    check_cifar(ds, 4, 100, 0);
    ptl_dataset_close(ds);
}

Test(data, cifar100_uses_the_fine_label)
{
    char *d = mkdir_tmp("c100");
    write_cifar(d, "train.bin", 6, 1, 0, NULL, 0);
    write_cifar(d, "test.bin", 3, 1, 50, NULL, 0);
    char f[32];
    cr_assert_eq(ptl_data_detect(d, f, sizeof f), 0);
    cr_assert_str_eq(f, "cifar100");
    struct ptl_dataset *ds = open_ok(d, "train", NULL);
    check_cifar(ds, 6, 0, 1);
    ptl_dataset_close(ds);
    ds = open_ok(d, "test", "cifar100");
    check_cifar(ds, 3, 50, 1);
    ptl_dataset_close(ds);
    /* Read as CIFAR-10, the record size does not fit. */
    cr_assert_eq(open_rc(d, "train", "cifar10", 0), PTL_EIO);
    assert_msg_has("c100/data_batch_1.bin: cannot open");
}

Test(data, cifar_bad_files)
{
    char *d = cifar10_dir("cb1");
    write_cifar(d, "test_batch.bin", 4, 0, 100, NULL, 1);
    cr_assert_eq(open_rc(d, "test", NULL, 0), PTL_EFORMAT);
    assert_msg_has("cb1/test_batch.bin: 12293 bytes is not a whole number of 3073-byte CIFAR-10 "
                   "records");
    write_cifar(d, "test_batch.bin", 0, 0, 100, NULL, 0);
    cr_assert_eq(open_rc(d, "test", NULL, 0), PTL_EFORMAT);
    assert_msg_has("cb1/test_batch.bin: 0 bytes");
    char p[512];
    snprintf(p, sizeof p, "%s/data_batch_3.bin", d);
    unlink(p);
    cr_assert_eq(open_rc(d, "train", NULL, 0), PTL_EIO);
    assert_msg_has("cb1/data_batch_3.bin: cannot open (No such file or directory)");

    d = mkdir_tmp("cb2");
    write_cifar(d, "train.bin", 5, 1, 0, NULL, 3);
    write_cifar(d, "test.bin", 5, 1, 0, NULL, 0);
    cr_assert_eq(open_rc(d, "train", NULL, 0), PTL_EFORMAT);
    assert_msg_has("cb2/train.bin: 15373 bytes is not a whole number of 3074-byte CIFAR-100");
    cr_assert_eq(open_rc(d, "val", NULL, 0), PTL_EINVAL);
    assert_msg_has("not 'val'");
}

Test(data, cifar_label_out_of_range_error_or_skip)
{
    char *d = cifar10_dir("cl1");
    uint8_t bad[2] = {2, 10};
    write_cifar(d, "test_batch.bin", 4, 0, 100, bad, 0);
    cr_assert_eq(open_rc(d, "test", NULL, 0), PTL_ERANGE);
    assert_msg_has("cl1/test_batch.bin: sample 2 has label 10, expected 0..9");
    struct ptl_data_options o = {.skip_bad = 1};
    struct ptl_dataset *ds = NULL;
    cr_assert_eq(ptl_dataset_open(&ds, d, "test", &o), 0);
    cr_assert_eq(ptl_dataset_size(ds), 3);
    cr_assert_eq(ptl_dataset_skipped(ds), 1);
    cr_assert_eq(ptl_dataset_labels(ds)[2], 103 % 10);
    ptl_dataset_close(ds);

    d = mkdir_tmp("cl2");
    uint8_t bad100[2] = {1, 100};
    write_cifar(d, "train.bin", 3, 1, 0, bad100, 0);
    write_cifar(d, "test.bin", 3, 1, 0, NULL, 0);
    cr_assert_eq(open_rc(d, "train", NULL, 0), PTL_ERANGE);
    assert_msg_has("cl2/train.bin: sample 1 has label 100, expected 0..99");
}

/* ---- detection ---- */

static void expect_detect(const char *path, const char *want)
{
    char f[32] = "";
    cr_assert_eq(ptl_data_detect(path, f, sizeof f), 0, "%s: %s", path, ptl_error_message());
    cr_assert_str_eq(f, want, "%s detected as %s, expected %s", path, f, want);
}

Test(data, detect_every_layout)
{
    char *d = mkdir_tmp("det/Market-1501-v15.09.15/bounding_box_train");
    expect_detect(tmp_path("det/Market-1501-v15.09.15"), "market1501");
    d = mkdir_tmp("det/DukeMTMC-reID/bounding_box_train");
    expect_detect(tmp_path("det/DukeMTMC-reID"), "dukemtmc");
    expect_detect(tmp_path("det/DukeMTMC-reID/"), "dukemtmc");
    mkdir_tmp("det/cuhk03-np/labeled/bounding_box_train");
    mkdir_tmp("det/cuhk03-np/detected/bounding_box_train");
    char f[32];
    cr_assert_eq(ptl_data_detect(tmp_path("det/cuhk03-np"), f, sizeof f), PTL_EFORMAT);
    assert_msg_has("set the format to cuhk03-labeled or cuhk03-detected");
    d = mkdir_tmp("det/MSMT17_V1/train/0000");
    touch(tmp_path("det/MSMT17_V1"), "list_train.txt");
    expect_detect(tmp_path("det/MSMT17_V1"), "msmt17");
    mkdir_tmp("det/imagenet/train/n01440764");
    expect_detect(tmp_path("det/imagenet"), "folders");
    d = mkdir_tmp("det/mnist");
    touch(d, "train-images-idx3-ubyte");
    expect_detect(d, "idx");
    d = mkdir_tmp("det/c100");
    touch(d, "train.bin");
    touch(d, "test.bin");
    expect_detect(d, "cifar100");

    /* Nothing recognisable: what was looked for. */
    d = mkdir_tmp("det/empty");
    mkdir_tmp("det/empty/train"); /* train/ without class folders is not a folders source */
    cr_assert_eq(ptl_data_detect(d, f, sizeof f), PTL_EFORMAT);
    assert_msg_has("det/empty: unknown dataset layout: looked for train-images-idx3-ubyte[.gz]");
    assert_msg_has("list_train.txt + train/ (MSMT17)");
    cr_assert_eq(open_rc(d, "train", NULL, 0), PTL_EFORMAT);
    cr_assert_eq(ptl_data_detect(tmp_path("det/none"), f, sizeof f), PTL_EIO);
    assert_msg_has("det/none: cannot open (No such file or directory)");
    touch(tmp_path("det"), "text.h5");
    cr_assert_eq(ptl_data_detect(tmp_path("det/text.h5"), f, sizeof f), PTL_EFORMAT);
    assert_msg_has("det/text.h5: a file but not an HDF5 file");
    cr_assert_eq(open_rc(tmp_path("det/empty"), "train", "no-such-format", 0), PTL_EINVAL);
    assert_msg_has("format 'no-such-format': unknown");
}

/* ---- packed files ---- */

/* Every split of a and b hold the same samples. */
static void assert_same_split(struct ptl_dataset *a, struct ptl_dataset *b)
{
    int n = ptl_dataset_size(a), ca, ha, wa, cb, hb, wb;
    cr_assert_eq(ptl_dataset_size(b), n);
    ptl_dataset_shape(a, &ca, &ha, &wa);
    ptl_dataset_shape(b, &cb, &hb, &wb);
    cr_assert(ca == cb && ha == hb && wa == wb);
    cr_assert_eq(ptl_dataset_classes(a), ptl_dataset_classes(b));
    cr_assert_arr_eq(ptl_dataset_labels(a), ptl_dataset_labels(b), (size_t)n * sizeof(int32_t));
    uint8_t *xa = read_all(a), *xb = read_all(b);
    cr_assert_arr_eq(xa, xb, (size_t)n * ca * ha * wa, "pixels differ");
    /* Random order, through the one-chunk cache of the packed reader. */
    size_t sample = (size_t)ca * ha * wa;
    uint8_t *one = malloc(sample);
    for (int k = 0; k < 3 * n; k++) {
        int32_t i = (int32_t)((k * 7919u + 13u) % (unsigned)n);
        cr_assert_eq(ptl_dataset_read(b, &i, 1, one), 0, "%s", ptl_error_message());
        cr_assert_arr_eq(one, xa + (size_t)i * sample, sample, "sample %d", i);
    }
    free(one);
    free(xa);
    free(xb);
}

static int temp_files_left(const char *path)
{
    const char *slash = strrchr(path, '/');
    char d[256], prefix[256];
    snprintf(d, sizeof d, "%.*s", (int)(slash - path), path);
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
    DIR *dp = opendir(d);
    cr_assert_not_null(dp);
    int left = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL)
        left += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(dp);
    return left;
}

static char *packed_idx(const char *name, char **src)
{
    *src = idx_dir("psrc", 1);
    char *out = tmp_path(name);
    FILE *log = tmpfile();
    cr_assert_eq(ptl_data_pack(*src, out, NULL, log), 0, "pack: %s", ptl_error_message());
    char line[256] = "";
    rewind(log);
    cr_assert_not_null(fgets(line, sizeof line, log));
    cr_assert_str_eq(line, "train: 23 samples of 1x5x4, 10 classes\n");
    fclose(log);
    cr_assert_eq(temp_files_left(out), 0);
    return out;
}

Test(data, packed_round_trip)
{
    char *src;
    char *out = packed_idx("p.h5", &src);
    char f[32];
    cr_assert_eq(ptl_data_detect(out, f, sizeof f), 0);
    cr_assert_str_eq(f, "packed");
    for (int s = 0; s < 2; s++) {
        const char *split = s ? "test" : "train";
        struct ptl_dataset *a = open_ok(src, split, NULL), *b = open_ok(out, split, NULL);
        cr_assert_str_eq(ptl_dataset_format(b), "packed");
        cr_assert_null(ptl_dataset_cameras(b));
        cr_assert_null(ptl_dataset_path_of(b, 0));
        assert_same_split(a, b);
        ptl_dataset_close(a);
        ptl_dataset_close(b);
    }
    cr_assert_eq(open_rc(out, "query", NULL, 0), PTL_EINVAL);
    assert_msg_has("p.h5: no split 'query' (the file has: train,test)");

    /* The layout docs/data.md describes. */
    hid_t h = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    struct ptl_packed_meta m;
    cr_assert_eq(ptl_packed_meta(out, &m), 0);
    cr_assert_eq(m.version, 1);
    cr_assert_str_eq(m.source_format, "idx");
    cr_assert(strstr(m.source_path, "/psrc") != NULL && m.source_path[0] == '/');
    cr_assert_eq(m.nsplits, 2);
    hid_t d = H5Dopen2(h, "train/images", H5P_DEFAULT), t = H5Dget_type(d), sp = H5Dget_space(d);
    hid_t pl = H5Dget_create_plist(d);
    hsize_t dims[4], chunk[4];
    cr_assert_eq(H5Sget_simple_extent_dims(sp, dims, NULL), 4);
    cr_assert(dims[0] == 23 && dims[1] == 1 && dims[2] == 5 && dims[3] == 4);
    cr_assert(H5Tequal(t, H5T_STD_U8LE) > 0);
    cr_assert_eq(H5Pget_layout(pl), H5D_CHUNKED);
    cr_assert_eq(H5Pget_chunk(pl, 4, chunk), 4);
    cr_assert(chunk[0] == 64 && chunk[1] == 1 && chunk[2] == 5 && chunk[3] == 4);
    H5Pclose(pl), H5Tclose(t), H5Sclose(sp), H5Dclose(d);
    d = H5Dopen2(h, "test/labels", H5P_DEFAULT), t = H5Dget_type(d);
    cr_assert(H5Tequal(t, H5T_STD_I32LE) > 0);
    H5Tclose(t), H5Dclose(d);
    hid_t a = H5Aopen(h, "classes", H5P_DEFAULT);
    int classes[2] = {0, 0};
    cr_assert_geq(H5Aread(a, H5T_NATIVE_INT, classes), 0);
    cr_assert(classes[0] == 10 && classes[1] == 10);
    H5Aclose(a);
    H5Fclose(h);

    /* info on the packed file and on the source. */
    FILE *o = tmpfile();
    cr_assert_eq(ptl_data_info(out, NULL, o), 0, "%s", ptl_error_message());
    char text[2048] = "";
    rewind(o);
    cr_assert_gt(fread(text, 1, sizeof text - 1, o), 0);
    fclose(o);
    cr_assert(strstr(text, "format: packed (version 1) from idx at /"), "%s", text);
    cr_assert(strstr(text, "split train: 23 samples of 1x5x4, 10 classes, no cameras\n"), "%s",
              text);
    cr_assert(strstr(text, "split test: 7 samples of 1x5x4, 10 classes, no cameras\n"), "%s", text);
}

/* A source made by hand: cameras, paths, and a read hook that fails for one sample. */
static int fake_read(struct ptl_dataset *ds, int i, uint8_t *out)
{
    if (i == 5)
        return ptl_error(PTL_EFORMAT, "%s/%s: broken image", ds->root, ds->paths[i]);
    for (int k = 0; k < ds->c * ds->h * ds->w; k++)
        out[k] = pix(77, (size_t)i * 1000 + k);
    return 0;
}

static struct ptl_dataset *fake_source(const char *split, int n)
{
    struct ptl_dataset *ds = calloc(1, sizeof *ds);
    snprintf(ds->format, sizeof ds->format, "market1501");
    snprintf(ds->root, sizeof ds->root, "/data/market");
    snprintf(ds->split, sizeof ds->split, "%s", split);
    ds->n = n;
    ds->c = 3;
    ds->h = 40;
    ds->w = 30; /* 3600 bytes: 9 samples a chunk, so 150 samples span several */
    ds->classes = 4;
    ds->labels = malloc((size_t)n * sizeof(int32_t));
    ds->cameras = malloc((size_t)n * sizeof(int32_t));
    ds->paths = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        ds->labels[i] = i % 4;
        ds->cameras[i] = i % 6;
        ds->paths[i] = malloc(64);
        snprintf(ds->paths[i], 64, "bounding_box_train/%04d_c%ds1_%06d_00.jpg", i % 4, i % 6 + 1,
                 i);
    }
    ds->read = fake_read;
    return ds;
}

Test(data, packed_cameras_paths_and_read_failures)
{
    char *out = tmp_path("reid.h5");
    struct ptl_dataset *src = fake_source("train", 150);
    /* Without skip_bad a failed read is the pack's error. */
    struct ptl_packed_writer *w = NULL;
    cr_assert_eq(ptl_packed_create(&w, out, "market1501", "/data/market"), 0);
    cr_assert_eq(ptl_packed_add_split(w, src, 0, NULL), PTL_EFORMAT);
    assert_msg_has("/data/market/bounding_box_train/0001_c6s1_000005_00.jpg: broken image");
    cr_assert_eq(ptl_packed_close(w, 0), 0);
    /* With skip_bad the sample is dropped and counted, the rest stays aligned. */
    cr_assert_eq(ptl_packed_create(&w, out, "market1501", "/data/market"), 0);
    cr_assert_eq(ptl_packed_add_split(w, src, 1, NULL), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_packed_close(w, 1), 0, "%s", ptl_error_message());

    struct ptl_dataset *ds = open_ok(out, "train", NULL);
    cr_assert_eq(ptl_dataset_size(ds), 149);
    cr_assert_eq(ptl_dataset_skipped(ds), 1);
    cr_assert_eq(ptl_dataset_classes(ds), 4);
    cr_assert_not_null(ptl_dataset_cameras(ds));
    uint8_t *x = read_all(ds);
    for (int i = 0; i < 149; i++) {
        int s = i < 5 ? i : i + 1;
        cr_assert_eq(ptl_dataset_labels(ds)[i], s % 4);
        cr_assert_eq(ptl_dataset_cameras(ds)[i], s % 6);
        cr_assert_str_eq(ptl_dataset_path_of(ds, i), src->paths[s]);
        for (int k = 0; k < 3600; k++)
            cr_assert_eq(x[(size_t)i * 3600 + k], pix(77, (size_t)s * 1000 + k), "sample %d", i);
    }
    free(x);
    ptl_dataset_close(ds);
    FILE *o = tmpfile();
    cr_assert_eq(ptl_data_info(out, NULL, o), 0, "%s", ptl_error_message());
    char text[1024] = "";
    rewind(o);
    cr_assert_gt(fread(text, 1, sizeof text - 1, o), 0);
    fclose(o);
    cr_assert(strstr(text, "split train: 149 samples of 3x40x30, 4 classes, 6 cameras, 1 skipped"),
              "%s", text);
    ptl_dataset_close(src);
}

/* Opens every split of a damaged copy and reads everything: it must fail naming the file, or
 * give exactly the original data. */
static void open_damaged(const char *path, const char *orig, int *failed)
{
    for (int s = 0; s < 2; s++) {
        const char *split = s ? "test" : "train";
        struct ptl_data_options o = {.format = "packed"};
        struct ptl_dataset *ds = NULL;
        int rc = ptl_dataset_open(&ds, path, split, &o);
        if (rc == 0) {
            int n = ptl_dataset_size(ds);
            int32_t *idx = malloc((size_t)n * sizeof *idx);
            uint8_t *x = malloc((size_t)n * 20);
            for (int i = 0; i < n; i++)
                idx[i] = i;
            rc = ptl_dataset_read(ds, idx, n, x);
            if (rc == 0) {
                struct ptl_dataset *ref = open_ok(orig, split, NULL);
                uint8_t *y = read_all(ref);
                cr_assert_eq(n, ptl_dataset_size(ref), "%s: damaged file opened with other counts",
                             path);
                cr_assert_arr_eq(x, y, (size_t)n * 20, "%s: damaged file read wrong pixels", path);
                cr_assert_arr_eq(ptl_dataset_labels(ds), ptl_dataset_labels(ref),
                                 (size_t)n * sizeof(int32_t), "%s: wrong labels", path);
                free(y);
                ptl_dataset_close(ref);
            }
            free(idx);
            free(x);
            ptl_dataset_close(ds);
        }
        if (rc != 0) {
            cr_assert(strstr(ptl_error_message(), path) != NULL, "message '%s' does not name %s",
                      ptl_error_message(), path);
            (*failed)++;
            return;
        }
    }
}

Test(data, packed_truncated_files_are_errors)
{
    char *src;
    char *out = packed_idx("t.h5", &src);
    size_t n;
    unsigned char *b = read_file(out, &n);
    char *cut = tmp_path("cut.h5");
    size_t lens[] = {0, 8, 100, 1000, n / 2, n - 100, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        write_file(cut, b, lens[i]);
        int failed = 0;
        open_damaged(cut, out, &failed);
        cr_assert_eq(failed, 1, "a file cut to %zu of %zu bytes opened", lens[i], n);
    }
    write_file(cut, b, n - 1);
    cr_assert_eq(open_rc(cut, "train", NULL, 0), PTL_EFORMAT);
    assert_msg_has("cut.h5: truncated or corrupt (truncated file: eof = ");
    free(b);
}

Test(data, packed_corrupted_files_are_errors_never_wrong_data)
{
    char *src;
    char *out = packed_idx("c.h5", &src);
    size_t n;
    unsigned char *b = read_file(out, &n);
    char *bad = tmp_path("bad.h5");
    /* Raw image data: Fletcher-32 catches it. Locate sample 3 of train in the file. */
    unsigned char needle[20];
    for (int k = 0; k < 20; k++)
        needle[k] = pix(1, 3 * 20 + (size_t)k);
    unsigned char *hit = memmem(b, n, needle, 20);
    cr_assert_not_null(hit, "sample 3 not stored as is in the file");
    hit[7] ^= 0x55;
    write_file(bad, b, n);
    hit[7] ^= 0x55;
    struct ptl_dataset *ds = open_ok(bad, "train", NULL);
    uint8_t one[20];
    int32_t i = 3;
    cr_assert_eq(ptl_dataset_read(ds, &i, 1, one), PTL_EFORMAT);
    assert_msg_has("bad.h5: train/images: cannot read samples 0..22: corrupt");
    ptl_dataset_close(ds);
    /* Damage at offsets all over the file, metadata included: an error naming the file, or
     * (damage in unused bytes) exactly the original data. */
    int failed = 0, tried = 0;
    for (size_t off = 0; off + 4 <= n; off += n / 97 + 1, tried++) {
        for (int k = 0; k < 4; k++)
            b[off + k] ^= 0xA7;
        write_file(bad, b, n);
        for (int k = 0; k < 4; k++)
            b[off + k] ^= 0xA7;
        open_damaged(bad, out, &failed);
    }
    /* Most of a small file is slack (object header space, B-tree nodes): damage there is
     * harmless, and checked to be. */
    cr_assert_geq(failed, 5, "only %d of %d damaged copies failed", failed, tried);
    free(b);
}

Test(data, packed_not_ours)
{
    char *p = tmp_path("plain.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    cr_assert_eq(open_rc(p, "train", NULL, 0), PTL_EFORMAT);
    assert_msg_has("plain.h5: not a ptl packed dataset (no ptl_packed_version attribute");
    cr_assert_eq(open_rc(tmp_path("none.h5"), "train", "packed", 0), PTL_EIO);
    assert_msg_has("none.h5: cannot open (No such file or directory)");
}

Test(data, failed_pack_leaves_the_output_untouched)
{
    char *out = tmp_path("keep.h5");
    write_file(out, "old contents", 12);
    /* The source fails before anything is written ... */
    char *d = mkdir_tmp("fp1");
    struct idx_spec s = idx_ok(12, 1);
    s.image_magic = 7;
    write_idx(d, "train", s);
    write_idx(d, "t10k", idx_ok(3, 1));
    cr_assert_eq(ptl_data_pack(d, out, NULL, NULL), PTL_EFORMAT);
    assert_msg_has("fp1/train-images-idx3-ubyte: magic number 7");
    /* ... or after the train split was written. */
    d = mkdir_tmp("fp2");
    write_idx(d, "train", idx_ok(12, 1));
    s = idx_ok(3, 1);
    s.cut_images = 1;
    write_idx(d, "t10k", s);
    cr_assert_eq(ptl_data_pack(d, out, NULL, NULL), PTL_EFORMAT);
    assert_msg_has("fp2/t10k-images-idx3-ubyte: truncated");
    /* An output folder that does not exist. */
    cr_assert_eq(ptl_data_pack(idx_dir("fp3", 0), tmp_path("nodir/x.h5"), NULL, NULL), PTL_EIO);
    assert_msg_has("nodir/x.h5.tmp.");
    size_t n;
    unsigned char *b = read_file(out, &n);
    cr_assert(n == 12 && memcmp(b, "old contents", 12) == 0, "the existing output changed");
    free(b);
    cr_assert_eq(temp_files_left(out), 0);
    /* Packing onto the source itself is refused. */
    char *src;
    char *p = packed_idx("self.h5", &src);
    cr_assert_eq(ptl_data_pack(p, p, NULL, NULL), PTL_EINVAL);
    assert_msg_has("the output is the source");
    /* A packed file repacks to the same content. */
    char *again = tmp_path("again.h5");
    cr_assert_eq(ptl_data_pack(p, again, NULL, NULL), 0, "%s", ptl_error_message());
    struct ptl_dataset *a = open_ok(p, "test", NULL), *c = open_ok(again, "test", NULL);
    assert_same_split(a, c);
    ptl_dataset_close(a);
    ptl_dataset_close(c);
}
