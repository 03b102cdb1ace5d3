/* intent_parse.c: speed of the built-in intent parser.
 *
 * The texts of the intent corpus (the .jsonl files of tests/intent: the tuned set and
 * the held-out sets, with their references). First every text is parsed and
 * its JSON read back and written again to the same bytes (the property the
 * fuzzer checks); then, after a warm-up pass:
 *   parse     : the whole corpus through it_intent_parse (median of 15);
 *   roundtrip : parse, JSON out, strict read, JSON out again (median of 15).
 * Times are per intent. There is no reference implementation to compare
 * with; docs/INTENT.md keeps the numbers of earlier versions. Run from the
 * repository root. */
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "intent/hierarchy.h"
#include "intent/parser.h"

#define REPEATS 15
#define MAX_TEXTS 1024

typedef struct item {
    char *text;
    it_intent_ref refs[IT_INTENT_MAX_REFS];
    int n_refs;
} item;

static item g_items[MAX_TEXTS];
static int g_n;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void load_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench intent_parse: cannot open %s\n", path);
        exit(1);
    }
    char line[1 << 16];
    while (fgets(line, sizeof line, f) && g_n < MAX_TEXTS) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        item *it = &g_items[g_n];
        const char *t = json_string_value(json_object_get(o, "text"));
        if (!t) {
            json_decref(o);
            continue;
        }
        it->text = strdup(t);
        json_t *refs = json_object_get(o, "refs"), *r;
        size_t i;
        json_array_foreach(refs, i, r) {
            if (it->n_refs >= IT_INTENT_MAX_REFS) break;
            it_intent_ref *ref = &it->refs[it->n_refs++];
            memset(ref, 0, sizeof *ref);
            ref->n = (int)json_integer_value(json_object_get(r, "n"));
            ref->image = strdup(json_string_value(json_object_get(r, "image")));
            json_t *box = json_object_get(r, "box");
            for (int k = 0; k < 4; k++) ref->box[k] = json_number_value(json_array_get(box, (size_t)k));
        }
        json_decref(o);
        g_n++;
    }
    fclose(f);
}

/* Parses item i; with roundtrip, also JSON out, read back, out again and
 * compares. Returns 0 on success. */
static int run_one(int i, int roundtrip)
{
    it_err e;
    it_intent in;
    it_intent_parse_opts o = {.domain = -1, .refs = g_items[i].refs, .n_refs = g_items[i].n_refs};
    if (it_intent_parse(&e, &in, g_items[i].text, strlen(g_items[i].text), &o) != IT_OK) {
        fprintf(stderr, "bench intent_parse: text %d does not parse: %s\n", i, e.msg);
        return 1;
    }
    int bad = 0;
    if (roundtrip) {
        char *j1 = NULL, *j2 = NULL;
        it_intent back;
        bad = it_intent_to_json(&e, &j1, &in, 0) != IT_OK;
        if (!bad) bad = it_intent_from_json(&e, &back, j1, strlen(j1), NULL, NULL) != IT_OK;
        if (!bad) {
            bad = it_intent_to_json(&e, &j2, &back, 0) != IT_OK || strcmp(j1, j2) != 0;
            it_intent_free(&back);
        }
        if (bad) fprintf(stderr, "bench intent_parse: text %d does not round-trip: %s\n", i, e.msg);
        it_free(j1);
        it_free(j2);
    }
    it_intent_free(&in);
    return bad;
}

static double median_us(int roundtrip)
{
    double t[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        for (int i = 0; i < g_n; i++) run_one(i, roundtrip);
        t[r] = (now() - t0) / g_n * 1e6;
    }
    qsort(t, REPEATS, sizeof t[0], cmp_double);
    return t[REPEATS / 2];
}

int main(void)
{
    glob_t g;
    if (glob("tests/intent/*.jsonl", 0, NULL, &g) != 0) {
        fprintf(stderr, "bench intent_parse: no tests/intent/*.jsonl (run from the repository root)\n");
        return 1;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) load_file(g.gl_pathv[i]);
    globfree(&g);
    size_t bytes = 0;
    for (int i = 0; i < g_n; i++) bytes += strlen(g_items[i].text);
    /* correctness first: every text parses and round-trips */
    for (int i = 0; i < g_n; i++)
        if (run_one(i, 1)) return 1;
    for (int i = 0; i < g_n; i++) run_one(i, 1); /* warm-up */
    double parse = median_us(0), rt = median_us(1);
    printf("intent corpus: %d texts, %.0f bytes on average; all parse and round-trip\n", g_n, (double)bytes / g_n);
    printf("  parse     : %8.1f us per intent (median of %d)\n", parse, REPEATS);
    printf("  roundtrip : %8.1f us per intent (parse + JSON out, strict read, JSON out)\n", rt);
    printf("  (no reference implementation; earlier versions' numbers are in docs/INTENT.md)\n");
    for (int i = 0; i < g_n; i++) {
        free(g_items[i].text);
        for (int k = 0; k < g_items[i].n_refs; k++) free((char *)g_items[i].refs[k].image);
    }
    return 0;
}
