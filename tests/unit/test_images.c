/* Unit tests of image decoding (src/io/image.c) and the image-file readers: class folders
 * (src/io/folders.c) and the person-ReID layouts (src/io/reid.c).
 *
 * Every image is written by this file into a fresh temporary folder: PNGs by a small encoder
 * below (zlib; so the bit depth, colour type and palette are exactly what each test says), JPEGs
 * with libjpeg. The look-alike trees copy the real layouts' folder and file names, with tiny
 * images whose flat colour tells which file a sample was read from.
 *
 * The readers are driven through the internal contract (dataset_impl.h): a struct ptl_dataset
 * filled with root and split, the open function, then the fields freed as dataset.c does. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <zlib.h>

#include "io/dataset_impl.h"
#include "ptl/ptl.h"

/* ---- PIL references ----
 * Generated once with /usr/bin/python3 (Pillow 9.4.0), pattern
 *   v(x, y, c) = (x*47 + y*89 + c*101 + x*y*13) % 256
 * as an Image.frombytes(mode, (w, h), ...) image, then
 *   im.resize((out_w, out_h), Image.BILINEAR)  or  im.convert("L"),
 * printed band after band (C, H, W). */
static const uint8_t pil_rgb_23x17_to_9x7[] = {
    116, 122, 138, 140, 126, 131, 130, 119, 121, 122, 119, 118, 124, 119, 122, 128, 117, 129,
    112, 98, 116, 145, 150, 163, 140, 123, 148, 144, 111, 135, 132, 134, 130, 112, 146, 134,
    131, 119, 133, 112, 136, 120, 137, 137, 144, 135, 119, 132, 110, 172, 106, 106, 139, 108,
    110, 129, 159, 154, 155, 121, 96, 109, 88, 150, 145, 123, 132, 112, 130, 127, 144, 120, 119,
    137, 118, 126, 117, 122, 140, 123, 133, 135, 158, 135, 126, 145, 142, 133, 118, 132, 138,
    151, 111, 123, 129, 133, 128, 126, 134, 144, 143, 112, 125, 121, 140, 123, 105, 115, 135,
    138, 143, 135, 90, 171, 111, 126, 116, 157, 168, 151, 120, 138, 221, 189, 158, 149, 131,
    118, 132, 90, 164, 121, 139, 120, 124, 131, 132, 128, 118, 132, 134, 130, 141, 137, 156,
    148, 134, 121, 124, 123, 136, 129, 107, 132, 145, 129, 127, 118, 136, 113, 121, 121, 146,
    117, 113, 109, 141, 118, 120, 121, 125, 140, 142, 115, 129, 141, 84, 159, 119, 118, 132,
    140, 121, 131, 102, 70, 82, 124, 142};

static const uint8_t pil_rgb_6x5_to_13x11[] = {
    0, 9, 31, 52, 74, 96, 118, 139, 161, 183, 204, 226, 235, 16, 26, 49, 71, 94, 115, 117, 118,
    139, 162, 184, 207, 216, 57, 68, 93, 118, 144, 163, 114, 64, 83, 109, 134, 159, 170, 97,
    109, 137, 163, 180, 189, 110, 32, 50, 79, 99, 116, 124, 138, 151, 181, 196, 163, 130, 108,
    85, 111, 142, 125, 91, 77, 178, 192, 226, 230, 145, 71, 105, 138, 172, 206, 151, 66, 31,
    102, 117, 154, 174, 146, 119, 102, 84, 116, 153, 141, 112, 101, 26, 43, 81, 118, 147, 166,
    99, 31, 60, 100, 131, 159, 171, 43, 61, 103, 134, 133, 129, 96, 63, 98, 140, 150, 148, 148,
    84, 102, 147, 168, 115, 70, 93, 116, 159, 204, 176, 123, 102, 100, 119, 165, 181, 108, 46,
    92, 137, 183, 229, 186, 113, 83, 101, 110, 132, 153, 175, 197, 219, 240, 154, 57, 49, 71,
    80, 117, 127, 150, 166, 168, 171, 194, 217, 151, 77, 76, 98, 108, 158, 169, 194, 200, 151,
    107, 133, 159, 144, 127, 142, 167, 178, 175, 187, 215, 216, 137, 67, 95, 124, 141, 159, 185,
    213, 225, 99, 112, 143, 160, 138, 119, 151, 181, 153, 120, 134, 165, 178, 23, 37, 71, 104,
    138, 172, 206, 239, 165, 80, 84, 118, 132, 63, 79, 115, 138, 121, 108, 145, 181, 158, 130,
    110, 93, 86, 104, 121, 159, 171, 103, 44, 83, 123, 151, 180, 136, 68, 39, 144, 144, 143,
    133, 100, 73, 115, 157, 159, 158, 133, 100, 86, 185, 163, 111, 77, 101, 126, 171, 215, 171,
    119, 123, 146, 156, 201, 171, 98, 55, 101, 147, 193, 238, 176, 103, 119, 165, 184, 202, 211,
    233, 225, 128, 42, 64, 85, 107, 129, 150, 172, 181, 172, 181, 204, 203, 128, 63, 86, 108,
    112, 113, 130, 153, 162, 96, 107, 132, 147, 129, 115, 141, 166, 123, 74, 80, 105, 116, 43,
    55, 83, 109, 126, 144, 173, 201, 131, 52, 53, 81, 93, 84, 97, 127, 142, 109, 81, 112, 143,
    124, 102, 119, 150, 163, 124, 138, 172, 176, 91, 17, 51, 84, 118, 152, 185, 219, 233, 164,
    157, 140, 120, 92, 69, 106, 142, 129, 112, 135, 171, 187, 205, 176, 108, 64, 93, 122, 161,
    200, 141, 73, 85, 124, 140, 152, 138, 105, 90, 133, 171, 170, 169, 138, 105, 96, 94, 94, 76,
    86, 109, 137, 182, 219, 167, 115, 132, 155, 122, 69, 48, 46, 65, 111, 156, 202, 238, 166,
    93, 129, 175, 132, 59, 29};

