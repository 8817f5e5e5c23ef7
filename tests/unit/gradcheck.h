/* Test helpers: deterministic data, allocation, tolerant comparisons and finite-difference
 * gradient checks shared by the Criterion unit tests of the ops. */
#ifndef PTL_TEST_GRADCHECK_H
#define PTL_TEST_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

/* calloc of n floats (or bytes for tc_alloc_bytes) that fails the test when out of memory;
 * release with free(). */
float *tc_alloc(size_t n);
void *tc_alloc_bytes(size_t n);

/* x[i] = uniform in [lo, hi), deterministic in (seed, i). */
void tc_fill(float *x, size_t n, uint64_t seed, float lo, float hi);

/* Sum of a[i] * b[i] in double. */
double tc_dot(const float *a, const float *b, size_t n);

/* max |a - b| / max(max |b|, floor): the "relative error" used by the tests. */
double tc_rel_err(const float *a, const float *b, size_t n, double floor);

/* A scalar function of the op's inputs, typically sum(forward(...) * r) for fixed random r. */
typedef double (*tc_loss_fn)(void *ctx);

struct tc_gradcheck_result {
    double worst;     /* max of |analytic - numeric| / (atol + rtol |numeric|): <= 1 passes */
    size_t worst_at;  /* element index of the worst */
    double analytic;  /* values at worst_at */
    double numeric;
    size_t checked;
    size_t skipped;   /* elements at a kink (one-sided slopes disagree): not comparable */
};

/* Central finite differences of loss() with respect to x[0..n) (at most max_checks elements,
 * spread over the tensor), compared with grad[]. x is restored afterwards. */
struct tc_gradcheck_result tc_gradcheck(tc_loss_fn loss, void *ctx, float *x, const float *grad,
                                        size_t n, float eps, double atol, double rtol,
                                        size_t max_checks);

/* Runs tc_gradcheck and fails the current Criterion test, naming `what`, when
 * |analytic - numeric| > atol + rtol * |numeric| anywhere or when more than a quarter of the
 * checked elements sat on kinks. */
void tc_assert_gradcheck(const char *what, tc_loss_fn loss, void *ctx, float *x, const float *grad,
                         size_t n, float eps, double atol, double rtol);

#endif
