/* The schema of `ptl train` and `ptl eval` configs: every key with its type, default, range or
 * choices, and one line of documentation. docs/config.md holds the same table (printed by
 * ptl_config_print_keys; tests/unit/test_config.c fails when the two differ).
 *
 * Ranges are inclusive; an open bound is the next double inside it (ABOVE_0, BELOW_1), which
 * ptl_config_print_keys shows as "(0" and "1)". For lists, `choices` holds the allowed item
 * counts ("2", "1|3"); NULL allows 0..max_items.
 */
#include <float.h>
#include <math.h>

#include "ptl/config.h"

#define NONE 1, 0 /* min > max: no range */
#define UP HUGE_VAL
#define ABOVE_0 DBL_TRUE_MIN         /* (0, ... */
#define BELOW_1 0x1.fffffffffffffp-1 /* ..., 1) */
#define TWO_POW_53 9007199254740992.0

static const struct ptl_config_key train_keys[] = {
    /* run */
    {"run.seed", PTL_CFG_INT, "0", 0, TWO_POW_53, NULL, 0,
     "seed of everything random (init, data order, augmentation, latent states)"},
    {"run.threads", PTL_CFG_INT, "0", 0, 1024, NULL, 0,
     "threads per rank (0: PTL_THREADS, else SLURM_CPUS_PER_TASK, else the process's cores "
     "shared among the node's ranks); at most the cores the process may run on (more is cut "
     "down, with a note on stderr)"},
    {"run.log_every", PTL_CFG_INT, "50", 1, UP, NULL, 0,
     "steps between progress lines when stderr is not a terminal"},
    {"run.debug_log", PTL_CFG_BOOL, "false", NONE, NULL, 0,
     "also write RUN_DIR/debug.log: one line per step (batch, loss, lr, phase times)"},

    /* model */
    {"model.arch", PTL_CFG_STRING, "resnet18-narrow", NONE, NULL, 0,
     "architecture (`ptl model list`); checked when the run starts"},
    {"model.classes", PTL_CFG_INT, "0", 0, 1000000, NULL, 0,
     "classifier outputs; 0 = number of training labels of the data"},
    {"model.weights", PTL_CFG_STRING, "", NONE, NULL, 0,
     "HDF5 weights to start from (\"\" = fresh initialisation)"},
    {"model.load", PTL_CFG_ENUM, "partial", NONE, "partial|strict|backbone", 0,
     "partial = load the names that match (a backbone into a PTL model), strict = every name "
     "must match, backbone = only the backbone's entries (the head and PTL branch stay freshly "
     "initialised: fine-tuning onto new classes)"},
    {"model.eval_state", PTL_CFG_ENUM, "reset", NONE, "reset|global", 0,
     "BConv-Cell latent state at evaluation"},
    {"model.cell_history", PTL_CFG_INT, "1", 1, 8, NULL, 0, "BConv-Cell-v2 history depth M"},

    /* data */
    {"data.path", PTL_CFG_STRING, "/usr/share/datasets/fashion-mnist", NONE, NULL, 0,
     "dataset source (folder or packed .h5)"},
    {"data.format", PTL_CFG_ENUM, "auto", NONE,
     "auto|idx|cifar10|cifar100|folders|market1501|dukemtmc|cuhk03-labeled|cuhk03-detected|"
     "msmt17|packed",
     0, "format of data.path (auto = detected from the path)"},
    {"data.size", PTL_CFG_INT_LIST, "[0, 0]", 0, 4096, "2", 2,
     "resize image files to H, W at load (0, 0 = keep)"},
    {"data.train_split", PTL_CFG_STRING, "train", NONE, NULL, 0, "split to train on"},
    {"data.eval_split", PTL_CFG_STRING, "test", NONE, NULL, 0,
     "split to evaluate on; for ReID sources query+gallery are used when this is \"query\""},
    {"data.classes", PTL_CFG_INT_LIST, "[]", 0, 1000000, NULL, 1000,
     "keep only these labels (relabelled 0..n-1 in list order); [] = all"},
    {"data.per_class", PTL_CFG_INT, "0", 0, UP, NULL, 0,
     "keep at most this many training samples per label (seeded choice); 0 = all"},
    {"data.eval_max", PTL_CFG_INT, "0", 0, UP, NULL, 0,
     "evaluate on at most this many samples (the first ones); 0 = all"},
    {"data.on_error", PTL_CFG_ENUM, "fail", NONE, "fail|skip", 0,
     "an unreadable sample or bad label: fail = error naming it, skip = leave it out"},
    {"data.sampler", PTL_CFG_ENUM, "shuffle", NONE, "shuffle|pk", 0,
     "batch sampler: shuffle = random order each epoch, pk = P identities x K images"},
    {"data.batch", PTL_CFG_INT, "64", 1, 65536, NULL, 0,
     "global batch (over all ranks; P*K for sampler pk, must match)"},
    {"data.pk", PTL_CFG_INT_LIST, "[4, 4]", 1, UP, "2", 2,
     "P identities x K images per batch for sampler pk"},
    {"data.shard", PTL_CFG_ENUM, "global", NONE, "global|local", 0,
     "global = every rank takes its contiguous part of each global batch (same batches for any "
     "number of ranks); local = each rank owns a fixed part of the data and shuffles inside it"},
    {"data.eval_batch", PTL_CFG_INT, "256", 1, 65536, NULL, 0, "batch at evaluation"},

    /* augment */
    {"augment.flip", PTL_CFG_FLOAT, "0", 0, 1, NULL, 0, "horizontal flip probability"},
    {"augment.pad", PTL_CFG_INT, "0", 0, 64, NULL, 0,
     "zero padding before a random crop back to the size"},
    {"augment.erase", PTL_CFG_FLOAT, "0", 0, 1, NULL, 0, "random erasing probability"},
    {"augment.resize", PTL_CFG_INT_LIST, "[0, 0]", 0, 4096, "2", 2,
     "resize to H, W before the rest (0, 0 = none)"},
    {"augment.mean", PTL_CFG_FLOAT_LIST, "[0.5]", NONE, "1|3", 3,
     "normalisation mean per channel (1 item = all channels)"},
    {"augment.std", PTL_CFG_FLOAT_LIST, "[0.5]", ABOVE_0, UP, "1|3", 3,
     "normalisation standard deviation per channel (1 item = all channels)"},

    /* loss */
    {"loss.ce", PTL_CFG_FLOAT, "1", 0, UP, NULL, 0,
     "weight of softmax cross-entropy (mean over classifier heads)"},
    {"loss.label_smoothing", PTL_CFG_FLOAT, "0", 0, BELOW_1, NULL, 0,
     "label smoothing of the cross-entropy"},
    {"loss.triplet", PTL_CFG_FLOAT, "0", 0, UP, NULL, 0,
     "weight of batch-hard triplet loss on the global features"},
    {"loss.margin", PTL_CFG_FLOAT, "1.2", 0, UP, NULL, 0, "margin of the triplet loss"},

    /* optim */
    {"optim.name", PTL_CFG_ENUM, "sgd", NONE, "sgd|adam", 0,
     "optimizer (torch.optim.SGD or Adam semantics)"},
    {"optim.lr", PTL_CFG_FLOAT, "0.01", ABOVE_0, UP, NULL, 0, "base learning rate"},
    {"optim.momentum", PTL_CFG_FLOAT, "0.9", 0, BELOW_1, NULL, 0, "SGD momentum"},
    {"optim.dampening", PTL_CFG_FLOAT, "0", 0, 1, NULL, 0, "SGD dampening"},
    {"optim.nesterov", PTL_CFG_BOOL, "false", NONE, NULL, 0, "SGD Nesterov momentum"},
    {"optim.betas", PTL_CFG_FLOAT_LIST, "[0.9, 0.999]", 0, BELOW_1, "2", 2, "Adam beta1, beta2"},
    {"optim.eps", PTL_CFG_FLOAT, "1e-8", ABOVE_0, UP, NULL, 0, "Adam epsilon"},
    {"optim.amsgrad", PTL_CFG_BOOL, "false", NONE, NULL, 0, "Adam: the AMSGrad variant"},
    {"optim.weight_decay", PTL_CFG_FLOAT, "5e-4", 0, UP, NULL, 0,
     "L2 weight decay added to the gradient (not AdamW)"},
    {"optim.lr_backbone", PTL_CFG_FLOAT, "1", 0, UP, NULL, 0,
     "lr scale of the backbone (0 = frozen)"},
    {"optim.lr_cells", PTL_CFG_FLOAT, "1", 0, UP, NULL, 0,
     "lr scale of the PTL branch (0 = frozen)"},
    {"optim.lr_head", PTL_CFG_FLOAT, "1", 0, UP, NULL, 0, "lr scale of the head (0 = frozen)"},

    /* schedule */
    {"schedule.name", PTL_CFG_ENUM, "constant", NONE, "constant|multistep|cosine", 0,
     "learning-rate schedule, stepped once per epoch"},
    {"schedule.milestones", PTL_CFG_INT_LIST, "[]", 0, UP, NULL, 16,
     "multistep: epochs at which the lr is multiplied by schedule.gamma"},
    {"schedule.gamma", PTL_CFG_FLOAT, "0.1", ABOVE_0, 1, NULL, 0,
     "multistep: lr factor at each milestone"},
    {"schedule.eta_min", PTL_CFG_FLOAT, "0", 0, UP, NULL, 0, "cosine: lr at the last epoch"},
    {"schedule.warmup_steps", PTL_CFG_INT, "0", 0, UP, NULL, 0,
     "steps of linear warm-up from warmup_factor * lr (0 = none)"},
    {"schedule.warmup_factor", PTL_CFG_FLOAT, "0.1", ABOVE_0, 1, NULL, 0,
     "lr factor at the first warm-up step"},

    /* train */
    {"train.epochs", PTL_CFG_INT, "1", 1, 100000, NULL, 0, "epochs to train"},
    {"train.steps", PTL_CFG_INT, "0", 0, UP, NULL, 0,
     "stop at this global step (0 = after train.epochs)"},
    {"train.eval_every", PTL_CFG_INT, "1", 0, UP, NULL, 0,
     "evaluate every this many epochs (0 = only at the end)"},

    /* checkpoint */
    {"checkpoint.every_steps", PTL_CFG_INT, "0", 0, UP, NULL, 0,
     "write a checkpoint (checkpoints/ckpt-N.h5: weights, optimizer, latent states, data "
     "position) every this many steps (0 = not by steps)"},
    {"checkpoint.every_minutes", PTL_CFG_FLOAT, "0", 0, UP, NULL, 0,
     "write a checkpoint every this many minutes of wall time (0 = not by time)"},
    {"checkpoint.keep_last", PTL_CFG_INT, "3", 1, 1000, NULL, 0,
     "checkpoints kept in checkpoints/ (older ones are deleted once a newer one is complete)"},

    /* latent (BConv-Cell states across ranks) */
    {"latent.merge", PTL_CFG_STRING, "mean", NONE, NULL, 0,
     "merge of the cells' latent states across ranks: mean, weighted (by each rank's training "
     "samples), ema:ALPHA (own <- (1-ALPHA) own + ALPHA mean) or none"},
    {"latent.merge_every", PTL_CFG_INT, "1", 1, UP, NULL, 0,
     "steps between merges (also merged before every evaluation)"},

    /* dist */
    {"dist.bucket_mb", PTL_CFG_FLOAT, "25", ABOVE_0, 4096, NULL, 0,
     "MiB of gradients per allreduce bucket (started as soon as backward completes it)"},
    {"dist.sync_bn", PTL_CFG_BOOL, "false", NONE, NULL, 0,
     "BatchNorm statistics over the whole global batch (true) or per rank (false)"},
    {"dist.timeout", PTL_CFG_FLOAT, "600", 0, UP, NULL, 0,
     "seconds without progress after which a rank ends the whole job (0 = no watchdog)"},

    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

const struct ptl_config_key *ptl_train_config_keys(void)
{
    return train_keys;
}
