/* Run configuration: one YAML file read with libyaml's document API and checked against a
 * schema of dotted keys (include/ptl/config.h, docs/config.md).
 *
 * Nested mappings name keys by path ("optim: {lr: 0.1}" is optim.lr; a dotted key in a mapping
 * is the same key). Scalars are typed by the schema, never by YAML's own resolution, so a
 * string key takes any scalar and a quoted number is not a number. Every error is one line
 * "FILE:LINE: KEY: what is wrong (expected ..., got '...')"; a --set error starts with the
 * --set argument instead. The first error stops the load and nothing is half-applied.
 *
 * Writing prints every key as nested YAML: floats in the shortest form that reads back to the
 * same double (with a '.' so YAML 1.1 readers see a float), strings double-quoted with the
 * escapes libyaml reads back, so load(write(c)) == c exactly.
 */
#include "ptl/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "ptl/core.h"

#define LIST_CAP_DEFAULT 64             /* max_items == 0 */
#define MAX_FILE_BYTES (16L << 20)      /* a config is a few KB; refuse to slurp big files */
#define GOT_MAX 60                      /* characters of a bad value quoted in a message */
#define INT_ITEM_MAX 9007199254740992.0 /* int list items live in doubles: 2^53 */

struct cfg_value {
    long i;        /* INT */
    double f;      /* FLOAT */
    int b;         /* BOOL */
    char *s;       /* STRING, ENUM */
    double *items; /* lists */
    int n_items;
    int line;     /* > 0: line in the file, 0: default, -1: --set */
    char *origin; /* --set: the assignment */
};

struct ptl_config {
    char *path;
    const struct ptl_config_key *schema;
    int n;
    struct cfg_value *vals;
    struct cfg_value *defs;
};

/* Where a value being parsed comes from: a file, a --set argument, or (neither) a schema default.
 */
struct where {
    const char *path;
    const char *assignment;
};

/* ---------------- small helpers ---------------- */

static void value_free(struct cfg_value *v)
{
    free(v->s);
    free(v->items);
    free(v->origin);
    memset(v, 0, sizeof *v);
}

static int value_copy(struct cfg_value *dst, const struct cfg_value *src)
{
    *dst = *src;
    dst->s = NULL;
    dst->items = NULL;
    dst->origin = NULL;
    if (src->s && !(dst->s = strdup(src->s)))
        return -1;
    if (src->n_items) {
        dst->items = malloc((size_t)src->n_items * sizeof *dst->items);
        if (!dst->items)
            return -1;
        memcpy(dst->items, src->items, (size_t)src->n_items * sizeof *dst->items);
    }
    if (src->origin && !(dst->origin = strdup(src->origin)))
        return -1;
    return 0;
}

static int is_list(enum ptl_config_type t)
{
    return t == PTL_CFG_INT_LIST || t == PTL_CFG_FLOAT_LIST;
}

static int has_range(const struct ptl_config_key *k)
{
    return k->min <= k->max;
}

static int list_cap(const struct ptl_config_key *k)
{
    return k->max_items > 0 ? k->max_items : LIST_CAP_DEFAULT;
}

/* Shortest "%.Ng" that reads back to v; with yaml_float, a ".0" is added where there is no '.'
 * (YAML 1.1 readers such as PyYAML read "1" and "1e-08" as an int and a string). */
static void format_double(char *buf, size_t size, double v, int yaml_float)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (strchr(buf, 'e') && fabs(v) >= 1 && fabs(v) < 1e16)
        snprintf(buf, size, "%.0f", v); /* "10", not "1e+01": exact below 1e16 */
    if (!yaml_float || strchr(buf, '.') || !isfinite(v))
        return;
    char *e = strchr(buf, 'e');
    size_t len = strlen(buf);
    if (len + 3 > size)
        return;
    if (e) {
        memmove(e + 2, e, strlen(e) + 1);
        e[0] = '.';
        e[1] = '0';
    } else {
        memcpy(buf + len, ".0", 3);
    }
}

/* An open bound is stored as the next double inside it (0x1p-1074 for "(0"); it shows as the
 * round number next to it. */
static int is_open_bound(double b, double outside)
{
    if (outside == 0.0 && b != 0.0)
        return 1;
    char sb[40], so[40];
    format_double(sb, sizeof sb, b, 0);
    format_double(so, sizeof so, outside, 0);
    return strlen(sb) >= 15 && strlen(so) + 6 <= strlen(sb);
}

/* A range bound: integers in full ("1000000", not "1e+06"). */
static void format_bound(char *buf, size_t size, double v)
{
    if (v == floor(v) && fabs(v) < 1e16)
        snprintf(buf, size, "%.0f", v);
    else
        format_double(buf, size, v, 0);
}

/* "[0, 1)", "(0, ..]", "[1, ..]"; "" when there is no range. */
static void range_text(char *buf, size_t size, double min, double max)
{
    if (min > max) {
        buf[0] = '\0';
        return;
    }
    char lo[48], hi[48], num[40];
    if (min == -HUGE_VAL) {
        snprintf(lo, sizeof lo, "[..");
    } else {
        double out = nextafter(min, -HUGE_VAL);
        int open = is_open_bound(min, out);
        format_bound(num, sizeof num, open ? out : min);
        snprintf(lo, sizeof lo, "%c%s", open ? '(' : '[', num);
    }
    if (max == HUGE_VAL) {
        snprintf(hi, sizeof hi, "..]");
    } else {
        double out = nextafter(max, HUGE_VAL);
        int open = is_open_bound(max, out);
        format_bound(num, sizeof num, open ? out : max);
        snprintf(hi, sizeof hi, "%s%c", num, open ? ')' : ']');
    }
    snprintf(buf, size, "%s, %s", lo, hi);
}

