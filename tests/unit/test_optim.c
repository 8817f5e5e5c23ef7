/* Optimizers and learning-rate schedules (src/train/optim.c, src/train/schedule.c).
 *
 * Without PyTorch: SGD / Adam / AMSGrad against the update rules written out in double over a
 * real model's entries (per-role lr scales, frozen roles, unused entries), the frozen and
 * unused parameters and their state bit-unchanged, the step counter and a resume from saved
 * state, state names, invalid configurations, identical bits with 1 and 2 threads, and the
 * schedules' closed forms.
 *
 * Against PyTorch (tests/reference/optim.sh runs these with the environment set):
 * - optim_ref.layout (PTL_OPTIM_LAYOUT=FILE): writes the parameter layout of the reference
 *   model ("n_params N", then one line per PARAM entry: name offset count role used) for
 *   tests/reference/make_optim_fixtures.py;
 * - optim_ref.torch (PTL_OPTIM_FIXTURES=FILE.h5): replays every optimizer case of the fixture
 *   (initial params, per-step grads and lr) and compares the params and every state buffer
 *   with torch.optim's, and every schedule case with torch.optim.lr_scheduler's values.
 * Tolerance of the torch comparison, per element: |ptl - torch| <= 1e-6 * (|torch| + rms),
 * with rms the root mean square of the expected tensor: 1e-6 relative, except for values far
 * below the tensor's typical size (cancellation in a moment buffer), where 1e-6 of that size
 * bounds the absolute error. The number of elements that are not bit-identical is printed.
 */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "models/graph.h"
#include "ptl/ptl.h"

/* The reference model: every role present, ~930k parameters (parallel loops engage). */
static const char *const REF_ARCH = "ptl-resnet18-narrow";

static struct ptl_model *ref_model(void)
{
    struct ptl_model *m = NULL;
    struct ptl_model_config cfg = {.classes = 3, .in_c = 3, .in_h = 32, .in_w = 32, .seed = 7};
    cr_assert_eq(ptl_model_create(&m, REF_ARCH, &cfg), 0, "%s", ptl_error_message());
    return m;
}

/* Seeded params, and grads for step t (t = 0, 1, ...), each in [-1, 1). */
static void fill_params(struct ptl_model *m)
{
    tc_fill(ptl_model_params(m), ptl_model_param_floats(m), 11, -1, 1);
}
static void fill_grads(struct ptl_model *m, long t)
{
    tc_fill(ptl_model_grads(m), ptl_model_param_floats(m), 100 + (uint64_t)t, -1, 1);
}

static struct ptl_optim_config sgd_cfg(void)
{
    return (struct ptl_optim_config){.kind = PTL_OPTIM_SGD,
                                     .lr = 0.1f,
                                     .momentum = 0.9f,
                                     .weight_decay = 5e-4f,
                                     .lr_scale = {1, 1, 1}};
}
static struct ptl_optim_config adam_cfg(void)
{
    return (struct ptl_optim_config){.kind = PTL_OPTIM_ADAM,
                                     .lr = 1e-3f,
                                     .beta1 = 0.9f,
                                     .beta2 = 0.999f,
                                     .eps = 1e-8f,
                                     .lr_scale = {1, 1, 1}};
}

static struct ptl_optimizer *make_optim(struct ptl_model *m, const struct ptl_optim_config *c)
{
    struct ptl_optimizer *o = NULL;
    cr_assert_eq(ptl_optimizer_create(&o, m, c), 0, "%s", ptl_error_message());
    cr_assert_not_null(o);
    return o;
}

/* ---- double-precision reference of torch.optim (sgd.py / adam.py, single-tensor path) ---- */

struct ref_state {
    double *p, *buf, *m, *v, *vmax;
};

static void ref_step(struct ptl_model *mod, const struct ptl_optim_config *c, struct ref_state *s,
                     long step /* 1-based */, float lr)
{
    const float *grads = ptl_model_grads(mod);
    for (size_t e = 0; e < ptl_model_entry_count(mod); e++) {
        const struct ptl_entry *en = ptl_model_entry(mod, e);
        double scale = c->lr_scale[en->role];
        if (en->kind != PTL_ENTRY_PARAM || !en->used || scale == 0)
            continue;
        double glr = (double)lr * scale;
        for (size_t i = en->offset; i < en->offset + en->count; i++) {
            double g = grads[i] + (double)c->weight_decay * s->p[i];
            if (c->kind == PTL_OPTIM_SGD) {
                if (c->momentum != 0) {
                    s->buf[i] = step == 1 ? g : c->momentum * s->buf[i] + (1.0 - c->dampening) * g;
                    g = c->nesterov ? g + c->momentum * s->buf[i] : s->buf[i];
                }
                s->p[i] -= glr * g;
            } else {
                s->m[i] = c->beta1 * s->m[i] + (1.0 - c->beta1) * g;
                s->v[i] = c->beta2 * s->v[i] + (1.0 - c->beta2) * g * g;
                double v = s->v[i];
                if (c->amsgrad)
                    v = s->vmax[i] = fmax(s->vmax[i], v);
                double bc1 = 1 - pow(c->beta1, (double)step), bc2 = 1 - pow(c->beta2, (double)step);
                s->p[i] -= glr / bc1 * s->m[i] / (sqrt(v) / sqrt(bc2) + c->eps);
            }
        }
    }
}

