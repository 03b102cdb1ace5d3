/* test_safetensors.c: reader validation, writer layout, round trips, a file
 * written by the real `safetensors` package, out-of-memory paths. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "tensor/safetensors.h"
#include "test.h"

/* Header size meaning "the real length of the JSON". */
#define HREAL 0xfffffffffffffffeULL

/* Writes [8-byte size][json][data_len bytes] to tmpdir/name. Data bytes are
 * a counting pattern. */
static const char *write_st(it_test_ctx *t, const char *name, const char *json, size_t data_len,
                            unsigned long long hsize)
{
    size_t jl = strlen(json);
    size_t n = 8 + jl + data_len;
    uint8_t *buf = malloc(n);
    uint64_t h = hsize == HREAL ? jl : hsize;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(h >> (8 * i));
    memcpy(buf + 8, json, jl);
    for (size_t i = 0; i < data_len; i++) buf[8 + jl + i] = (uint8_t)i;
    const char *p = it_test_write_tmp(t, name, buf, n);
    free(buf);
    return p;
}

#define E(dt, shape, off) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

/* ------------------------------------------------------------ malformed */

IT_TEST(safetensors_rejects_malformed_table)
{
    static const struct {
        const char *what;
        const char *json;
        size_t data_len;
        unsigned long long hsize; /* HREAL: real length */
        const char *want;  /* substring of the message after "PATH: " */
    } cases[] = {
        {"header size past end", "{}", 0, 100, "header size 100 runs past the end of the file (10 bytes)"},
        {"header size over limit", "{}", 0, 100000001, "header size 100000001 exceeds the limit of 100000000 bytes"},
        {"header size 2^63", "{}", 0, 1ULL << 63, "header size 9223372036854775808 exceeds the limit"},
        {"header size 2^64-1", "{}", 0, ~0ULL, "header size 18446744073709551615 exceeds the limit"},
        {"header size 0", "{}", 0, 0, "header is not valid JSON"},
        {"not JSON", "{\"a\":", 0, HREAL, "header is not valid JSON"},
        {"trailing garbage", "{} x", 0, HREAL, "header is not valid JSON: end of file expected"},
        {"invalid UTF-8", "{\"\xff\":1}", 0, HREAL, "header is not valid JSON"},
        {"JSON array", "[1, 2]", 0, HREAL, "header is an array, expected a JSON object"},
        {"JSON scalar", "7", 0, HREAL, "header is not valid JSON"},
        {"duplicate keys", "{\"a\":" E("U8", "[1]", "[0,1]") ",\"a\":" E("U8", "[1]", "[1,2]") "}", 2, HREAL,
         "duplicate object key"},
        {"entry not object", "{\"a\":5}", 0, HREAL, "tensor 'a': entry is an integer, expected an object"},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, HREAL, "tensor 'a': missing \"dtype\""},
        {"dtype not string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, HREAL,
         "tensor 'a': \"dtype\" is an integer, expected a string"},
        {"unknown dtype", "{\"a\":" E("F128", "[1]", "[0,16]") "}", 16, HREAL, "tensor 'a': unknown dtype 'F128'"},
        {"lowercase dtype", "{\"a\":" E("f32", "[1]", "[0,4]") "}", 4, HREAL, "tensor 'a': unknown dtype 'f32'"},
        {"missing shape", "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, HREAL, "tensor 'a': missing \"shape\""},
        {"shape not array", "{\"a\":" E("U8", "3", "[0,3]") "}", 3, HREAL, "tensor 'a': \"shape\" is an integer, expected an array"},
        {"negative dim", "{\"a\":" E("U8", "[2,-3]", "[0,6]") "}", 6, HREAL,
         "tensor 'a': shape[1] is negative, expected a non-negative integer"},
        {"float dim", "{\"a\":" E("U8", "[2.0]", "[0,2]") "}", 2, HREAL,
         "tensor 'a': shape[0] is a number with a fraction or exponent, expected a non-negative integer"},
        {"string dim", "{\"a\":" E("U8", "[\"2\"]", "[0,2]") "}", 2, HREAL, "tensor 'a': shape[0] is a string"},
        {"huge dim", "{\"a\":" E("U8", "[99999999999999999999]", "[0,2]") "}", 2, HREAL,
         "header is not valid JSON: too big integer"},
        {"nine dims", "{\"a\":" E("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, HREAL,
         "tensor 'a': shape has 9 dimensions, at most 8 supported"},
        {"shape product overflow", "{\"a\":" E("U8", "[4294967296,4294967296,2]", "[0,1]") "}", 1, HREAL,
         "tensor 'a': shape has too many elements (product overflows)"},
        {"overflow then zero dim", "{\"a\":" E("U8", "[4294967296,4294967296,2,0]", "[0,0]") "}", 0, HREAL,
         "product overflows"},
        {"byte size overflow", "{\"a\":" E("F64", "[4611686018427387904]", "[0,8]") "}", 8, HREAL,
         "tensor 'a': byte size of shape x dtype overflows"},
        {"missing offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, HREAL, "tensor 'a': missing \"data_offsets\""},
        {"offsets one value", "{\"a\":" E("U8", "[1]", "[1]") "}", 1, HREAL,
         "tensor 'a': \"data_offsets\" must be an array [begin, end]"},
        {"offsets negative", "{\"a\":" E("U8", "[1]", "[-1,0]") "}", 1, HREAL,
         "tensor 'a': data_offsets[0] is negative, expected a non-negative integer"},
        {"offsets reversed", "{\"a\":" E("U8", "[8]", "[8,0]") "}", 8, HREAL,
         "tensor 'a': data_offsets [8, 0] end before they begin"},
        {"offsets outside data", "{\"a\":" E("F32", "[16]", "[0,64]") "}", 16, HREAL,
         "tensor 'a': data_offsets [0, 64] run past the end of the data section (16 bytes)"},
        {"size mismatch", "{\"a\":" E("F32", "[2,2]", "[0,12]") "}", 12, HREAL,
         "tensor 'a': data_offsets [0, 12] hold 12 bytes but F32 x 4 elements need 16"},
        {"sub-byte partial", "{\"a\":" E("F4", "[3]", "[0,1]") "}", 1, HREAL,
         "tensor 'a': 3 elements of 4-bit F4 do not fill whole bytes"},
        {"overlap", "{\"a\":" E("F32", "[4]", "[0,16]") ",\"b\":" E("F32", "[4]", "[8,24]") "}", 24, HREAL,
         "tensor 'b': data_offsets [8, 24] overlap tensor 'a' [0, 16]"},
        {"same range twice", "{\"a\":" E("U8", "[4]", "[0,4]") ",\"b\":" E("U8", "[4]", "[0,4]") "}", 4, HREAL,
         "tensor 'b': data_offsets [0, 4] overlap tensor 'a' [0, 4]"},
        {"gap", "{\"a\":" E("U8", "[8]", "[0,8]") ",\"b\":" E("U8", "[8]", "[16,24]") "}", 24, HREAL,
         "tensor 'b': data begins at 16, expected 8 (the data section must be covered without gaps)"},
        {"first not at 0", "{\"a\":" E("U8", "[8]", "[8,16]") "}", 16, HREAL, "tensor 'a': data begins at 8, expected 0"},
        {"trailing bytes", "{\"a\":" E("U8", "[8]", "[0,8]") "}", 16, HREAL,
         "tensors cover 8 bytes of the 16-byte data section (trailing bytes are not allowed)"},
        {"data but no tensors", "{}", 4, HREAL, "tensors cover 0 bytes of the 4-byte data section"},
        {"metadata not object", "{\"__metadata__\":\"x\"}", 0, HREAL,
         "\"__metadata__\" is a string, expected an object of strings"},
        {"metadata value int", "{\"__metadata__\":{\"k\":1}}", 0, HREAL,
         "\"__metadata__\" value of 'k' is an integer, expected a string"},
        {"metadata value null", "{\"__metadata__\":{\"k\":null}}", 0, HREAL, "value of 'k' is null"},
        {"control chars in name", "{\"a\\nb\":{\"shape\":[1]}}", 0, HREAL, "tensor 'a\\x0ab': missing \"dtype\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_st(t, "case.safetensors", cases[i].json, cases[i].data_len, cases[i].hsize);
        it_err err;
        it_err_clear(&err);
        it_safetensors *f = (void *)1;
        it_status s = it_safetensors_open(&err, &f, p);
        if (s == IT_OK || f != NULL) {
            it_test_fail(t, __FILE__, __LINE__, "case '%s' was accepted", cases[i].what);
            it_safetensors_close(s == IT_OK ? f : NULL);
            continue;
        }
        size_t pl = strlen(p);
        if (strncmp(err.msg, p, pl) != 0 || strncmp(err.msg + pl, ": ", 2) != 0 ||
            !strstr(err.msg, cases[i].want) || strchr(err.msg, '\n'))
            it_test_fail(t, __FILE__, __LINE__, "case '%s':\n      got  %s\n      want %s: ...%s", cases[i].what,
                         err.msg, p, cases[i].want);
        if (s != IT_ERR_FORMAT && s != IT_ERR_UNSUPPORTED)
            it_test_fail(t, __FILE__, __LINE__, "case '%s': status %d", cases[i].what, (int)s);
    }
}

IT_TEST(safetensors_rejects_short_and_missing_files)
{
    static const struct {
        size_t n;
        const char *want;
    } cases[] = {
        {0, "file is 0 bytes, too short for the 8-byte header size"},
        {5, "file is 5 bytes, too short for the 8-byte header size"},
        {7, "file is 7 bytes, too short"},
    };
    const uint8_t bytes[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = it_test_write_tmp(t, "short.safetensors", bytes, cases[i].n);
        it_err err;
        it_safetensors *f;
        IT_CHECK_INT(it_safetensors_open(&err, &f, p), IT_ERR_FORMAT);
        IT_CHECK(f == NULL);
        IT_CHECK_CONTAINS(err.msg, cases[i].want);
        IT_CHECK_CONTAINS(err.msg, p);
    }
    it_err err;
    it_safetensors *f;
    IT_CHECK_INT(it_safetensors_open(&err, &f, it_test_tmp(t, "absent.safetensors")), IT_ERR_IO);
    IT_CHECK_CONTAINS(err.msg, "absent.safetensors: No such file or directory");
    IT_CHECK_INT(it_safetensors_open(&err, &f, t->tmpdir), IT_ERR_IO);
    IT_CHECK_CONTAINS(err.msg, "not a regular file");
}

/* Valid corner cases the reference accepts. */
IT_TEST(safetensors_accepts_corner_cases)
{
    static const struct {
        const char *what, *json;
        size_t data_len, count;
    } cases[] = {
        {"empty header", "{}", 0, 0},
        {"padded empty header", "{}      ", 0, 0},
        {"scalar", "{\"s\":" E("F32", "[]", "[0,4]") "}", 4, 1},
        {"zero-size tensor at end and start",
         "{\"z\":" E("F32", "[0,3]", "[0,0]") ",\"a\":" E("U8", "[2]", "[0,2]") ",\"y\":" E("I64", "[0]", "[2,2]") "}", 2, 3},
        {"unknown field in entry ignored", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":[1]}}", 1, 1},
        {"unsupported dtypes listed", "{\"a\":" E("F8_E4M3", "[2]", "[0,2]") ",\"b\":" E("F64", "[1]", "[2,10]") "}", 10, 2},
        {"sub-byte F4 even count", "{\"a\":" E("F4", "[4]", "[0,2]") "}", 2, 1},
        {"empty metadata", "{\"__metadata__\":{}}", 0, 0},
        {"empty name", "{\"\":" E("U8", "[1]", "[0,1]") "}", 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_st(t, "ok.safetensors", cases[i].json, cases[i].data_len, HREAL);
        it_err err;
        it_safetensors *f;
        it_status s = it_safetensors_open(&err, &f, p);
        if (s != IT_OK) {
            it_test_fail(t, __FILE__, __LINE__, "case '%s': %s", cases[i].what, err.msg);
            continue;
        }
        IT_CHECK_INT(it_safetensors_count(f), cases[i].count);
        it_safetensors_close(f);
    }
    /* Details of the unsupported-dtype case. */
    const char *p = write_st(t, "u.safetensors", "{\"a\":" E("F8_E4M3", "[2]", "[0,2]") ",\"b\":" E("F64", "[1]", "[2,10]") "}", 10, HREAL);
    it_err err;
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, p), &err);
    const it_safetensors_tensor *a = it_safetensors_find(f, "a");
    IT_REQUIRE(a);
    IT_CHECK_STR(a->dtype_name, "F8_E4M3");
    IT_CHECK_INT(a->supported, 0);
    float out[2];
    IT_CHECK_INT(it_safetensors_load_f32(&err, f, a, out, 2), IT_ERR_UNSUPPORTED);
    IT_CHECK_CONTAINS(err.msg, "u.safetensors: tensor 'a': dtype F8_E4M3 is not supported");
    it_safetensors_close(f);
}

