/* ptl plot: draws the training curves of a run's metrics.jsonl into one PNG with cairo.
 *
 * Panels stacked over a shared x axis (the global step): losses (log y when the positive
 * values span more than two decades), learning rate, evaluation metrics; a panel without
 * data is left out. The JSON-lines reading is jsonl.c's; this file collects the series,
 * lays out the axes and draws. The PNG goes to a temporary file renamed into place.
 */
#include "config.h"

#include <cairo.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/jsonl.h"
#include "ptl/core.h"

/* fontconfig comes in with cairo (the toy font API) but is not linked directly: a weak
 * reference, resolved at load time when libcairo brings libfontconfig, NULL otherwise. */
extern void FcFini(void) __attribute__((weak));

static const char plot_usage[] =
    "Usage: ptl plot METRICS.jsonl -o CURVES.png [--width W] [--height H] [--title T]\n"
    "\n"
    "Draws the curves of a training run's metrics file (ptl train writes RUN_DIR/metrics.jsonl)\n"
    "into a PNG: panels stacked over the global step, each left out when its data is absent:\n"
    "  loss           'loss' and every 'loss_*' component of the train lines, and the 'loss'\n"
    "                 of eval lines (markers); log scale when the values span > 2 decades\n"
    "  learning rate  'lr' of the train lines\n"
    "  evaluation     top1, top5, rank1, rank5, rank10, map of the eval lines (markers), 0..1\n"
    "Lines without 'step', other kinds (\"run\") and unknown keys are ignored; a null value is\n"
    "a missing one; a step not above the previous one (a resumed run) replaces the points\n"
    "from that step on. A malformed line is an error, except an unfinished last line (no\n"
    "newline yet: the run is still writing), which is ignored with a note.\n"
    "CURVES.png is written to a temporary file and renamed into place.\n"
    "\n"
    "Options:\n"
    "  -o, --output PNG  file to write\n"
    "  --width W         image width in pixels (default 1000; 320..8192)\n"
    "  --height H        image height in pixels (default 250 per panel plus margins;\n"
    "                    200..8192)\n"
    "  --title T         title (default: the METRICS path; empty: no title)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 a file could not be read, parsed or written, 64 a bad command line.\n";

enum { PANEL_LOSS, PANEL_LR, PANEL_EVAL, NPANELS, MAX_SERIES = 24 };
static const char *const panel_names[NPANELS] = {"loss", "learning rate", "evaluation"};
static const char *const eval_keys[] = {"top1", "top5", "rank1", "rank5", "rank10", "map"};

struct series {
    char *name;
    int panel, rank, order, markers;
    size_t n, cap;
    double *x, *y;
};

struct metrics {
    const char *path;
    struct series s[MAX_SERIES];
    int count;
    long train, eval, no_step, dropped;
};

struct plot_opts {
    const char *input, *output, *title;
    int width, height;
};

