/* ptl/train.h - optimizers over the flat parameter buffer of a model. */
#ifndef PTL_TRAIN_H
#define PTL_TRAIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SGD with PyTorch's torch.optim.SGD semantics:
 *   g = grad + weight_decay * p
 *   buf = g                                  on the first step (step_count == 0)
 *   buf = momentum * buf + (1 - dampening) * g   afterwards
 *   d = nesterov ? g + momentum * buf : buf     (d = g when momentum == 0)
 *   p -= lr * d                                                              */
struct ptl_sgd {
    float lr;
    float momentum;
    float dampening;
    float weight_decay;
    int nesterov;
};

/* One step over n parameters. buf (n floats) is the momentum buffer, unused when momentum is 0;
 * step_count is the number of steps already taken with this buffer. */
int ptl_sgd_step(float *params, const float *grads, float *buf, size_t n, const struct ptl_sgd *o,
                 long step_count);

#ifdef __cplusplus
}
#endif
#endif
