/* Unit tests of the samplers (shuffle and P x K) and of the per-sample augmentation.
 *
 * Samplers: permutation and pool mapping, determinism per (seed, epoch), epoch and seed
 * dependence, the dropped tail, P x K composition (P distinct identities x K images, without
 * replacement whenever an identity has K images), and the argument errors.
 * Augmentation: exact flip / pad + crop / erase / normalise on small known images, bilinear
 * resize against values from torch.nn.functional.interpolate, determinism per (seed, key),
 * thread independence, and the argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"
#include "ptl/data.h"

/* ----------------------------------------------------------------- helpers ---------------- */

static void init_ok(struct ptl_sampler *s, enum ptl_sampler_kind kind, uint64_t seed, int batch,
                    int p, int k, const int32_t *pool, const int32_t *labels, int n)
{
    int rc = ptl_sampler_init(s, kind, seed, batch, p, k, pool, labels, n);
    cr_assert_eq(rc, PTL_OK, "sampler_init: %s", ptl_error_message());
}

static void epoch_ok(struct ptl_sampler *s, long e)
{
    int rc = ptl_sampler_set_epoch(s, e);
    cr_assert_eq(rc, PTL_OK, "set_epoch(%ld): %s", e, ptl_error_message());
}

/* Copy of the whole order of the current epoch (batches_per_epoch * batch entries). */
static int32_t *order_copy(const struct ptl_sampler *s)
{
    size_t n = (size_t)s->batches_per_epoch * (size_t)s->batch;
    int32_t *o = malloc(sizeof *o * n);
    cr_assert_not_null(o);
    for (int b = 0; b < s->batches_per_epoch; b++) {
        const int32_t *x = ptl_sampler_batch(s, b);
        cr_assert_not_null(x, "batch %d", b);
        memcpy(o + (size_t)b * (size_t)s->batch, x, sizeof *o * (size_t)s->batch);
    }
    return o;
}

/* Pool of n dataset indices that are not positions (1000 + 3i), so that returning a pool
 * position instead of the dataset index is caught. */
static int32_t *make_pool(int n)
{
    int32_t *p = malloc(sizeof *p * (size_t)n);
    cr_assert_not_null(p);
    for (int i = 0; i < n; i++)
        p[i] = 1000 + 3 * i;
    return p;
}

static int pool_pos(int32_t idx)
{
    return (idx - 1000) / 3;
}

/* ------------------------------------------------------------ shuffle sampler ------------- */

Test(shuffle, is_a_permutation_of_the_pool_without_the_tail)
{
    enum { N = 103, B = 10 };
    int32_t *pool = make_pool(N);
    struct ptl_sampler s;
    init_ok(&s, PTL_SAMPLER_SHUFFLE, 42, B, 0, 0, pool, NULL, N);
    cr_assert_eq(s.batches_per_epoch, N / B);
    cr_assert_eq(s.epoch, -1);
    cr_expect_null(ptl_sampler_batch(&s, 0), "no batch before the first epoch");
    for (long e = 0; e < 5; e++) {
        epoch_ok(&s, e);
        int32_t *o = order_copy(&s);
        int seen[N] = {0};
        for (int i = 0; i < (N / B) * B; i++) {
            cr_assert(o[i] >= 1000 && (o[i] - 1000) % 3 == 0 && pool_pos(o[i]) < N,
                      "epoch %ld entry %d = %d is not a pool index", e, i, (int)o[i]);
            cr_assert_eq(seen[pool_pos(o[i])]++, 0, "epoch %ld: %d appears twice", e, (int)o[i]);
        }
        free(o);
    }
    cr_expect_null(ptl_sampler_batch(&s, N / B));
    cr_expect_null(ptl_sampler_batch(&s, -1));
    ptl_sampler_free(&s);
    free(pool);
}

