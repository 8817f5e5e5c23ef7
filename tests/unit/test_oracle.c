/* The PyTorch oracle: runs every op of ptl/ops.h on the cases of the fixture file written by
 * tests/reference/make_op_fixtures.py and compares every output and gradient with torch's.
 *
 * File: env PTL_OP_FIXTURES, else $top_srcdir/tests/reference/ops.h5 (tests/reference/oracle.sh
 * sets it). Layout: /<op>/<case>, attributes = the op's parameters, datasets = inputs, dy,
 * expected outputs and gradients (see the generator). One Test per op; each fails when:
 * - a tensor's relative error max|ours - ref| / max(max|ref|, 1e-6) exceeds 1e-4 (the reference
 *   is float64 math on the same float32 inputs, so this bounds ptl's own float32 error), or an
 *   integer output (argmax, triplet mining) differs at all;
 * - the file is missing or unreadable, the op has no case in it, or a case holds a dataset this
 *   harness does not compare (so neither a shrunken nor a grown fixture passes silently);
 * - an op returns an error, or an HDF5 handle is left open.
 * Per tensor the max difference is printed to stderr (llm.c test_gpt2 style).
 */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/ops.h"

#define ORACLE_RTOL 1e-4  /* relative error bound, see above and docs/testing.md */
#define ORACLE_FLOOR 1e-6 /* max|ref| below this counts as this: all-zero tensors compare */
#define MAX_BUFFERS 64
#define MAX_PARTS 16 /* concat / split inputs per case */

/* One case being run: its group, the buffers to free, the datasets read (all must be). */
struct ocase {
    hid_t g;
    const char *op;
    char name[128];
    void *mem[MAX_BUFFERS];
    int nmem;
    char seen[MAX_BUFFERS][32];
    int nseen;
    int broken;   /* reading or running failed: the case stops, the test has failed */
    int compared; /* tensors compared */
};

/* ------------------------------------------------------------------ file access ------------ */

static void case_fail(struct ocase *c, const char *what)
{
    cr_expect(0, "%s/%s: %s", c->op, c->name, what);
    c->broken = 1;
}

static int attr_int(struct ocase *c, const char *name)
{
    int v = 0;
    if (c->broken)
        return 0;
    hid_t a = H5Aopen(c->g, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT, &v) < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "cannot read int attribute '%s'", name);
        case_fail(c, msg);
    }
    if (a >= 0)
        H5Aclose(a);
    return v;
}

static float attr_float(struct ocase *c, const char *name)
{
    float v = 0;
    if (c->broken)
        return 0;
    hid_t a = H5Aopen(c->g, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_FLOAT, &v) < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "cannot read float attribute '%s'", name);
        case_fail(c, msg);
    }
    if (a >= 0)
        H5Aclose(a);
    return v;
}

static void *track(struct ocase *c, void *p)
{
    if (p == NULL || c->nmem == MAX_BUFFERS) {
        free(p);
        case_fail(c, "out of memory or too many buffers");
        return NULL;
    }
    return c->mem[c->nmem++] = p;
}

/* Zeroed scratch of n elements of `size` bytes, freed with the case. */
static void *buf(struct ocase *c, size_t n, size_t size)
{
    if (c->broken)
        return NULL;
    return track(c, calloc(n ? n : 1, size));
}

static float *buf_f(struct ocase *c, size_t n)
{
    return buf(c, n, sizeof(float));
}

/* Reads dataset `name` as n elements of mem_type (fails the case on any other count). */
static void *read_ds(struct ocase *c, const char *name, size_t n, hid_t mem_type, size_t size)
{
    if (c->broken)
        return NULL;
    if (c->nseen < MAX_BUFFERS)
        snprintf(c->seen[c->nseen++], sizeof c->seen[0], "%s", name);
    char msg[160];
    hid_t d = H5Dopen2(c->g, name, H5P_DEFAULT);
    if (d < 0) {
        snprintf(msg, sizeof msg, "dataset '%s' missing or unreadable", name);
        case_fail(c, msg);
        return NULL;
    }
    hid_t sp = H5Dget_space(d);
    hssize_t count = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    void *p = NULL;
    if (count < 0 || (size_t)count != n) {
        snprintf(msg, sizeof msg, "dataset '%s' has %lld elements, the attributes say %zu", name,
                 (long long)count, n);
        case_fail(c, msg);
    } else if ((p = buf(c, n, size)) != NULL &&
               H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p) < 0) {
        snprintf(msg, sizeof msg, "reading dataset '%s' failed", name);
        case_fail(c, msg);
        p = NULL;
    }
    H5Dclose(d);
    return p;
}

