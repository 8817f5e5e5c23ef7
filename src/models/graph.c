/* The static graph: building (tensors, nodes, named entries), laying out the batch-dependent
 * arenas, and running forward and backward over the node list. */
#include "models/graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/memory.h"
#include "ptl/core.h"

void graph_init(struct ptl_model *m, const char *arch, const struct ptl_model_config *cfg)
{
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->cfg = *cfg;
    if (m->cfg.cell_history < 1)
        m->cfg.cell_history = 1;
    m->input = -1;
    m->role = PTL_ROLE_BACKBONE;
}

int graph_fail(struct ptl_model *m, int code, const char *fmt, ...)
{
    if (m->error == 0) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        m->error = ptl_error(code, "%s: %s", m->arch, msg);
    }
    return -1;
}

/* Grows *p (of *cap elements of size sz) to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * sz);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int new_tensor(struct ptl_model *m, int c, int h, int w)
{
    size_t cap = (size_t)m->cap_tensors;
    if (grow((void **)&m->tensors, &cap, (size_t)m->n_tensors + 1, sizeof *m->tensors) != 0)
        return graph_fail(m, PTL_ENOMEM, "out of memory for tensors");
    m->cap_tensors = (int)cap;
    if (c <= 0 || h <= 0 || w <= 0)
        return graph_fail(m, PTL_EINVAL, "tensor shape %dx%dx%d is empty (input too small?)", c,
                          h, w);
    m->tensors[m->n_tensors] =
        (struct ptl_tensor){.c = c, .h = h, .w = w, .needs_grad = 1, .shares = -1};
    return m->n_tensors++;
}

int graph_input(struct ptl_model *m, int c, int h, int w)
{
    if (m->error)
        return -1;
    int t = new_tensor(m, c, h, w);
    if (t >= 0) {
        m->input = t;
        m->tensors[t].needs_grad = 0;
    }
    return t;
}

int graph_entry(struct ptl_model *m, const char *name, enum ptl_entry_kind kind, int ndim,
                const int *shape)
{
    if (m->error)
        return -1;
    if (ptl_model_find_entry(m, name) >= 0)
        return graph_fail(m, PTL_EINVAL, "duplicate entry name '%s'", name);
    if (grow((void **)&m->entries, &m->cap_entries, m->n_entries + 1, sizeof *m->entries) != 0)
        return graph_fail(m, PTL_ENOMEM, "out of memory for entries");
    struct ptl_entry *e = &m->entries[m->n_entries];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (e->name == NULL)
        return graph_fail(m, PTL_ENOMEM, "out of memory for entry names");
    e->ndim = ndim;
    e->count = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->count *= (size_t)shape[i];
    }
    e->kind = kind;
    e->role = m->role;
    e->used = 1;
    if (kind == PTL_ENTRY_PARAM) {
        e->offset = m->n_param_floats;
        m->n_param_floats += e->count;
    } else {
        e->offset = m->n_buffer_floats;
        m->n_buffer_floats += e->count;
    }
    return (int)m->n_entries++;
}

int graph_add_node(struct ptl_model *m, const struct ptl_node_ops *ops, const char *name,
                   const int *in, int n_in, int c, int h, int w)
{
    if (m->error)
        return -1;
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0 || in[i] >= m->n_tensors)
            return graph_fail(m, PTL_EINVAL, "%s '%s': input %d is not a tensor", ops->kind,
                              name ? name : "", i);
    size_t cap = (size_t)m->cap_nodes;
    if (grow((void **)&m->nodes, &cap, (size_t)m->n_nodes + 1, sizeof *m->nodes) != 0)
        return graph_fail(m, PTL_ENOMEM, "out of memory for nodes");
    m->cap_nodes = (int)cap;
    int out = new_tensor(m, c, h, w);
    if (out < 0)
        return -1;
    struct ptl_node *node = &m->nodes[m->n_nodes];
    memset(node, 0, sizeof *node);
    node->ops = ops;
    snprintf(node->name, sizeof node->name, "%s", name ? name : "");
    node->in = malloc(sizeof(int) * (size_t)(n_in > 0 ? n_in : 1));
    if (node->in == NULL)
        return graph_fail(m, PTL_ENOMEM, "out of memory for node inputs");
    memcpy(node->in, in, sizeof(int) * (size_t)n_in);
    node->n_in = n_in;
    node->out = out;
    for (int i = 0; i < PTL_NODE_MAX_PARAMS; i++)
        node->param[i] = -1;
    return m->n_nodes++;
}

int graph_producer(const struct ptl_model *m, int t)
{
    for (int i = m->n_nodes - 1; i >= 0; i--)
        if (m->nodes[i].out == t)
            return i;
    return -1;
}

int graph_output(struct ptl_model *m, const char *name, int x)
{
    if (m->error)
        return -1;
    if (x < 0 || x >= m->n_tensors)
        return graph_fail(m, PTL_EINVAL, "output '%s' is not a tensor", name);
    if (m->n_outputs >= (int)(sizeof m->outputs / sizeof m->outputs[0]))
        return graph_fail(m, PTL_EINVAL, "too many outputs");
    struct ptl_output *o = &m->outputs[m->n_outputs++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->tensor = x;
    return x;
}

/* PyTorch's default initialisers, seeded: conv and linear weights Kaiming-uniform with
 * a = sqrt(5) (bound 1/sqrt(fan_in)), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BN weight 1,
 * bias 0, running mean 0, running var 1. Constructors override (torchvision's ResNet init, the
 * cells' Kaiming-normal) where the reference model does. */
