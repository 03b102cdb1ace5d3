/* llm.c: intent parsing through an OpenAI-compatible chat endpoint, with a
 * cache and a fallback to the built-in parser (see llm.h).
 *
 * Order of work: the built-in parser runs first. It validates the input (a
 * text the built-in parser rejects is rejected, the LLM is never asked) and
 * its result is the fallback. Then the cache, then the request. The model's
 * answer is untrusted: it is read as JSON, our own text and references are
 * put into it (the model must not invent boxes), and it must pass the strict
 * validator of `intent check`; anything else falls back. */
#include "intent/llm.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

#define LLM_RESPONSE_MAX (4u << 20)

static const char g_system_prompt[] =
    "You turn a user's intent for fine-tuning a text-to-image model into a JSON concept hierarchy.\n"
    "Answer with one JSON object and nothing else. Keys (all required unless marked optional):\n"
    "- domain: one of \"2d-character\", \"portrait\", \"product\", \"painting\".\n"
    "- subjects: array of {\"name\": as written or null, \"trigger\": lowercase [a-z0-9_-] word "
    "(\"a man named Vincent\" -> \"vincent\"), \"class\": class noun (\"man\", \"dog\", \"pose\", \"style\")}.\n"
    "- concepts: array of objects, one per thing the user wants kept, varied or removed:\n"
    "  id (\"c1\", \"c2\"...), phrase (canonical noun phrase), head (canonical head noun: \"face\", "
    "\"hair\", \"jacket\", \"background\"), property (only for attribute level: \"colour\", \"length\", "
    "\"count\", \"expression\", \"pattern\", \"material\"...; otherwise null), attributes (modifier "
    "words, array of strings), level (\"attribute\" for a property of something such as hair colour "
    "or eye count; \"instance\" for a thing with a box such as face, hair, jacket, necklace; \"image\" "
    "for the whole picture: background, lighting, style, pose, composition), operation (\"preserve\": "
    "must be reproduced faithfully; \"modify\": must stay controllable by the prompt; \"remove\": must "
    "not appear), subject (the trigger of the subject it belongs to, or null for whole-image aspects), "
    "refs (the numbers n of the [n] marks that cite it), variants (explicit values, array of "
    "{\"phrase\", \"refs\"}; modify only), contrast (array of pairs [\"red hair\", \"blonde hair\"]: two "
    "opposite values to test control; modify only), contrast_source (\"none\", \"explicit\", "
    "\"opposites\"), query (the text a detector should look for, usually the head), source (the "
    "sentence it came from).\n"
    "- warnings: array of strings (parts of the intent you could not place).\n"
    "Do not add other keys. Do not add refs, text or version: the caller adds them.\n"
    "Example intent: \"I want to train a model of a man named Vincent. Keep his facial features "
    "consistent. He should be able to switch between the black leather jacket [1] and the black "
    "striped jacket [2]. His hair colour should be adjustable, and don't let him wear a necklace.\"\n"
    "Example answer: {\"domain\": \"portrait\", \"subjects\": [{\"name\": \"Vincent\", \"trigger\": "
    "\"vincent\", \"class\": \"man\"}], \"concepts\": [{\"id\": \"c1\", \"phrase\": \"face\", \"head\": "
    "\"face\", \"property\": null, \"attributes\": [], \"level\": \"instance\", \"operation\": "
    "\"preserve\", \"subject\": \"vincent\", \"refs\": [], \"variants\": [], \"contrast\": [], "
    "\"contrast_source\": \"none\", \"query\": \"face\", \"source\": \"Keep his facial features "
    "consistent.\"}, {\"id\": \"c2\", \"phrase\": \"jacket\", \"head\": \"jacket\", \"property\": null, "
    "\"attributes\": [], \"level\": \"instance\", \"operation\": \"modify\", \"subject\": \"vincent\", "
    "\"refs\": [1, 2], \"variants\": [{\"phrase\": \"black leather jacket\", \"refs\": [1]}, "
    "{\"phrase\": \"black striped jacket\", \"refs\": [2]}], \"contrast\": [[\"black leather jacket\", "
    "\"black striped jacket\"]], \"contrast_source\": \"explicit\", \"query\": \"jacket\", \"source\": "
    "\"He should be able to switch between the black leather jacket [1] and the black striped "
    "jacket [2].\"}, {\"id\": \"c3\", \"phrase\": \"hair colour\", \"head\": \"hair\", \"property\": "
    "\"colour\", \"attributes\": [], \"level\": \"attribute\", \"operation\": \"modify\", \"subject\": "
    "\"vincent\", \"refs\": [], \"variants\": [], \"contrast\": [[\"red hair\", \"blonde hair\"]], "
    "\"contrast_source\": \"opposites\", \"query\": \"hair\", \"source\": \"His hair colour should be "
    "adjustable\"}, {\"id\": \"c4\", \"phrase\": \"necklace\", \"head\": \"necklace\", \"property\": "
    "null, \"attributes\": [], \"level\": \"instance\", \"operation\": \"remove\", \"subject\": "
    "\"vincent\", \"refs\": [], \"variants\": [], \"contrast\": [], \"contrast_source\": \"none\", "
    "\"query\": \"necklace\", \"source\": \"don't let him wear a necklace\"}], \"warnings\": []}\n";

