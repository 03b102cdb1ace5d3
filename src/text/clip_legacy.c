/* clip_legacy.c: the transformers 4.x slow CLIPTokenizer without ftfy
 * (IT_CLIP_MODE_LEGACY), what diffusers users got by default before
 * transformers 5. Its steps, from transformers' tokenization_clip.py and
 * tokenization_utils.py (4.57):
 *   1. every special token is cut out of the raw text (a trie, longest match;
 *      the "normalized" flag plays no part);
 *   2. BasicTokenizer(strip_accents=False, do_split_on_punc=False) on each
 *      piece: NUL, U+FFFD and every character of category C* except tab, LF
 *      and CR are deleted; tab, LF, CR and Zs become ' '; CJK ideographs get a
 *      space on each side; NFC (Python's data); split on white space; each
 *      piece lower-cased by Python's str.lower (final sigma included);
 *      joined again with ' ';
 *   3. the regex findall of CLIP's pattern with IGNORECASE (so the
 *      <|startoftext|> / <|endoftext|> alternatives do work here, and 's
 *      also matches 'ſ, the one non-ASCII character that folds to a pattern
 *      letter);
 *   4. BPE of each match, except the exact strings <|startoftext|> and
 *      <|endoftext|>, which the slow tokenizer's BPE cache maps to themselves
 *      (whole tokens).
 * Lower-casing and letter/number classes share the tables of the default
 * mode: for every character that survives step 2 they agree with Python's
 * (tools/gen_unicode_tables.py asserts it). */
#include <string.h>

#include "base/mem.h"
#include "text/clip_internal.h"
#include "text/unicode.h"

/* BasicTokenizer._is_chinese_char. */
static int is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* BasicTokenizer._clean_text and _tokenize_chinese_chars. */
static size_t clean_text(uint32_t *out, const uint32_t *cps, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        if (c == 0 || c == IT_UNICODE_REPLACEMENT || it_unicode_py_is_control(c)) continue;
        if (c == '\t' || c == '\n' || c == '\r' || it_unicode_py_is_zs(c)) {
            out[k++] = ' ';
        } else if (is_cjk(c)) {
            out[k++] = ' ';
            out[k++] = c;
            out[k++] = ' ';
        } else {
            out[k++] = c;
        }
    }
    return k;
}

/* What str.split() still splits on after clean_text: ' ', U+2028, U+2029
 * (every other Python white space is C* or Zs, already deleted or mapped). */
static int py_split_space(uint32_t c) { return c == ' ' || c == 0x2028 || c == 0x2029; }

