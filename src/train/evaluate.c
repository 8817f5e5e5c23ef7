/* Evaluation passes (evaluate.h). Eval-mode forwards in batches of data.eval_batch; nothing is
 * augmented but the resize and normalisation of the config.
 *
 * Over several ranks every rank runs every R-th batch (whole batches, so each sample sits at
 * the same position in its batch as on one rank); counts are summed over ranks, ReID features
 * summed into rank 0 (each row comes from exactly one rank, the others add zeros), which
 * computes CMC and mAP once and broadcasts them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/dist.h"
#include "ptl/eval.h"
#include "ptl/ops.h"
#include "train/evaluate.h"

int ptl_evaluator_open(struct ptl_evaluator *e, const struct ptl_config *cfg)
{
    memset(e, 0, sizeof *e);
    const char *split = ptl_config_string(cfg, "data.eval_split");
    e->reid = strcmp(split, "query") == 0;
    int rc = ptl_view_open(&e->test, cfg, split, 0);
    if (rc == 0 && e->reid)
        rc = ptl_view_open(&e->gallery, cfg, "gallery", 0);
    if (rc == 0 && e->reid && (e->test.cameras == NULL || e->gallery.cameras == NULL))
        rc = ptl_error(PTL_EFORMAT, "data %s: ReID evaluation needs cameras, the source has none",
                       ptl_config_string(cfg, "data.path"));
    if (rc != 0)
        ptl_evaluator_close(e);
    return rc;
}

void ptl_evaluator_close(struct ptl_evaluator *e)
{
    if (e->test.ds)
        ptl_view_close(&e->test);
    if (e->gallery.ds)
        ptl_view_close(&e->gallery);
}

/* Index of the first classifier output ("logits" or "logits.0"). */
static int first_logits(const struct ptl_model *m)
{
    for (int i = 0; i < ptl_model_output_count(m); i++)
        if (strncmp(ptl_model_output_name(m, i), "logits", 6) == 0)
            return i;
    return -1;
}

