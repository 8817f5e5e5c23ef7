/* BConv-Cell v1 and v2 (docs/method.md): a bias-free gate convolution, LSTM-style gating with a
 * latent state carried from one mini-batch to the next per batch slot, detached between
 * batches. v2 also feeds the (detached) inputs of the previous `history` batches to the gates.
 *
 *   A = W * [X_b, X_{b-1}, ..., X_{b-M}]   (v1: A = W * X_b)     (N, 4*C_out, H', W')
 *   I, F, O = sigmoid(A_i, A_f, A_o)   G = tanh(A_g)
 *   C_b = F . C_{b-1} + I . G          Y_b = O . tanh(C_b)
 *
 * State rules (docs/models.md): per batch slot; Normal(0, 0.001^2) rows per (seed, epoch, cell,
 * slot) after a reset; a smaller batch reads the first rows, a larger one grows them from the
 * slot mean; after a training forward the state is exactly that batch's rows. Eval forwards
 * never touch the training state: eval_state reset starts from a fixed Normal(0, 0.001^2) draw
 * (the release redraws; ours is the same every call so eval is deterministic), eval_state
 * global from the slot mean of the training state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cell.h"
#include "models/graph.h"
#include "ops/check.h"
#include "ops/vmath.h"
#include "ptl/core.h"

/* Latent state of one cell: `slots` rows of C (per_c floats each) and, for v2, of the M
 * previous inputs (per_x floats each). */
struct cell_state {
    int slots;
    size_t per_c, per_x;
    float *c;      /* (slots, C_out, H', W') */
    float *x_prev; /* (slots, M * C_in, H, W), most recent first; NULL for v1 */
};

static void cell_state_free(void *p)
{
    struct cell_state *s = p;
    if (s) {
        free(s->c);
        free(s->x_prev);
        free(s);
    }
}

struct cell_dims {
    int n, c_in, h, w, c_out, ho, wo, m; /* m: history depth (0 for v1) */
    size_t hw_out, x_floats, xcat_floats;
};

static struct cell_dims dims(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    const struct ptl_tensor *x = &m->tensors[node->in[0]], *y = &m->tensors[node->out];
    struct cell_dims d = {n, x->c, x->h, x->w, y->c, y->h, y->w,
                          node->a.cell.version == 2 ? node->a.cell.history : 0, 0, 0, 0};
    d.hw_out = (size_t)d.ho * d.wo;
    d.x_floats = (size_t)d.c_in * d.h * d.w;
    d.xcat_floats = d.x_floats * (size_t)(1 + d.m);
    return d;
}

static struct ptl_conv2d_shape gate_shape(const struct cell_dims *d, const struct ptl_node *node)
{
    return (struct ptl_conv2d_shape){d->n, d->c_in * (1 + d->m), d->h, d->w, 4 * d->c_out,
                                     node->a.cell.k, node->a.cell.k, node->a.cell.stride,
                                     node->a.cell.stride, node->a.cell.pad, node->a.cell.pad};
}

/* Saved from forward to backward: activated gates (N, 4*C_out, H'W'), C_{b-1} and tanh(C_b)
 * (N, C_out, H'W') each, and for v2 the concatenated gate input. */
static size_t cell_saved(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    struct cell_dims d = dims(m, node, n);
    size_t s = (size_t)n * 6 * d.c_out * d.hw_out;
    if (d.m > 0)
        s += (size_t)n * d.xcat_floats;
    return s;
}

/* Scratch: dA, then (v2) d of the concatenated input, then the gate conv's own workspace. */
static size_t cell_workspace(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    struct cell_dims d = dims(m, node, n);
    struct ptl_conv2d_shape s = gate_shape(&d, node);
    size_t w = (size_t)n * 4 * d.c_out * d.hw_out + ptl_conv2d_workspace_floats(&s);
    if (d.m > 0)
        w += (size_t)n * d.xcat_floats;
    return w;
}

/* Initial latent rows are Normal(0, 0.001^2), drawn per (cell, slot) from the run seed and the
 * epoch, so a slot's start does not depend on the batch size or on other slots. `which` keeps
 * the streams of C, the history and the eval-time draws apart. */