static float *ds_f(struct ocase *c, const char *name, size_t n)
{
    return read_ds(c, name, n, H5T_NATIVE_FLOAT, sizeof(float));
}

static int32_t *ds_i(struct ocase *c, const char *name, size_t n)
{
    return read_ds(c, name, n, H5T_NATIVE_INT32, sizeof(int32_t));
}

/* ------------------------------------------------------------------ comparisons ------------ */

/* Compares ours with the reference dataset `name` and prints the max difference. */
static void check(struct ocase *c, const char *name, const float *ours, size_t n)
{
    const float *ref = ds_f(c, name, n);
    if (ref == NULL || ours == NULL)
        return;
    double diff = 0, scale = ORACLE_FLOOR;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        if (!(d <= diff)) { /* also catches NaN */
            diff = d;
            at = i;
        }
        if (fabs((double)ref[i]) > scale)
            scale = fabs((double)ref[i]);
    }
    double rel = diff / scale;
    int ok = rel <= ORACLE_RTOL;
    fprintf(stderr, "%s %-20s %-44s %-16s max|diff| %.3e  rel %.3e\n", ok ? "OK " : "BAD", c->op,
            c->name, name, diff, rel);
    cr_expect(ok,
              "%s/%s: %s: relative error %.3e > %.0e (max|diff| %.3e at element %zu: ptl %.9g, "
              "torch %.9g; max|ref| %.3e)",
              c->op, c->name, name, rel, ORACLE_RTOL, diff, at, (double)ours[at], (double)ref[at],
              scale);
    c->compared++;
}

/* Integer outputs (argmax, mining) must match exactly: the inputs have no ties. */
static void check_i(struct ocase *c, const char *name, const int32_t *ours, size_t n)
{
    const int32_t *ref = ds_i(c, name, n);
    if (ref == NULL || ours == NULL)
        return;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (ours[i] != ref[i] && bad++ == 0)
            first = i;
    fprintf(stderr, "%s %-20s %-44s %-16s %zu of %zu differ\n", bad ? "BAD" : "OK ", c->op, c->name,
            name, bad, n);
    cr_expect(bad == 0, "%s/%s: %s: %zu of %zu differ; first at %zu: ptl %d, torch %d", c->op,
              c->name, name, bad, n, first, bad ? ours[first] : 0, bad ? ref[first] : 0);
    c->compared++;
}

/* An op call: on an error the case stops with ptl's message. */
static int ran(struct ocase *c, int rc, const char *fn)
{
    if (c->broken)
        return 0;
    if (rc != PTL_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s returned %d: %s", fn, rc, ptl_error_message());
        case_fail(c, msg);
        return 0;
    }
    return 1;
}

/* The call is not even made once the case is broken (its buffers may be NULL). */
#define RUN(c, call) (!(c)->broken && ran((c), (call), #call))

/* ------------------------------------------------------------------ the ops ---------------- */

static void run_gemm(struct ocase *c)
{
    int ta = attr_int(c, "trans_a"), tb = attr_int(c, "trans_b");
    int m = attr_int(c, "m"), n = attr_int(c, "n"), k = attr_int(c, "k");
    int lda = attr_int(c, "lda"), ldb = attr_int(c, "ldb"), ldc = attr_int(c, "ldc");
    float alpha = attr_float(c, "alpha"), beta = attr_float(c, "beta");
    const float *a = ds_f(c, "a", (size_t)(ta ? k : m) * lda);
    const float *b = ds_f(c, "b", (size_t)(tb ? n : k) * ldb);
    float *out = ds_f(c, "c", (size_t)m * ldc); /* C (m, ldc): our copy, updated in place */
    if (RUN(c, ptl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc)))
        check(c, "out", out, (size_t)m * ldc);
}

