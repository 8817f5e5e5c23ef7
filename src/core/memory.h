/* Internal: allocation of the large, long-lived buffers (parameters, gradients, activations,
 * saved tensors, workspace). */
#ifndef PTL_CORE_MEMORY_H
#define PTL_CORE_MEMORY_H

#include <stddef.h>

/* `bytes` of uninitialised memory, 2 MiB aligned from 2 MiB on and marked for transparent
 * huge pages where the kernel offers them on request (madvise mode, Debian's default); NULL
 * when out of memory. Release with free(). */
void *ptl__alloc_large(size_t bytes);

/* The same, zeroed. */
void *ptl__calloc_large(size_t bytes);

#endif
