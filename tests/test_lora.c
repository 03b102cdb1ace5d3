/* LoRA modules and files: kohya's target counts on SD 1.5's shapes, names,
 * save/load round trip, apply == merge, PEFT-format loading, errors. */
#include <math.h>
#include <string.h>

#include "base/mem.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/safetensors.h"
#include "test.h"
#include "train/lora.h"
#include "train/lora_file.h"

IT_TEST(lora_sd15_kohya_target_counts)
{
    it_err err;
    char p[1024];
    it_unet_config uc;
    it_clip_text_config cc;
    snprintf(p, sizeof p, "%s/sd/sd15_manifest/unet/config.json", t->fixtures);
    IT_REQUIRE_OK(it_unet_config_load(&err, &uc, p), &err);
    snprintf(p, sizeof p, "%s/sd/sd15_manifest/text_encoder/config.json", t->fixtures);
    IT_REQUIRE_OK(it_clip_text_config_load(&err, &cc, p), &err);
    it_unet u;
    it_clip_text c;
    IT_REQUIRE_OK(it_unet_init(&err, &u, &uc, IT_MODEL_SHAPES_ONLY), &err);
    IT_REQUIRE_OK(it_clip_text_init(&err, &c, &cc, "text_model.", NULL, IT_MODEL_SHAPES_ONLY), &err);
    it_lora_opts o;
    it_lora_opts_init(&o);
    o.rank = 1;
    o.text = 1;
    it_lora l;
    IT_REQUIRE_OK(it_lora_create(&err, &l, &u.params, &c.params, &o, 1), &err);
    IT_CHECK_INT(it_lora_count(&l, 1), 192);
    IT_CHECK_INT(it_lora_count(&l, 0), 72);
    IT_CHECK_STR(l.mods[0].name, "lora_unet_down_blocks_0_attentions_0_proj_in");
    IT_CHECK_INT(l.mods[0].down.ndim, 4); /* SD 1.5 proj_in is a 1x1 conv */
    IT_CHECK_STR(l.mods[192].name, "lora_te_text_model_encoder_layers_0_self_attn_q_proj");
    IT_CHECK_NEAR(it_lora_mod_scale(&l.mods[0]), 8.0, 1e-6); /* alpha 8 / rank 1 */
    it_lora_free(&l);
    /* LoCon adds the resnets' 3x3 convs (own rank), their time projections
     * and shortcuts, and the down/upsamplers. */
    o.conv_rank = 2;
    o.text = 0;
    IT_REQUIRE_OK(it_lora_create(&err, &l, &u.params, NULL, &o, 1), &err);
    size_t n3 = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.mods[i].kh == 3) {
            n3++;
            IT_CHECK_INT(l.mods[i].rank, 2);
        }
    IT_CHECK_INT(n3, 22 * 2 + 3 + 3); /* 22 resnets x conv1/conv2, 3 down- and 3 upsamplers */
    IT_CHECK_INT(l.n, 192 + n3 + 22 + 14); /* + 22 time_emb_proj + 14 conv_shortcuts (2 down, 12 up) */
    it_lora_free(&l);
    it_unet_free(&u);
    it_clip_text_free(&c);
}

static it_tensor *unet_probe(it_ctx *ctx, it_sd_model *m)
{
    float s[256], c[77 * 32];
    for (int i = 0; i < 256; i++) s[i] = sinf(0.37f * i);
    for (int i = 0; i < 77 * 32; i++) c[i] = cosf(0.11f * i);
    float tt = 321;
    return it_unet_forward(ctx, &m->unet, it_tensor_from(ctx, s, IT_SHAPE(1, 4, 8, 8)),
                           it_tensor_from(ctx, &tt, IT_SHAPE(1)), it_tensor_from(ctx, c, IT_SHAPE(1, 77, 32)));
}

