/* Batch-hard triplet loss (Hermans, Beyer, Leibe 2017) on Euclidean embedding distances.
 *
 * The metric-learning head: for each anchor the farthest same-label sample and the nearest
 * other-label sample in the batch. Distances are recomputed pair by pair (O(N^2 D), no N x N
 * scratch) because batches are small next to the embedding work; the mining is saved so
 * backward differentiates exactly the triplets forward chose.
 */
#include <math.h>

#include "check.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* Squared distances below this are clamped: keeps sqrt's derivative finite at d = 0. */
#define TRIPLET_D2_MIN 1e-12

/* |a - b|^2 in double: the hinge compares two distances, so their rounding should be small. */
static double dist2(const float *a, const float *b, int d)
{
    double s = 0.0;
    for (int t = 0; t < d; t++) {
        double diff = (double)a[t] - b[t];
        s += diff * diff;
    }
    return s;
}

static double dist_of(double d2)
{
    return sqrt(d2 > TRIPLET_D2_MIN ? d2 : TRIPLET_D2_MIN);
}

int ptl_triplet_hard_forward(float *loss, int32_t *pos_idx, int32_t *neg_idx, const float *feat,
                             const int32_t *labels, int n, int d, float margin)
{
    const char *op = "triplet_hard_forward";
    PTL_CHECK_PTR(op, loss);
    PTL_CHECK_PTR(op, pos_idx);
    PTL_CHECK_PTR(op, neg_idx);
    PTL_CHECK_PTR(op, feat);
    PTL_CHECK_PTR(op, labels);
    PTL_CHECK(n >= 1 && d >= 1, "%s: bad shape n=%d d=%d (both must be >= 1)", op, n, d);
    PTL_CHECK(isfinite(margin), "%s: margin %g is not finite", op, (double)margin);

    double total = 0.0;
    int valid = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, valid) \
    if ((size_t)n * (size_t)n * (size_t)d >= PTL_OMP_MIN_ELEMENTS)
    for (int i = 0; i < n; i++) {
        const float *fi = feat + (size_t)i * d; /* (D) */
        int best_p = -1, best_n = -1;
        double dp = 0.0, dn = 0.0;
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue; /* an anchor is not its own positive */
            double dij = dist_of(dist2(fi, feat + (size_t)j * d, d));
            /* Strict comparisons: ties go to the lowest index, deterministically. */
            if (labels[j] == labels[i]) {
                if (best_p < 0 || dij > dp) {
                    best_p = j;
                    dp = dij;
                }
            } else if (best_n < 0 || dij < dn) {
                best_n = j;
                dn = dij;
            }
        }
        if (best_p < 0 || best_n < 0) {
            pos_idx[i] = neg_idx[i] = -1; /* skipped: no triplet for this anchor */
            continue;
        }
        pos_idx[i] = best_p;
        neg_idx[i] = best_n;
        double h = dp - dn + (double)margin;
        total += h > 0.0 ? h : 0.0;
        valid++;
    }
    *loss = valid > 0 ? (float)(total / valid) : 0.0f;
    return PTL_OK;
}

/* Adds g * d dist(a, b) / d feat: +g (f_a - f_b) / dist to row a and the opposite to row b,
 * unless the distance sat on the clamp (where its derivative is 0). g carries the sign. */
static void add_pair_grad(float *d_feat, const float *feat, int a, int b, int d, double g)
{
    const float *fa = feat + (size_t)a * d, *fb = feat + (size_t)b * d;
    double d2 = dist2(fa, fb, d);
    if (d2 <= TRIPLET_D2_MIN)
        return;
    double s = g / sqrt(d2);
    float *ga = d_feat + (size_t)a * d, *gb = d_feat + (size_t)b * d;
    for (int t = 0; t < d; t++) {
        float v = (float)(s * ((double)fa[t] - fb[t]));
        ga[t] += v;
        gb[t] -= v;
    }
}

int ptl_triplet_hard_backward(float *d_feat, const float *feat, const int32_t *pos_idx,
                              const int32_t *neg_idx, int n, int d, float margin, float d_loss)
{
    const char *op = "triplet_hard_backward";
    PTL_CHECK_PTR(op, feat);
    PTL_CHECK_PTR(op, pos_idx);
    PTL_CHECK_PTR(op, neg_idx);
    PTL_CHECK(n >= 1 && d >= 1, "%s: bad shape n=%d d=%d (both must be >= 1)", op, n, d);
    PTL_CHECK(isfinite(margin), "%s: margin %g is not finite", op, (double)margin);
    /* The saved mining indexes feat: check it before following it. */
    int valid = 0;
    for (int i = 0; i < n; i++) {
        int p = pos_idx[i], q = neg_idx[i];
        if ((p < 0) != (q < 0) || p < -1 || q < -1 || p >= n || q >= n || p == i || q == i)
            return ptl_error(PTL_ERANGE,
                             "%s: saved mining of anchor %d (positive %d, negative %d) is not "
                             "valid for n=%d",
                             op, i, p, q, n);
        valid += p >= 0;
    }
    if (d_feat == NULL || valid == 0)
        return PTL_OK;

    /* loss = (1/V) sum_i relu(d(i,p) - d(i,n) + margin): an anchor whose hinge is inactive
     * (including exactly 0, as PyTorch's relu) contributes nothing. Serial: each triplet
     * scatters into three rows that other anchors also touch. */
    const double g = (double)d_loss / valid;
    for (int i = 0; i < n; i++) {
        int p = pos_idx[i], q = neg_idx[i];
        if (p < 0)
            continue;
        const float *fi = feat + (size_t)i * d;
        double dp = dist_of(dist2(fi, feat + (size_t)p * d, d));
        double dn = dist_of(dist2(fi, feat + (size_t)q * d, d));
        if (dp - dn + (double)margin <= 0.0)
            continue;
        add_pair_grad(d_feat, feat, i, p, d, g);  /* + d d(i,p) */
        add_pair_grad(d_feat, feat, i, q, d, -g); /* - d d(i,n) */
    }
    return PTL_OK;
}