/* ------------------------------------------------------------ round trip */

IT_TEST(safetensors_round_trip_all_dtypes)
{
    float f32[6] = {1.5f, -2.25f, 0.0f, -0.0f, 3e38f, 1e-40f};
    uint16_t f16[4], bf16[4];
    const float src16[4] = {0.5f, -1.0f, 65504.0f, 6e-8f};
    it_f32_to_f16_n(f16, src16, 4);
    it_f32_to_bf16_n(bf16, src16, 4);
    int32_t i32[3] = {-7, 0, 2147483647};
    int64_t i64[2] = {-(1LL << 40), 12345};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    double f64[2] = {1.0 / 3.0, -2.0};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t bools[2] = {1, 0};
    float scalar = 42.0f;

    it_err err;
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    int64_t s23[] = {2, 3}, s4[] = {4}, s3[] = {3}, s2[] = {2}, s5[] = {5}, s0[] = {0, 7};
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "f32", IT_DTYPE_F32, 2, s23, f32), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "f16", IT_DTYPE_F16, 1, s4, f16), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "bf16", IT_DTYPE_BF16, 1, s4, bf16), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "i32", IT_DTYPE_I32, 1, s3, i32), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "i64", IT_DTYPE_I64, 1, s2, i64), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "u8", IT_DTYPE_U8, 1, s5, u8), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "scalar", IT_DTYPE_F32, 0, NULL, &scalar), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "empty", IT_DTYPE_F16, 2, s0, NULL), &err);
    IT_CHECK_OK(it_safetensors_writer_add_raw(&err, w, "f64", "F64", 1, s2, f64), &err);
    IT_CHECK_OK(it_safetensors_writer_add_raw(&err, w, "i8", "I8", 1, s3, i8), &err);
    IT_CHECK_OK(it_safetensors_writer_add_raw(&err, w, "bool", "BOOL", 1, s2, bools), &err);
    IT_CHECK_OK(it_safetensors_writer_set_metadata(&err, w, "format", "pt"), &err);
    IT_CHECK_OK(it_safetensors_writer_set_metadata(&err, w, "note", "line1\nline2 \"quoted\" caf\xc3\xa9"), &err);
    IT_CHECK_OK(it_safetensors_writer_set_metadata(&err, w, "format", "intenttuner"), &err);
    const char *path = it_test_tmp(t, "rt.safetensors");
    IT_REQUIRE_OK(it_safetensors_writer_save(&err, w, path), &err);
    it_safetensors_writer_free(w);

    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, path), &err);
    IT_CHECK_INT(it_safetensors_count(f), 11);
    static const struct {
        const char *name, *dtype;
        int supported, n_dims;
        int64_t d0;
        size_t nbytes;
    } want[] = {
        {"f32", "F32", 1, 2, 2, 24}, {"f16", "F16", 1, 1, 4, 8},   {"bf16", "BF16", 1, 1, 4, 8},
        {"i32", "I32", 1, 1, 3, 12}, {"i64", "I64", 1, 1, 2, 16},  {"u8", "U8", 1, 1, 5, 5},
        {"scalar", "F32", 1, 0, 0, 4}, {"empty", "F16", 1, 2, 0, 0}, {"f64", "F64", 0, 1, 2, 16},
        {"i8", "I8", 0, 1, 3, 3},    {"bool", "BOOL", 0, 1, 2, 2},
    };
    const void *data[] = {f32, f16, bf16, i32, i64, u8, &scalar, NULL, f64, i8, bools};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const it_safetensors_tensor *x = it_safetensors_find(f, want[i].name);
        if (!x) {
            it_test_fail(t, __FILE__, __LINE__, "tensor %s missing", want[i].name);
            continue;
        }
        IT_CHECK_STR(x->name, want[i].name);
        IT_CHECK_STR(x->dtype_name, want[i].dtype);
        IT_CHECK_INT(x->supported, want[i].supported);
        IT_CHECK_INT(x->n_dims, want[i].n_dims);
        if (want[i].n_dims) IT_CHECK_INT(x->shape[0], want[i].d0);
        IT_CHECK_INT(x->nbytes, want[i].nbytes);
        if (x->nbytes) IT_CHECK(memcmp(x->data, data[i], x->nbytes) == 0);
        /* The reference layout keeps every tensor aligned to its element. */
        unsigned bytes = it_safetensors_dtype_bits(x->dtype_name) / 8;
        IT_CHECK((uintptr_t)x->data % bytes == 0);
    }
    IT_CHECK(it_safetensors_find(f, "nope") == NULL);
    const it_safetensors_tensor *x;
    IT_CHECK_INT(it_safetensors_get(&err, f, "nope", &x), IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(err.msg, "rt.safetensors: no tensor 'nope'");
    /* Data order is the reference's dtype rank, descending: I64, F64, F32,
     * I32, BF16, F16, I8, U8, BOOL; names ascending within a dtype. */
    IT_CHECK_STR(it_safetensors_at(f, 0)->name, "i64");
    IT_CHECK_STR(it_safetensors_at(f, 1)->name, "f64");
    IT_CHECK_STR(it_safetensors_at(f, 10)->name, "bool");
    IT_CHECK_INT(it_safetensors_total_bytes(f), 24 + 8 + 8 + 12 + 16 + 5 + 4 + 0 + 16 + 3 + 2);
    IT_CHECK_INT(it_safetensors_total_params(f), 6 + 4 + 4 + 3 + 2 + 5 + 1 + 0 + 2 + 3 + 2);

    IT_CHECK_INT(it_safetensors_metadata_count(f), 2);
    IT_CHECK_STR(it_safetensors_metadata_get(f, "format"), "intenttuner");
    IT_CHECK_STR(it_safetensors_metadata_get(f, "note"), "line1\nline2 \"quoted\" caf\xc3\xa9");
    IT_CHECK(it_safetensors_metadata_get(f, "absent") == NULL);
    const char *k, *v;
    it_safetensors_metadata_at(f, 0, &k, &v);
    IT_CHECK_STR(k, "format");

    float out[6];
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, it_safetensors_find(f, "f16"), out, 4), &err);
    for (int i = 0; i < 4; i++) IT_CHECK(out[i] == it_f16_to_f32(f16[i]));
    IT_CHECK(out[2] == 65504.0f);
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, it_safetensors_find(f, "bf16"), out, 4), &err);
    for (int i = 0; i < 4; i++) IT_CHECK(out[i] == it_bf16_to_f32(bf16[i]));
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, it_safetensors_find(f, "f32"), out, 6), &err);
    IT_CHECK(memcmp(out, f32, sizeof f32) == 0);
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, it_safetensors_find(f, "i64"), out, 2), &err);
    IT_CHECK(out[0] == -1099511627776.0f && out[1] == 12345.0f);
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, it_safetensors_find(f, "u8"), out, 5), &err);
    IT_CHECK(out[4] == 255.0f);
    IT_CHECK_INT(it_safetensors_load_f32(&err, f, it_safetensors_find(f, "u8"), out, 4), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "tensor 'u8' has 5 elements, buffer holds 4");
    it_safetensors_close(f);

    /* No temporary file left behind by the atomic writer. */
    DIR *d = opendir(t->tmpdir);
    IT_REQUIRE(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') entries++;
    closedir(d);
    IT_CHECK_INT(entries, 1);
}

