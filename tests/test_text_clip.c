/* test_text_clip.c: the CLIP tokenizer against transformers' CLIPTokenizer
 * (fixtures from tools/gen_tokenizer_fixtures.py), its loader's errors, its
 * out-of-memory paths, and the tokenize command. */
#include <jansson.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void copy_file(it_test_ctx *t, const char *from, const char *to)
{
    uint8_t *buf;
    size_t n;
    it_err e;
    it_err_clear(&e);
    IT_CHECK_OK(it_file_read(&e, &buf, &n, from, 1 << 28), &e);
    if (e.code) return;
    IT_CHECK_OK(it_file_write_atomic(&e, to, buf, n), &e);
    it_free(buf);
}

/* Assembles the real CLIP tokenizer folder for a config variant under tmp:
 * merges.txt from the fixture, vocab.json rebuilt from it, the variant's
 * config files. Returns the folder (static buffer). */
static const char *clip_folder(it_test_ctx *t, const char *variant)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s", it_test_tmp(t, variant));
    it_err e;
    it_err_clear(&e);
    IT_CHECK_OK(it_mkdir_p(&e, dir), &e);
    uint8_t *merges;
    size_t n;
    char path[1200];
    IT_CHECK_OK(it_file_read(&e, &merges, &n, it_test_fixture(t, "text/clip/merges.txt"), 1 << 24), &e);
    if (e.code) return dir;
    char *vocab;
    size_t vn;
    IT_CHECK_OK(it_bpe_vocab_from_merges(&e, &vocab, &vn, (const char *)merges, n), &e);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    IT_CHECK_OK(it_file_write_atomic(&e, path, merges, n), &e);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    IT_CHECK_OK(it_file_write_atomic(&e, path, vocab, vn), &e);
    it_free(merges);
    it_free(vocab);
    static const char *const cfgs[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 2; i++) {
        char from[1200];
        snprintf(from, sizeof from, "text/clip/configs/%s/%s", variant, cfgs[i]);
        const char *fp = it_test_fixture(t, from);
        if (!it_file_exists(fp)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, cfgs[i]);
        copy_file(t, fp, path);
    }
    return dir;
}

static json_t *load_fixture(it_test_ctx *t, const char *name)
{
    json_error_t je;
    json_t *j = json_load_file(it_test_fixture(t, name), JSON_ALLOW_NUL, &je);
    if (!j) it_test_fail(t, __FILE__, __LINE__, "%s: %s", name, je.text);
    return j;
}