const char *it_llm_system_prompt(void) { return g_system_prompt; }

/* ---- cache key ------------------------------------------------------------------ */

typedef struct fnv2 {
    uint64_t a, b;
} fnv2;

static void fnv_feed(fnv2 *h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ c[i]) * 0x100000001b3ULL;
        h->b = (h->b ^ c[i]) * 0x100000001b3ULL;
        h->b ^= h->b >> 29;
    }
    /* a separator so that ("ab","c") and ("a","bc") differ */
    h->a = (h->a ^ 0xff) * 0x100000001b3ULL;
    h->b = (h->b ^ 0xfe) * 0x100000001b3ULL;
}

void it_llm_cache_key(char out[33], const char *model, const char *text, size_t len,
                      const it_intent_ref *refs, int n_refs)
{
    fnv2 h = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    fnv_feed(&h, "intenttuner-llm-v1", 18);
    fnv_feed(&h, model ? model : "", model ? strlen(model) : 0);
    fnv_feed(&h, text, len);
    for (int i = 0; i < n_refs; i++) {
        char buf[128];
        int k = snprintf(buf, sizeof buf, "%d:%.3f,%.3f,%.3f,%.3f", refs[i].n, refs[i].box[0], refs[i].box[1],
                         refs[i].box[2], refs[i].box[3]);
        fnv_feed(&h, buf, (size_t)(k > 0 ? k : 0));
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.a, (unsigned long long)h.b);
}

static int cache_path(char *buf, size_t n, const it_llm_opts *lo, const char *key)
{
    if (lo->no_cache || (lo->cache_dir && !*lo->cache_dir)) return 0;
    if (lo->cache_dir) return snprintf(buf, n, "%s/%s.json", lo->cache_dir, key) < (int)n;
    const char *home = getenv("HOME");
    if (!home || !*home) return 0;
    return snprintf(buf, n, "%s/.cache/intenttuner/llm/%s.json", home, key) < (int)n;
}

/* ---- request ---------------------------------------------------------------------- */

typedef struct rx {
    it_buf body;
    int too_big;
} rx;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    rx *r = ud;
    size_t n = size * nmemb;
    if (r->body.len + n > LLM_RESPONSE_MAX) {
        r->too_big = 1;
        return 0;
    }
    return it_buf_append(&r->body, p, n) == IT_OK ? n : 0;
}

static char *request_json(const it_llm_opts *lo, const char *text, size_t len, const it_intent_ref *refs, int n_refs)
{
    it_buf user;
    it_buf_init(&user);
    (void)it_buf_printf(&user, "Intent:\n%.*s\n", (int)len, text);
    for (int i = 0; i < n_refs; i++)
        (void)it_buf_printf(&user, "Reference [%d]: a box %g,%g,%g,%g on an image.\n", refs[i].n, refs[i].box[0],
                            refs[i].box[1], refs[i].box[2], refs[i].box[3]);
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i, s:{s:s}}", "model", lo->model, "messages",
                            "role", "system", "content", g_system_prompt, "role", "user", "content",
                            user.data ? user.data : "", "temperature", 0, "response_format", "type",
                            "json_object");
    it_buf_free(&user);
    if (!req) return NULL;
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return s; /* malloc'd by jansson */
}

