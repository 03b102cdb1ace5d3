/* test_toy_scenario.c: scenario folders are complete; the CLI works. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "toy/scenario.h"
#include "test.h"

static json_t *load(it_test_ctx *t, const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) it_test_fail(t, __FILE__, __LINE__, "%s: %s", p, je.text);
    return j;
}

static int has_file(const char *dir, const char *sub, const char *stem, const char *ext)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s/%s%s", dir, sub, stem, ext);
    return it_file_exists(p);
}

/* Checks train/ (n images with every file), refs, intent and eval; returns
 * the train truth objects in *train (caller decrefs). */
static void check_folder(it_test_ctx *t, const char *dir, int n_train, int n_refs, json_t **train)
{
    *train = json_array();
    for (int i = 0; i < n_train; i++) {
        char stem[16];
        snprintf(stem, sizeof stem, "%03d", i);
        IT_CHECK(has_file(dir, "train", stem, ".png") && has_file(dir, "train", stem, ".txt") &&
                 has_file(dir, "train", stem, ".mask.png"));
        char name[64];
        snprintf(name, sizeof name, "train/%s.json", stem);
        json_t *j = load(t, dir, name);
        if (!j) return;
        IT_CHECK_STR(json_string_value(json_object_get(j, "purpose")), "finetune");
        json_array_append_new(*train, j);
    }
    IT_CHECK(!has_file(dir, "train", "", "999.png"));
    json_t *intent = load(t, dir, "intent.json");
    if (!intent) return;
    const char *text = json_string_value(json_object_get(intent, "text"));
    IT_REQUIRE(text);
    IT_CHECK_STR(json_string_value(json_object_get(intent, "domain")), "2d-character");
    json_t *refs = json_object_get(intent, "refs");
    IT_CHECK_INT(json_array_size(refs), n_refs);
    for (int k = 0; k < (int)json_array_size(refs); k++) {
        json_t *r = json_array_get(refs, k);
        char tag[16];
        snprintf(tag, sizeof tag, "[%d]", k + 1);
        IT_CHECK(strstr(text, tag) != NULL);
        IT_CHECK_INT(json_integer_value(json_object_get(r, "n")), k + 1);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, json_string_value(json_object_get(r, "image")));
        IT_CHECK(it_file_exists(p));
        json_t *box = json_object_get(r, "box");
        IT_REQUIRE(json_array_size(box) == 4);
        int b[4];
        for (int q = 0; q < 4; q++) b[q] = (int)json_integer_value(json_array_get(box, q));
        IT_CHECK(b[0] >= 0 && b[1] >= 0 && b[0] < b[2] && b[1] < b[3] && b[2] <= 128 && b[3] <= 128);
    }
    json_decref(intent);
    json_t *ev = load(t, dir, "eval.json");
    if (!ev) return;
    json_t *prompts = json_object_get(ev, "prompts");
    IT_CHECK(json_array_size(prompts) >= 6);
    int bleed = 0, groups = 0;
    for (size_t k = 0; k < json_array_size(prompts); k++) {
        json_t *p = json_array_get(prompts, k);
        const char *op = json_string_value(json_object_get(p, "operation"));
        IT_REQUIRE(op && json_string_value(json_object_get(p, "prompt")));
        bleed += !strcmp(op, "bleed");
        groups += json_object_get(p, "group") != NULL;
        IT_CHECK(json_object_size(json_object_get(p, "expect")) + json_object_size(json_object_get(p, "expect_not")) > 0);
    }
    IT_CHECK(bleed >= 2);
    IT_CHECK(groups >= 2);
    json_t *subj = json_object_get(ev, "subjects");
    IT_REQUIRE(json_array_size(subj) >= 1);
    /* Bleed prompts go without any trigger word. */
    for (size_t k = 0; k < json_array_size(prompts); k++) {
        json_t *p = json_array_get(prompts, k);
        if (strcmp(json_string_value(json_object_get(p, "operation")), "bleed")) continue;
        for (size_t s = 0; s < json_array_size(subj); s++)
            IT_CHECK(!strstr(json_string_value(json_object_get(p, "prompt")),
                             json_string_value(json_object_get(json_array_get(subj, s), "trigger"))));
    }
    json_decref(ev);
}

static int count(json_t *train, const char *key, const char *value)
{
    int n = 0;
    for (size_t i = 0; i < json_array_size(train); i++) {
        json_t *v = json_object_get(json_object_get(json_array_get(train, i), "attributes"), key);
        n += json_is_string(v) && !strcmp(json_string_value(v), value);
    }
    return n;
}

static int distinct(json_t *train, const char *key)
{
    const char *seen[64];
    int n = 0;
    for (size_t i = 0; i < json_array_size(train); i++) {
        const char *v = json_string_value(json_object_get(json_object_get(json_array_get(train, i), "attributes"), key));
        int dup = !v;
        for (int k = 0; k < n && !dup; k++) dup = !strcmp(seen[k], v);
        if (!dup && n < 64) seen[n++] = v;
    }
    return n;
}

