/* Augmentation of one sample: uint8 (C, H, W) -> normalised float (C, out_h, out_w).
 *
 * Train mode, in the order of data.h: bilinear resize, horizontal flip, zero pad + random crop
 * (torchvision RandomCrop(size, padding=pad): the pad is pixel value 0 before normalisation),
 * random erasing (the release's RandomErasing, written after normalisation with value 0), and
 * (x / 255 - mean) / std. Eval mode: resize and normalise.
 *
 * Randomness: each random quantity has a fixed position in the stream (seed ^ AUGMENT_DOMAIN,
 * key), so a sample's augmentation is a pure function of (seed, key), independent of the other
 * samples, of the thread that runs it and of which other augmentations are enabled. No global
 * state: callers run it from an OpenMP loop over the samples of a batch.
 */
#include "ptl/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptl/core.h"

/* "augment" in ASCII: keeps these streams apart from the sampler's (seed, epoch) streams. */
#define AUGMENT_DOMAIN 0x6175676d656e74ULL

/* Stream positions of each draw. */
enum {
    DRAW_FLIP = 0,
    DRAW_CROP_TOP = 1,
    DRAW_CROP_LEFT = 2,
    DRAW_ERASE = 3,
    DRAW_ERASE_ATTEMPTS = 4, /* 4 draws per attempt: area, aspect, top, left */
    ERASE_ATTEMPTS = 100,    /* as in the release's RandomErasing */
};

#define DEFAULT_ERASE_AREA_LO 0.02f
#define DEFAULT_ERASE_AREA_HI 0.4f
#define DEFAULT_ERASE_RATIO 0.3f

static float uniform_at(const struct ptl_rng *base, uint64_t pos)
{
    struct ptl_rng r = *base;
    r.counter = pos;
    return ptl_rng_uniform(&r);
}

/* Integer uniform in [0, n] (both ends, like Python's random.randint(0, n)). */
static int int_at(const struct ptl_rng *base, uint64_t pos, int n)
{
    struct ptl_rng r = *base;
    r.counter = pos;
    return (int)(ptl_rng_u64(&r) % ((uint64_t)n + 1));
}

void ptl_augment_out_size(const struct ptl_augment *a, int h, int w, int *out_h, int *out_w)
{
    /* The crop cuts the padded image back to its size before padding. */
    const int resize = a && a->resize_h > 0 && a->resize_w > 0;
    if (out_h)
        *out_h = resize ? a->resize_h : h;
    if (out_w)
        *out_w = resize ? a->resize_w : w;
}

/* Settings that are zero take their defaults (0.02-0.4 area, ratio 0.3). */
static void erase_params(const struct ptl_augment *a, float *lo, float *hi, float *ratio)
{
    int unset = a->erase_area[0] == 0.0f && a->erase_area[1] == 0.0f;
    *lo = unset ? DEFAULT_ERASE_AREA_LO : a->erase_area[0];
    *hi = unset ? DEFAULT_ERASE_AREA_HI : a->erase_area[1];
    *ratio = a->erase_ratio == 0.0f ? DEFAULT_ERASE_RATIO : a->erase_ratio;
}

