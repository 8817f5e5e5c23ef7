/* Argument checks shared by the kernels: a failed check records a message naming the op and
 * returns PTL_EINVAL from the calling function. Internal to libptl. */
#ifndef PTL_OPS_CHECK_H
#define PTL_OPS_CHECK_H

#include "ptl/core.h"

/* Returns PTL_EINVAL from the enclosing function with a formatted message unless cond holds. */
#define PTL_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return ptl_error(PTL_EINVAL, __VA_ARGS__);                                             \
    } while (0)

/* Returns PTL_EINVAL naming the op and the argument when a required buffer is NULL. */
#define PTL_CHECK_PTR(op, p) PTL_CHECK((p) != NULL, "%s: %s is NULL", op, #p)

/* Element-wise loops shorter than this stay on one thread: forking costs more than it saves. */
#define PTL_OMP_MIN_ELEMENTS 32768

#endif
