/* Large buffers on transparent huge pages. A ptl-resnet50 step at batch 16 works over about
 * 3 GiB: on 4 KiB pages its first step took 854,000 page faults (9.6 s, against 1.9 s for the
 * later steps, on a Zen 5 VM); on huge pages 50,000 (3.5-5.9 s), and the later steps ran 2%
 * faster (docs/performance.md). */
#include "core/memory.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *ptl__alloc_large(size_t bytes)
{
    if (bytes < HUGE_PAGE)
        return malloc(bytes ? bytes : 1);
    /* whole huge pages: the tail of the last one would otherwise be split off */
    size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, size) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE); /* a hint: without it the pages are small */
#endif
    return p;
}

void *ptl__calloc_large(size_t bytes)
{
    void *p = ptl__alloc_large(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}
