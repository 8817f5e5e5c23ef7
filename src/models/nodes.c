/* The op kinds of the graph (everything but the BConv-Cell, see cell.c): for each, a builder
 * that checks shapes and registers parameters with their PyTorch names, and the forward /
 * backward glue from graph tensors to the kernels of ptl/ops.h. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "models/graph.h"
#include "ptl/core.h"

static struct ptl_tensor *tin(struct ptl_model *m, const struct ptl_node *node, int i)
{
    return &m->tensors[node->in[i]];
}
static struct ptl_tensor *tout(struct ptl_model *m, const struct ptl_node *node)
{
    return &m->tensors[node->out];
}

/* ---------------- conv2d ---------------- */
static struct ptl_conv2d_shape conv_shape(const struct ptl_model *m, const struct ptl_node *node,
                                          int n)
{
    const struct ptl_tensor *x = &m->tensors[node->in[0]];
    return (struct ptl_conv2d_shape){
        .n = n, .c_in = x->c, .h = x->h, .w = x->w, .c_out = node->a.conv.c_out,
        .kh = node->a.conv.kh, .kw = node->a.conv.kw, .stride_h = node->a.conv.stride_h,
        .stride_w = node->a.conv.stride_w, .pad_h = node->a.conv.pad_h, .pad_w = node->a.conv.pad_w};
}
static size_t conv_workspace(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    struct ptl_conv2d_shape s = conv_shape(m, node, n);
    return ptl_conv2d_workspace_floats(&s);
}
static int conv_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    struct ptl_conv2d_shape s = conv_shape(m, node, m->batch);
    return ptl_conv2d_forward(graph_act(m, node->out), graph_act(m, node->in[0]),
                              graph_param(m, node, 0), graph_param(m, node, 1), &s, m->workspace);
}
static int conv_backward(struct ptl_model *m, struct ptl_node *node)
{
    struct ptl_conv2d_shape s = conv_shape(m, node, m->batch);
    return ptl_conv2d_backward(graph_act_grad(m, node->in[0]), graph_param_grad(m, node, 0),
                               graph_param_grad(m, node, 1), graph_act_grad(m, node->out),
                               graph_act(m, node->in[0]), graph_param(m, node, 0), &s,
                               m->workspace);
}
static double conv_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    const struct ptl_tensor *x = &m->tensors[node->in[0]], *y = &m->tensors[node->out];
    return 2.0 * y->c * y->h * y->w * x->c * node->a.conv.kh * node->a.conv.kw;
}
const struct ptl_node_ops ptl_node_conv = {"conv2d", NULL, conv_workspace, conv_forward,
                                           conv_backward, conv_flops};

int graph_conv_rect(struct ptl_model *m, const char *name, int x, int c_out, int kh, int kw,
                    int stride_h, int stride_w, int pad_h, int pad_w, int bias)
{
    if (m->error)
        return -1;
    /* Copied: graph_add_node may move m->tensors, which a pointer would not survive. */
    const struct ptl_tensor t = m->tensors[x];
    struct ptl_conv2d_shape s = {1, t.c, t.h, t.w, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w};
    int ho, wo;
    if (ptl_conv2d_output_size(&s, &ho, &wo) != 0)
        return graph_fail(m, PTL_EINVAL, "conv '%s': %s", name, ptl_error_message());
    int id = graph_add_node(m, &ptl_node_conv, name, &x, 1, c_out, ho, wo);
    if (id < 0)
        return -1;
    struct ptl_node *node = &m->nodes[id];
    node->a.conv.c_out = c_out;
    node->a.conv.kh = kh;
    node->a.conv.kw = kw;
    node->a.conv.stride_h = stride_h;
    node->a.conv.stride_w = stride_w;
    node->a.conv.pad_h = pad_h;
    node->a.conv.pad_w = pad_w;
    char full[160];
    int wshape[4] = {c_out, t.c, kh, kw};
    snprintf(full, sizeof full, "%s.weight", name);
    node->param[0] = graph_entry(m, full, PTL_ENTRY_PARAM, 4, wshape);
    if (bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        m->nodes[id].param[1] = graph_entry(m, full, PTL_ENTRY_PARAM, 1, &c_out);
    }
    return m->error ? -1 : m->nodes[id].out;
}

