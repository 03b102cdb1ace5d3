/* clip_tokenize.c: libFuzzer harness for the CLIP tokenizer.
 *
 * The first byte picks what the rest is:
 *   0-1  text for the real CLIP tokenizer (vocab.json rebuilt from
 *        tests/fixtures/text/clip/merges.txt at start, SD 1.5 configs);
 *   2-3  the same in legacy mode (transformers 4.x slow tokenizer);
 *   4-5  text for the tiny tokenizer (SD-style configs, normalised specials);
 *   6    a tokenizer folder in memory: vocab.json, merges.txt and
 *        tokenizer_config.json separated by "\n@@\n", then text after a
 *        fourth separator;
 *   7    a training corpus for the BPE trainer (learn only).
 * Run from the repository root (the fixtures are read by relative path).
 * Findings: crashes, sanitizer reports, it_malloc leaks, a failure without a
 * message, or a broken promise:
 *   - every id is in the vocabulary; encode = start + tokenize + end;
 *   - the padded encoding is start, the first L-2 ids, end, padding;
 *   - tokenising twice (second time from the word cache) gives the same ids;
 *   - decode never fails on ids that encode produced. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) abort();                                                                     \
    } while (0)

static it_clip_tokenizer *g_clip, *g_legacy, *g_tiny;

static it_clip_tokenizer *load_clip(void)
{
    it_err err;
    uint8_t *merges, *cfg, *map;
    size_t nm, nc, nmap;
    char *vocab;
    size_t nv;
    CHECK(it_file_read(&err, &merges, &nm, "tests/fixtures/text/clip/merges.txt", 1 << 24) == IT_OK);
    CHECK(it_file_read(&err, &cfg, &nc, "tests/fixtures/text/clip/configs/sd15/tokenizer_config.json", 1 << 20) == IT_OK);
    CHECK(it_file_read(&err, &map, &nmap, "tests/fixtures/text/clip/configs/sd15/special_tokens_map.json", 1 << 20) == IT_OK);
    CHECK(it_bpe_vocab_from_merges(&err, &vocab, &nv, (const char *)merges, nm) == IT_OK);
    it_clip_sources src = {vocab, nv, (const char *)merges, nm, (const char *)cfg, nc, (const char *)map, nmap};
    it_clip_tokenizer *tok;
    CHECK(it_clip_tokenizer_load_mem(&err, &tok, &src) == IT_OK);
    it_free(merges);
    it_free(cfg);
    it_free(map);
    it_free(vocab);
    return tok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    it_err err;
    g_clip = load_clip();
    g_legacy = load_clip();
    it_clip_tokenizer_set_mode(g_legacy, IT_CLIP_MODE_LEGACY);
    CHECK(it_clip_tokenizer_load(&err, &g_tiny, "tests/fixtures/text/tiny/tokenizer") == IT_OK);
    return 0;
}

static void check_text(it_clip_tokenizer *tok, const char *text, size_t len)
{
    it_err err;
    it_err_clear(&err);
    it_clip_info info;
    it_clip_tokenizer_info(tok, &info);
    int32_t *raw, *ids, *again;
    size_t n_raw, n, n_again;
    CHECK(it_clip_tokenize(&err, tok, &raw, &n_raw, text, len) == IT_OK);
    CHECK(it_clip_encode(&err, tok, &ids, &n, text, len) == IT_OK);
    CHECK(it_clip_tokenize(&err, tok, &again, &n_again, text, len) == IT_OK);
    CHECK(n == n_raw + 2 && ids[0] == info.bos && ids[n - 1] == info.eos);
    CHECK(memcmp(ids + 1, raw, n_raw * sizeof *raw) == 0);
    CHECK(n_again == n_raw && memcmp(again, raw, n_raw * sizeof *raw) == 0);
    for (size_t i = 0; i < n; i++) CHECK(it_clip_id_to_token(tok, ids[i]) != NULL);
    int32_t pad[77];
    int n_valid;
    CHECK(it_clip_encode_padded(&err, tok, pad, 77, &n_valid, text, len) == IT_OK);
    CHECK(n_valid >= 2 && n_valid <= 77 && pad[n_valid - 1] == info.eos);
    CHECK(memcmp(pad, ids, (size_t)(n_valid - 1) * sizeof *pad) == 0);
    for (int i = n_valid; i < 77; i++) CHECK(pad[i] == info.pad);
    char *dec;
    CHECK(it_clip_decode(&err, tok, &dec, ids, n, len & 1) == IT_OK);
    it_free(dec);
    it_free(raw);
    it_free(ids);
    it_free(again);
}

/* Splits at "\n@@\n" into up to n parts. */
static int split(const char *s, size_t len, const char **part, size_t *plen, int n)
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i + 4 <= len && k < n - 1; i++) {
        if (memcmp(s + i, "\n@@\n", 4) == 0) {
            part[k] = s + start;
            plen[k++] = i - start;
            start = i + 4;
            i += 3;
        }
    }
    part[k] = s + start;
    plen[k++] = len - start;
    return k;
}

static void fuzz_folder(const char *s, size_t len)
{
    const char *part[4];
    size_t plen[4];
    int k = split(s, len, part, plen, 4);
    if (k < 2) return;
    it_clip_sources src = {part[0], plen[0], part[1], plen[1], k > 2 ? part[2] : NULL, k > 2 ? plen[2] : 0,
                           NULL, 0};
    it_err err;
    it_err_clear(&err);
    it_clip_tokenizer *tok;
    if (it_clip_tokenizer_load_mem(&err, &tok, &src) != IT_OK) {
        CHECK(err.msg[0] != 0);
        return;
    }
    it_clip_info info;
    it_clip_tokenizer_info(tok, &info);
    if (k > 3 && info.bos >= 0 && info.eos >= 0 && info.pad >= 0) {
        int32_t *ids;
        size_t n;
        /* May fail (a byte without a token and no unknown token), never crash. */
        if (it_clip_tokenize(&err, tok, &ids, &n, part[3], plen[3]) == IT_OK) {
            for (size_t i = 0; i < n; i++) CHECK(it_clip_id_to_token(tok, ids[i]) != NULL);
            it_free(ids);
        } else {
            CHECK(err.msg[0] != 0);
        }
    }
    it_clip_tokenizer_free(tok);
}

static void fuzz_train(const char *s, size_t len)
{
    it_err err;
    it_bpe_trainer *tr;
    CHECK(it_bpe_trainer_new(&err, &tr) == IT_OK);
    CHECK(it_bpe_trainer_add_text(&err, tr, s, len) == IT_OK);
    it_bpe_options o = {IT_BPE_BASE_VOCAB + 64, 1 + (len & 1)};
    it_bpe_result res;
    CHECK(it_bpe_trainer_learn(&err, tr, &o, &res) == IT_OK);
    CHECK(res.vocab_size <= o.vocab_size && res.n_merges + IT_BPE_BASE_VOCAB >= res.vocab_size);
    it_bpe_trainer_free(tr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] & 7) {
    case 0: case 1: check_text(g_clip, s, len); break;
    case 2: case 3: check_text(g_legacy, s, len); break;
    case 4: case 5: check_text(g_tiny, s, len); break;
    case 6: fuzz_folder(s, len); break;
    default: fuzz_train(s, len); break;
    }
    return 0;
}