/* The case's text as bytes: "text" (UTF-8) or "hex" (any bytes). */
static char *case_text(const json_t *c, size_t *len)
{
    const json_t *hex = json_object_get(c, "hex");
    if (!hex) {
        const json_t *s = json_object_get(c, "text");
        *len = json_string_length(s);
        char *out = it_malloc(*len + 1);
        memcpy(out, json_string_value(s), *len);
        return out;
    }
    const char *h = json_string_value(hex);
    *len = strlen(h) / 2;
    char *out = it_malloc(*len + 1);
    for (size_t i = 0; i < *len; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    return out;
}

static int ids_equal(const json_t *want, const int32_t *got, size_t n)
{
    if (json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != got[i]) return 0;
    return 1;
}

static void print_mismatch(const char *what, const char *text, size_t len, const json_t *want,
                           const int32_t *got, size_t n)
{
    printf("    %s mismatch for \"%.*s\" (%zu bytes)\n      want:", what, (int)(len > 60 ? 60 : len),
           text, len);
    for (size_t i = 0; i < json_array_size(want); i++)
        printf(" %lld", (long long)json_integer_value(json_array_get(want, i)));
    printf("\n      got: ");
    for (size_t i = 0; i < n; i++) printf(" %d", got[i]);
    printf("\n");
}

/* Runs every case of a parity fixture through tok; key picks the expected
 * ids ("ids_<variant>" when the case has it, else "ids"). Returns matches. */
static size_t check_cases(it_test_ctx *t, const it_clip_tokenizer *tok, const json_t *cases,
                          const char *variant, const char *padded_key)
{
    char key[64];
    snprintf(key, sizeof key, "ids_%s", variant ? variant : "");
    size_t ok = 0, shown = 0;
    it_clip_info info;
    it_clip_tokenizer_info(tok, &info);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        const json_t *want = variant ? json_object_get(c, key) : NULL;
        if (!want) want = json_object_get(c, "ids");
        size_t len;
        char *text = case_text(c, &len);
        int32_t *ids;
        size_t n;
        it_err e;
        it_err_clear(&e);
        IT_CHECK_OK(it_clip_encode(&e, tok, &ids, &n, text, len), &e);
        if (e.code) {
            it_free(text);
            continue;
        }
        int good = ids_equal(want, ids, n);
        if (!good && shown++ < 5) print_mismatch(variant ? variant : "ids", text, len, want, ids, n);
        /* Padded: the fixture's own padded ids where recorded; otherwise
         * the rule the generator verified for every case against
         * transformers (start, first 75, end, padding). */
        int32_t pad[IT_CLIP_CONTEXT];
        int n_valid;
        IT_CHECK_OK(it_clip_encode_padded(&e, tok, pad, IT_CLIP_CONTEXT, &n_valid, text, len), &e);
        const json_t *wp = padded_key ? json_object_get(c, padded_key) : NULL;
        if (wp) {
            if (!ids_equal(wp, pad, IT_CLIP_CONTEXT)) {
                good = 0;
                if (shown++ < 5) print_mismatch(padded_key, text, len, wp, pad, IT_CLIP_CONTEXT);
            }
        } else {
            size_t keep = n < IT_CLIP_CONTEXT ? n : IT_CLIP_CONTEXT;
            for (size_t k = 0; k + 1 < keep; k++) good &= pad[k] == ids[k];
            good &= pad[keep - 1] == info.eos && n_valid == (int)keep;
            for (size_t k = keep; k < IT_CLIP_CONTEXT; k++) good &= pad[k] == info.pad;
        }
        ok += good;
        it_free(ids);
        it_free(text);
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Parity with transformers                                                  */
/* ------------------------------------------------------------------------ */

IT_TEST(text_clip_parity_sd15) {
    json_t *fx = load_fixture(t, "text/clip_parity.json");
    IT_REQUIRE(fx);
    const json_t *cases = json_object_get(fx, "cases");
    IT_CHECK(json_array_size(cases) >= 500);
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_CHECK_OK(it_clip_tokenizer_load(&e, &tok, clip_folder(t, "sd15")), &e);
    if (tok) {
        it_clip_info info;
        it_clip_tokenizer_info(tok, &info);
        IT_CHECK_INT(info.n_vocab, 49408);
        IT_CHECK_INT(info.n_merges, 48894);
        IT_CHECK_INT(info.bos, 49406);
        IT_CHECK_INT(info.eos, 49407);
        IT_CHECK_INT(info.pad, 49407);
        IT_CHECK_INT(info.model_max_length, 77);
        size_t ok = check_cases(t, tok, cases, NULL, "padded_sd15");
        printf("    sd15: %zu/%zu cases identical to CLIPTokenizer\n", ok, json_array_size(cases));
        IT_CHECK_INT(ok, json_array_size(cases));
    }
    it_clip_tokenizer_free(tok);
    json_decref(fx);
}

/* Every other config variant: bare folder, SD 2.x (pad "!"), the newer
 * added_tokens_decoder layout, and the precedence probes. */
IT_TEST(text_clip_parity_variants) {
    json_t *fx = load_fixture(t, "text/clip_parity.json");
    IT_REQUIRE(fx);
    const json_t *cases = json_object_get(fx, "cases");
    const json_t *configs = json_object_get(fx, "configs");
    IT_CHECK(json_array_size(configs) >= 8);
    for (size_t v = 0; v < json_array_size(configs); v++) {
        const char *name = json_string_value(json_array_get(configs, v));
        if (strcmp(name, "sd15") == 0) continue;
        it_err e;
        it_err_clear(&e);
        it_clip_tokenizer *tok = NULL;
        IT_CHECK_OK(it_clip_tokenizer_load(&e, &tok, clip_folder(t, name)), &e);
        if (!tok) continue;
        size_t ok = check_cases(t, tok, cases, name, strcmp(name, "sd2") == 0 ? "padded_sd2" : NULL);
        if (ok != json_array_size(cases))
            it_test_fail(t, __FILE__, __LINE__, "%s: %zu/%zu cases identical", name, ok, json_array_size(cases));
        it_clip_tokenizer_free(tok);
    }
    json_decref(fx);
}

IT_TEST(text_clip_parity_tiny) {
    json_t *fx = load_fixture(t, "text/tiny/tiny_parity.json");
    IT_REQUIRE(fx);
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_CHECK_OK(it_clip_tokenizer_load(&e, &tok, it_test_fixture(t, "text/tiny/tokenizer")), &e);
    if (tok) {
        const json_t *cases = json_object_get(fx, "cases");
        IT_CHECK(json_array_size(cases) >= 100);
        IT_CHECK_INT(check_cases(t, tok, cases, NULL, "padded"), json_array_size(cases));
    }
    it_clip_tokenizer_free(tok);
    json_decref(fx);
}

/* Known ids of the real vocabulary, independent of the fixture corpus. */
IT_TEST(text_clip_known_ids) {
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, clip_folder(t, "sd15")), &e);
    int32_t *ids;
    size_t n;
    IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &n, "a photo of a cat", 16), &e);
    static const int32_t want[] = {320, 1125, 539, 320, 2368};
    IT_CHECK_INT(n, 5);
    for (size_t i = 0; i < n && i < 5; i++) IT_CHECK_INT(ids[i], want[i]);
    it_free(ids);
    IT_CHECK_STR(it_clip_id_to_token(tok, 320), "a</w>");
    IT_CHECK_STR(it_clip_id_to_token(tok, 0), "!");
    IT_CHECK_STR(it_clip_id_to_token(tok, 49407), "<|endoftext|>");
    IT_CHECK(it_clip_id_to_token(tok, 49408) == NULL);
    IT_CHECK(it_clip_id_to_token(tok, -1) == NULL);
    IT_CHECK_INT(it_clip_token_to_id(tok, "cat</w>"), 2368);
    IT_CHECK_INT(it_clip_token_to_id(tok, "no such token"), -1);
    /* Empty text: just start and end; padded: end at 1, then padding. */
    int32_t pad[77];
    int n_valid;
    IT_CHECK_OK(it_clip_encode_padded(&e, tok, pad, 77, &n_valid, "", 0), &e);
    IT_CHECK_INT(n_valid, 2);
    IT_CHECK_INT(pad[0], 49406);
    IT_CHECK_INT(pad[1], 49407);
    IT_CHECK_INT(pad[76], 49407);
    /* Short max_length keeps start and end. */
    IT_CHECK_OK(it_clip_encode_padded(&e, tok, pad, 3, &n_valid, "a photo of a cat", 16), &e);
    IT_CHECK_INT(n_valid, 3);
    IT_CHECK_INT(pad[1], 320);
    IT_CHECK_INT(pad[2], 49407);
    IT_CHECK_INT(it_clip_encode_padded(&e, tok, pad, 1, &n_valid, "a", 1), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "max_length 1");
    it_clip_tokenizer_free(tok);
}