/* max |a - b| / (|b| + rms(b)) over n elements. */
static double mixed_err(const float *a, const double *b, size_t n)
{
    double ss = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        ss += b[i] * b[i];
    double rms = sqrt(ss / (double)(n > 0 ? n : 1));
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (fabs(b[i]) + rms + 1e-30);
        if (!(e <= worst)) /* NaN counts as worst */
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static const float LRS[] = {1.0f, 1.0f, 0.5f, 0.5f, 0.2f}; /* times the config's lr */
#define STEPS ((long)(sizeof LRS / sizeof LRS[0]))

static void against_reference(struct ptl_optim_config c)
{
    struct ptl_model *m = ref_model();
    fill_params(m);
    size_t n = ptl_model_param_floats(m);
    struct ref_state s = {.p = calloc(n, sizeof(double)),
                          .buf = calloc(n, sizeof(double)),
                          .m = calloc(n, sizeof(double)),
                          .v = calloc(n, sizeof(double)),
                          .vmax = calloc(n, sizeof(double))};
    cr_assert(s.p && s.buf && s.m && s.v && s.vmax);
    for (size_t i = 0; i < n; i++)
        s.p[i] = ptl_model_params(m)[i];
    struct ptl_optimizer *o = make_optim(m, &c);
    for (long t = 0; t < STEPS; t++) {
        fill_grads(m, t);
        float lr = c.lr * LRS[t];
        cr_assert_eq(ptl_optimizer_step(o, lr), 0, "%s", ptl_error_message());
        ref_step(m, &c, &s, t + 1, lr);
    }
    cr_expect_eq(ptl_optimizer_steps(o), STEPS);
    double e = mixed_err(ptl_model_params(m), s.p, n);
    cr_expect(e <= 1e-6, "params differ from the double reference: %.3g", e);
    for (int i = 0; i < ptl_optimizer_state_count(o); i++) {
        const char *name;
        const float *st = ptl_optimizer_state(o, i, &name);
        const double *ref = strcmp(name, "momentum_buffer") == 0 ? s.buf
                            : strcmp(name, "exp_avg") == 0       ? s.m
                            : strcmp(name, "exp_avg_sq") == 0    ? s.v
                                                                 : s.vmax;
        e = mixed_err(st, ref, n);
        cr_expect(e <= 1e-5, "state %s differs from the double reference: %.3g", name, e);
    }
    ptl_optimizer_free(o);
    ptl_model_free(m);
    free(s.p);
    free(s.buf);
    free(s.m);
    free(s.v);
    free(s.vmax);
}

Test(optim, sgd_plain)
{
    struct ptl_optim_config c = sgd_cfg();
    c.momentum = 0;
    c.weight_decay = 0;
    against_reference(c);
}
Test(optim, sgd_momentum_decay_scales)
{
    struct ptl_optim_config c = sgd_cfg();
    c.lr_scale[PTL_ROLE_BACKBONE] = 0.1f;
    c.lr_scale[PTL_ROLE_HEAD] = 2;
    against_reference(c);
}
Test(optim, sgd_dampening)
{
    struct ptl_optim_config c = sgd_cfg();
    c.dampening = 0.3f;
    against_reference(c);
}
Test(optim, sgd_nesterov_frozen_backbone)
{
    struct ptl_optim_config c = sgd_cfg();
    c.nesterov = 1;
    c.lr_scale[PTL_ROLE_BACKBONE] = 0;
    against_reference(c);
}
Test(optim, adam)
{
    against_reference(adam_cfg());
}
Test(optim, adam_decay_scales)
{
    struct ptl_optim_config c = adam_cfg();
    c.weight_decay = 1e-2f;
    c.beta1 = 0.8f;
    c.beta2 = 0.99f;
    c.lr_scale[PTL_ROLE_BACKBONE] = 0.1f;
    against_reference(c);
}
Test(optim, amsgrad_frozen_head)
{
    struct ptl_optim_config c = adam_cfg();
    c.amsgrad = 1;
    c.weight_decay = 5e-4f;
    c.lr_scale[PTL_ROLE_HEAD] = 0;
    against_reference(c);
}

/* Copies of the params and every state, to compare bit for bit. */
struct snapshot {
    float *p, *s[3];
    int ns;
};
static struct snapshot take(struct ptl_model *m, struct ptl_optimizer *o)
{
    size_t n = ptl_model_param_floats(m);
    struct snapshot s = {.p = tc_alloc(n), .ns = ptl_optimizer_state_count(o)};
    memcpy(s.p, ptl_model_params(m), n * sizeof(float));
    for (int i = 0; i < s.ns; i++) {
        s.s[i] = tc_alloc(n);
        memcpy(s.s[i], ptl_optimizer_state(o, i, NULL), n * sizeof(float));
    }
    return s;
}
static void drop(struct snapshot *s)
{
    free(s->p);
    for (int i = 0; i < s->ns; i++)
        free(s->s[i]);
}

/* Entries of a role (or unused ones) keep params and zero state; the others all move. */
static void check_untouched(struct ptl_model *m, struct ptl_optimizer *o, const float *p0,
                            int (*frozen)(const struct ptl_entry *))
{
    size_t n_frozen = 0, n_moved = 0;
    for (size_t e = 0; e < ptl_model_entry_count(m); e++) {
        const struct ptl_entry *en = ptl_model_entry(m, e);
        if (en->kind != PTL_ENTRY_PARAM)
            continue;
        const float *p = ptl_model_params(m) + en->offset;
        int same = memcmp(p, p0 + en->offset, en->count * sizeof(float)) == 0;
        if (frozen(en)) {
            n_frozen++;
            cr_expect(same, "%s changed", en->name);
            for (int i = 0; i < ptl_optimizer_state_count(o); i++) {
                const char *name;
                const float *st = ptl_optimizer_state(o, i, &name) + en->offset;
                for (size_t j = 0; j < en->count; j++)
                    cr_expect(st[j] == 0, "%s: %s[%zu] = %g", en->name, name, j, st[j]);
            }
        } else {
            n_moved += !same;
            cr_expect(!same, "%s did not change", en->name);
        }
    }
    cr_expect(n_frozen > 0 && n_moved > 0, "%zu frozen, %zu moved entries", n_frozen, n_moved);
}

static int backbone(const struct ptl_entry *e)
{
    return e->role == PTL_ROLE_BACKBONE;
}
static int unused(const struct ptl_entry *e)
{
    return !e->used;
}

static void run_steps(struct ptl_model *m, struct ptl_optimizer *o, float lr, long from, long to)
{
    for (long t = from; t < to; t++) {
        fill_grads(m, t);
        cr_assert_eq(ptl_optimizer_step(o, lr), 0, "%s", ptl_error_message());
    }
}

Test(optim, frozen_role_unchanged)
{
    struct ptl_model *m = ref_model();
    fill_params(m);
    float *p0 = tc_alloc(ptl_model_param_floats(m));
    memcpy(p0, ptl_model_params(m), ptl_model_param_floats(m) * sizeof(float));
    struct ptl_optim_config cs[] = {sgd_cfg(), adam_cfg()};
    cs[1].amsgrad = 1;
    cs[1].weight_decay = 1e-3f;
    for (int k = 0; k < 2; k++) {
        memcpy(ptl_model_params(m), p0, ptl_model_param_floats(m) * sizeof(float));
        cs[k].lr_scale[PTL_ROLE_BACKBONE] = 0;
        struct ptl_optimizer *o = make_optim(m, &cs[k]);
        run_steps(m, o, cs[k].lr, 0, 3);
        check_untouched(m, o, p0, backbone);
        ptl_optimizer_free(o);
    }
    free(p0);
    ptl_model_free(m);
}

Test(optim, unused_entries_unchanged)
{
    struct ptl_model *m = ref_model();
    /* mark every third parameter entry unused, as MGN's unread backbone layers are */
    int marked = 0;
    for (size_t e = 0; e < m->n_entries; e++)
        if (m->entries[e].kind == PTL_ENTRY_PARAM && e % 3 == 0) {
            m->entries[e].used = 0;
            marked++;
        }
    cr_assert(marked > 0);
    fill_params(m);
    float *p0 = tc_alloc(ptl_model_param_floats(m));
    memcpy(p0, ptl_model_params(m), ptl_model_param_floats(m) * sizeof(float));
    struct ptl_optim_config c = adam_cfg();
    c.weight_decay = 1e-2f; /* decay would move them even with a zero gradient */
    struct ptl_optimizer *o = make_optim(m, &c);
    run_steps(m, o, c.lr, 0, 2);
    check_untouched(m, o, p0, unused);
    ptl_optimizer_free(o);
    free(p0);
    ptl_model_free(m);
}

Test(optim, lr_zero_steps_state_only)
{
    /* lr 0 (a warmup's first step, say) is not frozen: the state moves, the params do not */
    struct ptl_model *m = ref_model();
    fill_params(m);
    float *p0 = tc_alloc(ptl_model_param_floats(m));
    memcpy(p0, ptl_model_params(m), ptl_model_param_floats(m) * sizeof(float));
    struct ptl_optim_config c = sgd_cfg();
    struct ptl_optimizer *o = make_optim(m, &c);
    run_steps(m, o, 0, 0, 1);
    cr_expect(memcmp(p0, ptl_model_params(m), ptl_model_param_floats(m) * sizeof(float)) == 0);
    const float *buf = ptl_optimizer_state(o, 0, NULL);
    double norm = 0;
    for (size_t i = 0; i < ptl_model_param_floats(m); i++)
        norm += fabs(buf[i]);
    cr_expect(norm > 0, "the momentum buffer did not move");
    ptl_optimizer_free(o);
    free(p0);
    ptl_model_free(m);
}

Test(optim, steps_and_resume)
{
    struct ptl_model *m = ref_model();
    struct ptl_optim_config c = adam_cfg();
    c.amsgrad = 1;
    c.lr_scale[PTL_ROLE_CELLS] = 0.5f;
    /* 5 steps straight */
    fill_params(m);
    struct ptl_optimizer *o = make_optim(m, &c);
    cr_expect_eq(ptl_optimizer_steps(o), 0);
    run_steps(m, o, c.lr, 0, 5);
    cr_expect_eq(ptl_optimizer_steps(o), 5);
    struct snapshot full = take(m, o);
    ptl_optimizer_free(o);
    /* 3 steps, then a new optimizer given the state and step count, then 2 more */
    fill_params(m);
    o = make_optim(m, &c);
    run_steps(m, o, c.lr, 0, 3);
    struct snapshot mid = take(m, o);
    ptl_optimizer_free(o);
    o = make_optim(m, &c);
    size_t n = ptl_model_param_floats(m);
    for (int i = 0; i < mid.ns; i++)
        memcpy(ptl_optimizer_state(o, i, NULL), mid.s[i], n * sizeof(float));
    ptl_optimizer_set_steps(o, 3);
    cr_expect_eq(ptl_optimizer_steps(o), 3);
    run_steps(m, o, c.lr, 3, 5);
    struct snapshot resumed = take(m, o);
    cr_expect(memcmp(full.p, resumed.p, n * sizeof(float)) == 0, "resumed params differ");
    for (int i = 0; i < full.ns; i++)
        cr_expect(memcmp(full.s[i], resumed.s[i], n * sizeof(float)) == 0,
                  "resumed state %d differs", i);
    drop(&full);
    drop(&mid);
    drop(&resumed);
    ptl_optimizer_free(o);
    ptl_model_free(m);
}

Test(optim, state_names)
{
    struct ptl_model *m = ref_model();
    struct {
        struct ptl_optim_config c;
        int n;
        const char *names[3];
    } cases[] = {
        {sgd_cfg(), 1, {"momentum_buffer"}},
        {adam_cfg(), 2, {"exp_avg", "exp_avg_sq"}},
        {adam_cfg(), 3, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
        {sgd_cfg(), 0, {NULL}},
    };
    cases[2].c.amsgrad = 1;
    cases[3].c.momentum = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct ptl_optimizer *o = make_optim(m, &cases[k].c);
        cr_expect_eq(ptl_optimizer_state_count(o), cases[k].n, "case %zu", k);
        for (int i = 0; i < cases[k].n; i++) {
            const char *name = NULL;
            const float *s = ptl_optimizer_state(o, i, &name);
            cr_expect_not_null(s);
            cr_expect_str_eq(name, cases[k].names[i]);
            size_t n = ptl_model_param_floats(m), nonzero = 0;
            for (size_t j = 0; j < n; j++)
                nonzero += s[j] != 0;
            cr_expect_eq(nonzero, 0, "%s starts with %zu non-zero values", name, nonzero);
        }
        const char *name = "x";
        cr_expect_null(ptl_optimizer_state(o, cases[k].n, &name));
        cr_expect_null(name);
        cr_expect_null(ptl_optimizer_state(o, -1, NULL));
        ptl_optimizer_free(o);
    }
    ptl_optimizer_free(NULL);
    ptl_model_free(m);
}

Test(optim, invalid_configs)
{
    struct ptl_model *m = ref_model();
    struct ptl_optim_config bad[14];
    for (int i = 0; i < 7; i++)
        bad[i] = sgd_cfg();
    for (int i = 7; i < 14; i++)
        bad[i] = adam_cfg();
    bad[0].lr = -0.1f;
    bad[1].lr = NAN;
    bad[2].momentum = -0.5f;
    bad[3].nesterov = 1, bad[3].dampening = 0.1f;
    bad[4].weight_decay = -1e-4f;
    bad[5].lr_scale[PTL_ROLE_CELLS] = -1;
    bad[6].kind = (enum ptl_optim_kind)7;
    bad[7].beta1 = 1.0f;
    bad[8].beta1 = -0.1f;
    bad[9].beta2 = 1.5f;
    bad[10].beta2 = -1e-3f;
    bad[11].eps = -1e-8f;
    bad[12].lr = -1e-3f;
    bad[13].lr_scale[PTL_ROLE_HEAD] = INFINITY;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ptl_optimizer *o = (struct ptl_optimizer *)&bad; /* must be reset to NULL */
        ptl_error_clear();
        cr_expect_eq(ptl_optimizer_create(&o, m, &bad[i]), PTL_EINVAL, "case %zu accepted", i);
        cr_expect_null(o, "case %zu", i);
        cr_expect(strncmp(ptl_error_message(), "optimizer", 9) == 0, "case %zu: '%s'", i,
                  ptl_error_message());
    }
    struct ptl_optimizer *o = NULL;
    struct ptl_optim_config c = sgd_cfg();
    cr_expect_eq(ptl_optimizer_create(&o, NULL, &c), PTL_EINVAL);
    cr_expect_eq(ptl_optimizer_create(&o, m, NULL), PTL_EINVAL);
    o = make_optim(m, &c);
    cr_expect_eq(ptl_optimizer_step(o, -1.0f), PTL_EINVAL);
    cr_expect_eq(ptl_optimizer_step(o, NAN), PTL_EINVAL);
    cr_expect_eq(ptl_optimizer_step(NULL, 0.1f), PTL_EINVAL);
    cr_expect_eq(ptl_optimizer_steps(o), 0, "a refused step must not count");
    ptl_optimizer_free(o);
    ptl_model_free(m);
}