IT_TEST(safetensors_writer_rejects_bad_input)
{
    it_err err;
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    uint8_t b[4] = {0};
    int64_t s1[] = {1}, neg[] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, s3[] = {3};
    IT_CHECK_INT(it_safetensors_writer_add_raw(&err, w, "a", "F128", 1, s1, b), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "tensor 'a': unknown dtype 'F128'");
    IT_CHECK_INT(it_safetensors_writer_add(&err, w, "__metadata__", IT_DTYPE_U8, 1, s1, b), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "reserved");
    IT_CHECK_INT(it_safetensors_writer_add(&err, w, "a", IT_DTYPE_U8, 1, neg, b), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "negative dimension");
    IT_CHECK_INT(it_safetensors_writer_add(&err, w, "a", IT_DTYPE_U8, 9, s9, b), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "9 dimensions");
    IT_CHECK_INT(it_safetensors_writer_add_raw(&err, w, "a", "F4", 1, s3, b), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "whole number of bytes");
    IT_CHECK_INT(it_safetensors_writer_add(&err, w, "a", IT_DTYPE_U8, 1, s1, NULL), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "tensor 'a': no data");
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "a", IT_DTYPE_U8, 1, s1, b), &err);
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "a", IT_DTYPE_F32, 1, s1, b), &err);
    const char *path = it_test_tmp(t, "dup.safetensors");
    IT_CHECK_INT(it_safetensors_writer_save(&err, w, path), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "dup.safetensors: tensor 'a' added twice");
    IT_CHECK(!it_file_exists(path));
    IT_CHECK_INT(it_safetensors_writer_set_metadata(&err, w, "k", "bad \xff utf8"), IT_ERR_ARG);
    it_safetensors_writer_free(w);
    it_safetensors_writer_free(NULL);
    it_safetensors_close(NULL);

    /* Saving into a missing directory is an I/O error naming the path. */
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    IT_CHECK_INT(it_safetensors_writer_save(&err, w, it_test_tmp(t, "no/such/dir.safetensors")), IT_ERR_IO);
    IT_CHECK_CONTAINS(err.msg, "no/such/dir.safetensors");
    it_safetensors_writer_free(w);
}