/* Expected strings: transformers 5 tok.decode(ids[, skip_special_tokens]). */
IT_TEST(text_clip_decode) {
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, it_test_fixture(t, "text/tiny/tokenizer")), &e);
    static const struct {
        const char *in, *out;
        int skip;
    } cases[] = {
        {"A Red creature, JUMPING!", "<|startoftext|>a red creature , jumping ! <|endoftext|>", 0},
        {"A Red creature, JUMPING!", "a red creature , jumping !", 1},
        {"caf\xc3\xa9 \xf0\x9f\x99\x82", "café 🙂", 1},
        {"", "", 1},
        {"caf\xc3\xa9 \xf0\x9f\x99\x82", "<|startoftext|>café 🙂 <|endoftext|>", 0},
        {"", "<|startoftext|><|endoftext|>", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids;
        size_t n;
        IT_CHECK_OK(it_clip_encode(&e, tok, &ids, &n, cases[i].in, strlen(cases[i].in)), &e);
        char *text;
        IT_CHECK_OK(it_clip_decode(&e, tok, &text, ids, n, cases[i].skip), &e);
        IT_CHECK_STR(text, cases[i].out);
        it_free(text);
        it_free(ids);
    }
    int32_t bad = 99999;
    char *text;
    IT_CHECK_INT(it_clip_decode(&e, tok, &text, &bad, 1, 0), IT_ERR_RANGE);
    IT_CHECK_CONTAINS(e.msg, "id 99999");
    it_clip_tokenizer_free(tok);
}