int ptl_augment_validate(const struct ptl_augment *a, int c, int h, int w)
{
    if (!a)
        return ptl_error(PTL_EINVAL, "augment: no settings given");
    if (a->channels != 1 && a->channels != 3)
        return ptl_error(PTL_EINVAL, "augment: %d channels configured, must be 1 or 3",
                         a->channels);
    if (c != a->channels)
        return ptl_error(PTL_EINVAL, "augment: image has %d channels, settings have %d", c,
                         a->channels);
    if (h <= 0 || w <= 0)
        return ptl_error(PTL_EINVAL, "augment: image size %dx%d", h, w);
    if (a->resize_h < 0 || a->resize_w < 0 || (a->resize_h == 0) != (a->resize_w == 0))
        return ptl_error(PTL_EINVAL, "augment: resize %dx%d, both must be > 0 (or both 0)",
                         a->resize_h, a->resize_w);
    if (!(a->flip >= 0.0f && a->flip <= 1.0f))
        return ptl_error(PTL_EINVAL, "augment: flip probability %g not in [0, 1]", (double)a->flip);
    if (a->pad < 0)
        return ptl_error(PTL_EINVAL, "augment: pad %d is negative", a->pad);
    if (!(a->erase >= 0.0f && a->erase <= 1.0f))
        return ptl_error(PTL_EINVAL, "augment: erase probability %g not in [0, 1]",
                         (double)a->erase);
    float lo, hi, ratio;
    erase_params(a, &lo, &hi, &ratio);
    if (!(lo > 0.0f && lo <= hi && hi <= 1.0f))
        return ptl_error(PTL_EINVAL, "augment: erase area %g-%g, need 0 < lo <= hi <= 1",
                         (double)lo, (double)hi);
    if (!(ratio > 0.0f && ratio <= 1.0f))
        return ptl_error(PTL_EINVAL, "augment: erase aspect ratio %g not in (0, 1]", (double)ratio);
    for (int i = 0; i < c; i++) {
        if (!(a->std[i] > 0.0f) || !isfinite(a->std[i]))
            return ptl_error(PTL_EINVAL, "augment: std[%d] = %g, must be > 0", i,
                             (double)a->std[i]);
        if (!isfinite(a->mean[i]))
            return ptl_error(PTL_EINVAL, "augment: mean[%d] is not finite", i);
    }
    return PTL_OK;
}

/* Source coordinate and weight of output position o for a resize of n -> m, with half-pixel
 * centres and no antialiasing (torch.nn.functional.interpolate(mode="bilinear",
 * align_corners=False), OpenCV INTER_LINEAR). */
static void bilinear_coord(int o, int n, int m, int *i0, int *i1, float *frac)
{
    float s = ((float)o + 0.5f) * (float)n / (float)m - 0.5f;
    if (s < 0.0f)
        s = 0.0f;
    int i = (int)s;
    if (i > n - 1)
        i = n - 1;
    *i0 = i;
    *i1 = i < n - 1 ? i + 1 : i;
    *frac = s - (float)i;
}

/* Where output row (or column) o reads from: source pixels i0, i1 and the weight of i1, or
 * ok = 0 for the zero padding. Composes the crop shift, the flip (columns) and the resize. */
struct tap {
    int i0, i1, ok;
    float frac;
};

static void make_taps(struct tap *t, int m, int n, int shift, int flip)
{
    for (int o = 0; o < m; o++) {
        int s = o + shift; /* position in the resized (and flipped) image */
        t[o].ok = s >= 0 && s < m;
        if (!t[o].ok) {
            t[o].i0 = t[o].i1 = 0;
            t[o].frac = 0.0f;
            continue;
        }
        if (flip)
            s = m - 1 - s;
        if (m == n) { /* no resize: weight 0 keeps the value exact */
            t[o].i0 = t[o].i1 = s;
            t[o].frac = 0.0f;
        } else {
            bilinear_coord(s, n, m, &t[o].i0, &t[o].i1, &t[o].frac);
        }
    }
}

/* The release's RandomErasing on an oh x ow image: up to 100 attempts at a box of area
 * U(lo, hi) * oh * ow and aspect U(ratio, 1 / ratio), kept when it fits strictly inside.
 * Python's round() rounds halves to even, as rint() does in the default rounding mode.
 * Returns 1 with the box when an attempt fits. */
