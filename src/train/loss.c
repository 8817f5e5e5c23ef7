/* Cross-entropy over every classifier head plus batch-hard triplet (loss.h). */
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/ops.h"
#include "train/loss.h"

int ptl_loss_init(struct ptl_loss *l, const struct ptl_config *cfg, const struct ptl_model *m)
{
    memset(l, 0, sizeof *l);
    l->w_ce = (float)ptl_config_float(cfg, "loss.ce");
    l->w_triplet = (float)ptl_config_float(cfg, "loss.triplet");
    l->smoothing = (float)ptl_config_float(cfg, "loss.label_smoothing");
    l->margin = (float)ptl_config_float(cfg, "loss.margin");
    l->n_outputs = ptl_model_output_count(m);
    if (l->n_outputs > PTL_LOSS_MAX_OUTPUTS)
        return ptl_error(PTL_EINVAL, "loss: %s has %d outputs (at most %d)", ptl_model_arch(m),
                         l->n_outputs, PTL_LOSS_MAX_OUTPUTS);
    int has_triplet_outputs = 0;
    for (int i = 0; i < l->n_outputs; i++)
        has_triplet_outputs |= strncmp(ptl_model_output_name(m, i), "triplet.", 8) == 0;
    for (int i = 0; i < l->n_outputs; i++) {
        const char *name = ptl_model_output_name(m, i);
        l->is_logits[i] = strncmp(name, "logits", 6) == 0;
        l->is_triplet[i] = has_triplet_outputs ? strncmp(name, "triplet.", 8) == 0
                                               : strcmp(name, "features") == 0;
        l->n_logits += l->is_logits[i];
        l->n_triplet += l->is_triplet[i];
    }
    if (l->w_ce > 0 && l->n_logits == 0)
        return ptl_error(PTL_EINVAL, "config loss.ce: %s has no classifier output",
                         ptl_model_arch(m));
    if (l->w_ce == 0 && l->w_triplet == 0)
        return ptl_error(PTL_EINVAL, "config loss.ce and loss.triplet are both 0: nothing to train");
    return PTL_OK;
}

void ptl_loss_free(struct ptl_loss *l)
{
    for (int i = 0; i < PTL_LOSS_MAX_OUTPUTS; i++)
        free(l->d_out[i]);
    free(l->probs);
    free(l->pos);
    free(l->neg);
    memset(l, 0, sizeof *l);
}

static int ensure(struct ptl_loss *l, const struct ptl_model *m, int n)
{
    if (n <= l->cap_n)
        return PTL_OK;
    int max_dim = 1;
    for (int i = 0; i < l->n_outputs; i++) {
        int d;
        ptl_model_output(m, i, &d);
        if (d > max_dim)
            max_dim = d;
        free(l->d_out[i]);
        l->d_out[i] = NULL;
        if (l->is_logits[i] || l->is_triplet[i]) {
            l->d_out[i] = malloc((size_t)n * (size_t)d * sizeof(float));
            if (l->d_out[i] == NULL)
                return ptl_error(PTL_ENOMEM, "loss: out of memory");
        }
    }
    free(l->probs);
    free(l->pos);
    free(l->neg);
    l->probs = malloc((size_t)n * (size_t)max_dim * sizeof(float));
    l->pos = malloc((size_t)n * sizeof(int32_t));
    l->neg = malloc((size_t)n * sizeof(int32_t));
    if (l->probs == NULL || l->pos == NULL || l->neg == NULL)
        return ptl_error(PTL_ENOMEM, "loss: out of memory");
    l->cap_n = n;
    return PTL_OK;
}

int ptl_loss_compute(struct ptl_loss *l, const struct ptl_model *m, const int32_t *labels, int n)
{
    int rc = ensure(l, m, n);
    if (rc != 0)
        return rc;
    l->ce = l->triplet = 0;
    for (int i = 0; i < l->n_outputs && rc == 0; i++) {
        int d;
        const float *y = ptl_model_output(m, i, &d);
        if (l->d_out[i])
            memset(l->d_out[i], 0, (size_t)n * (size_t)d * sizeof(float));
        float v = 0;
        if (l->is_logits[i] && l->w_ce > 0) {
            float w = l->w_ce / (float)l->n_logits;
            rc = ptl_cross_entropy_forward(&v, l->probs, y, labels, n, d, l->smoothing);
            if (rc == 0)
                rc = ptl_cross_entropy_backward(l->d_out[i], l->probs, labels, n, d, l->smoothing,
                                                w);
            l->ce += (double)v / l->n_logits;
        }
        if (l->is_triplet[i] && l->w_triplet > 0 && rc == 0) {
            float w = l->w_triplet / (float)l->n_triplet;
            rc = ptl_triplet_hard_forward(&v, l->pos, l->neg, y, labels, n, d, l->margin);
            if (rc == 0)
                rc = ptl_triplet_hard_backward(l->d_out[i], y, l->pos, l->neg, n, d, l->margin, w);
            l->triplet += (double)v / l->n_triplet;
        }
    }
    l->total = l->w_ce * l->ce + l->w_triplet * l->triplet;
    return rc;
}
