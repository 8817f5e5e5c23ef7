/* placeholder */
#ifndef PTL_TRAIN_LOOP_H
#define PTL_TRAIN_LOOP_H
#endif
