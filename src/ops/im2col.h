#ifndef PTL_OPS_IM2COL_H
#define PTL_OPS_IM2COL_H
#endif
