/* ptl bench ops: times conv2d forward and backward per layer against bare bli_sgemm calls of
 * the same GEMM shapes (the roofline of an im2col design) on the same threads.
 * Not a test: it prints measured numbers; bench/ops_vs_torch.py adds PyTorch beside them. */
#include "config.h"

#include <blis.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

#define MAX_LAYERS 64

static const char bench_usage[] =
    "Usage: ptl bench ops [options]\n"
    "\n"
    "Times conv2d forward and backward (d_in + d_weight in one call, as a training step runs\n"
    "it, and each alone) per conv layer and a bare BLIS sgemm of the same GEMM shapes (forward\n"
    "(Cout x CinKK)(CinKK x N*Ho*Wo), the d_weight and d_in GEMMs likewise) on the same threads.\n"
    "GFLOPS: forward, d_in and d_weight 2*N*Cout*Ho*Wo*Cin*K*K each, backward twice that; times\n"
    "are medians over the repetitions. The total row weights each layer by how often it occurs\n"
    "in the network.\n"
    "\n"
    "Options:\n"
    "  --preset NAME     network whose conv layers to time: resnet18 (default)\n"
    "  --input HxW       input image size for the preset (default 128x64)\n"
    "  --batch N         batch size for the preset (default 32)\n"
    "  --layer N,Cin,H,W,Cout,K,S,P\n"
    "                    time this conv instead of the preset (K x K kernel, stride S,\n"
    "                    padding P); repeatable\n"
    "  --threads T       threads for BLIS and OpenMP (default: PTL_THREADS, else all cores)\n"
    "  --reps R          timed repetitions per measurement (default 7)\n"
    "  --warmup W        untimed repetitions first (default 2)\n"
    "  --quick           smoke run: batch 8, 3 reps, 1 warm-up (unless given)\n"
    "  --format F        table (default) or tsv\n"
    "  --list            print the layers (tsv: name, count, N, Cin, H, W, Cout, K, S, P)\n"
    "                    without timing them\n"
    "  -h, --help        show this help and exit\n";

struct layer {
    char name[24];
    int count; /* occurrences in the network */
    struct ptl_conv2d_shape s;
};

struct result {
    double fwd_s, bwd_s, din_s, dw_s;    /* ours: medians (bwd: d_in and d_weight in one call) */
    double gemm_fwd_s, gemm_dw_s, gemm_dx_s; /* bare sgemm: medians */
};

/* One line on stderr naming the culprit; returns the usage exit status. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ptl bench ops: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return PTL_EXIT_USAGE;
}

static int parse_pos_int(const char *s, int *out, int allow_zero)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < (allow_zero ? 0 : 1) || v > INT_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void add_layer(struct layer *ls, int *nl, const char *name, int count, int n, int c, int h,
                      int w, int m, int k, int s, int p)
{
    struct layer *l = &ls[(*nl)++];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->count = count;
    l->s = (struct ptl_conv2d_shape){n, c, h, w, m, k, k, s, s, p, p};
}

static int conv_out(int x, int k, int s, int p)
{
    return (x + 2 * p - k) / s + 1;
}

/* The unique conv layers of torchvision's ResNet-18 at input (h, w), with their counts. */
static int preset_resnet18(struct layer *ls, int n, int h, int w)
{
    int nl = 0;
    add_layer(ls, &nl, "conv1", 1, n, 3, h, w, 64, 7, 2, 3);
    h = conv_out(h, 7, 2, 3);
    w = conv_out(w, 7, 2, 3);
    h = conv_out(h, 3, 2, 1); /* maxpool 3x3/2 pad 1 */
    w = conv_out(w, 3, 2, 1);
    if (h < 1 || w < 1)
        return -1;
    add_layer(ls, &nl, "layer1.conv", 4, n, 64, h, w, 64, 3, 1, 1);
    static const char *const names[3][3] = {{"layer2.0.conv1", "layer2.conv", "layer2.0.down"},
                                            {"layer3.0.conv1", "layer3.conv", "layer3.0.down"},
                                            {"layer4.0.conv1", "layer4.conv", "layer4.0.down"}};
    int c = 64;
    for (int st = 0; st < 3; st++) {
        int h2 = conv_out(h, 3, 2, 1), w2 = conv_out(w, 3, 2, 1);
        add_layer(ls, &nl, names[st][0], 1, n, c, h, w, 2 * c, 3, 2, 1);
        add_layer(ls, &nl, names[st][1], 3, n, 2 * c, h2, w2, 2 * c, 3, 1, 1);
        add_layer(ls, &nl, names[st][2], 1, n, c, h, w, 2 * c, 1, 2, 0);
        h = h2;
        w = w2;
        c *= 2;
    }
    return nl;
}

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        return NULL;
    return p;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, seed, 0);
    ptl_rng_fill_uniform(&rng, x, n, -1.0f, 1.0f);
}

