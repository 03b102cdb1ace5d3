/* intent_cues.c: noun-phrase chunks, operation cues and their scopes.
 *
 * The grammar is deliberately shallow, in three steps per sentence:
 *  1. cues: words that carry an operation ("keep", "consistent", "no",
 *     "switchable", "remove"), each with a direction: a prefix cue governs
 *     the noun phrases after it ("keep the face"), a postfix cue the phrases
 *     before it ("the face stays the same"). Negation within a few words
 *     flips a cue ("don't change" = preserve, "never wear" = remove).
 *  2. chunks: runs of content words between function words, each with a head
 *     noun from the lexicon (or an unknown noun before a property word),
 *     modifier words, a property for attribute-level phrases, a possessor,
 *     and the [n] marks inside it.
 *  3. scopes: a prefix cue claims the coordinated list of chunks that
 *     follows it ("keep the face, hair and eyes"); a postfix cue the list
 *     that precedes its predicate ("his face and hair should stay the
 *     same"). Tight cues ("no", "without", "any") beat postfix cues, which
 *     beat prefix cues: "keep the face, the hat can change" keeps the face
 *     and lets the hat change. Value cues ("between X and Y", "can be X or
 *     Y") turn the chunks they claim into explicit values of a concept.
 * The rules are general; the vocabulary is in lexicon.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intent/parse_priv.h"

/* ---- cue table --------------------------------------------------------------- */

typedef struct cue_pat {
    const char *words;
    it_concept_op op;
    cue_dir dir;
    unsigned flags;
} cue_pat;

#define PRE IT_OP_PRESERVE
#define MOD IT_OP_MODIFY
#define REM IT_OP_REMOVE
#define L CUE_LEFT
#define R CUE_RIGHT
#define B CUE_BOTH

/* Verbs whose direction depends on the place: imperative ("change the
 * background") governs what follows, after a modal or a noun ("the pose can
 * change") what precedes. Marked with the pseudo-direction 0. */
static const cue_pat g_cues[] = {
    /* preserve */
    {"keep", PRE, R, CUE_PREDVAL}, {"keeps", PRE, R, CUE_PREDVAL}, {"keeping", PRE, R, CUE_PREDVAL},
    {"preserve", PRE, R, 0}, {"preserves", PRE, R, 0}, {"preserving", PRE, R, 0},
    {"retain", PRE, R, 0}, {"retains", PRE, R, 0}, {"maintain", PRE, R, 0}, {"maintains", PRE, R, 0},
    {"capture", PRE, R, CUE_KNOWN}, {"captures", PRE, R, CUE_KNOWN}, {"reproduce", PRE, R, CUE_KNOWN}, {"lock in", PRE, R, 0},
    {"lock", PRE, R, 0}, {"stick to", PRE, R, 0}, {"respect", PRE, R, CUE_KNOWN}, {"remember", PRE, R, CUE_KNOWN},
    {"memorize", PRE, R, CUE_KNOWN}, {"memorise", PRE, R, CUE_KNOWN}, {"learn", PRE, R, CUE_KNOWN}, {"copy", PRE, R, CUE_KNOWN},
    {"consistent", PRE, B, 0}, {"consistently", PRE, L, 0}, {"the same", PRE, B, 0}, {"same", PRE, B, 0},
    {"identical", PRE, B, 0}, {"unchanged", PRE, L, 0}, {"fixed", PRE, L, 0}, {"constant", PRE, B, 0},
    {"stable", PRE, L, 0}, {"intact", PRE, L, 0}, {"recognizable", PRE, L, 0}, {"recognisable", PRE, L, 0},
    {"faithful", PRE, L, 0}, {"faithfully", PRE, L, 0}, {"exact", PRE, B, 0}, {"exactly", PRE, L, 0},
    {"stay", PRE, L, CUE_PREDVAL}, {"stays", PRE, L, CUE_PREDVAL}, {"remain", PRE, L, CUE_PREDVAL},
    {"remains", PRE, L, CUE_PREDVAL}, {"kept", PRE, L, CUE_PREDVAL}, {"preserved", PRE, L, 0},
    {"retained", PRE, L, 0}, {"maintained", PRE, L, 0}, {"captured", PRE, L, 0}, {"locked", PRE, L, 0},
    {"accurate", PRE, L, 0}, {"accurately", PRE, L, 0}, {"important", PRE, L, 0}, {"essential", PRE, L, 0},
    {"crucial", PRE, L, 0}, {"untouched", PRE, L, 0}, {"unaltered", PRE, L, 0}, {"persistent", PRE, L, 0},
    {"matter", PRE, L, 0}, {"matters", PRE, L, 0}, {"always", PRE, B, 0}, {"as is", PRE, L, 0},
    {"must be learned", PRE, L, 0}, {"reproduced", PRE, L, 0}, {"on-model", PRE, L, 0},
    {"on model", PRE, L, 0}, {"true to", PRE, R, 0}, {"every time", PRE, L, 0},
    /* importance predicates: "are mandatory", "are iconic", "define it" */
    {"mandatory", PRE, L, 0}, {"required", PRE, L, 0}, {"necessary", PRE, L, 0}, {"iconic", PRE, L, 0},
    {"vital", PRE, L, 0}, {"critical", PRE, L, 0}, {"central", PRE, L, 0}, {"defining", PRE, L, 0},
    {"define", PRE, L, 0}, {"defines", PRE, L, 0}, {"the point", PRE, L, 0},
    {"part of who", PRE, L, 0}, {"part of what", PRE, L, 0}, {"non-negotiable", PRE, L, 0}, {"a must", PRE, L, 0},
    {"characteristic", PRE, L, 0}, {"distinctive", PRE, L, 0},
    /* modify */
    {"switch", MOD, 0, 0}, {"swap", MOD, 0, 0}, {"change", MOD, 0, 0}, {"vary", MOD, 0, 0},
    {"alternate", MOD, 0, 0}, {"adjust", MOD, 0, 0}, {"control", MOD, 0, 0}, {"customize", MOD, R, 0},
    {"customise", MOD, R, 0}, {"choose", MOD, R, 0}, {"pick", MOD, R, 0}, {"select", MOD, R, 0},
    {"edit", MOD, R, 0}, {"mix and match", MOD, R, 0}, {"toggle", MOD, R, 0},
    {"between", MOD, R, CUE_VALUES}, {"either", MOD, R, CUE_VALUES},
    {"any", MOD, R, CUE_TIGHT | CUE_ANY}, {"different", MOD, B, CUE_TIGHT}, {"various", MOD, R, CUE_TIGHT},
    {"multiple", MOD, R, CUE_TIGHT}, {"several", MOD, R, CUE_TIGHT}, {"whatever", MOD, R, CUE_TIGHT},
    {"all kinds of", MOD, R, CUE_TIGHT}, {"any kind of", MOD, R, CUE_TIGHT | CUE_ANY},
    {"adjustable", MOD, L, 0}, {"changeable", MOD, L, 0}, {"controllable", MOD, L, 0},
    {"switchable", MOD, L, 0}, {"swappable", MOD, L, 0}, {"interchangeable", MOD, L, 0},
    {"customizable", MOD, L, 0}, {"customisable", MOD, L, 0}, {"editable", MOD, L, 0},
    {"variable", MOD, L, 0}, {"flexible", MOD, L, 0}, {"optional", MOD, L, 0}, {"varies", MOD, L, 0},
    {"varied", MOD, L, 0}, {"changes", MOD, L, 0}, {"changed", MOD, L, 0}, {"switched", MOD, L, 0},
    {"swapped", MOD, L, 0}, {"controlled", MOD, L, 0}, {"adjusted", MOD, L, 0}, {"differ", MOD, L, 0},
    {"anything", MOD, L, 0}, {"promptable", MOD, L, 0}, {"up to the prompt", MOD, L, 0},
    {"up to the user", MOD, L, 0}, {"free to change", MOD, L, 0}, {"negotiable", MOD, L, 0},
    {"vary freely", MOD, L, 0}, {"changing", MOD, L, 0}, {"varying", MOD, L, 0}, {"diverse", MOD, L, 0},
    {"random", MOD, L, 0}, {"tunable", MOD, L, 0},
    {"configurable", MOD, L, 0}, {"on or off", MOD, L, 0}, {"with or without", MOD, B, 0},
    {"free", MOD, L, 0}, {"drift", MOD, 0, 0}, {"drifts", MOD, L, 0}, {"shift", MOD, 0, 0},
    {"replaced", MOD, L, 0}, {"exchanged", MOD, L, 0}, {"exchange", MOD, 0, 0}, {"replace", MOD, R, 0},
    /* remove */
    {"no", REM, R, CUE_TIGHT}, {"without", REM, R, CUE_TIGHT}, {"free of", REM, R, CUE_TIGHT},
    {"minus", REM, R, CUE_TIGHT}, {"remove", REM, R, 0}, {"removes", REM, R, 0}, {"removing", REM, R, 0},
    {"delete", REM, R, 0}, {"erase", REM, R, 0}, {"exclude", REM, R, 0}, {"avoid", REM, R, 0},
    {"drop", REM, R, 0}, {"get rid of", REM, R, 0}, {"eliminate", REM, R, 0}, {"omit", REM, R, 0},
    {"strip", REM, R, 0}, {"leave out", REM, R, 0}, {"take out", REM, R, 0}, {"take off", REM, R, 0},
    {"ban", REM, R, 0}, {"forbid", REM, R, 0}, {"suppress", REM, R, 0}, {"lose", REM, R, 0},
    {"hide", REM, R, 0}, {"clean up", REM, R, 0}, {"filter out", REM, R, 0}, {"cut out", REM, R, 0},
    {"removed", REM, L, 0}, {"deleted", REM, L, 0}, {"erased", REM, L, 0}, {"excluded", REM, L, 0},
    {"omitted", REM, L, 0}, {"gone", REM, L, 0}, {"absent", REM, L, 0}, {"banned", REM, L, 0},
    {"forbidden", REM, L, 0}, {"avoided", REM, L, 0}, {"unwanted", REM, B, 0}, {"eliminated", REM, L, 0},
    {"dropped", REM, L, 0}, {"left out", REM, L, 0}, {"taken out", REM, L, 0}, {"never", REM, R, 0},
    /* presence verbs: cues only when negated ("should not wear") */
    {"wear", REM, R, CUE_PRESENCE}, {"wears", REM, R, CUE_PRESENCE}, {"wearing", REM, R, CUE_PRESENCE},
    {"have", REM, R, CUE_PRESENCE}, {"has", REM, R, CUE_PRESENCE}, {"having", REM, R, CUE_PRESENCE},
    {"hold", REM, R, CUE_PRESENCE}, {"holds", REM, R, CUE_PRESENCE}, {"holding", REM, R, CUE_PRESENCE},
    {"carry", REM, R, CUE_PRESENCE}, {"carries", REM, R, CUE_PRESENCE}, {"include", REM, R, CUE_PRESENCE},
    {"includes", REM, R, CUE_PRESENCE}, {"show", REM, R, CUE_PRESENCE}, {"shows", REM, R, CUE_PRESENCE},
    {"contain", REM, R, CUE_PRESENCE}, {"contains", REM, R, CUE_PRESENCE}, {"feature", REM, R, CUE_PRESENCE},
    {"give", REM, R, CUE_PRESENCE}, {"add", REM, R, CUE_PRESENCE}, {"put", REM, R, CUE_PRESENCE},
    {"use", REM, R, CUE_PRESENCE}, {"draw", REM, R, CUE_PRESENCE}, {"depict", REM, R, CUE_PRESENCE},
    {"breathe", REM, R, CUE_PRESENCE}, {"want", REM, R, CUE_PRESENCE}, {"see", REM, R, CUE_PRESENCE},
    {"bring", REM, R, CUE_PRESENCE}, {"sport", REM, R, CUE_PRESENCE}, {"generate", REM, R, CUE_PRESENCE},
    {"get", REM, R, CUE_PRESENCE}, {"paint", REM, R, CUE_PRESENCE}, {"render", REM, R, CUE_PRESENCE},
    {"appear", REM, L, CUE_PRESENCE}, {"appears", REM, L, CUE_PRESENCE}, {"visible", REM, L, CUE_PRESENCE},
    {"shown", REM, L, CUE_PRESENCE}, {"included", REM, L, CUE_PRESENCE}, {"present", REM, L, CUE_PRESENCE},
    {"allowed", REM, L, CUE_PRESENCE}, {"show up", REM, L, CUE_PRESENCE}, {"be there", REM, L, CUE_PRESENCE},
    {"be seen", REM, L, CUE_PRESENCE}, {"pictured", REM, L, CUE_PRESENCE}, {"seen", REM, L, CUE_PRESENCE},
    /* past forms ("she never wore them") */
    {"wore", REM, R, CUE_PRESENCE}, {"had", REM, R, CUE_PRESENCE}, {"held", REM, R, CUE_PRESENCE},
    {"carried", REM, R, CUE_PRESENCE}, {"showed", REM, R, CUE_PRESENCE}, {"featured", REM, R, CUE_PRESENCE},
    {"drew", REM, R, CUE_PRESENCE}, {"painted", REM, R, CUE_PRESENCE}, {"gave", REM, R, CUE_PRESENCE},
};

