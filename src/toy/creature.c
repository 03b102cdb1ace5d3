/* creature.c: attribute tables, the held-out rule, sampling, filters, JSON.
 *
 * Sampling draws from a Philox stream keyed by splitmix64(seed, index), so
 * image i is the same whether it is rendered first, last, alone or on any
 * thread. Dependencies are resolved in a fixed order (character -> base
 * design -> hair -> hat -> outfit -> accessory -> pose -> background ->
 * jitter); colours that would be hard to tell apart from the body (hair,
 * outfit) or from the outfit (accessory) are redrawn, because the renders
 * must stay readable for the judge and at crop scale. */
#include "toy/creature.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/rng.h"
#include "toy/characters.h"

#define RGB(r, g, b) {r, g, b}

static const it_toy_value v_shape[] = {
    {"round", "round|chubby", {0}}, {"tall", "tall|lanky", {0}}, {"blocky", "blocky|boxy|square", {0}}};
static const it_toy_value v_body_colour[] = {
    {"green", "green", RGB(96, 190, 80)},     {"blue", "blue", RGB(80, 130, 235)},
    {"purple", "purple|violet", RGB(160, 95, 215)}, {"orange", "orange", RGB(245, 150, 55)},
    {"pink", "pink", RGB(245, 150, 200)},     {"yellow", "yellow", RGB(240, 215, 70)},
    {"teal", "teal|turquoise", RGB(45, 185, 180)}, {"grey", "grey|gray", RGB(150, 152, 162)}};
static const it_toy_value v_eyes[] = {
    {"one", "one eye|a single eye", {0}}, {"two", "two eyes", {0}}, {"three", "three eyes", {0}}};
static const it_toy_value v_goggles[] = {{"no", "", {0}}, {"yes", "goggles|a pair of goggles", {0}}};
static const it_toy_value v_mouth[] = {{"smile", "a smile|a big grin", {0}},
                                       {"open", "an open mouth|a wide open mouth", {0}},
                                       {"flat", "a flat mouth|a straight mouth", {0}},
                                       {"fangs", "fangs|sharp teeth", {0}}};
static const it_toy_value v_hair_style[] = {{"bald", "bald", {0}},
                                            {"spiky", "spiky|spiked", {0}},
                                            {"curly", "curly|frizzy", {0}},
                                            {"long", "long|flowing", {0}}};
static const it_toy_value v_hair_colour[] = {
    {"black", "black|dark", RGB(30, 28, 32)},   {"blonde", "blonde|blond|golden|yellow", RGB(248, 218, 110)},
    {"red", "red|ginger", RGB(205, 45, 35)},    {"brown", "brown", RGB(115, 70, 35)},
    {"white", "white", RGB(242, 242, 242)},     {"blue", "blue", RGB(35, 70, 200)},
    {"pink", "pink", RGB(250, 110, 180)},       {"green", "green", RGB(35, 140, 55)}};
static const it_toy_value v_hat[] = {{"none", "", {0}},
                                     {"cap", "baseball cap|cap", {0}},
                                     {"top_hat", "top hat", {0}},
                                     {"beanie", "beanie|woolly hat", {0}},
                                     {"crown", "crown", {0}}};
static const it_toy_value v_cloth[] = {
    {"black", "black", RGB(28, 28, 32)},   {"white", "white", RGB(238, 238, 238)},
    {"red", "red", RGB(210, 40, 40)},      {"blue", "blue", RGB(40, 90, 205)},
    {"green", "green", RGB(40, 150, 70)},  {"yellow", "yellow", RGB(245, 205, 40)},
    {"purple", "purple", RGB(125, 55, 180)}, {"brown", "brown", RGB(125, 80, 45)}};
static const it_toy_value v_outfit[] = {{"none", "", {0}},
                                        {"jacket", "jacket", {0}},
                                        {"overalls", "overalls|dungarees", {0}},
                                        {"t_shirt", "t-shirt|tee", {0}}};
static const it_toy_value v_pattern[] = {{"plain", "plain", {0}},
                                         {"striped", "striped|stripy", {0}},
                                         {"dotted", "polka-dot|dotted|spotted", {0}},
                                         {"leather", "leather|shiny leather", {0}}};
static const it_toy_value v_acc[] = {{"none", "", {0}},
                                     {"necklace", "necklace|pendant necklace", {0}},
                                     {"scarf", "scarf", {0}},
                                     {"bow_tie", "bow tie|bowtie", {0}}};