static int report(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int report(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ptl plot: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* ---------------- reading the series ---------------- */

static struct series *series_for(struct metrics *m, const char *name, int panel, int rank,
                                 int markers)
{
    for (int i = 0; i < m->count; i++)
        if (m->s[i].panel == panel && strcmp(m->s[i].name, name) == 0)
            return &m->s[i];
    if (m->count == MAX_SERIES) {
        m->dropped++;
        return NULL;
    }
    struct series *s = &m->s[m->count];
    *s = (struct series){.panel = panel, .rank = rank, .order = m->count, .markers = markers};
    s->name = strdup(name);
    if (s->name == NULL)
        return NULL;
    m->count++;
    return s;
}

static int series_add(struct series *s, double x, double y)
{
    /* A step at or below the last one is a resumed run: its points replace the old ones. */
    while (s->n > 0 && s->x[s->n - 1] >= x)
        s->n--;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (nx == NULL)
            return -1;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (ny == NULL)
            return -1;
        s->y = ny, s->cap = cap;
    }
    s->x[s->n] = x, s->y[s->n] = y, s->n++;
    return 0;
}

/* 1 and *out for a number, 0 for null, an error for any other type. */
static int number(const struct metrics *m, long line, const struct ptl_json_member *v, double *out)
{
    if (v->type == PTL_JSON_NULL)
        return 0;
    if (v->type != PTL_JSON_NUMBER)
        return ptl_error(PTL_EFORMAT, "%s:%ld: \"%s\" must be a number", m->path, line, v->key);
    *out = v->num;
    return 1;
}

static int eval_rank(const char *key)
{
    for (size_t i = 0; i < sizeof eval_keys / sizeof *eval_keys; i++)
        if (strcmp(key, eval_keys[i]) == 0)
            return (int)i;
    return -1;
}

static int on_object(void *ctx, const struct ptl_json_object *o)
{
    struct metrics *m = ctx;
    const struct ptl_json_member *kind = ptl_json_get(o, "kind"), *stepv = ptl_json_get(o, "step");
    if (kind == NULL)
        return 0;
    if (kind->type != PTL_JSON_STRING)
        return ptl_error(PTL_EFORMAT, "%s:%ld: \"kind\" must be a string", m->path, o->line);
    int train = strcmp(kind->str, "train") == 0, eval = strcmp(kind->str, "eval") == 0;
    if (!train && !eval)
        return 0;
    train ? m->train++ : m->eval++;
    double step = 0, y = 0;
    int rc = stepv ? number(m, o->line, stepv, &step) : 0;
    if (rc <= 0) {
        m->no_step += rc == 0;
        return rc;
    }
    for (size_t i = 0; i < o->count; i++) {
        const struct ptl_json_member *v = &o->members[i];
        const char *name = v->key;
        int panel, rank;
        if (train && strcmp(name, "loss") == 0)
            panel = PANEL_LOSS, rank = 0;
        else if (train && strncmp(name, "loss_", 5) == 0)
            panel = PANEL_LOSS, rank = 1;
        else if (eval && strcmp(name, "loss") == 0)
            panel = PANEL_LOSS, rank = 2, name = "eval loss";
        else if (train && strcmp(name, "lr") == 0)
            panel = PANEL_LR, rank = 0;
        else if (eval && (rank = eval_rank(name)) >= 0)
            panel = PANEL_EVAL;
        else
            continue;
        if ((rc = number(m, o->line, v, &y)) <= 0) {
            if (rc < 0)
                return rc;
            continue;
        }
        struct series *s = series_for(m, name, panel, rank, eval);
        if (s == NULL && m->count < MAX_SERIES)
            return ptl_error(PTL_ENOMEM, "%s:%ld: out of memory", m->path, o->line);
        if (s != NULL && series_add(s, step, y) != 0)
            return ptl_error(PTL_ENOMEM, "%s:%ld: out of memory", m->path, o->line);
    }
    return 0;
}

static int by_panel(const void *a, const void *b)
{
    const struct series *p = a, *q = b;
    if (p->panel != q->panel)
        return p->panel - q->panel;
    return p->rank != q->rank ? p->rank - q->rank : p->order - q->order;
}

static void metrics_free(struct metrics *m)
{
    for (int i = 0; i < m->count; i++) {
        free(m->s[i].name);
        free(m->s[i].x);
        free(m->s[i].y);
    }
}

/* ---------------- axes ---------------- */

/* lo..hi in data units, or in decades (log10) when log. */
struct axis {
    double lo, hi, step;
    int log;
};

/* 1, 2 or 5 times a power of ten, nearest to span / target (Heckbert's nice numbers). */
static double nice_step(double span, int target)
{
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void axis_linear(struct axis *a, double lo, double hi, int target, int pad)
{
    if (!(hi > lo)) { /* one value: a window around it */
        double d = lo != 0 ? fabs(lo) * 0.1 : 1;
        lo -= d, hi += d;
    } else if (pad) { /* keep curves off the frame, without crossing zero */
        double d = 0.03 * (hi - lo);
        lo = lo >= 0 && lo - d < 0 ? 0 : lo - d;
        hi = hi <= 0 && hi + d > 0 ? 0 : hi + d;
    }
    a->log = 0;
    a->step = nice_step(hi - lo, target);
    a->lo = floor(lo / a->step + 1e-9) * a->step;
    a->hi = ceil(hi / a->step - 1e-9) * a->step;
}

/* Position of v along the axis in 0..1, NAN when it cannot be drawn (<= 0 on a log axis). */
static double axis_frac(const struct axis *a, double v)
{
    if (a->log) {
        if (!(v > 0))
            return NAN;
        v = log10(v);
    }
    return (v - a->lo) / (a->hi - a->lo);
}

/* The y axis of one panel from its data; *any is 0 when the panel has no point. */
static void panel_axis(const struct metrics *m, int panel, int target, struct axis *a, int *any)
{
    double lo = INFINITY, hi = -INFINITY, minpos = INFINITY, maxpos = 0;
    *any = 0;
    for (int i = 0; i < m->count; i++)
        for (size_t j = 0; m->s[i].panel == panel && j < m->s[i].n; j++) {
            double y = m->s[i].y[j];
            *any = 1;
            lo = fmin(lo, y), hi = fmax(hi, y);
            if (y > 0)
                minpos = fmin(minpos, y), maxpos = fmax(maxpos, y);
        }
    if (!*any)
        return;
    if (panel == PANEL_EVAL && lo >= 0 && hi <= 1) {
        a->lo = 0, a->hi = 1, a->log = 0, a->step = nice_step(1, target);
    } else if (panel == PANEL_LOSS && maxpos > 100 * minpos) {
        a->log = 1, a->step = 1;
        a->lo = floor(log10(minpos) - 0.02), a->hi = ceil(log10(maxpos) + 0.02); /* off the frame */
    } else {
        axis_linear(a, lo, hi, target, 1);
    }
}

static void tick_label(const struct axis *a, double v, char *buf, size_t size)
{
    if (a->log) { /* v is a decade */
        int k = (int)lround(v);
        if (k >= -4 && k <= 5)
            snprintf(buf, size, "%g", pow(10, k));
        else
            snprintf(buf, size, "1e%d", k);
        return;
    }
    double maxabs = fmax(fabs(a->lo), fabs(a->hi));
    if (fabs(v) < a->step * 1e-6)
        v = 0; /* no "-0.00" from rounding */
    if (a->step >= 1e-4 && maxabs < 1e6) {
        int dec = a->step >= 1 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
        snprintf(buf, size, "%.*f", dec, v);
    } else {
        int d = (int)(floor(log10(maxabs)) - floor(log10(a->step)));
        snprintf(buf, size, v == 0 ? "0" : "%.*e", d < 0 ? 0 : d > 8 ? 8 : d, v);
    }
}

/* Major ticks: values (decades on a log axis, thinned to about target of them). */
static int ticks(const struct axis *a, int target, double *t, int max)
{
    int n = 0;
    if (a->log) {
        int stride = (int)ceil((a->hi - a->lo) / target);
        stride = stride < 1 ? 1 : stride;
        for (double k = a->lo; k <= a->hi + 1e-9 && n < max; k += stride)
            t[n++] = k;
        return n;
    }
    for (double i = ceil(a->lo / a->step - 1e-9); i <= floor(a->hi / a->step + 1e-9) && n < max;
         i++)
        t[n++] = i * a->step;
    return n;
}

/* ---------------- drawing ---------------- */

static const double palette[][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

struct frame {
    double x0, y0, w, h; /* the plotting area of one panel */
    const struct axis *xa, *ya;
};

static double px(const struct frame *f, double x)
{
    return f->x0 + axis_frac(f->xa, x) * f->w;
}

static double py(const struct frame *f, double y)
{
    return f->y0 + (1 - axis_frac(f->ya, y)) * f->h;
}

/* About one tick per `spacing` pixels of `length`, at least 3, at most the 64 ticks() keeps. */
static int tick_target(double length, double spacing)
{
    return (int)fmin(20, fmax(3, length / spacing));
}

/* Copies src into dst (size > 0) as valid UTF-8, which cairo requires of any text: invalid
 * bytes become '?', and a character that does not fit whole is left out. */
static void utf8_copy(char *dst, size_t size, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t n = 0;
    while (*s) {
        int len = *s < 0x80             ? 1
                  : (*s & 0xE0) == 0xC0 ? 2
                  : (*s & 0xF0) == 0xE0 ? 3
                  : (*s & 0xF8) == 0xF0 ? 4
                                        : 0;
        for (int i = 1; i < len; i++)
            if ((s[i] & 0xC0) != 0x80)
                len = 0;
        if ((len == 2 && *s < 0xC2) || (len == 3 && *s == 0xE0 && s[1] < 0xA0) ||
            (len == 3 && *s == 0xED && s[1] >= 0xA0) || (len == 4 && *s == 0xF0 && s[1] < 0x90) ||
            (len == 4 && (*s > 0xF4 || (*s == 0xF4 && s[1] >= 0x90))))
            len = 0; /* overlong, surrogate or beyond U+10FFFF */
        size_t take = len ? (size_t)len : 1;
        if (n + take >= size)
            break;
        if (len)
            memcpy(dst + n, s, take);
        else
            dst[n] = '?';
        n += take, s += take;
    }
    dst[n] = '\0';
}

/* Text anchored at (x, y): ax 0 left, 0.5 centre, 1 right; ay likewise top, middle, bottom. */
static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &te);
    cairo_font_extents(cr, &fe);
    cairo_move_to(cr, x - te.x_advance * ax, y + fe.ascent - (fe.ascent + fe.descent) * ay);
    cairo_show_text(cr, s);
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

static void set_font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static void line(cairo_t *cr, double x0, double y0, double x1, double y1)
{
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
    cairo_stroke(cr);
}

/* Grid, frame, ticks and tick labels (x labels only under the bottom panel). */
static void draw_axes(cairo_t *cr, const struct frame *f, int bottom, const char *ylabel)
{
    double xt[64], yt[64];
    int tx = tick_target(f->w, 90), ty = tick_target(f->h, 45);
    int nx = ticks(f->xa, tx, xt, 64), ny = ticks(f->ya, ty, yt, 64);
    char buf[64];
    cairo_set_line_width(cr, 1);
    if (f->ya->log && f->ya->hi - f->ya->lo <= 6) { /* minor grid at 2..9 x each decade */
        cairo_set_source_rgb(cr, 0.95, 0.95, 0.95);
        for (double k = f->ya->lo; k < f->ya->hi; k++)
            for (int d = 2; d <= 9; d++) {
                double y = floor(py(f, d * pow(10, k))) + 0.5;
                line(cr, f->x0, y, f->x0 + f->w, y);
            }
    }
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    for (int i = 0; i < nx; i++) {
        double x = floor(f->x0 + axis_frac(f->xa, xt[i]) * f->w) + 0.5;
        line(cr, x, f->y0, x, f->y0 + f->h);
    }
    for (int i = 0; i < ny; i++) {
        double y = floor(f->y0 + (1 - (yt[i] - f->ya->lo) / (f->ya->hi - f->ya->lo)) * f->h) + 0.5;
        line(cr, f->x0, y, f->x0 + f->w, y);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, floor(f->x0) + 0.5, floor(f->y0) + 0.5, floor(f->w), floor(f->h));
    cairo_stroke(cr);
    set_font(cr, 12, 0);
    for (int i = 0; i < ny; i++) {
        double y = floor(f->y0 + (1 - (yt[i] - f->ya->lo) / (f->ya->hi - f->ya->lo)) * f->h) + 0.5;
        line(cr, f->x0 - 4, y, f->x0, y);
        tick_label(f->ya, yt[i], buf, sizeof buf);
        text_at(cr, f->x0 - 7, y, buf, 1, 0.5);
    }
    for (int i = 0; bottom && i < nx; i++) {
        double x = floor(f->x0 + axis_frac(f->xa, xt[i]) * f->w) + 0.5;
        line(cr, x, f->y0 + f->h, x, f->y0 + f->h + 4);
        tick_label(f->xa, xt[i], buf, sizeof buf);
        text_at(cr, x, f->y0 + f->h + 7, buf, 0.5, 0);
    }
    cairo_save(cr);
    cairo_translate(cr, 16, f->y0 + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    set_font(cr, 13, 1);
    text_at(cr, 0, 0, ylabel, 0.5, 0.5);
    cairo_restore(cr);
}

/* The line through a series' points, broken where a point cannot be drawn. A dense series
 * goes in as each pixel column's first, lowest, highest and last point: the same picture,
 * while cairo slows down badly on paths of 10^5 segments. */
static void polyline(cairo_t *cr, const struct frame *f, const struct series *s)
{
    int pen = 0, open = 0, dense = s->n > 4 * f->w;
    double col = 0, fx = 0, fy = 0, lo = 0, hi = 0, lx = 0, ly = 0;
    for (size_t i = 0; i <= s->n; i++) {
        double x = i < s->n ? px(f, s->x[i]) : NAN, y = i < s->n ? py(f, s->y[i]) : NAN;
        if (open && (isnan(y) || floor(x) != col)) { /* the column is complete */
            (pen ? cairo_line_to : cairo_move_to)(cr, fx, fy);
            cairo_line_to(cr, col + 0.5, lo);
            cairo_line_to(cr, col + 0.5, hi);
            cairo_line_to(cr, lx, ly);
            pen = 1, open = 0;
        }
        if (isnan(y)) {
            pen = 0;
        } else if (!dense) {
            (pen ? cairo_line_to : cairo_move_to)(cr, x, y);
            pen = 1;
        } else if (!open) {
            open = 1, col = floor(x), fx = lx = x, fy = ly = lo = hi = y;
        } else {
            lo = fmin(lo, y), hi = fmax(hi, y), lx = x, ly = y;
        }
    }
}

static void draw_series(cairo_t *cr, const struct frame *f, const struct series *s, int colour)
{
    const double *c = palette[colour % 10];
    cairo_save(cr);
    /* Clipped a little outside the frame: markers on it are drawn whole. */
    cairo_rectangle(cr, f->x0 - 5, f->y0 - 5, f->w + 10, f->h + 10);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, s->markers ? 1.8 : 1.5);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    polyline(cr, f, s);
    cairo_stroke(cr);
    for (size_t i = 0; (s->markers || s->n == 1) && i < s->n; i++) {
        double y = py(f, s->y[i]);
        if (isnan(y))
            continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, px(f, s->x[i]), y, 3.5, 0, 2 * M_PI);
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
}

/* How many points of the panel (and points along its lines; about 16000 per series at most)
 * fall in the box. */
static long crowding(const struct frame *f, const struct series *s, int n, double bx, double by,
                     double bw, double bh)
{
    long hits = 0;
    for (int k = 0; k < n; k++) {
        size_t stride = s[k].n / 2000 + 1;
        for (size_t i = 0; i < s[k].n; i += stride) {
            size_t j = i + stride < s[k].n ? i + stride : s[k].n - 1;
            double x0 = px(f, s[k].x[i]), y0 = py(f, s[k].y[i]);
            double x1 = px(f, s[k].x[j]), y1 = py(f, s[k].y[j]);
            for (int t = 0; t < (j > i ? 8 : 1); t++) {
                double x = x0 + t / 8.0 * (x1 - x0), y = y0 + t / 8.0 * (y1 - y0);
                hits += x >= bx && x <= bx + bw && y >= by && y <= by + bh;
            }
        }
    }
    return hits;
}

/* The legend in the corner of the panel where it hides the fewest points. */
static void draw_legend(cairo_t *cr, const struct frame *f, const struct series *s, int n)
{
    char names[MAX_SERIES][96];
    double w = 0, row = 17;
    set_font(cr, 12, 0);
    for (int k = 0; k < n; k++) {
        int hidden = f->ya->log;
        for (size_t i = 0; hidden && i < s[k].n; i++)
            hidden = !(s[k].y[i] > 0);
        utf8_copy(names[k], sizeof names[k] - 24, s[k].name);
        strcat(names[k], hidden ? " (\u2264 0, not shown)" : "");
        w = fmax(w, text_width(cr, names[k]));
    }
    double bw = w + 48, bh = n * row + 10, best_x = 0, best_y = 0;
    long best = LONG_MAX;
    for (int corner = 0; corner < 4; corner++) {
        double bx = corner & 1 ? f->x0 + 8 : f->x0 + f->w - bw - 8;
        double by = corner & 2 ? f->y0 + f->h - bh - 8 : f->y0 + 8;
        long hits = crowding(f, s, n, bx, by, bw, bh);
        if (hits < best)
            best = hits, best_x = bx, best_y = by;
    }
    cairo_rectangle(cr, floor(best_x) + 0.5, floor(best_y) + 0.5, floor(bw), floor(bh));
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int k = 0; k < n; k++) {
        const double *c = palette[k % 10];
        double y = best_y + 5 + (k + 0.5) * row;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        line(cr, best_x + 8, y, best_x + 32, y);
        if (s[k].markers) {
            cairo_arc(cr, best_x + 20, y, 3.5, 0, 2 * M_PI);
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, best_x + 40, y, names[k], 0, 0.5);
    }
}

/* The title centred at (x, y), smaller or cut at the start (a path's end says most) to fit. */
static void draw_title(cairo_t *cr, const char *title, int width, double x, double y)
{
    const char *t = title;
    char buf[512];
    utf8_copy(buf, sizeof buf, t);
    set_font(cr, 16, 1);
    double w = text_width(cr, buf);
    if (w > width - 16)
        set_font(cr, fmax(10, 16 * (width - 16) / w), 1);
    while (text_width(cr, buf) > width - 16 && *t) {
        do /* drop one character */
            t++;
        while ((*t & 0xC0) == 0x80);
        memcpy(buf, "\u2026", 3);
        utf8_copy(buf + 3, sizeof buf - 3, t);
    }
    w = text_width(cr, buf);
    x = fmin(fmax(x, 8 + w / 2), width - 8 - w / 2);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, x, y, buf, 0.5, 0.5);
}