#define N_CUES (sizeof g_cues / sizeof g_cues[0])

/* Cues sorted by their first word, for a binary search per token. */
static const cue_pat *g_cue_sorted[N_CUES];
static pthread_once_t g_cue_once = PTHREAD_ONCE_INIT;

static size_t first_word_len(const char *w)
{
    const char *sp = strchr(w, ' ');
    return sp ? (size_t)(sp - w) : strlen(w);
}

static int cmp_first_word(const char *a, size_t na, const char *b, size_t nb)
{
    size_t m = na < nb ? na : nb;
    int c = memcmp(a, b, m);
    return c ? c : (na < nb ? -1 : na > nb);
}

static int cmp_cues(const void *pa, const void *pb)
{
    const cue_pat *a = *(const cue_pat *const *)pa, *b = *(const cue_pat *const *)pb;
    int c = cmp_first_word(a->words, first_word_len(a->words), b->words, first_word_len(b->words));
    return c ? c : (a < b ? -1 : a > b);
}

/* First word -> its run [start, start + count) in g_cue_sorted: cues are
 * looked up for every token, so one hash probe replaces a binary search. */
#define CUE_SLOTS 1024
typedef struct cue_slot {
    const char *word; /* the first cue's words; NULL = empty */
    unsigned hash;
    unsigned short len, start, count;
} cue_slot;
static cue_slot g_cue_hash[CUE_SLOTS];
_Static_assert(N_CUES < CUE_SLOTS / 2, "grow CUE_SLOTS");