static const it_toy_value v_acc_colour[] = {
    {"gold", "gold|golden", RGB(235, 180, 40)}, {"silver", "silver", RGB(195, 200, 210)},
    {"red", "red", RGB(215, 35, 45)},           {"blue", "blue", RGB(40, 90, 215)},
    {"green", "green", RGB(40, 160, 70)},       {"purple", "purple", RGB(140, 60, 190)}};
static const it_toy_value v_pose[] = {
    {"standing", "standing|standing up", {0}},
    {"arms_up", "with its arms up|raising its arms|with arms raised", {0}},
    {"jumping", "jumping|leaping|in mid-jump", {0}},
    {"landing", "crouching with one knee down and a fist on the ground|landing in a crouch|"
                "in a superhero landing pose", {0}}};
static const it_toy_value v_bg[] = {{"plain", "on a plain background|against a simple background", {0}},
                                    {"sky", "under a blue sky|in the sky", {0}},
                                    {"grass", "on the grass|in a meadow", {0}},
                                    {"room", "in a room|indoors", {0}},
                                    {"night", "at night|under the stars", {0}}};
static const it_toy_value v_marking[] = {
    {"none", "", {0}},           {"star", "star", {0}},         {"bolt", "lightning bolt", {0}},
    {"freckles", "freckles", {0}}, {"cross", "cross", {0}},     {"moon", "crescent moon", {0}},
    {"diamond", "diamond", {0}}, {"heart", "heart", {0}},       {"whiskers", "whiskers", {0}},
    {"scar", "scar", {0}},       {"tear", "teardrop", {0}},     {"clover", "clover", {0}},
    {"triangle", "triangle", {0}}};

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))
static const it_toy_attr_info g_attrs[IT_TOY_N_ATTRS] = {
    {"body_shape", N(v_shape), v_shape, 0},
    {"body_colour", N(v_body_colour), v_body_colour, 1},
    {"eye_count", N(v_eyes), v_eyes, 0},
    {"goggles", N(v_goggles), v_goggles, 0},
    {"mouth", N(v_mouth), v_mouth, 0},
    {"hair_style", N(v_hair_style), v_hair_style, 0},
    {"hair_colour", N(v_hair_colour), v_hair_colour, 1},
    {"hat", N(v_hat), v_hat, 0},
    {"hat_colour", N(v_cloth), v_cloth, 1},
    {"outfit", N(v_outfit), v_outfit, 0},
    {"outfit_colour", N(v_cloth), v_cloth, 1},
    {"outfit_pattern", N(v_pattern), v_pattern, 0},
    {"accessory", N(v_acc), v_acc, 0},
    {"accessory_colour", N(v_acc_colour), v_acc_colour, 1},
    {"pose", N(v_pose), v_pose, 0},
    {"background", N(v_bg), v_bg, 0},
    {"marking", N(v_marking), v_marking, 0},
};

const it_toy_attr_info *it_toy_attr_get(int attr)
{
    return attr >= 0 && attr < IT_TOY_N_ATTRS ? &g_attrs[attr] : NULL;
}

int it_toy_attr_find(const char *name)
{
    for (int a = 0; a < IT_TOY_N_ATTRS; a++)
        if (strcmp(g_attrs[a].name, name) == 0) return a;
    return -1;
}

int it_toy_value_find(int attr, const char *name)
{
    const it_toy_attr_info *ai = it_toy_attr_get(attr);
    if (!ai) return -1;
    for (int i = 0; i < ai->n_values; i++)
        if (strcmp(ai->values[i].name, name) == 0) return i;
    return -1;
}

const char *it_toy_value_name(int attr, int value)
{
    const it_toy_attr_info *ai = it_toy_attr_get(attr);
    if (!ai || value < 0 || value >= ai->n_values) return "n/a";
    return ai->values[value].name;
}

const char *it_toy_purpose_name(it_toy_purpose p)
{
    switch (p) {
    case IT_TOY_PRETRAIN: return "pretrain";
    case IT_TOY_FINETUNE: return "finetune";
    case IT_TOY_EVAL: return "eval";
    }
    return "?";
}

int it_toy_purpose_parse(const char *s)
{
    if (strcmp(s, "pretrain") == 0) return IT_TOY_PRETRAIN;
    if (strcmp(s, "finetune") == 0) return IT_TOY_FINETUNE;
    if (strcmp(s, "eval") == 0) return IT_TOY_EVAL;
    return -1;
}