int graph_conv(struct ptl_model *m, const char *name, int x, int c_out, int k, int stride, int pad,
               int bias)
{
    return graph_conv_rect(m, name, x, c_out, k, k, stride, stride, pad, pad, bias);
}

int graph_conv_shared(struct ptl_model *m, const char *name, int x, int like_node)
{
    if (m->error)
        return -1;
    const struct ptl_node *like = &m->nodes[like_node];
    if (like->ops != &ptl_node_conv || m->tensors[x].c != m->tensors[like->in[0]].c)
        return graph_fail(m, PTL_EINVAL, "conv '%s': cannot share the parameters of '%s'", name,
                          like->name);
    const struct ptl_tensor *t = &m->tensors[x];
    struct ptl_conv2d_shape s = conv_shape(m, like, 1);
    s.h = t->h;
    s.w = t->w;
    int ho, wo;
    if (ptl_conv2d_output_size(&s, &ho, &wo) != 0)
        return graph_fail(m, PTL_EINVAL, "conv '%s': %s", name, ptl_error_message());
    union ptl_node_attrs a = like->a;
    int p0 = like->param[0], p1 = like->param[1];
    int id = graph_add_node(m, &ptl_node_conv, name, &x, 1, s.c_out, ho, wo);
    if (id < 0)
        return -1;
    m->nodes[id].a = a;
    m->nodes[id].param[0] = p0;
    m->nodes[id].param[1] = p1;
    return m->nodes[id].out;
}

/* ---------------- batchnorm (2d; 1d is hw = 1) ---------------- */
enum { BN_GAMMA, BN_BETA, BN_MEAN, BN_VAR, BN_COUNT };

static struct ptl_batchnorm_shape bn_shape(const struct ptl_model *m, const struct ptl_node *node)
{
    const struct ptl_tensor *x = &m->tensors[node->in[0]];
    return (struct ptl_batchnorm_shape){.n = m->batch, .c = x->c, .hw = x->h * x->w,
                                        .eps = node->a.bn.eps, .momentum = node->a.bn.momentum};
}
/* Saved per node: the float mean and 1/std of forward_train (C each), then, 8-byte aligned,
 * SyncBN's double mean and 1/std (C each, kept in double so backward needs no third sum over
 * processes to match backward_train's exact small-count path) and the global count (0 when the
 * last training forward was not SyncBN). Reserved for every BN node: the hook may be set after
 * the arena is laid out, and 4C + 3 floats are nothing next to the activations. */
static size_t bn_saved(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    (void)n;
    size_t c = (size_t)m->tensors[node->in[0]].c;
    return 2 * c + 1 + 2 * (2 * c + 1);
}
static double *bn_saved_doubles(const struct ptl_node *node, int c)
{
    uintptr_t p = (uintptr_t)(node->saved + 2 * (size_t)c);
    p = (p + sizeof(double) - 1) & ~(uintptr_t)(sizeof(double) - 1);
    return (double *)p;
}
/* SyncBN scratch, only during one call: 2C + 1 doubles (the workspace is malloc-aligned). */
static size_t bn_workspace(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    (void)n;
    return 2 * (2 * (size_t)m->tensors[node->in[0]].c + 1);
}

/* Training forward with the statistics of the whole batch over all processes: two sums over
 * processes (per-channel sums with the count, then squared deviations around the global mean),
 * as forward_train's two passes. */
