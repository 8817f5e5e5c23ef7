/* DenseNet-121/161/169 (and the CIFAR DenseNet-BC-100) as graphs with exactly torchvision's
 * module structure: features.conv0/norm0/relu0/pool0, features.denseblockI.denselayerJ.{norm1,
 * conv1,norm2,conv2}, features.transitionI.{norm,conv} (+ 2x2 average pool), features.norm5,
 * then ReLU, global average pool and the classifier.
 *
 * Dense connectivity is one graph_concat per layer of every feature map produced so far in the
 * block (what torchvision's non-memory-efficient _DenseLayer does); memory therefore grows
 * quadratically with the block length, as in PyTorch.
 *
 * densenet-bc-100 (Huang et al.'s CIFAR model: depth 100, growth 12, 4k bottleneck, compression
 * 0.5 -> 3 blocks of 16 layers, 24 initial features) has no torchvision constructor: its names
 * follow torchvision's scheme, the stem is one 3x3 stride-1 conv0 and there is no norm0, relu0
 * or pool0. Its PyTorch reference is torchvision.models.DenseNet(growth_rate=12,
 * block_config=(16, 16, 16), num_init_features=24, bn_size=4) with features.conv0 replaced by
 * Conv2d(3, 24, 3, 1, 1, bias=False) and norm0/relu0/pool0 removed
 * (tests/reference/make_model_fixtures.py).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "models/archs.h"
#include "ptl/core.h"

struct densenet_spec {
    const char *name;
    int growth, init_features, n_blocks;
    int blocks[4];
    int cifar; /* 3x3 stride-1 conv0, no norm0/relu0/pool0 */
};

static const struct densenet_spec specs[] = {
    {"densenet121", 32, 64, 4, {6, 12, 24, 16}, 0},
    {"densenet161", 48, 96, 4, {6, 12, 36, 24}, 0},
    {"densenet169", 32, 64, 4, {6, 12, 32, 32}, 0},
    {"densenet-bc-100", 12, 24, 3, {16, 16, 16, 0}, 1},
};

enum { BN_SIZE = 4, MAX_LAYERS = 64 };

static const struct densenet_spec *find_spec(const char *arch)
{
    size_t la = strlen(arch);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        size_t ls = strlen(specs[i].name);
        if (ls <= la && strcmp(arch + la - ls, specs[i].name) == 0 &&
            (la == ls || arch[la - ls - 1] == '-'))
            return &specs[i];
    }
    return NULL;
}

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

/* Dense block `blk` (1-based) on x: returns the concat of x and every layer's new features. */
static int dense_block(struct ptl_model *m, const char *prefix, int blk, int x, int layers,
                       int growth)
{
    int feats[MAX_LAYERS + 1];
    int count = 0;
    feats[count++] = x;
    char p[96], b[128];
    for (int j = 1; j <= layers; j++) {
        nm(p, sizeof p, prefix, "features.denseblock%d.denselayer%d.", blk, j);
        int in = count == 1 ? x : graph_concat(m, feats, count);
        int y = graph_relu(m, graph_bn(m, nm(b, sizeof b, p, "norm1"), in));
        y = graph_conv(m, nm(b, sizeof b, p, "conv1"), y, BN_SIZE * growth, 1, 1, 0, 0);
        y = graph_relu(m, graph_bn(m, nm(b, sizeof b, p, "norm2"), y));
        feats[count++] = graph_conv(m, nm(b, sizeof b, p, "conv2"), y, growth, 3, 1, 1, 0);
    }
    return graph_concat(m, feats, count);
}

/* torchvision's DenseNet init: conv weights Kaiming-normal with fan_in and ReLU gain,
 * std = sqrt(2 / (C_in * KH * KW)), on every 4-d backbone parameter (BN is already 1/0). */
static void densenet_backbone_init(struct ptl_model *m)
{
    struct ptl_rng rng;
    ptl_rng_init(&rng, m->cfg.seed, 0xde5);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct ptl_entry *e = &m->entries[i];
        if (e->kind != PTL_ENTRY_PARAM || e->ndim != 4 || e->role != PTL_ROLE_BACKBONE)
            continue;
        double fan_in = (double)e->shape[1] * e->shape[2] * e->shape[3];
        ptl_rng_fill_normal(&rng, ptl_model_entry_data(m, i), e->count, 0.0f,
                            (float)sqrt(2.0 / fan_in));
    }
}

/* ... and the classifier's bias 0 (its weight keeps PyTorch's default). */
static void densenet_init(struct ptl_model *m)
{
    densenet_backbone_init(m);
    long b = ptl_model_find_entry(m, "classifier.bias");
    if (b >= 0)
        memset(ptl_model_entry_data(m, (size_t)b), 0, m->entries[b].count * sizeof(float));
}

int densenet_backbone(struct ptl_model *m, const char *arch, const char *prefix,
                      struct ptl_backbone *out)
{
    if (m->error)
        return m->error;
    const struct densenet_spec *s = find_spec(arch);
    if (s == NULL || m->input < 0)
        return graph_fail(m, PTL_EINVAL, "densenet backbone: no DenseNet in '%s'%s", arch,
                          m->input < 0 ? " (or no input)" : "");
    memset(out, 0, sizeof *out);
    enum ptl_role saved_role = m->role;
    m->role = PTL_ROLE_BACKBONE;
    char b[128];
    int x;
    if (s->cifar) {
        x = graph_conv(m, nm(b, sizeof b, prefix, "features.conv0"), m->input, s->init_features,
                       3, 1, 1, 0);
    } else {
        x = graph_conv(m, nm(b, sizeof b, prefix, "features.conv0"), m->input, s->init_features,
                       7, 2, 3, 0);
        x = graph_relu(m, graph_bn(m, nm(b, sizeof b, prefix, "features.norm0"), x));
        x = graph_maxpool(m, x, 3, 3, 2, 2, 1, 1);
    }
    out->stage[out->n_stages++] = x;
    int features = s->init_features;
    for (int i = 1; i <= s->n_blocks; i++) {
        x = dense_block(m, prefix, i, x, s->blocks[i - 1], s->growth);
        features += s->blocks[i - 1] * s->growth;
        if (i == s->n_blocks)
            break;
        x = graph_relu(m, graph_bn(m, nm(b, sizeof b, prefix, "features.transition%d.norm", i), x));
        features /= 2;
        x = graph_conv(m, nm(b, sizeof b, prefix, "features.transition%d.conv", i), x, features, 1,
                       1, 0, 0);
        x = graph_avgpool(m, x, 2, 2, 0, 1);
        out->stage[out->n_stages++] = x;
    }
    x = graph_relu(m, graph_bn(m, nm(b, sizeof b, prefix, "features.norm5"), x));
    out->last = x;
    m->role = saved_role;
    m->post_init = densenet_backbone_init;
    return m->error;
}

int build_densenet(struct ptl_model *m, const char *arch)
{
    struct ptl_backbone bb;
    graph_input(m, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    if (densenet_backbone(m, arch, "", &bb) != 0)
        return m->error;
    classifier_head(m, bb.last, "classifier");
    m->post_init = densenet_init;
    return m->error;
}
