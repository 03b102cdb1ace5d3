/* test_intent_llm.c: the LLM mode against a fake OpenAI-compatible server
 * on 127.0.0.1 (an ephemeral port, libmicrohttpd inside this process), over
 * real HTTP through libcurl: a valid answer, fenced JSON, invalid JSON, a
 * schema-invalid answer, HTTP 500, a timeout, and the cache (a second
 * identical request never reaches the server). */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "intent/llm.h"
#include "test.h"

typedef enum fake_mode { F_VALID, F_FENCED, F_NOT_JSON, F_BAD_SCHEMA, F_HTTP500, F_SLOW, F_NO_CHOICES } fake_mode;

typedef struct fake {
    struct MHD_Daemon *d;
    int port;
    fake_mode mode;
    int requests;
    char last_auth[256];
    char *last_body; /* malloc'd */
} fake;

/* A hierarchy the built-in parser would not produce (domain 2d-character,
 * an extra "hat" concept), so the tests can tell the two apart. */
static const char *ANSWER =
    "{\"domain\": \"2d-character\", \"subjects\": [{\"name\": \"Vincent\", \"trigger\": \"vincent\", "
    "\"class\": \"man\"}], \"concepts\": [{\"id\": \"c1\", \"phrase\": \"face\", \"head\": \"face\", "
    "\"property\": null, \"attributes\": [], \"level\": \"instance\", \"operation\": \"preserve\", "
    "\"subject\": \"vincent\", \"refs\": [], \"variants\": [], \"contrast\": [], \"contrast_source\": "
    "\"none\", \"query\": \"face\", \"source\": null}, {\"id\": \"c2\", \"phrase\": \"jacket\", \"head\": "
    "\"jacket\", \"property\": null, \"attributes\": [], \"level\": \"instance\", \"operation\": \"modify\", "
    "\"subject\": \"vincent\", \"refs\": [1, 2], \"variants\": [{\"phrase\": \"black leather jacket\", "
    "\"refs\": [1]}, {\"phrase\": \"black striped jacket\", \"refs\": [2]}], \"contrast\": [[\"black "
    "leather jacket\", \"black striped jacket\"]], \"contrast_source\": \"explicit\", \"query\": "
    "\"jacket\", \"source\": null}, {\"id\": \"c3\", \"phrase\": \"hat\", \"head\": \"hat\", \"property\": "
    "null, \"attributes\": [], \"level\": \"instance\", \"operation\": \"remove\", \"subject\": \"vincent\", "
    "\"refs\": [], \"variants\": [], \"contrast\": [], \"contrast_source\": \"none\", \"query\": \"hat\", "
    "\"source\": null}], \"warnings\": []}";

static const char *TEXT = "A man named Vincent. Keep his face. He should switch between the black leather jacket [1] "
                          "and the black striped jacket [2]. No necklace.";

static const it_intent_ref REFS[2] = {
    {1, "tests/fixtures/intent/ref_a.png", {10, 10, 60, 50}, 0, 0},
    {2, "tests/fixtures/intent/ref_b.jpg", {20, 5, 90, 40}, 0, 0},
};

