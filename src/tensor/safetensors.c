/* safetensors.c: strict reader (mmap, zero-copy) and atomic writer.
 *
 * Validation follows the reference implementation (huggingface/safetensors,
 * safetensors/src/tensor.rs: read_metadata and Metadata::validate):
 *   - at least 8 bytes; header size N (u64 LE) <= 100,000,000; 8 + N <= file;
 *   - the header is UTF-8 JSON whose top level is an object;
 *   - "__metadata__", when present, maps strings to strings;
 *   - every other key is a tensor: {"dtype": known name, "shape": [u64...],
 *     "data_offsets": [begin, end]}; other fields in an entry are ignored,
 *     as serde ignores unknown fields;
 *   - sorted by offsets, the tensors tile the data section exactly: the
 *     first begins at 0, each begins where the previous ended (no gap, no
 *     overlap), and the last ends at the end of the file (no trailing bytes);
 *   - end - begin == numel x element size, computed without overflow.
 * Stricter than the reference, on purpose: duplicate JSON keys are rejected
 * (serde keeps the last one silently, so two readers could disagree about a
 * file), and at most 8 dimensions (our tensor limit).
 * Each rule has its own message so that a user knows what to fix. */
#include "tensor/safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

/* ------------------------------------------------------------- dtypes */

/* Every dtype the reference knows, in the order of its Dtype enum, which is
 * "increasing alignment" order; the writer sorts by it (descending) exactly
 * as the reference does, so our files are byte-identical to its files. */
static const struct {
    const char *name;
    unsigned bits;
} g_st_dtypes[] = {
    {"BOOL", 8},         {"F4", 4},           {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},           {"F8_E5M2", 8},      {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8},  {"I16", 16},         {"U16", 16},    {"F16", 16},    {"BF16", 16},
    {"I32", 32},         {"U32", 32},         {"F32", 32},    {"C64", 64},    {"F64", 64},
    {"I64", 64},         {"U64", 64},
};
#define N_ST_DTYPES (sizeof g_st_dtypes / sizeof g_st_dtypes[0])

static int st_dtype_index(const char *name)
{
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(g_st_dtypes[i].name, name) == 0) return (int)i;
    return -1;
}

unsigned it_safetensors_dtype_bits(const char *dtype_name)
{
    int i = st_dtype_index(dtype_name);
    return i < 0 ? 0 : g_st_dtypes[i].bits;
}

/* ------------------------------------------------------------- handle */

typedef struct st_meta {
    const char *key, *value;
} st_meta;

struct it_safetensors {
    it_arena arena;                 /* names, metadata, the arrays below */
    const char *label;              /* path or caller label */
    it_mmap map;                    /* the mapping when opened from a file */
    it_safetensors_tensor *tensors; /* (n_tensors) in offset order */
    size_t n_tensors;
    uint32_t *by_name;              /* (n_tensors) indices sorted by name */
    st_meta *meta;                  /* (n_meta) sorted by key */
    size_t n_meta;
};

/* Copies s into buf for an error message: control characters escaped,
 * long names shortened, so that a hostile name keeps the message on one
 * line and readable. */
static const char *printable(char *buf, size_t n, const char *s)
{
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 8 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) j += (size_t)snprintf(buf + j, n - j, "\\x%02x", c);
        else buf[j++] = (char)c;
    }
    if (j + 8 >= n) {
        memcpy(buf + j, "...", 4);
        return buf;
    }
    buf[j] = '\0';
    return buf;
}

#define NAME_BUF 96

/* Context for the checks of one tensor entry: where messages come from. */
typedef struct entry_ctx {
    it_err *err;
    const char *label;
    char name[NAME_BUF];
} entry_ctx;

