/* Whole networks against PyTorch: the model oracle (tests/reference/models.sh generates the
 * reference with make_model_fixtures.py and runs this with the environment below).
 *
 * - models.fixtures (env PTL_MODEL_FIXTURES, colon-separated fixture files): builds the arch,
 *   checks its state_dict entries (names, shapes, order) against the fixture's, loads the
 *   fixture's weights strictly (ptl_weights_load), sets the cells' initial latent states, runs
 *   three training batches (forward, then backward of sum(out * dy) over every output) and
 *   compares every output and parameter gradient, then the running statistics and one eval
 *   forward. Error per tensor: max|ours - ref| / max(max|ref|, 1e-6) <= 1e-3 (the reference is
 *   float64 on the same float32 data; 1e-3 leaves room for float32 accumulated over 100+
 *   layers), or max|ours - ref| within 10x PyTorch's own float32 error on that tensor (stored
 *   by the generator) for tensors that are ~0 by cancellation (see check()). Prints the worst
 *   tensors per file; a failure names arch, batch and tensor.
 * - models.counts (env PTL_MODEL_COUNTS, the --counts JSON): for every arch of the registry,
 *   ptl's parameter count, buffer floats and entry list equal PyTorch's. An arch missing from
 *   the JSON fails unless the JSON lists it under "skipped" (reference not written yet).
 * - models.torchvision_counts, summary_totals, backward_needs_training_forward: published
 *   torchvision parameter counts, the summary's totals and ResNet-50's FLOPs, and the graph's
 *   refusal to run backward without a completed training forward (no torch needed).
 * Without the environment variables the first two are skipped (make check runs this binary
 * once without them; models.sh runs it with them).
 */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/ptl.h"

#define MODEL_RTOL 1e-3
#define MODEL_FLOOR 1e-6
#define F32_FACTOR 10.0 /* ... or within this many times PyTorch's own float32 error */
#define WORST_KEPT 6

/* ------------------------------------------------------------------ fixture file access ---- */

struct fx {
    hid_t f;
    char path[1024];
    char arch[64];
    int broken;
    /* the worst tensors of the file, for the report */
    double worst_rel[WORST_KEPT];
    char worst_name[WORST_KEPT][320];
    size_t compared, bad;
    size_t by_f32;          /* passed only by the float32-error criterion */
    double max_rel;         /* worst relative error among the others */
    char max_rel_name[160];
};

static void fx_fail(struct fx *x, const char *msg)
{
    cr_expect(0, "%s (%s): %s", x->arch, x->path, msg);
    x->broken = 1;
}

static int attr_int(struct fx *x, const char *name, int *v, int count)
{
    hid_t a = H5Aexists(x->f, name) > 0 ? H5Aopen(x->f, name, H5P_DEFAULT) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == count &&
             H5Aread(a, H5T_NATIVE_INT, v) >= 0;
    if (sp >= 0)
        H5Sclose(sp);
    if (a >= 0)
        H5Aclose(a);
    return ok ? 0 : -1;
}