static void run_conv2d(struct ocase *c)
{
    struct ptl_conv2d_shape s = {.n = attr_int(c, "n"),
                                 .c_in = attr_int(c, "c_in"),
                                 .h = attr_int(c, "h"),
                                 .w = attr_int(c, "w"),
                                 .c_out = attr_int(c, "c_out"),
                                 .kh = attr_int(c, "kh"),
                                 .kw = attr_int(c, "kw"),
                                 .stride_h = attr_int(c, "stride_h"),
                                 .stride_w = attr_int(c, "stride_w"),
                                 .pad_h = attr_int(c, "pad_h"),
                                 .pad_w = attr_int(c, "pad_w")};
    int has_bias = attr_int(c, "has_bias"), ho = 0, wo = 0;
    if (!RUN(c, ptl_conv2d_output_size(&s, &ho, &wo)))
        return;
    size_t nx = (size_t)s.n * s.c_in * s.h * s.w, nw = (size_t)s.c_out * s.c_in * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.c_out * ho * wo;
    const float *x = ds_f(c, "x", nx), *wt = ds_f(c, "weight", nw), *dy = ds_f(c, "dy", ny);
    const float *bias = has_bias ? ds_f(c, "bias", s.c_out) : NULL;
    float *y = buf_f(c, ny), *dx = buf_f(c, nx), *dw = buf_f(c, nw);
    float *db = has_bias ? buf_f(c, s.c_out) : NULL;
    float *ws = buf_f(c, ptl_conv2d_workspace_floats(&s));
    if (!RUN(c, ptl_conv2d_forward(y, x, wt, bias, &s, ws)))
        return;
    check(c, "y", y, ny);
    if (!RUN(c, ptl_conv2d_backward(dx, dw, db, dy, x, wt, &s, ws)))
        return;
    check(c, "dx", dx, nx);
    check(c, "dweight", dw, nw);
    if (has_bias)
        check(c, "dbias", db, s.c_out);
}

static void run_linear(struct ocase *c)
{
    int n = attr_int(c, "n"), fi = attr_int(c, "in_features"), fo = attr_int(c, "out_features");
    int has_bias = attr_int(c, "has_bias");
    size_t nx = (size_t)n * fi, nw = (size_t)fo * fi, ny = (size_t)n * fo;
    const float *x = ds_f(c, "x", nx), *wt = ds_f(c, "weight", nw), *dy = ds_f(c, "dy", ny);
    const float *bias = has_bias ? ds_f(c, "bias", fo) : NULL;
    float *y = buf_f(c, ny), *dx = buf_f(c, nx), *dw = buf_f(c, nw);
    float *db = has_bias ? buf_f(c, fo) : NULL;
    if (!RUN(c, ptl_linear_forward(y, x, wt, bias, n, fi, fo)))
        return;
    check(c, "y", y, ny);
    if (!RUN(c, ptl_linear_backward(dx, dw, db, dy, x, wt, n, fi, fo)))
        return;
    check(c, "dx", dx, nx);
    check(c, "dweight", dw, nw);
    if (has_bias)
        check(c, "dbias", db, fo);
}

static struct ptl_batchnorm_shape bn_shape(struct ocase *c)
{
    struct ptl_batchnorm_shape s = {.n = attr_int(c, "n"),
                                    .c = attr_int(c, "c"),
                                    .hw = attr_int(c, "hw"),
                                    .eps = attr_float(c, "eps"),
                                    .momentum = attr_float(c, "momentum")};
    return s;
}

