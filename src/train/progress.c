/* metrics.jsonl and the progress line (progress.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ptl/core.h"
#include "train/progress.h"

int ptl_progress_open(struct ptl_progress *p, const char *metrics_path, long total_steps,
                      int log_every)
{
    memset(p, 0, sizeof *p);
    p->term = stderr;
    p->live = isatty(fileno(stderr));
    p->log_every = log_every > 0 ? log_every : 50;
    p->total_steps = total_steps;
    p->t_start = p->t_window = ptl_now();
    if (metrics_path) {
        p->metrics = fopen(metrics_path, "a");
        if (p->metrics == NULL)
            return ptl_error(PTL_EIO, "%s: cannot open for writing: %s", metrics_path,
                             strerror(errno));
    }
    return PTL_OK;
}

static void end_live_line(struct ptl_progress *p)
{
    if (p->line_open) {
        fputc('\n', p->term);
        p->line_open = 0;
    }
}

void ptl_progress_close(struct ptl_progress *p)
{
    end_live_line(p);
    if (p->metrics)
        fclose(p->metrics);
    p->metrics = NULL;
}

/* JSON has no NaN or infinity: those become null. */
static void json_num(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

static void format_eta(char *buf, size_t size, double s)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, size, "?");
    else if (s >= 3600)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

void ptl_progress_step(struct ptl_progress *p, long step, long epoch, double loss, double ce,
                       double triplet, double lr, int images)
{
    double now = ptl_now();
    p->images_window += images;
    double dt = now - p->t_window;
    double ips = dt > 0 ? (double)p->images_window / dt : 0;
    /* metrics.jsonl and non-terminal logs at the same cadence, whatever the terminal */
    int due = step == 1 || step % p->log_every == 0 || step == p->total_steps;
    if (p->metrics && due) {
        fprintf(p->metrics, "{\"kind\":\"train\",\"step\":%ld,\"epoch\":%ld", step, epoch);
        json_num(p->metrics, "loss", loss);
        json_num(p->metrics, "loss_ce", ce);
        json_num(p->metrics, "loss_triplet", triplet);
        json_num(p->metrics, "lr", lr);
        json_num(p->metrics, "images_per_s", ips);
        json_num(p->metrics, "time_s", now - p->t_start);
        fputs("}\n", p->metrics);
        fflush(p->metrics);
    }
    if (!due && !p->live)
        return;
    char eta[32];
    double per_step = (now - p->t_start) / (double)step;
    format_eta(eta, sizeof eta, per_step * (double)(p->total_steps - step));
    fprintf(p->term, "%sepoch %ld step %ld/%ld loss %.4f lr %.3g %.1f img/s ETA %s%s",
            p->live ? "\r" : "", epoch, step, p->total_steps, loss, lr, ips, eta,
            p->live ? "\033[K" : "\n");
    fflush(p->term);
    p->line_open = p->live;
    if (due) { /* a new images/s window */
        p->t_window = now;
        p->images_window = 0;
    }
}

void ptl_progress_eval(struct ptl_progress *p, long step, long epoch,
                       const struct ptl_eval_result *r)
{
    end_live_line(p);
    if (p->metrics) {
        fprintf(p->metrics, "{\"kind\":\"eval\",\"step\":%ld,\"epoch\":%ld,\"samples\":%d", step,
                epoch, r->samples);
        if (r->reid) {
            json_num(p->metrics, "rank1", r->rank1);
            json_num(p->metrics, "rank5", r->rank5);
            json_num(p->metrics, "rank10", r->rank10);
            json_num(p->metrics, "map", r->map);
        } else {
            json_num(p->metrics, "top1", r->top1);
            json_num(p->metrics, "top5", r->top5);
            json_num(p->metrics, "loss", r->loss);
        }
        json_num(p->metrics, "time_s", ptl_now() - p->t_start);
        fputs("}\n", p->metrics);
        fflush(p->metrics);
    }
    if (r->reid)
        fprintf(p->term, "eval epoch %ld step %ld: rank-1 %.4f rank-5 %.4f rank-10 %.4f mAP %.4f "
                         "(%d queries)\n",
                epoch, step, r->rank1, r->rank5, r->rank10, r->map, r->samples);
    else
        fprintf(p->term, "eval epoch %ld step %ld: top-1 %.4f top-5 %.4f loss %.4f (%d samples)\n",
                epoch, step, r->top1, r->top5, r->loss, r->samples);
    fflush(p->term);
}

void ptl_progress_event(struct ptl_progress *p, const char *event, const char *extra)
{
    if (p->metrics == NULL)
        return;
    fprintf(p->metrics, "{\"kind\":\"run\",\"event\":\"%s\"", event);
    json_num(p->metrics, "time_s", ptl_now() - p->t_start);
    if (extra && *extra)
        fprintf(p->metrics, ",%s", extra);
    fputs("}\n", p->metrics);
    fflush(p->metrics);
}

void ptl_progress_note(struct ptl_progress *p, const char *fmt, ...)
{
    end_live_line(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->term, fmt, ap);
    va_end(ap);
    fputc('\n', p->term);
    fflush(p->term);
}
