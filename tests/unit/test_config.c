/* Unit tests of the run configuration (src/io/config.c) and the `ptl train` schema
 * (src/train/config_keys.c): defaults, a full file, every class of error with its file, line
 * and key, --set, write -> load round trips (strings with every escape, random doubles), the
 * getters' aborts on programming errors, and docs/config.md against the schema. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptl/ptl.h"

/* ---- fixtures: one temporary directory per test ---- */

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ptl-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static void remove_dir(void)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = make_dir, .fini = remove_dir);

/* Writes text to dir/name; returns the path (static: one at a time). */
static const char *file_with(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
    return path;
}

static const struct ptl_config_key *keys(void)
{
    return ptl_train_config_keys();
}

static struct ptl_config *load_ok(const char *path)
{
    struct ptl_config *c = NULL;
    int rc = ptl_config_load(&c, path, keys());
    cr_assert_eq(rc, 0, "load %s: %s", path ? path : "(NULL)", ptl_error_message());
    cr_assert_not_null(c);
    return c;
}

static struct ptl_config *load_text(const char *text)
{
    return load_ok(file_with("cfg.yaml", text));
}

static int count_keys(void)
{
    int n = 0;
    while (keys()[n].key)
        n++;
    return n;
}

static double list_item(const struct ptl_config *c, const char *key, int i)
{
    double v[64];
    int n = ptl_config_list(c, key, v, 64);
    cr_assert(i < n, "%s has %d items, wanted item %d", key, n, i);
    return v[i];
}

/* ---- defaults ---- */

Test(config, defaults_only)
{
    struct ptl_config *c = load_ok(NULL);
    cr_assert_str_eq(ptl_config_path(c), "(defaults)");
    cr_assert_eq(ptl_config_int(c, "run.seed"), 0);
    cr_assert_eq(ptl_config_int(c, "run.log_every"), 50);
    cr_assert_eq(ptl_config_int(c, "data.batch"), 64);
    cr_assert_eq(ptl_config_int(c, "checkpoint.keep_last"), 3);
    cr_assert_eq(ptl_config_float(c, "optim.lr"), 0.01);
    cr_assert_eq(ptl_config_float(c, "optim.eps"), 1e-8);
    cr_assert_eq(ptl_config_float(c, "optim.weight_decay"), 5e-4);
    cr_assert_eq(ptl_config_float(c, "loss.margin"), 1.2);
    cr_assert_eq(ptl_config_bool(c, "run.debug_log"), 0);
    cr_assert_str_eq(ptl_config_string(c, "model.arch"), "resnet18-narrow");
    cr_assert_str_eq(ptl_config_string(c, "model.weights"), "");
    cr_assert_str_eq(ptl_config_string(c, "data.path"), "/usr/share/datasets/fashion-mnist");
    cr_assert_str_eq(ptl_config_string(c, "optim.name"), "sgd");
    cr_assert_str_eq(ptl_config_string(c, "data.format"), "auto");
    double v[4] = {-1, -1, -1, -1};
    cr_assert_eq(ptl_config_list(c, "data.size", v, 4), 2);
    cr_assert(v[0] == 0 && v[1] == 0 && v[2] == -1);
    cr_assert_eq(ptl_config_list(c, "optim.betas", v, 4), 2);
    cr_assert(v[0] == 0.9 && v[1] == 0.999);
    cr_assert_eq(ptl_config_list(c, "data.classes", v, 4), 0);
    cr_assert_eq(ptl_config_list(c, "augment.mean", v, 0), 1, "count beyond max");
    /* every key has its default line and a getter of its type answers */
    for (const struct ptl_config_key *k = keys(); k->key; k++) {
        cr_assert_eq(ptl_config_line(c, k->key), 0, "%s", k->key);
        switch (k->type) {
        case PTL_CFG_INT:
            (void)ptl_config_int(c, k->key);
            break;
        case PTL_CFG_FLOAT:
            (void)ptl_config_float(c, k->key);
            break;
        case PTL_CFG_BOOL:
            (void)ptl_config_bool(c, k->key);
            break;
        case PTL_CFG_STRING:
        case PTL_CFG_ENUM:
            cr_assert_not_null(ptl_config_string(c, k->key));
            break;
        case PTL_CFG_INT_LIST:
        case PTL_CFG_FLOAT_LIST:
            (void)ptl_config_list(c, k->key, NULL, 0);
            break;
        }
    }
    char *text = ptl_config_text(c);
    cr_assert_not_null(text);
    cr_assert_null(strstr(text, "# changed"), "defaults are marked changed:\n%s", text);
    free(text);
    ptl_config_free(c);
}

Test(config, empty_files_are_defaults)
{
    const char *texts[] = {"",    "\n\n",   "# only a comment\n",         "---\n",
                           "~\n", "run:\n", "run:\n# nothing\noptim: ~\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct ptl_config *c = load_text(texts[i]);
        cr_assert_eq(ptl_config_float(c, "optim.lr"), 0.01, "text %zu", i);
        cr_assert_eq(ptl_config_line(c, "run.seed"), 0);
        ptl_config_free(c);
    }
}

/* ---- a full file ---- */

