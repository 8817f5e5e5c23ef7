/* conv2d (groups 1, NCHW, fp32) as GEMMs on BLIS: forward, backward, shape checks, workspace.
 *
 * With K = C_in*KH*KW and P = H_out*W_out, image n is one GEMM
 *     out_n (C_out, P) = weight (C_out, K) x col_n (K, P),     col_n = im2col(in_n).
 * Backward: d_weight += d_out_n (C_out, P) x col_n^T, and d_in_n += col2im(weight^T x d_out_n).
 *
 * Two schedules, chosen per shape by conv_plan():
 * - per image (large P): the GEMM writes straight into the NCHW output; a 1x1 stride-1 pad-0
 *   conv needs no im2col at all (the input image already is col_n, d_in_n takes the GEMM
 *   result directly).
 * - batched (small P, e.g. ResNet layer4 at 4x2): a chunk of G images is laid side by side in
 *   one (K, G*P) column matrix so BLIS gets a GEMM wide enough to run at speed; the output is
 *   then scattered to NCHW (and d_out gathered the other way). The copies are O(C_out*G*P)
 *   against O(C_out*K*G*P) GEMM flops.
 * The workspace holds one chunk, so it is bounded by the chunk size, not by N.
 *
 * Threads: per-image convs run image-parallel ("lanes") when the thread count T is small (up
 * to the cores this process may run on, and at most PTL_CONV_LANES_MAX): each thread takes
 * whole images with a single-threaded GEMM, in one parallel region per call, so there are no
 * BLIS barriers inside the many small per-image GEMMs (measured in docs/performance.md).
 * d_weight is summed from per-lane copies at the end (1x1 convs split its rows instead). The
 * workspace then holds one column buffer per lane and T - 1 d_weight copies; it is sized for
 * the most lanes the process could use, not for N. Batched shapes, and more threads than that,
 * keep BLIS's own threading.
 *
 * 3x3 stride-1 pad-1 convs with enough channels and tiles take Winograd F(2x2, 3x3) instead
 * (ops/winograd.c: 2.25x fewer multiplications, its own chunked workspace). */
#include "ptl/ops.h"

#include <limits.h>
#include <omp.h>
#include <string.h>

#include "ops/check.h"
#include "ops/gemm.h"
#include "ops/im2col.h"
#include "ops/winograd.h"

/* Images whose output has at least this many pixels get their own GEMM; smaller ones are
 * batched up to about BATCH_COLS GEMM columns per chunk (measured: docs/performance.md).
 * 1x1 stride-1 convs need no im2col per image, so batching them costs a gather and a scatter
 * that per-image GEMMs avoid: they go per image from 128 pixels (ResNet-50's layer3 at
 * 256x128, 2 threads: 85 -> 115 GFLOPS fwd+bwd; at 32 pixels per-image was slower). */
#define PER_IMAGE_MIN_PIXELS 512
#define DIRECT_PER_IMAGE_MIN_PIXELS 128
#define BATCH_COLS 512
/* Most image lanes: beyond this, per-lane buffers cost more memory than BLIS threading saves.
 * A build with -DPTL_CONV_LANES_MAX=1 has no lanes (how docs/performance.md measured them). */
#ifndef PTL_CONV_LANES_MAX
#define PTL_CONV_LANES_MAX 16
#endif

struct conv_plan {
    struct ptl__conv_geom g;
    int n, m;   /* batch, C_out */
    int k;      /* C_in*KH*KW: the GEMM inner dimension */
    int p;      /* H_out*W_out: GEMM columns per image */
    int direct; /* 1x1, stride 1, pad 0: the input is its own column matrix */
    int group;  /* images per GEMM (1 = per-image schedule) */
    int lanes_cap; /* most image lanes the workspace is sized for (1: none) */
};