static void draw_row(const struct ptl_model *m, int cell_id, int which, float *dst, size_t per,
                     int slot, uint64_t epoch)
{
    struct ptl_rng rng;
    uint64_t stream = ((uint64_t)(cell_id * 4 + which) << 32) | (uint32_t)slot;
    ptl_rng_init(&rng, m->cfg.seed ^ (0x5eedULL + epoch * 0x9e3779b97f4a7c15ULL), stream);
    ptl_rng_fill_normal(&rng, dst, per, 0.0f, 0.001f);
}

/* Rows for slots [base, base + slots): a sharded process passes its global slot base. */
static void draw_rows(const struct ptl_model *m, int cell_id, int which, float *rows, size_t per,
                      int base, int slots, uint64_t epoch)
{
    for (int slot = 0; slot < slots; slot++)
        draw_row(m, cell_id, which, rows + (size_t)slot * per, per, base + slot, epoch);
}

/* Mean over the slots of a (slots, per) array into out (per). */
static void slot_mean(float *out, const float *rows, int slots, size_t per)
{
    for (size_t k = 0; k < per; k++) {
        double s = 0;
        for (int r = 0; r < slots; r++)
            s += rows[(size_t)r * per + k];
        out[k] = (float)(s / slots);
    }
}

/* Grows rows from `have` to `want` slots: new rows start from the mean of the existing ones
 * (our rule for a batch larger than any before it). */
static int grow_rows(float **rows, int have, int want, size_t per)
{
    float *p = realloc(*rows, (size_t)want * per * sizeof(float));
    if (p == NULL)
        return ptl_error(PTL_ENOMEM, "bconv-cell: out of memory for %d latent rows", want);
    *rows = p;
    if (have > 0)
        for (int r = have; r < want; r++)
            slot_mean(p + (size_t)r * per, p, have, per);
    return 0;
}

static int cell_index(const struct ptl_model *m, const struct ptl_node *node)
{
    return (int)(node - m->nodes);
}

/* Makes sure the training state exists with at least n rows. */
static int ensure_state(struct ptl_model *m, struct ptl_node *node, const struct cell_dims *d,
                        int n)
{
    struct cell_state *s = node->state;
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return ptl_error(PTL_ENOMEM, "bconv-cell: out of memory");
        s->per_c = (size_t)d->c_out * d->hw_out;
        s->per_x = d->m > 0 ? (size_t)d->m * d->x_floats : 0;
        node->state = s;
        node->free_state = cell_state_free;
    }
    if (s->slots == 0) {
        s->c = malloc((size_t)n * s->per_c * sizeof(float));
        s->x_prev = s->per_x ? malloc((size_t)n * s->per_x * sizeof(float)) : NULL;
        if (s->c == NULL || (s->per_x && s->x_prev == NULL))
            return ptl_error(PTL_ENOMEM, "bconv-cell: out of memory for the latent state");
        draw_rows(m, cell_index(m, node), 0, s->c, s->per_c, m->slot_base, n, m->epoch);
        if (s->per_x)
            draw_rows(m, cell_index(m, node), 1, s->x_prev, s->per_x, m->slot_base, n,
                      m->epoch);
        s->slots = n;
    } else if (n > s->slots) {
        int rc = grow_rows(&s->c, s->slots, n, s->per_c);
        if (rc == 0 && s->per_x)
            rc = grow_rows(&s->x_prev, s->slots, n, s->per_x);
        if (rc != 0)
            return rc;
        s->slots = n;
    }
    return 0;
}

/* One sample's gate maths: g holds the pre-activations A (4 blocks of blk: i, f, o, g) and gets
 * the activated gates; c_new = F.C_prev + I.G, tanh_c = tanh(c_new), y = O.tanh_c. c_new may
 * be tanh_c (eval: written, then overwritten in the same iteration). */
static PTL_SIMD_CLONES_WIDE void gates_forward(float *g, const float *c_prev, float *c_new,
                                          float *tanh_c, float *y, size_t blk)
{
    float *gi = g, *gf = g + blk, *go = g + 2 * blk, *gg = g + 3 * blk;
#pragma omp simd
    for (size_t k = 0; k < blk; k++) {
        float i = ptl__vsigmoid(gi[k]), f = ptl__vsigmoid(gf[k]);
        float o = ptl__vsigmoid(go[k]), gt = ptl__vtanh(gg[k]);
        float c = f * c_prev[k] + i * gt;
        gi[k] = i;
        gf[k] = f;
        go[k] = o;
        gg[k] = gt;
        c_new[k] = c;
        float t = ptl__vtanh(c);
        tanh_c[k] = t;
        y[k] = o * t;
    }
}

