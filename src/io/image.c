/* Image files: JPEG (libjpeg-turbo) and PNG (libpng) decoding into uint8 (C, H, W) with
 * C = 1 or 3, and the bilinear resize of PIL's Image.resize(BILINEAR).
 *
 * The format is recognised by the magic bytes, never by the name. Both libraries report fatal
 * errors through setjmp/longjmp here, so a corrupt file is an error naming it, never an exit().
 * Warnings are silenced, except libjpeg's "premature end of file": libjpeg would pad a
 * truncated JPEG with grey and carry on, PIL refuses it, and so do we. Other "corrupt data"
 * warnings inside the entropy-coded data are tolerated as PIL tolerates them.
 *
 * Conversions follow PIL's convert(): RGB -> grey with PIL's fixed-point ITU-R 601-2 luma,
 * grey -> RGB by replication, alpha dropped (not composited), palettes expanded, 16-bit
 * samples cut to their high byte (PIL's "RGB;16B"; for 16-bit grey PIL clips instead, which
 * turns most images white, so there we deliberately differ), Adobe CMYK inverted.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/dataset_impl.h"
#include "ptl/core.h"

/* Larger images are refused before any allocation (a corrupt header must not ask for 100 GB). */
#define MAX_SIDE 65535
#define MAX_PIXELS (1L << 28)

enum kind { KIND_JPEG, KIND_PNG };

/* A decoded image, interleaved (H, W, c) with c = 1 (grey) or 3 (RGB). */
struct image {
    int c, h, w;
    uint8_t *px;
};

static int open_image(const char *path, FILE **f, enum kind *kind)
{
    *f = fopen(path, "rb");
    if (!*f)
        return ptl_error(PTL_EIO, "%s: %s", path, strerror(errno));
    uint8_t m[8];
    size_t got = fread(m, 1, sizeof m, *f);
    int ret = 0;
    if (ferror(*f))
        ret = ptl_error(PTL_EIO, "%s: read error", path);
    else if (got == 0)
        ret = ptl_error(PTL_EFORMAT, "%s: empty file, not an image", path);
    else if (got >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF)
        *kind = KIND_JPEG;
    else if (got == 8 && !png_sig_cmp(m, 0, 8))
        *kind = KIND_PNG;
    else
        ret = ptl_error(PTL_EFORMAT, "%s: not a JPEG or PNG file (magic bytes)", path);
    if (!ret && fseek(*f, 0, SEEK_SET) != 0)
        ret = ptl_error(PTL_EIO, "%s: %s", path, strerror(errno));
    if (ret) {
        fclose(*f);
        *f = NULL;
    }
    return ret;
}

static int check_size(const char *path, long h, long w)
{
    if (h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE || h * w > MAX_PIXELS)
        return ptl_error(PTL_EFORMAT, "%s: unsupported image size %ldx%ld", path, h, w);
    return 0;
}

/* ---------------- JPEG ---------------- */

struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_err *e = (struct jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        jpeg_on_error(cinfo); /* truncated: an error, not grey padding */
    if (level < 0)
        cinfo->err->num_warnings++;
}

static void jpeg_silent(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* State of one decode, owned by the caller's frame so nothing that changes after setjmp lives
 * in the function that calls it. */
struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_err err;
    FILE *f;
    int header_only;
    struct image img;
    uint8_t *raw;  /* CMYK scanlines before conversion */
    int created;
};

/* Adobe files store inverted CMYK (PIL reads them as "CMYK;I"); then PIL's cmyk2rgb. */
static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, long n, int adobe)
{
    for (long i = 0; i < n; i++, in += 4, out += 3) {
        int nk = adobe ? in[3] : 255 - in[3];
        for (int j = 0; j < 3; j++) {
            int c = adobe ? 255 - in[j] : in[j];
            int t = c * nk + 128; /* MULDIV255 */
            int v = nk - (((t >> 8) + t) >> 8);
            out[j] = (uint8_t)(v < 0 ? 0 : v);
        }
    }
}

