/* Unit tests of the two losses: softmax cross-entropy (with label smoothing) and batch-hard
 * triplet. Known values, finite-difference gradients, accumulation and argument errors; the
 * PyTorch comparison on a grid of shapes lives in test_oracle.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

/* ------------------------------------------------------------------ cross-entropy ---------- */

/* Forward once and return the loss, failing the test on an error. */
static float ce_loss(float *probs, const float *logits, const int32_t *labels, int n, int k,
                     float eps)
{
    float loss = NAN;
    int rc = ptl_cross_entropy_forward(&loss, probs, logits, labels, n, k, eps);
    cr_assert_eq(rc, PTL_OK, "cross_entropy_forward: %s", ptl_error_message());
    return loss;
}

Test(cross_entropy, uniform_logits_give_log_k)
{
    enum { N = 3, K = 7 };
    float logits[N * K], probs[N * K];
    int32_t labels[N] = {0, 6, 3};
    for (int i = 0; i < N * K; i++)
        logits[i] = 0.37f; /* same value everywhere: softmax is uniform */
    /* Any smoothing leaves the loss at log K: the target still sums to 1. */
    const float eps_list[] = {0.0f, 0.1f, 1.0f};
    for (size_t e = 0; e < sizeof eps_list / sizeof eps_list[0]; e++) {
        float loss = ce_loss(probs, logits, labels, N, K, eps_list[e]);
        cr_expect(fabs(loss - log(K)) < 1e-6, "eps %g: loss %.8g, expected log(%d) = %.8g",
                  (double)eps_list[e], (double)loss, K, log(K));
        for (int i = 0; i < N * K; i++)
            cr_expect(fabsf(probs[i] - 1.0f / K) < 1e-7f, "probs[%d] = %g", i, (double)probs[i]);
    }
}

Test(cross_entropy, matches_pytorch_values)
{
    /* F.cross_entropy(logits, [2, 0]) in float64 with torch 1.13, label_smoothing 0 and 0.1. */
    const float logits[] = {1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 2.0f}; /* (2, 3) */
    const int32_t labels[] = {2, 0};
    float probs[6];
    float loss = ce_loss(probs, logits, labels, 2, 3, 0.0f);
    cr_expect(fabs(loss - 1.0744586305507688) < 1e-6, "loss %.8g", (double)loss);
    loss = ce_loss(probs, logits, labels, 2, 3, 0.1f);
    cr_expect(fabs(loss - 1.124458630550769) < 1e-6, "smoothed loss %.8g", (double)loss);
    /* softmax of the first row */
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    cr_expect(fabs(probs[2] - exp(3.0) / z) < 1e-7, "probs[2] = %.8g", (double)probs[2]);
}

Test(cross_entropy, large_logits_stay_finite)
{
    /* exp(1000) overflows: only a max-shifted log-softmax gets these right. */
    const float logits[] = {1000.0f, 0.0f, -1000.0f, 3000.0f}; /* (2, 2) */
    const int32_t labels[] = {1, 0};
    float probs[4];
    float loss = ce_loss(probs, logits, labels, 2, 2, 0.0f);
    /* sample 0: -log softmax = 1000; sample 1: 4000 */
    cr_expect(fabs(loss - 2500.0) < 1e-3, "loss %.8g", (double)loss);
    for (int i = 0; i < 4; i++)
        cr_expect(isfinite(probs[i]), "probs[%d] = %g", i, (double)probs[i]);
}

/* Context for the finite-difference loss: sum of d_loss * loss, i.e. what backward's d_loss
 * scales. */
struct ce_ctx {
    float *logits, *probs;
    const int32_t *labels;
    int n, k;
    float eps, d_loss;
};

static double ce_fd_loss(void *p)
{
    struct ce_ctx *c = p;
    return (double)c->d_loss * ce_loss(c->probs, c->logits, c->labels, c->n, c->k, c->eps);
}