/* "2" -> "2", "1|3" -> "1 or 3", "0|2|4" -> "0, 2 or 4". */
static void counts_text(char *buf, size_t size, const char *counts)
{
    size_t len = 0;
    buf[0] = '\0';
    const char *p = counts;
    while (*p && len < size) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        const char *sep = p == counts ? "" : (bar ? ", " : " or ");
        len += (size_t)snprintf(buf + len, size - len, "%s%.*s", sep, (int)n, p);
        p = bar ? bar + 1 : p + n;
    }
}

static int count_allowed(const char *counts, int n)
{
    const char *p = counts;
    while (*p) {
        char *end;
        long c = strtol(p, &end, 10);
        if (c == n)
            return 1;
        p = *end == '|' ? end + 1 : end;
        if (end == p && *p) /* malformed: the schema check refuses it, never loop */
            return 0;
    }
    return 0;
}

/* What a value of key k must be: "a number in (0, ..]", "one of sgd|adam", ... */
static void expected_text(char *buf, size_t size, const struct ptl_config_key *k)
{
    char range[100], counts[64];
    range_text(range, sizeof range, k->min, k->max);
    switch (k->type) {
    case PTL_CFG_INT:
    case PTL_CFG_FLOAT:
        snprintf(buf, size, "%s%s%s", k->type == PTL_CFG_INT ? "an integer" : "a number",
                 range[0] ? " in " : "", range);
        break;
    case PTL_CFG_BOOL:
        snprintf(buf, size, "true or false");
        break;
    case PTL_CFG_STRING:
        snprintf(buf, size, "a string");
        break;
    case PTL_CFG_ENUM:
        snprintf(buf, size, "one of %s", k->choices);
        break;
    case PTL_CFG_INT_LIST:
    case PTL_CFG_FLOAT_LIST:
        if (k->choices)
            counts_text(counts, sizeof counts, k->choices);
        else
            snprintf(counts, sizeof counts, "at most %d", list_cap(k));
        snprintf(buf, size, "a list like [1, 2] of %s %s%s%s", counts,
                 k->type == PTL_CFG_INT_LIST ? "integers" : "numbers", range[0] ? " in " : "",
                 range);
        break;
    }
}

/* ---------------- errors ---------------- */

static int failv(const struct where *w, int code, int line, const char *key, const char *fmt,
                 va_list ap)
{
    char msg[384];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (w->path)
        return ptl_error(code, "%s:%d: %s: %s", w->path, line, key, msg);
    if (w->assignment)
        return ptl_error(code, "--set %s: %s: %s", w->assignment, key, msg);
    return ptl_error(code, "config schema: default of %s: %s", key, msg);
}

