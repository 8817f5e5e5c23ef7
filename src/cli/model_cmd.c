/* ptl model list | summary: the architecture names ptl builds, and the layer table, parameter
 * counts and FLOPs of one of them (built with fresh parameters; no weights are read). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char usage[] =
    "Usage: ptl model list\n"
    "       ptl model summary --arch NAME [--classes K] [--input CxHxW]\n"
    "\n"
    "  list      print the architecture names, one a line\n"
    "  summary   build NAME and print its layer table (output shape, parameters and FLOPs per\n"
    "            layer) and the totals: parameters per role (backbone, cells, head), buffers,\n"
    "            forward FLOPs per sample\n"
    "\n"
    "Options of summary:\n"
    "  --arch NAME     architecture (see ptl model list)\n"
    "  --classes K     classifier outputs (default 1000)\n"
    "  --input CxHxW   input image shape (default 3x224x224; 3x32x32 for resnet18-small and\n"
    "                  densenet-bc-100 based networks, 3x384x128 for mgn and mgn-ptl)\n";

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "ptl model: %s '%s' (see ptl model --help)\n", what, arg);
    return PTL_EXIT_USAGE;
}

/* Positive int; 0 when s is not one. */
static int parse_positive(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 1 || v > 1 << 20)
        return 0;
    return (int)v;
}

static int parse_shape(const char *s, int *c, int *h, int *w)
{
    char tail;
    return sscanf(s, "%dx%dx%d%c", c, h, w, &tail) == 3 && *c > 0 && *h > 0 && *w > 0 &&
           *c <= 1 << 16 && *h <= 1 << 16 && *w <= 1 << 16;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int cmd_list(void)
{
    for (const char *const *n = ptl_model_arch_names(); *n; n++)
        printf("%s\n", *n);
    return 0;
}

static int cmd_summary(int argc, char **argv)
{
    const char *arch = NULL;
    struct ptl_model_config cfg = {.classes = 1000, .seed = 0, .cell_history = 1};
    int have_input = 0;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(opt, "--arch") != 0 && strcmp(opt, "--classes") != 0 &&
            strcmp(opt, "--input") != 0)
            return usage_error("unknown option", opt);
        if (i + 1 >= argc)
            return usage_error("missing value for", opt);
        const char *val = argv[++i];
        if (strcmp(opt, "--arch") == 0) {
            arch = val;
        } else if (strcmp(opt, "--classes") == 0) {
            if ((cfg.classes = parse_positive(val)) == 0)
                return usage_error("--classes needs a positive integer, not", val);
        } else {
            if (!parse_shape(val, &cfg.in_c, &cfg.in_h, &cfg.in_w))
                return usage_error("--input needs CxHxW (e.g. 3x224x224), not", val);
            have_input = 1;
        }
    }
    if (arch == NULL) {
        fprintf(stderr, "ptl model summary: --arch is required (see ptl model list)\n");
        return PTL_EXIT_USAGE;
    }
    if (!have_input) {
        cfg.in_c = 3;
        cfg.in_h = cfg.in_w = 224;
        if (ends_with(arch, "-small") || ends_with(arch, "densenet-bc-100"))
            cfg.in_h = cfg.in_w = 32;
        else if (strncmp(arch, "mgn", 3) == 0) {
            cfg.in_h = 384;
            cfg.in_w = 128;
        }
    }
    struct ptl_model *m = NULL;
    int known = 0;
    for (const char *const *n = ptl_model_arch_names(); *n && !known; n++)
        known = strcmp(*n, arch) == 0;
    if (!known)
        return usage_error("--arch: unknown architecture", arch);
    if (ptl_model_create(&m, arch, &cfg) != 0) {
        fprintf(stderr, "ptl model summary: %s\n", ptl_error_message());
        return 1;
    }
    ptl_model_print_summary(m, stdout);
    ptl_model_free(m);
    return 0;
}

int ptl_cli_model(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return PTL_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        if (argc > 2)
            return usage_error("list takes no arguments, got", argv[2]);
        return cmd_list();
    }
    if (strcmp(sub, "summary") == 0)
        return cmd_summary(argc - 1, argv + 1);
    return usage_error("unknown subcommand", sub);
}
