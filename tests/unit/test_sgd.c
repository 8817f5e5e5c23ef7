/* SGD against torch.optim.SGD's update rule, written out step by step in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/train.h"

/* Reference: torch/optim/sgd.py (_single_tensor_sgd), in double. */
static void reference(double *p, const double *g, double *buf, int n, const struct ptl_sgd *o,
                      long step)
{
    for (int i = 0; i < n; i++) {
        double d = g[i] + o->weight_decay * p[i];
        if (o->momentum != 0) {
            buf[i] = step == 0 ? d : o->momentum * buf[i] + (1 - o->dampening) * d;
            d = o->nesterov ? d + o->momentum * buf[i] : buf[i];
        }
        p[i] -= o->lr * d;
    }
}

static void run(const struct ptl_sgd *o)
{
    enum { N = 1000, STEPS = 5 };
    float p[N], g[N], buf[N];
    double pr[N], gr[N], br[N];
    tc_fill(p, N, 1, -1, 1);
    for (int i = 0; i < N; i++)
        pr[i] = p[i];
    for (long s = 0; s < STEPS; s++) {
        tc_fill(g, N, 100 + (uint64_t)s, -2, 2);
        for (int i = 0; i < N; i++)
            gr[i] = g[i];
        cr_assert_eq(ptl_sgd_step(p, g, buf, N, o, s), 0, "%s", ptl_error_message());
        reference(pr, gr, br, N, o, s);
    }
    for (int i = 0; i < N; i++)
        cr_assert(fabs(p[i] - pr[i]) <= 1e-6 * (1 + fabs(pr[i])), "param %d: %.9g vs %.9g", i,
                  p[i], pr[i]);
}

Test(sgd, plain)
{
    run(&(struct ptl_sgd){.lr = 0.1f});
}
Test(sgd, momentum_and_weight_decay)
{
    run(&(struct ptl_sgd){.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f});
}
Test(sgd, dampening)
{
    run(&(struct ptl_sgd){.lr = 0.05f, .momentum = 0.9f, .dampening = 0.3f});
}
Test(sgd, nesterov)
{
    run(&(struct ptl_sgd){.lr = 0.02f, .momentum = 0.8f, .weight_decay = 1e-3f, .nesterov = 1});
}

Test(sgd, first_step_copies_the_gradient_into_the_buffer)
{
    float p[2] = {1, 2}, g[2] = {0.5f, -1}, buf[2] = {99, 99};
    struct ptl_sgd o = {.lr = 1, .momentum = 0.9f, .dampening = 0.5f};
    cr_assert_eq(ptl_sgd_step(p, g, buf, 2, &o, 0), 0);
    cr_assert_float_eq(buf[0], 0.5f, 1e-7); /* no dampening on the first step, as PyTorch */
    cr_assert_float_eq(p[1], 3.0f, 1e-6);
}

Test(sgd, bad_settings_are_errors)
{
    float p[1] = {0}, g[1] = {0}, buf[1];
    struct ptl_sgd o = {.lr = -1};
    cr_assert_eq(ptl_sgd_step(p, g, buf, 1, &o, 0), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "learning rate") != NULL);
    o = (struct ptl_sgd){.lr = 0.1f, .momentum = 1.5f};
    cr_assert_eq(ptl_sgd_step(p, g, buf, 1, &o, 0), PTL_EINVAL);
    o = (struct ptl_sgd){.lr = 0.1f, .nesterov = 1};
    cr_assert_eq(ptl_sgd_step(p, g, buf, 1, &o, 0), PTL_EINVAL);
    o = (struct ptl_sgd){.lr = 0.1f, .momentum = 0.9f};
    cr_assert_eq(ptl_sgd_step(p, g, NULL, 1, &o, 0), PTL_EINVAL);
    cr_assert_eq(ptl_sgd_step(NULL, g, buf, 1, &o, 0), PTL_EINVAL);
}
