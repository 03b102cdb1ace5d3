/* cmd_intent.c: `intenttuner intent parse|check`: intent text -> hierarchy,
 * and validation of hand-edited intent files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "intent/hierarchy.h"
#include "intent/llm.h"
#include "intent/parser.h"
#include "intent/refs.h"

#define INTENT_FILE_MAX IT_INTENT_INPUT_MAX

static int print_result(it_intent *in, int json)
{
    it_err err;
    it_err_clear(&err);
    if (json) {
        char *s;
        if (it_intent_to_json(&err, &s, in, 1) != IT_OK) return it_cli_fail(&err);
        printf("%s\n", s);
        it_free(s);
    } else {
        it_buf b;
        it_buf_init(&b);
        if (it_intent_format_tree(&err, &b, in) != IT_OK) {
            it_buf_free(&b);
            return it_cli_fail(&err);
        }
        fputs(b.data, stdout);
        it_buf_free(&b);
    }
    return 0;
}

/* --contrast "KEY=A/B": the user's own pair for the concept KEY. */
static it_status apply_contrast(it_err *err, it_intent *in, const char *spec)
{
    const char *eq = strchr(spec, '='), *sl = eq ? strchr(eq, '/') : NULL;
    if (!eq || !sl || eq == spec || sl == eq + 1 || !sl[1])
        return it_err_set(err, IT_ERR_ARG, "--contrast '%s': expected KEY=A/B, e.g. 'hair colour=red hair/blonde hair'", spec);
    int hit = 0;
    for (int i = 0; i < in->n_concepts; i++) {
        it_intent_concept *c = &in->concepts[i];
        char key[160];
        it_intent_concept_key(key, sizeof key, c);
        if (strlen(key) != (size_t)(eq - spec) || memcmp(key, spec, (size_t)(eq - spec))) continue;
        c->contrast[0][0] = it_intent_strndup(in, eq + 1, (size_t)(sl - eq - 1));
        c->contrast[0][1] = it_intent_strdup(in, sl + 1);
        c->n_contrast = 1;
        c->contrast_source = IT_CONTRAST_USER;
        hit = 1;
    }
    if (!hit) return it_err_set(err, IT_ERR_ARG, "--contrast '%s': no concept '%.*s' in the intent", spec, (int)(eq - spec), spec);
    return IT_OK;
}