Test(shuffle, same_seed_and_epoch_same_order_others_differ)
{
    enum { N = 64, B = 8 };
    int32_t *pool = make_pool(N);
    struct ptl_sampler a, b, c;
    init_ok(&a, PTL_SAMPLER_SHUFFLE, 7, B, 0, 0, pool, NULL, N);
    init_ok(&b, PTL_SAMPLER_SHUFFLE, 7, B, 0, 0, pool, NULL, N);
    init_ok(&c, PTL_SAMPLER_SHUFFLE, 8, B, 0, 0, pool, NULL, N);
    epoch_ok(&a, 3);
    int32_t *a3 = order_copy(&a);
    /* b reaches epoch 3 through other epochs: the order depends on (seed, epoch) alone. */
    epoch_ok(&b, 9);
    int32_t *b9 = order_copy(&b);
    epoch_ok(&b, 3);
    epoch_ok(&b, 3); /* idempotent */
    int32_t *b3 = order_copy(&b);
    cr_expect_arr_eq(a3, b3, sizeof(int32_t) * N, "same seed and epoch, different order");
    cr_expect(memcmp(a3, b9, sizeof(int32_t) * N) != 0, "epochs 3 and 9 give the same order");
    epoch_ok(&c, 3);
    int32_t *c3 = order_copy(&c);
    cr_expect(memcmp(a3, c3, sizeof(int32_t) * N) != 0, "seeds 7 and 8 give the same order");
    /* Consecutive epochs all differ. */
    int32_t *prev = NULL;
    for (long e = 0; e < 10; e++) {
        epoch_ok(&a, e);
        int32_t *o = order_copy(&a);
        if (prev)
            cr_expect(memcmp(prev, o, sizeof(int32_t) * N) != 0, "epochs %ld, %ld equal", e - 1, e);
        free(prev);
        prev = o;
    }
    free(prev);
    free(a3);
    free(b3);
    free(b9);
    free(c3);
    ptl_sampler_free(&a);
    ptl_sampler_free(&b);
    ptl_sampler_free(&c);
    free(pool);
}

/* The dropped tail is drawn anew each epoch: over enough epochs every sample is used. */
Test(shuffle, dropped_tail_changes_between_epochs)
{
    enum { N = 10, B = 4 };
    int32_t *pool = make_pool(N);
    struct ptl_sampler s;
    init_ok(&s, PTL_SAMPLER_SHUFFLE, 1, B, 0, 0, pool, NULL, N);
    cr_assert_eq(s.batches_per_epoch, 2);
    int used[N] = {0};
    for (long e = 0; e < 30; e++) {
        epoch_ok(&s, e);
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < B; i++)
                used[pool_pos(ptl_sampler_batch(&s, b)[i])]++;
    }
    for (int i = 0; i < N; i++)
        cr_expect(used[i] > 0, "sample %d never used in 30 epochs", i);
    ptl_sampler_free(&s);
    free(pool);
}

/* Each pool entry lands first about equally often (a biased shuffle would not). */
Test(shuffle, first_position_is_uniform)
{
    enum { N = 5, EPOCHS = 5000 };
    int32_t *pool = make_pool(N);
    struct ptl_sampler s;
    init_ok(&s, PTL_SAMPLER_SHUFFLE, 99, N, 0, 0, pool, NULL, N);
    int count[N] = {0};
    for (long e = 0; e < EPOCHS; e++) {
        epoch_ok(&s, e);
        count[pool_pos(ptl_sampler_batch(&s, 0)[0])]++;
    }
    /* Expected 1000 each, sd ~28: 6 sd bounds. */
    for (int i = 0; i < N; i++)
        cr_expect(count[i] > 830 && count[i] < 1170, "entry %d first %d times of %d", i, count[i],
                  EPOCHS);
    ptl_sampler_free(&s);
    free(pool);
}

Test(shuffle, argument_errors)
{
    int32_t pool[4] = {0, 1, 2, 3}, bad[3] = {0, -5, 2};
    struct ptl_sampler s;
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_SHUFFLE, 1, 5, 0, 0, pool, NULL, 4), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "smaller than one batch"), "%s", ptl_error_message());
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_SHUFFLE, 1, 0, 0, 0, pool, NULL, 4), PTL_EINVAL);
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_SHUFFLE, 1, 1, 0, 0, pool, NULL, 0), PTL_EINVAL);
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_SHUFFLE, 1, 1, 0, 0, bad, NULL, 3), PTL_ERANGE);
    cr_expect(strstr(ptl_error_message(), "entry 1"), "%s", ptl_error_message());
    cr_expect_eq(ptl_sampler_init(&s, (enum ptl_sampler_kind)7, 1, 1, 0, 0, pool, NULL, 4),
                 PTL_EINVAL);
    init_ok(&s, PTL_SAMPLER_SHUFFLE, 1, 2, 0, 0, pool, NULL, 4);
    cr_expect_eq(ptl_sampler_set_epoch(&s, -1), PTL_EINVAL);
    ptl_sampler_free(&s);
    ptl_sampler_free(&s); /* a freed sampler can be freed again */
    cr_expect_eq(ptl_sampler_set_epoch(&s, 0), PTL_EINVAL);
}

