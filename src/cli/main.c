/* ptl - command-line entry point: parses the subcommand and hands over to it. Thin by design:
 * all work happens in libptl. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char usage[] =
    "Usage: ptl <command> [options]\n"
    "\n"
    "Fine-tunes convolutional networks with Progressive Transfer Learning on CPU clusters.\n"
    "\n"
    "Commands:\n"
    "  train          fine-tune a model from a YAML config (ptl train --help)\n"
    "  eval           evaluate weights on a config's evaluation data\n"
    "  data pack      pack a dataset into one HDF5 file\n"
    "  data info      what a dataset or packed file holds\n"
    "  ckpt info      verify a training checkpoint and show what it holds\n"
    "  ckpt export    write a checkpoint's weights as a plain weights file\n"
    "  plot           draw the curves of a run's metrics.jsonl into a PNG\n"
    "  model list     the architectures ptl builds\n"
    "  model summary  layer table, parameter counts and FLOPs of an architecture\n"
    "  forward        run a model with imported weights on an HDF5 input\n"
    "  bench ops      time the conv layers of a network against a bare BLIS sgemm\n"
    "  bench step     images/s of training steps of an architecture\n"
    "\n"
    "Each command has --help.\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help and exit\n"
    "  -V, --version  show the version and exit\n"
    "\n"
    "Environment:\n"
    "  PTL_THREADS    threads for BLIS GEMMs and OpenMP loops (default: SLURM_CPUS_PER_TASK,\n"
    "                 else the cores of this process shared among the node's ranks)\n"
    "\n"
    "train and eval run over MPI ranks when started by mpirun or srun (docs/distributed.md).\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return PTL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ptl %s\n%s\n", ptl_version(), ptl_blis_kernels());
        return 0;
    }
    if (strcmp(cmd, "bench") == 0 && argc > 2 && strcmp(argv[2], "dist") == 0) {
        if (ptl_dist_init(&argc, &argv) != 0) {
            fprintf(stderr, "ptl bench dist: %s\n", ptl_error_message());
            return 1;
        }
        int status = ptl_cli_bench(argc - 1, argv + 1);
        ptl_dist_finalize();
        return status;
    }
    if (strcmp(cmd, "bench") == 0)
        return ptl_cli_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "model") == 0)
        return ptl_cli_model(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0 || strcmp(cmd, "eval") == 0) {
        /* The distributed commands: ranks when started by mpirun/srun, else one process. */
        if (ptl_dist_init(&argc, &argv) != 0) {
            fprintf(stderr, "ptl %s: %s\n", cmd, ptl_error_message());
            return 1;
        }
        /* Rank 0 alone reports results; every rank still reports its own errors. */
        if (ptl_world()->rank != 0 && freopen("/dev/null", "w", stdout) == NULL)
            return 1;
        int status = strcmp(cmd, "train") == 0 ? ptl_cli_train(argc - 1, argv + 1)
                                               : ptl_cli_eval(argc - 1, argv + 1);
        ptl_dist_finalize();
        return status;
    }
    if (strcmp(cmd, "data") == 0)
        return ptl_cli_data(argc - 1, argv + 1);
    if (strcmp(cmd, "ckpt") == 0)
        return ptl_cli_ckpt(argc - 1, argv + 1);
    if (strcmp(cmd, "plot") == 0)
        return ptl_cli_plot(argc - 1, argv + 1);
    if (strcmp(cmd, "forward") == 0)
        return ptl_cli_forward(argc - 1, argv + 1);
    fprintf(stderr, "ptl: unknown command '%s' (see ptl --help)\n", cmd);
    return PTL_EXIT_USAGE;
}