static it_status entry_fail(entry_ctx *c, it_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static it_status entry_fail(entry_ctx *c, it_status code, const char *fmt, ...)
{
    char what[IT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return it_err_set(c->err, code, "%s: tensor '%s': %s", c->label, c->name, what);
}

/* A JSON value that must be a non-negative integer; describes what it got. */
static int json_to_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -2;
    *out = (uint64_t)x;
    return 0;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return json_integer_value(v) < 0 ? "negative" : "an integer";
    case JSON_REAL: return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static it_status parse_dtype(entry_ctx *c, it_safetensors_tensor *t, const json_t *entry,
                             unsigned *bits)
{
    const json_t *v = json_object_get(entry, "dtype");
    if (!v) return entry_fail(c, IT_ERR_FORMAT, "missing \"dtype\"");
    if (!json_is_string(v))
        return entry_fail(c, IT_ERR_FORMAT, "\"dtype\" is %s, expected a string", json_kind(v));
    const char *s = json_string_value(v);
    int i = st_dtype_index(s);
    if (i < 0) {
        char shown[NAME_BUF];
        return entry_fail(c, IT_ERR_FORMAT, "unknown dtype '%s'", printable(shown, sizeof shown, s));
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", g_st_dtypes[i].name);
    *bits = g_st_dtypes[i].bits;
    t->supported = it_dtype_parse(s, &t->dtype) == 0;
    if (!t->supported) t->dtype = IT_DTYPE_COUNT;
    return IT_OK;
}

static it_status parse_shape(entry_ctx *c, it_safetensors_tensor *t, const json_t *entry)
{
    const json_t *v = json_object_get(entry, "shape");
    if (!v) return entry_fail(c, IT_ERR_FORMAT, "missing \"shape\"");
    if (!json_is_array(v))
        return entry_fail(c, IT_ERR_FORMAT, "\"shape\" is %s, expected an array", json_kind(v));
    size_t nd = json_array_size(v);
    if (nd > IT_SAFETENSORS_MAX_DIMS)
        return entry_fail(c, IT_ERR_UNSUPPORTED, "shape has %zu dimensions, at most %d supported",
                          nd, IT_SAFETENSORS_MAX_DIMS);
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t d = 0; d < nd; d++) {
        const json_t *dim = json_array_get(v, d);
        uint64_t x;
        if (json_to_u64(dim, &x) != 0)
            return entry_fail(c, IT_ERR_FORMAT, "shape[%zu] is %s, expected a non-negative integer",
                              d, json_kind(dim));
        t->shape[d] = (int64_t)x;
        if (x != 0 && numel > UINT64_MAX / x) overflow = 1;
        else numel *= x;
    }
    /* A zero dimension makes the product 0 even after an overflowing
     * prefix, but the reference checks in order and rejects, so do we. */
    if (overflow)
        return entry_fail(c, IT_ERR_FORMAT, "shape has too many elements (product overflows)");
    t->n_dims = (int)nd;
    t->numel = numel;
    return IT_OK;
}

static it_status parse_offsets(entry_ctx *c, const json_t *entry, uint64_t *begin, uint64_t *end)
{
    const json_t *v = json_object_get(entry, "data_offsets");
    if (!v) return entry_fail(c, IT_ERR_FORMAT, "missing \"data_offsets\"");
    if (!json_is_array(v) || json_array_size(v) != 2)
        return entry_fail(c, IT_ERR_FORMAT, "\"data_offsets\" must be an array [begin, end]");
    uint64_t o[2];
    for (size_t k = 0; k < 2; k++) {
        const json_t *x = json_array_get(v, k);
        if (json_to_u64(x, &o[k]) != 0)
            return entry_fail(c, IT_ERR_FORMAT,
                              "data_offsets[%zu] is %s, expected a non-negative integer", k,
                              json_kind(x));
    }
    if (o[1] < o[0])
        return entry_fail(c, IT_ERR_FORMAT, "data_offsets [%llu, %llu] end before they begin",
                          (unsigned long long)o[0], (unsigned long long)o[1]);
    *begin = o[0];
    *end = o[1];
    return IT_OK;
}

/* Parses one tensor entry into t (name already set). data_len is the size of
 * the data section, for the bounds check. */
static it_status parse_entry(it_err *err, const char *label, it_safetensors_tensor *t,
                             const json_t *entry, uint64_t data_len)
{
    entry_ctx c = {.err = err, .label = label};
    printable(c.name, sizeof c.name, t->name);
    if (!json_is_object(entry))
        return entry_fail(&c, IT_ERR_FORMAT, "entry is %s, expected an object", json_kind(entry));
    unsigned bits = 8;
    uint64_t begin = 0, end = 0;
    IT_TRY(parse_dtype(&c, t, entry, &bits));
    IT_TRY(parse_shape(&c, t, entry));
    IT_TRY(parse_offsets(&c, entry, &begin, &end));
    if (end > data_len)
        return entry_fail(&c, IT_ERR_FORMAT,
                          "data_offsets [%llu, %llu] run past the end of the data section (%llu bytes)",
                          (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)data_len);
    if (t->numel > UINT64_MAX / bits)
        return entry_fail(&c, IT_ERR_FORMAT, "byte size of shape x dtype overflows");
    uint64_t nbits = t->numel * bits;
    if (nbits % 8 != 0)
        return entry_fail(&c, IT_ERR_FORMAT, "%llu elements of %u-bit %s do not fill whole bytes",
                          (unsigned long long)t->numel, bits, t->dtype_name);
    if (end - begin != nbits / 8)
        return entry_fail(&c, IT_ERR_FORMAT,
                          "data_offsets [%llu, %llu] hold %llu bytes but %s x %llu elements need %llu",
                          (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)(end - begin), t->dtype_name,
                          (unsigned long long)t->numel, (unsigned long long)(nbits / 8));
    t->offset = begin;
    t->nbytes = (size_t)(end - begin);
    return IT_OK;
}

static it_status parse_metadata(it_err *err, it_safetensors *f, const json_t *v)
{
    if (!json_is_object(v))
        return it_err_set(err, IT_ERR_FORMAT, "%s: \"__metadata__\" is %s, expected an object of strings",
                          f->label, json_kind(v));
    size_t n = json_object_size(v);
    f->meta = it_arena_calloc(&f->arena, n ? n : 1, sizeof *f->meta);
    if (!f->meta) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", f->label);
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        if (!json_is_string(val)) {
            char shown[NAME_BUF];
            return it_err_set(err, IT_ERR_FORMAT, "%s: \"__metadata__\" value of '%s' is %s, expected a string",
                              f->label, printable(shown, sizeof shown, key), json_kind(val));
        }
        st_meta *m = &f->meta[f->n_meta];
        m->key = it_arena_strdup(&f->arena, key);
        m->value = it_arena_strdup(&f->arena, json_string_value(val));
        if (!m->key || !m->value) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", f->label);
        f->n_meta++;
    }
    return IT_OK;
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

static int cmp_offset(const void *a, const void *b)
{
    const it_safetensors_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* qsort has no context argument; the name sort reads the tensors through
 * this thread-local pointer. */
static _Thread_local const it_safetensors_tensor *g_sort_tensors;

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(g_sort_tensors[*(const uint32_t *)a].name,
                  g_sort_tensors[*(const uint32_t *)b].name);
}

/* The reference's contiguity rule, with separate messages for the three
 * ways to break it. Tensors are already sorted by offsets. */
static it_status check_tiling(it_err *err, const it_safetensors *f, uint64_t data_len)
{
    char a[NAME_BUF], b[NAME_BUF];
    uint64_t pos = 0;
    const it_safetensors_tensor *prev = NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const it_safetensors_tensor *t = &f->tensors[i];
        if (t->offset < pos)
            return it_err_set(err, IT_ERR_FORMAT,
                              "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                              f->label, printable(a, sizeof a, t->name),
                              (unsigned long long)t->offset,
                              (unsigned long long)(t->offset + t->nbytes),
                              printable(b, sizeof b, prev->name), (unsigned long long)prev->offset,
                              (unsigned long long)pos);
        if (t->offset > pos)
            return it_err_set(err, IT_ERR_FORMAT,
                              "%s: tensor '%s': data begins at %llu, expected %llu "
                              "(the data section must be covered without gaps)",
                              f->label, printable(a, sizeof a, t->name),
                              (unsigned long long)t->offset, (unsigned long long)pos);
        pos = t->offset + t->nbytes;
        prev = t;
    }
    if (pos != data_len)
        return it_err_set(err, IT_ERR_FORMAT,
                          "%s: tensors cover %llu bytes of the %llu-byte data section "
                          "(trailing bytes are not allowed)",
                          f->label, (unsigned long long)pos, (unsigned long long)data_len);
    return IT_OK;
}

static it_status parse_header_json(it_err *err, it_safetensors *f, const json_t *root,
                                   const uint8_t *data_start, uint64_t data_len)
{
    if (!json_is_object(root))
        return it_err_set(err, IT_ERR_FORMAT, "%s: header is %s, expected a JSON object", f->label,
                          json_kind(root));
    size_t n = json_object_size(root);
    f->tensors = it_arena_calloc(&f->arena, n ? n : 1, sizeof *f->tensors);
    f->by_name = it_arena_calloc(&f->arena, n ? n : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", f->label);
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            IT_TRY(parse_metadata(err, f, val));
            continue;
        }
        it_safetensors_tensor *t = &f->tensors[f->n_tensors];
        t->name = it_arena_strdup(&f->arena, key);
        if (!t->name) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", f->label);
        IT_TRY(parse_entry(err, f->label, t, val, data_len));
        t->data = data_start + t->offset;
        f->n_tensors++;
    }
    if (f->n_tensors) qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_offset);
    IT_TRY(check_tiling(err, f, data_len));
    for (size_t i = 0; i < f->n_tensors; i++) f->by_name[i] = (uint32_t)i;
    g_sort_tensors = f->tensors;
    if (f->n_tensors) qsort(f->by_name, f->n_tensors, sizeof *f->by_name, cmp_by_name);
    if (f->n_meta) qsort(f->meta, f->n_meta, sizeof *f->meta, cmp_meta);
    return IT_OK;
}

