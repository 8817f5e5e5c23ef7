/* Unit tests of ptl_weights_load / ptl_weights_save (src/io/weights.c) on tiny models built
 * with the internal graph API: round trips, strict and partial matching, shape and type
 * checks, broken files, and the promises that a failed load leaves the model unchanged and a
 * failed save leaves an existing file unchanged. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gradcheck.h"
#include "models/graph.h"
#include "ptl/ptl.h"

/* ---- fixtures ---- */

struct tiny_opts {
    int k;     /* conv1 kernel */
    int conv2; /* adds conv2 + bn2 */
    int classes;
    uint64_t seed;
};

/* conv1 -> bn1 -> relu [-> conv2 -> bn2] -> global avg pool = features -> fc = logits.
 * Parameters and buffers are filled with distinct random values (not the default init) so a
 * round trip that mixes entries up is caught. */
static struct ptl_model *tiny(struct tiny_opts o)
{
    struct ptl_model *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    struct ptl_model_config cfg = {
        .classes = o.classes, .in_c = 3, .in_h = 8, .in_w = 8, .seed = o.seed};
    graph_init(m, "tiny", &cfg);
    int x = graph_input(m, 3, 8, 8);
    x = graph_conv(m, "conv1", x, 4, o.k, 1, o.k / 2, 0);
    x = graph_bn(m, "bn1", x);
    x = graph_relu(m, x);
    if (o.conv2) {
        x = graph_conv(m, "conv2", x, 4, 3, 1, 1, 1);
        x = graph_bn(m, "bn2", x);
    }
    int f = graph_adaptive_avgpool(m, x, 1, 1);
    graph_output(m, "features", f);
    int l = graph_linear(m, "fc", f, o.classes, 1);
    graph_output(m, "logits", l);
    cr_assert_eq(graph_finish(m), 0, "graph_finish: %s", ptl_error_message());
    tc_fill(m->params, m->n_param_floats, o.seed * 7 + 1, -1.0f, 1.0f);
    tc_fill(m->buffers, m->n_buffer_floats, o.seed * 7 + 2, 0.1f, 2.0f);
    for (size_t i = 0; i < m->n_entries; i++) /* counters hold integers */
        if (m->entries[i].kind == PTL_ENTRY_COUNTER)
            *ptl_model_entry_data(m, i) = (float)(100 + 17 * i + o.seed);
    return m;
}

static struct tiny_opts base(uint64_t seed)
{
    return (struct tiny_opts){.k = 3, .conv2 = 0, .classes = 5, .seed = seed};
}

/* A fresh directory per test (Criterion runs each test in its own process). */
static char dir[64];
static char *tmp_path(const char *name)
{
    static char buf[8][160];
    static int next;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ptl-test-weights-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    char *p = buf[next++ % 8];
    snprintf(p, 160, "%s/%s", dir, name);
    return p;
}