/* ------------------------------------------------------------------------ */
/* Malformed folders                                                         */
/* ------------------------------------------------------------------------ */

typedef struct load_case {
    const char *vocab, *merges, *config, *map;
    it_status code;
    const char *msg;
} load_case;

#define V3 "{\"!\":0,\"a\":1,\"b\":2,\"ab\":3,\"a</w>\":4,\"b</w>\":5,\"ab</w>\":6,\"<|startoftext|>\":7,\"<|endoftext|>\":8}"

IT_TEST(text_clip_load_errors) {
    static const load_case cases[] = {
        {V3, "#version: 0.2\na b\na b</w>\n", NULL, NULL, IT_OK, NULL},
        {V3, "a b\r\na b</w>", NULL, NULL, IT_OK, NULL},
        {"[1,2]", "", NULL, NULL, IT_ERR_FORMAT, "vocab.json: expected an object"},
        {"{\"a\":", "", NULL, NULL, IT_ERR_FORMAT, "vocab.json: line 1"},
        {"{\"a\":\"x\"}", "", NULL, NULL, IT_ERR_FORMAT, "token 'a': id must be an integer"},
        {"{\"a\":-1}", "", NULL, NULL, IT_ERR_FORMAT, "id must be an integer in [0,"},
        {"{\"a\":99999999999}", "", NULL, NULL, IT_ERR_FORMAT, "id must be an integer"},
        {"{\"a\":0,\"b\":0}", "", NULL, NULL, IT_ERR_FORMAT, "id 0 is used by"},
        {V3, "a b\nab\n", NULL, NULL, IT_ERR_FORMAT, "merges.txt line 2: expected two tokens"},
        {V3, "a b\n\n", NULL, NULL, IT_ERR_FORMAT, "merges.txt line 2: expected two tokens"},
        {V3, "a  b\n", NULL, NULL, IT_ERR_FORMAT, "merges.txt line 1: expected two tokens"},
        {V3, "a c\n", NULL, NULL, IT_ERR_FORMAT, "merges.txt line 1: token 'c' is not in vocab.json"},
        {V3, "b a\n", NULL, NULL, IT_ERR_FORMAT, "merged token 'ba' is not in vocab.json"},
        {"{\"a\":0}", "", NULL, NULL, IT_ERR_FORMAT, "special token '<|startoftext|>' (bos_token) is not in vocab.json"},
        {V3, "", "{\"bos_token\": 3}", NULL, IT_ERR_FORMAT, "tokenizer_config.json: bos_token must be a string"},
        {V3, "", "{\"pad_token\": {\"content\": \"!\", \"lstrip\": true}}", NULL, IT_ERR_UNSUPPORTED,
         "pad_token: \"lstrip\": true is not supported"},
        {V3, "", "[]", NULL, IT_ERR_FORMAT, "tokenizer_config.json: expected an object"},
        {V3, "", NULL, "{", IT_ERR_FORMAT, "special_tokens_map.json:"},
        {V3, "", "{\"pad_token\": \"zz\"}", NULL, IT_ERR_FORMAT, "special token 'zz' (pad_token)"},
        {V3, "", "{\"pad_token\": null, \"model_max_length\": 1e30}", NULL, IT_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const load_case *c = &cases[i];
        it_clip_sources src = {c->vocab, strlen(c->vocab), c->merges, strlen(c->merges),
                               c->config, c->config ? strlen(c->config) : 0,
                               c->map, c->map ? strlen(c->map) : 0};
        it_err e;
        it_err_clear(&e);
        it_clip_tokenizer *tok = NULL;
        it_status st = it_clip_tokenizer_load_mem(&e, &tok, &src);
        if (st != c->code)
            it_test_fail(t, __FILE__, __LINE__, "case %zu: status %d, want %d (%s)", i, st, c->code, e.msg);
        if (c->msg) IT_CHECK_CONTAINS(e.msg, c->msg);
        IT_CHECK((tok != NULL) == (st == IT_OK));
        it_clip_tokenizer_free(tok);
    }
    /* A folder without the files names the folder and the file. */
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_CHECK_INT(it_clip_tokenizer_load(&e, &tok, t->tmpdir), IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(e.msg, "no vocab.json");
    IT_CHECK_CONTAINS(e.msg, t->tmpdir);
}

/* The little vocabulary above: merges decide, unknown bytes become the
 * unknown token, pad null leaves padding impossible. */
IT_TEST(text_clip_small_vocab) {
    const char *merges = "a b\na b</w>\n";
    const char *config = "{\"pad_token\": null}";
    it_clip_sources src = {V3, strlen(V3), merges, strlen(merges), config, strlen(config), NULL, 0};
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_REQUIRE_OK(it_clip_tokenizer_load_mem(&e, &tok, &src), &e);
    int32_t *ids;
    size_t n;
    IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &n, "AB ab! b", 8), &e);
    /* "ab" -> ab</w> (6) twice; "!" -> '!' has no "!</w>": unknown (8);
     * "b" -> b</w> (5). */
    static const int32_t want[] = {6, 6, 8, 5};
    IT_CHECK_INT(n, 4);
    for (size_t i = 0; i < n && i < 4; i++) IT_CHECK_INT(ids[i], want[i]);
    it_free(ids);
    int32_t pad[8];
    IT_CHECK_INT(it_clip_encode_padded(&e, tok, pad, 8, NULL, "a", 1), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "no padding token");
    it_clip_tokenizer_free(tok);
}

