/* bpe_train.c: learning byte-level BPE merges the CLIP way and writing the
 * tokenizer folder. The algorithm and layout are described in bpe_train.h. */
#include "text/bpe_train.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "text/clip_tokenizer.h"
#include "text/textmap.h"
#include "text/unicode.h"

#define BPE_FILE_MAX ((size_t)1 << 30)

typedef struct bpe_word {
    int32_t *sym; /* (n) token ids */
    uint32_t n;
    uint64_t count;
} bpe_word;

struct it_bpe_trainer {
    it_strmap words;      /* word bytes -> index into counts */
    uint64_t *counts;     /* (words.n) */
    size_t counts_cap;
    it_strmap tokens;     /* token string -> id, in id order */
    int32_t *merge_l, *merge_r; /* (n_merges) */
    size_t n_merges, merges_cap;
    int learned;
};

/* Byte order of CLIP's vocabulary: GPT-2's printable bytes first, then the
 * rest, both ascending (the order of bytes_to_unicode's dict). */
static void byte_order(uint8_t order[256])
{
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++)
            if ((it_clip_byte_char((uint8_t)b) == (uint32_t)b) == (pass == 0)) order[k++] = (uint8_t)b;
}

static size_t byte_token(char *buf, uint8_t b, int end)
{
    size_t k = it_utf8_encode((uint8_t *)buf, it_clip_byte_char(b));
    if (end) {
        memcpy(buf + k, "</w>", 4);
        k += 4;
    }
    return k;
}

/* The 512 base tokens into a token map, ids 0..511. */
static it_status base_tokens(it_err *err, it_strmap *tokens)
{
    uint8_t order[256];
    byte_order(order);
    for (int end = 0; end < 2; end++)
        for (int i = 0; i < 256; i++) {
            char buf[16];
            size_t k = byte_token(buf, order[i], end);
            IT_TRY(it_strmap_put(err, tokens, buf, k, (int32_t)tokens->n, NULL));
        }
    return IT_OK;
}

it_status it_bpe_trainer_new(it_err *err, it_bpe_trainer **out)
{
    *out = NULL;
    it_bpe_trainer *tr = it_calloc(1, sizeof *tr);
    if (!tr) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory");
    it_strmap_init(&tr->words);
    it_strmap_init(&tr->tokens);
    it_status st = base_tokens(err, &tr->tokens);
    if (st) {
        it_bpe_trainer_free(tr);
        return st;
    }
    *out = tr;
    return IT_OK;
}

void it_bpe_trainer_free(it_bpe_trainer *tr)
{
    if (!tr) return;
    it_strmap_free(&tr->words);
    it_strmap_free(&tr->tokens);
    it_free(tr->counts);
    it_free(tr->merge_l);
    it_free(tr->merge_r);
    it_free(tr);
}

/* ------------------------------------------------------------------------ */
/* Counting words                                                            */
/* ------------------------------------------------------------------------ */

static it_status count_word(it_err *err, void *ctx, const uint8_t *w, size_t n)
{
    it_bpe_trainer *tr = ctx;
    long e = it_strmap_find(&tr->words, (const char *)w, n);
    if (e >= 0) {
        tr->counts[e]++;
        return IT_OK;
    }
    if (tr->words.n == tr->counts_cap) {
        size_t cap = tr->counts_cap ? tr->counts_cap * 2 : 1024;
        uint64_t *c = it_realloc(tr->counts, cap * sizeof *c);
        if (!c) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory (%zu words)", cap);
        tr->counts = c;
        tr->counts_cap = cap;
    }
    size_t idx;
    IT_TRY(it_strmap_put(err, &tr->words, (const char *)w, n, 0, &idx));
    tr->counts[idx] = 1;
    return IT_OK;
}

it_status it_bpe_trainer_add_text(it_err *err, it_bpe_trainer *tr, const char *text, size_t len)
{
    if (tr->learned) return it_err_set(err, IT_ERR_STATE, "bpe trainer: text added after learning");
    return it_clip_pretokenize(err, text, len, count_word, tr);
}

