/* BConv-Cell v1/v2 (src/models/cell.c) on tiny graphs input -> cell -> output: forward values
 * against a naive recomputation, finite-difference gradients, latent state carry, detachment,
 * reset, eval modes, smaller/larger batches and the ptl_model_state_* API. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "models/cell.h"
#include "models/graph.h"
#include "ptl/core.h"
#include "ptl/model.h"

struct geom {
    int version, c_in, h, w, c_out, k, stride, pad, history, eval_global;
};

static int out_side(int n, const struct geom *g)
{
    return (n + 2 * g->pad - g->k) / g->stride + 1;
}
static size_t c_floats(const struct geom *g)
{
    return (size_t)g->c_out * out_side(g->h, g) * out_side(g->w, g);
}
static size_t x_floats(const struct geom *g)
{
    return (size_t)g->c_in * g->h * g->w;
}
static int hist(const struct geom *g)
{
    return g->version == 2 ? g->history : 0;
}

static struct ptl_model *tiny(const struct geom *g)
{
    struct ptl_model *m = malloc(sizeof *m);
    cr_assert_not_null(m);
    struct ptl_model_config cfg = {.classes = 1, .in_c = g->c_in, .in_h = g->h, .in_w = g->w,
                                   .seed = 42, .eval_state_global = g->eval_global,
                                   .cell_history = g->history};
    graph_init(m, "cell-test", &cfg);
    int x = graph_input(m, g->c_in, g->h, g->w);
    m->role = PTL_ROLE_CELLS;
    int y = graph_bconv_cell(m, "cell", x, g->c_out, g->k, g->stride, g->pad, g->version);
    graph_output(m, "features", y);
    cr_assert_eq(graph_finish(m), 0, "%s", ptl_error_message());
    /* weights large enough that the gates are far from 0.5 and the cell is not linear */
    tc_fill(ptl_model_params(m), ptl_model_param_floats(m), 7, -0.6f, 0.6f);
    return m;
}

static double sig(double a)
{
    return 1.0 / (1.0 + exp(-a));
}

/* Naive cell: gate input xin (n, ct, H, W) (the concat for v2), c_prev (n, C_out, H'W');
 * writes y and c_new (n, C_out, H'W'). */
static void naive(float *y, float *c_new, const float *xin, const float *wt, const float *c_prev,
                  int n, const struct geom *g)
{
    int ct = g->c_in * (1 + hist(g)), ho = out_side(g->h, g), wo = out_side(g->w, g);
    size_t blk = c_floats(g);
    for (int b = 0; b < n; b++)
        for (int oc = 0; oc < g->c_out; oc++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double a[4] = {0, 0, 0, 0};
                    for (int q = 0; q < 4; q++) {
                        int o4 = q * g->c_out + oc;
                        for (int ic = 0; ic < ct; ic++)
                            for (int ky = 0; ky < g->k; ky++)
                                for (int kx = 0; kx < g->k; kx++) {
                                    int iy = oy * g->stride - g->pad + ky;
                                    int ix = ox * g->stride - g->pad + kx;
                                    if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                        continue;
                                    a[q] += (double)wt[((o4 * ct + ic) * g->k + ky) * g->k + kx] *
                                            xin[(((size_t)b * ct + ic) * g->h + iy) * g->w + ix];
                                }
                    }
                    size_t at = (size_t)b * blk + ((size_t)oc * ho + oy) * wo + ox;
                    double c = sig(a[1]) * c_prev[at] + sig(a[0]) * tanh(a[3]);
                    c_new[at] = (float)c;
                    y[at] = (float)(sig(a[2]) * tanh(c));
                }
}

/* concat(x (n, C_in, HW), hist (n, M*C_in, HW)) -> (n, (1+M) C_in, HW) */
static float *concat_hist(const float *x, const float *h, int n, const struct geom *g)
{
    size_t xf = x_floats(g), hf = (size_t)hist(g) * xf;
    float *out = tc_alloc((size_t)n * (xf + hf));
    for (int b = 0; b < n; b++) {
        memcpy(out + b * (xf + hf), x + b * xf, xf * sizeof(float));
        if (hf)
            memcpy(out + b * (xf + hf) + xf, h + b * hf, hf * sizeof(float));
    }
    return out;
}

