/* ptl bench step: images/s of whole training steps (forward, cross-entropy on every logits
 * output, backward, SGD with momentum) of one architecture. Not a test: it prints measured
 * numbers; bench/step_vs_torch.py runs the same step in PyTorch beside it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char step_usage[] =
    "Usage: ptl bench step --arch NAME [options]\n"
    "\n"
    "Times training steps: forward in training mode, softmax cross-entropy on every logits\n"
    "output, backward, SGD with momentum 0.9 (lr 0.01, weight decay 5e-4). Prints the median\n"
    "step time and images/s.\n"
    "\n"
    "Options:\n"
    "  --arch NAME       architecture (ptl model list)\n"
    "  --input CxHxW     image shape (default 3x128x64)\n"
    "  --batch N         batch size (default 32)\n"
    "  --classes K       classifier outputs (default 751, Market-1501's training identities)\n"
    "  --steps S         timed steps (default 5)\n"
    "  --warmup W        untimed steps first (default 1)\n"
    "  --threads T       threads for BLIS and OpenMP (default: PTL_THREADS, else all cores)\n"
    "  --format F        table (default) or tsv (arch, batch, threads, median s, images/s)\n"
    "  --profile         also print where the timed steps spent their time, by op kind and\n"
    "                    for the 15 slowest nodes (wall clock of each node's forward and\n"
    "                    backward)\n"
    "  -h, --help        show this help and exit\n";

struct step_opts {
    const char *arch;
    int c, h, w, batch, classes, steps, warmup, threads, tsv, profile;
};

static int bad(const char *flag, const char *value)
{
    fprintf(stderr, "ptl bench step: bad value '%s' for %s (see ptl bench step --help)\n",
            value ? value : "", flag);
    return PTL_EXIT_USAGE;
}

static int parse_int(const char *s, int lo, int *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s == NULL || errno || *end || v < lo || v > 1 << 24)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse(int argc, char **argv, struct step_opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--arch") == 0 && v) {
            o->arch = v;
        } else if (strcmp(a, "--input") == 0) {
            if (v == NULL || sscanf(v, "%dx%dx%d", &o->c, &o->h, &o->w) != 3 || o->c < 1 ||
                o->h < 1 || o->w < 1)
                return bad(a, v);
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_int(v, 1, &o->batch))
                return bad(a, v);
        } else if (strcmp(a, "--classes") == 0) {
            if (parse_int(v, 1, &o->classes))
                return bad(a, v);
        } else if (strcmp(a, "--steps") == 0) {
            if (parse_int(v, 1, &o->steps))
                return bad(a, v);
        } else if (strcmp(a, "--warmup") == 0) {
            if (parse_int(v, 0, &o->warmup))
                return bad(a, v);
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_int(v, 1, &o->threads))
                return bad(a, v);
        } else if (strcmp(a, "--format") == 0 && v &&
                   (strcmp(v, "table") == 0 || strcmp(v, "tsv") == 0)) {
            o->tsv = strcmp(v, "tsv") == 0;
        } else if (strcmp(a, "--profile") == 0) {
            o->profile = 1;
            continue;
        } else {
            fprintf(stderr, "ptl bench step: unknown or incomplete option '%s'\n", a);
            return PTL_EXIT_USAGE;
        }
        i++;
    }
    if (o->arch == NULL) {
        fputs("ptl bench step: --arch is required (see ptl model list)\n", stderr);
        return PTL_EXIT_USAGE;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Buffers of one training step, sized for the model's outputs. */
struct step_bufs {
    float *x, *momentum, *probs;
    float *d_out[24];
    int32_t *labels;
};

static int train_step(struct ptl_model *m, struct step_bufs *b, const struct step_opts *o,
                      long step)
{
    int n = o->batch, rc = ptl_model_forward(m, b->x, n, 1);
    if (rc)
        return rc;
    for (int i = 0; i < ptl_model_output_count(m); i++) {
        if (b->d_out[i] == NULL)
            continue;
        int dim;
        const float *logits = ptl_model_output(m, i, &dim);
        float loss;
        memset(b->d_out[i], 0, (size_t)n * dim * sizeof(float));
        rc = ptl_cross_entropy_forward(&loss, b->probs, logits, b->labels, n, dim, 0.0f);
        if (rc == 0)
            rc = ptl_cross_entropy_backward(b->d_out[i], b->probs, b->labels, n, dim, 0.0f, 1.0f);
        if (rc)
            return rc;
    }
    ptl_model_zero_grad(m);
    rc = ptl_model_backward(m, (const float *const *)b->d_out, NULL);
    if (rc)
        return rc;
    struct ptl_sgd sgd = {.lr = 0.01f, .momentum = 0.9f, .weight_decay = 5e-4f};
    return ptl_sgd_step(ptl_model_params(m), ptl_model_grads(m), b->momentum,
                        ptl_model_param_floats(m), &sgd, step);
}