static int bn_forward_sync(struct ptl_model *m, struct ptl_node *node,
                           const struct ptl_batchnorm_shape *s, float *out, const float *in)
{
    const int c = s->c;
    double *mean = bn_saved_doubles(node, c), *invstd = mean + c, *buf = (double *)m->workspace;
    int rc = ptl_batchnorm_split_sum(buf, in, s);
    if (rc != PTL_OK)
        return rc;
    buf[c] = (double)s->n * s->hw;
    rc = m->bn_sum(m->bn_sum_ctx, buf, c + 1);
    if (rc != PTL_OK)
        return rc;
    const double count = buf[c]; /* checked by split_forward: every process fails alike */
    for (int ch = 0; ch < c; ch++)
        mean[ch] = buf[ch] / count;
    rc = ptl_batchnorm_split_sqdev(buf, in, mean, s);
    if (rc != PTL_OK)
        return rc;
    rc = m->bn_sum(m->bn_sum_ctx, buf, c);
    if (rc != PTL_OK)
        return rc;
    rc = ptl_batchnorm_split_forward(out, invstd, graph_param(m, node, BN_MEAN),
                                     graph_param(m, node, BN_VAR), in,
                                     graph_param(m, node, BN_GAMMA),
                                     graph_param(m, node, BN_BETA), mean, buf, count, s);
    if (rc == PTL_OK)
        invstd[c] = count; /* for backward */
    return rc;
}

static int bn_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    struct ptl_batchnorm_shape s = bn_shape(m, node);
    float *out = graph_act(m, node->out);
    const float *in = graph_act(m, node->in[0]);
    if (!train)
        return ptl_batchnorm_forward_eval(out, in, graph_param(m, node, BN_GAMMA),
                                          graph_param(m, node, BN_BETA),
                                          graph_param(m, node, BN_MEAN),
                                          graph_param(m, node, BN_VAR), &s);
    double *sync_count = bn_saved_doubles(node, s.c) + 2 * (size_t)s.c; /* 0: not SyncBN */
    *sync_count = 0.0;
    int rc;
    if (m->bn_sum != NULL)
        rc = bn_forward_sync(m, node, &s, out, in);
    else
        rc = ptl_batchnorm_forward_train(out, node->saved, node->saved + s.c,
                                         graph_param(m, node, BN_MEAN),
                                         graph_param(m, node, BN_VAR), in,
                                         graph_param(m, node, BN_GAMMA),
                                         graph_param(m, node, BN_BETA), &s);
    float *count = graph_param(m, node, BN_COUNT);
    if (rc == 0 && count)
        *count += 1.0f;
    return rc;
}

/* Backward of a SyncBN forward: one sum over processes of [sum(dy)..., sum(dy*(x-mean))...].
 * d_gamma / d_beta get this process's share only (the gradient averaging adds the others);
 * d_in uses the global sums, which is PyTorch's SyncBatchNorm. */
static int bn_backward_sync(struct ptl_model *m, struct ptl_node *node,
                            const struct ptl_batchnorm_shape *s)
{
    const int c = s->c;
    const double *mean = bn_saved_doubles(node, c), *invstd = mean + c;
    const double count = invstd[c];
    double *buf = (double *)m->workspace;
    const float *dy = graph_act_grad(m, node->out), *in = graph_act(m, node->in[0]);
    int rc = ptl_batchnorm_split_backward_sums(buf, buf + c, graph_param_grad(m, node, BN_GAMMA),
                                               graph_param_grad(m, node, BN_BETA), dy, in, mean,
                                               invstd, s);
    if (rc != PTL_OK)
        return rc;
    /* Every process joins the sum, even one that needs no input gradient. */
    rc = m->bn_sum(m->bn_sum_ctx, buf, 2 * c);
    if (rc != PTL_OK)
        return rc;
    float *d_in = graph_act_grad(m, node->in[0]);
    if (d_in == NULL)
        return PTL_OK;
    return ptl_batchnorm_split_backward_input(d_in, dy, in, graph_param(m, node, BN_GAMMA), mean,
                                              invstd, buf, buf + c, count, s);
}

