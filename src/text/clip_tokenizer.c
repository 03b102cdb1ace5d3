/* clip_tokenizer.c: loading a CLIP tokenizer folder, its special tokens, and
 * decoding ids back to text. Encoding lives in clip_encode.c. */
#include "text/clip_tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "text/clip_internal.h"
#include "text/unicode.h"

/* Ids beyond this are refused: id_to_token is a dense array. */
#define CLIP_MAX_ID (1 << 24)
#define CLIP_FILE_MAX ((size_t)256 << 20)

/* ------------------------------------------------------------------------ */
/* Byte-level alphabet                                                       */
/* ------------------------------------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 bytes (0-32, 127-160, 173) to U+0100.. in byte order, so that
 * every byte has a visible, non-space character. Closed form of that
 * enumeration, both ways. */
uint32_t it_clip_byte_char(uint8_t b)
{
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
    if (b == 173) return 256 + 67;
    return b;
}

/* Inverse of it_clip_byte_char: -1 if cp is no byte character. */
static int byte_of_char(uint32_t cp)
{
    if (cp < 256) return it_clip_byte_char((uint8_t)cp) == cp ? (int)cp : -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(127 + k - 33);
    return k == 67 ? 173 : -1;
}

/* ------------------------------------------------------------------------ */
/* vocab.json and merges.txt                                                 */
/* ------------------------------------------------------------------------ */

static it_status load_vocab(it_err *err, it_clip_tokenizer *tok, const char *s, size_t n)
{
    json_error_t jerr;
    json_t *root = json_loadb(s, n, 0, &jerr);
    if (!root)
        return it_err_set(err, IT_ERR_FORMAT, "vocab.json: line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    it_status st = IT_OK;
    if (!json_is_object(root)) {
        st = it_err_set(err, IT_ERR_FORMAT, "vocab.json: expected an object of token -> id");
        goto done;
    }
    const char *key;
    json_t *val;
    int64_t max_id = -1;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= CLIP_MAX_ID) {
            st = it_err_set(err, IT_ERR_FORMAT, "vocab.json: token '%.64s': id must be an integer in [0, %d)",
                            key, CLIP_MAX_ID);
            goto done;
        }
        int64_t id = json_integer_value(val);
        if (id > max_id) max_id = id;
        st = it_strmap_put(err, &tok->vocab, key, strlen(key), (int32_t)id, NULL);
        if (st) goto done;
    }
    tok->n_ids = (size_t)(max_id + 1);
    tok->id_to_token = it_calloc(tok->n_ids + 1, sizeof *tok->id_to_token);
    if (!tok->id_to_token) {
        st = it_err_set(err, IT_ERR_NOMEM, "vocab.json: out of memory (%zu ids)", tok->n_ids);
        goto done;
    }
    for (size_t i = 0; i < tok->vocab.n; i++) {
        int32_t id = tok->vocab.entries[i].val;
        if (tok->id_to_token[id]) {
            st = it_err_set(err, IT_ERR_FORMAT, "vocab.json: id %d is used by '%.64s' and '%.64s'", id,
                            tok->id_to_token[id], it_strmap_key(&tok->vocab, i));
            goto done;
        }
        tok->id_to_token[id] = it_strmap_key(&tok->vocab, i);
    }
done:
    json_decref(root);
    return st;
}

static int32_t vocab_id(const it_clip_tokenizer *tok, const char *s, size_t n)
{
    int32_t id;
    return it_strmap_get(&tok->vocab, s, n, &id) ? id : -1;
}

static it_status add_merge(it_err *err, it_clip_tokenizer *tok, const char *a, size_t na,
                           const char *b, size_t nb, size_t line)
{
    char buf[512];
    int32_t ia = vocab_id(tok, a, na), ib = vocab_id(tok, b, nb);
    if (ia < 0 || ib < 0)
        return it_err_set(err, IT_ERR_FORMAT, "merges.txt line %zu: token '%.*s' is not in vocab.json",
                          line, (int)(ia < 0 ? (na > 64 ? 64 : na) : (nb > 64 ? 64 : nb)),
                          ia < 0 ? a : b);
    if (na + nb > sizeof buf)
        return it_err_set(err, IT_ERR_FORMAT, "merges.txt line %zu: merged token of %zu bytes is too long",
                          line, na + nb);
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    int32_t im = vocab_id(tok, buf, na + nb);
    if (im < 0)
        return it_err_set(err, IT_ERR_FORMAT, "merges.txt line %zu: merged token '%.*s' is not in vocab.json",
                          line, (int)(na + nb > 64 ? 64 : na + nb), buf);
    /* A repeated pair keeps its last rank, as the tokenizers library does. */
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    uint64_t val = (uint64_t)tok->n_merges << 32 | (uint32_t)im;
    IT_TRY(it_u64map_put(err, &tok->merges, key, val));
    tok->n_merges++;
    return IT_OK;
}