static const uint8_t pil_rgb_20x10_to_7x24[] = {
    56, 159, 102, 137, 84, 166, 96, 66, 151, 111, 138, 89, 162, 101, 98, 126, 139, 142, 106,
    147, 116, 130, 101, 167, 147, 122, 132, 131, 149, 110, 160, 147, 122, 142, 132, 166, 124,
    149, 146, 119, 155, 131, 156, 124, 134, 137, 115, 150, 123, 119, 111, 117, 119, 110, 127,
    109, 88, 101, 101, 104, 105, 107, 99, 105, 123, 106, 117, 102, 120, 126, 123, 145, 111, 129,
    99, 133, 153, 122, 143, 123, 127, 119, 136, 142, 113, 129, 138, 118, 149, 135, 114, 104,
    114, 145, 121, 171, 138, 103, 93, 93, 131, 152, 175, 150, 130, 82, 72, 116, 183, 179, 163,
    156, 110, 78, 114, 170, 177, 150, 136, 142, 87, 112, 151, 174, 135, 111, 159, 99, 119, 135,
    164, 123, 112, 162, 113, 134, 122, 145, 114, 139, 163, 124, 148, 111, 128, 106, 160, 140,
    120, 153, 124, 125, 104, 133, 118, 115, 158, 136, 122, 103, 105, 111, 113, 159, 140, 121,
    102, 97, 157, 125, 142, 89, 162, 119, 170, 159, 128, 140, 93, 157, 116, 170, 165, 136, 131,
    106, 138, 107, 168, 170, 144, 123, 119, 120, 98, 166, 148, 146, 118, 132, 121, 108, 154,
    123, 147, 114, 145, 125, 119, 140, 113, 140, 113, 144, 126, 124, 133, 119, 127, 115, 130,
    123, 123, 134, 125, 116, 116, 118, 120, 123, 135, 128, 130, 118, 118, 117, 136, 133, 130,
    144, 120, 118, 115, 149, 132, 116, 144, 120, 118, 126, 142, 113, 93, 140, 118, 117, 142,
    127, 88, 91, 140, 124, 122, 153, 120, 78, 134, 155, 145, 140, 151, 132, 105, 178, 170, 167,
    157, 148, 145, 132, 174, 171, 142, 143, 145, 157, 134, 165, 170, 111, 124, 142, 170, 133,
    156, 164, 103, 115, 138, 158, 132, 145, 152, 119, 114, 133, 122, 133, 134, 140, 130, 115,
    128, 91, 132, 125, 126, 113, 128, 132, 103, 118, 117, 113, 95, 141, 136, 115, 104, 114, 109,
    90, 145, 137, 118, 100, 168, 128, 117, 137, 156, 145, 105, 160, 126, 117, 133, 155, 145,
    105, 135, 118, 116, 119, 152, 143, 106, 110, 110, 116, 105, 149, 142, 107, 112, 117, 120,
    104, 146, 129, 121, 118, 125, 125, 103, 143, 114, 136, 122, 129, 128, 109, 141, 113, 143,
    125, 130, 130, 122, 138, 126, 142, 128, 130, 132, 133, 136, 139, 139, 132, 131, 134, 119,
    133, 151, 125, 136, 132, 136, 106, 130, 163, 111, 149, 132, 125, 111, 130, 151, 126, 167,
    133, 107, 123, 131, 128, 152, 176, 136, 100, 132, 131, 113, 163, 168, 144, 118, 132, 128,
    111, 135, 159, 152, 136, 132, 125, 110, 108, 148, 154, 152, 120, 123, 121, 129, 137, 155,
    167, 106, 120, 134, 156, 128, 155, 162, 105, 118, 132, 157, 119, 154, 138, 118, 115, 117,
    132, 113, 153, 116, 130, 114, 104, 109, 130, 140, 111, 130, 131, 117, 107, 148, 128, 106,
    129, 148, 130, 106, 153, 124, 105, 129, 153, 134, 105};

static const uint8_t pil_l_15x12_to_4x5[] = {
    117, 134, 139, 114, 120, 121, 122, 119, 105, 115, 142, 164, 133, 123, 132, 136, 121, 128,
    119, 120};

static const uint8_t pil_rgb_7x3_to_l[] = {
    82, 129, 147, 194, 91, 138, 108, 142, 202, 112, 95, 126, 186, 96, 81, 154, 121, 194, 117,
    113, 157};


static uint8_t pattern(int x, int y, int c)
{
    return (uint8_t)((x * 47 + y * 89 + c * 101 + x * y * 13) % 256);
}

/* ---- temporary folder ---- */

static char tmp[256];

static void tmp_make(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/ptl-test-images-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tmp_remove(void)
{
    if (tmp[0])
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmp[0] = '\0';
}

TestSuite(images, .init = tmp_make, .fini = tmp_remove);

/* tmp/rel, with the parent folders of rel created. */
static const char *at(const char *rel)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 1024, "%s/%s", tmp, rel);
    for (char *s = p + strlen(tmp) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    return p;
}

static void mkdirs(const char *rel)
{
    char r[1024];
    snprintf(r, sizeof r, "%s/x", rel);
    at(r);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* ---- PNG writer ---- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n)
{
    uint8_t hdr[8];
    put32(hdr, n);
    memcpy(hdr + 4, type, 4);
    uLong crc = crc32(0, hdr + 4, 4);
    if (n)
        crc = crc32(crc, data, n);
    uint8_t tail[4];
    put32(tail, (uint32_t)crc);
    fwrite(hdr, 1, 8, f);
    if (n)
        fwrite(data, 1, n, f);
    fwrite(tail, 1, 4, f);
}

/* rows: h rows of packed samples (big-endian for 16 bits), as PNG stores them. */
static void write_png(const char *path, int w, int h, int color_type, int depth,
                      const uint8_t *rows, const uint8_t *palette, int npal,
                      const uint8_t *trns, int ntrns)
{
    static const int chans[] = {1, 0, 3, 1, 2, 0, 4};
    size_t bits = (size_t)w * (size_t)chans[color_type] * (size_t)depth;
    size_t rowbytes = (bits + 7) / 8;
    size_t rawn = (rowbytes + 1) * (size_t)h;
    uint8_t *raw = malloc(rawn);
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * (rowbytes + 1)] = 0; /* filter: none */
        memcpy(raw + (size_t)y * (rowbytes + 1) + 1, rows + (size_t)y * rowbytes, rowbytes);
    }
    uLongf zn = compressBound(rawn);
    uint8_t *z = malloc(zn);
    cr_assert_eq(compress2(z, &zn, raw, rawn, 9), Z_OK);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
    uint8_t ihdr[13] = {0};
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)color_type;
    chunk(f, "IHDR", ihdr, 13);
    if (palette)
        chunk(f, "PLTE", palette, (uint32_t)npal * 3);
    if (trns)
        chunk(f, "tRNS", trns, (uint32_t)ntrns);
    chunk(f, "IDAT", z, (uint32_t)zn);
    chunk(f, "IEND", NULL, 0);
    cr_assert_eq(fclose(f), 0);
    free(raw);
    free(z);
}

/* An 8-bit grey (c 1) or RGB (c 3) PNG from interleaved pixels. */
static void png8(const char *path, int c, int h, int w, const uint8_t *px)
{
    write_png(path, w, h, c == 1 ? 0 : 2, 8, px, NULL, 0, NULL, 0);
}

