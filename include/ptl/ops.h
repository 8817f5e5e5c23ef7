/* ptl/ops.h - the numerical kernels every ptl network is made of (NCHW, fp32).
 *
 * Conventions shared by every op:
 * - Plain float buffers with explicit shapes; outputs first, then inputs, then shapes.
 * - Every function that can fail returns 0 or a negative PTL_E* code with a message
 *   (ptl_error_message()); bad shapes and NULL buffers are reported, never crash.
 * - Backward functions ACCUMULATE (+=) into every gradient they write: the caller zeroes
 *   gradients once per step. A NULL gradient pointer means "not needed" and skips that work
 *   (e.g. d_in of the first layer, d_bias of a bias-free conv).
 * - No allocation inside the kernels: scratch space is passed in (see *_workspace_floats).
 * - Threads: GEMMs use BLIS's threads, element-wise loops OpenMP; both follow ptl_threads_set().
 */
#ifndef PTL_OPS_H
#define PTL_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM: row-major C(m,n) = alpha * op(A) op(B) + beta * C through bli_sgemm. ---- */
int ptl_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* One line naming the BLIS version and kernel set the GEMMs run on, and who chose it (BLIS, the
 * user's BLIS_ARCH_TYPE, or ptl where BLIS has no kernels for the CPU), e.g.
 * "BLIS 0.9.0, kernels skx (chosen by ptl: ...)". Static storage. */
const char *ptl_blis_kernels(void);

/* ---- conv2d (groups 1): weight (C_out, C_in, KH, KW), bias (C_out) or NULL ---- */
struct ptl_conv2d_shape {
    int n, c_in, h, w;          /* input (N, C_in, H, W) */
    int c_out, kh, kw;          /* kernel */
    int stride_h, stride_w;     /* >= 1 */
    int pad_h, pad_w;           /* >= 0, zero padding */
};

/* Validates the shape and gives the output size (N, C_out, H_out, W_out). */
int ptl_conv2d_output_size(const struct ptl_conv2d_shape *s, int *h_out, int *w_out);
/* Floats of scratch the forward and backward need (0 for shapes that need none). */
size_t ptl_conv2d_workspace_floats(const struct ptl_conv2d_shape *s);
int ptl_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const struct ptl_conv2d_shape *s, float *workspace);
int ptl_conv2d_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                        const float *in, const float *weight, const struct ptl_conv2d_shape *s,
                        float *workspace);

/* ---- linear: out (N, out_f) = in (N, in_f) weight^T + bias; weight (out_f, in_f) ---- */
int ptl_linear_forward(float *out, const float *in, const float *weight, const float *bias, int n,
                       int in_features, int out_features);
int ptl_linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                        const float *in, const float *weight, int n, int in_features,
                        int out_features);

/* ---- batchnorm over (N, C, HW): 2d with hw = H*W, 1d with hw = 1 ---- */
struct ptl_batchnorm_shape {
    int n, c, hw;
    float eps;      /* PyTorch default 1e-5 */
    float momentum; /* PyTorch convention: running = (1 - momentum) * running + momentum * batch */
};

/* Training mode: normalises with the batch statistics, saves mean and 1/sqrt(var + eps) (C each)
 * for backward, and updates running_mean / running_var (unbiased variance) when not NULL.
 * gamma/beta may be NULL (affine = False). Needs n * hw >= 2. */
int ptl_batchnorm_forward_train(float *out, float *save_mean, float *save_invstd,
                                float *running_mean, float *running_var, const float *in,
                                const float *gamma, const float *beta,
                                const struct ptl_batchnorm_shape *s);
int ptl_batchnorm_backward_train(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                 const float *in, const float *save_mean, const float *save_invstd,
                                 const float *gamma, const struct ptl_batchnorm_shape *s);
/* Eval mode: normalises with the running statistics. */
int ptl_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var,
                               const struct ptl_batchnorm_shape *s);
int ptl_batchnorm_backward_eval(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *in, const float *gamma, const float *running_mean,
                                const float *running_var, const struct ptl_batchnorm_shape *s);

/* Training mode in phases, for a batch spread over processes (SyncBN): s->n is this process's
 * share, and the caller sums each phase's per-channel doubles over the processes before the next
 * phase. The result is forward_train / backward_train on the whole batch (same two-pass
 * statistics, up to the order of the sums). Forward:
 *   split_sum(sum) -> sum over processes, with the count n*hw -> mean = sum / count;
 *   split_sqdev(sq, mean) -> sum over processes;
 *   split_forward(out, invstd, ...) normalises with var = sq / count, writes 1/sqrt(var + eps)
 *   (C doubles) for backward and applies the same running-stat update on every process.
 * Backward (dy of every process scaled alike, e.g. by the number of processes as in DDP):
 *   split_backward_sums(sum_dy, dot) writes the local sum(dy) and sum(dy * (x - mean)) and adds
 *   this process's share to d_gamma / d_beta (NULL: skipped); sum them over processes;
 *   split_backward_input ACCUMULATES d_in with the global sums. count is the global count. */
int ptl_batchnorm_split_sum(double *sum, const float *in, const struct ptl_batchnorm_shape *s);
int ptl_batchnorm_split_sqdev(double *sq, const float *in, const double *mean,
                              const struct ptl_batchnorm_shape *s);
int ptl_batchnorm_split_forward(float *out, double *invstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma,
                                const float *beta, const double *mean, const double *sq,
                                double count, const struct ptl_batchnorm_shape *s);
int ptl_batchnorm_split_backward_sums(double *sum_dy, double *dot, float *d_gamma, float *d_beta,
                                      const float *d_out, const float *in, const double *mean,
                                      const double *invstd, const struct ptl_batchnorm_shape *s);
