/* cmd_inspect.c: `intenttuner inspect FILE...`: what is inside a file.
 *
 * Images (PNG, JPEG, WebP, recognised by their magic bytes, whatever the
 * file name): format, size, mode, bit depth, EXIF orientation, from the
 * header only. Everything else is read as .safetensors: a table of tensors
 * (name, dtype, shape, bytes), totals and the "__metadata__" map. Every file
 * is validated strictly first (tensor/safetensors.h, image/image.h), so
 * inspect doubles as a checker: a bad file gives one line naming the problem
 * and exit code 1, and the other files are still shown. --json prints one
 * document {"files": [...]} for all files. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "image/image.h"
#include "tensor/safetensors.h"

/* Metadata values can be huge (kohya stores whole JSON documents there):
 * the table shows a prefix, --json shows everything. */
#define META_SHOWN_MAX 160

static const char *g_filter;

static int wanted(const it_safetensors_tensor *t)
{
    return !g_filter || strstr(t->name, g_filter) != NULL;
}

static void format_shape(char *buf, size_t n, const it_safetensors_tensor *t)
{
    size_t j = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->n_dims && j < n; d++)
        j += (size_t)snprintf(buf + j, n - j, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (j < n) snprintf(buf + j, n - j, "]");
}

/* Prints s on one line: control characters escaped, at most max bytes. */
static void print_escaped(const char *s, size_t max)
{
    size_t i = 0;
    for (; s[i] && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    if (s[i]) printf("... (%zu bytes)", strlen(s));
}

static void print_table(const it_safetensors *f)
{
    size_t n = it_safetensors_count(f), shown = 0;
    int wname = 4, wdtype = 5, wshape = 5, unsupported = 0;
    uint64_t params = 0, bytes = 0;
    char shape[256];
    for (size_t i = 0; i < n; i++) {
        const it_safetensors_tensor *t = it_safetensors_at(f, i);
        if (!wanted(t)) continue;
        int l = (int)strlen(t->name);
        if (l > wname) wname = l;
        l = (int)strlen(t->dtype_name) + !t->supported;
        if (l > wdtype) wdtype = l;
        format_shape(shape, sizeof shape, t);
        l = (int)strlen(shape);
        if (l > wshape) wshape = l;
        shown++;
        params += t->numel;
        bytes += t->nbytes;
        unsupported |= !t->supported;
    }
    printf("%s: %zu tensors, %llu parameters, %llu bytes\n", it_safetensors_label(f), shown,
           (unsigned long long)params, (unsigned long long)bytes);
    if (g_filter) printf("  (%zu of %zu tensors match '%s')\n", shown, n, g_filter);
    if (shown) printf("  %-*s  %-*s  %-*s  %s\n", wname, "name", wdtype, "dtype", wshape, "shape", "bytes");
    for (size_t i = 0; i < n; i++) {
        const it_safetensors_tensor *t = it_safetensors_at(f, i);
        if (!wanted(t)) continue;
        char dt[IT_SAFETENSORS_DTYPE_NAME_MAX + 2];
        snprintf(dt, sizeof dt, "%s%s", t->dtype_name, t->supported ? "" : "*");
        format_shape(shape, sizeof shape, t);
        printf("  %-*s  %-*s  %-*s  %zu\n", wname, t->name, wdtype, dt, wshape, shape, t->nbytes);
    }
    if (unsupported) printf("  * dtype listed but not supported for computation\n");
    size_t nm = it_safetensors_metadata_count(f);
    if (nm) printf("  metadata (%zu):\n", nm);
    for (size_t i = 0; i < nm; i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        printf("    ");
        print_escaped(k, META_SHOWN_MAX);
        printf(": ");
        print_escaped(v, META_SHOWN_MAX);
        putchar('\n');
    }
}

/* JSON description of one file; NULL on out-of-memory. */
static json_t *file_json(const it_safetensors *f)
{
    json_t *tensors = json_array(), *meta = json_object();
    uint64_t params = 0, bytes = 0;
    size_t n = it_safetensors_count(f), shown = 0;
    for (size_t i = 0; tensors && i < n; i++) {
        const it_safetensors_tensor *t = it_safetensors_at(f, i);
        if (!wanted(t)) continue;
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->n_dims; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_array_append_new(tensors, json_pack("{s:s, s:s, s:b, s:o, s:I, s:I, s:I}", "name",
                                                 t->name, "dtype", t->dtype_name, "supported",
                                                 t->supported, "shape", shape, "numel",
                                                 (json_int_t)t->numel, "bytes",
                                                 (json_int_t)t->nbytes, "offset",
                                                 (json_int_t)t->offset));
        shown++;
        params += t->numel;
        bytes += t->nbytes;
    }
    for (size_t i = 0; meta && i < it_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        json_object_set_new(meta, k, json_string(v));
    }
    if (!tensors || !meta) {
        json_decref(tensors);
        json_decref(meta);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o}", "path", it_safetensors_label(f),
                     "type", "safetensors", "count", (json_int_t)shown, "parameters",
                     (json_int_t)params, "bytes", (json_int_t)bytes, "tensors", tensors,
                     "metadata", meta);
}

