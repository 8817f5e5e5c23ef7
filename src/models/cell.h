/* Internal: the BConv-Cell node kind and its builder (cell.c). */
#ifndef PTL_MODELS_CELL_H
#define PTL_MODELS_CELL_H

#include "models/graph.h"

extern const struct ptl_node_ops ptl_node_cell;

/* Adds a BConv-Cell (version 1 or 2) named `name` (its gate conv is "<name>.gates") on tensor
 * x: C_out output channels, k x k gates with stride and padding. v2 takes the history depth
 * from the model config. Returns the output tensor id or -1. */
int graph_bconv_cell(struct ptl_model *m, const char *name, int x, int c_out, int k, int stride,
                     int pad, int version);

#endif