static it_status parse_file_image(it_err *err, it_safetensors *f, const uint8_t *data, size_t n)
{
    if (n < 8)
        return it_err_set(err, IT_ERR_FORMAT,
                          "%s: file is %zu bytes, too short for the 8-byte header size", f->label, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > IT_SAFETENSORS_MAX_HEADER)
        return it_err_set(err, IT_ERR_FORMAT, "%s: header size %llu exceeds the limit of %u bytes (not a safetensors file?)",
                          f->label, (unsigned long long)hlen, IT_SAFETENSORS_MAX_HEADER);
    if (hlen > n - 8)
        return it_err_set(err, IT_ERR_FORMAT,
                          "%s: header size %llu runs past the end of the file (%zu bytes)", f->label,
                          (unsigned long long)hlen, n);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson quotes the offending token, which may hold raw control
         * characters from the file. */
        char text[2 * JSON_ERROR_TEXT_LENGTH];
        return it_err_set(err, IT_ERR_FORMAT, "%s: header is not valid JSON: %s (header byte %d)",
                          f->label, printable(text, sizeof text, jerr.text), jerr.position);
    }
    it_status s = parse_header_json(err, f, root, data + 8 + hlen, n - 8 - hlen);
    json_decref(root);
    return s;
}

static it_status handle_new(it_err *err, it_safetensors **out, const char *label)
{
    it_safetensors *f = it_calloc(1, sizeof *f);
    if (!f) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", label);
    it_arena_init(&f->arena, 1 << 16);
    f->label = it_arena_strdup(&f->arena, label);
    if (!f->label) {
        it_free(f);
        return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", label);
    }
    *out = f;
    return IT_OK;
}