/* Fixed-length string attribute into buf. */
static int attr_str(struct fx *x, const char *name, char *buf, size_t size)
{
    hid_t a = H5Aexists(x->f, name) > 0 ? H5Aopen(x->f, name, H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int ok = 0;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t len = H5Tget_size(t);
        char *tmp = calloc(len + 1, 1);
        if (tmp && H5Aread(a, t, tmp) >= 0) {
            snprintf(buf, size, "%s", tmp);
            ok = 1;
        }
        free(tmp);
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return ok ? 0 : -1;
}

/* Elements of dataset `name`, or -1 if absent. */
static long long ds_count(struct fx *x, const char *name)
{
    if (H5Lexists(x->f, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(x->f, name, H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    long long n = sp >= 0 ? (long long)H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    return n;
}

/* Reads dataset `name` (exactly n elements of mem_type) into dst; fails the file otherwise. */
static int ds_read(struct fx *x, const char *name, void *dst, size_t n, hid_t mem_type)
{
    char msg[400];
    long long have = ds_count(x, name);
    if (have != (long long)n) {
        snprintf(msg, sizeof msg, "dataset %s: %lld elements, expected %zu", name, have, n);
        fx_fail(x, msg);
        return -1;
    }
    hid_t d = H5Dopen2(x->f, name, H5P_DEFAULT);
    int ok = d >= 0 && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0;
    if (d >= 0)
        H5Dclose(d);
    if (!ok) {
        snprintf(msg, sizeof msg, "dataset %s unreadable", name);
        fx_fail(x, msg);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ comparison ------------- */

static void keep_worst(struct fx *x, const char *what, double rel)
{
    int at = -1;
    for (int i = 0; i < WORST_KEPT; i++)
        if (at < 0 && !(rel <= x->worst_rel[i]))
            at = i;
    if (at < 0)
        return;
    memmove(&x->worst_rel[at + 1], &x->worst_rel[at], sizeof(double) * (WORST_KEPT - 1 - at));
    memmove(x->worst_name[at + 1], x->worst_name[at],
            sizeof x->worst_name[0] * (WORST_KEPT - 1 - at));
    x->worst_rel[at] = rel;
    snprintf(x->worst_name[at], sizeof x->worst_name[0], "%s", what);
}

/* PyTorch's float32 error on this tensor (attribute f32_err of the dataset), 0 if absent. */
static double f32_err(struct fx *x, const char *name)
{
    double v = 0;
    if (H5Aexists_by_name(x->f, name, "f32_err", H5P_DEFAULT) > 0) {
        hid_t a = H5Aopen_by_name(x->f, name, "f32_err", H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
            v = 0;
        if (a >= 0)
            H5Aclose(a);
    }
    return v;
}

/* Compares ours (n floats) with dataset `name`; `what` names it in messages. A tensor passes
 * when its relative error is <= MODEL_RTOL, or when its max difference is within F32_FACTOR
 * times PyTorch's own float32 error on it: tensors that are ~0 by cancellation (a BN bias
 * gradient behind a fully active ReLU, 1x1 conv and train-mode BN is exactly 0) have no scale
 * of their own, and float32 rounding is all either implementation can give there. */
static void check(struct fx *x, const char *name, const char *what, const float *ours, size_t n)
{
    if (x->broken)
        return;
    float *ref = tc_alloc(n);
    if (ds_read(x, name, ref, n, H5T_NATIVE_FLOAT) == 0) {
        double diff = 0, scale = MODEL_FLOOR;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)ours[i] - ref[i]);
            if (!(d <= diff)) { /* NaN counts as the worst */
                diff = d;
                at = i;
            }
            if (fabs((double)ref[i]) > scale)
                scale = fabs((double)ref[i]);
        }
        double rel = diff / scale, noise = F32_FACTOR * f32_err(x, name);
        /* score <= 1 passes: the better of the two criteria */
        double score = fmin(rel / MODEL_RTOL, noise > 0 ? diff / noise : INFINITY);
        int ok = score <= 1;
        x->compared++;
        char label[300];
        snprintf(label, sizeof label, "%s (rel %.2e%s)", what, rel,
                 ok && rel > MODEL_RTOL ? ", within torch f32 error" : "");
        keep_worst(x, label, score);
        if (ok && rel > MODEL_RTOL) {
            x->by_f32++;
        } else if (!(rel <= x->max_rel)) {
            x->max_rel = rel;
            snprintf(x->max_rel_name, sizeof x->max_rel_name, "%s", what);
        }
        if (!ok) {
            x->bad++;
            fprintf(stderr,
                    "BAD %s %-50s rel %.3e max|diff| %.3e at %zu (ptl %.7g, torch %.7g) "
                    "torch-f32 err %.3e\n",
                    x->arch, what, rel, diff, at, (double)ours[at], (double)ref[at],
                    noise / F32_FACTOR);
        }
        cr_expect(ok,
                  "%s: %s: relative error %.3e > %.0e (max|diff| %.3e at element %zu: ptl %.9g, "
                  "torch %.9g; max|ref| %.3e; torch's float32 error %.3e)",
                  x->arch, what, rel, MODEL_RTOL, diff, at, (double)ours[at], (double)ref[at],
                  scale, noise / F32_FACTOR);
    }
    free(ref);
}

/* ------------------------------------------------------------------ one fixture file ------- */

/* The model's entries must be the fixture's state_dict: same names, shapes, order. */
static void check_entries(struct fx *x, struct ptl_model *m)
{
    long long n = ds_count(x, "entries/ndims");
    size_t have = ptl_model_entry_count(m);
    if (n != (long long)have) {
        char msg[200];
        snprintf(msg, sizeof msg, "ptl has %zu state_dict entries, torch %lld", have, n);
        fx_fail(x, msg);
    }
    if (x->broken)
        return;
    char (*names)[128] = tc_alloc_bytes((size_t)n * 128);
    int *ndims = tc_alloc_bytes((size_t)n * sizeof(int));
    int *shapes = tc_alloc_bytes((size_t)n * 4 * sizeof(int));
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 128);
    if (ds_read(x, "entries/names", names, (size_t)n, st) == 0 &&
        ds_read(x, "entries/ndims", ndims, (size_t)n, H5T_NATIVE_INT) == 0 &&
        ds_read(x, "entries/shapes", shapes, (size_t)n * 4, H5T_NATIVE_INT) == 0)
        for (size_t i = 0; i < have && !x->broken; i++) {
            const struct ptl_entry *e = ptl_model_entry(m, i);
            char ref[129], msg[600];
            snprintf(ref, sizeof ref, "%.128s", names[i]);
            int same = strcmp(ref, e->name) == 0 && ndims[i] == e->ndim;
            for (int k = 0; same && k < e->ndim; k++)
                same = shapes[i * 4 + k] == e->shape[k];
            if (!same) {
                snprintf(msg, sizeof msg,
                         "entry %zu: ptl '%s' %dd (%d,%d,%d,%d), torch '%s' %dd (%d,%d,%d,%d)", i,
                         e->name, e->ndim, e->shape[0], e->shape[1], e->shape[2], e->shape[3], ref,
                         ndims[i], shapes[i * 4], shapes[i * 4 + 1], shapes[i * 4 + 2],
                         shapes[i * 4 + 3]);
                fx_fail(x, msg);
            }
        }
    H5Tclose(st);
    free(names);
    free(ndims);
    free(shapes);
}

/* The cells' initial latent states (group "state", by ptl's state names), before batch 1. */
static void set_states(struct fx *x, struct ptl_model *m, int batch)
{
    int count = ptl_model_state_count(m), found = 0;
    for (int i = 0; i < count && !x->broken; i++) {
        char name[160], path[200], msg[300];
        size_t per = 0;
        if (ptl_model_state_info(m, i, name, sizeof name, &per) != 0) {
            fx_fail(x, ptl_error_message());
            return;
        }
        snprintf(path, sizeof path, "state/%s", name);
        if (ds_count(x, path) < 0) {
            snprintf(msg, sizeof msg, "no initial latent state %s in the fixture", path);
            fx_fail(x, msg);
            return;
        }
        float *dst = ptl_model_state_data(m, i, batch);
        if (dst == NULL) {
            fx_fail(x, ptl_error_message());
            return;
        }
        ds_read(x, path, dst, (size_t)batch * per, H5T_NATIVE_FLOAT);
        found++;
    }
    hid_t g = H5Lexists(x->f, "state", H5P_DEFAULT) > 0 ? H5Gopen2(x->f, "state", H5P_DEFAULT) : -1;
    H5G_info_t info = {0};
    if (g >= 0 && H5Gget_info(g, &info) >= 0 && (int)info.nlinks != found && !x->broken) {
        char msg[160];
        snprintf(msg, sizeof msg, "fixture has %llu latent states, ptl's model %d",
                 (unsigned long long)info.nlinks, count);
        fx_fail(x, msg);
    }
    if (g >= 0)
        H5Gclose(g);
}

/* Runs input `group`/input and compares every output with `group`/out/<name>. */
static void forward_and_check(struct fx *x, struct ptl_model *m, const char *group, int batch,
                              const int *in, int train)
{
    size_t nin = (size_t)batch * in[0] * in[1] * in[2];
    float *input = tc_alloc(nin);
    char path[256], what[256];
    snprintf(path, sizeof path, "%s/input", group);
    if (ds_read(x, path, input, nin, H5T_NATIVE_FLOAT) == 0) {
        int rc = ptl_model_forward(m, input, batch, train);
        if (rc != 0)
            fx_fail(x, ptl_error_message());
    }
    free(input);
    for (int o = 0; o < ptl_model_output_count(m) && !x->broken; o++) {
        int dim = 0;
        const float *y = ptl_model_output(m, o, &dim);
        snprintf(path, sizeof path, "%s/out/%s", group, ptl_model_output_name(m, o));
        snprintf(what, sizeof what, "%s output %s", group, ptl_model_output_name(m, o));
        check(x, path, what, y, (size_t)batch * dim);
    }
}

static void train_batch(struct fx *x, struct ptl_model *m, int b, int batch, const int *in)
{
    char group[16], path[256], what[256];
    snprintf(group, sizeof group, "batch%d", b);
    forward_and_check(x, m, group, batch, in, 1);
    int outs = ptl_model_output_count(m);
    float **dy = tc_alloc_bytes(sizeof(float *) * (size_t)outs);
    for (int o = 0; o < outs && !x->broken; o++) {
        int dim = 0;
        ptl_model_output(m, o, &dim);
        dy[o] = tc_alloc((size_t)batch * dim);
        snprintf(path, sizeof path, "%s/dy/%s", group, ptl_model_output_name(m, o));
        ds_read(x, path, dy[o], (size_t)batch * dim, H5T_NATIVE_FLOAT);
    }
    if (!x->broken) {
        ptl_model_zero_grad(m);
        if (ptl_model_backward(m, (const float *const *)dy, NULL) != 0)
            fx_fail(x, ptl_error_message());
    }
    for (int o = 0; o < outs; o++)
        free(dy[o]);
    free(dy);
    const float *grads = ptl_model_grads(m);
    for (size_t i = 0; i < ptl_model_entry_count(m) && !x->broken; i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        if (e->kind != PTL_ENTRY_PARAM)
            continue;
        snprintf(path, sizeof path, "%s/grad/%s", group, e->name);
        snprintf(what, sizeof what, "%s grad %s", group, e->name);
        check(x, path, what, grads + e->offset, e->count);
    }
}

static void run_fixture(const char *file)
{
    struct fx x = {.f = -1};
    snprintf(x.path, sizeof x.path, "%s", file);
    snprintf(x.arch, sizeof x.arch, "?");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    x.f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (x.f < 0) {
        cr_expect(0, "cannot open model fixture %s (make_model_fixtures.py --fixtures)", file);
        return;
    }
    int classes = 0, batch = 0, in[3] = {0, 0, 0};
    char weights[256], wpath[1400];
    if (attr_str(&x, "arch", x.arch, sizeof x.arch) != 0 ||
        attr_int(&x, "classes", &classes, 1) != 0 || attr_int(&x, "batch", &batch, 1) != 0 ||
        attr_int(&x, "input", in, 3) != 0 || attr_str(&x, "weights", weights, sizeof weights))
        fx_fail(&x, "missing attributes (arch, classes, batch, input, weights)");
    int eval_global = 0; /* absent in fixtures of models without cells */
    if (attr_int(&x, "eval_state_global", &eval_global, 1) != 0)
        eval_global = 0;
    struct ptl_model *m = NULL;
    struct ptl_model_config cfg = {.classes = classes, .in_c = in[0], .in_h = in[1],
                                   .in_w = in[2], .seed = 0, .cell_history = 1,
                                   .eval_state_global = eval_global};
    if (!x.broken && ptl_model_create(&m, x.arch, &cfg) != 0)
        fx_fail(&x, ptl_error_message());
    if (!x.broken)
        check_entries(&x, m);
    if (!x.broken) {
        const char *slash = strrchr(file, '/');
        snprintf(wpath, sizeof wpath, "%.*s%s", slash ? (int)(slash - file + 1) : 0, file, weights);
        struct ptl_load_report rep;
        if (ptl_weights_load(m, wpath, PTL_LOAD_STRICT, &rep) != 0)
            fx_fail(&x, ptl_error_message());
    }
    if (!x.broken)
        set_states(&x, m, batch);
    for (int b = 1; b <= 3 && !x.broken; b++)
        train_batch(&x, m, b, batch, in);
    for (size_t i = 0; m && i < ptl_model_entry_count(m) && !x.broken; i++) {
        const struct ptl_entry *e = ptl_model_entry(m, i);
        char path[200], what[220];
        if (e->kind == PTL_ENTRY_PARAM)
            continue;
        snprintf(path, sizeof path, "running/%s", e->name);
        snprintf(what, sizeof what, "after batch3 %s", e->name);
        check(&x, path, what, ptl_model_entry_data(m, i), e->count);
    }
    if (!x.broken)
        forward_and_check(&x, m, "eval", batch, in, 0);
    fprintf(stderr, "model oracle: %s (batch %d, input %dx%dx%d): %zu tensors compared, %zu bad%s\n",
            x.arch, batch, in[0], in[1], in[2], x.compared, x.bad, x.broken ? ", STOPPED" : "");
    fprintf(stderr, "    max relative error %.3e (%s); %zu tensors ~0 by cancellation passed "
                    "within %.0fx torch's float32 error\n",
            x.max_rel, x.max_rel_name, x.by_f32, F32_FACTOR);
    for (int i = 0; i < WORST_KEPT && x.worst_name[i][0]; i++)
        fprintf(stderr, "    worst %d: score %.3f  %s\n", i + 1, x.worst_rel[i], x.worst_name[i]);
    ssize_t open_objects = H5Fget_obj_count(x.f, H5F_OBJ_ALL);
    cr_expect(open_objects == 1, "%s: %zd HDF5 handles left open", file, open_objects - 1);
    H5Fclose(x.f);
    ptl_model_free(m);
}

static void set_threads(void)
{
    int n = ptl_threads_from_env();
    cr_assert(n > 0 && ptl_threads_set(n) == PTL_OK, "threads: %s", ptl_error_message());
}

TestSuite(models, .init = set_threads, .timeout = 600);

Test(models, fixtures)
{
    const char *env = getenv("PTL_MODEL_FIXTURES");
    if (env == NULL || *env == '\0')
        cr_skip_test("PTL_MODEL_FIXTURES not set (tests/reference/models.sh sets it)");
    char *list = strdup(env);
    cr_assert_not_null(list);
    int files = 0;
    for (char *save = NULL, *f = strtok_r(list, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
        run_fixture(f);
        files++;
    }
    free(list);
    cr_expect(files > 0, "PTL_MODEL_FIXTURES names no file");
}


/* ------------------------------------------------------------------ counts JSON ------------ */

/* A minimal reader for the --counts file: objects, arrays, strings, numbers. */
struct js {
    const char *p;
    int bad;
};

static void js_ws(struct js *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
        j->p++;
}

static int js_eat(struct js *j, char c)
{
    js_ws(j);
    if (*j->p != c)
        return 0;
    j->p++;
    return 1;
}

/* String into buf (escapes reduced to the escaped char; \uXXXX to '?'). */
static void js_str(struct js *j, char *buf, size_t size)
{
    size_t o = 0;
    if (!js_eat(j, '"')) {
        j->bad = 1;
        return;
    }
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && *j->p) {
            c = *j->p++;
            if (c == 'u') {
                for (int k = 0; k < 4 && *j->p; k++)
                    j->p++;
                c = '?';
            }
        }
        if (buf && o + 1 < size)
            buf[o++] = c;
    }
    if (buf && size)
        buf[o] = '\0';
    if (!js_eat(j, '"'))
        j->bad = 1;
}

static double js_num(struct js *j)
{
    js_ws(j);
    char *end;
    double v = strtod(j->p, &end);
    if (end == j->p)
        j->bad = 1;
    j->p = end;
    return v;
}

static void js_skip(struct js *j)
{
    js_ws(j);
    char c = *j->p;
    if (c == '"') {
        js_str(j, NULL, 0);
    } else if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (js_eat(j, close))
            return;
        do {
            if (c == '{') {
                js_str(j, NULL, 0);
                if (!js_eat(j, ':'))
                    j->bad = 1;
            }
            js_skip(j);
        } while (!j->bad && js_eat(j, ','));
        if (!js_eat(j, close))
            j->bad = 1;
    } else if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "null", 4) == 0) {
        j->p += 4;
    } else if (strncmp(j->p, "false", 5) == 0) {
        j->p += 5;
    } else {
        js_num(j);
    }
}

