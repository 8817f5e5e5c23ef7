/* ptl train and ptl eval: parse the command line, resolve the config (file + flags + --set),
 * call the training loop or the evaluation, print the outcome. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ptl/ptl.h"
#include "train/loop.h"

static const char train_usage[] =
    "Usage: ptl train CONFIG.yaml --out RUN_DIR [--steps N] [--epochs E] [--seed S]\n"
    "                 [--resume auto|CKPT.h5] [--trace TRACE.json] [--set key=value]...\n"
    "       mpirun -n R ptl train CONFIG.yaml --out RUN_DIR ...   (or srun under Slurm)\n"
    "       ptl train CONFIG.yaml --dry-run [--set key=value]...\n"
    "       ptl train --list-keys\n"
    "\n"
    "Fine-tunes the model of CONFIG.yaml (docs/config.md lists every key and its default) on\n"
    "its training data, evaluating every train.eval_every epochs and at the end.\n"
    "\n"
    "Writes into RUN_DIR (created if missing; a RUN_DIR that already holds a run is refused):\n"
    "  config.yaml     the resolved config: every key, after the flags below\n"
    "  metrics.jsonl   one JSON object per line: training losses, lr, images/s every\n"
    "                  run.log_every steps, every evaluation (ptl plot draws it)\n"
    "  checkpoints/    ckpt-<step>.h5 every checkpoint.every_steps steps or every_minutes\n"
    "                  minutes, at the end and on SIGUSR1/SIGTERM; `latest` names the\n"
    "                  newest (docs/checkpoint.md)\n"
    "  final.h5        the trained weights by PyTorch name (ptl forward --weights, ptl eval)\n"
    "\n"
    "Progress goes to stderr: a live line on a terminal, else one line every run.log_every\n"
    "steps. The final evaluation is printed on stdout.\n"
    "\n"
    "Over R MPI ranks each rank computes data.batch / R samples of every global batch, the\n"
    "gradients are averaged, the BConv-Cell states merged (latent.*, dist.*); rank 0 writes\n"
    "the files above and every rank a debug.rank<R>.log with run.debug_log.\n"
    "\n"
    "Options:\n"
    "  --out RUN_DIR     where the run's files go (required)\n"
    "  --steps N         end the run at global step N, counted from the start of training\n"
    "                    (same as --set train.steps=N)\n"
    "  --epochs E        train for E epochs (--set train.epochs=E)\n"
    "  --seed S          seed of every random draw (--set run.seed=S)\n"
    "  --resume auto     continue the run in RUN_DIR from its newest valid checkpoint (none:\n"
    "                    start from step 0), so a job can simply be started again\n"
    "  --resume CKPT.h5  continue from that checkpoint, writing into RUN_DIR\n"
    "  --trace FILE      write a Chrome trace (chrome://tracing, Perfetto) of every rank's\n"
    "                    forward, backward, allreduce buckets, waits, merges and I/O\n"
    "  --set key=value   override one config key (repeatable; YAML values: 0.1, true, [1, 2])\n"
    "  --dry-run         check the config and print it resolved (every key) on stdout;\n"
    "                    reads no data and writes nothing\n"
    "  --list-keys       print every config key as a Markdown table and exit\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 on success, 1 if the config, the data or the run failed (one line on\n"
    "stderr names the file, key or line), 3 when the watchdog ended a distributed run whose\n"
    "ranks stopped making progress (dist.timeout), 64 for a bad command line, 75 when\n"
    "SIGUSR1 or SIGTERM stopped the run after it wrote a checkpoint (start it again with\n"
    "--resume auto).\n";

static const char eval_usage[] =
    "Usage: ptl eval CONFIG.yaml --weights W.h5 [--set key=value]...\n"
    "\n"
    "Evaluates weights W.h5 (e.g. RUN_DIR/final.h5) with the model and evaluation data of\n"
    "CONFIG.yaml (a run's config.yaml works as it is): top-1/top-5 accuracy for classification,\n"
    "CMC rank-1/5/10 and mAP of query against gallery for person-ReID data\n"
    "(data.eval_split: query). The weights must match the model exactly (strict loading).\n"
    "\n"
    "Options:\n"
    "  --weights W.h5    weights by PyTorch name (required)\n"
    "  --set key=value   override one config key (repeatable)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 on success, 1 on failure, 64 for a bad command line.\n";

/* Errors every rank hits alike (command line, config file) are printed by rank 0 only. */
static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    if (ptl_world()->rank != 0)
        return PTL_EXIT_USAGE;
    fprintf(stderr, "ptl %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ptl %s --help)\n", cmd);
    return PTL_EXIT_USAGE;
}