/* Draws everything on a new surface; a cairo failure is reported as an error. */
static int render(const struct metrics *m, const struct plot_opts *o, const int *panels, int np,
                  cairo_surface_t **out)
{
    int top = o->title[0] ? 42 : 14, bottom = 46, gap = 22;
    int height = o->height ? o->height : top + bottom + np * 250 + (np - 1) * gap;
    double ph = (double)(height - top - bottom - (np - 1) * gap) / np;
    if (ph < 70)
        return report(PTL_EXIT_USAGE, "--height %d is too small for %d panels (at least %d)",
                      height, np, top + bottom + (np - 1) * gap + 70 * np);
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, o->width, height);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    /* The shared x axis and each panel's y axis; the left margin fits the widest label. */
    struct axis xa, ya[NPANELS];
    double xlo = INFINITY, xhi = -INFINITY, left = 0;
    char buf[64];
    for (int i = 0; i < m->count; i++)
        for (size_t j = 0; j < m->s[i].n; j++)
            xlo = fmin(xlo, m->s[i].x[j]), xhi = fmax(xhi, m->s[i].x[j]);
    set_font(cr, 12, 0);
    for (int p = 0; p < np; p++) {
        int any, ty = tick_target(ph, 45);
        panel_axis(m, panels[p], ty, &ya[p], &any);
        double yt[64];
        for (int i = 0, n = ticks(&ya[p], ty, yt, 64); i < n; i++) {
            tick_label(&ya[p], yt[i], buf, sizeof buf);
            left = fmax(left, text_width(cr, buf));
        }
    }
    left += 44;
    axis_linear(&xa, xlo, xhi, tick_target(o->width - left - 30, 90), 0);
    if (xa.step < 1) { /* steps are whole numbers */
        xa.step = 1, xa.lo = floor(xlo), xa.hi = ceil(xhi);
        if (xa.lo == xa.hi)
            xa.lo -= 1, xa.hi += 1;
    }
    for (int p = -1; p < np; p++) {
        const struct axis *a = p < 0 ? &xa : &ya[p];
        if (!isfinite(a->lo) || !isfinite(a->hi) || !isfinite(a->step) || !(a->hi > a->lo)) {
            cairo_destroy(cr);
            cairo_surface_destroy(surf);
            return report(1, "%s: the %s values span more than a double holds", m->path,
                          p < 0 ? "step" : panel_names[panels[p]]);
        }
    }
    tick_label(&xa, xa.hi, buf, sizeof buf);
    double right = fmax(20, text_width(cr, buf) / 2 + 6), pw = o->width - left - right;
    if (pw < 100) {
        cairo_destroy(cr);
        cairo_surface_destroy(surf);
        return report(PTL_EXIT_USAGE, "--width %d is too small for the axis labels", o->width);
    }

    if (o->title[0])
        draw_title(cr, o->title, o->width, left + pw / 2, top / 2.0);
    for (int p = 0, first = 0; p < np; p++) {
        struct frame f = {left, top + p * (ph + gap), pw, ph, &xa, &ya[p]};
        int n = 0;
        while (first + n < m->count && m->s[first + n].panel == panels[p])
            n++;
        draw_axes(cr, &f, p == np - 1, panel_names[panels[p]]);
        for (int k = 0; k < n; k++)
            draw_series(cr, &f, &m->s[first + k], k);
        draw_legend(cr, &f, &m->s[first], n);
        first += n;
    }
    set_font(cr, 13, 1);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, left + pw / 2, height - 4, "step", 0.5, 1);

    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(surf);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        return report(1, "cairo: %s (drawing a %dx%d image)", cairo_status_to_string(st), o->width,
                      height);
    }
    *out = surf;
    return 0;
}

