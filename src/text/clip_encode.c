/* clip_encode.c: text -> CLIP token ids: special tokens, normalisation, the
 * word split, and byte-level BPE with a per-word cache. The steps and the
 * reasons for their order are in clip_tokenizer.h and docs/TOKENIZER.md. */
#include <string.h>

#include "base/mem.h"
#include "text/clip_internal.h"
#include "text/clip_tokenizer.h"
#include "text/unicode.h"

/* ------------------------------------------------------------------------ */
/* Growable id vector                                                        */
/* ------------------------------------------------------------------------ */

it_status it_clip_ids_push(it_err *err, it_clip_ids *a, const int32_t *ids, size_t n)
{
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 64;
        while (cap < a->n + n) cap *= 2;
        int32_t *v = it_realloc(a->v, cap * sizeof *v);
        if (!v) return it_err_set(err, IT_ERR_NOMEM, "tokenize: out of memory (%zu ids)", cap);
        a->v = v;
        a->cap = cap;
    }
    memcpy(a->v + a->n, ids, n * sizeof *ids);
    a->n += n;
    return IT_OK;
}

/* ------------------------------------------------------------------------ */
/* Normalisation and word split                                              */
/* ------------------------------------------------------------------------ */

/* NFC, then each run of white space -> one ' ', then lower case (the
 * tokenizers library's Sequence[NFC, Replace(\s+, " "), Lowercase]). */
it_status it_clip_normalize(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n)
{
    uint32_t *nfc;
    size_t nn;
    IT_TRY(it_unicode_nfc(err, &nfc, &nn, cps, n));
    /* Lower-casing maps one code point to at most three. */
    uint32_t *res = it_malloc((3 * nn + 1) * sizeof *res);
    if (!res) {
        it_free(nfc);
        return it_err_set(err, IT_ERR_NOMEM, "normalize: out of memory (%zu code points)", nn);
    }
    size_t k = 0;
    for (size_t i = 0; i < nn; i++) {
        if (it_unicode_is_space(nfc[i])) {
            if (i == 0 || !it_unicode_is_space(nfc[i - 1])) res[k++] = ' ';
            continue;
        }
        k += (size_t)it_unicode_lower(res + k, nfc[i]);
    }
    it_free(nfc);
    *out = res;
    *n_out = k;
    return IT_OK;
}

/* Length of the word starting at cps[i] (0 for white space, which is
 * dropped): the CLIP pattern 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|
 * [^\s\p{L}\p{N}]+, tried in that order at i. The pattern's leading
 * <|startoftext|> / <|endoftext|> alternatives are left out on purpose: the
 * byte-level pre-tokenizer that runs after it splits such a match again into
 * "<|", the letters and "|>", exactly what the remaining alternatives give. */