/* Same bits with 1 and 2 threads (the loops are element-wise; slices must not overlap or
 * leave gaps). */
Test(optim, threads_independent)
{
    struct ptl_model *m = ref_model();
    struct ptl_optim_config cs[] = {sgd_cfg(), adam_cfg()};
    cs[0].nesterov = 1;
    cs[0].lr_scale[PTL_ROLE_BACKBONE] = 0.1f;
    cs[1].amsgrad = 1;
    cs[1].weight_decay = 1e-3f;
    cs[1].lr_scale[PTL_ROLE_HEAD] = 0;
    int before = ptl_threads_get();
    for (int k = 0; k < 2; k++) {
        struct snapshot s[2];
        for (int threads = 1; threads <= 2; threads++) {
            cr_assert_eq(ptl_threads_set(threads), 0);
            fill_params(m);
            struct ptl_optimizer *o = make_optim(m, &cs[k]);
            run_steps(m, o, cs[k].lr, 0, 3);
            s[threads - 1] = take(m, o);
            ptl_optimizer_free(o);
        }
        size_t n = ptl_model_param_floats(m);
        cr_expect(memcmp(s[0].p, s[1].p, n * sizeof(float)) == 0, "case %d: params differ", k);
        for (int i = 0; i < s[0].ns; i++)
            cr_expect(memcmp(s[0].s[i], s[1].s[i], n * sizeof(float)) == 0,
                      "case %d: state %d differs", k, i);
        drop(&s[0]);
        drop(&s[1]);
    }
    ptl_threads_set(before);
    ptl_model_free(m);
}

