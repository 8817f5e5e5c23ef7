/* ptl/model.h - networks as static graphs: built once by name, then run forward and backward
 * many times on batches of images.
 *
 * Parameters live in one flat buffer (gradients in another of the same layout) in a fixed order,
 * each entry with its PyTorch state_dict name. Non-trainable state that PyTorch keeps in the
 * state_dict (BatchNorm running statistics, num_batches_tracked) lives in a second flat buffer
 * of "buffers". BConv-Cell latent states are not in the state_dict: they are run state, owned by
 * the cells (see ptl_model_reset_state).
 */
#ifndef PTL_MODEL_H
#define PTL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ptl_model;

/* Which part of a network an entry belongs to: the pre-trained backbone, the PTL branch
 * (BConv-Cells and fuse layers), or the task head (feature conv, classifiers). Used for
 * partial loading, per-group learning rates and the parameter summary. */
enum ptl_role { PTL_ROLE_BACKBONE = 0, PTL_ROLE_CELLS = 1, PTL_ROLE_HEAD = 2, PTL_ROLE_COUNT = 3 };

/* Where an entry's values live. */
enum ptl_entry_kind {
    PTL_ENTRY_PARAM = 0,   /* trainable, in ptl_model_params() */
    PTL_ENTRY_BUFFER = 1,  /* running statistics, in ptl_model_buffers() */
    PTL_ENTRY_COUNTER = 2, /* an integer count (num_batches_tracked): int64 in PyTorch, kept as a
                              float in ptl_model_buffers() (exact below 2^24) */
};

struct ptl_entry {
    const char *name;  /* PyTorch state_dict name, e.g. "layer1.0.conv1.weight" */
    int ndim;          /* 0 (a scalar counter) to 4 */
    int shape[4];
    size_t count;      /* elements */
    size_t offset;     /* into params or buffers, by kind */
    enum ptl_entry_kind kind;
    enum ptl_role role;
    int used;          /* 0 for entries PyTorch's module holds but its forward never reads (kept
                          so state_dicts load strictly; they get no gradient) */
};

/* Architecture options beyond the name. */
struct ptl_model_config {
    int classes;     /* classifier outputs (> 0) */
    int in_c, in_h, in_w; /* input image shape (C, H, W) */
    uint64_t seed;   /* parameter initialisation and initial latent states */
    int eval_state_global; /* 0: cells reset on every eval forward (release default);
                              1: eval starts from the training state averaged over slots */
    int cell_history; /* BConv-Cell-v2 history depth M (default 1) */
};

/* Names accepted by ptl_model_create, NULL-terminated. */
const char *const *ptl_model_arch_names(void);

/* Builds the network `arch` (e.g. "resnet50", "ptl-densenet161", "mgn-ptl") with freshly
 * initialised parameters. Returns 0 or a negative PTL_E* code with a message. */
int ptl_model_create(struct ptl_model **out, const char *arch, const struct ptl_model_config *cfg);
void ptl_model_free(struct ptl_model *m);

const char *ptl_model_arch(const struct ptl_model *m);

/* Entries in state_dict order. */
size_t ptl_model_entry_count(const struct ptl_model *m);
const struct ptl_entry *ptl_model_entry(const struct ptl_model *m, size_t i);
/* Index of the entry named `name`, or -1. */
long ptl_model_find_entry(const struct ptl_model *m, const char *name);
/* Pointer to an entry's values (in params or buffers). */
float *ptl_model_entry_data(struct ptl_model *m, size_t i);

/* The flat buffers. Gradients have the layout of params. */
float *ptl_model_params(struct ptl_model *m);
float *ptl_model_grads(struct ptl_model *m);
size_t ptl_model_param_floats(const struct ptl_model *m);
float *ptl_model_buffers(struct ptl_model *m);
size_t ptl_model_buffer_floats(const struct ptl_model *m);
/* Trainable parameters per role (sum over roles = ptl_model_param_floats). */
size_t ptl_model_param_floats_in(const struct ptl_model *m, enum ptl_role role);

/* Outputs: "features" (the retrieval feature, always output 0), then the logits ("logits", or
 * "logits.<i>" for networks with several classifiers), then any extra training outputs (MGN's
 * "triplet.<i>" global features). */
int ptl_model_output_count(const struct ptl_model *m);
const char *ptl_model_output_name(const struct ptl_model *m, int i);
/* Values per sample of output i (known from construction), or -1 for a bad index. */
int ptl_model_output_dim(const struct ptl_model *m, int i);
/* Values of output i after a forward: (N, dim). */
const float *ptl_model_output(const struct ptl_model *m, int i, int *dim);