/* A flat-colour RGB PNG: the colour tells the tests which file a sample came from. */
static void png_flat(const char *path, int h, int w, uint8_t r, uint8_t g, uint8_t b)
{
    uint8_t *px = malloc((size_t)h * (size_t)w * 3);
    for (int i = 0; i < h * w; i++) {
        px[3 * i] = r;
        px[3 * i + 1] = g;
        px[3 * i + 2] = b;
    }
    png8(path, 3, h, w, px);
    free(px);
}

/* ---- JPEG writer (libjpeg) ---- */

static void write_jpeg(const char *path, int c, int h, int w, const uint8_t *px, int quality)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : c == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * (size_t)w * (size_t)c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    cr_assert_eq(fclose(f), 0);
}

/* Interleaved (H, W, C) -> planar (C, H, W). */
static void to_chw(const uint8_t *hwc, int c, int h, int w, uint8_t *chw)
{
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < h * w; i++)
            chw[ch * h * w + i] = hwc[i * c + ch];
}

static uint8_t *pattern_hwc(int c, int h, int w)
{
    uint8_t *px = malloc((size_t)c * (size_t)h * (size_t)w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++)
                px[(y * w + x) * c + ch] = pattern(x, y, ch);
    return px;
}

static void assert_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s: byte %zu is %d, want %d", what, i, got[i], want[i]);
}

static void assert_error_names(int ret, const char *path)
{
    cr_assert_lt(ret, 0, "expected an error for %s", path);
    cr_assert_not_null(strstr(ptl_error_message(), path), "message \"%s\" does not name %s",
                       ptl_error_message(), path);
}

/* ---- decoding ---- */

Test(images, png_grey_and_rgb_exact)
{
    uint8_t *g = pattern_hwc(1, 3, 5), *rgb = pattern_hwc(3, 3, 7);
    png8(at("g.png"), 1, 3, 5, g);
    png8(at("rgb.png"), 3, 3, 7, rgb);
    int h, w;
    cr_assert_eq(ptl_image_size(at("g.png"), &h, &w), 0, "%s", ptl_error_message());
    cr_assert(h == 3 && w == 5);
    uint8_t out[3 * 3 * 7], want[3 * 3 * 7];
    cr_assert_eq(ptl_image_load(at("g.png"), 1, 3, 5, out), 0, "%s", ptl_error_message());
    assert_bytes(out, g, 15, "grey");
    /* grey -> RGB replicates */
    cr_assert_eq(ptl_image_load(at("g.png"), 3, 3, 5, out), 0);
    for (int ch = 0; ch < 3; ch++)
        assert_bytes(out + ch * 15, g, 15, "grey as RGB");
    cr_assert_eq(ptl_image_load_exact(at("rgb.png"), 3, 3, 7, out), 0, "%s", ptl_error_message());
    to_chw(rgb, 3, 3, 7, want);
    assert_bytes(out, want, sizeof want, "rgb");
    /* RGB -> grey: PIL's convert("L") */
    cr_assert_eq(ptl_image_load(at("rgb.png"), 1, 3, 7, out), 0);
    assert_bytes(out, pil_rgb_7x3_to_l, 21, "rgb as L");
    free(g);
    free(rgb);
}

Test(images, png_palette_16bit_alpha_and_low_depth)
{
    /* 8-bit palette (with a tRNS chunk, which must not leak in as a 4th channel) */
    const uint8_t pal[] = {10, 20, 30, 200, 100, 0, 7, 8, 9};
    const uint8_t trns[] = {0, 128};
    const uint8_t idx[] = {0, 1, 2, 2, 1, 0};
    write_png(at("pal.png"), 3, 2, 3, 8, idx, pal, 3, trns, 2);
    uint8_t out[3 * 2 * 3];
    cr_assert_eq(ptl_image_load(at("pal.png"), 3, 2, 3, out), 0, "%s", ptl_error_message());
    for (int i = 0; i < 6; i++)
        for (int ch = 0; ch < 3; ch++)
            cr_assert_eq(out[ch * 6 + i], pal[idx[i] * 3 + ch], "palette pixel %d", i);
    /* 4-bit palette: two pixels per byte */
    const uint8_t idx4[] = {0x12, 0x00, 0x21, 0x00}; /* rows of 3 pixels: 1 2 0 / 2 1 0 */
    write_png(at("pal4.png"), 3, 2, 3, 4, idx4, pal, 3, NULL, 0);
    const int want4[] = {1, 2, 0, 2, 1, 0};
    cr_assert_eq(ptl_image_load(at("pal4.png"), 3, 2, 3, out), 0, "%s", ptl_error_message());
    for (int i = 0; i < 6; i++)
        cr_assert_eq(out[i], pal[want4[i] * 3], "4-bit palette pixel %d", i);
    /* 16-bit RGB and grey: the high byte */
    uint8_t rows16[2 * 2 * 3 * 2], want[2 * 2 * 3];
    for (int i = 0; i < 12; i++) {
        want[i] = (uint8_t)(i * 20 + 3);
        rows16[2 * i] = want[i];
        rows16[2 * i + 1] = (uint8_t)(255 - i); /* low byte: ignored */
    }
    write_png(at("rgb16.png"), 2, 2, 2, 16, rows16, NULL, 0, NULL, 0);
    uint8_t o16[12], w16[12];
    cr_assert_eq(ptl_image_load(at("rgb16.png"), 3, 2, 2, o16), 0, "%s", ptl_error_message());
    to_chw(want, 3, 2, 2, w16);
    assert_bytes(o16, w16, 12, "16-bit RGB");
    write_png(at("g16.png"), 3, 2, 0, 16, rows16, NULL, 0, NULL, 0);
    cr_assert_eq(ptl_image_load(at("g16.png"), 1, 2, 3, o16), 0, "%s", ptl_error_message());
    assert_bytes(o16, want, 6, "16-bit grey");
    /* RGBA and grey + alpha: alpha dropped, not composited */
    const uint8_t rgba[] = {1, 2, 3, 0, 4, 5, 6, 255, 7, 8, 9, 100};
    write_png(at("rgba.png"), 3, 1, 6, 8, rgba, NULL, 0, NULL, 0);
    cr_assert_eq(ptl_image_load(at("rgba.png"), 3, 1, 3, out), 0, "%s", ptl_error_message());
    const uint8_t want_rgb[] = {1, 4, 7, 2, 5, 8, 3, 6, 9};
    assert_bytes(out, want_rgb, 9, "RGBA");
    const uint8_t ga[] = {50, 0, 60, 255};
    write_png(at("ga.png"), 2, 1, 4, 8, ga, NULL, 0, NULL, 0);
    cr_assert_eq(ptl_image_load(at("ga.png"), 1, 1, 2, out), 0, "%s", ptl_error_message());
    cr_assert(out[0] == 50 && out[1] == 60);
    /* 1-bit grey: 0 / 255 */
    const uint8_t bits[] = {0xA0}; /* 1 0 1 */
    write_png(at("g1.png"), 3, 1, 0, 1, bits, NULL, 0, NULL, 0);
    cr_assert_eq(ptl_image_load(at("g1.png"), 1, 1, 3, out), 0, "%s", ptl_error_message());
    cr_assert(out[0] == 255 && out[1] == 0 && out[2] == 255);
}