static const char *full_config =
    "# every key, in all the syntaxes a user may write\n"
    "run:\n"
    "  seed: 12345\n"
    "  threads: 4\n"
    "  log_every: 10\n"
    "  debug_log: yes\n"
    "model:\n"
    "  arch: ptl-resnet50   # a comment\n"
    "  classes: 751\n"
    "  weights: 'weights/r50 #1.h5'\n"
    "  load: backbone\n"
    "  # a comment line\n"
    "  eval_state: global\n"
    "  cell_history: 3\n"
    "data: {path: /data/market, format: market1501, size: [256, 128]}\n"
    "data.train_split: bounding_box_train\n"
    "data.eval_split: \"query\"\n"
    "data.classes:\n"
    "  - 3\n"
    "  - 1\n"
    "  - 2\n"
    "data.per_class: 20\n"
    "data.eval_max: 1000\n"
    "data.on_error: skip\n"
    "data.sampler: pk\n"
    "data.batch: 64\n"
    "data.pk: [16, 4]\n"
    "data.eval_batch: 128\n"
    "data.shard: local\n"
    "augment:\n"
    "  flip: 0.5\n"
    "  pad: 10\n"
    "  erase: .5\n"
    "  resize: [288, 144]\n"
    "  mean: [0.485, 0.456, 0.406]\n"
    "  std: [0.229, 0.224, 0.225]\n"
    "loss:\n"
    "  ce: 1\n"
    "  label_smoothing: 0.1\n"
    "  triplet: 1.0\n"
    "  margin: 0.3\n"
    "optim:\n"
    "  name: adam\n"
    "  lr: 3.5e-4\n"
    "  momentum: 0\n"
    "  dampening: 0.1\n"
    "  nesterov: on\n"
    "  betas: [0.5, 0.99]\n"
    "  eps: 1e-6\n"
    "  amsgrad: TRUE\n"
    "  weight_decay: 0.0005\n"
    "  lr_backbone: 0.1\n"
    "  lr_cells: 1\n"
    "  lr_head: 10\n"
    "schedule:\n"
    "  name: multistep\n"
    "  milestones: [40, 70]\n"
    "  gamma: 0.1\n"
    "  eta_min: 1e-7\n"
    "  warmup_steps: 500\n"
    "  warmup_factor: 0.01\n"
    "train:\n"
    "  epochs: 120\n"
    "  steps: 0\n"
    "  eval_every: 10\n"
    "checkpoint:\n"
    "  every_steps: 1000\n"
    "  every_minutes: 30.5\n"
    "  keep_last: 2\n"
    "latent:\n"
    "  merge: ema:0.5\n"
    "  merge_every: 4\n"
    "dist: {bucket_mb: 8.5, sync_bn: true, timeout: 120}\n";

Test(config, full_file)
{
    struct ptl_config *c = load_text(full_config);
    cr_assert_str_eq(ptl_config_path(c), file_with("cfg.yaml", full_config));
    cr_assert_eq(ptl_config_int(c, "run.seed"), 12345);
    cr_assert_eq(ptl_config_line(c, "run.seed"), 3);
    cr_assert_eq(ptl_config_bool(c, "run.debug_log"), 1);
    cr_assert_str_eq(ptl_config_string(c, "model.arch"), "ptl-resnet50");
    cr_assert_str_eq(ptl_config_string(c, "model.weights"), "weights/r50 #1.h5");
    cr_assert_str_eq(ptl_config_string(c, "model.load"), "backbone");
    cr_assert_eq(ptl_config_int(c, "model.cell_history"), 3);
    cr_assert_str_eq(ptl_config_string(c, "data.path"), "/data/market");
    cr_assert_str_eq(ptl_config_string(c, "data.format"), "market1501");
    cr_assert_eq(ptl_config_line(c, "data.format"), 15);
    cr_assert_eq(list_item(c, "data.size", 0), 256);
    cr_assert_eq(list_item(c, "data.size", 1), 128);
    cr_assert_str_eq(ptl_config_string(c, "data.train_split"), "bounding_box_train");
    cr_assert_str_eq(ptl_config_string(c, "data.eval_split"), "query");
    double cls[8];
    cr_assert_eq(ptl_config_list(c, "data.classes", cls, 8), 3);
    cr_assert(cls[0] == 3 && cls[1] == 1 && cls[2] == 2);
    cr_assert_eq(ptl_config_line(c, "data.classes"), 18);
    cr_assert_eq(list_item(c, "data.pk", 0), 16);
    cr_assert_eq(ptl_config_float(c, "augment.erase"), 0.5);
    cr_assert_eq(list_item(c, "augment.mean", 2), 0.406);
    cr_assert_eq(list_item(c, "augment.std", 0), 0.229);
    cr_assert_eq(ptl_config_float(c, "loss.ce"), 1.0);
    cr_assert_str_eq(ptl_config_string(c, "optim.name"), "adam");
    cr_assert_eq(ptl_config_float(c, "optim.lr"), 3.5e-4);
    cr_assert_eq(ptl_config_float(c, "optim.momentum"), 0.0);
    cr_assert_eq(ptl_config_bool(c, "optim.nesterov"), 1);
    cr_assert_eq(ptl_config_bool(c, "optim.amsgrad"), 1);
    cr_assert_eq(list_item(c, "optim.betas", 1), 0.99);
    cr_assert_eq(ptl_config_float(c, "optim.eps"), 1e-6);
    cr_assert_eq(ptl_config_float(c, "optim.lr_head"), 10.0);
    cr_assert_str_eq(ptl_config_string(c, "schedule.name"), "multistep");
    cr_assert_eq(list_item(c, "schedule.milestones", 1), 70);
    cr_assert_eq(ptl_config_float(c, "schedule.eta_min"), 1e-7);
    cr_assert_eq(ptl_config_int(c, "schedule.warmup_steps"), 500);
    cr_assert_eq(ptl_config_int(c, "train.epochs"), 120);
    cr_assert_eq(ptl_config_float(c, "checkpoint.every_minutes"), 30.5);
    cr_assert_eq(ptl_config_int(c, "checkpoint.keep_last"), 2);
    cr_assert_str_eq(ptl_config_string(c, "data.shard"), "local");
    cr_assert_str_eq(ptl_config_string(c, "latent.merge"), "ema:0.5");
    cr_assert_eq(ptl_config_int(c, "latent.merge_every"), 4);
    cr_assert_eq(ptl_config_float(c, "dist.bucket_mb"), 8.5);
    cr_assert_eq(ptl_config_bool(c, "dist.sync_bn"), 1);
    cr_assert_eq(ptl_config_float(c, "dist.timeout"), 120.0);
    /* the file names every key: a key added to the schema belongs here too */
    for (const struct ptl_config_key *k = keys(); k->key; k++)
        cr_assert_gt(ptl_config_line(c, k->key), 0, "%s is not in the full config", k->key);
    ptl_config_free(c);
}