int it_toy_colour_dist2(const uint8_t a[3], const uint8_t b[3])
{
    int d = 0;
    for (int k = 0; k < 3; k++) d += ((int)a[k] - b[k]) * ((int)a[k] - b[k]);
    return d;
}

/* ------------------------------------------------------------ held out */

/* The landing pose is the `landing` scenario's concept: like the held-out
 * characters and their markings, it never appears in pretraining data. */
static int marking_held_out(int m)
{
    int c = it_toy_character_by_marking(m);
    return m != IT_TOY_MARK_NONE && c >= 0 && it_toy_character_get(c)->held_out;
}

int it_toy_is_held_out(const it_toy_attrs *a)
{
    const it_toy_character *ch = it_toy_character_get(a->character);
    if (ch && ch->held_out) return 1;
    if (a->v[IT_TOY_POSE] == IT_TOY_POSE_LANDING) return 1;
    return marking_held_out(a->v[IT_TOY_MARKING]);
}

it_status it_toy_check_purpose(it_err *err, const it_toy_attrs *a, it_toy_purpose purpose)
{
    if (purpose != IT_TOY_PRETRAIN) return IT_OK;
    const it_toy_character *ch = it_toy_character_get(a->character);
    if (ch && ch->held_out)
        return it_err_set(err, IT_ERR_ARG,
                          "character '%s' is held out of pretraining data; render it with "
                          "purpose finetune or eval", ch->name);
    if (a->v[IT_TOY_POSE] == IT_TOY_POSE_LANDING)
        return it_err_set(err, IT_ERR_ARG,
                          "pose 'landing' is held out of pretraining data; render it with "
                          "purpose finetune or eval");
    if (marking_held_out(a->v[IT_TOY_MARKING]))
        return it_err_set(err, IT_ERR_ARG,
                          "marking '%s' belongs to a held-out character; render it with "
                          "purpose finetune or eval", it_toy_value_name(IT_TOY_MARKING, a->v[IT_TOY_MARKING]));
    return IT_OK;
}

/* ------------------------------------------------------------ constraints */

void it_toy_constraint_init(it_toy_constraint *c)
{
    for (int a = 0; a < IT_TOY_N_ATTRS; a++) c->v[a] = IT_TOY_FREE;
    c->character = IT_TOY_FREE;
    c->p_character = 0.25f;
}

/* Resolves "key=value" into (attribute, value); see the header for aliases. */
static it_status filter_item(it_err *err, it_toy_constraint *c, const char *key, const char *val)
{
    if (strcmp(key, "character") == 0) {
        if (strcmp(val, "none") == 0) {
            c->character = -1;
            return IT_OK;
        }
        int ch = it_toy_character_find(val);
        if (ch < 0) return it_err_set(err, IT_ERR_ARG, "filter: unknown character '%s'", val);
        c->character = ch;
        return IT_OK;
    }
    int attr = it_toy_attr_find(key), value = -1, matches = 0;
    if (attr >= 0) {
        value = it_toy_value_find(attr, val);
        if (value < 0)
            return it_err_set(err, IT_ERR_ARG, "filter: '%s' is not a value of %s", val, key);
    } else {
        size_t kl = strlen(key);
        for (int a = 0; a < IT_TOY_N_ATTRS; a++) {
            if (strncmp(g_attrs[a].name, key, kl) != 0 || g_attrs[a].name[kl] != '_') continue;
            int v = it_toy_value_find(a, val);
            if (v >= 0) {
                attr = a;
                value = v;
                matches++;
            }
        }
        if (matches == 0)
            return it_err_set(err, IT_ERR_ARG, "filter: no attribute '%s' with value '%s'", key, val);
        if (matches > 1)
            return it_err_set(err, IT_ERR_ARG, "filter: '%s=%s' is ambiguous; use the full attribute name",
                              key, val);
    }
    c->v[attr] = value;
    return IT_OK;
}

it_status it_toy_filter_parse(it_err *err, it_toy_constraint *c, const char *text)
{
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char item[128];
        if (n == 0) {
            p += end ? 1 : 0;
            continue;
        }
        if (n >= sizeof item) return it_err_set(err, IT_ERR_ARG, "filter: item too long: '%.40s...'", p);
        memcpy(item, p, n);
        item[n] = 0;
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return it_err_set(err, IT_ERR_ARG, "filter: expected key=value, got '%s'", item);
        *eq = 0;
        IT_TRY(filter_item(err, c, item, eq + 1));
        p += n + (end ? 1 : 0);
    }
    return IT_OK;
}

