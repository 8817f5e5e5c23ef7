/* Per-node wall-clock profile of forward and backward (ptl bench step --profile): where a
 * training step spends its time, by op kind and by node. Off by default; when on, graph.c
 * brackets every node call with a monotonic clock read (two reads per node and pass, far below
 * the cost of any node).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/graph.h"
#include "ptl/core.h"

double graph_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int ptl_model_profile_start(struct ptl_model *m)
{
    free(m->prof);
    m->prof = calloc(2 * (size_t)(m->n_nodes ? m->n_nodes : 1), sizeof *m->prof);
    return m->prof ? PTL_OK : ptl_error(PTL_ENOMEM, "%s: out of memory for the profile", m->arch);
}

struct kind_total {
    const char *kind;
    double fwd, bwd;
    int nodes;
};

static int by_total_desc(const void *a, const void *b)
{
    const struct kind_total *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return (tx < ty) - (tx > ty);
}

void ptl_model_print_profile(const struct ptl_model *m, int passes, int top, void *file)
{
    FILE *f = file ? file : stdout;
    if (m->prof == NULL || passes < 1)
        return;
    struct kind_total kinds[32];
    int n_kinds = 0;
    double all = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const char *kind = m->nodes[i].ops->kind;
        int k = 0;
        while (k < n_kinds && strcmp(kinds[k].kind, kind) != 0)
            k++;
        if (k == n_kinds) {
            if (n_kinds == (int)(sizeof kinds / sizeof kinds[0]))
                continue;
            kinds[n_kinds++] = (struct kind_total){kind, 0, 0, 0};
        }
        kinds[k].fwd += m->prof[2 * i];
        kinds[k].bwd += m->prof[2 * i + 1];
        kinds[k].nodes++;
        all += m->prof[2 * i] + m->prof[2 * i + 1];
    }
    qsort(kinds, (size_t)n_kinds, sizeof kinds[0], by_total_desc);
    fprintf(f, "profile of %s: ms per step (mean of %d), by op kind\n", m->arch, passes);
    fprintf(f, "%-18s %6s %10s %10s %10s %7s\n", "op", "nodes", "forward", "backward", "total",
            "share");
    for (int k = 0; k < n_kinds; k++) {
        double t = kinds[k].fwd + kinds[k].bwd;
        fprintf(f, "%-18s %6d %10.2f %10.2f %10.2f %6.1f%%\n", kinds[k].kind, kinds[k].nodes,
                1e3 * kinds[k].fwd / passes, 1e3 * kinds[k].bwd / passes, 1e3 * t / passes,
                all > 0 ? 100 * t / all : 0);
    }
    fprintf(f, "%-18s %6d %10s %10s %10.2f\n", "all nodes", m->n_nodes, "", "", 1e3 * all / passes);
    if (top <= 0)
        return;
    /* The slowest nodes: repeated selection, fine for a few hundred nodes. */
    unsigned char *shown = calloc((size_t)m->n_nodes + 1, 1);
    if (shown == NULL)
        return;
    fprintf(f, "\nslowest %d nodes, ms per step\n%-4s %-40s %-12s %-14s %9s %9s\n", top, "#",
            "layer", "op", "output", "forward", "backward");
    for (int r = 0; r < top && r < m->n_nodes; r++) {
        int best = -1;
        for (int i = 0; i < m->n_nodes; i++)
            if (!shown[i] && (best < 0 || m->prof[2 * i] + m->prof[2 * i + 1] >
                                              m->prof[2 * best] + m->prof[2 * best + 1]))
                best = i;
        shown[best] = 1;
        const struct ptl_node *node = &m->nodes[best];
        const struct ptl_tensor *y = &m->tensors[node->out];
        char shape[40];
        snprintf(shape, sizeof shape, "%dx%dx%d", y->c, y->h, y->w);
        fprintf(f, "%-4d %-40s %-12s %-14s %9.2f %9.2f\n", best,
                node->name[0] ? node->name : "-", node->ops->kind, shape,
                1e3 * m->prof[2 * best] / passes, 1e3 * m->prof[2 * best + 1] / passes);
    }
    free(shown);
}