static void ce_gradcheck(int n, int k, float eps, float d_loss, uint64_t seed)
{
    float *logits = tc_alloc((size_t)n * k), *probs = tc_alloc((size_t)n * k);
    float *grad = tc_alloc((size_t)n * k);
    int32_t *labels = tc_alloc_bytes(sizeof(int32_t) * n);
    tc_fill(logits, (size_t)n * k, seed, -3.0f, 3.0f);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)((i * 7 + 3) % k);
    struct ce_ctx c = {logits, probs, labels, n, k, eps, d_loss};
    ce_loss(probs, logits, labels, n, k, eps);
    cr_assert_eq(ptl_cross_entropy_backward(grad, probs, labels, n, k, eps, d_loss), PTL_OK, "%s",
                 ptl_error_message());
    char what[64];
    snprintf(what, sizeof what, "cross_entropy n=%d k=%d eps=%g", n, k, (double)eps);
    tc_assert_gradcheck(what, ce_fd_loss, &c, logits, grad, (size_t)n * k, 1e-2f, 1e-5, 1e-2);
    free(logits);
    free(probs);
    free(grad);
    free(labels);
}

Test(cross_entropy, gradient_matches_finite_differences)
{
    ce_gradcheck(5, 4, 0.0f, 1.0f, 11);
    ce_gradcheck(1, 10, 0.0f, 0.7f, 12);
    ce_gradcheck(7, 3, 0.0f, -1.3f, 13);
}

Test(cross_entropy, label_smoothing_gradient)
{
    ce_gradcheck(6, 5, 0.1f, 1.0f, 21);
    ce_gradcheck(3, 9, 0.5f, 2.0f, 22);
    /* The closed form: with eps = 1 the target is uniform, so d_logits = (probs - 1/K) / N. */
    const float logits[] = {0.2f, -0.4f, 1.1f}; /* (1, 3) */
    const int32_t labels[] = {1};
    float probs[3], grad[3] = {0};
    ce_loss(probs, logits, labels, 1, 3, 1.0f);
    cr_assert_eq(ptl_cross_entropy_backward(grad, probs, labels, 1, 3, 1.0f, 1.0f), PTL_OK);
    for (int j = 0; j < 3; j++)
        cr_expect(fabsf(grad[j] - (probs[j] - 1.0f / 3)) < 1e-7f, "grad[%d] = %g", j,
                  (double)grad[j]);
}

Test(cross_entropy, backward_accumulates)
{
    enum { N = 4, K = 6 };
    float logits[N * K], probs[N * K], once[N * K] = {0}, twice[N * K] = {0};
    const int32_t labels[N] = {5, 0, 2, 2};
    tc_fill(logits, N * K, 3, -2.0f, 2.0f);
    ce_loss(probs, logits, labels, N, K, 0.2f);
    cr_assert_eq(ptl_cross_entropy_backward(once, probs, labels, N, K, 0.2f, 1.0f), PTL_OK);
    cr_assert_eq(ptl_cross_entropy_backward(twice, probs, labels, N, K, 0.2f, 1.0f), PTL_OK);
    cr_assert_eq(ptl_cross_entropy_backward(twice, probs, labels, N, K, 0.2f, 1.0f), PTL_OK);
    for (int i = 0; i < N * K; i++)
        cr_expect(fabsf(twice[i] - 2.0f * once[i]) <= 1e-7f, "element %d: %g vs 2 x %g", i,
                  (double)twice[i], (double)once[i]);
    /* NULL d_logits: nothing to do, still success. */
    cr_expect_eq(ptl_cross_entropy_backward(NULL, probs, labels, N, K, 0.2f, 1.0f), PTL_OK);
}