/* Bare row-major sgemm on contiguous buffers: C (m, n) = op(A) op(B), with BLIS's
 * small-matrix (sup) path on (sup = 1, plain bli_sgemm) or off (as ptl_sgemm runs it). */
static void bare_sgemm(int sup, int ta, int tb, int m, int n, int k, const float *a,
                       const float *b, float *c)
{
    float one = 1.0f, zero = 0.0f;
    inc_t lda = ta ? m : k, ldb = tb ? k : n;
    rntm_t rntm;
    bli_rntm_init_from_global(&rntm);
    if (!sup)
        bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 m, n, k, &one, (float *)a, lda, 1, (float *)b, ldb, 1, &zero, c, n, 1, NULL,
                 &rntm);
}

/* What one timed call runs: ours, or a bare GEMM with BLIS's sup path on or off. */
enum what { OURS_FWD, OURS_BWD, OURS_DIN, OURS_DW, GEMM_FWD, GEMM_DW, GEMM_DX, GEMM_FWD_SUP, GEMM_DW_SUP,
            GEMM_DX_SUP, N_WHAT };

struct bufs {
    float *in, *w, *out, *d_out, *d_in, *d_w, *ws; /* the conv's own tensors */
    float *col, *dcol, *dw2;                        /* the bare GEMMs' operands */
};

static int run_once(enum what what, const struct layer *l, struct bufs *b, int m, int k, int cols)
{
    int sup = what >= GEMM_FWD_SUP;
    switch (what) {
    case OURS_FWD: return ptl_conv2d_forward(b->out, b->in, b->w, NULL, &l->s, b->ws);
    case OURS_BWD:
        return ptl_conv2d_backward(b->d_in, b->d_w, NULL, b->d_out, b->in, b->w, &l->s, b->ws);
    case OURS_DIN:
        return ptl_conv2d_backward(b->d_in, NULL, NULL, b->d_out, b->in, b->w, &l->s, b->ws);
    case OURS_DW:
        return ptl_conv2d_backward(NULL, b->d_w, NULL, b->d_out, b->in, b->w, &l->s, b->ws);
    /* out (M, NP) = W (M, K) x col (K, NP) */
    case GEMM_FWD:
    case GEMM_FWD_SUP: bare_sgemm(sup, 0, 0, m, cols, k, b->w, b->col, b->out); return 0;
    /* dW (M, K) = dY (M, NP) x col^T */
    case GEMM_DW:
    case GEMM_DW_SUP: bare_sgemm(sup, 0, 1, m, k, cols, b->d_out, b->col, b->dw2); return 0;
    /* dcol (K, NP) = W^T (K, M) x dY (M, NP) */
    case GEMM_DX:
    case GEMM_DX_SUP: bare_sgemm(sup, 1, 0, k, cols, m, b->w, b->d_out, b->dcol); return 0;
    case N_WHAT: break;
    }
    return 0;
}