it_status it_safetensors_parse(it_err *err, it_safetensors **out, const uint8_t *data, size_t n,
                               const char *label)
{
    *out = NULL;
    it_safetensors *f;
    IT_TRY(handle_new(err, &f, label ? label : "(memory)"));
    it_status s = parse_file_image(err, f, data, n);
    if (s != IT_OK) {
        it_safetensors_close(f);
        return s;
    }
    *out = f;
    return IT_OK;
}

it_status it_safetensors_open(it_err *err, it_safetensors **out, const char *path)
{
    *out = NULL;
    it_safetensors *f;
    IT_TRY(handle_new(err, &f, path));
    it_status s = it_mmap_open(err, &f->map, path);
    if (s == IT_OK) s = parse_file_image(err, f, f->map.data, f->map.size);
    if (s != IT_OK) {
        it_safetensors_close(f);
        return s;
    }
    *out = f;
    return IT_OK;
}

void it_safetensors_close(it_safetensors *f)
{
    if (!f) return;
    it_mmap_close(&f->map);
    it_arena_free(&f->arena);
    it_free(f);
}

/* ---------------------------------------------------------- accessors */

size_t it_safetensors_count(const it_safetensors *f) { return f->n_tensors; }

const it_safetensors_tensor *it_safetensors_at(const it_safetensors *f, size_t i)
{
    IT_ASSERT(i < f->n_tensors);
    return &f->tensors[i];
}

