/* PTL networks "ptl-<backbone>" (BConv-Cell v1) and "ptlv2-<backbone>" (v2) over every
 * ResNet and DenseNet backbone: the authors' MGN-PTL pattern generalised (docs/method.md, "The
 * PTL network"; channel plans in docs/models.md).
 *
 *   image -> cells (stride 2 until the size of stage[0]) -> c
 *   for every backbone stage s_k except the last:  z = fuse_k(concat(s_k, c)); c = cell_k(z)
 *   head: concat(c, last) -> 1x1 conv + BN + ReLU -> global average pool -> "features"
 *         -> Linear + ReLU -> Linear + ReLU -> Linear -> "logits"
 *
 * The backbone keeps torchvision's names with no prefix (a torchvision state_dict loads with
 * --partial as it is) and is left untouched: the cells only read its stage outputs.
 * Not here: the backbones themselves (resnet.c, densenet.c), the cell op (cell.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/archs.h"
#include "models/cell.h"
#include "ptl/core.h"

enum { PTL_FEATURE_DIM = 256, PTL_MIN_CELL_C = 8, PTL_MAX_CELLS = 16 };

/* Output size of a k x k cell with this stride and padding on a side of n. */
static int cell_out(int n, int k, int stride, int pad)
{
    return n + 2 * pad < k ? 0 : (n + 2 * pad - k) / stride + 1;
}

/* Kernel, stride and padding of the cell that takes (h, w) to (th, tw) in one step: 3x3 with
 * stride 1 pad 1 (same size), stride 2 pad 1 (ceil(n/2): ResNet's strided convs, the max-pool
 * stems) or stride 2 pad 0 (floor(n/2) for odd n: DenseNet's 2x2 average-pool transitions);
 * 2x2 stride 2 when only floor(n/2) on both sides of mixed parity fits. -1 if none does. */
static int cell_step(int h, int w, int th, int tw, int *k, int *stride, int *pad)
{
    static const int cand[4][3] = {{3, 1, 1}, {3, 2, 1}, {3, 2, 0}, {2, 2, 0}};
    for (int i = 0; i < 4; i++) {
        const int *c = cand[i];
        if (cell_out(h, c[0], c[1], c[2]) == th && cell_out(w, c[0], c[1], c[2]) == tw) {
            *k = c[0];
            *stride = c[1];
            *pad = c[2];
            return 0;
        }
    }
    return -1;
}

struct ptl_builder {
    struct ptl_model *m;
    int version;
    int n_cells, n_fuses;
};

static int add_cell(struct ptl_builder *b, int x, int c_out, int k, int stride, int pad)
{
    char name[32];
    snprintf(name, sizeof name, "ptl.bconv%d", ++b->n_cells);
    if (c_out < PTL_MIN_CELL_C)
        c_out = PTL_MIN_CELL_C;
    return graph_bconv_cell(b->m, name, x, c_out, k, stride, pad, b->version);
}

/* fuse = Conv1x1(bias) + BN + ReLU of concat(stage, cell) (the release's ptl.fuseK.0/.1). */
static int add_fuse(struct ptl_builder *b, int first, int second, int c_out)
{
    char name[48];
    int xs[2] = {first, second};
    int k = ++b->n_fuses;
    snprintf(name, sizeof name, "ptl.fuse%d.0", k);
    int y = graph_conv(b->m, name, graph_concat(b->m, xs, 2), c_out, 1, 1, 0, 1);
    snprintf(name, sizeof name, "ptl.fuse%d.1", k);
    return graph_relu(b->m, graph_bn(b->m, name, y));
}

/* Cells from the image down to the size of stage[0]: as many stride-2 cells as halvings
 * (at least one cell, stride 1 for the 32x32 stems), cell j of n giving C0 / 2^(n-j+1)
 * channels (the release's 3 -> 16 -> 32 before a 64-channel stem). */
static int stem_cells(struct ptl_builder *b, int target)
{
    struct ptl_model *m = b->m;
    /* tensors are copied, not pointed to: adding nodes may move m->tensors */
    const struct ptl_tensor t = m->tensors[target];
    int h = m->cfg.in_h, w = m->cfg.in_w, n = 0;
    int hs[PTL_MAX_CELLS], ws[PTL_MAX_CELLS];
    while ((h > t.h || w > t.w) && n < PTL_MAX_CELLS - 1) {
        hs[n] = h;
        ws[n] = w;
        h = cell_out(h, 3, 2, 1);
        w = cell_out(w, 3, 2, 1);
        n++;
    }
    if (n == 0) {
        hs[0] = h;
        ws[0] = w;
        n = 1;
    }
    int x = m->input;
    for (int j = 0; j < n && !m->error; j++) {
        int th = j == n - 1 ? t.h : cell_out(hs[j], 3, 2, 1);
        int tw = j == n - 1 ? t.w : cell_out(ws[j], 3, 2, 1);
        int k, stride, pad;
        if (cell_step(m->tensors[x].h, m->tensors[x].w, th, tw, &k, &stride, &pad) != 0)
            return graph_fail(m, PTL_EINVAL,
                              "ptl: no stride-1/2 cell takes %dx%d to the stem's %dx%d",
                              m->tensors[x].h, m->tensors[x].w, th, tw);
        x = add_cell(b, x, t.c >> (n - j), k, stride, pad);
    }
    return x;
}

