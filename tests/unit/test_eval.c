/* Unit tests of the evaluation metrics: top-k accuracy, L2 normalisation and single-query
 * ReID CMC/mAP.
 *
 * Hand-made cases pin the protocol (same-identity-same-camera removal, junk identities, a
 * query without a valid match, ties); the reference tests run a Python script (numpy, and
 * sklearn's average_precision_score when installed) on random data written by the test and
 * compare every number: the script ranks like the MGN release's utils/functions.py (cmc with
 * first_match_break, mean_ap) with the two choices of metrics.c (junk dropped, ties in
 * gallery order). Skipped only when /usr/bin/python3 or numpy is missing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptl/core.h"
#include "ptl/eval.h"

/* ------------------------------------------------------------------------- top-k ---------- */

Test(topk, counts_labels_among_the_k_largest)
{
    const float logits[3 * 4] = {0.1f,  0.9f,  0.3f,  0.2f, /* order 1, 2, 3, 0 */
                                 5.0f,  -1.0f, 2.0f,  7.0f, /* order 3, 0, 2, 1 */
                                 -3.0f, -2.0f, -1.0f, -4.0f};
    const int32_t labels[3] = {2, 1, 2};
    cr_expect_eq(ptl_topk_correct(logits, labels, 3, 4, 1), 1);
    cr_expect_eq(ptl_topk_correct(logits, labels, 3, 4, 2), 2);
    cr_expect_eq(ptl_topk_correct(logits, labels, 3, 4, 3), 2);
    cr_expect_eq(ptl_topk_correct(logits, labels, 3, 4, 4), 3);
    cr_expect_eq(ptl_topk_correct(logits, labels, 3, 4, 9), 3, "k above the class count");
    const int32_t bad[3] = {-1, 4, 2}; /* out-of-range labels are never correct */
    cr_expect_eq(ptl_topk_correct(logits, bad, 3, 4, 4), 1);
    cr_expect_eq(ptl_topk_correct(logits, labels, 3, 4, 0), 0);
}

/* torch.topk leaves the order of equal values unspecified (torch 1.13 on CPU: top-2 of
 * [1,3,3,3,2] is indices [1,3]; top-3 of eight zeros is [6,5,4]); ptl ranks equal logits by
 * class index, so these are ptl's answers, not torch's. */
Test(topk, ties_go_to_the_lower_class_index)
{
    const float row[5] = {1.0f, 3.0f, 3.0f, 3.0f, 2.0f};
    float logits[5 * 5];
    int32_t labels[5];
    for (int i = 0; i < 5; i++) {
        memcpy(logits + 5 * i, row, sizeof row);
        labels[i] = i;
    }
    /* top-1 = {1}; top-2 = {1, 2}; top-3 = {1, 2, 3}; top-4 adds 4. */
    cr_expect_eq(ptl_topk_correct(logits, labels, 5, 5, 1), 1);
    cr_expect_eq(ptl_topk_correct(logits, labels, 5, 5, 2), 2);
    cr_expect_eq(ptl_topk_correct(logits, labels, 5, 5, 3), 3);
    cr_expect_eq(ptl_topk_correct(logits, labels, 5, 5, 4), 4);
    int32_t one[1] = {3};
    cr_expect_eq(ptl_topk_correct(row, one, 1, 5, 2), 0, "class 3 is third among the 3s");
    float zeros[8] = {0};
    for (int l = 0; l < 8; l++) {
        int32_t lab[1] = {l};
        cr_expect_eq(ptl_topk_correct(zeros, lab, 1, 8, 3), l < 3, "label %d of 8 zeros", l);
    }
}

/* NaN is the largest value, as in torch.topk. */
Test(topk, nan_ranks_first)
{
    const float row[4] = {1.0f, NAN, 2.0f, 0.0f};
    int32_t l1[1] = {1}, l2[1] = {2};
    cr_expect_eq(ptl_topk_correct(row, l1, 1, 4, 1), 1);
    cr_expect_eq(ptl_topk_correct(row, l2, 1, 4, 1), 0);
    cr_expect_eq(ptl_topk_correct(row, l2, 1, 4, 2), 1);
}

/* ---------------------------------------------------------------- normalisation ----------- */

