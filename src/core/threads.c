/* One thread setting for the whole process: BLIS GEMM threads and OpenMP loops follow it. */
#include "ptl/core.h"

#include <blis.h>
#include <errno.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>

static int threads_current = 1;

int ptl_threads_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    return 1;
}

int ptl_threads_from_env(void)
{
    const char *s = getenv("PTL_THREADS");
    if (s == NULL || *s == '\0')
        return ptl_threads_available();
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 4096)
        return ptl_error(PTL_EINVAL, "PTL_THREADS=%s: expected a positive integer", s);
    return (int)v;
}

int ptl_threads_set(int n)
{
    if (n < 1)
        return ptl_error(PTL_EINVAL, "threads: %d is not a positive thread count", n);
    int cores = ptl_threads_available();
    n = n < cores ? n : cores;
    bli_thread_set_num_threads(n);
    omp_set_num_threads(n);
    threads_current = n;
    return PTL_OK;
}

int ptl_threads_get(void)
{
    return threads_current;
}