static it_status http_post(it_err *err, it_buf *out, const it_llm_opts *lo, const char *body)
{
    char url[1024];
    size_t ul = strlen(lo->url);
    while (ul > 0 && lo->url[ul - 1] == '/') ul--;
    const char *suffix = "/chat/completions";
    if (ul >= strlen(suffix) && !memcmp(lo->url + ul - strlen(suffix), suffix, strlen(suffix))) suffix = "";
    if (snprintf(url, sizeof url, "%.*s%s", (int)ul, lo->url, suffix) >= (int)sizeof url)
        return it_err_set(err, IT_ERR_ARG, "LLM URL too long");
    CURL *c = curl_easy_init();
    if (!c) return it_err_set(err, IT_ERR_NET, "cannot initialise libcurl");
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[600];
    if (lo->api_key && *lo->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", lo->api_key);
        hdr = curl_slist_append(hdr, auth);
    }
    rx r = {0};
    it_buf_init(&r.body);
    long ms = (long)((lo->timeout_s > 0 ? lo->timeout_s : 30) * 1000);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    it_status s = IT_OK;
    if (r.too_big) s = it_err_set(err, IT_ERR_RANGE, "answer larger than %u bytes", LLM_RESPONSE_MAX);
    else if (cc == CURLE_OPERATION_TIMEDOUT) s = it_err_set(err, IT_ERR_NET, "timed out after %.1f s", ms / 1000.0);
    else if (cc != CURLE_OK) s = it_err_set(err, IT_ERR_NET, "%s", curl_easy_strerror(cc));
    else if (status < 200 || status >= 300)
        s = it_err_set(err, IT_ERR_NET, "HTTP %ld: %.120s", status, r.body.data ? r.body.data : "");
    if (s != IT_OK) {
        it_buf_free(&r.body);
        return s;
    }
    *out = r.body;
    return IT_OK;
}

/* choices[0].message.content of a chat completion, fences stripped, into an
 * it_malloc'd string. */
static it_status answer_content(it_err *err, char **out, const char *body, size_t n)
{
    json_error_t je;
    json_t *root = json_loadb(body, n, 0, &je);
    if (!root) return it_err_set(err, IT_ERR_FORMAT, "the response is not JSON (%s)", je.text);
    json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(root, "choices"), 0), "message"),
                                      "content");
    if (!json_is_string(content)) {
        json_decref(root);
        return it_err_set(err, IT_ERR_FORMAT, "the response has no choices[0].message.content");
    }
    const char *s = json_string_value(content);
    size_t l = json_string_length(content);
    /* ```json ... ``` fences, which chat models add despite instructions */
    while (l && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, l--;
    if (l >= 3 && !memcmp(s, "```", 3)) {
        const char *nl = memchr(s, '\n', l);
        if (nl) {
            l -= (size_t)(nl + 1 - s);
            s = nl + 1;
        }
        while (l && (s[l - 1] == ' ' || s[l - 1] == '\n' || s[l - 1] == '\r')) l--;
        if (l >= 3 && !memcmp(s + l - 3, "```", 3)) l -= 3;
    }
    *out = it_strndup(s, l);
    json_decref(root);
    return *out ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
}

/* Adds our text, refs and parser name to the model's hierarchy and runs
 * the strict reader on it. */
