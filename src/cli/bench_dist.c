/* ptl bench dist: the cost of ptl's gradient averaging (ptl_grad_sync: pack into buckets, one
 * MPI_Iallreduce per bucket, wait, unpack and divide) against one bare MPI_Allreduce of the
 * same floats, run under mpirun. Not a test: it prints measured numbers, after checking once
 * that the averaged gradients are right. bench/dist_scaling.sh runs it. */
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char dist_usage[] =
    "Usage: mpirun -n R ptl bench dist --arch NAME [options]\n"
    "\n"
    "Times the gradient averaging of training over the R ranks of an MPI job: with every\n"
    "parameter's gradient filled, ptl_grad_sync_begin + ptl_grad_sync_finish (one allreduce\n"
    "per bucket, in place where a bucket is one range of the gradients, else through a copy;\n"
    "summing, as in training, where the loss gradient is pre-scaled by 1/R: the whole cost when\n"
    "no backward overlaps it) against one bare MPI_Allreduce (in place, MPI_SUM) of the same\n"
    "number of floats. Each repetition starts after a barrier and counts the slowest rank;\n"
    "the two alternate, and the medians are printed with their bandwidths (bytes / time)\n"
    "and the ratio ours / bare. Two reference rows tell where a gap comes from: one bare\n"
    "MPI_Iallreduce of all the floats (the non-blocking family ptl uses), and the copies in\n"
    "and out alone. The averaged gradients are checked once first.\n"
    "\n"
    "Options:\n"
    "  --arch NAME       architecture (ptl model list)\n"
    "  --classes K       classifier outputs (default 751)\n"
    "  --input CxHxW     image shape (default 3x128x64; the parameters of most architectures\n"
    "                    do not depend on it)\n"
    "  --bucket-mb M     MiB per bucket, as dist.bucket_mb (default 25)\n"
    "  --repeat N        timed repetitions of each (default 20)\n"
    "  --warmup W        untimed repetitions of each first (default 2)\n"
    "  --format F        table (default) or tsv: arch, ranks, floats, buckets, median s ours,\n"
    "                    median s bare, MiB/s ours, MiB/s bare, ratio, median s of one\n"
    "                    bare MPI_Iallreduce, median s of the copies alone\n"
    "  -h, --help        show this help and exit\n";

struct dist_opts {
    const char *arch;
    int c, h, w, classes, repeat, warmup, tsv;
    double bucket_mb;
};

/* Usage errors are the same on every rank: rank 0 alone says so, in one line. */
static int bad(const char *flag, const char *value)
{
    if (ptl_world()->rank == 0)
        fprintf(stderr, "ptl bench dist: bad value '%s' for %s (see ptl bench dist --help)\n",
                value ? value : "", flag);
    return PTL_EXIT_USAGE;
}

