/* fileio.h: whole-file reads, atomic writes, read-only memory maps, paths.
 *
 * Owns: the rule that files we write are never seen half-written (write to a
 * temporary file in the same directory, fsync, rename, fsync the directory),
 * and read-only mappings for large inputs such as checkpoints. */
#ifndef IT_FILEIO_H
#define IT_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Reads a whole file (at most max_bytes; larger files are IT_ERR_RANGE).
 * *out is NUL-terminated for convenience and freed with it_free. */
it_status it_file_read(it_err *err, uint8_t **out, size_t *n_out, const char *path,
                       size_t max_bytes);

/* Writes data atomically to path. */
it_status it_file_write_atomic(it_err *err, const char *path, const void *data, size_t n);

/* Atomic writer for streaming output: open returns a FILE* on a temporary
 * file; commit fsyncs and renames over the target; abort removes it. */
typedef struct it_atomic_file {
    void *fp;          /* FILE* */
    char *path;        /* target */
    char *tmp_path;    /* temporary in the same directory */
} it_atomic_file;

it_status it_atomic_open(it_err *err, it_atomic_file *f, const char *path);
it_status it_atomic_commit(it_err *err, it_atomic_file *f);
void it_atomic_abort(it_atomic_file *f);

/* Read-only map of a whole file. Empty files map to data == NULL, size 0. */
typedef struct it_mmap {
    const uint8_t *data;
    size_t size;
} it_mmap;

it_status it_mmap_open(it_err *err, it_mmap *m, const char *path);
void it_mmap_close(it_mmap *m);

/* mkdir -p; ok if it exists. */
it_status it_mkdir_p(it_err *err, const char *path);
int it_file_exists(const char *path);
int it_is_dir(const char *path);
/* Joins a and b with one '/' into buf; IT_ERR_RANGE if it does not fit. */
it_status it_path_join(it_err *err, char *buf, size_t n, const char *a, const char *b);
/* Pointer to the file name part / extension (without dot, "" if none). */
const char *it_path_basename(const char *path);
const char *it_path_ext(const char *path);

#endif