Test(cross_entropy, label_out_of_range)
{
    const float logits[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f}; /* (3, 3) */
    float probs[9], loss = -1.0f, grad[9] = {0};
    const int32_t too_big[] = {0, 2, 3}, negative[] = {-1, 0, 0};

    ptl_error_clear();
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, too_big, 3, 3, 0.0f), PTL_ERANGE);
    cr_expect(strstr(ptl_error_message(), "sample 2") != NULL, "message: %s", ptl_error_message());
    cr_expect(strstr(ptl_error_message(), "label 3") != NULL, "message: %s", ptl_error_message());
    cr_expect_eq(loss, -1.0f, "loss was written despite the error");

    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, negative, 3, 3, 0.0f), PTL_ERANGE);
    cr_expect(strstr(ptl_error_message(), "sample 0") != NULL, "message: %s", ptl_error_message());
    cr_expect(strstr(ptl_error_message(), "label -1") != NULL, "message: %s", ptl_error_message());

    cr_expect_eq(ptl_cross_entropy_backward(grad, logits, too_big, 3, 3, 0.0f, 1.0f), PTL_ERANGE);
    cr_expect(strstr(ptl_error_message(), "sample 2") != NULL, "message: %s", ptl_error_message());
    for (int i = 0; i < 9; i++)
        cr_expect_eq(grad[i], 0.0f, "gradient written despite the error");
}

Test(cross_entropy, bad_arguments)
{
    const float logits[] = {0.1f, 0.2f};
    float probs[2], loss, grad[2];
    const int32_t labels[] = {1};
    cr_expect_eq(ptl_cross_entropy_forward(NULL, probs, logits, labels, 1, 2, 0.0f), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "loss") != NULL, "message: %s", ptl_error_message());
    cr_expect_eq(ptl_cross_entropy_forward(&loss, NULL, logits, labels, 1, 2, 0.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, NULL, labels, 1, 2, 0.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, NULL, 1, 2, 0.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, labels, 0, 2, 0.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, labels, 1, 0, 0.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, labels, -1, 2, 0.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, labels, 1, 2, -0.1f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, labels, 1, 2, 1.5f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_forward(&loss, probs, logits, labels, 1, 2, NAN), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "label_smoothing") != NULL, "message: %s",
              ptl_error_message());
    cr_expect_eq(ptl_cross_entropy_backward(grad, NULL, labels, 1, 2, 0.0f, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_backward(grad, probs, NULL, 1, 2, 0.0f, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_cross_entropy_backward(grad, probs, labels, 1, 0, 0.0f, 1.0f), PTL_EINVAL);
}

/* ------------------------------------------------------------------ batch-hard triplet ----- */

static float triplet_loss(int32_t *pos, int32_t *neg, const float *feat, const int32_t *labels,
                          int n, int d, float margin)
{
    float loss = NAN;
    int rc = ptl_triplet_hard_forward(&loss, pos, neg, feat, labels, n, d, margin);
    cr_assert_eq(rc, PTL_OK, "triplet_hard_forward: %s", ptl_error_message());
    return loss;
}

Test(triplet, known_value_in_one_dimension)
{
    /* Points on a line, labels {0, 0, 1, 1}, margin 3:
     * anchor 0 (x=0): pos 1 (d 1), neg 2 (d 3) -> 1;  anchor 1 (x=1): pos 0 (1), neg 2 (2) -> 2
     * anchor 2 (x=3): pos 3 (2),  neg 1 (2) -> 3;     anchor 3 (x=5): pos 2 (2), neg 1 (4) -> 1 */
    const float feat[] = {0.0f, 1.0f, 3.0f, 5.0f}; /* (4, 1) */
    const int32_t labels[] = {0, 0, 1, 1};
    int32_t pos[4], neg[4];
    float loss = triplet_loss(pos, neg, feat, labels, 4, 1, 3.0f);
    cr_expect(fabsf(loss - 7.0f / 4) < 1e-6f, "loss %.8g, expected 1.75", (double)loss);
    const int32_t want_pos[] = {1, 0, 3, 2}, want_neg[] = {2, 2, 1, 1};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(pos[i], want_pos[i], "anchor %d: positive %d", i, pos[i]);
        cr_expect_eq(neg[i], want_neg[i], "anchor %d: negative %d", i, neg[i]);
    }
    /* d loss / d x: triplet (a, p, n) adds (sign(x_a - x_p) - sign(x_a - x_n)) / 4 to x_a,
     * -sign(x_a - x_p) / 4 to x_p and +sign(x_a - x_n) / 4 to x_n; summed over the four. */
    float grad[4] = {0};
    cr_assert_eq(ptl_triplet_hard_backward(grad, feat, pos, neg, 4, 1, 3.0f, 1.0f), PTL_OK);
    const float want[] = {-0.25f, 1.25f, -1.25f, 0.25f};
    for (int i = 0; i < 4; i++)
        cr_expect(fabsf(grad[i] - want[i]) < 1e-6f, "grad[%d] = %g, expected %g", i,
                  (double)grad[i], (double)want[i]);
}