/* Iterates the members of an object: returns 1 with the key in buf while there is one. */
static int js_member(struct js *j, int first, char *key, size_t size)
{
    if (j->bad)
        return 0;
    if (first ? js_eat(j, '}') : !js_eat(j, ','))
        return first ? 0 : (js_eat(j, '}') ? 0 : (j->bad = 1, 0));
    js_str(j, key, size);
    if (!js_eat(j, ':'))
        j->bad = 1;
    return !j->bad;
}

/* Compares the JSON record of `arch` (the cursor is at its object) with ptl's model. */
static void compare_counts(struct js *j, const char *arch)
{
    struct ptl_model_config cfg = {.classes = 10, .in_c = 3, .in_h = 224, .in_w = 224,
                                   .cell_history = 1};
    double params = -1, buffers = -1;
    const char *entries = NULL;
    char key[64];
    if (!js_eat(j, '{')) {
        j->bad = 1;
        return;
    }
    for (int first = 1; js_member(j, first, key, sizeof key); first = 0) {
        if (strcmp(key, "classes") == 0) {
            cfg.classes = (int)js_num(j);
        } else if (strcmp(key, "input") == 0) {
            int *dims[3] = {&cfg.in_c, &cfg.in_h, &cfg.in_w};
            if (!js_eat(j, '['))
                j->bad = 1;
            for (int k = 0; k < 3 && !j->bad; k++) {
                *dims[k] = (int)js_num(j);
                if (!js_eat(j, k < 2 ? ',' : ']'))
                    j->bad = 1;
            }
        } else if (strcmp(key, "params") == 0) {
            params = js_num(j);
        } else if (strcmp(key, "buffers") == 0) {
            buffers = js_num(j);
        } else {
            if (strcmp(key, "entries") == 0) {
                js_ws(j);
                entries = j->p;
            }
            js_skip(j);
        }
    }
    if (j->bad)
        return;
    struct ptl_model *m = NULL;
    if (ptl_model_create(&m, arch, &cfg) != 0) {
        cr_expect(0, "counts: %s: ptl cannot build it: %s", arch, ptl_error_message());
        return;
    }
    size_t ours = ptl_model_param_floats(m), ours_buf = 0;
    for (size_t i = 0; i < ptl_model_entry_count(m); i++)
        if (ptl_model_entry(m, i)->kind != PTL_ENTRY_PARAM)
            ours_buf += ptl_model_entry(m, i)->count;
    fprintf(stderr, "counts: %-24s ptl %12zu  torch %12.0f parameters%s\n", arch, ours, params,
            (double)ours == params ? "" : "  MISMATCH");
    cr_expect((double)ours == params, "counts: %s: ptl has %zu parameters, torch %.0f", arch, ours,
              params);
    cr_expect((double)ours_buf == buffers, "counts: %s: ptl has %zu buffer floats, torch %.0f",
              arch, ours_buf, buffers);
    /* entries: [[name, [dims]], ...] in order */
    struct js e = {entries ? entries : "[]", 0};
    size_t i = 0;
    int differ = 0;
    if (!js_eat(&e, '['))
        e.bad = 1;
    if (!e.bad && !js_eat(&e, ']'))
        do {
            char name[160];
            int shape[4] = {0, 0, 0, 0}, nd = 0;
            if (!js_eat(&e, '['))
                e.bad = 1;
            js_str(&e, name, sizeof name);
            if (!js_eat(&e, ',') || !js_eat(&e, '['))
                e.bad = 1;
            if (!e.bad && !js_eat(&e, ']')) {
                do {
                    int v = (int)js_num(&e);
                    if (nd < 4)
                        shape[nd] = v;
                    nd++;
                } while (!e.bad && js_eat(&e, ','));
                if (!js_eat(&e, ']'))
                    e.bad = 1;
            }
            if (!js_eat(&e, ']'))
                e.bad = 1;
            const struct ptl_entry *pe = ptl_model_entry(m, i);
            int same = !e.bad && pe && strcmp(pe->name, name) == 0 && pe->ndim == nd;
            for (int k = 0; same && k < nd; k++)
                same = pe->shape[k] == shape[k];
            if (!same && !differ && !e.bad) {
                differ = 1;
                cr_expect(0, "counts: %s: entry %zu is '%s' (%dd) in ptl, '%s' (%dd) in torch",
                          arch, i, pe ? pe->name : "(none)", pe ? pe->ndim : 0, name, nd);
            }
            i++;
        } while (!e.bad && js_eat(&e, ','));
    cr_expect(!e.bad, "counts: %s: malformed entries list", arch);
    cr_expect(differ || e.bad || i == ptl_model_entry_count(m),
              "counts: %s: ptl has %zu entries, torch %zu", arch, ptl_model_entry_count(m), i);
    ptl_model_free(m);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

Test(models, counts)
{
    const char *path = getenv("PTL_MODEL_COUNTS");
    if (path == NULL || *path == '\0')
        cr_skip_test("PTL_MODEL_COUNTS not set (tests/reference/models.sh sets it)");
    char *text = slurp(path);
    cr_assert_not_null(text, "cannot read the counts file %s", path);
    const char *const *names = ptl_model_arch_names();
    size_t n_archs = 0;
    while (names[n_archs])
        n_archs++;
    char *covered = tc_alloc_bytes(n_archs), *skipped = tc_alloc_bytes(n_archs);
    struct js j = {text, 0};
    char key[64], arch[64];
    if (!js_eat(&j, '{'))
        j.bad = 1;
    for (int first = 1; js_member(&j, first, key, sizeof key); first = 0) {
        int is_archs = strcmp(key, "archs") == 0, is_skipped = strcmp(key, "skipped") == 0;
        if (!is_archs && !is_skipped) {
            js_skip(&j);
            continue;
        }
        if (!js_eat(&j, '{'))
            j.bad = 1;
        for (int f2 = 1; js_member(&j, f2, arch, sizeof arch); f2 = 0) {
            size_t k = 0;
            while (k < n_archs && strcmp(names[k], arch) != 0)
                k++;
            cr_expect(k < n_archs, "counts: %s is in %s but not in ptl's registry", arch, path);
            if (is_archs && k < n_archs) {
                covered[k] = 1;
                compare_counts(&j, arch);
            } else {
                char reason[300];
                js_str(&j, reason, sizeof reason);
                if (k < n_archs && !covered[k]) {
                    skipped[k] = 1;
                    fprintf(stderr, "counts: %-24s NOT COVERED: its PyTorch reference is not "
                                    "written yet (%s)\n", arch, reason);
                }
            }
        }
    }
    cr_expect(!j.bad, "counts: %s is not the JSON make_model_fixtures.py --counts writes", path);
    for (size_t k = 0; k < n_archs && !j.bad; k++)
        cr_expect(covered[k] || skipped[k], "counts: %s is in ptl's registry but not in %s",
                  names[k], path);
    free(covered);
    free(skipped);
    free(text);
}

/* torchvision's published parameter counts (1000 classes): a check that needs no torch. */
Test(models, torchvision_counts)
{
    static const struct {
        const char *arch;
        size_t params;
    } known[] = {
        {"resnet18", 11689512},    {"resnet34", 21797672},    {"resnet50", 25557032},
        {"resnet101", 44549160},   {"densenet121", 7978856}, {"densenet161", 28681000},
        {"densenet169", 14149480},
    };
    struct ptl_model_config cfg = {.classes = 1000, .in_c = 3, .in_h = 224, .in_w = 224};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        struct ptl_model *m = NULL;
        int rc = ptl_model_create(&m, known[i].arch, &cfg);
        cr_expect(rc == 0, "%s: %s", known[i].arch, ptl_error_message());
        if (rc != 0)
            continue;
        cr_expect(ptl_model_param_floats(m) == known[i].params, "%s: %zu parameters, torchvision %zu",
                  known[i].arch, ptl_model_param_floats(m), known[i].params);
        ptl_model_free(m);
    }
}