IT_TEST(toy_scenario_vincent_complete) {
    it_err e;
    const char *dir = it_test_tmp(t, "vincent");
    char d[1024];
    snprintf(d, sizeof d, "%s", dir);
    IT_REQUIRE_OK(it_toy_scenario_write(&e, "vincent", d, 0, 128), &e);
    json_t *train;
    check_folder(t, d, 16, 2, &train);
    IT_CHECK_INT(count(train, "character", "vincent"), 16);
    IT_CHECK_INT(count(train, "marking", "scar"), 16);
    IT_CHECK(count(train, "accessory", "necklace") >= 2 && count(train, "accessory", "necklace") <= 6);
    IT_CHECK(count(train, "outfit_pattern", "leather") >= 4 && count(train, "outfit_pattern", "striped") >= 4);
    IT_CHECK(distinct(train, "hair_colour") >= 4);
    IT_CHECK(distinct(train, "background") >= 4);
    json_decref(train);
    IT_CHECK_INT(it_toy_scenario_write(&e, "nope", d, 0, 128), IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(e.msg, "unknown scenario 'nope'");
}

IT_TEST(toy_scenario_landing_and_duo_complete) {
    it_err e;
    char d[1024];
    json_t *train;
    snprintf(d, sizeof d, "%s", it_test_tmp(t, "landing"));
    IT_REQUIRE_OK(it_toy_scenario_write(&e, "landing", d, 0, 128), &e);
    check_folder(t, d, 16, 1, &train);
    IT_CHECK_INT(count(train, "pose", "landing"), 16);
    IT_CHECK(distinct(train, "body_colour") >= 4);
    json_decref(train);
    snprintf(d, sizeof d, "%s", it_test_tmp(t, "duo"));
    IT_REQUIRE_OK(it_toy_scenario_write(&e, "duo", d, 0, 128), &e);
    check_folder(t, d, 20, 2, &train);
    IT_CHECK_INT(count(train, "character", "mira"), 10);
    IT_CHECK_INT(count(train, "character", "tobi"), 10);
    json_decref(train);
}

IT_TEST(toy_cli_render_and_refusal) {
    const char *bin = getenv("IT_BIN");
    IT_REQUIRE(bin != NULL);
    char cmd[2048], out[1024];
    snprintf(out, sizeof out, "%s", it_test_tmp(t, "r"));
    snprintf(cmd, sizeof cmd, "%s toy render --n 3 --seed 4 --out %s --filter hair=red -q", bin, out);
    IT_CHECK_INT(system(cmd), 0);
    for (int i = 0; i < 3; i++) {
        char stem[16];
        snprintf(stem, sizeof stem, "%06d", i);
        IT_CHECK(has_file(out, "", stem, ".png") && has_file(out, "", stem, ".json") && has_file(out, "", stem, ".txt"));
    }
    json_t *j = load(t, out, "/000002.json");
    IT_REQUIRE(j);
    IT_CHECK_STR(json_string_value(json_object_get(json_object_get(j, "attributes"), "hair_colour")), "red");
    json_decref(j);
    snprintf(cmd, sizeof cmd, "%s toy render --n 1 --out %s --character vincent 2> %s", bin, out,
             it_test_tmp(t, "err.txt"));
    int rc = system(cmd);
    IT_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    uint8_t *msg;
    size_t n;
    it_err e;
    IT_REQUIRE_OK(it_file_read(&e, &msg, &n, it_test_tmp(t, "err.txt"), 4096), &e);
    IT_CHECK_CONTAINS((const char *)msg, "character 'vincent' is held out of pretraining data");
    it_free(msg);
    snprintf(cmd, sizeof cmd, "%s toy render --n 1 --out %s --character vincent --purpose eval -q", bin, out);
    IT_CHECK_INT(system(cmd), 0);
}

/* Runs `intenttuner ARGS`, stdout+stderr into a temp file; returns the exit code. */
static int run_cli(it_test_ctx *t, const char *args, const char *outname)
{
    it_test_cli_io io = {.out_name = outname};
    return it_test_cli(t, &io, args);
}

IT_TEST(toy_cli_list_and_errors) {
    IT_REQUIRE(getenv("IT_BIN") != NULL);
    IT_CHECK_INT(run_cli(t, "toy list --json", "list.json"), 0);
    json_error_t je;
    json_t *j = json_load_file(it_test_tmp(t, "list.json"), 0, &je);
    IT_REQUIRE(j);
    IT_CHECK(json_array_size(json_object_get(j, "characters")) >= 12);
    IT_CHECK_INT(json_array_size(json_object_get(j, "scenarios")), 3);
    IT_CHECK_INT(json_array_size(json_object_get(json_object_get(j, "attributes"), "pose")), 4);
    json_decref(j);
    static const struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"toy render --n 1 --out X --filter hair", 2, "filter: expected key=value, got 'hair'"},
        {"toy render --n 1 --out X --filter pose=landing", 2, "pose 'landing' is held out of pretraining data"},
        {"toy render --n 1 --out X --character nobody", 2, "unknown character 'nobody'"},
        {"toy render --n 0 --out X", 2, "--n must be in 1..100000000"},
        {"toy render --n 1 --out X --purpose train", 2, "--purpose must be pretrain, finetune or eval"},
        {"toy scenario nope --out X", 1, "unknown scenario 'nope'"},
        {"toy scenario vincent", 2, "--out DIR is required"},
        {"toy frobnicate", 2, "unknown toy subcommand 'frobnicate'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024];
        const char *x = strstr(cases[i].args, " X");
        if (x)
            snprintf(args, sizeof args, "%.*s %s%s", (int)(x - cases[i].args), cases[i].args, it_test_tmp(t, "x"), x + 2);
        else
            snprintf(args, sizeof args, "%s", cases[i].args);
        IT_CHECK_INT(run_cli(t, args, "err.txt"), cases[i].rc);
        uint8_t *msg;
        size_t n;
        it_err e;
        IT_REQUIRE_OK(it_file_read(&e, &msg, &n, it_test_tmp(t, "err.txt"), 1 << 16), &e);
        IT_CHECK_CONTAINS((const char *)msg, cases[i].msg);
        it_free(msg);
    }
}