it_status it_bpe_trainer_add_file(it_err *err, it_bpe_trainer *tr, const char *path)
{
    uint8_t *buf;
    size_t n;
    IT_TRY(it_file_read(err, &buf, &n, path, BPE_FILE_MAX));
    it_status st = it_bpe_trainer_add_text(err, tr, (const char *)buf, n);
    it_free(buf);
    if (st) it_err_prefix(err, "%s", path);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Learning                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

/* Adds sign * count for every adjacent pair of a word. */
static it_status count_pairs(it_err *err, it_u64map *pairs, const bpe_word *w, int sign)
{
    for (uint32_t i = 0; i + 1 < w->n; i++) {
        uint64_t key = pair_key(w->sym[i], w->sym[i + 1]);
        uint64_t *c = it_u64map_get(pairs, key);
        if (c) *c += sign > 0 ? w->count : (uint64_t)0 - w->count;
        else IT_TRY(it_u64map_put(err, pairs, key, w->count)); /* only when adding */
    }
    return IT_OK;
}

/* Initial symbols of every word: one byte token each, "</w>" on the last. */
static it_status init_words(it_err *err, it_bpe_trainer *tr, bpe_word *words)
{
    for (size_t i = 0; i < tr->words.n; i++) {
        const it_strmap_entry *e = &tr->words.entries[i];
        const uint8_t *s = (const uint8_t *)it_strmap_key(&tr->words, i);
        words[i].sym = it_malloc(e->len * sizeof *words[i].sym);
        if (!words[i].sym) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory");
        words[i].n = e->len;
        words[i].count = tr->counts[i];
        for (uint32_t k = 0; k < e->len; k++) {
            char buf[16];
            size_t len = byte_token(buf, s[k], k + 1 == e->len);
            int32_t id;
            IT_ASSERT(it_strmap_get(&tr->tokens, buf, len, &id));
            words[i].sym[k] = id;
        }
    }
    return IT_OK;
}

/* The most frequent pair; ties to the smaller (left, right) ids. */
static int best_pair(const it_u64map *pairs, uint64_t *key, uint64_t *count)
{
    int found = 0;
    for (size_t i = 0; i < pairs->cap; i++) {
        if (!pairs->used[i] || pairs->vals[i] == 0) continue;
        if (!found || pairs->vals[i] > *count || (pairs->vals[i] == *count && pairs->keys[i] < *key)) {
            *key = pairs->keys[i];
            *count = pairs->vals[i];
            found = 1;
        }
    }
    return found;
}

static it_status record_merge(it_err *err, it_bpe_trainer *tr, int32_t a, int32_t b, int32_t *merged)
{
    if (tr->n_merges == tr->merges_cap) {
        size_t cap = tr->merges_cap ? tr->merges_cap * 2 : 256;
        int32_t *l = it_realloc(tr->merge_l, cap * sizeof *l);
        if (!l) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory");
        tr->merge_l = l;
        int32_t *r = it_realloc(tr->merge_r, cap * sizeof *r);
        if (!r) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory");
        tr->merge_r = r;
        tr->merges_cap = cap;
    }
    const it_strmap_entry *ea = &tr->tokens.entries[a], *eb = &tr->tokens.entries[b];
    size_t n = ea->len + eb->len;
    char *buf = it_malloc(n + 1);
    if (!buf) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory");
    memcpy(buf, it_strmap_key(&tr->tokens, (size_t)a), ea->len);
    memcpy(buf + ea->len, it_strmap_key(&tr->tokens, (size_t)b), eb->len);
    it_status st = IT_OK;
    if (!it_strmap_get(&tr->tokens, buf, n, merged)) {
        *merged = (int32_t)tr->tokens.n;
        st = it_strmap_put(err, &tr->tokens, buf, n, *merged, NULL);
    }
    it_free(buf);
    if (st) return st;
    tr->merge_l[tr->n_merges] = a;
    tr->merge_r[tr->n_merges] = b;
    tr->n_merges++;
    return IT_OK;
}

/* Merges every (a, b) of a word left to right; returns whether it had one. */
static int merge_in_word(bpe_word *w, int32_t a, int32_t b, int32_t merged)
{
    uint32_t r = 0, k = 0;
    int hit = 0;
    while (r < w->n) {
        if (r + 1 < w->n && w->sym[r] == a && w->sym[r + 1] == b) {
            w->sym[k++] = merged;
            r += 2;
            hit = 1;
        } else {
            w->sym[k++] = w->sym[r++];
        }
    }
    w->n = k;
    return hit;
}

static int word_has(const bpe_word *w, int32_t a, int32_t b)
{
    for (uint32_t i = 0; i + 1 < w->n; i++)
        if (w->sym[i] == a && w->sym[i + 1] == b) return 1;
    return 0;
}

static it_status learn_loop(it_err *err, it_bpe_trainer *tr, bpe_word *words, it_u64map *pairs,
                            const it_bpe_options *opt)
{
    for (size_t i = 0; i < tr->words.n; i++) IT_TRY(count_pairs(err, pairs, &words[i], +1));
    /* Two ids are reserved for the special tokens at the end. */
    while (tr->tokens.n + 2 < opt->vocab_size) {
        uint64_t key = 0, count = 0;
        if (!best_pair(pairs, &key, &count) || count < opt->min_frequency) break;
        int32_t a = (int32_t)(key >> 32), b = (int32_t)(uint32_t)key, merged;
        IT_TRY(record_merge(err, tr, a, b, &merged));
        for (size_t i = 0; i < tr->words.n; i++) {
            if (!word_has(&words[i], a, b)) continue;
            IT_TRY(count_pairs(err, pairs, &words[i], -1));
            merge_in_word(&words[i], a, b, merged);
            IT_TRY(count_pairs(err, pairs, &words[i], +1));
        }
    }
    return IT_OK;
}

it_status it_bpe_trainer_learn(it_err *err, it_bpe_trainer *tr, const it_bpe_options *opt,
                               it_bpe_result *res)
{
    if (tr->learned) return it_err_set(err, IT_ERR_STATE, "bpe trainer: already learned");
    if (opt->vocab_size < IT_BPE_BASE_VOCAB)
        return it_err_set(err, IT_ERR_ARG, "bpe trainer: vocab size %zu is below the %d base tokens",
                          opt->vocab_size, IT_BPE_BASE_VOCAB);
    if (opt->min_frequency < 1) return it_err_set(err, IT_ERR_ARG, "bpe trainer: min frequency must be >= 1");
    bpe_word *words = it_calloc(tr->words.n + 1, sizeof *words);
    if (!words) return it_err_set(err, IT_ERR_NOMEM, "bpe trainer: out of memory");
    it_u64map pairs;
    it_u64map_init(&pairs);
    it_status st = init_words(err, tr, words);
    if (!st) st = learn_loop(err, tr, words, &pairs, opt);
    for (size_t i = 0; i < tr->words.n; i++) it_free(words[i].sym);
    it_free(words);
    it_u64map_free(&pairs);
    if (st) return st;
    tr->learned = 1;
    res->n_merges = tr->n_merges;
    res->vocab_size = tr->tokens.n + 2;
    res->n_words = tr->words.n;
    return IT_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing the folder                                                        */
/* ------------------------------------------------------------------------ */

/* vocab.json text of a token map (ids in insertion order) plus the two
 * special tokens. */
static it_status vocab_json(it_err *err, const it_strmap *tokens, char **out, size_t *len)
{
    json_t *obj = json_object();
    it_status st = obj ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "vocab.json: out of memory");
    for (size_t i = 0; i < tokens->n && !st; i++)
        if (json_object_set_new(obj, it_strmap_key(tokens, i), json_integer(tokens->entries[i].val)))
            st = it_err_set(err, IT_ERR_NOMEM, "vocab.json: out of memory");
    if (!st && (json_object_set_new(obj, "<|startoftext|>", json_integer((json_int_t)tokens->n)) ||
                json_object_set_new(obj, "<|endoftext|>", json_integer((json_int_t)tokens->n + 1))))
        st = it_err_set(err, IT_ERR_NOMEM, "vocab.json: out of memory");
    char *s = st ? NULL : json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (st) return st;
    if (!s) return it_err_set(err, IT_ERR_NOMEM, "vocab.json: out of memory");
    /* Copy into our allocator so that the caller frees with it_free. */
    *len = strlen(s);
    *out = it_strndup(s, *len);
    free(s);
    return *out ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "vocab.json: out of memory");
}

