/* ptl_model_create: the table of architecture names and the constructor for each. */
#include <stdlib.h>
#include <string.h>

#include "models/archs.h"
#include "ptl/core.h"

struct arch {
    const char *name;
    int (*build)(struct ptl_model *m, const char *arch);
};

/* The PTL variants name their backbone: "ptl-<backbone>" (BConv-Cell v1), "ptlv2-<backbone>". */
static const struct arch archs[] = {
    {"resnet18", build_resnet},          {"resnet34", build_resnet},
    {"resnet50", build_resnet},          {"resnet101", build_resnet},
    {"resnet18-small", build_resnet},    {"densenet121", build_densenet},
    {"densenet161", build_densenet},     {"densenet169", build_densenet},
    {"densenet-bc-100", build_densenet}, {"ptl-resnet18", build_ptl},
    {"ptl-resnet34", build_ptl},         {"ptl-resnet50", build_ptl},
    {"ptl-resnet101", build_ptl},        {"ptl-resnet18-small", build_ptl},
    {"ptl-densenet121", build_ptl},      {"ptl-densenet161", build_ptl},
    {"ptl-densenet169", build_ptl},      {"ptl-densenet-bc-100", build_ptl},
    {"ptlv2-resnet18", build_ptl},       {"ptlv2-resnet34", build_ptl},
    {"ptlv2-resnet50", build_ptl},       {"ptlv2-resnet101", build_ptl},
    {"ptlv2-resnet18-small", build_ptl}, {"ptlv2-densenet121", build_ptl},
    {"ptlv2-densenet161", build_ptl},    {"ptlv2-densenet169", build_ptl},
    {"ptlv2-densenet-bc-100", build_ptl}, {"mgn", build_mgn},
    {"mgn-ptl", build_mgn},              {"resnet18-narrow", build_resnet},
    {"ptl-resnet18-narrow", build_ptl},  {"ptlv2-resnet18-narrow", build_ptl},
};

static const char *const *arch_names_table(void)
{
    static const char *names[sizeof archs / sizeof archs[0] + 1];
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        names[i] = archs[i].name;
    return names;
}

void classifier_head(struct ptl_model *m, int last, const char *fc_name)
{
    int f = graph_adaptive_avgpool(m, last, 1, 1);
    graph_output(m, "features", f);
    enum ptl_role saved = m->role;
    m->role = PTL_ROLE_HEAD;
    graph_output(m, "logits", graph_linear(m, fc_name, f, m->cfg.classes, 1));
    m->role = saved;
}

const char *const *ptl_model_arch_names(void)
{
    return arch_names_table();
}

int ptl_model_create(struct ptl_model **out, const char *arch, const struct ptl_model_config *cfg)
{
    if (out == NULL || arch == NULL || cfg == NULL)
        return ptl_error(PTL_EINVAL, "model create: NULL argument");
    *out = NULL;
    const struct arch *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, arch) == 0)
            a = &archs[i];
    if (a == NULL)
        return ptl_error(PTL_EINVAL, "unknown architecture '%s' (ptl model list shows them)", arch);
    if (cfg->classes < 1 || cfg->in_c < 1 || cfg->in_h < 1 || cfg->in_w < 1)
        return ptl_error(PTL_EINVAL, "%s: classes %d and input %dx%dx%d must be positive", arch,
                         cfg->classes, cfg->in_c, cfg->in_h, cfg->in_w);
    struct ptl_model *m = malloc(sizeof *m);
    if (m == NULL)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", arch);
    graph_init(m, arch, cfg);
    int rc = a->build(m, arch);
    if (rc == 0)
        rc = graph_finish(m);
    if (rc == 0 && m->post_init)
        m->post_init(m);
    if (rc != 0) {
        ptl_model_free(m);
        return rc;
    }
    *out = m;
    return PTL_OK;
}