/* Image format from the file's first bytes; IT_IMG_UNKNOWN when it cannot
 * be read (the safetensors reader then reports why). */
static it_image_format sniff_file(const char *path)
{
    uint8_t head[16];
    FILE *fp = fopen(path, "rb");
    if (!fp) return IT_IMG_UNKNOWN;
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    return it_image_sniff(head, n);
}

static int inspect_image(const char *path, json_t *files)
{
    it_err err;
    it_err_clear(&err);
    it_image_info info;
    if (it_image_info_file(&err, &info, path) != IT_OK) {
        it_cli_fail(&err);
        if (files) json_array_append_new(files, json_pack("{s:s, s:s}", "path", path, "error", err.msg));
        return 1;
    }
    const char *fmt = it_image_format_name(info.format);
    if (files) {
        json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:i, s:i}",
                                               "path", path, "type", "image", "format", fmt,
                                               "width", info.w, "height", info.h, "mode", info.mode,
                                               "channels", info.channels, "bit_depth",
                                               info.bit_depth, "exif_orientation",
                                               info.exif_orientation));
        return 0;
    }
    printf("%s: %s image, %dx%d, mode %s, %d channel%s, %d-bit", path, fmt, info.w, info.h,
           info.mode, info.channels, info.channels == 1 ? "" : "s", info.bit_depth);
    if (info.exif_orientation > 1) printf(", EXIF orientation %d", info.exif_orientation);
    putchar('\n');
    return 0;
}

/* Inspects one file; returns 0 or 1 (exit status contribution). */
static int inspect_one(const char *path, json_t *files)
{
    if (sniff_file(path) != IT_IMG_UNKNOWN) return inspect_image(path, files);
    it_err err;
    it_err_clear(&err);
    it_safetensors *f;
    if (it_safetensors_open(&err, &f, path) != IT_OK) {
        it_cli_fail(&err);
        if (files) json_array_append_new(files, json_pack("{s:s, s:s}", "path", path, "error", err.msg));
        return 1;
    }
    int rc = 0;
    if (files) {
        json_t *j = file_json(f);
        if (!j) {
            it_err_set(&err, IT_ERR_NOMEM, "%s: out of memory", path);
            rc = it_cli_fail(&err) != 0;
        } else {
            json_array_append_new(files, j);
        }
    } else {
        print_table(f);
    }
    it_safetensors_close(f);
    return rc;
}

IT_COMMAND(inspect, "check files and show what is inside: .safetensors tensors, image size and mode")
{
    static const char *filter;
    filter = NULL;
    static const it_opt opts[] = {
        {"filter", 0, IT_OPT_STR, &filter, "SUBSTR", "only tensors whose name contains SUBSTR"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    static const it_cmd_spec spec = {
        .usage = "intenttuner inspect [options] FILE...",
        .description = "Validates each file strictly and prints its contents: for .safetensors the\n"
                       "tensors (name, dtype, shape, bytes), totals and metadata; for PNG, JPEG\n"
                       "and WebP images (recognised by content) the size, mode, bit depth and\n"
                       "EXIF orientation. A malformed file gives one line naming the problem and\n"
                       "exit status 1.",
        .opts = opts,
        .min_pos = 1,
        .max_pos = -1,
        .epilog = "examples:\n  intenttuner inspect model.safetensors\n"
                  "  intenttuner inspect --json --filter lora_up a.safetensors b.safetensors",
    };
    const char *pos[argc > 0 ? argc : 1];
    int n_pos;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    g_filter = filter;
    json_t *files = it_common.json ? json_array() : NULL;
    int failed = 0, printed = 0;
    for (int i = 0; i < n_pos; i++) {
        if (printed && !files) putchar('\n');
        int bad = inspect_one(pos[i], files);
        printed |= !bad;
        failed |= bad;
    }
    if (files) {
        json_t *doc = json_pack("{s:o}", "files", files);
        if (!doc || json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) failed = 1;
        putchar('\n');
        json_decref(doc);
    }
    fflush(stdout);
    return failed ? 1 : 0;
}