static void set_state(struct ptl_model *m, int i, const float *v, int slots)
{
    size_t per;
    cr_assert_eq(ptl_model_state_info(m, i, NULL, 0, &per), 0);
    float *d = ptl_model_state_data(m, i, slots);
    cr_assert_not_null(d, "%s", ptl_error_message());
    memcpy(d, v, (size_t)slots * per * sizeof(float));
}

static void expect_close(const char *what, const float *a, const float *b, size_t n, double tol)
{
    double e = tc_rel_err(a, b, n, 1e-3);
    cr_expect(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
}

/* Checks one training forward of n samples against the naive cell, from states set to random
 * values; then the new C and (v2) the shifted history. */
static void check_forward(const struct geom *g, int n)
{
    struct ptl_model *m = tiny(g);
    size_t cf = c_floats(g), xf = x_floats(g), hf = (size_t)hist(g) * xf;
    float *x = tc_alloc(n * xf), *c0 = tc_alloc(n * cf), *h0 = tc_alloc(n * hf + 1);
    tc_fill(x, n * xf, 1, -1, 1);
    tc_fill(c0, n * cf, 2, -1, 1);
    tc_fill(h0, n * hf, 3, -1, 1);
    set_state(m, 0, c0, n);
    if (hf)
        set_state(m, 1, h0, n);
    cr_assert_eq(ptl_model_forward(m, x, n, 1), 0, "%s", ptl_error_message());
    float *xin = concat_hist(x, h0, n, g), *y = tc_alloc(n * cf), *c1 = tc_alloc(n * cf);
    naive(y, c1, xin, ptl_model_params(m), c0, n, g);
    expect_close("output", ptl_model_output(m, 0, NULL), y, n * cf, 1e-5);
    expect_close("new state", ptl_model_state_data(m, 0, n), c1, n * cf, 1e-5);
    if (hf) {
        /* most recent first: row b = [x_b, h0_b without its oldest input] */
        const float *h1 = ptl_model_state_data(m, 1, n);
        for (int b = 0; b < n; b++) {
            cr_expect(memcmp(h1 + b * hf, x + b * xf, xf * sizeof(float)) == 0);
            cr_expect(memcmp(h1 + b * hf + xf, h0 + b * hf, (hf - xf) * sizeof(float)) == 0);
        }
    }
    free(x), free(c0), free(h0), free(xin), free(y), free(c1);
    ptl_model_free(m);
}

Test(cell, forward_v1_matches_naive)
{
    struct geom g = {1, 3, 7, 5, 2, 3, 2, 1, 1, 0};
    check_forward(&g, 3);
    check_forward(&g, 1);
    struct geom g1 = {1, 2, 5, 6, 3, 3, 1, 1, 1, 0};
    check_forward(&g1, 2);
}

Test(cell, forward_v2_matches_naive)
{
    struct geom g = {2, 3, 7, 5, 2, 3, 2, 1, 1, 0};
    check_forward(&g, 3);
    struct geom g2 = {2, 2, 5, 4, 3, 3, 1, 0, 2, 0}; /* history 2, no padding */
    check_forward(&g2, 2);
}

/* ---- gradients: loss = sum(y * r) from fixed initial states ---- */
struct grad_ctx {
    struct ptl_model *m;
    const struct geom *g;
    int n;
    float *x, *r, *c0, *h0;
};

static void restore_states(struct grad_ctx *c)
{
    set_state(c->m, 0, c->c0, c->n);
    if (hist(c->g))
        set_state(c->m, 1, c->h0, c->n);
}

static double grad_loss(void *p)
{
    struct grad_ctx *c = p;
    restore_states(c); /* a training forward advances the state: start each from the same */
    cr_assert_eq(ptl_model_forward(c->m, c->x, c->n, 1), 0, "%s", ptl_error_message());
    return tc_dot(ptl_model_output(c->m, 0, NULL), c->r, (size_t)c->n * c_floats(c->g));
}

static void check_grads(const struct geom *g, int n)
{
    struct grad_ctx c = {tiny(g), g, n, NULL, NULL, NULL, NULL};
    size_t cf = c_floats(g), xf = x_floats(g), hf = (size_t)hist(g) * xf;
    c.x = tc_alloc(n * xf);
    c.r = tc_alloc(n * cf);
    c.c0 = tc_alloc(n * cf);
    c.h0 = tc_alloc(n * hf + 1);
    tc_fill(c.x, n * xf, 11, -1, 1);
    tc_fill(c.r, n * cf, 12, -1, 1);
    tc_fill(c.c0, n * cf, 13, -1, 1);
    tc_fill(c.h0, n * hf, 14, -1, 1);
    grad_loss(&c);
    float *dx = tc_alloc(n * xf);
    const float *d_out[1] = {c.r};
    ptl_model_zero_grad(c.m);
    cr_assert_eq(ptl_model_backward(c.m, d_out, dx), 0, "%s", ptl_error_message());
    size_t nw = ptl_model_param_floats(c.m);
    float *dw = tc_alloc(nw);
    memcpy(dw, ptl_model_grads(c.m), nw * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "v%d n=%d stride %d d_input", g->version, n, g->stride);
    tc_assert_gradcheck(what, grad_loss, &c, c.x, dx, n * xf, 1e-2f, 1e-3, 1e-2);
    snprintf(what, sizeof what, "v%d n=%d stride %d d_gates", g->version, n, g->stride);
    tc_assert_gradcheck(what, grad_loss, &c, ptl_model_params(c.m), dw, nw, 1e-2f, 1e-3, 1e-2);
    free(c.x), free(c.r), free(c.c0), free(c.h0), free(dx), free(dw);
    ptl_model_free(c.m);
}

Test(cell, gradcheck_v1)
{
    struct geom g = {1, 3, 7, 5, 2, 3, 2, 1, 1, 0};
    check_grads(&g, 1);
    check_grads(&g, 3);
    struct geom g1 = {1, 2, 5, 5, 3, 3, 1, 1, 1, 0};
    check_grads(&g1, 3);
}

Test(cell, gradcheck_v2)
{
    struct geom g = {2, 3, 7, 5, 2, 3, 2, 1, 1, 0};
    check_grads(&g, 1);
    check_grads(&g, 3);
    struct geom g2 = {2, 2, 5, 4, 2, 3, 1, 1, 2, 0};
    check_grads(&g2, 3);
}

/* ---- state over batches ---- */
Test(cell, state_carries_over_three_batches)
{
    struct geom gs[2] = {{1, 3, 7, 5, 2, 3, 2, 1, 1, 0}, {2, 3, 7, 5, 2, 3, 2, 1, 1, 0}};
    for (int v = 0; v < 2; v++) {
        const struct geom *g = &gs[v];
        int n = 3;
        struct ptl_model *m = tiny(g);
        size_t cf = c_floats(g), xf = x_floats(g), hf = (size_t)hist(g) * xf;
        /* the initial state the first forward draws, read back before it runs */
        float *c = tc_alloc(n * cf), *h = tc_alloc(n * hf + 1);
        memcpy(c, ptl_model_state_data(m, 0, n), n * cf * sizeof(float));
        if (hf)
            memcpy(h, ptl_model_state_data(m, 1, n), n * hf * sizeof(float));
        float *x = tc_alloc(n * xf), *y = tc_alloc(n * cf), *c1 = tc_alloc(n * cf);
        for (int b = 0; b < 3; b++) {
            tc_fill(x, n * xf, 100 + b, -1, 1);
            cr_assert_eq(ptl_model_forward(m, x, n, 1), 0, "%s", ptl_error_message());
            float *xin = concat_hist(x, h, n, g);
            naive(y, c1, xin, ptl_model_params(m), c, n, g);
            free(xin);
            expect_close("output of batch", ptl_model_output(m, 0, NULL), y, n * cf, 1e-5);
            memcpy(c, c1, n * cf * sizeof(float));
            if (hf) /* history 1: the previous input */
                memcpy(h, x, n * xf * sizeof(float));
        }
        expect_close("state after 3 batches", ptl_model_state_data(m, 0, n), c, n * cf, 1e-5);
        free(c), free(h), free(x), free(y), free(c1);
        ptl_model_free(m);
    }
}

/* The gradient of batch b depends on batch b-1 only through the (detached) state: a fresh model
 * given that state as its initial state computes the same gradients, bit for bit. */
Test(cell, state_is_detached_between_batches)
{
    struct geom gs[2] = {{1, 3, 6, 5, 2, 3, 2, 1, 1, 0}, {2, 3, 6, 5, 2, 3, 2, 1, 1, 0}};
    for (int v = 0; v < 2; v++) {
        const struct geom *g = &gs[v];
        int n = 2, parts = hist(g) ? 2 : 1;
        size_t cf = c_floats(g), xf = x_floats(g), hf = (size_t)hist(g) * xf;
        struct ptl_model *a = tiny(g), *b = tiny(g);
        float *x0 = tc_alloc(n * xf), *x1 = tc_alloc(n * xf), *r = tc_alloc(n * cf);
        tc_fill(x0, n * xf, 21, -1, 1);
        tc_fill(x1, n * xf, 22, -1, 1);
        tc_fill(r, n * cf, 23, -1, 1);
        const float *d_out[1] = {r};
        cr_assert_eq(ptl_model_forward(a, x0, n, 1), 0);
        float *dx0 = tc_alloc(n * xf);
        cr_assert_eq(ptl_model_backward(a, d_out, dx0), 0);
        /* b starts where a is now */
        for (int i = 0; i < parts; i++)
            set_state(b, i, ptl_model_state_data(a, i, n), n);
        float *dxa = tc_alloc(n * xf), *dxb = tc_alloc(n * xf);
        ptl_model_zero_grad(a);
        cr_assert_eq(ptl_model_forward(a, x1, n, 1), 0);
        cr_assert_eq(ptl_model_backward(a, d_out, dxa), 0);
        cr_assert_eq(ptl_model_forward(b, x1, n, 1), 0);
        cr_assert_eq(ptl_model_backward(b, d_out, dxb), 0);
        size_t nw = ptl_model_param_floats(a);
        cr_expect(memcmp(ptl_model_grads(a), ptl_model_grads(b), nw * sizeof(float)) == 0,
                  "v%d: weight gradient of batch 1 depends on batch 0 beyond the state", g->version);
        cr_expect(memcmp(dxa, dxb, n * xf * sizeof(float)) == 0,
                  "v%d: input gradient of batch 1 depends on batch 0", g->version);
        (void)hf;
        free(x0), free(x1), free(r), free(dx0), free(dxa), free(dxb);
        ptl_model_free(a);
        ptl_model_free(b);
    }
}

/* ---- reset and the initial draw ---- */
Test(cell, reset_redraws_small_normal_state)
{
    struct geom g = {2, 2, 16, 16, 8, 3, 1, 1, 1, 0};
    int n = 3;
    struct ptl_model *m = tiny(&g);
    size_t cf = c_floats(&g), xf = x_floats(&g);
    cr_expect_eq(ptl_model_state_slots(m, 0), 0);
    float *x = tc_alloc(n * xf);
    tc_fill(x, n * xf, 5, -1, 1);
    cr_assert_eq(ptl_model_forward(m, x, n, 1), 0);
    cr_expect_eq(ptl_model_state_slots(m, 0), n);
    cr_expect_eq(ptl_model_state_slots(m, 1), n);
    ptl_model_reset_state(m, 4);
    cr_expect_eq(ptl_model_state_slots(m, 0), 0);
    cr_expect_eq(ptl_model_state_slots(m, 1), 0);
    /* the state the next forward starts from: Normal(0, 0.001^2) */
    float *s = ptl_model_state_data(m, 0, n);
    double mean = 0, sq = 0;
    for (size_t i = 0; i < n * cf; i++)
        mean += s[i], sq += (double)s[i] * s[i];
    mean /= n * cf;
    double sd = sqrt(sq / (n * cf) - mean * mean);
    cr_expect(fabs(mean) < 1e-4 && fabs(sd - 1e-3) < 1e-4, "initial state mean %g sd %g", mean, sd);
    float *first = tc_alloc(n * cf);
    memcpy(first, s, n * cf * sizeof(float));
    /* same epoch: the same draw; another epoch: another draw */
    ptl_model_reset_state(m, 4);
    cr_expect(memcmp(first, ptl_model_state_data(m, 0, n), n * cf * sizeof(float)) == 0);
    ptl_model_reset_state(m, 5);
    cr_expect(memcmp(first, ptl_model_state_data(m, 0, n), n * cf * sizeof(float)) != 0);
    /* a slot's draw does not depend on the batch size */
    ptl_model_reset_state(m, 4);
    cr_expect(memcmp(first, ptl_model_state_data(m, 0, 1), cf * sizeof(float)) == 0);
    free(x), free(first);
    ptl_model_free(m);
}

/* ---- eval modes ---- */
Test(cell, eval_reset_ignores_and_keeps_training_state)
{
    struct geom g = {2, 3, 7, 5, 2, 3, 2, 1, 1, 0};
    int n = 3;
    size_t cf = c_floats(&g), xf = x_floats(&g), hf = xf;
    struct ptl_model *a = tiny(&g), *b = tiny(&g);
    float *x = tc_alloc(n * xf), *x2 = tc_alloc(n * xf);
    tc_fill(x, n * xf, 31, -1, 1);
    tc_fill(x2, n * xf, 32, -1, 1);
    cr_assert_eq(ptl_model_forward(a, x, n, 1), 0); /* a has a training state, b none */
    float *keep_c = tc_alloc(n * cf), *keep_h = tc_alloc(n * hf);
    memcpy(keep_c, ptl_model_state_data(a, 0, n), n * cf * sizeof(float));
    memcpy(keep_h, ptl_model_state_data(a, 1, n), n * hf * sizeof(float));
    cr_assert_eq(ptl_model_forward(a, x2, n, 0), 0);
    cr_assert_eq(ptl_model_forward(b, x2, n, 0), 0, "%s", ptl_error_message());
    cr_expect(memcmp(ptl_model_output(a, 0, NULL), ptl_model_output(b, 0, NULL),
                     n * cf * sizeof(float)) == 0, "eval (reset) depends on the training state");
    cr_expect(memcmp(keep_c, ptl_model_state_data(a, 0, n), n * cf * sizeof(float)) == 0);
    cr_expect(memcmp(keep_h, ptl_model_state_data(a, 1, n), n * hf * sizeof(float)) == 0);
    cr_expect_eq(ptl_model_state_slots(b, 0), 0, "eval created a training state");
    /* an (almost) zero state: close to the cell from zeros */
    float *zeros = tc_alloc(n * (cf + hf)), *y = tc_alloc(n * cf), *c1 = tc_alloc(n * cf);
    float *xin = concat_hist(x2, zeros, n, &g);
    naive(y, c1, xin, ptl_model_params(a), zeros, n, &g);
    expect_close("eval from a fresh state", ptl_model_output(a, 0, NULL), y, n * cf, 1e-2);
    free(x), free(x2), free(keep_c), free(keep_h), free(zeros), free(y), free(c1), free(xin);
    ptl_model_free(a);
    ptl_model_free(b);
}

Test(cell, eval_global_starts_from_slot_mean)
{
    struct geom gs[2] = {{1, 3, 7, 5, 2, 3, 2, 1, 1, 1}, {2, 3, 7, 5, 2, 3, 2, 1, 1, 1}};
    for (int v = 0; v < 2; v++) {
        const struct geom *g = &gs[v];
        int n = 3, ne = 2;
        size_t cf = c_floats(g), xf = x_floats(g), hf = (size_t)hist(g) * xf;
        struct ptl_model *m = tiny(g);
        float *x = tc_alloc(n * xf);
        tc_fill(x, n * xf, 41, -1, 1);
        cr_expect_neq(ptl_model_forward(m, x, ne, 0), 0, "global eval without a training state");
        float *c = tc_alloc(n * cf), *h = tc_alloc(n * hf + 1);
        tc_fill(c, n * cf, 42, -1, 1);
        tc_fill(h, n * hf, 43, -1, 1);
        set_state(m, 0, c, n);
        if (hf)
            set_state(m, 1, h, n);
        cr_assert_eq(ptl_model_forward(m, x, ne, 0), 0, "%s", ptl_error_message());
        float *cm = tc_alloc(ne * cf), *hm = tc_alloc(ne * hf + 1);
        for (int b = 0; b < ne; b++) {
            for (size_t k = 0; k < cf; k++)
                cm[b * cf + k] = (c[k] + c[cf + k] + c[2 * cf + k]) / 3.0f;
            for (size_t k = 0; k < hf; k++)
                hm[b * hf + k] = (h[k] + h[hf + k] + h[2 * hf + k]) / 3.0f;
        }
        float *xin = concat_hist(x, hm, ne, g), *y = tc_alloc(ne * cf), *c1 = tc_alloc(ne * cf);
        naive(y, c1, xin, ptl_model_params(m), cm, ne, g);
        expect_close("eval from the slot mean", ptl_model_output(m, 0, NULL), y, ne * cf, 1e-5);
        cr_expect(memcmp(c, ptl_model_state_data(m, 0, n), n * cf * sizeof(float)) == 0,
                  "eval changed the training state");
        cr_expect_eq(ptl_model_state_slots(m, 0), n);
        free(x), free(c), free(h), free(cm), free(hm), free(xin), free(y), free(c1);
        ptl_model_free(m);
    }
}

/* ---- batch size changes ---- */
Test(cell, smaller_batch_uses_first_rows_larger_grows_from_mean)
{
    struct geom g = {2, 3, 7, 5, 2, 3, 2, 1, 1, 0};
    size_t cf = c_floats(&g), xf = x_floats(&g), hf = xf;
    struct ptl_model *m = tiny(&g);
    float *c = tc_alloc(3 * cf), *h = tc_alloc(3 * hf), *x = tc_alloc(4 * xf);
    tc_fill(c, 3 * cf, 51, -1, 1);
    tc_fill(h, 3 * hf, 52, -1, 1);
    tc_fill(x, 4 * xf, 53, -1, 1);
    set_state(m, 0, c, 3);
    set_state(m, 1, h, 3);
    /* 2 of 3 slots: rows 0 and 1; the state then holds those 2 */
    cr_assert_eq(ptl_model_forward(m, x, 2, 1), 0);
    float *xin = concat_hist(x, h, 2, &g), *y = tc_alloc(4 * cf), *c1 = tc_alloc(4 * cf);
    naive(y, c1, xin, ptl_model_params(m), c, 2, &g);
    free(xin);
    expect_close("smaller batch", ptl_model_output(m, 0, NULL), y, 2 * cf, 1e-5);
    cr_expect_eq(ptl_model_state_slots(m, 0), 2);
    /* 4 slots from 2: rows 2, 3 = mean of rows 0, 1 (for C and the history) */
    float *c2 = tc_alloc(4 * cf), *h2 = tc_alloc(4 * hf);
    memcpy(c2, c1, 2 * cf * sizeof(float));
    memcpy(h2, x, 2 * xf * sizeof(float)); /* history: the last input of slots 0, 1 */
    for (int r = 2; r < 4; r++) {
        for (size_t k = 0; k < cf; k++)
            c2[r * cf + k] = (c2[k] + c2[cf + k]) / 2.0f;
        for (size_t k = 0; k < hf; k++)
            h2[r * hf + k] = (h2[k] + h2[hf + k]) / 2.0f;
    }
    cr_assert_eq(ptl_model_forward(m, x, 4, 1), 0, "%s", ptl_error_message());
    xin = concat_hist(x, h2, 4, &g);
    naive(y, c1, xin, ptl_model_params(m), c2, 4, &g);
    expect_close("larger batch", ptl_model_output(m, 0, NULL), y, 4 * cf, 1e-5);
    cr_expect_eq(ptl_model_state_slots(m, 0), 4);
    cr_expect_eq(ptl_model_state_slots(m, 1), 4);
    free(c), free(h), free(x), free(xin), free(y), free(c1), free(c2), free(h2);
    ptl_model_free(m);
}

/* ---- the state API ---- */
Test(cell, state_api)
{
    struct geom g1 = {1, 3, 7, 5, 2, 3, 2, 1, 1, 0}, g2 = {2, 3, 7, 5, 2, 3, 2, 1, 3, 0};
    struct ptl_model *a = tiny(&g1), *b = tiny(&g2);
    cr_expect_eq(ptl_model_state_count(a), 1);
    cr_expect_eq(ptl_model_state_count(b), 2);
    char name[64];
    size_t per;
    cr_assert_eq(ptl_model_state_info(b, 0, name, sizeof name, &per), 0);
    cr_expect_str_eq(name, "cell.c");
    cr_expect_eq(per, c_floats(&g2));
    cr_assert_eq(ptl_model_state_info(b, 1, name, sizeof name, &per), 0);
    cr_expect_str_eq(name, "cell.x_prev");
    cr_expect_eq(per, 3 * x_floats(&g2));
    cr_expect_neq(ptl_model_state_info(a, 1, name, sizeof name, &per), 0);
    cr_expect_null(ptl_model_state_data(a, 1, 2));
    cr_expect_null(ptl_model_state_data(a, 0, 0));
    cr_expect_eq(ptl_model_state_slots(a, 7), 0);
    /* data grows on demand and keeps existing rows */
    float *d = ptl_model_state_data(a, 0, 2);
    cr_assert_not_null(d);
    d[0] = 0.5f;
    d = ptl_model_state_data(a, 0, 5);
    cr_assert_not_null(d);
    cr_expect_eq(ptl_model_state_slots(a, 0), 5);
    cr_expect_eq(d[0], 0.5f);
    ptl_model_free(a);
    ptl_model_free(b);
}