/* Round-robin over all measurements, rep by rep, so that load from other processes on a
 * shared machine hits ours and the bare GEMMs alike; then the median of each. The roofline
 * takes the faster of BLIS's sup path on and off for every GEMM. */
static int time_all(struct result *res, const struct layer *l, struct bufs *b, int m, int k,
                    int cols, int reps, int warmup, double *t /* (N_WHAT, reps) */)
{
    for (int r = 0; r < warmup + reps; r++) {
        for (int w = 0; w < N_WHAT; w++) {
            double t0 = now_s();
            int rc = run_once((enum what)w, l, b, m, k, cols);
            double t1 = now_s();
            if (rc)
                return rc;
            if (r >= warmup)
                t[w * reps + r - warmup] = t1 - t0;
        }
    }
    double med[N_WHAT];
    for (int w = 0; w < N_WHAT; w++)
        med[w] = median(t + w * reps, reps);
    res->fwd_s = med[OURS_FWD];
    res->bwd_s = med[OURS_BWD];
    res->din_s = med[OURS_DIN];
    res->dw_s = med[OURS_DW];
    res->gemm_fwd_s = fmin(med[GEMM_FWD], med[GEMM_FWD_SUP]);
    res->gemm_dw_s = fmin(med[GEMM_DW], med[GEMM_DW_SUP]);
    res->gemm_dx_s = fmin(med[GEMM_DX], med[GEMM_DX_SUP]);
    return 0;
}

static int bench_layer(const struct layer *l, int reps, int warmup, struct result *res)
{
    int ho, wo;
    if (ptl_conv2d_output_size(&l->s, &ho, &wo))
        return -1;
    const struct ptl_conv2d_shape *s = &l->s;
    int m = s->c_out, k = s->c_in * s->kh * s->kw;
    size_t cols = (size_t)s->n * ho * wo;
    if (cols > INT_MAX)
        return ptl_error(PTL_EINVAL, "%s: N*H_out*W_out too large", l->name);
    size_t n_in = (size_t)s->n * s->c_in * s->h * s->w, n_out = (size_t)m * cols;
    size_t n_w = (size_t)m * k, n_col = (size_t)k * cols;
    struct bufs b = {alloc_floats(n_in),  alloc_floats(n_w),   alloc_floats(n_out),
                     alloc_floats(n_out), alloc_floats(n_in),  alloc_floats(n_w),
                     alloc_floats(ptl_conv2d_workspace_floats(s)),
                     alloc_floats(n_col), alloc_floats(n_col), alloc_floats(n_w)};
    double *t = malloc(sizeof(double) * (size_t)reps * N_WHAT);
    int rc = 0;
    float **all = (float **)&b;
    for (size_t i = 0; i < sizeof b / sizeof(float *); i++)
        if (all[i] == NULL)
            rc = ptl_error(PTL_ENOMEM, "%s: out of memory for the buffers", l->name);
    if (t == NULL)
        rc = ptl_error(PTL_ENOMEM, "%s: out of memory", l->name);
    if (rc == 0) {
        fill(b.in, n_in, 1);
        fill(b.w, n_w, 2);
        fill(b.d_out, n_out, 3);
        fill(b.col, n_col, 4);
        /* Gradients accumulate over the reps: harmless for timing, as in a real step. */
        memset(b.d_in, 0, n_in * sizeof(float));
        memset(b.d_w, 0, n_w * sizeof(float));
        rc = time_all(res, l, &b, m, k, (int)cols, reps, warmup, t);
    }
    for (size_t i = 0; i < sizeof b / sizeof(float *); i++)
        free(all[i]);
    free(t);
    return rc;
}

static double layer_flops(const struct layer *l)
{
    int ho, wo;
    ptl_conv2d_output_size(&l->s, &ho, &wo);
    const struct ptl_conv2d_shape *s = &l->s;
    return 2.0 * s->n * s->c_out * ho * wo * (double)s->c_in * s->kh * s->kw;
}