static int fail(const struct where *w, int code, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(const struct where *w, int code, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(w, code, line, key, fmt, ap);
    va_end(ap);
    return rc;
}

static int node_line(const yaml_node_t *n, int fallback)
{
    return n ? (int)n->start_mark.line + 1 : fallback;
}

static int is_null_scalar(const yaml_node_t *n)
{
    if (!n)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The "got ..." part of a message: "'abc'", "the quoted string '0.1'", "a mapping", ... */
static void got_text(char *buf, size_t size, const yaml_node_t *n)
{
    if (is_null_scalar(n)) {
        snprintf(buf, size, "no value");
    } else if (n->type == YAML_MAPPING_NODE) {
        snprintf(buf, size, "a mapping");
    } else if (n->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, size, "a list");
    } else {
        const char *s = (const char *)n->data.scalar.value;
        int quoted = n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        int cut = strlen(s) > GOT_MAX;
        snprintf(buf, size, "%s'%.*s%s'", quoted ? "the quoted string " : "", GOT_MAX, s,
                 cut ? "..." : "");
    }
}

static int wrong_type(const struct where *w, int line, const char *key,
                      const struct ptl_config_key *k, const yaml_node_t *n)
{
    char exp[256], got[GOT_MAX + 40];
    expected_text(exp, sizeof exp, k);
    got_text(got, sizeof got, n);
    return fail(w, PTL_EFORMAT, line, key, "wrong type (expected %s, got %s)", exp, got);
}

static int out_of_range(const struct where *w, int line, const char *key,
                        const struct ptl_config_key *k, const yaml_node_t *n)
{
    char exp[256], got[GOT_MAX + 40];
    expected_text(exp, sizeof exp, k);
    got_text(got, sizeof got, n);
    return fail(w, PTL_ERANGE, line, key, "out of range (expected %s, got %s)", exp, got);
}

/* ---------------- typing scalars ---------------- */

/* A range bound as a long, compared exactly (2^53 + 1 must not pass a bound of 2^53). */
static long long_bound(double b, int upper)
{
    if (b >= 0x1p63)
        return LONG_MAX;
    if (b <= -0x1p63)
        return LONG_MIN;
    return (long)(upper ? floor(b) : ceil(b));
}

/* Parses scalar node n for a key of scalar type item->type (for list items `item` is a
 * single-item view of the list key). key names the value in messages ("data.size[1]"). */
static int parse_scalar(const struct where *w, const struct ptl_config_key *item, const char *key,
                        const yaml_node_t *n, int line, struct cfg_value *out)
{
    if (n && n->type != YAML_SCALAR_NODE)
        return wrong_type(w, line, key, item, n);
    line = node_line(n, line);
    const char *s = n ? (const char *)n->data.scalar.value : "";
    size_t len = n ? n->data.scalar.length : 0;
    int plain = !n || n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (item->type == PTL_CFG_STRING) {
        if (strlen(s) != len)
            return fail(w, PTL_EFORMAT, line, key, "wrong type (strings cannot hold NUL bytes)");
        out->s = strdup(is_null_scalar(n) ? "" : s);
        return out->s ? 0 : ptl_error(PTL_ENOMEM, "config: out of memory");
    }
    if (item->type == PTL_CFG_ENUM) {
        for (const char *c = item->choices; !is_null_scalar(n);) {
            const char *bar = strchr(c, '|');
            size_t clen = bar ? (size_t)(bar - c) : strlen(c);
            if (clen == len && !memcmp(c, s, len)) {
                out->s = strdup(s);
                return out->s ? 0 : ptl_error(PTL_ENOMEM, "config: out of memory");
            }
            if (!bar)
                break;
            c = bar + 1;
        }
        char got[GOT_MAX + 40];
        got_text(got, sizeof got, n);
        return fail(w, PTL_EFORMAT, line, key, "unknown choice (expected one of %s, got %s)",
                    item->choices, got);
    }
    /* Numbers and booleans: YAML types a quoted scalar as a string. */
    if (!plain || is_null_scalar(n) || strlen(s) != len)
        return wrong_type(w, line, key, item, n);
    if (item->type == PTL_CFG_BOOL) {
        if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
            out->b = 1;
        else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
            out->b = 0;
        else
            return wrong_type(w, line, key, item, n);
        return 0;
    }
    char *end;
    errno = 0;
    if (item->type == PTL_CFG_INT) {
        long v = strtol(s, &end, 10);
        if (end == s || *end || s[0] == ' ')
            return wrong_type(w, line, key, item, n);
        if (errno == ERANGE)
            return out_of_range(w, line, key, item, n);
        if (has_range(item) && (v < long_bound(item->min, 0) || v > long_bound(item->max, 1)))
            return out_of_range(w, line, key, item, n);
        out->i = v;
        return 0;
    }
    double v = strtod(s, &end);
    if (end == s || *end || s[0] == ' ')
        return wrong_type(w, line, key, item, n);
    if (!isfinite(v))
        return errno == ERANGE ? out_of_range(w, line, key, item, n)
                               : wrong_type(w, line, key, item, n);
    if (has_range(item) && (v < item->min || v > item->max))
        return out_of_range(w, line, key, item, n);
    out->f = v;
    return 0;
}

/* Parses node n (NULL: no value) as the value of key k, whose mapping key is at key_line. */
static int parse_node(const struct where *w, const struct ptl_config_key *k, yaml_document_t *doc,
                      const yaml_node_t *n, int key_line, struct cfg_value *out)
{
    memset(out, 0, sizeof *out);
    if (!is_list(k->type)) {
        int rc = parse_scalar(w, k, k->key, n, key_line, out);
        if (rc < 0)
            value_free(out);
        return rc;
    }
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return wrong_type(w, n && n->type == YAML_SCALAR_NODE ? node_line(n, key_line) : key_line,
                          k->key, k, n);
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (k->choices && !count_allowed(k->choices, count)) {
        char counts[64];
        counts_text(counts, sizeof counts, k->choices);
        return fail(w, PTL_EFORMAT, key_line, k->key, "wrong number of items (expected %s, got %d)",
                    counts, count);
    }
    if (count > list_cap(k))
        return fail(w, PTL_ERANGE, key_line, k->key, "too many items (expected at most %d, got %d)",
                    list_cap(k), count);
    struct ptl_config_key item = *k;
    item.type = k->type == PTL_CFG_INT_LIST ? PTL_CFG_INT : PTL_CFG_FLOAT;
    out->items = calloc((size_t)(count ? count : 1), sizeof *out->items);
    if (!out->items)
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    out->n_items = count;
    for (int i = 0; i < count; i++) {
        const yaml_node_t *in = yaml_document_get_node(doc, n->data.sequence.items.start[i]);
        char name[160];
        snprintf(name, sizeof name, "%s[%d]", k->key, i);
        struct cfg_value v = {0};
        int rc = parse_scalar(w, &item, name, in, node_line(n, key_line), &v);
        if (rc == 0 && item.type == PTL_CFG_INT && labs(v.i) > (long)INT_ITEM_MAX)
            rc = out_of_range(w, node_line(in, key_line), name, &item, in); /* held in doubles */
        if (rc < 0) {
            value_free(out);
            return rc;
        }
        out->items[i] = item.type == PTL_CFG_INT ? (double)v.i : v.f;
    }
    return 0;
}

/* libyaml's syntax error as one line; buf/len is the text (for reader errors, which only have
 * a byte offset). */
static int syntax_error(const struct where *w, const char *key, const yaml_parser_t *p,
                        const char *buf, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            col++;
            if (buf[i] == '\n') {
                line++;
                col = 1;
            }
        }
    }
    char context[96] = "";
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (w->path) {
        if (p->context)
            snprintf(context, sizeof context, " (%s at line %lu)", p->context,
                     (unsigned long)p->context_mark.line + 1);
        return ptl_error(PTL_EFORMAT, "%s:%lu:%lu: YAML syntax error: %s%s", w->path,
                         (unsigned long)line, (unsigned long)col, problem, context);
    }
    /* a --set value is one line: a column past it means "at the end" */
    if (p->context)
        snprintf(context, sizeof context, " (%s)", p->context);
    if (line == 1 && col <= len)
        return fail(w, PTL_EFORMAT, 0, key, "YAML syntax error in the value at column %lu: %s%s",
                    (unsigned long)col, problem, context);
    return fail(w, PTL_EFORMAT, 0, key, "YAML syntax error at the end of the value: %s%s", problem,
                context);
}

