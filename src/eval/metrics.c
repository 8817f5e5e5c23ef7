/* Evaluation metrics: top-k classification accuracy and single-query person-ReID CMC/mAP.
 *
 * ReID follows the evaluation of the MGN release (utils/functions.py: cmc and mean_ap), which
 * is the standard Market-1501 protocol torchreid implements too, with two choices made
 * explicit: gallery entries with a junk identity (< 0) are dropped (Market-1501's "-1"
 * images; the release's loaders keep them as non-matches), and ties in distance are ordered by
 * gallery index (the release's np.argsort leaves their order unspecified). AP is sklearn's
 * average_precision_score over the kept gallery with score = -distance, tied distances forming
 * one threshold; without ties it equals torchreid's mean of precision at each match.
 */
#include "ptl/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/ops.h"

/* ------------------------------------------------------------------------- top-k ---------- */

/* Does logit x of class j come before logit v of class l in torch.topk's order? NaN is the
 * largest value, as in torch; equal values go to the lower class index. */
static int ranks_before(float x, int j, float v, int l)
{
    if (isnan(x) || isnan(v)) {
        if (isnan(x) && isnan(v))
            return j < l;
        return isnan(x);
    }
    return x > v || (x == v && j < l);
}

long ptl_topk_correct(const float *logits, const int32_t *labels, int n, int classes, int k)
{
    if (!logits || !labels || n <= 0 || classes <= 0 || k <= 0)
        return 0;
    long correct = 0;
#pragma omp parallel for reduction(+ : correct) if ((long)n * classes >= (1L << 16))
    for (int i = 0; i < n; i++) {
        const int l = labels[i];
        if (l < 0 || l >= classes)
            continue; /* an ignored or impossible label is never correct */
        const float *row = logits + (size_t)i * (size_t)classes;
        const float v = row[l];
        int before = 0;
        for (int j = 0; j < classes && before < k; j++)
            if (j != l && ranks_before(row[j], j, v, l))
                before++;
        if (before < k)
            correct++;
    }
    return correct;
}

/* ----------------------------------------------------------------- L2 normalisation ------- */

void ptl_l2_normalize_rows(float *x, int n, int d)
{
    if (!x || n <= 0 || d <= 0)
        return;
#pragma omp parallel for if ((long)n * d >= (1L << 16))
    for (int i = 0; i < n; i++) {
        float *row = x + (size_t)i * (size_t)d;
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += (double)row[j] * (double)row[j];
        /* torch.nn.functional.normalize's eps: a zero row stays zero. */
        const double norm = fmax(sqrt(s), 1e-12);
        for (int j = 0; j < d; j++)
            row[j] = (float)((double)row[j] / norm);
    }
}

/* ----------------------------------------------------------------------- ReID ------------- */

/* Queries whose distances one GEMM computes: 512 x 20k gallery floats is 40 MB; smaller
 * blocks make BLIS's GEMM markedly slower (measured: 64 rows run at half the rate). */
enum { QUERY_BLOCK = 512, CMC_RANKS = 50 };

static int check_finite(const float *f, int n, int d, const char *what)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            if (!isfinite(f[(size_t)i * (size_t)d + (size_t)j]))
                return ptl_error(PTL_EINVAL,
                                 "reid evaluation: %s feature %d is not finite "
                                 "(component %d)",
                                 what, i, j);
    return PTL_OK;
}

static void row_norms(double *out, const float *f, int n, int d)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++) {
            double v = f[(size_t)i * (size_t)d + (size_t)j];
            s += v * v;
        }
        out[i] = s;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* First index g in t[0..n) with t[g] >= v (n if none). */
static int lower_bound(const float *t, int n, float v)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Per-thread scratch of one query: distances of its matches, matches per distinct distance,
 * kept entries up to each distinct distance. */
struct query_scratch {
    float *thr;
    int *tp, *upto;
};

/* Does gallery entry j take part in the ranking of a query (qid, qcam)? */
static int kept(int32_t qid, const int32_t *qcam, const int32_t *gid, const int32_t *gcam, int j)
{
    /* Junk identities, and the same identity seen by the same camera, are left out. */
    if (gid[j] < 0)
        return 0;
    return !(gid[j] == qid && qcam && gcam && gcam[j] == *qcam);
}

/* One query. Only the ranks of its matches matter, so instead of sorting the gallery it sorts
 * the match distances (few) and counts, for each distinct one, the kept entries at or below it
 * (a binary search per entry). Sets *first (0-based rank of the first match in the order by
 * distance then gallery index, -1 when there is no match) and returns the AP. */