const it_safetensors_tensor *it_safetensors_find(const it_safetensors *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const it_safetensors_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

it_status it_safetensors_get(it_err *err, const it_safetensors *f, const char *name,
                             const it_safetensors_tensor **out)
{
    *out = it_safetensors_find(f, name);
    if (*out) return IT_OK;
    char shown[NAME_BUF];
    return it_err_set(err, IT_ERR_NOT_FOUND, "%s: no tensor '%s'", f->label,
                      printable(shown, sizeof shown, name));
}

uint64_t it_safetensors_total_params(const it_safetensors *f)
{
    uint64_t s = 0;
    for (size_t i = 0; i < f->n_tensors; i++) s += f->tensors[i].numel;
    return s;
}

uint64_t it_safetensors_total_bytes(const it_safetensors *f)
{
    uint64_t s = 0;
    for (size_t i = 0; i < f->n_tensors; i++) s += f->tensors[i].nbytes;
    return s;
}

const char *it_safetensors_label(const it_safetensors *f) { return f->label; }

size_t it_safetensors_metadata_count(const it_safetensors *f) { return f->n_meta; }

void it_safetensors_metadata_at(const it_safetensors *f, size_t i, const char **key,
                                const char **value)
{
    IT_ASSERT(i < f->n_meta);
    *key = f->meta[i].key;
    *value = f->meta[i].value;
}

const char *it_safetensors_metadata_get(const it_safetensors *f, const char *key)
{
    st_meta probe = {.key = key};
    const st_meta *m = f->n_meta ? bsearch(&probe, f->meta, f->n_meta, sizeof *f->meta, cmp_meta)
                                 : NULL;
    return m ? m->value : NULL;
}

it_status it_safetensors_load_f32(it_err *err, const it_safetensors *f,
                                  const it_safetensors_tensor *t, float *dst, size_t n_dst)
{
    char shown[NAME_BUF];
    if (!t->supported)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported",
                          f->label, printable(shown, sizeof shown, t->name), t->dtype_name);
    if (n_dst != t->numel)
        return it_err_set(err, IT_ERR_ARG, "%s: tensor '%s' has %llu elements, buffer holds %zu",
                          f->label, printable(shown, sizeof shown, t->name),
                          (unsigned long long)t->numel, n_dst);
    size_t es = it_dtype_size(t->dtype);
    if ((uintptr_t)t->data % es == 0) {
        it_dtype_to_f32_n(dst, t->data, t->dtype, n_dst);
        return IT_OK;
    }
    /* Misaligned source (header length not a multiple of 8): copy through
     * an aligned staging buffer rather than read through a bad pointer. */
    _Alignas(8) uint8_t stage[4096];
    size_t per = sizeof stage / es;
    for (size_t i = 0; i < n_dst; i += per) {
        size_t k = n_dst - i < per ? n_dst - i : per;
        memcpy(stage, t->data + i * es, k * es);
        it_dtype_to_f32_n(dst + i, stage, t->dtype, k);
    }
    return IT_OK;
}

/* ------------------------------------------------------------- writer */

typedef struct wr_tensor {
    char *name;
    int dtype_rank; /* index in g_st_dtypes */
    int n_dims;
    int64_t shape[IT_SAFETENSORS_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    void *owned; /* data converted by add_f32_as, freed with the writer */
} wr_tensor;

struct it_safetensors_writer {
    wr_tensor *t;
    size_t n, cap;
    json_t *meta; /* object of strings, or NULL */
};

it_status it_safetensors_writer_new(it_err *err, it_safetensors_writer **out)
{
    *out = it_calloc(1, sizeof **out);
    if (!*out) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    return IT_OK;
}

void it_safetensors_writer_free(it_safetensors_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        it_free(w->t[i].name);
        it_free(w->t[i].owned);
    }
    it_free(w->t);
    json_decref(w->meta);
    it_free(w);
}

