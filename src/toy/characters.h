/* characters.h: the toy world's named characters.
 *
 * Owns: the fixed base design of each named character (body shape and
 * colour, eye count, mouth, hair style, face marking and its colour) and
 * which of them are held out of pretraining. Everything else (hair colour,
 * clothes, hat, accessory, pose, background, jitter) varies per image. The
 * held-out rule itself is enforced by the sampler and the renderer
 * (creature.h, toydraw.h) through an it_toy_purpose argument. */
#ifndef IT_CHARACTERS_H
#define IT_CHARACTERS_H

#include <stdint.h>

typedef struct it_toy_character {
    const char *name;     /* lower-case, one word: also its caption word */
    int held_out;         /* never rendered for IT_TOY_PRETRAIN */
    int body_shape, body_colour, eye_count, mouth, hair_style, marking;
    uint8_t marking_rgb[3];
    const char *about;    /* one line for `toy list` and the docs */
} it_toy_character;

int it_toy_character_count(void);
const it_toy_character *it_toy_character_get(int index);
/* Index by name (case-sensitive), or -1. */
int it_toy_character_find(const char *name);
/* Index of the character wearing marking m, or -1. */
int it_toy_character_by_marking(int marking);

#endif
