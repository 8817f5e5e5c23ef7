/* The training objective over a model's outputs (method.md, "Training recipes"):
 *   loss = loss.ce * mean over classifier heads of CE(logits_i, y) (label smoothing option)
 *        + loss.triplet * mean over triplet features of batch-hard triplet(f_i, y)
 * where the triplet features are MGN's "triplet.<i>" outputs, or "features" for a network
 * without them. Also gives the gradient of the loss with respect to every output. */
#ifndef PTL_TRAIN_LOSS_H
#define PTL_TRAIN_LOSS_H

#include <stdint.h>

#include "ptl/config.h"
#include "ptl/model.h"

enum { PTL_LOSS_MAX_OUTPUTS = 32 };

struct ptl_loss {
    float w_ce, w_triplet, smoothing, margin;
    int n_outputs;
    int is_logits[PTL_LOSS_MAX_OUTPUTS];
    int is_triplet[PTL_LOSS_MAX_OUTPUTS];
    int n_logits, n_triplet;
    float *d_out[PTL_LOSS_MAX_OUTPUTS]; /* gradient per output, NULL when unused */
    float *probs;                       /* softmax of one head, reused */
    int32_t *pos, *neg;
    int cap_n;
    /* values of the last forward */
    double ce, triplet, total;
};

int ptl_loss_init(struct ptl_loss *l, const struct ptl_config *cfg, const struct ptl_model *m);
void ptl_loss_free(struct ptl_loss *l);
/* Loss of the model's last forward on labels (n) and its output gradients (l->d_out). */
int ptl_loss_compute(struct ptl_loss *l, const struct ptl_model *m, const int32_t *labels, int n);

#endif
