/* test_text_bpe.c: the BPE trainer: exact merges on small corpora, the
 * committed tiny tokenizer reproduced byte for byte from its corpus, the
 * vocab-from-merges rebuild, errors and out-of-memory paths. (That
 * transformers reads the trained folder to the same ids as we do is
 * text_clip_parity_tiny.) */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"
#include "test.h"

static char *read_all(it_test_ctx *t, const char *path, size_t *n)
{
    uint8_t *buf = NULL;
    it_err e;
    it_err_clear(&e);
    IT_CHECK_OK(it_file_read(&e, &buf, n, path, 1 << 24), &e);
    return (char *)buf;
}

static it_status train(it_err *e, const char *text, size_t vocab, uint64_t min_freq, const char *dir,
                       it_bpe_result *res)
{
    it_bpe_trainer *tr;
    IT_TRY(it_bpe_trainer_new(e, &tr));
    it_bpe_options o = {vocab, min_freq};
    it_status st = it_bpe_trainer_add_text(e, tr, text, strlen(text));
    if (!st) st = it_bpe_trainer_learn(e, tr, &o, res);
    if (!st && dir) st = it_bpe_trainer_save(e, tr, dir);
    it_bpe_trainer_free(tr);
    return st;
}

/* Worked by hand in the comments: ties go to the smaller ids ('a' is 64,
 * "a</w>" 320 in CLIP's byte order). */
IT_TEST(text_bpe_small_corpus) {
    static const struct {
        const char *text;
        size_t vocab;
        uint64_t min_freq;
        const char *merges;
    } cases[] = {
        /* (a,a)=3 ties (a,a</w>)=3 -> "a a"; then "aa a</w>" (3); "a b</w>" (2). */
        {"aaa aaa AAA ab ab", 1000, 2, "#version: 0.2\na a\naa a</w>\na b</w>\n"},
        {"aaa aaa AAA ab ab", 1000, 3, "#version: 0.2\na a\naa a</w>\n"},
        {"aaa aaa AAA ab ab", 515, 1, "#version: 0.2\na a\n"},
        /* Punctuation, digits and case folding split words as the tokenizer does. */
        /* (a,t</w>) and (c,a) tie at 2: 'a' (64) is smaller than 'c' (66). */
        {"Cat! cat!! 1 1 1", 1000, 2, "#version: 0.2\na t</w>\nc at</w>\n"},
        {"", 1000, 1, "#version: 0.2\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err e;
        it_err_clear(&e);
        it_bpe_result res;
        char dir[64];
        snprintf(dir, sizeof dir, "c%zu", i);
        const char *path = it_test_tmp(t, dir);
        char folder[1024];
        snprintf(folder, sizeof folder, "%s", path);
        IT_CHECK_OK(train(&e, cases[i].text, cases[i].vocab, cases[i].min_freq, folder, &res), &e);
        char mpath[1100];
        snprintf(mpath, sizeof mpath, "%s/merges.txt", folder);
        size_t n;
        char *m = read_all(t, mpath, &n);
        IT_CHECK_STR(m, cases[i].merges);
        it_free(m);
        /* Our loader accepts what we wrote. */
        it_clip_tokenizer *tok = NULL;
        IT_CHECK_OK(it_clip_tokenizer_load(&e, &tok, folder), &e);
        if (tok) {
            it_clip_info info;
            it_clip_tokenizer_info(tok, &info);
            IT_CHECK_INT(info.n_vocab, res.vocab_size);
            IT_CHECK_INT(info.n_merges, res.n_merges);
            IT_CHECK_INT(info.eos, res.vocab_size - 1);
        }
        it_clip_tokenizer_free(tok);
    }
}

/* The committed tiny tokenizer is exactly what the trainer makes from the
 * committed corpus (same options as tools/gen_tokenizer_fixtures.py). */
IT_TEST(text_bpe_reproduces_tiny) {
    it_err e;
    it_err_clear(&e);
    it_bpe_trainer *tr;
    IT_REQUIRE_OK(it_bpe_trainer_new(&e, &tr), &e);
    IT_CHECK_OK(it_bpe_trainer_add_file(&e, tr, it_test_fixture(t, "text/tiny/corpus.txt")), &e);
    it_bpe_options o = {800, 2};
    it_bpe_result res;
    IT_CHECK_OK(it_bpe_trainer_learn(&e, tr, &o, &res), &e);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", it_test_tmp(t, "tiny"));
    IT_CHECK_OK(it_bpe_trainer_save(&e, tr, dir), &e);
    it_bpe_trainer_free(tr);
    static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                        "special_tokens_map.json"};
    for (int i = 0; i < 4; i++) {
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s", dir, files[i]);
        snprintf(b, sizeof b, "text/tiny/tokenizer/%s", files[i]);
        size_t na, nb;
        char *da = read_all(t, a, &na), *db = read_all(t, it_test_fixture(t, b), &nb);
        if (!da || !db || na != nb || memcmp(da, db, na) != 0)
            it_test_fail(t, __FILE__, __LINE__, "%s differs from the committed fixture", files[i]);
        it_free(da);
        it_free(db);
    }
    /* vocab.json can be rebuilt from merges.txt alone. */
    char mp[1200], vp[1200];
    snprintf(mp, sizeof mp, "%s/merges.txt", dir);
    snprintf(vp, sizeof vp, "%s/vocab.json", dir);
    size_t nm, nv, nr;
    char *m = read_all(t, mp, &nm), *v = read_all(t, vp, &nv), *rebuilt = NULL;
    IT_CHECK_OK(it_bpe_vocab_from_merges(&e, &rebuilt, &nr, m, nm), &e);
    IT_CHECK(rebuilt && nr == nv && memcmp(rebuilt, v, nv) == 0);
    it_free(m);
    it_free(v);
    it_free(rebuilt);
}

