/* ops/weight_panels.c, a 1x1 conv's forward (or d_in) on weights packed once per call,
 * against a direct sum in double: partial pixel and channel panels, K over several chunks,
 * transposed weights, accumulation, work split by channel panels when there are few pixel
 * blocks, and the same bits on 1 and 3 threads. tests/unit/kernel_sets.sh runs this on every
 * BLIS kernel set the CPU has, so both tile orientations (skx's column-stored C, haswell's
 * row-stored) are checked on any machine. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ops/weight_panels.h"

/* y (n, r, p) = w_t x x_n, w_t (r, k) element (i, kk) at w[i*rs + kk*cs], in double */
static void reference(double *y, const float *x, int n, int k, int p, int r, const float *w,
                      size_t rs, size_t cs)
{
    for (int img = 0; img < n; img++)
        for (int i = 0; i < r; i++)
            for (int q = 0; q < p; q++) {
                double acc = 0.0;
                for (int kk = 0; kk < k; kk++)
                    acc += (double)w[i * rs + kk * cs] * x[((size_t)img * k + kk) * p + q];
                y[((size_t)img * r + i) * p + q] = acc;
            }
}

/* One call that overwrites, one that adds onto it (reference, then twice it), on `threads`
 * threads; with transposed weights (w stored (k, r)) when `trans`. Returns the first result
 * (caller frees) so runs on different thread counts can be compared bit for bit. */
static float *check_on(int n, int k, int p, int r, int trans, int threads)
{
    if (!ptl__weight_panels_apply(p))
        cr_skip_test("no usable BLIS micro-kernel, or images smaller than a panel");
    const size_t nx = (size_t)n * k * p, ny = (size_t)n * r * p, nw = (size_t)r * k;
    const size_t rs = trans ? 1 : (size_t)k, cs = trans ? (size_t)r : 1;
    float *x = tc_alloc(nx), *wt = tc_alloc(nw), *y = tc_alloc(ny), *want = tc_alloc(ny);
    float *ws = tc_alloc(ptl__weight_panels_floats(k, p, r, threads));
    double *ref = malloc(ny * sizeof *ref);
    cr_assert_not_null(ref);
    tc_fill(x, nx, 31, -1.0f, 1.0f);
    tc_fill(wt, nw, 32, -1.0f, 1.0f);
    tc_fill(y, ny, 33, -5.0f, 5.0f); /* accumulate = 0 must overwrite this */
    reference(ref, x, n, k, p, r, wt, rs, cs);
    for (size_t i = 0; i < ny; i++)
        want[i] = (float)ref[i];
    ptl__weight_panels_gemm(y, x, n, k, p, r, wt, rs, cs, 0, ws, threads);
    double err = tc_rel_err(y, want, ny, 1e-3);
    cr_assert_lt(err, 1e-5, "set: relative error %g (n %d, k %d, p %d, r %d, %d threads)", err, n,
                 k, p, r, threads);
    float *first = tc_alloc(ny);
    memcpy(first, y, ny * sizeof *y);
    ptl__weight_panels_gemm(y, x, n, k, p, r, wt, rs, cs, 1, ws, threads);
    for (size_t i = 0; i < ny; i++)
        want[i] = (float)(2.0 * ref[i]);
    err = tc_rel_err(y, want, ny, 1e-3);
    cr_assert_lt(err, 1e-5, "accumulated: relative error %g", err);
    free(x);
    free(wt);
    free(y);
    free(want);
    free(ws);
    free(ref);
    return first;
}

/* On 1 thread and on 3 (more than the machine may have: the split must not depend on it):
 * both right, and equal bit for bit. */
static void check(int n, int k, int p, int r, int trans)
{
    float *one = check_on(n, k, p, r, trans, 1);
    float *three = check_on(n, k, p, r, trans, 3);
    cr_assert(memcmp(one, three, sizeof(float) * (size_t)n * r * p) == 0,
              "1 and 3 threads differ");
    free(one);
    free(three);
}

/* 300 input channels (K over two chunks), 13 rows (a partial channel panel), 7x7 pixels (a
 * partial pixel panel after a full one) */
Test(weight_panels, partial_panels_and_chunks)
{
    check(3, 300, 49, 13, 0);
}

/* ResNet-like shapes: whole panels; few images, so the work is split by channel panels */
Test(weight_panels, whole_panels_split_by_channels)
{
    check(2, 64, 64, 96, 0);
    check(1, 32, 128, 256, 0);
}

/* many images: more pixel blocks than threads, blocks that end inside an image */
Test(weight_panels, blocks_across_images)
{
    check(9, 24, 200, 20, 0);
}

/* a 1x1 conv's d_in: the weights read transposed, accumulated onto d_in */
Test(weight_panels, transposed_weights)
{
    check(2, 40, 54, 70, 1);
}