static int conv_plan_make(const char *op, const struct ptl_conv2d_shape *s, struct conv_plan *pl)
{
    PTL_CHECK(s != NULL, "%s: shape is NULL", op);
    PTL_CHECK(s->n >= 1 && s->c_in >= 1 && s->h >= 1 && s->w >= 1 && s->c_out >= 1 &&
                  s->kh >= 1 && s->kw >= 1,
              "%s: sizes must be positive (n=%d c_in=%d h=%d w=%d c_out=%d kh=%d kw=%d)", op,
              s->n, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw);
    PTL_CHECK(s->stride_h >= 1 && s->stride_w >= 1, "%s: stride %dx%d must be >= 1", op,
              s->stride_h, s->stride_w);
    PTL_CHECK(s->pad_h >= 0 && s->pad_w >= 0, "%s: padding %dx%d must be >= 0", op, s->pad_h,
              s->pad_w);
    long long hp = (long long)s->h + 2LL * s->pad_h, wp = (long long)s->w + 2LL * s->pad_w;
    PTL_CHECK(s->kh <= hp && s->kw <= wp,
              "%s: kernel %dx%d larger than padded input %lldx%lld (input %dx%d, padding %dx%d)",
              op, s->kh, s->kw, hp, wp, s->h, s->w, s->pad_h, s->pad_w);
    long long ho = (hp - s->kh) / s->stride_h + 1, wo = (wp - s->kw) / s->stride_w + 1;
    long long k = (long long)s->c_in * s->kh * s->kw, p = ho * wo;
    /* GEMM sizes and leading dimensions are ints. */
    PTL_CHECK(k <= INT_MAX && p <= INT_MAX && (long long)s->c_out * p <= INT_MAX &&
                  (long long)s->c_in * s->h * s->w <= INT_MAX,
              "%s: shape too large (C_in*KH*KW=%lld, H_out*W_out=%lld)", op, k, p);
    pl->g = (struct ptl__conv_geom){s->c_in,    s->h,     s->w,     s->kh,    s->kw,   s->stride_h,
                                    s->stride_w, s->pad_h, s->pad_w, (int)ho, (int)wo};
    pl->n = s->n;
    pl->m = s->c_out;
    pl->k = (int)k;
    pl->p = (int)p;
    pl->direct = s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 &&
                 s->pad_h == 0 && s->pad_w == 0;
    if (p >= (pl->direct ? DIRECT_PER_IMAGE_MIN_PIXELS : PER_IMAGE_MIN_PIXELS) || s->n == 1) {
        pl->group = 1;
    } else {
        long long grp = (BATCH_COLS + p - 1) / p;
        pl->group = (int)(grp < s->n ? grp : s->n);
    }
    /* Lanes are bounded by the cores this process may use, which no thread setting can
     * exceed at run time, so a workspace sized now stays large enough. */
    int cap = ptl_threads_available();
    cap = cap < PTL_CONV_LANES_MAX ? cap : PTL_CONV_LANES_MAX;
    pl->lanes_cap = pl->group == 1 && s->n >= 2 ? (s->n < cap ? s->n : cap) : 1;
    return PTL_OK;
}

/* Lanes for this call: all T threads when T fits the cap and the images spread evenly enough
 * (a remainder is fine once every lane has several images); else 1 (BLIS threads the GEMMs). */
static int run_lanes(const struct conv_plan *pl)
{
    int t = omp_get_max_threads();
    if (pl->lanes_cap < 2 || t < 2 || t > pl->lanes_cap)
        return 1;
    return pl->n % t == 0 || pl->n >= 4 * t ? t : 1;
}

/* Scratch of one chunk: the column matrix (K, G*P), plus for batched chunks the GEMM's
 * (C_out, G*P) output (forward) or the gathered d_out (backward). */
static size_t plan_workspace(const struct conv_plan *pl)
{
    size_t cols = (size_t)pl->group * pl->p;
    if (pl->group == 1 && pl->direct)
        return 0; /* lanes split d_weight by rows instead of keeping copies */
    if (pl->group == 1)
        return (size_t)pl->lanes_cap * pl->k * cols +
               (size_t)(pl->lanes_cap - 1) * pl->m * pl->k;
    return ((size_t)pl->k + pl->m) * cols;
}

int ptl_conv2d_output_size(const struct ptl_conv2d_shape *s, int *h_out, int *w_out)
{
    struct conv_plan pl;
    int rc = conv_plan_make("conv2d", s, &pl);
    if (rc)
        return rc;
    if (h_out)
        *h_out = pl.g.ho;
    if (w_out)
        *w_out = pl.g.wo;
    return PTL_OK;
}

size_t ptl_conv2d_workspace_floats(const struct ptl_conv2d_shape *s)
{
    struct conv_plan pl;
    if (conv_plan_make("conv2d", s, &pl))
        return 0; /* the op itself reports the bad shape */
    if (ptl__winograd_applies(s))
        return ptl__winograd_workspace_floats(s);
    return plan_workspace(&pl);
}