Test(config, scalars_typed_by_schema)
{
    struct ptl_config *c = load_text("model:\n  arch: 123\n  weights: ~\n"
                                     "data:\n  train_split: \"null\"\n  eval_split: true\n"
                                     "  batch: +32\n"
                                     "run: {debug_log: Off}\n"
                                     "augment.mean: [-0, 1, 2.5e0]\n"
                                     "optim.lr: 1\n");
    cr_assert_str_eq(ptl_config_string(c, "model.arch"), "123");
    cr_assert_str_eq(ptl_config_string(c, "model.weights"), "", "a null string is \"\"");
    cr_assert_str_eq(ptl_config_string(c, "data.train_split"), "null");
    cr_assert_str_eq(ptl_config_string(c, "data.eval_split"), "true");
    cr_assert_eq(ptl_config_int(c, "data.batch"), 32);
    cr_assert_eq(ptl_config_bool(c, "run.debug_log"), 0);
    double m[3];
    cr_assert_eq(ptl_config_list(c, "augment.mean", m, 3), 3);
    cr_assert(m[0] == 0 && signbit(m[0]) && m[1] == 1 && m[2] == 2.5);
    cr_assert_eq(ptl_config_float(c, "optim.lr"), 1.0);
    ptl_config_free(c);
}

Test(config, deeper_nesting_and_flat_keys)
{
    static const struct ptl_config_key schema[] = {
        {"a.b.c", PTL_CFG_INT, "1", 0, 10, NULL, 0, "deep"},
        {"a.b.d", PTL_CFG_STRING, "x", 1, 0, NULL, 0, "deep string"},
        {"a.e", PTL_CFG_FLOAT_LIST, "[]", -HUGE_VAL, HUGE_VAL, NULL, 0, "no item limit"},
        {"top", PTL_CFG_BOOL, "true", 1, 0, NULL, 0, "a key without section"},
        {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
    };
    const char *path = file_with("deep.yaml", "a:\n  b.c: 7\n  b:\n    d: y\ntop: false\n");
    struct ptl_config *c = NULL;
    cr_assert_eq(ptl_config_load(&c, path, schema), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_config_int(c, "a.b.c"), 7);
    cr_assert_eq(ptl_config_line(c, "a.b.c"), 2);
    cr_assert_str_eq(ptl_config_string(c, "a.b.d"), "y");
    cr_assert_eq(ptl_config_bool(c, "top"), 0);
    char list[400] = "a.e=[";
    for (int i = 0; i < 64; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", i);
    strcat(list, "]");
    cr_assert_eq(ptl_config_set(c, list), 0, "64 items: %s", ptl_error_message());
    cr_assert_eq(ptl_config_list(c, "a.e", NULL, 0), 64);
    strcpy(strrchr(list, ']'), ",64]");
    cr_assert_lt(ptl_config_set(c, list), 0, "65 items with max_items 0");
    cr_assert(strstr(ptl_error_message(), "too many items (expected at most 64, got 65)"), "%s",
              ptl_error_message());
    /* nested output reads back */
    char *text = ptl_config_text(c);
    cr_assert(strstr(text, "\na:\n  b:\n    # changed from the default 1 ("), "%s", text);
    cr_assert(strstr(text, "\n    c: 7\n    # changed from the default \"x\" ("), "%s", text);
    cr_assert(strstr(text, "\n    d: \"y\"\n  # changed from the default [] (--set a.e=[0,1,"),
              "%s", text);
    cr_assert(strstr(text, "\n  e: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0,"),
              "%s", text);
    cr_assert(strstr(text, "\ntop: false\n"), "%s", text);
    const char *again = file_with("again.yaml", text);
    struct ptl_config *d = NULL;
    cr_assert_eq(ptl_config_load(&d, again, schema), 0, "%s\n%s", ptl_error_message(), text);
    cr_assert_eq(ptl_config_int(d, "a.b.c"), 7);
    cr_assert_eq(ptl_config_list(d, "a.e", NULL, 0), 64);
    free(text);
    ptl_config_free(c);
    ptl_config_free(d);
}

/* ---- errors ---- */

struct bad_case {
    const char *text;
    int code;
    const char *parts[3]; /* substrings of the message */
};

static const struct bad_case bad_cases[] = {
    /* unknown keys */
    {"optim:\n  lrr: 0.1\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: optim.lrr: unknown key (did you mean optim.lr?)"}},
    {"run:\n  seed: 1\nlr: 0.1\n",
     PTL_EFORMAT,
     {"cfg.yaml:3: lr: unknown key (did you mean optim.lr?)"}},
    {"optm:\n  lr: 1\n", PTL_EFORMAT, {"cfg.yaml:1: optm: unknown key (did you mean optim?)"}},
    {"data:\n  sise: [1, 2]\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: data.sise: unknown key (did you mean data.size?)"}},
    {"zzzzzz: 1\n", PTL_EFORMAT, {"cfg.yaml:1: zzzzzz: unknown key (the keys are listed"}},
    {"name: sgd\n", PTL_EFORMAT, {"cfg.yaml:1: name: unknown key ("}}, /* two keys end in name */
    {"[1, 2]: 3\n", PTL_EFORMAT, {"cfg.yaml:1: (top level): a key must be a name, got a list"}},
    /* wrong types */
    {"optim:\n  lr: abc\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: optim.lr: wrong type (expected a number in (0, ..], got 'abc')"}},
    {"train:\n  epochs: 1.5\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: train.epochs: wrong type (expected an integer in [1, 100000], got '1.5')"}},
    {"train:\n  epochs: 1e3\n", PTL_EFORMAT, {"cfg.yaml:2: train.epochs: wrong type"}},
    {"optim:\n  lr: \"0.1\"\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: optim.lr: wrong type", "got the quoted string '0.1'"}},
    {"optim:\n  lr: nan\n", PTL_EFORMAT, {"cfg.yaml:2: optim.lr: wrong type", "got 'nan'"}},
    {"optim:\n  lr: inf\n", PTL_EFORMAT, {"cfg.yaml:2: optim.lr: wrong type", "got 'inf'"}},
    {"optim:\n  lr: .inf\n", PTL_EFORMAT, {"cfg.yaml:2: optim.lr: wrong type"}},
    {"optim:\n  lr:\n", PTL_EFORMAT, {"cfg.yaml:2: optim.lr: wrong type", "got no value"}},
    {"run:\n  debug_log: maybe\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: run.debug_log: wrong type (expected true or false, got 'maybe')"}},
    {"run:\n  debug_log: 1\n", PTL_EFORMAT, {"cfg.yaml:2: run.debug_log: wrong type"}},
    {"model:\n  arch: [a, b]\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: model.arch: wrong type (expected a string, got a list)"}},
    {"optim:\n  lr:\n    x: 1\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: optim.lr: wrong type", "got a mapping"}},
    {"optim: 0.1\n",
     PTL_EFORMAT,
     {"cfg.yaml:1: optim: is a section (expected a mapping of optim.* keys, got '0.1')"}},
    {"optim: [1]\n", PTL_EFORMAT, {"cfg.yaml:1: optim: is a section", "got a list"}},
    {"schedule:\n  milestones: 30\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: schedule.milestones: wrong type (expected a list like [1, 2] of at most 16 "
      "integers in [0, ..], got '30')"}},
    {"data:\n  size:\n    - 1\n    - x\n",
     PTL_EFORMAT,
     {"cfg.yaml:4: data.size[1]: wrong type (expected an integer in [0, 4096], got 'x')"}},
    {"data:\n  size: [1, [2]]\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: data.size[1]: wrong type", "got a list"}},
    /* out of range */
    {"optim:\n  momentum: 1\n",
     PTL_ERANGE,
     {"cfg.yaml:2: optim.momentum: out of range (expected a number in [0, 1), got '1')"}},
    {"optim:\n  lr: 0\n", PTL_ERANGE, {"cfg.yaml:2: optim.lr: out of range", "(0, ..]", "got '0'"}},
    {"optim:\n  lr: -0.1\n", PTL_ERANGE, {"cfg.yaml:2: optim.lr: out of range"}},
    {"optim:\n  lr: 1e999\n", PTL_ERANGE, {"cfg.yaml:2: optim.lr: out of range", "'1e999'"}},
    {"run:\n  seed: -1\n",
     PTL_ERANGE,
     {"cfg.yaml:2: run.seed: out of range (expected an integer in [0, 9007199254740992], got "
      "'-1')"}},
    {"run:\n  seed: 9007199254740993\n", PTL_ERANGE, {"cfg.yaml:2: run.seed: out of range"}},
    {"run:\n  seed: 99999999999999999999\n", PTL_ERANGE, {"cfg.yaml:2: run.seed: out of range"}},
    {"data:\n  size: [0, 5000]\n",
     PTL_ERANGE,
     {"cfg.yaml:2: data.size[1]: out of range", "'5000'"}},
    {"augment:\n  std: [0.5, 0, 0.5]\n", PTL_ERANGE, {"cfg.yaml:2: augment.std[1]: out of range"}},
    {"schedule:\n  gamma: 1.5\n",
     PTL_ERANGE,
     {"cfg.yaml:2: schedule.gamma: out of range (expected a number in (0, 1], got '1.5')"}},
    /* enums */
    {"optim:\n  name: adamw\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: optim.name: unknown choice (expected one of sgd|adam, got 'adamw')"}},
    {"optim:\n  name: SGD\n", PTL_EFORMAT, {"cfg.yaml:2: optim.name: unknown choice"}},
    {"optim:\n  name:\n", PTL_EFORMAT, {"cfg.yaml:2: optim.name: unknown choice", "got no value"}},
    /* lists */
    {"schedule:\n  milestones: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]\n",
     PTL_ERANGE,
     {"cfg.yaml:2: schedule.milestones: too many items (expected at most 16, got 17)"}},
    {"data:\n  size: [1]\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: data.size: wrong number of items (expected 2, got 1)"}},
    {"augment:\n  mean: [0.5, 0.5]\n",
     PTL_EFORMAT,
     {"cfg.yaml:2: augment.mean: wrong number of items (expected 1 or 3, got 2)"}},
    /* duplicates */
    {"optim:\n  lr: 0.1\n  lr: 0.2\n",
     PTL_EFORMAT,
     {"cfg.yaml:3: optim.lr: duplicate key (first at line 2)"}},
    {"optim:\n  lr: 0.1\nrun:\n  seed: 1\noptim:\n  momentum: 0.5\n",
     PTL_EFORMAT,
     {"cfg.yaml:5: optim: duplicate key (first at line 1)"}},
    {"optim.lr: 0.1\noptim:\n  lr: 0.2\n",
     PTL_EFORMAT,
     {"cfg.yaml:3: optim.lr: duplicate key (first at line 1)"}},
    /* YAML syntax */
    {"run:\n  seed: 1\n  threads: \"unterminated\n",
     PTL_EFORMAT,
     {"cfg.yaml:4:1: YAML syntax error: found unexpected end of stream",
      "while scanning a quoted scalar at line 3"}},
    {"run:\n\tseed: 1\n", PTL_EFORMAT, {"cfg.yaml:2:1: YAML syntax error"}},
    {"optim: {lr: 0.1\nrun: 2\n", PTL_EFORMAT, {"cfg.yaml:2:", "YAML syntax error"}},
    {"run:\n  seed: 1\n  x: \x01\n",
     PTL_EFORMAT,
     {"cfg.yaml:3:6: YAML syntax error: control characters are not allowed"}},
    {"run:\n  seed: \xff\n",
     PTL_EFORMAT,
     {"cfg.yaml:2:9: YAML syntax error: invalid leading UTF-8"}},
    /* the top level */
    {"- a\n- b\n", PTL_EFORMAT, {"cfg.yaml:1: the top level must be a mapping", "got a list"}},
    {"\n\nhello\n", PTL_EFORMAT, {"cfg.yaml:3: the top level must be a mapping", "got 'hello'"}},
    {"run:\n  seed: 1\n---\nrun:\n  seed: 2\n",
     PTL_EFORMAT,
     {"cfg.yaml:3: a second YAML document"}},
};

