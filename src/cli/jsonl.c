/* Strict JSON-lines reader for metrics files (see jsonl.h). The grammar is RFC 8259's; what we
 * refuse beyond it: keys repeated in one object, \u0000 in strings, numbers that overflow a
 * double, more than MAX_MEMBERS members or nesting deeper than MAX_DEPTH. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jsonl.h"
#include "ptl/core.h"

enum { MAX_MEMBERS = 1024, MAX_DEPTH = 64, MAX_NUMBER = 400 };

struct parser {
    const char *s;
    size_t len, pos;
    char *arena; /* decoded strings: never longer than the line itself */
    size_t used;
    struct ptl_json_member *m;
    size_t count, cap;
    const char *err; /* what went wrong at pos */
};

static int fail(struct parser *p, const char *why)
{
    p->err = why;
    return -1;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && is_ws(p->s[p->pos]))
        p->pos++;
}

static int peek(const struct parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int hex4(struct parser *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++, p->pos++) {
        int c = peek(p);
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return fail(p, "bad \\u escape (4 hex digits expected)");
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

static void put_utf8(struct parser *p, unsigned cp)
{
    char *o = p->arena + p->used;
    if (cp < 0x80) {
        o[0] = (char)cp, p->used += 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), p->used += 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)), p->used += 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), p->used += 4;
    }
}

/* \uXXXX (p->pos just after the 'u'), with surrogate pairs. Every escape is at least as long
 * as the UTF-8 it decodes to, so the arena cannot overflow. */
static int unicode_escape(struct parser *p)
{
    unsigned cp, lo;
    if (hex4(p, &cp) != 0)
        return -1;
    if (cp == 0)
        return fail(p, "\\u0000 is not allowed in strings");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(p, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "high surrogate not followed by a \\u low surrogate");
        p->pos += 2;
        if (hex4(p, &lo) != 0)
            return -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, "high surrogate not followed by a low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(p, cp);
    return 0;
}

/* A string at p->pos (on the opening quote), decoded into the arena. */
static int parse_string(struct parser *p, const char **out)
{
    static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
    char *start = p->arena + p->used;
    p->pos++;
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return fail(p, "unterminated string");
        if (c < 0x20)
            return fail(p, "control character in string (must be escaped)");
        p->pos++;
        if (c == '"')
            break;
        if (c != '\\') {
            p->arena[p->used++] = (char)c;
            continue;
        }
        c = peek(p);
        const char *e = c > 0 ? strchr(esc_in, c) : NULL;
        p->pos++;
        if (c == 'u') {
            if (unicode_escape(p) != 0)
                return -1;
        } else if (e != NULL) {
            p->arena[p->used++] = esc_out[e - esc_in];
        } else {
            p->pos--;
            return fail(p, "bad escape in string");
        }
    }
    p->arena[p->used++] = '\0';
    *out = start;
    return 0;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* A number per RFC 8259 (no leading zeros, '+', hex, NaN or Infinity). */
static int parse_number(struct parser *p, double *out)
{
    size_t start = p->pos;
    if (peek(p) == '-')
        p->pos++;
    if (peek(p) == '0')
        p->pos++;
    else if (is_digit(peek(p)))
        while (is_digit(peek(p)))
            p->pos++;
    else
        return fail(p, "bad number");
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p)))
            return fail(p, "bad number (digit expected after '.')");
        while (is_digit(peek(p)))
            p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!is_digit(peek(p)))
            return fail(p, "bad number (digit expected in exponent)");
        while (is_digit(peek(p)))
            p->pos++;
    }
    /* strtod on a copy: on the line itself it would read on past the JSON number ("0x1"). */
    char buf[MAX_NUMBER + 1];
    size_t n = p->pos - start;
    if (n > MAX_NUMBER) {
        p->pos = start;
        return fail(p, "number too long");
    }
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v)) {
        p->pos = start;
        return fail(p, "number out of the range of a double");
    }
    *out = v;
    return 0;
}

static int literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "unexpected character (a JSON value was expected)");
    p->pos += n;
    return 0;
}

static int parse_value(struct parser *p, struct ptl_json_member *v, int depth);

/* An array or object below the top level: checked, and its strings decoded then dropped. */
static int parse_nested(struct parser *p, int depth)
{
    int object = p->s[p->pos] == '{';
    char close = object ? '}' : ']';
    if (depth > MAX_DEPTH)
        return fail(p, "nested deeper than 64 levels");
    p->pos++;
    skip_ws(p);
    if (peek(p) == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        size_t mark = p->used;
        struct ptl_json_member v;
        skip_ws(p);
        if (object) {
            const char *key;
            if (peek(p) != '"')
                return fail(p, "expected a string key");
            if (parse_string(p, &key) != 0)
                return -1;
            skip_ws(p);
            if (peek(p) != ':')
                return fail(p, "expected ':' after the key");
            p->pos++;
        }
        if (parse_value(p, &v, depth + 1) != 0)
            return -1;
        p->used = mark;
        skip_ws(p);
        if (peek(p) == close) {
            p->pos++;
            return 0;
        }
        if (peek(p) != ',')
            return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        p->pos++;
    }
}

