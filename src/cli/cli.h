/* Subcommands of the ptl command-line tool. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef PTL_CLI_H
#define PTL_CLI_H

/* Exit status for a bad command line (as BSD's EX_USAGE). */
#define PTL_EXIT_USAGE 64
/* ptl train stopped by SIGUSR1/SIGTERM after a checkpoint: run it again (BSD's EX_TEMPFAIL). */
#define PTL_EXIT_STOPPED 75

/* ptl bench ops [...]: per-layer conv GFLOPS against a bare sgemm of the same shape. */
int ptl_cli_bench(int argc, char **argv);

/* ptl bench step [...]: images/s of whole training steps of one architecture (called by
 * ptl_cli_bench, argv[1] is "step"). */
int ptl_cli_bench_step(int argc, char **argv);

/* ptl bench dist [...]: gradient-sync bandwidth against a bare MPI_Allreduce of the same bytes,
 * run under mpirun (bench_dist.c; argv[1] is "dist"). */
int ptl_cli_bench_dist(int argc, char **argv);

/* ptl bench ckpt [...]: checkpoint write/load bandwidth against plain write()/read() of the
 * same bytes (bench_ckpt.c; argv[1] is "ckpt"). */
int ptl_cli_bench_ckpt(int argc, char **argv);

/* ptl ckpt info | export: training checkpoints (ckpt_cmd.c). */
int ptl_cli_ckpt(int argc, char **argv);

/* ptl model list | summary: the architectures and their layer tables. */
int ptl_cli_model(int argc, char **argv);

/* ptl forward: runs a model with imported weights on an HDF5 input. */
int ptl_cli_forward(int argc, char **argv);

/* ptl data pack | info: packed HDF5 datasets (data_cmd.c). */
int ptl_cli_data(int argc, char **argv);

/* ptl plot METRICS.jsonl -o OUT.png: training curves (plot.c). */
int ptl_cli_plot(int argc, char **argv);

/* ptl train CONFIG --out RUN_DIR [...] and ptl eval CONFIG --weights W (train_cmd.c). */
int ptl_cli_train(int argc, char **argv);
int ptl_cli_eval(int argc, char **argv);

#endif