/* One printed row: GFLOPS of ours (fwd, d_in, d_weight, bwd, fwd+bwd) and of the bare sgemm,
 * and times. */
struct row {
    double f, fwd_s, bwd_s, g_fwd_s, g_bwd_s; /* f: forward FLOPs; backward is 2f */
    double din_s, dw_s;                       /* d_in alone, d_weight alone: f each */
};

static void print_header(int tsv)
{
    if (tsv)
        puts("layer\tcount\tn\tc_in\th\tw\tc_out\tk\tstride\tpad\tfwd_gflops\tbwd_gflops\tours_gflops\tsgemm_fwd_gflops\t"
             "sgemm_bwd_gflops\tsgemm_gflops\tours_over_sgemm\tfwd_ms\tbwd_ms\tsgemm_ms\t"
             "din_gflops\tdw_gflops\tdin_ms\tdw_ms");
    else
        printf("%-15s %5s %-30s %8s %8s %8s %8s %8s %9s %10s\n", "layer", "count",
               "N,Cin,HxW->Cout,KxK/S,P", "fwd", "d_in", "d_w", "bwd", "fwd+bwd", "sgemm",
               "ours/sgemm");
}

/* shape: the table's description; fields: the tsv's "n\tc_in\th\tw\tc_out\tk\tstride\tpad" */
static void print_row(int tsv, const char *name, int count, const char *shape, const char *fields,
                      const struct row *r)
{
    double fwd = r->f / r->fwd_s * 1e-9, bwd = 2 * r->f / r->bwd_s * 1e-9;
    double ours = 3 * r->f / (r->fwd_s + r->bwd_s) * 1e-9;
    double g_fwd = r->f / r->g_fwd_s * 1e-9, g_bwd = 2 * r->f / r->g_bwd_s * 1e-9;
    double g = 3 * r->f / (r->g_fwd_s + r->g_bwd_s) * 1e-9;
    double din = r->f / r->din_s * 1e-9, dw = r->f / r->dw_s * 1e-9;
    if (tsv)
        printf("%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t%.2f\t"
               "%.3f\t%.3f\n",
               name, count, fields, fwd, bwd, ours, g_fwd, g_bwd, g, ours / g, r->fwd_s * 1e3,
               r->bwd_s * 1e3, (r->g_fwd_s + r->g_bwd_s) * 1e3, din, dw, r->din_s * 1e3,
               r->dw_s * 1e3);
    else
        printf("%-15s %5d %-30s %8.1f %8.1f %8.1f %8.1f %8.1f %9.1f %9.0f%%\n", name, count, shape,
               fwd, din, dw, bwd, ours, g, 100 * ours / g);
}

struct opts {
    int batch, h, w, threads, reps, warmup, tsv, quick, list, nl;
    int batch_set, reps_set, warmup_set;
    struct layer layers[MAX_LAYERS];
};

static int parse_layer(const char *v, struct opts *o)
{
    int x[8], i = 0;
    const char *p = v;
    char buf[32];
    while (i < 8) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof buf)
            break;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (parse_pos_int(buf, &x[i], i == 7) != 0)
            break;
        i++;
        p += len;
        if (*p == '\0')
            break;
        p++;
    }
    if (i != 8 || *p != '\0')
        return usage_error("--layer %s: expected N,Cin,H,W,Cout,K,S,P (positive integers, P >= 0)",
                           v);
    if (o->nl >= MAX_LAYERS)
        return usage_error("--layer %s: at most %d layers", v, MAX_LAYERS);
    struct layer *l = &o->layers[o->nl];
    snprintf(l->name, sizeof l->name, "layer%d", o->nl + 1);
    l->count = 1;
    l->s = (struct ptl_conv2d_shape){x[0], x[1], x[2], x[3], x[4], x[5], x[5], x[6], x[6], x[7], x[7]};
    if (ptl_conv2d_output_size(&l->s, NULL, NULL) != 0)
        return usage_error("--layer %s: %s", v, ptl_error_message());
    o->nl++;
    return 0;
}

