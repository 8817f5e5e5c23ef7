/* ptl ckpt info | export: verify a training checkpoint and say what it holds, or write its
 * weights as a plain weights file (docs/checkpoint.md). Parses, calls libptl, prints. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char ckpt_usage[] =
    "Usage: ptl ckpt info CKPT.h5 [--config]\n"
    "       ptl ckpt export CKPT.h5 --torch OUT.h5\n"
    "\n"
    "info    verifies the checkpoint (format version, every group, every dataset's\n"
    "        checksum) and prints the run position, the world size and what the file holds;\n"
    "        --config prints the config the run was trained with instead\n"
    "export  writes the model's weights by PyTorch name to OUT.h5, the format of final.h5:\n"
    "        ptl eval --weights and ptl forward read it, tools/h52torch.py turns it into a\n"
    "        PyTorch state_dict. OUT.h5 is written whole or not at all.\n"
    "\n"
    "Exit status: 0 on success, 1 for a damaged or unreadable checkpoint (one line names the\n"
    "file and what is wrong), 64 for a bad command line.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ptl ckpt: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ptl ckpt --help)\n");
    return PTL_EXIT_USAGE;
}

static int info(int argc, char **argv)
{
    const char *path = NULL;
    int config = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0)
            config = 1;
        else if (argv[i][0] == '-' && argv[i][1] != 0)
            return usage_error("unknown option '%s'", argv[i]);
        else if (path == NULL)
            path = argv[i];
        else
            return usage_error("one checkpoint only ('%s' is extra)", argv[i]);
    }
    if (path == NULL)
        return usage_error("%s", "info needs CKPT.h5");
    if (config) {
        struct ptl_ckpt *c;
        if (ptl_ckpt_open(&c, path, 1) != 0) {
            fprintf(stderr, "ptl ckpt: %s\n", ptl_error_message());
            return 1;
        }
        fputs(ptl_ckpt_config_text(c), stdout);
        ptl_ckpt_close(c);
        return 0;
    }
    if (ptl_ckpt_print_info(path, stdout) != 0) {
        fprintf(stderr, "ptl ckpt: %s\n", ptl_error_message());
        return 1;
    }
    return 0;
}

static int export(int argc, char **argv)
{
    const char *path = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--torch") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s", "--torch needs OUT.h5");
            out = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != 0) {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (path == NULL) {
            path = argv[i];
        } else {
            return usage_error("one checkpoint only ('%s' is extra)", argv[i]);
        }
    }
    if (path == NULL || out == NULL)
        return usage_error("%s", path == NULL ? "export needs CKPT.h5" : "export needs --torch OUT.h5");
    if (ptl_ckpt_export(path, out) != 0) {
        fprintf(stderr, "ptl ckpt: %s\n", ptl_error_message());
        return 1;
    }
    printf("ptl ckpt: %s: weights written to %s\n", path, out);
    return 0;
}

int ptl_cli_ckpt(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(ckpt_usage, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(ckpt_usage, stdout);
            return 0;
        }
    if (argc < 2)
        return usage_error("%s", "which command? (info, export)");
    if (strcmp(argv[1], "info") == 0)
        return info(argc, argv);
    if (strcmp(argv[1], "export") == 0)
        return export(argc, argv);
    return usage_error("unknown command '%s' (info, export)", argv[1]);
}
