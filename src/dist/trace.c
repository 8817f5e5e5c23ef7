/* Chrome-trace timeline (dist.h): each rank records complete events ("ph":"X") in memory; at
 * the end they are gathered to rank 0, which writes one JSON file with pid = rank, readable by
 * chrome://tracing and Perfetto. Horovod's timeline is the model. */
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/dist.h"

struct event {
    const char *name, *cat; /* static strings */
    double ts, dur;         /* microseconds */
};

struct ptl_trace {
    double t0;
    struct event *ev;
    size_t n, cap;
};

int ptl_trace_create(struct ptl_trace **out)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return ptl_error(PTL_ENOMEM, "trace: out of memory");
    (*out)->t0 = ptl_now();
    return PTL_OK;
}

void ptl_trace_free(struct ptl_trace *t)
{
    if (t) {
        free(t->ev);
        free(t);
    }
}

double ptl_trace_now(const struct ptl_trace *t)
{
    return (ptl_now() - t->t0) * 1e6;
}

void ptl_trace_event(struct ptl_trace *t, const char *name, const char *category, double start_us,
                     double end_us)
{
    if (t == NULL)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4096;
        struct event *e = realloc(t->ev, cap * sizeof *e);
        if (e == NULL)
            return; /* a trace is diagnostics: losing events beats failing the run */
        t->ev = e;
        t->cap = cap;
    }
    t->ev[t->n++] = (struct event){name, category, start_us, end_us - start_us};
}

/* This rank's events as JSON objects, each followed by ",\n". */
static char *render(const struct ptl_trace *t, int rank, size_t *len)
{
    size_t cap = 160 * (t->n + 1) + 256, at = 0;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    at += (size_t)snprintf(s + at, cap - at,
                           "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
                           "\"args\":{\"name\":\"rank %d\"}},\n",
                           rank, rank);
    for (size_t i = 0; i < t->n; i++)
        at += (size_t)snprintf(s + at, cap - at,
                               "{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":0,"
                               "\"ts\":%.1f,\"dur\":%.1f},\n",
                               t->ev[i].name, t->ev[i].cat, rank, t->ev[i].ts, t->ev[i].dur);
    *len = at;
    return s;
}

int ptl_trace_write(struct ptl_trace *t, const char *path)
{
    const struct ptl_world *w = ptl_world();
    size_t len = 0;
    char *mine = render(t, w->rank, &len);
    int failed = mine == NULL;
    int *lens = NULL, *displs = NULL;
    char *all = NULL;
    int mylen = (int)len, total = mylen;
    if (w->size > 1) {
        if (w->rank == 0) {
            lens = malloc((size_t)w->size * sizeof *lens);
            displs = malloc((size_t)w->size * sizeof *displs);
        }
        MPI_Gather(&mylen, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (w->rank == 0) {
            total = 0;
            for (int r = 0; r < w->size; r++) {
                displs[r] = total;
                total += lens[r];
            }
            all = malloc((size_t)total + 1);
        }
        MPI_Gatherv(mine, mylen, MPI_CHAR, all, lens, displs, MPI_CHAR, 0, MPI_COMM_WORLD);
    } else {
        all = mine;
        mine = NULL;
    }
    int rc = PTL_OK;
    if (w->rank == 0) {
        FILE *f = fopen(path, "w");
        if (f == NULL || all == NULL || failed) {
            rc = ptl_error(PTL_EIO, "%s: cannot write the trace: %s", path,
                           f == NULL ? strerror(errno) : "out of memory");
        } else {
            /* Drop the last ",\n" so the array is valid JSON. */
            fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
            fwrite(all, 1, total >= 2 ? (size_t)total - 2 : 0, f);
            fputs("\n]}\n", f);
            if (fclose(f) != 0)
                rc = ptl_error(PTL_EIO, "%s: cannot write the trace", path);
            f = NULL;
        }
        if (f)
            fclose(f);
    }
    free(mine);
    free(all);
    free(lens);
    free(displs);
    return rc;
}
