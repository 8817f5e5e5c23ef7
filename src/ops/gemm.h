/* Internal: ptl_sgemm on the calling thread only, for callers that share work out among OpenMP
 * threads themselves (one image or one transform per thread) and want no BLIS barriers inside
 * each GEMM. Same arguments and checks as ptl_sgemm (ptl/ops.h). */
#ifndef PTL_OPS_GEMM_H
#define PTL_OPS_GEMM_H

int ptl__sgemm_single(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