static int erase_box(const struct ptl_augment *a, const struct ptl_rng *rng, int oh, int ow,
                     int *top, int *left, int *eh, int *ew)
{
    float lo, hi, ratio;
    erase_params(a, &lo, &hi, &ratio);
    const double area = (double)oh * (double)ow;
    for (int t = 0; t < ERASE_ATTEMPTS; t++) {
        const uint64_t pos = DRAW_ERASE_ATTEMPTS + 4 * (uint64_t)t;
        double target = (lo + (hi - lo) * (double)uniform_at(rng, pos)) * area;
        double aspect = ratio + (1.0 / ratio - ratio) * (double)uniform_at(rng, pos + 1);
        int bh = (int)rint(sqrt(target * aspect));
        int bw = (int)rint(sqrt(target / aspect));
        if (bw < ow && bh < oh) {
            *eh = bh;
            *ew = bw;
            *top = int_at(rng, pos + 2, oh - bh);
            *left = int_at(rng, pos + 3, ow - bw);
            return 1;
        }
    }
    return 0;
}

int ptl_augment_apply(const struct ptl_augment *a, const uint8_t *src, int c, int h, int w,
                      float *dst, int train, uint64_t seed, uint64_t key)
{
    if (!src || !dst)
        return ptl_error(PTL_EINVAL, "augment: missing input or output");
    int rc = ptl_augment_validate(a, c, h, w);
    if (rc)
        return rc;
    int oh, ow;
    ptl_augment_out_size(a, h, w, &oh, &ow);

    struct ptl_rng rng;
    ptl_rng_init(&rng, seed ^ AUGMENT_DOMAIN, key);
    int flip = 0, dy = 0, dx = 0, erase = 0, ey = 0, ex = 0, eh = 0, ew = 0;
    if (train) {
        flip = uniform_at(&rng, DRAW_FLIP) < a->flip;
        if (a->pad > 0) {
            /* Offsets into the padded image, in [0, 2 * pad] like RandomCrop.get_params; as a
             * shift of the unpadded image: output (y, x) reads input (y + top - pad, ...). */
            dy = int_at(&rng, DRAW_CROP_TOP, 2 * a->pad) - a->pad;
            dx = int_at(&rng, DRAW_CROP_LEFT, 2 * a->pad) - a->pad;
        }
        if (uniform_at(&rng, DRAW_ERASE) < a->erase)
            erase = erase_box(a, &rng, oh, ow, &ey, &ex, &eh, &ew);
    }

    struct tap *rows = malloc(sizeof *rows * ((size_t)oh + (size_t)ow));
    if (!rows)
        return ptl_error(PTL_ENOMEM, "augment: out of memory for a %dx%d output", oh, ow);
    struct tap *cols = rows + oh;
    make_taps(rows, oh, h, dy, 0);
    make_taps(cols, ow, w, dx, flip);
    for (int ch = 0; ch < c; ch++) {
        const float mean = a->mean[ch], sd = a->std[ch];
        const uint8_t *plane = src + (size_t)ch * (size_t)h * (size_t)w;
        float *out = dst + (size_t)ch * (size_t)oh * (size_t)ow;
        for (int y = 0; y < oh; y++) {
            const struct tap *ry = &rows[y];
            const uint8_t *r0 = plane + (size_t)ry->i0 * (size_t)w;
            const uint8_t *r1 = plane + (size_t)ry->i1 * (size_t)w;
            float *o = out + (size_t)y * (size_t)ow;
            for (int x = 0; x < ow; x++) {
                const struct tap *cx = &cols[x];
                float v = 0.0f; /* the zero padding, in pixel values */
                if (ry->ok && cx->ok) {
                    const float fx = cx->frac, fy = ry->frac;
                    float top = (1.0f - fx) * (float)r0[cx->i0] + fx * (float)r0[cx->i1];
                    float bot = (1.0f - fx) * (float)r1[cx->i0] + fx * (float)r1[cx->i1];
                    v = (1.0f - fy) * top + fy * bot;
                }
                /* torchvision's ToTensor then Normalize, operation for operation. */
                o[x] = (v / 255.0f - mean) / sd;
            }
        }
        if (erase)
            for (int y = ey; y < ey + eh; y++)
                memset(out + (size_t)y * (size_t)ow + (size_t)ex, 0, sizeof *out * (size_t)ew);
    }
    free(rows);
    return PTL_OK;
}
