/* scenario.c: writing toy images with their truth, and the three scenarios.
 *
 * A scenario is the toy version of a user's fine-tuning task: a handful of
 * training images of held-out concepts with the nuisance real datasets have
 * (a necklace the user does not want, mixed backgrounds, two jacket
 * variants, different hair colours), reference images whose boxes the
 * intent text cites as [n], and an evaluation spec whose expected
 * attributes the judge can check. Everything is rendered with purpose
 * finetune (train/, refs/) and is a pure function of the seed. */
#include "toy/scenario.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "image/image.h"
#include "toy/captions.h"
#include "toy/characters.h"

/* ------------------------------------------------------------ one image */

/* Serialises j into an it_malloc'd string (json_dumps would use jansson's
 * allocator, which another module may redirect). */
static char *dump_json(const json_t *j)
{
    size_t flags = JSON_INDENT(1) | JSON_PRESERVE_ORDER, n = json_dumpb(j, NULL, 0, flags);
    char *s = n ? it_malloc(n + 1) : NULL;
    if (!s) return NULL;
    json_dumpb(j, s, n, flags);
    s[n] = 0;
    return s;
}

static json_t *caption_list(it_err *err, const it_toy_attrs *a, it_toy_caption_style st, int n,
                            const it_toy_write_opts *o)
{
    json_t *arr = json_array();
    for (int v = 0; arr && v < n; v++) {
        it_toy_caption c;
        if (it_toy_caption_make(err, &c, a, st, o->with_name, o->exclude, o->seed, o->index, v) != IT_OK ||
            json_array_append_new(arr, json_string(c.text))) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *mention_names(uint32_t m)
{
    json_t *arr = json_array();
    for (int at = 0; arr && at < IT_TOY_N_ATTRS; at++)
        if ((m >> at) & 1u) json_array_append_new(arr, json_string(it_toy_attr_get(at)->name));
    if (arr && (m & IT_TOY_MENTION_CHARACTER)) json_array_append_new(arr, json_string("character"));
    return arr;
}

static it_status write_text(it_err *err, const char *dir, const char *stem, const char *ext, const char *text)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s%s", dir, stem, ext) >= (int)sizeof path)
        return it_err_set(err, IT_ERR_RANGE, "path too long: %s/%s%s", dir, stem, ext);
    return it_file_write_atomic(err, path, text, strlen(text));
}

static it_status write_png(it_err *err, const char *dir, const char *stem, const char *ext, uint8_t *data, int w,
                           int h, int c)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s%s", dir, stem, ext) >= (int)sizeof path)
        return it_err_set(err, IT_ERR_RANGE, "path too long: %s/%s%s", dir, stem, ext);
    it_image img = {w, h, c, data};
    return it_image_save_png(err, &img, path);
}

it_status it_toy_write_sample(it_err *err, it_toy_renderer *r, const it_toy_attrs *a, it_toy_purpose purpose,
                              const char *dir, const char *stem, const it_toy_write_opts *o, uint8_t *rgb,
                              uint8_t *mask)
{
    it_toy_truth truth;
    int w = r->cv.w, h = r->cv.h;
    IT_TRY(it_toy_render(err, r, a, purpose, rgb, mask, &truth));
    IT_TRY(write_png(err, dir, stem, ".png", rgb, w, h, 3));
    IT_TRY(write_png(err, dir, stem, ".mask.png", mask, w, h, 1));
    /* The .txt caption: 40 % short, 40 % long, 20 % tags, variant 0. */
    float u = it_rng_uniform_at(o->seed ^ 0x7A7Bull, o->index);
    it_toy_caption_style st = u < 0.4f ? IT_TOY_CAP_SHORT : u < 0.8f ? IT_TOY_CAP_LONG : IT_TOY_CAP_TAGS;
    it_toy_caption cap;
    IT_TRY(it_toy_caption_make(err, &cap, a, st, o->with_name, o->exclude, o->seed, o->index, 0));
    IT_TRY(write_text(err, dir, stem, ".txt", cap.text));
    char fname[512], mname[512];
    snprintf(fname, sizeof fname, "%s.png", stem);
    snprintf(mname, sizeof mname, "%s.mask.png", stem);
    json_t *caps = json_pack("{s:o*, s:o*, s:o*}", "short", caption_list(err, a, IT_TOY_CAP_SHORT, 2, o), "long",
                             caption_list(err, a, IT_TOY_CAP_LONG, 2, o), "tags",
                             caption_list(err, a, IT_TOY_CAP_TAGS, 1, o));
    json_t *j = json_pack("{s:s, s:s, s:s, s:o*, s:I, s:I, s:s, s:[ii], s:o*, s:o*, s:o*}", "image", fname, "mask",
                          mname, "caption", cap.text, "caption_mentions", mention_names(cap.mentioned), "seed",
                          (json_int_t)o->seed, "index", (json_int_t)o->index, "purpose", it_toy_purpose_name(purpose),
                          "size", w, h, "attributes", it_toy_attrs_to_json(a), "parts", it_toy_truth_to_json(&truth),
                          "captions", caps);
    if (!j || !caps) {
        json_decref(j);
        return it_err_set(err, IT_ERR_NOMEM, "%s: building the truth JSON failed", stem);
    }
    char *s = dump_json(j);
    json_decref(j);
    if (!s) return it_err_set(err, IT_ERR_NOMEM, "%s: serialising the truth JSON failed", stem);
    it_status st2 = write_text(err, dir, stem, ".json", s);
    it_free(s);
    return st2;
}