/* Mirrors (n, c, h, w) images left-right in place. */
static void flip_images(float *x, int n, int c, int h, int w)
{
    for (long r = 0; r < (long)n * c * h; r++) {
        float *row = x + r * w;
        for (int i = 0, j = w - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

/* Runs every sample of v through m (eval mode). With feat != NULL stores the retrieval
 * features (n, dim) (ReID: image + flipped image); else accumulates classification counts. */
static int run_view(struct ptl_split_view *v, struct ptl_model *m, const struct ptl_config *cfg,
                    float *feat, struct ptl_eval_result *r)
{
    struct ptl_augment a;
    int rc = ptl_augment_from_config(&a, cfg, v->c);
    if (rc != 0)
        return rc;
    int bs = (int)ptl_config_int(cfg, "data.eval_batch"), oh, ow;
    ptl_augment_out_size(&a, v->h, v->w, &oh, &ow);
    size_t in = (size_t)v->c * oh * ow;
    float *x = malloc((size_t)bs * in * sizeof *x);
    int logits = first_logits(m);
    int classes = 0;
    float *probs = NULL;
    if (feat == NULL && logits >= 0) {
        classes = ptl_model_output_dim(m, logits);
        probs = malloc((size_t)bs * classes * sizeof *probs);
    }
    if (x == NULL || (feat == NULL && logits >= 0 && probs == NULL)) {
        free(x);
        free(probs);
        return ptl_error(PTL_ENOMEM, "eval: out of memory");
    }
    double counts[3] = {0, 0, 0}; /* top-1, top-5, summed loss */
    const struct ptl_world *w = ptl_world();
    if (feat)
        memset(feat, 0, (size_t)v->n * ptl_model_output_dim(m, 0) * sizeof *feat);
    for (int s = bs * w->rank; s < v->n && rc == 0; s += bs * w->size) {
        int n = v->n - s < bs ? v->n - s : bs;
        ptl_watchdog_beat("evaluation", -1);
        rc = ptl_view_batch(v, v->pool + s, n, &a, 0, 0, 0, x);
        if (rc == 0)
            rc = ptl_model_forward(m, x, n, 0);
        if (rc != 0)
            break;
        int dim;
        if (feat) {
            const float *f = ptl_model_output(m, 0, &dim);
            memcpy(feat + (size_t)s * dim, f, (size_t)n * dim * sizeof *f);
            flip_images(x, n, v->c, oh, ow);
            rc = ptl_model_forward(m, x, n, 0);
            f = ptl_model_output(m, 0, &dim);
            for (size_t i = 0; rc == 0 && i < (size_t)n * dim; i++)
                feat[(size_t)s * dim + i] += f[i];
        } else if (logits >= 0) {
            const float *y = ptl_model_output(m, logits, &dim);
            float l;
            rc = ptl_cross_entropy_forward(&l, probs, y, v->labels + s, n, dim, 0);
            counts[2] += (double)l * n;
            counts[0] += ptl_topk_correct(y, v->labels + s, n, dim, 1);
            counts[1] += ptl_topk_correct(y, v->labels + s, n, dim, dim < 5 ? dim : 5);
        }
    }
    /* A failing rank ends the job (the trainer aborts), so the others may wait here. */
    if (rc == 0 && feat)
        rc = ptl_dist_reduce_floats(feat, (size_t)v->n * ptl_model_output_dim(m, 0), 0);
    if (feat == NULL && rc == 0 && (rc = ptl_dist_sum_doubles(NULL, counts, 3)) == 0) {
        r->samples = v->n;
        r->top1 = counts[0] / v->n;
        r->top5 = counts[1] / v->n;
        r->loss = counts[2] / v->n;
    }
    free(x);
    free(probs);
    return rc;
}

static int evaluate_reid(struct ptl_evaluator *e, struct ptl_model *m,
                         const struct ptl_config *cfg, struct ptl_eval_result *r)
{
    int dim = ptl_model_output_dim(m, 0);
    float *qf = malloc((size_t)e->test.n * dim * sizeof *qf);
    float *gf = malloc((size_t)e->gallery.n * dim * sizeof *gf);
    int rc = qf && gf ? 0 : ptl_error(PTL_ENOMEM, "eval: out of memory for features");
    if (rc == 0)
        rc = run_view(&e->test, m, cfg, qf, r);
    if (rc == 0)
        rc = run_view(&e->gallery, m, cfg, gf, r);
    if (rc == 0 && ptl_world()->rank == 0) {
        ptl_l2_normalize_rows(qf, e->test.n, dim);
        ptl_l2_normalize_rows(gf, e->gallery.n, dim);
        struct ptl_reid_result rr;
        rc = ptl_reid_evaluate(&rr, qf, e->test.labels, e->test.cameras, e->test.n, gf,
                               e->gallery.labels, e->gallery.cameras, e->gallery.n, dim);
        if (rc == 0) {
            r->samples = rr.valid_queries;
            r->rank1 = rr.cmc[0];
            r->rank5 = rr.cmc[4];
            r->rank10 = rr.cmc[9];
            r->map = rr.map;
        }
    }
    if (ptl_world()->size > 1) {
        /* Rank 0's outcome for everyone; an error on rank 0 becomes an error everywhere. */
        double out[6] = {rc, r->samples, r->rank1, r->rank5, r->rank10, r->map};
        int brc = ptl_dist_broadcast(out, sizeof out, 0);
        if (brc != 0)
            rc = brc;
        else if (out[0] != 0 && rc == 0)
            rc = ptl_error(PTL_EIO, "eval: rank 0 failed to compute the ReID metrics");
        r->samples = (int)out[1];
        r->rank1 = out[2];
        r->rank5 = out[3];
        r->rank10 = out[4];
        r->map = out[5];
    }
    free(qf);
    free(gf);
    return rc;
}

int ptl_evaluate(struct ptl_evaluator *e, struct ptl_model *m, const struct ptl_config *cfg,
                 struct ptl_eval_result *r)
{
    memset(r, 0, sizeof *r);
    r->reid = e->reid;
    if (e->reid)
        return evaluate_reid(e, m, cfg, r);
    if (first_logits(m) < 0)
        return ptl_error(PTL_EINVAL, "eval: %s has no classifier output", ptl_model_arch(m));
    return run_view(&e->test, m, cfg, NULL, r);
}