/* One sample's gradient of the pre-activations da (4 blocks) from dy, through the saved gates,
 * C_prev and tanh(C) (the state is detached: no gradient to C_prev). */
static PTL_SIMD_CLONES void gates_backward(float *da, const float *g, const float *c_prev,
                                           const float *tanh_c, const float *dy, size_t blk)
{
    const float *gi = g, *gf = g + blk, *go = g + 2 * blk, *gg = g + 3 * blk;
#pragma omp simd
    for (size_t k = 0; k < blk; k++) {
        float t = tanh_c[k];
        float d_o = dy[k] * t;
        float d_c = dy[k] * go[k] * (1.0f - t * t);
        da[k] = d_c * gg[k] * gi[k] * (1.0f - gi[k]);
        da[blk + k] = d_c * c_prev[k] * gf[k] * (1.0f - gf[k]);
        da[2 * blk + k] = d_o * go[k] * (1.0f - go[k]);
        da[3 * blk + k] = d_c * gi[k] * (1.0f - gg[k] * gg[k]);
    }
}

static int cell_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    struct cell_dims d = dims(m, node, m->batch);
    int n = d.n;
    size_t blk = (size_t)d.c_out * d.hw_out; /* one gate block of one sample */
    float *gates = node->saved;                 /* (N, 4, C_out, H'W') */
    float *c_prev = gates + (size_t)n * 4 * blk; /* (N, C_out, H'W') */
    float *tanh_c = c_prev + (size_t)n * blk;
    float *xcat = tanh_c + (size_t)n * blk;     /* v2 only: (N, (1+M) C_in, H, W) */
    const float *x = graph_act(m, node->in[0]);
    float *y = graph_act(m, node->out);

    int rc = 0;
    struct cell_state *st = node->state;
    if (train || m->cfg.eval_state_global) {
        if (train)
            rc = ensure_state(m, node, &d, n);
        else if (st == NULL || st->slots == 0)
            rc = ptl_error(PTL_EINVAL, "bconv-cell '%s': eval_state global needs a training "
                                       "state (train first or use eval_state reset)", node->name);
        if (rc != 0)
            return rc;
        st = node->state;
    }
    /* C_{b-1} and X_{b-1..b-M} for each slot of this batch. */
    float *x_prev_src = NULL; /* (N, M * C_in * H * W) view to read history from */
    if (train) {
        memcpy(c_prev, st->c, (size_t)n * blk * sizeof(float));
        x_prev_src = st->x_prev;
    } else if (m->cfg.eval_state_global) {
        slot_mean(c_prev, st->c, st->slots, blk);
        for (int b = 1; b < n; b++)
            memcpy(c_prev + (size_t)b * blk, c_prev, blk * sizeof(float));
    } else {
        draw_rows(m, cell_index(m, node), 2, c_prev, blk, 0, n, 0);
    }
    const float *gate_in = x;
    if (d.m > 0) {
        size_t hist = (size_t)d.m * d.x_floats;
        for (int b = 0; b < n; b++) {
            float *dst = xcat + (size_t)b * d.xcat_floats;
            memcpy(dst, x + (size_t)b * d.x_floats, d.x_floats * sizeof(float));
            float *h = dst + d.x_floats;
            if (x_prev_src)
                memcpy(h, x_prev_src + (size_t)b * hist, hist * sizeof(float));
            else if (m->cfg.eval_state_global)
                slot_mean(h, st->x_prev, st->slots, hist);
            else
                draw_row(m, cell_index(m, node), 3, h, hist, b, 0);
        }
        gate_in = xcat;
    }
    struct ptl_conv2d_shape cs = gate_shape(&d, node);
    rc = ptl_conv2d_forward(gates, gate_in, graph_param(m, node, 0), NULL, &cs, m->workspace);
    if (rc != 0)
        return rc;
    /* The gate maths is element-wise: samples go to threads, each sample in SIMD lanes. */
