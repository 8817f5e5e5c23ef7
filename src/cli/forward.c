/* ptl forward: runs a model with imported weights on an HDF5 input and writes its outputs, so
 * an imported network can be checked against PyTorch (docs/weights.md).
 *
 * Reads dataset `input` (N, C, H, W) of X.h5, builds --arch for that input shape, loads the
 * weights (strict unless --partial), runs eval (default) or training mode, optionally as B
 * consecutive batches (in training mode the BConv-Cell latent state carries between them),
 * and writes every model output (N, dim) under its name to Y.h5 through a temporary file
 * renamed into place. The HDF5 reading and writing is the io layer's (src/io/h5util.c); this
 * file parses, calls the library and prints.
 * Not a training or evaluation command: nothing is updated on disk but Y.h5.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/h5util.h"
#include "ptl/ptl.h"

static const char forward_usage[] =
    "Usage: ptl forward --arch NAME --classes K --weights W.h5 --input X.h5 --output Y.h5\n"
    "                   [--train-mode] [--batches B] [--partial] [--threads T]\n"
    "\n"
    "Runs the network NAME with the weights of W.h5 (one dataset per PyTorch state_dict\n"
    "entry, see tools/torch2h5.py) on dataset 'input' of X.h5, float (N, C, H, W); C, H and W\n"
    "set the model's input shape. Writes every output of the model, (N, dim) float32, under\n"
    "its name to Y.h5: 'features', 'logits' (or 'logits.<i>'), and any others (MGN's\n"
    "'triplet.<i>'). Y.h5 is written to a temporary file and renamed into place.\n"
    "\n"
    "Options:\n"
    "  --arch NAME       architecture (ptl model list shows them)\n"
    "  --classes K       classifier outputs of the model (must match the weights)\n"
    "  --weights W.h5    weights by state_dict name\n"
    "  --input X.h5      file with dataset 'input' (N, C, H, W)\n"
    "  --output Y.h5     file to write (never the input or the weights file)\n"
    "  --train-mode      run in training mode (batch statistics, latent states carried)\n"
    "                    instead of eval mode\n"
    "  --batches B       feed the N samples as B consecutive batches of N/B (B must divide\n"
    "                    N; default 1); in training mode BConv-Cell latent states carry\n"
    "                    from one batch to the next (eval mode starts each batch afresh)\n"
    "  --partial         load the entries whose names match and report the rest, instead of\n"
    "                    requiring the file and the model to hold the same names\n"
    "  --threads T       threads for BLIS and OpenMP (default: PTL_THREADS, else all cores)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 a file could not be read or written, 64 a bad command line.\n";

struct fwd_opts {
    const char *arch, *weights, *input, *output;
    int classes, batches, threads, train, partial;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ptl forward: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return PTL_EXIT_USAGE;
}

static int file_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int file_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ptl forward: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int parse_pos_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 1 || v > INT_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

/* ---------------- command line ---------------- */

/* Value of option argv[*i] ("--opt=value" or "--opt value"), NULL if none. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t len = strlen(name);
    if (strncmp(a, name, len) == 0 && a[len] == '=')
        return a + len + 1;
    if (strcmp(a, name) == 0 && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int is_opt(const char *a, const char *name)
{
    size_t len = strlen(name);
    return strncmp(a, name, len) == 0 && (a[len] == '\0' || a[len] == '=');
}

static int known_arch(const char *name)
{
    for (const char *const *n = ptl_model_arch_names(); *n; n++)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
}

static int parse_args(int argc, char **argv, struct fwd_opts *o)
{
    static const char *const valued[] = {"--arch",   "--classes", "--weights", "--input",
                                         "--output", "--batches", "--threads"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name = NULL;
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++)
            if (is_opt(a, valued[j]))
                name = valued[j];
        if (name == NULL) {
            if (strcmp(a, "--train-mode") == 0)
                o->train = 1;
            else if (strcmp(a, "--partial") == 0)
                o->partial = 1;
            else
                return usage_error("unknown option '%s' (see ptl forward --help)", a);
            continue;
        }
        const char *v = opt_value(argc, argv, &i, name);
        if (v == NULL || v[0] == '\0')
            return usage_error("%s needs a value", name);
        if (strcmp(name, "--arch") == 0)
            o->arch = v;
        else if (strcmp(name, "--weights") == 0)
            o->weights = v;
        else if (strcmp(name, "--input") == 0)
            o->input = v;
        else if (strcmp(name, "--output") == 0)
            o->output = v;
        else if (parse_pos_int(v, strcmp(name, "--classes") == 0   ? &o->classes
                                  : strcmp(name, "--batches") == 0 ? &o->batches
                                                                   : &o->threads) != 0)
            return usage_error("%s %s: expected a positive integer", name, v);
    }
    const char *missing = !o->arch      ? "--arch"
                          : !o->classes ? "--classes"
                          : !o->weights ? "--weights"
                          : !o->input   ? "--input"
                          : !o->output  ? "--output"
                                        : NULL;
    if (missing)
        return usage_error("%s is required (see ptl forward --help)", missing);
    if (!known_arch(o->arch))
        return usage_error("--arch %s: unknown architecture (ptl model list shows them)", o->arch);
    return 0;
}

/* Whether a and b name the same existing file (hard links and "./x" included). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The outputs of all batches, (N, dim) each, in model output order. */
struct outputs {
    int count, n;
    const char *name[32];
    int dim[32];
    float *data[32];
};