Test(l2_normalize, unit_rows_zero_rows_stay_zero)
{
    float x[3 * 3] = {3.0f, 0.0f, 4.0f, 0.0f, 0.0f, 0.0f, -1.0f, 1.0f, 1.0f};
    ptl_l2_normalize_rows(x, 3, 3);
    cr_expect_float_eq(x[0], 0.6f, 1e-7f);
    cr_expect_float_eq(x[2], 0.8f, 1e-7f);
    cr_expect(x[3] == 0.0f && x[4] == 0.0f && x[5] == 0.0f);
    double n = 0;
    for (int j = 6; j < 9; j++)
        n += (double)x[j] * x[j];
    cr_expect(fabs(n - 1.0) < 1e-6);
    cr_expect(x[6] < 0.0f && fabsf(x[6] + x[7]) < 1e-7f);
}

/* --------------------------------------------------------------- ReID, by hand ------------ */

static void eval_ok(struct ptl_reid_result *r, const float *qf, const int32_t *qid,
                    const int32_t *qcam, int nq, const float *gf, const int32_t *gid,
                    const int32_t *gcam, int ng, int d)
{
    int rc = ptl_reid_evaluate(r, qf, qid, qcam, nq, gf, gid, gcam, ng, d);
    cr_assert_eq(rc, PTL_OK, "reid_evaluate: %s", ptl_error_message());
}

/* One dimension: a gallery entry's distance to the query at 0 is its coordinate. */
Test(reid, same_camera_and_junk_are_dropped)
{
    const float qf[2] = {0.0f, 0.0f};
    const int32_t qid[2] = {1, 5}, qcam[2] = {0, 0};
    /* by distance: 0.1 id1 cam0 (same id+cam: dropped), 0.2 junk, 0.3 id2, 0.4 id1 cam1,
     * 0.5 id1 cam0 (dropped), 0.6 id5 cam0 (dropped for query 2), 0.7 id1 cam2. */
    const float gf[7] = {0.6f, 0.3f, 0.1f, 0.7f, 0.2f, 0.4f, 0.5f};
    const int32_t gid[7] = {5, 2, 1, 1, -1, 1, 1}, gcam[7] = {0, 1, 0, 2, 3, 1, 0};
    struct ptl_reid_result r;
    eval_ok(&r, qf, qid, qcam, 2, gf, gid, gcam, 7, 1);
    /* Query 2 (id 5) has only a same-camera match: not counted. Query 1 ranks id2, id1, id5,
     * id1: first match at rank 2, AP = (1/2 + 2/4) / 2. */
    cr_expect_eq(r.valid_queries, 1);
    cr_expect_float_eq(r.cmc[0], 0.0, 1e-12);
    cr_expect_float_eq(r.cmc[1], 1.0, 1e-12);
    cr_expect_float_eq(r.cmc[49], 1.0, 1e-12);
    cr_expect_float_eq(r.map, 0.5, 1e-12);
    /* Without cameras nothing is removed for being seen by the same camera: query 1 ranks
     * id1, id2, id1, id1, id5, id1 (AP (1 + 2/3 + 3/4 + 4/6) / 4), query 2 finds id5 at
     * rank 5 (AP 1/5). */
    eval_ok(&r, qf, qid, NULL, 2, gf, gid, NULL, 7, 1);
    cr_expect_eq(r.valid_queries, 2);
    cr_expect_float_eq(r.cmc[0], 0.5, 1e-12);
    cr_expect_float_eq(r.cmc[3], 0.5, 1e-12);
    cr_expect_float_eq(r.cmc[4], 1.0, 1e-12);
    cr_expect_float_eq(r.map, ((1.0 + 2.0 / 3 + 3.0 / 4 + 4.0 / 6) / 4 + 1.0 / 5) / 2, 1e-12);
}

/* Two gallery entries at the same distance: CMC ranks them by gallery index, AP takes them as
 * one threshold (sklearn), so the AP is 1/2 whichever comes first. */
Test(reid, ties_in_distance)
{
    const float qf[2] = {0.0f, 0.0f};
    const int32_t qid[1] = {3}, qcam[1] = {0};
    const float gf_match_last[4] = {0.5f, 0.0f, 0.5f, 0.0f}; /* index 0 = other id */
    const float gf_match_first[4] = {0.5f, 0.0f, 0.5f, 0.0f};
    const int32_t gid_last[2] = {4, 3}, gid_first[2] = {3, 4}, gcam[2] = {1, 1};
    struct ptl_reid_result r;
    eval_ok(&r, qf, qid, qcam, 1, gf_match_last, gid_last, gcam, 2, 2);
    cr_expect_float_eq(r.cmc[0], 0.0, 1e-12);
    cr_expect_float_eq(r.cmc[1], 1.0, 1e-12);
    cr_expect_float_eq(r.map, 0.5, 1e-12);
    eval_ok(&r, qf, qid, qcam, 1, gf_match_first, gid_first, gcam, 2, 2);
    cr_expect_float_eq(r.cmc[0], 1.0, 1e-12);
    cr_expect_float_eq(r.map, 0.5, 1e-12);
}

