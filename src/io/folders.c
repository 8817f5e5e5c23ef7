/* Datasets made of image files: listing a folder's images, the shape and skip_bad checks, the
 * on-demand reader (shared with reid.c), and the ImageNet-style class-folder layout
 * ROOT/<split>/<class>/<image> (ptl_folders_open).
 *
 * Images are decoded when read, not at open: opening ImageNet must not decode 1.3 M files. At
 * open only the names are listed; with skip_bad each file's header is read too, so files that
 * are not images at all are dropped up front (a file whose header is fine but whose data is
 * broken is still an error when it is read). Every sample has 3 channels (grey files are
 * replicated), like PIL's convert("RGB") in the usual pipelines.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"
#include "ptl/core.h"

/* "a/b" (or "a/b/c" when c is not NULL), malloc'd. */
static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) + 1 : 0) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, c ? "%s/%s/%s" : "%s/%s", a, b, c ? c : "");
    return s;
}

static int is_image_name(const char *name)
{
    if (name[0] == '.')
        return 0;
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
                   !strcasecmp(dot, ".png"));
}

/* Whether entry e of dir is a regular file (want_dir 0) or a folder (1), following links. */
static int entry_is(const char *dir, const struct dirent *e, int want_dir)
{
    if (e->d_type == DT_REG)
        return !want_dir;
    if (e->d_type == DT_DIR)
        return want_dir;
    if (e->d_type != DT_LNK && e->d_type != DT_UNKNOWN)
        return 0;
    char *p = join(dir, e->d_name, NULL);
    struct stat st;
    int ok = p && stat(p, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
    free(p);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ptl_image_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Entries of dir that are image files (dirs 0) or non-hidden folders (dirs 1), sorted. */
static int list_dir(const char *dir, int dirs, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ptl_error(PTL_EIO, "%s: %s", dir,
                         errno == ENOENT ? "no such folder" : strerror(errno));
    char **v = NULL;
    int len = 0, cap = 0, ret = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (dirs ? e->d_name[0] == '.' : !is_image_name(e->d_name))
            continue;
        if (!entry_is(dir, e, dirs))
            continue;
        if (len == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) {
                ret = ptl_error(PTL_ENOMEM, "%s: out of memory listing the folder", dir);
                break;
            }
            v = nv;
        }
        if (!(v[len] = strdup(e->d_name))) {
            ret = ptl_error(PTL_ENOMEM, "%s: out of memory listing the folder", dir);
            break;
        }
        len++;
        errno = 0;
    }
    if (!ret && errno)
        ret = ptl_error(PTL_EIO, "%s: %s", dir, strerror(errno));
    closedir(d);
    if (ret) {
        ptl_image_names_free(v, len);
        return ret;
    }
    if (len)
        qsort(v, (size_t)len, sizeof *v, cmp_str);
    *names = v;
    *n = len;
    return 0;
}

int ptl_image_names(const char *dir, char ***names, int *n)
{
    return list_dir(dir, 0, names, n);
}

/* ---------------- the on-demand reader ---------------- */

struct files_priv {
    int exact; /* no size was given: files must all be ds->h x ds->w */
};

static int files_read(struct ptl_dataset *ds, int i, uint8_t *out)
{
    const struct files_priv *p = ds->priv;
    char path[8192];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", ds->root, ds->paths[i]) >= sizeof path)
        return ptl_error(PTL_EINVAL, "%s/%s: path too long", ds->root, ds->paths[i]);
    return p->exact ? ptl_image_load_exact(path, ds->c, ds->h, ds->w, out)
                    : ptl_image_load(path, ds->c, ds->h, ds->w, out);
}

static void files_close(struct ptl_dataset *ds)
{
    free(ds->priv);
    ds->priv = NULL;
}

/* Moves sample `from` down to slot `to` (compaction after dropped samples). */
static void keep(struct ptl_dataset *ds, int from, int to)
{
    ds->paths[to] = ds->paths[from];
    ds->labels[to] = ds->labels[from];
    if (ds->cameras)
        ds->cameras[to] = ds->cameras[from];
}

