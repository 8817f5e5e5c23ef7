/* HDF5 helpers shared by the io layer (weights.c) and the ptl forward command. Internal to
 * libptl and its tools; not part of the public API (include/ptl/io.h).
 *
 * What is shared: turning HDF5's error stack into a one-line reason instead of its stderr
 * dump, a file-access property list that locks only where the file system supports it, and
 * replacing a file whole or not at all (temporary file, fsync, rename, fsync of the
 * directory). On top of these, plain float arrays in and out for ptl forward, so the CLI
 * does no HDF5 itself.
 *
 * Failing functions return 0 or a negative PTL_E* code with a one-line message (ptl_error);
 * messages start with "<what> <path>: " where `what` is the caller's name for the file's
 * role ("weights", "input", "output").
 */
#ifndef PTL_IO_H5UTIL_H
#define PTL_IO_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

/* Size of the buffer ptl_h5_reason fills (room for HDF5's longest usual descriptions). */
#define PTL_H5_REASON_SIZE 200

/* HDF5's automatic error printing as it was before ptl_h5_quiet_begin. */
struct ptl_h5_quiet {
    H5E_auto2_t func;
    void *data;
};

/* Turns HDF5's error printing off until ptl_h5_quiet_end restores the saved handler: we
 * report one line per failure, and the caller may rely on HDF5's default for its own calls. */
void ptl_h5_quiet_begin(struct ptl_h5_quiet *q);
void ptl_h5_quiet_end(const struct ptl_h5_quiet *q);

/* Writes the most specific description on HDF5's error stack ("truncated file: eof = ...")
 * into buf and returns buf. Call it right after the failing call: every HDF5 API call clears
 * the stack. */
const char *ptl_h5_reason(char buf[PTL_H5_REASON_SIZE]);

/* Closes *id with closer if it is open and sets it to -1, so cleanup can run more than once. */
void ptl_h5_close_id(hid_t *id, herr_t (*closer)(hid_t));

/* A file-access property list with file locking best-effort (HDF5 1.10.7+ otherwise fails
 * on file systems without locks); H5P_DEFAULT if it cannot be made. Free with
 * ptl_h5_fapl_close, which leaves H5P_DEFAULT alone. */
hid_t ptl_h5_fapl(void);
void ptl_h5_fapl_close(hid_t fapl);

/* > 0 if path has an HDF5 signature, 0 if not, < 0 if it has one but what follows cannot be
 * read (the reason is then on HDF5's stack). Hides the 1.10 / 1.12 API difference. */
htri_t ptl_h5_is_hdf5(const char *path);

/* Creates (truncating) the HDF5 file path with ptl_h5_fapl. track_order != 0 records link
 * creation order, so readers that ask for it see datasets in the order written. Returns the
 * file id, or < 0 with HDF5's reason in why. */
hid_t ptl_h5_create(const char *path, int track_order, char why[PTL_H5_REASON_SIZE]);

/* Writes data (ndim dims, ndim 0 for a scalar) to a new dataset name of file, converting
 * from mem_type to file_type. Returns 0, or -1 with HDF5's reason in why. */
int ptl_h5_write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int ndim,
                         const hsize_t *dims, const void *data, char why[PTL_H5_REASON_SIZE]);

/* Fills the temporary file tmp (already created, empty) for ptl_h5_commit_atomic: creates the
 * HDF5 file, writes it and closes it. Returns 0 or a PTL_E* code with a message. */
typedef int (*ptl_h5_fill_fn)(const char *tmp, void *ctx);

/* Replaces path whole or not at all: fill writes "PATH.tmp.<pid>", which is fsynced and
 * renamed over path, and the directory is fsynced (best effort) so the rename survives a
 * crash. On any failure the temporary file is removed and an existing path is untouched.
 * HDF5 printing is off during fill. Messages: "<what> PATH: path too long", "cannot create
 * TMP (errno text)", "cannot sync TMP (...)", "cannot rename TMP into place (...)", and
 * whatever fill reports. */
int ptl_h5_commit_atomic(const char *what, const char *path, ptl_h5_fill_fn fill, void *ctx);

/* A 64-bit checksum of n bytes (four interleaved multiply-xor lanes: every single-bit error
 * changes it, and it runs at memory speed, unlike HDF5's Fletcher-32 filter). Checkpoints store
 * it per dataset in a "checksum" attribute. */
unsigned long long ptl_h5_checksum(const void *data, size_t n);

/* Reads all of dataset `name` under loc into dst (mem_type, `bytes` bytes) and, when the
 * dataset has a "checksum" attribute, checks dst against it. Returns 0, -1 for an HDF5 read
 * error (reason in why) or -2 for a checksum mismatch. */
int ptl_h5_read_checked(hid_t loc, const char *name, hid_t mem_type, void *dst, size_t bytes,
                        char why[PTL_H5_REASON_SIZE]);

/* Reads float dataset `dataset` of the HDF5 file path into *out (malloc'ed, free it): it
 * must have exactly ndim dimensions, each in 1..INT_MAX, stored as any floating point type
 * (converted to float). dims receives the shape. `layout` names the dimensions in messages
 * ("(N, C, H, W)"). On failure *out is NULL. HDF5 printing is off during the call. */
int ptl_h5_read_floats(const char *what, const char *path, const char *dataset, int ndim,
                       const char *layout, float **out, int dims[]);

/* One array for ptl_h5_write_floats_atomic: ndim dims (0 for a scalar), row-major data. */
struct ptl_h5_array {
    const char *name;
    const float *data;
    int ndim;
    hsize_t dims[H5S_MAX_RANK];
};

/* Writes count arrays as float32 datasets named by their names to path, through
 * ptl_h5_commit_atomic: an existing path is replaced whole or not at all. */
int ptl_h5_write_floats_atomic(const char *what, const char *path,
                               const struct ptl_h5_array *arrays, size_t count);

#endif