/* Takes the value of option argv[*i] (either "--opt=value" or "--opt value"). */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t len = strlen(name);
    if (strncmp(a, name, len) == 0 && a[len] == '=')
        return a + len + 1;
    if (strcmp(a, name) == 0 && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int is_opt(const char *a, const char *name)
{
    size_t len = strlen(name);
    return strncmp(a, name, len) == 0 && (a[len] == '\0' || a[len] == '=');
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    int preset_given = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        static const char *const valued[] = {"--preset", "--input", "--batch",  "--layer",
                                             "--threads", "--reps",  "--warmup", "--format"};
        const char *name = NULL;
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++)
            if (is_opt(a, valued[j]))
                name = valued[j];
        if (name == NULL) {
            if (strcmp(a, "--quick") == 0 || strcmp(a, "--list") == 0) {
                *(a[2] == 'q' ? &o->quick : &o->list) = 1;
                continue;
            }
            return usage_error("unknown option '%s' (see ptl bench ops --help)", a);
        }
        v = opt_value(argc, argv, &i, name);
        if (v == NULL)
            return usage_error("%s needs a value", name);
        int rc = 0;
        if (strcmp(name, "--preset") == 0) {
            if (strcmp(v, "resnet18") != 0)
                return usage_error("--preset %s: unknown preset (known: resnet18)", v);
            preset_given = 1;
        } else if (strcmp(name, "--input") == 0) {
            char extra;
            if (sscanf(v, "%dx%d%c", &o->h, &o->w, &extra) != 2 || o->h < 1 || o->w < 1)
                return usage_error("--input %s: expected HxW, e.g. 128x64", v);
        } else if (strcmp(name, "--batch") == 0) {
            rc = parse_pos_int(v, &o->batch, 0);
            o->batch_set = 1;
        } else if (strcmp(name, "--layer") == 0) {
            int lrc = parse_layer(v, o);
            if (lrc)
                return lrc;
        } else if (strcmp(name, "--threads") == 0) {
            rc = parse_pos_int(v, &o->threads, 0);
        } else if (strcmp(name, "--reps") == 0) {
            rc = parse_pos_int(v, &o->reps, 0);
            o->reps_set = 1;
        } else if (strcmp(name, "--warmup") == 0) {
            rc = parse_pos_int(v, &o->warmup, 1);
            o->warmup_set = 1;
        } else if (strcmp(name, "--format") == 0) {
            if (strcmp(v, "table") != 0 && strcmp(v, "tsv") != 0)
                return usage_error("--format %s: expected table or tsv", v);
            o->tsv = strcmp(v, "tsv") == 0;
        }
        if (rc)
            return usage_error("%s %s: expected a positive integer", name, v);
    }
    if (preset_given && o->nl > 0)
        return usage_error("--preset and --layer exclude each other");
    return 0;
}