/* Steps 2: clean, NFC, split, lower each piece, join with ' '. */
static it_status basic_tokenize(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n)
{
    uint32_t *clean = it_malloc((3 * n + 1) * sizeof *clean), *nfc = NULL, *res = NULL;
    if (!clean) return it_err_set(err, IT_ERR_NOMEM, "tokenize: out of memory (%zu code points)", n);
    size_t nc = clean_text(clean, cps, n), nn;
    it_status st = it_unicode_nfc_python(err, &nfc, &nn, clean, nc);
    it_free(clean);
    if (st) return st;
    res = it_malloc((3 * nn + 1) * sizeof *res);
    if (!res) {
        it_free(nfc);
        return it_err_set(err, IT_ERR_NOMEM, "tokenize: out of memory (%zu code points)", nn);
    }
    size_t k = 0;
    for (size_t i = 0; i < nn && !st;) {
        if (py_split_space(nfc[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < nn && !py_split_space(nfc[j])) j++;
        uint32_t *low;
        size_t nl;
        st = it_unicode_py_lower(err, &low, &nl, nfc + i, j - i);
        if (st) break;
        if (k) res[k++] = ' ';
        memcpy(res + k, low, nl * sizeof *low);
        k += nl;
        it_free(low);
        i = j;
    }
    it_free(nfc);
    if (st) {
        it_free(res);
        return st;
    }
    *out = res;
    *n_out = k;
    return IT_OK;
}

/* Equality under the regex module's IGNORECASE for the pattern's (lower
 * case ASCII) letters, on lower-cased text: only 'ſ' joins 's'. */
static int fold_eq(uint32_t c, char pat)
{
    return c == (uint32_t)(unsigned char)pat || (pat == 's' && c == 0x17F);
}

/* Length of the case-insensitive match of pat at cps[i] (0 if none); *exact
 * says whether the text is pat itself. */
static size_t match_fold(const uint32_t *cps, size_t n, size_t i, const char *pat, int *exact)
{
    size_t len = strlen(pat);
    if (len > n - i) return 0;
    *exact = 1;
    for (size_t k = 0; k < len; k++) {
        if (!fold_eq(cps[i + k], pat[k])) return 0;
        if (cps[i + k] != (uint32_t)(unsigned char)pat[k]) *exact = 0;
    }
    return len;
}

static const char *const k_specials[2] = {"<|startoftext|>", "<|endoftext|>"};
static const char *const k_contractions[7] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

/* The pattern's alternatives in order at cps[i]; 0 for white space. *special
 * gets the index of an exact <|startoftext|> / <|endoftext|>, else -1. */
static size_t legacy_word_len(const uint32_t *cps, size_t n, size_t i, int *special)
{
    *special = -1;
    int exact;
    for (int s = 0; s < 2; s++) {
        size_t m = match_fold(cps, n, i, k_specials[s], &exact);
        if (m) {
            if (exact) *special = s;
            return m;
        }
    }
    for (int c = 0; c < 7; c++) {
        size_t m = match_fold(cps, n, i, k_contractions[c], &exact);
        if (m) return m;
    }
    uint32_t c = cps[i];
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

static it_status encode_words(it_err *err, it_clip_tokenizer *tok, it_clip_ids *out, const uint32_t *cps,
                              size_t n)
{
    uint8_t small[256];
    for (size_t i = 0; i < n;) {
        int special;
        size_t len = legacy_word_len(cps, n, i, &special);
        if (len == 0) {
            i++;
            continue;
        }
        if (special >= 0) {
            /* The slow BPE cache answers these two strings with themselves,
             * looked up in the vocabulary (or the unknown token). */
            int32_t id = it_clip_token_to_id(tok, k_specials[special]);
            if (id < 0) id = tok->unk;
            if (id < 0)
                return it_err_set(err, IT_ERR_FORMAT, "tokenize: '%s' is not in the vocabulary", k_specials[special]);
            IT_TRY(it_clip_ids_push(err, out, &id, 1));
            i += len;
            continue;
        }
        uint8_t *buf = len * 4 <= sizeof small ? small : it_malloc(len * 4);
        if (!buf) return it_err_set(err, IT_ERR_NOMEM, "tokenize: out of memory (word of %zu)", len);
        size_t k = 0;
        for (size_t j = i; j < i + len; j++) k += it_utf8_encode(buf + k, cps[j]);
        it_status st = it_clip_bpe_cached(err, tok, out, buf, k);
        if (buf != small) it_free(buf);
        if (st) return st;
        i += len;
    }
    return IT_OK;
}

static it_status encode_piece(it_err *err, it_clip_tokenizer *tok, it_clip_ids *out, const uint32_t *cps,
                              size_t n)
{
    if (n == 0) return IT_OK;
    uint32_t *text;
    size_t nt;
    IT_TRY(basic_tokenize(err, &text, &nt, cps, n));
    it_status st = encode_words(err, tok, out, text, nt);
    it_free(text);
    return st;
}

it_status it_clip_encode_legacy(it_err *err, it_clip_tokenizer *tok, it_clip_ids *out, const uint32_t *cps,
                                size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        int32_t id;
        size_t m = it_clip_match_added(tok, cps, n, i, CLIP_MATCH_LEGACY, &id);
        if (!m) {
            i++;
            continue;
        }
        IT_TRY(encode_piece(err, tok, out, cps + start, i - start));
        IT_TRY(it_clip_ids_push(err, out, &id, 1));
        i += m;
        start = i;
    }
    return encode_piece(err, tok, out, cps + start, n - start);
}
