/* Evaluation of a model on a config's evaluation data: classification top-1/top-5 and mean
 * cross-entropy, or for ReID sources (data.eval_split "query") CMC rank-1/5/10 and mAP of
 * query against gallery with flip-summed, L2-normalised features (method.md). */
#ifndef PTL_TRAIN_EVALUATE_H
#define PTL_TRAIN_EVALUATE_H

#include "ptl/config.h"
#include "ptl/model.h"
#include "train/pipeline.h"

struct ptl_eval_result {
    int reid;          /* 0: classification fields, 1: ReID fields */
    int samples;       /* classification samples, or query count */
    double top1, top5, loss;
    double rank1, rank5, rank10, map;
};

struct ptl_evaluator {
    int reid;
    struct ptl_split_view test;    /* classification eval split, or ReID query */
    struct ptl_split_view gallery; /* ReID only */
};

/* Opens the evaluation split(s) of the config. */
int ptl_evaluator_open(struct ptl_evaluator *e, const struct ptl_config *cfg);
void ptl_evaluator_close(struct ptl_evaluator *e);
/* Runs m in eval mode over the evaluation data. */
int ptl_evaluate(struct ptl_evaluator *e, struct ptl_model *m, const struct ptl_config *cfg,
                 struct ptl_eval_result *r);

#endif
