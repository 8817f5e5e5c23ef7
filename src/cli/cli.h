/* Subcommands of the ptl command-line tool. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef PTL_CLI_H
#define PTL_CLI_H

/* Exit status for a bad command line (as BSD's EX_USAGE). */
#define PTL_EXIT_USAGE 64

/* ptl bench ops [...]: per-layer conv GFLOPS against a bare sgemm of the same shape. */
int ptl_cli_bench(int argc, char **argv);

/* ptl bench step [...]: images/s of whole training steps of one architecture (called by
 * ptl_cli_bench, argv[1] is "step"). */
int ptl_cli_bench_step(int argc, char **argv);

/* ptl model list | summary: the architectures and their layer tables. */
int ptl_cli_model(int argc, char **argv);

/* ptl forward: runs a model with imported weights on an HDF5 input. */
int ptl_cli_forward(int argc, char **argv);

#endif