/* ------------------------------------------------------------------ P x K sampler --------- */

/* 11 identities with labels 100 + 7 * id (not contiguous), id i has COUNTS[i] images,
 * interleaved in the pool. */
static const int COUNTS[] = {1, 2, 3, 4, 4, 5, 6, 9, 2, 12, 4};
enum { N_IDS = 11, K = 4, P = 3 };

static int make_pk_pool(int32_t **pool, int32_t **labels)
{
    int n = 0;
    for (int i = 0; i < N_IDS; i++)
        n += COUNTS[i];
    *pool = make_pool(n);
    *labels = malloc(sizeof **labels * (size_t)n);
    cr_assert_not_null(*labels);
    int left[N_IDS], pos = 0;
    memcpy(left, COUNTS, sizeof left);
    while (pos < n) /* round-robin so an identity's images are not contiguous */
        for (int i = 0; i < N_IDS; i++)
            if (left[i]-- > 0)
                (*labels)[pos++] = 100 + 7 * i;
    return n;
}

Test(pk, batches_hold_p_distinct_identities_times_k)
{
    int32_t *pool, *labels;
    int n = make_pk_pool(&pool, &labels);
    struct ptl_sampler s;
    init_ok(&s, PTL_SAMPLER_PK, 5, P * K, P, K, pool, labels, n);
    cr_assert_eq(s.batches_per_epoch, N_IDS / P);
    int id_used_over_epochs[N_IDS] = {0};
    int repeats_small = 0;
    for (long e = 0; e < 20; e++) {
        epoch_ok(&s, e);
        int id_seen[N_IDS] = {0};
        for (int b = 0; b < s.batches_per_epoch; b++) {
            const int32_t *x = ptl_sampler_batch(&s, b);
            for (int g = 0; g < P; g++) {
                /* K consecutive entries of one identity. */
                int lab = labels[pool_pos(x[g * K])];
                int id = (lab - 100) / 7;
                cr_assert_eq(id_seen[id]++, 0, "epoch %ld: identity %d twice", e, lab);
                id_used_over_epochs[id]++;
                int img_seen[64] = {0};
                int distinct = 0;
                for (int t = 0; t < K; t++) {
                    int32_t v = x[g * K + t];
                    int pp = pool_pos(v);
                    cr_assert(pp >= 0 && pp < n && v == pool[pp], "not a pool index: %d", v);
                    cr_assert_eq(labels[pp], lab, "epoch %ld batch %d: group %d mixes labels", e, b,
                                 g);
                    if (img_seen[pp]++ == 0)
                        distinct++;
                }
                if (COUNTS[id] >= K)
                    cr_assert_eq(distinct, K, "identity %d has %d images but repeats one", lab,
                                 COUNTS[id]);
                else
                    repeats_small++;
            }
        }
    }
    cr_expect(repeats_small > 0, "identities with fewer than K images never drawn");
    for (int i = 0; i < N_IDS; i++)
        cr_expect(id_used_over_epochs[i] > 0, "identity %d never used in 20 epochs", i);
    ptl_sampler_free(&s);
    free(pool);
    free(labels);
}

Test(pk, identity_order_depends_on_epoch_and_seed_only)
{
    int32_t *pool, *labels;
    int n = make_pk_pool(&pool, &labels);
    struct ptl_sampler a, b;
    init_ok(&a, PTL_SAMPLER_PK, 5, P * K, P, K, pool, labels, n);
    init_ok(&b, PTL_SAMPLER_PK, 5, P * K, P, K, pool, labels, n);
    epoch_ok(&a, 2);
    epoch_ok(&b, 0);
    int32_t *b0 = order_copy(&b);
    epoch_ok(&b, 2);
    int32_t *a2 = order_copy(&a), *b2 = order_copy(&b);
    size_t bytes = sizeof(int32_t) * (size_t)a.batches_per_epoch * P * K;
    cr_expect_arr_eq(a2, b2, bytes);
    cr_expect(memcmp(a2, b0, bytes) != 0, "epochs 0 and 2 equal");
    /* Identity at the first slot changes over epochs (identities are shuffled). */
    int first_ids = 0, mask = 0;
    for (long e = 0; e < 30; e++) {
        epoch_ok(&a, e);
        int id = (labels[pool_pos(ptl_sampler_batch(&a, 0)[0])] - 100) / 7;
        if (!(mask & (1 << id)))
            first_ids++;
        mask |= 1 << id;
    }
    cr_expect(first_ids >= 5, "only %d identities ever came first in 30 epochs", first_ids);
    free(a2);
    free(b2);
    free(b0);
    ptl_sampler_free(&a);
    ptl_sampler_free(&b);
    free(pool);
    free(labels);
}