/* One merge per line, "left right" split on exactly one space; lines that
 * start with "#version" are skipped; CRLF accepted (the rules of the
 * tokenizers library's reader; anything else is an error naming the line). */
static it_status load_merges(it_err *err, it_clip_tokenizer *tok, const char *s, size_t n)
{
    size_t line = 0;
    for (size_t i = 0; i < n;) {
        const char *ls = s + i;
        const char *nl = memchr(ls, '\n', n - i);
        size_t len = nl ? (size_t)(nl - ls) : n - i;
        i += len + (nl ? 1 : 0);
        line++;
        if (len && ls[len - 1] == '\r') len--;
        if (len >= 8 && memcmp(ls, "#version", 8) == 0) continue;
        const char *sp = memchr(ls, ' ', len);
        if (!sp || sp == ls || sp == ls + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - ls)))
            return it_err_set(err, IT_ERR_FORMAT,
                              "merges.txt line %zu: expected two tokens separated by one space", line);
        IT_TRY(add_merge(err, tok, ls, (size_t)(sp - ls), sp + 1, len - (size_t)(sp + 1 - ls), line));
    }
    return IT_OK;
}

static void byte_ids(it_clip_tokenizer *tok)
{
    for (int b = 0; b < 256; b++) {
        char buf[16];
        size_t k = it_utf8_encode((uint8_t *)buf, it_clip_byte_char((uint8_t)b));
        tok->byte_id[b] = vocab_id(tok, buf, k);
        memcpy(buf + k, "</w>", 4);
        tok->byte_end_id[b] = vocab_id(tok, buf, k + 4);
    }
}

/* ------------------------------------------------------------------------ */
/* Special tokens                                                            */
/* ------------------------------------------------------------------------ */

typedef struct special_spec {
    const char *content; /* NULL: none */
    int normalized;
} special_spec;

/* A special token entry of tokenizer_config.json / special_tokens_map.json:
 * a string (not normalised, as transformers' AddedToken(special=True)) or
 * an AddedToken object. */
static it_status parse_special(it_err *err, special_spec *out, json_t *v, const char *file,
                               const char *key)
{
    if (json_is_null(v)) {
        out->content = NULL;
        return IT_OK;
    }
    if (json_is_string(v)) {
        out->content = json_string_value(v);
        out->normalized = 0;
        return IT_OK;
    }
    json_t *c = json_is_object(v) ? json_object_get(v, "content") : NULL;
    if (!json_is_string(c))
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s must be a string or an object with \"content\"",
                          file, key);
    static const char *const unsupported[] = {"lstrip", "rstrip", "single_word"};
    for (int i = 0; i < 3; i++)
        if (json_is_true(json_object_get(v, unsupported[i])))
            return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: %s: \"%s\": true is not supported", file,
                              key, unsupported[i]);
    out->content = json_string_value(c);
    out->normalized = json_is_true(json_object_get(v, "normalized"));
    return IT_OK;
}

