/* captions.c: caption generation and the caption claim parser.
 *
 * Grammar (both directions agree on it): a caption is a subject noun phrase
 * ("a round blue creature", "bald" and the shape may join it) followed by
 * clauses in random order; every colour, pattern or hair-style word stands
 * immediately before the noun it describes (hair, skin, creature, a hat,
 * an outfit, an accessory), and every other attribute is a fixed phrase
 * from the schema's caption words. The parser tokenises, matches the
 * longest known phrase at each position, keeps modifiers pending until the
 * next noun and resolves them against that noun's attribute, so "red" in
 * "red hair" and in "red scarf" are different claims. */
#include "toy/captions.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "toy/characters.h"

/* ------------------------------------------------------------ words */

/* Copies alternative `k` of a '|'-separated list into buf. */
static int word_count(const char *words)
{
    if (!words[0]) return 0;
    int n = 1;
    for (const char *p = words; *p; p++) n += *p == '|';
    return n;
}

static void word_at(char *buf, size_t cap, const char *words, int k)
{
    const char *p = words;
    while (k-- > 0 && (p = strchr(p, '|'))) p++;
    if (!p) p = words;
    const char *end = strchr(p, '|');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= cap) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
}

static void pick_word(it_rng *r, char *buf, size_t cap, int attr, int value)
{
    const char *w = it_toy_attr_get(attr)->values[value].words;
    word_at(buf, cap, w, (int)it_rng_below(r, (uint64_t)word_count(w)));
}

/* ------------------------------------------------------------ generation */

typedef struct gen {
    it_rng r;
    const it_toy_attrs *a;
    uint32_t mention;
    char clauses[16][256];
    int n_clauses;
} gen;

static int has(const gen *g, int attr) { return (g->mention >> attr) & 1u; }

static void clause(gen *g, const char *fmt, const char *x, const char *y, const char *z)
{
    if (g->n_clauses >= 16) return;
    snprintf(g->clauses[g->n_clauses++], sizeof g->clauses[0], fmt, x, y, z);
}

/* "[colour] [pattern]" prefix before a noun, each part only when mentioned. */
static void mods(gen *g, char *buf, size_t cap, int colour_attr, int pattern_attr)
{
    char c[48] = "", p[48] = "";
    if (colour_attr >= 0 && has(g, colour_attr)) pick_word(&g->r, c, sizeof c, colour_attr, g->a->v[colour_attr]);
    if (pattern_attr >= 0 && has(g, pattern_attr)) pick_word(&g->r, p, sizeof p, pattern_attr, g->a->v[pattern_attr]);
    snprintf(buf, cap, "%s%s%s%s", c, c[0] ? " " : "", p, p[0] ? " " : "");
}

static void clause_for_part(gen *g, int kind_attr, int colour_attr, int pattern_attr, int tags)
{
    char m[100], noun[64];
    mods(g, m, sizeof m, colour_attr, pattern_attr);
    pick_word(&g->r, noun, sizeof noun, kind_attr, g->a->v[kind_attr]);
    int plural = noun[strlen(noun) - 1] == 's';
    const char *art = plural ? "" : strchr("aeiou", m[0] ? m[0] : noun[0]) ? "an " : "a ";
    if (tags)
        clause(g, "%s%s%s", m, noun, "");
    else if (kind_attr == IT_TOY_ACCESSORY && it_rng_float(&g->r) < 0.4f)
        clause(g, "with %s%s%s", art, m, noun);
    else
        clause(g, "wearing %s%s%s", art, m, noun);
}

/* Most of the time, clothes go into one clause the way people list them:
 * "wearing a red cap, a black leather jacket and a scarf". */