Test(images, jpeg_grey_and_rgb_close_to_source)
{
    /* 16x16 flat blocks: with 4:2:0 chroma the colours survive JPEG almost exactly. */
    const int h = 32, w = 48;
    uint8_t *rgb = malloc((size_t)h * w * 3), *g = malloc((size_t)h * w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int b = (y / 16) * 3 + x / 16;
            for (int ch = 0; ch < 3; ch++)
                rgb[(y * w + x) * 3 + ch] = (uint8_t)(b * 30 + ch * 40 + 10);
            g[y * w + x] = (uint8_t)(b * 41);
        }
    write_jpeg(at("rgb.jpg"), 3, h, w, rgb, 95);
    write_jpeg(at("g.JPEG"), 1, h, w, g, 95);
    int hh, ww;
    cr_assert_eq(ptl_image_size(at("rgb.jpg"), &hh, &ww), 0, "%s", ptl_error_message());
    cr_assert(hh == h && ww == w);
    uint8_t *out = malloc((size_t)h * w * 3), *want = malloc((size_t)h * w * 3);
    cr_assert_eq(ptl_image_load(at("rgb.jpg"), 3, h, w, out), 0, "%s", ptl_error_message());
    to_chw(rgb, 3, h, w, want);
    /* Chroma is upsampled smoothly across block edges: compare the blocks' insides. */
    int worst = 0;
    for (int i = 0; i < h * w * 3; i++) {
        int x = i % w, y = (i / w) % h;
        if (x % 16 < 2 || x % 16 > 13 || y % 16 < 2 || y % 16 > 13)
            continue;
        worst = abs(out[i] - want[i]) > worst ? abs(out[i] - want[i]) : worst;
    }
    cr_assert_leq(worst, 4, "RGB JPEG differs by %d", worst);
    cr_assert_eq(ptl_image_load(at("g.JPEG"), 1, h, w, out), 0, "%s", ptl_error_message());
    worst = 0;
    for (int i = 0; i < h * w; i++)
        worst = abs(out[i] - g[i]) > worst ? abs(out[i] - g[i]) : worst;
    cr_assert_leq(worst, 2, "grey JPEG differs by %d", worst);
    /* CMYK: libjpeg writes an Adobe marker, so the samples count as inverted (PIL's "CMYK;I")
     * and C, M, Y, K = 15, 55, 105, 25; PIL's cmyk2rgb then gives 216, 180, 135. */
    uint8_t cmyk[16 * 16 * 4];
    for (int i = 0; i < 16 * 16; i++)
        memcpy(cmyk + 4 * i, (const uint8_t[]){240, 200, 150, 230}, 4);
    write_jpeg(at("cmyk.jpg"), 4, 16, 16, cmyk, 100);
    cr_assert_eq(ptl_image_load(at("cmyk.jpg"), 3, 16, 16, out), 0, "%s", ptl_error_message());
    const int want_cmyk[] = {216, 180, 135};
    for (int ch = 0; ch < 3; ch++)
        cr_assert_leq(abs(out[ch * 256 + 17] - want_cmyk[ch]), 2, "CMYK channel %d: %d", ch,
                      out[ch * 256 + 17]);
    free(rgb);
    free(g);
    free(out);
    free(want);
}

