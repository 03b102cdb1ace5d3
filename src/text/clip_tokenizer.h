/* clip_tokenizer.h: CLIP's byte-level BPE tokenizer, id for id like
 * transformers' CLIPTokenizer.
 *
 * Owns: loading a tokenizer folder (vocab.json + merges.txt, and when present
 * tokenizer_config.json / special_tokens_map.json for the special tokens,
 * their "normalized" flags, the padding token and model_max_length), and
 * turning text into token ids the way transformers >= 5 does (the
 * tokenizers-library pipeline, also what CLIPTokenizerFast always did):
 *   1. ill-formed UTF-8 becomes U+FFFD (as Python's errors="replace");
 *   2. special tokens that are not "normalized" are cut out of the raw text;
 *   3. every other piece is normalised: NFC, runs of white space -> " ",
 *      lower case (per character, no final-sigma rule); "normalized" special
 *      tokens are then cut out of the normalised text;
 *   4. split into words: 's 't 're 've 'm 'll 'd | letters+ | one digit |
 *      a run of anything else that is not white space; white space dropped;
 *   5. each word's UTF-8 bytes -> GPT-2 byte-to-unicode characters, "</w>"
 *      glued to the last one, merged by merges.txt rank (lowest first, then
 *      leftmost), symbols looked up in vocab.json;
 *   6. <|startoftext|> ... <|endoftext|> around, truncated and padded on
 *      request.
 * Not ftfy, no HTML unescaping, no accent stripping, no control-character
 * removal: see docs/TOKENIZER.md for how this differs from OpenAI's CLIP code
 * and from the old slow transformers tokenizer.
 * Does not own the text encoder (models/) or Unicode data (unicode.h).
 *
 * Thread safety: a loaded tokenizer may be used from several threads at once
 * (its word cache is behind a mutex). */
#ifndef IT_CLIP_TOKENIZER_H
#define IT_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct it_clip_tokenizer it_clip_tokenizer;

/* CLIP's context length, used when a folder has no model_max_length. */
#define IT_CLIP_CONTEXT 77

/* Loads DIR/vocab.json, DIR/merges.txt and, if present,
 * DIR/tokenizer_config.json and DIR/special_tokens_map.json. */
it_status it_clip_tokenizer_load(it_err *err, it_clip_tokenizer **out, const char *dir);

/* The same from memory; config and special map may be NULL (absent). The
 * bytes need not be NUL-terminated. */
typedef struct it_clip_sources {
    const char *vocab_json;
    size_t vocab_len;
    const char *merges_txt;
    size_t merges_len;
    const char *config_json;       /* tokenizer_config.json or NULL */
    size_t config_len;
    const char *special_map_json;  /* special_tokens_map.json or NULL */
    size_t special_map_len;
} it_clip_sources;
it_status it_clip_tokenizer_load_mem(it_err *err, it_clip_tokenizer **out, const it_clip_sources *src);

void it_clip_tokenizer_free(it_clip_tokenizer *tok);

/* Which reference the ids follow (see docs/TOKENIZER.md):
 *   IT_CLIP_MODE_HF     transformers >= 5 CLIPTokenizer = CLIPTokenizerFast
 *                       (the tokenizers library); the default;
 *   IT_CLIP_MODE_LEGACY transformers 4.x slow CLIPTokenizer without ftfy
 *                       (BasicTokenizer clean-up: control and unassigned
 *                       characters deleted, CJK ideographs split apart,
 *                       Python's NFC and lower case with final sigma; every
 *                       special token matched in raw text only).
 * Both give the same ids for ordinary prompts. Set before use; not while
 * other threads encode. */
typedef enum it_clip_mode {
    IT_CLIP_MODE_HF = 0,
    IT_CLIP_MODE_LEGACY = 1,
} it_clip_mode;
void it_clip_tokenizer_set_mode(it_clip_tokenizer *tok, it_clip_mode mode);

typedef struct it_clip_info {
    size_t n_vocab;        /* entries of vocab.json */
    size_t n_merges;
    int32_t bos, eos, pad, unk; /* ids; -1 if the folder defines none */
    int model_max_length;  /* from tokenizer_config.json, else IT_CLIP_CONTEXT */
    int n_added;           /* special tokens matched in text */
} it_clip_info;
void it_clip_tokenizer_info(const it_clip_tokenizer *tok, it_clip_info *info);

/* Token string of an id (vocab.json's spelling) or NULL. */
const char *it_clip_id_to_token(const it_clip_tokenizer *tok, int32_t id);
/* Id of a token string or -1. */
int32_t it_clip_token_to_id(const it_clip_tokenizer *tok, const char *token);

/* Ids of text without start/end tokens, untruncated; *ids is freed with
 * it_free (never NULL on success, even when *n_ids == 0). Any bytes. */
it_status it_clip_tokenize(it_err *err, const it_clip_tokenizer *tok, int32_t **ids,
                           size_t *n_ids, const char *text, size_t len);

/* tokenizer(text)["input_ids"]: start + ids + end, untruncated. */
it_status it_clip_encode(it_err *err, const it_clip_tokenizer *tok, int32_t **ids, size_t *n_ids,
                         const char *text, size_t len);

/* tokenizer(text, padding="max_length", max_length=L, truncation=True):
 * start + the first L-2 ids + end, then the padding id up to L.
 * ids must hold max_length entries; *n_valid (may be NULL) gets the count
 * before padding, so the end token sits at n_valid-1 (the position CLIP's
 * pooled output reads). IT_ERR_ARG if max_length < 2 or there is no padding
 * token. */
it_status it_clip_encode_padded(it_err *err, const it_clip_tokenizer *tok, int32_t *ids,
                                int max_length, int *n_valid, const char *text, size_t len);

/* Text of ids as transformers' decode does it: tokens concatenated,
 * byte-level characters back to bytes (invalid UTF-8 -> U+FFFD), "</w>" ->
 * " ", ends trimmed. skip_special drops the special tokens. */
it_status it_clip_decode(it_err *err, const it_clip_tokenizer *tok, char **text,
                         const int32_t *ids, size_t n_ids, int skip_special);

/* --- building blocks shared with the BPE trainer --- */

/* GPT-2's reversible byte -> printable code point map. */
uint32_t it_clip_byte_char(uint8_t b);

/* Steps 3-4 above for text without special tokens: calls fn with each
 * word's UTF-8 bytes. Stops at the first non-OK status fn returns. */
typedef it_status (*it_clip_word_fn)(it_err *err, void *ctx, const uint8_t *word, size_t len);
it_status it_clip_pretokenize(it_err *err, const char *text, size_t len, it_clip_word_fn fn,
                              void *ctx);

#endif
