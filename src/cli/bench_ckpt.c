/* ptl bench ckpt: how fast a training checkpoint is written and loaded, against a plain
 * write() / read() of the same bytes to the same directory (docs/performance.md). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ptl/ptl.h"

static const char ckpt_bench_usage[] =
    "Usage: ptl bench ckpt --arch NAME [--classes K] [--input CxHxW] [--dir DIR] [--repeat N]\n"
    "\n"
    "Writes the checkpoint of a model with Adam's state (parameters, buffers, exp_avg,\n"
    "exp_avg_sq; values random) N times into DIR with ptl's checkpoint writer (a checksum on\n"
    "every dataset, temporary file, fsync, rename, fsync of the directory), and N times the\n"
    "same number of bytes with plain write() + fsync + rename; then loads it N times as a\n"
    "resume does (open, model, optimizer state) against a plain read() of the same bytes, and\n"
    "once with the full verification of ptl ckpt info. Prints medians, MB/s and the ratios\n"
    "ours / plain. Before every load both files are dropped from the page cache\n"
    "(posix_fadvise DONTNEED), so loads read the disk on both sides.\n"
    "\n"
    "Options:\n"
    "  --arch NAME     architecture (default ptl-resnet50)\n"
    "  --classes K     classifier outputs (default 751)\n"
    "  --input CxHxW   input shape the model is built for (default 3x256x128)\n"
    "  --dir DIR       where to write (default .); the files are removed afterwards\n"
    "  --repeat N      repetitions (default 5)\n"
    "  -h, --help      show this help and exit\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* write() + fsync + rename + fsync of the directory, as ptl's writer does. */
