/* LoRA files from memory (it_lora_load_st / it_lora_save_buf, the paths the
 * fuzzer drives): a table of malformed files and their exact messages,
 * including what fuzz/lora_file.c found (a key with a newline made a
 * two-line message), and a save/load round trip in memory. */
#include <string.h>

#include "base/mem.h"
#include "tensor/safetensors.h"
#include "test.h"
#include "train/lora_file.h"

typedef struct tkey {
    const char *name;
    int n_dims;
    int64_t shape[4];
} tkey;

/* A file of the given keys (f32 zeros) parsed as "mem". */
static it_safetensors *make_file(it_test_ctx *t, const tkey *keys, size_t n, it_buf *buf)
{
    it_err err;
    it_safetensors_writer *w = NULL;
    IT_CHECK_OK(it_safetensors_writer_new(&err, &w), &err);
    static const float zeros[256];
    for (size_t i = 0; w && i < n; i++)
        IT_CHECK_OK(it_safetensors_writer_add(&err, w, keys[i].name, IT_DTYPE_F32, keys[i].n_dims, keys[i].shape, zeros),
                    &err);
    it_buf_init(buf);
    IT_CHECK_OK(it_safetensors_writer_to_buf(&err, w, buf), &err);
    it_safetensors_writer_free(w);
    it_safetensors *f = NULL;
    IT_CHECK_OK(it_safetensors_parse(&err, &f, (const uint8_t *)buf->data, buf->len, "mem"), &err);
    return f;
}

IT_TEST(lora_file_malformed_from_memory)
{
    static const struct {
        tkey keys[3];
        size_t n;
        const char *msg;
    } cases[] = {
        {{{"lora_unet_a\n.lora_down.weight", 2, {2, 4}}}, 1, "mem: tensor 0: key has control characters"},
        {{{"lora_unet_a.lora_down.weight", 2, {2, 4}}, {"lora_unet_a.lora_up.weight", 2, {4, 2}},
          {"unet.a.lora_A.weight", 2, {2, 4}}},
         3, "mem: module lora_unet_a appears twice"},
        {{{"lora_unet_a.lora_down.weight", 2, {2, 4}}}, 1, "lora_unet_a.lora_up.weight"},
        {{{"lora_unet_a.lora_down.weight", 3, {2, 4, 1}}, {"lora_unet_a.lora_up.weight", 3, {4, 2, 1}}},
         2, "mem: lora_unet_a: down/up must both be 2-D or 4-D"},
        {{{"lora_unet_a.lora_down.weight", 2, {2, 4}}, {"lora_unet_a.lora_up.weight", 2, {4, 3}}},
         2, "mem: lora_unet_a: up shape does not match rank 2"},
        {{{"lora_unet_a.lora_down.weight", 2, {0, 4}}, {"lora_unet_a.lora_up.weight", 2, {4, 0}}},
         2, "bad shape (rank 0)"},
        {{{"lora_unet_a.lora_down.weight", 2, {2, 4}}, {"lora_unet_a.lora_up.weight", 2, {4, 2}},
          {"lora_unet_a.alpha", 1, {2}}},
         3, "mem: lora_unet_a.alpha: alpha must have one element"},
        {{{"lora_unet_a.weight", 2, {2, 4}}}, 1, "mem: unexpected key lora_unet_a.weight (not a LoRA weight)"},
        {{{"lora_unet_a.alpha", 0, {0}}}, 1, "mem: no LoRA modules"},
    };
    it_err err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t live = it_mem_live_blocks();
        it_buf buf;
        it_safetensors *f = make_file(t, cases[i].keys, cases[i].n, &buf);
        IT_REQUIRE(f);
        it_lora l;
        IT_CHECK(it_lora_load_st(&err, &l, f, NULL, NULL, 0) != IT_OK);
        IT_CHECK_CONTAINS(err.msg, cases[i].msg);
        IT_CHECK(!strchr(err.msg, '\n'));
        it_safetensors_close(f);
        it_buf_free(&buf);
        IT_CHECK_INT(it_mem_live_blocks(), live);
    }
}

IT_TEST(lora_file_round_trip_in_memory)
{
    const tkey keys[] = {{"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", 2, {2, 8}},
                         {"unet.down_blocks.0.attentions.0.proj_in.lora_B.weight", 2, {8, 2}},
                         {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", 2, {1, 6}},
                         {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", 2, {12, 1}},
                         {"lora_te_text_model_encoder_layers_0_mlp_fc1.alpha", 0, {0}}};
    it_err err;
    it_buf buf, out;
    it_safetensors *f = make_file(t, keys, 5, &buf), *g = NULL;
    IT_REQUIRE(f);
    it_lora a, b;
    IT_REQUIRE_OK(it_lora_load_st(&err, &a, f, NULL, NULL, 0), &err);
    IT_REQUIRE(a.n == 2);
    for (size_t i = 0; i < a.n_floats; i++) a.data[i] = (float)i * 0.5f - 3.0f;
    it_buf_init(&out);
    IT_REQUIRE_OK(it_lora_save_buf(&err, &a, &out, IT_DTYPE_F32, NULL, 0), &err);
    IT_REQUIRE_OK(it_safetensors_parse(&err, &g, (const uint8_t *)out.data, out.len, "out"), &err);
    IT_REQUIRE_OK(it_lora_load_st(&err, &b, g, NULL, NULL, 0), &err);
    IT_CHECK(b.n == a.n && b.n_floats == a.n_floats);
    /* PEFT without alpha means scale 1 = alpha rank; saved in kohya form */
    for (size_t i = 0; i < b.n; i++) IT_CHECK(b.mods[i].alpha == a.mods[i].alpha);
    IT_CHECK(!memcmp(a.data, b.data, a.n_floats * sizeof(float)));
    IT_CHECK_STR(b.mods[0].name, "lora_unet_down_blocks_0_attentions_0_proj_in"); /* UNet first */
    IT_CHECK_STR(b.mods[1].name, "lora_te_text_model_encoder_layers_0_mlp_fc1");
    IT_CHECK(a.mods[0].alpha == 2.0f && a.mods[1].alpha == 0.0f);
    it_lora_free(&a);
    it_lora_free(&b);
    it_safetensors_close(f);
    it_safetensors_close(g);
    it_buf_free(&buf);
    it_buf_free(&out);
}