IT_TEST(text_bpe_errors) {
    it_err e;
    it_err_clear(&e);
    it_bpe_result res;
    IT_CHECK_INT(train(&e, "a", 100, 1, NULL, &res), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "vocab size 100 is below the 514 base tokens");
    IT_CHECK_INT(train(&e, "a", 600, 0, NULL, &res), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "min frequency");
    it_bpe_trainer *tr;
    IT_REQUIRE_OK(it_bpe_trainer_new(&e, &tr), &e);
    IT_CHECK_INT(it_bpe_trainer_save(&e, tr, t->tmpdir), IT_ERR_STATE);
    IT_CHECK_INT(it_bpe_trainer_add_file(&e, tr, "/nonexistent/corpus.txt"), IT_ERR_IO);
    IT_CHECK_CONTAINS(e.msg, "/nonexistent/corpus.txt");
    it_bpe_options o = {600, 1};
    IT_CHECK_OK(it_bpe_trainer_learn(&e, tr, &o, &res), &e);
    IT_CHECK_INT(it_bpe_trainer_learn(&e, tr, &o, &res), IT_ERR_STATE);
    IT_CHECK_INT(it_bpe_trainer_add_text(&e, tr, "x", 1), IT_ERR_STATE);
    it_bpe_trainer_free(tr);
    char *json;
    size_t n;
    IT_CHECK_INT(it_bpe_vocab_from_merges(&e, &json, &n, "ab\n", 3), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "merges.txt line 1");
}

IT_TEST(text_bpe_nomem) {
    const char *text = "a red creature, a blue creature; JUMPING creatures! 3 eyes";
    int done = 0;
    for (long k = 0; k < 500 && !done; k++) {
        it_err e;
        it_err_clear(&e);
        it_bpe_result res;
        it_mem_fail_after(k, 1);
        it_status st = train(&e, text, 600, 1, NULL, &res);
        it_mem_fail_after(-1, 0);
        if (st) IT_CHECK_INT(st, IT_ERR_NOMEM);
        else done = 1;
    }
    IT_CHECK(done);
}

/* The train subcommand writes a folder the tokenize subcommand reads. */
IT_TEST(text_bpe_command) {
    const char *bin = getenv("IT_BIN");
    IT_REQUIRE(bin != NULL);
    const char *corpus = it_test_write_tmp(t, "c.txt", "a red hat\na red hat\na blue hat\n", 31);
    char cmd[8192], out[1024];
    snprintf(out, sizeof out, "%s", it_test_tmp(t, "tok"));
    snprintf(cmd, sizeof cmd, "%s tokenize train -c %s -n 600 -o %s > /dev/null && %s tokenize -t %s 'red hat' > %s",
             bin, corpus, out, bin, out, it_test_tmp(t, "ids.txt"));
    IT_REQUIRE(system(cmd) == 0);
    size_t n;
    char *ids = read_all(t, it_test_tmp(t, "ids.txt"), &n);
    IT_CHECK_CONTAINS(ids, "tokens: <|startoftext|> red</w> hat</w> <|endoftext|>");
    it_free(ids);
    snprintf(cmd, sizeof cmd, "%s tokenize train -c %s -o %s 2>/dev/null", bin, corpus, out);
    IT_CHECK(system(cmd) != 0);
}
