/* test_toy_captions.c: captions state only true attributes; the parser. */
#include <string.h>

#include "toy/captions.h"
#include "toy/characters.h"
#include "toy/creature.h"
#include "test.h"

/* Every caption of 400 images (3 styles x 2 variants): the claims the
 * parser reads back are all true, nothing dangles, and the attributes
 * claimed are exactly the ones the generator says it mentioned. */
IT_TEST(toy_captions_only_true_attributes) {
    it_err e;
    int n_caps = 0, longest = 0;
    for (int i = 0; i < 400; i++) {
        it_toy_attrs a;
        IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 21, (uint64_t)i, IT_TOY_EVAL), &e);
        for (int st = 0; st < 3; st++)
            for (int v = 0; v < 2; v++) {
                it_toy_caption c;
                IT_REQUIRE_OK(it_toy_caption_make(&e, &c, &a, (it_toy_caption_style)st, 1, 0, 21, (uint64_t)i, v), &e);
                it_toy_claim cl[64];
                int dangling = -1, n = it_toy_caption_claims(c.text, cl, 64, &dangling);
                IT_REQUIRE(n >= 0 && n <= 64);
                n_caps++;
                if ((int)strlen(c.text) > longest) longest = (int)strlen(c.text);
                uint32_t seen = 0;
                for (int k = 0; k < n; k++) {
                    int truth = cl[k].attr == IT_TOY_N_ATTRS ? a.character : a.v[cl[k].attr];
                    if (cl[k].value < 0 || cl[k].value != truth)
                        it_test_fail(t, __FILE__, __LINE__, "false claim %s=%d (true %d) in \"%s\"",
                                     cl[k].attr == IT_TOY_N_ATTRS ? "character" : it_toy_attr_get(cl[k].attr)->name,
                                     cl[k].value, truth, c.text);
                    seen |= cl[k].attr == IT_TOY_N_ATTRS ? IT_TOY_MENTION_CHARACTER : 1u << cl[k].attr;
                }
                if (dangling) it_test_fail(t, __FILE__, __LINE__, "%d dangling words in \"%s\"", dangling, c.text);
                if (seen != c.mentioned)
                    it_test_fail(t, __FILE__, __LINE__, "mentions %#x but parsed %#x: \"%s\"", c.mentioned, seen,
                                 c.text);
            }
    }
    IT_CHECK_INT(n_caps, 2400);
    IT_CHECK(longest < IT_TOY_CAPTION_MAX - 1);
}

IT_TEST(toy_captions_vary_and_exclude) {
    it_err e;
    it_toy_attrs a;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.character = it_toy_character_find("vincent");
    IT_REQUIRE_OK(it_toy_filter_parse(&e, &c, "accessory=necklace,outfit=jacket"), &e);
    IT_REQUIRE_OK(it_toy_sample(&e, &a, &c, 2, 0, IT_TOY_FINETUNE), &e);
    char first[IT_TOY_CAPTION_MAX] = "";
    int distinct = 0, necklace = 0;
    uint32_t excl = (1u << IT_TOY_ACCESSORY) | IT_TOY_MENTION_CHARACTER;
    for (int v = 0; v < 30; v++) {
        it_toy_caption cap;
        IT_REQUIRE_OK(it_toy_caption_make(&e, &cap, &a, IT_TOY_CAP_LONG, 1, 0, 2, 0, v), &e);
        if (v == 0) strcpy(first, cap.text);
        distinct += strcmp(first, cap.text) != 0;
        necklace += strstr(cap.text, "necklace") != NULL;
        IT_CHECK(strncmp(cap.text, "vincent, ", 9) == 0);
        IT_REQUIRE_OK(it_toy_caption_make(&e, &cap, &a, IT_TOY_CAP_LONG, 1, excl, 2, 0, v), &e);
        IT_CHECK(strstr(cap.text, "necklace") == NULL && strstr(cap.text, "vincent") == NULL);
        IT_CHECK_INT(cap.mentioned & excl, 0);
    }
    IT_CHECK(distinct >= 25);
    IT_CHECK(necklace >= 5);
}

IT_TEST(toy_caption_parser_table) {
    static const struct {
        const char *text;
        const char *expect; /* "attr=value;..." in order; value "?" = invalid claim */
        int dangling;
    } cases[] = {
        {"a blue creature with red hair", "body_colour=blue;hair_colour=red", 0},
        {"a red creature", "body_colour=?", 0},
        {"wearing a black leather jacket", "outfit=jacket;outfit_colour=black;outfit_pattern=leather", 0},
        {"with a striped scarf", "accessory=scarf;outfit_pattern=?", 0},
        {"spiky-haired, under a blue sky", "hair_style=spiky;background=sky", 0},
        {"a bald critter at night with three eyes", "hair_style=bald;background=night;eye_count=three", 0},
        {"vincent, red, jumping", "character=vincent;pose=jumping", 1},
        {"crouching with one knee down and a fist on the ground", "pose=landing", 0},
        {"a golden necklace and golden hair", "accessory=necklace;accessory_colour=gold;hair_colour=blonde", 0},
        {"Wearing a Polka-Dot T-Shirt.", "outfit=t_shirt;outfit_pattern=dotted", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_toy_claim cl[16];
        int dangling = -1, n = it_toy_caption_claims(cases[i].text, cl, 16, &dangling);
        char got[256] = "";
        for (int k = 0; k < n && k < 16; k++) {
            const char *an = cl[k].attr == IT_TOY_N_ATTRS ? "character" : it_toy_attr_get(cl[k].attr)->name;
            const char *vn = cl[k].value < 0 ? "?"
                             : cl[k].attr == IT_TOY_N_ATTRS ? it_toy_character_get(cl[k].value)->name
                                                            : it_toy_value_name(cl[k].attr, cl[k].value);
            size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%s%s=%s", k ? ";" : "", an, vn);
        }
        IT_CHECK_STR(got, cases[i].expect);
        IT_CHECK_INT(dangling, cases[i].dangling);
    }
}