static void merge_worn(gen *g, int first)
{
    int idx[3], n = 0;
    for (int i = first; i < g->n_clauses && n < 3; i++)
        if (!strncmp(g->clauses[i], "wearing ", 8)) idx[n++] = i;
    if (n < 2 || it_rng_float(&g->r) < 0.35f) return;
    char merged[256] = "wearing";
    for (int k = 0; k < n; k++) {
        size_t l = strlen(merged);
        snprintf(merged + l, sizeof merged - l, "%s%s", k == 0 ? " " : k == n - 1 ? " and " : ", ",
                 g->clauses[idx[k]] + 8);
    }
    snprintf(g->clauses[idx[0]], sizeof g->clauses[0], "%s", merged);
    for (int k = n - 1; k >= 1; k--) {
        memmove(g->clauses[idx[k]], g->clauses[idx[k] + 1], sizeof g->clauses[0] * (size_t)(g->n_clauses - idx[k] - 1));
        g->n_clauses--;
    }
}

static void build_clauses(gen *g, int tags)
{
    const it_toy_attrs *a = g->a;
    char w[160], w2[64];
    if (has(g, IT_TOY_EYE_COUNT)) {
        pick_word(&g->r, w, sizeof w, IT_TOY_EYE_COUNT, a->v[IT_TOY_EYE_COUNT]);
        clause(g, tags ? "%s" : "with %s", w, "", "");
    }
    if (has(g, IT_TOY_GOGGLES)) {
        pick_word(&g->r, w, sizeof w, IT_TOY_GOGGLES, a->v[IT_TOY_GOGGLES]);
        clause(g, tags ? "%s" : "wearing %s", w, "", "");
    }
    if (has(g, IT_TOY_MOUTH)) {
        pick_word(&g->r, w, sizeof w, IT_TOY_MOUTH, a->v[IT_TOY_MOUTH]);
        clause(g, tags ? "%s" : "with %s", w, "", "");
    }
    int hs = has(g, IT_TOY_HAIR_STYLE) && a->v[IT_TOY_HAIR_STYLE] != IT_TOY_HAIR_BALD;
    int hc = has(g, IT_TOY_HAIR_COLOUR);
    if (hs || hc) {
        char s[48] = "", c[48] = "";
        if (hs) pick_word(&g->r, s, sizeof s, IT_TOY_HAIR_STYLE, a->v[IT_TOY_HAIR_STYLE]);
        if (hc) pick_word(&g->r, c, sizeof c, IT_TOY_HAIR_COLOUR, a->v[IT_TOY_HAIR_COLOUR]);
        int style_first = it_rng_float(&g->r) < 0.75f;
        snprintf(w, sizeof w, "%s%s%s", style_first ? s : c, hs && hc ? " " : "", style_first ? c : s);
        if (tags)
            clause(g, "%s hair", w, "", "");
        else if (it_rng_float(&g->r) < 0.2f && !(hs && hc))
            clause(g, "%s-haired", w, "", "");
        else
            clause(g, "with %s hair", w, "", "");
    }
    if (has(g, IT_TOY_BODY_COLOUR) && it_rng_float(&g->r) < 0.3f) {
        /* The other 70 %: the colour goes into the subject noun phrase. */
        pick_word(&g->r, w2, sizeof w2, IT_TOY_BODY_COLOUR, a->v[IT_TOY_BODY_COLOUR]);
        clause(g, tags ? "%s skin" : "with %s skin", w2, "", "");
        g->mention &= ~(1u << IT_TOY_BODY_COLOUR); /* stated here, not in the subject */
    }
    int first_worn = g->n_clauses;
    if (has(g, IT_TOY_HAT)) clause_for_part(g, IT_TOY_HAT, IT_TOY_HAT_COLOUR, -1, tags);
    if (has(g, IT_TOY_OUTFIT)) clause_for_part(g, IT_TOY_OUTFIT, IT_TOY_OUTFIT_COLOUR, IT_TOY_OUTFIT_PATTERN, tags);
    if (has(g, IT_TOY_ACCESSORY)) clause_for_part(g, IT_TOY_ACCESSORY, IT_TOY_ACCESSORY_COLOUR, -1, tags);
    if (!tags) merge_worn(g, first_worn);
    if (has(g, IT_TOY_MARKING)) {
        pick_word(&g->r, w2, sizeof w2, IT_TOY_MARKING, a->v[IT_TOY_MARKING]);
        int plural = w2[strlen(w2) - 1] == 's';
        if (tags)
            clause(g, "%s", w2, "", "");
        else
            clause(g, plural ? "with %s%s on its face" : "with a %s%s on its cheek", w2, "", "");
    }
    for (int at = IT_TOY_POSE; at <= IT_TOY_BACKGROUND; at++)
        if (has(g, at)) {
            pick_word(&g->r, w, sizeof w, at, a->v[at]);
            clause(g, "%s", w, "", "");
        }
}