/* A model whose parameters are all frozen steps nothing and still counts the step. */
Test(optim, all_frozen)
{
    struct ptl_model *m = ref_model();
    fill_params(m);
    float *p0 = tc_alloc(ptl_model_param_floats(m));
    memcpy(p0, ptl_model_params(m), ptl_model_param_floats(m) * sizeof(float));
    struct ptl_optim_config c = adam_cfg();
    c.lr_scale[0] = c.lr_scale[1] = c.lr_scale[2] = 0;
    struct ptl_optimizer *o = make_optim(m, &c);
    run_steps(m, o, c.lr, 0, 2);
    cr_expect_eq(ptl_optimizer_steps(o), 2);
    cr_expect(memcmp(p0, ptl_model_params(m), ptl_model_param_floats(m) * sizeof(float)) == 0);
    ptl_optimizer_free(o);
    free(p0);
    ptl_model_free(m);
}

/* ---- schedules ---- */

static void expect_lr(const struct ptl_schedule *s, long step, long epoch, double want)
{
    float got = ptl_schedule_lr(s, step, epoch);
    cr_expect(fabs(got - want) <= 1e-6 * fabs(want) + 1e-12, "step %ld epoch %ld: %.9g, want %.9g",
              step, epoch, got, want);
}

Test(schedule, closed_forms)
{
    struct ptl_schedule c = {.kind = PTL_SCHEDULE_CONSTANT, .base_lr = 0.1f};
    cr_expect_eq(ptl_schedule_check(&c), 0);
    expect_lr(&c, 0, 0, 0.1f);
    expect_lr(&c, 12345, 99, 0.1f);

    struct ptl_schedule ms = {.kind = PTL_SCHEDULE_MULTISTEP,
                              .base_lr = 0.1f,
                              .milestones = {3, 5, 5},
                              .n_milestones = 3,
                              .gamma = 0.1f};
    cr_expect_eq(ptl_schedule_check(&ms), 0);
    double g = 0.1f;
    expect_lr(&ms, 0, 2, 0.1f);
    expect_lr(&ms, 0, 3, 0.1f * g);
    expect_lr(&ms, 0, 4, 0.1f * g);
    expect_lr(&ms, 0, 5, 0.1f * g * g * g); /* a repeated milestone counts twice */
    expect_lr(&ms, 0, 50, 0.1f * g * g * g);

    struct ptl_schedule cs = {
        .kind = PTL_SCHEDULE_COSINE, .base_lr = 0.1f, .t_max = 4, .eta_min = 0.001f};
    cr_expect_eq(ptl_schedule_check(&cs), 0);
    double b = 0.1f, e = 0.001f;
    expect_lr(&cs, 0, 0, b);
    expect_lr(&cs, 0, 2, e + (b - e) / 2);
    expect_lr(&cs, 0, 1, e + (b - e) * (1 + sqrt(0.5)) / 2);
    expect_lr(&cs, 0, 4, e);
    expect_lr(&cs, 0, 5, e + (b - e) * (1 - sqrt(0.5)) / 2); /* past t_max: CosineAnnealingLR */

    struct ptl_schedule w = {.kind = PTL_SCHEDULE_MULTISTEP,
                             .base_lr = 0.2f,
                             .milestones = {1},
                             .n_milestones = 1,
                             .gamma = 0.5f,
                             .warmup_steps = 4,
                             .warmup_factor = 0.25f};
    cr_expect_eq(ptl_schedule_check(&w), 0);
    double wb = 0.2f;
    expect_lr(&w, 0, 0, wb * 0.25);
    expect_lr(&w, 1, 0, wb * (0.25 + 0.75 / 4));
    expect_lr(&w, 3, 0, wb * (0.25 + 0.75 * 3 / 4));
    expect_lr(&w, 3, 1, wb * 0.5 * (0.25 + 0.75 * 3 / 4)); /* warmup times the epoch's lr */
    expect_lr(&w, 4, 1, wb * 0.5);
    expect_lr(&w, 400, 7, wb * 0.5);
}