Test(images, resize_matches_pil_bilinear)
{
    struct {
        int c, h, w, oh, ow;
        const uint8_t *want;
    } cases[] = {
        {3, 17, 23, 7, 9, pil_rgb_23x17_to_9x7},    /* downscale: antialiased */
        {3, 5, 6, 11, 13, pil_rgb_6x5_to_13x11},     /* upscale */
        {3, 10, 20, 24, 7, pil_rgb_20x10_to_7x24},   /* one axis each way */
        {1, 12, 15, 5, 4, pil_l_15x12_to_4x5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        uint8_t *px = pattern_hwc(cases[k].c, cases[k].h, cases[k].w);
        char name[32];
        snprintf(name, sizeof name, "p%zu.png", k);
        png8(at(name), cases[k].c, cases[k].h, cases[k].w, px);
        size_t n = (size_t)cases[k].c * cases[k].oh * cases[k].ow;
        uint8_t *out = malloc(n);
        cr_assert_eq(ptl_image_load(at(name), cases[k].c, cases[k].oh, cases[k].ow, out), 0,
                     "%s", ptl_error_message());
        assert_bytes(out, cases[k].want, n, name);
        free(out);
        free(px);
    }
}

Test(images, exact_load_refuses_another_size)
{
    png_flat(at("a.png"), 4, 6, 1, 2, 3);
    uint8_t out[3 * 4 * 6];
    assert_error_names(ptl_image_load_exact(at("a.png"), 3, 6, 4, out), at("a.png"));
    cr_assert_not_null(strstr(ptl_error_message(), "4x6"), "%s", ptl_error_message());
}

Test(images, broken_files_are_errors_naming_them)
{
    uint8_t *px = pattern_hwc(3, 16, 16);
    write_jpeg(at("ok.jpg"), 3, 16, 16, px, 100); /* busy content: the data outweighs the header */
    png8(at("ok.png"), 3, 16, 16, px);
    size_t nj, np;
    uint8_t *jb = read_bytes(at("ok.jpg"), &nj), *pb = read_bytes(at("ok.png"), &np);
    uint8_t out[3 * 16 * 16];
    int h, w;
    /* truncated: header intact, data cut */
    write_bytes(at("cut.jpg"), jb, nj * 2 / 3);
    assert_error_names(ptl_image_load(at("cut.jpg"), 3, 16, 16, out), at("cut.jpg"));
    cr_assert_eq(ptl_image_size(at("cut.jpg"), &h, &w), 0, "the header alone is readable");
    write_bytes(at("cut.png"), pb, np - 30);
    assert_error_names(ptl_image_load(at("cut.png"), 3, 16, 16, out), at("cut.png"));
    /* cut inside the header */
    write_bytes(at("stub.jpg"), jb, 40);
    assert_error_names(ptl_image_size(at("stub.jpg"), &h, &w), at("stub.jpg"));
    write_bytes(at("stub.png"), pb, 20);
    assert_error_names(ptl_image_size(at("stub.png"), &h, &w), at("stub.png"));
    /* corrupt: JPEG markers overwritten after SOI; PNG IHDR bytes changed (CRC mismatch) */
    uint8_t *bad = malloc(nj);
    memcpy(bad, jb, nj);
    memset(bad + 4, 0x5A, 200);
    write_bytes(at("bad.jpg"), bad, nj);
    assert_error_names(ptl_image_load(at("bad.jpg"), 3, 16, 16, out), at("bad.jpg"));
    memcpy(bad, pb, np);
    bad[18] ^= 0x40; /* width */
    write_bytes(at("bad.png"), bad, np);
    assert_error_names(ptl_image_load(at("bad.png"), 3, 16, 16, out), at("bad.png"));
    /* PNG whose compressed data is garbage (chunk CRC fixed up so zlib sees it) */
    memcpy(bad, pb, np);
    uint32_t idat_len = (uint32_t)bad[33] << 24 | bad[34] << 16 | bad[35] << 8 | bad[36];
    memset(bad + 41 + 2, 0xFF, idat_len - 2);
    uLong crc = crc32(0, bad + 37, 4 + idat_len);
    put32(bad + 41 + idat_len, (uint32_t)crc);
    write_bytes(at("zbad.png"), bad, np);
    assert_error_names(ptl_image_load(at("zbad.png"), 3, 16, 16, out), at("zbad.png"));
    /* not an image, empty, missing */
    write_bytes(at("text.jpg"), "hello, world\n", 13);
    assert_error_names(ptl_image_load(at("text.jpg"), 3, 16, 16, out), at("text.jpg"));
    write_bytes(at("empty.png"), "", 0);
    assert_error_names(ptl_image_size(at("empty.png"), &h, &w), at("empty.png"));
    cr_assert_eq(ptl_image_load(at("none.png"), 3, 16, 16, out), PTL_EIO);
    cr_assert_not_null(strstr(ptl_error_message(), "none.png"));
    /* the good ones still load */
    cr_assert_eq(ptl_image_load(at("ok.jpg"), 3, 16, 16, out), 0, "%s", ptl_error_message());
    cr_assert_eq(ptl_image_load(at("ok.png"), 3, 16, 16, out), 0, "%s", ptl_error_message());
    free(bad);
    free(px);
    free(jb);
    free(pb);
}

/* ---- readers ---- */

static struct ptl_dataset *ds_new(const char *split)
{
    struct ptl_dataset *ds = calloc(1, sizeof *ds);
    snprintf(ds->root, sizeof ds->root, "%s", tmp);
    snprintf(ds->split, sizeof ds->split, "%s", split);
    return ds;
}

/* What dataset.c's close does. */
static void ds_free(struct ptl_dataset *ds)
{
    if (!ds)
        return;
    if (ds->close)
        ds->close(ds);
    if (ds->paths)
        for (int i = 0; i < ds->n; i++)
            free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    free(ds->cameras);
    free(ds->pixels);
    free(ds);
}

/* Opens split with layout ("folders" or a ReID layout); NULL on error (message set). */
static struct ptl_dataset *open_ds(const char *layout, const char *split, int h, int w,
                                   int skip_bad, int *ret)
{
    struct ptl_data_options o = {.format = layout, .height = h, .width = w, .skip_bad = skip_bad};
    struct ptl_dataset *ds = ds_new(split);
    *ret = !strcmp(layout, "folders") ? ptl_folders_open(ds, &o) : ptl_reid_open(ds, &o, layout);
    if (*ret) {
        cr_assert(ds->n == 0 && !ds->paths && !ds->labels && !ds->cameras && !ds->priv,
                  "a failed open leaves nothing allocated");
        free(ds);
        return NULL;
    }
    return ds;
}

static struct ptl_dataset *open_ok(const char *layout, const char *split, int h, int w,
                                   int skip_bad)
{
    int ret;
    struct ptl_dataset *ds = open_ds(layout, split, h, w, skip_bad, &ret);
    cr_assert_eq(ret, 0, "%s %s: %s", layout, split, ptl_error_message());
    return ds;
}

/* Opening must fail with a message containing `needle`. */
static void open_fails(const char *layout, const char *split, int skip_bad, const char *needle)
{
    int ret;
    struct ptl_dataset *ds = open_ds(layout, split, 0, 0, skip_bad, &ret);
    cr_assert_null(ds, "%s %s opened", layout, split);
    cr_assert_not_null(strstr(ptl_error_message(), needle), "%s %s: \"%s\" lacks \"%s\"", layout,
                       split, ptl_error_message(), needle);
}

/* The red value of sample i (read through the hook), i.e. which flat file it came from. */
static int red_of(struct ptl_dataset *ds, int i)
{
    size_t n = (size_t)ds->c * ds->h * ds->w;
    uint8_t *out = malloc(n);
    int ret = ds->read(ds, i, out);
    cr_assert_eq(ret, 0, "read %d: %s", i, ptl_error_message());
    int r = out[0];
    for (size_t k = 0; k < (size_t)ds->h * ds->w; k++)
        cr_assert_eq(out[k], r, "sample %d is not flat", i);
    free(out);
    return r;
}

/* stderr into a file while `on`; returns the number of lines written when turned off. */
static int stderr_fd = -1;
static void capture_stderr(void)
{
    fflush(stderr);
    stderr_fd = dup(2);
    FILE *f = fopen(at("stderr.txt"), "w");
    dup2(fileno(f), 2);
    fclose(f);
}

static int captured_lines(void)
{
    fflush(stderr);
    dup2(stderr_fd, 2);
    close(stderr_fd);
    size_t n;
    uint8_t *b = read_bytes(at("stderr.txt"), &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += b[i] == '\n';
    free(b);
    remove(at("stderr.txt"));
    return lines;
}

/* train/{ant,bee,cat}, val/{ant,cat}: colour red = 10 * class + file index. */
static void make_class_tree(void)
{
    png_flat(at("train/ant/b.png"), 4, 6, 1, 0, 0);
    png_flat(at("train/ant/a.PNG"), 4, 6, 0, 0, 0);
    png_flat(at("train/bee/x.png"), 4, 6, 10, 0, 0);
    uint8_t flat[4 * 6];
    memset(flat, 20, sizeof flat);
    write_jpeg(at("train/cat/1.jpeg"), 1, 4, 6, flat, 100); /* grey file in an RGB set */
    png_flat(at("train/cat/2.Jpg"), 4, 6, 21, 0, 0);        /* a PNG named .Jpg */
    write_bytes(at("train/cat/notes.txt"), "x", 1);
    write_bytes(at("train/cat/.hidden.png"), "x", 1);
    mkdirs("train/.git");
    write_bytes(at("train/README"), "x", 1);
    png_flat(at("val/ant/v.png"), 4, 6, 100, 0, 0);
    png_flat(at("val/cat/v.png"), 4, 6, 120, 0, 0);
}

Test(images, class_folders)
{
    make_class_tree();
    struct ptl_dataset *ds = open_ok("folders", "train", 0, 0, 0);
    cr_assert_str_eq(ds->format, "folders");
    cr_assert_eq(ds->n, 5);
    cr_assert_eq(ds->classes, 3);
    cr_assert(ds->c == 3 && ds->h == 4 && ds->w == 6, "shape %d %d %d", ds->c, ds->h, ds->w);
    cr_assert_null(ds->cameras);
    const char *paths[] = {"train/ant/a.PNG", "train/ant/b.png", "train/bee/x.png",
                           "train/cat/1.jpeg", "train/cat/2.Jpg"};
    const int labels[] = {0, 0, 1, 2, 2}, reds[] = {0, 1, 10, 20, 21};
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(ds->paths[i], paths[i]);
        cr_assert_eq(ds->labels[i], labels[i], "label of %s", paths[i]);
        int r = red_of(ds, i);
        cr_assert(abs(r - reds[i]) <= 1, "%s read as %d", paths[i], r);
    }
    ds_free(ds);
    /* val: the train class list (cat stays 2 though bee is absent); resized on request */
    ds = open_ok("folders", "val", 2, 3, 0);
    cr_assert_eq(ds->n, 2);
    cr_assert_eq(ds->classes, 3);
    cr_assert(ds->labels[0] == 0 && ds->labels[1] == 2);
    cr_assert(ds->h == 2 && ds->w == 3);
    cr_assert_eq(red_of(ds, 1), 120);
    ds_free(ds);
}

Test(images, class_folders_size_mismatch_is_a_read_error)
{
    make_class_tree();
    png_flat(at("train/bee/y.png"), 5, 6, 11, 0, 0);
    struct ptl_dataset *ds = open_ok("folders", "train", 0, 0, 0);
    cr_assert_eq(ds->n, 6);
    uint8_t out[3 * 4 * 6];
    cr_assert_str_eq(ds->paths[3], "train/bee/y.png");
    assert_error_names(ds->read(ds, 3, out), "train/bee/y.png");
    cr_assert_eq(ds->read(ds, 2, out), 0);
    ds_free(ds);
    /* with a size, every file is resized */
    ds = open_ok("folders", "train", 4, 6, 0);
    cr_assert_eq(ds->read(ds, 3, out), 0, "%s", ptl_error_message());
    ds_free(ds);
}

Test(images, class_folders_broken)
{
    make_class_tree();
    open_fails("folders", "test", 0, "/test");               /* no such split folder */
    mkdirs("test/ant");
    open_fails("folders", "test", 0, "no images in split test"); /* empty split */
    png_flat(at("val/dog/d.png"), 4, 6, 1, 1, 1);
    open_fails("folders", "val", 0, "val/dog");               /* class train lacks */
    tmp_remove();
    tmp_make();
    png_flat(at("val/ant/v.png"), 4, 6, 100, 0, 0);
    open_fails("folders", "val", 0, "/train");                /* no train split */
    make_class_tree();
    struct ptl_dataset *ds = ds_new("train");
    struct ptl_data_options o = {.height = 4, .width = 0};
    cr_assert_eq(ptl_folders_open(ds, &o), PTL_EINVAL);      /* half a size */
    cr_assert(ds->n == 0 && !ds->paths && !ds->labels && !ds->priv);
    free(ds);
}

Test(images, class_folders_skip_bad)
{
    make_class_tree();
    write_bytes(at("train/bee/broken.png"), "not a png", 9);
    png_flat(at("train/bee/z_big.png"), 8, 8, 12, 0, 0);
    /* without skip_bad: listed, and an error when read */
    struct ptl_dataset *ds = open_ok("folders", "train", 0, 0, 0);
    cr_assert_eq(ds->n, 7);
    cr_assert_eq(ds->skipped, 0);
    uint8_t out[3 * 4 * 6];
    cr_assert_str_eq(ds->paths[2], "train/bee/broken.png");
    assert_error_names(ds->read(ds, 2, out), "train/bee/broken.png");
    ds_free(ds);
    /* with it: both dropped at open, one stderr line each */
    capture_stderr();
    ds = open_ok("folders", "train", 0, 0, 1);
    cr_assert_eq(captured_lines(), 2);
    cr_assert_eq(ds->n, 5);
    cr_assert_eq(ds->skipped, 2);
    cr_assert_str_eq(ds->paths[3], "train/cat/1.jpeg");
    cr_assert_eq(ds->labels[2], 1);
    cr_assert_eq(red_of(ds, 2), 10);
    ds_free(ds);
    /* with a size only the unreadable one goes */
    capture_stderr();
    ds = open_ok("folders", "train", 4, 6, 1);
    cr_assert_eq(captured_lines(), 1);
    cr_assert_eq(ds->n, 6);
    cr_assert_eq(ds->skipped, 1);
    ds_free(ds);
}

/* ---- person ReID look-alikes ---- */

/* A flat 8x4 image at rel, red = r. */
static void person(const char *rel, int r)
{
    png_flat(at(rel), 8, 4, (uint8_t)r, 0, 0);
}

static void make_market(const char *base)
{
    char p[256];
#define AT(folder, name) (snprintf(p, sizeof p, "%s%s/%s", base, folder, name), p)
    person(AT("bounding_box_train", "0002_c1s1_000451_03.jpg"), 1);
    person(AT("bounding_box_train", "0002_c3s1_000551_01.jpg"), 2);
    person(AT("bounding_box_train", "0007_c2s3_070952_01.jpg"), 3);
    person(AT("bounding_box_train", "0000_c1s1_000000_01.jpg"), 4);  /* distractor */
    person(AT("bounding_box_train", "-1_c1s1_000401_03.jpg"), 5);    /* junk */
    write_bytes(at(AT("bounding_box_train", "Thumbs.db")), "x", 1);
    person(AT("query", "0002_c6s1_000451_01.jpg"), 10);
    person(AT("query", "0000_c1s1_000001_01.jpg"), 11);
    person(AT("query", "-1_c2s1_000001_01.jpg"), 12);
    person(AT("bounding_box_test", "-1_c1s1_000401_03.jpg"), 20);
    person(AT("bounding_box_test", "0000_c5s1_000000_01.jpg"), 21);
    person(AT("bounding_box_test", "0002_c2s1_000301_01.jpg"), 22);
    person(AT("bounding_box_test", "1501_c6s4_001877_06.jpg"), 23);
#undef AT
}

Test(images, market1501)
{
    make_market("");
    struct ptl_dataset *ds = open_ok("market1501", "train", 0, 0, 0);
    cr_assert_str_eq(ds->format, "market1501");
    cr_assert_eq(ds->n, 3, "junk and distractors are dropped from train");
    cr_assert_eq(ds->classes, 2);
    cr_assert(ds->h == 8 && ds->w == 4 && ds->c == 3);
    const int labels[] = {0, 0, 1}, cams[] = {0, 2, 1}, reds[] = {1, 2, 3};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ds->labels[i], labels[i], "label %d", i);
        cr_assert_eq(ds->cameras[i], cams[i], "camera %d", i);
        cr_assert_eq(red_of(ds, i), reds[i]);
    }
    cr_assert_str_eq(ds->paths[2], "bounding_box_train/0007_c2s3_070952_01.jpg");
    cr_assert_eq(ds->skipped, 0);
    ds_free(ds);

    ds = open_ok("market1501", "query", 0, 0, 0);
    cr_assert_eq(ds->n, 1);
    cr_assert(ds->labels[0] == 2 && ds->cameras[0] == 5);
    ds_free(ds);

    ds = open_ok("market1501", "gallery", 16, 8, 0);
    cr_assert_eq(ds->n, 3, "the distractor stays in the gallery, junk goes");
    cr_assert(ds->labels[0] == 0 && ds->labels[1] == 2 && ds->labels[2] == 1501);
    cr_assert(ds->cameras[0] == 4 && ds->cameras[1] == 1 && ds->cameras[2] == 5);
    cr_assert_eq(ds->classes, 1502);
    cr_assert(ds->h == 16 && ds->w == 8);
    cr_assert_eq(red_of(ds, 0), 21);
    ds_free(ds);
}