/* Which attributes may be stated: true, visible, captionable, not excluded. */
static uint32_t eligible(const it_toy_attrs *a, uint32_t exclude)
{
    uint32_t m = 0;
    for (int at = 0; at < IT_TOY_N_ATTRS; at++) {
        int v = a->v[at];
        if (v < 0 || !it_toy_attr_get(at)->values[v].words[0]) continue;
        m |= 1u << at;
    }
    m &= ~exclude;
    /* A colour or pattern needs its noun. */
    if (!(m & (1u << IT_TOY_HAT))) m &= ~(1u << IT_TOY_HAT_COLOUR);
    if (!(m & (1u << IT_TOY_OUTFIT))) m &= ~((1u << IT_TOY_OUTFIT_COLOUR) | (1u << IT_TOY_OUTFIT_PATTERN));
    if (!(m & (1u << IT_TOY_ACCESSORY))) m &= ~(1u << IT_TOY_ACCESSORY_COLOUR);
    return m;
}

static uint32_t choose_mentions(it_rng *r, uint32_t elig, int k)
{
    int idx[IT_TOY_N_ATTRS], n = 0;
    for (int at = 0; at < IT_TOY_N_ATTRS; at++)
        if ((elig >> at) & 1u) idx[n++] = at;
    it_rng_shuffle_i32(r, idx, (size_t)n);
    uint32_t m = 0;
    for (int i = 0; i < n && i < k; i++) m |= 1u << idx[i];
    if (m & (1u << IT_TOY_HAT_COLOUR)) m |= 1u << IT_TOY_HAT;
    if (m & ((1u << IT_TOY_OUTFIT_COLOUR) | (1u << IT_TOY_OUTFIT_PATTERN))) m |= 1u << IT_TOY_OUTFIT;
    if (m & (1u << IT_TOY_ACCESSORY_COLOUR)) m |= 1u << IT_TOY_ACCESSORY;
    return m;
}

static void append(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    if (n + 1 < cap) snprintf(dst + n, cap - n, "%s", s);
}