static void run_batchnorm_train(struct ocase *c)
{
    struct ptl_batchnorm_shape s = bn_shape(c);
    int affine = attr_int(c, "affine");
    size_t nx = (size_t)s.n * s.c * s.hw, nc = (size_t)s.c;
    const float *x = ds_f(c, "x", nx), *dy = ds_f(c, "dy", nx);
    const float *gamma = affine ? ds_f(c, "gamma", nc) : NULL;
    const float *beta = affine ? ds_f(c, "beta", nc) : NULL;
    /* our copies of the running statistics, updated in place */
    float *rm = ds_f(c, "running_mean_in", nc), *rv = ds_f(c, "running_var_in", nc);
    float *y = buf_f(c, nx), *mean = buf_f(c, nc), *invstd = buf_f(c, nc), *dx = buf_f(c, nx);
    float *dgamma = affine ? buf_f(c, nc) : NULL, *dbeta = affine ? buf_f(c, nc) : NULL;
    if (!RUN(c, ptl_batchnorm_forward_train(y, mean, invstd, rm, rv, x, gamma, beta, &s)))
        return;
    check(c, "y", y, nx);
    check(c, "save_mean", mean, nc);
    check(c, "save_invstd", invstd, nc);
    check(c, "running_mean", rm, nc);
    check(c, "running_var", rv, nc);
    if (!RUN(c, ptl_batchnorm_backward_train(dx, dgamma, dbeta, dy, x, mean, invstd, gamma, &s)))
        return;
    check(c, "dx", dx, nx);
    if (affine) {
        check(c, "dgamma", dgamma, nc);
        check(c, "dbeta", dbeta, nc);
    }
}

static void run_batchnorm_eval(struct ocase *c)
{
    struct ptl_batchnorm_shape s = bn_shape(c);
    int affine = attr_int(c, "affine");
    size_t nx = (size_t)s.n * s.c * s.hw, nc = (size_t)s.c;
    const float *x = ds_f(c, "x", nx), *dy = ds_f(c, "dy", nx);
    const float *gamma = affine ? ds_f(c, "gamma", nc) : NULL;
    const float *beta = affine ? ds_f(c, "beta", nc) : NULL;
    const float *rm = ds_f(c, "running_mean", nc), *rv = ds_f(c, "running_var", nc);
    float *y = buf_f(c, nx), *dx = buf_f(c, nx);
    float *dgamma = affine ? buf_f(c, nc) : NULL, *dbeta = affine ? buf_f(c, nc) : NULL;
    if (!RUN(c, ptl_batchnorm_forward_eval(y, x, gamma, beta, rm, rv, &s)))
        return;
    check(c, "y", y, nx);
    if (!RUN(c, ptl_batchnorm_backward_eval(dx, dgamma, dbeta, dy, x, gamma, rm, rv, &s)))
        return;
    check(c, "dx", dx, nx);
    if (affine) {
        check(c, "dgamma", dgamma, nc);
        check(c, "dbeta", dbeta, nc);
    }
}

typedef int (*act_fwd_fn)(float *, const float *, size_t);
typedef int (*act_bwd_fn)(float *, const float *, const float *, size_t);

/* Backward is fed ptl's own forward output, as in a network. */
static void run_activation(struct ocase *c, act_fwd_fn fwd, act_bwd_fn bwd, const char *fname)
{
    size_t n = (size_t)attr_int(c, "n");
    const float *x = ds_f(c, "x", n), *dy = ds_f(c, "dy", n);
    float *y = buf_f(c, n), *dx = buf_f(c, n);
    char what[64];
    snprintf(what, sizeof what, "ptl_%s_forward", fname);
    if (c->broken || !ran(c, fwd(y, x, n), what))
        return;
    check(c, "y", y, n);
    snprintf(what, sizeof what, "ptl_%s_backward", fname);
    if (c->broken || !ran(c, bwd(dx, dy, y, n), what))
        return;
    check(c, "dx", dx, n);
}

static void run_relu(struct ocase *c)
{
    run_activation(c, ptl_relu_forward, ptl_relu_backward, "relu");
}

static void run_sigmoid(struct ocase *c)
{
    run_activation(c, ptl_sigmoid_forward, ptl_sigmoid_backward, "sigmoid");
}

static void run_tanh(struct ocase *c)
{
    run_activation(c, ptl_tanh_forward, ptl_tanh_backward, "tanh");
}

static struct ptl_pool2d_shape pool_shape(struct ocase *c)
{
    struct ptl_pool2d_shape s = {.n = attr_int(c, "n"),
                                 .c = attr_int(c, "c"),
                                 .h = attr_int(c, "h"),
                                 .w = attr_int(c, "w"),
                                 .kh = attr_int(c, "kh"),
                                 .kw = attr_int(c, "kw"),
                                 .stride_h = attr_int(c, "stride_h"),
                                 .stride_w = attr_int(c, "stride_w"),
                                 .pad_h = attr_int(c, "pad_h"),
                                 .pad_w = attr_int(c, "pad_w")};
    return s;
}