static unsigned hash_n(const char *w, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

static void build_cue_index(void)
{
    for (size_t i = 0; i < N_CUES; i++) g_cue_sorted[i] = &g_cues[i];
    qsort(g_cue_sorted, N_CUES, sizeof g_cue_sorted[0], cmp_cues);
    for (size_t i = 0; i < N_CUES;) {
        const char *w = g_cue_sorted[i]->words;
        size_t l = first_word_len(w), j = i + 1;
        while (j < N_CUES && !cmp_first_word(g_cue_sorted[j]->words, first_word_len(g_cue_sorted[j]->words), w, l)) j++;
        unsigned h = hash_n(w, l);
        size_t k = h & (CUE_SLOTS - 1);
        while (g_cue_hash[k].word) k = (k + 1) & (CUE_SLOTS - 1);
        g_cue_hash[k] = (cue_slot){w, h, (unsigned short)l, (unsigned short)i, (unsigned short)(j - i)};
        i = j;
    }
}

/* Range [*lo, *hi) of cues whose first word is w (empty if none). */
IT_LEX_NOCOV static void cue_range_h(const char *w, unsigned h, size_t wl, size_t *lo, size_t *hi)
{
    pthread_once(&g_cue_once, build_cue_index);
    *lo = *hi = 0;
    for (size_t k = h & (CUE_SLOTS - 1); g_cue_hash[k].word; k = (k + 1) & (CUE_SLOTS - 1)) {
        const cue_slot *c = &g_cue_hash[k];
        if (c->hash == h && c->len == wl && !memcmp(c->word, w, wl)) {
            *lo = c->start;
            *hi = (size_t)c->start + c->count;
            return;
        }
    }
}

static void cue_range(const char *w, size_t *lo, size_t *hi)
{
    size_t wl;
    unsigned h = it_lex_hash(w, &wl);
    cue_range_h(w, h, wl, lo, hi);
}

/* Does the pattern match tokens at i? Returns the number of tokens. */
static int pat_match(const char *pat, const tok_list *tl, int i, int s1)
{
    int k = 0;
    const char *p = pat;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t l = sp ? (size_t)(sp - p) : strlen(p);
        if (i + k >= s1) return 0;
        const tok *t = &tl->t[i + k];
        if (t->kind != TK_WORD || t->used || strlen(t->w) != l || memcmp(t->w, p, l)) return 0;
        k++;
        p += l;
        if (*p == ' ') p++;
    }
    return k;
}

static int is_negator(const tok *t)
{
    return t->kind == TK_WORD && (!strcmp(t->w, "not") || !strcmp(t->w, "never") || !strcmp(t->w, "neither") ||
                                  !strcmp(t->w, "none"));
}

IT_WORDSET_DEFINE(g_modal, "should", "must", "can", "could", "may", "might", "will", "would",
                                    "shall", "to");

static int is_modal(const char *w) { return it_wordset_has(&g_modal, w); }

IT_WORDSET_DEFINE(g_filler, 
        "should", "must", "can", "could", "may", "might", "will", "would", "shall", "be", "is",
        "are", "was", "were", "been", "being", "am", "to", "need", "needs", "has", "have", "had",
        "also", "too", "really", "just", "look", "looks", "seem", "seems", "get", "gets", "able",
        "please", "freely", "completely", "totally", "fully", "entirely", "both", "all", "still",
        "strictly", "definitely", "absolutely", "do", "does", "ought", "got", "stay", "very", "feel", "ever",
        "be able", "allowed");

int pt_is_filler(const char *w) { return it_wordset_has(&g_filler, w); }

IT_WORDSET_DEFINE(g_clause, "but", "while", "whereas", "although", "though", "however",
                                    "so", "because", "since", "then", "yet", "otherwise", "except",
                                    "unless", "who", "which", "that", "where", "when");

int pt_is_clause_word(const char *w) { return it_wordset_has(&g_clause, w); }

/* Direction of an ambiguous verb ("change", "switch"): after a modal, "to",
 * a form of be or a noun it is a predicate (postfix); otherwise imperative. */
static cue_dir verb_dir(const tok_list *tl, int i, int s0)
{
    int j = i - 1;
    while (j >= s0 && tl->t[j].kind == TK_WORD && !tl->t[j].used &&
           (!strcmp(tl->t[j].w, "able") || !strcmp(tl->t[j].w, "be") || !strcmp(tl->t[j].w, "freely") ||
            !strcmp(tl->t[j].w, "also") || !strcmp(tl->t[j].w, "all") || !strcmp(tl->t[j].w, "both") ||
            !strcmp(tl->t[j].w, "still") || !strcmp(tl->t[j].w, "easily") || !strcmp(tl->t[j].w, "really")))
        j--;
    if (j < s0) return CUE_RIGHT;
    const tok *p = &tl->t[j];
    if (p->kind != TK_WORD) return CUE_RIGHT;
    if (!strcmp(p->w, "not") && j - 1 >= s0 && pt_is(&tl->t[j - 1], "do")) {
        /* "don't change the face" is an imperative; "the face does not
         * change" is not ("does", and a noun before it) */
        const tok *q = j - 2 >= s0 ? &tl->t[j - 2] : NULL;
        if (!q || q->kind == TK_PUNCT || pt_is(q, "please") || pt_is(q, "and") || pt_is(q, "but")) return CUE_RIGHT;
    }
    if (pt_wf(p, WF_MODAL) || !strcmp(p->w, "not") || !strcmp(p->w, "never")) return CUE_LEFT;
    if (pt_wf(p, WF_FUNCTION) && strcmp(p->w, "it") && strcmp(p->w, "them")) return CUE_RIGHT;
    return p->used ? CUE_RIGHT : CUE_LEFT;
}

/* Looks back from cue c for a negator within a few filler words. */
static int find_negator(tok_list *tl, int i, int s0)
{
    for (int j = i - 1, k = 0; j >= s0 && k < 5; j--, k++) {
        tok *t = &tl->t[j];
        if (t->kind != TK_WORD) return -1;
        if (is_negator(t) && (!t->used || pt_is(t, "never"))) return j;
        if (t->name) continue;
        if (t->used) return -1;
        if (!(pt_wf(t, WF_FILLER) || pt_wf(t, WF_PRONOUN) || !strcmp(t->w, "let") || !strcmp(t->w, "her") ||
              !strcmp(t->w, "of") || !strcmp(t->w, "them") ||
              !strcmp(t->w, "make") || !strcmp(t->w, "allow") || !strcmp(t->w, "want") ||
              !strcmp(t->w, "i") || !strcmp(t->w, "we") || !strcmp(t->w, "you") || t->cap))
            return -1;
    }
    return -1;
}

/* "Neither the stem nor the shade should change": a clause opened by
 * "neither" negates its verb, however far. Returns the negator or -1. */
static int clause_neither(tok_list *tl, int i, int s0)
{
    int j = i - 1;
    while (j >= s0 && !(tl->t[j].kind == TK_PUNCT) && !(tl->t[j].kind == TK_WORD && pt_wf(&tl->t[j], WF_CLAUSE))) j--;
    j++;
    if (j < i && pt_is(&tl->t[j], "neither") && !tl->t[j].used) {
        for (int k = j; k < i; k++)
            if (pt_is(&tl->t[k], "nor")) return j;
    }
    return -1;
}

static int is_swap_word(const char *w)
{
    IT_WORDSET_DEFINE(l, "swap", "swapped", "swappable", "switch", "switched", "exchange", "exchanged",
                      "replace", "replaced", "traded", "changed");
    return it_wordset_has(&l, w);
}

static const char *g_cue_last_word(const char *words)
{
    const char *sp = strrchr(words, ' ');
    return sp ? sp + 1 : words;
}

/* "can be X or Y": a value list after a modal + be. */
static int cue_at(const tok_list *tl, int i, int s1);
static int is_presence_cue(const tok *t);

/* "The bulb may glow warm or cool": a verb the lexicon does not know right
 * after a modal, taking the place of "be" before a value list. */
static int plain_verb_after_modal(const tok_list *tl, int i, int s1)
{
    const it_lex_entry *e;
    const tok *t = &tl->t[i];
    return i > 0 && pt_wf(&tl->t[i - 1], WF_MODAL) && !pt_is(&tl->t[i - 1], "to") && t->kind == TK_WORD &&
           !pt_wf(t, WF_FUNCTION) && !pt_lex1(&e, t, 0) && !cue_at(tl, i, s1);
}

