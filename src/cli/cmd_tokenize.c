/* cmd_tokenize.c: `intenttuner tokenize`: prints the CLIP token ids of texts
 * (a debugging aid for prompts), and `intenttuner tokenize train` learns a
 * CLIP-style BPE vocabulary from text files. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"

static int fail(it_err *err)
{
    return it_cli_fail(err);
}

/* One text: ids (padded or not) and their token strings. */
static it_status encode_one(it_err *err, const it_clip_tokenizer *tok, const char *text, int pad,
                            int max_length, int special, int32_t **ids, size_t *n, int *n_valid)
{
    size_t len = strlen(text);
    if (pad) {
        *ids = it_malloc((size_t)max_length * sizeof **ids);
        if (!*ids) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
        *n = (size_t)max_length;
        it_status st = it_clip_encode_padded(err, tok, *ids, max_length, n_valid, text, len);
        if (st) it_free(*ids);
        return st;
    }
    IT_TRY(special ? it_clip_encode(err, tok, ids, n, text, len) : it_clip_tokenize(err, tok, ids, n, text, len));
    *n_valid = (int)*n;
    return IT_OK;
}

static void print_text(const it_clip_tokenizer *tok, const char *text, const int32_t *ids, size_t n,
                       int n_valid)
{
    printf("text: %s\nids:", text);
    for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\ntokens:");
    for (size_t i = 0; i < n; i++) printf(" %s", it_clip_id_to_token(tok, ids[i]));
    printf("\ncount: %d\n", n_valid);
}

static json_t *json_text(const it_clip_tokenizer *tok, const char *text, const int32_t *ids, size_t n,
                         int n_valid)
{
    json_t *jids = json_array(), *jtoks = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(jids, json_integer(ids[i]));
        json_array_append_new(jtoks, json_string(it_clip_id_to_token(tok, ids[i])));
    }
    /* Texts given on the command line may be invalid UTF-8: JSON gets the
     * decoded ids' text only when the argument itself is valid. */
    json_t *jt = json_string(text);
    return json_pack("{s:o, s:o, s:o, s:i}", "text", jt ? jt : json_null(), "ids", jids, "tokens",
                     jtoks, "count", n_valid);
}

static int cmd_encode(int argc, char **argv)
{
    const char *dir = NULL;
    int pad = 0, no_special = 0, legacy = 0;
    long max_length = 0;
    static it_opt opts[6];
    opts[0] = (it_opt){"tokenizer", 't', IT_OPT_STR, &dir, "DIR",
                       "tokenizer folder (vocab.json, merges.txt[, tokenizer_config.json])"};
    opts[1] = (it_opt){"pad", 0, IT_OPT_FLAG, &pad, NULL,
                       "truncate and pad to the model's length (77), as pipelines do"};
    opts[2] = (it_opt){"max-length", 0, IT_OPT_INT, &max_length, "N",
                       "truncate and pad to N tokens (implies --pad)"};
    opts[3] = (it_opt){"no-special", 0, IT_OPT_FLAG, &no_special, NULL,
                       "leave out the start and end tokens"};
    opts[4] = (it_opt){"legacy", 0, IT_OPT_FLAG, &legacy, NULL,
                       "ids of transformers 4.x's slow CLIPTokenizer without ftfy"};
    opts[5] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        "intenttuner tokenize --tokenizer DIR [options] TEXT...\n"
        "       intenttuner tokenize train --help",
        "Prints the CLIP token ids of each TEXT, exactly as transformers' CLIPTokenizer "
        "gives them (input_ids), with the token strings.",
        opts, 1, -1,
        "examples:\n  intenttuner tokenize -t sd15/tokenizer \"a photo of a cat\"\n"
        "  intenttuner tokenize -t sd15/tokenizer --pad --json \"a photo of a cat\""};
    const char *pos[IT_STRLIST_MAX + 64];
    int n_pos = 0;
    if (argc > (int)(sizeof pos / sizeof pos[0])) argc = (int)(sizeof pos / sizeof pos[0]);
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!dir) {
        it_err_set(&err, IT_ERR_ARG, "--tokenizer DIR is required");
        return fail(&err);
    }
    if (max_length) pad = 1;
    if (pad && no_special) {
        it_err_set(&err, IT_ERR_ARG, "--no-special cannot be combined with --pad/--max-length");
        return fail(&err);
    }
    it_clip_tokenizer *tok;
    if (it_clip_tokenizer_load(&err, &tok, dir)) return fail(&err);
    if (legacy) it_clip_tokenizer_set_mode(tok, IT_CLIP_MODE_LEGACY);
    if (pad && !max_length) {
        it_clip_info info;
        it_clip_tokenizer_info(tok, &info);
        max_length = info.model_max_length;
    }
    if (pad && (max_length < 2 || max_length > 1000000)) {
        it_clip_tokenizer_free(tok);
        it_err_set(&err, IT_ERR_ARG, "--max-length must be between 2 and 1000000, got %ld", max_length);
        return fail(&err);
    }
    json_t *arr = it_common.json ? json_array() : NULL;
    it_status st = IT_OK;
    for (int i = 0; i < n_pos && !st; i++) {
        int32_t *ids;
        size_t n;
        int n_valid;
        st = encode_one(&err, tok, pos[i], pad, (int)max_length, !no_special, &ids, &n, &n_valid);
        if (st) break;
        if (arr) json_array_append_new(arr, json_text(tok, pos[i], ids, n, n_valid));
        else print_text(tok, pos[i], ids, n, n_valid);
        it_free(ids);
    }
    if (!st && arr) {
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_ENSURE_ASCII);
        printf("%s\n", s ? s : "[]");
        free(s);
    }
    json_decref(arr);
    it_clip_tokenizer_free(tok);
    return st ? fail(&err) : 0;
}