it_status it_toy_caption_make(it_err *err, it_toy_caption *out, const it_toy_attrs *a,
                              it_toy_caption_style style, int with_name, uint32_t exclude,
                              uint64_t seed, uint64_t index, int variant)
{
    IT_TRY(it_toy_attrs_validate(err, a));
    gen g;
    memset(&g, 0, sizeof g);
    g.a = a;
    it_rng_init(&g.r, seed * 0x9E3779B97F4A7C15ull + index * 0xC2B2AE3D27D4EB4Full + (uint64_t)variant * 7919u +
                          (uint64_t)style * 104729u + 0xCA97u);
    int lo = style == IT_TOY_CAP_SHORT ? 1 : style == IT_TOY_CAP_LONG ? 5 : 4;
    int hi = style == IT_TOY_CAP_SHORT ? 3 : style == IT_TOY_CAP_LONG ? 10 : 8;
    int k = lo + (int)it_rng_below(&g.r, (uint64_t)(hi - lo + 1));
    g.mention = choose_mentions(&g.r, eligible(a, exclude), k);
    uint32_t stated = g.mention;
    int tags = style == IT_TOY_CAP_TAGS;
    build_clauses(&g, tags);
    /* Shuffle clause order. */
    for (int i = g.n_clauses - 1; i > 0; i--) {
        int j = (int)it_rng_below(&g.r, (uint64_t)(i + 1));
        char tmp[256];
        memcpy(tmp, g.clauses[i], sizeof tmp);
        memcpy(g.clauses[i], g.clauses[j], sizeof tmp);
        memcpy(g.clauses[j], tmp, sizeof tmp);
    }
    const it_toy_character *ch = it_toy_character_get(a->character);
    int name = with_name && ch && !(exclude & IT_TOY_MENTION_CHARACTER);
    char *t = out->text;
    t[0] = 0;
    static const char *nouns[] = {"creature", "monster", "critter"};
    const char *noun = nouns[it_rng_below(&g.r, 3)];
    char shape[48] = "", colour[48] = "", bald[8] = "";
    if (has(&g, IT_TOY_BODY_SHAPE)) pick_word(&g.r, shape, sizeof shape, IT_TOY_BODY_SHAPE, a->v[IT_TOY_BODY_SHAPE]);
    if (has(&g, IT_TOY_BODY_COLOUR))
        pick_word(&g.r, colour, sizeof colour, IT_TOY_BODY_COLOUR, a->v[IT_TOY_BODY_COLOUR]);
    if (has(&g, IT_TOY_HAIR_STYLE) && a->v[IT_TOY_HAIR_STYLE] == IT_TOY_HAIR_BALD) snprintf(bald, sizeof bald, "bald");
    if (tags) {
        if (name) append(t, IT_TOY_CAPTION_MAX, ch->name), append(t, IT_TOY_CAPTION_MAX, ", ");
        char subj[160];
        snprintf(subj, sizeof subj, "%s%s%s%s%s%s%s", bald, bald[0] ? " " : "", shape, shape[0] ? " " : "", colour,
                 colour[0] ? " " : "", noun);
        append(t, IT_TOY_CAPTION_MAX, subj);
        for (int i = 0; i < g.n_clauses; i++) {
            append(t, IT_TOY_CAPTION_MAX, ", ");
            append(t, IT_TOY_CAPTION_MAX, g.clauses[i]);
        }
    } else {
        char subj[200];
        const char *first = bald[0] ? bald : shape[0] ? shape : colour[0] ? colour : noun;
        const char *art = strchr("aeiou", first[0]) ? "an" : "a";
        snprintf(subj, sizeof subj, "%s%s%s %s%s%s%s%s%s%s", name ? ch->name : "", name ? ", " : "", art, bald,
                 bald[0] ? " " : "", shape, shape[0] ? " " : "", colour, colour[0] ? " " : "", noun);
        append(t, IT_TOY_CAPTION_MAX, subj);
        for (int i = 0; i < g.n_clauses; i++) {
            int last = i == g.n_clauses - 1 && g.n_clauses > 1;
            append(t, IT_TOY_CAPTION_MAX, last ? " and " : (i == 0 ? " " : ", "));
            append(t, IT_TOY_CAPTION_MAX, g.clauses[i]);
        }
    }
    out->mentioned = stated | (name ? IT_TOY_MENTION_CHARACTER : 0);
    if (strlen(t) + 1 >= IT_TOY_CAPTION_MAX)
        return it_err_set(err, IT_ERR_INTERNAL, "caption longer than %d bytes", IT_TOY_CAPTION_MAX);
    return IT_OK;
}

/* ------------------------------------------------------------ parser */

enum { LX_CLAIM, LX_COLOUR, LX_PATTERN, LX_HAIRSTYLE, LX_NOUN_BODY, LX_NOUN_HAIR, LX_NOUN_PART };

#define LX_TOK 10
typedef struct lex {
    char tok[LX_TOK][24];
    int n;
    int kind, attr, value;
    char raw[32]; /* colour word as written, resolved against the noun */
} lex;

#define LX_MAX 320
#define MAXTOK 256
typedef struct lexicon {
    lex e[LX_MAX];
    int n;
    char toks[MAXTOK][24]; /* the caption being parsed */
} lexicon;

