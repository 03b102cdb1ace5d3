/* lora_file.c: libFuzzer harness for the LoRA file loader (kohya and
 * diffusers/PEFT formats, src/train/lora_file.h).
 *
 * Each input is a safetensors file. It is parsed (it_safetensors_parse),
 * loaded unbound (no model) and bound to a tiny model whose modules carry
 * real SD names: a 1x1-conv proj_in, attention linears, a 3x3 resnet conv
 * (LoCon) and text-encoder linears. Findings: crashes, sanitizer reports,
 * it_malloc leaks, a failure without a one-line message naming the source,
 * or an accepted file that breaks the loader's promises:
 *   - every module has rank, in, out, kh, kw > 0 and weights of exactly
 *     (rank, in[, kh, kw]) and (out, rank[, 1, 1]) in one block of n_floats;
 *   - names are kohya names (lora_unet_ / lora_te_), each module once;
 *   - bound modules fit their target's shape, and attach + forward + merge
 *     of every module runs;
 *   - saving what was loaded (f32) and loading it again gives the same
 *     modules with bit-identical weights and alphas. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "tensor/autograd.h"
#include "tensor/safetensors.h"
#include "train/lora.h"
#include "train/lora_file.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) abort();                                                                     \
    } while (0)

static it_params g_unet, g_text;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    it_err err;
    it_params_init(&g_unet, "unet");
    it_params_init(&g_text, "text_encoder");
    const char *blk = "down_blocks.0.attentions.0";
    CHECK(it_lin_conv(&g_unet, 8, 8, 1, 1, 0, "%s.proj_in", blk));
    CHECK(it_lin_linear(&g_unet, 8, 8, 0, "%s.transformer_blocks.0.attn1.to_q", blk));
    CHECK(it_lin_linear(&g_unet, 6, 8, 0, "%s.transformer_blocks.0.attn2.to_k", blk));
    CHECK(it_lin_linear(&g_unet, 8, 16, 1, "%s.transformer_blocks.0.ff.net.0.proj", blk));
    CHECK(it_lin_conv(&g_unet, 8, 8, 3, 1, 1, "down_blocks.0.resnets.0.conv1"));
    CHECK(it_lin_linear(&g_text, 6, 6, 1, "text_model.encoder.layers.0.self_attn.q_proj"));
    CHECK(it_lin_linear(&g_text, 6, 12, 1, "text_model.encoder.layers.0.mlp.fc1"));
    CHECK(it_params_alloc(&err, &g_unet, 0) == IT_OK);
    CHECK(it_params_alloc(&err, &g_text, 0) == IT_OK);
    for (size_t i = 0; i < g_unet.n_floats; i++) g_unet.data[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
    for (size_t i = 0; i < g_text.n_floats; i++) g_text.data[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
    return 0;
}

static void check_failure(const it_err *err)
{
    CHECK(err->msg[0] && !strchr(err->msg, '\n'));
    CHECK(strncmp(err->msg, "fuzz", 4) == 0 || strncmp(err->msg, "lora", 4) == 0);
}

static void check_modules(const it_lora *l, int bound)
{
    CHECK(l->n > 0 && l->data);
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        const it_lora_mod *m = &l->mods[i];
        CHECK(m->rank > 0 && m->in > 0 && m->out > 0 && m->kh > 0 && m->kw > 0);
        CHECK(!strncmp(m->name, "lora_unet_", 10) || !strncmp(m->name, "lora_te_", 8));
        CHECK(m->down.n == m->rank * m->in * m->kh * m->kw && m->up.n == m->out * m->rank);
        CHECK(it_f32(&m->down) == l->data + total);
        total += (size_t)(m->down.n + m->up.n);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(l->mods[j].name, m->name));
        if (!bound) continue;
        const it_tensor *w = m->target->w;
        CHECK(w->shape[0] == m->out && w->shape[1] == m->in);
        CHECK(m->target->conv ? w->shape[2] == m->kh && w->shape[3] == m->kw : m->kh == 1 && m->kw == 1);
    }
    CHECK(total == l->n_floats);
}

/* Save (f32), parse, load unbound: same modules, same bits. */
static void check_round_trip(const it_lora *l)
{
    it_err err;
    it_buf buf;
    it_buf_init(&buf);
    CHECK(it_lora_save_buf(&err, l, &buf, IT_DTYPE_F32, NULL, 0) == IT_OK);
    it_safetensors *f;
    CHECK(it_safetensors_parse(&err, &f, (const uint8_t *)buf.data, buf.len, "rt") == IT_OK);
    it_lora b;
    CHECK(it_lora_load_st(&err, &b, f, NULL, NULL, 0) == IT_OK);
    CHECK(b.n == l->n && b.n_floats == l->n_floats);
    for (size_t i = 0; i < b.n; i++) {
        /* the reload sorts unbound modules by name; find each by name */
        const it_lora_mod *m = NULL;
        for (size_t j = 0; j < l->n && !m; j++)
            if (!strcmp(l->mods[j].name, b.mods[i].name)) m = &l->mods[j];
        CHECK(m && m->rank == b.mods[i].rank && m->in == b.mods[i].in && m->out == b.mods[i].out);
        CHECK(!memcmp(&m->alpha, &b.mods[i].alpha, sizeof m->alpha));
        CHECK(!memcmp(it_f32(&m->down), it_f32(&b.mods[i].down), (size_t)m->down.n * sizeof(float)));
        CHECK(!memcmp(it_f32(&m->up), it_f32(&b.mods[i].up), (size_t)m->up.n * sizeof(float)));
    }
    it_lora_free(&b);
    it_safetensors_close(f);
    it_buf_free(&buf);
}

