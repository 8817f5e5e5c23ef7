/* Batch normalisation over (N, C, HW) - BatchNorm2d with hw = H*W, BatchNorm1d with hw = 1 -
 * in training mode (batch statistics, running-stat update) and eval mode (running statistics),
 * with PyTorch's exact semantics. Not for layer/group/instance norm.
 *
 * Per-channel sums run over N*HW elements, so they accumulate in double (long rows in float
 * blocks first, see ROW_BLOCK); the work is split over channels, which keeps every sum on one
 * thread and the result independent of the thread count.
 * The per-element maps (normalise, input gradient) run in float with float coefficients, as
 * PyTorch's CPU kernels do. Every row loop is an `omp simd` loop: the sums vectorise as double
 * lanes (the reduction order changes, not the precision), the maps as float lanes. */
#include <math.h>

#include "ops/check.h"
#include "ptl/ops.h"

static int check_shape(const char *op, const struct ptl_batchnorm_shape *s)
{
    PTL_CHECK_PTR(op, s);
    PTL_CHECK(s->n >= 1 && s->c >= 1 && s->hw >= 1,
              "%s: n, c and hw must be >= 1 (got n=%d, c=%d, hw=%d)", op, s->n, s->c, s->hw);
    PTL_CHECK(isfinite(s->eps) && s->eps >= 0.0f, "%s: eps must be finite and >= 0 (got %g)", op,
              (double)s->eps);
    PTL_CHECK(s->momentum >= 0.0f && s->momentum <= 1.0f, "%s: momentum must be in [0, 1] (got %g)",
              op, (double)s->momentum);
    return PTL_OK;
}

static inline int big(const struct ptl_batchnorm_shape *s)
{
    return (long long)s->n * s->c * s->hw >= PTL_OMP_MIN_ELEMENTS;
}

/* Offset of sample i, channel ch in an (N, C, HW) tensor. */
static inline size_t at(const struct ptl_batchnorm_shape *s, int i, int ch)
{
    return ((size_t)i * s->c + ch) * s->hw;
}

/* ---- one row (one sample's plane of one channel, hw floats) ---- */

/* Rows of at least ROW_FLOAT_MIN values are summed in blocks of ROW_BLOCK values in float
 * lanes (each lane then sums ROW_BLOCK / 8 or / 16 values; the PyTorch oracle's 300-value
 * rows hold the result to its 1e-4 and fail a 1e-4 error), the blocks in double: all in double these sums took 4.5% of a resnet18 step's
 * samples (half the lanes, and the conversions); now BatchNorm takes 21-22 ms of the step
 * instead of 25-27 (Zen 5, 2 threads). Shorter rows (BatchNorm1d, 1x1 planes, where a channel
 * may hold only a few values and d_in cancels nearly) stay in double throughout. */
#define ROW_BLOCK 256
#define ROW_FLOAT_MIN 64

static double row_sum(const float *x, int hw)
{
    double acc = 0.0;
    if (hw < ROW_FLOAT_MIN) {
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < hw; j++)
            acc += x[j];
        return acc;
    }
    for (int j0 = 0; j0 < hw; j0 += ROW_BLOCK) {
        const int j1 = hw - j0 < ROW_BLOCK ? hw : j0 + ROW_BLOCK;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int j = j0; j < j1; j++)
            part += x[j];
        acc += part;
    }
    return acc;
}

static double row_sqdev(const float *x, int hw, double mean)
{
    double acc = 0.0;
    if (hw < ROW_FLOAT_MIN) {
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < hw; j++) {
            double d = x[j] - mean;
            acc += d * d;
        }
        return acc;
    }
    const float m = (float)mean;
    for (int j0 = 0; j0 < hw; j0 += ROW_BLOCK) {
        const int j1 = hw - j0 < ROW_BLOCK ? hw : j0 + ROW_BLOCK;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int j = j0; j < j1; j++) {
            float d = x[j] - m;
            part += d * d;
        }
        acc += part;
    }
    return acc;
}

/* sum(dy) and sum(dy * (x - mean)) of one row, added to *sdy and *sdot. */
static void row_dy_dot(const float *dy, const float *x, int hw, double mean, double *sdy,
                       double *sdot)
{
    if (hw < ROW_FLOAT_MIN) {
        double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
        for (int j = 0; j < hw; j++) {
            a += dy[j];
            b += dy[j] * (x[j] - mean);
        }
        *sdy += a;
        *sdot += b;
        return;
    }
    const float m = (float)mean;
    for (int j0 = 0; j0 < hw; j0 += ROW_BLOCK) {
        const int j1 = hw - j0 < ROW_BLOCK ? hw : j0 + ROW_BLOCK;
        float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
        for (int j = j0; j < j1; j++) {
            a += dy[j];
            b += dy[j] * (x[j] - m);
        }
        *sdy += a;
        *sdot += b;
    }
}