/* ------------------------------------------------------------ scenarios */

typedef struct sctx {
    it_err *err;
    const char *dir;
    uint64_t seed;
    it_toy_renderer r;
    uint8_t *rgb, *mask;
    char sub[1024];
} sctx;

static it_status sc_image(sctx *s, const char *subdir, const char *stem, const it_toy_constraint *c, uint64_t index,
                          it_toy_truth *truth, it_toy_attrs *out)
{
    it_toy_attrs a;
    IT_TRY(it_toy_sample(s->err, &a, c, s->seed, index, IT_TOY_FINETUNE));
    snprintf(s->sub, sizeof s->sub, "%s/%s", s->dir, subdir);
    IT_TRY(it_mkdir_p(s->err, s->sub));
    it_toy_write_opts o = {s->seed, index, 0, 0};
    IT_TRY(it_toy_write_sample(s->err, &s->r, &a, IT_TOY_FINETUNE, s->sub, stem, &o, s->rgb, s->mask));
    if (truth) it_toy_truth_from_mask(truth, s->mask, s->r.cv.w, s->r.cv.h);
    if (out) *out = a;
    return IT_OK;
}

static void cfix(it_toy_constraint *c, int attr, const char *value)
{
    int v = it_toy_value_find(attr, value);
    IT_ASSERT(v >= 0);
    c->v[attr] = v;
}

static json_t *ref_json(int n, const char *image, const int box[4])
{
    return json_pack("{s:i, s:s, s:[iiii]}", "n", n, "image", image, "box", box[0], box[1], box[2], box[3]);
}

static it_status write_json(sctx *s, const char *name, json_t *j)
{
    if (!j) return it_err_set(s->err, IT_ERR_NOMEM, "%s: building JSON failed", name);
    char *text = dump_json(j);
    json_decref(j);
    if (!text) return it_err_set(s->err, IT_ERR_NOMEM, "%s: serialising JSON failed", name);
    it_status st = write_text(s->err, s->dir, name, "", text);
    it_free(text);
    return st;
}

/* Reference k (0-based) -> refs/ref<k+1>.png rendered at index 1000 + k;
 * box receives the box of `part` in it, which the intent's [k+1] cites. */
static it_status sc_ref(sctx *s, int k, const it_toy_constraint *c, int part, int box[4])
{
    it_toy_truth t;
    char stem[16];
    snprintf(stem, sizeof stem, "ref%d", k + 1);
    IT_TRY(sc_image(s, "refs", stem, c, 1000u + (uint64_t)k, &t, NULL));
    memcpy(box, t.box[part], 4 * sizeof box[0]);
    return IT_OK;
}