Test(images, market1501_broken)
{
    make_market("");
    person("query/0003_x1s1_000001_01.jpg", 1);
    open_fails("market1501", "query", 0, "query/0003_x1s1_000001_01.jpg");
    person("bounding_box_train/0003_c0s1_000001_01.jpg", 1); /* camera 0 */
    open_fails("market1501", "train", 0, "0003_c0s1_000001_01.jpg");
    open_fails("market1501", "test", 0, "unknown split");
    /* skip_bad: the bad names dropped, counted, one line each */
    capture_stderr();
    struct ptl_dataset *ds = open_ok("market1501", "train", 0, 0, 1);
    cr_assert_eq(captured_lines(), 1);
    cr_assert(ds->n == 3 && ds->skipped == 1);
    ds_free(ds);
    /* missing split folder; a split of junk only is empty */
    remove(at("bounding_box_test/0000_c5s1_000000_01.jpg"));
    remove(at("bounding_box_test/0002_c2s1_000301_01.jpg"));
    remove(at("bounding_box_test/1501_c6s4_001877_06.jpg"));
    open_fails("market1501", "gallery", 0, "no images in split gallery");
    tmp_remove();
    tmp_make();
    open_fails("market1501", "train", 0, "bounding_box_train");
}

Test(images, dukemtmc_and_cuhk03)
{
    person("bounding_box_train/0001_c2_f0046182.jpg", 1);
    person("bounding_box_train/0005_c8_f0000001.jpg", 2);
    person("bounding_box_train/0001_c1_f0000002.jpg", 3);
    person("query/0005_c3_f0000003.jpg", 4);
    person("bounding_box_test/0000_c1_f0000004.jpg", 5); /* id 0 is an ordinary id here */
    struct ptl_dataset *ds = open_ok("dukemtmc", "train", 0, 0, 0);
    cr_assert_eq(ds->n, 3);
    cr_assert_eq(ds->classes, 2);
    /* sorted by name: 0001_c1, 0001_c2, 0005_c8 */
    cr_assert(ds->labels[0] == 0 && ds->labels[1] == 0 && ds->labels[2] == 1);
    cr_assert(ds->cameras[0] == 0 && ds->cameras[1] == 1 && ds->cameras[2] == 7);
    cr_assert_eq(red_of(ds, 0), 3);
    ds_free(ds);
    ds = open_ok("dukemtmc", "query", 0, 0, 0);
    cr_assert(ds->n == 1 && ds->labels[0] == 5 && ds->cameras[0] == 2);
    ds_free(ds);
    ds = open_ok("dukemtmc", "gallery", 0, 0, 0);
    cr_assert(ds->n == 1 && ds->labels[0] == 0);
    ds_free(ds);
    person("bounding_box_train/0009_c2s1_000001_01.jpg", 6); /* a Market name */
    open_fails("dukemtmc", "train", 0, "bounding_box_train/0009_c2s1_000001_01.jpg");
}

