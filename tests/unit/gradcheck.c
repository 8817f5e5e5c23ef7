/* Finite-difference gradient checks and small numeric helpers for the unit tests. */
#include "gradcheck.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "ptl/core.h"

float *tc_alloc(size_t n)
{
    return tc_alloc_bytes(n * sizeof(float));
}

void *tc_alloc_bytes(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    cr_assert_not_null(p, "out of memory allocating %zu bytes", n);
    return p;
}

void tc_fill(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, seed, 0);
    ptl_rng_fill_uniform(&rng, x, n, lo, hi);
}

double tc_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

double tc_rel_err(const float *a, const float *b, size_t n, double floor)
{
    double diff = 0, scale = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= diff)) /* also catches NaN */
            diff = d;
        if (fabs((double)b[i]) > scale)
            scale = fabs((double)b[i]);
    }
    return diff / scale;
}

struct tc_gradcheck_result tc_gradcheck(tc_loss_fn loss, void *ctx, float *x, const float *grad,
                                        size_t n, float eps, double atol, double rtol,
                                        size_t max_checks)
{
    struct tc_gradcheck_result r = {0};
    size_t step = n > max_checks ? n / max_checks : 1;
    double f0 = loss(ctx);
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double fp = loss(ctx);
        x[i] = keep - eps;
        double fm = loss(ctx);
        x[i] = keep;
        double h = (double)(keep + eps) - (double)(keep - eps); /* the step really taken */
        double numeric = (fp - fm) / h;
        double slope_r = (fp - f0) / (h / 2), slope_l = (f0 - fm) / (h / 2);
        if (fabs(slope_r - slope_l) > 0.1 * (fabs(slope_r) + fabs(slope_l)) + 50 * atol) {
            r.skipped++;
            continue;
        }
        double err = fabs(grad[i] - numeric) / (atol + rtol * fabs(numeric));
        if (r.checked == 0 || !(err <= r.worst)) {
            r.worst = err;
            r.worst_at = i;
            r.analytic = grad[i];
            r.numeric = numeric;
        }
        r.checked++;
    }
    return r;
}

void tc_assert_gradcheck(const char *what, tc_loss_fn loss, void *ctx, float *x, const float *grad,
                         size_t n, float eps, double atol, double rtol)
{
    struct tc_gradcheck_result r = tc_gradcheck(loss, ctx, x, grad, n, eps, atol, rtol, 256);
    cr_assert(r.checked > 0 && r.skipped * 4 <= r.checked + r.skipped,
              "%s: %zu of %zu elements sit on kinks; choose inputs away from them", what,
              r.skipped, r.checked + r.skipped);
    cr_assert(r.worst <= 1.0,
              "%s: gradient mismatch at element %zu: analytic %.7g vs finite difference %.7g", what,
              r.worst_at, r.analytic, r.numeric);
}