static int values_after_be(const tok_list *tl, int i, int s1)
{
    if (i < 1 || !pt_wf(&tl->t[i - 1], WF_MODAL)) return 0;
    if (i + 1 < s1 && cue_at(tl, i + 1, s1) && !is_presence_cue(&tl->t[i + 1]))
        return 0; /* "be controllable, e.g. X or Y" (but "be shown in white or black") */
    for (int j = i + 1; j < s1 && j < i + 14; j++) {
        const tok *t = &tl->t[j];
        if (t->kind == TK_PUNCT && t->w[0] != ',') return 0;
        if (t->used) return 0;
        if (pt_is(t, "or")) return 1;
    }
    return 0;
}

static int is_presence_cue(const tok *t)
{
    for (size_t k = t->cue_lo; k < t->cue_hi; k++)
        if (g_cue_sorted[k]->flags & CUE_PRESENCE) return 1;
    return 0;
}

/* After a colon, a list of alternatives ("X or Y") and no cue: values. */
static int values_after_colon(const tok_list *tl, int i, int s1)
{
    int or = 0;
    for (int j = i + 1; j < s1; j++) {
        const tok *t = &tl->t[j];
        if (t->kind == TK_PUNCT && t->w[0] != ',') break;
        if (t->used || (t->kind == TK_WORD && (pt_wf(t, WF_CLAUSE) || pt_wf(t, WF_MODAL)))) return 0;
        if (cue_at(tl, j, s1) && !is_presence_cue(t)) return 0;
        or |= pt_is(t, "or");
    }
    return or;
}

static int cue_at(const tok_list *tl, int i, int s1)
{
    if (tl->t[i].kind != TK_WORD) return 0;
    for (size_t k = tl->t[i].cue_lo; k < tl->t[i].cue_hi; k++)
        if (pat_match(g_cue_sorted[k]->words, tl, i, s1)) return 1;
    return 0;
}

/* Tokens [i, i+n) that form a noun of two or more words ("subject
 * matter"): cue words inside them ("matter") are not cues. */
static int multiword_noun(const tok_list *tl, int i, int s1)
{
    const char *words[5];
    int n = 0;
    if (i < s1 && !pt_wf(&tl->t[i], WF_LEXHEAD)) return 0; /* nothing starts here */
    for (int k = i; k < s1 && n < 5 && tl->t[k].kind == TK_WORD; k++) words[n++] = tl->t[k].w;
    const it_lex_entry *e;
    int m = n ? it_lex_match(&e, words, n, 0) : 0;
    return m >= 2 && (e->kind == IT_LEX_THING || e->kind == IT_LEX_SCENE) ? m : 0;
}

static int is_linking_verb(const tok *t)
{
    return pt_is(t, "stay") || pt_is(t, "stays") || pt_is(t, "remain") || pt_is(t, "remains");
}

int pt_cues(cue *out, int max, tok_list *tl, int s0, int s1)
{
    int n = 0;
    for (int i = s0; i < s1 && n < max; i++) {
        tok *t = &tl->t[i];
        if (pt_punct(t, ':') && values_after_colon(tl, i, s1)) {
            /* "Background: the school hall or plain grey" */
            out[n++] = (cue){i, i + 1, IT_OP_MODIFY, CUE_LEFT, CUE_VALUES, 0};
            continue;
        }
        if (t->kind != TK_WORD || t->used) continue;
        int mw = multiword_noun(tl, i, s1);
        if (mw) {
            i += mw - 1;
            continue;
        }
        if ((pt_is(t, "be") || plain_verb_after_modal(tl, i, s1)) && values_after_be(tl, i, s1)) {
            out[n++] = (cue){i, i + 1, IT_OP_MODIFY, CUE_LEFT, CUE_VALUES, 0};
            t->used = 1;
            continue;
        }
        int best = 0;
        const cue_pat *bp = NULL;
        for (size_t k = t->cue_lo; k < t->cue_hi; k++) {
            int m = pat_match(g_cue_sorted[k]->words, tl, i, s1);
            if (m > best) best = m, bp = g_cue_sorted[k];
        }
        if (!bp) continue;
        /* "remove any X", "don't show any X": "any" is a determiner there */
        if ((bp->flags & CUE_ANY) && n > 0 && out[n - 1].op == IT_OP_REMOVE) {
            int j = out[n - 1].t1, in_list = 1;
            for (; j < i && in_list; j++)
                in_list = !(tl->t[j].kind == TK_PUNCT && tl->t[j].w[0] != ',') &&
                          !(tl->t[j].kind == TK_WORD && (pt_wf(&tl->t[j], WF_MODAL) || pt_wf(&tl->t[j], WF_CLAUSE)));
            if (in_list) continue;
        }
        /* "keep them apart": subjects kept apart, nothing kept */
        if ((pt_is(t, "keep") || pt_is(t, "keeps")) && i + 2 < s1 &&
            (pt_is(&tl->t[i + 1], "apart") || pt_is(&tl->t[i + 2], "apart")))
            continue;
        /* "no longer" is a negator, "no matter" an idiom: neither is "no X". */
        if (pt_is(t, "no") && i + 1 < s1 && (pt_is(&tl->t[i + 1], "longer") || pt_is(&tl->t[i + 1], "matter")))
            continue;
        /* "in the same way", "at the same time": adverbials, not cues */
        if (i + best < s1 && bp->op == IT_OP_PRESERVE && !strcmp(g_cue_last_word(bp->words), "same") &&
            (pt_is(&tl->t[i + best], "way") || pt_is(&tl->t[i + best], "manner") || pt_is(&tl->t[i + best], "time")))
            continue;
        cue c = {i, i + best, bp->op, bp->dir ? bp->dir : verb_dir(tl, i, s0), bp->flags, 0};
        int neg = (bp->flags & CUE_TIGHT) || pt_is(t, "never") ? -1 : find_negator(tl, i, s0);
        if (neg < 0 && !(bp->flags & CUE_TIGHT)) neg = clause_neither(tl, i, s0);
        if (neg >= 0) {
            c.negated = 1;
            tl->t[neg].used = 1;
            /* negated: a state ("doesn't need to stay the same") may change;
             * an order to keep ("don't reproduce my signature") removes */
            if (!(bp->flags & CUE_PRESENCE) && c.op == IT_OP_PRESERVE && bp->dir == CUE_RIGHT)
                c.op = IT_OP_REMOVE;
            else if (!(bp->flags & CUE_PRESENCE))
                c.op = c.op == IT_OP_PRESERVE ? IT_OP_MODIFY : IT_OP_PRESERVE;
            /* the negator may govern an earlier "never": drop it */
            for (int k = 0; k < n; k++)
                if (out[k].t0 == neg) out[k] = out[--n];
        } else if (bp->flags & CUE_PRESENCE) {
            continue; /* "he wears a hat": a description, not an operation */
        }
        /* "without changing": without negates the verb, it is no removal */
        for (int j = 0; j < n; j++)
            if (out[j].t1 == i && pt_is(&tl->t[out[j].t0], "without") && c.op != IT_OP_REMOVE) {
                c.op = c.op == IT_OP_PRESERVE ? IT_OP_MODIFY : IT_OP_PRESERVE;
                out[j] = out[--n];
                break;
            }
        /* "What matters most is the palette": the cue governs what follows "is" */
        if ((c.dir & CUE_LEFT) && i > s0 && (pt_is(&tl->t[i - 1], "what") || pt_is(&tl->t[i - 1], "whatever"))) {
            for (int j = c.t1; j < s1 && j < c.t1 + 3; j++)
                if (pt_is(&tl->t[j], "is") || pt_is(&tl->t[j], "are")) {
                    for (int k = c.t1; k <= j; k++) tl->t[k].used = 1;
                    c.t1 = j + 1;
                    c.dir = CUE_RIGHT;
                    break;
                }
        }
        for (int k = c.t0; k < c.t1; k++) tl->t[k].used = 1;
        /* "swapped for casual clothes", "replaced with a cap": what follows is
         * a value of the thing swapped */
        if (c.op == IT_OP_MODIFY && !c.negated && c.t1 + 1 < s1 && n + 1 < max &&
            (pt_is(&tl->t[c.t1], "for") || pt_is(&tl->t[c.t1], "with")) && is_swap_word(tl->t[c.t0].w)) {
            out[n++] = c;
            tl->t[c.t1].used = 1;
            out[n++] = (cue){c.t1, c.t1 + 1, IT_OP_MODIFY, CUE_RIGHT, CUE_VALUES, 0};
            i = c.t1;
            continue;
        }
        /* "must stay adjustable", "remains changeable": the linking verb
         * only carries the adjective right after it, whose operation wins. */
        if (n > 0 && c.op == IT_OP_MODIFY && !c.negated && out[n - 1].t1 == c.t0 &&
            out[n - 1].op == IT_OP_PRESERVE && !out[n - 1].negated && is_linking_verb(&tl->t[out[n - 1].t0])) {
            c.t0 = out[n - 1].t0;
            out[n - 1] = c;
            i = c.t1 - 1;
            continue;
        }
        out[n++] = c;
        i = c.t1 - 1;
    }
    return n;
}