#pragma omp parallel for if ((size_t)n * blk >= PTL_OMP_MIN_ELEMENTS)
    for (int b = 0; b < n; b++) {
        float *g = gates + (size_t)b * 4 * blk, *tc = tanh_c + (size_t)b * blk;
        /* The new C goes to the state in training; eval only needs tanh(C), so C is parked in
         * tc and overwritten in the same iteration. */
        gates_forward(g, c_prev + (size_t)b * blk, train ? st->c + (size_t)b * blk : tc, tc,
                      y + (size_t)b * blk, blk);
    }
    if (train) {
        /* The new state holds exactly this batch's slots (as the release does for a smaller
         * batch); the history shifts by one input. */
        st->slots = n;
        if (d.m > 0) {
            size_t hist = (size_t)d.m * d.x_floats;
            for (int b = 0; b < n; b++) {
                float *h = st->x_prev + (size_t)b * hist;
                memmove(h + d.x_floats, h, (hist - d.x_floats) * sizeof(float));
                memcpy(h, x + (size_t)b * d.x_floats, d.x_floats * sizeof(float));
            }
        }
    }
    return 0;
}

static int cell_backward(struct ptl_model *m, struct ptl_node *node)
{
    struct cell_dims d = dims(m, node, m->batch);
    int n = d.n;
    size_t blk = (size_t)d.c_out * d.hw_out;
    const float *gates = node->saved;
    const float *c_prev = gates + (size_t)n * 4 * blk;
    const float *tanh_c = c_prev + (size_t)n * blk;
    const float *xcat = tanh_c + (size_t)n * blk;
    const float *dy = graph_act_grad(m, node->out);
    float *da = m->workspace; /* (N, 4, C_out, H'W') */
    float *dxcat = da + (size_t)n * 4 * blk;
    float *conv_ws = d.m > 0 ? dxcat + (size_t)n * d.xcat_floats : dxcat;

#pragma omp parallel for if ((size_t)n * blk >= PTL_OMP_MIN_ELEMENTS)
    for (int b = 0; b < n; b++)
        gates_backward(da + (size_t)b * 4 * blk, gates + (size_t)b * 4 * blk,
                       c_prev + (size_t)b * blk, tanh_c + (size_t)b * blk, dy + (size_t)b * blk,
                       blk);
    struct ptl_conv2d_shape cs = gate_shape(&d, node);
    float *d_x = graph_act_grad(m, node->in[0]);
    if (d.m == 0)
        return ptl_conv2d_backward(d_x, graph_param_grad(m, node, 0), NULL, da,
                                   graph_act(m, node->in[0]), graph_param(m, node, 0), &cs,
                                   conv_ws);
    /* v2: the history part of the input is detached, only X_b's channels pass gradient. */
    memset(dxcat, 0, (size_t)n * d.xcat_floats * sizeof(float));
    int rc = ptl_conv2d_backward(d_x ? dxcat : NULL, graph_param_grad(m, node, 0), NULL, da, xcat,
                                 graph_param(m, node, 0), &cs, conv_ws);
    if (rc == 0 && d_x)
        for (int b = 0; b < n; b++) {
            const float *src = dxcat + (size_t)b * d.xcat_floats;
            float *dst = d_x + (size_t)b * d.x_floats;
            for (size_t k = 0; k < d.x_floats; k++)
                dst[k] += src[k];
        }
    return rc;
}

static double cell_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    struct cell_dims d = dims(m, node, 1);
    return 2.0 * 4 * d.c_out * d.hw_out * d.c_in * (1 + d.m) * node->a.cell.k * node->a.cell.k +
           10.0 * d.c_out * d.hw_out;
}

const struct ptl_node_ops ptl_node_cell = {"bconv-cell", cell_saved, cell_workspace,
                                           cell_forward, cell_backward, cell_flops};