/* Runs the network on a batch (N, C, H, W) in training (train = 1: batch statistics, running
 * statistics updated, latent states carried) or eval mode. N may differ between calls. */
int ptl_model_forward(struct ptl_model *m, const float *input, int n, int train);

/* Backward of the last training forward. d_outputs[i] is the gradient of the loss with respect
 * to output i, (N, dim), or NULL when the loss does not use it. Parameter gradients ACCUMULATE
 * into ptl_model_grads(); d_input (N, C, H, W) receives the input gradient if not NULL. */
int ptl_model_backward(struct ptl_model *m, const float *const *d_outputs, float *d_input);

/* Zeroes the parameter gradients. */
void ptl_model_zero_grad(struct ptl_model *m);

/* Starts a new epoch for the BConv-Cells: latent states are redrawn from
 * Normal(0, 0.001^2) with the stream of (seed, epoch) on the next forward. */
void ptl_model_reset_state(struct ptl_model *m, uint64_t epoch);

/* Latent states of the BConv-Cells, in graph order: every cell has "<cell>.c"
 * (slots, C_out, H', W') and a v2 cell also "<cell>.x_prev" (slots, M * C_in, H, W), the inputs
 * of its last M batches, most recent first. */
int ptl_model_state_count(const struct ptl_model *m);
/* Name (written to name[name_size]) and floats per slot of state i. */
int ptl_model_state_info(const struct ptl_model *m, int i, char *name, size_t name_size,
                         size_t *slot_floats);
/* Rows the state holds now (0 before the first training forward and after a reset). */
int ptl_model_state_slots(const struct ptl_model *m, int i);
/* Writable values of state i with at least `slots` rows, drawn or grown as a training forward
 * would do; NULL with a message on error. */
float *ptl_model_state_data(struct ptl_model *m, int i, int slots);
/* Every state that holds slots, packed one after the other in state order: the floats they
 * take, and a copy into buf (to_buf != 0) or from buf back into the cells. */
size_t ptl_model_states_floats(const struct ptl_model *m);
void ptl_model_states_copy(struct ptl_model *m, float *buf, int to_buf);

/* ---- Hooks for data parallelism (the dist layer sets them; one process needs none) ---- */

/* Global index of this process's batch slot 0: a process holding slots [base, base + n) of a
 * global batch draws the initial latent rows of those global slots, so a sharded run starts
 * every cell exactly as one process with the whole batch would. */
void ptl_model_set_slot_base(struct ptl_model *m, int base);

/* Sums `count` doubles in place over all processes (MPI_Allreduce, MPI_SUM); 0 or PTL_E*. */
typedef int (*ptl_model_sum_fn)(void *ctx, double *values, int count);
/* SyncBN: with fn set, training-mode BatchNorm normalises with the statistics of the whole
 * global batch (fn sums the per-channel sums in forward and the matching sums in backward).
 * NULL turns it off (per-process statistics). */
void ptl_model_set_bn_sum(struct ptl_model *m, ptl_model_sum_fn fn, void *ctx);

/* Called during backward after every node, with the parameter entries whose gradients that node
 * completed (count may be 0: the call is also a chance to progress communication). Entries no
 * node uses are reported before the first node. */
typedef void (*ptl_model_grads_ready_fn)(void *ctx, const int *entries, int count);
int ptl_model_set_grads_ready(struct ptl_model *m, ptl_model_grads_ready_fn fn, void *ctx);
/* The parameter entries in the order backward completes their gradients (the order the hook
 * reports them), into order[ptl_model_entry_count]; returns how many, or a PTL_E* code. */
int ptl_model_grad_order(struct ptl_model *m, int *order);

/* Forward FLOPs per sample (multiply-adds counted as 2). */
double ptl_model_flops(const struct ptl_model *m);

/* Prints the layer table (name, op, output shape, parameters, FLOPs) and totals. */
void ptl_model_print_summary(const struct ptl_model *m, void *file /* FILE * */);

/* Profiling: from this call on, forward and backward add each node's wall time to per-node
 * totals (restarting from zero). ptl_model_print_profile prints them divided by `passes` (the
 * steps run since), by op kind and for the `top` slowest nodes. */
int ptl_model_profile_start(struct ptl_model *m);
void ptl_model_print_profile(const struct ptl_model *m, int passes, int top,
                             void *file /* FILE * */);

#ifdef __cplusplus
}
#endif
#endif
