/* tokenizer.c: CLIP tokenizer speed beside transformers' CLIPTokenizer.
 *
 * The real CLIP vocabulary (vocab.json rebuilt from the committed
 * merges.txt, SD 1.5 configs) and the 586-string parity corpus. First every
 * text's ids are checked against the fixture (transformers' ids); then:
 *   load  : reading the folder (median of 5);
 *   cold  : the corpus once on a fresh tokenizer (empty word cache);
 *   warm  : the corpus again, cache filled (median of 20);
 *   padded: the same through encode_padded(77), what the text encoder uses.
 * The reference numbers come from tools/bench_tokenizer.py in the same run
 * (one tokenizer call per text, and one batched padded call), or "reference
 * skipped" without the venv. Run from the repository root. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"

#define CORPUS "tests/fixtures/text/clip_parity.json"

typedef struct text {
    char *s;
    size_t n;
    json_t *ids;
} text;

static const char *venv_python(void)
{
    const char *p = getenv("IT_PYTHON");
    return p && *p ? p : "tools/.venv/bin/python";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const it_err *e)
{
    fprintf(stderr, "bench tokenizer: %s\n", e->msg);
    exit(1);
}

/* The SD 1.5 tokenizer folder under dir. */
static void make_folder(const char *dir)
{
    it_err e;
    uint8_t *merges, *cfg, *map;
    size_t nm, nc, nmap, nv;
    char *vocab, path[4096];
    if (it_file_read(&e, &merges, &nm, "tests/fixtures/text/clip/merges.txt", 1 << 24) ||
        it_file_read(&e, &cfg, &nc, "tests/fixtures/text/clip/configs/sd15/tokenizer_config.json", 1 << 20) ||
        it_file_read(&e, &map, &nmap, "tests/fixtures/text/clip/configs/sd15/special_tokens_map.json", 1 << 20) ||
        it_bpe_vocab_from_merges(&e, &vocab, &nv, (const char *)merges, nm))
        die(&e);
    static const char *const names[4] = {"merges.txt", "vocab.json", "tokenizer_config.json",
                                         "special_tokens_map.json"};
    const void *data[4] = {merges, vocab, cfg, map};
    size_t len[4] = {nm, nv, nc, nmap};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (it_file_write_atomic(&e, path, data[i], len[i])) die(&e);
    }
    it_free(merges);
    it_free(cfg);
    it_free(map);
    it_free(vocab);
}

static text *load_corpus(json_t **root, size_t *n)
{
    json_error_t je;
    *root = json_load_file(CORPUS, JSON_ALLOW_NUL, &je);
    if (!*root) {
        fprintf(stderr, "bench tokenizer: %s: %s (run from the repository root)\n", CORPUS, je.text);
        exit(1);
    }
    json_t *cases = json_object_get(*root, "cases");
    *n = json_array_size(cases);
    text *t = calloc(*n, sizeof *t);
    for (size_t i = 0; i < *n; i++) {
        json_t *c = json_array_get(cases, i);
        json_t *hex = json_object_get(c, "hex");
        t[i].ids = json_object_get(c, "ids");
        if (!hex) {
            json_t *s = json_object_get(c, "text");
            t[i].n = json_string_length(s);
            t[i].s = malloc(t[i].n + 1);
            memcpy(t[i].s, json_string_value(s), t[i].n);
            continue;
        }
        const char *h = json_string_value(hex);
        t[i].n = strlen(h) / 2;
        t[i].s = malloc(t[i].n + 1);
        for (size_t k = 0; k < t[i].n; k++) {
            unsigned v;
            sscanf(h + 2 * k, "%2x", &v);
            t[i].s[k] = (char)v;
        }
    }
    return t;
}

static size_t check(const it_clip_tokenizer *tok, const text *t, size_t n)
{
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        it_err e;
        int32_t *ids;
        size_t k;
        if (it_clip_encode(&e, tok, &ids, &k, t[i].s, t[i].n)) die(&e);
        int same = json_array_size(t[i].ids) == k;
        for (size_t j = 0; same && j < k; j++) same = json_integer_value(json_array_get(t[i].ids, j)) == ids[j];
        ok += same;
        it_free(ids);
    }
    return ok;
}

