/* Element-wise activations (ReLU, sigmoid, tanh) and their backward passes.
 *
 * Forward may run in place (out == in). Backward takes the forward OUTPUT, not the input, so an
 * in-place forward loses nothing the backward needs. Not for parametrised activations. */
#include <math.h>

#include "ops/check.h"
#include "ops/vmath.h"
#include "ptl/ops.h"

int ptl_relu_forward(float *out, const float *in, size_t n)
{
    PTL_CHECK_PTR("relu_forward", out);
    PTL_CHECK_PTR("relu_forward", in);
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        /* x < 0 rather than x > 0 so that NaN propagates, as torch.relu (clamp_min) does. */
        float x = in[i];
        out[i] = x < 0.0f ? 0.0f : x;
    }
    return PTL_OK;
}

int ptl_relu_backward(float *d_in, const float *d_out, const float *out, size_t n)
{
    PTL_CHECK_PTR("relu_backward", d_out);
    PTL_CHECK_PTR("relu_backward", out);
    if (d_in == NULL)
        return PTL_OK;
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        /* PyTorch's threshold_backward: zero where out <= 0, pass the gradient elsewhere. The
         * load is unconditional so that the select vectorises. */
        float g = d_out[i];
        d_in[i] += out[i] <= 0.0f ? 0.0f : g;
    }
    return PTL_OK;
}

int ptl_relu_backward_inplace(float *grad, const float *out, size_t n)
{
    PTL_CHECK_PTR("relu_backward_inplace", grad);
    PTL_CHECK_PTR("relu_backward_inplace", out);
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        float g = grad[i];
        grad[i] = out[i] <= 0.0f ? 0.0f : g;
    }
    return PTL_OK;
}

int ptl_sigmoid_forward(float *out, const float *in, size_t n)
{
    PTL_CHECK_PTR("sigmoid_forward", out);
    PTL_CHECK_PTR("sigmoid_forward", in);
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++)
        out[i] = ptl__vsigmoid(in[i]);
    return PTL_OK;
}

int ptl_sigmoid_backward(float *d_in, const float *d_out, const float *out, size_t n)
{
    PTL_CHECK_PTR("sigmoid_backward", d_out);
    PTL_CHECK_PTR("sigmoid_backward", out);
    if (d_in == NULL)
        return PTL_OK;
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        float y = out[i];
        d_in[i] += d_out[i] * ((1.0f - y) * y); /* sigmoid' = y (1 - y) */
    }
    return PTL_OK;
}

int ptl_tanh_forward(float *out, const float *in, size_t n)
{
    PTL_CHECK_PTR("tanh_forward", out);
    PTL_CHECK_PTR("tanh_forward", in);
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++)
        out[i] = ptl__vtanh(in[i]);
    return PTL_OK;
}

int ptl_tanh_backward(float *d_in, const float *d_out, const float *out, size_t n)
{
    PTL_CHECK_PTR("tanh_backward", d_out);
    PTL_CHECK_PTR("tanh_backward", out);
    if (d_in == NULL)
        return PTL_OK;
    const long long len = (long long)n;
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
    for (long long i = 0; i < len; i++) {
        float y = out[i];
        d_in[i] += d_out[i] * (1.0f - y * y); /* tanh' = 1 - y^2 */
    }
    return PTL_OK;
}