/* An identity with exactly K images contributes all of them; an identity with one image
 * contributes it K times. */
Test(pk, exact_and_single_image_identities)
{
    int32_t pool[] = {10, 11, 12, 13, 20, 30, 31, 32, 33, 34};
    int32_t labels[] = {1, 1, 1, 1, 2, 3, 3, 3, 3, 3};
    struct ptl_sampler s;
    init_ok(&s, PTL_SAMPLER_PK, 3, 12, 3, 4, pool, labels, 10);
    cr_assert_eq(s.batches_per_epoch, 1);
    for (long e = 0; e < 10; e++) {
        epoch_ok(&s, e);
        const int32_t *x = ptl_sampler_batch(&s, 0);
        for (int g = 0; g < 3; g++) {
            int32_t base = x[g * 4] / 10;
            int32_t sum = 0;
            for (int t = 0; t < 4; t++) {
                cr_assert_eq(x[g * 4 + t] / 10, base);
                sum += x[g * 4 + t];
            }
            if (base == 1)
                cr_expect_eq(sum, 10 + 11 + 12 + 13, "label 1 must give its 4 images");
            if (base == 2)
                cr_expect_eq(sum, 80, "label 2 must give its one image 4 times");
        }
    }
    ptl_sampler_free(&s);
}

Test(pk, argument_errors)
{
    int32_t *pool, *labels;
    int n = make_pk_pool(&pool, &labels);
    struct ptl_sampler s;
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_PK, 1, 12 * K, 12, K, pool, labels, n),
                 PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "P = 12") && strstr(ptl_error_message(), "only 11"), "%s",
              ptl_error_message());
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_PK, 1, 13, P, K, pool, labels, n), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "not P x K"), "%s", ptl_error_message());
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_PK, 1, P * K, P, K, pool, NULL, n), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "labels"), "%s", ptl_error_message());
    cr_expect_eq(ptl_sampler_init(&s, PTL_SAMPLER_PK, 1, 0, 0, K, pool, labels, n), PTL_EINVAL);
    /* P equal to the identity count is fine: one batch per epoch. */
    init_ok(&s, PTL_SAMPLER_PK, 1, N_IDS * 2, N_IDS, 2, pool, labels, n);
    cr_expect_eq(s.batches_per_epoch, 1);
    ptl_sampler_free(&s);
    free(pool);
    free(labels);
}

/* ----------------------------------------------------------------- augmentation ----------- */

static struct ptl_augment plain_augment(int channels)
{
    struct ptl_augment a;
    memset(&a, 0, sizeof a);
    a.channels = channels;
    for (int c = 0; c < 3; c++) {
        a.mean[c] = 0.25f + 0.1f * (float)c;
        a.std[c] = 0.5f + 0.2f * (float)c;
    }
    return a;
}

static float norm_of(const struct ptl_augment *a, int c, float v)
{
    return (v / 255.0f - a->mean[c]) / a->std[c];
}

/* (c, h, w) image with distinct non-zero values. */
static uint8_t *test_image(int c, int h, int w)
{
    uint8_t *img = malloc((size_t)c * (size_t)h * (size_t)w);
    cr_assert_not_null(img);
    for (int i = 0; i < c * h * w; i++)
        img[i] = (uint8_t)(1 + (i * 37) % 254);
    return img;
}

static void apply_ok(const struct ptl_augment *a, const uint8_t *src, int c, int h, int w,
                     float *dst, int train, uint64_t seed, uint64_t key)
{
    int rc = ptl_augment_apply(a, src, c, h, w, dst, train, seed, key);
    cr_assert_eq(rc, PTL_OK, "augment_apply: %s", ptl_error_message());
}

