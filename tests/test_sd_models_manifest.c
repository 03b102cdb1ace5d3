/* test_sd_models_manifest.c: our loader's key names and shapes are exactly
 * those of full-size SD 1.5, in the diffusers layout and (through the LDM
 * key map) in the original single-file layout. The manifest (names and
 * shapes only) comes from diffusers models instantiated on the meta device
 * with SD 1.5's published configs (tools/gen_sd_fixtures.py); the models are
 * built here with IT_MODEL_SHAPES_ONLY, so no weight memory is touched. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "models/clip_text.h"
#include "models/sd_keys.h"
#include "models/unet.h"
#include "models/vae.h"
#include "test.h"

/* Every (name, shape) of list must be a parameter of ps (mapped through map
 * when given) with that shape, and ps must have no other parameter. */
static void compare(it_test_ctx *t, const it_params *ps, json_t *list, it_key_map_fn map, void *user,
                    size_t *n_matched)
{
    size_t n = json_array_size(list), hits = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const it_tensor *p = ps->items[i];
        it_key_src src;
        memset(&src, 0, sizeof src);
        if (map) IT_REQUIRE(map(user, p->name, &src));
        else snprintf(src.key, sizeof src.key, "%s", p->name);
        json_t *e = NULL;
        for (size_t j = 0; j < n && !e; j++)
            if (!strcmp(json_string_value(json_array_get(json_array_get(list, j), 0)), src.key))
                e = json_array_get(list, j);
        if (!e) {
            it_test_fail(t, __FILE__, __LINE__, "%s: %s (-> %s) not in the manifest", ps->label, p->name, src.key);
            continue;
        }
        json_t *shape = json_array_get(e, 1);
        /* LDM VAE attention weights are 1x1 convs: compare after the squeeze. */
        int nd = (int)json_array_size(shape);
        if (src.xform == IT_XFORM_SQUEEZE)
            while (nd > 2 && json_integer_value(json_array_get(shape, (size_t)nd - 1)) == 1) nd--;
        int ok = nd == p->ndim;
        for (int d = 0; ok && d < nd; d++) ok = json_integer_value(json_array_get(shape, (size_t)d)) == p->shape[d];
        if (!ok) it_test_fail(t, __FILE__, __LINE__, "%s: %s: shape differs from the manifest", ps->label, src.key);
        hits++;
    }
    *n_matched += hits;
}

static size_t count_prefix(json_t *list, const char *prefix)
{
    size_t n = 0;
    for (size_t j = 0; j < json_array_size(list); j++)
        n += !strncmp(json_string_value(json_array_get(json_array_get(list, j), 0)), prefix, strlen(prefix));
    return n;
}

IT_TEST(sd_models_sd15_manifest_both_layouts)
{
    char p[1024];
    it_err err;
    snprintf(p, sizeof p, "%s/sd/sd15_manifest/manifest.json", t->fixtures);
    json_error_t je;
    json_t *man = json_load_file(p, 0, &je);
    IT_REQUIRE(man);
    it_unet_config uc;
    it_vae_config vc;
    it_clip_text_config cc;
    snprintf(p, sizeof p, "%s/sd/sd15_manifest/unet/config.json", t->fixtures);
    IT_REQUIRE_OK(it_unet_config_load(&err, &uc, p), &err);
    snprintf(p, sizeof p, "%s/sd/sd15_manifest/vae/config.json", t->fixtures);
    IT_REQUIRE_OK(it_vae_config_load(&err, &vc, p), &err);
    snprintf(p, sizeof p, "%s/sd/sd15_manifest/text_encoder/config.json", t->fixtures);
    IT_REQUIRE_OK(it_clip_text_config_load(&err, &cc, p), &err);
    /* The configs read are SD 1.5's. */
    it_unet_config ref;
    it_unet_config_sd15(&ref);
    IT_CHECK(!memcmp(&uc, &ref, sizeof uc));
    IT_CHECK_INT(vc.block_out[3], 512);
    IT_CHECK_INT(cc.hidden, 768);

    it_unet u;
    it_vae v;
    it_clip_text c;
    IT_REQUIRE_OK(it_unet_init(&err, &u, &uc, IT_MODEL_SHAPES_ONLY), &err);
    IT_REQUIRE_OK(it_vae_init(&err, &v, &vc, IT_MODEL_SHAPES_ONLY), &err);
    IT_REQUIRE_OK(it_clip_text_init(&err, &c, &cc, "text_model.", NULL, IT_MODEL_SHAPES_ONLY), &err);
    IT_CHECK_INT(it_params_numel(&u.params), 859520964);  /* SD 1.5 UNet parameters */

    /* SD 1.5's tensor counts (diffusers layout) and its single file's. */
    IT_CHECK_INT(json_array_size(json_object_get(man, "unet")), 686);
    IT_CHECK_INT(json_array_size(json_object_get(man, "vae")), 248);
    IT_CHECK_INT(json_array_size(json_object_get(man, "text_encoder")), 196);
    IT_CHECK_INT(json_array_size(json_object_get(man, "ldm")), 1130);
    size_t hits = 0;
    compare(t, &u.params, json_object_get(man, "unet"), NULL, NULL, &hits);
    IT_CHECK_INT(hits, json_array_size(json_object_get(man, "unet")));
    hits = 0;
    compare(t, &v.params, json_object_get(man, "vae"), NULL, NULL, &hits);
    IT_CHECK_INT(hits, json_array_size(json_object_get(man, "vae")));
    hits = 0;
    compare(t, &c.params, json_object_get(man, "text_encoder"), NULL, NULL, &hits);
    IT_CHECK_INT(hits, json_array_size(json_object_get(man, "text_encoder")));

    /* LDM layout: every one of our names maps onto a manifest key, and the
     * counts match per component, so the map is a bijection. */
    json_t *ldm = json_object_get(man, "ldm");
    it_ldm_map map;
    memset(&map, 0, sizeof map);
    map.unet = &u.cfg;
    map.vae = &v.cfg;
    map.det.text = IT_SD_TEXT_CLIP_L;
    map.det.clip_has_text_model = 1;
    map.text_prefix = "text_model.";
    hits = 0;
    compare(t, &u.params, ldm, it_ldm_map_unet, &map, &hits);
    IT_CHECK_INT(hits, count_prefix(ldm, IT_LDM_UNET_PREFIX));
    hits = 0;
    compare(t, &v.params, ldm, it_ldm_map_vae, &map, &hits);
    IT_CHECK_INT(hits, count_prefix(ldm, IT_LDM_VAE_PREFIX));
    hits = 0;
    compare(t, &c.params, ldm, it_ldm_map_text, &map, &hits);
    IT_CHECK_INT(hits, count_prefix(ldm, IT_LDM_CLIP_PREFIX));
    IT_CHECK_INT(json_array_size(ldm), count_prefix(ldm, IT_LDM_UNET_PREFIX) + count_prefix(ldm, IT_LDM_VAE_PREFIX) +
                                           count_prefix(ldm, IT_LDM_CLIP_PREFIX));
    it_unet_free(&u);
    it_vae_free(&v);
    it_clip_text_free(&c);
    json_decref(man);
}