Test(images, cuhk03_labeled_and_detected)
{
    person("labeled/bounding_box_train/0001_c1_1.png", 1);
    person("labeled/bounding_box_train/0001_c2_2.png", 2);
    person("labeled/bounding_box_train/0003_c1_1.png", 3);
    person("labeled/query/0010_c1_1.png", 4);
    person("labeled/bounding_box_test/0010_c2_3.png", 5);
    person("detected/bounding_box_train/0002_c2_1.png", 6);
    png_flat(at("detected/bounding_box_train/0004_c1_1.png"), 10, 6, 7, 0, 0); /* other size */
    struct ptl_dataset *ds = open_ok("cuhk03-labeled", "train", 0, 0, 0);
    cr_assert_str_eq(ds->format, "cuhk03-labeled");
    cr_assert(ds->n == 3 && ds->classes == 2);
    cr_assert(ds->labels[1] == 0 && ds->labels[2] == 1 && ds->cameras[1] == 1);
    cr_assert_str_eq(ds->paths[0], "labeled/bounding_box_train/0001_c1_1.png");
    ds_free(ds);
    ds = open_ok("cuhk03-labeled", "gallery", 0, 0, 0);
    cr_assert(ds->n == 1 && ds->labels[0] == 10 && ds->cameras[0] == 1);
    ds_free(ds);
    /* detected: its images differ in size, so a size is needed to read them all */
    ds = open_ok("cuhk03-detected", "train", 8, 4, 0);
    cr_assert(ds->n == 2 && ds->classes == 2);
    cr_assert_eq(red_of(ds, 0), 6);
    cr_assert_eq(red_of(ds, 1), 7);
    ds_free(ds);
    ds = open_ok("cuhk03-detected", "train", 0, 0, 0);
    uint8_t out[3 * 8 * 4];
    assert_error_names(ds->read(ds, 1, out), "0004_c1_1.png");
    ds_free(ds);
    open_fails("cuhk03-detected", "query", 0, "detected/query");
    open_fails("cuhk03", "train", 0, "unknown person ReID layout");
}