IT_TEST(safetensors_writer_converts_f32)
{
    float v[5] = {1.0f, -2.5f, 1.0f + 1.0f / 2048.0f, 70000.0f, 1e-8f};
    int64_t s5[] = {5};
    it_err err;
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    IT_CHECK_OK(it_safetensors_writer_add_f32_as(&err, w, "h", IT_DTYPE_F16, 1, s5, v), &err);
    IT_CHECK_OK(it_safetensors_writer_add_f32_as(&err, w, "b", IT_DTYPE_BF16, 1, s5, v), &err);
    IT_CHECK_OK(it_safetensors_writer_add_f32_as(&err, w, "f", IT_DTYPE_F32, 1, s5, v), &err);
    IT_CHECK_INT(it_safetensors_writer_add_f32_as(&err, w, "i", IT_DTYPE_I32, 1, s5, v), IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "tensor 'i': cannot store f32 values as I32");
    IT_CHECK_INT(it_safetensors_writer_add_f32_as(&err, w, "n", IT_DTYPE_F16, 1, s5, NULL), IT_ERR_ARG);
    memset(v, 0, sizeof v); /* the writer kept its own converted copy */
    it_buf buf;
    it_buf_init(&buf);
    IT_REQUIRE_OK(it_safetensors_writer_to_buf(&err, w, &buf), &err);
    it_safetensors_writer_free(w);
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_parse(&err, &f, (const uint8_t *)buf.data, buf.len, "mem"), &err);
    const float want[5] = {1.0f, -2.5f, 1.0f + 1.0f / 2048.0f, 70000.0f, 1e-8f};
    float out[5];
    const it_safetensors_tensor *x = it_safetensors_find(f, "h");
    IT_REQUIRE(x && x->dtype == IT_DTYPE_F16);
    for (int i = 0; i < 5; i++) {
        uint16_t h;
        memcpy(&h, x->data + 2 * i, 2);
        IT_CHECK_INT(h, it_f32_to_f16(want[i]));
    }
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, x, out, 5), &err);
    IT_CHECK(out[2] == 1.0f && isinf(out[3]) && out[4] == it_f16_to_f32(it_f32_to_f16(1e-8f)));
    x = it_safetensors_find(f, "b");
    IT_REQUIRE(x && x->dtype == IT_DTYPE_BF16);
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, x, out, 5), &err);
    for (int i = 0; i < 5; i++) IT_CHECK(out[i] == it_bf16_to_f32(it_f32_to_bf16(want[i])));
    x = it_safetensors_find(f, "f");
    IT_REQUIRE(x && x->dtype == IT_DTYPE_F32);
    IT_CHECK(memcmp(x->data, want, sizeof want) == 0);
    IT_CHECK(it_safetensors_find(f, "i") == NULL && it_safetensors_find(f, "n") == NULL);
    it_safetensors_close(f);
    it_buf_free(&buf);
}