static void init_defaults(struct ptl_model *m)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, m->cfg.seed, 0x1717);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        float *v = ptl_model_entry_data(m, i);
        const char *dot = strrchr(e->name, '.');
        const char *leaf = dot ? dot + 1 : e->name;
        if (strcmp(leaf, "running_var") == 0) {
            for (size_t k = 0; k < e->count; k++)
                v[k] = 1.0f;
        } else if (e->kind != PTL_ENTRY_PARAM) {
            memset(v, 0, e->count * sizeof *v);
        } else if (e->ndim == 1 && strcmp(leaf, "weight") == 0) { /* BN gamma */
            for (size_t k = 0; k < e->count; k++)
                v[k] = 1.0f;
        } else if (e->ndim == 1 && strcmp(leaf, "bias") == 0 && i > 0 &&
                   m->entries[i - 1].ndim == 1) { /* BN beta follows gamma */
            memset(v, 0, e->count * sizeof *v);
        } else {
            /* weight (out, in, ...) or the bias following it */
            const struct ptl_entry *w = e->ndim >= 2 ? e : &m->entries[i - 1];
            size_t fan_in = w->count / (size_t)w->shape[0];
            float bound = 1.0f / sqrtf((float)fan_in);
            ptl_rng_fill_uniform(&rng, v, e->count, -bound, bound);
        }
    }
}

int graph_finish(struct ptl_model *m)
{
    if (m->error)
        return m->error;
    m->params = ptl__calloc_large(m->n_param_floats * sizeof(float));
    m->grads = ptl__calloc_large(m->n_param_floats * sizeof(float));
    m->buffers = calloc(m->n_buffer_floats ? m->n_buffer_floats : 1, sizeof(float));
    if (m->params == NULL || m->grads == NULL || m->buffers == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory for %zu parameters", m->arch,
                         m->n_param_floats);
    init_defaults(m);
    return PTL_OK;
}

#define GRAD_ZERO_FIRST (-2) /* zero_at of the model outputs: before anything else */

/* Whether a ReLU may overwrite its input tensor t (as PyTorch's inplace ReLU does): nothing else
 * reads t, t is not a model output, and t's producer does not need its own output in backward
 * (conv, batchnorm, add, concat and linear read their inputs and saved state only). Saves a
 * tensor of memory traffic each way and shrinks the arenas. */
static int relu_can_share(const struct ptl_model *m, const struct ptl_node *relu)
{
    int t = relu->in[0], p = graph_producer(m, t);
    if (t == m->input || p < 0)
        return 0;
    const struct ptl_node_ops *k = m->nodes[p].ops;
    if (k != &ptl_node_conv && k != &ptl_node_bn && k != &ptl_node_add &&
        k != &ptl_node_concat && k != &ptl_node_linear)
        return 0;
    for (int o = 0; o < m->n_outputs; o++)
        if (m->outputs[o].tensor == t)
            return 0;
    int readers = 0;
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            readers += m->nodes[i].in[j] == t;
    return readers == 1;
}

/* When backward zeroes each gradient storage: right before the first node (in backward order)
 * that touches it, so the zeroes are still in cache when that node accumulates into them,
 * instead of one memset of the whole arena up front. A storage (a tensor and the in-place
 * ReLU outputs sharing it) is touched by the nodes reading any of its tensors and by their
 * producers; the highest index runs first. Model outputs are zeroed up front, before the output
 * gradients are added. */