/* ---- chunks ---------------------------------------------------------------- */

/* Verbs and other words that end a noun phrase but carry no operation. */
IT_WORDSET_DEFINE(g_breaker, 
        "train", "teach", "teaching", "training", "learn", "make", "let", "allow", "ensure", "wear",
        "wears", "wearing", "worn", "hold", "holds", "show", "shows", "appear", "include", "give",
        "add", "use", "see", "paint", "draw", "generate", "create", "render", "call", "named",
        "called", "want", "like", "fine-tune", "finetune", "tune", "model", "images", "image",
        "pictures", "picture", "photos", "photo", "generations", "output", "outputs", "results",
        "every", "shot", "shots", "dataset", "lora", "sure", "it", "across", "throughout",
        "whenever", "sits", "stands", "looks", "look", "go", "goes", "is", "called", "wants");

static int is_breaker(const char *w) { return it_wordset_has(&g_breaker, w); }

int pt_is_verbish(const char *w)
{
    if (is_breaker(w)) return 1;
    size_t lo, hi;
    cue_range(w, &lo, &hi);
    return hi > lo;
}

/* One table for every closed word class of the grammar and the cue index:
 * pt_word_info looks each token up once instead of once per class. Built
 * on first use from the class sets, so it cannot disagree with them. */
#define WI_SLOTS 2048
typedef struct wi_slot {
    const char *w; /* NULL: empty */
    unsigned hash, flags;
    unsigned short len, cue_lo, cue_hi;
} wi_slot;
static wi_slot g_wi[WI_SLOTS];
static pthread_once_t g_wi_once = PTHREAD_ONCE_INIT;

IT_LEX_NOCOV static wi_slot *wi_find(const char *w, unsigned h, size_t len, int insert)
{
    size_t k = h & (WI_SLOTS - 1);
    for (; g_wi[k].w; k = (k + 1) & (WI_SLOTS - 1))
        if (g_wi[k].hash == h && g_wi[k].len == len && !memcmp(g_wi[k].w, w, len)) return &g_wi[k];
    if (!insert) return NULL;
    g_wi[k] = (wi_slot){w, h, 0, (unsigned short)len, 0, 0};
    return &g_wi[k];
}

static void wi_add(void *ctx, const char *w, unsigned flag)
{
    (void)ctx;
    size_t len;
    unsigned h = it_lex_hash(w, &len);
    wi_find(w, h, len, 1)->flags |= flag;
}

static void wi_add_lex(void *ctx, const char *w, unsigned lexw)
{
    static const unsigned map[][2] = {{IT_LEXW_FUNCTION, WF_FUNCTION}, {IT_LEXW_POSSESSIVE, WF_POSSESSIVE},
                                      {IT_LEXW_DETERMINER, WF_DETERMINER}, {IT_LEXW_PRONOUN, WF_PRONOUN},
                                      {IT_LEXW_NUMBER, WF_NUMBER}};
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (lexw & map[k][0]) wi_add(ctx, w, map[k][1]);
}

static void build_wi(void)
{
    pthread_once(&g_cue_once, build_cue_index);
    it_lex_closed_words(wi_add_lex, NULL);
    const struct { const it_wordset *ws; unsigned f; } sets[] = {
        {&g_filler, WF_FILLER}, {&g_clause, WF_CLAUSE}, {&g_modal, WF_MODAL}, {&g_breaker, WF_BREAKER | WF_VERBISH}};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++)
        for (size_t i = 0; i < sets[k].ws->n; i++) wi_add(NULL, sets[k].ws->words[i], sets[k].f);
    for (size_t k = 0; k < CUE_SLOTS; k++) {
        const cue_slot *c = &g_cue_hash[k];
        if (!c->word) continue;
        wi_slot *e = wi_find(c->word, c->hash, c->len, 1);
        e->cue_lo = c->start;
        e->cue_hi = (unsigned short)(c->start + c->count);
        e->flags |= WF_VERBISH;
    }
    size_t used = 0;
    for (size_t k = 0; k < WI_SLOTS; k++) used += g_wi[k].w != NULL;
    IT_ASSERT(used < WI_SLOTS / 2);
}

void pt_word_info(tok_list *tl)
{
    pthread_once(&g_wi_once, build_wi);
    for (int i = 0; i < tl->n; i++) {
        tok *t = &tl->t[i];
        t->ca_s1 = -1;
        t->ca_m = 0;
        t->ca_e = NULL;
        size_t len;
        unsigned h = it_lex_hash(t->w, &len); /* one hash of the word for every table */
        const wi_slot *e = wi_find(t->w, h, len, 0);
        t->wf = e ? e->flags : 0;
        t->cue_lo = e ? e->cue_lo : 0;
        t->cue_hi = e ? e->cue_hi : 0;
        if (it_lex_may_start_h(t->w, h, len)) {
            t->wf |= WF_LEXHEAD;
            it_lex_match_single(t->lx, t->w);
        } else {
            for (int k = 0; k < 6; k++) t->lx[k] = NULL;
        }
    }
}

static int content_word(const tok *t)
{
    if (t->used) return 0;
    if (t->kind == TK_NUM || t->kind == TK_POSS || t->kind == TK_REF) return 1;
    if (t->kind != TK_WORD) return 0;
    return !pt_wf(t, WF_FUNCTION) && !pt_wf(t, WF_BREAKER);
}

/* Is token i part of a noun phrase? content_word, with two corrections from
 * the neighbours: a word the lexicon does not know right after a subject
 * pronoun is a verb ("the axe he carries", "when he smiles"); a verb-like
 * word between a content word and the end of the phrase is the noun of a
 * compound ("war paint are essential", "the face paint."). */
static int in_phrase(const tok_list *tl, int i, int s0, int s1)
{
    const tok *t = &tl->t[i];
    const it_lex_entry *e;
    if (t->kind == TK_WORD && !t->used && i > s0 && tl->t[i - 1].kind == TK_WORD && !tl->t[i - 1].used &&
        (pt_is(&tl->t[i - 1], "he") || pt_is(&tl->t[i - 1], "she") || pt_is(&tl->t[i - 1], "they") ||
         pt_is(&tl->t[i - 1], "we") || pt_is(&tl->t[i - 1], "i") || pt_is(&tl->t[i - 1], "you")) &&
        !pt_lex1(&e, t, 0))
        return 0;
    if (content_word(t)) return 1;
    if (t->kind != TK_WORD || t->used || !pt_wf(t, WF_BREAKER) || pt_wf(t, WF_FUNCTION) || i == s0 ||
        !content_word(&tl->t[i - 1]) || tl->t[i - 1].kind != TK_WORD)
        return 0;
    if (i + 1 >= s1) return 1;
    const tok *n = &tl->t[i + 1];
    return n->kind == TK_PUNCT || pt_is(n, "and") || pt_is(n, "or") || pt_is(n, "are") || pt_is(n, "is") ||
           pt_wf(n, WF_MODAL);
}