Test(reid, no_valid_query_and_errors)
{
    const float qf[2] = {1.0f, 0.0f}, gf[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    const int32_t qid[1] = {1}, qcam[1] = {0}, gid[2] = {1, -1}, gcam[2] = {0, 0};
    struct ptl_reid_result r;
    eval_ok(&r, qf, qid, qcam, 1, gf, gid, gcam, 2, 2);
    cr_expect_eq(r.valid_queries, 0);
    cr_expect(r.map == 0.0 && r.cmc[0] == 0.0 && r.cmc[49] == 0.0);
    const int32_t junk_q[1] = {-1}, gid2[2] = {-1, 1}, gcam2[2] = {1, 1};
    eval_ok(&r, qf, junk_q, qcam, 1, gf, gid2, gcam2, 2, 2);
    cr_expect_eq(r.valid_queries, 0, "a junk query is not evaluated");
    cr_expect_eq(ptl_reid_evaluate(&r, qf, qid, qcam, 0, gf, gid, gcam, 2, 2), PTL_EINVAL);
    cr_expect_eq(ptl_reid_evaluate(&r, qf, qid, qcam, 1, gf, gid, gcam, 2, 0), PTL_EINVAL);
    cr_expect_eq(ptl_reid_evaluate(&r, qf, NULL, qcam, 1, gf, gid, gcam, 2, 2), PTL_EINVAL);
    const float nan_g[4] = {1.0f, 0.0f, NAN, 1.0f};
    cr_expect_eq(ptl_reid_evaluate(&r, qf, qid, qcam, 1, nan_g, gid, gcam, 2, 2), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "gallery feature 1"), "%s", ptl_error_message());
}

/* ------------------------------------------------------- ReID and top-k, reference -------- */

/* Reads the binary files the test writes and prints "valid N", "map X", "cmc R X" (R = 1..50)
 * and "topk K COUNT". Exit 77: numpy missing. With sklearn installed, the AP is taken from
 * average_precision_score and checked against the transcription below. */
static const char REFERENCE_PY[] =
    "import sys, os\n"
    "try:\n"
    "    import numpy as np\n"
    "except ImportError:\n"
    "    sys.exit(77)\n"
    "try:\n"
    "    from sklearn.metrics import average_precision_score\n"
    "except ImportError:\n"
    "    average_precision_score = None\n"
    "d = sys.argv[1]\n"
    "nq, ng, dim, n, classes = [int(v) for v in open(os.path.join(d, 'meta')).read().split()]\n"
    "def rd(name, t, shape):\n"
    "    return np.fromfile(os.path.join(d, name), dtype=t).reshape(shape)\n"
    "qf = rd('qf', np.float32, (nq, dim)).astype(np.float64)\n"
    "gf = rd('gf', np.float32, (ng, dim)).astype(np.float64)\n"
    "qid, qcam = rd('qid', np.int32, nq), rd('qcam', np.int32, nq)\n"
    "gid, gcam = rd('gid', np.int32, ng), rd('gcam', np.int32, ng)\n"
    "# sklearn's AP: sum over distinct scores of (recall step) * precision\n"
    "def ap_np(y, s):\n"
    "    o = np.argsort(-s, kind='stable')\n"
    "    y, s = y[o], s[o]\n"
    "    last = np.r_[np.where(np.diff(s))[0], y.size - 1]\n"
    "    tps = np.cumsum(y)[last]\n"
    "    prec = tps / (last + 1.0)\n"
    "    rec = tps / tps[-1]\n"
    "    return float(np.sum(np.diff(np.r_[0.0, rec]) * prec))\n"
    "keep = gid >= 0  # junk gallery entries dropped\n"
    "gf, gid, gcam = gf[keep], gid[keep], gcam[keep]\n"
    "dist = np.sqrt(((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1))\n"
    "cmc = np.zeros(50); aps = []\n"
    "for i in range(nq):\n"
    "    if qid[i] < 0:\n"
    "        continue\n"
    "    order = np.argsort(dist[i], kind='stable')\n"
    "    valid = (gid[order] != qid[i]) | (gcam[order] != qcam[i])\n"
    "    match = (gid[order] == qid[i])[valid]\n"
    "    if not match.any():\n"
    "        continue\n"
    "    k = int(np.nonzero(match)[0][0])\n"
    "    if k < 50:\n"
    "        cmc[k] += 1\n"
    "    score = -dist[i][order][valid]\n"
    "    a = ap_np(match, score)\n"
    "    if average_precision_score is not None:\n"
    "        b = average_precision_score(match, score)\n"
    "        if abs(a - b) > 1e-12:\n"
    "            sys.exit('AP transcription %r != sklearn %r' % (a, b))\n"
    "        a = b\n"
    "    aps.append(a)\n"
    "print('valid', len(aps))\n"
    "print('map %.17g' % (np.mean(aps) if aps else 0.0))\n"
    "for r, v in enumerate(np.cumsum(cmc) / max(len(aps), 1)):\n"
    "    print('cmc %d %.17g' % (r + 1, v))\n"
    "print('sklearn', int(average_precision_score is not None))\n"
    "logits = rd('logits', np.float32, (n, classes)); labels = rd('labels', np.int32, n)\n"
    "for k in (1, 3, 5):\n"
    "    c = 0\n"
    "    for i in range(n):\n"
    "        o = sorted(range(classes), key=lambda j: (-logits[i, j], j))[:k]\n"
    "        c += int(labels[i] in o)\n"
    "    print('topk', k, c)\n";