Test(config, every_error_names_file_line_key)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *b = &bad_cases[i];
        const char *path = file_with("cfg.yaml", b->text);
        struct ptl_config *c = (struct ptl_config *)1;
        ptl_error_clear();
        int rc = ptl_config_load(&c, path, keys());
        const char *msg = ptl_error_message();
        cr_expect_eq(rc, b->code, "case %zu (%s): rc %d, want %d: %s", i, b->text, rc, b->code,
                     msg);
        cr_expect_null(c, "case %zu: *out must be NULL on error", i);
        cr_expect_eq(strncmp(msg, path, strlen(path)), 0,
                     "case %zu: message does not start with the path: %s", i, msg);
        for (int j = 0; j < 3 && b->parts[j]; j++)
            cr_expect(strstr(msg, b->parts[j]), "case %zu (%s):\n  message: %s\n  missing:  %s", i,
                      b->text, msg, b->parts[j]);
        cr_expect_null(strchr(msg, '\n'), "case %zu: one line: %s", i, msg);
    }
}

Test(config, missing_and_unreadable_files)
{
    char path[256];
    snprintf(path, sizeof path, "%s/nope.yaml", dir);
    struct ptl_config *c = (struct ptl_config *)1;
    cr_assert_eq(ptl_config_load(&c, path, keys()), PTL_EIO);
    cr_assert_null(c);
    cr_assert(strstr(ptl_error_message(), path), "%s", ptl_error_message());
    cr_assert(strstr(ptl_error_message(), "No such file"), "%s", ptl_error_message());

    /* a directory opens but cannot be read */
    cr_assert_eq(ptl_config_load(&c, dir, keys()), PTL_EIO);
    cr_assert(strstr(ptl_error_message(), dir), "%s", ptl_error_message());
    cr_assert(strstr(ptl_error_message(), "cannot read"), "%s", ptl_error_message());

    if (geteuid() != 0) { /* root reads mode-000 files */
        const char *p = file_with("secret.yaml", "run:\n  seed: 1\n");
        cr_assert_eq(chmod(p, 0), 0);
        cr_assert_eq(ptl_config_load(&c, p, keys()), PTL_EIO);
        cr_assert(strstr(ptl_error_message(), "secret.yaml: cannot open: Permission denied"), "%s",
                  ptl_error_message());
    }
}

