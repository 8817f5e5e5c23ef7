/* placeholder: being written */
#include "ptl/ops.h"