static it_status validate_answer(it_err *err, it_intent *out, const char *content, const char *text, size_t len,
                                 const it_intent *fallback, const it_intent_parse_opts *po,
                                 const it_llm_opts *lo, int cached)
{
    json_error_t je;
    json_t *root = json_loads(content, 0, &je);
    if (!root) return it_err_set(err, IT_ERR_FORMAT, "the answer is not JSON (line %d: %s)", je.line, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return it_err_set(err, IT_ERR_FORMAT, "the answer is not a JSON object");
    }
    char *fb_json = NULL;
    it_status s = it_intent_to_json(err, &fb_json, fallback, 0);
    if (s != IT_OK) {
        json_decref(root);
        return s;
    }
    json_t *fb = json_loads(fb_json, 0, NULL);
    it_free(fb_json);
    char parser[200];
    snprintf(parser, sizeof parser, "llm:%s%s", lo->model, cached ? " (cached)" : "");
    json_t *t = json_stringn(text, len);
    if (!fb || !t || json_object_set(root, "refs", json_object_get(fb, "refs")) ||
        json_object_set_new(root, "text", t) || json_object_set_new(root, "parser", json_string(parser))) {
        json_decref(fb);
        json_decref(root);
        return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    }
    json_decref(fb);
    char *doc = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!doc) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_intent_check_opts co = {.image_size = po ? po->image_size : NULL};
    it_buf problems;
    it_buf_init(&problems);
    s = it_intent_from_json(err, out, doc, strlen(doc), &co, &problems);
    free(doc);
    it_buf_free(&problems);
    return s;
}

static void fall_back(it_intent *out, it_intent *fallback, const it_llm_opts *lo, const char *why)
{
    *out = *fallback;
    it_intent_warn(out, "LLM %s at %s failed (%s); used the built-in parser", lo->model, lo->url, why);
}

it_status it_llm_parse_ex(it_err *err, it_intent *out, it_llm_outcome *outcome, const char *text, size_t len,
                          const it_intent_parse_opts *po, const it_llm_opts *lo)
{
    it_llm_outcome dummy;
    if (!outcome) outcome = &dummy;
    *outcome = IT_LLM_FELL_BACK;
    it_intent fallback;
    IT_TRY(it_intent_parse(err, &fallback, text, len, po));
    char key[33], path[1200];
    it_llm_cache_key(key, lo->model, text, len, fallback.refs, fallback.n_refs);
    int use_cache = cache_path(path, sizeof path, lo, key);
    it_err e;
    it_err_clear(&e);
    if (use_cache && it_file_exists(path)) {
        uint8_t *data;
        size_t n;
        if (it_file_read(&e, &data, &n, path, LLM_RESPONSE_MAX) == IT_OK) {
            it_status s = validate_answer(&e, out, (const char *)data, text, len, &fallback, po, lo, 1);
            it_free(data);
            if (s == IT_OK) {
                it_intent_free(&fallback);
                *outcome = IT_LLM_CACHED;
                return IT_OK;
            }
        }
        it_err_clear(&e); /* a bad cache entry is refetched */
    }
    char *body = request_json(lo, text, len, fallback.refs, fallback.n_refs);
    if (!body) {
        fall_back(out, &fallback, lo, "out of memory building the request");
        return IT_OK;
    }
    it_buf resp;
    it_status s = http_post(&e, &resp, lo, body);
    free(body);
    if (s != IT_OK) {
        fall_back(out, &fallback, lo, e.msg);
        return IT_OK;
    }
    char *content = NULL;
    s = answer_content(&e, &content, resp.data ? resp.data : "", resp.len);
    it_buf_free(&resp);
    if (s == IT_OK) s = validate_answer(&e, out, content, text, len, &fallback, po, lo, 0);
    if (s != IT_OK) {
        char why[IT_ERR_MSG_MAX + 32];
        snprintf(why, sizeof why, "invalid answer: %s", e.msg);
        it_free(content);
        fall_back(out, &fallback, lo, why);
        return IT_OK;
    }
    if (use_cache) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        it_err ce;
        it_err_clear(&ce);
        if (it_mkdir_p(&ce, dir) != IT_OK || it_file_write_atomic(&ce, path, content, strlen(content)) != IT_OK)
            it_intent_warn(out, "could not cache the LLM answer: %s", ce.msg);
    }
    it_free(content);
    it_intent_free(&fallback);
    *outcome = IT_LLM_ANSWERED;
    return IT_OK;
}

it_status it_llm_parse(it_err *err, it_intent *out, const char *text, size_t len, const it_intent_parse_opts *po,
                       const it_llm_opts *lo)
{
    return it_llm_parse_ex(err, out, NULL, text, len, po, lo);
}
