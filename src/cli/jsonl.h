/* A small strict reader of JSON-lines files (one JSON object per line), as written by the
 * training loop's metrics.jsonl. Not a general JSON library: only the top-level members of
 * each object are kept (numbers, strings, booleans, null); nested arrays and objects are
 * checked for syntax and skipped. */
#ifndef PTL_CLI_JSONL_H
#define PTL_CLI_JSONL_H

#include <stddef.h>

enum ptl_json_type {
    PTL_JSON_NULL,
    PTL_JSON_BOOL,
    PTL_JSON_NUMBER,
    PTL_JSON_STRING,
    PTL_JSON_NESTED
};

struct ptl_json_member {
    const char *key; /* decoded, NUL-terminated */
    enum ptl_json_type type;
    double num;      /* PTL_JSON_NUMBER (always finite); PTL_JSON_BOOL: 0 or 1 */
    const char *str; /* PTL_JSON_STRING, decoded */
};

/* The members of one line's object, valid during the callback only. */
struct ptl_json_object {
    long line; /* 1-based line number in the file */
    size_t count;
    const struct ptl_json_member *members;
};

/* The member named key, or NULL. */
const struct ptl_json_member *ptl_json_get(const struct ptl_json_object *o, const char *key);

/* Called for each object; returns 0, or a negative PTL_E* code (with ptl_error()) to stop. */
typedef int (*ptl_jsonl_fn)(void *ctx, const struct ptl_json_object *o);

struct ptl_jsonl_stats {
    long lines;       /* lines read, including blank ones and an ignored partial last line */
    long objects;     /* objects passed to the callback */
    int partial_last; /* 1: the last line had no newline and was not a complete object */
};

/* Reads path line by line and calls fn for each object. Blank lines are skipped. A malformed
 * line is a PTL_EFORMAT error naming path, line and column; a last line without a newline
 * that does not parse (a writer still busy) is ignored and reported in stats. */
int ptl_jsonl_read(const char *path, ptl_jsonl_fn fn, void *ctx, struct ptl_jsonl_stats *stats);

#endif
