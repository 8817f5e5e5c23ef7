/* Internal: the static graph behind struct ptl_model, and the builder the architecture
 * constructors (resnet.c, densenet.c, ptl.c, mgn.c) use.
 *
 * A graph is an ordered list of nodes; forward runs them in order, backward in reverse. Every
 * node writes one output tensor. Tensors are per-sample shapes (C, H, W); their storage for a
 * batch of N lives in one activation arena (and a gradient arena of the same layout), laid out
 * when the batch size changes. Builder calls never fail halfway: on the first error the graph
 * records it (m->error) and later calls return -1; the constructor checks it at the end.
 */
#ifndef PTL_MODELS_GRAPH_H
#define PTL_MODELS_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ptl/model.h"
#include "ptl/ops.h"

struct ptl_node;

/* One op kind: how to size, run and describe a node. */
struct ptl_node_ops {
    const char *kind;
    /* Floats of per-node storage kept from forward to backward for a batch of n
     * (e.g. BN's saved mean and 1/std, max-pool's argmax, the cell's gates). */
    size_t (*saved_floats)(const struct ptl_model *m, const struct ptl_node *node, int n);
    /* Floats of scratch used only during one call (shared by all nodes: the maximum). */
    size_t (*workspace_floats)(const struct ptl_model *m, const struct ptl_node *node, int n);
    int (*forward)(struct ptl_model *m, struct ptl_node *node, int train);
    int (*backward)(struct ptl_model *m, struct ptl_node *node);
    /* Forward FLOPs per sample. */
    double (*flops)(const struct ptl_model *m, const struct ptl_node *node);
};

struct ptl_tensor {
    int c, h, w;          /* per-sample shape */
    size_t offset;        /* into the arenas, for the current batch */
    int needs_grad;       /* some parameter or the input gradient depends on it */
    int shares;           /* tensor whose storage (and gradient storage) this one reuses, or -1:
                             an in-place ReLU's output shares its input's (graph_plan) */
};

/* Attributes of the op kinds (only the member of the node's kind is meaningful). */
union ptl_node_attrs {
    struct { int c_out, kh, kw, stride_h, stride_w, pad_h, pad_w; } conv;
    struct { float eps, momentum; } bn;
    struct { int kh, kw, stride_h, stride_w, pad_h, pad_w, count_include_pad; } pool;
    struct { int h_out, w_out; } adaptive;
    struct { int out_features; } linear;
    struct { int h0, count; } rows;  /* row slice [h0, h0 + count) */
    struct { int c_out, k, stride, pad, version, history; } cell;
};

#define PTL_NODE_MAX_PARAMS 8

struct ptl_node {
    const struct ptl_node_ops *ops;
    char name[96];      /* module path for the summary ("layer1.0.conv1"), "" for functional */
    int *in;            /* input tensor ids */
    int n_in;
    int out;            /* output tensor id */
    int param[PTL_NODE_MAX_PARAMS]; /* entry indices, -1 when absent (kind-specific order) */
    union ptl_node_attrs a;
    float *saved;       /* this node's part of the saved arena */
    void *state;        /* run state that survives batches (BConv-Cell latent state) */
    void (*free_state)(void *state);
};

struct ptl_output {
    char name[32];
    int tensor;
};

struct ptl_model {
    char arch[48];
    struct ptl_model_config cfg;

    struct ptl_node *nodes;
    int n_nodes, cap_nodes;
    struct ptl_tensor *tensors;
    int n_tensors, cap_tensors;
    int input;                  /* tensor id of the image input */
    struct ptl_output outputs[24];
    int n_outputs;

    struct ptl_entry *entries;
    size_t n_entries, cap_entries;
    size_t n_param_floats, n_buffer_floats;
    float *params, *grads, *buffers;

    enum ptl_role role;         /* role given to entries the builder registers next */
    /* Set by a constructor to initialise parameters its own way once they are allocated
     * (after PyTorch's default init); called by ptl_model_create. */
    void (*post_init)(struct ptl_model *m);
    /* The post_init a backbone constructor had set when a network built over it (ptl.c) put
     * its own in post_init: the wrapper's post_init calls this one first. */
    void (*post_init_backbone)(struct ptl_model *m);
    int error;                  /* first builder error (0 if none) */

    /* Batch-dependent storage, laid out by graph_plan(). */
    int batch;
    float *act, *act_grad;      /* activation arena and its gradient */
    int *zero_at;               /* per tensor: before which node's backward its gradient
                                   storage is zeroed (graph.c, plan_grad_zeroing) */
    size_t act_floats;
    float *saved;               /* per-node saved storage */
    float *workspace;
    size_t workspace_floats;
    int last_train;             /* mode of the last forward (backward needs a training one) */
    uint64_t epoch;             /* for the cells' initial state stream */