static const char k_special_map[] =
    "{\"bos_token\": {\"content\": \"<|startoftext|>\", \"lstrip\": false, \"normalized\": true, "
    "\"rstrip\": false, \"single_word\": false}, \"eos_token\": {\"content\": \"<|endoftext|>\", "
    "\"lstrip\": false, \"normalized\": true, \"rstrip\": false, \"single_word\": false}, "
    "\"pad_token\": \"<|endoftext|>\", \"unk_token\": {\"content\": \"<|endoftext|>\", \"lstrip\": "
    "false, \"normalized\": true, \"rstrip\": false, \"single_word\": false}}\n";

static const char k_config[] =
    "{\"add_prefix_space\": false, \"bos_token\": {\"__type\": \"AddedToken\", \"content\": "
    "\"<|startoftext|>\", \"lstrip\": false, \"normalized\": true, \"rstrip\": false, "
    "\"single_word\": false}, \"do_lower_case\": true, \"eos_token\": {\"__type\": \"AddedToken\", "
    "\"content\": \"<|endoftext|>\", \"lstrip\": false, \"normalized\": true, \"rstrip\": false, "
    "\"single_word\": false}, \"errors\": \"replace\", \"model_max_length\": 77, \"pad_token\": "
    "\"<|endoftext|>\", \"tokenizer_class\": \"CLIPTokenizer\", \"unk_token\": {\"__type\": "
    "\"AddedToken\", \"content\": \"<|endoftext|>\", \"lstrip\": false, \"normalized\": true, "
    "\"rstrip\": false, \"single_word\": false}}\n";

