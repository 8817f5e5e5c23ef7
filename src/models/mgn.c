/* MGN ("mgn") and MGN-PTL ("mgn-ptl"): the authors' MGN_PTL (mgn_ptl.py of the PTL release)
 * with its module structure, parameter names, state_dict order and forward order, and "mgn" =
 * the same network without the PTL module.
 *
 *   backbone: a whole torchvision ResNet-50 under "backbone."; the forward runs conv1 .. layer3[0]
 *     only, layer3[1:], layer4 and fc are registered unused (used = 0) so state_dicts load
 *     strictly and parameter counts match PyTorch.
 *   p1/p2/p3: Sequential(copy of layer3[1:], layer4) ("p1.0.K", "p1.1.K"); p2/p3 with a
 *     stride-1 layer4 (res_p_conv5).
 *   ptl: bconv1..8, fuse1..4 beside the backbone (mgn-ptl only).
 *   one "reduction" (1x1 conv with bias + BN + ReLU) shared by the 8 pooled features, applied in
 *     the release's order (BN running statistics are updated once per application), and 8
 *     linear classifiers fc_id_*.
 * The release's max-pool kernels assume a 384x128 input (24x8 and 12x4 maps): here the global
 * pools cover the whole map and the part pools are adaptive 2x1 / 3x1 max-pools (identical when
 * the height divides by 2 and 3, overlapping PyTorch bins otherwise).
 * Not here: the generic PTL networks (ptl.c), the cell op (cell.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/archs.h"
#include "models/cell.h"
#include "ptl/core.h"

enum { MGN_FEATS = 256, MGN_CELL_FEATS = 128 };

/* Registers an entry no node reads (kept for strict loading). */
static void declare(struct ptl_model *m, const char *name, enum ptl_entry_kind kind, int ndim,
                    const int *shape)
{
    int i = graph_entry(m, name, kind, ndim, shape);
    if (i >= 0)
        m->entries[i].used = 0;
}

/* conv (no bias) of a bottleneck: a node when live, else only its entry. */
static int conv(struct ptl_model *m, int live, const char *name, int x, int c_in, int c_out, int k,
                int stride, int pad)
{
    if (live)
        return graph_conv(m, name, x, c_out, k, stride, pad, 0);
    char full[160];
    int shape[4] = {c_out, c_in, k, k};
    snprintf(full, sizeof full, "%s.weight", name);
    declare(m, full, PTL_ENTRY_PARAM, 4, shape);
    return -1;
}

static int bn(struct ptl_model *m, int live, const char *name, int x, int c)
{
    if (live)
        return graph_bn(m, name, x);
    static const char *const leaf[] = {"weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked"};
    for (int i = 0; i < 5; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", name, leaf[i]);
        declare(m, full, i < 2 ? PTL_ENTRY_PARAM : i < 4 ? PTL_ENTRY_BUFFER : PTL_ENTRY_COUNTER,
                i < 4 ? 1 : 0, &c);
    }
    return -1;
}

/* torchvision's Bottleneck (v1.5, stride on the 3x3 conv) named "<p>conv1" ... "<p>downsample.1",
 * on x with c_in channels; live = 0 only registers its entries. */
static int bottleneck(struct ptl_model *m, int live, const char *p, int x, int c_in, int planes,
                      int stride, int downsample)
{
    char b[128];
    int y;
    snprintf(b, sizeof b, "%sconv1", p);
    y = conv(m, live, b, x, c_in, planes, 1, 1, 0);
    snprintf(b, sizeof b, "%sbn1", p);
    y = bn(m, live, b, y, planes);
    y = live ? graph_relu(m, y) : -1;
    snprintf(b, sizeof b, "%sconv2", p);
    y = conv(m, live, b, y, planes, planes, 3, stride, 1);
    snprintf(b, sizeof b, "%sbn2", p);
    y = bn(m, live, b, y, planes);
    y = live ? graph_relu(m, y) : -1;
    snprintf(b, sizeof b, "%sconv3", p);
    y = conv(m, live, b, y, planes, planes * 4, 1, 1, 0);
    snprintf(b, sizeof b, "%sbn3", p);
    y = bn(m, live, b, y, planes * 4);
    int shortcut = x;
    if (downsample) {
        snprintf(b, sizeof b, "%sdownsample.0", p);
        shortcut = conv(m, live, b, x, c_in, planes * 4, 1, stride, 0);
        snprintf(b, sizeof b, "%sdownsample.1", p);
        shortcut = bn(m, live, b, shortcut, planes * 4);
    }
    return live ? graph_relu(m, graph_add(m, y, shortcut)) : -1;
}