Test(schedule, invalid)
{
    struct ptl_schedule ok = {.kind = PTL_SCHEDULE_COSINE, .base_lr = 0.1f, .t_max = 10};
    cr_expect_eq(ptl_schedule_check(&ok), 0);
    struct ptl_schedule bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = ok;
    bad[0].t_max = 0;
    bad[1].base_lr = -1;
    bad[2].kind = (enum ptl_schedule_kind)9;
    bad[3].warmup_steps = -1;
    bad[4].warmup_steps = 10, bad[4].warmup_factor = 0;
    bad[5].kind = PTL_SCHEDULE_MULTISTEP, bad[5].n_milestones = 17, bad[5].gamma = 0.1f;
    bad[6].kind = PTL_SCHEDULE_MULTISTEP, bad[6].n_milestones = 1, bad[6].milestones[0] = -2;
    bad[7].eta_min = NAN;
    for (int i = 0; i < 8; i++) {
        ptl_error_clear();
        cr_expect_eq(ptl_schedule_check(&bad[i]), PTL_EINVAL, "case %d accepted", i);
        cr_expect(strncmp(ptl_error_message(), "schedule", 8) == 0, "case %d: '%s'", i,
                  ptl_error_message());
    }
    cr_expect_eq(ptl_schedule_check(NULL), PTL_EINVAL);
}