static void write_file(const char *dir, const char *name, const void *data, size_t bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, bytes, f), bytes);
    cr_assert_eq(fclose(f), 0);
}

struct reference {
    int valid;
    double map, cmc[50];
    long topk[6];
    int used_sklearn;
};

/* Writes the data, runs the script, parses its output; returns 0, or 77 to skip. */
static int run_reference(struct reference *ref, const float *qf, const int32_t *qid,
                         const int32_t *qcam, int nq, const float *gf, const int32_t *gid,
                         const int32_t *gcam, int ng, int d, const float *logits,
                         const int32_t *labels, int n, int classes)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        return 77;
    char dir[] = "/tmp/ptl-test-eval-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char meta[128];
    int len = snprintf(meta, sizeof meta, "%d %d %d %d %d\n", nq, ng, d, n, classes);
    write_file(dir, "meta", meta, (size_t)len);
    write_file(dir, "qf", qf, sizeof(float) * (size_t)nq * (size_t)d);
    write_file(dir, "gf", gf, sizeof(float) * (size_t)ng * (size_t)d);
    write_file(dir, "qid", qid, sizeof(int32_t) * (size_t)nq);
    write_file(dir, "qcam", qcam, sizeof(int32_t) * (size_t)nq);
    write_file(dir, "gid", gid, sizeof(int32_t) * (size_t)ng);
    write_file(dir, "gcam", gcam, sizeof(int32_t) * (size_t)ng);
    write_file(dir, "logits", logits, sizeof(float) * (size_t)n * (size_t)classes);
    write_file(dir, "labels", labels, sizeof(int32_t) * (size_t)n);
    write_file(dir, "ref.py", REFERENCE_PY, sizeof REFERENCE_PY - 1);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/ref.py %s > %s/out 2> %s/err", dir, dir, dir,
             dir);
    int status = system(cmd);
    char path[600];
    int skip = WIFEXITED(status) && WEXITSTATUS(status) == 77;
    if (!skip) {
        snprintf(path, sizeof path, "%s/err", dir);
        FILE *e = fopen(path, "r");
        char err[512] = "";
        if (e) {
            size_t got = fread(err, 1, sizeof err - 1, e);
            err[got] = '\0';
            fclose(e);
        }
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reference script failed: %s",
                  err);
        snprintf(path, sizeof path, "%s/out", dir);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        memset(ref, 0, sizeof *ref);
        char line[256];
        int lines = 0;
        while (fgets(line, sizeof line, f)) {
            int r, k;
            long c;
            double v;
            if (sscanf(line, "valid %d", &ref->valid) == 1 ||
                sscanf(line, "map %lf", &ref->map) == 1 ||
                sscanf(line, "sklearn %d", &ref->used_sklearn) == 1) {
                lines++;
            } else if (sscanf(line, "cmc %d %lf", &r, &v) == 2 && r >= 1 && r <= 50) {
                ref->cmc[r - 1] = v;
                lines++;
            } else if (sscanf(line, "topk %d %ld", &k, &c) == 2 && k >= 1 && k <= 5) {
                ref->topk[k] = c;
                lines++;
            }
        }
        fclose(f);
        cr_assert_eq(lines, 3 + 50 + 3, "reference output incomplete (%d lines)", lines);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    return skip ? 77 : 0;
}