/* Lexicon lookup over token words starting at i (up to 4 words). */
static int lex_at(const it_lex_entry **e, const tok_list *tl, int i, int s1, it_lex_kind kind)
{
    if (i >= s1 || tl->t[i].kind != TK_WORD) return 0;
    if (!pt_wf(&tl->t[i], WF_LEXHEAD)) { /* it_lex_match would find nothing */
        *e = NULL;
        return 0;
    }
    if (i + 1 >= s1 || tl->t[i + 1].kind != TK_WORD || tl->t[i + 1].used) return pt_lex1(e, &tl->t[i], kind);
    const char *words[5];
    int n = 0;
    for (int k = i; k < s1 && n < 5; k++) {
        if (tl->t[k].kind != TK_WORD || (tl->t[k].used && k > i)) break;
        words[n++] = tl->t[k].w;
    }
    return n ? it_lex_match(e, words, n, kind) : 0;
}

/* Analyses tokens [a, b) of one chunk: head, property, attributes, refs. */
static void analyse(chunk *c, const tok_list *tl, int a, int b, int prop_ctx)
{
    int prev_head = 0;
    c->value_only = 1;
    const char *vprop = NULL;
    for (int i = a; i < b;) {
        const tok *t = &tl->t[i];
        if (t->kind == TK_REF) {
            for (int k = 0; k < t->n_refs && c->n_refs < IT_INTENT_MAX_CREFS; k++) c->refs[c->n_refs++] = t->refs[k];
            i++;
            continue;
        }
        const it_lex_entry *e = NULL, *p = NULL, *v = NULL;
        int m = t->kind == TK_WORD ? lex_at(&e, tl, i, b, IT_LEX_THING) : 0;
        const it_lex_entry *s = NULL;
        int ms = t->kind == TK_WORD ? lex_at(&s, tl, i, b, IT_LEX_SCENE) : 0;
        int mp = t->kind == TK_WORD ? lex_at(&p, tl, i, b, IT_LEX_PROPERTY) : 0;
        int mv = t->kind == TK_WORD ? lex_at(&v, tl, i, b, IT_LEX_VALUE) : 0;
        if (ms > m) m = ms, e = s;
        /* After a head, a word that is both a property and a noun ("hair
         * style") is the property; so is a property before "of". */
        /* A word that is both ("colours", "style") is the property after a
         * known noun ("hair style") or where a property is expected ("its
         * colours", "the colours of"); else the whole-image aspect. */
        if (mp && !(m > mp) && (!m || prev_head == 2 || prop_ctx)) {
            c->prop = p->canon;
            c->value_only = 0;
            prev_head = 0;
            i += mp;
            continue;
        }
        if (m) {
            c->head = e;
            pt_copy(c->head_canon, sizeof c->head_canon, e->canon);
            c->head_t0 = i;
            c->head_t1 = i + m;
            c->has_head = 1;
            c->prop = e->prop; /* implied ("hairstyle") or NULL */
            c->value_only = 0;
            prev_head = 2;
            i += m;
            continue;
        }
        const it_lex_entry *k;
        int mc = t->kind == TK_WORD && !mv ? lex_at(&k, tl, i, b, IT_LEX_CLASS) : 0;
        if (mc) {
            c->is_class = 1;
            c->class_canon = k->canon;
            c->value_only = 0;
            prev_head = 0;
            i += mc;
            continue;
        }
        int num;
        if (mv || t->kind == TK_NUM || (pt_wf(t, WF_NUMBER) && it_lex_is_number(t->w, &num))) {
            const char *vp = mv ? v->prop : "count";
            if (vprop && strcmp(vprop, vp)) c->value_only = 0;
            vprop = vp;
            i += mv ? mv : 1;
            prev_head = 0;
            continue;
        }
        /* an unknown word: a modifier, or a noun if a property follows */
        c->value_only = 0;
        prev_head = 1;
        if (i + 1 < b && lex_at(&p, tl, i + 1, b, IT_LEX_PROPERTY) && !lex_at(&e, tl, i + 1, b, IT_LEX_THING)) {
            char sing[64];
            pt_copy(c->head_canon, sizeof c->head_canon, it_lex_singular(sing, sizeof sing, t->w));
            c->head = NULL;
            c->head_t0 = i;
            c->head_t1 = i + 1;
            c->has_head = 1;
        }
        i++;
    }
    if (c->value_only) c->value_prop = vprop;
    if (c->value_only && !vprop) c->value_only = 0;
}

int pt_chunks(chunk *out, int max, tok_list *tl, int s0, int s1)
{
    int n = 0;
    for (int i = s0; i < s1 && n < max;) {
        const it_lex_entry *e;
        int multi = tl->t[i].kind == TK_WORD && !tl->t[i].used ? lex_at(&e, tl, i, s1, 0) : 0;
        if (!in_phrase(tl, i, s0, s1) && multi < 2) {
            i++;
            continue;
        }
        int a = i;
        while (i < s1) {
            multi = tl->t[i].kind == TK_WORD && !tl->t[i].used ? lex_at(&e, tl, i, s1, 0) : 0;
            if (multi >= 2) {
                i += multi;
                continue;
            }
            if (!in_phrase(tl, i, s0, s1)) break;
            i++;
        }
        chunk *c = &out[n];
        memset(c, 0, sizeof *c);
        c->t0 = a;
        c->t1 = i;
        c->head_t0 = c->head_t1 = -1;
        c->poss_subject = -1;
        c->variant_of = -1;
        c->cue_index = -1;
        c->pred_value_t = -1;
        c->poss_t = -1;
        /* "Name 's thing": the possessor is resolved by the driver. */
        int body = a;
        for (int k = a; k < i; k++)
            if (tl->t[k].kind == TK_POSS) body = k + 1, c->poss_t = k - 1 >= a ? k - 1 : -1;
        if (body >= i) continue; /* a bare possessor ("Ben's") */
        if (a > s0 && tl->t[a - 1].kind == TK_WORD && pt_wf(&tl->t[a - 1], WF_POSSESSIVE))
            c->poss_word = tl->t[a - 1].w;
        int prop_ctx = c->poss_word || c->poss_t >= 0 || (a > s0 && pt_is(&tl->t[a - 1], "any")) ||
                       (i < s1 && pt_is(&tl->t[i], "of"));
        analyse(c, tl, body, i, prop_ctx);
        /* REF marks right after a chunk belong to it ("jacket [1]"). */
        while (i < s1 && tl->t[i].kind == TK_REF) {
            const tok *t = &tl->t[i];
            for (int k = 0; k < t->n_refs && c->n_refs < IT_INTENT_MAX_CREFS; k++) c->refs[c->n_refs++] = t->refs[k];
            c->t1 = ++i;
        }
        n++;
    }
    /* "colour of the hair": a bare property takes the head that follows
     * "of"; "the clothing of the figures": the phrase is the first noun. */
    for (int k = 0; k + 1 < n; k++) {
        chunk *c = &out[k], *d = &out[k + 1];
        int j = c->t1, ok = j < d->t0 && pt_is(&tl->t[j], "of");
        for (j++; ok && j < d->t0; j++)
            ok = tl->t[j].kind == TK_WORD && (pt_wf(&tl->t[j], WF_DETERMINER) || pt_wf(&tl->t[j], WF_POSSESSIVE));
        if (!ok || d->is_class) continue;
        if (c->prop && !c->has_head && !d->prop && !d->value_only) {
            if (!d->has_head) { /* an unknown noun: its last word */
                int last = -1;
                for (int x = d->t0; x < d->t1; x++)
                    if (tl->t[x].kind == TK_WORD) last = x;
                if (last < 0) continue;
                char sing[64];
                pt_copy(d->head_canon, sizeof d->head_canon, it_lex_singular(sing, sizeof sing, tl->t[last].w));
                d->head_t0 = last;
                d->head_t1 = last + 1;
                d->has_head = 1;
            }
            const char *prop = c->prop;
            int t0 = c->t0;
            *c = *d;
            c->t0 = t0;
            c->prop = prop;
        } else if (c->has_head && !c->is_class) {
            for (int r = 0; r < d->n_refs && c->n_refs < IT_INTENT_MAX_CREFS; r++) c->refs[c->n_refs++] = d->refs[r];
            c->t1 = d->t1;
        } else {
            continue;
        }
        memmove(d, d + 1, sizeof *d * (size_t)(n - k - 2));
        n--;
        k--;
    }
    return n;
}