static int bn_backward(struct ptl_model *m, struct ptl_node *node)
{
    struct ptl_batchnorm_shape s = bn_shape(m, node);
    if (bn_saved_doubles(node, s.c)[2 * (size_t)s.c] != 0.0) {
        if (m->bn_sum == NULL)
            return ptl_error(PTL_EINVAL, "batchnorm: the SyncBN hook was removed between "
                                         "forward and backward");
        return bn_backward_sync(m, node, &s);
    }
    return ptl_batchnorm_backward_train(graph_act_grad(m, node->in[0]),
                                        graph_param_grad(m, node, BN_GAMMA),
                                        graph_param_grad(m, node, BN_BETA),
                                        graph_act_grad(m, node->out), graph_act(m, node->in[0]),
                                        node->saved, node->saved + s.c,
                                        graph_param(m, node, BN_GAMMA), &s);
}
static double bn_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    return 2.0 * graph_numel(m, node->out);
}
const struct ptl_node_ops ptl_node_bn = {"batchnorm", bn_saved, bn_workspace, bn_forward,
                                         bn_backward, bn_flops};

int graph_bn(struct ptl_model *m, const char *name, int x)
{
    if (m->error)
        return -1;
    const struct ptl_tensor *t = &m->tensors[x];
    int c = t->c;
    int id = graph_add_node(m, &ptl_node_bn, name, &x, 1, t->c, t->h, t->w);
    if (id < 0)
        return -1;
    m->nodes[id].a.bn.eps = 1e-5f;
    m->nodes[id].a.bn.momentum = 0.1f;
    static const char *const leaf[] = {"weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked"};
    for (int i = 0; i < 5; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", name, leaf[i]);
        enum ptl_entry_kind kind =
            i < 2 ? PTL_ENTRY_PARAM : (i < 4 ? PTL_ENTRY_BUFFER : PTL_ENTRY_COUNTER);
        m->nodes[id].param[i] = graph_entry(m, full, kind, i < 4 ? 1 : 0, &c);
    }
    return m->error ? -1 : m->nodes[id].out;
}

int graph_bn_shared(struct ptl_model *m, const char *name, int x, int like_node)
{
    if (m->error)
        return -1;
    const struct ptl_node *like = &m->nodes[like_node];
    const struct ptl_tensor *t = &m->tensors[x];
    if (like->ops != &ptl_node_bn || t->c != m->tensors[like->in[0]].c)
        return graph_fail(m, PTL_EINVAL, "batchnorm '%s': cannot share '%s'", name, like->name);
    struct ptl_node copy = *like;
    int id = graph_add_node(m, &ptl_node_bn, name, &x, 1, t->c, t->h, t->w);
    if (id < 0)
        return -1;
    m->nodes[id].a = copy.a;
    memcpy(m->nodes[id].param, copy.param, sizeof copy.param);
    return m->nodes[id].out;
}

/* ---------------- element-wise activations ---------------- */
static int relu_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    return ptl_relu_forward(graph_act(m, node->out), graph_act(m, node->in[0]),
                            (size_t)m->batch * graph_numel(m, node->out));
}
static int relu_backward(struct ptl_model *m, struct ptl_node *node)
{
    float *d_in = graph_act_grad(m, node->in[0]);
    size_t len = (size_t)m->batch * graph_numel(m, node->out);
    if (d_in == NULL)
        return 0;
    /* In place (graph_plan): the input's gradient storage is the output's, and nothing else
     * reads the input, so it holds exactly d_out. */
    if (m->tensors[node->out].shares == node->in[0])
        return ptl_relu_backward_inplace(d_in, graph_act(m, node->out), len);
    return ptl_relu_backward(d_in, graph_act_grad(m, node->out), graph_act(m, node->out), len);
}
const struct ptl_node_ops ptl_node_relu = {"relu", NULL, NULL, relu_forward, relu_backward, NULL};

