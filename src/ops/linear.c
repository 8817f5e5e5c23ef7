/* Fully connected layer, PyTorch convention: out (N, out_f) = in (N, in_f) weight^T + bias,
 * weight (out_f, in_f). Both directions are single ptl_sgemm calls on the row-major buffers
 * (transposes are BLIS strides, never copies); bias loops are plain. */
#include "ptl/ops.h"

#include "ops/check.h"

static int linear_check(const char *op, int n, int in_features, int out_features)
{
    PTL_CHECK(n >= 1 && in_features >= 1 && out_features >= 1,
              "%s: sizes must be positive, got n=%d in_features=%d out_features=%d", op, n,
              in_features, out_features);
    return PTL_OK;
}

int ptl_linear_forward(float *out, const float *in, const float *weight, const float *bias, int n,
                       int in_features, int out_features)
{
    int rc = linear_check("linear_forward", n, in_features, out_features);
    if (rc)
        return rc;
    PTL_CHECK_PTR("linear_forward", out);
    PTL_CHECK_PTR("linear_forward", in);
    PTL_CHECK_PTR("linear_forward", weight);
    float beta = 0.0f;
    if (bias) {
        /* Start from the broadcast bias and let the GEMM add onto it (beta = 1): one pass. */
        for (int i = 0; i < n; i++) {
            float *row = out + (size_t)i * out_features; /* (out_f) */
            for (int o = 0; o < out_features; o++)
                row[o] = bias[o];
        }
        beta = 1.0f;
    }
    /* out (N, out_f) = in (N, in_f) x weight^T (in_f, out_f) */
    return ptl_sgemm(0, 1, n, out_features, in_features, 1.0f, in, in_features, weight,
                     in_features, beta, out, out_features);
}

int ptl_linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                        const float *in, const float *weight, int n, int in_features,
                        int out_features)
{
    int rc = linear_check("linear_backward", n, in_features, out_features);
    if (rc)
        return rc;
    PTL_CHECK_PTR("linear_backward", d_out);
    PTL_CHECK_PTR("linear_backward", in);
    PTL_CHECK_PTR("linear_backward", weight);
    if (d_in) {
        /* d_in (N, in_f) += d_out (N, out_f) x weight (out_f, in_f) */
        rc = ptl_sgemm(0, 0, n, in_features, out_features, 1.0f, d_out, out_features, weight,
                       in_features, 1.0f, d_in, in_features);
        if (rc)
            return rc;
    }
    if (d_weight) {
        /* d_weight (out_f, in_f) += d_out^T (out_f, N) x in (N, in_f) */
        rc = ptl_sgemm(1, 0, out_features, in_features, n, 1.0f, d_out, out_features, in,
                       in_features, 1.0f, d_weight, in_features);
        if (rc)
            return rc;
    }
    if (d_bias) {
        /* Row by row keeps the reads of d_out contiguous. */
        for (int i = 0; i < n; i++) {
            const float *row = d_out + (size_t)i * out_features; /* (out_f) */
            for (int o = 0; o < out_features; o++)
                d_bias[o] += row[o];
        }
    }
    return PTL_OK;
}