/* y = (x - mean) * k + b */
static void row_affine(float *y, const float *x, int hw, float mean, float k, float b)
{
#pragma omp simd
    for (int j = 0; j < hw; j++)
        y[j] = (x[j] - mean) * k + b;
}

/* dx += (dy - dy_mean - (x - mean) * proj) * k: the input gradient under batch statistics. */
static void row_dx(float *dx, const float *dy, const float *x, int hw, float dy_mean, float mean,
                   float proj, float k)
{
#pragma omp simd
    for (int j = 0; j < hw; j++)
        dx[j] += (dy[j] - dy_mean - (x[j] - mean) * proj) * k;
}

/* row_affine in double, for channels of few values (BN_EXACT_STATS_MAX_COUNT below). */
static void row_affine_exact(float *y, const float *x, int hw, double mean, double k, double b)
{
    for (int j = 0; j < hw; j++)
        y[j] = (float)((x[j] - mean) * k + b);
}

/* row_dx in double, for channels of few values (BN_EXACT_STATS_MAX_COUNT below). */
static void row_dx_exact(float *dx, const float *dy, const float *x, int hw, double dy_mean,
                         double mean, double proj, double k)
{
    for (int j = 0; j < hw; j++)
        dx[j] += (float)((dy[j] - dy_mean - (x[j] - mean) * proj) * k);
}

/* Mean and sum of squared deviations of channel ch, in double. Two passes rather than
 * E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std. */
static void channel_stats(const struct ptl_batchnorm_shape *s, const float *in, int ch,
                          double *mean_out, double *sq_out)
{
    double sum = 0.0;
    for (int i = 0; i < s->n; i++)
        sum += row_sum(in + at(s, i, ch), s->hw);
    const double mean = sum / ((double)s->n * s->hw);
    double sq = 0.0;
    for (int i = 0; i < s->n; i++)
        sq += row_sqdev(in + at(s, i, ch), s->hw, mean);
    *mean_out = mean;
    *sq_out = sq;
}

/* Up to this many values per channel the backward recomputes the statistics in double instead
 * of using the float save_mean/save_invstd. With very few values (n*hw = 2: BatchNorm1d on a
 * batch of 2) the input gradient is a near-total cancellation, (1 - xhat^2) ~ eps/var, and the
 * rounding of the saved floats alone gives it a 10-50% relative error against float64; for such
 * small channels the two extra passes cost nothing. */
#define BN_EXACT_STATS_MAX_COUNT 256

int ptl_batchnorm_forward_train(float *out, float *save_mean, float *save_invstd,
                                float *running_mean, float *running_var, const float *in,
                                const float *gamma, const float *beta,
                                const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_forward_train";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, save_mean);
    PTL_CHECK_PTR(op, save_invstd);
    PTL_CHECK_PTR(op, in);
    /* As PyTorch's "Expected more than 1 value per channel when training". */
    PTL_CHECK((long long)s->n * s->hw >= 2,
              "%s: expected more than 1 value per channel when training (n*hw = %lld)", op,
              (long long)s->n * s->hw);

    const int n = s->n, c = s->c, hw = s->hw;
    const double count = (double)n * hw;
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < c; ch++) {
        double mean, sq;
        channel_stats(s, in, ch, &mean, &sq);
        const double var = sq / count; /* biased: what normalises */
        const double invstd = 1.0 / sqrt(var + s->eps);
        const double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        for (int i = 0; i < n; i++)
            if (count > BN_EXACT_STATS_MAX_COUNT)
                row_affine(out + at(s, i, ch), in + at(s, i, ch), hw, (float)mean,
                           (float)(invstd * g), (float)b);
            else
                row_affine_exact(out + at(s, i, ch), in + at(s, i, ch), hw, mean, invstd * g, b);
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        /* The running variance is the unbiased one, as in PyTorch. */
        const double m = s->momentum;
        if (running_mean != NULL)
            running_mean[ch] = (float)((1.0 - m) * running_mean[ch] + m * mean);
        if (running_var != NULL)
            running_var[ch] = (float)((1.0 - m) * running_var[ch] + m * (sq / (count - 1.0)));
    }
    return PTL_OK;
}

