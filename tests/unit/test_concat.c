/* Unit tests of channel concat / split: layout against index arithmetic, round trips,
 * accumulating backward with NULL entries, finite-difference gradients and argument errors. */
#include <criterion/criterion.h>
#include <string.h>

#include "gradcheck.h"
#include "ptl/core.h"
#include "ptl/ops.h"

enum { N = 2, HW = 5, COUNT = 3, C_TOTAL = 6 };
static const int channels[COUNT] = {1, 3, 2};
static const int offset[COUNT] = {0, 1, 4}; /* first channel of part i in the concatenation */

/* Part i, element (s, ch, j) holds a value that encodes all four indices. */
static float part_value(int i, int s, int ch, int j)
{
    return (float)(1000 * i + 100 * s + 10 * ch + j);
}

Test(concat, forward_layout_and_split_round_trip)
{
    float parts[COUNT][N * 3 * HW];
    for (int i = 0; i < COUNT; i++)
        for (int s = 0; s < N; s++)
            for (int ch = 0; ch < channels[i]; ch++)
                for (int j = 0; j < HW; j++)
                    parts[i][(s * channels[i] + ch) * HW + j] = part_value(i, s, ch, j);
    const float *ins[COUNT] = {parts[0], parts[1], parts[2]};
    float out[N * C_TOTAL * HW]; /* (N, C_total, HW) */
    cr_assert_eq(ptl_concat_forward(out, ins, channels, COUNT, N, HW), PTL_OK);
    for (int i = 0; i < COUNT; i++)
        for (int s = 0; s < N; s++)
            for (int ch = 0; ch < channels[i]; ch++)
                for (int j = 0; j < HW; j++)
                    cr_assert_eq(out[(s * C_TOTAL + offset[i] + ch) * HW + j],
                                 part_value(i, s, ch, j), "part %d s %d ch %d j %d", i, s, ch, j);

    float back[COUNT][N * 3 * HW];
    memset(back, 0, sizeof back);
    float *outs[COUNT] = {back[0], back[1], back[2]};
    cr_assert_eq(ptl_split_forward(outs, out, channels, COUNT, N, HW), PTL_OK);
    for (int i = 0; i < COUNT; i++)
        cr_assert_eq(memcmp(back[i], parts[i], sizeof(float) * N * channels[i] * HW), 0,
                     "split part %d differs from what was concatenated", i);
}

Test(concat, backward_accumulates_and_skips_null)
{
    float d_out[N * C_TOTAL * HW];
    tc_fill(d_out, N * C_TOTAL * HW, 3, -1.0f, 1.0f);
    float d0[N * 1 * HW], d2[N * 2 * HW];
    for (int k = 0; k < N * HW; k++)
        d0[k] = 1.0f;
    memset(d2, 0, sizeof d2);
    float *d_ins[COUNT] = {d0, NULL, d2};
    cr_assert_eq(ptl_concat_backward(d_ins, d_out, channels, COUNT, N, HW), PTL_OK);
    cr_assert_eq(ptl_concat_backward(d_ins, d_out, channels, COUNT, N, HW), PTL_OK);
    for (int s = 0; s < N; s++)
        for (int j = 0; j < HW; j++) {
            cr_assert_float_eq(d0[s * HW + j], 1.0f + 2.0f * d_out[(s * C_TOTAL) * HW + j], 1e-6f);
            for (int ch = 0; ch < 2; ch++)
                cr_assert_float_eq(d2[(s * 2 + ch) * HW + j],
                                   2.0f * d_out[(s * C_TOTAL + 4 + ch) * HW + j], 1e-6f);
        }

    /* split backward: the d_in slice of a NULL part is left as it was. */
    float g0[N * 1 * HW], g1[N * 3 * HW];
    tc_fill(g0, N * HW, 4, -1.0f, 1.0f);
    tc_fill(g1, N * 3 * HW, 5, -1.0f, 1.0f);
    const float *d_outs[COUNT] = {g0, g1, NULL};
    float d_in[N * C_TOTAL * HW];
    for (int k = 0; k < N * C_TOTAL * HW; k++)
        d_in[k] = 0.5f;
    cr_assert_eq(ptl_split_backward(d_in, d_outs, channels, COUNT, N, HW), PTL_OK);
    cr_assert_eq(ptl_split_backward(d_in, d_outs, channels, COUNT, N, HW), PTL_OK);
    for (int s = 0; s < N; s++)
        for (int ch = 0; ch < C_TOTAL; ch++)
            for (int j = 0; j < HW; j++) {
                float want = 0.5f;
                if (ch == 0)
                    want += 2.0f * g0[s * HW + j];
                else if (ch < 4)
                    want += 2.0f * g1[(s * 3 + ch - 1) * HW + j];
                cr_assert_float_eq(d_in[(s * C_TOTAL + ch) * HW + j], want, 1e-6f,
                                   "s %d ch %d j %d", s, ch, j);
            }
    cr_assert_eq(ptl_split_backward(NULL, d_outs, channels, COUNT, N, HW), PTL_OK);
}