/* Parses `text` (YAML, one document) as the value of key k: defaults and --set values. */
static int parse_text(const struct where *w, const struct ptl_config_key *k, const char *text,
                      struct cfg_value *out)
{
    yaml_parser_t p;
    yaml_document_t doc;
    memset(out, 0, sizeof *out);
    if (!yaml_parser_initialize(&p))
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&p, &doc)) {
        int rc = syntax_error(w, k->key, &p, text, strlen(text));
        yaml_parser_delete(&p);
        return rc;
    }
    int rc = parse_node(w, k, &doc, yaml_document_get_root_node(&doc), 0, out);
    yaml_document_delete(&doc);
    /* "[1, 2]]": libyaml reports text after the first value only when asked for more */
    if (rc == 0 && !yaml_parser_load(&p, &doc)) {
        rc = syntax_error(w, k->key, &p, text, strlen(text));
    } else if (rc == 0) {
        if (yaml_document_get_root_node(&doc))
            rc = fail(w, PTL_EFORMAT, 0, k->key, "more than one YAML document in the value");
        yaml_document_delete(&doc);
    }
    if (rc < 0)
        value_free(out);
    yaml_parser_delete(&p);
    return rc;
}

/* ---------------- schema ---------------- */

static int find_key(const struct ptl_config_key *schema, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(schema[i].key, key))
            return i;
    return -1;
}

/* Is `name` a section: a proper prefix of some key, up to a dot? */
static int is_section(const struct ptl_config_key *schema, int n, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (!strncmp(schema[i].key, name, len) && schema[i].key[len] == '.')
            return 1;
    return 0;
}

static int plain_word(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.' || *s == '+'))
            return 0;
    return 1;
}

/* The schema is code, not user input, but a broken table must fail loudly and early. */
static int check_schema(const struct ptl_config_key *schema, int *n_out)
{
    if (!schema)
        return ptl_error(PTL_EINVAL, "config schema: NULL");
    int n = 0;
    while (schema[n].key)
        n++;
    for (int i = 0; i < n; i++) {
        const struct ptl_config_key *k = &schema[i];
        const char *name = k->key;
        if (!plain_word(name) || name[0] == '.' || name[strlen(name) - 1] == '.' ||
            strstr(name, ".."))
            return ptl_error(PTL_EINVAL, "config schema: bad key name '%s'", name);
        if ((unsigned)k->type > PTL_CFG_FLOAT_LIST || !k->def || !k->doc)
            return ptl_error(PTL_EINVAL, "config schema: %s: bad type, default or doc", name);
        if (k->type == PTL_CFG_ENUM) {
            if (!k->choices || !*k->choices)
                return ptl_error(PTL_EINVAL, "config schema: %s: enum without choices", name);
            char buf[512];
            snprintf(buf, sizeof buf, "%s", k->choices);
            for (char *save = NULL, *c = strtok_r(buf, "|", &save); c;
                 c = strtok_r(NULL, "|", &save))
                if (!plain_word(c) || !strcmp(c, "null") || !strcasecmp(c, "true") ||
                    !strcasecmp(c, "false"))
                    return ptl_error(PTL_EINVAL,
                                     "config schema: %s: choice '%s' is not a plain word", name, c);
        }
        if (is_list(k->type)) {
            if (k->max_items < 0)
                return ptl_error(PTL_EINVAL, "config schema: %s: max_items < 0", name);
            /* item counts: digits separated by single bars ("2", "1|3") */
            const char *c = k->choices;
            int ok = !c || (*c >= '0' && *c <= '9');
            for (; ok && c && *c; c++)
                ok = (*c >= '0' && *c <= '9') || (*c == '|' && c[1] >= '0' && c[1] <= '9');
            if (!ok)
                return ptl_error(PTL_EINVAL, "config schema: %s: item counts '%s' are not N|N",
                                 name, k->choices);
        }
        for (int j = 0; j < i; j++) {
            size_t li = strlen(name), lj = strlen(schema[j].key);
            if (!strcmp(name, schema[j].key))
                return ptl_error(PTL_EINVAL, "config schema: %s: listed twice", name);
            if ((lj < li && !strncmp(name, schema[j].key, lj) && name[lj] == '.') ||
                (li < lj && !strncmp(name, schema[j].key, li) && schema[j].key[li] == '.'))
                return ptl_error(PTL_EINVAL, "config schema: %s and %s: a key cannot be a section",
                                 name, schema[j].key);
        }
    }
    *n_out = n;
    return 0;
}

/* ---------------- "did you mean" ---------------- */

/* Optimal string alignment distance (edits + adjacent swaps); names are short. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 80 || lb > 80)
        return 1000;
    int d[81][81];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The one key or section close to `name` (a typo, or the right name under another section),
 * written into buf; "" when none or several are. */