/* One pass over the corpus; returns milliseconds. */
static double pass(const it_clip_tokenizer *tok, const text *t, size_t n, int padded)
{
    it_err e;
    double t0 = it_time_now();
    for (size_t i = 0; i < n; i++) {
        if (padded) {
            int32_t ids[77];
            if (it_clip_encode_padded(&e, tok, ids, 77, NULL, t[i].s, t[i].n)) die(&e);
        } else {
            int32_t *ids;
            size_t k;
            if (it_clip_encode(&e, tok, &ids, &k, t[i].s, t[i].n)) die(&e);
            it_free(ids);
        }
    }
    return (it_time_now() - t0) * 1e3;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

typedef struct ref_times {
    double load, cold, warm, batch;
} ref_times;

static int run_reference(const char *dir, ref_times *r)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s tools/bench_tokenizer.py %s %s 20 2>/dev/null", venv_python(), dir, CORPUS);
    if (access(venv_python(), X_OK) != 0) return -1;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[256];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        got += sscanf(line, "load_ms %lf", &r->load) == 1;
        got += sscanf(line, "cold_ms %lf", &r->cold) == 1;
        got += sscanf(line, "warm_ms %lf", &r->warm) == 1;
        got += sscanf(line, "batch_ms %lf", &r->batch) == 1;
    }
    pclose(p);
    return got == 4 ? 0 : -1;
}

int main(void)
{
    char dir[] = "/tmp/it_bench_tokenizer_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    make_folder(dir);
    json_t *root;
    size_t n;
    text *t = load_corpus(&root, &n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += t[i].n;
    it_err e;
    it_clip_tokenizer *tok;
    double load[5], cold[5], warm[20], padded[20];
    for (int r = 0; r < 5; r++) {
        double t0 = it_time_now();
        if (it_clip_tokenizer_load(&e, &tok, dir)) die(&e);
        load[r] = (it_time_now() - t0) * 1e3;
        cold[r] = pass(tok, t, n, 0);
        if (r < 4) it_clip_tokenizer_free(tok);
    }
    size_t ok = check(tok, t, n);
    printf("parity: %zu/%zu texts identical to transformers' CLIPTokenizer\n", ok, n);
    if (ok != n) return 1;
    for (int r = 0; r < 20; r++) warm[r] = pass(tok, t, n, 0);
    for (int r = 0; r < 20; r++) padded[r] = pass(tok, t, n, 1);
    it_clip_tokenizer_free(tok);
    ref_times ref;
    int have_ref = run_reference(dir, &ref) == 0;
    printf("corpus: %zu texts, %zu bytes (median ms; whole corpus)\n", n, bytes);
    printf("%-8s %10s %12s %14s\n", "", "ours", "transformers", "ours texts/s");
    double ml = median(load, 5), mc = median(cold, 5), mw = median(warm, 20), mp = median(padded, 20);
    if (have_ref) {
        printf("%-8s %10.2f %12.2f\n", "load", ml, ref.load);
        printf("%-8s %10.2f %12.2f %14.0f\n", "cold", mc, ref.cold, n / mc * 1e3);
        printf("%-8s %10.2f %12.2f %14.0f\n", "warm", mw, ref.warm, n / mw * 1e3);
        printf("%-8s %10.2f %12.2f %14.0f  (transformers: one batched padded call)\n", "padded", mp, ref.batch,
               n / mp * 1e3);
    } else {
        printf("%-8s %10.2f\n%-8s %10.2f %14.0f\n%-8s %10.2f %14.0f\n%-8s %10.2f %14.0f\n", "load", ml, "cold", mc,
               n / mc * 1e3, "warm", mw, n / mw * 1e3, "padded", mp, n / mp * 1e3);
        printf("reference skipped (no %s)\n", venv_python());
    }
    for (size_t i = 0; i < n; i++) free(t[i].s);
    free(t);
    json_decref(root);
    static const char *const names[4] = {"merges.txt", "vocab.json", "tokenizer_config.json",
                                         "special_tokens_map.json"};
    for (int i = 0; i < 4; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}
