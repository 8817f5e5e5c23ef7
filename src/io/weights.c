/* placeholder: being written */
#include "ptl/io.h"
