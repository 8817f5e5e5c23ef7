/* Merging of the BConv-Cells' latent states across ranks (dist.h, method.md "Distributed
 * PTL"): slot n of every rank is replaced by the mean (or weighted mean, or an EMA towards the
 * mean) of slot n over the ranks, so every rank's cells carry what all ranks have seen.
 *
 * All states go in one packed float buffer and one allreduce (with the ranks' weights in a tiny
 * second one). The spread between ranks is measured in a second pass once the mean is known
 * (one more allreduce of a double): the one-pass sum_r |s_r|^2 - R |mean|^2 cancels to noise
 * when the ranks nearly agree. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/dist.h"

struct ptl_latent_merge {
    struct ptl_model *m;
    struct ptl_merge_spec spec;
    float *packed;   /* this rank's states (weighted), then the sums */
    float *own;      /* a copy of this rank's states */
    size_t floats;
    double total_w;  /* this rank's weight, then the sum over ranks */
    MPI_Request req[2];
    int active;
};

int ptl_merge_parse(struct ptl_merge_spec *spec, const char *text)
{
    memset(spec, 0, sizeof *spec);
    spec->weight = 1.0;
    if (strcmp(text, "none") == 0)
        spec->kind = PTL_MERGE_NONE;
    else if (strcmp(text, "mean") == 0)
        spec->kind = PTL_MERGE_MEAN;
    else if (strcmp(text, "weighted") == 0)
        spec->kind = PTL_MERGE_WEIGHTED;
    else if (strncmp(text, "ema:", 4) == 0) {
        char *end;
        spec->kind = PTL_MERGE_EMA;
        spec->alpha = strtod(text + 4, &end);
        if (end == text + 4 || *end != '\0' || !(spec->alpha > 0 && spec->alpha <= 1))
            return ptl_error(PTL_EINVAL, "'%s': ema:ALPHA needs 0 < ALPHA <= 1", text);
    } else
        return ptl_error(PTL_EINVAL, "'%s': expected mean, weighted, ema:ALPHA or none", text);
    return PTL_OK;
}

int ptl_latent_merge_begin(struct ptl_latent_merge **out, struct ptl_model *m,
                           const struct ptl_merge_spec *spec)
{
    *out = NULL;
    const struct ptl_world *w = ptl_world();
    if (spec->kind == PTL_MERGE_NONE || w->size == 1)
        return PTL_OK;
    struct ptl_latent_merge *g = calloc(1, sizeof *g);
    if (g == NULL)
        return ptl_error(PTL_ENOMEM, "latent merge: out of memory");
    g->m = m;
    g->spec = *spec;
    g->floats = ptl_model_states_floats(m);
    if (g->floats > (size_t)INT32_MAX) {
        size_t floats = g->floats;
        free(g);
        return ptl_error(PTL_ERANGE, "latent merge: %zu floats of state are more than one "
                                     "MPI message can carry", floats);
    }
    g->packed = malloc((g->floats ? g->floats : 1) * sizeof *g->packed);
    g->own = malloc((g->floats ? g->floats : 1) * sizeof *g->own);
    if (g->packed == NULL || g->own == NULL) {
        size_t floats = g->floats;
        free(g->packed);
        free(g->own);
        free(g);
        return ptl_error(PTL_ENOMEM, "latent merge: out of memory for %zu floats", floats);
    }
    ptl_model_states_copy(m, g->packed, 1);
    double wgt = spec->kind == PTL_MERGE_WEIGHTED ? spec->weight : 1.0;
    memcpy(g->own, g->packed, g->floats * sizeof *g->own);
    if (wgt != 1.0)
        for (size_t k = 0; k < g->floats; k++)
            g->packed[k] = (float)(wgt * g->packed[k]);
    g->total_w = wgt;
    int e1 = MPI_Iallreduce(MPI_IN_PLACE, g->packed, (int)g->floats, MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD, &g->req[0]);
    int e2 = MPI_Iallreduce(MPI_IN_PLACE, &g->total_w, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD,
                            &g->req[1]);
    if (e1 != MPI_SUCCESS || e2 != MPI_SUCCESS) {
        free(g->packed);
        free(g->own);
        free(g);
        return ptl_error(PTL_EMPI, "latent merge: MPI_Iallreduce failed");
    }
    g->active = 1;
    *out = g;
    return PTL_OK;
}

int ptl_latent_merge_end(struct ptl_latent_merge *g, struct ptl_merge_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (g == NULL)
        return PTL_OK;
    int rc = PTL_OK;
    if (MPI_Waitall(2, g->req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
        rc = ptl_error(PTL_EMPI, "latent merge: MPI_Waitall failed");
    if (rc == 0) {
        double total_w = g->total_w, norm2 = 0;
        /* dev: this rank's weighted squared distance to the mean (the spread's second pass) */
        double dev = 0, w = g->spec.kind == PTL_MERGE_WEIGHTED ? g->spec.weight : 1.0;
        for (size_t k = 0; k < g->floats; k++) {
            double mean = g->packed[k] / total_w, d = g->own[k] - mean;
            norm2 += mean * mean;
            dev += w * d * d;
            g->packed[k] = g->spec.kind == PTL_MERGE_EMA
                               ? (float)((1.0 - g->spec.alpha) * g->own[k] + g->spec.alpha * mean)
                               : (float)mean;
        }
        ptl_model_states_copy(g->m, g->packed, 0);
        if (MPI_Allreduce(MPI_IN_PLACE, &dev, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            rc = ptl_error(PTL_EMPI, "latent merge: MPI_Allreduce failed");
        if (rc == 0 && report && g->floats > 0) {
            report->spread = sqrt(dev / (total_w * (double)g->floats));
            report->rms = sqrt(norm2 / (double)g->floats);
            report->floats = g->floats;
        }
    }
    free(g->packed);
    free(g->own);
    free(g);
    return rc;
}

int ptl_latent_merge(struct ptl_model *m, const struct ptl_merge_spec *spec,
                     struct ptl_merge_report *report)
{
    struct ptl_latent_merge *g;
    int rc = ptl_latent_merge_begin(&g, m, spec);
    if (rc != 0)
        return rc;
    return ptl_latent_merge_end(g, report);
}

int ptl_dist_average_buffers(struct ptl_model *m)
{
    const struct ptl_world *w = ptl_world();
    size_t n = ptl_model_buffer_floats(m);
    if (w->size == 1 || n == 0)
        return PTL_OK;
    float *b = ptl_model_buffers(m);
    int rc = ptl_dist_sum_floats(b, n);
    for (size_t k = 0; rc == 0 && k < n; k++)
        b[k] /= (float)w->size;
    return rc;
}
