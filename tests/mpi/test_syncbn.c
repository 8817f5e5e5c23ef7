/* SyncBN over MPI ranks (run under mpirun -n 1, 2, 4 by tests/mpi/syncbn.sh): R ranks, each
 * with N/R samples of one batch, must compute what one process with the whole batch computes.
 *
 * Every rank builds the same seeded full batch and the whole-batch reference with the
 * single-process kernels / an identical model without the hook, then runs its slice:
 *  1. the split BatchNorm kernels of ptl/ops.h with MPI sums in between: outputs, running
 *     statistics, d_in and d_gamma / d_beta (summed over ranks);
 *  2. whole networks with ptl_model_set_bn_sum: outputs, running statistics, the input gradient
 *     and the parameter gradients (summed over ranks and divided by R, as the gradient
 *     averaging does), and an eval forward with the updated running statistics.
 * Gradient convention (PyTorch DDP + SyncBatchNorm): each rank's loss is the mean over its own
 * samples, so its d_outputs are R times its slice of the whole-batch ones; everything in
 * backward is linear in them, so d_in is R times the reference slice and the averaged
 * parameter gradients equal the reference.
 *
 * A plain MPI program (Criterion forks each test, which MPI does not survive): one line per
 * failed check, exit 1 if any rank failed; SYNCBN_VERBOSE=1 prints rank 0's measured errors. */
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/model.h"
#include "ptl/ops.h"

static int rank, nranks, failures;

static void fail(const char *check, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *check, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("FAIL (rank %d of %d) %s: %s\n", rank, nranks, check, msg);
    fflush(stdout);
    failures++;
}

/* The model's ptl_model_sum_fn: MPI_Allreduce SUM in place; counts its calls in *ctx. */
static int mpi_sum(void *ctx, double *values, int count)
{
    if (ctx != NULL)
        ++*(long *)ctx;
    if (MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        return ptl_error(PTL_EIO, "syncbn test: MPI_Allreduce of %d doubles failed", count);
    return PTL_OK;
}

static void sum_floats(float *x, size_t n)
{
    if (MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "rank %d: MPI_Allreduce of %zu floats failed\n", rank, n);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* ||a - b|| / max(||b||, floor), in double. */
static double rel_err(const float *a, const float *b, size_t n, double floor)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d += e * e;
        r += (double)b[i] * b[i];
    }
    r = sqrt(r);
    return sqrt(d) / (r > floor ? r : floor);
}

static void expect_close(const char *check, const float *got, const float *want, size_t n,
                         double tol)
{
    double e = rel_err(got, want, n, 1e-12);
    if (getenv("SYNCBN_VERBOSE") != NULL && rank == 0)
        printf("rank 0 of %d: %s: relative error %.3g\n", nranks, check, e);
    if (!(e <= tol))
        fail(check, "relative error %.3g > %.1g over %zu values", e, tol, n);
}

static float *alloc_floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (p == NULL) {
        fprintf(stderr, "rank %d: out of memory for %zu floats\n", rank, n);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

static void fill(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, seed, 0);
    ptl_rng_fill_uniform(&rng, x, n, lo, hi);
}

/* ---- 1. the split kernels ---- */