/* ---------------- writing ---------------- */

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length)
{
    return fwrite(data, 1, length, closure) == length ? CAIRO_STATUS_SUCCESS
                                                      : CAIRO_STATUS_WRITE_ERROR;
}

/* The PNG to path, replaced whole or not at all. */
static int write_png(cairo_surface_t *surf, const char *path)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 8);
    if (tmp == NULL)
        return report(1, "out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".XXXXXX", 8);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return report(1, "%s: cannot create (%s)", path, strerror(e));
    }
    mode_t mask = umask(0);
    umask(mask);
    FILE *f = fchmod(fd, 0666 & ~mask) == 0 ? fdopen(fd, "wb") : NULL;
    cairo_status_t st = CAIRO_STATUS_WRITE_ERROR;
    int e = 0;
    if (f != NULL) {
        st = cairo_surface_write_to_png_stream(surf, png_write, f);
        e = ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0 ? errno : 0;
        if (fclose(f) != 0 && e == 0)
            e = errno;
    } else {
        e = errno;
        close(fd);
    }
    if (st == CAIRO_STATUS_SUCCESS && e == 0 && rename(tmp, path) != 0)
        e = errno;
    int rc = 0;
    if (st != CAIRO_STATUS_SUCCESS || e != 0) {
        unlink(tmp);
        rc = e != 0 ? report(1, "%s: cannot write (%s)", path, strerror(e))
                    : report(1, "%s: cairo: %s", path, cairo_status_to_string(st));
    }
    free(tmp);
    return rc;
}