static void cleanup(void)
{
    if (dir[0] == '\0')
        return;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(weights, .fini = cleanup);

/* A copy of the model's values to compare with later. */
struct snapshot {
    float *params, *buffers;
    size_t np, nb;
};

static struct snapshot snap(const struct ptl_model *m)
{
    struct snapshot s = {tc_alloc(m->n_param_floats + 1), tc_alloc(m->n_buffer_floats + 1),
                         m->n_param_floats, m->n_buffer_floats};
    memcpy(s.params, m->params, s.np * sizeof(float));
    memcpy(s.buffers, m->buffers, s.nb * sizeof(float));
    return s;
}

static int same_as(const struct ptl_model *m, const struct snapshot *s)
{
    return m->n_param_floats == s->np && m->n_buffer_floats == s->nb &&
           memcmp(m->params, s->params, s->np * sizeof(float)) == 0 &&
           memcmp(m->buffers, s->buffers, s->nb * sizeof(float)) == 0;
}

static void snap_free(struct snapshot *s)
{
    free(s->params);
    free(s->buffers);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = tc_alloc_bytes((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_bytes(const char *path, const char *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* No "<base>.tmp.*" left next to path. */
static int temp_files_left(const char *path)
{
    const char *slash = strrchr(path, '/');
    char d[160], prefix[160];
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

static void assert_msg_has(const char *want)
{
    cr_assert(strstr(ptl_error_message(), want) != NULL, "message '%s' lacks '%s'",
              ptl_error_message(), want);
}

/* ---- round trips ---- */

Test(weights, round_trip_is_bit_exact_and_keeps_types)
{
    struct ptl_model *a = tiny(base(1)), *b = tiny(base(2));
    /* An entry the forward never reads still travels like the rest. */
    long unused = ptl_model_find_entry(a, "fc.bias");
    a->entries[unused].used = 0;
    b->entries[unused].used = 0;
    const char *p = tmp_path("w.h5");
    cr_assert_eq(ptl_weights_save(a, p), 0, "%s", ptl_error_message());
    cr_assert_eq(temp_files_left(p), 0);
    struct snapshot sa = snap(a);
    cr_assert(!same_as(b, &sa));
    struct ptl_load_report r;
    cr_assert_eq(ptl_weights_load(b, p, PTL_LOAD_STRICT, &r), 0, "%s", ptl_error_message());
    cr_assert(same_as(b, &sa), "values differ after save -> load");
    cr_assert_eq(r.loaded, a->n_entries);
    cr_assert_eq(r.missing + r.unexpected, 0);

    /* The file is what docs/weights.md says: float32 of the entry's shape, int64 scalars. */
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t d = H5Dopen2(f, "conv1.weight", H5P_DEFAULT), t = H5Dget_type(d), s = H5Dget_space(d);
    hsize_t dims[4];
    cr_assert_eq(H5Sget_simple_extent_dims(s, dims, NULL), 4);
    cr_assert(dims[0] == 4 && dims[1] == 3 && dims[2] == 3 && dims[3] == 3);
    cr_assert(H5Tequal(t, H5T_IEEE_F32LE) > 0);
    H5Tclose(t), H5Sclose(s), H5Dclose(d);
    d = H5Dopen2(f, "bn1.num_batches_tracked", H5P_DEFAULT), t = H5Dget_type(d);
    s = H5Dget_space(d);
    cr_assert_eq(H5Sget_simple_extent_type(s), H5S_SCALAR);
    cr_assert(H5Tequal(t, H5T_STD_I64LE) > 0);
    int64_t count;
    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &count);
    cr_assert_eq(count, (int64_t)*ptl_model_entry_data(
                            a, ptl_model_find_entry(a, "bn1.num_batches_tracked")));
    H5Tclose(t), H5Sclose(s), H5Dclose(d), H5Fclose(f);

    /* Saving again over the existing file replaces it. */
    tc_fill(a->params, a->n_param_floats, 99, -1, 1);
    cr_assert_eq(ptl_weights_save(a, p), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_weights_load(b, p, PTL_LOAD_STRICT, NULL), 0, "%s", ptl_error_message());
    cr_assert_eq(memcmp(a->params, b->params, a->n_param_floats * sizeof(float)), 0);
    snap_free(&sa);
    ptl_model_free(a);
    ptl_model_free(b);
}

/* ---- names ---- */

Test(weights, strict_reports_missing_and_unexpected_names)
{
    struct tiny_opts big = base(3);
    big.conv2 = 1;
    struct ptl_model *small = tiny(base(4)), *large = tiny(big);
    const char *ps = tmp_path("small.h5"), *pl = tmp_path("large.h5");
    cr_assert_eq(ptl_weights_save(small, ps), 0);
    cr_assert_eq(ptl_weights_save(large, pl), 0);
    struct snapshot s0 = snap(small), l0 = snap(large);

    /* large's file into small: 7 unexpected names (conv2 weight+bias, bn2's five). */
    struct ptl_load_report r;
    cr_assert_eq(ptl_weights_load(small, pl, PTL_LOAD_STRICT, &r), PTL_EINVAL);
    assert_msg_has(pl);
    assert_msg_has("missing 0");
    assert_msg_has("unexpected 7 (bn2.bias, bn2.num_batches_tracked, bn2.running_mean, "
                   "bn2.running_var, ...)");
    cr_assert_eq(r.loaded, 0);
    cr_assert_eq(r.unexpected, 7);
    cr_assert(strstr(r.unexpected_names, "conv2.weight") != NULL, "%s", r.unexpected_names);
    cr_assert(same_as(small, &s0));

    /* small's file into large: the same 7 missing, in state_dict order. */
    cr_assert_eq(ptl_weights_load(large, ps, PTL_LOAD_STRICT, &r), PTL_EINVAL);
    assert_msg_has("missing 7 (conv2.weight, conv2.bias, bn2.weight, bn2.bias, ...)");
    assert_msg_has("unexpected 0");
    cr_assert_eq(r.missing, 7);
    cr_assert(same_as(large, &l0));
    snap_free(&s0);
    snap_free(&l0);
    ptl_model_free(small);
    ptl_model_free(large);
}

Test(weights, partial_loads_the_matches_and_reports_the_rest)
{
    struct tiny_opts big = base(5);
    big.conv2 = 1;
    struct ptl_model *small = tiny(base(6)), *large = tiny(big);
    const char *ps = tmp_path("small.h5"), *pl = tmp_path("large.h5");
    cr_assert_eq(ptl_weights_save(small, ps), 0);
    cr_assert_eq(ptl_weights_save(large, pl), 0);

    struct ptl_load_report r;
    cr_assert_eq(ptl_weights_load(large, ps, PTL_LOAD_PARTIAL, &r), 0, "%s", ptl_error_message());
    cr_assert_eq(r.loaded, small->n_entries);
    cr_assert_eq(r.missing, 7);
    cr_assert_eq(r.unexpected, 0);
    cr_assert_str_eq(r.missing_names, "conv2.weight, conv2.bias, bn2.weight, bn2.bias, "
                                      "bn2.running_mean, bn2.running_var, "
                                      "bn2.num_batches_tracked");
    cr_assert_str_eq(r.unexpected_names, "");
    for (size_t i = 0; i < small->n_entries; i++) {
        const struct ptl_entry *e = ptl_model_entry(small, i);
        long j = ptl_model_find_entry(large, e->name);
        cr_assert_eq(memcmp(ptl_model_entry_data(small, i), ptl_model_entry_data(large, (size_t)j),
                            e->count * sizeof(float)),
                     0, "%s not loaded", e->name);
    }
    /* and the other way round */
    cr_assert_eq(ptl_weights_load(small, pl, PTL_LOAD_PARTIAL, &r), 0);
    cr_assert_eq(r.loaded, small->n_entries);
    cr_assert_eq(r.missing, 0);
    cr_assert_eq(r.unexpected, 7);
    ptl_model_free(small);
    ptl_model_free(large);
}

Test(weights, shape_mismatch_names_entry_and_both_shapes_in_both_modes)
{
    struct tiny_opts k7 = base(7);
    k7.k = 7;
    struct ptl_model *m3 = tiny(base(8)), *m7 = tiny(k7);
    const char *p = tmp_path("k7.h5");
    cr_assert_eq(ptl_weights_save(m7, p), 0);
    struct snapshot s = snap(m3);
    cr_assert_eq(ptl_weights_load(m3, p, PTL_LOAD_STRICT, NULL), PTL_EINVAL);
    assert_msg_has("conv1.weight has shape [4,3,7,7], the model expects [4,3,3,3]");
    assert_msg_has(p);
    cr_assert_eq(ptl_weights_load(m3, p, PTL_LOAD_PARTIAL, NULL), PTL_EINVAL);
    assert_msg_has("conv1.weight has shape [4,3,7,7], the model expects [4,3,3,3]");
    cr_assert(same_as(m3, &s));
    snap_free(&s);

    /* Classifier of another class count: the first mismatch in state_dict order wins. */
    struct tiny_opts c9 = base(9);
    c9.classes = 9;
    struct ptl_model *m9 = tiny(c9);
    cr_assert_eq(ptl_weights_save(m9, p), 0);
    cr_assert_eq(ptl_weights_load(m3, p, PTL_LOAD_PARTIAL, NULL), PTL_EINVAL);
    assert_msg_has("fc.weight has shape [9,4], the model expects [5,4]");
    ptl_model_free(m3);
    ptl_model_free(m7);
    ptl_model_free(m9);
}

/* Backbone mode: a pre-trained classifier onto another class count, and a backbone into a PTL
 * network; everything but the backbone keeps its initialisation. */
Test(weights, backbone_mode_loads_only_backbone_entries)
{
    struct ptl_model_config c9 = {.classes = 9, .in_c = 1, .in_h = 8, .in_w = 8, .seed = 1};
    struct ptl_model_config c5 = c9;
    c5.classes = 5;
    c5.seed = 2;
    struct ptl_model *src, *dst, *ptl;
    cr_assert_eq(ptl_model_create(&src, "resnet18-narrow", &c9), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_model_create(&dst, "resnet18-narrow", &c5), 0);
    cr_assert_eq(ptl_model_create(&ptl, "ptl-resnet18-narrow", &c5), 0);
    const char *p = tmp_path("pretrained.h5");
    cr_assert_eq(ptl_weights_save(src, p), 0);
    cr_assert_eq(ptl_weights_load(dst, p, PTL_LOAD_PARTIAL, NULL), PTL_EINVAL);
    assert_msg_has("fc.weight has shape [9,128]");

    struct snapshot before = snap(dst), ptl_before = snap(ptl);
    struct ptl_load_report r[2];
    cr_assert_eq(ptl_weights_load(dst, p, PTL_LOAD_BACKBONE, &r[0]), 0, "%s",
                 ptl_error_message());
    cr_assert_eq(r[0].missing, 2);
    cr_assert_eq(r[0].unexpected, 2);
    cr_assert_str_eq(r[0].missing_names, "fc.weight, fc.bias");
    cr_assert_eq(ptl_weights_load(ptl, p, PTL_LOAD_BACKBONE, &r[1]), 0, "%s",
                 ptl_error_message());
    cr_assert_eq(r[1].unexpected, 2);
    for (int k = 0; k < 2; k++) {
        struct ptl_model *m = k ? ptl : dst;
        struct snapshot *old = k ? &ptl_before : &before;
        size_t loaded = 0;
        for (size_t i = 0; i < ptl_model_entry_count(m); i++) {
            const struct ptl_entry *e = ptl_model_entry(m, i);
            long j = ptl_model_find_entry(src, e->name);
            const float *now = ptl_model_entry_data(m, i);
            const float *was = (e->kind == PTL_ENTRY_PARAM ? old->params : old->buffers) +
                               e->offset;
            if (e->role == PTL_ROLE_BACKBONE) {
                cr_assert(j >= 0, "%s not in the source", e->name);
                cr_assert_eq(memcmp(now, ptl_model_entry_data(src, (size_t)j),
                                    e->count * sizeof(float)), 0, "%s not loaded", e->name);
                loaded++;
            } else {
                cr_assert_eq(memcmp(now, was, e->count * sizeof(float)), 0, "%s changed",
                             e->name);
            }
        }
        cr_assert_eq(r[k].loaded, loaded);
    }
    snap_free(&before);
    snap_free(&ptl_before);
    ptl_model_free(src);
    ptl_model_free(dst);
    ptl_model_free(ptl);
}

/* ---- broken files ---- */

Test(weights, not_hdf5_empty_missing_and_directory)
{
    struct ptl_model *m = tiny(base(10));
    struct snapshot s = snap(m);
    const char *txt = tmp_path("notes.h5");
    write_bytes(txt, "these are not weights\n", 22);
    cr_assert_eq(ptl_weights_load(m, txt, PTL_LOAD_STRICT, NULL), PTL_EFORMAT);
    char want[200];
    snprintf(want, sizeof want, "weights %s: not an HDF5 file", txt);
    assert_msg_has(want);

    const char *empty = tmp_path("empty.h5");
    write_bytes(empty, "", 0);
    cr_assert_eq(ptl_weights_load(m, empty, PTL_LOAD_STRICT, NULL), PTL_EFORMAT);
    assert_msg_has("not an HDF5 file (empty)");

    const char *none = tmp_path("none.h5");
    cr_assert_eq(ptl_weights_load(m, none, PTL_LOAD_PARTIAL, NULL), PTL_EIO);
    snprintf(want, sizeof want, "weights %s: cannot open (No such file or directory)", none);
    assert_msg_has(want);

    cr_assert_eq(ptl_weights_load(m, dir, PTL_LOAD_STRICT, NULL), PTL_EIO);
    assert_msg_has("is a directory");
    cr_assert_eq(ptl_weights_load(NULL, txt, PTL_LOAD_STRICT, NULL), PTL_EINVAL);
    cr_assert_eq(ptl_weights_load(m, NULL, PTL_LOAD_STRICT, NULL), PTL_EINVAL);
    cr_assert(same_as(m, &s));
    snap_free(&s);
    ptl_model_free(m);
}

Test(weights, truncated_file_is_reported_and_changes_nothing)
{
    struct ptl_model *a = tiny(base(11)), *b = tiny(base(12));
    const char *p = tmp_path("full.h5"), *t = tmp_path("cut.h5");
    cr_assert_eq(ptl_weights_save(a, p), 0);
    size_t len;
    char *bytes = read_all(p, &len);
    struct snapshot s = snap(b);
    /* Cut in the middle of the data, and inside the metadata at the start. */
    size_t cuts[] = {len / 2, len - 1, 100, 9};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(t, bytes, cuts[i]);
        cr_assert_eq(ptl_weights_load(b, t, PTL_LOAD_PARTIAL, NULL), PTL_EFORMAT, "cut at %zu: %s",
                     cuts[i], ptl_error_message());
        assert_msg_has("truncated or corrupt (");
        cr_assert(strstr(ptl_error_message(), "gave no reason") == NULL,
                  "HDF5's reason was lost: %s", ptl_error_message());
        cr_assert(same_as(b, &s), "model changed by a failed load (cut at %zu)", cuts[i]);
    }
    free(bytes);
    snap_free(&s);
    ptl_model_free(a);
    ptl_model_free(b);
}

/* ---- types ---- */

/* Writes every entry of m with the given HDF5 types (value type for floats, counter type). */
static void write_with_types(struct ptl_model *m, const char *path, hid_t vtype, hid_t ctype)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        hsize_t dims[4];
        for (int d = 0; d < e->ndim; d++)
            dims[d] = (hsize_t)e->shape[d];
        hid_t sp = e->ndim ? H5Screate_simple(e->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        int counter = e->kind == PTL_ENTRY_COUNTER;
        hid_t ds = H5Dcreate2(f, e->name, counter ? ctype : vtype, sp, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        double *v = calloc(e->count, sizeof *v);
        for (size_t k = 0; k < e->count; k++)
            v[k] = (double)ptl_model_entry_data(m, i)[k];
        cr_assert_geq(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
        free(v);
        H5Dclose(ds);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

Test(weights, float64_values_and_int32_or_int64_counters_are_converted)
{
    struct ptl_model *a = tiny(base(13)), *b = tiny(base(14));
    const char *p = tmp_path("f64.h5");
    hid_t counters[] = {H5T_STD_I64LE, H5T_STD_I32LE, H5T_STD_I64BE, H5T_IEEE_F64LE};
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        write_with_types(a, p, H5T_IEEE_F64LE, counters[c]);
        tc_fill(b->params, b->n_param_floats, 50 + c, -1, 1);
        cr_assert_eq(ptl_weights_load(b, p, PTL_LOAD_STRICT, NULL), 0, "%s", ptl_error_message());
        /* float -> double -> float is exact */
        cr_assert_eq(memcmp(a->params, b->params, a->n_param_floats * sizeof(float)), 0);
        cr_assert_eq(memcmp(a->buffers, b->buffers, a->n_buffer_floats * sizeof(float)), 0);
    }
    ptl_model_free(a);
    ptl_model_free(b);
}

Test(weights, integer_values_and_scalar_as_one_element_vector)
{
    struct ptl_model *a = tiny(base(15)), *b = tiny(base(16));
    const char *p = tmp_path("int.h5");
    write_with_types(a, p, H5T_STD_I32LE, H5T_STD_I64LE);
    struct snapshot s = snap(b);
    cr_assert_eq(ptl_weights_load(b, p, PTL_LOAD_PARTIAL, NULL), PTL_EFORMAT);
    assert_msg_has("conv1.weight has an unsupported type (integer), expected float32 or float64");
    cr_assert(same_as(b, &s));
    snap_free(&s);

    /* A counter stored as shape [1] (old PyTorch) loads like the scalar. */
    cr_assert_eq(ptl_weights_save(a, p), 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "bn1.num_batches_tracked", H5P_DEFAULT);
    hsize_t one = 1;
    hid_t sp = H5Screate_simple(1, &one, NULL);
    hid_t ds = H5Dcreate2(f, "bn1.num_batches_tracked", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    int64_t v = 123456;
    H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
    H5Dclose(ds), H5Sclose(sp), H5Fclose(f);
    cr_assert_eq(ptl_weights_load(b, p, PTL_LOAD_STRICT, NULL), 0, "%s", ptl_error_message());
    cr_assert_float_eq(*ptl_model_entry_data(b, ptl_model_find_entry(b, "bn1.num_batches_tracked")),
                       123456.0f, 0);
    ptl_model_free(a);
    ptl_model_free(b);
}

Test(weights, group_at_root_is_unexpected)
{
    struct ptl_model *a = tiny(base(17));
    const char *p = tmp_path("group.h5");
    cr_assert_eq(ptl_weights_save(a, p), 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "extra", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
    cr_assert_eq(ptl_weights_load(a, p, PTL_LOAD_STRICT, NULL), PTL_EINVAL);
    assert_msg_has("unexpected 1 (extra)");
    struct ptl_load_report r;
    cr_assert_eq(ptl_weights_load(a, p, PTL_LOAD_PARTIAL, &r), 0);
    cr_assert_eq(r.unexpected, 1);
    ptl_model_free(a);
}

/* ---- the model is unchanged when reading values fails halfway ---- */

Test(weights, read_error_after_some_entries_changes_nothing)
{
    struct ptl_model *a = tiny(base(18)), *b = tiny(base(19));
    const char *p = tmp_path("ext.h5");
    cr_assert_eq(ptl_weights_save(a, p), 0);
    /* Replace the last entry (fc.bias) by a dataset whose values live in an external file that
     * does not exist: the file opens and validates, the read of that one entry fails. */
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(H5Ldelete(f, "fc.bias", H5P_DEFAULT), 0);
    hsize_t n = 5;
    hid_t sp = H5Screate_simple(1, &n, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, tmp_path("gone.bin"), 0, 5 * sizeof(float));
    hid_t ds = H5Dcreate2(f, "fc.bias", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(ds, 0);
    H5Dclose(ds), H5Pclose(dcpl), H5Sclose(sp), H5Fclose(f);
    unlink(tmp_path("gone.bin"));

    struct snapshot s = snap(b);
    int rc = ptl_weights_load(b, p, PTL_LOAD_STRICT, NULL);
    cr_assert_eq(rc, PTL_EFORMAT, "rc %d: %s", rc, ptl_error_message());
    assert_msg_has("fc.bias: truncated or corrupt (");
    cr_assert(same_as(b, &s), "a failed load changed the model");
    snap_free(&s);
    ptl_model_free(a);
    ptl_model_free(b);
}

/* ---- a failed save never clobbers an existing file ---- */

static void assert_file_is(const char *path, const char *bytes, size_t len)
{
    size_t now;
    char *b = read_all(path, &now);
    cr_assert(now == len && memcmp(b, bytes, len) == 0, "%s was changed", path);
    free(b);
}

Test(weights, failed_save_into_unwritable_directory_keeps_old_file)
{
    if (geteuid() == 0)
        cr_skip_test("running as root: directory permissions do not stop root (the other "
                     "failed-save tests still run)");
    struct ptl_model *a = tiny(base(20));
    char sub[200];
    snprintf(sub, sizeof sub, "%s", tmp_path("ro"));
    cr_assert_eq(mkdir(sub, 0700), 0);
    char p[240];
    snprintf(p, sizeof p, "%s/w.h5", sub);
    cr_assert_eq(ptl_weights_save(a, p), 0);
    size_t len;
    char *old = read_all(p, &len);
    chmod(sub, 0500);
    tc_fill(a->params, a->n_param_floats, 77, -1, 1);
    cr_assert_eq(ptl_weights_save(a, p), PTL_EIO);
    assert_msg_has("cannot create");
    assert_msg_has("Permission denied");
    chmod(sub, 0700);
    assert_file_is(p, old, len);
    cr_assert_eq(temp_files_left(p), 0);
    free(old);
    ptl_model_free(a);
}

Test(weights, failed_write_halfway_keeps_old_file_and_leaves_no_temp)
{
    struct ptl_model *a = tiny(base(21));
    const char *p = tmp_path("w.h5");
    cr_assert_eq(ptl_weights_save(a, p), 0);
    size_t len;
    char *old = read_all(p, &len);
    /* A name HDF5 cannot create at the root ('/' needs a group): fails after the first
     * entries are written to the temporary file. */
    long i = ptl_model_find_entry(a, "fc.bias");
    free((char *)a->entries[i].name);
    a->entries[i].name = strdup("fc/bias");
    cr_assert_eq(ptl_weights_save(a, p), PTL_EIO);
    assert_msg_has("cannot write fc/bias");
    assert_file_is(p, old, len);
    cr_assert_eq(temp_files_left(p), 0);

    /* Target is a directory: the rename fails, the directory stays, no temp is left. */
    const char *d = tmp_path("adir");
    cr_assert_eq(mkdir(d, 0700), 0);
    free((char *)a->entries[i].name);
    a->entries[i].name = strdup("fc.bias");
    cr_assert_eq(ptl_weights_save(a, d), PTL_EIO);
    assert_msg_has("cannot rename");
    struct stat st;
    cr_assert(stat(d, &st) == 0 && S_ISDIR(st.st_mode));
    cr_assert_eq(temp_files_left(d), 0);

    /* Missing directory: one line naming the temp file and the reason. */
    cr_assert_eq(ptl_weights_save(a, "/nonexistent-ptl-dir/w.h5"), PTL_EIO);
    assert_msg_has("No such file or directory");
    cr_assert_eq(ptl_weights_save(NULL, p), PTL_EINVAL);
    free(old);
    ptl_model_free(a);
}