static int tokenize(const char *s, char toks[][24], int max)
{
    int n = 0;
    while (*s && n < max) {
        if (*s == ',' || *s == '.' || *s == ';' || *s == ':') {
            strcpy(toks[n++], ",");
            s++;
            continue;
        }
        if (!isalnum((unsigned char)*s)) {
            s++;
            continue;
        }
        int k = 0;
        while (isalnum((unsigned char)*s)) {
            if (k < 23) toks[n][k++] = (char)tolower((unsigned char)*s);
            s++;
        }
        toks[n][k] = 0;
        n++;
    }
    return n;
}

static void lx_add(lexicon *L, const char *phrase, int kind, int attr, int value)
{
    if (L->n >= LX_MAX) return;
    lex *e = &L->e[L->n];
    memset(e, 0, sizeof *e);
    e->n = tokenize(phrase, e->tok, LX_TOK);
    /* Leading articles are not part of a phrase. */
    while (e->n > 1 && (!strcmp(e->tok[0], "a") || !strcmp(e->tok[0], "an"))) {
        memmove(e->tok[0], e->tok[1], sizeof e->tok[0] * (size_t)(e->n - 1));
        e->n--;
    }
    if (e->n == 0) return;
    e->kind = kind;
    e->attr = attr;
    e->value = value;
    snprintf(e->raw, sizeof e->raw, "%s", phrase);
    L->n++;
}

static void lx_add_words(lexicon *L, const char *words, int kind, int attr, int value)
{
    int n = word_count(words);
    for (int k = 0; k < n; k++) {
        char w[96];
        word_at(w, sizeof w, words, k);
        lx_add(L, w, kind, attr, value);
    }
}

static void lexicon_build(lexicon *L)
{
    L->n = 0;
    static const int claims[] = {IT_TOY_BODY_SHAPE, IT_TOY_EYE_COUNT, IT_TOY_GOGGLES, IT_TOY_MOUTH,
                                 IT_TOY_POSE,       IT_TOY_BACKGROUND, IT_TOY_MARKING};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        const it_toy_attr_info *ai = it_toy_attr_get(claims[i]);
        for (int v = 0; v < ai->n_values; v++) lx_add_words(L, ai->values[v].words, LX_CLAIM, claims[i], v);
    }
    const it_toy_attr_info *hs = it_toy_attr_get(IT_TOY_HAIR_STYLE);
    for (int v = 0; v < hs->n_values; v++)
        lx_add_words(L, hs->values[v].words, v == IT_TOY_HAIR_BALD ? LX_CLAIM : LX_HAIRSTYLE, IT_TOY_HAIR_STYLE, v);
    const it_toy_attr_info *pt = it_toy_attr_get(IT_TOY_OUTFIT_PATTERN);
    for (int v = 0; v < pt->n_values; v++) lx_add_words(L, pt->values[v].words, LX_PATTERN, IT_TOY_OUTFIT_PATTERN, v);
    static const int parts[] = {IT_TOY_HAT, IT_TOY_OUTFIT, IT_TOY_ACCESSORY};
    for (size_t i = 0; i < 3; i++) {
        const it_toy_attr_info *ai = it_toy_attr_get(parts[i]);
        for (int v = 0; v < ai->n_values; v++) lx_add_words(L, ai->values[v].words, LX_NOUN_PART, parts[i], v);
    }
    for (int at = 0; at < IT_TOY_N_ATTRS; at++) {
        const it_toy_attr_info *ai = it_toy_attr_get(at);
        if (!ai->is_colour) continue;
        for (int v = 0; v < ai->n_values; v++) lx_add_words(L, ai->values[v].words, LX_COLOUR, at, v);
    }
    lx_add_words(L, "creature|monster|critter|skin|skinned", LX_NOUN_BODY, IT_TOY_BODY_COLOUR, 0);
    lx_add_words(L, "hair|haired", LX_NOUN_HAIR, IT_TOY_HAIR_COLOUR, 0);
    for (int c = 0; c < it_toy_character_count(); c++)
        lx_add(L, it_toy_character_get(c)->name, LX_CLAIM, IT_TOY_N_ATTRS, c);
}