/* out (cnt, M, P) = tmp (M, cnt*P) regrouped per image, + bias (M) when given. */
static void scatter_out(float *out, const float *tmp, const float *bias, int cnt, int m, int p)
{
    const size_t ld = (size_t)cnt * p;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)cnt * m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int img = 0; img < cnt; img++) {
        for (int o = 0; o < m; o++) {
            const float *src = tmp + o * ld + (size_t)img * p;  /* (P) */
            float *dst = out + ((size_t)img * m + o) * p;       /* (P) */
            float b = bias ? bias[o] : 0.0f;
            for (int j = 0; j < p; j++)
                dst[j] = src[j] + b;
        }
    }
}

/* dyb (M, cnt*P) = d_out (cnt, M, P) laid side by side: the inverse of scatter_out. */
static void gather_dout(float *dyb, const float *d_out, int cnt, int m, int p)
{
    const size_t ld = (size_t)cnt * p;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)cnt * m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int img = 0; img < cnt; img++) {
        for (int o = 0; o < m; o++) {
            const float *src = d_out + ((size_t)img * m + o) * p; /* (P) */
            float *dst = dyb + o * ld + (size_t)img * p;          /* (P) */
            for (int j = 0; j < p; j++)
                dst[j] = src[j];
        }
    }
}

/* out (M, P) += bias (M) broadcast over the pixels of one image. */
static void add_bias(float *out, const float *bias, int m, int p)
{
#pragma omp parallel for schedule(static) if ((size_t)m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int o = 0; o < m; o++) {
        float *row = out + (size_t)o * p; /* (P) */
        for (int j = 0; j < p; j++)
            row[j] += bias[o];
    }
}

/* d_bias (M) += sums of d_out (N, M, P) over N and P; double across images for accuracy. */
static void bias_grad(float *d_bias, const float *d_out, int n, int m, int p)
{
#pragma omp parallel for schedule(static) if ((size_t)n * m * p >= PTL_OMP_MIN_ELEMENTS)
    for (int o = 0; o < m; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            const float *row = d_out + ((size_t)i * m + o) * p; /* (P) */
            float part = 0.0f;
#pragma omp simd reduction(+ : part)
            for (int j = 0; j < p; j++)
                part += row[j];
            acc += part;
        }
        d_bias[o] += (float)acc;
    }
}

/* Per-image forward, image-parallel over `lanes` threads (see the header). */
static void forward_lanes(float *out, const float *in, const float *weight, const float *bias,
                          const struct conv_plan *pl, float *workspace, int lanes)
{
    const int m = pl->m, k = pl->k, p = pl->p;
    const size_t in_img = (size_t)pl->g.c * pl->g.h * pl->g.w, out_img = (size_t)m * p;
#pragma omp parallel num_threads(lanes)
    {
        float *col = workspace + (size_t)omp_get_thread_num() * k * p; /* (K, P) */
#pragma omp for schedule(static)
        for (int i = 0; i < pl->n; i++) {
            const float *x = in + i * in_img;
            float *y = out + i * out_img;
            /* im2col's and add_bias's own parallel loops run on this thread alone (nested). */
            if (!pl->direct)
                ptl__im2col(col, (size_t)p, x, 1, &pl->g);
            /* The shapes were checked by conv_plan_make: the GEMM cannot fail. */
            ptl__sgemm_single(0, 0, m, p, k, 1.0f, weight, k, pl->direct ? x : col, p, 0.0f, y,
                              p);
            if (bias)
                add_bias(y, bias, m, p);
        }
    }
}

/* Per-image backward, image-parallel. d_in: each lane its images. d_weight: for 1x1 direct
 * convs each lane sums all images into its own rows of d_weight (no copies, and the same sums
 * in the same order whatever the lane count); otherwise lane 0 accumulates in place and lanes
 * 1.. into zeroed copies (so each image's im2col is done once), summed into d_weight at the end
 * in lane order: deterministic for a given thread count. */