static int unary(struct ptl_model *m, const struct ptl_node_ops *ops, int x)
{
    if (m->error)
        return -1;
    const struct ptl_tensor *t = &m->tensors[x];
    int id = graph_add_node(m, ops, "", &x, 1, t->c, t->h, t->w);
    return id < 0 ? -1 : m->nodes[id].out;
}
int graph_relu(struct ptl_model *m, int x)
{
    return unary(m, &ptl_node_relu, x);
}

/* ---------------- pooling ---------------- */
static struct ptl_pool2d_shape pool_shape(const struct ptl_model *m, const struct ptl_node *node,
                                          int n)
{
    const struct ptl_tensor *x = &m->tensors[node->in[0]];
    return (struct ptl_pool2d_shape){
        .n = n, .c = x->c, .h = x->h, .w = x->w, .kh = node->a.pool.kh, .kw = node->a.pool.kw,
        .stride_h = node->a.pool.stride_h, .stride_w = node->a.pool.stride_w,
        .pad_h = node->a.pool.pad_h, .pad_w = node->a.pool.pad_w};
}
/* argmax indices (int32) of max-pools live in the saved arena, one per output element. */
static size_t argmax_saved(const struct ptl_model *m, const struct ptl_node *node, int n)
{
    return (size_t)n * graph_numel(m, node->out);
}
static int maxpool_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    struct ptl_pool2d_shape s = pool_shape(m, node, m->batch);
    return ptl_maxpool2d_forward(graph_act(m, node->out), (int32_t *)node->saved,
                                 graph_act(m, node->in[0]), &s);
}
static int maxpool_backward(struct ptl_model *m, struct ptl_node *node)
{
    float *d_in = graph_act_grad(m, node->in[0]);
    if (d_in == NULL)
        return 0;
    struct ptl_pool2d_shape s = pool_shape(m, node, m->batch);
    return ptl_maxpool2d_backward(d_in, graph_act_grad(m, node->out), (const int32_t *)node->saved,
                                  &s);
}
static double pool_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    return (double)graph_numel(m, node->out) * node->a.pool.kh * node->a.pool.kw;
}
const struct ptl_node_ops ptl_node_maxpool = {"maxpool2d", argmax_saved, NULL, maxpool_forward,
                                              maxpool_backward, pool_flops};

static int avgpool_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    struct ptl_pool2d_shape s = pool_shape(m, node, m->batch);
    return ptl_avgpool2d_forward(graph_act(m, node->out), graph_act(m, node->in[0]), &s,
                                 node->a.pool.count_include_pad);
}
static int avgpool_backward(struct ptl_model *m, struct ptl_node *node)
{
    float *d_in = graph_act_grad(m, node->in[0]);
    if (d_in == NULL)
        return 0;
    struct ptl_pool2d_shape s = pool_shape(m, node, m->batch);
    return ptl_avgpool2d_backward(d_in, graph_act_grad(m, node->out), &s,
                                  node->a.pool.count_include_pad);
}
const struct ptl_node_ops ptl_node_avgpool = {"avgpool2d", NULL, NULL, avgpool_forward,
                                              avgpool_backward, pool_flops};

static int add_pool(struct ptl_model *m, const struct ptl_node_ops *ops, int x, int kh, int kw,
                    int sh, int sw, int ph, int pw, int count_include_pad)
{
    if (m->error)
        return -1;
    const struct ptl_tensor *t = &m->tensors[x];
    struct ptl_pool2d_shape s = {1, t->c, t->h, t->w, kh, kw, sh, sw, ph, pw};
    int ho, wo;
    if (ptl_pool2d_output_size(&s, &ho, &wo) != 0)
        return graph_fail(m, PTL_EINVAL, "%s: %s", ops->kind, ptl_error_message());
    int id = graph_add_node(m, ops, "", &x, 1, t->c, ho, wo);
    if (id < 0)
        return -1;
    struct ptl_node *node = &m->nodes[id];
    node->a.pool.kh = kh;
    node->a.pool.kw = kw;
    node->a.pool.stride_h = sh;
    node->a.pool.stride_w = sw;
    node->a.pool.pad_h = ph;
    node->a.pool.pad_w = pw;
    node->a.pool.count_include_pad = count_include_pad;
    return node->out;
}
int graph_maxpool(struct ptl_model *m, int x, int kh, int kw, int stride_h, int stride_w,
                  int pad_h, int pad_w)
{
    return add_pool(m, &ptl_node_maxpool, x, kh, kw, stride_h, stride_w, pad_h, pad_w, 0);
}
int graph_avgpool(struct ptl_model *m, int x, int k, int stride, int pad, int count_include_pad)
{
    return add_pool(m, &ptl_node_avgpool, x, k, k, stride, stride, pad, pad, count_include_pad);
}