static int jpeg_run(struct jpeg_job *j)
{
    j->cinfo.err = jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = jpeg_on_error;
    j->err.pub.emit_message = jpeg_on_message;
    j->err.pub.output_message = jpeg_silent;
    if (setjmp(j->err.jmp))
        return -1;
    jpeg_create_decompress(&j->cinfo);
    j->created = 1;
    jpeg_stdio_src(&j->cinfo, j->f);
    jpeg_read_header(&j->cinfo, TRUE);
    j->img.h = (int)j->cinfo.image_height;
    j->img.w = (int)j->cinfo.image_width;
    if (j->header_only || check_size("", j->img.h, j->img.w))
        return 0;
    int cmyk = j->cinfo.jpeg_color_space == JCS_CMYK || j->cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk)
        j->cinfo.out_color_space = JCS_CMYK;
    else if (j->cinfo.jpeg_color_space == JCS_GRAYSCALE)
        j->cinfo.out_color_space = JCS_GRAYSCALE;
    else
        j->cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&j->cinfo);
    int comps = j->cinfo.output_components;
    j->img.c = cmyk ? 3 : comps;
    size_t npx = (size_t)j->img.h * (size_t)j->img.w;
    j->img.px = malloc(npx * (size_t)j->img.c);
    if (cmyk)
        j->raw = malloc((size_t)j->img.w * 4);
    if (!j->img.px || (cmyk && !j->raw))
        return -2;
    while (j->cinfo.output_scanline < j->cinfo.output_height) {
        size_t y = j->cinfo.output_scanline;
        uint8_t *row = cmyk ? j->raw : j->img.px + y * (size_t)j->img.w * (size_t)comps;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&j->cinfo, rows, 1);
        if (cmyk)
            cmyk_to_rgb(j->raw, j->img.px + y * (size_t)j->img.w * 3, j->img.w,
                        j->cinfo.saw_Adobe_marker);
    }
    jpeg_finish_decompress(&j->cinfo);
    return 0;
}

static int jpeg_decode(const char *path, FILE *f, int header_only, struct image *out)
{
    struct jpeg_job *j = calloc(1, sizeof *j);
    if (!j)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    j->f = f;
    j->header_only = header_only;
    int r = jpeg_run(j);
    int ret = 0;
    if (r == -1)
        ret = ptl_error(PTL_EFORMAT, "%s: corrupt or truncated JPEG (%s)", path, j->err.msg);
    else if (r == -2)
        ret = ptl_error(PTL_ENOMEM, "%s: out of memory for a %dx%d image", path, j->img.h,
                        j->img.w);
    else
        ret = check_size(path, j->img.h, j->img.w);
    if (j->created)
        jpeg_destroy_decompress(&j->cinfo);
    free(j->raw);
    if (ret) {
        free(j->img.px);
        j->img.px = NULL;
    }
    *out = j->img;
    free(j);
    return ret;
}

/* ---------------- PNG ---------------- */

struct png_job {
    png_structp png;
    png_infop info;
    FILE *f;
    int header_only;
    struct image img;
    uint8_t *buf; /* decoded rows, png_channels per pixel */
    png_bytep *rows;
    int channels;
    char msg[256];
};

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_fn(png_structp png, png_bytep data, size_t n)
{
    FILE *f = png_get_io_ptr(png);
    if (fread(data, 1, n, f) != n)
        png_error(png, ferror(f) ? "read error" : "unexpected end of file");
}

static int png_run(struct png_job *j)
{
    if (setjmp(png_jmpbuf(j->png)))
        return -1;
    png_set_read_fn(j->png, j->f, png_read_fn);
    png_read_info(j->png, j->info);
    png_uint_32 w, h;
    int depth, type, interlace;
    png_get_IHDR(j->png, j->info, &w, &h, &depth, &type, &interlace, NULL, NULL);
    j->img.h = (int)(h > MAX_SIDE ? MAX_SIDE + 1 : h);
    j->img.w = (int)(w > MAX_SIDE ? MAX_SIDE + 1 : w);
    if (j->header_only || check_size("", j->img.h, j->img.w))
        return 0;
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    if (depth == 16)
        png_set_strip_16(j->png); /* high byte, like PIL's "RGB;16B" */
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    j->channels = png_get_channels(j->png, j->info);
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    if (j->channels < 1 || j->channels > 4 || rowbytes != (size_t)w * (size_t)j->channels)
        png_error(j->png, "unsupported pixel layout");
    j->buf = malloc(rowbytes * h);
    j->rows = malloc(sizeof *j->rows * h);
    if (!j->buf || !j->rows)
        return -2;
    for (png_uint_32 y = 0; y < h; y++)
        j->rows[y] = j->buf + y * rowbytes;
    png_read_image(j->png, j->rows);
    return 0;
}