static double query_ap(const float *dist, int32_t qid, const int32_t *qcam, const int32_t *gid,
                       const int32_t *gcam, int ng, struct query_scratch *s, int *first)
{
    int positives = 0, best = -1;
    for (int j = 0; j < ng; j++)
        if (gid[j] == qid && kept(qid, qcam, gid, gcam, j)) {
            s->thr[positives++] = dist[j];
            if (best < 0 || dist[j] < dist[best])
                best = j; /* ties keep the lower index */
        }
    *first = -1;
    if (positives == 0)
        return 0.0;
    qsort(s->thr, (size_t)positives, sizeof *s->thr, cmp_float);
    int u = 0; /* distinct match distances, with their match counts */
    for (int i = 0; i < positives; i++) {
        if (u == 0 || s->thr[i] != s->thr[u - 1]) {
            s->thr[u] = s->thr[i];
            s->tp[u] = 0;
            s->upto[u] = 0;
            u++;
        }
        s->tp[u - 1]++;
    }
    int before_best = 0;
    for (int j = 0; j < ng; j++) {
        if (!kept(qid, qcam, gid, gcam, j))
            continue;
        before_best += dist[j] < dist[best] || (dist[j] == dist[best] && j < best);
        int g = lower_bound(s->thr, u, dist[j]);
        if (g < u)
            s->upto[g]++;
    }
    *first = before_best;
    /* sklearn: sum over distinct thresholds of (recall step) x (precision at the threshold). */
    double ap = 0.0;
    long seen = 0, tp = 0;
    for (int g = 0; g < u; g++) {
        seen += s->upto[g];
        tp += s->tp[g];
        ap += (double)s->tp[g] * (double)tp / (double)seen;
    }
    return ap / positives;
}

int ptl_reid_evaluate(struct ptl_reid_result *r, const float *qf, const int32_t *qid,
                      const int32_t *qcam, int nq, const float *gf, const int32_t *gid,
                      const int32_t *gcam, int ng, int d)
{
    if (!r)
        return ptl_error(PTL_EINVAL, "reid evaluation: no result given");
    memset(r, 0, sizeof *r);
    if (nq <= 0 || ng <= 0 || d <= 0)
        return ptl_error(PTL_EINVAL,
                         "reid evaluation: %d queries, %d gallery, dimension %d; "
                         "all must be >= 1",
                         nq, ng, d);
    if (!qf || !qid || !gf || !gid)
        return ptl_error(PTL_EINVAL, "reid evaluation: missing features or identities");
    int rc = check_finite(qf, nq, d, "query");
    if (!rc)
        rc = check_finite(gf, ng, d, "gallery");
    if (rc)
        return rc;

    double *qn = malloc(sizeof *qn * (size_t)nq);
    double *gn = malloc(sizeof *gn * (size_t)ng);
    const int block = nq < QUERY_BLOCK ? nq : QUERY_BLOCK;
    float *dots = malloc(sizeof *dots * (size_t)block * (size_t)ng);
    double *ap = malloc(sizeof *ap * (size_t)nq);
    int *first = malloc(sizeof *first * (size_t)nq);
    if (!qn || !gn || !dots || !ap || !first) {
        rc = ptl_error(PTL_ENOMEM, "reid evaluation: out of memory for %d x %d distances", nq, ng);
        goto done;
    }
    row_norms(qn, qf, nq, d);
    row_norms(gn, gf, ng, d);
    for (int q0 = 0; q0 < nq; q0 += block) {
        const int bq = nq - q0 < block ? nq - q0 : block;
        /* |q - g|^2 = |q|^2 + |g|^2 - 2 q.g: the cross term is one GEMM per block. */
        rc = ptl_sgemm(0, 1, bq, ng, d, -2.0f, qf + (size_t)q0 * (size_t)d, d, gf, d, 0.0f, dots,
                       ng);
        if (rc)
            goto done;
        int failed = 0;
#pragma omp parallel reduction(| : failed)
        {
            struct query_scratch sc = {malloc(sizeof(float) * (size_t)ng),
                                       malloc(sizeof(int) * (size_t)ng),
                                       malloc(sizeof(int) * (size_t)ng)};
            failed = !sc.thr || !sc.tp || !sc.upto;
#pragma omp for schedule(dynamic, 8)
            for (int i = 0; i < bq; i++) {
                if (failed)
                    continue;
                float *dist = dots + (size_t)i * (size_t)ng;
                const int q = q0 + i;
                for (int j = 0; j < ng; j++) {
                    double v = qn[q] + gn[j] + (double)dist[j];
                    dist[j] = (float)(v > 0.0 ? v : 0.0);
                }
                first[q] = -1; /* a junk query is never evaluated */
                ap[q] = qid[q] < 0 ? 0.0
                                   : query_ap(dist, qid[q], qcam ? qcam + q : NULL, gid, gcam, ng,
                                              &sc, &first[q]);
            }
            free(sc.thr);
            free(sc.tp);
            free(sc.upto);
        }
        if (failed) {
            rc = ptl_error(PTL_ENOMEM, "reid evaluation: out of memory for a gallery of %d", ng);
            goto done;
        }
    }
    /* Sums in query order: the result does not depend on the thread count. */
    long hits[CMC_RANKS] = {0};
    double ap_sum = 0.0;
    int valid = 0;
    for (int q = 0; q < nq; q++) {
        if (first[q] < 0)
            continue;
        valid++;
        ap_sum += ap[q];
        if (first[q] < CMC_RANKS)
            hits[first[q]]++;
    }
    r->valid_queries = valid;
    if (valid > 0) {
        long cum = 0;
        for (int k = 0; k < CMC_RANKS; k++) {
            cum += hits[k];
            r->cmc[k] = (double)cum / valid;
        }
        r->map = ap_sum / valid;
    }
    rc = PTL_OK;
done:
    free(qn);
    free(gn);
    free(dots);
    free(ap);
    free(first);
    return rc;
}
