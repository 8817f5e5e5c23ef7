/* What a run tells the world while it trains: metrics.jsonl (one JSON object per line, always,
 * flushed per line so a crash loses nothing written) and a progress report on stderr: a live
 * line rewritten in place on a terminal, else one line every run.log_every steps (Slurm logs). */
#ifndef PTL_TRAIN_PROGRESS_H
#define PTL_TRAIN_PROGRESS_H

#include <stdio.h>

#include "train/evaluate.h"

struct ptl_progress {
    FILE *metrics;      /* metrics.jsonl, or NULL */
    FILE *term;         /* stderr */
    int live;           /* term is a terminal */
    int log_every;
    long total_steps;   /* planned, for the ETA */
    double t_start;     /* monotonic seconds */
    double t_window;    /* start of the current images/s window */
    long images_window;
    int line_open;      /* a live line is on the terminal */
};


int ptl_progress_open(struct ptl_progress *p, const char *metrics_path, long total_steps,
                      int log_every);
void ptl_progress_close(struct ptl_progress *p);

/* After each training step (1-based global step). */
void ptl_progress_step(struct ptl_progress *p, long step, long epoch, double loss, double ce,
                       double triplet, double lr, int images);
/* After an evaluation. */
void ptl_progress_eval(struct ptl_progress *p, long step, long epoch,
                       const struct ptl_eval_result *r);
/* A "run" event line ("start", "end") with one free-form JSON fragment of extra fields
 * (e.g. "\"arch\":\"resnet18\""), may be NULL. */
void ptl_progress_event(struct ptl_progress *p, const char *event, const char *extra);
/* Prints a message line on stderr without tearing the live line. */
void ptl_progress_note(struct ptl_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