/* ---- scopes -------------------------------------------------------------------- */

static int chunk_ending_at(const chunk *ch, int n, int t1)
{
    for (int k = 0; k < n; k++)
        if (ch[k].t1 == t1) return k;
    return -1;
}

static int chunk_starting_at(const chunk *ch, int n, int t0)
{
    for (int k = 0; k < n; k++)
        if (ch[k].t0 == t0) return k;
    return -1;
}

static int skippable_det(const tok *t)
{
    return t->kind == TK_WORD && !t->used && (pt_wf(t, WF_DETERMINER) || pt_wf(t, WF_POSSESSIVE));
}

static int is_subject_pronoun(const tok *t)
{
    return pt_is(t, "he") || pt_is(t, "she") || pt_is(t, "they") || pt_is(t, "we") || pt_is(t, "i") || pt_is(t, "you");
}

/* Chunks governed by a postfix cue: the coordinated list before it. */
static int walk_left(int *got, int max, const chunk *ch, int n, const tok_list *tl, int pos, int s0,
                     int skip_cues)
{
    int k = 0, j = pos - 1, conj = 0;
    while (j >= s0) {
        const tok *t = &tl->t[j];
        if (t->kind == TK_WORD && ((!t->used && pt_wf(t, WF_FILLER)) || is_negator(t))) j--;
        else if (pt_punct(t, ':') || t->aside) j--;
        else if (j - 1 > s0 && !t->used && t->kind == TK_WORD && chunk_ending_at(ch, n, j + 1) < 0 &&
                 is_subject_pronoun(&tl->t[j - 1]))
            j -= 2; /* "the axe he carries can be swapped": a relative clause */
        else if (pt_is(t, "but") && j > s0 && tl->t[j - 1].kind == TK_WORD && pt_wf(&tl->t[j - 1], WF_FILLER)) j--;
        else if (skip_cues && t->kind == TK_WORD && t->used) j--;
        else if (pt_is(t, "and") && j > s0) {
            /* "the sword and cape are iconic and must stay": skip a
             * predicate adjective ("are iconic") between the list and its cue */
            int a = chunk_ending_at(ch, n, j);
            if (a < 0 || ch[a].has_head || ch[a].is_class || ch[a].prop) break;
            int b = ch[a].t0 - 1;
            if (b < s0 || !(pt_is(&tl->t[b], "is") || pt_is(&tl->t[b], "are") || pt_is(&tl->t[b], "look") ||
                            pt_is(&tl->t[b], "looks")))
                break;
            j = b - 1;
        } else break;
    }
    while (j >= s0 && k < max) {
        int c = chunk_ending_at(ch, n, j + 1);
        if (c < 0) break;
        /* "never wear a cap, and the lighting should vary": a phrase right
         * after a verb is that verb's object, not part of this subject list */
        if (k > 0) {
            int b = ch[c].t0 - 1;
            while (b >= s0 && skippable_det(&tl->t[b])) b--;
            if (b >= s0 && tl->t[b].kind == TK_WORD && tl->t[b].used && !tl->t[b].name && !is_negator(&tl->t[b]))
                break;
        }
        got[k++] = c;
        j = ch[c].t0 - 1;
        while (j >= s0 && skippable_det(&tl->t[j])) j--;
        if (j < s0) break;
        const tok *t = &tl->t[j];
        if (pt_is(t, "and") || pt_is(t, "or") || pt_is(t, "nor")) {
            conj = 1;
            j--;
            if (j >= s0 && pt_punct(&tl->t[j], ',')) j--;
        } else if (pt_punct(t, ',') && conj) {
            j--;
        } else {
            break;
        }
        while (j >= s0 && skippable_det(&tl->t[j])) j--;
    }
    return k;
}

/* "always wears a cap": un-negated presence verbs are not cues, but the
 * phrase after them is still what the cue before them governs. */
static int is_presence_word(const char *w)
{
    IT_WORDSET_DEFINE(l, "wear", "wears", "wearing", "have", "has", "hold", "holds",
                                    "carry", "carries", "show", "shows", "with", "shown", "made",
                                    "rendered", "available", "drawn", "painted", "coloured", "colored");
    return it_wordset_has(&l, w);
}

/* Chunks governed by a prefix cue: the coordinated list after it. */
static int walk_right(int *got, int max, const chunk *ch, int n, const tok_list *tl, int pos, int s1)
{
    int k = 0, j = pos;
    while (j < s1 && chunk_starting_at(ch, n, j) < 0) { /* ("other weapons" is a phrase) */
        const tok *t = &tl->t[j];
        if (t->name && !(j + 1 < s1 && tl->t[j + 1].kind == TK_POSS)) {
            j++;
            continue;
        }
        if (skippable_det(t) || pt_punct(t, '"') || (t->kind == TK_WORD && !t->used &&
                                 (pt_wf(t, WF_PRONOUN) || !strcmp(t->w, "of") || !strcmp(t->w, "any") ||
                                  !strcmp(t->w, "all") || !strcmp(t->w, "to") || !strcmp(t->w, "be") ||
                                  !strcmp(t->w, "in") || is_presence_word(t->w))))
            j++;
        else break;
    }
    while (j < s1 && k < max) {
        int c = chunk_starting_at(ch, n, j);
        if (c < 0) break;
        /* "keep the face, the hat can change": a phrase followed by its own
         * predicate starts a new clause */
        if (k > 0 && ch[c].t1 < s1 && tl->t[ch[c].t1].kind == TK_WORD &&
            (is_modal(tl->t[ch[c].t1].w) || pt_is(&tl->t[ch[c].t1], "is") || pt_is(&tl->t[ch[c].t1], "are") ||
             tl->t[ch[c].t1].used))
            break;
        got[k++] = c;
        j = ch[c].t1;
        if (j >= s1) break;
        const tok *t = &tl->t[j];
        if (pt_punct(t, ',')) j++;
        if (j < s1 && (pt_is(&tl->t[j], "and") || pt_is(&tl->t[j], "or") || pt_is(&tl->t[j], "nor"))) j++;
        else if (!pt_punct(t, ',')) break;
        /* "a hat or with goggles", "white or in black" */
        if (j < s1 && (pt_is(&tl->t[j], "with") || pt_is(&tl->t[j], "in")) && !tl->t[j].used) j++;
        while (j < s1 && skippable_det(&tl->t[j])) j++;
    }
    return k;
}

static void claim(chunk *c, int strength, const cue *cu, int ci)
{
    if (strength <= c->claimed) return;
    c->claimed = strength;
    c->op = cu->op;
    c->cue_index = ci;
}

/* "stay striped", "keep the scarf striped": a value right after. */
static void predicate_value(chunk *ch, int n, const int *got, int n_got, int after, const tok_list *tl, int s1)
{
    int j = after;
    while (j < s1 && (pt_is(&tl->t[j], "at") || pt_is(&tl->t[j], "as") || pt_is(&tl->t[j], "the") ||
                      (tl->t[j].kind == TK_WORD && pt_wf(&tl->t[j], WF_FILLER))))
        j++;
    int v = chunk_starting_at(ch, n, j);
    if (v < 0 || !ch[v].value_only || ch[v].claimed) return;
    for (int k = 0; k < n_got; k++) {
        chunk *c = &ch[got[k]];
        if (c->head && c->head->kind == IT_LEX_SCENE) continue;
        c->pred_value_prop = ch[v].value_prop;
        c->pred_value_t = ch[v].t0;
    }
    ch[v].claimed = -1; /* consumed as a value */
}