int graph_bconv_cell(struct ptl_model *m, const char *name, int x, int c_out, int k, int stride,
                     int pad, int version)
{
    if (m->error)
        return -1;
    if (version != 1 && version != 2)
        return graph_fail(m, PTL_EINVAL, "bconv-cell '%s': version %d (1 or 2)", name, version);
    if (x < 0 || x >= m->n_tensors)
        return graph_fail(m, PTL_EINVAL, "bconv-cell '%s': input is not a tensor", name);
    const struct ptl_tensor t = m->tensors[x]; /* a copy: adding the node may move m->tensors */
    int hist = version == 2 ? m->cfg.cell_history : 0;
    struct ptl_conv2d_shape s = {1, t.c * (1 + hist), t.h, t.w, 4 * c_out, k, k,
                                 stride, stride, pad, pad};
    int ho, wo;
    if (ptl_conv2d_output_size(&s, &ho, &wo) != 0)
        return graph_fail(m, PTL_EINVAL, "bconv-cell '%s': %s", name, ptl_error_message());
    int id = graph_add_node(m, &ptl_node_cell, name, &x, 1, c_out, ho, wo);
    if (id < 0)
        return -1;
    struct ptl_node *node = &m->nodes[id];
    node->a.cell.c_out = c_out;
    node->a.cell.k = k;
    node->a.cell.stride = stride;
    node->a.cell.pad = pad;
    node->a.cell.version = version;
    node->a.cell.history = hist;
    char full[160];
    int wshape[4] = {4 * c_out, s.c_in, k, k};
    snprintf(full, sizeof full, "%s.gates.weight", name);
    node->param[0] = graph_entry(m, full, PTL_ENTRY_PARAM, 4, wshape);
    return m->error ? -1 : node->out;
}

/* ---- latent-state access (checkpoints, merging across ranks, tests) ---- */
int ptl_model_state_count(const struct ptl_model *m)
{
    int count = 0;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].ops == &ptl_node_cell)
            count += m->nodes[i].a.cell.version == 2 ? 2 : 1;
    return count;
}

/* Node and part (0: C, 1: history) of state i. */
static struct ptl_node *state_node(struct ptl_model *m, int i, int *part)
{
    for (int k = 0; k < m->n_nodes; k++) {
        struct ptl_node *node = &m->nodes[k];
        if (node->ops != &ptl_node_cell)
            continue;
        int parts = node->a.cell.version == 2 ? 2 : 1;
        if (i < parts) {
            *part = i;
            return node;
        }
        i -= parts;
    }
    return NULL;
}

int ptl_model_state_info(const struct ptl_model *m, int i, char *name, size_t name_size,
                         size_t *slot_floats)
{
    int part;
    struct ptl_node *node = state_node((struct ptl_model *)m, i, &part);
    if (node == NULL)
        return ptl_error(PTL_EINVAL, "%s: no latent state %d", m->arch, i);
    struct cell_dims d = dims(m, node, 1);
    if (name)
        snprintf(name, name_size, "%s.%s", node->name, part == 0 ? "c" : "x_prev");
    if (slot_floats)
        *slot_floats = part == 0 ? (size_t)d.c_out * d.hw_out : (size_t)d.m * d.x_floats;
    return 0;
}

float *ptl_model_state_data(struct ptl_model *m, int i, int slots)
{
    int part;
    struct ptl_node *node = state_node(m, i, &part);
    if (node == NULL || slots < 1) {
        ptl_error(PTL_EINVAL, "%s: no latent state %d with %d slots", m->arch, i, slots);
        return NULL;
    }
    struct cell_dims d = dims(m, node, slots);
    struct cell_state *s = node->state;
    if ((s == NULL || s->slots < slots) && ensure_state(m, node, &d, slots) != 0)
        return NULL;
    s = node->state;
    return part == 0 ? s->c : s->x_prev;
}

int ptl_model_state_slots(const struct ptl_model *m, int i)
{
    int part;
    struct ptl_node *node = state_node((struct ptl_model *)m, i, &part);
    const struct cell_state *s = node ? node->state : NULL;
    return s ? s->slots : 0;
}

/* Walks the states that hold slots: copies them into (to_buf) or out of buf, or only counts
 * (buf NULL). Returns the floats walked. */
static size_t walk_states(struct ptl_model *m, float *buf, int to_buf)
{
    size_t at = 0;
    for (int i = 0; i < ptl_model_state_count(m); i++) {
        int slots = ptl_model_state_slots(m, i);
        size_t per;
        if (slots == 0 || ptl_model_state_info(m, i, NULL, 0, &per) != 0)
            continue;
        size_t n = per * (size_t)slots;
        float *s = buf ? ptl_model_state_data(m, i, slots) : NULL;
        if (s && to_buf)
            memcpy(buf + at, s, n * sizeof *s);
        else if (s)
            memcpy(s, buf + at, n * sizeof *s);
        at += n;
    }
    return at;
}

size_t ptl_model_states_floats(const struct ptl_model *m)
{
    return walk_states((struct ptl_model *)m, NULL, 1);
}

void ptl_model_states_copy(struct ptl_model *m, float *buf, int to_buf)
{
    walk_states(m, buf, to_buf);
}