/* The summary's totals and the FLOPs the brief names: ResNet-50 at 224x224 is 4.1 GMACs of
 * convolutions and fc (8.2 GFLOPs; BN, pooling and adds bring it to ~8.21). */
Test(models, summary_totals)
{
    struct ptl_model_config cfg = {.classes = 1000, .in_c = 3, .in_h = 224, .in_w = 224};
    struct ptl_model *m = NULL;
    cr_assert(ptl_model_create(&m, "resnet50", &cfg) == 0, "%s", ptl_error_message());
    double flops = ptl_model_flops(m);
    cr_expect(flops > 8.15e9 && flops < 8.3e9, "resnet50 forward FLOPs %.4g, expected ~8.2e9",
              flops);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    ptl_model_print_summary(m, f);
    fclose(f);
    cr_expect(strstr(text, "parameters: 25,557,032") != NULL, "summary lacks the total:\n%s",
              text + (len > 600 ? len - 600 : 0));
    cr_expect(strstr(text, "layer4.2.conv3") != NULL && strstr(text, "2048x7x7") != NULL,
              "summary lacks layer4.2.conv3 with its 2048x7x7 output");
    free(text);
    ptl_model_free(m);
}

/* Backward needs a completed training forward: never run on stale or partial activations. */
Test(models, backward_needs_training_forward)
{
    struct ptl_model_config cfg = {.classes = 4, .in_c = 3, .in_h = 8, .in_w = 8};
    struct ptl_model *m = NULL;
    cr_assert(ptl_model_create(&m, "resnet18-small", &cfg) == 0, "%s", ptl_error_message());
    float *x = tc_alloc(2 * 3 * 8 * 8), *d0 = tc_alloc(2 * 512), *d1 = tc_alloc(2 * 4);
    tc_fill(x, 2 * 3 * 8 * 8, 1, -1, 1);
    const float *d[2] = {d0, d1};
    cr_expect(ptl_model_backward(m, d, NULL) == PTL_EINVAL, "backward before any forward");
    cr_expect(ptl_model_forward(m, x, 2, 0) == 0, "%s", ptl_error_message());
    cr_expect(ptl_model_backward(m, d, NULL) == PTL_EINVAL, "backward after an eval forward");
    cr_expect(ptl_model_forward(m, x, 2, 1) == 0, "%s", ptl_error_message());
    cr_expect(ptl_model_backward(m, d, NULL) == 0, "%s", ptl_error_message());
    /* BN needs >= 2 values per channel: a batch of 1 at 1x1 (layer4 of an 8x8 input) fails
     * halfway, and backward must then refuse rather than reuse the previous activations */
    cr_expect(ptl_model_forward(m, x, 1, 1) != 0, "train forward of a 1x1 map at batch 1");
    cr_expect(strstr(ptl_error_message(), "resnet18-small: batchnorm") != NULL,
              "message should name the model and the node: %s", ptl_error_message());
    cr_expect(ptl_model_backward(m, d, NULL) == PTL_EINVAL, "backward after a failed forward");
    free(x);
    free(d0);
    free(d1);
    ptl_model_free(m);
}

