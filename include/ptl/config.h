/* ptl/config.h - run configuration: one YAML file (libyaml), checked against a schema of keys.
 *
 * Keys are dotted paths into nested mappings ("optim.lr" is `optim: {lr: ...}`). Every key has a
 * type, a default, a range or a set of choices, and a line of documentation (docs/config.md
 * lists them all: `ptl train --list-keys`). Unknown keys, wrong types and out-of-range values
 * are errors naming the file, the line and the key; `--set key=value` overrides a key after the
 * file is read.
 */
#ifndef PTL_CONFIG_H
#define PTL_CONFIG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ptl_config_type {
    PTL_CFG_INT = 0,
    PTL_CFG_FLOAT = 1,
    PTL_CFG_BOOL = 2,
    PTL_CFG_STRING = 3,
    PTL_CFG_ENUM = 4,       /* a string from `choices` ("a|b|c") */
    PTL_CFG_INT_LIST = 5,   /* [1, 2, 3] (flow or block sequence) */
    PTL_CFG_FLOAT_LIST = 6,
};

struct ptl_config_key {
    const char *key;          /* "optim.lr"; NULL ends a table */
    enum ptl_config_type type;
    const char *def;          /* default, in YAML text form ("0.01", "[0.5]", "sgd", "") */
    double min, max;          /* numeric range, inclusive (also for list items); min > max: none */
    const char *choices;      /* PTL_CFG_ENUM: "sgd|adam"; lists: the allowed item counts
                                 ("2", "1|3"), NULL: any count up to max_items */
    int max_items;            /* lists: at most this many items (0: no limit up to 64) */
    const char *doc;          /* one line for docs/config.md and --list-keys */
};

/* The schema `ptl train` and `ptl eval` use (src/train/config_keys.c). */
const struct ptl_config_key *ptl_train_config_keys(void);

struct ptl_config;

/* Reads `path` (NULL: defaults only) against `schema`. Errors name "path:line: key". */
int ptl_config_load(struct ptl_config **out, const char *path, const struct ptl_config_key *schema);
void ptl_config_free(struct ptl_config *c);
/* Applies "key=value" (value in YAML syntax: 0.1, true, adam, [1, 2]). */
int ptl_config_set(struct ptl_config *c, const char *assignment);
/* Writes every key with its resolved value as nested YAML that ptl_config_load reads back to
 * the same values; a comment line marks keys that differ from their default. Atomic (temporary
 * file + rename). */
int ptl_config_write(const struct ptl_config *c, const char *path);
/* The same YAML text, malloc'd (for checkpoints and logs). */
char *ptl_config_text(const struct ptl_config *c);

/* Typed getters. Asking for a key that is not in the schema, or with the wrong type, is a
 * programming error (message on stderr, abort), never a user error. */
long ptl_config_int(const struct ptl_config *c, const char *key);
double ptl_config_float(const struct ptl_config *c, const char *key);
int ptl_config_bool(const struct ptl_config *c, const char *key);
const char *ptl_config_string(const struct ptl_config *c, const char *key); /* also enums */
/* List items into out[0..max), returns the item count (which may exceed max). */
int ptl_config_list(const struct ptl_config *c, const char *key, double *out, int max);
/* Where the value came from: its line in the file (> 0), 0 for the default, -1 for --set. */
int ptl_config_line(const struct ptl_config *c, const char *key);
/* The file name given to ptl_config_load ("(defaults)" for NULL). */
const char *ptl_config_path(const struct ptl_config *c);

/* Records an error about a key's resolved value, for checks that span keys (data.batch vs
 * data.pk), in the same format as the loader's: "FILE:LINE: KEY: message" for a value from the
 * file, "--set KEY=VALUE: KEY: message" for a --set value, "FILE: KEY (default): message" for a
 * default. Returns PTL_EINVAL. Unknown keys are a programming error (abort). */
int ptl_config_error(const struct ptl_config *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the schema as a Markdown table (key, type, default, range/choices, meaning). */
void ptl_config_print_keys(const struct ptl_config_key *schema, void *file /* FILE * */);

#ifdef __cplusplus
}
#endif
#endif