/* Blocks [from, count) of a ResNet-50 group, named "<p><i - shift>." (shift 1 renames
 * layer3[1:] for the branches' Sequential); block 0 has the stride and the downsample. */
static int group(struct ptl_model *m, int live, const char *p, int x, int c_in, int planes,
                 int stride, int from, int count, int shift)
{
    for (int i = from; i < count; i++) {
        char q[96];
        snprintf(q, sizeof q, "%s%d.", p, i - shift);
        x = bottleneck(m, live, q, x, i == 0 ? c_in : planes * 4, planes, i == 0 ? stride : 1,
                       i == 0);
    }
    return x;
}

/* Module order of MGN_PTL.__init__: self.ptl (bconv1..8, then fuse1..4), self.backbone, p1, p2,
 * p3, reduction, the classifiers. The graph registers entries in forward order; this is the
 * state_dict order they are sorted into (stable, so each module keeps its own order). */
static int state_dict_rank(const char *name)
{
    static const char *const order[] = {"ptl.bconv", "ptl.fuse", "backbone.", "p1.",
                                        "p2.",       "p3.",      "reduction.", "fc_id_"};
    for (int r = 0; r < (int)(sizeof order / sizeof order[0]); r++)
        if (strncmp(name, order[r], strlen(order[r])) == 0)
            return r;
    return -1;
}

/* Reorders m->entries by state_dict_rank before the parameters are allocated: new offsets, and
 * every node's parameter indices remapped. */
static int sort_entries(struct ptl_model *m)
{
    size_t n = m->n_entries, k = 0;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    int *new_index = malloc((n ? n : 1) * sizeof *new_index);
    struct ptl_entry *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!order || !new_index || !sorted) {
        free(order);
        free(new_index);
        free(sorted);
        return graph_fail(m, PTL_ENOMEM, "out of memory sorting entries");
    }
    for (int r = 0; r < 8; r++)
        for (size_t i = 0; i < n; i++)
            if (state_dict_rank(m->entries[i].name) == r)
                order[k++] = i;
    if (k != n) {
        free(order);
        free(new_index);
        free(sorted);
        return graph_fail(m, PTL_EINVAL, "an entry outside the MGN modules");
    }
    size_t pf = 0, bf = 0;
    for (size_t j = 0; j < n; j++) {
        sorted[j] = m->entries[order[j]];
        size_t *off = sorted[j].kind == PTL_ENTRY_PARAM ? &pf : &bf;
        sorted[j].offset = *off;
        *off += sorted[j].count;
        new_index[order[j]] = (int)j;
    }
    for (int i = 0; i < m->n_nodes; i++)
        for (int p = 0; p < PTL_NODE_MAX_PARAMS; p++)
            if (m->nodes[i].param[p] >= 0)
                m->nodes[i].param[p] = new_index[m->nodes[i].param[p]];
    free(m->entries);
    m->entries = sorted;
    m->cap_entries = n;
    free(order);
    free(new_index);
    return 0;
}

static void kaiming_normal(struct ptl_model *m, size_t i, struct ptl_rng *rng, int fan_out)
{
    const struct ptl_entry *e = &m->entries[i];
    size_t fan = fan_out ? (size_t)e->shape[0] * e->shape[2] * e->shape[3]
                         : e->count / (size_t)e->shape[0];
    ptl_rng_fill_normal(rng, ptl_model_entry_data(m, i), e->count, 0.0f,
                        (float)sqrt(2.0 / (double)fan));
}

/* The release's init: torchvision's ResNet init for the backbone (conv weights Kaiming-normal
 * fan_out), p1/p2/p3 copies of backbone.layer3[1:] and layer4 (res_p_conv5 loads layer4's
 * state_dict), PTL conv weights Kaiming-normal fan_in, reduction conv Kaiming-normal fan_in and
 * BN weight N(1, 0.02^2), classifier weights Kaiming-normal fan_in with biases 0. */