/* Random query/gallery data: ids 0..29 for queries (25..29 have no gallery match), gallery
 * ids -1..24 (-1 junk), 6 cameras; features continuous (tied = 0) or small integers (tied =
 * 1, many exactly equal distances). Logits random, with ties when tied. */
static void reference_case(int tied, int nq, int ng, int d)
{
    const int n = 200, classes = 37;
    float *qf = malloc(sizeof(float) * (size_t)nq * (size_t)d);
    float *gf = malloc(sizeof(float) * (size_t)ng * (size_t)d);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)classes);
    int32_t *qid = malloc(sizeof(int32_t) * (size_t)nq);
    int32_t *qcam = malloc(sizeof(int32_t) * (size_t)nq);
    int32_t *gid = malloc(sizeof(int32_t) * (size_t)ng);
    int32_t *gcam = malloc(sizeof(int32_t) * (size_t)ng);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    cr_assert(qf && gf && logits && qid && qcam && gid && gcam && labels);
    struct ptl_rng rng;
    ptl_rng_init(&rng, 2024, (uint64_t)tied);
    /* Features share a per-identity centre so that matches rank high but not always first. */
    for (int i = 0; i < nq; i++) {
        qid[i] = i % 13 == 12 ? -1 : (int32_t)(ptl_rng_u64(&rng) % 30);
        qcam[i] = (int32_t)(ptl_rng_u64(&rng) % 6);
    }
    for (int j = 0; j < ng; j++) {
        gid[j] = (int32_t)(ptl_rng_u64(&rng) % 26) - 1;
        gcam[j] = (int32_t)(ptl_rng_u64(&rng) % 6);
    }
    for (int side = 0; side < 2; side++) {
        float *f = side ? gf : qf;
        const int32_t *id = side ? gid : qid;
        int rows = side ? ng : nq;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < d; j++) {
                struct ptl_rng c;
                ptl_rng_init(&c, 77, (uint64_t)(id[i] + 1) * 1000 + (uint64_t)j);
                float centre = ptl_rng_normal(&c);
                float v = centre + 1.5f * ptl_rng_normal(&rng);
                f[(size_t)i * d + j] = tied ? rintf(v) : v; /* integers: exact ties */
            }
    }
    if (!tied) {
        ptl_l2_normalize_rows(qf, nq, d);
        ptl_l2_normalize_rows(gf, ng, d);
    }
    for (int i = 0; i < n * classes; i++)
        logits[i] = tied ? (float)(ptl_rng_u64(&rng) % 4) : ptl_rng_normal(&rng);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)(ptl_rng_u64(&rng) % (uint64_t)classes);

    struct ptl_reid_result r;
    eval_ok(&r, qf, qid, qcam, nq, gf, gid, gcam, ng, d);
    struct reference ref;
    int rc =
        run_reference(&ref, qf, qid, qcam, nq, gf, gid, gcam, ng, d, logits, labels, n, classes);
    if (rc == 77)
        cr_skip_test("/usr/bin/python3 with numpy not available");
    cr_log_info("tied %d: %d valid queries, mAP %.6f, rank-1 %.4f, AP from %s", tied,
                r.valid_queries, r.map, r.cmc[0],
                ref.used_sklearn ? "sklearn" : "the numpy transcription");
    cr_assert(ref.valid > 5 && ref.valid < nq, "data gives %d valid queries", ref.valid);
    cr_expect_eq(r.valid_queries, ref.valid);
    cr_expect(fabs(r.map - ref.map) < 1e-9, "mAP %.12f, reference %.12f", r.map, ref.map);
    for (int k = 0; k < 50; k++)
        cr_expect(fabs(r.cmc[k] - ref.cmc[k]) < 1e-12, "cmc[%d] %.12f, reference %.12f", k,
                  r.cmc[k], ref.cmc[k]);
    for (int k = 1; k <= 5; k += 2)
        cr_expect_eq(ptl_topk_correct(logits, labels, n, classes, k), ref.topk[k], "top-%d", k);
    free(qf);
    free(gf);
    free(logits);
    free(qid);
    free(qcam);
    free(gid);
    free(gcam);
    free(labels);
}

Test(reid_reference, random_features_match_numpy_sklearn)
{
    reference_case(0, 70, 400, 24);
}

Test(reid_reference, tied_distances_match_sklearn)
{
    reference_case(1, 70, 400, 3);
}

/* More queries than one GEMM block (512 in metrics.c): three blocks, the last partial. */
Test(reid_reference, several_query_blocks)
{
    reference_case(0, 1100, 250, 8);
}