int ptl_cli_bench(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(bench_usage, stdout);
        return 0;
    }
    if (argc < 2) {
        fputs("ptl bench: which benchmark? (known: ops, step, dist, ckpt; see ptl bench --help)\n", stderr);
        return PTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "step") == 0)
        return ptl_cli_bench_step(argc, argv);
    if (strcmp(argv[1], "dist") == 0)
        return ptl_cli_bench_dist(argc, argv);
    if (strcmp(argv[1], "ckpt") == 0)
        return ptl_cli_bench_ckpt(argc, argv);
    if (strcmp(argv[1], "ops") != 0) {
        fprintf(stderr, "ptl bench: unknown benchmark '%s' (known: ops, step, dist, ckpt)\n", argv[1]);
        return PTL_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(bench_usage, stdout);
            return 0;
        }
    static struct opts o;
    memset(&o, 0, sizeof o);
    o.batch = 32;
    o.h = 128;
    o.w = 64;
    o.reps = 7;
    o.warmup = 2;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    if (o.quick) {
        if (!o.batch_set)
            o.batch = 8;
        if (!o.reps_set)
            o.reps = 3;
        if (!o.warmup_set)
            o.warmup = 1;
    }
    if (o.threads == 0) {
        o.threads = ptl_threads_from_env();
        if (o.threads < 0) {
            fprintf(stderr, "ptl bench ops: %s\n", ptl_error_message());
            return PTL_EXIT_USAGE;
        }
    }
    if (o.nl == 0) {
        o.nl = preset_resnet18(o.layers, o.batch, o.h, o.w);
        if (o.nl < 0)
            return usage_error("--input %dx%d: too small for resnet18", o.h, o.w);
        for (int i = 0; i < o.nl; i++)
            if (ptl_conv2d_output_size(&o.layers[i].s, NULL, NULL) != 0)
                return usage_error("--input %dx%d: %s", o.h, o.w, ptl_error_message());
    }
    if (o.list) {
        for (int i = 0; i < o.nl; i++) {
            const struct ptl_conv2d_shape *s = &o.layers[i].s;
            printf("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", o.layers[i].name,
                   o.layers[i].count, s->n, s->c_in, s->h, s->w, s->c_out, s->kh, s->stride_h,
                   s->pad_h);
        }
        return 0;
    }
    if (ptl_threads_set(o.threads) != 0) {
        fprintf(stderr, "ptl bench ops: %s\n", ptl_error_message());
        return PTL_EXIT_USAGE;
    }
    o.threads = ptl_threads_get(); /* at most the cores this process may run on */

    if (o.tsv)
        printf("# ptl %s bench ops: threads %d, reps %d, warmup %d\n", ptl_version(), o.threads,
               o.reps, o.warmup);
    else
        printf("ptl %s bench ops: %d threads, median of %d reps after %d warm-up; GFLOPS\n%s\n",
               ptl_version(), o.threads, o.reps, o.warmup, ptl_blis_kernels());
    print_header(o.tsv);
    struct row total = {0};
    for (int i = 0; i < o.nl; i++) {
        const struct layer *l = &o.layers[i];
        struct result res = {0};
        if (bench_layer(l, o.reps, o.warmup, &res) != 0) {
            fprintf(stderr, "ptl bench ops: %s\n", ptl_error_message());
            return 1;
        }
        struct row r = {layer_flops(l), res.fwd_s, res.bwd_s, res.gemm_fwd_s,
                        res.gemm_dw_s + res.gemm_dx_s, res.din_s, res.dw_s};
        char shape[64];
        const struct ptl_conv2d_shape *s = &l->s;
        snprintf(shape, sizeof shape, "%d,%d,%dx%d->%d,%dx%d/%d,%d", s->n, s->c_in, s->h, s->w,
                 s->c_out, s->kh, s->kw, s->stride_h, s->pad_h);
        char fields[96];
        snprintf(fields, sizeof fields, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d", s->n, s->c_in, s->h,
                 s->w, s->c_out, s->kh, s->stride_h, s->pad_h);
        print_row(o.tsv, l->name, l->count, shape, fields, &r);
        fflush(stdout);
        total.f += l->count * r.f;
        total.fwd_s += l->count * r.fwd_s;
        total.bwd_s += l->count * r.bwd_s;
        total.g_fwd_s += l->count * r.g_fwd_s;
        total.g_bwd_s += l->count * r.g_bwd_s;
        total.din_s += l->count * r.din_s;
        total.dw_s += l->count * r.dw_s;
    }
    int count = 0;
    for (int i = 0; i < o.nl; i++)
        count += o.layers[i].count;
    print_row(o.tsv, "total", count, "(time-weighted by count)", "-\t-\t-\t-\t-\t-\t-\t-",
              &total);
    return 0;
}