int ptl_batchnorm_backward_train(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                 const float *in, const float *save_mean, const float *save_invstd,
                                 const float *gamma, const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_backward_train";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, save_mean);
    PTL_CHECK_PTR(op, save_invstd);
    PTL_CHECK((long long)s->n * s->hw >= 2,
              "%s: expected more than 1 value per channel when training (n*hw = %lld)", op,
              (long long)s->n * s->hw);

    const int n = s->n, c = s->c, hw = s->hw;
    const double count = (double)n * hw;
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < c; ch++) {
        double mean = save_mean[ch], invstd = save_invstd[ch];
        if (count <= BN_EXACT_STATS_MAX_COUNT) {
            double sq;
            channel_stats(s, in, ch, &mean, &sq);
            invstd = 1.0 / sqrt(sq / count + s->eps);
        }
        double sum_dy = 0.0, dot = 0.0; /* sum(dy), sum(dy * (x - mean)) */
        for (int i = 0; i < n; i++)
            row_dy_dot(d_out + at(s, i, ch), in + at(s, i, ch), hw, mean, &sum_dy, &dot);
        if (d_gamma != NULL)
            d_gamma[ch] += (float)(dot * invstd);
        if (d_beta != NULL)
            d_beta[ch] += (float)sum_dy;
        if (d_in == NULL)
            continue;
        /* The batch statistics depend on every x: dx = g*invstd * (dy - mean(dy)
         * - (x - mean) * invstd^2 * mean(dy * (x - mean))), PyTorch's formula. */
        const double grad_mean = sum_dy / count;
        const double proj = dot * invstd * invstd / count;
        const double scale = invstd * (gamma ? gamma[ch] : 1.0);
        /* The near-cancellation of few values (above) needs the map in double too. */
        for (int i = 0; i < n; i++)
            if (count > BN_EXACT_STATS_MAX_COUNT)
                row_dx(d_in + at(s, i, ch), d_out + at(s, i, ch), in + at(s, i, ch), hw,
                       (float)grad_mean, (float)mean, (float)proj, (float)scale);
            else
                row_dx_exact(d_in + at(s, i, ch), d_out + at(s, i, ch), in + at(s, i, ch), hw,
                             grad_mean, mean, proj, scale);
    }
    return PTL_OK;
}

int ptl_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var,
                               const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_forward_eval";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, running_mean);
    PTL_CHECK_PTR(op, running_var);

    const int n = s->n, c = s->c, hw = s->hw;
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < c; ch++) {
        const double invstd = 1.0 / sqrt((double)running_var[ch] + s->eps);
        const double mean = running_mean[ch];
        const double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        for (int i = 0; i < n; i++)
            row_affine(out + at(s, i, ch), in + at(s, i, ch), hw, (float)mean,
                       (float)(invstd * g), (float)b);
    }
    return PTL_OK;
}

int ptl_batchnorm_backward_eval(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *in, const float *gamma, const float *running_mean,
                                const float *running_var, const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_backward_eval";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, running_mean);
    PTL_CHECK_PTR(op, running_var);

    const int n = s->n, c = s->c, hw = s->hw;
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < c; ch++) {
        /* Fixed statistics: the op is an affine map per channel. */
        const double invstd = 1.0 / sqrt((double)running_var[ch] + s->eps);
        const double mean = running_mean[ch];
        if (d_gamma != NULL || d_beta != NULL) {
            double sum_dy = 0.0, dot = 0.0;
            for (int i = 0; i < n; i++)
                row_dy_dot(d_out + at(s, i, ch), in + at(s, i, ch), hw, mean, &sum_dy, &dot);
            if (d_gamma != NULL)
                d_gamma[ch] += (float)(dot * invstd);
            if (d_beta != NULL)
                d_beta[ch] += (float)sum_dy;
        }
        if (d_in == NULL)
            continue;
        const float scale = (float)(invstd * (gamma ? gamma[ch] : 1.0));
        for (int i = 0; i < n; i++) {
            const float *dy = d_out + at(s, i, ch);
            float *dx = d_in + at(s, i, ch);
#pragma omp simd
            for (int j = 0; j < hw; j++)
                dx[j] += dy[j] * scale;
        }
    }
    return PTL_OK;
}

/* ---- Split phases: training-mode statistics over a batch spread over processes (SyncBN) ----
 *
 * The caller sums each phase's per-channel doubles over the processes between the calls (no
 * MPI here). The phases repeat the two-pass scheme of forward_train: sum -> global mean ->
 * squared deviations around it -> global variance, so R processes reproduce one process with
 * the whole batch up to the order of the sums. */

int ptl_batchnorm_split_sum(double *sum, const float *in, const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_split_sum";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, sum);
    PTL_CHECK_PTR(op, in);
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < s->c; ch++) {
        double acc = 0.0;
        for (int i = 0; i < s->n; i++)
            acc += row_sum(in + at(s, i, ch), s->hw);
        sum[ch] = acc;
    }
    return PTL_OK;
}

int ptl_batchnorm_split_sqdev(double *sq, const float *in, const double *mean,
                              const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_split_sqdev";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, sq);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, mean);
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < s->c; ch++) {
        double acc = 0.0;
        for (int i = 0; i < s->n; i++)
            acc += row_sqdev(in + at(s, i, ch), s->hw, mean[ch]);
        sq[ch] = acc;
    }
    return PTL_OK;
}