static void plan_grad_zeroing(struct ptl_model *m)
{
    for (int t = 0; t < m->n_tensors; t++)
        m->zero_at[t] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        const struct ptl_node *node = &m->nodes[i];
        for (int j = -1; j < node->n_in; j++) {
            int t = j < 0 ? node->out : node->in[j];
            int root = m->tensors[t].shares >= 0 ? m->tensors[t].shares : t;
            if (i > m->zero_at[root])
                m->zero_at[root] = i;
        }
    }
    for (int o = 0; o < m->n_outputs; o++) {
        int t = m->outputs[o].tensor;
        m->zero_at[m->tensors[t].shares >= 0 ? m->tensors[t].shares : t] = GRAD_ZERO_FIRST;
    }
}

/* Zeroes n floats; large buffers on all threads, a slice each (one thread alone leaves most
 * of the memory bandwidth unused: a ptl-resnet18 step zeroes about 230 MB). */
static void zero_floats(float *p, size_t n)
{
    enum { SLICE = 1 << 16 }; /* floats per piece: 256 KB; fork from 4 pieces (1 MB) on */
    long pieces = (long)((n + SLICE - 1) / SLICE);
#pragma omp parallel for schedule(static) if (pieces >= 4)
    for (long k = 0; k < pieces; k++) {
        size_t lo = (size_t)k * SLICE, len = n - lo < SLICE ? n - lo : SLICE;
        memset(p + lo, 0, len * sizeof *p);
    }
}

/* Zeroes the gradient storages whose zero_at is `when`. */
static void zero_grads(struct ptl_model *m, int when)
{
    for (int t = 0; t < m->n_tensors; t++)
        if (m->zero_at[t] == when && m->tensors[t].shares < 0)
            zero_floats(m->act_grad + m->tensors[t].offset, (size_t)m->batch * graph_numel(m, t));
}

/* Lays out the arenas for a batch of n (only when n changes). */
static int graph_plan(struct ptl_model *m, int n)
{
    if (n == m->batch && m->act != NULL)
        return PTL_OK;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].ops == &ptl_node_relu)
            m->tensors[m->nodes[i].out].shares =
                relu_can_share(m, &m->nodes[i]) ? m->nodes[i].in[0] : -1;
    size_t act = 0, saved = 0, work = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        int sh = m->tensors[t].shares;
        if (sh >= 0) { /* a producer comes before its readers, so sh < t is laid out */
            m->tensors[t].offset = m->tensors[sh].offset;
            continue;
        }
        m->tensors[t].offset = act;
        act += (size_t)n * graph_numel(m, t);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const struct ptl_node *node = &m->nodes[i];
        if (node->ops->saved_floats)
            saved += node->ops->saved_floats(m, node, n);
        if (node->ops->workspace_floats) {
            size_t w = node->ops->workspace_floats(m, node, n);
            if (w > work)
                work = w;
        }
    }
    free(m->act);
    free(m->act_grad);
    free(m->saved);
    free(m->workspace);
    m->act = ptl__alloc_large(act * sizeof(float));
    m->act_grad = ptl__alloc_large(act * sizeof(float));
    free(m->zero_at);
    m->zero_at = malloc((size_t)m->n_tensors * sizeof *m->zero_at);
    m->saved = ptl__alloc_large(saved * sizeof(float));
    m->workspace = ptl__alloc_large(work * sizeof(float));
    if (!m->act || !m->act_grad || !m->saved || !m->workspace || !m->zero_at) {
        m->batch = 0;
        return ptl_error(PTL_ENOMEM, "%s: out of memory for a batch of %d (%.1f MiB of activations)",
                         m->arch, n, 2.0 * act * sizeof(float) / 1048576.0);
    }
    m->act_floats = act;
    m->workspace_floats = work;
    plan_grad_zeroing(m);
    size_t off = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        struct ptl_node *node = &m->nodes[i];
        node->saved = m->saved + off;
        if (node->ops->saved_floats)
            off += node->ops->saved_floats(m, node, n);
    }
    m->batch = n;
    return PTL_OK;
}

/* Prefixes the kernel's message with the model and node. The message is copied first:
 * formatting ptl_error_message() into the buffer it lives in would overlap. */
static int node_error(const struct ptl_model *m, const struct ptl_node *node, int rc,
                      const char *phase)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", ptl_error_message());
    return ptl_error(rc, "%s: %s '%s'%s: %s", m->arch, node->ops->kind, node->name, phase, msg);
}

