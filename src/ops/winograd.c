/* Winograd F(2x2, 3x3) convolution (placeholder, being written). */
#include "ops/winograd.h"