/* ------------------------------------------------------------ sampling */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int pick(it_rng *r, int fixed, int n)
{
    return fixed >= 0 ? fixed : (int)it_rng_below(r, (uint64_t)n);
}

/* Draws a colour of attr (unless fixed) at squared distance >= min_d2 from
 * `avoid`; after a few tries takes what it has (fixed values always win). */
static int pick_colour(it_rng *r, int fixed, int attr, const uint8_t *avoid, int min_d2)
{
    if (fixed >= 0) return fixed;
    const it_toy_attr_info *ai = &g_attrs[attr];
    int v = 0;
    for (int tries = 0; tries < 16; tries++) {
        v = (int)it_rng_below(r, (uint64_t)ai->n_values);
        if (!avoid || it_toy_colour_dist2(ai->values[v].rgb, avoid) >= min_d2) break;
    }
    return v;
}

static int char_fits(const it_toy_character *ch, const it_toy_constraint *c, it_toy_purpose purpose)
{
    if (ch->held_out && purpose == IT_TOY_PRETRAIN) return 0;
    const int base[][2] = {{IT_TOY_BODY_SHAPE, ch->body_shape}, {IT_TOY_BODY_COLOUR, ch->body_colour},
                           {IT_TOY_EYE_COUNT, ch->eye_count},   {IT_TOY_MOUTH, ch->mouth},
                           {IT_TOY_HAIR_STYLE, ch->hair_style}, {IT_TOY_MARKING, ch->marking}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        if (c->v[base[i][0]] >= 0 && c->v[base[i][0]] != base[i][1]) return 0;
    if (c->v[IT_TOY_HAIR_COLOUR] >= 0 && ch->hair_style == IT_TOY_HAIR_BALD) return 0;
    return 1;
}

static it_status sample_character(it_err *err, it_toy_attrs *o, const it_toy_constraint *c,
                                  it_rng *r, it_toy_purpose purpose)
{
    o->character = -1;
    if (c->character >= 0) {
        const it_toy_character *ch = it_toy_character_get(c->character);
        if (!ch) return it_err_set(err, IT_ERR_ARG, "character index %d out of range", c->character);
        if (ch->held_out && purpose == IT_TOY_PRETRAIN)
            return it_err_set(err, IT_ERR_ARG,
                              "character '%s' is held out of pretraining data; render it with "
                              "purpose finetune or eval", ch->name);
        if (!char_fits(ch, c, purpose))
            return it_err_set(err, IT_ERR_ARG, "filter contradicts the base design of character '%s' (%s)",
                              ch->name, ch->about);
        o->character = c->character;
        return IT_OK;
    }
    int want_marking = c->v[IT_TOY_MARKING] >= 0 && c->v[IT_TOY_MARKING] != IT_TOY_MARK_NONE;
    float u = it_rng_float(r);
    if (c->character == -1) {
        if (want_marking) return it_err_set(err, IT_ERR_ARG, "filter: a marking needs a character");
        return IT_OK;
    }
    if (!want_marking && (c->v[IT_TOY_MARKING] == IT_TOY_MARK_NONE || u >= c->p_character)) return IT_OK;
    int fits[64], n = 0;
    for (int i = 0; i < it_toy_character_count() && n < 64; i++)
        if (char_fits(it_toy_character_get(i), c, purpose)) fits[n++] = i;
    if (n == 0) {
        if (!want_marking) return IT_OK; /* no character fits: a generic creature */
        return it_err_set(err, IT_ERR_ARG, "marking '%s' is held out of pretraining data or "
                          "contradicts the filter", it_toy_value_name(IT_TOY_MARKING, c->v[IT_TOY_MARKING]));
    }
    o->character = fits[it_rng_below(r, (uint64_t)n)];
    return IT_OK;
}

static void sample_base(it_toy_attrs *o, const it_toy_constraint *c, it_rng *r)
{
    const it_toy_character *ch = it_toy_character_get(o->character);
    int *v = o->v;
    if (ch) {
        v[IT_TOY_BODY_SHAPE] = ch->body_shape;
        v[IT_TOY_BODY_COLOUR] = ch->body_colour;
        v[IT_TOY_EYE_COUNT] = ch->eye_count;
        v[IT_TOY_MOUTH] = ch->mouth;
        v[IT_TOY_HAIR_STYLE] = ch->hair_style;
        v[IT_TOY_MARKING] = ch->marking;
        return;
    }
    v[IT_TOY_BODY_SHAPE] = pick(r, c->v[IT_TOY_BODY_SHAPE], N(v_shape));
    v[IT_TOY_BODY_COLOUR] = pick(r, c->v[IT_TOY_BODY_COLOUR], N(v_body_colour));
    v[IT_TOY_EYE_COUNT] = pick(r, c->v[IT_TOY_EYE_COUNT], N(v_eyes));
    v[IT_TOY_MOUTH] = pick(r, c->v[IT_TOY_MOUTH], N(v_mouth));
    if (c->v[IT_TOY_HAIR_STYLE] >= 0)
        v[IT_TOY_HAIR_STYLE] = c->v[IT_TOY_HAIR_STYLE];
    else if (c->v[IT_TOY_HAIR_COLOUR] >= 0)
        v[IT_TOY_HAIR_STYLE] = 1 + (int)it_rng_below(r, N(v_hair_style) - 1);
    else
        v[IT_TOY_HAIR_STYLE] = it_rng_float(r) < 0.2f ? IT_TOY_HAIR_BALD
                                                      : 1 + (int)it_rng_below(r, N(v_hair_style) - 1);
    v[IT_TOY_MARKING] = IT_TOY_MARK_NONE;
}

/* "none" with probability p_none unless fixed or forced by a fixed detail. */
static int pick_kind(it_rng *r, int fixed, int n, float p_none, int detail_fixed)
{
    if (fixed >= 0) return fixed;
    float u = it_rng_float(r);
    if (!detail_fixed && u < p_none) return 0;
    return 1 + (int)it_rng_below(r, (uint64_t)(n - 1));
}

static void sample_rest(it_toy_attrs *o, const it_toy_constraint *c, it_rng *r, it_toy_purpose purpose)
{
    int *v = o->v;
    const uint8_t *body = v_body_colour[v[IT_TOY_BODY_COLOUR]].rgb;
    v[IT_TOY_GOGGLES] = c->v[IT_TOY_GOGGLES] >= 0 ? c->v[IT_TOY_GOGGLES] : it_rng_float(r) < 0.25f;
    v[IT_TOY_HAIR_COLOUR] = v[IT_TOY_HAIR_STYLE] == IT_TOY_HAIR_BALD
                                ? IT_TOY_NA
                                : pick_colour(r, c->v[IT_TOY_HAIR_COLOUR], IT_TOY_HAIR_COLOUR, body, 110 * 110);
    v[IT_TOY_HAT] = pick_kind(r, c->v[IT_TOY_HAT], N(v_hat), 0.45f, c->v[IT_TOY_HAT_COLOUR] >= 0);
    v[IT_TOY_HAT_COLOUR] = v[IT_TOY_HAT] == IT_TOY_HAT_NONE
                               ? IT_TOY_NA
                               : pick_colour(r, c->v[IT_TOY_HAT_COLOUR], IT_TOY_HAT_COLOUR, NULL, 0);
    int outfit_detail = c->v[IT_TOY_OUTFIT_COLOUR] >= 0 || c->v[IT_TOY_OUTFIT_PATTERN] >= 0;
    v[IT_TOY_OUTFIT] = pick_kind(r, c->v[IT_TOY_OUTFIT], N(v_outfit), 0.2f, outfit_detail);
    if (v[IT_TOY_OUTFIT] == IT_TOY_OUTFIT_NONE) {
        v[IT_TOY_OUTFIT_COLOUR] = v[IT_TOY_OUTFIT_PATTERN] = IT_TOY_NA;
    } else {
        v[IT_TOY_OUTFIT_COLOUR] = pick_colour(r, c->v[IT_TOY_OUTFIT_COLOUR], IT_TOY_OUTFIT_COLOUR, body, 110 * 110);
        v[IT_TOY_OUTFIT_PATTERN] = pick(r, c->v[IT_TOY_OUTFIT_PATTERN], N(v_pattern));
    }
    v[IT_TOY_ACCESSORY] = pick_kind(r, c->v[IT_TOY_ACCESSORY], N(v_acc), 0.4f, c->v[IT_TOY_ACCESSORY_COLOUR] >= 0);
    if (v[IT_TOY_ACCESSORY] == IT_TOY_ACC_NONE) {
        v[IT_TOY_ACCESSORY_COLOUR] = IT_TOY_NA;
    } else {
        const uint8_t *under = v[IT_TOY_OUTFIT] != IT_TOY_OUTFIT_NONE ? v_cloth[v[IT_TOY_OUTFIT_COLOUR]].rgb : body;
        v[IT_TOY_ACCESSORY_COLOUR] = pick_colour(r, c->v[IT_TOY_ACCESSORY_COLOUR], IT_TOY_ACCESSORY_COLOUR, under,
                                                 120 * 120);
    }
    int n_pose = purpose == IT_TOY_PRETRAIN ? N(v_pose) - 1 : N(v_pose);
    v[IT_TOY_POSE] = pick(r, c->v[IT_TOY_POSE], n_pose);
    v[IT_TOY_BACKGROUND] = pick(r, c->v[IT_TOY_BACKGROUND], N(v_bg));
    o->x = (it_rng_float(r) * 2.0f - 1.0f) * 0.12f;
    o->y = (it_rng_float(r) * 2.0f - 1.0f) * 0.03f;
    o->scale = 0.84f + 0.2f * it_rng_float(r);
    if (v[IT_TOY_POSE] == IT_TOY_POSE_JUMPING && o->scale > 0.94f) o->scale = 0.94f;
    o->facing = it_rng_float(r) * 2.0f - 1.0f;
    o->detail = (uint32_t)it_rng_u64(r);
}

/* Fixed constraints the dependencies could not honour are contradictions. */
static it_status check_constraints(it_err *err, const it_toy_attrs *o, const it_toy_constraint *c)
{
    for (int a = 0; a < IT_TOY_N_ATTRS; a++) {
        if (c->v[a] < 0 || c->v[a] == o->v[a]) continue;
        return it_err_set(err, IT_ERR_ARG, "filter: %s=%s contradicts the rest of the filter (it became %s)",
                          g_attrs[a].name, it_toy_value_name(a, c->v[a]), it_toy_value_name(a, o->v[a]));
    }
    return IT_OK;
}

it_status it_toy_sample(it_err *err, it_toy_attrs *out, const it_toy_constraint *c, uint64_t seed,
                        uint64_t index, it_toy_purpose purpose)
{
    it_toy_constraint none;
    if (!c) {
        it_toy_constraint_init(&none);
        c = &none;
    }
    memset(out, 0, sizeof *out);
    it_rng r;
    it_rng_init(&r, splitmix64(seed ^ splitmix64(index + 0x70F7ull)));
    if (purpose == IT_TOY_PRETRAIN && c->v[IT_TOY_POSE] == IT_TOY_POSE_LANDING)
        return it_err_set(err, IT_ERR_ARG,
                          "pose 'landing' is held out of pretraining data; render it with "
                          "purpose finetune or eval");
    IT_TRY(sample_character(err, out, c, &r, purpose));
    sample_base(out, c, &r);
    sample_rest(out, c, &r, purpose);
    IT_TRY(check_constraints(err, out, c));
    IT_TRY(it_toy_check_purpose(err, out, purpose));
    return it_toy_attrs_validate(err, out);
}

it_status it_toy_attrs_validate(it_err *err, const it_toy_attrs *a)
{
    for (int i = 0; i < IT_TOY_N_ATTRS; i++) {
        int na_ok = (i == IT_TOY_HAIR_COLOUR && a->v[IT_TOY_HAIR_STYLE] == IT_TOY_HAIR_BALD) ||
                    (i == IT_TOY_HAT_COLOUR && a->v[IT_TOY_HAT] == IT_TOY_HAT_NONE) ||
                    ((i == IT_TOY_OUTFIT_COLOUR || i == IT_TOY_OUTFIT_PATTERN) &&
                     a->v[IT_TOY_OUTFIT] == IT_TOY_OUTFIT_NONE) ||
                    (i == IT_TOY_ACCESSORY_COLOUR && a->v[IT_TOY_ACCESSORY] == IT_TOY_ACC_NONE);
        if (na_ok && a->v[i] == IT_TOY_NA) continue;
        if (na_ok)
            return it_err_set(err, IT_ERR_ARG, "attribute %s must be null here (its part is absent)", g_attrs[i].name);
        if (a->v[i] < 0 || a->v[i] >= g_attrs[i].n_values)
            return it_err_set(err, IT_ERR_ARG, "attribute %s: value %d out of range", g_attrs[i].name, a->v[i]);
    }
    if (a->character != -1) {
        const it_toy_character *ch = it_toy_character_get(a->character);
        if (!ch) return it_err_set(err, IT_ERR_ARG, "character index %d out of range", a->character);
        if (ch->marking != a->v[IT_TOY_MARKING])
            return it_err_set(err, IT_ERR_ARG, "character '%s' must wear marking %s", ch->name,
                              it_toy_value_name(IT_TOY_MARKING, ch->marking));
    } else if (a->v[IT_TOY_MARKING] != IT_TOY_MARK_NONE) {
        return it_err_set(err, IT_ERR_ARG, "a marking needs a character");
    }
    if (!(a->scale > 0.3f && a->scale < 2.0f) || !(fabsf(a->x) <= 0.5f) || !(fabsf(a->y) <= 0.5f) ||
        !(fabsf(a->facing) <= 1.0f))
        return it_err_set(err, IT_ERR_ARG, "jitter out of range (scale %g, x %g, y %g, facing %g)",
                          (double)a->scale, (double)a->x, (double)a->y, (double)a->facing);
    return IT_OK;
}

/* ------------------------------------------------------------ JSON */

json_t *it_toy_attrs_to_json(const it_toy_attrs *a)
{
    json_t *o = json_object();
    if (!o) return NULL;
    const it_toy_character *ch = it_toy_character_get(a->character);
    int bad = json_object_set_new(o, "character", ch ? json_string(ch->name) : json_null());
    for (int i = 0; i < IT_TOY_N_ATTRS; i++)
        bad |= json_object_set_new(o, g_attrs[i].name,
                                   a->v[i] == IT_TOY_NA ? json_null() : json_string(it_toy_value_name(i, a->v[i])));
    json_t *j = json_pack("{s:f, s:f, s:f, s:f, s:I}", "x", (double)a->x, "y", (double)a->y, "scale",
                          (double)a->scale, "facing", (double)a->facing, "detail", (json_int_t)a->detail);
    bad |= json_object_set_new(o, "jitter", j);
    if (bad || !j) {
        json_decref(o);
        return NULL;
    }
    return o;
}

it_status it_toy_attrs_from_json(it_err *err, it_toy_attrs *a, const json_t *j)
{
    memset(a, 0, sizeof *a);
    if (!json_is_object(j)) return it_err_set(err, IT_ERR_FORMAT, "attributes: expected an object");
    const json_t *ch = json_object_get(j, "character");
    a->character = -1;
    if (json_is_string(ch)) {
        a->character = it_toy_character_find(json_string_value(ch));
        if (a->character < 0)
            return it_err_set(err, IT_ERR_FORMAT, "attributes: unknown character '%s'", json_string_value(ch));
    } else if (ch && !json_is_null(ch)) {
        return it_err_set(err, IT_ERR_FORMAT, "attributes: character must be a string or null");
    }
    for (int i = 0; i < IT_TOY_N_ATTRS; i++) {
        const json_t *v = json_object_get(j, g_attrs[i].name);
        if (!v) return it_err_set(err, IT_ERR_FORMAT, "attributes: missing key '%s'", g_attrs[i].name);
        if (json_is_null(v)) {
            a->v[i] = IT_TOY_NA;
            continue;
        }
        if (!json_is_string(v)) return it_err_set(err, IT_ERR_FORMAT, "attributes: %s must be a string", g_attrs[i].name);
        a->v[i] = it_toy_value_find(i, json_string_value(v));
        if (a->v[i] < 0)
            return it_err_set(err, IT_ERR_FORMAT, "attributes: '%s' is not a value of %s", json_string_value(v),
                              g_attrs[i].name);
    }
    const json_t *jit = json_object_get(j, "jitter");
    double x = 0, y = 0, s = 1, f = 0;
    json_int_t d = 0;
    if (jit && json_unpack((json_t *)jit, "{s:F, s:F, s:F, s:F, s:I}", "x", &x, "y", &y, "scale", &s, "facing", &f,
                           "detail", &d) != 0)
        return it_err_set(err, IT_ERR_FORMAT, "attributes: jitter needs numbers x, y, scale, facing, detail");
    a->x = (float)x;
    a->y = (float)y;
    a->scale = (float)s;
    a->facing = (float)f;
    a->detail = (uint32_t)d;
    return it_toy_attrs_validate(err, a);
}