/* Kaiming-normal (fan_in, ReLU gain) weights: std = sqrt(2 / fan_in). */
static void kaiming_fan_in(struct ptl_model *m, size_t i, struct ptl_rng *rng)
{
    const struct ptl_entry *e = &m->entries[i];
    size_t fan_in = e->count / (size_t)e->shape[0];
    ptl_rng_fill_normal(rng, ptl_model_entry_data(m, i), e->count, 0.0f,
                        (float)sqrt(2.0 / (double)fan_in));
}

/* The backbone's own init first, then: cell and fuse conv weights Kaiming-normal fan_in (the
 * release's PTL.init_param; fuse biases and BN keep PyTorch's defaults); head like the release's
 * reduction (conv Kaiming-normal fan_in, its bias PyTorch's default, BN weight N(1, 0.02^2), BN
 * bias 0) and classifiers (weights Kaiming-normal fan_in, biases 0). */
static void ptl_init(struct ptl_model *m)
{
    if (m->post_init_backbone)
        m->post_init_backbone(m);
    struct ptl_rng rng;
    ptl_rng_init(&rng, m->cfg.seed, 0x971);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        if (e->kind != PTL_ENTRY_PARAM || e->role == PTL_ROLE_BACKBONE)
            continue;
        float *v = ptl_model_entry_data(m, i);
        if (e->ndim >= 2) {
            kaiming_fan_in(m, i, &rng);
        } else if (strncmp(e->name, "head.classifier.", 16) == 0) { /* bias */
            memset(v, 0, e->count * sizeof *v);
        } else if (strcmp(e->name, "head.reduction.1.weight") == 0) {
            ptl_rng_fill_normal(&rng, v, e->count, 1.0f, 0.02f);
        }
    }
}

int build_ptl(struct ptl_model *m, const char *arch)
{
    struct ptl_builder b = {m, strncmp(arch, "ptlv2-", 6) == 0 ? 2 : 1, 0, 0};
    const char *backbone = strchr(arch, '-');
    if (backbone == NULL)
        return ptl_error(PTL_EINVAL, "%s: not a ptl-<backbone> name", arch);
    backbone++;
    struct ptl_backbone bb;
    graph_input(m, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    int rc = strncmp(backbone, "resnet", 6) == 0 ? resnet_backbone(m, backbone, "", &bb)
             : strncmp(backbone, "densenet", 8) == 0
                 ? densenet_backbone(m, backbone, "", &bb)
                 : graph_fail(m, PTL_EINVAL, "unknown backbone '%s'", backbone);
    if (rc != 0 || m->error)
        return m->error ? m->error : rc;
    m->post_init_backbone = m->post_init;
    m->post_init = ptl_init;

    /* Fuse points: every stage but the one the head pools (ResNet's layer4). */
    int n_fuse = bb.n_stages;
    if (bb.stage[n_fuse - 1] == bb.last)
        n_fuse--;
    m->role = PTL_ROLE_CELLS;
    int c = stem_cells(&b, bb.stage[0]);
    for (int k = 0; k < n_fuse && !m->error; k++) {
        const struct ptl_tensor s = m->tensors[bb.stage[k]];
        /* fuse width: half the stage's channels, at least the stem's (release: 64, 128,
         * 256, 512 over ResNet-50's 64, 256, 512, 1024) */
        int c0 = m->tensors[bb.stage[0]].c;
        int f_c = s.c / 2 > c0 ? s.c / 2 : c0;
        int z = add_fuse(&b, bb.stage[k], c, f_c);
        int target = k + 1 < n_fuse ? bb.stage[k + 1] : bb.last;
        const struct ptl_tensor t = m->tensors[target];
        int kernel, stride, pad;
        if (cell_step(s.h, s.w, t.h, t.w, &kernel, &stride, &pad) != 0)
            return graph_fail(m, PTL_EINVAL, "ptl: no stride-1/2 cell takes %dx%d to %dx%d",
                              s.h, s.w, t.h, t.w);
        /* cells double their width when they halve the map (release: 64 -> 64, 128 -> 256,
         * 256 -> 512); the last one narrows to a quarter (release: 512 -> 128) */
        int c_out = target == bb.last ? f_c / 4 : f_c * stride;
        c = add_cell(&b, z, c_out, kernel, stride, pad);
    }

    m->role = PTL_ROLE_HEAD;
    int xs[2] = {c, bb.last};
    int y = graph_conv(m, "head.reduction.0", graph_concat(m, xs, 2), PTL_FEATURE_DIM, 1, 1, 0, 1);
    y = graph_relu(m, graph_bn(m, "head.reduction.1", y));
    int f = graph_adaptive_avgpool(m, y, 1, 1);
    graph_output(m, "features", f);
    y = graph_relu(m, graph_linear(m, "head.classifier.0", f, PTL_FEATURE_DIM, 1));
    y = graph_relu(m, graph_linear(m, "head.classifier.2", y, PTL_FEATURE_DIM, 1));
    graph_output(m, "logits", graph_linear(m, "head.classifier.4", y, m->cfg.classes, 1));
    m->role = PTL_ROLE_BACKBONE;
    return m->error;
}
