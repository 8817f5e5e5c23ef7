/* ptl/eval.h - evaluation metrics: classification accuracy and person-ReID CMC/mAP. */
#ifndef PTL_EVAL_H
#define PTL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of samples among n whose label is among the top-k logits. logits (n, classes).
 * Equal logits rank by class index, lower first; NaN ranks above every number, as in
 * torch.topk. torch.topk itself leaves the order of equal values unspecified (torch 1.13 CPU:
 * top-2 of [1,3,3,3,2] is [1,3]), so with exact ties the two may differ. Labels outside
 * [0, classes) are never correct; k >= classes counts every valid label. */
long ptl_topk_correct(const float *logits, const int32_t *labels, int n, int classes, int k);

struct ptl_reid_result {
    double cmc[50];  /* cmc[r] = fraction of valid queries whose first match is at rank <= r+1 */
    double map;      /* mean average precision over valid queries */
    int valid_queries; /* queries with at least one valid gallery match */
};

/* Single-query ReID evaluation (method.md): distance = Euclidean between L2-normalised
 * features (the caller normalises); for each query, gallery samples with the same identity
 * and the same camera, and junk identities (id < 0), are dropped; CMC with first-match-break;
 * AP over the ranked valid gallery (sklearn's average_precision_score, as the MGN release:
 * equal distances form one threshold). Equal distances rank by gallery index for the CMC.
 * Features (nq, d) and (ng, d), finite (else PTL_EINVAL). qcam and gcam may be NULL: then no
 * same-camera entry is dropped. Junk queries (id < 0) and queries without a valid match are
 * not counted; when none is valid, the result is all zeros and the call still succeeds. */
int ptl_reid_evaluate(struct ptl_reid_result *r, const float *qf, const int32_t *qid,
                      const int32_t *qcam, int nq, const float *gf, const int32_t *gid,
                      const int32_t *gcam, int ng, int d);

/* L2-normalises each of the n rows of x (n, d) in place (rows of zeros stay zero). */
void ptl_l2_normalize_rows(float *x, int n, int d);

#ifdef __cplusplus
}
#endif
#endif
