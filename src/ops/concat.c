/* Channel concatenation and its inverse, split, for (N, C_i, HW) tensors (Inception/DenseNet-
 * style branches, grouped heads). Pure copies: the backward of one is the forward of the other,
 * except that gradients accumulate and missing (NULL) gradients are skipped. */
#include <limits.h>
#include <string.h>

#include "ops/check.h"
#include "ptl/ops.h"

/* Validates the common arguments and gives the total channel count. */
static int check_parts(const char *op, const int *channels, int count, int n, int hw,
                       long long *c_total)
{
    PTL_CHECK_PTR(op, channels);
    PTL_CHECK(count >= 1, "%s: count must be >= 1 (got %d)", op, count);
    PTL_CHECK(n >= 1 && hw >= 1, "%s: n and hw must be >= 1 (got n=%d, hw=%d)", op, n, hw);
    long long total = 0;
    for (int i = 0; i < count; i++) {
        PTL_CHECK(channels[i] >= 1, "%s: channels[%d] must be >= 1 (got %d)", op, i, channels[i]);
        total += channels[i];
        PTL_CHECK(total <= INT_MAX, "%s: total channel count overflows int", op);
    }
    *c_total = total;
    return PTL_OK;
}

/* The work is a copy per (sample, part); big tensors split it over samples. */
static inline int big(int n, long long c_total, int hw)
{
    return (long long)n * c_total * hw >= PTL_OMP_MIN_ELEMENTS;
}

int ptl_concat_forward(float *out, const float *const *ins, const int *channels, int count, int n,
                       int hw)
{
    long long c_total;
    int rc = check_parts("concat_forward", channels, count, n, hw, &c_total);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR("concat_forward", out);
    PTL_CHECK_PTR("concat_forward", ins);
    for (int i = 0; i < count; i++)
        PTL_CHECK(ins[i] != NULL, "concat_forward: ins[%d] is NULL", i);

#pragma omp parallel for if (big(n, c_total, hw))
    for (int s = 0; s < n; s++) {
        float *dst = out + (size_t)s * c_total * hw; /* (C_total, HW) of sample s */
        for (int i = 0; i < count; i++) {
            size_t part = (size_t)channels[i] * hw;
            memcpy(dst, ins[i] + s * part, part * sizeof(float));
            dst += part;
        }
    }
    return PTL_OK;
}

int ptl_concat_backward(float *const *d_ins, const float *d_out, const int *channels, int count,
                        int n, int hw)
{
    long long c_total;
    int rc = check_parts("concat_backward", channels, count, n, hw, &c_total);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR("concat_backward", d_ins);
    PTL_CHECK_PTR("concat_backward", d_out);

#pragma omp parallel for if (big(n, c_total, hw))
    for (int s = 0; s < n; s++) {
        const float *src = d_out + (size_t)s * c_total * hw; /* (C_total, HW) of sample s */
        for (int i = 0; i < count; i++) {
            size_t part = (size_t)channels[i] * hw;
            if (d_ins[i] != NULL) {
                float *dst = d_ins[i] + s * part;
                for (size_t j = 0; j < part; j++)
                    dst[j] += src[j];
            }
            src += part;
        }
    }
    return PTL_OK;
}

int ptl_split_forward(float *const *outs, const float *in, const int *channels, int count, int n,
                      int hw)
{
    long long c_total;
    int rc = check_parts("split_forward", channels, count, n, hw, &c_total);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR("split_forward", outs);
    PTL_CHECK_PTR("split_forward", in);
    for (int i = 0; i < count; i++)
        PTL_CHECK(outs[i] != NULL, "split_forward: outs[%d] is NULL", i);

#pragma omp parallel for if (big(n, c_total, hw))
    for (int s = 0; s < n; s++) {
        const float *src = in + (size_t)s * c_total * hw; /* (C_total, HW) of sample s */
        for (int i = 0; i < count; i++) {
            size_t part = (size_t)channels[i] * hw;
            memcpy(outs[i] + s * part, src, part * sizeof(float));
            src += part;
        }
    }
    return PTL_OK;
}

int ptl_split_backward(float *d_in, const float *const *d_outs, const int *channels, int count,
                       int n, int hw)
{
    long long c_total;
    int rc = check_parts("split_backward", channels, count, n, hw, &c_total);
    if (rc != PTL_OK)
        return rc;
    PTL_CHECK_PTR("split_backward", d_outs);
    if (d_in == NULL)
        return PTL_OK;

#pragma omp parallel for if (big(n, c_total, hw))
    for (int s = 0; s < n; s++) {
        float *dst = d_in + (size_t)s * c_total * hw; /* (C_total, HW) of sample s */
        for (int i = 0; i < count; i++) {
            size_t part = (size_t)channels[i] * hw;
            if (d_outs[i] != NULL) {
                const float *src = d_outs[i] + s * part;
                for (size_t j = 0; j < part; j++)
                    dst[j] += src[j];
            }
            dst += part;
        }
    }
    return PTL_OK;
}
