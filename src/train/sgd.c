/* SGD (with momentum, dampening, Nesterov, weight decay) with torch.optim.SGD's semantics, as one
 * loop over the flat parameter buffer. */
#include "ops/check.h"
#include "ptl/train.h"

#include <math.h>

int ptl_sgd_step(float *params, const float *grads, float *buf, size_t n, const struct ptl_sgd *o,
                 long step_count)
{
    PTL_CHECK_PTR("sgd", params);
    PTL_CHECK_PTR("sgd", grads);
    PTL_CHECK_PTR("sgd", o);
    PTL_CHECK(isfinite(o->lr) && o->lr >= 0, "sgd: learning rate %g must be >= 0", o->lr);
    PTL_CHECK(o->momentum >= 0 && o->momentum < 1, "sgd: momentum %g outside [0, 1)", o->momentum);
    PTL_CHECK(o->weight_decay >= 0, "sgd: weight decay %g must be >= 0", o->weight_decay);
    PTL_CHECK(!o->nesterov || (o->momentum > 0 && o->dampening == 0),
              "sgd: Nesterov momentum needs momentum > 0 and dampening 0");
    PTL_CHECK(o->momentum == 0 || buf != NULL, "sgd: momentum needs a buffer");
    const float lr = o->lr, mu = o->momentum, wd = o->weight_decay, damp = 1.0f - o->dampening;
    const int first = step_count == 0;
    const int nesterov = o->nesterov;
    const long long len = (long long)n;
    /* One loop per case, so each is a branch-free SIMD loop (the flags are loop-invariant). */
    if (mu == 0) {
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
        for (long long i = 0; i < len; i++)
            params[i] -= lr * (grads[i] + wd * params[i]);
    } else if (first) { /* torch.optim.SGD starts the buffer at the first gradient */
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
        for (long long i = 0; i < len; i++) {
            float g = grads[i] + wd * params[i];
            buf[i] = g;
            params[i] -= lr * (nesterov ? g + mu * g : g);
        }
    } else {
#pragma omp parallel for simd if (n >= PTL_OMP_MIN_ELEMENTS)
        for (long long i = 0; i < len; i++) {
            float g = grads[i] + wd * params[i];
            float b = mu * buf[i] + damp * g;
            buf[i] = b;
            params[i] -= lr * (nesterov ? g + mu * b : b);
        }
    }
    return 0;
}