/* MSMT17 V1: lists naming files under train/ and test/. */
static void make_msmt(void)
{
    person("train/0000/0000_000_01_0303morning_0015_0.jpg", 1);
    person("train/0000/0000_001_05_0303morning_0016_0.jpg", 2);
    person("train/0002/0002_000_15_0303noon_0001_1.jpg", 3);
    person("test/0000/0000_000_01_0303morning_0025_0.jpg", 4);
    person("test/0007/0007_003_03_0303afternoon_0100_2.jpg", 5);
    person("test/0007/0007_004_12_0303afternoon_0101_2.jpg", 6);
    const char *tr = "0000/0000_000_01_0303morning_0015_0.jpg 0\n"
                     "0002/0002_000_15_0303noon_0001_1.jpg 2\n"
                     "0000/0000_001_05_0303morning_0016_0.jpg 0\n";
    write_bytes(at("list_train.txt"), tr, strlen(tr));
    const char *va = "0002/0002_000_15_0303noon_0001_1.jpg 2\n";
    write_bytes(at("list_val.txt"), va, strlen(va));
    const char *q = "0007/0007_003_03_0303afternoon_0100_2.jpg 7\r\n\n";
    write_bytes(at("list_query.txt"), q, strlen(q));
    const char *g = "0000/0000_000_01_0303morning_0025_0.jpg 0\n"
                    "0007/0007_004_12_0303afternoon_0101_2.jpg 7\n";
    write_bytes(at("list_gallery.txt"), g, strlen(g));
}

Test(images, msmt17)
{
    make_msmt();
    struct ptl_dataset *ds = open_ok("msmt17", "train", 0, 0, 0);
    cr_assert_eq(ds->n, 3, "list_train only");
    cr_assert_eq(ds->classes, 2);
    /* list order kept; ids 0, 2 -> 0, 1 */
    const int labels[] = {0, 1, 0}, cams[] = {0, 14, 4}, reds[] = {1, 3, 2};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ds->labels[i], labels[i], "label %d", i);
        cr_assert_eq(ds->cameras[i], cams[i], "camera %d", i);
        cr_assert_eq(red_of(ds, i), reds[i]);
    }
    cr_assert_str_eq(ds->paths[1], "train/0002/0002_000_15_0303noon_0001_1.jpg");
    ds_free(ds);
    ds = open_ok("msmt17", "query", 0, 0, 0);
    cr_assert(ds->n == 1 && ds->labels[0] == 7 && ds->cameras[0] == 2);
    cr_assert_eq(red_of(ds, 0), 5);
    ds_free(ds);
    ds = open_ok("msmt17", "gallery", 0, 0, 0);
    cr_assert(ds->n == 2 && ds->labels[0] == 0 && ds->labels[1] == 7 && ds->cameras[1] == 11);
    cr_assert_str_eq(ds->paths[0], "test/0000/0000_000_01_0303morning_0025_0.jpg");
    ds_free(ds);
}

Test(images, msmt17_broken)
{
    make_msmt();
    const char *q = "0007/0007_003_03_0303afternoon_0100_2.jpg 8\n"   /* label != id */
                    "0007/0007_003_0303afternoon_0100_2.jpg 7\n"      /* no camera field */
                    "0007/0007_003_03_0303afternoon_0100_2.jpg\n"     /* no label */
                    "0007/0007_003_03_0303afternoon_0100_2.jpg 7\n";
    write_bytes(at("list_query.txt"), q, strlen(q));
    open_fails("msmt17", "query", 0, "list_query.txt:1:");
    capture_stderr();
    struct ptl_dataset *ds = open_ok("msmt17", "query", 0, 0, 1);
    cr_assert_eq(captured_lines(), 3);
    cr_assert(ds->n == 1 && ds->skipped == 3);
    ds_free(ds);
    /* a listed file that is missing: dropped by skip_bad's header check, else a read error */
    const char *g = "0000/0000_000_01_0303morning_0025_0.jpg 0\n"
                    "0009/0009_000_02_0303morning_0001_0.jpg 9\n";
    write_bytes(at("list_gallery.txt"), g, strlen(g));
    capture_stderr();
    ds = open_ok("msmt17", "gallery", 0, 0, 1);
    cr_assert_eq(captured_lines(), 1);
    cr_assert(ds->n == 1 && ds->skipped == 1);
    ds_free(ds);
    ds = open_ok("msmt17", "gallery", 8, 4, 0);
    uint8_t out[3 * 8 * 4];
    assert_error_names(ds->read(ds, 1, out), "0009_000_02_0303morning_0001_0.jpg");
    ds_free(ds);
    /* missing and empty lists */
    remove(at("list_train.txt"));
    open_fails("msmt17", "train", 0, "list_train.txt");
    write_bytes(at("list_train.txt"), "\n", 1);
    open_fails("msmt17", "train", 0, "no images in split train");
}

/* Through the public front end (dataset.c): detection, getters and batched reads. */
Test(images, public_api_on_lookalikes)
{
    make_market("");
    struct ptl_dataset *ds;
    struct ptl_data_options o = {.height = 16, .width = 8};
    cr_assert_eq(ptl_dataset_open(&ds, tmp, "gallery", &o), 0, "%s", ptl_error_message());
    cr_assert_str_eq(ptl_dataset_format(ds), "market1501");
    cr_assert_eq(ptl_dataset_size(ds), 3);
    int c, h, w;
    ptl_dataset_shape(ds, &c, &h, &w);
    cr_assert(c == 3 && h == 16 && w == 8);
    cr_assert_eq(ptl_dataset_labels(ds)[2], 1501);
    cr_assert_eq(ptl_dataset_cameras(ds)[2], 5);
    cr_assert_str_eq(ptl_dataset_path_of(ds, 1), "bounding_box_test/0002_c2s1_000301_01.jpg");
    const int32_t idx[] = {2, 0};
    uint8_t out[2 * 3 * 16 * 8];
    cr_assert_eq(ptl_dataset_read(ds, idx, 2, out), 0, "%s", ptl_error_message());
    cr_assert(out[0] == 23 && out[3 * 16 * 8] == 21);
    ptl_dataset_close(ds);
    /* a bad name is an error through the front end too, and nothing leaks */
    person("query/0003_x1s1_000001_01.jpg", 1);
    cr_assert_lt(ptl_dataset_open(&ds, tmp, "query", NULL), 0);
    cr_assert_not_null(strstr(ptl_error_message(), "0003_x1s1_000001_01.jpg"));
    tmp_remove();
    tmp_make();
    make_class_tree();
    cr_assert_eq(ptl_dataset_open(&ds, tmp, "val", NULL), 0, "%s", ptl_error_message());
    cr_assert_str_eq(ptl_dataset_format(ds), "folders");
    cr_assert(ptl_dataset_size(ds) == 2 && ptl_dataset_classes(ds) == 3);
    cr_assert_null(ptl_dataset_cameras(ds));
    ptl_dataset_close(ds);
}