static void run_maxpool2d(struct ocase *c)
{
    struct ptl_pool2d_shape s = pool_shape(c);
    int ho = 0, wo = 0;
    if (!RUN(c, ptl_pool2d_output_size(&s, &ho, &wo)))
        return;
    size_t nx = (size_t)s.n * s.c * s.h * s.w, ny = (size_t)s.n * s.c * ho * wo;
    const float *x = ds_f(c, "x", nx), *dy = ds_f(c, "dy", ny);
    float *y = buf_f(c, ny), *dx = buf_f(c, nx);
    int32_t *argmax = buf(c, ny, sizeof(int32_t));
    if (!RUN(c, ptl_maxpool2d_forward(y, argmax, x, &s)))
        return;
    check(c, "y", y, ny);
    check_i(c, "argmax", argmax, ny);
    if (!RUN(c, ptl_maxpool2d_backward(dx, dy, argmax, &s)))
        return;
    check(c, "dx", dx, nx);
}

static void run_avgpool2d(struct ocase *c)
{
    struct ptl_pool2d_shape s = pool_shape(c);
    int cip = attr_int(c, "count_include_pad"), ho = 0, wo = 0;
    if (!RUN(c, ptl_pool2d_output_size(&s, &ho, &wo)))
        return;
    size_t nx = (size_t)s.n * s.c * s.h * s.w, ny = (size_t)s.n * s.c * ho * wo;
    const float *x = ds_f(c, "x", nx), *dy = ds_f(c, "dy", ny);
    float *y = buf_f(c, ny), *dx = buf_f(c, nx);
    if (!RUN(c, ptl_avgpool2d_forward(y, x, &s, cip)))
        return;
    check(c, "y", y, ny);
    if (!RUN(c, ptl_avgpool2d_backward(dx, dy, &s, cip)))
        return;
    check(c, "dx", dx, nx);
}

static void run_adaptive(struct ocase *c, int is_max)
{
    int n = attr_int(c, "n"), ch = attr_int(c, "c"), h = attr_int(c, "h"), w = attr_int(c, "w");
    int ho = attr_int(c, "h_out"), wo = attr_int(c, "w_out");
    size_t nx = (size_t)n * ch * h * w, ny = (size_t)n * ch * ho * wo;
    const float *x = ds_f(c, "x", nx), *dy = ds_f(c, "dy", ny);
    float *y = buf_f(c, ny), *dx = buf_f(c, nx);
    if (is_max) {
        int32_t *argmax = buf(c, ny, sizeof(int32_t));
        if (!RUN(c, ptl_adaptive_maxpool2d_forward(y, argmax, x, n, ch, h, w, ho, wo)))
            return;
        check(c, "y", y, ny);
        if (!RUN(c, ptl_adaptive_maxpool2d_backward(dx, dy, argmax, n, ch, h, w, ho, wo)))
            return;
    } else {
        if (!RUN(c, ptl_adaptive_avgpool2d_forward(y, x, n, ch, h, w, ho, wo)))
            return;
        check(c, "y", y, ny);
        if (!RUN(c, ptl_adaptive_avgpool2d_backward(dx, dy, n, ch, h, w, ho, wo)))
            return;
    }
    check(c, "dx", dx, nx);
}

static void run_adaptive_avgpool2d(struct ocase *c)
{
    run_adaptive(c, 0);
}

static void run_adaptive_maxpool2d(struct ocase *c)
{
    run_adaptive(c, 1);
}

/* Shared by concat and split: count, n, hw, skip and the channel list. */
static const int32_t *parts(struct ocase *c, int *count, int *n, int *hw, int *skip, int *total)
{
    *count = attr_int(c, "count");
    *n = attr_int(c, "n");
    *hw = attr_int(c, "hw");
    *skip = attr_int(c, "skip");
    if (!c->broken && (*count < 1 || *count > MAX_PARTS))
        case_fail(c, "count outside [1, 16]");
    const int32_t *ch = ds_i(c, "channels", c->broken ? 0 : (size_t)*count);
    *total = 0;
    for (int i = 0; ch != NULL && i < *count; i++)
        *total += ch[i];
    return ch;
}