int ptl_batchnorm_split_backward_input(float *d_in, const float *d_out, const float *in,
                                       const float *gamma, const double *mean,
                                       const double *invstd, const double *sum_dy,
                                       const double *dot, double count,
                                       const struct ptl_batchnorm_shape *s);

/* ---- activations over n floats; out may alias in; backward uses the forward output ---- */
int ptl_relu_forward(float *out, const float *in, size_t n);
int ptl_relu_backward(float *d_in, const float *d_out, const float *out, size_t n);
/* For a ReLU computed in place (its input and output share storage, and so do their
 * gradients): grad = grad where out > 0, 0 elsewhere. */
int ptl_relu_backward_inplace(float *grad, const float *out, size_t n);
int ptl_sigmoid_forward(float *out, const float *in, size_t n);
int ptl_sigmoid_backward(float *d_in, const float *d_out, const float *out, size_t n);
int ptl_tanh_forward(float *out, const float *in, size_t n);
int ptl_tanh_backward(float *d_in, const float *d_out, const float *out, size_t n);

/* ---- pooling (ceil mode off); padding <= kernel / 2 as in PyTorch ---- */
struct ptl_pool2d_shape {
    int n, c, h, w;
    int kh, kw;
    int stride_h, stride_w;
    int pad_h, pad_w;
};
int ptl_pool2d_output_size(const struct ptl_pool2d_shape *s, int *h_out, int *w_out);
/* argmax (N, C, H_out, W_out) records the flat h*W+w index of each maximum, for backward. */
int ptl_maxpool2d_forward(float *out, int32_t *argmax, const float *in,
                          const struct ptl_pool2d_shape *s);
int ptl_maxpool2d_backward(float *d_in, const float *d_out, const int32_t *argmax,
                           const struct ptl_pool2d_shape *s);
/* count_include_pad: 1 divides by KH*KW everywhere (PyTorch default), 0 by the valid cells. */
int ptl_avgpool2d_forward(float *out, const float *in, const struct ptl_pool2d_shape *s,
                          int count_include_pad);
int ptl_avgpool2d_backward(float *d_in, const float *d_out, const struct ptl_pool2d_shape *s,
                           int count_include_pad);
/* Adaptive pooling to (h_out, w_out) with PyTorch's bins: [floor(i*H/Ho), ceil((i+1)*H/Ho)).
 * Global pooling is h_out = w_out = 1. */
int ptl_adaptive_avgpool2d_forward(float *out, const float *in, int n, int c, int h, int w,
                                   int h_out, int w_out);
int ptl_adaptive_avgpool2d_backward(float *d_in, const float *d_out, int n, int c, int h, int w,
                                    int h_out, int w_out);
int ptl_adaptive_maxpool2d_forward(float *out, int32_t *argmax, const float *in, int n, int c,
                                   int h, int w, int h_out, int w_out);
int ptl_adaptive_maxpool2d_backward(float *d_in, const float *d_out, const int32_t *argmax, int n,
                                    int c, int h, int w, int h_out, int w_out);

/* ---- channel concat / split of `count` tensors (N, channels[i], HW) ---- */
int ptl_concat_forward(float *out, const float *const *ins, const int *channels, int count, int n,
                       int hw);
/* d_ins[i] may be NULL (no gradient wanted for that input). */
int ptl_concat_backward(float *const *d_ins, const float *d_out, const int *channels, int count,
                        int n, int hw);
int ptl_split_forward(float *const *outs, const float *in, const int *channels, int count, int n,
                      int hw);
/* d_outs[i] may be NULL (that part received no gradient). */
int ptl_split_backward(float *d_in, const float *const *d_outs, const int *channels, int count,
                       int n, int hw);

/* ---- element-wise over n floats; out may alias a or b ---- */
int ptl_add_forward(float *out, const float *a, const float *b, size_t n);
int ptl_add_backward(float *d_a, float *d_b, const float *d_out, size_t n);
int ptl_mul_forward(float *out, const float *a, const float *b, size_t n);
int ptl_mul_backward(float *d_a, float *d_b, const float *d_out, const float *a, const float *b,
                     size_t n);

/* ---- softmax cross-entropy, mean over the batch ----
 * logits (N, K), labels in [0, K) (else PTL_ERANGE naming the sample). Label smoothing eps
 * follows PyTorch: target = (1 - eps) * onehot + eps / K. probs (N, K) is saved for backward. */
int ptl_cross_entropy_forward(float *loss, float *probs, const float *logits,
                              const int32_t *labels, int n, int k, float label_smoothing);
/* d_logits += d_loss * (probs - target) / N */
int ptl_cross_entropy_backward(float *d_logits, const float *probs, const int32_t *labels, int n,
                               int k, float label_smoothing, float d_loss);

/* ---- batch-hard triplet loss (Hermans et al. 2017), Euclidean ----
 * feat (N, D). d(i,j) = sqrt(max(|f_i - f_j|^2, 1e-12)). For each anchor i: hardest positive
 * p(i) = argmax d(i,j) over j != i with the same label, hardest negative n(i) = argmin over
 * other labels; loss = mean over anchors that have both of relu(d(i,p) - d(i,n) + margin).
 * Anchors without a positive or a negative are skipped (loss 0 if none is left).
 * The mining result (pos_idx, neg_idx: N each, -1 when skipped) is saved for backward. */
int ptl_triplet_hard_forward(float *loss, int32_t *pos_idx, int32_t *neg_idx, const float *feat,
                             const int32_t *labels, int n, int d, float margin);
int ptl_triplet_hard_backward(float *d_feat, const float *feat, const int32_t *pos_idx,
                              const int32_t *neg_idx, int n, int d, float margin, float d_loss);

#ifdef __cplusplus
}
#endif
#endif