/* ------------------------------------------------------------------------ */
/* Out of memory and odd input                                               */
/* ------------------------------------------------------------------------ */

IT_TEST(text_clip_nomem) {
    const char *dir = it_test_fixture(t, "text/tiny/tokenizer");
    const char *text = "A Red creature<|endoftext|> with caf\xc3\xa9 \xf0\x9f\x99\x82 and \xff bytes";
    int loaded = 0, encoded = 0;
    for (long k = 0; k < 400 && !(loaded && encoded); k++) {
        it_err e;
        it_err_clear(&e);
        it_clip_tokenizer *tok = NULL;
        it_mem_fail_after(k, 1);
        it_status st = it_clip_tokenizer_load(&e, &tok, dir);
        it_mem_fail_after(-1, 0);
        if (st) {
            IT_CHECK_INT(st, IT_ERR_NOMEM);
            continue;
        }
        loaded = 1;
        int32_t *ids;
        size_t n;
        it_mem_fail_after(k, 1);
        st = it_clip_encode(&e, tok, &ids, &n, text, strlen(text));
        it_mem_fail_after(-1, 0);
        if (st) IT_CHECK_INT(st, IT_ERR_NOMEM);
        else {
            encoded = 1;
            it_free(ids);
        }
        it_clip_tokenizer_free(tok);
    }
    IT_CHECK(loaded && encoded);
}

/* Long words, long inputs and every byte value go through without harm,
 * and the cache gives the same ids as a fresh tokenizer. */