static size_t word_len(const uint32_t *cps, size_t n, size_t i)
{
    uint32_t c = cps[i];
    if (c == '\'' && i + 1 < n) {
        uint32_t a = cps[i + 1], b = i + 2 < n ? cps[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    size_t j = i + 1;
    if (it_unicode_is_letter(c)) {
        while (j < n && it_unicode_is_letter(cps[j])) j++;
        return j - i;
    }
    if (it_unicode_is_number(c)) return 1;
    if (it_unicode_is_space(c)) return 0;
    while (j < n && !it_unicode_is_letter(cps[j]) && !it_unicode_is_number(cps[j]) &&
           !it_unicode_is_space(cps[j]))
        j++;
    return j - i;
}

/* Calls fn with the UTF-8 bytes of every word of normalised cps. */
static it_status split_words(it_err *err, const uint32_t *cps, size_t n, it_clip_word_fn fn, void *ctx)
{
    uint8_t small[256];
    for (size_t i = 0; i < n;) {
        size_t len = word_len(cps, n, i);
        if (len == 0) {
            i++;
            continue;
        }
        uint8_t *buf = len * 4 <= sizeof small ? small : it_malloc(len * 4);
        if (!buf) return it_err_set(err, IT_ERR_NOMEM, "tokenize: out of memory (word of %zu)", len);
        size_t k = 0;
        for (size_t j = i; j < i + len; j++) k += it_utf8_encode(buf + k, cps[j]);
        it_status st = fn(err, ctx, buf, k);
        if (buf != small) it_free(buf);
        if (st) return st;
        i += len;
    }
    return IT_OK;
}

it_status it_clip_pretokenize(it_err *err, const char *text, size_t len, it_clip_word_fn fn, void *ctx)
{
    uint32_t *cps, *norm;
    size_t n, nn;
    IT_TRY(it_utf8_to_cps(err, &cps, &n, (const uint8_t *)text, len));
    it_status st = it_clip_normalize(err, &norm, &nn, cps, n);
    it_free(cps);
    if (st) return st;
    st = split_words(err, norm, nn, fn, ctx);
    it_free(norm);
    return st;
}

/* ------------------------------------------------------------------------ */
/* BPE                                                                       */
/* ------------------------------------------------------------------------ */

typedef struct merge_ent {
    uint32_t rank, pos;
    int32_t id;
} merge_ent;

static int ent_less(const merge_ent *a, const merge_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(merge_ent *h, size_t *n, merge_ent e)
{
    size_t i = (*n)++;
    while (i > 0 && ent_less(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static merge_ent heap_pop(merge_ent *h, size_t *n)
{
    merge_ent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(&h[c + 1], &h[c])) c++;
        if (!ent_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Pushes the merge of symbols a and b (at position pos) if one exists. */
static void push_pair(const it_clip_tokenizer *tok, merge_ent *h, size_t *nh, int32_t a, int32_t b,
                      uint32_t pos)
{
    const uint64_t *m = it_u64map_get(&tok->merges, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (m) heap_push(h, nh, (merge_ent){(uint32_t)(*m >> 32), pos, (int32_t)(uint32_t)*m});
}

/* BPE of one word (UTF-8 bytes, n >= 1) as the tokenizers library does it:
 * one symbol per byte (its byte-level character, "</w>" on the last),
 * then repeatedly the adjacent pair with the lowest merge rank is merged,
 * the leftmost first among equal ranks. Entries of the heap go stale when a
 * neighbour merges; they are recognised because the pair at their position
 * no longer merges into the same token. */
static it_status bpe_word(it_err *err, const it_clip_tokenizer *tok, it_clip_ids *out, const uint8_t *w,
                          size_t n)
{
    int32_t *sym = it_malloc(n * 3 * sizeof *sym);
    merge_ent *heap = it_malloc(n * 3 * sizeof *heap);
    if (!sym || !heap) {
        it_free(sym);
        it_free(heap);
        return it_err_set(err, IT_ERR_NOMEM, "bpe: out of memory (word of %zu bytes)", n);
    }
    int32_t *prev = sym + n, *next = sym + 2 * n;
    it_status st = IT_OK;
    for (size_t i = 0; i < n; i++) {
        sym[i] = i + 1 == n ? tok->byte_end_id[w[i]] : tok->byte_id[w[i]];
        if (sym[i] < 0) sym[i] = tok->unk;
        if (sym[i] < 0) {
            st = it_err_set(err, IT_ERR_FORMAT, "bpe: byte 0x%02x has no vocabulary entry and there is no unknown token",
                            w[i]);
            goto done;
        }
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(tok, heap, &nh, sym[i], sym[i + 1], (uint32_t)i);
    while (nh) {
        merge_ent e = heap_pop(heap, &nh);
        int32_t p = (int32_t)e.pos, q = next[p];
        if (sym[p] < 0 || q < 0) continue;
        const uint64_t *m = it_u64map_get(&tok->merges, (uint64_t)(uint32_t)sym[p] << 32 | (uint32_t)sym[q]);
        if (!m || (int32_t)(uint32_t)*m != e.id) continue;
        sym[p] = e.id;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) push_pair(tok, heap, &nh, sym[prev[p]], sym[p], (uint32_t)prev[p]);
        if (next[p] >= 0) push_pair(tok, heap, &nh, sym[p], sym[next[p]], (uint32_t)p);
    }
    for (int32_t i = 0; i >= 0 && !st; i = next[i]) st = it_clip_ids_push(err, out, &sym[i], 1);
done:
    it_free(sym);
    it_free(heap);
    return st;
}

/* Remembers the ids of a short word. Failing to cache is not an error. */
static void cache_put(it_clip_tokenizer *tok, const uint8_t *w, size_t n, const int32_t *ids, size_t k)
{
    if (tok->cache.n >= CLIP_CACHE_WORDS) {
        it_strmap_clear(&tok->cache);
        tok->cache_ids_len = 0;
    }
    size_t need = tok->cache.n + 1;
    if (need > tok->cache_spans_cap) {
        size_t cap = tok->cache_spans_cap ? tok->cache_spans_cap * 2 : 256;
        void *p = it_realloc(tok->cache_spans, cap * sizeof *tok->cache_spans);
        if (!p) return;
        tok->cache_spans = p;
        tok->cache_spans_cap = cap;
    }
    if (tok->cache_ids_len + k > tok->cache_ids_cap) {
        size_t cap = tok->cache_ids_cap ? tok->cache_ids_cap * 2 : 4096;
        while (cap < tok->cache_ids_len + k) cap *= 2;
        int32_t *p = it_realloc(tok->cache_ids, cap * sizeof *p);
        if (!p) return;
        tok->cache_ids = p;
        tok->cache_ids_cap = cap;
    }
    size_t idx;
    if (it_strmap_put(NULL, &tok->cache, (const char *)w, n, 0, &idx)) return;
    tok->cache_spans[idx].off = (uint32_t)tok->cache_ids_len;
    tok->cache_spans[idx].n = (uint32_t)k;
    memcpy(tok->cache_ids + tok->cache_ids_len, ids, k * sizeof *ids);
    tok->cache_ids_len += k;
}

it_status it_clip_bpe_cached(it_err *err, it_clip_tokenizer *tok, it_clip_ids *out, const uint8_t *w,
                             size_t n)
{
    int cacheable = n <= CLIP_CACHE_MAX_WORD;
    if (cacheable) {
        pthread_mutex_lock(&tok->lock);
        long e = it_strmap_find(&tok->cache, (const char *)w, n);
        it_status st = IT_OK;
        if (e >= 0) st = it_clip_ids_push(err, out, tok->cache_ids + tok->cache_spans[e].off, tok->cache_spans[e].n);
        pthread_mutex_unlock(&tok->lock);
        if (e >= 0) return st;
    }
    size_t start = out->n;
    IT_TRY(bpe_word(err, tok, out, w, n));
    if (cacheable) {
        pthread_mutex_lock(&tok->lock);
        cache_put(tok, w, n, out->v + start, out->n - start);
        pthread_mutex_unlock(&tok->lock);
    }
    return IT_OK;
}

typedef struct word_ctx {
    it_clip_tokenizer *tok; /* the cache is the only state encoding changes */
    it_clip_ids *out;
} word_ctx;

static it_status bpe_cached(it_err *err, void *vctx, const uint8_t *w, size_t n)
{
    word_ctx *ctx = vctx;
    return it_clip_bpe_cached(err, ctx->tok, ctx->out, w, n);
}

/* ------------------------------------------------------------------------ */
/* Special tokens in text                                                    */
/* ------------------------------------------------------------------------ */

/* Longest special token of the given kind that starts at cps[i]; 0 if none. */
size_t it_clip_match_added(const it_clip_tokenizer *tok, const uint32_t *cps, size_t n, size_t i,
                           int kind, int32_t *id)
{
    size_t best = 0;
    uint32_t c = cps[i];
    if (c < 128 ? !tok->starts_ascii[kind][c] : !tok->starts_other[kind]) return 0;
    for (int k = 0; k < tok->n_added; k++) {
        const clip_added *a = &tok->added[k];
        const uint32_t *p = kind == CLIP_MATCH_LEGACY ? a->raw : a->cps;
        size_t len = kind == CLIP_MATCH_LEGACY ? a->n_raw : a->n;
        if ((kind != CLIP_MATCH_LEGACY && a->normalized != kind) || len > n - i || len <= best || p[0] != c)
            continue;
        if (memcmp(p, cps + i, len * sizeof *cps) == 0) {
            best = len;
            *id = a->id;
        }
    }
    return best;
}

/* Text between special tokens of the normalised kind: words and BPE. */
static it_status encode_normalized(it_err *err, word_ctx *ctx, const uint32_t *cps, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        int32_t id;
        size_t m = it_clip_match_added(ctx->tok, cps, n, i, CLIP_MATCH_NORMALIZED, &id);
        if (!m) {
            i++;
            continue;
        }
        IT_TRY(split_words(err, cps + start, i - start, bpe_cached, ctx));
        IT_TRY(it_clip_ids_push(err, ctx->out, &id, 1));
        i += m;
        start = i;
    }
    return split_words(err, cps + start, n - start, bpe_cached, ctx);
}

static it_status encode_raw_piece(it_err *err, word_ctx *ctx, const uint32_t *cps, size_t n)
{
    if (n == 0) return IT_OK;
    uint32_t *norm;
    size_t nn;
    IT_TRY(it_clip_normalize(err, &norm, &nn, cps, n));
    it_status st = encode_normalized(err, ctx, norm, nn);
    it_free(norm);
    return st;
}

/* Raw special tokens are cut out first and the pieces between them are
 * normalised one by one, as the tokenizers library's added vocabulary does
 * (so normalisation never reaches across a raw special token). */
static it_status encode_cps(it_err *err, word_ctx *ctx, const uint32_t *cps, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        int32_t id;
        size_t m = it_clip_match_added(ctx->tok, cps, n, i, CLIP_MATCH_RAW, &id);
        if (!m) {
            i++;
            continue;
        }
        IT_TRY(encode_raw_piece(err, ctx, cps + start, i - start));
        IT_TRY(it_clip_ids_push(err, ctx->out, &id, 1));
        i += m;
        start = i;
    }
    return encode_raw_piece(err, ctx, cps + start, n - start);
}

static it_status tokenize_into(it_err *err, const it_clip_tokenizer *tok, it_clip_ids *out, const char *text,
                               size_t len)
{
    uint32_t *cps;
    size_t n;
    IT_TRY(it_utf8_to_cps(err, &cps, &n, (const uint8_t *)text, len));
    word_ctx ctx = {(it_clip_tokenizer *)tok, out};
    it_status st = tok->mode == IT_CLIP_MODE_LEGACY ? it_clip_encode_legacy(err, ctx.tok, out, cps, n)
                                                   : encode_cps(err, &ctx, cps, n);
    it_free(cps);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Public entry points                                                       */
/* ------------------------------------------------------------------------ */

it_status it_clip_tokenize(it_err *err, const it_clip_tokenizer *tok, int32_t **ids, size_t *n_ids,
                           const char *text, size_t len)
{
    *ids = NULL;
    *n_ids = 0;
    it_clip_ids out = {it_malloc(64 * sizeof(int32_t)), 0, 64};
    if (!out.v) return it_err_set(err, IT_ERR_NOMEM, "tokenize: out of memory");
    it_status st = tokenize_into(err, tok, &out, text, len);
    if (st) {
        it_free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return IT_OK;
}

it_status it_clip_encode(it_err *err, const it_clip_tokenizer *tok, int32_t **ids, size_t *n_ids,
                         const char *text, size_t len)
{
    *ids = NULL;
    *n_ids = 0;
    if (tok->bos < 0 || tok->eos < 0)
        return it_err_set(err, IT_ERR_ARG, "encode: the tokenizer has no start or end token");
    it_clip_ids out = {0};
    it_status st = it_clip_ids_push(err, &out, &tok->bos, 1);
    if (!st) st = tokenize_into(err, tok, &out, text, len);
    if (!st) st = it_clip_ids_push(err, &out, &tok->eos, 1);
    if (st) {
        it_free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return IT_OK;
}

it_status it_clip_encode_padded(it_err *err, const it_clip_tokenizer *tok, int32_t *ids, int max_length,
                                int *n_valid, const char *text, size_t len)
{
    if (max_length < 2)
        return it_err_set(err, IT_ERR_ARG, "encode: max_length %d leaves no room for start and end", max_length);
    if (tok->pad < 0) return it_err_set(err, IT_ERR_ARG, "encode: the tokenizer has no padding token");
    int32_t *all;
    size_t n;
    IT_TRY(it_clip_encode(err, tok, &all, &n, text, len));
    /* Truncation drops the tail of the text, never the end token. */
    size_t keep = n - 2 < (size_t)max_length - 2 ? n - 2 : (size_t)max_length - 2;
    ids[0] = all[0];
    memcpy(ids + 1, all + 1, keep * sizeof *ids);
    ids[keep + 1] = tok->eos;
    for (size_t i = keep + 2; i < (size_t)max_length; i++) ids[i] = tok->pad;
    if (n_valid) *n_valid = (int)keep + 2;
    it_free(all);
    return IT_OK;
}