    /* Distributed hooks (model.h, ptl_model_set_*): unset on one rank. */
    int slot_base;              /* global index of this process's batch slot 0 */
    ptl_model_sum_fn bn_sum;    /* SyncBN: sums per-channel statistics over ranks */
    void *bn_sum_ctx;
    ptl_model_grads_ready_fn grads_ready;
    void *grads_ready_ctx;
    int *final_node;            /* per entry: the node whose backward completes its gradient
                                   (the lowest-index user; -1 when no node uses it) */
    double *prof;               /* profile.c: forward and backward seconds per node, or NULL */
};

/* ---- builder: each returns the output tensor id, or -1 after an error ---- */
void graph_init(struct ptl_model *m, const char *arch, const struct ptl_model_config *cfg);
int graph_input(struct ptl_model *m, int c, int h, int w);
/* Registers an entry and returns its index (or -1). shape[0..ndim). */
int graph_entry(struct ptl_model *m, const char *name, enum ptl_entry_kind kind, int ndim,
                const int *shape);
int graph_conv(struct ptl_model *m, const char *name, int x, int c_out, int k, int stride, int pad,
               int bias);
int graph_conv_rect(struct ptl_model *m, const char *name, int x, int c_out, int kh, int kw,
                    int stride_h, int stride_w, int pad_h, int pad_w, int bias);
int graph_bn(struct ptl_model *m, const char *name, int x);
/* Runs BN with the parameters of an existing BN node (MGN's shared reduction). */
int graph_bn_shared(struct ptl_model *m, const char *name, int x, int like_node);
int graph_conv_shared(struct ptl_model *m, const char *name, int x, int like_node);
int graph_relu(struct ptl_model *m, int x);
int graph_maxpool(struct ptl_model *m, int x, int kh, int kw, int stride_h, int stride_w,
                  int pad_h, int pad_w);
int graph_avgpool(struct ptl_model *m, int x, int k, int stride, int pad, int count_include_pad);
int graph_adaptive_avgpool(struct ptl_model *m, int x, int h_out, int w_out);
int graph_adaptive_maxpool(struct ptl_model *m, int x, int h_out, int w_out);
int graph_add(struct ptl_model *m, int a, int b);
int graph_concat(struct ptl_model *m, const int *xs, int count);
/* Rows [h0, h0 + count) of every channel (MGN's part stripes). */
int graph_rows(struct ptl_model *m, int x, int h0, int count);
/* Flattens (C, H, W) and applies Linear(C*H*W -> out_features). */
int graph_linear(struct ptl_model *m, const char *name, int x, int out_features, int bias);
/* Marks tensor x as output `name` (features first). */
int graph_output(struct ptl_model *m, const char *name, int x);
/* Index of the node that wrote tensor t. */
int graph_producer(const struct ptl_model *m, int t);
/* Records a builder error (first one wins) and returns -1. */
int graph_fail(struct ptl_model *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a node of kind ops with the given inputs and output shape; returns the node index. */
int graph_add_node(struct ptl_model *m, const struct ptl_node_ops *ops, const char *name,
                   const int *in, int n_in, int c, int h, int w);

/* CLOCK_MONOTONIC in seconds (profile.c). */
double graph_clock(void);

/* Allocates the flat parameter, gradient and buffer arrays once building is done, and
 * initialises them (PyTorch's default initialisers; constructors may override afterwards). */
int graph_finish(struct ptl_model *m);

/* ---- runtime helpers for the node implementations ---- */
static inline float *graph_act(struct ptl_model *m, int t)
{
    return m->act + m->tensors[t].offset;
}
static inline float *graph_act_grad(struct ptl_model *m, int t)
{
    return m->tensors[t].needs_grad ? m->act_grad + m->tensors[t].offset : NULL;
}
static inline float *graph_param(struct ptl_model *m, const struct ptl_node *node, int slot)
{
    int e = node->param[slot];
    if (e < 0)
        return NULL;
    const struct ptl_entry *en = &m->entries[e];
    return (en->kind == PTL_ENTRY_PARAM ? m->params : m->buffers) + en->offset;
}
static inline float *graph_param_grad(struct ptl_model *m, const struct ptl_node *node, int slot)
{
    int e = node->param[slot];
    if (e < 0 || m->entries[e].kind != PTL_ENTRY_PARAM)
        return NULL;
    return m->grads + m->entries[e].offset;
}
static inline size_t graph_numel(const struct ptl_model *m, int t)
{
    const struct ptl_tensor *x = &m->tensors[t];
    return (size_t)x->c * x->h * x->w;
}

/* The op kinds (nodes.c, cell.c). */
extern const struct ptl_node_ops ptl_node_conv, ptl_node_bn, ptl_node_relu,
    ptl_node_maxpool, ptl_node_avgpool, ptl_node_adaptive_avgpool, ptl_node_adaptive_maxpool,
    ptl_node_add, ptl_node_concat, ptl_node_rows, ptl_node_linear;

#endif