it_status it_safetensors_writer_add_raw(it_err *err, it_safetensors_writer *w, const char *name,
                                        const char *dtype_name, int n_dims,
                                        const int64_t *shape, const void *data)
{
    char shown[NAME_BUF];
    printable(shown, sizeof shown, name);
    int rank = st_dtype_index(dtype_name);
    if (rank < 0) return it_err_set(err, IT_ERR_ARG, "tensor '%s': unknown dtype '%s'", shown, dtype_name);
    if (strcmp(name, "__metadata__") == 0)
        return it_err_set(err, IT_ERR_ARG, "\"__metadata__\" is reserved, not a tensor name");
    if (n_dims < 0 || n_dims > IT_SAFETENSORS_MAX_DIMS)
        return it_err_set(err, IT_ERR_ARG, "tensor '%s': %d dimensions, at most %d supported", shown,
                          n_dims, IT_SAFETENSORS_MAX_DIMS);
    uint64_t numel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0) return it_err_set(err, IT_ERR_ARG, "tensor '%s': negative dimension", shown);
        uint64_t x = (uint64_t)shape[d];
        if (x != 0 && numel > UINT64_MAX / x)
            return it_err_set(err, IT_ERR_ARG, "tensor '%s': shape overflows", shown);
        numel *= x;
    }
    unsigned bits = g_st_dtypes[rank].bits;
    if (numel > UINT64_MAX / bits || (numel * bits) % 8 != 0)
        return it_err_set(err, IT_ERR_ARG, "tensor '%s': size is not a whole number of bytes", shown);
    if (numel && !data) return it_err_set(err, IT_ERR_ARG, "tensor '%s': no data", shown);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wr_tensor *p = it_realloc(w->t, cap * sizeof *p);
        if (!p) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
        w->t = p;
        w->cap = cap;
    }
    wr_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = it_strdup(name);
    if (!t->name) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    t->dtype_rank = rank;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    t->nbytes = numel * bits / 8;
    t->data = data;
    w->n++;
    return IT_OK;
}

it_status it_safetensors_writer_add(it_err *err, it_safetensors_writer *w, const char *name,
                                    it_dtype dtype, int n_dims, const int64_t *shape,
                                    const void *data)
{
    return it_safetensors_writer_add_raw(err, w, name, it_dtype_name(dtype), n_dims, shape, data);
}

it_status it_safetensors_writer_add_f32_as(it_err *err, it_safetensors_writer *w, const char *name,
                                          it_dtype dtype, int n_dims, const int64_t *shape,
                                          const float *data)
{
    if (dtype != IT_DTYPE_F32 && dtype != IT_DTYPE_F16 && dtype != IT_DTYPE_BF16)
        return it_err_set(err, IT_ERR_ARG, "tensor '%s': cannot store f32 values as %s", name,
                          it_dtype_name(dtype));
    /* Validate and register first (data pointer fixed up below), so that
     * a bad shape is reported before a large allocation. */
    IT_TRY(it_safetensors_writer_add(err, w, name, dtype, n_dims, shape, data));
    wr_tensor *t = &w->t[w->n - 1];
    size_t numel = (size_t)(t->nbytes / it_dtype_size(dtype));
    void *buf = it_malloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (!buf) {
        it_free(t->name);
        w->n--;
        return it_err_set(err, IT_ERR_NOMEM, "tensor '%s': out of memory for %llu bytes", name,
                          (unsigned long long)t->nbytes);
    }
    if (dtype == IT_DTYPE_F32) memcpy(buf, data, t->nbytes);
    else if (dtype == IT_DTYPE_F16) it_f32_to_f16_n(buf, data, numel);
    else it_f32_to_bf16_n(buf, data, numel);
    t->owned = buf;
    t->data = buf;
    return IT_OK;
}

it_status it_safetensors_writer_set_metadata(it_err *err, it_safetensors_writer *w,
                                             const char *key, const char *value)
{
    if (!w->meta && !(w->meta = json_object()))
        return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    json_t *v = json_string(value);
    if (!v) return it_err_set(err, IT_ERR_ARG, "metadata '%s': value is not valid UTF-8", key);
    if (json_object_set_new(w->meta, key, v) != 0)
        return it_err_set(err, IT_ERR_ARG, "metadata key '%s' is not valid UTF-8", key);
    return IT_OK;
}

/* Reference order: dtype rank descending (largest alignment first), then
 * name ascending. */
static int cmp_wr(const void *a, const void *b)
{
    const wr_tensor *x = a, *y = b;
    if (x->dtype_rank != y->dtype_rank) return y->dtype_rank - x->dtype_rank;
    return strcmp(x->name, y->name);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names must be unique: sort a copy of the name pointers and compare
 * neighbours. */
static it_status wr_check_names(it_err *err, const it_safetensors_writer *w)
{
    if (w->n < 2) return IT_OK;
    const char **names = it_malloc(w->n * sizeof *names);
    if (!names) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n; i++) names[i] = w->t[i].name;
    qsort(names, w->n, sizeof *names, cmp_str_ptr);
    it_status s = IT_OK;
    for (size_t i = 1; i < w->n && s == IT_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            char shown[NAME_BUF];
            s = it_err_set(err, IT_ERR_ARG, "tensor '%s' added twice",
                           printable(shown, sizeof shown, names[i]));
        }
    it_free(names);
    return s;
}