Test(config, bad_schemas_are_refused)
{
    static const struct ptl_config_key dup[] = {{"a.b", PTL_CFG_INT, "0", 1, 0, NULL, 0, "x"},
                                                {"a.b", PTL_CFG_INT, "0", 1, 0, NULL, 0, "x"},
                                                {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};
    static const struct ptl_config_key leaf_and_section[] = {
        {"a", PTL_CFG_INT, "0", 1, 0, NULL, 0, "x"},
        {"a.b", PTL_CFG_INT, "0", 1, 0, NULL, 0, "x"},
        {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};
    static const struct ptl_config_key bad_default[] = {
        {"a.b", PTL_CFG_INT, "11", 0, 10, NULL, 0, "x"}, {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};
    static const struct ptl_config_key no_choices[] = {
        {"a.b", PTL_CFG_ENUM, "x", 1, 0, NULL, 0, "x"}, {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};
    static const struct ptl_config_key bad_counts[] = {
        {"a.b", PTL_CFG_INT_LIST, "[]", 1, 0, "1||3", 3, "x"},
        {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};
    const struct ptl_config_key *schemas[] = {dup, leaf_and_section, bad_default, no_choices,
                                              bad_counts};
    const char *words[] = {"listed twice", "cannot be a section", "default of a.b: out of range",
                           "enum without choices", "item counts"};
    for (int i = 0; i < 5; i++) {
        struct ptl_config *c = (struct ptl_config *)1;
        cr_assert_eq(ptl_config_load(&c, NULL, schemas[i]), PTL_EINVAL, "schema %d: %s", i,
                     ptl_error_message());
        cr_assert_null(c);
        cr_assert(strstr(ptl_error_message(), words[i]), "schema %d: %s", i, ptl_error_message());
    }
}

/* ---- --set ---- */

Test(config, set_overrides)
{
    struct ptl_config *c = load_text("optim:\n  lr: 0.1\n");
    cr_assert_eq(ptl_config_set(c, "optim.lr=0.5"), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_config_float(c, "optim.lr"), 0.5);
    cr_assert_eq(ptl_config_line(c, "optim.lr"), -1);
    cr_assert_eq(ptl_config_set(c, "optim.lr=0.25"), 0, "the last --set wins");
    cr_assert_eq(ptl_config_float(c, "optim.lr"), 0.25);
    cr_assert_eq(ptl_config_set(c, "data.size=[32, 64]"), 0, "%s", ptl_error_message());
    cr_assert_eq(list_item(c, "data.size", 1), 64);
    cr_assert_eq(ptl_config_set(c, "schedule.milestones=[]"), 0);
    cr_assert_eq(ptl_config_list(c, "schedule.milestones", NULL, 0), 0);
    cr_assert_eq(ptl_config_set(c, "data.classes=- 4\n- 5\n"), 0, "block list: %s",
                 ptl_error_message());
    cr_assert_eq(list_item(c, "data.classes", 1), 5);
    cr_assert_eq(ptl_config_set(c, "optim.nesterov=true"), 0);
    cr_assert_eq(ptl_config_bool(c, "optim.nesterov"), 1);
    cr_assert_eq(ptl_config_set(c, "model.weights=/a/b=c.h5"), 0, "only the first = splits");
    cr_assert_str_eq(ptl_config_string(c, "model.weights"), "/a/b=c.h5");
    cr_assert_eq(ptl_config_set(c, "model.weights="), 0);
    cr_assert_str_eq(ptl_config_string(c, "model.weights"), "");
    cr_assert_eq(ptl_config_set(c, "model.arch=\"x # y\""), 0);
    cr_assert_str_eq(ptl_config_string(c, "model.arch"), "x # y");
    cr_assert_eq(ptl_config_set(c, " optim.name = adam"), 0, "%s", ptl_error_message());
    cr_assert_str_eq(ptl_config_string(c, "optim.name"), "adam");
    ptl_config_free(c);
}

Test(config, set_errors_name_the_argument)
{
    struct ptl_config *c = load_text("optim:\n  lr: 0.1\n");
    struct {
        const char *arg, *part;
    } cases[] = {
        {"optim.lr=abc",
         "--set optim.lr=abc: optim.lr: wrong type (expected a number in (0, ..], got 'abc')"},
        {"optim.lr=0", "--set optim.lr=0: optim.lr: out of range"},
        {"optim.lr=",
         "--set optim.lr=: optim.lr: wrong type (expected a number in (0, ..], got no value)"},
        {"optm.lr=1", "--set optm.lr=1: optm.lr: unknown key (did you mean optim.lr?)"},
        {"epochs=3", "--set epochs=3: epochs: unknown key (did you mean train.epochs?)"},
        {"optim=1",
         "--set optim=1: optim: is a section, not a key (set one of its keys, like optim.name)"},
        {"optim.lr", "--set optim.lr: expected KEY=VALUE"},
        {"=1", "--set =1: expected KEY=VALUE"},
        {"optim.name=adamw", "--set optim.name=adamw: optim.name: unknown choice (expected one of "
                             "sgd|adam, got 'adamw')"},
        {"data.size=[1, 2, 3]",
         "--set data.size=[1, 2, 3]: data.size: wrong number of items (expected 2, got 3)"},
        {"data.size=[1, x]", "--set data.size=[1, x]: data.size[1]: wrong type"},
        {"data.size=[1,",
         "--set data.size=[1,: data.size: YAML syntax error at the end of the value"},
        {"data.size=[1, 2]]",
         "--set data.size=[1, 2]]: data.size: YAML syntax error in the value at column 7"},
        {
            "data.size=1,2",
            "--set data.size=1,2: data.size: wrong type",
        },
        {"model.arch={a: 1}",
         "--set model.arch={a: 1}: model.arch: wrong type (expected a string, got a mapping)"},
        {"run.seed=1\n---\n2", "run.seed: more than one YAML document in the value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = ptl_config_set(c, cases[i].arg);
        cr_expect_lt(rc, 0, "--set %s accepted", cases[i].arg);
        cr_expect(strstr(ptl_error_message(), cases[i].part),
                  "--set %s:\n  message: %s\n  missing:  %s", cases[i].arg, ptl_error_message(),
                  cases[i].part);
    }
    /* a failed --set changes nothing */
    cr_assert_eq(ptl_config_float(c, "optim.lr"), 0.1);
    cr_assert_eq(ptl_config_line(c, "optim.lr"), 2);
    cr_assert_eq(list_item(c, "data.size", 0), 0);
    cr_assert_str_eq(ptl_config_string(c, "model.arch"), "resnet18-narrow");
    ptl_config_free(c);
}

Test(config, error_helper_names_the_origin)
{
    struct ptl_config *c = load_text("data:\n  batch: 48\n");
    cr_assert_eq(ptl_config_set(c, "data.pk=[4, 8]"), 0);
    cr_assert_eq(ptl_config_error(c, "data.batch", "must be %d for sampler pk", 32), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "cfg.yaml:2: data.batch: must be 32 for sampler pk"),
              "%s", ptl_error_message());
    ptl_config_error(c, "data.pk", "P*K = %d", 32);
    cr_assert_str_eq(ptl_error_message(), "--set data.pk=[4, 8]: data.pk: P*K = 32");
    ptl_config_error(c, "data.sampler", "bad");
    cr_assert(strstr(ptl_error_message(), "cfg.yaml: data.sampler (default): bad"), "%s",
              ptl_error_message());
    ptl_config_free(c);
}

/* ---- programming errors abort ---- */

Test(config, getter_unknown_key_aborts, .signal = SIGABRT)
{
    remove_dir(); /* .fini does not run after the abort */
    struct ptl_config *c = load_ok(NULL);
    (void)ptl_config_int(c, "optim.nope");
}

Test(config, getter_wrong_type_aborts, .signal = SIGABRT)
{
    remove_dir(); /* .fini does not run after the abort */
    struct ptl_config *c = load_ok(NULL);
    (void)ptl_config_int(c, "optim.lr");
}

Test(config, list_getter_on_scalar_aborts, .signal = SIGABRT)
{
    remove_dir(); /* .fini does not run after the abort */
    struct ptl_config *c = load_ok(NULL);
    (void)ptl_config_list(c, "optim.lr", NULL, 0);
}

/* ---- write -> load ---- */

static void assert_same(const struct ptl_config *a, const struct ptl_config *b)
{
    for (const struct ptl_config_key *k = keys(); k->key; k++) {
        switch (k->type) {
        case PTL_CFG_INT:
            cr_assert_eq(ptl_config_int(a, k->key), ptl_config_int(b, k->key), "%s", k->key);
            break;
        case PTL_CFG_FLOAT: {
            double x = ptl_config_float(a, k->key), y = ptl_config_float(b, k->key);
            cr_assert(memcmp(&x, &y, sizeof x) == 0, "%s: %.17g != %.17g", k->key, x, y);
            break;
        }
        case PTL_CFG_BOOL:
            cr_assert_eq(ptl_config_bool(a, k->key), ptl_config_bool(b, k->key), "%s", k->key);
            break;
        case PTL_CFG_STRING:
        case PTL_CFG_ENUM:
            cr_assert_str_eq(ptl_config_string(a, k->key), ptl_config_string(b, k->key), "%s",
                             k->key);
            break;
        case PTL_CFG_INT_LIST:
        case PTL_CFG_FLOAT_LIST: {
            double x[1024], y[1024];
            int nx = ptl_config_list(a, k->key, x, 1024), ny = ptl_config_list(b, k->key, y, 1024);
            cr_assert_eq(nx, ny, "%s", k->key);
            cr_assert(memcmp(x, y, (size_t)nx * sizeof *x) == 0, "%s", k->key);
            break;
        }
        }
    }
}

/* Writes c to dir/name with ptl_config_write and loads it back. */
static struct ptl_config *write_and_load(const struct ptl_config *c, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(ptl_config_write(c, path), 0, "%s", ptl_error_message());
    struct ptl_config *d = NULL;
    int rc = ptl_config_load(&d, path, keys());
    if (rc < 0) {
        char *text = ptl_config_text(c);
        cr_assert_fail("reload: %s\n%s", ptl_error_message(), text);
    }
    return d;
}

Test(config, round_trip_full_file)
{
    struct ptl_config *c = load_text(full_config);
    cr_assert_eq(ptl_config_set(c, "optim.lr=0.1"), 0);
    cr_assert_eq(ptl_config_set(c, "augment.mean=[0.1, 0.3333333333333333, -0.0]"), 0);
    cr_assert_eq(ptl_config_set(c, "data.classes=[0, 1000000, 7]"), 0);
    cr_assert_eq(ptl_config_set(c, "run.seed=9007199254740992"), 0);
    struct ptl_config *d = write_and_load(c, "config.yaml");
    assert_same(c, d);
    /* "changed" marks: on the keys that differ from their defaults, naming where from */
    char *text = ptl_config_text(c);
    cr_assert(strstr(text, "  # changed from the default 0.01 (--set optim.lr=0.1)\n  lr: 0.1\n"),
              "%s", text);
    cr_assert(strstr(text, "  # changed from the default 0 (--set run.seed=9007199254740992)\n"
                           "  seed: 9007199254740992\n"),
              "%s", text);
    cr_assert(strstr(text, "cfg.yaml:4)\n  threads: 4\n"), "%s", text);
    cr_assert(strstr(text, "  # changed from the default \"resnet18-narrow\" ("), "%s", text);
    cr_assert(strstr(text, "  # changed from the default [0.5] (--set augment.mean=[0.1, "
                           "0.3333333333333333, -0.0])\n"
                           "  mean: [0.1, 0.3333333333333333, -0.0]\n"),
              "%s", text);
    /* the file gives these their default values: not marked */
    const char *same[] = {"\n  batch: 64\n", "\n  weight_decay: 0.0005\n", "\n  gamma: 0.1\n",
                          "\n  ce: 1.0\n"};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(text, same[i]);
        cr_assert_not_null(at, "%s missing:\n%s", same[i], text);
        const char *prev = at; /* start of the line before */
        while (prev > text && prev[-1] != '\n')
            prev--;
        cr_assert(strncmp(prev, "  # changed", 11) != 0, "%s is marked changed:\n%s", same[i],
                  text);
    }
    free(text);
    /* the reloaded config, written again, gives the same values once more */
    struct ptl_config *e = write_and_load(d, "config2.yaml");
    assert_same(d, e);
    ptl_config_free(c);
    ptl_config_free(d);
    ptl_config_free(e);
}

Test(config, round_trip_strings)
{
    /* --set values are YAML: the double-quoted forms give every awkward character */
    const char *values[] = {"\"\"",
                            "null",
                            "\"null\"",
                            "\"true\"",
                            "\"~\"",
                            "\"123\"",
                            "\"  two leading spaces\"",
                            "\"trailing \"",
                            "\"a: b # c\"",
                            "\"quote \\\" and backslash \\\\\"",
                            "\"line\\nbreak\\r\\n\"",
                            "\"tab\\tand \\x01 \\x7f\"",
                            "\"NEL \\x85, LS \\u2028, PS \\u2029, C1 \\x9f\"",
                            "\"caf\\u00e9 \\u4e2d\\u6587 \\U0001F600\"",
                            "\"'single' [flow] {map} &anchor *alias !tag %\"",
                            "\"- dash\"",
                            "\"---\"",
                            "\"\\ufeffbom\"",
                            "plain with spaces"};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        struct ptl_config *c = load_ok(NULL);
        char arg[256];
        snprintf(arg, sizeof arg, "model.weights=%s", values[i]);
        cr_assert_eq(ptl_config_set(c, arg), 0, "%s: %s", arg, ptl_error_message());
        snprintf(arg, sizeof arg, "data.path=%s", values[i]);
        cr_assert_eq(ptl_config_set(c, arg), 0, "%s: %s", arg, ptl_error_message());
        struct ptl_config *d = write_and_load(c, "strings.yaml");
        cr_assert_str_eq(ptl_config_string(d, "model.weights"),
                         ptl_config_string(c, "model.weights"), "value %zu: %s", i, values[i]);
        assert_same(c, d);
        ptl_config_free(c);
        ptl_config_free(d);
    }
}

Test(config, round_trip_doubles)
{
    /* edge values and random bit patterns, set with %.17g, must come back bit for bit */
    const double fixed[] = {0.1,
                            1.0 / 3,
                            5e-324,
                            2.2250738585072014e-308,
                            1.7976931348623157e308,
                            1e-8,
                            123456789012345678.0,
                            0.30000000000000004,
                            1e21,
                            1e22,
                            100.0};
    struct ptl_rng rng;
    ptl_rng_init(&rng, 7, 0);
    struct ptl_config *c = load_ok(NULL);
    for (int i = 0; i < 600; i++) {
        double v;
        if (i < (int)(sizeof fixed / sizeof *fixed)) {
            v = fixed[i];
        } else {
            uint64_t bits = ptl_rng_u64(&rng) & ~(UINT64_C(1) << 63); /* loss.ce is >= 0 */
            memcpy(&v, &bits, sizeof v);
            if (!isfinite(v))
                continue;
        }
        char arg[64];
        snprintf(arg, sizeof arg, "loss.ce=%.17g", v);
        cr_assert_eq(ptl_config_set(c, arg), 0, "%s: %s", arg, ptl_error_message());
        snprintf(arg, sizeof arg, "augment.mean=[%.17g]", i % 2 ? -v : v);
        cr_assert_eq(ptl_config_set(c, arg), 0, "%s: %s", arg, ptl_error_message());
        struct ptl_config *d = write_and_load(c, "doubles.yaml");
        assert_same(c, d);
        ptl_config_free(d);
    }
    ptl_config_free(c);
}

Test(config, written_yaml_is_plain_for_other_readers)
{
    struct ptl_config *c = load_ok(NULL);
    char *text = ptl_config_text(c);
    /* floats carry a '.', so YAML 1.1 readers (PyYAML) see floats, not ints or strings */
    cr_assert(strstr(text, "\n  eps: 1.0e-08\n"), "%s", text);
    cr_assert(strstr(text, "\n  ce: 1.0\n"), "%s", text);
    cr_assert(strstr(text, "\n  seed: 0\n"), "%s", text);
    cr_assert(strstr(text, "\n  arch: \"resnet18-narrow\"\n"), "%s", text);
    cr_assert(strstr(text, "\n  betas: [0.9, 0.999]\n"), "%s", text);
    cr_assert(strstr(text, "\noptim:\n  name: sgd\n"), "%s", text);
    free(text);
    ptl_config_free(c);
}

Test(config, write_is_atomic_and_reports_errors)
{
    struct ptl_config *c = load_ok(NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/no/such/dir/config.yaml", dir);
    cr_assert_eq(ptl_config_write(c, path), PTL_EIO);
    cr_assert(strstr(ptl_error_message(), path), "%s", ptl_error_message());
    /* overwrite an existing file; nothing else is left in the directory */
    const char *p = file_with("config.yaml", "old contents\n");
    char keep[256];
    snprintf(keep, sizeof keep, "%s", p);
    cr_assert_eq(ptl_config_write(c, keep), 0, "%s", ptl_error_message());
    struct ptl_config *d = load_ok(keep);
    assert_same(c, d);
    char ls[300];
    snprintf(ls, sizeof ls, "ls -A %s | wc -l", dir);
    FILE *f = popen(ls, "r");
    int n = -1;
    cr_assert(f && fscanf(f, "%d", &n) == 1);
    pclose(f);
    cr_assert_eq(n, 1, "temporary files left in %s", dir);
    ptl_config_free(c);
    ptl_config_free(d);
}

/* ---- docs/config.md ---- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

Test(config, docs_list_every_key_with_its_default)
{
    const char *top = getenv("top_srcdir");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/config.md", top ? top : ".");
    char *doc = read_all(path);
    cr_assert_not_null(doc, "%s: %s (make check sets top_srcdir)", path, strerror(errno));

    char *table = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&table, &size);
    cr_assert_not_null(f);
    ptl_config_print_keys(keys(), f);
    cr_assert_eq(fclose(f), 0);

    /* each key's row, with its default, as ptl_config_print_keys writes it */
    int rows = 0;
    for (char *line = table; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        if (!strncmp(line, "| `", 3)) {
            rows++;
            cr_expect(strstr(doc, line),
                      "%s lacks (or has another default, range or text for) the row\n%s", path,
                      line);
        }
        *nl = '\n';
        line = nl + 1;
    }
    cr_assert_eq(rows, count_keys());
    for (const struct ptl_config_key *k = keys(); k->key; k++) {
        char row[200];
        snprintf(row, sizeof row, "| `%s` |", k->key);
        cr_expect(strstr(doc, row), "%s does not list %s", path, k->key);
    }
    /* and the whole table in one piece, in schema order */
    if (!strstr(doc, table)) {
        FILE *out = fopen("config-keys.md", "w");
        if (out) {
            fputs(table, out);
            fclose(out);
        }
        cr_assert_fail("%s: the key table differs from ptl_config_print_keys (written to "
                       "config-keys.md in the build directory)",
                       path);
    }
    free(table);
    free(doc);
}

Test(config, print_keys_table_shape)
{
    char *table = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&table, &size);
    ptl_config_print_keys(keys(), f);
    fclose(f);
    cr_assert(strstr(table, "| key | type | default | range / choices | meaning |\n| --- |"));
    cr_assert(strstr(table, "| `optim.lr` | float | `0.01` | (0, ..] | "), "%s", table);
    cr_assert(strstr(table, "| `optim.momentum` | float | `0.9` | [0, 1) | "), "%s", table);
    cr_assert(strstr(table, "| `optim.name` | enum | `sgd` | `sgd`, `adam` | "), "%s", table);
    cr_assert(strstr(table, "| `data.size` | int list | `[0, 0]` | 2 items, each in [0, 4096] | "),
              "%s", table);
    cr_assert(strstr(table, "| `augment.mean` | float list | `[0.5]` | 1 or 3 items | "), "%s",
              table);
    cr_assert(strstr(table, "| `model.classes` | int | `0` | [0, 1000000] | "), "%s", table);
    int lines = 0;
    for (char *p = table; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, count_keys() + 2);
    free(table);
}