/* ---- against PyTorch (fixtures from tests/reference/make_optim_fixtures.py) ---- */

Test(optim_ref, layout)
{
    const char *path = getenv("PTL_OPTIM_LAYOUT");
    if (path == NULL || *path == '\0')
        cr_skip_test("PTL_OPTIM_LAYOUT not set (tests/reference/optim.sh sets it)");
    struct ptl_model *m = ref_model();
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fprintf(f, "arch %s\nn_params %zu\n", REF_ARCH, ptl_model_param_floats(m));
    for (size_t e = 0; e < ptl_model_entry_count(m); e++) {
        const struct ptl_entry *en = ptl_model_entry(m, e);
        if (en->kind == PTL_ENTRY_PARAM)
            fprintf(f, "%s %zu %zu %d %d\n", en->name, en->offset, en->count, (int)en->role,
                    en->used);
    }
    cr_assert_eq(fclose(f), 0, "cannot write %s", path);
    ptl_model_free(m);
}

/* Reads the n values of a float or int attribute of object loc; fails the test when it is
 * missing or has another size. */
static void attr_n(hid_t loc, const char *where, const char *name, hid_t type, void *out,
                   hssize_t n)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    cr_assert(a >= 0, "%s: no attribute %s", where, name);
    hid_t sp = H5Aget_space(a);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    herr_t rc = count == n ? H5Aread(a, type, out) : -1;
    H5Aclose(a);
    cr_assert(rc >= 0, "%s: attribute %s unreadable or not %lld values", where, name, (long long)n);
}
static void attr(hid_t loc, const char *where, const char *name, hid_t type, void *out)
{
    attr_n(loc, where, name, type, out, 1);
}
static float attr_f(hid_t loc, const char *where, const char *name)
{
    float v;
    attr(loc, where, name, H5T_NATIVE_FLOAT, &v);
    return v;
}
static int attr_i(hid_t loc, const char *where, const char *name)
{
    int v;
    attr(loc, where, name, H5T_NATIVE_INT, &v);
    return v;
}