static it_status add_special(it_err *err, it_clip_tokenizer *tok, const special_spec *sp,
                             const char *what, int32_t *id_out)
{
    size_t len = strlen(sp->content);
    int32_t id = vocab_id(tok, sp->content, len);
    if (id < 0)
        return it_err_set(err, IT_ERR_FORMAT, "special token '%.64s' (%s) is not in vocab.json",
                          sp->content, what);
    if (id_out) *id_out = id;
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].id == id) return IT_OK; /* first definition wins */
    if (len == 0) return IT_OK;
    if (tok->n_added == CLIP_MAX_ADDED)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "more than %d special tokens", CLIP_MAX_ADDED);
    clip_added *a = &tok->added[tok->n_added];
    uint32_t *raw, *cps;
    size_t n_raw, n;
    IT_TRY(it_utf8_to_cps(err, &raw, &n_raw, (const uint8_t *)sp->content, len));
    if (sp->normalized) {
        /* Matched against normalised text, so the pattern is normalised too. */
        it_status st = it_clip_normalize(err, &cps, &n, raw, n_raw);
        if (st) {
            it_free(raw);
            return st;
        }
    } else {
        cps = it_malloc(n_raw * sizeof *cps);
        if (!cps) {
            it_free(raw);
            return it_err_set(err, IT_ERR_NOMEM, "special token: out of memory");
        }
        memcpy(cps, raw, n_raw * sizeof *cps);
        n = n_raw;
    }
    *a = (clip_added){cps, n, raw, n_raw, id, sp->normalized};
    if (n && cps[0] < 128) tok->starts_ascii[sp->normalized][cps[0]] = 1;
    else if (n) tok->starts_other[sp->normalized] = 1;
    if (raw[0] < 128) tok->starts_ascii[CLIP_MATCH_LEGACY][raw[0]] = 1;
    else tok->starts_other[CLIP_MATCH_LEGACY] = 1;
    tok->n_added++;
    return IT_OK;
}