Test(augment, eval_mode_is_normalise_only)
{
    enum { C = 3, H = 5, W = 6 };
    uint8_t *img = test_image(C, H, W);
    struct ptl_augment a = plain_augment(C);
    a.flip = 1.0f;
    a.pad = 2;
    a.erase = 1.0f;
    float out[C * H * W];
    for (uint64_t key = 0; key < 5; key++) {
        apply_ok(&a, img, C, H, W, out, 0, 1, key);
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++)
                cr_assert_eq(out[c * H * W + i], norm_of(&a, c, img[c * H * W + i]),
                             "key %llu channel %d pixel %d", (unsigned long long)key, c, i);
    }
    /* Train mode with nothing enabled is the same. */
    struct ptl_augment b = plain_augment(C);
    apply_ok(&b, img, C, H, W, out, 1, 1, 0);
    for (int i = 0; i < C * H * W; i++)
        cr_assert_eq(out[i], norm_of(&b, i / (H * W), img[i]));
    free(img);
}

Test(augment, flip_mirrors_columns)
{
    enum { C = 1, H = 3, W = 4 };
    const uint8_t img[H * W] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct ptl_augment a = plain_augment(C);
    a.flip = 1.0f;
    float out[H * W];
    apply_ok(&a, img, C, H, W, out, 1, 3, 17);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            cr_assert_eq(out[y * W + x], norm_of(&a, 0, img[y * W + (W - 1 - x)]), "(%d,%d)", y, x);
    /* Probability 0.5: some keys flip, some do not. */
    a.flip = 0.5f;
    int flipped = 0;
    for (uint64_t key = 0; key < 400; key++) {
        apply_ok(&a, img, C, H, W, out, 1, 3, key);
        flipped += out[0] == norm_of(&a, 0, 4);
    }
    cr_expect(flipped > 140 && flipped < 260, "%d of 400 flipped at p = 0.5", flipped);
}

/* Which shift (dy, dx) in [-pad, pad] makes out equal to the (optionally mirrored) image
 * padded with pixel value 0? -1 if none. */
static int find_shift(const struct ptl_augment *a, const uint8_t *img, int h, int w,
                      const float *out, int mirrored, int *dy_out, int *dx_out)
{
    const int p = a->pad;
    for (int dy = -p; dy <= p; dy++)
        for (int dx = -p; dx <= p; dx++) {
            int ok = 1;
            for (int y = 0; y < h && ok; y++)
                for (int x = 0; x < w && ok; x++) {
                    int sy = y + dy, sx = x + dx;
                    float v = 0.0f;
                    if (sy >= 0 && sy < h && sx >= 0 && sx < w)
                        v = img[sy * w + (mirrored ? w - 1 - sx : sx)];
                    ok = out[y * w + x] == norm_of(a, 0, v);
                }
            if (ok) {
                *dy_out = dy;
                *dx_out = dx;
                return 0;
            }
        }
    return -1;
}

Test(augment, pad_and_crop_is_a_zero_filled_shift)
{
    enum { H = 4, W = 5, PAD = 2 };
    uint8_t *img = test_image(1, H, W);
    struct ptl_augment a = plain_augment(1);
    a.pad = PAD;
    float out[H * W];
    int hits[2 * PAD + 1][2 * PAD + 1] = {{0}};
    for (uint64_t key = 0; key < 500; key++) {
        a.flip = (key & 1) ? 1.0f : 0.0f; /* flip happens before the crop */
        apply_ok(&a, img, 1, H, W, out, 1, 11, key);
        int dy = 0, dx = 0;
        cr_assert_eq(find_shift(&a, img, H, W, out, (int)(key & 1), &dy, &dx), 0,
                     "key %llu: output is not a shifted, zero-padded copy",
                     (unsigned long long)key);
        hits[dy + PAD][dx + PAD]++;
    }
    /* Every offset of RandomCrop's [0, 2 * pad] range occurs (20 expected each). */
    for (int i = 0; i <= 2 * PAD; i++)
        for (int j = 0; j <= 2 * PAD; j++)
            cr_expect(hits[i][j] >= 5, "shift (%d,%d) seen %d times in 500", i - PAD, j - PAD,
                      hits[i][j]);
    /* A crop that shifts by (2, 2) shows padding: the pad is pixel 0, not normalised 0. */
    cr_expect(hits[0][0] > 0);
    free(img);
}