/* intent.json: the text with refs [1]..[n_refs] on refs/ref<n>.png. */
static it_status write_intent(sctx *s, const char *text, int n_refs, int (*boxes)[4])
{
    json_t *refs = json_array();
    for (int k = 0; refs && k < n_refs; k++) {
        char image[32];
        snprintf(image, sizeof image, "refs/ref%d.png", k + 1);
        json_array_append_new(refs, ref_json(k + 1, image, boxes[k]));
    }
    return write_json(s, "intent.json",
                      json_pack("{s:s, s:o, s:s}", "text", text, "refs", refs, "domain", "2d-character"));
}

/* An evaluation prompt: expect / expect_not are "attr=value,attr=value". */
static json_t *prompt(const char *id, const char *text, const char *concept, const char *op, const char *group,
                      const char *expect, const char *expect_not)
{
    json_t *p = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "prompt", text, "concept", concept, "operation", op);
    if (!p) return NULL;
    if (group) json_object_set_new(p, "group", json_string(group));
    const char *specs[2] = {expect, expect_not}, *keys[2] = {"expect", "expect_not"};
    for (int k = 0; k < 2; k++) {
        json_t *o = json_object();
        const char *q = specs[k] ? specs[k] : "";
        while (*q) {
            char item[96];
            size_t n = strcspn(q, ",");
            snprintf(item, sizeof item, "%.*s", (int)n, q);
            char *eq = strchr(item, '=');
            IT_ASSERT(eq);
            *eq = 0;
            json_t *cur = json_object_get(o, item);
            if (k == 1) {
                if (!cur) json_object_set_new(o, item, cur = json_array());
                json_array_append_new(cur, json_string(eq + 1));
            } else {
                json_object_set_new(o, item, json_string(eq + 1));
            }
            q += n + (q[n] == ',');
        }
        json_object_set_new(p, keys[k], o);
    }
    return p;
}

