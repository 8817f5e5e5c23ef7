/* placeholder: being written */
#include "models/archs.h"
#include "ptl/core.h"
int build_mgn(struct ptl_model *m, const char *arch)
{
    return ptl_error(PTL_EINVAL, "%s: not built yet", arch) + 0 * (m != NULL);
}