static void mgn_init(struct ptl_model *m)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, m->cfg.seed, 0x3697);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        float *v = ptl_model_entry_data(m, i);
        if (e->kind != PTL_ENTRY_PARAM)
            continue;
        if (e->ndim == 4 && strncmp(e->name, "backbone.", 9) == 0)
            kaiming_normal(m, i, &rng, 1);
        else if (e->ndim == 4 && strncmp(e->name, "ptl.", 4) == 0)
            kaiming_normal(m, i, &rng, 0);
        else if (strcmp(e->name, "reduction.0.weight") == 0)
            kaiming_normal(m, i, &rng, 0);
        else if (strcmp(e->name, "reduction.1.weight") == 0)
            ptl_rng_fill_normal(&rng, v, e->count, 1.0f, 0.02f);
        else if (strncmp(e->name, "fc_id_", 6) == 0 && e->ndim == 2)
            kaiming_normal(m, i, &rng, 0);
        else if (strncmp(e->name, "fc_id_", 6) == 0)
            memset(v, 0, e->count * sizeof *v);
    }
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        char src[160];
        int k, used;
        if (e->name[0] != 'p' || e->name[1] < '1' || e->name[1] > '3' || e->name[2] != '.')
            continue;
        if (sscanf(e->name + 3, "0.%d.%n", &k, &used) == 1)
            snprintf(src, sizeof src, "backbone.layer3.%d.%s", k + 1, e->name + 3 + used);
        else
            snprintf(src, sizeof src, "backbone.layer4.%s", e->name + 5);
        long s = ptl_model_find_entry(m, src);
        if (s >= 0 && m->entries[s].count == e->count)
            memcpy(ptl_model_entry_data(m, i), ptl_model_entry_data(m, (size_t)s),
                   e->count * sizeof(float));
    }
}

static int cell(struct ptl_model *m, int k, int x, int c_out, int stride)
{
    char name[32];
    snprintf(name, sizeof name, "ptl.bconv%d", k);
    return graph_bconv_cell(m, name, x, c_out, 3, stride, 1, 1);
}

static int fuse(struct ptl_model *m, int k, int a, int b, int c_out)
{
    char name[32];
    int xs[2] = {a, b};
    snprintf(name, sizeof name, "ptl.fuse%d.0", k);
    int y = graph_conv(m, name, graph_concat(m, xs, 2), c_out, 1, 1, 0, 1);
    snprintf(name, sizeof name, "ptl.fuse%d.1", k);
    return graph_relu(m, graph_bn(m, name, y));
}

/* Branch pN = Sequential(layer3[1:] copy, layer4 copy with the given stride). */
static int branch(struct ptl_model *m, int n, int x, int stride)
{
    char p[16];
    snprintf(p, sizeof p, "p%d.0.", n);
    x = group(m, 1, p, x, 1024, 256, 1, 1, 6, 1);
    snprintf(p, sizeof p, "p%d.1.", n);
    return group(m, 1, p, x, 1024, 512, stride, 0, 3, 0);
}

/* The shared reduction on concat(part, cell part) (or the part alone for "mgn"): the first call
 * creates the conv and BN, later ones share their parameters. */
struct reduction {
    int conv_node, bn_node;
};
static int reduce(struct ptl_model *m, struct reduction *r, int part, int cell_part)
{
    int xs[2] = {part, cell_part};
    int x = cell_part >= 0 ? graph_concat(m, xs, 2) : part;
    int y;
    if (r->conv_node < 0) {
        y = graph_conv(m, "reduction.0", x, MGN_FEATS, 1, 1, 0, 1);
        r->conv_node = graph_producer(m, y);
        y = graph_bn(m, "reduction.1", y);
        r->bn_node = graph_producer(m, y);
    } else {
        y = graph_bn_shared(m, "reduction.1", graph_conv_shared(m, "reduction.0", x, r->conv_node),
                            r->bn_node);
    }
    return graph_relu(m, y);
}