/* Dataset `name` of loc (n values of mem_type, size bytes each) into a new buffer. */
static void *dataset(hid_t loc, const char *where, const char *name, size_t n, hid_t mem_type,
                     size_t size)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    cr_assert(d >= 0, "%s: no dataset %s", where, name);
    hid_t sp = H5Dget_space(d);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    void *buf = tc_alloc_bytes(n * size > 0 ? n * size : 1);
    int ok = count == (hssize_t)n && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    H5Dclose(d);
    cr_assert(ok, "%s/%s: %lld values, expected %zu", where, name, (long long)count, n);
    return buf;
}

struct diff {
    double worst;  /* max |a - b| / (|b| + rms(b)) */
    size_t differ; /* elements not bit-identical */
};
static struct diff compare(const float *a, const float *b, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)b[i] * b[i];
    double rms = sqrt(ss / (double)(n > 0 ? n : 1));
    struct diff d = {0, 0};
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i])
            continue;
        d.differ++;
        double e = fabs((double)a[i] - b[i]) / (fabs(b[i]) + rms + 1e-30);
        d.worst = isnan(e) || e > d.worst ? (isnan(e) ? INFINITY : e) : d.worst;
    }
    return d;
}

static void check_tensor(const char *c, const char *what, const float *got, const float *want,
                         size_t n, int *compared)
{
    struct diff d = compare(got, want, n);
    fprintf(stderr, "optim_ref: %s: %s: %zu of %zu values not bit-identical, worst %.3g\n", c, what,
            d.differ, n, d.worst);
    cr_expect(d.worst <= 1e-6, "%s: %s differs from torch: worst %.3g (> 1e-6)", c, what, d.worst);
    (*compared)++;
}

static void run_optim_case(hid_t cases, const char *name, struct ptl_model *m, const float *p0,
                           const float *g[2], int steps)
{
    hid_t g_case = H5Gopen2(cases, name, H5P_DEFAULT);
    cr_assert(g_case >= 0, "case %s unreadable", name);
    struct ptl_optim_config c = {
        .kind = (enum ptl_optim_kind)attr_i(g_case, name, "kind"),
        .weight_decay = attr_f(g_case, name, "weight_decay"),
        .momentum = attr_f(g_case, name, "momentum"),
        .dampening = attr_f(g_case, name, "dampening"),
        .nesterov = attr_i(g_case, name, "nesterov"),
        .beta1 = attr_f(g_case, name, "beta1"),
        .beta2 = attr_f(g_case, name, "beta2"),
        .eps = attr_f(g_case, name, "eps"),
        .amsgrad = attr_i(g_case, name, "amsgrad"),
    };
    attr_n(g_case, name, "lr_scale", H5T_NATIVE_FLOAT, c.lr_scale, PTL_ROLE_COUNT);
    float *lr = dataset(g_case, name, "lr", (size_t)steps, H5T_NATIVE_FLOAT, sizeof(float));
    float *gscale = dataset(g_case, name, "gscale", (size_t)steps, H5T_NATIVE_FLOAT, sizeof(float));
    c.lr = lr[0];
    size_t n = ptl_model_param_floats(m);
    memcpy(ptl_model_params(m), p0, n * sizeof(float));
    struct ptl_optimizer *o = make_optim(m, &c);
    float *grads = ptl_model_grads(m);
    for (int t = 0; t < steps; t++) {
        const float *src = g[t % 2]; /* the fixture's rule: grad_t = g[t % 2] * gscale[t] */
        for (size_t i = 0; i < n; i++)
            grads[i] = src[i] * gscale[t];
        cr_assert_eq(ptl_optimizer_step(o, lr[t]), 0, "%s: %s", name, ptl_error_message());
    }
    int compared = 0;
    float *want = dataset(g_case, name, "params", n, H5T_NATIVE_FLOAT, sizeof(float));
    check_tensor(name, "params", ptl_model_params(m), want, n, &compared);
    free(want);
    hid_t g_state = H5Gopen2(g_case, "state", H5P_DEFAULT);
    cr_assert(g_state >= 0, "%s: no state group", name);
    H5G_info_t info;
    cr_assert(H5Gget_info(g_state, &info) >= 0);
    cr_expect_eq((int)info.nlinks, ptl_optimizer_state_count(o),
                 "%s: torch keeps %d state buffers, ptl %d", name, (int)info.nlinks,
                 ptl_optimizer_state_count(o));
    for (int i = 0; i < ptl_optimizer_state_count(o); i++) {
        const char *sname;
        const float *st = ptl_optimizer_state(o, i, &sname);
        cr_expect(H5Lexists(g_state, sname, H5P_DEFAULT) > 0, "%s: torch has no state %s", name,
                  sname);
        if (H5Lexists(g_state, sname, H5P_DEFAULT) <= 0)
            continue;
        want = dataset(g_state, name, sname, n, H5T_NATIVE_FLOAT, sizeof(float));
        check_tensor(name, sname, st, want, n, &compared);
        free(want);
    }
    H5Gclose(g_state);
    cr_expect(compared >= 1 + ptl_optimizer_state_count(o));
    ptl_optimizer_free(o);
    free(lr);
    free(gscale);
    H5Gclose(g_case);
}

