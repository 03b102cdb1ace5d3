/* characters.c: the table of named characters.
 *
 * Twelve characters; the last four are held out: no pretraining image ever
 * shows them (nor their markings), so a model can only learn them from a
 * fine-tuning scenario. Base designs were chosen so that no two characters
 * share body shape + body colour + eye count, and every marking is unique. */
#include "toy/characters.h"

#include <string.h>

#include "toy/creature.h"

#define C(r, g, b) {r, g, b}

/* Body colour indices: 0 green, 1 blue, 2 purple, 3 orange, 4 pink,
 * 5 yellow, 6 teal, 7 grey. Eye count index: 0 one, 1 two, 2 three. */
static const it_toy_character g_chars[] = {
    {"pip", 0, IT_TOY_SHAPE_ROUND, 5, 1, IT_TOY_MOUTH_SMILE, IT_TOY_HAIR_SPIKY,
     IT_TOY_MARK_STAR, C(220, 40, 40), "round yellow, two eyes, smiling, spiky hair, red star"},
    {"bo", 0, IT_TOY_SHAPE_BLOCKY, 1, 0, IT_TOY_MOUTH_FLAT, IT_TOY_HAIR_BALD,
     IT_TOY_MARK_BOLT, C(250, 220, 40), "blocky blue, one eye, flat mouth, bald, yellow lightning bolt"},
    {"kiki", 0, IT_TOY_SHAPE_TALL, 4, 2, IT_TOY_MOUTH_OPEN, IT_TOY_HAIR_CURLY,
     IT_TOY_MARK_FRECKLES, C(140, 70, 40), "tall pink, three eyes, open mouth, curly hair, freckles"},
    {"zed", 0, IT_TOY_SHAPE_ROUND, 0, 1, IT_TOY_MOUTH_FANGS, IT_TOY_HAIR_LONG,
     IT_TOY_MARK_CROSS, C(250, 250, 250), "round green, two eyes, fangs, long hair, white cross"},
    {"lumo", 0, IT_TOY_SHAPE_TALL, 6, 0, IT_TOY_MOUTH_SMILE, IT_TOY_HAIR_LONG,
     IT_TOY_MARK_MOON, C(255, 230, 80), "tall teal, one eye, smiling, long hair, yellow crescent moon"},
    {"rex", 0, IT_TOY_SHAPE_BLOCKY, 3, 2, IT_TOY_MOUTH_FANGS, IT_TOY_HAIR_SPIKY,
     IT_TOY_MARK_DIAMOND, C(40, 90, 220), "blocky orange, three eyes, fangs, spiky hair, blue diamond"},
    {"tilly", 0, IT_TOY_SHAPE_ROUND, 2, 1, IT_TOY_MOUTH_OPEN, IT_TOY_HAIR_CURLY,
     IT_TOY_MARK_HEART, C(230, 30, 60), "round purple, two eyes, open mouth, curly hair, red heart"},
    {"gus", 0, IT_TOY_SHAPE_BLOCKY, 7, 1, IT_TOY_MOUTH_SMILE, IT_TOY_HAIR_BALD,
     IT_TOY_MARK_WHISKERS, C(30, 30, 30), "blocky grey, two eyes, smiling, bald, black whiskers"},
    {"vincent", 1, IT_TOY_SHAPE_TALL, 1, 1, IT_TOY_MOUTH_FLAT, IT_TOY_HAIR_SPIKY,
     IT_TOY_MARK_SCAR, C(120, 20, 30), "tall blue, two eyes, flat mouth, spiky hair, dark red scar"},
    {"mira", 1, IT_TOY_SHAPE_ROUND, 6, 2, IT_TOY_MOUTH_SMILE, IT_TOY_HAIR_LONG,
     IT_TOY_MARK_TEAR, C(30, 80, 220), "round teal, three eyes, smiling, long hair, blue teardrop"},
    {"tobi", 1, IT_TOY_SHAPE_BLOCKY, 4, 0, IT_TOY_MOUTH_FANGS, IT_TOY_HAIR_CURLY,
     IT_TOY_MARK_CLOVER, C(30, 140, 50), "blocky pink, one eye, fangs, curly hair, green clover"},
    {"nox", 1, IT_TOY_SHAPE_TALL, 2, 1, IT_TOY_MOUTH_OPEN, IT_TOY_HAIR_SPIKY,
     IT_TOY_MARK_TRIANGLE, C(250, 250, 250), "tall purple, two eyes, open mouth, spiky hair, white triangle"},
};

int it_toy_character_count(void) { return (int)(sizeof g_chars / sizeof g_chars[0]); }

const it_toy_character *it_toy_character_get(int index)
{
    if (index < 0 || index >= it_toy_character_count()) return NULL;
    return &g_chars[index];
}

int it_toy_character_find(const char *name)
{
    for (int i = 0; i < it_toy_character_count(); i++)
        if (strcmp(g_chars[i].name, name) == 0) return i;
    return -1;
}

int it_toy_character_by_marking(int marking)
{
    for (int i = 0; i < it_toy_character_count(); i++)
        if (g_chars[i].marking == marking) return i;
    return -1;
}