/* ---------------- adaptive pooling ---------------- */
static int adaptive_avg_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    const struct ptl_tensor *x = tin(m, node, 0), *y = tout(m, node);
    return ptl_adaptive_avgpool2d_forward(graph_act(m, node->out), graph_act(m, node->in[0]),
                                          m->batch, x->c, x->h, x->w, y->h, y->w);
}
static int adaptive_avg_backward(struct ptl_model *m, struct ptl_node *node)
{
    float *d_in = graph_act_grad(m, node->in[0]);
    if (d_in == NULL)
        return 0;
    const struct ptl_tensor *x = tin(m, node, 0), *y = tout(m, node);
    return ptl_adaptive_avgpool2d_backward(d_in, graph_act_grad(m, node->out), m->batch, x->c,
                                           x->h, x->w, y->h, y->w);
}
static double adaptive_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    return (double)graph_numel(m, node->in[0]);
}
const struct ptl_node_ops ptl_node_adaptive_avgpool = {
    "adaptive_avgpool2d", NULL, NULL, adaptive_avg_forward, adaptive_avg_backward, adaptive_flops};

static int adaptive_max_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    const struct ptl_tensor *x = tin(m, node, 0), *y = tout(m, node);
    return ptl_adaptive_maxpool2d_forward(graph_act(m, node->out), (int32_t *)node->saved,
                                          graph_act(m, node->in[0]), m->batch, x->c, x->h, x->w,
                                          y->h, y->w);
}
static int adaptive_max_backward(struct ptl_model *m, struct ptl_node *node)
{
    float *d_in = graph_act_grad(m, node->in[0]);
    if (d_in == NULL)
        return 0;
    const struct ptl_tensor *x = tin(m, node, 0), *y = tout(m, node);
    return ptl_adaptive_maxpool2d_backward(d_in, graph_act_grad(m, node->out),
                                           (const int32_t *)node->saved, m->batch, x->c, x->h,
                                           x->w, y->h, y->w);
}
const struct ptl_node_ops ptl_node_adaptive_maxpool = {"adaptive_maxpool2d", argmax_saved, NULL,
                                                       adaptive_max_forward, adaptive_max_backward,
                                                       adaptive_flops};

static int add_adaptive(struct ptl_model *m, const struct ptl_node_ops *ops, int x, int ho, int wo)
{
    if (m->error)
        return -1;
    const struct ptl_tensor *t = &m->tensors[x];
    if (ho < 1 || wo < 1 || ho > t->h || wo > t->w)
        return graph_fail(m, PTL_EINVAL, "%s: output %dx%d from input %dx%d", ops->kind, ho, wo,
                          t->h, t->w);
    int id = graph_add_node(m, ops, "", &x, 1, t->c, ho, wo);
    return id < 0 ? -1 : m->nodes[id].out;
}
int graph_adaptive_avgpool(struct ptl_model *m, int x, int h_out, int w_out)
{
    return add_adaptive(m, &ptl_node_adaptive_avgpool, x, h_out, w_out);
}
int graph_adaptive_maxpool(struct ptl_model *m, int x, int h_out, int w_out)
{
    return add_adaptive(m, &ptl_node_adaptive_maxpool, x, h_out, w_out);
}

