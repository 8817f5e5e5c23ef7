/* Internal: ptl_sgemm on the calling thread only, for callers that share work out among OpenMP
 * threads themselves (one image or one transform per thread) and want no BLIS barriers inside
 * each GEMM. Same arguments and checks as ptl_sgemm (ptl/ops.h). */
#ifndef PTL_OPS_GEMM_H
#define PTL_OPS_GEMM_H

int ptl__sgemm_single(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Sets BLIS_ARCH_TYPE where BLIS would run its reference kernels (ops/blis_select.c); must run
 * before anything calls BLIS, so ops/gemm.c calls it from a constructor. */
void ptl__blis_select(void);

/* BLIS's native single-precision micro-kernel, for drivers that lay out their own operands in
 * its packed formats (ops/winograd.c): A as micro-panels of mr rows, element (i, p) at
 * a[p * mr + i]; B as micro-panels of nr columns, element (p, j) at b[p * nr + j]; both
 * 64-byte aligned and zero-padded to whole panels. */
struct ptl__ukernel {
    int mr, nr;   /* the kernel's register block: C is mr x nr */
    int row_pref; /* 1 when it is fastest on row-stored C (column stride 1) */
    void *fn;     /* BLIS's sgemm ukernel */
    void *cntx;   /* the BLIS context it belongs to */
};

/* The kernel of the CPU BLIS runs on (queried once, thread-safe). */
const struct ptl__ukernel *ptl__ukernel(void);

/* u has a kernel, and its register block is at most max_block in each direction (a driver's
 * per-lane arrays are sized by that). */
int ptl__ukernel_fits(const struct ptl__ukernel *u, int max_block);

/* The lanes of u's register block: `stored` along the side where u stores C contiguously (its
 * mr rows for a column-preferring kernel, its nr columns for a row-preferring one), `across`
 * the other. Drivers put the dimension they want written contiguously on the stored side. */
void ptl__ukernel_sides(const struct ptl__ukernel *u, int *stored, int *across);

/* ptl__ukernel_run by sides: C (stored x across, element (i, j) at c[i + j * ld]) = the
 * product of packed panel s (`stored` lanes) and packed panel a (`across` lanes) over k, +
 * beta C; s and a go in as A and B in whichever order u needs. next_s/next_a: prefetch hints. */
void ptl__ukernel_run_sides(const struct ptl__ukernel *u, int k, const float *s, const float *a,
                            float beta, float *c, long ld, const float *next_s,
                            const float *next_a);

/* C (mr x nr, element (i, j) at c[i * rs_c + j * cs_c]) = A B + beta C over k, A and B one
 * packed micro-panel each. next_a/next_b: the panels of the following call (prefetch hints). */
void ptl__ukernel_run(const struct ptl__ukernel *u, int k, const float *a, const float *b,
                      float beta, float *c, long rs_c, long cs_c, const float *next_a,
                      const float *next_b);

#endif
