/* ResNet-18/34/50/101 (and the 32x32 "resnet18-small" and "resnet18-narrow") as graphs with exactly torchvision's
 * module structure, so every state_dict name, shape and the entry order match
 * torchvision.models.resnetXX() and its weights load strictly.
 *
 * Not here: PTL cells and MGN branches (ptl.c, mgn.c build on resnet_backbone).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "models/archs.h"
#include "ptl/core.h"

struct resnet_spec {
    const char *name;
    int bottleneck;  /* 0: BasicBlock (expansion 1), 1: Bottleneck (expansion 4) */
    int blocks[4];
    int small;       /* 3x3 stride-1 stem without max-pool, for 28x28 / 32x32 images */
    int width;       /* planes of layer1 (doubling per layer): torchvision's 64; 16 for the
                        narrow variant, ~16x cheaper, for quick experiments on small images */
};

static const struct resnet_spec specs[] = {
    {"resnet18", 0, {2, 2, 2, 2}, 0, 64},      {"resnet34", 0, {3, 4, 6, 3}, 0, 64},
    {"resnet50", 1, {3, 4, 6, 3}, 0, 64},      {"resnet101", 1, {3, 4, 23, 3}, 0, 64},
    {"resnet18-small", 0, {2, 2, 2, 2}, 1, 64}, {"resnet18-narrow", 0, {2, 2, 2, 2}, 1, 16},
};

/* The spec whose name `arch` ends with ("ptl-resnet50" -> resnet50), longest match first so
 * "resnet18-small" is not taken for "resnet18". */
static const struct resnet_spec *find_spec(const char *arch)
{
    const struct resnet_spec *best = NULL;
    size_t la = strlen(arch);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        size_t ls = strlen(specs[i].name);
        if (ls <= la && strcmp(arch + la - ls, specs[i].name) == 0 &&
            (la == ls || arch[la - ls - 1] == '-') &&
            (best == NULL || ls > strlen(best->name)))
            best = &specs[i];
    }
    return best;
}

/* "<prefix><a>.<b>" style names without overflow surprises. */
static const char *nm(char *buf, size_t size, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *nm(char *buf, size_t size, const char *prefix, const char *fmt, ...)
{
    int k = snprintf(buf, size, "%s", prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, size - (size_t)k, fmt, ap);
    va_end(ap);
    return buf;
}

/* One residual block "<prefix>layer<L>.<B>": torchvision's BasicBlock or Bottleneck (v1.5:
 * the stride sits on the 3x3 conv). The main path is built before the downsample so the
 * entries come in torchvision's registration order (conv1, bn1, ..., downsample.0/1). */
static int block(struct ptl_model *m, const char *prefix, int layer, int idx, int x, int planes,
                 int stride, int bottleneck)
{
    char p[96], b[128];
    nm(p, sizeof p, prefix, "layer%d.%d.", layer, idx);
    int expansion = bottleneck ? 4 : 1, c_in = x >= 0 ? m->tensors[x].c : 0;
    int y;
    if (!bottleneck) {
        y = graph_conv(m, nm(b, sizeof b, p, "conv1"), x, planes, 3, stride, 1, 0);
        y = graph_relu(m, graph_bn(m, nm(b, sizeof b, p, "bn1"), y));
        y = graph_conv(m, nm(b, sizeof b, p, "conv2"), y, planes, 3, 1, 1, 0);
        y = graph_bn(m, nm(b, sizeof b, p, "bn2"), y);
    } else {
        y = graph_conv(m, nm(b, sizeof b, p, "conv1"), x, planes, 1, 1, 0, 0);
        y = graph_relu(m, graph_bn(m, nm(b, sizeof b, p, "bn1"), y));
        y = graph_conv(m, nm(b, sizeof b, p, "conv2"), y, planes, 3, stride, 1, 0);
        y = graph_relu(m, graph_bn(m, nm(b, sizeof b, p, "bn2"), y));
        y = graph_conv(m, nm(b, sizeof b, p, "conv3"), y, planes * 4, 1, 1, 0, 0);
        y = graph_bn(m, nm(b, sizeof b, p, "bn3"), y);
    }
    int shortcut = x;
    if (stride != 1 || c_in != planes * expansion) {
        shortcut = graph_conv(m, nm(b, sizeof b, p, "downsample.0"), x, planes * expansion, 1,
                              stride, 0, 0);
        shortcut = graph_bn(m, nm(b, sizeof b, p, "downsample.1"), shortcut);
    }
    return graph_relu(m, graph_add(m, y, shortcut));
}

/* torchvision's ResNet init for the backbone: conv weights Kaiming-normal (fan_out, ReLU gain),
 * std = sqrt(2 / (C_out * KH * KW)); BN already 1/0 and the fc keeps PyTorch's default.
 * Applied to every 4-d backbone parameter, so a PTL/MGN model built over resnet_backbone gets
 * it too unless its constructor chains its own post_init after this one. */
static void resnet_init(struct ptl_model *m)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, m->cfg.seed, 0x7e5);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        if (e->kind != PTL_ENTRY_PARAM || e->ndim != 4 || e->role != PTL_ROLE_BACKBONE)
            continue;
        double fan_out = (double)e->shape[0] * e->shape[2] * e->shape[3];
        ptl_rng_fill_normal(&rng, ptl_model_entry_data(m, i), e->count, 0.0f,
                            (float)sqrt(2.0 / fan_out));
    }
}

int resnet_backbone(struct ptl_model *m, const char *arch, const char *prefix,
                    struct ptl_backbone *out)
{
    if (m->error)
        return m->error;
    const struct resnet_spec *s = find_spec(arch);
    if (s == NULL || m->input < 0)
        return graph_fail(m, PTL_EINVAL, "resnet backbone: no ResNet in '%s'%s", arch,
                          m->input < 0 ? " (or no input)" : "");
    memset(out, 0, sizeof *out);
    enum ptl_role saved_role = m->role;
    m->role = PTL_ROLE_BACKBONE;
    char b[128];
    int x;
    if (s->small) {
        x = graph_conv(m, nm(b, sizeof b, prefix, "conv1"), m->input, s->width, 3, 1, 1, 0);
        x = graph_relu(m, graph_bn(m, nm(b, sizeof b, prefix, "bn1"), x));
    } else {
        x = graph_conv(m, nm(b, sizeof b, prefix, "conv1"), m->input, s->width, 7, 2, 3, 0);
        x = graph_relu(m, graph_bn(m, nm(b, sizeof b, prefix, "bn1"), x));
        x = graph_maxpool(m, x, 3, 3, 2, 2, 1, 1);
    }
    out->stage[out->n_stages++] = x;
    for (int l = 0; l < 4; l++) {
        for (int i = 0; i < s->blocks[l]; i++)
            x = block(m, prefix, l + 1, i, x, s->width << l, i == 0 && l > 0 ? 2 : 1,
                      s->bottleneck);
        out->stage[out->n_stages++] = x;
    }
    out->last = x;
    m->role = saved_role;
    m->post_init = resnet_init;
    return m->error;
}

int build_resnet(struct ptl_model *m, const char *arch)
{
    struct ptl_backbone bb;
    graph_input(m, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    if (resnet_backbone(m, arch, "", &bb) != 0)
        return m->error;
    classifier_head(m, bb.last, "fc");
    return m->error;
}