static char *completion(const char *content)
{
    json_t *o = json_pack("{s:s, s:[{s:i, s:{s:s, s:s}}]}", "object", "chat.completion", "choices", "index", 0,
                          "message", "role", "assistant", "content", content);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
    fake *f = cls;
    (void)version;
    if (*state == NULL) { /* first call: headers only */
        *state = f;
        free(f->last_body);
        f->last_body = calloc(1, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        size_t old = strlen(f->last_body);
        char *nb = realloc(f->last_body, old + *upload_size + 1);
        if (!nb) return MHD_NO;
        memcpy(nb + old, upload, *upload_size);
        nb[old + *upload_size] = '\0';
        f->last_body = nb;
        *upload_size = 0;
        return MHD_YES;
    }
    f->requests++;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    snprintf(f->last_auth, sizeof f->last_auth, "%s", auth ? auth : "");
    int status = 200;
    char *body = NULL;
    if (strcmp(method, "POST") || strcmp(url, "/v1/chat/completions")) {
        status = 404;
        body = strdup("{\"error\": \"not found\"}");
    } else {
        switch (f->mode) {
        case F_VALID: body = completion(ANSWER); break;
        case F_FENCED: {
            char *fenced = malloc(strlen(ANSWER) + 32);
            sprintf(fenced, "```json\n%s\n```\n", ANSWER);
            body = completion(fenced);
            free(fenced);
            break;
        }
        case F_NOT_JSON: body = completion("Sure! Here is the hierarchy: {domain: portrait"); break;
        case F_BAD_SCHEMA: body = completion("{\"domain\": \"portrait\", \"subjects\": [], \"concepts\": "
                                             "[{\"head\": \"face\", \"level\": \"instance\", \"operation\": \"keep\"}]}");
            break;
        case F_HTTP500: status = 500; body = strdup("{\"error\": \"overloaded\"}"); break;
        case F_SLOW: usleep(1500 * 1000); body = completion(ANSWER); break;
        case F_NO_CHOICES: body = strdup("{\"object\": \"chat.completion\", \"choices\": []}"); break;
        }
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static int fake_start(fake *f)
{
    memset(f, 0, sizeof *f);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!f->d) return 0;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = info ? info->port : 0;
    return f->port > 0;
}

static void fake_stop(fake *f)
{
    if (f->d) MHD_stop_daemon(f->d);
    free(f->last_body);
    f->last_body = NULL;
}

/* One LLM parse against the fake; returns the status, fills outcome. */
static it_status llm(it_test_ctx *t, fake *f, it_intent *out, it_llm_outcome *oc, double timeout, int cache)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", f->port);
    it_llm_opts lo = {.url = url, .model = "fake-model", .api_key = "sk-test", .timeout_s = timeout,
                      .cache_dir = cache ? it_test_tmp(t, "cache") : "", .no_cache = !cache};
    it_intent_parse_opts po = {.domain = -1, .refs = REFS, .n_refs = 2, .image_size = it_intent_image_size};
    it_err e;
    it_err_clear(&e);
    return it_llm_parse_ex(&e, out, oc, TEXT, strlen(TEXT), &po, &lo);
}

static int has_warning(const it_intent *in, const char *needle)
{
    for (int i = 0; i < in->n_warnings; i++)
        if (strstr(in->warnings[i], needle)) return 1;
    return 0;
}

IT_TEST(intent_llm_valid_answer) {
    fake f;
    IT_REQUIRE(fake_start(&f));
    it_intent in;
    it_llm_outcome oc;
    IT_REQUIRE(llm(t, &f, &in, &oc, 5, 0) == IT_OK);
    IT_CHECK_INT(oc, IT_LLM_ANSWERED);
    IT_CHECK_INT(f.requests, 1);
    IT_CHECK_STR(in.parser, "llm:fake-model");
    IT_CHECK_STR(it_intent_domain_name(in.domain), "2d-character");
    IT_CHECK_INT(in.n_concepts, 3);
    IT_CHECK_STR(in.concepts[2].head, "hat");
    IT_CHECK_INT(in.n_refs, 2);       /* our references, not the model's */
    IT_CHECK_INT(in.refs[0].img_w, 128);
    IT_CHECK_STR(in.text, TEXT);
    /* the request: our schema in the system prompt, the text, the key */
    IT_CHECK_STR(f.last_auth, "Bearer sk-test");
    IT_CHECK_CONTAINS(f.last_body, "\"model\":\"fake-model\"");
    IT_CHECK_CONTAINS(f.last_body, "operation (\\\"preserve\\\"");
    IT_CHECK_CONTAINS(f.last_body, "black striped jacket [2]");
    IT_CHECK_CONTAINS(f.last_body, "Reference [1]: a box 10,10,60,50");
    it_intent_free(&in);
    f.mode = F_FENCED;
    IT_REQUIRE(llm(t, &f, &in, &oc, 5, 0) == IT_OK);
    IT_CHECK_INT(oc, IT_LLM_ANSWERED);
    IT_CHECK_INT(in.n_concepts, 3);
    it_intent_free(&in);
    fake_stop(&f);
}

/* Table: what the server does, and the reason the fallback warning names. */
IT_TEST(intent_llm_falls_back_and_says_why) {
    static const struct {
        fake_mode mode;
        const char *why;
    } cases[] = {
        {F_NOT_JSON, "invalid answer: the answer is not JSON"},
        {F_BAD_SCHEMA, "invalid answer: concepts[0].operation: 'keep' is not one of preserve, modify, remove"},
        {F_HTTP500, "HTTP 500"},
        {F_NO_CHOICES, "no choices[0].message.content"},
        {F_SLOW, "timed out after 0.3 s"},
    };
    fake f;
    IT_REQUIRE(fake_start(&f));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f.mode = cases[i].mode;
        it_intent in;
        it_llm_outcome oc;
        double t0 = it_time_now();
        IT_REQUIRE(llm(t, &f, &in, &oc, 0.3, 1) == IT_OK);
        double dt = it_time_now() - t0;
        IT_CHECK_INT(oc, IT_LLM_FELL_BACK);
        IT_CHECK_STR(in.parser, "builtin");
        IT_CHECK_STR(it_intent_domain_name(in.domain), "portrait"); /* the built-in result */
        IT_CHECK(has_warning(&in, "used the built-in parser"));
        if (!has_warning(&in, cases[i].why)) {
            it_test_fail(t, __FILE__, __LINE__, "case %zu: no warning with \"%s\"", i, cases[i].why);
            for (int w = 0; w < in.n_warnings; w++) printf("      %s\n", in.warnings[w]);
        }
        if (cases[i].mode == F_SLOW) IT_CHECK(dt < 1.2);
        it_intent_free(&in);
    }
    fake_stop(&f);
    /* nothing listening: a connection error, same fallback */
    it_llm_opts lo = {.url = "http://127.0.0.1:1/v1", .model = "m", .timeout_s = 2, .no_cache = 1};
    it_intent_parse_opts po = {.domain = -1, .refs = REFS, .n_refs = 2};
    it_err e;
    it_intent in;
    it_llm_outcome oc;
    IT_REQUIRE(it_llm_parse_ex(&e, &in, &oc, TEXT, strlen(TEXT), &po, &lo) == IT_OK);
    IT_CHECK_INT(oc, IT_LLM_FELL_BACK);
    IT_CHECK(has_warning(&in, "LLM m at http://127.0.0.1:1/v1 failed"));
    it_intent_free(&in);
}