static void run_schedule_case(hid_t cases, const char *name)
{
    hid_t g = H5Gopen2(cases, name, H5P_DEFAULT);
    cr_assert(g >= 0, "schedule %s unreadable", name);
    struct ptl_schedule s = {
        .kind = (enum ptl_schedule_kind)attr_i(g, name, "kind"),
        .base_lr = attr_f(g, name, "base_lr"),
        .n_milestones = attr_i(g, name, "n_milestones"),
        .gamma = attr_f(g, name, "gamma"),
        .t_max = attr_i(g, name, "t_max"),
        .eta_min = attr_f(g, name, "eta_min"),
        .warmup_steps = attr_i(g, name, "warmup_steps"),
        .warmup_factor = attr_f(g, name, "warmup_factor"),
    };
    cr_assert(s.n_milestones >= 0 && s.n_milestones <= 16, "%s: n_milestones", name);
    attr_n(g, name, "milestones", H5T_NATIVE_INT, s.milestones, 16);
    cr_assert_eq(ptl_schedule_check(&s), 0, "%s: %s", name, ptl_error_message());
    int per_epoch = attr_i(g, name, "steps_per_epoch");
    int steps = attr_i(g, name, "steps");
    cr_assert(per_epoch >= 1 && steps >= 1, "%s: steps", name);
    double *want = dataset(g, name, "lr", (size_t)steps, H5T_NATIVE_DOUBLE, sizeof(double));
    double worst = 0;
    for (int t = 0; t < steps; t++) {
        double got = ptl_schedule_lr(&s, t, t / per_epoch);
        double e = fabs(got - want[t]) / (fabs(want[t]) + 1e-9 * s.base_lr);
        worst = e > worst ? e : worst;
        cr_expect(e <= 1e-6, "%s: step %d (epoch %d): ptl %.9g, torch %.9g", name, t, t / per_epoch,
                  got, want[t]);
    }
    fprintf(stderr, "optim_ref: schedule %s: %d steps, worst relative error %.3g\n", name, steps,
            worst);
    free(want);
    H5Gclose(g);
}

/* Names of the groups under loc, in creation-independent (name) order. */
static int for_each_group(hid_t loc, const char *group, void (*fn)(hid_t, const char *, void *),
                          void *ctx)
{
    hid_t g = H5Gopen2(loc, group, H5P_DEFAULT);
    cr_assert(g >= 0, "no group %s in the fixture", group);
    H5G_info_t info;
    cr_assert(H5Gget_info(g, &info) >= 0);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[128];
        cr_assert(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                     H5P_DEFAULT) > 0);
        fn(g, name, ctx);
    }
    H5Gclose(g);
    return (int)info.nlinks;
}

struct optim_ctx {
    struct ptl_model *m;
    const float *p0;
    const float *g[2];
    int steps;
};
static void optim_case_cb(hid_t g, const char *name, void *ctx)
{
    struct optim_ctx *c = ctx;
    run_optim_case(g, name, c->m, c->p0, c->g, c->steps);
}
static void schedule_case_cb(hid_t g, const char *name, void *ctx)
{
    (void)ctx;
    run_schedule_case(g, name);
}

Test(optim_ref, torch, .timeout = 600)
{
    const char *path = getenv("PTL_OPTIM_FIXTURES");
    if (path == NULL || *path == '\0')
        cr_skip_test("PTL_OPTIM_FIXTURES not set (tests/reference/optim.sh sets it)");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    struct ptl_model *m = ref_model();
    size_t n = ptl_model_param_floats(m);
    cr_assert_eq((size_t)attr_i(f, path, "n_params"), n, "%s: written for another layout", path);
    struct optim_ctx ctx = {.m = m, .steps = attr_i(f, path, "steps")};
    cr_assert(ctx.steps >= 1);
    float *p0 = dataset(f, path, "p0", n, H5T_NATIVE_FLOAT, sizeof(float));
    float *g0 = dataset(f, path, "g0", n, H5T_NATIVE_FLOAT, sizeof(float));
    float *g1 = dataset(f, path, "g1", n, H5T_NATIVE_FLOAT, sizeof(float));
    ctx.p0 = p0;
    ctx.g[0] = g0;
    ctx.g[1] = g1;
    int n_optim = for_each_group(f, "optim", optim_case_cb, &ctx);
    int n_sched = for_each_group(f, "schedule", schedule_case_cb, NULL);
    cr_expect(n_optim >= 10 && n_sched >= 4, "%d optimizer and %d schedule cases", n_optim,
              n_sched);
    fprintf(stderr, "optim_ref: %d optimizer cases, %d schedules compared with torch\n", n_optim,
            n_sched);
    free(p0);
    free(g0);
    free(g1);
    ptl_model_free(m);
    H5Fclose(f);
}
