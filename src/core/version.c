/* Library version, from configure. */
#include "config.h"
#include "ptl/core.h"

const char *ptl_version(void)
{
    return PACKAGE_VERSION;
}