static int cmd_train(int argc, char **argv)
{
    it_strlist corpus = {0};
    const char *out_dir = NULL;
    long vocab_size = 0, min_frequency = 2;
    static it_opt opts[5];
    opts[0] = (it_opt){"corpus", 'c', IT_OPT_LIST, &corpus, "FILE",
                       "UTF-8 text, one document per line (repeatable)"};
    opts[1] = (it_opt){"vocab-size", 'n', IT_OPT_INT, &vocab_size, "N",
                       "total vocabulary size, 514 + merges (at least 514)"};
    opts[2] = (it_opt){"min-frequency", 0, IT_OPT_INT, &min_frequency, "N",
                       "stop when the best pair occurs fewer than N times (default 2)"};
    opts[3] = (it_opt){"output", 'o', IT_OPT_STR, &out_dir, "DIR",
                       "tokenizer folder to write (vocab.json, merges.txt, configs)"};
    opts[4] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        "intenttuner tokenize train --corpus FILE... --vocab-size N -o DIR",
        "Learns byte-level BPE merges with CLIP's text handling and writes a tokenizer "
        "folder that this program and transformers' CLIPTokenizer read alike.",
        opts, 0, 0, NULL};
    const char *pos[64];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!corpus.n || !out_dir || !vocab_size) {
        it_err_set(&err, IT_ERR_ARG, "--corpus, --vocab-size and --output are required");
        return fail(&err);
    }
    it_bpe_trainer *tr;
    if (it_bpe_trainer_new(&err, &tr)) return fail(&err);
    it_status st = IT_OK;
    for (int i = 0; i < corpus.n && !st; i++) st = it_bpe_trainer_add_file(&err, tr, corpus.items[i]);
    it_bpe_result res = {0};
    if (!st) {
        it_bpe_options o = {(size_t)(vocab_size > 0 ? vocab_size : 0), min_frequency > 0 ? (uint64_t)min_frequency : 1};
        st = it_bpe_trainer_learn(&err, tr, &o, &res);
    }
    if (!st) st = it_bpe_trainer_save(&err, tr, out_dir);
    if (!st) {
        if (it_common.json) {
            json_t *j = json_pack("{s:I, s:I, s:I, s:s}", "merges", (json_int_t)res.n_merges,
                                  "vocab_size", (json_int_t)res.vocab_size, "words",
                                  (json_int_t)res.n_words, "output", out_dir);
            char *s = j ? json_dumps(j, 0) : NULL;
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(j);
        } else
            printf("learned %zu merges from %zu distinct words; vocabulary %zu tokens -> %s\n",
                   res.n_merges, res.n_words, res.vocab_size, out_dir);
    }
    it_bpe_trainer_free(tr);
    return st ? fail(&err) : 0;
}

IT_COMMAND(tokenize, "CLIP token ids of a prompt; train a BPE vocabulary")
{
    if (argc > 1 && strcmp(argv[1], "train") == 0) return cmd_train(argc - 1, argv + 1);
    return cmd_encode(argc, argv);
}
