/* Optimizers over a model's flat parameter buffer: SGD (momentum, dampening, Nesterov) and Adam
 * (AMSGrad), with L2 weight decay and one learning rate per role, as torch.optim.SGD and
 * torch.optim.Adam (1.13, single-tensor path) with one parameter group per role.
 *
 * Rounding follows PyTorch's CPU kernels operation by operation, so a step is bit-identical to
 * torch's on nearly every element: scalars are formed in double (as Python does) and rounded
 * to float once; tensor.add_(x, alpha) and addcmul_ are fused multiply-adds in ATen's
 * vectorised kernels (fmaf here); addcdiv_ is self + (value * t1) / t2.
 *
 * The parameters a step touches are the used PARAM entries of roles with a non-zero scale,
 * merged into contiguous runs once at creation. A frozen role (scale 0) and unused entries are
 * skipped like parameters PyTorch sees no gradient for: neither they nor their state change.
 * Element-wise only, so results do not depend on the thread count.
 *
 * Not here: the schedules (schedule.c), the plain one-buffer SGD kernel (sgd.c).
 */
#include "ops/check.h"
#include "ptl/core.h"
#include "ptl/model.h"
#include "ptl/train.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* x86-64 without -mfma calls libm's fmaf per element (2-3x slower); a clone built for FMA
 * hardware, picked at load time, inlines it. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif
#endif
#ifndef FMA_CLONES
#define FMA_CLONES
#endif

/* A contiguous range of parameters stepped with one group's learning rate. */
struct run {
    size_t offset, count;
    enum ptl_role role;
};

enum { MAX_STATES = 3 };

struct ptl_optimizer {
    struct ptl_model *model;
    struct ptl_optim_config c;
    struct run *runs;
    int n_runs;
    size_t total; /* elements over all runs */
    float *state[MAX_STATES];
    const char *state_name[MAX_STATES];
    int n_states;
    long steps;
};

/* Per-group constants of one step, already rounded to float like PyTorch's scalar arguments. */
struct coef {
    float wd;                                          /* weight decay */
    float mom, damp1, alpha;                           /* SGD: momentum, 1 - dampening, -lr */
    float b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step; /* Adam */
    int has_wd, first, nesterov;
};

static int check_config(const struct ptl_optim_config *c)
{
    PTL_CHECK(c->kind == PTL_OPTIM_SGD || c->kind == PTL_OPTIM_ADAM, "optimizer: unknown kind %d",
              (int)c->kind);
    PTL_CHECK(isfinite(c->lr) && c->lr >= 0, "optimizer: learning rate %g must be >= 0", c->lr);
    PTL_CHECK(isfinite(c->weight_decay) && c->weight_decay >= 0,
              "optimizer: weight decay %g must be >= 0", c->weight_decay);
    for (int r = 0; r < PTL_ROLE_COUNT; r++)
        PTL_CHECK(isfinite(c->lr_scale[r]) && c->lr_scale[r] >= 0,
                  "optimizer: lr_scale[%d] = %g must be >= 0", r, c->lr_scale[r]);
    if (c->kind == PTL_OPTIM_SGD) {
        PTL_CHECK(c->momentum >= 0 && c->momentum < 1, "optimizer: momentum %g outside [0, 1)",
                  c->momentum);
        PTL_CHECK(c->dampening >= 0 && c->dampening <= 1, "optimizer: dampening %g outside [0, 1]",
                  c->dampening);
        PTL_CHECK(!c->nesterov || (c->momentum > 0 && c->dampening == 0),
                  "optimizer: Nesterov momentum needs momentum > 0 and dampening 0");
    } else {
        PTL_CHECK(c->beta1 >= 0 && c->beta1 < 1, "optimizer: beta1 %g outside [0, 1)", c->beta1);
        PTL_CHECK(c->beta2 >= 0 && c->beta2 < 1, "optimizer: beta2 %g outside [0, 1)", c->beta2);
        PTL_CHECK(isfinite(c->eps) && c->eps >= 0, "optimizer: eps %g must be >= 0", c->eps);
    }
    return 0;
}