/* ------------------------------------------------- the reference package */

static void check_reference_values(it_test_ctx *t, const it_safetensors *f)
{
    it_err err;
    const it_safetensors_tensor *x;
    float out[24];
    IT_REQUIRE_OK(it_safetensors_get(&err, f, "w.f32", &x), &err);
    IT_CHECK(x->n_dims == 3 && x->shape[0] == 2 && x->shape[1] == 3 && x->shape[2] == 4);
    IT_REQUIRE_OK(it_safetensors_load_f32(&err, f, x, out, 24), &err);
    for (int k = 0; k < 24; k++) IT_CHECK(out[k] == k * 0.25f - 3.0f);
    IT_REQUIRE_OK(it_safetensors_get(&err, f, "w.f16", &x), &err);
    IT_CHECK(x->dtype == IT_DTYPE_F16 && x->n_dims == 2 && x->shape[0] == 3 && x->shape[1] == 4);
    IT_REQUIRE_OK(it_safetensors_load_f32(&err, f, x, out, 12), &err);
    for (int k = 0; k < 12; k++) IT_CHECK(out[k] == k * 0.5f - 2.0f);
    IT_REQUIRE_OK(it_safetensors_get(&err, f, "w.bf16", &x), &err);
    IT_CHECK(x->dtype == IT_DTYPE_BF16 && x->n_dims == 1 && x->shape[0] == 8);
    IT_REQUIRE_OK(it_safetensors_load_f32(&err, f, x, out, 8), &err);
    for (int k = 0; k < 8; k++) IT_CHECK(out[k] == k * 1.5f - 4.0f);
    IT_REQUIRE_OK(it_safetensors_get(&err, f, "idx.i64", &x), &err);
    IT_CHECK(x->dtype == IT_DTYPE_I64 && x->nbytes == 48);
    for (int k = 0; k < 6; k++) {
        int64_t v;
        memcpy(&v, x->data + 8 * k, 8);
        IT_CHECK_INT(v, k * 1000000007LL - 2);
    }
    IT_REQUIRE_OK(it_safetensors_get(&err, f, "mask.u8", &x), &err);
    for (int k = 0; k < 5; k++) IT_CHECK_INT(x->data[k], k * 50);
    IT_REQUIRE_OK(it_safetensors_get(&err, f, "scalar.f32", &x), &err);
    IT_CHECK_INT(x->n_dims, 0);
    IT_CHECK_INT(x->numel, 1);
    IT_REQUIRE_OK(it_safetensors_load_f32(&err, f, x, out, 1), &err);
    IT_CHECK(out[0] == 7.5f);
}

