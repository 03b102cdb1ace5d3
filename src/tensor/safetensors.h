/* safetensors.h: read and write .safetensors files (Hugging Face format).
 *
 * Owns: the file format: the 8-byte little-endian header size, the JSON
 * header (tensor entries and the optional "__metadata__" string map), strict
 * validation of that header against the reference implementation's rules
 * (docs/SAFETENSORS.md lists them), zero-copy access to tensor bytes in a
 * read-only memory map, conversion of a stored tensor to f32, and the atomic
 * writer. Does not own tensors (tensor.h), checkpoint name mapping (models/)
 * or dtype conversion (dtype.h).
 *
 * Reading: it_safetensors_open maps the file and validates the whole header
 * before returning; afterwards every tensor's bytes are known to lie inside
 * the mapping, so accessors cannot fail. Tensor data is not touched until the
 * caller reads it (lazy: the OS pages in what is used). Files may contain
 * dtypes we do not compute with (F64, I8, F8_E4M3, ...): they are listed with
 * their raw dtype string and supported == 0, and loading them as f32 fails
 * with IT_ERR_UNSUPPORTED.
 *
 * Writing: collect tensors (borrowed pointers) and metadata in a writer, then
 * save: the file appears complete or not at all (temp file, fsync, rename).
 *
 * Assumes a little-endian host, like the format itself. */
#ifndef IT_SAFETENSORS_H
#define IT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/mem.h"
#include "base/status.h"
#include "tensor/dtype.h"

#define IT_SAFETENSORS_MAX_DIMS 8
/* Header size limit of the reference implementation (MAX_HEADER_SIZE). */
#define IT_SAFETENSORS_MAX_HEADER 100000000u
/* Longest dtype name we store ("F8_E4M3" and friends fit easily). */
#define IT_SAFETENSORS_DTYPE_NAME_MAX 16

typedef struct it_safetensors_tensor {
    const char *name;        /* NUL-terminated; owned by the file handle */
    char dtype_name[IT_SAFETENSORS_DTYPE_NAME_MAX]; /* as in the file: "F32", "F8_E4M3" */
    int supported;           /* 1 when dtype is one of it_dtype */
    it_dtype dtype;          /* valid only when supported */
    int n_dims;              /* 0 for a scalar */
    int64_t shape[IT_SAFETENSORS_MAX_DIMS]; /* (n_dims) */
    uint64_t numel;          /* product of shape; 1 for a scalar */
    uint64_t offset;         /* begin of the bytes within the data section */
    size_t nbytes;           /* end - begin */
    /* Zero-copy pointer into the mapping (or the caller's buffer for
     * it_safetensors_parse). Not necessarily aligned to the element size:
     * a file whose header length is not a multiple of 8 misaligns it. */
    const uint8_t *data;
} it_safetensors_tensor;

typedef struct it_safetensors it_safetensors; /* an open, validated file */

/* Maps path read-only and validates it; *out is NULL on error. Error
 * messages start with the path and name the tensor and offsets at fault. */
it_status it_safetensors_open(it_err *err, it_safetensors **out, const char *path);

/* Validates a whole file image already in memory (used by open, the fuzzer
 * and network uploads). The bytes are borrowed: they must outlive *out.
 * label names the source in error messages (a path, "upload"). */
it_status it_safetensors_parse(it_err *err, it_safetensors **out, const uint8_t *data,
                               size_t n, const char *label);

void it_safetensors_close(it_safetensors *f); /* NULL is fine */

/* Tensors in data-offset order (the order of the bytes in the file). */
size_t it_safetensors_count(const it_safetensors *f);
const it_safetensors_tensor *it_safetensors_at(const it_safetensors *f, size_t i);
/* Lookup by exact name (binary search); NULL when absent. */
const it_safetensors_tensor *it_safetensors_find(const it_safetensors *f, const char *name);
/* Like find, but IT_ERR_NOT_FOUND with "FILE: no tensor 'NAME'" when absent. */
it_status it_safetensors_get(it_err *err, const it_safetensors *f, const char *name,
                             const it_safetensors_tensor **out);

/* Sum of numel and of nbytes over all tensors. */
uint64_t it_safetensors_total_params(const it_safetensors *f);
uint64_t it_safetensors_total_bytes(const it_safetensors *f);
const char *it_safetensors_label(const it_safetensors *f); /* path or label */

/* "__metadata__": count, i-th pair (sorted by key), lookup (NULL if absent). */
size_t it_safetensors_metadata_count(const it_safetensors *f);
void it_safetensors_metadata_at(const it_safetensors *f, size_t i, const char **key,
                                const char **value);
const char *it_safetensors_metadata_get(const it_safetensors *f, const char *key);

/* Converts tensor t of f to f32 into dst, which holds n_dst == t->numel
 * floats (else IT_ERR_ARG). Integers convert by value. Unsupported dtypes
 * give IT_ERR_UNSUPPORTED naming file, tensor and dtype. Handles unaligned
 * data. */
it_status it_safetensors_load_f32(it_err *err, const it_safetensors *f,
                                  const it_safetensors_tensor *t, float *dst, size_t n_dst);

/* ---------------------------------------------------------------- writer */

typedef struct it_safetensors_writer it_safetensors_writer;

it_status it_safetensors_writer_new(it_err *err, it_safetensors_writer **out);
void it_safetensors_writer_free(it_safetensors_writer *w); /* NULL is fine */

/* Adds a tensor; data (numel x element size bytes, C order, little endian)
 * is borrowed until save returns. shape: (n_dims), n_dims <= 8. Names must be
 * unique and may not be "__metadata__". */
it_status it_safetensors_writer_add(it_err *err, it_safetensors_writer *w, const char *name,
                                    it_dtype dtype, int n_dims, const int64_t *shape,
                                    const void *data);
/* Same with a raw safetensors dtype name ("F64", "I8", "BOOL", ...), for
 * passing through tensors we do not compute with. */
it_status it_safetensors_writer_add_raw(it_err *err, it_safetensors_writer *w, const char *name,
                                        const char *dtype_name, int n_dims,
                                        const int64_t *shape, const void *data);
/* Converts f32 values (numel of them) to dtype F32, F16 or BF16 (round to
 * nearest even) into a copy owned by the writer: for saving f32 weights in
 * half precision, as LoRA files usually are. data need not outlive the call. */
it_status it_safetensors_writer_add_f32_as(it_err *err, it_safetensors_writer *w, const char *name,
                                          it_dtype dtype, int n_dims, const int64_t *shape,
                                          const float *data);
/* Sets (or replaces) a "__metadata__" entry. Strings are copied. */
it_status it_safetensors_writer_set_metadata(it_err *err, it_safetensors_writer *w,
                                             const char *key, const char *value);

/* Writes the file atomically. Layout as the reference writer: tensors sorted
 * by element size (largest first, so that every tensor is aligned), then by
 * name; header JSON padded with spaces to a multiple of 8 bytes. */
it_status it_safetensors_writer_save(it_err *err, it_safetensors_writer *w, const char *path);
/* The same bytes appended to a buffer (tests, fuzz seeds, uploads). */
it_status it_safetensors_writer_to_buf(it_err *err, it_safetensors_writer *w, it_buf *out);

/* Size of one element of a safetensors dtype name in bits (bits, so that
 * 4- and 6-bit formats fit); 0 for an unknown name. */
unsigned it_safetensors_dtype_bits(const char *dtype_name);

#endif