IT_TEST(lora_save_load_apply_merge)
{
    it_err err;
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    so.components = IT_SD_UNET | IT_SD_TEXT;
    IT_REQUIRE_OK(it_sd_load(&err, &m, it_test_fixture(t, "sd/sd1"), &so), &err);
    it_lora_opts o;
    it_lora_opts_init(&o);
    o.rank = 4, o.alpha = 2, o.text = 1, o.conv_rank = 2;
    it_lora l;
    IT_REQUIRE_OK(it_lora_create(&err, &l, &m.unet.params, &m.text.params, &o, 5), &err);
    for (size_t i = 0; i < l.n; i++) /* non-zero up so the LoRA does something */
        for (int64_t j = 0; j < l.mods[i].up.n; j++) it_f32(&l.mods[i].up)[j] = 0.05f * sinf((float)(i * 7 + j));
    const char *path = it_test_tmp(t, "a.safetensors");
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", path);
    it_lora_meta meta[] = {{"ss_base_model_version", "sd_v1"}};
    IT_REQUIRE_OK(it_lora_save(&err, &l, saved, IT_DTYPE_F32, meta, 1), &err);
    it_safetensors *f = NULL;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, saved), &err);
    IT_CHECK_STR(it_safetensors_metadata_get(f, "ss_network_dim"), "4");
    IT_CHECK_STR(it_safetensors_metadata_get(f, "ss_network_alpha"), "2");
    IT_CHECK_STR(it_safetensors_metadata_get(f, "ss_base_model_version"), "sd_v1");
    IT_CHECK(it_safetensors_find(f, "lora_unet_down_blocks_0_attentions_0_proj_in.alpha") != NULL);
    IT_CHECK(it_safetensors_find(f, "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight") != NULL);
    it_safetensors_close(f);
    it_lora back;
    IT_REQUIRE_OK(it_lora_load(&err, &back, saved, &m.unet.params, &m.text.params, 0), &err);
    IT_CHECK_INT(back.n, l.n);
    IT_CHECK_INT(back.n_floats, l.n_floats);
    IT_CHECK(!memcmp(back.data, l.data, l.n_floats * sizeof(float)));
    for (size_t i = 0; i < l.n; i++) IT_CHECK(back.mods[i].target == l.mods[i].target && back.mods[i].alpha == l.mods[i].alpha);
    it_lora_free(&l);

    /* apply (hook) with multiplier 0.7 == merged weights */
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    it_tensor *base = unet_probe(&ctx, &m);
    back.multiplier = 0.7f;
    it_lora_attach(&back);
    it_tensor *hooked = unet_probe(&ctx, &m);
    it_lora_detach(&back);
    IT_REQUIRE_OK(it_lora_merge(&err, &back), &err);
    it_tensor *merged = unet_probe(&ctx, &m);
    IT_REQUIRE(base && hooked && merged);
    double effect = it_test_max_abs_diff(it_f32(base), it_f32(hooked), (size_t)base->n);
    double diff = it_test_max_abs_diff(it_f32(hooked), it_f32(merged), (size_t)base->n);
    IT_CHECK(effect > 1e-3);
    IT_CHECK(diff < 1e-5 * effect + 1e-6);
    it_lora_free(&back);
    it_ctx_free(&ctx);
    it_sd_free(&m);
}

/* A PEFT/diffusers-format file (lora_A/lora_B, prefixes unet. / text_encoder.)
 * binds to the same modules; a module the model lacks is a clear error. */
IT_TEST(lora_peft_format_and_errors)
{
    it_err err;
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    so.components = IT_SD_UNET | IT_SD_TEXT;
    IT_REQUIRE_OK(it_sd_load(&err, &m, it_test_fixture(t, "sd/sd1"), &so), &err);
    float a[2 * 8], b[8 * 2], c[2 * 32], d[32 * 2];
    for (int i = 0; i < 16; i++) a[i] = b[i] = 0.1f * i;
    for (int i = 0; i < 64; i++) c[i] = d[i] = 0.01f * i;
    it_safetensors_writer *w = NULL;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    it_safetensors_writer_add(&err, w, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight", IT_DTYPE_F32, IT_SHAPE(2, 8), a);
    it_safetensors_writer_add(&err, w, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight", IT_DTYPE_F32, IT_SHAPE(8, 2), b);
    it_safetensors_writer_add(&err, w, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", IT_DTYPE_F32, IT_SHAPE(2, 32), c);
    it_safetensors_writer_add(&err, w, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", IT_DTYPE_F32, IT_SHAPE(32, 2), d);
    char path[1024];
    snprintf(path, sizeof path, "%s", it_test_tmp(t, "peft.safetensors"));
    IT_REQUIRE_OK(it_safetensors_writer_save(&err, w, path), &err);
    it_safetensors_writer_free(w);
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, path, &m.unet.params, &m.text.params, 0), &err);
    IT_CHECK_INT(l.n, 2);
    IT_CHECK_INT(it_lora_count(&l, 1), 1);
    IT_CHECK_NEAR(it_lora_mod_scale(&l.mods[0]), 1.0, 0); /* no alpha: PEFT's alpha = r */
    IT_CHECK(l.mods[0].target == it_params_find_module(&m.unet.params, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"));
    it_lora_free(&l);

    /* wrong shape, unknown module, foreign key, empty file */
    struct { const char *key; int64_t r, in; const char *msg; } bad[] = {
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 2, 9, "does not fit module"},
        {"lora_unet_down_blocks_7_attentions_0_proj_in", 2, 8, "no such module in the UNet"},
        {"model.diffusion_model.x.weight", 2, 8, "unexpected key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char k1[256], k2[256];
        IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
        snprintf(k1, sizeof k1, "%s.lora_down.weight", bad[i].key);
        snprintf(k2, sizeof k2, "%s.lora_up.weight", bad[i].key);
        float z[64] = {0};
        if (i == 2) it_safetensors_writer_add(&err, w, bad[i].key, IT_DTYPE_F32, IT_SHAPE(2, 8), z);
        else {
            it_safetensors_writer_add(&err, w, k1, IT_DTYPE_F32, IT_SHAPE(bad[i].r, bad[i].in), z);
            it_safetensors_writer_add(&err, w, k2, IT_DTYPE_F32, IT_SHAPE(8, bad[i].r), z);
        }
        IT_REQUIRE_OK(it_safetensors_writer_save(&err, w, path), &err);
        it_safetensors_writer_free(w);
        IT_CHECK(it_lora_load(&err, &l, path, &m.unet.params, &m.text.params, 0) != IT_OK);
        IT_CHECK_CONTAINS(err.msg, bad[i].msg);
    }
    it_sd_free(&m);
}
