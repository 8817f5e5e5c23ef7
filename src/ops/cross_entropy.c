/* Softmax cross-entropy over class logits, mean over the batch, with PyTorch's label smoothing.
 *
 * The classification head of every fine-tuning run. Forward saves the softmax probabilities so
 * backward is a single pass; it does not compute per-sample losses or class weights.
 */
#include <math.h>

#include "check.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* Shared argument checks; labels are checked before anything is written so a bad label leaves
 * the outputs untouched. */
static int check_args(const char *op, const float *probs, const int32_t *labels, int n, int k,
                      float label_smoothing)
{
    PTL_CHECK_PTR(op, probs);
    PTL_CHECK_PTR(op, labels);
    PTL_CHECK(n >= 1 && k >= 1, "%s: bad shape n=%d k=%d (both must be >= 1)", op, n, k);
    /* !(a && b) also rejects NaN */
    PTL_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f,
              "%s: label_smoothing %g is outside [0, 1]", op, (double)label_smoothing);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return ptl_error(PTL_ERANGE, "%s: label %d of sample %d is outside [0, %d)", op,
                             (int)labels[i], i, k);
    return PTL_OK;
}

int ptl_cross_entropy_forward(float *loss, float *probs, const float *logits, const int32_t *labels,
                              int n, int k, float label_smoothing)
{
    PTL_CHECK_PTR("cross_entropy_forward", loss);
    PTL_CHECK_PTR("cross_entropy_forward", logits);
    int rc = check_args("cross_entropy_forward", probs, labels, n, k, label_smoothing);
    if (rc != PTL_OK)
        return rc;

    /* target = (1 - eps) onehot + eps / K, so
     * loss_i = -(1 - eps) logp[y_i] - (eps / K) sum_k logp[k]. */
    const double on = 1.0 - (double)label_smoothing, off = (double)label_smoothing / k;
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) \
    if ((size_t)n * (size_t)k >= PTL_OMP_MIN_ELEMENTS)
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k; /* (K) */
        float *p = probs + (size_t)i * k;        /* (K) */
        /* Stable log-softmax: logp = z - max - log(sum exp(z - max)). */
        float zmax = z[0];
        for (int j = 1; j < k; j++)
            zmax = z[j] > zmax ? z[j] : zmax;
        double sum = 0.0, sum_shift = 0.0;
        for (int j = 0; j < k; j++) {
            double e = exp((double)z[j] - zmax);
            p[j] = (float)e; /* unnormalised for now */
            sum += e;
            sum_shift += (double)z[j] - zmax;
        }
        const double lse = log(sum); /* log(sum exp(z - max)) */
        const double inv = 1.0 / sum;
        for (int j = 0; j < k; j++)
            p[j] = (float)(p[j] * inv);
        const double logp_y = (double)z[labels[i]] - zmax - lse;
        const double sum_logp = sum_shift - (double)k * lse;
        total += -on * logp_y - off * sum_logp;
    }
    *loss = (float)(total / n);
    return PTL_OK;
}

int ptl_cross_entropy_backward(float *d_logits, const float *probs, const int32_t *labels, int n,
                               int k, float label_smoothing, float d_loss)
{
    /* d_logits may be NULL (nothing wanted) but the other arguments are still checked. */
    int rc = check_args("cross_entropy_backward", probs, labels, n, k, label_smoothing);
    if (rc != PTL_OK)
        return rc;
    if (d_logits == NULL)
        return PTL_OK;

    const float scale = d_loss / (float)n;
    const float on = 1.0f - label_smoothing, off = label_smoothing / (float)k;
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)k >= PTL_OMP_MIN_ELEMENTS)
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k; /* (K) */
        float *g = d_logits + (size_t)i * k;    /* (K) */
        for (int j = 0; j < k; j++)
            g[j] += scale * (p[j] - off);
        g[labels[i]] -= scale * on;
    }
    return PTL_OK;
}