/* Value of colour attribute `attr` that the word names, or -1. */
static int colour_value(int attr, const char *raw)
{
    const it_toy_attr_info *ai = it_toy_attr_get(attr);
    for (int v = 0; v < ai->n_values; v++) {
        int n = word_count(ai->values[v].words);
        for (int k = 0; k < n; k++) {
            char w[64];
            word_at(w, sizeof w, ai->values[v].words, k);
            if (strcmp(w, raw) == 0) return v;
        }
    }
    return -1;
}

typedef struct pstate {
    it_toy_claim *out;
    int max, n, dangling;
    const lex *pending[8];
    int n_pending;
} pstate;

static void emit(pstate *ps, int attr, int value)
{
    if (ps->n < ps->max) ps->out[ps->n] = (it_toy_claim){attr, value};
    ps->n++;
}

static void resolve(pstate *ps, int kind, int part_attr)
{
    int colour_attr = kind == LX_NOUN_BODY ? IT_TOY_BODY_COLOUR
                    : kind == LX_NOUN_HAIR ? IT_TOY_HAIR_COLOUR
                    : part_attr == IT_TOY_HAT ? IT_TOY_HAT_COLOUR
                    : part_attr == IT_TOY_OUTFIT ? IT_TOY_OUTFIT_COLOUR
                                                 : IT_TOY_ACCESSORY_COLOUR;
    for (int i = 0; i < ps->n_pending; i++) {
        const lex *m = ps->pending[i];
        if (m->kind == LX_COLOUR)
            emit(ps, colour_attr, colour_value(colour_attr, m->raw));
        else if (m->kind == LX_PATTERN)
            emit(ps, IT_TOY_OUTFIT_PATTERN, part_attr == IT_TOY_OUTFIT && kind == LX_NOUN_PART ? m->value : -1);
        else
            emit(ps, IT_TOY_HAIR_STYLE, kind == LX_NOUN_HAIR ? m->value : -1);
    }
    ps->n_pending = 0;
}

int it_toy_caption_claims(const char *text, it_toy_claim *out, int max, int *dangling)
{
    lexicon *L = it_malloc(sizeof *L);
    if (!L) return -1;
    lexicon_build(L);
    char (*toks)[24] = L->toks;
    int nt = tokenize(text, toks, MAXTOK);
    pstate ps = {out, max, 0, 0, {0}, 0};
    for (int i = 0; i < nt;) {
        if (!strcmp(toks[i], ",")) {
            ps.dangling += ps.n_pending;
            ps.n_pending = 0;
            i++;
            continue;
        }
        const lex *best = NULL;
        for (int e = 0; e < L->n; e++) {
            const lex *x = &L->e[e];
            if (x->n > nt - i || (best && x->n <= best->n)) continue;
            int ok = 1;
            for (int k = 0; k < x->n && ok; k++) ok = !strcmp(x->tok[k], toks[i + k]);
            if (ok) best = x;
        }
        if (!best) {
            i++;
            continue;
        }
        i += best->n;
        switch (best->kind) {
        case LX_CLAIM: emit(&ps, best->attr, best->value); break;
        case LX_COLOUR:
        case LX_PATTERN:
        case LX_HAIRSTYLE:
            if (ps.n_pending < 8) ps.pending[ps.n_pending++] = best;
            break;
        case LX_NOUN_PART:
            emit(&ps, best->attr, best->value);
            resolve(&ps, best->kind, best->attr);
            break;
        default: resolve(&ps, best->kind, -1); break;
        }
    }
    ps.dangling += ps.n_pending;
    it_free(L);
    if (dangling) *dangling = ps.dangling;
    return ps.n;
}