IT_TEST(safetensors_reads_file_of_reference_package)
{
    it_err err;
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, it_test_fixture(t, "safetensors/reference.safetensors")), &err);
    IT_CHECK_INT(it_safetensors_count(f), 6);
    check_reference_values(t, f);
    IT_CHECK_INT(it_safetensors_metadata_count(f), 3);
    IT_CHECK_STR(it_safetensors_metadata_get(f, "format"), "pt");
    IT_CHECK_STR(it_safetensors_metadata_get(f, "unicode"), "caf\xc3\xa9 \xe2\x9c\x93");
    it_safetensors_close(f);
}

/* Our writer, given the same tensors, must produce the reference package's
 * bytes exactly (header order, padding, data order). */
IT_TEST(safetensors_writer_matches_reference_bytes)
{
    it_err err;
    it_safetensors *ref;
    const char *path = it_test_fixture(t, "safetensors/reference_1meta.safetensors");
    IT_REQUIRE_OK(it_safetensors_open(&err, &ref, path), &err);
    check_reference_values(t, ref);
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    /* Added in reverse file order to prove the writer sorts. */
    for (size_t i = it_safetensors_count(ref); i-- > 0;) {
        const it_safetensors_tensor *x = it_safetensors_at(ref, i);
        IT_CHECK_OK(it_safetensors_writer_add(&err, w, x->name, x->dtype, x->n_dims, x->shape, x->data), &err);
    }
    IT_CHECK_OK(it_safetensors_writer_set_metadata(&err, w, "format", "pt"), &err);
    it_buf buf;
    it_buf_init(&buf);
    IT_CHECK_OK(it_safetensors_writer_to_buf(&err, w, &buf), &err);
    uint8_t *want;
    size_t n;
    IT_REQUIRE_OK(it_file_read(&err, &want, &n, path, 1 << 20), &err);
    IT_CHECK_INT(buf.len, n);
    IT_CHECK(buf.len == n && memcmp(buf.data, want, n) == 0);
    if (buf.len == n && memcmp(buf.data, want, n) != 0) printf("    ours: %.*s\n", (int)(n < 400 ? n : 400), buf.data + 8);
    /* Parsing from memory gives the same tensors, labelled as asked. */
    it_safetensors *mem;
    IT_CHECK_OK(it_safetensors_parse(&err, &mem, (const uint8_t *)buf.data, buf.len, "upload"), &err);
    if (mem) {
        IT_CHECK_STR(it_safetensors_label(mem), "upload");
        check_reference_values(t, mem);
        it_safetensors_close(mem);
    }
    IT_CHECK_INT(it_safetensors_parse(&err, &mem, (const uint8_t *)buf.data, 20, "upload"), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(err.msg, "upload: header size");
    it_free(want);
    it_buf_free(&buf);
    it_safetensors_writer_free(w);
    it_safetensors_close(ref);
}

/* A header whose length is not a multiple of 8 leaves f16 data at an odd
 * address; loading must not read through a misaligned pointer (UBSan). */
IT_TEST(safetensors_loads_misaligned_data)
{
    char json[128];
    uint16_t vals[600];
    for (int i = 0; i < 600; i++) vals[i] = it_f32_to_f16((float)i - 300.0f);
    snprintf(json, sizeof json, "{\"h\":" E("F16", "[600]", "[0,1200]") "}");
    if (strlen(json) % 2 == 0) strcat(json, " ");
    size_t jl = strlen(json);
    uint8_t *buf = malloc(8 + jl + 1200);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memcpy(buf + 8 + jl, vals, 1200);
    const char *p = it_test_write_tmp(t, "odd.safetensors", buf, 8 + jl + 1200);
    free(buf);
    it_err err;
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, p), &err);
    const it_safetensors_tensor *x = it_safetensors_find(f, "h");
    IT_REQUIRE(x);
    IT_CHECK((uintptr_t)x->data % 2 == 1);
    float out[600];
    IT_CHECK_OK(it_safetensors_load_f32(&err, f, x, out, 600), &err);
    for (int i = 0; i < 600; i++) IT_CHECK(out[i] == (float)i - 300.0f);
    it_safetensors_close(f);
}