IT_TEST(text_clip_stress) {
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL, *fresh = NULL;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, it_test_fixture(t, "text/tiny/tokenizer")), &e);
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &fresh, it_test_fixture(t, "text/tiny/tokenizer")), &e);
    size_t n = 200000;
    char *big = it_malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)(i % 7 == 6 ? ' ' : "creatu"[i % 6]);
    int32_t *ids, *ids2;
    size_t k, k2;
    IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &k, big, n), &e);
    IT_CHECK(k > n / 7);
    it_free(ids);
    memset(big, 'e', n); /* one 200 kB word */
    IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &k, big, n), &e);
    IT_CHECK(k > 0 && k <= n);
    it_free(ids);
    for (size_t i = 0; i < 256 * 4; i++) big[i] = (char)(i * 37 + i / 256);
    IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &k, big, 1024), &e);
    it_free(ids); /* the second call reads the cache the first one filled */
    IT_CHECK_OK(it_clip_tokenize(&e, fresh, &ids2, &k2, big, 1024), &e);
    IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &k, big, 1024), &e);
    IT_CHECK_INT(k, k2);
    IT_CHECK(k == k2 && memcmp(ids, ids2, k * sizeof *ids) == 0);
    it_free(ids);
    it_free(ids2);
    it_free(big);
    it_clip_tokenizer_free(tok);
    it_clip_tokenizer_free(fresh);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */
/* ------------------------------------------------------------------------ */

static int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

