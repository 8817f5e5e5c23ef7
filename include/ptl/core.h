/* ptl/core.h - errors, threading and the seeded RNG shared by every layer of ptl.
 *
 * Errors: a function that can fail returns 0 or a negative PTL_E* code and records a one-line
 * message (per thread) that ptl_error_message() returns until the next error. User input never
 * reaches assert() or abort().
 */
#ifndef PTL_CORE_H
#define PTL_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ptl_status {
    PTL_OK = 0,
    PTL_EINVAL = -1,  /* bad argument or shape */
    PTL_ENOMEM = -2,  /* allocation failed */
    PTL_EIO = -3,     /* file or system I/O failed */
    PTL_EFORMAT = -4, /* a file's content is not what it must be */
    PTL_EMPI = -5,    /* an MPI call failed */
    PTL_ERANGE = -6,  /* a value (label, index) is out of its range */
    PTL_ESTOPPED = -7, /* a run stopped on request (a signal) after writing a checkpoint */
};

/* Short static description of a status code ("invalid argument", ...). */
const char *ptl_strerror(int code);

/* Records a printf-style message for the calling thread and returns code (so callers can write
 * `return ptl_error(PTL_EINVAL, "conv2d: ...")`). */
int ptl_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Message of the most recent error on this thread ("" if none). */
const char *ptl_error_message(void);

/* Forgets the recorded message. */
void ptl_error_clear(void);

/* Threads: one setting for BLIS's GEMM threads and the OpenMP element-wise loops. */

/* Number of cores this process may run on (its CPU affinity mask). */
int ptl_threads_available(void);

/* Monotonic wall-clock seconds (CLOCK_MONOTONIC). */
double ptl_now(void);

/* Threads from the PTL_THREADS environment variable, else ptl_threads_available(). Returns a
 * negative code if PTL_THREADS is set but is not a positive integer. */
int ptl_threads_from_env(void);

/* Sets both BLIS and OpenMP to n threads (n >= 1), at most ptl_threads_available(): threads
 * beyond the cores only wait for each other (BLIS's barriers spin without yielding, and a
 * 2-thread test on a 1-core affinity ran for minutes instead of under a second). Callers that
 * report the count read ptl_threads_get(). */
int ptl_threads_set(int n);

/* The thread count set by ptl_threads_set (1 before any call). */
int ptl_threads_get(void);

/* Counter-based RNG (SplitMix64-style finaliser over seed and counters): any rank can jump to
 * any sample's stream without drawing the ones before it. */
struct ptl_rng {
    uint64_t key;     /* derived from the run seed and a stream id */
    uint64_t counter; /* position inside the stream */
};

/* Stream `stream` of seed `seed`. */
void ptl_rng_init(struct ptl_rng *rng, uint64_t seed, uint64_t stream);
uint64_t ptl_rng_u64(struct ptl_rng *rng);
/* Uniform in [0, 1). */
float ptl_rng_uniform(struct ptl_rng *rng);
/* Standard normal (Box-Muller). */
float ptl_rng_normal(struct ptl_rng *rng);
/* Fills x[0..n) with Normal(mean, stddev^2). */
void ptl_rng_fill_normal(struct ptl_rng *rng, float *x, size_t n, float mean, float stddev);
/* Fills x[0..n) with Uniform[lo, hi). */
void ptl_rng_fill_uniform(struct ptl_rng *rng, float *x, size_t n, float lo, float hi);

/* Version string of the library ("0.1.0"). */
const char *ptl_version(void);

#ifdef __cplusplus
}
#endif
#endif