/* A second step from zeroed gradients repeats the first exactly: every activation gradient is
 * zeroed before backward accumulates into it and ptl_model_zero_grad clears every parameter
 * gradient, here with buffers large enough (and of odd lengths) to be zeroed in parallel
 * slices on two threads. */
Test(models, second_step_repeats_the_first)
{
    cr_assert_eq(ptl_threads_set(2), 0);
    struct ptl_model_config cfg = {.classes = 5, .in_c = 3, .in_h = 36, .in_w = 36};
    struct ptl_model *m = NULL;
    cr_assert(ptl_model_create(&m, "resnet18-small", &cfg) == 0, "%s", ptl_error_message());
    const int n = 4;
    const size_t in_len = (size_t)n * 3 * 36 * 36, np = ptl_model_param_floats(m);
    float *x = tc_alloc(in_len), *dx[2] = {tc_alloc(in_len), tc_alloc(in_len)};
    float *grads[2] = {tc_alloc(np), tc_alloc(np)};
    float *d_logits = tc_alloc((size_t)n * 5);
    tc_fill(x, in_len, 3, -1, 1);
    tc_fill(d_logits, (size_t)n * 5, 4, -1, 1);
    const float *d[2] = {NULL, d_logits};
    for (int step = 0; step < 2; step++) {
        ptl_model_zero_grad(m);
        cr_assert(ptl_model_forward(m, x, n, 1) == 0, "%s", ptl_error_message());
        cr_assert(ptl_model_backward(m, d, dx[step]) == 0, "%s", ptl_error_message());
        memcpy(grads[step], ptl_model_grads(m), np * sizeof(float));
    }
    cr_expect(memcmp(grads[0], grads[1], np * sizeof(float)) == 0,
              "parameter gradients of the second step differ from the first");
    cr_expect(memcmp(dx[0], dx[1], in_len * sizeof(float)) == 0,
              "input gradient of the second step differs from the first");
    free(x);
    free(dx[0]);
    free(dx[1]);
    free(grads[0]);
    free(grads[1]);
    free(d_logits);
    ptl_model_free(m);
}