/* The global count must cover this process's values and, as in PyTorch, exceed 1. */
static int check_count(const char *op, double count, const struct ptl_batchnorm_shape *s)
{
    PTL_CHECK(isfinite(count) && count >= (double)s->n * s->hw,
              "%s: global count %g is less than this process's %lld values per channel", op,
              count, (long long)s->n * s->hw);
    PTL_CHECK(count >= 2.0,
              "%s: expected more than 1 value per channel when training (global count = %g)", op,
              count);
    return PTL_OK;
}

int ptl_batchnorm_split_forward(float *out, double *invstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma,
                                const float *beta, const double *mean, const double *sq,
                                double count, const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_split_forward";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, invstd);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, mean);
    PTL_CHECK_PTR(op, sq);
    rc = check_count(op, count, s);
    if (rc != PTL_OK)
        return rc;

    const int n = s->n, c = s->c, hw = s->hw;
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < c; ch++) {
        const double mu = mean[ch];
        const double is = 1.0 / sqrt(sq[ch] / count + s->eps); /* biased variance normalises */
        const double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        for (int i = 0; i < n; i++)
            if (count > BN_EXACT_STATS_MAX_COUNT)
                row_affine(out + at(s, i, ch), in + at(s, i, ch), hw, (float)mu, (float)(is * g),
                           (float)b);
            else
                row_affine_exact(out + at(s, i, ch), in + at(s, i, ch), hw, mu, is * g, b);
        invstd[ch] = is;
        /* Every process applies the same global update, so the running statistics stay
         * identical on all of them (unbiased variance over the global count, as in PyTorch). */
        const double m = s->momentum;
        if (running_mean != NULL)
            running_mean[ch] = (float)((1.0 - m) * running_mean[ch] + m * mu);
        if (running_var != NULL)
            running_var[ch] = (float)((1.0 - m) * running_var[ch] + m * (sq[ch] / (count - 1.0)));
    }
    return PTL_OK;
}

int ptl_batchnorm_split_backward_sums(double *sum_dy, double *dot, float *d_gamma, float *d_beta,
                                      const float *d_out, const float *in, const double *mean,
                                      const double *invstd, const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_split_backward_sums";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, sum_dy);
    PTL_CHECK_PTR(op, dot);
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, mean);
    PTL_CHECK_PTR(op, invstd);
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < s->c; ch++) {
        double sdy = 0.0, sdot = 0.0;
        for (int i = 0; i < s->n; i++)
            row_dy_dot(d_out + at(s, i, ch), in + at(s, i, ch), s->hw, mean[ch], &sdy, &sdot);
        sum_dy[ch] = sdy;
        dot[ch] = sdot;
        /* This process's share: the gradient averaging over processes adds the rest. */
        if (d_gamma != NULL)
            d_gamma[ch] += (float)(sdot * invstd[ch]);
        if (d_beta != NULL)
            d_beta[ch] += (float)sdy;
    }
    return PTL_OK;
}

int ptl_batchnorm_split_backward_input(float *d_in, const float *d_out, const float *in,
                                       const float *gamma, const double *mean,
                                       const double *invstd, const double *sum_dy,
                                       const double *dot, double count,
                                       const struct ptl_batchnorm_shape *s)
{
    static const char op[] = "batchnorm_split_backward_input";
    int rc = check_shape(op, s);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR(op, d_in);
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, mean);
    PTL_CHECK_PTR(op, invstd);
    PTL_CHECK_PTR(op, sum_dy);
    PTL_CHECK_PTR(op, dot);
    rc = check_count(op, count, s);
    if (rc != PTL_OK)
        return rc;
#pragma omp parallel for if (big(s))
    for (int ch = 0; ch < s->c; ch++) {
        const double mu = mean[ch], is = invstd[ch];
        /* backward_train's formula with the global sums and count. */
        const double grad_mean = sum_dy[ch] / count;
        const double proj = dot[ch] * is * is / count;
        const double scale = is * (gamma ? gamma[ch] : 1.0);
        for (int i = 0; i < s->n; i++) /* as backward_train: few values need double */
            if (count > BN_EXACT_STATS_MAX_COUNT)
                row_dx(d_in + at(s, i, ch), d_out + at(s, i, ch), in + at(s, i, ch), s->hw,
                       (float)grad_mean, (float)mu, (float)proj, (float)scale);
            else
                row_dx_exact(d_in + at(s, i, ch), d_out + at(s, i, ch), in + at(s, i, ch),
                             s->hw, grad_mean, mu, proj, scale);
    }
    return PTL_OK;
}