static int parse_int(const char *s, int lo, int *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s == NULL || *s == 0 || errno || *end || v < lo || v > 1 << 24)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse(int argc, char **argv, struct dist_opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--arch") == 0 && v) {
            o->arch = v;
        } else if (strcmp(a, "--input") == 0) {
            char tail;
            if (v == NULL || sscanf(v, "%dx%dx%d%c", &o->c, &o->h, &o->w, &tail) != 3 ||
                o->c < 1 || o->h < 1 || o->w < 1)
                return bad(a, v);
        } else if (strcmp(a, "--classes") == 0) {
            if (parse_int(v, 1, &o->classes))
                return bad(a, v);
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_int(v, 1, &o->repeat))
                return bad(a, v);
        } else if (strcmp(a, "--warmup") == 0) {
            if (parse_int(v, 0, &o->warmup))
                return bad(a, v);
        } else if (strcmp(a, "--bucket-mb") == 0) {
            char *end;
            errno = 0;
            o->bucket_mb = v ? strtod(v, &end) : 0;
            if (v == NULL || *v == 0 || errno || *end || !(o->bucket_mb > 0) ||
                o->bucket_mb > 4096)
                return bad(a, v);
        } else if (strcmp(a, "--format") == 0 && v &&
                   (strcmp(v, "table") == 0 || strcmp(v, "tsv") == 0)) {
            o->tsv = strcmp(v, "tsv") == 0;
        } else {
            if (ptl_world()->rank == 0)
                fprintf(stderr, "ptl bench dist: unknown or incomplete option '%s'\n", a);
            return PTL_EXIT_USAGE;
        }
        i++;
    }
    if (o->arch == NULL) {
        if (ptl_world()->rank == 0)
            fputs("ptl bench dist: --arch is required (see ptl model list)\n", stderr);
        return PTL_EXIT_USAGE;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Rank r's gradient value i: small integers, so the sum over ranks is exact in any order and
 * the mean is known. */
static float grad_value(size_t i, int rank)
{
    return (float)(i % 61) - 30.0f + (float)rank;
}

/* Fills every gradient, trainable or not: ptl_grad_sync must touch only its own entries. */
static void fill_grads(struct ptl_model *m, int rank)
{
    float *g = ptl_model_grads(m);
    size_t n = ptl_model_param_floats(m);
    for (size_t i = 0; i < n; i++)
        g[i] = grad_value(i, rank);
}

/* After one sync: 1 if every trainable gradient is the mean over ranks, 0 otherwise (with the
 * first wrong value in *where). */
static int check_mean(struct ptl_model *m, int size, size_t *where)
{
    const float *g = ptl_model_grads(m);
    size_t n = ptl_model_param_floats(m);
    double shift = (size - 1) / 2.0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)grad_value(i, 0) + shift;
        if (fabs((double)g[i] - want) > 1e-5 * (fabs(want) + 1)) {
            *where = i;
            return 0;
        }
    }
    return 1;
}

/* After ptl_dist_any said some rank failed: one line per distinct failure, so an error every
 * rank meets alike (an unknown architecture) is said once, by rank 0. Collective. */
static void report_failure(int failed)
{
    int root_failed = ptl_world()->rank == 0 && failed;
    MPI_Bcast(&root_failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (failed && (ptl_world()->rank == 0 || !root_failed))
        fprintf(stderr, "ptl bench dist: rank %d: %s\n", ptl_world()->rank, ptl_error_message());
}

/* Seconds of the slowest rank for one repetition. */
static double slowest(double seconds)
{
    MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return seconds;
}

static double time_ours(struct ptl_grad_sync *s, int *rc)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = ptl_now();
    ptl_grad_sync_begin(s);
    *rc = ptl_grad_sync_finish(s);
    return slowest(ptl_now() - t0);
}

static double time_bare(float *buf, size_t n, int *rc)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = ptl_now();
    int err = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (err != MPI_SUCCESS)
        *rc = ptl_error(PTL_EMPI, "bare MPI_Allreduce of %zu floats failed (error %d)", n, err);
    return slowest(ptl_now() - t0);
}

/* The same floats in one non-blocking allreduce (the family ptl_grad_sync uses: in Open MPI
 * libnbc's schedules, not the tuned blocking algorithms), to tell the collective's share of a
 * gap from the copies'. */
static double time_ibare(float *buf, size_t n, int *rc)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = ptl_now();
    MPI_Request req;
    int err = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    if (err == MPI_SUCCESS)
        err = MPI_Wait(&req, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS)
        *rc = ptl_error(PTL_EMPI, "bare MPI_Iallreduce of %zu floats failed (error %d)", n, err);
    return slowest(ptl_now() - t0);
}

/* The copies ptl_grad_sync adds around the collective: gradients into a staging buffer, and
 * back multiplied by 1/R. */
static double time_copies(float *grads, float *staging, size_t n, float inv)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = ptl_now();
    memcpy(staging, grads, n * sizeof *grads);
    for (size_t i = 0; i < n; i++)
        grads[i] = staging[i] * inv;
    return slowest(ptl_now() - t0);
}