struct tri_ctx {
    float *feat;
    int32_t *pos, *neg;
    const int32_t *labels;
    int n, d;
    float margin, d_loss;
};

static double tri_fd_loss(void *p)
{
    struct tri_ctx *c = p;
    return (double)c->d_loss *
           triplet_loss(c->pos, c->neg, c->feat, c->labels, c->n, c->d, c->margin);
}

/* Distance in double, as the finite-difference preconditions need it. */
static double ref_dist(const float *feat, int a, int b, int d)
{
    double s = 0;
    for (int t = 0; t < d; t++) {
        double x = (double)feat[(size_t)a * d + t] - feat[(size_t)b * d + t];
        s += x * x;
    }
    return sqrt(s);
}

/* Smallest gap that a finite-difference step could cross: between the chosen positive
 * (negative) and the runner-up, and between the hinge and 0. */
static double mining_margin(const float *feat, const int32_t *labels, const int32_t *pos,
                            const int32_t *neg, int n, int d, float margin)
{
    double gap = INFINITY;
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0)
            continue;
        double dp = ref_dist(feat, i, pos[i], d), dn = ref_dist(feat, i, neg[i], d);
        gap = fmin(gap, fabs(dp - dn + margin));
        for (int j = 0; j < n; j++) {
            if (j == i || j == pos[i] || j == neg[i])
                continue;
            double dj = ref_dist(feat, i, j, d);
            gap = fmin(gap, labels[j] == labels[i] ? dp - dj : dj - dn);
        }
    }
    return gap;
}

static void triplet_gradcheck(int p_ids, int k_per, int d, float margin, float d_loss,
                              uint64_t seed)
{
    int n = p_ids * k_per;
    float *feat = tc_alloc((size_t)n * d), *grad = tc_alloc((size_t)n * d);
    int32_t *labels = tc_alloc_bytes(sizeof(int32_t) * n);
    int32_t *pos = tc_alloc_bytes(sizeof(int32_t) * n), *neg = tc_alloc_bytes(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)(i % p_ids); /* P identities, K samples each, interleaved */
    /* Random points often have a near-tie somewhere in the O(N^2) comparisons: draw from a
     * fixed sequence of seeds until no finite-difference step can flip the mining or cross
     * the hinge (deterministic: the same draw every run). */
    const float fd_eps = 2e-3f;
    double gap = 0;
    uint64_t s = seed;
    for (; s < seed + 200 && !(gap > 10 * fd_eps); s++) {
        tc_fill(feat, (size_t)n * d, s, -1.0f, 1.0f);
        triplet_loss(pos, neg, feat, labels, n, d, margin);
        gap = mining_margin(feat, labels, pos, neg, n, d, margin);
    }
    cr_assert(gap > 10 * fd_eps, "seeds %llu..%llu: all within %g of a mining tie or the hinge",
              (unsigned long long)seed, (unsigned long long)s, gap);
    int active = 0;
    for (int i = 0; i < n; i++)
        active +=
            pos[i] >= 0 && ref_dist(feat, i, pos[i], d) - ref_dist(feat, i, neg[i], d) + margin > 0;
    cr_assert(active > 0, "no active triplet: the check would only see zeros");
    cr_assert_eq(ptl_triplet_hard_backward(grad, feat, pos, neg, n, d, margin, d_loss), PTL_OK,
                 "%s", ptl_error_message());
    struct tri_ctx c = {feat, pos, neg, labels, n, d, margin, d_loss};
    char what[80];
    snprintf(what, sizeof what, "triplet P=%d K=%d D=%d margin=%g (%d active)", p_ids, k_per, d,
             (double)margin, active);
    /* atol: the loss is a float near 1, so the difference quotient carries ~1e-7 / fd_eps of
     * rounding noise; the gradient entries themselves are ~1 / N. */
    tc_assert_gradcheck(what, tri_fd_loss, &c, feat, grad, (size_t)n * d, fd_eps, 2e-4, 1e-2);
    free(feat);
    free(grad);
    free(labels);
    free(pos);
    free(neg);
}