int ptl_model_forward(struct ptl_model *m, const float *input, int n, int train)
{
    if (m == NULL || input == NULL || n < 1)
        return ptl_error(PTL_EINVAL, "model forward: needs a model, an input and a batch >= 1");
    /* Until this forward completes there is nothing consistent to run backward on. */
    m->last_train = 0;
    int rc = graph_plan(m, n);
    if (rc != 0)
        return rc;
    memcpy(graph_act(m, m->input), input, (size_t)n * graph_numel(m, m->input) * sizeof(float));
    for (int i = 0; i < m->n_nodes; i++) {
        struct ptl_node *node = &m->nodes[i];
        double t0 = m->prof ? graph_clock() : 0;
        rc = node->ops->forward(m, node, train);
        if (m->prof)
            m->prof[2 * i] += graph_clock() - t0;
        if (rc != 0)
            return node_error(m, node, rc, "");
    }
    m->last_train = train;
    return PTL_OK;
}

/* Tells the grads_ready hook which entries node i completed (node -1: the unused ones). */
static void report_ready(struct ptl_model *m, int node)
{
    int ready[64], n = 0;
    for (size_t e = 0; e < m->n_entries; e++) {
        if (m->final_node[e] != node)
            continue;
        if (n == (int)(sizeof ready / sizeof ready[0])) {
            m->grads_ready(m->grads_ready_ctx, ready, n);
            n = 0;
        }
        ready[n++] = (int)e;
    }
    m->grads_ready(m->grads_ready_ctx, ready, n);
}

/* final_node[] for every entry (lazily, once). */
static int compute_final_nodes(struct ptl_model *m)
{
    if (m->final_node)
        return PTL_OK;
    m->final_node = malloc((m->n_entries ? m->n_entries : 1) * sizeof *m->final_node);
    if (m->final_node == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", m->arch);
    for (size_t e = 0; e < m->n_entries; e++)
        m->final_node[e] = -1;
    /* Backward runs the nodes in reverse, so an entry's gradient is complete after its
     * lowest-index user (shared nodes, as in MGN, use one entry from several nodes). */
    for (int i = m->n_nodes - 1; i >= 0; i--)
        for (int p = 0; p < PTL_NODE_MAX_PARAMS; p++) {
            int e = m->nodes[i].param[p];
            if (e >= 0 && m->entries[e].kind == PTL_ENTRY_PARAM)
                m->final_node[e] = i;
        }
    return PTL_OK;
}

int ptl_model_set_grads_ready(struct ptl_model *m, ptl_model_grads_ready_fn fn, void *ctx)
{
    int rc = fn ? compute_final_nodes(m) : PTL_OK;
    m->grads_ready = rc == 0 ? fn : NULL;
    m->grads_ready_ctx = ctx;
    return rc;
}

int ptl_model_grad_order(struct ptl_model *m, int *order)
{
    int rc = compute_final_nodes(m), n = 0;
    if (rc != 0)
        return rc;
    for (size_t e = 0; e < m->n_entries; e++)
        if (m->entries[e].kind == PTL_ENTRY_PARAM && m->final_node[e] == -1)
            order[n++] = (int)e;
    for (int i = m->n_nodes - 1; i >= 0; i--)
        for (size_t e = 0; e < m->n_entries; e++)
            if (m->final_node[e] == i)
                order[n++] = (int)e;
    return n;
}

void ptl_model_set_bn_sum(struct ptl_model *m, ptl_model_sum_fn fn, void *ctx)
{
    m->bn_sum = fn;
    m->bn_sum_ctx = ctx;
}

void ptl_model_set_slot_base(struct ptl_model *m, int base)
{
    m->slot_base = base;
}

int ptl_model_backward(struct ptl_model *m, const float *const *d_outputs, float *d_input)
{
    if (m == NULL || d_outputs == NULL)
        return ptl_error(PTL_EINVAL, "model backward: needs a model and output gradients");
    if (m->act == NULL || !m->last_train)
        return ptl_error(PTL_EINVAL, "%s: backward needs a training-mode forward first", m->arch);
    int n = m->batch;
    zero_grads(m, GRAD_ZERO_FIRST);
    for (int i = 0; i < m->n_outputs; i++) {
        if (d_outputs[i] == NULL)
            continue;
        int t = m->outputs[i].tensor;
        float *g = graph_act_grad(m, t);
        size_t len = (size_t)n * graph_numel(m, t);
        for (size_t k = 0; k < len; k++)
            g[k] += d_outputs[i][k];
    }
    m->tensors[m->input].needs_grad = d_input != NULL;
    if (m->grads_ready)
        report_ready(m, -1);
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        struct ptl_node *node = &m->nodes[i];
        double t0 = m->prof ? graph_clock() : 0;
        zero_grads(m, i);
        int rc = node->ops->backward(m, node);
        if (m->prof)
            m->prof[2 * i + 1] += graph_clock() - t0;
        if (rc != 0) {
            m->tensors[m->input].needs_grad = 0;
            return node_error(m, node, rc, " backward");
        }
        if (m->grads_ready)
            report_ready(m, i);
    }
    if (d_input != NULL) {
        size_t len = (size_t)n * graph_numel(m, m->input);
        const float *g = m->act_grad + m->tensors[m->input].offset;
        for (size_t k = 0; k < len; k++)
            d_input[k] += g[k];
    }
    m->tensors[m->input].needs_grad = 0;
    return PTL_OK;
}

