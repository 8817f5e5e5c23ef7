/* placeholder: being written */
#include "models/archs.h"
#include "ptl/core.h"
int densenet_backbone(struct ptl_model *m, const char *arch, const char *prefix,
                      struct ptl_backbone *out)
{
    (void)prefix; (void)out;
    return graph_fail(m, PTL_EINVAL, "%s: not built yet", arch);
}
int build_densenet(struct ptl_model *m, const char *arch)
{
    return ptl_error(PTL_EINVAL, "%s: not built yet", arch) + 0 * (m != NULL);
}