static void run_concat(struct ocase *c)
{
    int count, n, hw, skip, total;
    const int32_t *ch = parts(c, &count, &n, &hw, &skip, &total);
    if (c->broken)
        return;
    const float *ins[MAX_PARTS];
    float *d_ins[MAX_PARTS];
    char name[16];
    for (int i = 0; i < count; i++) {
        snprintf(name, sizeof name, "x%d", i);
        ins[i] = ds_f(c, name, (size_t)n * ch[i] * hw);
        d_ins[i] = i == skip ? NULL : buf_f(c, (size_t)n * ch[i] * hw); /* NULL: not wanted */
    }
    size_t ny = (size_t)n * total * hw;
    const float *dy = ds_f(c, "dy", ny);
    float *y = buf_f(c, ny);
    if (!RUN(c, ptl_concat_forward(y, ins, ch, count, n, hw)))
        return;
    check(c, "y", y, ny);
    if (!RUN(c, ptl_concat_backward(d_ins, dy, ch, count, n, hw)))
        return;
    for (int i = 0; i < count; i++) {
        if (i == skip)
            continue;
        snprintf(name, sizeof name, "dx%d", i);
        check(c, name, d_ins[i], (size_t)n * ch[i] * hw);
    }
}

static void run_split(struct ocase *c)
{
    int count, n, hw, skip, total;
    const int32_t *ch = parts(c, &count, &n, &hw, &skip, &total);
    if (c->broken)
        return;
    float *outs[MAX_PARTS];
    const float *d_outs[MAX_PARTS];
    char name[16];
    for (int i = 0; i < count; i++) {
        outs[i] = buf_f(c, (size_t)n * ch[i] * hw);
        snprintf(name, sizeof name, "dy%d", i);
        /* NULL: that part received no gradient */
        d_outs[i] = i == skip ? NULL : ds_f(c, name, (size_t)n * ch[i] * hw);
    }
    size_t nx = (size_t)n * total * hw;
    const float *x = ds_f(c, "x", nx);
    float *dx = buf_f(c, nx);
    if (!RUN(c, ptl_split_forward(outs, x, ch, count, n, hw)))
        return;
    for (int i = 0; i < count; i++) {
        snprintf(name, sizeof name, "y%d", i);
        check(c, name, outs[i], (size_t)n * ch[i] * hw);
    }
    if (!RUN(c, ptl_split_backward(dx, d_outs, ch, count, n, hw)))
        return;
    check(c, "dx", dx, nx);
}

static void run_eltwise(struct ocase *c, int is_mul)
{
    size_t n = (size_t)attr_int(c, "n");
    const float *a = ds_f(c, "a", n), *b = ds_f(c, "b", n), *dy = ds_f(c, "dy", n);
    float *y = buf_f(c, n), *da = buf_f(c, n), *db = buf_f(c, n);
    if (!(is_mul ? RUN(c, ptl_mul_forward(y, a, b, n)) : RUN(c, ptl_add_forward(y, a, b, n))))
        return;
    check(c, "y", y, n);
    if (!(is_mul ? RUN(c, ptl_mul_backward(da, db, dy, a, b, n))
                 : RUN(c, ptl_add_backward(da, db, dy, n))))
        return;
    check(c, "da", da, n);
    check(c, "db", db, n);
}

static void run_add(struct ocase *c)
{
    run_eltwise(c, 0);
}

static void run_mul(struct ocase *c)
{
    run_eltwise(c, 1);
}