static void suggest(const struct ptl_config_key *schema, int n, const char *name, char *buf,
                    size_t size)
{
    size_t len = strlen(name);
    int limit = len <= 3 ? 1 : len <= 8 ? 2 : 3;
    int best = 1000, ties = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        /* the key itself and each of its sections */
        char cand[160];
        snprintf(cand, sizeof cand, "%s", schema[i].key);
        for (;;) {
            int d = edit_distance(name, cand);
            if (d < best) {
                best = d;
                ties = 0;
                snprintf(buf, size, "%s", cand);
            } else if (d == best && strcmp(buf, cand)) {
                ties++;
            }
            char *dot = strrchr(cand, '.');
            if (!dot)
                break;
            *dot = '\0';
        }
    }
    if (best <= limit && !ties)
        return;
    buf[0] = '\0';
    /* "lr" -> optim.lr, "train.seed" -> run.seed: the same last part in one key only */
    const char *last = strrchr(name, '.');
    last = last ? last + 1 : name;
    int found = 0;
    for (int i = 0; i < n; i++) {
        const char *kl = strrchr(schema[i].key, '.');
        kl = kl ? kl + 1 : schema[i].key;
        if (!strcmp(kl, last) && strcmp(schema[i].key, name)) {
            found++;
            snprintf(buf, size, "%s", schema[i].key);
        }
    }
    if (found != 1)
        buf[0] = '\0';
}

static int unknown_key(const struct where *w, const struct ptl_config_key *schema, int n, int line,
                       const char *name)
{
    char hint[160];
    suggest(schema, n, name, hint, sizeof hint);
    if (hint[0])
        return fail(w, PTL_EFORMAT, line, name, "unknown key (did you mean %s?)", hint);
    return fail(w, PTL_EFORMAT, line, name,
                "unknown key (the keys are listed in docs/config.md and by --list-keys)");
}

/* ---------------- loading ---------------- */

struct load_ctx {
    struct ptl_config *c;
    struct where w;
    yaml_document_t *doc;
};

static char *join_key(const char *prefix, const char *name)
{
    size_t lp = prefix ? strlen(prefix) : 0, ln = strlen(name);
    char *s = malloc(lp + ln + 2);
    if (!s)
        return NULL;
    if (prefix) {
        memcpy(s, prefix, lp);
        s[lp] = '.';
        memcpy(s + lp + 1, name, ln + 1);
    } else {
        memcpy(s, name, ln + 1);
    }
    return s;
}

static int walk_mapping(struct load_ctx *x, const yaml_node_t *map, const char *prefix);

static int walk_pair(struct load_ctx *x, const yaml_node_t *map, const yaml_node_pair_t *pair,
                     const char *prefix)
{
    struct ptl_config *c = x->c;
    const yaml_node_t *kn = yaml_document_get_node(x->doc, pair->key);
    const yaml_node_t *vn = yaml_document_get_node(x->doc, pair->value);
    int line = node_line(kn, 1);
    if (kn->type != YAML_SCALAR_NODE)
        return fail(&x->w, PTL_EFORMAT, line, prefix ? prefix : "(top level)",
                    "a key must be a name, got %s",
                    kn->type == YAML_MAPPING_NODE ? "a mapping" : "a list");
    const char *kv = (const char *)kn->data.scalar.value;
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
        const yaml_node_t *qn = yaml_document_get_node(x->doc, q->key);
        if (qn->type == YAML_SCALAR_NODE && qn->data.scalar.length == kn->data.scalar.length &&
            !memcmp(qn->data.scalar.value, kv, kn->data.scalar.length)) {
            char *name = join_key(prefix, kv);
            int rc = fail(&x->w, PTL_EFORMAT, line, name ? name : kv,
                          "duplicate key (first at line %d)", node_line(qn, 0));
            free(name);
            return rc;
        }
    }
    char *name = join_key(prefix, kv);
    if (!name)
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    int rc = 0;
    int idx = find_key(c->schema, c->n, name);
    if (idx >= 0) {
        struct cfg_value v;
        if (c->vals[idx].line > 0)
            rc = fail(&x->w, PTL_EFORMAT, line, name, "duplicate key (first at line %d)",
                      c->vals[idx].line);
        else if ((rc = parse_node(&x->w, &c->schema[idx], x->doc, vn, line, &v)) == 0) {
            value_free(&c->vals[idx]);
            c->vals[idx] = v;
            c->vals[idx].line = line;
        }
    } else if (is_section(c->schema, c->n, name)) {
        if (vn->type == YAML_MAPPING_NODE) {
            rc = walk_mapping(x, vn, name);
        } else if (!is_null_scalar(vn)) { /* "optim:" with nothing under it is fine */
            char got[GOT_MAX + 40];
            got_text(got, sizeof got, vn);
            rc = fail(&x->w, PTL_EFORMAT, line, name,
                      "is a section (expected a mapping of %s.* keys, got %s)", name, got);
        }
    } else {
        rc = unknown_key(&x->w, c->schema, c->n, line, name);
    }
    free(name);
    return rc;
}

