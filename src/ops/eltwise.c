/* Element-wise binary ops (add for residual connections, mul for gating) and their backward.
 *
 * out may alias a or b: each element is read before it is written. In backward d_a may equal d_b
 * (x + x, x * x): both contributions are added to the same element one after the other. */
#include "ops/check.h"
#include "ptl/ops.h"

int ptl_add_forward(float *out, const float *a, const float *b, size_t n)
{
    PTL_CHECK_PTR("add_forward", out);
    PTL_CHECK_PTR("add_forward", a);
    PTL_CHECK_PTR("add_forward", b);
    const long long len = (long long)n;
#pragma omp parallel for if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++)
        out[i] = a[i] + b[i];
    return PTL_OK;
}

int ptl_add_backward(float *d_a, float *d_b, const float *d_out, size_t n)
{
    PTL_CHECK_PTR("add_backward", d_out);
    const long long len = (long long)n;
#pragma omp parallel for if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        float g = d_out[i];
        if (d_a != NULL)
            d_a[i] += g;
        if (d_b != NULL)
            d_b[i] += g;
    }
    return PTL_OK;
}

int ptl_mul_forward(float *out, const float *a, const float *b, size_t n)
{
    PTL_CHECK_PTR("mul_forward", out);
    PTL_CHECK_PTR("mul_forward", a);
    PTL_CHECK_PTR("mul_forward", b);
    const long long len = (long long)n;
#pragma omp parallel for if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++)
        out[i] = a[i] * b[i];
    return PTL_OK;
}

int ptl_mul_backward(float *d_a, float *d_b, const float *d_out, const float *a, const float *b,
                     size_t n)
{
    PTL_CHECK_PTR("mul_backward", d_out);
    PTL_CHECK_PTR("mul_backward", a);
    PTL_CHECK_PTR("mul_backward", b);
    const long long len = (long long)n;
#pragma omp parallel for if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        /* With d_a == d_b (x * x) the two product-rule terms land on the same element. */
        float g = d_out[i], av = a[i], bv = b[i];
        if (d_a != NULL)
            d_a[i] += g * bv;
        if (d_b != NULL)
            d_b[i] += g * av;
    }
    return PTL_OK;
}
