/* Internal: the architecture constructors behind ptl_model_create (model.c), and the backbone
 * description the PTL and MGN constructors build on. */
#ifndef PTL_MODELS_ARCHS_H
#define PTL_MODELS_ARCHS_H

#include "models/graph.h"

/* What a backbone constructor leaves for the networks built over it: the tensor after each
 * stage, in order (stage[0] is the stem output, e.g. ResNet's max-pool; then one per block
 * group), and the tensor the classifier would pool. */
struct ptl_backbone {
    int stage[8];
    int n_stages;
    int last;
};

/* Backbones without their pooling and classifier; names exactly as torchvision's
 * (with `prefix` prepended, "" for none). */
int resnet_backbone(struct ptl_model *m, const char *arch, const char *prefix,
                    struct ptl_backbone *out);
int densenet_backbone(struct ptl_model *m, const char *arch, const char *prefix,
                      struct ptl_backbone *out);

/* Whole networks (graph_input .. graph_output), by architecture name. A constructor only builds
 * the graph: ptl_model_create then allocates the parameters, applies PyTorch's default
 * initialisers and calls m->post_init if the constructor set it. */
/* torchvision's classification head on a backbone's last tensor: global average pool ->
 * output "features", linear `fc_name` (role head) -> output "logits". */
void classifier_head(struct ptl_model *m, int last, const char *fc_name);

int build_resnet(struct ptl_model *m, const char *arch);
int build_densenet(struct ptl_model *m, const char *arch);
int build_ptl(struct ptl_model *m, const char *arch);
int build_mgn(struct ptl_model *m, const char *arch);

#endif
