/* ops/transpose.c against a plain double loop: every row count from 1 to 21 (8-row blocks,
 * the 4-row block, single rows) and column counts around the 8-column blocks, with leading
 * dimensions wider than the matrices, set and add, and nothing written outside dst. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "gradcheck.h"
#include "ops/transpose.h"

static void check(int rows, int cols, int add)
{
    const size_t ld_src = (size_t)cols + 3, ld_dst = (size_t)rows + 5;
    const size_t n_src = rows * ld_src, n_dst = (size_t)cols * ld_dst;
    float *src = tc_alloc(n_src), *dst = tc_alloc(n_dst), *before = tc_alloc(n_dst);
    tc_fill(src, n_src, 41, -1.0f, 1.0f);
    tc_fill(dst, n_dst, 42, -1.0f, 1.0f);
    for (size_t i = 0; i < n_dst; i++)
        before[i] = dst[i];
    ptl__transpose(dst, ld_dst, src, ld_src, rows, cols, add);
    for (int j = 0; j < cols; j++)
        for (size_t i = 0; i < ld_dst; i++) {
            float want = before[j * ld_dst + i];
            if (i < (size_t)rows)
                want = (add ? want : 0.0f) + src[i * ld_src + j];
            cr_assert_eq(dst[j * ld_dst + i], want, "%dx%d add %d: dst[%d][%zu] = %g, want %g",
                         rows, cols, add, j, i, dst[j * ld_dst + i], want);
        }
    free(src);
    free(dst);
    free(before);
}

Test(transpose, all_small_shapes_set_and_add)
{
    static const int cols[] = {1, 7, 8, 9, 16, 23};
    for (int rows = 1; rows <= 21; rows++)
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
            check(rows, cols[c], 0);
            check(rows, cols[c], 1);
        }
}