/* A copy of the metadata object with keys inserted in sorted order, so
 * that the file does not depend on the order of set_metadata calls. */
static json_t *wr_sorted_meta(const json_t *meta)
{
    size_t n = json_object_size(meta);
    const char **keys = it_malloc((n ? n : 1) * sizeof *keys);
    json_t *out = json_object();
    if (!keys || !out) goto fail;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)meta, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str_ptr);
    for (i = 0; i < n; i++)
        if (json_object_set(out, keys[i], json_object_get(meta, keys[i])) != 0) goto fail;
    it_free(keys);
    return out;
fail:
    it_free(keys);
    json_decref(out);
    return NULL;
}

static json_t *wr_entry(const wr_tensor *t, uint64_t begin)
{
    json_t *shape = json_array();
    for (int d = 0; shape && d < t->n_dims; d++)
        if (json_array_append_new(shape, json_integer(t->shape[d])) != 0) {
            json_decref(shape);
            return NULL;
        }
    json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", g_st_dtypes[t->dtype_rank].name,
                          "shape", shape, "data_offsets", (json_int_t)begin,
                          (json_int_t)(begin + t->nbytes));
    return e;
}

/* Builds the padded header (8-byte size prefix included) into hdr. */
static it_status wr_header(it_err *err, it_safetensors_writer *w, it_buf *hdr)
{
    if (w->n) qsort(w->t, w->n, sizeof *w->t, cmp_wr);
    IT_TRY(wr_check_names(err, w));
    json_t *root = json_object();
    if (!root) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (w->meta) {
        json_t *meta = wr_sorted_meta(w->meta);
        if (!meta || json_object_set_new(root, "__metadata__", meta) != 0) goto nomem;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        json_t *e = wr_entry(&w->t[i], off);
        if (!e || json_object_set_new(root, w->t[i].name, e) != 0) goto nomem;
        off += w->t[i].nbytes;
    }
    /* PRESERVE_ORDER dumps keys in insertion order: metadata first, then
     * the tensors in data order, as the reference writes them. */
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    size_t len = strlen(s);
    size_t pad = (8 - len % 8) % 8;
    uint64_t total = len + pad;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(total >> (8 * i));
    it_status st = it_buf_append(hdr, le, 8);
    if (st == IT_OK) st = it_buf_append(hdr, s, len);
    if (st == IT_OK) st = it_buf_append(hdr, "        ", pad);
    free(s);
    if (st != IT_OK) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    return IT_OK;
nomem:
    json_decref(root);
    return it_err_set(err, IT_ERR_NOMEM, "out of memory");
}

it_status it_safetensors_writer_to_buf(it_err *err, it_safetensors_writer *w, it_buf *out)
{
    IT_TRY(wr_header(err, w, out));
    for (size_t i = 0; i < w->n; i++)
        if (it_buf_append(out, w->t[i].data, w->t[i].nbytes) != IT_OK)
            return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    return IT_OK;
}

it_status it_safetensors_writer_save(it_err *err, it_safetensors_writer *w, const char *path)
{
    it_buf hdr;
    it_buf_init(&hdr);
    it_status s = wr_header(err, w, &hdr);
    if (s != IT_OK) {
        it_buf_free(&hdr);
        return it_err_prefix(err, "%s", path);
    }
    it_atomic_file af;
    s = it_atomic_open(err, &af, path);
    if (s != IT_OK) {
        it_buf_free(&hdr);
        return s;
    }
    FILE *fp = af.fp;
    int bad = fwrite(hdr.data, 1, hdr.len, fp) != hdr.len;
    it_buf_free(&hdr);
    for (size_t i = 0; !bad && i < w->n; i++)
        bad = w->t[i].nbytes && fwrite(w->t[i].data, 1, w->t[i].nbytes, fp) != w->t[i].nbytes;
    if (bad) {
        it_atomic_abort(&af);
        return it_err_set(err, IT_ERR_IO, "%s: write failed", path);
    }
    return it_atomic_commit(err, &af);
}
