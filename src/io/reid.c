/* Person re-identification layouts: identity and camera of every image, from the file names
 * (Market-1501, DukeMTMC-reID, CUHK03-NP) or from MSMT17's list files.
 *
 *   market1501, dukemtmc:  ROOT/{bounding_box_train, query, bounding_box_test}/
 *   cuhk03-labeled/-detected: the same three folders under ROOT/labeled or ROOT/detected
 *   msmt17 (V1):           ROOT/list_{train,query,gallery}.txt naming files of ROOT/train
 *                          (train) or ROOT/test (query, gallery)
 *
 * Split "gallery" is bounding_box_test. Names are ID_cCAM..., e.g. Market's
 * 0002_c1s1_000451_03.jpg, Duke's 0001_c2_f0046182.jpg, CUHK03-NP's 0001_c1_1.png; cameras are
 * stored 0-based. Identity -1 (Market's junk) is dropped everywhere; identity 0 (Market's
 * distractors) is dropped from train and query and kept in the gallery, as in the usual
 * evaluation code. In the train split identities are relabelled 0..K-1 in sorted order and
 * classes = K; query and gallery keep the raw identity and classes = largest identity + 1, so
 * labels stay in [0, classes) everywhere. The dropped junk and distractors are not "skipped":
 * skipped counts only bad files under skip_bad.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset_impl.h"
#include "ptl/core.h"

#define MAX_ID 99999999L

struct layout {
    const char *name;
    const char *base;  /* folder under ROOT holding the three split folders, or NULL */
    char after_cam;    /* character that follows the camera number in a name */
    int drop_zero;     /* identity 0 = distractor: dropped from train and query */
};

static const struct layout layouts[] = {
    {"market1501", NULL, 's', 1},
    {"dukemtmc", NULL, '_', 0},
    {"cuhk03-labeled", "labeled", '_', 0},
    {"cuhk03-detected", "detected", '_', 0},
    {"msmt17", NULL, 0, 0},
};

struct collect {
    struct ptl_dataset *ds;
    int cap;
    int skip_bad;
};

static int append(struct collect *c, char *path, int32_t id, int32_t cam)
{
    struct ptl_dataset *ds = c->ds;
    if (!path)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    if (ds->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 256;
        char **np = realloc(ds->paths, sizeof *np * (size_t)cap);
        if (np)
            ds->paths = np;
        int32_t *nl = realloc(ds->labels, sizeof *nl * (size_t)cap);
        if (nl)
            ds->labels = nl;
        int32_t *nc = realloc(ds->cameras, sizeof *nc * (size_t)cap);
        if (nc)
            ds->cameras = nc;
        if (!np || !nl || !nc) {
            free(path);
            return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
        }
        c->cap = cap;
    }
    ds->paths[ds->n] = path;
    ds->labels[ds->n] = id;
    ds->cameras[ds->n] = cam;
    ds->n++;
    return 0;
}

/* A bad file: an error, or under skip_bad one line on stderr and 0. The message is set. */
static int bad(struct collect *c, int code)
{
    if (!c->skip_bad)
        return code;
    fprintf(stderr, "ptl: skipped %s\n", ptl_error_message());
    c->ds->skipped++;
    return 0;
}

/* Decimal digits at s (at least one, at most 8) up to a character not a digit. */
static int digits(const char *s, long *v, const char **end)
{
    int n = 0;
    *v = 0;
    while (isdigit((unsigned char)s[n]) && n < 9)
        *v = *v * 10 + (s[n++] - '0');
    *end = s + n;
    return n >= 1 && n <= 8 ? 0 : -1;
}

/* "ID_cCAM<after>...": ID is -1 or digits, CAM >= 1. */
static int parse_name(const char *name, char after, long *id, long *cam)
{
    const char *s = name;
    if (!strncmp(s, "-1_", 3)) {
        *id = -1;
        s += 2;
    } else if (digits(s, id, &s)) {
        return -1;
    }
    if (s[0] != '_' || s[1] != 'c' || digits(s + 2, cam, &s) || *cam < 1 || *s != after)
        return -1;
    return 0;
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) + 1 : 0) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, c ? "%s/%s/%s" : "%s/%s", a, b, c ? c : "");
    return s;
}

/* Market-1501, DukeMTMC-reID, CUHK03-NP: the images of one split folder. */
static int collect_folder(struct collect *c, const struct layout *l, const char *folder)
{
    struct ptl_dataset *ds = c->ds;
    /* rel: the split folder relative to ROOT. */
    char *rel = l->base ? join(l->base, folder, NULL) : strdup(folder);
    char *dir = rel ? join(ds->root, rel, NULL) : NULL;
    char **names = NULL;
    int n = 0, ret = 0;
    if (!rel || !dir)
        ret = ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    else if ((ret = ptl_image_names(dir, &names, &n)))
        ret = ptl_error(ret, "%s (split %s of %s)", ptl_error_message(), ds->split, l->name);
    int drop_zero = l->drop_zero && strcmp(ds->split, "gallery") != 0;
    for (int i = 0; i < n && !ret; i++) {
        long id, cam;
        if (parse_name(names[i], l->after_cam, &id, &cam)) {
            ptl_error(PTL_EFORMAT, "%s/%s: file name is not ID_cCAM%s... (%s)", dir, names[i],
                      l->after_cam == 's' ? "s" : "_", l->name);
            ret = bad(c, PTL_EFORMAT);
            continue;
        }
        if (id == -1 || (id == 0 && drop_zero))
            continue;
        ret = append(c, join(rel, names[i], NULL), (int32_t)id, (int32_t)(cam - 1));
    }
    if (!ret && ds->n == 0)
        ret = ptl_error(PTL_EFORMAT, "%s: no images in split %s", dir, ds->split);
    ptl_image_names_free(names, n);
    free(rel);
    free(dir);
    return ret;
}

