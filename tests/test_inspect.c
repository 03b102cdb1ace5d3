/* test_inspect.c: `intenttuner inspect` run as a process ($IT_BIN), checking
 * stdout, stderr and the exit status. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "tensor/safetensors.h"
#include "test.h"

typedef struct run_result {
    int status;        /* exit code, -1 if it did not exit normally */
    char out[16384];   /* stdout */
    char err[4096];    /* stderr */
} run_result;

/* Runs "$IT_BIN args" with stderr captured in tmpdir. */
static int run_bin(it_test_ctx *t, run_result *r, const char *args)
{
    it_test_cli_io io = {.out = r->out, .out_n = sizeof r->out, .err = r->err, .err_n = sizeof r->err};
    r->status = it_test_cli(t, &io, args);
    return r->status == -1 && !getenv("IT_BIN") ? -1 : 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

IT_TEST(inspect_safetensors_table)
{
    static run_result r;
    char args[1024];
    snprintf(args, sizeof args, "inspect '%s'", it_test_fixture(t, "safetensors/reference.safetensors"));
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    IT_CHECK_STR(r.err, "");
    IT_CHECK_CONTAINS(r.out, "reference.safetensors: 6 tensors, 56 parameters, 193 bytes\n");
    IT_CHECK_CONTAINS(r.out, "  name        dtype  shape      bytes\n");
    IT_CHECK_CONTAINS(r.out, "  idx.i64     I64    [2, 3]     48\n");
    IT_CHECK_CONTAINS(r.out, "  scalar.f32  F32    []         4\n");
    IT_CHECK_CONTAINS(r.out, "  w.f32       F32    [2, 3, 4]  96\n");
    IT_CHECK_CONTAINS(r.out, "  mask.u8     U8     [5]        5\n");
    IT_CHECK_CONTAINS(r.out, "  metadata (3):\n    format: pt\n");
    IT_CHECK_CONTAINS(r.out, "    unicode: caf\xc3\xa9 \xe2\x9c\x93\n");

    snprintf(args, sizeof args, "inspect --filter .f '%s'", it_test_fixture(t, "safetensors/reference.safetensors"));
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    IT_CHECK_CONTAINS(r.out, "3 tensors, 37 parameters, 124 bytes\n  (3 of 6 tensors match '.f')\n");
    IT_CHECK(strstr(r.out, "idx.i64") == NULL);
}

IT_TEST(inspect_unsupported_dtypes_and_long_metadata)
{
    it_err err;
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    double d[2] = {1, 2};
    uint8_t q[3] = {1, 2, 3};
    int64_t s2[] = {2}, s3[] = {3};
    IT_CHECK_OK(it_safetensors_writer_add_raw(&err, w, "d", "F64", 1, s2, d), &err);
    IT_CHECK_OK(it_safetensors_writer_add_raw(&err, w, "q", "F8_E4M3", 1, s3, q), &err);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    IT_CHECK_OK(it_safetensors_writer_set_metadata(&err, w, "big", big), &err);
    IT_CHECK_OK(it_safetensors_writer_set_metadata(&err, w, "nl", "a\nb"), &err);
    const char *path = it_test_tmp(t, "u.safetensors");
    IT_REQUIRE_OK(it_safetensors_writer_save(&err, w, path), &err);
    it_safetensors_writer_free(w);

    static run_result r;
    char args[1024];
    snprintf(args, sizeof args, "inspect '%s'", path);
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    IT_CHECK_CONTAINS(r.out, "  d     F64*      [2]    16\n");
    IT_CHECK_CONTAINS(r.out, "  q     F8_E4M3*  [3]    3\n");
    IT_CHECK_CONTAINS(r.out, "* dtype listed but not supported for computation");
    IT_CHECK_CONTAINS(r.out, "xxx... (999 bytes)\n");
    IT_CHECK_CONTAINS(r.out, "    nl: a\\nb\n");

    /* --json keeps the whole value and flags the dtype. */
    snprintf(args, sizeof args, "inspect --json '%s'", path);
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    IT_REQUIRE(doc);
    json_t *file = json_array_get(json_object_get(doc, "files"), 0);
    json_t *t0 = json_array_get(json_object_get(file, "tensors"), 0);
    IT_CHECK_STR(json_string_value(json_object_get(t0, "dtype")), "F64");
    IT_CHECK(json_is_false(json_object_get(t0, "supported")));
    IT_CHECK_INT(strlen(json_string_value(json_object_get(json_object_get(file, "metadata"), "big"))), 999);
    json_decref(doc);
}

IT_TEST(inspect_json_document)
{
    static run_result r;
    char args[2048];
    const char *ref = it_test_fixture(t, "safetensors/reference.safetensors");
    snprintf(args, sizeof args, "inspect --json '%s' '%s'", ref,
             it_test_fixture(t, "safetensors/reference_1meta.safetensors"));
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    if (!doc) it_test_fail(t, __FILE__, __LINE__, "not JSON: %s\n%s", jerr.text, r.out);
    IT_REQUIRE(doc);
    json_t *files = json_object_get(doc, "files");
    IT_CHECK_INT(json_array_size(files), 2);
    json_t *f = json_array_get(files, 0);
    IT_CHECK_STR(json_string_value(json_object_get(f, "path")), ref);
    IT_CHECK_STR(json_string_value(json_object_get(f, "type")), "safetensors");
    IT_CHECK_INT(json_integer_value(json_object_get(f, "count")), 6);
    IT_CHECK_INT(json_integer_value(json_object_get(f, "parameters")), 56);
    IT_CHECK_INT(json_integer_value(json_object_get(f, "bytes")), 193);
    IT_CHECK_STR(json_string_value(json_object_get(json_object_get(f, "metadata"), "format")), "pt");
    json_t *w = json_array_get(json_object_get(f, "tensors"), 2);
    IT_CHECK_STR(json_string_value(json_object_get(w, "name")), "w.f32");
    IT_CHECK_STR(json_string_value(json_object_get(w, "dtype")), "F32");
    json_t *shape = json_object_get(w, "shape");
    IT_CHECK_INT(json_array_size(shape), 3);
    IT_CHECK_INT(json_integer_value(json_array_get(shape, 2)), 4);
    IT_CHECK_INT(json_integer_value(json_object_get(w, "bytes")), 96);
    IT_CHECK_INT(json_integer_value(json_object_get(w, "offset")), 52);
    json_decref(doc);
}

IT_TEST(inspect_bad_files_one_line_exit_1)
{
    static const struct {
        const char *what;
        const uint8_t *bytes;
        size_t n;
        const char *want;
    } cases[] = {
        {"short", (const uint8_t *)"abc", 3, "file is 3 bytes, too short for the 8-byte header size"},
        {"text file", (const uint8_t *)"hello world, not a model", 24, "exceeds the limit of 100000000 bytes"},
        {"bad json", (const uint8_t *)"\x04\0\0\0\0\0\0\0{\"a\"", 12, "header is not valid JSON"},
        {"gap", (const uint8_t *)"\x35\0\0\0\0\0\0\0{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}\0\0",
         63, "tensor 'a': data begins at 1, expected 0"},
    };
    static run_result r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = it_test_write_tmp(t, "bad.safetensors", cases[i].bytes, cases[i].n);
        char args[1024];
        snprintf(args, sizeof args, "inspect '%s'", p);
        IT_REQUIRE(run_bin(t, &r, args) == 0);
        char prefix[1024];
        snprintf(prefix, sizeof prefix, "intenttuner: error: %s: ", p);
        if (r.status != 1 || strncmp(r.err, prefix, strlen(prefix)) != 0 ||
            !strstr(r.err, cases[i].want) || count_lines(r.err) != 1 || r.out[0])
            it_test_fail(t, __FILE__, __LINE__, "case %s: status %d\n      stderr: %s      stdout: %s",
                         cases[i].what, r.status, r.err, r.out);
    }
    /* A bad file among good ones: the good ones are still shown, exit 1. */
    char args[2048];
    snprintf(args, sizeof args, "inspect '%s' '%s'", it_test_tmp(t, "missing.safetensors"),
             it_test_fixture(t, "safetensors/reference.safetensors"));
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 1);
    IT_CHECK_CONTAINS(r.err, "missing.safetensors: No such file or directory");
    IT_CHECK_CONTAINS(r.out, "6 tensors, 56 parameters");
    /* --json: the document is still valid and carries the error. */
    snprintf(args, sizeof args, "inspect --json '%s'", it_test_tmp(t, "missing.safetensors"));
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 1);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    IT_REQUIRE(doc);
    json_t *f = json_array_get(json_object_get(doc, "files"), 0);
    IT_CHECK_CONTAINS(json_string_value(json_object_get(f, "error")), "No such file or directory");
    json_decref(doc);
    /* Usage errors exit 2. */
    IT_REQUIRE(run_bin(t, &r, "inspect") == 0);
    IT_CHECK_INT(r.status, 2);
    IT_CHECK_CONTAINS(r.err, "missing argument");
    IT_REQUIRE(run_bin(t, &r, "inspect --help") == 0);
    IT_CHECK_INT(r.status, 0);
    IT_CHECK_CONTAINS(r.out, "usage: intenttuner inspect [options] FILE...");
}