/* A failed run: "another rank failed" messages stay quiet when rank 0 tells the story. */
static void report_failure(const char *cmd)
{
    const struct ptl_world *w = ptl_world();
    const char *msg = ptl_error_message();
    if (w->size == 1)
        fprintf(stderr, "ptl %s: %s\n", cmd, msg);
    else if (strncmp(msg, "another rank failed", 19) != 0)
        fprintf(stderr, "ptl %s: rank %d: %s\n", cmd, w->rank, msg);
}

static int is_count(const char *s)
{
    if (*s == 0)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return strlen(s) < 16;
}

/* Loads the config file, then applies each assignment in order. */
static int resolve_config(struct ptl_config **cfg, const char *cmd, const char *path,
                          char **sets, int n_sets)
{
    int root = ptl_world()->rank == 0;
    if (ptl_config_load(cfg, path, ptl_train_config_keys()) != 0) {
        if (root)
            fprintf(stderr, "ptl %s: %s\n", cmd, ptl_error_message());
        return 1;
    }
    for (int i = 0; i < n_sets; i++) {
        if (ptl_config_set(*cfg, sets[i]) != 0) {
            if (root)
                fprintf(stderr, "ptl %s: %s\n", cmd, ptl_error_message());
            ptl_config_free(*cfg);
            *cfg = NULL;
            return 1;
        }
    }
    return 0;
}

static void print_result(const char *what, const struct ptl_eval_result *r)
{
    if (r->reid)
        printf("%s: rank-1 %.4f rank-5 %.4f rank-10 %.4f mAP %.4f (%d queries)\n", what,
               r->rank1, r->rank5, r->rank10, r->map, r->samples);
    else
        printf("%s: top-1 %.4f top-5 %.4f loss %.4f (%d samples)\n", what, r->top1, r->top5,
               r->loss, r->samples);
}