/* One MSMT17 list line "DIR/ID_xxx_CAM_..._.jpg LABEL" (already stripped of its newline). */
static int msmt_line(struct collect *c, const char *list, int lineno, char *line,
                     const char *img_dir)
{
    char *rel = strtok(line, " \t");
    char *lab = strtok(NULL, " \t");
    char *extra = strtok(NULL, " \t");
    long label, id, cam;
    const char *end;
    if (!rel || !lab || extra || digits(lab, &label, &end) || *end) {
        ptl_error(PTL_EFORMAT, "%s:%d: expected \"PATH LABEL\"", list, lineno);
        return bad(c, PTL_EFORMAT);
    }
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    /* ID_INDEX_CAM_...: the camera is the third field (01 -> 0). */
    const char *s;
    const char *u = strchr(base, '_');
    if (digits(base, &id, &s) || *s != '_' || !u || !(u = strchr(u + 1, '_')) ||
        digits(u + 1, &cam, &s) || *s != '_' || cam < 1 || strstr(rel, "..") || rel[0] == '/') {
        ptl_error(PTL_EFORMAT, "%s:%d: %s: file name is not ID_INDEX_CAM_... (msmt17)", list,
                  lineno, rel);
        return bad(c, PTL_EFORMAT);
    }
    if (id != label) {
        ptl_error(PTL_EFORMAT, "%s:%d: %s: label %ld differs from the identity %ld in the name",
                  list, lineno, rel, label, id);
        return bad(c, PTL_EFORMAT);
    }
    return append(c, join(img_dir, rel, NULL), (int32_t)label, (int32_t)(cam - 1));
}

/* MSMT17 (V1). Split train is list_train.txt alone: list_val.txt is a subset of the original
 * training images that the common protocol sometimes merges back; we keep train as listed. */
static int collect_msmt(struct collect *c)
{
    struct ptl_dataset *ds = c->ds;
    const char *img_dir = !strcmp(ds->split, "train") ? "train" : "test";
    char name[64];
    snprintf(name, sizeof name, "list_%s.txt", ds->split);
    char *list = join(ds->root, name, NULL);
    if (!list)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    FILE *f = fopen(list, "r");
    int ret = 0;
    if (!f) {
        ret = ptl_error(PTL_EIO, "%s: %s (list of split %s of msmt17)", list,
                        errno == ENOENT ? "no such file" : strerror(errno), ds->split);
        free(list);
        return ret;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while (!ret && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        if (len == 0)
            continue;
        ret = msmt_line(c, list, lineno, line, img_dir);
    }
    if (!ret && ferror(f))
        ret = ptl_error(PTL_EIO, "%s: read error", list);
    if (!ret && ds->n == 0)
        ret = ptl_error(PTL_EFORMAT, "%s: no images in split %s", list, ds->split);
    free(line);
    fclose(f);
    free(list);
    return ret;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Train: identities -> 0..K-1 in sorted order. Query/gallery: raw ids, classes = max + 1. */
static int set_labels(struct ptl_dataset *ds)
{
    int train = !strcmp(ds->split, "train");
    if (!train) {
        int32_t mx = 0;
        for (int i = 0; i < ds->n; i++)
            if (ds->labels[i] > mx)
                mx = ds->labels[i];
        ds->classes = mx + 1;
        return 0;
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)ds->n);
    if (!ids)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    memcpy(ids, ds->labels, sizeof *ids * (size_t)ds->n);
    qsort(ids, (size_t)ds->n, sizeof *ids, cmp_i32);
    int k = 0;
    for (int i = 0; i < ds->n; i++)
        if (i == 0 || ids[i] != ids[k - 1])
            ids[k++] = ids[i];
    for (int i = 0; i < ds->n; i++) {
        const int32_t *hit = bsearch(&ds->labels[i], ids, (size_t)k, sizeof *ids, cmp_i32);
        ds->labels[i] = (int32_t)(hit - ids);
    }
    ds->classes = k;
    free(ids);
    return 0;
}

static void reset(struct ptl_dataset *ds)
{
    for (int i = 0; i < ds->n; i++)
        free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    free(ds->cameras);
    ds->paths = NULL;
    ds->labels = NULL;
    ds->cameras = NULL;
    ds->n = 0;
}

int ptl_reid_open(struct ptl_dataset *ds, const struct ptl_data_options *o, const char *layout)
{
    const struct layout *l = NULL;
    for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++)
        if (layout && !strcmp(layout, layouts[i].name))
            l = &layouts[i];
    if (!l)
        return ptl_error(PTL_EINVAL, "%s: unknown person ReID layout \"%s\"", ds->root,
                         layout ? layout : "(null)");
    snprintf(ds->format, sizeof ds->format, "%s", l->name);
    const char *folder = !strcmp(ds->split, "train")     ? "bounding_box_train"
                         : !strcmp(ds->split, "query")   ? "query"
                         : !strcmp(ds->split, "gallery") ? "bounding_box_test"
                                                         : NULL;
    if (!folder)
        return ptl_error(PTL_EINVAL, "%s: unknown split \"%s\" of %s (train, query or gallery)",
                         ds->root, ds->split, l->name);
    struct collect c = {ds, 0, o ? o->skip_bad : 0};
    int ret = l->after_cam ? collect_folder(&c, l, folder) : collect_msmt(&c);
    if (!ret)
        ret = ptl_image_files_setup(ds, o);
    if (!ret && (ret = set_labels(ds)) && ds->close) {
        ds->close(ds);
        ds->read = NULL;
        ds->close = NULL;
    }
    if (ret)
        reset(ds);
    return ret;
}