static int walk_mapping(struct load_ctx *x, const yaml_node_t *map, const char *prefix)
{
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        int rc = walk_pair(x, map, p, prefix);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_file(const char *path, char **out, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ptl_error(PTL_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    int rc = buf ? 0 : ptl_error(PTL_ENOMEM, "config: out of memory");
    while (rc == 0) {
        if (len == cap) {
            char *nb = cap >= (size_t)MAX_FILE_BYTES ? NULL : realloc(buf, 2 * cap + 1);
            if (!nb) {
                rc = cap >= (size_t)MAX_FILE_BYTES
                         ? ptl_error(PTL_EFORMAT, "%s: larger than %ld bytes: not a config file",
                                     path, MAX_FILE_BYTES)
                         : ptl_error(PTL_ENOMEM, "config: out of memory");
                break;
            }
            buf = nb;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = ptl_error(PTL_EIO, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *len_out = len;
    return 0;
}

static int load_file(struct ptl_config *c, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len);
    if (rc < 0)
        return rc;
    struct load_ctx x = {.c = c, .w = {.path = path}};
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) {
        free(buf);
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&p, &doc)) {
        rc = syntax_error(&x.w, NULL, &p, buf, len);
        goto out;
    }
    x.doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        rc = walk_mapping(&x, root, NULL);
    } else if (root && !is_null_scalar(root)) { /* empty file, comments or "---": defaults */
        char got[GOT_MAX + 40];
        got_text(got, sizeof got, root);
        rc = ptl_error(PTL_EFORMAT,
                       "%s:%d: the top level must be a mapping of keys like "
                       "'optim: {lr: 0.1}', got %s",
                       path, node_line(root, 1), got);
    }
    yaml_document_delete(&doc);
    if (rc == 0) { /* one document per file */
        if (!yaml_parser_load(&p, &doc)) {
            rc = syntax_error(&x.w, NULL, &p, buf, len);
            goto out;
        }
        root = yaml_document_get_root_node(&doc);
        if (root)
            rc = ptl_error(PTL_EFORMAT, "%s:%d: a second YAML document (a config is one document)",
                           path, node_line(root, 1) > 1 ? node_line(root, 1) - 1 : 1);
        yaml_document_delete(&doc);
    }
out:
    yaml_parser_delete(&p);
    free(buf);
    return rc;
}

void ptl_config_free(struct ptl_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        if (c->vals)
            value_free(&c->vals[i]);
        if (c->defs)
            value_free(&c->defs[i]);
    }
    free(c->vals);
    free(c->defs);
    free(c->path);
    free(c);
}