static void test_kernels(void)
{
    enum { N = 8, C = 5, HW = 6 * 7 };
    const struct ptl_batchnorm_shape full = {N, C, HW, 1e-5f, 0.1f};
    const int n = N / nranks;
    const struct ptl_batchnorm_shape mine = {n, C, HW, 1e-5f, 0.1f};
    const size_t len = (size_t)N * C * HW, slice = (size_t)n * C * HW, off = (size_t)rank * slice;

    float *x = alloc_floats(len), *dy = alloc_floats(len), *y = alloc_floats(len);
    float *dx = alloc_floats(len), *y_r = alloc_floats(slice), *dy_r = alloc_floats(slice);
    float *dx_r = alloc_floats(slice);
    float gamma[C], beta[C], rm[C], rv[C], rm_r[C], rv_r[C], mean_f[C], invstd_f[C];
    float dg[C] = {0}, db[C] = {0}, dg_r[C] = {0}, db_r[C] = {0};
    fill(x, len, 1, 2.0f, 4.0f); /* mean ~3 >> std: one-pass E[x^2] - E[x]^2 would show */
    fill(dy, len, 2, -1.0f, 1.0f);
    fill(gamma, C, 3, 0.5f, 2.0f);
    fill(beta, C, 4, -1.0f, 1.0f);
    fill(rm, C, 5, -0.5f, 0.5f);
    fill(rv, C, 6, 0.5f, 2.0f);
    memcpy(rm_r, rm, sizeof rm);
    memcpy(rv_r, rv, sizeof rv);

    /* Reference: the single-process kernels on the whole batch. */
    if (ptl_batchnorm_forward_train(y, mean_f, invstd_f, rm, rv, x, gamma, beta, &full) != 0 ||
        ptl_batchnorm_backward_train(dx, dg, db, dy, x, mean_f, invstd_f, gamma, &full) != 0) {
        fail("kernels: reference", "%s", ptl_error_message());
        goto out;
    }

    /* This rank's slice, the phases separated by sums over ranks. */
    double sum[C + 1], mean[C], sq[C], invstd[C], bsum[2 * C];
    int rc = ptl_batchnorm_split_sum(sum, x + off, &mine);
    sum[C] = (double)n * HW;
    if (rc == 0)
        rc = mpi_sum(NULL, sum, C + 1);
    for (int ch = 0; ch < C; ch++)
        mean[ch] = sum[ch] / sum[C];
    if (rc == 0)
        rc = ptl_batchnorm_split_sqdev(sq, x + off, mean, &mine);
    if (rc == 0)
        rc = mpi_sum(NULL, sq, C);
    if (rc == 0)
        rc = ptl_batchnorm_split_forward(y_r, invstd, rm_r, rv_r, x + off, gamma, beta, mean, sq,
                                         sum[C], &mine);
    for (size_t i = 0; i < slice; i++)
        dy_r[i] = (float)nranks * dy[off + i]; /* the rank's loss is the mean over its slice */
    if (rc == 0)
        rc = ptl_batchnorm_split_backward_sums(bsum, bsum + C, dg_r, db_r, dy_r, x + off, mean,
                                               invstd, &mine);
    if (rc == 0)
        rc = mpi_sum(NULL, bsum, 2 * C);
    if (rc == 0)
        rc = ptl_batchnorm_split_backward_input(dx_r, dy_r, x + off, gamma, mean, invstd, bsum,
                                                bsum + C, sum[C], &mine);
    if (rc != 0) {
        fail("kernels: split phases", "%s", ptl_error_message());
        goto out;
    }
    if (sum[C] != (double)N * HW)
        fail("kernels: global count", "%g, expected %d", sum[C], N * HW);
    expect_close("kernels: output of the slice", y_r, y + off, slice, 1e-5);
    expect_close("kernels: running_mean", rm_r, rm, C, 1e-5);
    expect_close("kernels: running_var", rv_r, rv, C, 1e-5);
    for (size_t i = 0; i < slice; i++)
        dx_r[i] /= (float)nranks;
    expect_close("kernels: d_in of the slice", dx_r, dx + off, slice, 1e-5);
    sum_floats(dg_r, C);
    sum_floats(db_r, C);
    for (int ch = 0; ch < C; ch++) {
        dg_r[ch] /= (float)nranks;
        db_r[ch] /= (float)nranks;
    }
    expect_close("kernels: d_gamma summed over ranks", dg_r, dg, C, 1e-5);
    expect_close("kernels: d_beta summed over ranks", db_r, db, C, 1e-5);
out:
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(y_r);
    free(dy_r);
    free(dx_r);
}

/* ---- 2. whole networks ---- */

static struct ptl_model *make_model(const char *arch)
{
    const struct ptl_model_config cfg = {.classes = 10, .in_c = 1, .in_h = 28, .in_w = 28,
                                         .seed = 7, .cell_history = 1};
    struct ptl_model *m = NULL;
    if (ptl_model_create(&m, arch, &cfg) != 0) {
        fail(arch, "ptl_model_create: %s", ptl_error_message());
        return NULL;
    }
    return m;
}