static json_t *load_json(it_err *err, const char *s, size_t n, const char *file, it_status *st)
{
    *st = IT_OK;
    if (!s) return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(s, n, 0, &jerr);
    if (!j || !json_is_object(j)) {
        *st = it_err_set(err, IT_ERR_FORMAT, "%s: %s", file, j ? "expected an object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The special token of a role: special_tokens_map.json over
 * tokenizer_config.json over CLIPTokenizer's default (<|startoftext|> for
 * bos, <|endoftext|> for the rest, as plain strings: not normalised). */
static it_status role_spec(it_err *err, special_spec *sp, json_t *cfg, json_t *map, const char *role,
                           const char *dflt)
{
    *sp = (special_spec){dflt, 0};
    json_t *v = map ? json_object_get(map, role) : NULL;
    if (v) return parse_special(err, sp, v, "special_tokens_map.json", role);
    v = cfg ? json_object_get(cfg, role) : NULL;
    if (v) return parse_special(err, sp, v, "tokenizer_config.json", role);
    return IT_OK;
}

/* Special tokens and model_max_length, with transformers' (5.x) precedence,
 * found by probing it (tools/gen_tokenizer_fixtures.py keeps the cases):
 *   - tokens of the config's added_tokens_decoder come first, with their
 *     own flags, and a role naming one of them changes nothing;
 *   - otherwise the roles are taken in the order bos, eos, unk, pad; a role
 *     equal in content and flags to an earlier one is dropped, and among the
 *     rest the last one of a given content decides its "normalized" flag.
 *     So Stable Diffusion 1.x files (eos/unk objects normalized, pad a plain
 *     string) leave <|endoftext|> not normalised, while SD 2.x files (pad
 *     "!") leave it normalised. */
static it_status apply_specials(it_err *err, it_clip_tokenizer *tok, json_t *cfg, json_t *map)
{
    json_t *decoder = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    int n_decoder = 0;
    if (json_is_object(decoder)) {
        const char *key;
        json_t *v;
        json_object_foreach(decoder, key, v) {
            special_spec sp;
            IT_TRY(parse_special(err, &sp, v, "tokenizer_config.json", "added_tokens_decoder"));
            if (sp.content) IT_TRY(add_special(err, tok, &sp, "added_tokens_decoder", NULL));
        }
        n_decoder = tok->n_added;
    }
    static const char *const roles[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    static const char *const defaults[4] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>",
                                            "<|endoftext|>"};
    int32_t *ids[4] = {&tok->bos, &tok->eos, &tok->unk, &tok->pad};
    special_spec spec[4], list[4];
    const char *list_role[4];
    int n_list = 0;
    for (int r = 0; r < 4; r++) {
        IT_TRY(role_spec(err, &spec[r], cfg, map, roles[r], defaults[r]));
        if (!spec[r].content) continue;
        int32_t id = vocab_id(tok, spec[r].content, strlen(spec[r].content));
        int known = 0;
        for (int i = 0; i < n_decoder; i++) known |= tok->added[i].id == id;
        for (int i = 0; i < n_list; i++)
            known |= strcmp(list[i].content, spec[r].content) == 0 && list[i].normalized == spec[r].normalized;
        if (!known) {
            list_role[n_list] = roles[r];
            list[n_list++] = spec[r];
        }
    }
    for (int i = 0; i < n_list; i++) {
        special_spec sp = list[i];
        for (int j = i + 1; j < n_list; j++)
            if (strcmp(list[j].content, sp.content) == 0) sp.normalized = list[j].normalized;
        IT_TRY(add_special(err, tok, &sp, list_role[i], NULL));
    }
    for (int r = 0; r < 4; r++) {
        *ids[r] = -1;
        if (spec[r].content) IT_TRY(add_special(err, tok, &spec[r], roles[r], ids[r]));
    }
    tok->model_max_length = IT_CLIP_CONTEXT;
    json_t *ml = cfg ? json_object_get(cfg, "model_max_length") : NULL;
    /* transformers writes a huge number for "no limit": keep CLIP's 77. */
    if (json_is_integer(ml) && json_integer_value(ml) >= 2 && json_integer_value(ml) <= 1000000)
        tok->model_max_length = (int)json_integer_value(ml);
    return IT_OK;
}

static it_status load_specials(it_err *err, it_clip_tokenizer *tok, const it_clip_sources *src)
{
    it_status st;
    json_t *cfg = load_json(err, src->config_json, src->config_len, "tokenizer_config.json", &st);
    if (st) return st;
    json_t *map = load_json(err, src->special_map_json, src->special_map_len,
                            "special_tokens_map.json", &st);
    if (!st) st = apply_specials(err, tok, cfg, map);
    json_decref(cfg);
    json_decref(map);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Load / free                                                               */
/* ------------------------------------------------------------------------ */

it_status it_clip_tokenizer_load_mem(it_err *err, it_clip_tokenizer **out, const it_clip_sources *src)
{
    *out = NULL;
    it_clip_tokenizer *tok = it_calloc(1, sizeof *tok);
    if (!tok) return it_err_set(err, IT_ERR_NOMEM, "tokenizer: out of memory");
    it_strmap_init(&tok->vocab);
    it_u64map_init(&tok->merges);
    it_strmap_init(&tok->cache);
    pthread_mutex_init(&tok->lock, NULL);
    it_status st = load_vocab(err, tok, src->vocab_json, src->vocab_len);
    if (!st) st = load_merges(err, tok, src->merges_txt, src->merges_len);
    if (!st) {
        byte_ids(tok);
        st = load_specials(err, tok, src);
    }
    if (st) {
        it_clip_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return IT_OK;
}

static it_status read_optional(it_err *err, uint8_t **buf, size_t *n, const char *dir, const char *name)
{
    char path[4096];
    *buf = NULL;
    *n = 0;
    IT_TRY(it_path_join(err, path, sizeof path, dir, name));
    if (!it_file_exists(path)) return IT_OK;
    return it_file_read(err, buf, n, path, CLIP_FILE_MAX);
}

it_status it_clip_tokenizer_load(it_err *err, it_clip_tokenizer **out, const char *dir)
{
    *out = NULL;
    static const char *const names[4] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                         "special_tokens_map.json"};
    uint8_t *buf[4] = {0};
    size_t len[4] = {0};
    it_status st = IT_OK;
    for (int i = 0; i < 4 && !st; i++) {
        st = read_optional(err, &buf[i], &len[i], dir, names[i]);
        if (!st && i < 2 && !buf[i])
            st = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no %s (not a CLIP tokenizer folder)", dir, names[i]);
    }
    if (!st) {
        it_clip_sources src = {(const char *)buf[0], len[0], (const char *)buf[1], len[1],
                               (const char *)buf[2], len[2], (const char *)buf[3], len[3]};
        st = it_clip_tokenizer_load_mem(err, out, &src);
        if (st) it_err_prefix(err, "%s", dir);
    }
    for (int i = 0; i < 4; i++) it_free(buf[i]);
    return st;
}

void it_clip_tokenizer_free(it_clip_tokenizer *tok)
{
    if (!tok) return;
    it_strmap_free(&tok->vocab);
    it_free(tok->id_to_token);
    it_u64map_free(&tok->merges);
    for (int i = 0; i < tok->n_added; i++) {
        it_free(tok->added[i].cps);
        it_free(tok->added[i].raw);
    }
    it_strmap_free(&tok->cache);
    it_free(tok->cache_spans);
    it_free(tok->cache_ids);
    pthread_mutex_destroy(&tok->lock);
    it_free(tok);
}

void it_clip_tokenizer_set_mode(it_clip_tokenizer *tok, it_clip_mode mode) { tok->mode = mode; }

void it_clip_tokenizer_info(const it_clip_tokenizer *tok, it_clip_info *info)
{
    info->n_vocab = tok->vocab.n;
    info->n_merges = tok->n_merges;
    info->bos = tok->bos;
    info->eos = tok->eos;
    info->pad = tok->pad;
    info->unk = tok->unk;
    info->model_max_length = tok->model_max_length;
    info->n_added = tok->n_added;
}

const char *it_clip_id_to_token(const it_clip_tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->n_ids) return NULL;
    return tok->id_to_token[id];
}

int32_t it_clip_token_to_id(const it_clip_tokenizer *tok, const char *token)
{
    return vocab_id(tok, token, strlen(token));
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                    */
/* ------------------------------------------------------------------------ */

static int is_special(const it_clip_tokenizer *tok, int32_t id)
{
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].id == id) return 1;
    return 0;
}

/* Byte-level characters become their bytes, anything else (special tokens)
 * stays as its UTF-8; "</w>" becomes a space. */
static it_status append_token(it_err *err, it_buf *bytes, const char *tok_str)
{
    size_t n = strlen(tok_str);
    for (size_t i = 0; i < n;) {
        if (n - i >= 4 && memcmp(tok_str + i, "</w>", 4) == 0) {
            if (it_buf_append(bytes, " ", 1)) return it_err_set(err, IT_ERR_NOMEM, "decode: out of memory");
            i += 4;
            continue;
        }
        uint32_t cp;
        size_t k = it_utf8_decode(&cp, (const uint8_t *)tok_str + i, n - i);
        int b = byte_of_char(cp);
        uint8_t c = (uint8_t)b;
        it_status st = b >= 0 ? it_buf_append(bytes, &c, 1) : it_buf_append(bytes, tok_str + i, k);
        if (st) return it_err_set(err, IT_ERR_NOMEM, "decode: out of memory");
        i += k;
    }
    return IT_OK;
}

it_status it_clip_decode(it_err *err, const it_clip_tokenizer *tok, char **text, const int32_t *ids,
                         size_t n_ids, int skip_special)
{
    *text = NULL;
    it_buf bytes;
    it_buf_init(&bytes);
    it_status st = IT_OK;
    for (size_t i = 0; i < n_ids && !st; i++) {
        const char *s = it_clip_id_to_token(tok, ids[i]);
        if (!s) {
            st = it_err_set(err, IT_ERR_RANGE, "decode: id %d is not in the vocabulary", ids[i]);
            break;
        }
        if (skip_special && is_special(tok, ids[i])) continue;
        st = append_token(err, &bytes, s);
    }
    /* Re-encode as valid UTF-8 (U+FFFD for broken sequences), trim spaces. */
    it_buf out;
    it_buf_init(&out);
    size_t lo = 0, hi = bytes.len;
    while (lo < hi && bytes.data[lo] == ' ') lo++;
    while (hi > lo && bytes.data[hi - 1] == ' ') hi--;
    for (size_t i = lo; i < hi && !st;) {
        uint32_t cp;
        i += it_utf8_decode(&cp, (const uint8_t *)bytes.data + i, hi - i);
        uint8_t enc[4];
        if (it_buf_append(&out, enc, it_utf8_encode(enc, cp)))
            st = it_err_set(err, IT_ERR_NOMEM, "decode: out of memory");
    }
    if (!st && it_buf_append(&out, "", 1)) st = it_err_set(err, IT_ERR_NOMEM, "decode: out of memory");
    it_buf_free(&bytes);
    if (st) {
        it_buf_free(&out);
        return st;
    }
    *text = out.data;
    return IT_OK;
}