/* The used PARAM entries of roles that train, merged into runs of adjacent same-role entries. */
static int build_runs(struct ptl_optimizer *o)
{
    size_t n = ptl_model_entry_count(o->model);
    o->runs = calloc(n > 0 ? n : 1, sizeof *o->runs);
    if (o->runs == NULL)
        return ptl_error(PTL_ENOMEM, "optimizer: out of memory for %zu entries", n);
    for (size_t i = 0; i < n; i++) {
        const struct ptl_entry *e = ptl_model_entry(o->model, i);
        if (e->kind != PTL_ENTRY_PARAM || !e->used || e->count == 0 || o->c.lr_scale[e->role] == 0)
            continue;
        struct run *last = o->n_runs > 0 ? &o->runs[o->n_runs - 1] : NULL;
        if (last != NULL && last->role == e->role && last->offset + last->count == e->offset) {
            last->count += e->count;
        } else {
            o->runs[o->n_runs++] = (struct run){e->offset, e->count, e->role};
        }
        o->total += e->count;
    }
    return 0;
}

int ptl_optimizer_create(struct ptl_optimizer **out, struct ptl_model *m,
                         const struct ptl_optim_config *c)
{
    PTL_CHECK_PTR("optimizer", out);
    *out = NULL;
    PTL_CHECK_PTR("optimizer", m);
    PTL_CHECK_PTR("optimizer", c);
    int rc = check_config(c);
    if (rc < 0)
        return rc;
    struct ptl_optimizer *o = calloc(1, sizeof *o);
    if (o == NULL)
        return ptl_error(PTL_ENOMEM, "optimizer: out of memory");
    o->model = m;
    o->c = *c;
    if (c->kind == PTL_OPTIM_SGD) {
        if (c->momentum != 0) /* PyTorch keeps no buffer without momentum */
            o->state_name[o->n_states++] = "momentum_buffer";
    } else {
        o->state_name[o->n_states++] = "exp_avg";
        o->state_name[o->n_states++] = "exp_avg_sq";
        if (c->amsgrad)
            o->state_name[o->n_states++] = "max_exp_avg_sq";
    }
    size_t n = ptl_model_param_floats(m);
    for (int s = 0; s < o->n_states; s++) {
        o->state[s] = calloc(n > 0 ? n : 1, sizeof(float));
        if (o->state[s] == NULL) {
            ptl_optimizer_free(o);
            return ptl_error(PTL_ENOMEM, "optimizer: out of memory for %zu state floats", n);
        }
    }
    rc = build_runs(o);
    if (rc < 0) {
        ptl_optimizer_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

void ptl_optimizer_free(struct ptl_optimizer *o)
{
    if (o == NULL)
        return;
    for (int s = 0; s < MAX_STATES; s++)
        free(o->state[s]);
    free(o->runs);
    free(o);
}

/* Constants of role r's group for this step (o->steps already counts it). */
static struct coef group_coef(const struct ptl_optimizer *o, float lr, enum ptl_role r)
{
    const struct ptl_optim_config *c = &o->c;
    const double glr = (double)lr * (double)c->lr_scale[r]; /* the group's lr, as in Python */
    struct coef k = {.wd = c->weight_decay, .has_wd = c->weight_decay != 0};
    if (c->kind == PTL_OPTIM_SGD) {
        k.mom = c->momentum;
        k.damp1 = (float)(1.0 - (double)c->dampening);
        k.alpha = (float)-glr;
        k.first = o->steps == 1;
        k.nesterov = c->nesterov;
    } else {
        const double step = (double)o->steps;
        const double bc1 = 1.0 - pow((double)c->beta1, step);
        const double bc2 = 1.0 - pow((double)c->beta2, step);
        k.b1 = c->beta1;
        k.omb1 = (float)(1.0 - (double)c->beta1);
        k.b2 = c->beta2;
        k.omb2 = (float)(1.0 - (double)c->beta2);
        k.bc2_sqrt = (float)sqrt(bc2);
        k.eps = c->eps;
        k.neg_step = (float)-(glr / bc1);
    }
    return k;
}

/* torch.optim.SGD on elements [i0, i1): buf is NULL without momentum. */
FMA_CLONES static void sgd_range(float *restrict p, const float *restrict g, float *restrict buf,
                                 size_t i0, size_t i1, const struct coef *k)
{
    for (size_t i = i0; i < i1; i++) {
        float d = g[i];
        if (k->has_wd)
            d = fmaf(p[i], k->wd, d); /* grad.add(param, alpha=wd) */
        if (buf != NULL) {
            float b = k->first ? d : fmaf(d, k->damp1, buf[i] * k->mom);
            buf[i] = b;
            d = k->nesterov ? fmaf(b, k->mom, d) : b;
        }
        p[i] = fmaf(d, k->alpha, p[i]); /* param.add_(d_p, alpha=-lr) */
    }
}

/* torch.optim.Adam on elements [i0, i1): vmax is NULL without AMSGrad. */
FMA_CLONES static void adam_range(float *restrict p, const float *restrict g, float *restrict m,
                                  float *restrict v, float *restrict vmax, size_t i0, size_t i1,
                                  const struct coef *k)
{
    for (size_t i = i0; i < i1; i++) {
        float gi = g[i];
        if (k->has_wd)
            gi = fmaf(p[i], k->wd, gi);
        float mi = fmaf(gi, k->omb1, m[i] * k->b1);      /* mul_(b1).add_(g, 1 - b1) */
        float vi = fmaf(k->omb2 * gi, gi, v[i] * k->b2); /* mul_(b2).addcmul_(g, g, 1 - b2) */
        m[i] = mi;
        v[i] = vi;
        if (vmax != NULL) {
            vi = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vi;
        }
        float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
        p[i] = p[i] + (k->neg_step * mi) / denom; /* addcdiv_(m, denom, -step) */
    }
}

int ptl_optimizer_step(struct ptl_optimizer *o, float lr)
{
    PTL_CHECK_PTR("optimizer step", o);
    PTL_CHECK(isfinite(lr) && lr >= 0, "optimizer step: learning rate %g must be >= 0", lr);
    float *p = ptl_model_params(o->model);
    const float *g = ptl_model_grads(o->model);
    PTL_CHECK(o->total == 0 || (p != NULL && g != NULL),
              "optimizer step: the model has no parameter buffers");
    o->steps++;
    struct coef k[PTL_ROLE_COUNT];
    for (int r = 0; r < PTL_ROLE_COUNT; r++)
        k[r] = group_coef(o, lr, (enum ptl_role)r);
    const int sgd = o->c.kind == PTL_OPTIM_SGD;
    float *s0 = o->state[0], *s1 = o->state[1], *s2 = o->state[2];
    const struct run *runs = o->runs;
    const int n_runs = o->n_runs;
    /* One parallel region for all runs; each thread takes one contiguous slice of every run. */
#pragma omp parallel if (o->total >= PTL_OMP_MIN_ELEMENTS)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        for (int r = 0; r < n_runs; r++) {
            const size_t len = runs[r].count;
            const size_t a = runs[r].offset + len * t / nt, b = runs[r].offset + len * (t + 1) / nt;
            const struct coef *kr = &k[runs[r].role];
            if (sgd)
                sgd_range(p, g, s0, a, b, kr);
            else
                adam_range(p, g, s0, s1, s2, a, b, kr);
        }
    }
    return 0;
}

long ptl_optimizer_steps(const struct ptl_optimizer *o)
{
    return o != NULL ? o->steps : 0;
}

void ptl_optimizer_set_steps(struct ptl_optimizer *o, long steps)
{
    if (o != NULL && steps >= 0)
        o->steps = steps;
}

int ptl_optimizer_state_count(const struct ptl_optimizer *o)
{
    return o != NULL ? o->n_states : 0;
}

float *ptl_optimizer_state(struct ptl_optimizer *o, int i, const char **name)
{
    if (o == NULL || i < 0 || i >= o->n_states) {
        if (name != NULL)
            *name = NULL;
        return NULL;
    }
    if (name != NULL)
        *name = o->state_name[i];
    return o->state[i];
}
