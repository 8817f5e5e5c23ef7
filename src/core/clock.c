/* The one clock of ptl: monotonic seconds for progress lines, timings and traces. */
#include <time.h>

#include "ptl/core.h"

double ptl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