/* ---------------- command line ---------------- */

static int parse_size(const char *name, const char *v, int lo, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < lo || x > 8192)
        return report(PTL_EXIT_USAGE, "%s %s: expected an integer in %d..8192", name, v, lo);
    *out = (int)x;
    return 0;
}

static int parse_args(int argc, char **argv, struct plot_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name = NULL, *v = NULL;
        static const char *const valued[] = {"--output", "--width", "--height", "--title", "-o"};
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++) {
            size_t n = strlen(valued[j]);
            if (strncmp(a, valued[j], n) == 0 && (a[n] == '\0' || (a[n] == '=' && j < 4))) {
                name = valued[j];
                v = a[n] == '=' ? a + n + 1 : i + 1 < argc ? argv[++i] : NULL;
            }
        }
        if (name == NULL && a[0] == '-' && a[1] != '\0')
            return report(PTL_EXIT_USAGE, "unknown option '%s' (see ptl plot --help)", a);
        if (name == NULL) {
            if (o->input)
                return report(PTL_EXIT_USAGE, "one METRICS.jsonl expected, got '%s' and '%s'",
                              o->input, a);
            o->input = a;
            continue;
        }
        if (v == NULL || (v[0] == '\0' && strcmp(name, "--title") != 0))
            return report(PTL_EXIT_USAGE, "%s needs a value", name);
        if (strcmp(name, "--width") == 0 || strcmp(name, "--height") == 0) {
            if (parse_size(name, v, name[2] == 'w' ? 320 : 200,
                           name[2] == 'w' ? &o->width : &o->height) != 0)
                return PTL_EXIT_USAGE;
        } else if (strcmp(name, "--title") == 0) {
            o->title = v;
        } else {
            o->output = v;
        }
    }
    if (o->input == NULL)
        return report(PTL_EXIT_USAGE, "METRICS.jsonl is required (see ptl plot --help)");
    if (o->output == NULL)
        return report(PTL_EXIT_USAGE, "-o CURVES.png is required (see ptl plot --help)");
    struct stat si, so;
    if (strcmp(o->input, o->output) == 0 ||
        (stat(o->input, &si) == 0 && stat(o->output, &so) == 0 && si.st_dev == so.st_dev &&
         si.st_ino == so.st_ino))
        return report(PTL_EXIT_USAGE, "-o %s is the metrics file: refusing to overwrite it",
                      o->output);
    return 0;
}