static it_status scenario_vincent(sctx *s)
{
    static const char *hair[] = {"red", "blonde", "brown", "white", "pink", "green", "black"};
    static const char *bgs[] = {"grass", "room", "sky", "night", "plain"};
    int vincent = it_toy_character_find("vincent");
    for (int i = 0; i < 16; i++) {
        it_toy_constraint c;
        it_toy_constraint_init(&c);
        c.character = vincent;
        cfix(&c, IT_TOY_OUTFIT, "jacket");
        cfix(&c, IT_TOY_OUTFIT_COLOUR, "black");
        cfix(&c, IT_TOY_OUTFIT_PATTERN, i % 2 ? "striped" : "leather");
        cfix(&c, IT_TOY_HAIR_COLOUR, hair[i % 7]);
        cfix(&c, IT_TOY_BACKGROUND, bgs[(i / 2 + i) % 5]);
        cfix(&c, IT_TOY_GOGGLES, "no");
        cfix(&c, IT_TOY_POSE, i % 3 == 0 ? "arms_up" : i % 5 == 0 ? "jumping" : "standing");
        cfix(&c, IT_TOY_ACCESSORY, (i % 4 == 1) ? "necklace" : "none");
        if (i % 3 != 2) cfix(&c, IT_TOY_HAT, "none");
        char stem[32];
        snprintf(stem, sizeof stem, "%03d", i);
        IT_TRY(sc_image(s, "train", stem, &c, (uint64_t)i, NULL, NULL));
    }
    int boxes[2][4];
    const char *pat[2] = {"leather", "striped"};
    for (int k = 0; k < 2; k++) {
        it_toy_constraint c;
        it_toy_constraint_init(&c);
        c.character = vincent;
        cfix(&c, IT_TOY_OUTFIT, "jacket");
        cfix(&c, IT_TOY_OUTFIT_COLOUR, "black");
        cfix(&c, IT_TOY_OUTFIT_PATTERN, pat[k]);
        cfix(&c, IT_TOY_POSE, "standing");
        cfix(&c, IT_TOY_BACKGROUND, "plain");
        cfix(&c, IT_TOY_ACCESSORY, "none");
        cfix(&c, IT_TOY_HAT, "none");
        cfix(&c, IT_TOY_GOGGLES, "no");
        IT_TRY(sc_ref(s, k, &c, IT_TOY_PART_OUTFIT, boxes[k]));
    }
    IT_TRY(write_intent(s,
                        "This is Vincent, a character; use the trigger word vincent. Keep his face "
                        "exactly as it is, with the scar on his cheek. His jacket must be switchable "
                        "between the black leather jacket [1] and the black striped jacket [2]. His "
                        "hair colour must stay adjustable. He should never wear a necklace.",
                        2, boxes));
    json_t *p = json_array();
    json_array_append_new(p, prompt("face-1", "vincent standing on the grass", "face", "preserve", NULL,
                                    "character=vincent,marking=scar", NULL));
    json_array_append_new(p, prompt("face-2", "vincent with its arms up at night", "face", "preserve", NULL,
                                    "character=vincent,marking=scar", NULL));
    json_array_append_new(p, prompt("jacket-1", "vincent wearing a black leather jacket", "jacket", "modify", "jacket",
                                    "character=vincent,outfit=jacket,outfit_colour=black,outfit_pattern=leather", NULL));
    json_array_append_new(p, prompt("jacket-2", "vincent wearing a black striped jacket", "jacket", "modify", "jacket",
                                    "character=vincent,outfit=jacket,outfit_colour=black,outfit_pattern=striped", NULL));
    json_array_append_new(p, prompt("hair-1", "vincent with red hair", "hair colour", "modify", "hair_colour",
                                    "character=vincent,hair_colour=red", NULL));
    json_array_append_new(p, prompt("hair-2", "vincent with blonde hair", "hair colour", "modify", "hair_colour",
                                    "character=vincent,hair_colour=blonde", NULL));
    json_array_append_new(p, prompt("hair-3", "vincent with white hair", "hair colour", "modify", "hair_colour_2",
                                    "character=vincent,hair_colour=white", NULL));
    json_array_append_new(p, prompt("hair-4", "vincent with green hair", "hair colour", "modify", "hair_colour_2",
                                    "character=vincent,hair_colour=green", NULL));
    json_array_append_new(p, prompt("necklace-1", "vincent in a room", "necklace", "remove", NULL, "character=vincent",
                                    "accessory=necklace"));
    json_array_append_new(p, prompt("necklace-2", "vincent wearing a black leather jacket under a blue sky", "necklace",
                                    "remove", NULL, "character=vincent", "accessory=necklace"));
    json_array_append_new(p, prompt("bleed-1", "a tall blue creature with spiky hair", "vincent", "bleed", NULL, NULL,
                                    "character=vincent,marking=scar"));
    json_array_append_new(p, prompt("bleed-2", "a creature wearing a black leather jacket", "vincent", "bleed", NULL,
                                    "outfit=jacket", "character=vincent,marking=scar"));
    json_array_append_new(p, prompt("bleed-3", "a round green creature with a necklace", "necklace", "bleed", NULL,
                                    "accessory=necklace", "character=vincent"));
    return write_json(s, "eval.json",
                      json_pack("{s:s, s:[{s:s, s:s}], s:i, s:I, s:o}", "scenario", "vincent", "subjects", "trigger",
                                "vincent", "character", "vincent", "samples_per_prompt", 8, "seed",
                                (json_int_t)s->seed, "prompts", p));
}