Test(augment, erase_fills_a_box_with_zero)
{
    enum { C = 3, H = 40, W = 40 };
    uint8_t *img = test_image(C, H, W);
    struct ptl_augment a = plain_augment(C);
    for (int c = 0; c < C; c++)
        a.mean[c] = -0.1f; /* normalised pixels are all > 0: an erased one is recognisable */
    a.erase = 1.0f;
    float out[C * H * W];
    int erased = 0, small = 0, large = 0;
    for (uint64_t key = 0; key < 200; key++) {
        apply_ok(&a, img, C, H, W, out, 1, 5, key);
        int y0 = H, y1 = -1, x0 = W, x1 = -1, zeros = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float v = out[y * W + x];
                if (v == 0.0f) {
                    zeros++;
                    y0 = y < y0 ? y : y0;
                    y1 = y > y1 ? y : y1;
                    x0 = x < x0 ? x : x0;
                    x1 = x > x1 ? x : x1;
                } else {
                    cr_assert_eq(v, norm_of(&a, 0, img[y * W + x]));
                }
            }
        if (!zeros)
            continue;
        erased++;
        int bh = y1 - y0 + 1, bw = x1 - x0 + 1;
        cr_assert_eq(zeros, bh * bw, "key %llu: erased pixels are not a box",
                     (unsigned long long)key);
        cr_assert(bh < H && bw < W);
        /* Area 0.02-0.4 of 1600 = 32-640 up to rounding of the sides; aspect 0.3-3.33. */
        cr_assert(bh * bw >= 20 && bh * bw <= 700, "box %dx%d", bh, bw);
        cr_assert((double)bh / bw > 0.25 && (double)bh / bw < 4.0, "box %dx%d", bh, bw);
        small += bh * bw < 200;
        large += bh * bw > 400;
        for (int c = 1; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int in_box = y >= y0 && y <= y1 && x >= x0 && x <= x1;
                    float v = out[(c * H + y) * W + x];
                    if (in_box)
                        cr_assert_eq(v, 0.0f, "channel %d not erased at (%d,%d)", c, y, x);
                    else
                        cr_assert_eq(v, norm_of(&a, c, img[(c * H + y) * W + x]));
                }
    }
    /* Probability 1 and 100 attempts: a 40x40 image always gets a box. */
    cr_expect_eq(erased, 200);
    cr_expect(small > 10 && large > 10, "box areas not spread: %d small, %d large", small, large);

    a.erase = 0.5f;
    erased = 0;
    for (uint64_t key = 0; key < 400; key++) {
        apply_ok(&a, img, C, H, W, out, 1, 5, key);
        int any = 0;
        for (int i = 0; i < H * W && !any; i++)
            any = out[i] == 0.0f;
        erased += any;
    }
    cr_expect(erased > 140 && erased < 260, "%d of 400 erased at p = 0.5", erased);
    free(img);
}

Test(augment, bilinear_resize_matches_torch)
{
    const uint8_t img[3 * 5] = {10, 200, 30, 40, 250, 0, 90, 180, 70, 5, 255, 128, 64, 32, 16};
    /* torch.nn.functional.interpolate(x.float(), size=..., mode="bilinear",
     * align_corners=False), torch 1.13. */
    const float up[7][4] = {{33.75f, 136.25f, 36.25f, 223.75f},
                            {30.5357151f, 134.464279f, 46.9642868f, 193.660721f},
                            {20.8928566f, 129.107147f, 79.1071472f, 103.392853f},
                            {11.2500038f, 123.75f, 111.25f, 13.125f},
                            {108.910721f, 115.285713f, 82.428566f, 15.2142859f},
                            {206.571426f, 106.821426f, 53.6071396f, 17.3035717f},
                            {239.125f, 104.0f, 44.0f, 18.0f}};
    const float down[2][3] = {{62.4999962f, 67.5000076f, 141.666656f},
                              {167.0f, 93.0f, 22.6666698f}};
    struct ptl_augment a = plain_augment(1);
    a.mean[0] = 0.0f;
    a.std[0] = 1.0f;
    a.resize_h = 7;
    a.resize_w = 4;
    int oh, ow;
    ptl_augment_out_size(&a, 3, 5, &oh, &ow);
    cr_assert(oh == 7 && ow == 4);
    float out[7 * 4];
    apply_ok(&a, img, 1, 3, 5, out, 0, 0, 0);
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 4; x++)
            cr_expect(fabsf(out[y * 4 + x] * 255.0f - up[y][x]) < 2e-3f, "(%d,%d): %g vs %g", y, x,
                      (double)(out[y * 4 + x] * 255.0f), (double)up[y][x]);
    a.resize_h = 2;
    a.resize_w = 3;
    apply_ok(&a, img, 1, 3, 5, out, 1, 0, 0); /* train mode with nothing random enabled */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            cr_expect(fabsf(out[y * 3 + x] * 255.0f - down[y][x]) < 2e-3f, "(%d,%d)", y, x);
    struct ptl_augment none = plain_augment(1);
    ptl_augment_out_size(&none, 3, 5, &oh, &ow);
    cr_expect(oh == 3 && ow == 5);
}

