/* ptl data pack | info: packs a dataset source into one HDF5 file, and says what a source or
 * packed file holds (docs/data.md). Parses, calls ptl_data_pack / ptl_data_info, prints.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char data_usage[] =
    "Usage: ptl data pack SRC OUT.h5 [--size HxW] [--format F] [--on-error fail|skip]\n"
    "       ptl data info PATH [--format F] [--size HxW] [--on-error fail|skip]\n"
    "\n"
    "pack  writes every split of the dataset at SRC (train and test; train, query and\n"
    "      gallery for person re-identification; val and test too for class folders when\n"
    "      present) into OUT.h5: uint8 images (N, C, H, W) chunked by a few samples, labels,\n"
    "      cameras and source paths when the source has them (layout in docs/data.md). OUT.h5\n"
    "      is written to a temporary file and renamed into place, so an existing OUT.h5\n"
    "      survives a failure. One line per split is printed.\n"
    "info  prints the format, and per split the samples, shape, classes and cameras of a\n"
    "      packed file or of any source.\n"
    "\n"
    "Formats (default: detected from SRC): idx (Fashion-MNIST, MNIST), cifar10, cifar100,\n"
    "folders (train/<class>/*.jpg), market1501, dukemtmc, cuhk03-labeled, cuhk03-detected,\n"
    "msmt17, packed.\n"
    "\n"
    "Options:\n"
    "  --size HxW        resize image files to H x W (e.g. 384x128); needed when the images\n"
    "                    of a source differ in size; ignored by idx, cifar and packed\n"
    "  --format F        the source's format instead of detecting it\n"
    "  --on-error MODE   fail (default): an unreadable image or a bad label is an error\n"
    "                    naming the file; skip: such samples are left out, one line each on\n"
    "                    stderr, and counted\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 a source or file could not be read or written, 64 a bad command\n"
    "line.\n";

static const char *const formats[] = {"auto",        "idx",       "cifar10",        "cifar100",
                                      "folders",     "market1501", "dukemtmc",      "cuhk03-labeled",
                                      "cuhk03-detected", "msmt17", "packed",         NULL};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ptl data: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return PTL_EXIT_USAGE;
}

/* "HxW" with both in 1..4096. */
static int parse_size(const char *s, int *h, int *w)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (errno || end == s || (*end != 'x' && *end != 'X') || a < 1 || a > 4096)
        return -1;
    const char *p = end + 1;
    long b = strtol(p, &end, 10);
    if (errno || end == p || *end != '\0' || b < 1 || b > 4096)
        return -1;
    *h = (int)a;
    *w = (int)b;
    return 0;
}

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

static int known_format(const char *f)
{
    for (const char *const *n = formats; *n; n++)
        if (strcmp(*n, f) == 0)
            return 1;
    return 0;
}

/* Options and positionals after the action; npos positionals expected. */
static int parse(int argc, char **argv, const char *action, int npos, const char **pos,
                 struct ptl_data_options *o)
{
    static const char *const valued[] = {"--size", "--format", "--on-error"};
    int got = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *name = NULL;
        if (a[0] != '-' || a[1] == '\0') {
            if (got == npos)
                return usage_error("%s: unexpected argument '%s' (see ptl data --help)", action, a);
            pos[got++] = a;
            continue;
        }
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++)
            if (is_opt(a, valued[j]))
                name = valued[j];
        if (name == NULL)
            return usage_error("%s: unknown option '%s' (see ptl data --help)", action, a);
        const char *v = opt_value(argc, argv, &i, name);
        if (v == NULL || v[0] == '\0')
            return usage_error("%s needs a value", name);
        if (strcmp(name, "--size") == 0) {
            if (parse_size(v, &o->height, &o->width) != 0)
                return usage_error("--size %s: expected HxW, each 1..4096 (e.g. 384x128)", v);
        } else if (strcmp(name, "--format") == 0) {
            if (!known_format(v))
                return usage_error("--format %s: unknown (auto, idx, cifar10, cifar100, folders, "
                                   "market1501, dukemtmc, cuhk03-labeled, cuhk03-detected, "
                                   "msmt17, packed)",
                                   v);
            o->format = v;
        } else if (strcmp(v, "skip") == 0 || strcmp(v, "fail") == 0) {
            o->skip_bad = strcmp(v, "skip") == 0;
        } else {
            return usage_error("--on-error %s: expected fail or skip", v);
        }
    }
    if (got < npos)
        return usage_error("%s needs %s (see ptl data --help)", action,
                           npos == 2 ? "SRC and OUT.h5" : "PATH");
    return 0;
}

int ptl_cli_data(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(data_usage, stdout);
            return 0;
        }
    if (argc < 2)
        return usage_error("pack or info expected (see ptl data --help)");
    const char *action = argv[1];
    const char *pos[2] = {NULL, NULL};
    struct ptl_data_options o = {0};
    if (strcmp(action, "pack") == 0) {
        int rc = parse(argc, argv, action, 2, pos, &o);
        if (rc != 0)
            return rc;
        printf("ptl data pack: %s -> %s\n", pos[0], pos[1]);
        fflush(stdout);
        if (ptl_data_pack(pos[0], pos[1], &o, stdout) != 0) {
            fprintf(stderr, "ptl data pack: %s\n", ptl_error_message());
            return 1;
        }
        printf("ptl data pack: wrote %s\n", pos[1]);
        return 0;
    }
    if (strcmp(action, "info") == 0) {
        int rc = parse(argc, argv, action, 1, pos, &o);
        if (rc != 0)
            return rc;
        if (ptl_data_info(pos[0], &o, stdout) != 0) {
            fflush(stdout);
            fprintf(stderr, "ptl data info: %s\n", ptl_error_message());
            return 1;
        }
        return 0;
    }
    return usage_error("unknown action '%s': pack or info (see ptl data --help)", action);
}