/* Images are recognised by content, not by name: a PNG called .safetensors
 * is still shown as an image. Sizes and modes are those of the fixtures
 * (tests/fixtures/image/MANIFEST.txt). */
IT_TEST(inspect_images)
{
    static run_result r;
    char args[4096];
    uint8_t *png;
    size_t n;
    it_err err;
    IT_REQUIRE_OK(it_file_read(&err, &png, &n, it_test_fixture(t, "image/src_40x30_l.png"), 1 << 20), &err);
    const char *renamed = it_test_write_tmp(t, "looks_like.safetensors", png, n);
    it_free(png);
    snprintf(args, sizeof args, "inspect '%s' '%s' '%s'", it_test_fixture(t, "image/src_33x17_rgba.png"),
             it_test_fixture(t, "image/webp_lossy_alpha.webp"), renamed);
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    IT_CHECK_STR(r.err, "");
    IT_CHECK_CONTAINS(r.out, "src_33x17_rgba.png: png image, 33x17, mode RGBA, 4 channels, 8-bit\n");
    IT_CHECK_CONTAINS(r.out, "webp_lossy_alpha.webp: webp image, 40x30, mode RGBA, 4 channels, 8-bit\n");
    IT_CHECK_CONTAINS(r.out, "looks_like.safetensors: png image, 40x30, mode L, 1 channel, 8-bit\n");

    snprintf(args, sizeof args, "inspect --json '%s'", it_test_fixture(t, "image/jpeg_orient6.jpg"));
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 0);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    IT_REQUIRE(doc);
    json_t *f = json_array_get(json_object_get(doc, "files"), 0);
    IT_CHECK_STR(json_string_value(json_object_get(f, "type")), "image");
    IT_CHECK_STR(json_string_value(json_object_get(f, "format")), "jpeg");
    IT_CHECK_STR(json_string_value(json_object_get(f, "mode")), "RGB");
    IT_CHECK_INT(json_integer_value(json_object_get(f, "exif_orientation")), 6);
    IT_CHECK(json_integer_value(json_object_get(f, "width")) > 0);
    json_decref(doc);

    /* A PNG signature followed by garbage: one line, exit 1. */
    const char *bad = it_test_write_tmp(t, "bad.png", "\x89PNG\r\n\x1a\nxxxxxxxx", 16);
    snprintf(args, sizeof args, "inspect '%s'", bad);
    IT_REQUIRE(run_bin(t, &r, args) == 0);
    IT_CHECK_INT(r.status, 1);
    IT_CHECK_CONTAINS(r.err, "bad.png: PNG");
    IT_CHECK_INT(count_lines(r.err), 1);
}
