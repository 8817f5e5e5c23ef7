/* ptl_model_print_summary: the layer table of a built model (one row per graph node: module
 * name, op kind, per-sample output shape, parameters it owns, forward FLOPs per sample) and the
 * totals by role. Reads the graph only: the model needs no forward for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/graph.h"

/* 25557032 -> "25,557,032" (buf of at least 32). */
static const char *grouped(char *buf, size_t size, unsigned long long v)
{
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%llu", v), o = 0;
    for (int i = 0; i < len && (size_t)o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

/* FLOPs with a unit: "118.0 M", "4.11 G". */
static const char *scaled(char *buf, size_t size, double v)
{
    if (v >= 1e9)
        snprintf(buf, size, "%.2f G", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.1f M", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, size, "%.1f K", v / 1e3);
    else
        snprintf(buf, size, "%.0f", v);
    return buf;
}

void ptl_model_print_summary(const struct ptl_model *m, void *file)
{
    FILE *f = file ? file : stdout;
    /* An entry is counted at the first node that uses it: shared layers (MGN's reduction) are
     * not counted twice. */
    unsigned char *seen = calloc(m->n_entries ? m->n_entries : 1, 1);
    const struct ptl_tensor *in = m->input >= 0 ? &m->tensors[m->input] : NULL;
    char a[32], b[32], shape[40];
    fprintf(f, "%s: input %dx%dx%d, %d classes\n", m->arch, in ? in->c : 0, in ? in->h : 0,
            in ? in->w : 0, m->cfg.classes);
    fprintf(f, "%-4s %-46s %-18s %-16s %12s %10s\n", "#", "layer", "op", "output", "params",
            "FLOPs");
    for (int i = 0; i < m->n_nodes; i++) {
        const struct ptl_node *node = &m->nodes[i];
        const struct ptl_tensor *y = &m->tensors[node->out];
        unsigned long long params = 0;
        for (int k = 0; k < PTL_NODE_MAX_PARAMS; k++) {
            int e = node->param[k];
            if (e < 0 || m->entries[e].kind != PTL_ENTRY_PARAM || (seen && seen[e]))
                continue;
            if (seen)
                seen[e] = 1;
            params += m->entries[e].count;
        }
        double fl = node->ops->flops ? node->ops->flops(m, node) : 0;
        snprintf(shape, sizeof shape, "%dx%dx%d", y->c, y->h, y->w);
        fprintf(f, "%-4d %-46s %-18s %-16s %12s %10s\n", i, node->name[0] ? node->name : "-",
                node->ops->kind, shape, params ? grouped(a, sizeof a, params) : "-",
                fl > 0 ? scaled(b, sizeof b, fl) : "-");
    }
    free(seen);
    static const char *const role_name[PTL_ROLE_COUNT] = {"backbone", "cells", "head"};
    fprintf(f, "\nparameters: %s\n", grouped(a, sizeof a, m->n_param_floats));
    for (int r = 0; r < PTL_ROLE_COUNT; r++)
        fprintf(f, "  %-10s %s\n", role_name[r],
                grouped(a, sizeof a, ptl_model_param_floats_in(m, (enum ptl_role)r)));
    fprintf(f, "buffers: %s floats (BatchNorm running statistics and counters)\n",
            grouped(a, sizeof a, m->n_buffer_floats));
    double flops = ptl_model_flops(m);
    fprintf(f, "forward FLOPs per sample: %s (%.3e; %.2f GMACs)\n", scaled(b, sizeof b, flops),
            flops, flops / 2e9);
}
