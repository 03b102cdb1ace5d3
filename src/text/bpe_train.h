/* bpe_train.h: learning a CLIP-style byte-level BPE vocabulary from text.
 *
 * Owns: word counting with exactly the tokenizer's normalisation and word
 * split (it_clip_pretokenize), the merge-learning loop, and writing a
 * tokenizer folder in CLIP's layout: vocab.json ids are the 256 byte
 * characters (GPT-2 order), the same with "</w>", each merge's result in
 * merge order (a result already present is not repeated), then
 * <|startoftext|> and <|endoftext|>; merges.txt with the "#version: 0.2"
 * header; tokenizer_config.json and special_tokens_map.json as Stable
 * Diffusion 1.x ships them (model_max_length 77). Both our loader and
 * transformers' CLIPTokenizer read the folder to the same ids.
 *
 * The algorithm: every distinct word is a sequence of symbols (one byte
 * character each, "</w>" glued to the last); repeatedly the adjacent pair
 * with the highest total count is merged everywhere (ties: the pair whose
 * left, then right, token id is smaller), until the vocabulary has the
 * requested size or the best pair occurs fewer than min_frequency times.
 * Each step scans the words that hold the pair, so cost grows with
 * merges x corpus words: meant for the project's caption vocabularies
 * (thousands of merges), not for web-scale corpora.
 * Does not own tokenising (clip_tokenizer.h). */
#ifndef IT_BPE_TRAIN_H
#define IT_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* 256 byte characters, 256 with "</w>", two special tokens. */
#define IT_BPE_BASE_VOCAB 514

typedef struct it_bpe_trainer it_bpe_trainer;

typedef struct it_bpe_options {
    size_t vocab_size;      /* total, >= IT_BPE_BASE_VOCAB */
    uint64_t min_frequency; /* >= 1 */
} it_bpe_options;

typedef struct it_bpe_result {
    size_t n_merges;
    size_t vocab_size; /* tokens in vocab.json */
    size_t n_words;    /* distinct words seen */
} it_bpe_result;

it_status it_bpe_trainer_new(it_err *err, it_bpe_trainer **out);
void it_bpe_trainer_free(it_bpe_trainer *tr);

/* Counts the words of a text (any bytes; ill-formed UTF-8 -> U+FFFD). */
it_status it_bpe_trainer_add_text(it_err *err, it_bpe_trainer *tr, const char *text, size_t len);
/* The same for a whole file. */
it_status it_bpe_trainer_add_file(it_err *err, it_bpe_trainer *tr, const char *path);

/* Learns the merges; may be called once. */
it_status it_bpe_trainer_learn(it_err *err, it_bpe_trainer *tr, const it_bpe_options *opt,
                               it_bpe_result *res);

/* Writes vocab.json, merges.txt, tokenizer_config.json and
 * special_tokens_map.json into dir (created if needed; files replaced
 * atomically). */
it_status it_bpe_trainer_save(it_err *err, it_bpe_trainer *tr, const char *dir);

/* CLIP's vocab.json rebuilt from a merges.txt alone (the layout above), as
 * JSON text (it_free). Lets a folder ship merges.txt only. */
it_status it_bpe_vocab_from_merges(it_err *err, char **json, size_t *len, const char *merges_txt,
                                   size_t merges_len);

#endif