static int run(const struct step_opts *o)
{
    struct ptl_model_config cfg = {.classes = o->classes, .in_c = o->c, .in_h = o->h,
                                   .in_w = o->w, .seed = 1};
    struct ptl_model *m = NULL;
    struct step_bufs b = {0};
    double *times = calloc((size_t)o->steps, sizeof *times);
    int rc = times ? ptl_model_create(&m, o->arch, &cfg) : PTL_ENOMEM;
    size_t in_floats = (size_t)o->batch * o->c * o->h * o->w;
    if (rc == 0) {
        b.x = malloc(in_floats * sizeof(float));
        b.momentum = calloc(ptl_model_param_floats(m), sizeof(float));
        b.probs = malloc((size_t)o->batch * o->classes * sizeof(float));
        b.labels = malloc((size_t)o->batch * sizeof(int32_t));
        if (!b.x || !b.momentum || !b.probs || !b.labels)
            rc = ptl_error(PTL_ENOMEM, "out of memory for a batch of %d", o->batch);
    }
    for (int i = 0; rc == 0 && i < ptl_model_output_count(m); i++) {
        if (strncmp(ptl_model_output_name(m, i), "logits", 6) != 0)
            continue;
        b.d_out[i] = malloc((size_t)o->batch * o->classes * sizeof(float));
        if (b.d_out[i] == NULL)
            rc = ptl_error(PTL_ENOMEM, "out of memory for output gradients");
    }
    if (rc == 0) {
        struct ptl_rng rng;
        ptl_rng_init(&rng, 7, 0);
        ptl_rng_fill_normal(&rng, b.x, in_floats, 0.0f, 1.0f);
        for (int i = 0; i < o->batch; i++)
            b.labels[i] = (int32_t)(ptl_rng_u64(&rng) % (uint64_t)o->classes);
    }
    for (int s = 0; rc == 0 && s < o->warmup + o->steps; s++) {
        if (s == o->warmup && o->profile)
            rc = ptl_model_profile_start(m);
        double t0 = now_s();
        rc = train_step(m, &b, o, s);
        if (s >= o->warmup)
            times[s - o->warmup] = now_s() - t0;
    }
    if (rc == 0) {
        qsort(times, (size_t)o->steps, sizeof *times, cmp_double);
        double med = times[o->steps / 2];
        if (o->tsv)
            printf("%s\t%d\t%d\t%.6f\t%.2f\n", o->arch, o->batch, o->threads, med,
                   o->batch / med);
        else
            printf("ptl %s bench step: %s, input %dx%dx%d, batch %d, %d threads: median step "
                   "%.3f s over %d steps, %.2f images/s\n",
                   ptl_version(), o->arch, o->c, o->h, o->w, o->batch, o->threads, med, o->steps,
                   o->batch / med);
        if (!o->tsv)
            printf("%s\n", ptl_blis_kernels());
        if (o->profile)
            ptl_model_print_profile(m, o->steps, 15, stdout);
    } else {
        fprintf(stderr, "ptl bench step: %s\n", ptl_error_message());
    }
    for (int i = 0; i < 24; i++)
        free(b.d_out[i]);
    free(b.x);
    free(b.momentum);
    free(b.probs);
    free(b.labels);
    free(times);
    ptl_model_free(m);
    return rc == 0 ? 0 : 1;
}

int ptl_cli_bench_step(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(step_usage, stdout);
            return 0;
        }
    struct step_opts o = {.c = 3, .h = 128, .w = 64, .batch = 32, .classes = 751, .steps = 5,
                          .warmup = 1};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (o.threads == 0) {
        o.threads = ptl_threads_from_env();
        if (o.threads < 0) {
            fprintf(stderr, "ptl bench step: %s\n", ptl_error_message());
            return PTL_EXIT_USAGE;
        }
    }
    ptl_threads_set(o.threads);
    o.threads = ptl_threads_get(); /* at most the cores this process may run on */
    return run(&o);
}