IT_TEST(text_clip_command) {
    const char *bin = getenv("IT_BIN");
    IT_REQUIRE(bin != NULL);
    char cmd[2048];
    const char *out = it_test_tmp(t, "out.json");
    snprintf(cmd, sizeof cmd, "%s tokenize --json -t %s 'A red creature' 'jumping!' > %s", bin,
             it_test_fixture(t, "text/tiny/tokenizer"), out);
    IT_REQUIRE(run_cmd(cmd) == 0);
    json_error_t je;
    json_t *j = json_load_file(out, 0, &je);
    IT_REQUIRE(j != NULL);
    IT_CHECK_INT(json_array_size(j), 2);
    json_t *first = json_array_get(j, 0);
    IT_CHECK_STR(json_string_value(json_object_get(first, "text")), "A red creature");
    json_t *toks = json_object_get(first, "tokens");
    IT_CHECK_STR(json_string_value(json_array_get(toks, 0)), "<|startoftext|>");
    IT_CHECK_STR(json_string_value(json_array_get(toks, 1)), "a</w>");
    json_decref(j);
    snprintf(cmd, sizeof cmd, "%s tokenize --pad -t %s 'a' > %s", bin,
             it_test_fixture(t, "text/tiny/tokenizer"), out);
    IT_CHECK_INT(run_cmd(cmd), 0);
    /* Legacy mode deletes the zero-width joiner; the default mode keeps its
     * three bytes (three byte-level tokens in the tiny vocabulary). */
    snprintf(cmd, sizeof cmd, "%s tokenize -t %s 'a\xe2\x80\x8d' --legacy > %s && grep -q 'count: 3' %s",
             bin, it_test_fixture(t, "text/tiny/tokenizer"), out, out);
    IT_CHECK_INT(run_cmd(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s tokenize -t %s 'a\xe2\x80\x8d' > %s && grep -q 'count: 6' %s", bin,
             it_test_fixture(t, "text/tiny/tokenizer"), out, out);
    IT_CHECK_INT(run_cmd(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s tokenize 'a' 2> %s", bin, out);
    IT_CHECK_INT(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s tokenize -t /nonexistent 'a' 2> %s", bin, out);
    IT_CHECK_INT(run_cmd(cmd), 1);
    uint8_t *msg;
    size_t n;
    it_err e;
    it_err_clear(&e);
    IT_CHECK_OK(it_file_read(&e, &msg, &n, out, 4096), &e);
    if (!e.code) {
        IT_CHECK_CONTAINS((char *)msg, "/nonexistent");
        it_free(msg);
    }
}

/* The legacy mode against transformers 4.x's slow CLIPTokenizer without ftfy
 * (clip_parity_legacy.json lists the texts whose ids differ from the default
 * mode's; every other text must give the default ids). */
IT_TEST(text_clip_parity_legacy) {
    json_t *fx = load_fixture(t, "text/clip_parity.json");
    json_t *lg = load_fixture(t, "text/clip_parity_legacy.json");
    IT_REQUIRE(fx && lg);
    const json_t *cases = json_object_get(fx, "cases");
    size_t n = json_array_size(cases);
    IT_CHECK_INT(json_integer_value(json_object_get(lg, "n_cases")), n);
    const json_t **diff = it_calloc(n + 1, sizeof *diff);
    const json_t *lcases = json_object_get(lg, "cases");
    for (size_t k = 0; k < json_array_size(lcases); k++) {
        const json_t *e = json_array_get(lcases, k);
        size_t i = (size_t)json_integer_value(json_object_get(e, "i"));
        if (i < n) diff[i] = e;
    }
    IT_CHECK(json_array_size(lcases) >= 150); /* the corpus is built to tell the modes apart */
    static const char *const variants[3] = {"sd15", "sd2", "bare"};
    for (int v = 0; v < 3; v++) {
        it_err e;
        it_err_clear(&e);
        it_clip_tokenizer *tok = NULL;
        IT_CHECK_OK(it_clip_tokenizer_load(&e, &tok, clip_folder(t, variants[v])), &e);
        if (!tok) continue;
        it_clip_tokenizer_set_mode(tok, IT_CLIP_MODE_LEGACY);
        char key[32];
        snprintf(key, sizeof key, "ids_%s", variants[v]);
        size_t ok = 0, shown = 0;
        for (size_t i = 0; i < n; i++) {
            const json_t *c = json_array_get(cases, i), *want = NULL;
            if (diff[i] && v > 0) want = json_object_get(diff[i], key);
            if (!want && diff[i]) want = json_object_get(diff[i], "ids");
            if (!want) want = json_object_get(c, "ids");
            size_t len;
            char *text = case_text(c, &len);
            int32_t *ids;
            size_t k;
            IT_CHECK_OK(it_clip_encode(&e, tok, &ids, &k, text, len), &e);
            if (!e.code) {
                int good = ids_equal(want, ids, k);
                if (!good && shown++ < 5) print_mismatch(variants[v], text, len, want, ids, k);
                ok += good;
                it_free(ids);
            }
            it_free(text);
        }
        if (ok != n) it_test_fail(t, __FILE__, __LINE__, "legacy %s: %zu/%zu identical", variants[v], ok, n);
        else if (v == 0) printf("    legacy sd15: %zu/%zu cases identical to transformers 4 slow CLIPTokenizer\n", ok, n);
        it_clip_tokenizer_free(tok);
    }
    it_free(diff);
    json_decref(fx);
    json_decref(lg);
}

/* One tokenizer shared by several threads (the word cache is locked) gives
 * the ids of a serial run. */
IT_TEST(text_clip_threads) {
    json_t *fx = load_fixture(t, "text/clip_parity.json");
    IT_REQUIRE(fx);
    it_err e;
    it_err_clear(&e);
    it_clip_tokenizer *tok = NULL;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, it_test_fixture(t, "text/tiny/tokenizer")), &e);
    const json_t *cases = json_object_get(fx, "cases");
    long n = (long)json_array_size(cases);
    size_t *serial = it_calloc((size_t)n, sizeof *serial);
    uint64_t *sum = it_calloc((size_t)n, sizeof *sum);
    for (long i = 0; i < n; i++) {
        size_t len, k;
        char *text = case_text(json_array_get(cases, i), &len);
        int32_t *ids;
        IT_CHECK_OK(it_clip_tokenize(&e, tok, &ids, &k, text, len), &e);
        for (size_t j = 0; j < k; j++) sum[i] = sum[i] * 1000003u + (uint64_t)ids[j];
        serial[i] = k;
        it_free(ids);
        it_free(text);
    }
    int bad = 0;
    for (int round = 0; round < 4; round++) {
#pragma omp parallel for schedule(dynamic, 7) reduction(+ : bad)
        for (long i = 0; i < n; i++) {
            size_t len, k;
            char *text = case_text(json_array_get(cases, i), &len);
            int32_t *ids;
            it_err le;
            if (it_clip_tokenize(&le, tok, &ids, &k, text, len) != IT_OK) {
                bad++;
            } else {
                uint64_t h = 0;
                for (size_t j = 0; j < k; j++) h = h * 1000003u + (uint64_t)ids[j];
                bad += k != serial[i] || h != sum[i];
                it_free(ids);
            }
            it_free(text);
        }
    }
    IT_CHECK_INT(bad, 0);
    it_free(serial);
    it_free(sum);
    it_clip_tokenizer_free(tok);
    json_decref(fx);
}