/* 1: grey, 2: grey + alpha, 3: RGB, 4: RGBA -> grey or RGB with alpha dropped. */
static int png_pixels(struct png_job *j)
{
    int c = j->channels <= 2 ? 1 : 3;
    size_t n = (size_t)j->img.h * (size_t)j->img.w;
    if (c == j->channels) {
        j->img.px = j->buf;
        j->buf = NULL;
    } else {
        j->img.px = malloc(n * (size_t)c);
        if (!j->img.px)
            return -1;
        for (size_t i = 0; i < n; i++)
            memcpy(j->img.px + i * (size_t)c, j->buf + i * (size_t)j->channels, (size_t)c);
    }
    j->img.c = c;
    return 0;
}

static int png_decode(const char *path, FILE *f, int header_only, struct image *out)
{
    struct png_job *j = calloc(1, sizeof *j);
    if (!j)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    j->f = f;
    j->header_only = header_only;
    int ret = 0;
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    if (j->png)
        j->info = png_create_info_struct(j->png);
    if (!j->png || !j->info) {
        ret = ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    } else {
        int r = png_run(j);
        if (r == -1)
            ret = ptl_error(PTL_EFORMAT, "%s: corrupt or truncated PNG (%s)", path, j->msg);
        else if (r == -2)
            ret = ptl_error(PTL_ENOMEM, "%s: out of memory for a %dx%d image", path, j->img.h,
                            j->img.w);
        else
            ret = check_size(path, j->img.h, j->img.w);
        if (!ret && !header_only && png_pixels(j))
            ret = ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    }
    if (j->png)
        png_destroy_read_struct(&j->png, j->info ? &j->info : NULL, NULL);
    free(j->buf);
    free(j->rows);
    if (ret) {
        free(j->img.px);
        j->img.px = NULL;
    }
    *out = j->img;
    free(j);
    return ret;
}

static int decode(const char *path, int header_only, struct image *img)
{
    memset(img, 0, sizeof *img);
    FILE *f;
    enum kind kind = KIND_JPEG;
    int ret = open_image(path, &f, &kind);
    if (ret)
        return ret;
    ret = kind == KIND_JPEG ? jpeg_decode(path, f, header_only, img)
                            : png_decode(path, f, header_only, img);
    fclose(f);
    return ret;
}

int ptl_image_size(const char *path, int *h, int *w)
{
    struct image img;
    int ret = decode(path, 1, &img);
    if (ret)
        return ret;
    *h = img.h;
    *w = img.w;
    return 0;
}

/* ---------------- PIL's resample ---------------- */

/* Pillow's Resample.c (ImagingResample, 8 bits per channel): a triangle filter of support 1
 * widened by the scale when downscaling (so downscaling averages, i.e. antialiases), weights
 * normalised per output pixel and rounded to 22-bit fixed point, a horizontal pass then a
 * vertical pass, each rounded to uint8. */
#define PRECISION_BITS (32 - 8 - 2)

struct coeffs {
    int ksize;
    int *bounds;  /* out_size * (first, count) */
    int32_t *k;   /* out_size * ksize */
};

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int coeffs_make(int in_size, int out_size, struct coeffs *cf)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = malloc(sizeof *w * (size_t)ksize);
    cf->ksize = ksize;
    cf->bounds = malloc(sizeof *cf->bounds * 2 * (size_t)out_size);
    cf->k = calloc((size_t)out_size * (size_t)ksize, sizeof *cf->k);
    if (!w || !cf->bounds || !cf->k) {
        free(w);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            cf->k[(size_t)xx * (size_t)ksize + (size_t)x] =
                (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                : 0.5 + v * (1 << PRECISION_BITS));
        }
        cf->bounds[2 * xx] = xmin;
        cf->bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return 0;
}

static void coeffs_free(struct coeffs *cf)
{
    free(cf->bounds);
    free(cf->k);
}

static uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One plane: in (ih, iw) with element stride `in_step` -> out (oh, ow) contiguous. */
static void resample_plane(const uint8_t *in, int in_step, int ih, int iw, uint8_t *tmp,
                           uint8_t *out, int oh, int ow, const struct coeffs *ch,
                           const struct coeffs *cv)
{
    for (int y = 0; y < ih; y++) {
        const uint8_t *row = in + (size_t)y * (size_t)iw * (size_t)in_step;
        for (int x = 0; x < ow; x++) {
            int xmin = ch->bounds[2 * x], xn = ch->bounds[2 * x + 1];
            const int32_t *k = ch->k + (size_t)x * (size_t)ch->ksize;
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int i = 0; i < xn; i++)
                ss += row[(size_t)(xmin + i) * (size_t)in_step] * k[i];
            tmp[(size_t)y * (size_t)ow + (size_t)x] = clip8(ss);
        }
    }
    for (int y = 0; y < oh; y++) {
        int ymin = cv->bounds[2 * y], yn = cv->bounds[2 * y + 1];
        const int32_t *k = cv->k + (size_t)y * (size_t)cv->ksize;
        for (int x = 0; x < ow; x++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int i = 0; i < yn; i++)
                ss += tmp[(size_t)(ymin + i) * (size_t)ow + (size_t)x] * k[i];
            out[(size_t)y * (size_t)ow + (size_t)x] = clip8(ss);
        }
    }
}

/* Interleaved (ih, iw, c) -> planar (c, oh, ow). Pillow skips a pass whose size does not
 * change; an identity pass here gives the same values (weight 1 on one pixel), so only the
 * no-resize case is special-cased. */
static int resize_planar(const uint8_t *in, int c, int ih, int iw, uint8_t *out, int oh, int ow)
{
    if (ih == oh && iw == ow) {
        for (int ch = 0; ch < c; ch++)
            for (size_t i = 0; i < (size_t)ih * (size_t)iw; i++)
                out[(size_t)ch * (size_t)ih * (size_t)iw + i] = in[i * (size_t)c + (size_t)ch];
        return 0;
    }
    struct coeffs chz = {0}, cvt = {0};
    uint8_t *tmp = malloc((size_t)ih * (size_t)ow);
    int ret = 0;
    if (!tmp || coeffs_make(iw, ow, &chz) || coeffs_make(ih, oh, &cvt)) {
        ret = -1;
    } else {
        for (int ch = 0; ch < c; ch++)
            resample_plane(in + ch, c, ih, iw, tmp, out + (size_t)ch * (size_t)oh * (size_t)ow,
                           oh, ow, &chz, &cvt);
    }
    free(tmp);
    coeffs_free(&chz);
    coeffs_free(&cvt);
    return ret;
}

/* Channel conversion in place of a new buffer: img (c = 1 or 3) -> want channels. */
static int convert_channels(struct image *img, int want)
{
    if (img->c == want)
        return 0;
    size_t n = (size_t)img->h * (size_t)img->w;
    uint8_t *px = malloc(n * (size_t)want);
    if (!px)
        return -1;
    if (want == 3) {
        for (size_t i = 0; i < n; i++)
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = img->px[i];
    } else {
        /* PIL's rgb2l: L24 with rounding, ITU-R 601-2 luma. */
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = img->px + 3 * i;
            px[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        }
    }
    free(img->px);
    img->px = px;
    img->c = want;
    return 0;
}

static int load(const char *path, int c, int h, int w, int exact, uint8_t *out)
{
    if ((c != 1 && c != 3) || h < 1 || w < 1)
        return ptl_error(PTL_EINVAL, "%s: bad output shape (%d, %d, %d)", path, c, h, w);
    struct image img;
    int ret = decode(path, 0, &img);
    if (ret)
        return ret;
    if (exact && (img.h != h || img.w != w))
        ret = ptl_error(PTL_EFORMAT, "%s: image is %dx%d, expected %dx%d like the others", path,
                        img.h, img.w, h, w);
    else if (convert_channels(&img, c) || resize_planar(img.px, c, img.h, img.w, out, h, w))
        ret = ptl_error(PTL_ENOMEM, "%s: out of memory", path);
    free(img.px);
    return ret;
}

int ptl_image_load(const char *path, int c, int h, int w, uint8_t *out)
{
    return load(path, c, h, w, 0, out);
}

int ptl_image_load_exact(const char *path, int c, int h, int w, uint8_t *out)
{
    return load(path, c, h, w, 1, out);
}