static int cmd_parse(int argc, char **argv)
{
    const char *text = NULL, *from = NULL, *domain = NULL, *llm_url = NULL, *llm_model = NULL, *llm_cache = NULL;
    double llm_timeout = 30;
    it_strlist refs = {0}, contrasts = {0};
    const it_opt opts[] = {
        {"text", 't', IT_OPT_STR, &text, "TEXT", "the intent, in English"},
        {"from", 0, IT_OPT_STR, &from, "FILE", "read text and refs from a JSON file {\"text\", \"refs\"}"},
        {"ref", 'r', IT_OPT_LIST, &refs, "N=IMAGE:x0,y0,x1,y1", "reference [N]: a box on an image, pixels"},
        {"domain", 'd', IT_OPT_STR, &domain, "D", "2d-character|portrait|product|painting (default: inferred)"},
        {"contrast", 0, IT_OPT_LIST, &contrasts, "KEY=A/B", "override a concept's contrast pair"},
        {"llm", 0, IT_OPT_STR, &llm_url, "URL", "OpenAI-compatible endpoint (key from INTENTTUNER_LLM_KEY)"},
        {"llm-model", 0, IT_OPT_STR, &llm_model, "NAME", "model name for --llm"},
        {"llm-cache", 0, IT_OPT_STR, &llm_cache, "DIR", "LLM response cache (default ~/.cache/intenttuner/llm)"},
        {"llm-timeout", 0, IT_OPT_FLOAT, &llm_timeout, "SECONDS", "LLM request timeout (default 30)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner intent parse --text TEXT [--ref N=IMAGE:x0,y0,x1,y1]... [options]",
        "Turns an intent into the concept hierarchy: subjects and trigger words, concepts with their "
        "level (attribute, instance, image) and operation (preserve, modify, remove), references and "
        "contrast pairs. Prints a readable tree, or the JSON with --json (edit it, then check it with "
        "'intenttuner intent check').",
        opts, 0, 0,
        "example:\n  intenttuner intent parse --text \"A man named Vincent. Keep his face. No necklace.\"\n"};
    const char *pos[8];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    it_intent scratch;
    if (it_intent_init(&err, &scratch) != IT_OK) return it_cli_fail(&err);
    it_intent in;
    int done = 0, code = 0;
    char *from_text = NULL;
    it_intent_parse_opts po = {.domain = -1, .image_size = it_intent_image_size};
    if ((text == NULL) == (from == NULL)) {
        it_err_set(&err, IT_ERR_ARG, "give the intent with --text TEXT or --from FILE (one of them)");
        goto fail;
    }
    if (from) {
        /* Image paths in an intent file are relative to the file, as in the
         * toy scenarios' intent.json, not to the current directory. */
        char dir[4096];
        const char *slash = strrchr(from, '/');
        size_t dl = slash ? (size_t)(slash - from) : 0;
        if (dl >= sizeof dir) {
            it_err_set(&err, IT_ERR_ARG, "--from '%.100s...': path too long", from);
            goto fail;
        }
        memcpy(dir, from, dl);
        dir[dl] = '\0';
        if (slash && dl == 0) snprintf(dir, sizeof dir, "/");
        if (it_intent_read_input(&err, &scratch, &from_text, from, slash ? dir : NULL) != IT_OK) goto fail;
        text = from_text;
    }
    for (int i = 0; i < refs.n; i++)
        if (it_refs_add_spec(&err, &scratch, refs.items[i]) != IT_OK) goto fail;
    if (!domain && scratch.domain_source == IT_DOMSRC_OVERRIDE) po.domain = (int)scratch.domain; /* from the file */
    if (domain && (po.domain = it_intent_domain_parse(domain)) < 0) {
        it_err_set(&err, IT_ERR_ARG, "--domain '%s': expected 2d-character, portrait, product or painting", domain);
        goto fail;
    }
    if ((llm_url == NULL) != (llm_model == NULL)) {
        it_err_set(&err, IT_ERR_ARG, "--llm and --llm-model go together");
        goto fail;
    }
    po.refs = scratch.refs;
    po.n_refs = scratch.n_refs;
    if (llm_url) {
        it_llm_opts lo = {.url = llm_url, .model = llm_model, .cache_dir = llm_cache,
                          .timeout_s = llm_timeout, .api_key = getenv("INTENTTUNER_LLM_KEY")};
        if (it_llm_parse(&err, &in, text, strlen(text), &po, &lo) != IT_OK) goto fail;
    } else if (it_intent_parse(&err, &in, text, strlen(text), &po) != IT_OK) {
        goto fail;
    }
    done = 1;
    for (int i = 0; i < contrasts.n; i++)
        if (apply_contrast(&err, &in, contrasts.items[i]) != IT_OK) goto fail;
    code = print_result(&in, it_common.json);
    it_intent_free(&in);
    it_intent_free(&scratch);
    return code;
fail:
    if (done) it_intent_free(&in);
    it_intent_free(&scratch);
    return it_cli_fail(&err);
}

/* Splits a problem line "LOCATION: message" (LOCATION a JSON path such as
 * concepts[2].operation, or "line L, column C") into its two parts; a line
 * with no location (a whole-document problem) gets "". */
static void split_problem(const char *line, size_t n, char *loc, size_t nloc, const char **msg)
{
    loc[0] = '\0';
    *msg = line;
    const char *colon = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if (line[i] == ':' && line[i + 1] == ' ') {
            colon = line + i;
            break;
        }
    if (!colon || (size_t)(colon - line) >= nloc) return;
    int is_loc = 1, line_col = !strncmp(line, "line ", 5);
    for (const char *c = line; c < colon && !line_col; c++)
        is_loc &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '[' || *c == ']';
    if (!is_loc) return;
    memcpy(loc, line, (size_t)(colon - line));
    loc[colon - line] = '\0';
    *msg = colon + 2;
}

/* `check --json`: one JSON object on stdout, valid or not:
 * {"file", "ok", "problems": [{"location", "message"}], "warnings": [...],
 *  "subjects", "concepts", "refs"} (the counts only when ok). */
static int check_report_json(const char *file, const it_intent *in, const char *problems, const char *err_msg)
{
    json_t *o = json_object(), *pr = json_array(), *wa = json_array();
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "ok", json_boolean(in != NULL));
    for (const char *line = problems; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char loc[256];
        const char *msg;
        split_problem(line, n, loc, sizeof loc, &msg);
        json_t *p = json_object();
        json_object_set_new(p, "location", json_string(loc));
        json_object_set_new(p, "message", json_stringn(msg, n - (size_t)(msg - line)));
        json_array_append_new(pr, p);
        line = nl ? nl + 1 : NULL;
    }
    if (!in && json_array_size(pr) == 0 && err_msg) { /* unreadable file, out of memory */
        json_t *p = json_object();
        json_object_set_new(p, "location", json_string(""));
        json_object_set_new(p, "message", json_string(err_msg));
        json_array_append_new(pr, p);
    }
    json_object_set_new(o, "problems", pr);
    for (int i = 0; in && i < in->n_warnings; i++) json_array_append_new(wa, json_string(in->warnings[i]));
    json_object_set_new(o, "warnings", wa);
    if (in) {
        json_object_set_new(o, "subjects", json_integer(in->n_subjects));
        json_object_set_new(o, "concepts", json_integer(in->n_concepts));
        json_object_set_new(o, "refs", json_integer(in->n_refs));
    }
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s) {
        fprintf(stderr, "intenttuner: error: out of memory writing the report\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return in ? 0 : 1;
}

static int cmd_check(int argc, char **argv)
{
    int no_images = 0;
    const it_opt opts[] = {
        {"no-images", 0, IT_OPT_FLAG, &no_images, NULL, "do not open reference images to check boxes"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner intent check [options] FILE",
        "Validates an intent hierarchy file (the JSON of 'intent parse --json', possibly edited by "
        "hand) and reports every problem with its location. Exit status 0 when valid. With --json "
        "the report is one JSON object: ok, problems [{location, message}], warnings, counts.",
        opts, 1, 1, NULL};
    const char *pos[4];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    uint8_t *data;
    size_t n;
    if (it_file_read(&err, &data, &n, pos[0], INTENT_FILE_MAX) != IT_OK)
        return it_common.json ? check_report_json(pos[0], NULL, NULL, err.msg) : it_cli_fail(&err);
    it_buf problems;
    it_buf_init(&problems);
    it_intent in;
    it_intent_check_opts co = {.image_size = no_images ? NULL : it_intent_image_size};
    it_status s = it_intent_from_json(&err, &in, (const char *)data, n, &co, &problems);
    it_free(data);
    if (it_common.json) {
        int code = check_report_json(pos[0], s == IT_OK ? &in : NULL, problems.data, err.msg);
        it_buf_free(&problems);
        if (s == IT_OK) it_intent_free(&in);
        return code;
    }
    if (s != IT_OK) {
        if (problems.len) {
            /* every problem, each prefixed with the file, like a compiler */
            for (char *line = problems.data; line && *line;) {
                char *nl = strchr(line, '\n');
                fprintf(stderr, "%s: %.*s\n", pos[0], nl ? (int)(nl - line) : (int)strlen(line), line);
                line = nl ? nl + 1 : NULL;
            }
        } else {
            fprintf(stderr, "%s: %s\n", pos[0], err.msg);
        }
        it_buf_free(&problems);
        return 1;
    }
    it_buf_free(&problems);
    printf("%s: ok (%d subject%s, %d concept%s, %d reference%s)\n", pos[0], in.n_subjects,
           in.n_subjects == 1 ? "" : "s", in.n_concepts, in.n_concepts == 1 ? "" : "s", in.n_refs,
           in.n_refs == 1 ? "" : "s");
    for (int i = 0; i < in.n_warnings; i++) printf("warning: %s\n", in.warnings[i]);
    it_intent_free(&in);
    return 0;
}

IT_COMMAND(intent, "intent text -> concept hierarchy: parse, and check intent files")
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: intenttuner intent <parse|check> [options]\n\n"
                   "  parse   intent text (+ references) -> concept hierarchy (tree or --json)\n"
                   "  check   validate an intent JSON file, report every problem with its location\n\n"
                   "Run 'intenttuner intent parse --help' for the options.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "parse")) return cmd_parse(argc - 1, argv + 1);
    if (!strcmp(argv[1], "check")) return cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "intenttuner: error: unknown intent subcommand '%s' (parse or check)\n", argv[1]);
    return 2;
}