Test(triplet, gradient_matches_finite_differences)
{
    triplet_gradcheck(3, 3, 4, 0.3f, 1.0f, 5);
    triplet_gradcheck(2, 2, 6, 1.0f, 0.5f, 7);
    triplet_gradcheck(4, 2, 3, 0.2f, -2.0f, 1);
}

Test(triplet, anchors_without_positive_or_negative_are_skipped)
{
    /* labels {0, 0, 1, 2}: anchors 2 and 3 have no positive, so only anchors 0 and 1 count. */
    const float feat[] = {0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 3.0f, 5.0f, 5.0f}; /* (4, 2) */
    const int32_t labels[] = {0, 0, 1, 2};
    int32_t pos[4], neg[4];
    float loss = triplet_loss(pos, neg, feat, labels, 4, 2, 4.0f);
    /* anchor 0: d(0,1) = 1, nearest negative is 2 at 3 -> 2; anchor 1: d = 1, neg 2 at sqrt(10) */
    double want = (1 - 3 + 4.0 + 1 - sqrt(10.0) + 4.0) / 2;
    cr_expect(fabs(loss - want) < 1e-6, "loss %.8g, expected %.8g", (double)loss, want);
    cr_expect(pos[2] == -1 && neg[2] == -1 && pos[3] == -1 && neg[3] == -1,
              "skipped anchors must save -1: %d %d %d %d", pos[2], neg[2], pos[3], neg[3]);
    cr_expect(pos[0] == 1 && neg[0] == 2 && pos[1] == 0 && neg[1] == 2, "mining %d %d %d %d",
              pos[0], neg[0], pos[1], neg[1]);
    float grad[8] = {0};
    cr_assert_eq(ptl_triplet_hard_backward(grad, feat, pos, neg, 4, 2, 4.0f, 1.0f), PTL_OK);
    for (int t = 0; t < 2; t++)
        cr_expect_eq(grad[3 * 2 + t], 0.0f, "sample 3 is in no triplet but got a gradient");

    /* One label only: no anchor has a negative, the loss is 0 and backward adds nothing. */
    const int32_t same[] = {7, 7, 7, 7};
    loss = triplet_loss(pos, neg, feat, same, 4, 2, 1.0f);
    cr_expect_eq(loss, 0.0f, "loss %g", (double)loss);
    float zero[8] = {0};
    cr_expect_eq(ptl_triplet_hard_backward(zero, feat, pos, neg, 4, 2, 1.0f, 1.0f), PTL_OK);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(zero[i], 0.0f);
    /* A batch of one sample is valid too. */
    loss = triplet_loss(pos, neg, feat, labels, 1, 2, 1.0f);
    cr_expect_eq(loss, 0.0f);
    cr_expect(pos[0] == -1 && neg[0] == -1);
}

Test(triplet, coincident_points_have_zero_gradient_at_the_clamp)
{
    /* Samples 0 and 1 coincide: d = sqrt(1e-12) and its derivative is defined as 0. */
    const float feat[] = {1.0f, 2.0f, 1.0f, 2.0f, 1.5f, 2.0f}; /* (3, 2) */
    const int32_t labels[] = {0, 0, 1};
    int32_t pos[3], neg[3];
    float loss = triplet_loss(pos, neg, feat, labels, 3, 2, 1.0f);
    /* anchors 0, 1: 1e-6 - 0.5 + 1 each; anchor 2 has no positive */
    cr_expect(fabs(loss - (1e-6 + 0.5)) < 1e-6, "loss %.8g", (double)loss);
    float grad[6] = {0};
    cr_assert_eq(ptl_triplet_hard_backward(grad, feat, pos, neg, 3, 2, 1.0f, 1.0f), PTL_OK);
    for (int i = 0; i < 6; i++)
        cr_expect(isfinite(grad[i]), "grad[%d] = %g", i, (double)grad[i]);
    /* only the negative terms remain: anchors 0 and 1 are pushed away from sample 2 */
    cr_expect(fabsf(grad[0] - 0.5f) < 1e-6f && fabsf(grad[2] - 0.5f) < 1e-6f, "grad %g %g",
              (double)grad[0], (double)grad[2]);
    cr_expect(fabsf(grad[4] + 1.0f) < 1e-6f, "grad of the negative %g", (double)grad[4]);
}