/* loss = sum(concat(parts) * r) in double. */
struct concat_ctx {
    const float *const *ins;
    float *out, *r; /* (N, C_total, HW) */
};

static double concat_loss(void *p)
{
    struct concat_ctx *c = p;
    cr_assert_eq(ptl_concat_forward(c->out, c->ins, channels, COUNT, N, HW), PTL_OK);
    return tc_dot(c->out, c->r, N * C_TOTAL * HW);
}

/* loss = sum_i sum(split(x)_i * r_i) in double. */
struct split_ctx {
    const float *in;
    float *const *outs;
    float *const *r;
};

static double split_loss(void *p)
{
    struct split_ctx *c = p;
    cr_assert_eq(ptl_split_forward(c->outs, c->in, channels, COUNT, N, HW), PTL_OK);
    double sum = 0;
    for (int i = 0; i < COUNT; i++)
        sum += tc_dot(c->outs[i], c->r[i], (size_t)N * channels[i] * HW);
    return sum;
}

Test(concat, gradients_match_finite_differences)
{
    float *parts[COUNT], *d_parts[COUNT], *rs[COUNT];
    for (int i = 0; i < COUNT; i++) {
        size_t len = (size_t)N * channels[i] * HW;
        parts[i] = tc_alloc(len);
        d_parts[i] = tc_alloc(len);
        rs[i] = tc_alloc(len);
        tc_fill(parts[i], len, 10 + i, -1.0f, 1.0f);
        tc_fill(rs[i], len, 20 + i, -1.0f, 1.0f);
    }
    float *out = tc_alloc(N * C_TOTAL * HW), *r = tc_alloc(N * C_TOTAL * HW);
    float *d_in = tc_alloc(N * C_TOTAL * HW);
    tc_fill(r, N * C_TOTAL * HW, 30, -1.0f, 1.0f);
    const float *ins[COUNT] = {parts[0], parts[1], parts[2]};

    cr_assert_eq(ptl_concat_backward(d_parts, r, channels, COUNT, N, HW), PTL_OK);
    struct concat_ctx cc = {ins, out, r};
    tc_assert_gradcheck("concat part 0", concat_loss, &cc, parts[0], d_parts[0], N * 1 * HW, 1e-2f,
                        1e-4, 1e-3);
    tc_assert_gradcheck("concat part 1", concat_loss, &cc, parts[1], d_parts[1], N * 3 * HW, 1e-2f,
                        1e-4, 1e-3);

    tc_fill(out, N * C_TOTAL * HW, 40, -1.0f, 1.0f); /* now the split's input */
    const float *r_parts[COUNT] = {rs[0], rs[1], rs[2]};
    cr_assert_eq(ptl_split_backward(d_in, r_parts, channels, COUNT, N, HW), PTL_OK);
    struct split_ctx sc = {out, parts, rs};
    tc_assert_gradcheck("split", split_loss, &sc, out, d_in, N * C_TOTAL * HW, 1e-2f, 1e-4, 1e-3);

    for (int i = 0; i < COUNT; i++) {
        free(parts[i]);
        free(d_parts[i]);
        free(rs[i]);
    }
    free(out);
    free(r);
    free(d_in);
}

Test(concat, bad_arguments_are_errors)
{
    float a[N * 3 * HW] = {0}, out[N * C_TOTAL * HW];
    const float *ins[COUNT] = {a, a, a};
    const float *ins_null[COUNT] = {a, NULL, a};
    float *outs[COUNT] = {out, out, NULL};
    const int bad_channels[COUNT] = {1, 0, 2};

    ptl_error_clear();
    cr_assert_eq(ptl_concat_forward(out, ins, channels, 0, N, HW), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "concat") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_concat_forward(out, ins, bad_channels, COUNT, N, HW), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "channels[1]") != NULL, "message: %s",
              ptl_error_message());
    cr_assert_eq(ptl_concat_forward(out, ins_null, channels, COUNT, N, HW), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "ins[1]") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_concat_forward(out, ins, NULL, COUNT, N, HW), PTL_EINVAL);
    cr_assert_eq(ptl_concat_forward(NULL, ins, channels, COUNT, N, HW), PTL_EINVAL);
    cr_assert_eq(ptl_concat_forward(out, ins, channels, COUNT, 0, HW), PTL_EINVAL);
    cr_assert_eq(ptl_concat_backward(NULL, out, channels, COUNT, N, HW), PTL_EINVAL);
    cr_assert_eq(ptl_split_forward(outs, out, channels, COUNT, N, HW), PTL_EINVAL);
    cr_assert(strstr(ptl_error_message(), "split") != NULL, "message: %s", ptl_error_message());
    cr_assert_eq(ptl_split_forward(outs, out, channels, COUNT, N, -1), PTL_EINVAL);
    cr_assert_eq(ptl_split_backward(out, NULL, channels, COUNT, N, HW), PTL_EINVAL);
}