/* Writes the outputs to path, replaced whole or not at all. */
static int write_outputs(const char *path, const struct outputs *out)
{
    struct ptl_h5_array arrays[32];
    for (int i = 0; i < out->count; i++)
        arrays[i] = (struct ptl_h5_array){.name = out->name[i],
                                          .data = out->data[i],
                                          .ndim = 2,
                                          .dims = {(hsize_t)out->n, (hsize_t)out->dim[i]}};
    if (ptl_h5_write_floats_atomic("output", path, arrays, (size_t)out->count) != 0)
        return file_error("%s", ptl_error_message());
    return 0;
}

/* ---------------- the run ---------------- */

/* Runs the batches and gathers every output over all of them. */
static int run_batches(struct ptl_model *m, const struct fwd_opts *o, const float *x,
                       const int dims[4], struct outputs *out)
{
    int n = dims[0] / o->batches;
    size_t sample = (size_t)dims[1] * dims[2] * dims[3];
    out->n = dims[0];
    out->count = ptl_model_output_count(m);
    if (out->count > 32)
        return file_error("%s has %d outputs, at most 32 are written", o->arch, out->count);
    for (int b = 0; b < o->batches; b++) {
        if (ptl_model_forward(m, x + (size_t)b * n * sample, n, o->train) != 0)
            return file_error("%s forward (batch %d of %d): %s", o->arch, b + 1, o->batches,
                              ptl_error_message());
        for (int i = 0; i < out->count; i++) {
            int dim;
            const float *y = ptl_model_output(m, i, &dim);
            if (b == 0) {
                out->name[i] = ptl_model_output_name(m, i);
                out->dim[i] = dim;
                out->data[i] = malloc((size_t)dims[0] * dim * sizeof(float));
                if (out->data[i] == NULL)
                    return file_error("out of memory for output '%s'", out->name[i]);
            }
            memcpy(out->data[i] + (size_t)b * n * dim, y, (size_t)n * dim * sizeof(float));
        }
    }
    return 0;
}

static int run(const struct fwd_opts *o)
{
    /* Everything about the files is checked before the (slow) model build. */
    if (access(o->weights, R_OK) != 0)
        return file_error("weights %s: cannot open (%s)", o->weights, strerror(errno));
    float *x = NULL;
    int dims[4];
    struct outputs out = {0};
    if (ptl_h5_read_floats("input", o->input, "input", 4, "(N, C, H, W)", &x, dims) != 0)
        return file_error("%s", ptl_error_message());
    int rc = 0;
    if (dims[0] % o->batches != 0) {
        free(x);
        return usage_error("--batches %d does not divide the %d samples of %s", o->batches, dims[0],
                           o->input);
    }
    struct ptl_model_config cfg = {.classes = o->classes,
                                   .in_c = dims[1],
                                   .in_h = dims[2],
                                   .in_w = dims[3],
                                   .seed = 0,
                                   .cell_history = 1};
    struct ptl_model *m = NULL;
    if (ptl_model_create(&m, o->arch, &cfg) != 0) {
        free(x);
        return file_error("%s for input %dx%dx%d of %s: %s", o->arch, dims[1], dims[2], dims[3],
                          o->input, ptl_error_message());
    }
    struct ptl_load_report r;
    if (ptl_weights_load(m, o->weights, o->partial ? PTL_LOAD_PARTIAL : PTL_LOAD_STRICT, &r) != 0) {
        rc = file_error("%s", ptl_error_message());
        goto done;
    }
    if (o->partial)
        printf("ptl forward: %s: loaded %zu, missing %zu%s%s%s, unexpected %zu%s%s%s\n", o->weights,
               r.loaded, r.missing, r.missing ? " (" : "", r.missing_names, r.missing ? ")" : "",
               r.unexpected, r.unexpected ? " (" : "", r.unexpected_names, r.unexpected ? ")" : "");
    rc = run_batches(m, o, x, dims, &out);
    if (rc == 0)
        rc = write_outputs(o->output, &out);
    if (rc == 0)
        printf("ptl forward: %s %s mode, %d samples in %d batch%s -> %s\n", o->arch,
               o->train ? "training" : "eval", dims[0], o->batches, o->batches > 1 ? "es" : "",
               o->output);
done:
    for (int i = 0; i < out.count && i < 32; i++)
        free(out.data[i]);
    ptl_model_free(m);
    free(x);
    return rc;
}

int ptl_cli_forward(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(forward_usage, stdout);
            return 0;
        }
    struct fwd_opts o = {.batches = 1};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (same_file(o.output, o.input))
        return usage_error("--output %s is the input file: refusing to overwrite it", o.output);
    if (same_file(o.output, o.weights))
        return usage_error("--output %s is the weights file: refusing to overwrite it", o.output);
    if (o.threads == 0) {
        o.threads = ptl_threads_from_env();
        if (o.threads < 0)
            return usage_error("%s", ptl_error_message());
    }
    if (ptl_threads_set(o.threads) != 0)
        return usage_error("--threads %d: %s", o.threads, ptl_error_message());
    return run(&o);
}