/* --------------------------------------------------------- out of memory */

IT_TEST(safetensors_out_of_memory_paths)
{
    it_err err;
    const char *ref = it_test_fixture(t, "safetensors/reference.safetensors");
    /* Reader: fail the k-th allocation for every k until open succeeds. */
    int k, nomem = 0;
    for (k = 0; k < 1000; k++) {
        size_t live = it_mem_live_bytes();
        it_safetensors *f;
        it_mem_fail_after(k, 0);
        it_status s = it_safetensors_open(&err, &f, ref);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) {
            check_reference_values(t, f);
            it_safetensors_close(f);
            break;
        }
        IT_CHECK_INT(s, IT_ERR_NOMEM);
        IT_CHECK(f == NULL);
        IT_CHECK_INT(it_mem_live_bytes(), live);
        nomem++;
    }
    IT_CHECK(nomem >= 2 && k < 1000);

    /* Writer: same, over the whole build-and-save sequence. */
    float data[4] = {1, 2, 3, 4};
    int64_t s4[] = {4};
    nomem = 0;
    for (k = 0; k < 1000; k++) {
        size_t live = it_mem_live_bytes();
        it_safetensors_writer *w = NULL;
        it_mem_fail_after(k, 1);
        it_status s = it_safetensors_writer_new(&err, &w);
        char name[16];
        for (int i = 0; s == IT_OK && i < 20; i++) {
            snprintf(name, sizeof name, "t%02d", i);
            s = it_safetensors_writer_add(&err, w, name, IT_DTYPE_F32, 1, s4, data);
        }
        if (s == IT_OK) s = it_safetensors_writer_add_f32_as(&err, w, "half", IT_DTYPE_F16, 1, s4, data);
        if (s == IT_OK) s = it_safetensors_writer_set_metadata(&err, w, "k", "v");
        if (s == IT_OK) s = it_safetensors_writer_save(&err, w, it_test_tmp(t, "oom.safetensors"));
        it_mem_fail_after(-1, 0);
        it_safetensors_writer_free(w);
        IT_CHECK_INT(it_mem_live_bytes(), live);
        if (s == IT_OK) break;
        IT_CHECK_INT(s, IT_ERR_NOMEM);
        nomem++;
    }
    IT_CHECK(nomem >= 3 && k < 1000);
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, it_test_tmp(t, "oom.safetensors")), &err);
    IT_CHECK_INT(it_safetensors_count(f), 21);
    it_safetensors_close(f);
}