static void backward_lanes(float *d_in, float *d_weight, const float *d_out, const float *in,
                           const float *weight, const struct conv_plan *pl, float *workspace,
                           int lanes)
{
    const int m = pl->m, k = pl->k, p = pl->p;
    const size_t in_img = (size_t)pl->g.c * pl->g.h * pl->g.w, out_img = (size_t)m * p;
    const size_t mk = (size_t)m * k, col_floats = pl->direct ? 0 : (size_t)k * p;
    float *dw_copies = pl->direct ? NULL : workspace + (size_t)pl->lanes_cap * col_floats;
#pragma omp parallel num_threads(lanes)
    {
        const int lane = omp_get_thread_num();
        float *col = pl->direct ? NULL : workspace + (size_t)lane * col_floats; /* (K, P) */
        float *dw = pl->direct || lane == 0 ? d_weight : dw_copies + (size_t)(lane - 1) * mk;
        if (d_weight && dw != d_weight)
            memset(dw, 0, mk * sizeof *dw);
#pragma omp for schedule(static)
        for (int i = 0; i < pl->n; i++) {
            const float *x = in + i * in_img, *dy = d_out + i * out_img;
            float *dx = d_in ? d_in + i * in_img : NULL;
            if (d_weight && !pl->direct) {
                ptl__im2col(col, (size_t)p, x, 1, &pl->g);
                /* d_weight (M, K) += dy (M, P) x col^T (P, K) */
                ptl__sgemm_single(0, 1, m, k, p, 1.0f, dy, p, col, p, 1.0f, dw, k);
            }
            if (dx && pl->direct) {
                ptl__sgemm_single(1, 0, k, p, m, 1.0f, weight, k, dy, p, 1.0f, dx, p);
            } else if (dx) {
                ptl__sgemm_single(1, 0, k, p, m, 1.0f, weight, k, dy, p, 0.0f, col, p);
                ptl__col2im_add(dx, col, (size_t)p, 1, &pl->g);
            }
        }
        if (d_weight && pl->direct) {
            int lo = (int)((long)m * lane / lanes), hi = (int)((long)m * (lane + 1) / lanes);
            for (int i = 0; i < pl->n && hi > lo; i++)
                ptl__sgemm_single(0, 1, hi - lo, k, p, 1.0f, d_out + i * out_img + (size_t)lo * p,
                                  p, in + i * in_img, p, 1.0f, d_weight + (size_t)lo * k, k);
        } else if (d_weight) {
#pragma omp for schedule(static)
            for (size_t e = 0; e < mk; e++) {
                float acc = d_weight[e];
                for (int l = 1; l < lanes; l++)
                    acc += dw_copies[(size_t)(l - 1) * mk + e];
                d_weight[e] = acc;
            }
        }
    }
}

int ptl_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const struct ptl_conv2d_shape *s, float *workspace)
{
    static const char op[] = "conv2d_forward";
    struct conv_plan pl;
    int rc = conv_plan_make(op, s, &pl);
    if (rc)
        return rc;
    PTL_CHECK_PTR(op, out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, weight);
    const int wino = ptl__winograd_applies(s);
    size_t need = wino ? ptl__winograd_workspace_floats(s) : plan_workspace(&pl);
    PTL_CHECK(workspace != NULL || need == 0,
              "%s: workspace is NULL but this shape needs %zu floats", op, need);
    if (wino)
        return ptl__winograd_forward(out, in, weight, bias, s, workspace);
    const int lanes = run_lanes(&pl);
    if (lanes > 1) {
        forward_lanes(out, in, weight, bias, &pl, workspace, lanes);
        return PTL_OK;
    }
    const int m = pl.m, k = pl.k, p = pl.p;
    const size_t in_img = (size_t)pl.g.c * pl.g.h * pl.g.w, out_img = (size_t)m * p;

    for (int n0 = 0; n0 < pl.n; n0 += pl.group) {
        int cnt = pl.n - n0 < pl.group ? pl.n - n0 : pl.group;
        const float *x = in + n0 * in_img; /* (cnt, C_in, H, W) */
        float *y = out + n0 * out_img;     /* (cnt, C_out, H_out, W_out) */
        if (pl.group == 1) {
            const float *col = x; /* (K, P) */
            if (!pl.direct) {
                ptl__im2col(workspace, (size_t)p, x, 1, &pl.g);
                col = workspace;
            }
            rc = ptl_sgemm(0, 0, m, p, k, 1.0f, weight, k, col, p, 0.0f, y, p);
            if (rc)
                return rc;
            if (bias)
                add_bias(y, bias, m, p);
        } else {
            int cols = cnt * p;
            float *col = workspace;                              /* (K, cnt*P) */
            float *tmp = workspace + (size_t)k * pl.group * p;   /* (M, cnt*P) */
            ptl__im2col(col, (size_t)cols, x, cnt, &pl.g);
            rc = ptl_sgemm(0, 0, m, cols, k, 1.0f, weight, k, col, cols, 0.0f, tmp, cols);
            if (rc)
                return rc;
            scatter_out(y, tmp, bias, cnt, m, p);
        }
    }
    return PTL_OK;
}