void ptl_model_zero_grad(struct ptl_model *m)
{
    zero_floats(m->grads, m->n_param_floats);
}

void ptl_model_reset_state(struct ptl_model *m, uint64_t epoch)
{
    m->epoch = epoch;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].free_state && m->nodes[i].state) {
            m->nodes[i].free_state(m->nodes[i].state);
            m->nodes[i].state = NULL;
        }
}

void ptl_model_free(struct ptl_model *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].in);
        if (m->nodes[i].free_state && m->nodes[i].state)
            m->nodes[i].free_state(m->nodes[i].state);
    }
    for (size_t i = 0; i < m->n_entries; i++)
        free((char *)m->entries[i].name);
    free(m->nodes);
    free(m->tensors);
    free(m->entries);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->act);
    free(m->act_grad);
    free(m->saved);
    free(m->workspace);
    free(m->final_node);
    free(m->prof);
    free(m->zero_at);
    free(m);
}

/* ---- accessors ---- */
const char *ptl_model_arch(const struct ptl_model *m)
{
    return m->arch;
}
size_t ptl_model_entry_count(const struct ptl_model *m)
{
    return m->n_entries;
}
const struct ptl_entry *ptl_model_entry(const struct ptl_model *m, size_t i)
{
    return i < m->n_entries ? &m->entries[i] : NULL;
}
long ptl_model_find_entry(const struct ptl_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_entries; i++)
        if (strcmp(m->entries[i].name, name) == 0)
            return (long)i;
    return -1;
}
float *ptl_model_entry_data(struct ptl_model *m, size_t i)
{
    const struct ptl_entry *e = &m->entries[i];
    return (e->kind == PTL_ENTRY_PARAM ? m->params : m->buffers) + e->offset;
}
float *ptl_model_params(struct ptl_model *m)
{
    return m->params;
}
float *ptl_model_grads(struct ptl_model *m)
{
    return m->grads;
}
size_t ptl_model_param_floats(const struct ptl_model *m)
{
    return m->n_param_floats;
}
float *ptl_model_buffers(struct ptl_model *m)
{
    return m->buffers;
}
size_t ptl_model_buffer_floats(const struct ptl_model *m)
{
    return m->n_buffer_floats;
}
size_t ptl_model_param_floats_in(const struct ptl_model *m, enum ptl_role role)
{
    size_t s = 0;
    for (size_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].kind == PTL_ENTRY_PARAM && m->entries[i].role == role)
            s += m->entries[i].count;
    return s;
}
int ptl_model_output_count(const struct ptl_model *m)
{
    return m->n_outputs;
}
const char *ptl_model_output_name(const struct ptl_model *m, int i)
{
    return i >= 0 && i < m->n_outputs ? m->outputs[i].name : NULL;
}
const float *ptl_model_output(const struct ptl_model *m, int i, int *dim)
{
    if (i < 0 || i >= m->n_outputs || m->act == NULL)
        return NULL;
    int t = m->outputs[i].tensor;
    if (dim)
        *dim = (int)graph_numel(m, t);
    return m->act + m->tensors[t].offset;
}
int ptl_model_output_dim(const struct ptl_model *m, int i)
{
    return i < 0 || i >= m->n_outputs ? -1 : (int)graph_numel(m, m->outputs[i].tensor);
}

double ptl_model_flops(const struct ptl_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].ops->flops)
            f += m->nodes[i].ops->flops(m, &m->nodes[i]);
    return f;
}