static int parse_value(struct parser *p, struct ptl_json_member *v, int depth)
{
    skip_ws(p);
    int c = peek(p);
    v->num = 0;
    v->str = NULL;
    switch (c) {
    case '"':
        v->type = PTL_JSON_STRING;
        return parse_string(p, &v->str);
    case '{':
    case '[':
        v->type = PTL_JSON_NESTED;
        return parse_nested(p, depth);
    case 't':
        v->type = PTL_JSON_BOOL, v->num = 1;
        return literal(p, "true");
    case 'f':
        v->type = PTL_JSON_BOOL;
        return literal(p, "false");
    case 'n':
        v->type = PTL_JSON_NULL;
        return literal(p, "null");
    case -1:
        return fail(p, "a JSON value was expected, the line ended");
    default:
        v->type = PTL_JSON_NUMBER;
        if (c == '-' || is_digit(c))
            return parse_number(p, &v->num);
        return fail(p, "unexpected character (a JSON value was expected)");
    }
}

static int add_member(struct parser *p, const struct ptl_json_member *m, size_t key_pos)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->m[i].key, m->key) == 0) {
            p->pos = key_pos;
            return fail(p, "key repeated in the object");
        }
    if (p->count == MAX_MEMBERS)
        return fail(p, "more than 1024 keys in one object");
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 32;
        struct ptl_json_member *nm = realloc(p->m, cap * sizeof *nm);
        if (nm == NULL)
            return fail(p, "out of memory");
        p->m = nm, p->cap = cap;
    }
    p->m[p->count++] = *m;
    return 0;
}

/* The whole line: one object, then only white space. */
static int parse_line(struct parser *p)
{
    p->pos = p->used = p->count = 0;
    skip_ws(p);
    if (peek(p) != '{')
        return fail(p, "expected a JSON object ('{')");
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
    } else {
        for (;;) {
            struct ptl_json_member m;
            skip_ws(p);
            size_t key_pos = p->pos;
            if (peek(p) != '"')
                return fail(p, "expected a string key");
            if (parse_string(p, &m.key) != 0)
                return -1;
            skip_ws(p);
            if (peek(p) != ':')
                return fail(p, "expected ':' after the key");
            p->pos++;
            const char *key = m.key;
            if (parse_value(p, &m, 1) != 0)
                return -1;
            m.key = key;
            if (add_member(p, &m, key_pos) != 0)
                return -1;
            skip_ws(p);
            if (peek(p) == '}') {
                p->pos++;
                break;
            }
            if (peek(p) != ',')
                return fail(p, "expected ',' or '}'");
            p->pos++;
        }
    }
    skip_ws(p);
    if (p->pos != p->len)
        return fail(p, "text after the end of the object");
    return 0;
}

const struct ptl_json_member *ptl_json_get(const struct ptl_json_object *o, const char *key)
{
    for (size_t i = 0; i < o->count; i++)
        if (strcmp(o->members[i].key, key) == 0)
            return &o->members[i];
    return NULL;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_ws(s[i]))
            return 0;
    return 1;
}

int ptl_jsonl_read(const char *path, ptl_jsonl_fn fn, void *ctx, struct ptl_jsonl_stats *stats)
{
    *stats = (struct ptl_jsonl_stats){0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ptl_error(PTL_EIO, "%s: cannot open (%s)", path, strerror(errno));
    char *line = NULL;
    size_t line_cap = 0, arena_cap = 0;
    struct parser p = {0};
    int rc = 0;
    ssize_t n;
    while ((n = getline(&line, &line_cap, f)) > 0) {
        stats->lines++;
        int has_newline = line[n - 1] == '\n';
        if (memchr(line, '\0', (size_t)n) != NULL) {
            rc = ptl_error(PTL_EFORMAT, "%s:%ld: NUL byte in the line (not a text file?)", path,
                           stats->lines);
            break;
        }
        if (blank(line, (size_t)n))
            continue;
        if ((size_t)n + 1 > arena_cap) {
            char *a = realloc(p.arena, (size_t)n + 1);
            if (a == NULL) {
                rc = ptl_error(PTL_ENOMEM, "%s:%ld: out of memory", path, stats->lines);
                break;
            }
            p.arena = a, arena_cap = (size_t)n + 1;
        }
        p.s = line, p.len = (size_t)n;
        if (parse_line(&p) != 0) {
            if (!has_newline) { /* a writer in the middle of this line */
                stats->partial_last = 1;
                break;
            }
            rc = ptl_error(PTL_EFORMAT, "%s:%ld: malformed JSON: %s (column %zu)", path,
                           stats->lines, p.err, p.pos + 1);
            break;
        }
        struct ptl_json_object o = {.line = stats->lines, .count = p.count, .members = p.m};
        stats->objects++;
        rc = fn(ctx, &o);
        if (rc != 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = ptl_error(PTL_EIO, "%s: read error after line %ld (%s)", path, stats->lines,
                       strerror(errno));
    fclose(f);
    free(line);
    free(p.arena);
    free(p.m);
    return rc;
}