int build_mgn(struct ptl_model *m, const char *arch)
{
    int with_ptl = strcmp(arch, "mgn-ptl") == 0;
    int in = graph_input(m, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    int cells[9] = {-1, -1, -1, -1, -1, -1, -1, -1, -1};

    m->role = PTL_ROLE_BACKBONE;
    int x1 = graph_conv(m, "backbone.conv1", in, 64, 7, 2, 3, 0);
    x1 = graph_relu(m, graph_bn(m, "backbone.bn1", x1));
    x1 = graph_maxpool(m, x1, 3, 3, 2, 2, 1, 1);
    int z = -1;
    if (with_ptl) {
        m->role = PTL_ROLE_CELLS;
        cells[1] = cell(m, 1, in, 16, 2);
        cells[2] = cell(m, 2, cells[1], 32, 2);
        z = fuse(m, 1, cells[2], x1, 64); /* the release's only [cell, stage] concat */
        cells[3] = cell(m, 3, z, 64, 1);
    }
    m->role = PTL_ROLE_BACKBONE;
    int x2 = group(m, 1, "backbone.layer1.", x1, 64, 64, 1, 0, 3, 0);
    if (with_ptl) {
        m->role = PTL_ROLE_CELLS;
        cells[4] = cell(m, 4, fuse(m, 2, x2, cells[3], 128), 256, 2);
    }
    m->role = PTL_ROLE_BACKBONE;
    int x3 = group(m, 1, "backbone.layer2.", x2, 256, 128, 2, 0, 4, 0);
    if (with_ptl) {
        m->role = PTL_ROLE_CELLS;
        cells[5] = cell(m, 5, fuse(m, 3, x3, cells[4], 256), 512, 2);
    }
    m->role = PTL_ROLE_BACKBONE;
    int x4 = group(m, 1, "backbone.layer3.", x3, 512, 256, 2, 0, 1, 0);
    /* the rest of torchvision's ResNet-50, never run */
    group(m, 0, "backbone.layer3.", -1, 512, 256, 2, 1, 6, 0);
    group(m, 0, "backbone.layer4.", -1, 1024, 512, 2, 0, 3, 0);
    int fc_w[2] = {1000, 2048};
    declare(m, "backbone.fc.weight", PTL_ENTRY_PARAM, 2, fc_w);
    declare(m, "backbone.fc.bias", PTL_ENTRY_PARAM, 1, fc_w);

    int p[3] = {branch(m, 1, x4, 2), branch(m, 2, x4, 1), branch(m, 3, x4, 1)};
    if (with_ptl) {
        m->role = PTL_ROLE_CELLS;
        int z3 = fuse(m, 4, x4, cells[5], 512);
        cells[6] = cell(m, 6, z3, MGN_CELL_FEATS, 2);
        cells[7] = cell(m, 7, z3, MGN_CELL_FEATS, 1);
        cells[8] = cell(m, 8, z3, MGN_CELL_FEATS, 1);
    }
    if (m->error)
        return m->error;
    if (m->tensors[p[1]].h < 3)
        return graph_fail(m, PTL_EINVAL, "input %dx%d too small: the part maps need >= 3 rows",
                          m->cfg.in_h, m->cfg.in_w);

    /* pooled parts: global (zg), 2 stripes of p2, 3 stripes of p3; the cells likewise */
    int zg[3], zg_c[3] = {-1, -1, -1}, part[5], part_c[5] = {-1, -1, -1, -1, -1};
    for (int b = 0; b < 3; b++) {
        zg[b] = graph_adaptive_maxpool(m, p[b], 1, 1);
        if (with_ptl)
            zg_c[b] = graph_adaptive_maxpool(m, cells[6 + b], 1, 1);
    }
    int zp2c = with_ptl ? graph_adaptive_maxpool(m, cells[7], 2, 1) : -1;
    int zp2 = graph_adaptive_maxpool(m, p[1], 2, 1);
    int zp3c = with_ptl ? graph_adaptive_maxpool(m, cells[8], 3, 1) : -1;
    int zp3 = graph_adaptive_maxpool(m, p[2], 3, 1);
    for (int r = 0; r < 2; r++) {
        part[r] = graph_rows(m, zp2, r, 1);
        if (with_ptl)
            part_c[r] = graph_rows(m, zp2c, r, 1);
    }
    for (int r = 0; r < 3; r++) {
        part[2 + r] = graph_rows(m, zp3, r, 1);
        if (with_ptl)
            part_c[2 + r] = graph_rows(m, zp3c, r, 1);
    }

    /* features in the release's order: fg_p1, fg_p2, fg_p3, f0_p2, f1_p2, f0_p3, f1_p3, f2_p3 */
    m->role = PTL_ROLE_HEAD;
    struct reduction red = {-1, -1};
    int f[8];
    for (int b = 0; b < 3; b++)
        f[b] = reduce(m, &red, zg[b], zg_c[b]);
    for (int r = 0; r < 5; r++)
        f[3 + r] = reduce(m, &red, part[r], part_c[r]);
    static const char *const fc[8] = {"fc_id_2048_0",  "fc_id_2048_1",  "fc_id_2048_2",
                                      "fc_id_256_1_0", "fc_id_256_1_1", "fc_id_256_2_0",
                                      "fc_id_256_2_1", "fc_id_256_2_2"};
    int logits[8];
    for (int i = 0; i < 8; i++)
        logits[i] = graph_linear(m, fc[i], f[i], m->cfg.classes, 1);
    graph_output(m, "features", graph_concat(m, f, 8));
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "logits.%d", i);
        graph_output(m, name, logits[i]);
    }
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "triplet.%d", i);
        graph_output(m, name, f[i]);
    }
    m->role = PTL_ROLE_BACKBONE;
    if (m->error)
        return m->error;
    if (sort_entries(m) != 0)
        return m->error;
    m->post_init = mgn_init;
    return m->error;
}
