/* toy_recipe_dump.c: dumps renders and tokenised captions of the toy world
 * for the PyTorch recipe exploration (tools/toy_recipe_clip.py,
 * tools/toy_recipe_vae.py; docs/TOYWORLD.md, CLIP and VAE). Not part of the
 * product or the tests (not built by the Makefile); build it by hand after
 * `make`:
 *
 *   cc -O2 -std=c11 -Isrc -fopenmp -o build/toy_recipe_dump tools/toy_recipe_dump.c \
 *      build/libintenttuner.a -lopenblas -ljansson -lpng -ljpeg -lwebp -lwebpdemux \
 *      -lcurl -lmicrohttpd -lsqlite3 -lpthread -lm
 *
 * Usage: toy_recipe_dump TOKDIR PREFIX SEED N K MODE [print]
 *   MODE train: K captions per image drawn as the CLIP pretraining draws
 *               them with p_long -1 (variant 0 is exactly training's);
 *        long:  K long captions per image (names on 70 %);
 *        eval:  the long caption of `toy quality clip` (variant 0, name),
 *               and prints the oracle top-1 (renders matching every stated
 *               attribute) among the N renders.
 * Writes PREFIX.img (N,128,128,3) uint8, PREFIX.attr (N,18) int8 (the 17
 * attributes, then the character, -1 = none), PREFIX.ids (N,K,77) uint16
 * token ids, PREFIX.ment (N,K) uint32 mention bits. Renders are purpose
 * pretrain (held-out characters and pose refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "text/clip_tokenizer.h"
#include "toy/captions.h"
#include "toy/creature.h"
#include "toy/toydraw.h"

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* As caption_of in src/toy/toyclip.c with p_long -1; k > 0 salts the draw. */
static it_status cap_train(it_err *e, it_toy_caption *cap, const it_toy_attrs *a, uint64_t seed, uint64_t index, int k)
{
    it_rng r;
    it_rng_init(&r, mix64(seed ^ mix64(index + 0xC1A9ull + (uint64_t)k * 0x100000001ull)));
    int style = (int)it_rng_below(&r, 3);
    int with_name = it_rng_float(&r) < 0.7f;
    int variant = (int)it_rng_below(&r, 1 << 20);
    return it_toy_caption_make(e, cap, a, (it_toy_caption_style)style, with_name, 0, seed, index, variant);
}

static int fail(const it_err *e)
{
    fprintf(stderr, "toy_recipe_dump: %s\n", e->msg);
    return 1;
}

static FILE *open_out(const char *prefix, const char *ext)
{
    char p[1024];
    snprintf(p, sizeof p, "%s.%s", prefix, ext);
    FILE *f = fopen(p, "wb");
    if (!f) fprintf(stderr, "toy_recipe_dump: cannot write %s\n", p);
    return f;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: toy_recipe_dump TOKDIR PREFIX SEED N K train|long|eval [print]\n");
        return 2;
    }
    const char *prefix = argv[2];
    uint64_t seed = strtoull(argv[3], NULL, 10);
    int N = atoi(argv[4]), K = atoi(argv[5]), S = 128;
    int eval = !strcmp(argv[6], "eval"), lng = !strcmp(argv[6], "long"), print = argc > 7;
    if (N < 1 || K < 1) return 2;
    it_err e;
    it_clip_tokenizer *tok = NULL;
    if (it_clip_tokenizer_load(&e, &tok, argv[1])) return fail(&e);
    uint8_t *rgb = malloc((size_t)N * S * S * 3);
    it_toy_attrs *at = malloc((size_t)N * sizeof *at);
    uint32_t *ment = malloc((size_t)N * K * sizeof *ment);
    if (!rgb || !at || !ment) return 1;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    if (it_toy_render_batch(&e, S, S, &c, seed, 0, N, IT_TOY_PRETRAIN, rgb, at, NULL)) return fail(&e);
    FILE *fi = open_out(prefix, "img"), *fa = open_out(prefix, "attr"), *fd = open_out(prefix, "ids"),
         *fm = open_out(prefix, "ment");
    if (!fi || !fa || !fd || !fm) return 1;
    fwrite(rgb, 1, (size_t)N * S * S * 3, fi);
    for (int i = 0; i < N; i++) {
        signed char b[IT_TOY_N_ATTRS + 1];
        for (int a = 0; a < IT_TOY_N_ATTRS; a++) b[a] = (signed char)at[i].v[a];
        b[IT_TOY_N_ATTRS] = (signed char)at[i].character;
        fwrite(b, 1, sizeof b, fa);
    }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            it_toy_caption cap;
            int with_name = ((mix64((uint64_t)i * 31 + (uint64_t)k) >> 7) % 10) < 7;
            it_status st = lng    ? it_toy_caption_make(&e, &cap, &at[i], IT_TOY_CAP_LONG, with_name, 0, seed,
                                                        (uint64_t)i, k + 100)
                           : eval ? it_toy_caption_make(&e, &cap, &at[i], IT_TOY_CAP_LONG, 1, 0, seed, (uint64_t)i, k)
                                  : cap_train(&e, &cap, &at[i], seed, (uint64_t)i, k);
            if (st) return fail(&e);
            int32_t ids[77];
            int n_valid = 0;
            if (it_clip_encode_padded(&e, tok, ids, 77, &n_valid, cap.text, strlen(cap.text))) return fail(&e);
            uint16_t u[77];
            for (int t = 0; t < 77; t++) u[t] = (uint16_t)ids[t];
            fwrite(u, 2, 77, fd);
            fwrite(&cap.mentioned, 4, 1, fm);
            ment[(size_t)i * K + k] = cap.mentioned;
            if (print && i < 12 && k == 0) {
                printf("[%d] %s\n    truth:", i, cap.text);
                for (int a = 0; a < IT_TOY_N_ATTRS; a++) printf(" %s", it_toy_value_name(a, at[i].v[a]));
                printf(" character=%d\n", at[i].character);
            }
        }
    fclose(fi), fclose(fa), fclose(fd), fclose(fm);
    if (eval) { /* the best any model can do: 1 / renders matching every stated attribute */
        double o = 0;
        for (int i = 0; i < N; i++) {
            uint32_t m = ment[(size_t)i * K];
            int cnt = 0;
            for (int j = 0; j < N; j++) {
                int ok = 1;
                for (int a = 0; a < IT_TOY_N_ATTRS && ok; a++)
                    if (m & (1u << a)) ok = at[j].v[a] == at[i].v[a];
                if (ok && (m & IT_TOY_MENTION_CHARACTER)) ok = at[j].character == at[i].character;
                cnt += ok;
            }
            o += 1.0 / cnt;
        }
        printf("oracle text-to-image top-1 (long captions, variant 0) among %d renders: %.3f\n", N, o / N);
    }
    it_clip_tokenizer_free(tok);
    free(rgb), free(at), free(ment);
    return 0;
}