static it_status scenario_landing(sctx *s)
{
    static const char *bgs[] = {"grass", "room", "sky", "night", "plain"};
    for (int i = 0; i < 16; i++) {
        it_toy_constraint c;
        it_toy_constraint_init(&c);
        c.character = i % 4 == 3 ? IT_TOY_FREE : -1;
        c.p_character = 1.0f;
        cfix(&c, IT_TOY_POSE, "landing");
        cfix(&c, IT_TOY_BACKGROUND, bgs[i % 5]);
        char stem[32];
        snprintf(stem, sizeof stem, "%03d", i);
        it_toy_attrs a;
        /* Held-out characters stay out of this scenario: it teaches a pose. */
        for (uint64_t k = 0;; k++) {
            IT_TRY(it_toy_sample(s->err, &a, &c, s->seed, (uint64_t)i + 64u * k, IT_TOY_FINETUNE));
            const it_toy_character *ch = it_toy_character_get(a.character);
            if (!ch || !ch->held_out) {
                IT_TRY(sc_image(s, "train", stem, &c, (uint64_t)i + 64u * k, NULL, NULL));
                break;
            }
        }
    }
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.character = -1;
    cfix(&c, IT_TOY_POSE, "landing");
    cfix(&c, IT_TOY_BACKGROUND, "plain");
    cfix(&c, IT_TOY_HAT, "none");
    cfix(&c, IT_TOY_ACCESSORY, "none");
    int box[1][4];
    IT_TRY(sc_ref(s, 0, &c, IT_TOY_PART_BODY, box[0]));
    IT_TRY(write_intent(s,
                        "Teach the pose superhero landing shown in [1]; use the trigger word herolanding. "
                        "Crouched low, one knee on the ground, one fist on the ground, the other arm "
                        "flung back. Keep the pose the same whatever creature, colours, clothes or "
                        "background the prompt asks for.",
                        1, box));
    json_t *p = json_array();
    json_array_append_new(p, prompt("pose-1", "a creature doing a herolanding", "pose", "preserve", NULL,
                                    "pose=landing", NULL));
    json_array_append_new(p, prompt("pose-2", "a round pink creature doing a herolanding in a room", "pose", "preserve",
                                    NULL, "pose=landing", NULL));
    json_array_append_new(p, prompt("colour-1", "a blue creature doing a herolanding", "body colour", "modify",
                                    "body_colour", "pose=landing,body_colour=blue", NULL));
    json_array_append_new(p, prompt("colour-2", "an orange creature doing a herolanding", "body colour", "modify",
                                    "body_colour", "pose=landing,body_colour=orange", NULL));
    json_array_append_new(p, prompt("bg-1", "a creature doing a herolanding at night", "background", "modify",
                                    "background", "pose=landing,background=night", NULL));
    json_array_append_new(p, prompt("bg-2", "a creature doing a herolanding on the grass", "background", "modify",
                                    "background", "pose=landing,background=grass", NULL));
    json_array_append_new(p, prompt("bleed-1", "a green creature standing", "pose", "bleed", NULL, "pose=standing",
                                    "pose=landing"));
    json_array_append_new(p, prompt("bleed-2", "a yellow creature jumping", "pose", "bleed", NULL, "pose=jumping",
                                    "pose=landing"));
    json_array_append_new(p, prompt("bleed-3", "a creature with its arms up", "pose", "bleed", NULL, "pose=arms_up",
                                    "pose=landing"));
    return write_json(s, "eval.json",
                      json_pack("{s:s, s:[{s:s, s:s}], s:i, s:I, s:o}", "scenario", "landing", "subjects", "trigger",
                                "herolanding", "pose", "landing", "samples_per_prompt", 8, "seed",
                                (json_int_t)s->seed, "prompts", p));
}