/* ---------------- add, concat, rows ---------------- */
static int add_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    return ptl_add_forward(graph_act(m, node->out), graph_act(m, node->in[0]),
                           graph_act(m, node->in[1]), (size_t)m->batch * graph_numel(m, node->out));
}
static int add_backward(struct ptl_model *m, struct ptl_node *node)
{
    float *da = graph_act_grad(m, node->in[0]), *db = graph_act_grad(m, node->in[1]);
    if (da == NULL && db == NULL)
        return 0;
    return ptl_add_backward(da, db, graph_act_grad(m, node->out),
                            (size_t)m->batch * graph_numel(m, node->out));
}
static double add_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    return (double)graph_numel(m, node->out);
}
const struct ptl_node_ops ptl_node_add = {"add", NULL, NULL, add_forward, add_backward, add_flops};

int graph_add(struct ptl_model *m, int a, int b)
{
    if (m->error)
        return -1;
    const struct ptl_tensor *ta = &m->tensors[a], *tb = &m->tensors[b];
    if (ta->c != tb->c || ta->h != tb->h || ta->w != tb->w)
        return graph_fail(m, PTL_EINVAL, "add: shapes %dx%dx%d and %dx%dx%d differ", ta->c, ta->h,
                          ta->w, tb->c, tb->h, tb->w);
    int in[2] = {a, b};
    int id = graph_add_node(m, &ptl_node_add, "", in, 2, ta->c, ta->h, ta->w);
    return id < 0 ? -1 : m->nodes[id].out;
}

/* Copies each input into its channel range of the output (N, C_total, HW), or accumulates the
 * matching part of the output gradient back. Done here rather than through ptl_concat_* because
 * DenseNet concats can have dozens of inputs and the kernels take pointer arrays. */
static int concat_run(struct ptl_model *m, struct ptl_node *node, int backward)
{
    const struct ptl_tensor *y = tout(m, node);
    int hw = y->h * y->w, n = m->batch;
    float *out = backward ? graph_act_grad(m, node->out) : graph_act(m, node->out);
    int c0 = 0;
    for (int i = 0; i < node->n_in; i++) {
        const struct ptl_tensor *x = tin(m, node, i);
        size_t block = (size_t)x->c * hw;
        if (!backward) {
            const float *src = graph_act(m, node->in[i]);
            for (int b = 0; b < n; b++)
                memcpy(out + ((size_t)b * y->c + c0) * hw, src + b * block, block * sizeof(float));
        } else {
            float *dst = graph_act_grad(m, node->in[i]);
            if (dst != NULL)
                for (int b = 0; b < n; b++) {
                    const float *g = out + ((size_t)b * y->c + c0) * hw;
                    float *d = dst + b * block;
                    for (size_t k = 0; k < block; k++)
                        d[k] += g[k];
                }
        }
        c0 += x->c;
    }
    return 0;
}
static int concat_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    return concat_run(m, node, 0);
}
static int concat_backward(struct ptl_model *m, struct ptl_node *node)
{
    return concat_run(m, node, 1);
}
const struct ptl_node_ops ptl_node_concat = {"concat", NULL, NULL, concat_forward,
                                             concat_backward, NULL};

int graph_concat(struct ptl_model *m, const int *xs, int count)
{
    if (m->error)
        return -1;
    if (count < 1)
        return graph_fail(m, PTL_EINVAL, "concat of nothing");
    int c = 0;
    const struct ptl_tensor *t0 = &m->tensors[xs[0]];
    for (int i = 0; i < count; i++) {
        const struct ptl_tensor *t = &m->tensors[xs[i]];
        if (t->h != t0->h || t->w != t0->w)
            return graph_fail(m, PTL_EINVAL, "concat: input %d is %dx%d, input 0 is %dx%d", i,
                              t->h, t->w, t0->h, t0->w);
        c += t->c;
    }
    int id = graph_add_node(m, &ptl_node_concat, "", xs, count, c, t0->h, t0->w);
    return id < 0 ? -1 : m->nodes[id].out;
}