int ptl_config_load(struct ptl_config **out, const char *path, const struct ptl_config_key *schema)
{
    *out = NULL;
    int n, rc = check_schema(schema, &n);
    if (rc < 0)
        return rc;
    struct ptl_config *c = calloc(1, sizeof *c);
    if (!c)
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    c->schema = schema;
    c->n = n;
    c->vals = calloc((size_t)(n ? n : 1), sizeof *c->vals);
    c->defs = calloc((size_t)(n ? n : 1), sizeof *c->defs);
    c->path = strdup(path ? path : "(defaults)");
    if (!c->vals || !c->defs || !c->path) {
        ptl_config_free(c);
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    }
    const struct where w = {0};
    for (int i = 0; i < n && rc == 0; i++) {
        rc = parse_text(&w, &schema[i], schema[i].def, &c->defs[i]);
        if (rc < 0 && rc != PTL_ENOMEM) /* a bad table, not bad input */
            rc = ptl_error(PTL_EINVAL, "%s", ptl_error_message());
        if (rc == 0 && value_copy(&c->vals[i], &c->defs[i]) < 0)
            rc = ptl_error(PTL_ENOMEM, "config: out of memory");
    }
    if (rc == 0 && path)
        rc = load_file(c, path);
    if (rc < 0) {
        ptl_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int ptl_config_set(struct ptl_config *c, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return ptl_error(PTL_EINVAL, "--set %s: expected KEY=VALUE (like optim.lr=0.1)",
                         assignment);
    /* "optim.lr = 0.1" in one quoted argument: the spaces are not part of the key */
    const char *ks = assignment, *ke = eq;
    while (ks < ke && (*ks == ' ' || *ks == '\t'))
        ks++;
    while (ke > ks && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    char *key = strndup(ks, (size_t)(ke - ks));
    if (!key)
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    const struct where w = {.assignment = assignment};
    int rc, idx = find_key(c->schema, c->n, key);
    if (idx < 0 && is_section(c->schema, c->n, key)) {
        const char *example = "";
        size_t len = strlen(key);
        for (int i = 0; i < c->n && !*example; i++)
            if (!strncmp(c->schema[i].key, key, len) && c->schema[i].key[len] == '.')
                example = c->schema[i].key;
        rc = fail(&w, PTL_EINVAL, 0, key, "is a section, not a key (set one of its keys, like %s)",
                  example);
    } else if (idx < 0) {
        rc = unknown_key(&w, c->schema, c->n, 0, key);
    } else {
        struct cfg_value v;
        rc = parse_text(&w, &c->schema[idx], eq + 1, &v);
        if (rc == 0) {
            v.line = -1;
            v.origin = strdup(assignment);
            if (!v.origin) {
                value_free(&v);
                rc = ptl_error(PTL_ENOMEM, "config: out of memory");
            } else {
                value_free(&c->vals[idx]);
                c->vals[idx] = v;
            }
        }
    }
    free(key);
    return rc;
}

/* ---------------- writing ---------------- */

/* Double-quoted YAML: escapes for '"', '\', control characters and the characters libyaml
 * folds as line breaks (NEL, LS, PS), so the text reads back byte for byte. */
static void write_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (*p == '\t') {
            fputs("\\t", f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\x%02x", *p);
        } else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* C1 controls, NEL */
            fprintf(f, "\\x%02x", p[1]);
            p++;
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            fputs(p[2] == 0xa8 ? "\\L" : "\\P", f);
            p += 2;
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void write_value(FILE *f, const struct ptl_config_key *k, const struct cfg_value *v)
{
    char num[40];
    switch (k->type) {
    case PTL_CFG_INT:
        fprintf(f, "%ld", v->i);
        break;
    case PTL_CFG_FLOAT:
        format_double(num, sizeof num, v->f, 1);
        fputs(num, f);
        break;
    case PTL_CFG_BOOL:
        fputs(v->b ? "true" : "false", f);
        break;
    case PTL_CFG_STRING:
        write_quoted(f, v->s);
        break;
    case PTL_CFG_ENUM:
        fputs(v->s, f);
        break;
    case PTL_CFG_INT_LIST:
    case PTL_CFG_FLOAT_LIST:
        fputc('[', f);
        for (int i = 0; i < v->n_items; i++) {
            if (k->type == PTL_CFG_INT_LIST)
                snprintf(num, sizeof num, "%lld", (long long)v->items[i]);
            else
                format_double(num, sizeof num, v->items[i], 1);
            fprintf(f, "%s%s", i ? ", " : "", num);
        }
        fputc(']', f);
        break;
    }
}

static int same_double(double a, double b)
{
    return a == b && signbit(a) == signbit(b);
}

static int value_equal(enum ptl_config_type t, const struct cfg_value *a, const struct cfg_value *b)
{
    switch (t) {
    case PTL_CFG_INT:
        return a->i == b->i;
    case PTL_CFG_FLOAT:
        return same_double(a->f, b->f);
    case PTL_CFG_BOOL:
        return a->b == b->b;
    case PTL_CFG_STRING:
    case PTL_CFG_ENUM:
        return !strcmp(a->s, b->s);
    case PTL_CFG_INT_LIST:
    case PTL_CFG_FLOAT_LIST:
        if (a->n_items != b->n_items)
            return 0;
        for (int i = 0; i < a->n_items; i++)
            if (!same_double(a->items[i], b->items[i]))
                return 0;
        return 1;
    }
    return 0;
}

/* Comment text without line breaks. */
static void write_comment_text(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

/* Keys under `prefix` (NULL: all) as nested YAML, sections in the order they first appear. */
static void write_level(FILE *f, const struct ptl_config *c, const char *prefix, int depth)
{
    size_t lp = prefix ? strlen(prefix) + 1 : 0;
    for (int i = 0; i < c->n; i++) {
        const char *key = c->schema[i].key;
        if (prefix && (strncmp(key, prefix, lp - 1) || key[lp - 1] != '.'))
            continue;
        const char *part = key + lp, *dot = strchr(part, '.');
        size_t plen = dot ? (size_t)(dot - part) : strlen(part);
        int seen = 0; /* this part already written with an earlier key? */
        for (int j = 0; j < i && !seen; j++) {
            const char *kj = c->schema[j].key;
            seen = (!prefix || (!strncmp(kj, prefix, lp - 1) && kj[lp - 1] == '.')) &&
                   !strncmp(kj + lp, part, plen) && (kj[lp + plen] == '.' || !kj[lp + plen]);
        }
        if (seen)
            continue;
        if (dot) {
            if (depth == 0 && i > 0)
                fputc('\n', f);
            fprintf(f, "%*s%.*s:\n", 2 * depth, "", (int)plen, part);
            char sub[256];
            snprintf(sub, sizeof sub, "%.*s", (int)(lp + plen), key);
            write_level(f, c, sub, depth + 1);
            continue;
        }
        const struct cfg_value *v = &c->vals[i];
        if (!value_equal(c->schema[i].type, v, &c->defs[i])) {
            fprintf(f, "%*s# changed from the default ", 2 * depth, "");
            write_value(f, &c->schema[i], &c->defs[i]);
            fputs(" (", f);
            if (v->line > 0) {
                write_comment_text(f, c->path);
                fprintf(f, ":%d)\n", v->line);
            } else {
                fputs("--set ", f);
                write_comment_text(f, v->origin ? v->origin : "");
                fputs(")\n", f);
            }
        }
        fprintf(f, "%*s%s: ", 2 * depth, "", part);
        write_value(f, &c->schema[i], v);
        fputc('\n', f);
    }
}

char *ptl_config_text(const struct ptl_config *c)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        ptl_error(PTL_ENOMEM, "config: out of memory");
        return NULL;
    }
    fputs("# ptl configuration: every key with its value (docs/config.md), read from ", f);
    write_comment_text(f, c->path);
    fputs(".\n# \"changed\" comments mark the values that differ from the defaults.\n", f);
    write_level(f, c, NULL, 0);
    if (fclose(f) != 0) {
        free(buf);
        ptl_error(PTL_ENOMEM, "config: out of memory");
        return NULL;
    }
    return buf;
}

int ptl_config_write(const struct ptl_config *c, const char *path)
{
    char *text = ptl_config_text(c);
    if (!text)
        return PTL_ENOMEM;
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(text);
        return ptl_error(PTL_ENOMEM, "config: out of memory");
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = ptl_error(PTL_EIO, "%s: cannot write: %s", path, strerror(errno));
    } else {
        size_t len = strlen(text);
        int bad = fwrite(text, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0;
        int err = errno;
        if (fclose(f) != 0 && !bad) {
            bad = 1;
            err = errno;
        }
        if (bad)
            rc = ptl_error(PTL_EIO, "%s: cannot write: %s", path, strerror(err));
        else if (rename(tmp, path) != 0)
            rc = ptl_error(PTL_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        if (rc < 0)
            unlink(tmp);
    }
    free(tmp);
    free(text);
    return rc;
}

/* ---------------- getters ---------------- */

static const struct cfg_value *get(const struct ptl_config *c, const char *key, const char *fn,
                                   int type_a, int type_b)
{
    int idx = c && key ? find_key(c->schema, c->n, key) : -1;
    if (idx < 0) {
        fprintf(stderr, "ptl: %s(\"%s\"): no such config key (programming error)\n", fn,
                key ? key : "(null)");
        abort();
    }
    int t = (int)c->schema[idx].type;
    if (type_a >= 0 && t != type_a && t != type_b) {
        fprintf(stderr, "ptl: %s(\"%s\"): the key has another type (programming error)\n", fn, key);
        abort();
    }
    return &c->vals[idx];
}

long ptl_config_int(const struct ptl_config *c, const char *key)
{
    return get(c, key, __func__, PTL_CFG_INT, PTL_CFG_INT)->i;
}

double ptl_config_float(const struct ptl_config *c, const char *key)
{
    return get(c, key, __func__, PTL_CFG_FLOAT, PTL_CFG_FLOAT)->f;
}

int ptl_config_bool(const struct ptl_config *c, const char *key)
{
    return get(c, key, __func__, PTL_CFG_BOOL, PTL_CFG_BOOL)->b;
}

const char *ptl_config_string(const struct ptl_config *c, const char *key)
{
    return get(c, key, __func__, PTL_CFG_STRING, PTL_CFG_ENUM)->s;
}

int ptl_config_list(const struct ptl_config *c, const char *key, double *out, int max)
{
    const struct cfg_value *v = get(c, key, __func__, PTL_CFG_INT_LIST, PTL_CFG_FLOAT_LIST);
    for (int i = 0; i < v->n_items && i < max; i++)
        out[i] = v->items[i];
    return v->n_items;
}

int ptl_config_line(const struct ptl_config *c, const char *key)
{
    return get(c, key, __func__, -1, -1)->line;
}

const char *ptl_config_path(const struct ptl_config *c)
{
    return c->path;
}

int ptl_config_error(const struct ptl_config *c, const char *key, const char *fmt, ...)
{
    const struct cfg_value *v = get(c, key, __func__, -1, -1);
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (v->line > 0)
        return ptl_error(PTL_EINVAL, "%s:%d: %s: %s", c->path, v->line, key, msg);
    if (v->line < 0)
        return ptl_error(PTL_EINVAL, "--set %s: %s: %s", v->origin, key, msg);
    return ptl_error(PTL_EINVAL, "%s: %s (default): %s", c->path, key, msg);
}

/* ---------------- the key table ---------------- */

/* A Markdown table cell: '|' would end it. */
static void write_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

void ptl_config_print_keys(const struct ptl_config_key *schema, void *file)
{
    static const char *type_names[] = {"int",  "float",    "bool",      "string",
                                       "enum", "int list", "float list"};
    FILE *f = file;
    fputs("| key | type | default | range / choices | meaning |\n", f);
    fputs("| --- | --- | --- | --- | --- |\n", f);
    for (const struct ptl_config_key *k = schema; k->key; k++) {
        fprintf(f, "| `%s` | %s | `", k->key,
                (unsigned)k->type <= PTL_CFG_FLOAT_LIST ? type_names[k->type] : "?");
        /* the default as config.yaml shows it */
        struct cfg_value v;
        const struct where w = {0};
        char *text = NULL;
        size_t size = 0;
        FILE *mf = open_memstream(&text, &size);
        if (mf && parse_text(&w, k, k->def, &v) == 0) {
            write_value(mf, k, &v);
            value_free(&v);
        } else if (mf) {
            fputs(k->def, mf);
        }
        if (mf && fclose(mf) == 0 && text)
            write_cell(f, text);
        free(text);
        fputs("` | ", f);
        char range[100], counts[64];
        range_text(range, sizeof range, k->min, k->max);
        switch (k->type) {
        case PTL_CFG_INT:
        case PTL_CFG_FLOAT:
            fputs(range[0] ? range : "any", f);
            break;
        case PTL_CFG_BOOL:
            fputs("true, false", f);
            break;
        case PTL_CFG_STRING:
            fputs("any", f);
            break;
        case PTL_CFG_ENUM:
            for (const char *c = k->choices; c && *c;) {
                const char *bar = strchr(c, '|');
                size_t n = bar ? (size_t)(bar - c) : strlen(c);
                fprintf(f, "%s`%.*s`", c == k->choices ? "" : ", ", (int)n, c);
                c = bar ? bar + 1 : c + n;
            }
            break;
        case PTL_CFG_INT_LIST:
        case PTL_CFG_FLOAT_LIST:
            if (k->choices)
                counts_text(counts, sizeof counts, k->choices);
            else
                snprintf(counts, sizeof counts, "at most %d", list_cap(k));
            fprintf(f, "%s item%s%s%s", counts, k->choices && !strcmp(k->choices, "1") ? "" : "s",
                    range[0] ? ", each in " : "", range);
            break;
        }
        fputs(" | ", f);
        write_cell(f, k->doc);
        fputs(" |\n", f);
    }
}