/* Every module's forward through the hook, then a merge into a copy of the
 * weights (restored after). */
static void exercise_bound(it_lora *l)
{
    it_err err;
    it_ctx ctx;
    it_ctx_init(&ctx, 1 << 16); /* the modules are tiny: a small arena keeps execs fast */
    it_autograd_set_enabled(&ctx, 0);
    it_lora_attach(l);
    float x[8 * 4 * 4];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)(i % 5) - 2.0f;
    for (size_t i = 0; i < l->n; i++) {
        const it_lin *t = l->mods[i].target;
        it_tensor *in = t->conv ? it_tensor_from(&ctx, x, IT_SHAPE(1, l->mods[i].in, 4, 4))
                                : it_tensor_from(&ctx, x, IT_SHAPE(2, l->mods[i].in));
        CHECK(in && it_lin_forward(&ctx, t, in));
        it_ctx_reset(&ctx);
    }
    it_lora_detach(l);
    it_ctx_free(&ctx);
    size_t nu = g_unet.n_floats * sizeof(float), nt = g_text.n_floats * sizeof(float);
    float *su = malloc(nu), *st = malloc(nt);
    CHECK(su && st);
    memcpy(su, g_unet.data, nu), memcpy(st, g_text.data, nt);
    CHECK(it_lora_merge(&err, l) == IT_OK);
    memcpy(g_unet.data, su, nu), memcpy(g_text.data, st, nt);
    free(su), free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t live = it_mem_live_blocks();
    it_err err;
    it_err_clear(&err);
    it_safetensors *f = NULL;
    if (it_safetensors_parse(&err, &f, data, size, "fuzz") != IT_OK) return 0;
    it_lora l;
    if (it_lora_load_st(&err, &l, f, NULL, NULL, 0) == IT_OK) {
        check_modules(&l, 0);
        check_round_trip(&l);
        it_lora_free(&l);
        int trainable = size & 1;
        if (it_lora_load_st(&err, &l, f, &g_unet, &g_text, trainable) == IT_OK) {
            check_modules(&l, 1);
            CHECK(!trainable || l.grad);
            exercise_bound(&l);
            it_lora_free(&l);
        } else {
            check_failure(&err);
        }
    } else {
        check_failure(&err);
    }
    it_safetensors_close(f);
    CHECK(it_mem_live_blocks() == live);
    return 0;
}
