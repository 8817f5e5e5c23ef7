/* Learning-rate schedules in closed form: what PyTorch's MultiStepLR / CosineAnnealingLR (stepped
 * once per epoch) times LinearLR (stepped once per iteration, for warmup) give, computed in
 * double from the step and epoch alone so a resumed run needs no scheduler state. PyTorch's
 * chained recursive forms equal these up to double rounding. */
#include "ops/check.h"
#include "ptl/train.h"

#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

int ptl_schedule_check(const struct ptl_schedule *s)
{
    PTL_CHECK_PTR("schedule", s);
    PTL_CHECK(s->kind == PTL_SCHEDULE_CONSTANT || s->kind == PTL_SCHEDULE_MULTISTEP ||
                  s->kind == PTL_SCHEDULE_COSINE,
              "schedule: unknown kind %d", (int)s->kind);
    PTL_CHECK(isfinite(s->base_lr) && s->base_lr >= 0, "schedule: base lr %g must be >= 0",
              s->base_lr);
    if (s->kind == PTL_SCHEDULE_MULTISTEP) {
        PTL_CHECK(s->n_milestones >= 0 && s->n_milestones <= 16,
                  "schedule: %d milestones (0 to 16)", s->n_milestones);
        PTL_CHECK(isfinite(s->gamma) && s->gamma >= 0, "schedule: gamma %g must be >= 0", s->gamma);
        for (int i = 0; i < s->n_milestones; i++)
            PTL_CHECK(s->milestones[i] >= 0, "schedule: milestone %d is negative (%d)", i,
                      s->milestones[i]);
    }
    if (s->kind == PTL_SCHEDULE_COSINE) {
        PTL_CHECK(s->t_max >= 1, "schedule: cosine t_max %d must be >= 1", s->t_max);
        PTL_CHECK(isfinite(s->eta_min) && s->eta_min >= 0, "schedule: eta_min %g must be >= 0",
                  s->eta_min);
    }
    PTL_CHECK(s->warmup_steps >= 0, "schedule: warmup steps %ld must be >= 0", s->warmup_steps);
    PTL_CHECK(s->warmup_steps == 0 || (s->warmup_factor > 0 && s->warmup_factor <= 1),
              "schedule: warmup factor %g outside (0, 1]", s->warmup_factor);
    return 0;
}

float ptl_schedule_lr(const struct ptl_schedule *s, long step, long epoch)
{
    double lr = s->base_lr;
    switch (s->kind) {
    case PTL_SCHEDULE_MULTISTEP: {
        int passed = 0; /* repeated milestones count twice, like MultiStepLR's Counter */
        for (int i = 0; i < s->n_milestones && i < 16; i++)
            passed += s->milestones[i] <= epoch;
        lr *= pow((double)s->gamma, passed);
        break;
    }
    case PTL_SCHEDULE_COSINE: {
        const double t_max = s->t_max >= 1 ? s->t_max : 1;
        const double eta = s->eta_min;
        lr = eta + (lr - eta) * (1 + cos(M_PI * (double)epoch / t_max)) / 2;
        break;
    }
    case PTL_SCHEDULE_CONSTANT:
    default:
        break;
    }
    if (s->warmup_steps > 0 && step < s->warmup_steps) {
        const double f = s->warmup_factor;
        lr *= f + (1 - f) * (double)step / (double)s->warmup_steps;
    }
    return (float)lr;
}