static int run(const struct dist_opts *o)
{
    const struct ptl_world *w = ptl_world();
    struct ptl_model_config cfg = {.classes = o->classes, .in_c = o->c, .in_h = o->h,
                                   .in_w = o->w, .seed = 1};
    const float lr_scale[PTL_ROLE_COUNT] = {1, 1, 1};
    struct ptl_model *m = NULL;
    struct ptl_grad_sync *s = NULL;
    float *bare = NULL, *copy = NULL;
    double *ours_t = calloc((size_t)o->repeat, sizeof *ours_t);
    double *bare_t = calloc((size_t)o->repeat, sizeof *bare_t);
    double *ibare_t = calloc((size_t)o->repeat, sizeof *ibare_t);
    double *copy_t = calloc((size_t)o->repeat, sizeof *copy_t);
    size_t floats = 0;
    int buckets = 0, in_place = 0;
    int rc = ours_t && bare_t && ibare_t && copy_t ? ptl_model_create(&m, o->arch, &cfg)
                              : ptl_error(PTL_ENOMEM, "out of memory");
    if (rc == 0)
        rc = ptl_grad_sync_create(&s, m, lr_scale, (size_t)(o->bucket_mb * 1048576.0), 1, NULL);
    if (rc == 0) {
        buckets = ptl_grad_sync_buckets(s, &floats, &in_place);
        if (floats > (size_t)2147483647)
            rc = ptl_error(PTL_EINVAL, "%s: %zu gradient floats do not fit one MPI count",
                           o->arch, floats);
        else if ((bare = malloc((floats ? floats : 1) * sizeof *bare)) == NULL ||
                 (copy = malloc((floats ? floats : 1) * sizeof *copy)) == NULL)
            rc = ptl_error(PTL_ENOMEM, "out of memory for %zu floats", floats);
    }
    /* Every rank builds the same model, so every rank fails alike up to here; the collectives
     * below need all of them. */
    if (ptl_dist_any(rc != 0)) {
        report_failure(rc != 0);
        rc = rc ? rc : PTL_EMPI;
        goto out;
    }
    for (size_t i = 0; i < floats; i++)
        bare[i] = grad_value(i, w->rank);

    /* Correctness, once: every trainable gradient (here: all of them) is the mean. */
    fill_grads(m, w->rank);
    ptl_grad_sync_begin(s);
    rc = ptl_grad_sync_finish(s);
    size_t where = 0;
    int wrong = rc == 0 && !check_mean(m, w->size, &where);
    if (ptl_dist_any(rc != 0 || wrong)) {
        if (wrong)
            rc = ptl_error(PTL_EMPI,
                           "gradient float %zu is %g after the sync, not the mean over ranks %g",
                           where, (double)ptl_model_grads(m)[where],
                           (double)grad_value(where, 0) + (w->size - 1) / 2.0);
        report_failure(rc != 0);
        rc = rc ? rc : PTL_EMPI;
        goto out;
    }
    /* Timed as training uses it: the loss gradient is pre-scaled by 1/R there, so the sync
     * only sums (no pass over the gradients after the wait). */
    ptl_grad_sync_free(s);
    s = NULL;
    rc = ptl_grad_sync_create(&s, m, lr_scale, (size_t)(o->bucket_mb * 1048576.0), 0, NULL);
    if (ptl_dist_any(rc != 0)) {
        report_failure(rc != 0);
        rc = rc ? rc : PTL_EMPI;
        goto out;
    }
    /* The synced gradients are equal on every rank and a fixed point of averaging; the bare
     * buffer grows by a factor R a repetition, so it is reset to small values. */
    for (int r = 0; rc == 0 && r < o->warmup + o->repeat; r++) {
        for (size_t i = 0; i < floats; i++)
            bare[i] = grad_value(i, w->rank);
        double a, b, c, d;
        if (r % 2 == 0) {
            a = time_ours(s, &rc);
            b = time_bare(bare, floats, &rc);
        } else {
            b = time_bare(bare, floats, &rc);
            a = time_ours(s, &rc);
        }
        for (size_t i = 0; i < floats; i++)
            bare[i] = grad_value(i, w->rank);
        c = time_ibare(bare, floats, &rc);
        d = time_copies(ptl_model_grads(m), copy, floats, 1.0f);
        if (r >= o->warmup) {
            ours_t[r - o->warmup] = a;
            bare_t[r - o->warmup] = b;
            ibare_t[r - o->warmup] = c;
            copy_t[r - o->warmup] = d;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "ptl bench dist: rank %d: %s\n", w->rank, ptl_error_message());
        goto out;
    }
    qsort(ours_t, (size_t)o->repeat, sizeof *ours_t, cmp_double);
    qsort(bare_t, (size_t)o->repeat, sizeof *bare_t, cmp_double);
    qsort(ibare_t, (size_t)o->repeat, sizeof *ibare_t, cmp_double);
    qsort(copy_t, (size_t)o->repeat, sizeof *copy_t, cmp_double);
    double ours = ours_t[o->repeat / 2], base = bare_t[o->repeat / 2];
    double ibase = ibare_t[o->repeat / 2], copies = copy_t[o->repeat / 2];
    double mib = (double)floats * sizeof(float) / 1048576.0;
    double bus = w->size > 1 ? 2.0 * (w->size - 1) / w->size : 1.0;
    if (w->rank == 0 && o->tsv) {
        printf("%s\t%d\t%zu\t%d\t%.6g\t%.6g\t%.2f\t%.2f\t%.4f\t%.6g\t%.6g\n", o->arch,
               w->size, floats, buckets, ours, base, mib / ours, mib / base, base / ours, ibase,
               copies);
    } else if (w->rank == 0) {
        printf("ptl %s bench dist: %s, %d classes, input %dx%dx%d, %d ranks\n", ptl_version(),
               o->arch, o->classes, o->c, o->h, o->w, w->size);
        printf("gradients: %zu floats (%.2f MiB) in %d buckets of up to %g MiB (%d reduced in "
               "place); averaged correctly\n",
               floats, mib, buckets, o->bucket_mb, in_place);
        printf("%-22s %12s %12s %14s  (median of %d, slowest rank)\n", "", "seconds", "MiB/s",
               "bus MiB/s", o->repeat);
        printf("%-22s %12.6f %12.1f %14.1f\n", "ptl_grad_sync", ours, mib / ours,
               bus * mib / ours);
        printf("%-22s %12.6f %12.1f %14.1f\n", "bare MPI_Allreduce", base, mib / base,
               bus * mib / base);
        printf("%-22s %12.6f %12.1f %14.1f  (reference: one non-blocking allreduce)\n",
               "bare MPI_Iallreduce", ibase, mib / ibase, bus * mib / ibase);
        printf("%-22s %12.6f %12.1f %14s  (reference: the copy in and out alone)\n",
               "copies in + out", copies, mib / copies, "-");
        printf("ratio ours/bare: %.3f (bandwidth of ptl_grad_sync / bare MPI_Allreduce)\n",
               base / ours);
    }
out:
    free(ours_t);
    free(bare_t);
    free(ibare_t);
    free(copy_t);
    free(bare);
    free(copy);
    ptl_grad_sync_free(s);
    ptl_model_free(m);
    return rc == 0 ? 0 : 1;
}

int ptl_cli_bench_dist(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            if (ptl_world()->rank == 0)
                fputs(dist_usage, stdout);
            return 0;
        }
    struct dist_opts o = {.c = 3, .h = 128, .w = 64, .classes = 751, .repeat = 20, .warmup = 2,
                          .bucket_mb = 25.0};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (!ptl_world()->mpi) {
        fputs("ptl bench dist: not started by an MPI launcher (run it as mpirun -n 2 ptl bench "
              "dist --arch NAME)\n",
              stderr);
        return PTL_EXIT_USAGE;
    }
    ptl_threads_set(1); /* nothing here computes; keep the cores for MPI */
    return run(&o);
}