static void test_model(const char *arch)
{
    enum { N = 8, STEPS = 2 };
    const int n = N / nranks;
    char check[160];
    struct ptl_model *ref = make_model(arch), *m = make_model(arch);
    if (ref == NULL || m == NULL) {
        ptl_model_free(ref);
        ptl_model_free(m);
        return;
    }
    long sums = 0;
    ptl_model_set_bn_sum(m, mpi_sum, &sums);
    ptl_model_set_slot_base(m, rank * n); /* cells: the latent rows of the global slots */

    const size_t in_per = 28 * 28, in_len = N * in_per;
    const int n_out = ptl_model_output_count(ref);
    float *x = alloc_floats(in_len), *dx = alloc_floats(in_len), *dx_r = alloc_floats(in_len);
    float **dout = calloc((size_t)n_out, sizeof *dout);
    float **dout_r = calloc((size_t)n_out, sizeof *dout_r);
    if (dout == NULL || dout_r == NULL)
        MPI_Abort(MPI_COMM_WORLD, 2);
    for (int k = 0; k < n_out; k++) {
        size_t dim = (size_t)ptl_model_output_dim(ref, k);
        dout[k] = alloc_floats(N * dim);
        dout_r[k] = alloc_floats(n * dim);
    }
    const size_t np = ptl_model_param_floats(ref), nb = ptl_model_buffer_floats(ref);
    float *g = alloc_floats(np);

    for (int step = 0; step < STEPS; step++) {
        fill(x, in_len, 100 + step, -1.0f, 1.0f);
        for (size_t i = 0; i < in_len; i++)
            x[i] += 0.5f; /* inputs off zero */
        if (ptl_model_forward(ref, x, N, 1) != 0) {
            snprintf(check, sizeof check, "%s: reference forward", arch);
            fail(check, "%s", ptl_error_message());
            break;
        }
        long before = sums;
        if (ptl_model_forward(m, x + (size_t)rank * n * in_per, n, 1) != 0) {
            snprintf(check, sizeof check, "%s: SyncBN forward", arch);
            fail(check, "%s", ptl_error_message());
            break;
        }
        if (sums == before) {
            snprintf(check, sizeof check, "%s: SyncBN forward", arch);
            fail(check, "the sum hook was never called");
        }
        for (int k = 0; k < n_out; k++) {
            int dim;
            const float *want = ptl_model_output(ref, k, &dim);
            const float *got = ptl_model_output(m, k, &dim);
            snprintf(check, sizeof check, "%s step %d: output '%s' of the slice", arch, step,
                     ptl_model_output_name(ref, k));
            expect_close(check, got, want + (size_t)rank * n * dim, (size_t)n * dim, 1e-3);
            /* d_outputs: the whole-batch ones, R times this rank's slice of them. */
            fill(dout[k], (size_t)N * dim, 200 + 10 * step + k, -1.0f, 1.0f);
            for (size_t i = 0; i < (size_t)n * dim; i++)
                dout_r[k][i] = (float)nranks * dout[k][(size_t)rank * n * dim + i];
        }
        snprintf(check, sizeof check, "%s step %d: running statistics", arch, step);
        expect_close(check, ptl_model_buffers(m), ptl_model_buffers(ref), nb, 1e-5);

        ptl_model_zero_grad(ref);
        ptl_model_zero_grad(m);
        memset(dx, 0, in_len * sizeof *dx); /* d_input accumulates too */
        memset(dx_r, 0, in_len * sizeof *dx_r);
        if (ptl_model_backward(ref, (const float *const *)dout, dx) != 0 ||
            ptl_model_backward(m, (const float *const *)dout_r, dx_r) != 0) {
            snprintf(check, sizeof check, "%s: backward", arch);
            fail(check, "%s", ptl_error_message());
            break;
        }
        for (size_t i = 0; i < (size_t)n * in_per; i++)
            dx_r[i] /= (float)nranks;
        snprintf(check, sizeof check, "%s step %d: input gradient of the slice", arch, step);
        expect_close(check, dx_r, dx + (size_t)rank * n * in_per, (size_t)n * in_per, 1e-3);

        memcpy(g, ptl_model_grads(m), np * sizeof *g);
        sum_floats(g, np);
        for (size_t i = 0; i < np; i++)
            g[i] /= (float)nranks;
        const float *gref = ptl_model_grads(ref);
        snprintf(check, sizeof check, "%s step %d: parameter gradients (all)", arch, step);
        expect_close(check, g, gref, np, 1e-3);
        /* Per entry, so a wrong layer is named; tiny entries against a floor of the total. */
        double total = 0;
        for (size_t i = 0; i < np; i++)
            total += (double)gref[i] * gref[i];
        total = sqrt(total);
        for (size_t e = 0; e < ptl_model_entry_count(ref); e++) {
            const struct ptl_entry *en = ptl_model_entry(ref, e);
            if (en->kind != PTL_ENTRY_PARAM)
                continue;
            double err = rel_err(g + en->offset, gref + en->offset, en->count, 1e-4 * total);
            if (!(err <= 1e-3)) {
                snprintf(check, sizeof check, "%s step %d: gradient of %s", arch, step, en->name);
                fail(check, "relative error %.3g > 1e-3 over %zu values", err, en->count);
            }
        }
    }

    /* Eval with the running statistics every rank updated alike. */
    if (failures == 0) {
        if (ptl_model_forward(ref, x, N, 0) != 0 ||
            ptl_model_forward(m, x + (size_t)rank * n * in_per, n, 0) != 0) {
            snprintf(check, sizeof check, "%s: eval forward", arch);
            fail(check, "%s", ptl_error_message());
        } else {
            int dim;
            const float *want = ptl_model_output(ref, 1, &dim);
            const float *got = ptl_model_output(m, 1, &dim);
            snprintf(check, sizeof check, "%s: eval logits of the slice", arch);
            expect_close(check, got, want + (size_t)rank * n * dim, (size_t)n * dim, 1e-3);
        }
    }

    for (int k = 0; k < n_out; k++) {
        free(dout[k]);
        free(dout_r[k]);
    }
    free(dout);
    free(dout_r);
    free(x);
    free(dx);
    free(dx_r);
    free(g);
    ptl_model_free(ref);
    ptl_model_free(m);
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "test_syncbn: MPI_Init failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (8 % nranks != 0) {
        if (rank == 0)
            fprintf(stderr, "test_syncbn: needs 1, 2, 4 or 8 ranks (got %d)\n", nranks);
        MPI_Finalize();
        return 1;
    }
    test_kernels();
    test_model("resnet18-narrow");
    test_model("ptl-resnet18-narrow");

    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("test_syncbn: %d ranks: %s\n", nranks, total ? "FAILED" : "all checks passed");
    MPI_Finalize();
    return total ? 1 : 0;
}
