/* ptl_sgemm: the row-major single-precision GEMM every conv and linear layer runs on.
 * A thin, validated wrapper over BLIS's typed bli_sgemm: row-major storage is expressed with
 * BLIS strides (row stride = leading dimension, column stride = 1), so nothing is copied or
 * transposed here. Threads are BLIS's own (set once, globally, by ptl_threads_set).
 *
 * BLIS's small/unpacked ("sup") path is switched off: BLIS 0.9 on zen3 sends every GEMM with
 * m < 512, n < 200 or k < 240 there, which covers most conv GEMMs (C_out = 64..256), and
 * measured it is up to 2-3x slower on them than the packed path (e.g. 128x4096x1152: 23 vs
 * 45 GFLOPS on one core) while no faster on the tiny shapes we tried (docs/performance.md). */
#include "ptl/ops.h"

#include <blis.h>
#include <pthread.h>
#include <string.h>

#include "ops/check.h"
#include "ops/gemm.h"

/* BLIS fixes its kernel set at first use, so it is chosen before main(); this file holds the
 * constructor because every program that runs a GEMM links it. */
__attribute__((constructor)) static void select_blis_kernels(void)
{
    ptl__blis_select();
}

/* threads 0: BLIS's global setting (ptl_threads_set); else that many. */
static int sgemm_on(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    PTL_CHECK(trans_a == 0 || trans_a == 1, "sgemm: trans_a must be 0 or 1, got %d", trans_a);
    PTL_CHECK(trans_b == 0 || trans_b == 1, "sgemm: trans_b must be 0 or 1, got %d", trans_b);
    PTL_CHECK(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size m=%d n=%d k=%d", m, n, k);
    /* Stored widths (row-major): A is (m, k) or (k, m) when transposed, B (k, n) or (n, k). */
    int a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
    PTL_CHECK(lda >= (a_cols > 1 ? a_cols : 1), "sgemm: lda=%d < %d (columns of stored A)", lda,
              a_cols);
    PTL_CHECK(ldb >= (b_cols > 1 ? b_cols : 1), "sgemm: ldb=%d < %d (columns of stored B)", ldb,
              b_cols);
    PTL_CHECK(ldc >= (n > 1 ? n : 1), "sgemm: ldc=%d < n=%d", ldc, n);
    if (m == 0 || n == 0)
        return PTL_OK;
    PTL_CHECK_PTR("sgemm", c);
    if (k > 0) {
        PTL_CHECK_PTR("sgemm", a);
        PTL_CHECK_PTR("sgemm", b);
    }
    /* BLIS's typed API takes non-const pointers in 0.9 but does not write A, B, alpha, beta. */
    rntm_t rntm; /* picks up the global thread count set by ptl_threads_set */
    bli_rntm_init_from_global(&rntm);
    if (threads > 0)
        bli_rntm_set_num_threads(threads, &rntm);
    bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, lda, 1,
                 (float *)b, ldb, 1, &beta, c, ldc, 1, NULL, &rntm);
    return PTL_OK;
}

int ptl_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    return sgemm_on(0, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int ptl__sgemm_single(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    return sgemm_on(1, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- the micro-kernel ---- */

typedef void (*sgemm_ukr_fn)(dim_t m, dim_t n, dim_t k, float *alpha, float *a, float *b,
                             float *beta, float *c, inc_t rs_c, inc_t cs_c, auxinfo_t *data,
                             cntx_t *cntx);

static struct ptl__ukernel ukernel;
static pthread_once_t ukernel_once = PTHREAD_ONCE_INIT;

static void ukernel_query(void)
{
    cntx_t *cntx = bli_gks_query_cntx();
    ukernel.cntx = cntx;
    ukernel.fn = (void *)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
    ukernel.mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, cntx);
    ukernel.nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, cntx);
    ukernel.row_pref = bli_cntx_l3_nat_ukr_prefers_rows_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx) != 0;
    /* Packed panels are exactly mr (nr) wide only when BLIS pads them no further. */
    if (bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_MR, cntx) != ukernel.mr ||
        bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_NR, cntx) != ukernel.nr)
        ukernel.fn = NULL;
}

const struct ptl__ukernel *ptl__ukernel(void)
{
    pthread_once(&ukernel_once, ukernel_query);
    return &ukernel;
}

int ptl__ukernel_fits(const struct ptl__ukernel *u, int max_block)
{
    return u->fn && u->mr >= 1 && u->mr <= max_block && u->nr >= 1 && u->nr <= max_block;
}

void ptl__ukernel_sides(const struct ptl__ukernel *u, int *stored, int *across)
{
    *stored = u->row_pref ? u->nr : u->mr;
    *across = u->row_pref ? u->mr : u->nr;
}

void ptl__ukernel_run_sides(const struct ptl__ukernel *u, int k, const float *s, const float *a,
                            float beta, float *c, long ld, const float *next_s,
                            const float *next_a)
{
    if (u->row_pref)
        ptl__ukernel_run(u, k, a, s, beta, c, ld, 1, next_a, next_s);
    else
        ptl__ukernel_run(u, k, s, a, beta, c, 1, ld, next_s, next_a);
}

void ptl__ukernel_run(const struct ptl__ukernel *u, int k, const float *a, const float *b,
                      float beta, float *c, long rs_c, long cs_c, const float *next_a,
                      const float *next_b)
{
    float one = 1.0f;
    auxinfo_t aux;
    memset(&aux, 0, sizeof aux);
    bli_auxinfo_set_next_ab((void *)next_a, (void *)next_b, &aux);
    /* BLIS takes non-const pointers but does not write A, B, alpha or beta. */
    ((sgemm_ukr_fn)u->fn)(u->mr, u->nr, k, &one, (float *)a, (float *)b, &beta, c, rs_c, cs_c,
                          &aux, (cntx_t *)u->cntx);
}