static int plot(const struct plot_opts *o)
{
    struct metrics m = {.path = o->input};
    struct ptl_jsonl_stats st;
    int rc = 0, panels[NPANELS], np = 0;
    if (ptl_jsonl_read(o->input, on_object, &m, &st) != 0) {
        rc = report(1, "%s", ptl_error_message());
        goto done;
    }
    if (st.partial_last)
        report(0, "note: %s:%ld: unfinished last line (no newline: a run still writing?), ignored",
               o->input, st.lines);
    if (st.lines == 0) {
        rc = report(1, "%s: empty file, no metrics to plot", o->input);
        goto done;
    }
    if (m.train == 0) {
        rc = report(1, "%s: no \"train\" lines among its %ld lines, nothing to plot", o->input,
                    st.lines);
        goto done;
    }
    if (m.no_step)
        report(0, "note: %s: %ld train/eval lines without \"step\" ignored", o->input, m.no_step);
    if (m.dropped)
        report(0, "note: %s: more than %d series, the others are not drawn", o->input, MAX_SERIES);
    qsort(m.s, (size_t)m.count, sizeof *m.s, by_panel);
    for (int p = 0; p < NPANELS; p++)
        for (int i = 0; i < m.count; i++)
            if (m.s[i].panel == p && m.s[i].n > 0) {
                panels[np++] = p;
                break;
            }
    if (np == 0) {
        rc =
            report(1, "%s: no loss, lr or evaluation values in its train and eval lines", o->input);
        goto done;
    }
    cairo_surface_t *surf = NULL;
    rc = render(&m, o, panels, np, &surf);
    if (rc == 0) {
        rc = write_png(surf, o->output);
        if (rc == 0)
            printf("ptl plot: %s: %ld train and %ld eval lines, %d panel%s -> %s (%dx%d)\n",
                   o->input, m.train, m.eval, np, np > 1 ? "s" : "", o->output,
                   cairo_image_surface_get_width(surf), cairo_image_surface_get_height(surf));
        cairo_surface_destroy(surf);
    }
done:
    metrics_free(&m);
    /* Free cairo's font caches and fontconfig's configuration so that leak checkers see a
     * clean exit (valgrind reports fontconfig's parsed config as lost otherwise). */
    cairo_debug_reset_static_data();
    if (FcFini)
        FcFini();
    return rc;
}

int ptl_cli_plot(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(plot_usage, stdout);
            return 0;
        }
    struct plot_opts o = {.width = 1000};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (o.title == NULL)
        o.title = o.input;
    return plot(&o);
}