/* Is the cue's subject or object "it"/"they"/"them" (after fillers)? */
static int pronoun_next_to(const tok_list *tl, const cue *c, int s0, int s1)
{
    int j = c->t0 - 1;
    while (j >= s0 && tl->t[j].kind == TK_WORD && (pt_wf(&tl->t[j], WF_FILLER) || is_negator(&tl->t[j]))) j--;
    if ((c->dir & CUE_LEFT) && j >= s0 && (pt_is(&tl->t[j], "they") || pt_is(&tl->t[j], "it"))) return 1;
    if ((c->dir & CUE_RIGHT) && c->t1 < s1 && (pt_is(&tl->t[c->t1], "them") || pt_is(&tl->t[c->t1], "it")) &&
        (c->t1 + 1 >= s1 || tl->t[c->t1 + 1].kind == TK_PUNCT))
        return 1;
    return 0;
}

/* "Keep each face as it is: Mira has three eyes, Tobi one eye": phrases
 * after a colon that no cue of their own governs elaborate what the cue
 * before the colon governs, and get its operation. */
static void inherit_after_colon(chunk *ch, int n_ch, const cue *cu, int n_cu, const tok_list *tl, int s0, int s1)
{
    for (int j = s0; j < s1; j++) {
        if (!pt_punct(&tl->t[j], ':')) continue;
        const cue *before = NULL;
        int ci_before = -1;
        for (int ci = 0; ci < n_cu; ci++)
            if (cu[ci].t1 <= j && !(cu[ci].flags & CUE_VALUES)) before = &cu[ci], ci_before = ci;
        if (!before) continue;
        int any_cue_after = 0;
        for (int ci = 0; ci < n_cu; ci++) any_cue_after |= cu[ci].t0 > j;
        if (any_cue_after) continue;
        for (int k = 0; k < n_ch; k++)
            if (ch[k].t0 > j && ch[k].claimed == 0 && !ch[k].value_only && !(ch[k].is_class && !ch[k].has_head))
                claim(&ch[k], 1, before, ci_before);
    }
}

/* "Keep his face exactly as it is, with the scar on his cheek": a phrase
 * introduced by "with" after a kept phrase is kept with it. */
static void inherit_with(chunk *ch, int n_ch, const tok_list *tl, int s0)
{
    for (int k = 1; k < n_ch; k++) {
        if (ch[k].claimed != 0 || ch[k].value_only) continue;
        int j = ch[k].t0 - 1;
        while (j >= s0 && skippable_det(&tl->t[j])) j--;
        if (j < s0 || !pt_is(&tl->t[j], "with") || tl->t[j].used) continue;
        const chunk *b = &ch[k - 1];
        if (b->claimed <= 0 || b->claimed == 4 || b->op != IT_OP_PRESERVE) continue;
        ch[k].claimed = 1;
        ch[k].op = IT_OP_PRESERVE;
        ch[k].cue_index = b->cue_index;
    }
}

/* "The glaze colour must stay, and so does the ridge pattern": the phrase
 * after "so" + auxiliary gets the operation of the phrase said before. */
static void ellipsis_so(chunk *ch, int n_ch, const tok_list *tl, int s0, int s1)
{
    static const char *const aux[] = {"does", "do", "did", "is", "are", "can", "may", "must", "should",
                                      "will", "could", "might", "has", "have", NULL};
    for (int j = s0 + 1; j + 1 < s1; j++) {
        if (!pt_is(&tl->t[j], "so")) continue;
        int is_aux = 0;
        for (int a = 0; aux[a]; a++) is_aux |= pt_is(&tl->t[j + 1], aux[a]);
        if (!is_aux) continue;
        int k = j + 2;
        while (k < s1 && skippable_det(&tl->t[k])) k++;
        int c = chunk_starting_at(ch, n_ch, k);
        if (c < 0 || ch[c].claimed) continue;
        for (int b = n_ch - 1; b >= 0; b--)
            if (ch[b].t1 <= j && ch[b].claimed > 0 && ch[b].claimed != 4) {
                ch[c].claimed = 1;
                ch[c].op = ch[b].op;
                ch[c].cue_index = ch[b].cue_index;
                break;
            }
    }
}

void pt_assign(chunk *ch, int n_ch, const cue *cu, int n_cu, tok_list *tl, int s0, int s1)
{
    int got[64];
    for (int ci = 0; ci < n_cu; ci++) {
        const cue *c = &cu[ci];
        if (c->flags & CUE_VALUES) continue;
        int n_got = 0, strength = 0;
        if (c->dir & CUE_LEFT) {
            n_got = walk_left(got, 64, ch, n_ch, tl, c->t0, s0, 0);
            strength = 2;
        }
        /* "She must not appear with a stethoscope": nothing before but a
         * pronoun, so what the verb is "with" */
        if (n_got == 0 && (c->flags & CUE_PRESENCE) && c->dir == CUE_LEFT && c->t1 < s1 &&
            is_presence_word(tl->t[c->t1].w)) { /* "...shown wearing a helmet" */
            n_got = walk_right(got, 64, ch, n_ch, tl, c->t1, s1);
            strength = 1;
        }
        if (n_got == 0 && (c->dir & CUE_RIGHT)) {
            n_got = walk_right(got, 64, ch, n_ch, tl, c->t1, s1);
            strength = (c->flags & CUE_TIGHT) ? 3 : 1;
        }
        if (n_got == 0 && pronoun_next_to(tl, c, s0, s1)) {
            /* "…are his signature look, so they must stay", "keep them":
             * the pronoun stands for the phrases said before it that nothing
             * governs yet */
            for (int k = 0; k < n_ch && n_got < 64; k++)
                if (ch[k].t1 <= c->t0 && ch[k].has_head && !ch[k].claimed && !ch[k].is_class) got[n_got++] = k;
            strength = 1;
        }
        for (int k = 0; k < n_got; k++) {
            if ((c->flags & CUE_KNOWN) && !ch[got[k]].has_head && !ch[got[k]].prop) continue;
            claim(&ch[got[k]], strength, c, ci);
        }
        if (c->op != IT_OP_REMOVE) {
            if (strength == 2) predicate_value(ch, n_ch, got, n_got, c->t1, tl, s1);
            else if (n_got) predicate_value(ch, n_ch, got, n_got, ch[got[n_got - 1]].t1, tl, s1);
        }
    }
    inherit_after_colon(ch, n_ch, cu, n_cu, tl, s0, s1);
    inherit_with(ch, n_ch, tl, s0);
    ellipsis_so(ch, n_ch, tl, s0, s1);
    /* Value cues last: their values become variants of the claimed target. */
    for (int ci = 0; ci < n_cu; ci++) {
        const cue *c = &cu[ci];
        if (!(c->flags & CUE_VALUES)) continue;
        int vals[IT_INTENT_MAX_VARIANTS + 2];
        int n_v = walk_right(vals, IT_INTENT_MAX_VARIANTS, ch, n_ch, tl, c->t1, s1);
        if (n_v == 0) continue;
        int tgt[4];
        int n_t = walk_left(tgt, 4, ch, n_ch, tl, c->t0, s0, 1);
        int target = n_t ? tgt[0] : -1;
        if (target >= 0) claim(&ch[target], 2, c, ci);
        for (int k = 0; k < n_v; k++) {
            if (vals[k] == target) continue;
            ch[vals[k]].variant_of = target >= 0 ? target : -(ci + 2);
            ch[vals[k]].claimed = 4; /* values, not concepts of their own */
            ch[vals[k]].op = IT_OP_MODIFY;
            ch[vals[k]].cue_index = ci;
        }
    }
}
