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

/* ---- optimizers over a model's parameters, with per-role learning-rate scales ----
 * Semantics equal torch.optim.SGD / torch.optim.Adam (amsgrad option) with one parameter group
 * per role (backbone, cells, head) whose lr is lr * lr_scale[role]. A scale of 0 freezes the
 * role: its parameters, and their optimizer state, never change. Entries with used == 0 are
 * skipped like parameters PyTorch never gives a gradient. Weight decay is L2 added to the
 * gradient (not AdamW). */
enum ptl_optim_kind { PTL_OPTIM_SGD = 0, PTL_OPTIM_ADAM = 1 };

struct ptl_optim_config {
    enum ptl_optim_kind kind;
    float lr;
    float weight_decay;
    float momentum, dampening; /* SGD */
    int nesterov;              /* SGD */
    float beta1, beta2, eps;   /* Adam */
    int amsgrad;               /* Adam */
    float lr_scale[3];         /* per enum ptl_role; 1 = the base lr, 0 = frozen */
};

struct ptl_model;
struct ptl_optimizer;

/* Optimizer for model m (state buffers sized to its parameters, zeroed). */
int ptl_optimizer_create(struct ptl_optimizer **out, struct ptl_model *m,
                         const struct ptl_optim_config *c);
void ptl_optimizer_free(struct ptl_optimizer *o);
/* One step with base learning rate lr (the schedule's value for this step) on the model's
 * params and grads. */
int ptl_optimizer_step(struct ptl_optimizer *o, float lr);
/* Steps taken so far (Adam's bias correction uses it; checkpoints save it). */
long ptl_optimizer_steps(const struct ptl_optimizer *o);
void ptl_optimizer_set_steps(struct ptl_optimizer *o, long steps);
/* State buffers, each with the layout of the model's params: SGD "momentum_buffer"; Adam
 * "exp_avg", "exp_avg_sq" and with amsgrad "max_exp_avg_sq" (PyTorch's names). */
int ptl_optimizer_state_count(const struct ptl_optimizer *o);
float *ptl_optimizer_state(struct ptl_optimizer *o, int i, const char **name);

/* ---- learning-rate schedules, as PyTorch's schedulers stepped once per epoch, with an
 * optional linear warmup over the first steps ----
 *   constant:  base
 *   multistep: base * gamma^(number of milestones <= epoch)          (MultiStepLR)
 *   cosine:    eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2
 *                                                        (CosineAnnealingLR, closed form)
 *   warmup:    times warmup_factor + (1 - warmup_factor) * step / warmup_steps while
 *              step < warmup_steps (LinearLR stepped per iteration)                      */
enum ptl_schedule_kind { PTL_SCHEDULE_CONSTANT = 0, PTL_SCHEDULE_MULTISTEP = 1,
                         PTL_SCHEDULE_COSINE = 2 };

struct ptl_schedule {
    enum ptl_schedule_kind kind;
    float base_lr;
    int milestones[16];
    int n_milestones;
    float gamma;
    int t_max;         /* cosine: epochs (>= 1) */
    float eta_min;
    long warmup_steps; /* 0: none */
    float warmup_factor;
};

/* Learning rate for global step `step` (0-based) taken during epoch `epoch` (0-based). */
float ptl_schedule_lr(const struct ptl_schedule *s, long step, long epoch);
/* 0 if s is usable (known kind, lr and gamma >= 0, 0..16 milestones >= 0, cosine t_max >= 1,
 * warmup_steps >= 0 with warmup_factor in (0, 1] when warming up), else PTL_EINVAL with a
 * message naming the field. ptl_schedule_lr assumes a checked schedule. */
int ptl_schedule_check(const struct ptl_schedule *s);

#ifdef __cplusplus
}
#endif
#endif
