/* clip_internal.h: the tokenizer's state, shared by clip_tokenizer.c (loading,
 * configuration, decoding) and clip_encode.c (normalising, splitting, BPE).
 * Not a public header. */
#ifndef IT_CLIP_INTERNAL_H
#define IT_CLIP_INTERNAL_H

#include <pthread.h>

#include "text/clip_tokenizer.h"
#include "text/textmap.h"

/* A special token matched in text before BPE (transformers' "added tokens"). */
typedef struct clip_added {
    uint32_t *cps;   /* (n) content; normalised content if normalized */
    size_t n;
    uint32_t *raw;   /* (n_raw) content as written (the legacy mode matches it) */
    size_t n_raw;
    int32_t id;
    int normalized;  /* matched in normalised text instead of raw text */
} clip_added;

/* Kinds of special-token matching: raw-text tokens, normalised-text
 * tokens, and every token by its raw content (legacy mode). */
enum { CLIP_MATCH_RAW = 0, CLIP_MATCH_NORMALIZED = 1, CLIP_MATCH_LEGACY = 2 };

#define CLIP_MAX_ADDED 256
/* The word cache is emptied when it grows past these. */
#define CLIP_CACHE_WORDS 16384
#define CLIP_CACHE_MAX_WORD 128

struct it_clip_tokenizer {
    it_strmap vocab;          /* token string -> id */
    const char **id_to_token; /* (n_ids) into vocab's pool; NULL for gaps */
    size_t n_ids;             /* largest id + 1 */
    it_u64map merges;         /* (left << 32 | right) -> (rank << 32 | merged id) */
    size_t n_merges;
    int32_t byte_id[256];     /* id of the byte's character, -1 if absent */
    int32_t byte_end_id[256]; /* id of the character + "</w>", -1 if absent */
    int32_t bos, eos, pad, unk;
    int model_max_length;
    clip_added added[CLIP_MAX_ADDED];
    int n_added;
    /* Whether a special token of kind k (0 raw, 1 normalised) may start with
     * an ASCII character c / with a non-ASCII one: skips most positions. */
    uint8_t starts_ascii[3][128];
    uint8_t starts_other[3];
    it_clip_mode mode;
    /* Word cache: word bytes -> index into cache_spans; guarded by lock. */
    pthread_mutex_t lock;
    it_strmap cache;
    struct { uint32_t off, n; } *cache_spans;
    size_t cache_spans_cap;
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;
};

/* Growable id array. */
typedef struct it_clip_ids {
    int32_t *v;
    size_t n, cap;
} it_clip_ids;
it_status it_clip_ids_push(it_err *err, it_clip_ids *a, const int32_t *ids, size_t n);

/* BPE of one word's UTF-8 bytes (n >= 1) through the word cache, appended. */
it_status it_clip_bpe_cached(it_err *err, it_clip_tokenizer *tok, it_clip_ids *out, const uint8_t *w,
                             size_t n);

/* Longest special token of a CLIP_MATCH_* kind starting at cps[i]; 0 if
 * none, else its length, with its id in *id. */
size_t it_clip_match_added(const it_clip_tokenizer *tok, const uint32_t *cps, size_t n, size_t i,
                           int kind, int32_t *id);

/* The legacy pipeline (clip_legacy.c) over decoded text. */
it_status it_clip_encode_legacy(it_err *err, it_clip_tokenizer *tok, it_clip_ids *out,
                                const uint32_t *cps, size_t n);

/* Normalises cps (NFC, white-space runs -> ' ', lower case) into a new
 * array (it_free). */
it_status it_clip_normalize(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps,
                            size_t n);

#endif