int ptl_cli_train(int argc, char **argv)
{
    const char *config = NULL, *out = NULL, *trace = NULL, *resume = NULL;
    int dry_run = 0;
    /* --set values and the --steps/--epochs/--seed flags, as assignments in command-line order */
    char **sets = calloc((size_t)argc + 1, sizeof *sets);
    char (*flag_sets)[64] = calloc((size_t)argc + 1, sizeof *flag_sets);
    int n_sets = 0, n_flag = 0, status = PTL_EXIT_USAGE;
    if (sets == NULL || flag_sets == NULL) {
        free(sets);
        free(flag_sets);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(train_usage, stdout);
            status = 0;
            goto done;
        }
        if (strcmp(a, "--dry-run") == 0) {
            dry_run = 1;
            continue;
        }
        if (strcmp(a, "--list-keys") == 0) {
            ptl_config_print_keys(ptl_train_config_keys(), stdout);
            status = 0;
            goto done;
        }
        int takes = strcmp(a, "--out") == 0 || strcmp(a, "--steps") == 0 ||
                    strcmp(a, "--epochs") == 0 || strcmp(a, "--seed") == 0 ||
                    strcmp(a, "--set") == 0 || strcmp(a, "--trace") == 0 ||
                    strcmp(a, "--resume") == 0;
        if (takes && i + 1 >= argc) {
            status = usage_error("train", "%s needs a value", a);
            goto done;
        }
        if (strcmp(a, "--out") == 0) {
            out = argv[++i];
        } else if (strcmp(a, "--trace") == 0) {
            trace = argv[++i];
        } else if (strcmp(a, "--resume") == 0) {
            resume = argv[++i];
        } else if (strcmp(a, "--set") == 0) {
            sets[n_sets++] = argv[++i];
        } else if (takes) { /* --steps, --epochs, --seed: counts, applied as config keys */
            const char *v = argv[++i];
            if (!is_count(v)) {
                status = usage_error("train", "%s needs a non-negative integer", a);
                goto done;
            }
            const char *key = strcmp(a, "--steps") == 0    ? "train.steps"
                              : strcmp(a, "--epochs") == 0 ? "train.epochs"
                                                           : "run.seed";
            snprintf(flag_sets[n_flag], sizeof flag_sets[n_flag], "%s=%s", key, v);
            sets[n_sets++] = flag_sets[n_flag++];
        } else if (a[0] == '-' && a[1] != 0) {
            status = usage_error("train", "unknown option '%s'", a);
            goto done;
        } else if (config == NULL) {
            config = a;
        } else {
            status = usage_error("train", "one config file only ('%s' is extra)", a);
            goto done;
        }
    }
    if (config == NULL || (out == NULL && !dry_run)) {
        status = usage_error("train", "%s", config == NULL ? "needs CONFIG.yaml" : "needs --out RUN_DIR");
        goto done;
    }
    struct ptl_config *cfg = NULL;
    status = resolve_config(&cfg, "train", config, sets, n_sets);
    if (status != 0)
        goto done;
    if (dry_run) {
        char *text = ptl_config_text(cfg);
        if (text)
            fputs(text, stdout);
        status = text ? 0 : 1;
        free(text);
        ptl_config_free(cfg);
        goto done;
    }
    struct ptl_eval_result r;
    double seconds = 0;
    struct ptl_train_options opt = {trace, resume};
    int rc = ptl_train_run(cfg, out, &opt, &r, &seconds);
    if (rc == PTL_ESTOPPED) {
        if (ptl_world()->rank == 0)
            fprintf(stderr, "ptl train: %s\n", ptl_error_message());
        status = PTL_EXIT_STOPPED;
    } else if (rc != 0) {
        report_failure("train");
        status = 1;
    } else {
        char what[4200];
        snprintf(what, sizeof what, "ptl train: %s done in %.1f s, final.h5 written; eval",
                 out, seconds);
        print_result(what, &r);
        status = 0;
    }
    ptl_config_free(cfg);
done:
    free(sets);
    free(flag_sets);
    return status;
}

int ptl_cli_eval(int argc, char **argv)
{
    const char *config = NULL, *weights = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, status = PTL_EXIT_USAGE;
    if (sets == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(eval_usage, stdout);
            status = 0;
            goto done;
        }
        int takes = strcmp(a, "--weights") == 0 || strcmp(a, "--set") == 0;
        if (takes && i + 1 >= argc) {
            status = usage_error("eval", "%s needs a value", a);
            goto done;
        }
        if (strcmp(a, "--weights") == 0)
            weights = argv[++i];
        else if (strcmp(a, "--set") == 0)
            sets[n_sets++] = argv[++i];
        else if (a[0] == '-' && a[1] != 0) {
            status = usage_error("eval", "unknown option '%s'", a);
            goto done;
        } else if (config == NULL)
            config = a;
        else {
            status = usage_error("eval", "one config file only ('%s' is extra)", a);
            goto done;
        }
    }
    if (config == NULL || weights == NULL) {
        status = usage_error("eval", "%s", config == NULL ? "needs CONFIG.yaml" : "needs --weights W.h5");
        goto done;
    }
    struct ptl_config *cfg = NULL;
    status = resolve_config(&cfg, "eval", config, sets, n_sets);
    if (status != 0)
        goto done;
    struct ptl_eval_result r;
    if (ptl_eval_run(cfg, weights, &r) != 0) {
        report_failure("eval");
        status = 1;
    } else {
        char what[4200];
        snprintf(what, sizeof what, "ptl eval: %s on %s", weights,
                 ptl_config_string(cfg, "data.eval_split"));
        print_result(what, &r);
        status = 0;
    }
    ptl_config_free(cfg);
done:
    free(sets);
    return status;
}