static it_status write_file(it_err *err, const char *dir, const char *name, const char *data, size_t n)
{
    char path[4096];
    IT_TRY(it_path_join(err, path, sizeof path, dir, name));
    return it_file_write_atomic(err, path, data, n);
}

it_status it_bpe_trainer_save(it_err *err, it_bpe_trainer *tr, const char *dir)
{
    if (!tr->learned) return it_err_set(err, IT_ERR_STATE, "bpe trainer: nothing learned yet");
    IT_TRY(it_mkdir_p(err, dir));
    it_buf merges;
    it_buf_init(&merges);
    it_status st = it_buf_append(&merges, "#version: 0.2\n", 14);
    for (size_t i = 0; i < tr->n_merges && !st; i++)
        st = it_buf_printf(&merges, "%s %s\n", it_strmap_key(&tr->tokens, (size_t)tr->merge_l[i]),
                           it_strmap_key(&tr->tokens, (size_t)tr->merge_r[i]));
    if (st) st = it_err_set(err, IT_ERR_NOMEM, "merges.txt: out of memory");
    char *vocab = NULL;
    size_t vlen = 0;
    if (!st) st = vocab_json(err, &tr->tokens, &vocab, &vlen);
    if (!st) st = write_file(err, dir, "vocab.json", vocab, vlen);
    if (!st) st = write_file(err, dir, "merges.txt", merges.data, merges.len);
    if (!st) st = write_file(err, dir, "tokenizer_config.json", k_config, sizeof k_config - 1);
    if (!st) st = write_file(err, dir, "special_tokens_map.json", k_special_map, sizeof k_special_map - 1);
    it_free(vocab);
    it_buf_free(&merges);
    return st;
}

/* ------------------------------------------------------------------------ */
/* vocab.json from merges.txt                                                */
/* ------------------------------------------------------------------------ */

it_status it_bpe_vocab_from_merges(it_err *err, char **json, size_t *len, const char *merges_txt,
                                   size_t merges_len)
{
    *json = NULL;
    *len = 0;
    it_strmap tokens;
    it_strmap_init(&tokens);
    it_status st = base_tokens(err, &tokens);
    size_t line = 0;
    for (size_t i = 0; i < merges_len && !st;) {
        const char *ls = merges_txt + i;
        const char *nl = memchr(ls, '\n', merges_len - i);
        size_t n = nl ? (size_t)(nl - ls) : merges_len - i;
        i += n + (nl ? 1 : 0);
        line++;
        if (n && ls[n - 1] == '\r') n--;
        if (n >= 8 && memcmp(ls, "#version", 8) == 0) continue;
        const char *sp = memchr(ls, ' ', n);
        if (!sp) {
            st = it_err_set(err, IT_ERR_FORMAT, "merges.txt line %zu: expected two tokens", line);
            break;
        }
        /* The merged token is the line without its space. */
        char *buf = it_malloc(n);
        if (!buf) {
            st = it_err_set(err, IT_ERR_NOMEM, "vocab from merges: out of memory");
            break;
        }
        memcpy(buf, ls, (size_t)(sp - ls));
        memcpy(buf + (sp - ls), sp + 1, n - (size_t)(sp - ls) - 1);
        if (it_strmap_find(&tokens, buf, n - 1) < 0)
            st = it_strmap_put(err, &tokens, buf, n - 1, (int32_t)tokens.n, NULL);
        it_free(buf);
    }
    if (!st) st = vocab_json(err, &tokens, json, len);
    it_strmap_free(&tokens);
    return st;
}