Test(triplet, backward_accumulates)
{
    enum { N = 6, D = 3 };
    float feat[N * D], once[N * D] = {0}, twice[N * D] = {0};
    const int32_t labels[N] = {0, 1, 2, 0, 1, 2};
    int32_t pos[N], neg[N];
    tc_fill(feat, N * D, 9, -1.0f, 1.0f);
    triplet_loss(pos, neg, feat, labels, N, D, 2.0f);
    cr_assert_eq(ptl_triplet_hard_backward(once, feat, pos, neg, N, D, 2.0f, 1.0f), PTL_OK);
    cr_assert_eq(ptl_triplet_hard_backward(twice, feat, pos, neg, N, D, 2.0f, 1.0f), PTL_OK);
    cr_assert_eq(ptl_triplet_hard_backward(twice, feat, pos, neg, N, D, 2.0f, 1.0f), PTL_OK);
    double norm = 0;
    for (int i = 0; i < N * D; i++) {
        cr_expect(fabsf(twice[i] - 2.0f * once[i]) <= 1e-6f, "element %d: %g vs 2 x %g", i,
                  (double)twice[i], (double)once[i]);
        norm += fabs(once[i]);
    }
    cr_expect(norm > 0, "margin 2 keeps every hinge active: the gradient cannot be zero");
    cr_expect_eq(ptl_triplet_hard_backward(NULL, feat, pos, neg, N, D, 2.0f, 1.0f), PTL_OK);
}

Test(triplet, bad_arguments)
{
    const float feat[] = {0.0f, 1.0f, 2.0f, 3.0f}; /* (2, 2) */
    const int32_t labels[] = {0, 1};
    int32_t pos[2], neg[2];
    float loss, grad[4] = {0};
    cr_expect_eq(ptl_triplet_hard_forward(NULL, pos, neg, feat, labels, 2, 2, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_forward(&loss, NULL, neg, feat, labels, 2, 2, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_forward(&loss, pos, NULL, feat, labels, 2, 2, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_forward(&loss, pos, neg, NULL, labels, 2, 2, 1.0f), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "feat") != NULL, "message: %s", ptl_error_message());
    cr_expect_eq(ptl_triplet_hard_forward(&loss, pos, neg, feat, NULL, 2, 2, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_forward(&loss, pos, neg, feat, labels, 0, 2, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_forward(&loss, pos, neg, feat, labels, 2, 0, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_forward(&loss, pos, neg, feat, labels, 2, 2, NAN), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_backward(grad, NULL, pos, neg, 2, 2, 1.0f, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_backward(grad, feat, NULL, neg, 2, 2, 1.0f, 1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_triplet_hard_backward(grad, feat, pos, neg, -2, 2, 1.0f, 1.0f), PTL_EINVAL);

    /* Corrupted mining must not be followed out of bounds. */
    const int32_t bad_pos[] = {5, -1}, bad_neg[] = {1, -1};
    cr_expect_eq(ptl_triplet_hard_backward(grad, feat, bad_pos, bad_neg, 2, 2, 1.0f, 1.0f),
                 PTL_ERANGE);
    cr_expect(strstr(ptl_error_message(), "anchor 0") != NULL, "message: %s", ptl_error_message());
    for (int i = 0; i < 4; i++)
        cr_expect_eq(grad[i], 0.0f);
}