/* Everything enabled: the output is a function of (seed, key) only, also across threads. */
Test(augment, deterministic_per_key_and_thread_independent)
{
    enum { C = 3, H = 24, W = 12, OH = 16, OW = 8, N = 32 };
    uint8_t *img = test_image(C, H, W);
    struct ptl_augment a = plain_augment(C);
    a.resize_h = OH;
    a.resize_w = OW;
    a.flip = 0.5f;
    a.pad = 2;
    a.erase = 0.5f;
    const size_t per = (size_t)C * OH * OW;
    float *serial = malloc(sizeof(float) * per * N), *par = malloc(sizeof(float) * per * N);
    cr_assert(serial && par);
    for (int i = 0; i < N; i++)
        apply_ok(&a, img, C, H, W, serial + per * (size_t)i, 1, 77, 1000 + (uint64_t)i);
    int fails = 0;
#pragma omp parallel for reduction(+ : fails)
    for (int i = N - 1; i >= 0; i--)
        fails += ptl_augment_apply(&a, img, C, H, W, par + per * (size_t)i, 1, 77,
                                   1000 + (uint64_t)i) != PTL_OK;
    cr_assert_eq(fails, 0);
    cr_expect_arr_eq(serial, par, sizeof(float) * per * N, "threads changed the output");
    int distinct = 0;
    for (int i = 1; i < N; i++)
        distinct += memcmp(serial, serial + per * (size_t)i, sizeof(float) * per) != 0;
    cr_expect(distinct >= N - 4, "only %d of %d keys differ from key 0", distinct, N - 1);
    float *other = malloc(sizeof(float) * per);
    cr_assert_not_null(other);
    int seed_differs = 0;
    for (int i = 0; i < 8; i++) {
        apply_ok(&a, img, C, H, W, other, 1, 78, 1000 + (uint64_t)i);
        seed_differs += memcmp(other, serial + per * (size_t)i, sizeof(float) * per) != 0;
    }
    cr_expect(seed_differs >= 6, "seed 78 equals seed 77 on %d of 8 keys", 8 - seed_differs);
    free(other);
    free(serial);
    free(par);
    free(img);
}

Test(augment, argument_errors)
{
    uint8_t img[3 * 4 * 4] = {0};
    float out[3 * 4 * 4];
    struct ptl_augment a = plain_augment(3);
    cr_expect_eq(ptl_augment_apply(&a, img, 1, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "1 channels"), "%s", ptl_error_message());
    struct ptl_augment b = a;
    b.channels = 2;
    cr_expect_eq(ptl_augment_apply(&b, img, 2, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    b = a;
    b.std[1] = 0.0f;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 0, 0, 0), PTL_EINVAL);
    cr_expect(strstr(ptl_error_message(), "std[1]"), "%s", ptl_error_message());
    b = a;
    b.pad = -1;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    b = a;
    b.flip = 1.5f;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    b = a;
    b.erase = -0.1f;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    b = a;
    b.erase_area[0] = 0.5f;
    b.erase_area[1] = 0.1f;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    b = a;
    b.erase_ratio = 2.0f;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    b = a;
    b.resize_h = 8;
    cr_expect_eq(ptl_augment_apply(&b, img, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    cr_expect_eq(ptl_augment_apply(&a, img, 3, 0, 4, out, 1, 0, 0), PTL_EINVAL);
    cr_expect_eq(ptl_augment_apply(&a, NULL, 3, 4, 4, out, 1, 0, 0), PTL_EINVAL);
    cr_expect_eq(ptl_augment_apply(&a, img, 3, 4, 4, out, 1, 0, 0), PTL_OK);
    cr_expect_eq(ptl_augment_validate(&a, 3, 4, 4), PTL_OK);
    cr_expect_eq(ptl_augment_validate(&a, 1, 4, 4), PTL_EINVAL);
    cr_expect_eq(ptl_augment_validate(NULL, 3, 4, 4), PTL_EINVAL);
}
