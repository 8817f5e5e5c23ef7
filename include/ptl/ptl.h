/* ptl/ptl.h - the whole public API of libptl. */
#ifndef PTL_PTL_H
#define PTL_PTL_H

#include "ptl/core.h"
#include "ptl/ops.h"
#include "ptl/model.h"
#include "ptl/io.h"
#include "ptl/train.h"
#include "ptl/data.h"
#include "ptl/eval.h"
#include "ptl/config.h"
#include "ptl/dist.h"

#endif