static int rows_run(struct ptl_model *m, struct ptl_node *node, int backward)
{
    const struct ptl_tensor *x = tin(m, node, 0), *y = tout(m, node);
    size_t planes = (size_t)m->batch * x->c, row = (size_t)x->w * node->a.rows.count;
    if (!backward) {
        const float *src = graph_act(m, node->in[0]);
        float *dst = graph_act(m, node->out);
        for (size_t p = 0; p < planes; p++)
            memcpy(dst + p * row, src + p * x->h * x->w + (size_t)node->a.rows.h0 * x->w,
                   row * sizeof(float));
        return 0;
    }
    float *d_in = graph_act_grad(m, node->in[0]);
    const float *g = graph_act_grad(m, node->out);
    if (d_in != NULL)
        for (size_t p = 0; p < planes; p++) {
            float *d = d_in + p * x->h * x->w + (size_t)node->a.rows.h0 * x->w;
            for (size_t k = 0; k < row; k++)
                d[k] += g[p * row + k];
        }
    (void)y;
    return 0;
}
static int rows_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    return rows_run(m, node, 0);
}
static int rows_backward(struct ptl_model *m, struct ptl_node *node)
{
    return rows_run(m, node, 1);
}
const struct ptl_node_ops ptl_node_rows = {"rows", NULL, NULL, rows_forward, rows_backward, NULL};

int graph_rows(struct ptl_model *m, int x, int h0, int count)
{
    if (m->error)
        return -1;
    const struct ptl_tensor *t = &m->tensors[x];
    if (h0 < 0 || count < 1 || h0 + count > t->h)
        return graph_fail(m, PTL_EINVAL, "rows [%d, %d) outside height %d", h0, h0 + count, t->h);
    int id = graph_add_node(m, &ptl_node_rows, "", &x, 1, t->c, count, t->w);
    if (id < 0)
        return -1;
    m->nodes[id].a.rows.h0 = h0;
    m->nodes[id].a.rows.count = count;
    return m->nodes[id].out;
}

/* ---------------- linear (flattens its input) ---------------- */
static int linear_forward(struct ptl_model *m, struct ptl_node *node, int train)
{
    (void)train;
    return ptl_linear_forward(graph_act(m, node->out), graph_act(m, node->in[0]),
                              graph_param(m, node, 0), graph_param(m, node, 1), m->batch,
                              (int)graph_numel(m, node->in[0]), node->a.linear.out_features);
}
static int linear_backward(struct ptl_model *m, struct ptl_node *node)
{
    return ptl_linear_backward(graph_act_grad(m, node->in[0]), graph_param_grad(m, node, 0),
                               graph_param_grad(m, node, 1), graph_act_grad(m, node->out),
                               graph_act(m, node->in[0]), graph_param(m, node, 0), m->batch,
                               (int)graph_numel(m, node->in[0]), node->a.linear.out_features);
}
static double linear_flops(const struct ptl_model *m, const struct ptl_node *node)
{
    return 2.0 * graph_numel(m, node->in[0]) * node->a.linear.out_features;
}
const struct ptl_node_ops ptl_node_linear = {"linear", NULL, NULL, linear_forward,
                                             linear_backward, linear_flops};

int graph_linear(struct ptl_model *m, const char *name, int x, int out_features, int bias)
{
    if (m->error)
        return -1;
    int in_f = (int)graph_numel(m, x);
    int id = graph_add_node(m, &ptl_node_linear, name, &x, 1, out_features, 1, 1);
    if (id < 0)
        return -1;
    m->nodes[id].a.linear.out_features = out_features;
    char full[160];
    int wshape[2] = {out_features, in_f};
    snprintf(full, sizeof full, "%s.weight", name);
    m->nodes[id].param[0] = graph_entry(m, full, PTL_ENTRY_PARAM, 2, wshape);
    if (bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        m->nodes[id].param[1] = graph_entry(m, full, PTL_ENTRY_PARAM, 1, &out_features);
    }
    return m->error ? -1 : m->nodes[id].out;
}