static void run_cross_entropy(struct ocase *c)
{
    int n = attr_int(c, "n"), k = attr_int(c, "k");
    float ls = attr_float(c, "label_smoothing");
    size_t nz = (size_t)n * k;
    const float *logits = ds_f(c, "logits", nz), *dy = ds_f(c, "dy", 1);
    const int32_t *labels = ds_i(c, "labels", (size_t)n);
    float *loss = buf_f(c, 1), *probs = buf_f(c, nz), *dlogits = buf_f(c, nz);
    if (!RUN(c, ptl_cross_entropy_forward(loss, probs, logits, labels, n, k, ls)))
        return;
    check(c, "loss", loss, 1);
    check(c, "probs", probs, nz);
    if (!RUN(c, ptl_cross_entropy_backward(dlogits, probs, labels, n, k, ls, dy[0])))
        return;
    check(c, "dlogits", dlogits, nz);
}

static void run_triplet_hard(struct ocase *c)
{
    int n = attr_int(c, "n"), d = attr_int(c, "d");
    float margin = attr_float(c, "margin");
    size_t nf = (size_t)n * d;
    const float *feat = ds_f(c, "feat", nf), *dy = ds_f(c, "dy", 1);
    const int32_t *labels = ds_i(c, "labels", (size_t)n);
    float *loss = buf_f(c, 1), *dfeat = buf_f(c, nf);
    int32_t *pos = buf(c, (size_t)n, sizeof(int32_t)), *neg = buf(c, (size_t)n, sizeof(int32_t));
    if (!RUN(c, ptl_triplet_hard_forward(loss, pos, neg, feat, labels, n, d, margin)))
        return;
    check(c, "loss", loss, 1);
    check_i(c, "pos_idx", pos, (size_t)n);
    check_i(c, "neg_idx", neg, (size_t)n);
    if (!RUN(c, ptl_triplet_hard_backward(dfeat, feat, pos, neg, n, d, margin, dy[0])))
        return;
    check(c, "dfeat", dfeat, nf);
}

/* ------------------------------------------------------------------ driver ----------------- */

/* Every op of ops.h with the runner of its cases; each must have cases in the file. */
static const struct {
    const char *op;
    void (*run)(struct ocase *);
} OPS[] = {
    {"gemm", run_gemm},
    {"conv2d", run_conv2d},
    {"linear", run_linear},
    {"batchnorm2d_train", run_batchnorm_train},
    {"batchnorm1d_train", run_batchnorm_train},
    {"batchnorm2d_eval", run_batchnorm_eval},
    {"batchnorm1d_eval", run_batchnorm_eval},
    {"relu", run_relu},
    {"sigmoid", run_sigmoid},
    {"tanh", run_tanh},
    {"maxpool2d", run_maxpool2d},
    {"avgpool2d", run_avgpool2d},
    {"adaptive_avgpool2d", run_adaptive_avgpool2d},
    {"adaptive_maxpool2d", run_adaptive_maxpool2d},
    {"concat", run_concat},
    {"split", run_split},
    {"add", run_add},
    {"mul", run_mul},
    {"cross_entropy", run_cross_entropy},
    {"triplet_hard", run_triplet_hard},
};
#define N_OPS (sizeof OPS / sizeof OPS[0])

static void fixture_path(char *path, size_t size)
{
    const char *env = getenv("PTL_OP_FIXTURES");
    const char *top = getenv("top_srcdir");
    if (env != NULL && *env != '\0')
        snprintf(path, size, "%s", env);
    else
        snprintf(path, size, "%s/tests/reference/ops.h5", top != NULL && *top ? top : ".");
}

/* Opens the fixture file or fails the test (fatal: nothing is open yet). */
static hid_t open_fixtures(void)
{
    char path[4096];
    fixture_path(path, sizeof path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file, case and tensor */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0,
              "cannot open the fixture file %s (set PTL_OP_FIXTURES, or regenerate it with "
              "tests/reference/make_op_fixtures.py --out FILE)",
              path);
    return f;
}

/* Fails unless the file holds nothing but the file handle itself open, then closes it. */
static void close_fixtures(hid_t f)
{
    ssize_t open_objects = H5Fget_obj_count(f, H5F_OBJ_ALL);
    cr_expect(open_objects == 1, "%zd HDF5 handles left open on the fixture file",
              open_objects - 1);
    H5Fclose(f);
}