int ptl_image_files_setup(struct ptl_dataset *ds, const struct ptl_data_options *o)
{
    int oh = o ? o->height : 0, ow = o ? o->width : 0, skip = o ? o->skip_bad : 0;
    if (oh < 0 || ow < 0 || (oh == 0) != (ow == 0))
        return ptl_error(PTL_EINVAL, "%s: image size %dx%d: give both height and width, or 0x0 "
                         "to keep the files' own size", ds->root, oh, ow);
    ds->c = 3;
    ds->h = oh;
    ds->w = ow;
    char *path = NULL;
    int ret = 0;
    if (skip) {
        int kept = 0, i = 0;
        for (; i < ds->n; i++) {
            free(path);
            if (!(path = join(ds->root, ds->paths[i], NULL))) {
                ret = ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
                break;
            }
            int h, w, bad = ptl_image_size(path, &h, &w);
            if (!bad && oh == 0 && ds->h && (h != ds->h || w != ds->w))
                bad = ptl_error(PTL_EFORMAT, "%s: image is %dx%d, expected %dx%d like the "
                                "others", path, h, w, ds->h, ds->w);
            if (bad) {
                fprintf(stderr, "ptl: skipped %s\n", ptl_error_message());
                free(ds->paths[i]);
                ds->paths[i] = NULL;
                ds->skipped++;
                continue;
            }
            if (oh == 0 && !ds->h) {
                ds->h = h;
                ds->w = w;
            }
            keep(ds, i, kept++);
        }
        for (; i < ds->n; i++) /* after a failure: keep the rest for the caller to free */
            keep(ds, i, kept++);
        for (i = kept; i < ds->n; i++)
            ds->paths[i] = NULL;
        ds->n = kept;
        if (!ret && kept == 0)
            ret = ptl_error(PTL_EFORMAT, "%s: no readable image in split %s (%d skipped)",
                            ds->root, ds->split, ds->skipped);
    } else if (oh == 0 && ds->n > 0) {
        if (!(path = join(ds->root, ds->paths[0], NULL)))
            ret = ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
        else
            ret = ptl_image_size(path, &ds->h, &ds->w);
    }
    free(path);
    if (ret)
        return ret;
    struct files_priv *p = calloc(1, sizeof *p);
    if (!p)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    p->exact = oh == 0;
    ds->priv = p;
    ds->read = files_read;
    ds->close = files_close;
    return 0;
}

/* ---------------- class folders ---------------- */

struct growing {
    struct ptl_dataset *ds;
    int cap;
};

static int append(struct growing *g, char *path, int32_t label)
{
    struct ptl_dataset *ds = g->ds;
    if (!path)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
    if (ds->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 256;
        char **np = realloc(ds->paths, sizeof *np * (size_t)cap);
        if (np)
            ds->paths = np;
        int32_t *nl = realloc(ds->labels, sizeof *nl * (size_t)cap);
        if (nl)
            ds->labels = nl;
        if (!np || !nl) {
            free(path);
            return ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
        }
        g->cap = cap;
    }
    ds->paths[ds->n] = path;
    ds->labels[ds->n] = label;
    ds->n++;
    return 0;
}

static void reset(struct ptl_dataset *ds)
{
    for (int i = 0; i < ds->n; i++)
        free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    ds->paths = NULL;
    ds->labels = NULL;
    ds->n = 0;
}

/* The images of class folder `cls` of the split, appended with `label`. */
static int add_class(struct growing *g, const char *split_dir, const char *cls, int32_t label)
{
    struct ptl_dataset *ds = g->ds;
    char *dir = join(split_dir, cls, NULL);
    if (!dir)
        return ptl_error(PTL_ENOMEM, "%s: out of memory", split_dir);
    char **names;
    int n;
    int ret = ptl_image_names(dir, &names, &n);
    free(dir);
    for (int i = 0; i < n && !ret; i++)
        ret = append(g, join(ds->split, cls, names[i]), label);
    ptl_image_names_free(names, n);
    return ret;
}

int ptl_folders_open(struct ptl_dataset *ds, const struct ptl_data_options *o)
{
    snprintf(ds->format, sizeof ds->format, "folders");
    if (!ds->split[0] || strchr(ds->split, '/') || ds->split[0] == '.')
        return ptl_error(PTL_EINVAL, "%s: bad split name \"%s\"", ds->root, ds->split);
    char *train_dir = join(ds->root, "train", NULL);
    char *split_dir = join(ds->root, ds->split, NULL);
    char **classes = NULL, **here = NULL;
    int k = 0, nh = 0, ret = 0;
    struct growing g = {ds, 0};
    if (!train_dir || !split_dir) {
        ret = ptl_error(PTL_ENOMEM, "%s: out of memory", ds->root);
        goto done;
    }
    /* The class list always comes from train, so every split numbers the classes alike. */
    if ((ret = list_dir(train_dir, 1, &classes, &k))) {
        ret = ptl_error(ret, "%s (the class folders are those of the train split)",
                        ptl_error_message());
        goto done;
    }
    if (k == 0) {
        ret = ptl_error(PTL_EFORMAT, "%s: no class folders", train_dir);
        goto done;
    }
    if ((ret = list_dir(split_dir, 1, &here, &nh)))
        goto done;
    for (int i = 0; i < nh && !ret; i++) {
        char **hit = bsearch(&here[i], classes, (size_t)k, sizeof *classes, cmp_str);
        if (!hit)
            ret = ptl_error(PTL_EFORMAT, "%s/%s: class folder not in %s", split_dir, here[i],
                            train_dir);
        else
            ret = add_class(&g, split_dir, here[i], (int32_t)(hit - classes));
    }
    if (!ret && ds->n == 0)
        ret = ptl_error(PTL_EFORMAT, "%s: no images in split %s", split_dir, ds->split);
    if (!ret) {
        ds->classes = k;
        ret = ptl_image_files_setup(ds, o);
    }
done:
    if (ret)
        reset(ds);
    ptl_image_names_free(classes, k);
    ptl_image_names_free(here, nh);
    free(train_dir);
    free(split_dir);
    return ret;
}