static int plain_write(const char *dir, const char *path, const char *buf, size_t bytes)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    for (size_t at = 0; at < bytes;) {
        ssize_t n = write(fd, buf + at, bytes - at);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        at += (size_t)n;
    }
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 || rename(tmp, path) != 0)
        return -1;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int plain_read(const char *path, char *buf, size_t bytes)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    for (size_t at = 0; at < bytes;) {
        ssize_t n = read(fd, buf + at, bytes - at);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        at += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Drops a file's pages from the page cache (they are clean after fsync), so the next read
 * comes from the disk: loads are compared cold, on both sides. */
static void evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

static int parse_input(const char *s, int *c, int *h, int *w)
{
    char extra;
    return sscanf(s, "%dx%dx%d%c", c, h, w, &extra) == 3 && *c > 0 && *h > 0 && *w > 0;
}

int ptl_cli_bench_ckpt(int argc, char **argv)
{
    const char *arch = "ptl-resnet50", *dir = ".";
    int classes = 751, c = 3, h = 256, w = 128, repeat = 5;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(ckpt_bench_usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ptl bench ckpt: %s needs a value (see --help)\n", a);
            return PTL_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--arch") == 0)
            arch = v;
        else if (strcmp(a, "--dir") == 0)
            dir = v;
        else if (strcmp(a, "--classes") == 0 && atoi(v) > 0)
            classes = atoi(v);
        else if (strcmp(a, "--repeat") == 0 && atoi(v) > 0)
            repeat = atoi(v);
        else if (!(strcmp(a, "--input") == 0 && parse_input(v, &c, &h, &w))) {
            fprintf(stderr, "ptl bench ckpt: bad option '%s %s' (see --help)\n", a, v);
            return PTL_EXIT_USAGE;
        }
    }
    struct ptl_model_config mc = {.classes = classes, .in_c = c, .in_h = h, .in_w = w, .seed = 1};
    struct ptl_model *m = NULL;
    struct ptl_optimizer *o = NULL;
    struct ptl_optim_config oc = {.kind = PTL_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f,
                                  .beta2 = 0.999f, .eps = 1e-8f,
                                  .lr_scale = {1.0f, 1.0f, 1.0f}};
    int rc = ptl_model_create(&m, arch, &mc);
    if (rc == 0)
        rc = ptl_optimizer_create(&o, m, &oc);
    if (rc != 0) {
        fprintf(stderr, "ptl bench ckpt: %s\n", ptl_error_message());
        ptl_model_free(m);
        return 1;
    }
    struct ptl_rng rng;
    ptl_rng_init(&rng, 7, 0);
    size_t floats = ptl_model_param_floats(m) + ptl_model_buffer_floats(m);
    for (int s = 0; s < ptl_optimizer_state_count(o); s++) {
        const char *name;
        ptl_rng_fill_normal(&rng, ptl_optimizer_state(o, s, &name), ptl_model_param_floats(m),
                            0.0f, 0.01f);
        floats += ptl_model_param_floats(m);
    }
    ptl_optimizer_set_steps(o, 1000);
    size_t bytes = floats * sizeof(float);
    char path[4200], plain[4200];
    snprintf(path, sizeof path, "%s/bench-ckpt.h5", dir);
    snprintf(plain, sizeof plain, "%s/bench-plain.bin", dir);
    char *buf = malloc(bytes);
    double *tw = calloc((size_t)repeat, sizeof *tw), *pw = calloc((size_t)repeat, sizeof *pw);
    double *tl = calloc((size_t)repeat, sizeof *tl), *pl = calloc((size_t)repeat, sizeof *pl);
    if (buf == NULL || !tw || !pw || !tl || !pl) {
        fprintf(stderr, "ptl bench ckpt: out of memory for %zu bytes\n", bytes);
        rc = PTL_ENOMEM;
        goto out;
    }
    ptl_rng_fill_normal(&rng, (float *)buf, floats, 0.0f, 1.0f);
    struct ptl_ckpt_contents cc = {
        .run = {.step = 1000, .epoch = 3, .next_batch = 7, .batches_per_epoch = 100,
                .global_batch = 64, .world_size = 1, .seed = 1},
        .config_text = "# bench\n",
        .model = m,
        .optim = o,
    };
    snprintf(cc.run.arch, sizeof cc.run.arch, "%s", arch);
    snprintf(cc.run.shard, sizeof cc.run.shard, "global");
    snprintf(cc.run.optimizer, sizeof cc.run.optimizer, "adam");
    double verify_s = 0;
    for (int r = 0; r < repeat && rc == 0; r++) {
        double t0 = ptl_now();
        rc = ptl_ckpt_save(path, &cc);
        double t1 = ptl_now();
        if (rc == 0 && plain_write(dir, plain, buf, bytes) != 0)
            rc = ptl_error(PTL_EIO, "%s: cannot write (%s)", plain, strerror(errno));
        evict(path);
        evict(plain);
        double t2 = ptl_now();
        struct ptl_ckpt *ck = NULL;
        if (rc == 0)
            rc = ptl_ckpt_open(&ck, path, 0);
        if (rc == 0)
            rc = ptl_ckpt_load_model(ck, m);
        if (rc == 0)
            rc = ptl_ckpt_load_optimizer(ck, o, m);
        ptl_ckpt_close(ck);
        double t3 = ptl_now();
        evict(path);
        if (rc == 0 && plain_read(plain, buf, bytes) != 0)
            rc = ptl_error(PTL_EIO, "%s: cannot read (%s)", plain, strerror(errno));
        double t4 = ptl_now();
        if (rc == 0 && r == 0) {
            evict(path);
            t4 = ptl_now();
            rc = ptl_ckpt_open(&ck, path, 1);
            ptl_ckpt_close(ck);
            verify_s = ptl_now() - t4;
        }
        tw[r] = t1 - t0;
        pw[r] = t2 - t1;
        tl[r] = t3 - t2;
        pl[r] = t4 - t3;
    }
    if (rc != 0) {
        fprintf(stderr, "ptl bench ckpt: %s\n", ptl_error_message());
        goto out;
    }
    double mb = (double)bytes / 1e6, a = median(tw, repeat), b = median(pw, repeat),
           l = median(tl, repeat), p = median(pl, repeat);
    printf("ptl %s bench ckpt: %s (%d classes, input %dx%dx%d), parameters + buffers + Adam "
           "state: %.1f MB, in %s, median of %d\n",
           ptl_version(), arch, classes, c, h, w, mb, dir, repeat);
    printf("%-34s %10s %10s\n", "", "seconds", "MB/s");
    printf("%-34s %10.3f %10.1f\n", "checkpoint write (ptl_ckpt_save)", a, mb / a);
    printf("%-34s %10.3f %10.1f\n", "plain write()+fsync+rename", b, mb / b);
    printf("%-34s %10.3f %10.1f\n", "checkpoint load (as a resume)", l, mb / l);
    printf("%-34s %10.3f %10.1f\n", "plain read()", p, mb / p);
    printf("%-34s %10.3f %10.1f\n", "full verification (ckpt info)", verify_s, mb / verify_s);
    printf("ratio write ours/plain: %.3f   ratio load ours/plain: %.3f\n", b / a, p / l);
out:
    unlink(path);
    unlink(plain);
    free(buf);
    free(tw);
    free(pw);
    free(tl);
    free(pl);
    ptl_optimizer_free(o);
    ptl_model_free(m);
    return rc == 0 ? 0 : 1;
}