int ptl_conv2d_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                        const float *in, const float *weight, const struct ptl_conv2d_shape *s,
                        float *workspace)
{
    static const char op[] = "conv2d_backward";
    struct conv_plan pl;
    int rc = conv_plan_make(op, s, &pl);
    if (rc)
        return rc;
    PTL_CHECK_PTR(op, d_out);
    PTL_CHECK_PTR(op, in);
    PTL_CHECK_PTR(op, weight);
    const int wino = ptl__winograd_applies(s);
    size_t need = wino ? ptl__winograd_workspace_floats(s) : plan_workspace(&pl);
    PTL_CHECK(workspace != NULL || need == 0 || (d_in == NULL && d_weight == NULL),
              "%s: workspace is NULL but this shape needs %zu floats", op, need);
    const int m = pl.m, k = pl.k, p = pl.p;
    const size_t in_img = (size_t)pl.g.c * pl.g.h * pl.g.w, out_img = (size_t)m * p;

    if (d_bias)
        bias_grad(d_bias, d_out, pl.n, m, p);
    if (d_in == NULL && d_weight == NULL)
        return PTL_OK;
    if (wino)
        return ptl__winograd_backward(d_in, d_weight, d_out, in, weight, s, workspace);
    const int lanes = run_lanes(&pl);
    if (lanes > 1) {
        backward_lanes(d_in, d_weight, d_out, in, weight, &pl, workspace, lanes);
        return PTL_OK;
    }

    for (int n0 = 0; n0 < pl.n; n0 += pl.group) {
        int cnt = pl.n - n0 < pl.group ? pl.n - n0 : pl.group;
        const float *x = in + n0 * in_img;     /* (cnt, C_in, H, W) */
        const float *dy = d_out + n0 * out_img; /* (cnt, C_out, H_out, W_out) */
        float *dx = d_in ? d_in + n0 * in_img : NULL;
        if (pl.group == 1) {
            if (d_weight) {
                const float *col = x; /* (K, P) */
                if (!pl.direct) {
                    ptl__im2col(workspace, (size_t)p, x, 1, &pl.g);
                    col = workspace;
                }
                /* d_weight (M, K) += dy (M, P) x col^T (P, K) */
                rc = ptl_sgemm(0, 1, m, k, p, 1.0f, dy, p, col, p, 1.0f, d_weight, k);
                if (rc)
                    return rc;
            }
            if (dx && pl.direct) {
                /* d_in (C_in, P) += weight^T (C_in, M) x dy (M, P): no col2im needed */
                rc = ptl_sgemm(1, 0, k, p, m, 1.0f, weight, k, dy, p, 1.0f, dx, p);
            } else if (dx) {
                /* dcol (K, P) = weight^T x dy, reusing the column buffer */
                rc = ptl_sgemm(1, 0, k, p, m, 1.0f, weight, k, dy, p, 0.0f, workspace, p);
                if (rc == 0)
                    ptl__col2im_add(dx, workspace, (size_t)p, 1, &pl.g);
            }
            if (rc)
                return rc;
        } else {
            int cols = cnt * p;
            float *col = workspace;                            /* (K, cnt*P) */
            float *dyb = workspace + (size_t)k * pl.group * p; /* (M, cnt*P) */
            gather_dout(dyb, dy, cnt, m, p);
            if (d_weight) {
                ptl__im2col(col, (size_t)cols, x, cnt, &pl.g);
                rc = ptl_sgemm(0, 1, m, k, cols, 1.0f, dyb, cols, col, cols, 1.0f, d_weight, k);
                if (rc)
                    return rc;
            }
            if (dx) {
                rc = ptl_sgemm(1, 0, k, cols, m, 1.0f, weight, k, dyb, cols, 0.0f, col, cols);
                if (rc)
                    return rc;
                ptl__col2im_add(dx, col, (size_t)cols, cnt, &pl.g);
            }
        }
    }
    return PTL_OK;
}