IT_TEST(intent_llm_cache_hit_skips_the_server) {
    fake f;
    IT_REQUIRE(fake_start(&f));
    it_intent in;
    it_llm_outcome oc;
    IT_REQUIRE(llm(t, &f, &in, &oc, 5, 1) == IT_OK);
    IT_CHECK_INT(oc, IT_LLM_ANSWERED);
    it_intent_free(&in);
    IT_CHECK_INT(f.requests, 1);
    f.mode = F_HTTP500; /* a request now would fail: the cache must answer */
    IT_REQUIRE(llm(t, &f, &in, &oc, 5, 1) == IT_OK);
    IT_CHECK_INT(oc, IT_LLM_CACHED);
    IT_CHECK_INT(f.requests, 1);
    IT_CHECK_STR(in.parser, "llm:fake-model (cached)");
    IT_CHECK_INT(in.n_concepts, 3);
    it_intent_free(&in);
    /* a different text is a different key */
    char k1[33], k2[33], k3[33];
    it_llm_cache_key(k1, "m", "abc", 3, REFS, 2);
    it_llm_cache_key(k2, "m", "abd", 3, REFS, 2);
    it_llm_cache_key(k3, "m2", "abc", 3, REFS, 2);
    IT_CHECK(strcmp(k1, k2) != 0 && strcmp(k1, k3) != 0);
    IT_CHECK_INT(strlen(k1), 32);
    /* a corrupted cache entry is ignored and refetched */
    char path[700];
    char key[33];
    it_llm_cache_key(key, "fake-model", TEXT, strlen(TEXT), REFS, 2);
    snprintf(path, sizeof path, "%s/%s.json", it_test_tmp(t, "cache"), key);
    FILE *fp = fopen(path, "w");
    IT_REQUIRE(fp);
    fputs("{broken", fp);
    fclose(fp);
    f.mode = F_VALID;
    IT_REQUIRE(llm(t, &f, &in, &oc, 5, 1) == IT_OK);
    IT_CHECK_INT(oc, IT_LLM_ANSWERED);
    IT_CHECK_INT(f.requests, 2);
    it_intent_free(&in);
    fake_stop(&f);
}

IT_TEST(intent_llm_bad_input_is_an_error_not_a_request) {
    fake f;
    IT_REQUIRE(fake_start(&f));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", f.port);
    it_llm_opts lo = {.url = url, .model = "fake-model", .timeout_s = 5, .no_cache = 1};
    it_intent_parse_opts po = {.domain = -1};
    it_err e;
    it_intent in;
    const char *bad = "Keep the jacket [4].";
    IT_CHECK(it_llm_parse(&e, &in, bad, strlen(bad), &po, &lo) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "cites [4]");
    IT_CHECK_INT(f.requests, 0);
    fake_stop(&f);
}

IT_TEST(intent_llm_cli) {
    fake f;
    IT_REQUIRE(fake_start(&f));
    const char *bin = getenv("IT_BIN");
    if (!bin) bin = "build/intenttuner";
    char cmd[2048];
    const char *out = it_test_tmp(t, "out.json");
    snprintf(cmd, sizeof cmd,
             "INTENTTUNER_LLM_KEY=sk-cli %s intent parse --json --llm http://127.0.0.1:%d/v1 --llm-model fake-model "
             "--llm-cache '%s' --ref 1=tests/fixtures/intent/ref_a.png:10,10,60,50 "
             "--ref 2=tests/fixtures/intent/ref_b.jpg:20,5,90,40 --text \"%s\" > '%s'",
             bin, f.port, it_test_tmp(t, "cache"), TEXT, out);
    IT_CHECK_INT(system(cmd), 0);
    uint8_t *data;
    size_t n;
    it_err e;
    IT_REQUIRE_OK(it_file_read(&e, &data, &n, out, 1 << 20), &e);
    IT_CHECK_CONTAINS((char *)data, "\"parser\": \"llm:fake-model\"");
    it_free(data);
    IT_CHECK_STR(f.last_auth, "Bearer sk-cli");
    /* --llm without --llm-model is a usage error */
    snprintf(cmd, sizeof cmd, "%s intent parse --text x --llm http://127.0.0.1:%d/v1 2>/dev/null", bin, f.port);
    int rc = system(cmd);
    IT_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    fake_stop(&f);
}