/* Every dataset of the case must have been read, i.e. compared or fed to the op. */
static void check_all_read(struct ocase *c)
{
    H5G_info_t info;
    if (c->broken || H5Gget_info(c->g, &info) < 0)
        return;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[64];
        if (H5Lget_name_by_idx(c->g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            continue;
        int found = 0;
        for (int j = 0; j < c->nseen && !found; j++)
            found = strcmp(c->seen[j], name) == 0;
        cr_expect(found, "%s/%s: dataset '%s' is in the file but not compared", c->op, c->name,
                  name);
    }
}

static void run_op(const char *op)
{
    size_t which = 0;
    while (which < N_OPS && strcmp(OPS[which].op, op) != 0)
        which++;
    cr_assert(which < N_OPS, "no runner for op %s", op);

    hid_t f = open_fixtures();
    hid_t g = H5Lexists(f, op, H5P_DEFAULT) > 0 ? H5Gopen2(f, op, H5P_DEFAULT) : -1;
    H5G_info_t info = {0};
    if (g < 0 || H5Gget_info(g, &info) < 0 || info.nlinks == 0) {
        cr_expect(0, "%s: no cases in the fixture file: a required op must be covered", op);
        if (g >= 0)
            H5Gclose(g);
        close_fixtures(f);
        return;
    }
    int tensors = 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        struct ocase c = {.op = op};
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, c.name, sizeof c.name,
                               H5P_DEFAULT) < 0 ||
            (c.g = H5Gopen2(g, c.name, H5P_DEFAULT)) < 0) {
            cr_expect(0, "%s: case %llu unreadable", op, (unsigned long long)i);
            continue;
        }
        ptl_error_clear();
        OPS[which].run(&c);
        check_all_read(&c);
        cr_expect(c.broken || c.compared > 0, "%s/%s: nothing compared", op, c.name);
        tensors += c.compared;
        for (int j = 0; j < c.nmem; j++)
            free(c.mem[j]);
        H5Gclose(c.g);
    }
    fprintf(stderr, "oracle: %s: %llu cases, %d tensors compared\n", op,
            (unsigned long long)info.nlinks, tensors);
    H5Gclose(g);
    close_fixtures(f);
}

/* Threads as configured (PTL_THREADS or all cores): the OpenMP and BLIS paths are compared. */
static void set_threads(void)
{
    int n = ptl_threads_from_env();
    cr_assert(n > 0 && ptl_threads_set(n) == PTL_OK, "threads: %s", ptl_error_message());
}

TestSuite(oracle, .init = set_threads);

/* A file with an op this harness does not know means the two have drifted apart. */
static herr_t check_known(hid_t loc, const char *name, const H5L_info_t *info, void *data)
{
    (void)loc;
    (void)info;
    (void)data;
    size_t i = 0;
    while (i < N_OPS && strcmp(OPS[i].op, name) != 0)
        i++;
    cr_expect(i < N_OPS, "fixture group /%s is not an op this harness compares", name);
    return 0;
}

Test(oracle, file_has_only_known_ops)
{
    hid_t f = open_fixtures();
    hsize_t idx = 0;
    cr_expect(H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, check_known, NULL) >= 0,
              "cannot list the fixture file");
    close_fixtures(f);
}

/* One Test per op: a failure names the op in Criterion's summary. */
#define ORACLE_TEST(op)                                                                            \
    Test(oracle, op)                                                                               \
    {                                                                                              \
        run_op(#op);                                                                               \
    }

// clang-format off
ORACLE_TEST(gemm)
ORACLE_TEST(conv2d)
ORACLE_TEST(linear)
ORACLE_TEST(batchnorm2d_train)
ORACLE_TEST(batchnorm1d_train)
ORACLE_TEST(batchnorm2d_eval)
ORACLE_TEST(batchnorm1d_eval)
ORACLE_TEST(relu)
ORACLE_TEST(sigmoid)
ORACLE_TEST(tanh)
ORACLE_TEST(maxpool2d)
ORACLE_TEST(avgpool2d)
ORACLE_TEST(adaptive_avgpool2d)
ORACLE_TEST(adaptive_maxpool2d)
ORACLE_TEST(concat)
ORACLE_TEST(split)
ORACLE_TEST(add)
ORACLE_TEST(mul)
ORACLE_TEST(cross_entropy)
ORACLE_TEST(triplet_hard)
// clang-format on