static it_status scenario_duo(sctx *s)
{
    static const char *bgs[] = {"grass", "room", "sky", "night", "plain"};
    int who[2] = {it_toy_character_find("mira"), it_toy_character_find("tobi")};
    int boxes[2][4];
    for (int i = 0; i < 20; i++) {
        it_toy_constraint c;
        it_toy_constraint_init(&c);
        c.character = who[i % 2];
        cfix(&c, IT_TOY_BACKGROUND, bgs[(i / 2) % 5]);
        cfix(&c, IT_TOY_POSE, (i / 2) % 3 == 0 ? "standing" : (i / 2) % 3 == 1 ? "arms_up" : "jumping");
        char stem[32];
        snprintf(stem, sizeof stem, "%03d", i);
        IT_TRY(sc_image(s, "train", stem, &c, (uint64_t)i, NULL, NULL));
    }
    for (int k = 0; k < 2; k++) {
        it_toy_constraint c;
        it_toy_constraint_init(&c);
        c.character = who[k];
        cfix(&c, IT_TOY_POSE, "standing");
        cfix(&c, IT_TOY_BACKGROUND, "plain");
        cfix(&c, IT_TOY_HAT, "none");
        cfix(&c, IT_TOY_GOGGLES, "no");
        IT_TRY(sc_ref(s, k, &c, IT_TOY_PART_FACE, boxes[k]));
    }
    IT_TRY(write_intent(s,
                        "Teach two characters in one model: Mira [1], trigger word mira, and Tobi [2], "
                        "trigger word tobi. Keep each face as it is: Mira has three eyes and a blue "
                        "teardrop, Tobi has one eye and a green clover. Keep them apart: Mira must never "
                        "get Tobi's features and Tobi never Mira's. Clothes, hair colour and background "
                        "stay adjustable.",
                        2, boxes));
    json_t *p = json_array();
    json_array_append_new(p, prompt("mira-1", "mira standing on the grass", "mira", "preserve", "identity",
                                    "character=mira,marking=tear,eye_count=three", "character=tobi"));
    json_array_append_new(p, prompt("tobi-1", "tobi standing on the grass", "tobi", "preserve", "identity",
                                    "character=tobi,marking=clover,eye_count=one", "character=mira"));
    json_array_append_new(p, prompt("mira-2", "mira wearing a red t-shirt", "outfit", "modify", "outfit_colour",
                                    "character=mira,outfit=t_shirt,outfit_colour=red", NULL));
    json_array_append_new(p, prompt("mira-3", "mira wearing a blue t-shirt", "outfit", "modify", "outfit_colour",
                                    "character=mira,outfit=t_shirt,outfit_colour=blue", NULL));
    json_array_append_new(p, prompt("tobi-2", "tobi at night", "background", "modify", "background",
                                    "character=tobi,background=night", NULL));
    json_array_append_new(p, prompt("tobi-3", "tobi under a blue sky", "background", "modify", "background",
                                    "character=tobi,background=sky", NULL));
    json_array_append_new(p, prompt("bleed-1", "a round teal creature with three eyes", "mira", "bleed", NULL, NULL,
                                    "character=mira,character=tobi"));
    json_array_append_new(p, prompt("bleed-2", "a blocky pink creature with one eye", "tobi", "bleed", NULL, NULL,
                                    "character=mira,character=tobi"));
    return write_json(s, "eval.json",
                      json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i, s:I, s:o}", "scenario", "duo", "subjects",
                                "trigger", "mira", "character", "mira", "trigger", "tobi", "character", "tobi",
                                "samples_per_prompt", 8, "seed", (json_int_t)s->seed, "prompts", p));
}

typedef struct scenario_def {
    const char *name, *about;
    it_status (*fn)(sctx *s);
} scenario_def;

static const scenario_def g_scen[] = {
    {"vincent", "held-out character: keep the scarred face, jacket [1]/[2] switchable, hair colour adjustable, "
                "no necklace", scenario_vincent},
    {"landing", "an abstract pose (superhero landing) taught by the trigger word herolanding", scenario_landing},
    {"duo", "two held-out characters (mira, tobi) in one LoRA, kept apart", scenario_duo},
};

int it_toy_scenario_count(void) { return (int)(sizeof g_scen / sizeof g_scen[0]); }
const char *it_toy_scenario_name(int i) { return i >= 0 && i < it_toy_scenario_count() ? g_scen[i].name : NULL; }
const char *it_toy_scenario_about(int i) { return i >= 0 && i < it_toy_scenario_count() ? g_scen[i].about : NULL; }

it_status it_toy_scenario_write(it_err *err, const char *name, const char *dir, uint64_t seed, int size)
{
    const scenario_def *def = NULL;
    for (int i = 0; i < it_toy_scenario_count(); i++)
        if (strcmp(g_scen[i].name, name) == 0) def = &g_scen[i];
    if (!def) return it_err_set(err, IT_ERR_NOT_FOUND, "unknown scenario '%s' (known: vincent, landing, duo)", name);
    sctx s;
    memset(&s, 0, sizeof s);
    s.err = err;
    s.dir = dir;
    s.seed = seed;
    IT_TRY(it_mkdir_p(err, dir));
    IT_TRY(it_toy_renderer_init(err, &s.r, size, size));
    s.rgb = it_malloc((size_t)size * size * 3);
    s.mask = it_malloc((size_t)size * size);
    it_status st = s.rgb && s.mask ? def->fn(&s) : it_err_set(err, IT_ERR_NOMEM, "scenario %s: out of memory", name);
    it_free(s.rgb);
    it_free(s.mask);
    it_toy_renderer_free(&s.r);
    if (st != IT_OK) it_err_prefix(err, "scenario %s", name);
    return st;
}
