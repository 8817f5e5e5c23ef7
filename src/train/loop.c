/* placeholder: being written */
#include "ptl/ptl.h"
