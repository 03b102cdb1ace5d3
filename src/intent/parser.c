/* parser.c: the built-in intent parser's driver (see parser.h).
 *
 * Per sentence, in order (so that "he" in sentence 3 finds the man declared
 * in sentence 1): subject declarations ("a man named Vincent", "my dog Rex",
 * "David, a bald man", "the pose called superhero landing", "paint like
 * Hokusai"), subject mentions, cues and chunks (intent_cues.c), then one
 * concept per governed chunk, attached to a subject by possessor, pronoun,
 * the clause's grammatical subject, or the only subject. Afterwards: auto
 * concepts for taught poses and styles, contrast pairs, detector queries,
 * the domain, and validation with the same rules as `intent check`. */
#include "intent/parser.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "intent/lexicon.h"
#include "intent/parse_priv.h"


typedef struct pctx {
    it_intent *in;
    tok_list tl;
    it_lex_cat subj_cat[IT_INTENT_MAX_SUBJECTS]; /* class category per subject */
    int decl_tok[IT_INTENT_MAX_SUBJECTS];       /* token where each was declared */
    int subj_refs[IT_INTENT_MAX_SUBJECTS][IT_INTENT_MAX_CREFS]; /* refs cited with the declaration */
    int n_subj_refs[IT_INTENT_MAX_SUBJECTS];
    int focus;          /* subject mentioned last, -1 none */
    int sent_focus;     /* subject mentioned in the current sentence, -1 none */
    int s0, s1;         /* current sentence tokens */
    chunk *ch;          /* [max_items] */
    cue *cu;            /* [max_items] */
    int max_items;      /* one per token: a sentence cannot have more */
    double word_score[IT_DOMAIN_COUNT]; /* domain votes of the words */
    int word_score_done;
    it_status st;       /* first hard failure (out of memory, limits) */
    it_err *err;
    /* Each subject's name, lowercase, split into words at ' ' and '-' (NUL
     * between words): subject_of_token asks for every capitalised token. */
    struct subj_words {
        const char *src; /* the name this was made from */
        int valid;
        size_t len; /* bytes of buf used */
        char buf[160];
    } sw[IT_INTENT_MAX_SUBJECTS];
} pctx;

/* ---- small helpers ------------------------------------------------------------ */

void it_intent_make_trigger(char *buf, size_t n, const char *name)
{
    size_t k = 0;
    int gap = 0;
    for (const char *p = name; p && *p && k + 1 < n && k < IT_INTENT_MAX_WORD; p++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) && c < 0x80) {
            if (gap && k > 0 && k + 2 < n) buf[k++] = '_';
            buf[k++] = (char)tolower(c);
            gap = 0;
        } else if (c < 0x80) {
            gap = 1;
        }
    }
    if (k == 0) snprintf(buf, n, "sks");
    else buf[k] = '\0';
}

/* Text of tokens [a, b) as written, trimmed, into buf. */
static void span_text(char *buf, size_t n, const pctx *p, int a, int b)
{
    if (a >= b) {
        buf[0] = '\0';
        return;
    }
    size_t off = p->tl.t[a].off, end = p->tl.t[b - 1].end;
    size_t l = end - off;
    if (l >= n) {
        l = n - 1;
        while (l > 0 && ((unsigned char)p->tl.text[off + l] & 0xC0) == 0x80) l--; /* not inside a character */
    }
    memcpy(buf, p->tl.text + off, l);
    buf[l] = '\0';
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
}

/* Lowercase words of tokens [a, b) joined by spaces, skipping [n] marks. */
static void words_text(char *buf, size_t n, const pctx *p, int a, int b)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = a; i < b; i++) {
        const tok *t = &p->tl.t[i];
        if (t->kind == TK_REF || t->kind == TK_PUNCT) continue;
        int w = snprintf(buf + k, n - k, "%s%s", k && t->kind != TK_POSS ? " " : "", t->w);
        if (w < 0 || (size_t)w >= n - k) break;
        k += (size_t)w;
    }
}

static int sentence_end(const tok *t)
{
    return t->kind == TK_PUNCT && strchr(".!?\n", t->w[0]);
}

static void quote_sentence(char *buf, size_t n, const pctx *p)
{
    char tmp[200];
    span_text(tmp, sizeof tmp, p, p->s0, p->s1);
    if (strlen(tmp) >= sizeof tmp - 1) {
        size_t cut = 190;
        while (cut > 0 && ((unsigned char)tmp[cut] & 0xC0) == 0x80) cut--;
        snprintf(buf, n, "%.*s...", (int)cut, tmp);
    }
    else pt_copy(buf, n, tmp);
}

/* ---- subjects ----------------------------------------------------------------- */

static void add_subject_refs(pctx *p, int s, const tok *t);

static int class_at_uncached(const it_lex_entry **e, const pctx *p, int i);

/* The class noun (up to three words) starting at token i, or 0. Asked by
 * most declaration patterns at every token: computed once per token and
 * sentence end. */
static int class_at(const it_lex_entry **e, const pctx *p, int i)
{
    if (i >= p->s1 || p->tl.t[i].kind != TK_WORD) return 0;
    tok *t = &p->tl.t[i];
    if (t->ca_s1 != p->s1) {
        t->ca_m = class_at_uncached(&t->ca_e, p, i);
        t->ca_s1 = p->s1;
    }
    *e = t->ca_e;
    return t->ca_m;
}

static int class_at_uncached(const it_lex_entry **e, const pctx *p, int i)
{
    const tok *t = p->tl.t;
    if (i >= p->s1 || t[i].kind != TK_WORD) return 0;
    if (!pt_wf(&t[i], WF_LEXHEAD)) { /* it_lex_match would find nothing */
        *e = NULL;
        return 0;
    }
    if (i + 1 >= p->s1 || t[i + 1].kind != TK_WORD) return pt_lex1(e, &t[i], IT_LEX_CLASS);
    const char *words[3];
    int n = 0;
    for (int k = i; k < p->s1 && n < 3 && t[k].kind == TK_WORD; k++) words[n++] = t[k].w;
    return it_lex_match(e, words, n, IT_LEX_CLASS);
}

/* Words that are never part of a name (tok.wf WF_NAMESTOP). */
static int name_stop_word(const char *w)
{
    IT_WORDSET_DEFINE(l, "using", "based", "made", "drawn", "shown", "taken", "wearing", "from", "after", "before",
                      "because", "during", "please");
    return it_wordset_has(&l, w);
}

static int name_word_ok(const tok *t)
{
    const it_lex_entry *e;
    return !pt_wf(t, WF_NAMESTOP) && t->kind == TK_WORD && !t->used &&
           !pt_wf(t, WF_FUNCTION | WF_FILLER | WF_CLAUSE) && !pt_lex1(&e, t, IT_LEX_CLASS) &&
           !pt_lex1(&e, t, IT_LEX_THING) && !pt_lex1(&e, t, IT_LEX_SCENE) && !pt_lex1(&e, t, IT_LEX_VALUE);
}

/* A word the lexicon does not know at all (a candidate class noun such as
 * "colleague" or "cousin"). */
static int unknown_noun(const tok *t)
{
    const it_lex_entry *e;
    return t->kind == TK_WORD && !t->used && !t->cap && !pt_wf(t, WF_FUNCTION | WF_FILLER | WF_CLAUSE) &&
           !pt_lex1(&e, t, 0);
}

static int cap_name_more(const tok *t);

/* A name after "named"/"called": a quoted span, capitalised words, or up to
 * three lowercase words ("the pose called superhero landing"). */
static int parse_name(const pctx *p, int i, int *n0, int *n1)
{
    const tok *t = p->tl.t;
    if (i < p->s1 && (pt_punct(&t[i], '"') || pt_punct(&t[i], '\''))) {
        char q = t[i].w[0];
        int j = i + 1;
        while (j < p->s1 && j < i + 7 && !pt_punct(&t[j], q) && t[j].kind == TK_WORD) j++;
        if (j < p->s1 && j > i + 1 && pt_punct(&t[j], q)) {
            *n0 = i + 1;
            *n1 = j;
            return j + 1;
        }
        return 0;
    }
    if (i >= p->s1 || t[i].kind != TK_WORD || t[i].used) return 0;
    int cap = t[i].cap, j = i;
    while (j < p->s1 && j < i + 3 && t[j].kind == TK_WORD && (cap ? t[j].cap : 1) &&
           (name_word_ok(&t[j]) || (cap && j > i && cap_name_more(&t[j])))) {
        const it_lex_entry *e;
        /* a lowercase name stops at a word the lexicon knows ("named pip with") */
        if (!cap && j > i && (pt_lex1(&e, &t[j], 0) || pt_wf(&t[j], WF_VERBISH))) break;
        j++;
    }
    if (j == i) return 0;
    *n0 = i;
    *n1 = j;
    return j;
}

static it_lex_cat cat_of_class(const char *canon)
{
    const it_lex_entry *e;
    return it_lex_match(&e, &canon, 1, IT_LEX_CLASS) ? e->cat : IT_LEXC_CREATURE;
}

static const char *fallback_class(const it_intent *in)
{
    static const char *const by_domain[IT_DOMAIN_COUNT] = {"character", "person", "product", "style"};
    return by_domain[in->domain];
}

/* Adds (or finds, by trigger) a subject named by tokens [n0, n1). */
static int add_subject(pctx *p, int n0, int n1, const char *class_canon, it_lex_cat cat)
{
    char name[160], trig[IT_INTENT_MAX_WORD + 1];
    span_text(name, sizeof name, p, n0, n1);
    it_intent_make_trigger(trig, sizeof trig, name);
    int s = it_intent_find_subject(p->in, trig);
    if (s < 0) {
        if (it_intent_add_subject(p->err, p->in, &s) != IT_OK) {
            p->st = p->err ? p->err->code : IT_ERR_RANGE;
            return -1;
        }
        it_intent_subject *sj = &p->in->subjects[s];
        sj->name = it_intent_strdup(p->in, name);
        sj->trigger = it_intent_strdup(p->in, trig);
        sj->class_word = it_intent_strdup(p->in, class_canon ? class_canon : fallback_class(p->in));
        if (!sj->name || !sj->trigger || !sj->class_word) p->st = IT_ERR_NOMEM;
        p->subj_cat[s] = class_canon ? cat : cat_of_class(fallback_class(p->in));
        p->decl_tok[s] = n0;
    } else if (class_canon && p->subj_cat[s] != IT_LEXC_STYLE && p->subj_cat[s] != IT_LEXC_POSE) {
        p->in->subjects[s].class_word = it_intent_strdup(p->in, class_canon);
        p->subj_cat[s] = cat;
    }
    for (int k = n0; k < n1; k++) p->tl.t[k].used = 1;
    if (n1 < p->s1 && p->tl.t[n1].kind == TK_REF) add_subject_refs(p, s, &p->tl.t[n1]); /* "Mira [1]" */
    p->focus = p->sent_focus = s;
    return s;
}

/* Is token i (a capitalised word) the name of a subject already declared? */
static int subject_named_at(const pctx *p, int i)
{
    char name[160], trig[IT_INTENT_MAX_WORD + 1];
    span_text(name, sizeof name, p, i, i + 1);
    it_intent_make_trigger(trig, sizeof trig, name);
    for (int s = 0; s < p->in->n_subjects; s++)
        if (p->in->subjects[s].trigger && !strncmp(p->in->subjects[s].trigger, trig, strlen(trig)) &&
            (p->in->subjects[s].trigger[strlen(trig)] == '\0' || p->in->subjects[s].trigger[strlen(trig)] == '_'))
            return 1;
    return 0;
}

/* References cited with a subject's declaration ("Mira [1]", "the pose
 * superhero landing shown in [1]"): they show the subject; finish() gives
 * them to the concept that stands for it. */
static void add_subject_refs(pctx *p, int s, const tok *t)
{
    for (int k = 0; k < t->n_refs; k++) {
        int dup = 0;
        for (int j = 0; j < p->n_subj_refs[s]; j++) dup |= p->subj_refs[s][j] == t->refs[k];
        if (!dup && p->n_subj_refs[s] < IT_INTENT_MAX_CREFS) p->subj_refs[s][p->n_subj_refs[s]++] = t->refs[k];
    }
}

/* The nearest class word before token i in the sentence (skipping up to six
 * modifiers), or -1. */
static int class_before(const pctx *p, int i, const it_lex_entry **e, int far)
{
    int lim = far ? p->s0 : (i - 7 > p->s0 ? i - 7 : p->s0);
    for (int j = i - 1; j >= lim; j--) {
        const tok *t = &p->tl.t[j];
        if (t->kind == TK_PUNCT && t->w[0] != ',') return -1;
        int m = t->kind == TK_WORD ? class_at(e, p, j) : 0;
        /* "the style of my aunt's paintings": a possessor is not what is named */
        if (m && !(j + m < p->s1 && p->tl.t[j + m].kind == TK_POSS)) return j;
    }
    return -1;
}

static void mark_class(pctx *p, int j, const it_lex_entry *e)
{
    const char *words[3];
    int n = 0;
    for (int k = j; k < p->s1 && n < 3 && p->tl.t[k].kind == TK_WORD; k++) words[n++] = p->tl.t[k].w;
    int m = it_lex_match(&e, words, n, IT_LEX_CLASS);
    for (int k = j; k < j + m; k++) p->tl.t[k].used = 1;
    /* its modifiers describe the subject ("the crouched landing pose") */
    for (int k = j - 1; k >= p->s0; k--) {
        tok *t = &p->tl.t[k];
        if (t->kind != TK_WORD || t->used || pt_wf(t, WF_FUNCTION) || pt_wf(t, WF_POSSESSIVE)) break;
        const it_lex_entry *x;
        if (pt_lex1(&x, t, IT_LEX_THING) || pt_lex1(&x, t, IT_LEX_SCENE)) break;
        t->used = 1;
    }
}

static int cap_name(const tok *t) { return t->kind == TK_WORD && t->cap && name_word_ok(t) && !pt_wf(t, WF_VERBISH); }

/* A capitalised word that continues a name already started: also a number
 * or a word the lexicon knows ("Drip One", "the Camp Mug", "Unit Seven"). */
static int cap_name_more(const tok *t)
{
    if (cap_name(t)) return 1;
    const it_lex_entry *e;
    return t->kind == TK_WORD && t->cap && !t->used && !pt_wf(t, WF_FUNCTION | WF_VERBISH) &&
           (pt_wf(t, WF_NUMBER) || pt_lex1(&e, t, IT_LEX_CLASS) || pt_lex1(&e, t, 0));
}

/* "X named|called NAME", "call it NAME", "name it NAME" */
static int decl_named(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    int n0 = 0, n1 = 0, c = -1;
    int after = -1;
    if (pt_is(&t[i], "named") || pt_is(&t[i], "called")) after = i + 1;
    else if ((pt_is(&t[i], "call") || pt_is(&t[i], "name") || pt_is(&t[i], "calling")) && i + 1 < p->s1 &&
             (pt_is(&t[i + 1], "it") || pt_is(&t[i + 1], "him") || pt_is(&t[i + 1], "her") ||
              pt_is(&t[i + 1], "them")))
        after = i + 2;
    if (after > 0 && parse_name(p, after, &n0, &n1)) {
        c = class_before(p, i, &e, after == i + 2);
        if (c < 0 && after == i + 1) c = class_before(p, i, &e, 1);
        if (c >= 0) mark_class(p, c, e);
        t[i].used = 1;
        if (after == i + 2) t[i + 1].used = 1;
        add_subject(p, n0, n1, c >= 0 ? e->canon : NULL, c >= 0 ? e->cat : IT_LEXC_NONE);
        i = n1 - 1;
        /* "two cats named Tig and Tam", "named Goo, Blob and Drip": more
         * names of the same class */
        while (n1 + 1 < p->s1 && (pt_is(&t[n1], "and") || pt_punct(&t[n1], ',')) && p->st == IT_OK) {
            int m0 = n1 + 1;
            if (pt_punct(&t[n1], ',') && m0 < p->s1 && pt_is(&t[m0], "and")) m0++;
            if (!(m0 < p->s1 && cap_name(&t[m0])) ||
                (m0 + 1 < p->s1 && (pt_is(&t[m0 + 1], "named") || pt_is(&t[m0 + 1], "called") ||
                                    t[m0 + 1].kind == TK_POSS)))
                break;
            int m1 = m0;
            while (m1 < p->s1 && m1 < m0 + 3 && (m1 == m0 ? cap_name(&t[m1]) : cap_name_more(&t[m1]))) m1++;
            for (int k = n1; k < m0; k++) t[k].used = 1;
            add_subject(p, m0, m1, c >= 0 ? e->canon : NULL, c >= 0 ? e->cat : IT_LEXC_NONE);
            i = m1 - 1;
            n1 = m1;
        }
        return i;
    }
    return -1;
}

/* "trigger word X", "trigger X", "token X" */
static int decl_trigger(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    int n0 = 0, n1 = 0, c = -1;
    if (pt_is(&t[i], "trigger") || pt_is(&t[i], "token") || pt_is(&t[i], "triggered")) {
        int j = i + 1;
        while (j < p->s1 && (pt_is(&t[j], "word") || pt_is(&t[j], "is") || pt_is(&t[j], "by") || pt_punct(&t[j], ':'))) j++;
        if (parse_name(p, j, &n0, &n1) || (j < p->s1 && t[j].kind == TK_WORD && (n0 = j, n1 = j + 1))) {
            char name[160], trig[IT_INTENT_MAX_WORD + 1];
            span_text(name, sizeof name, p, n0, n1);
            it_intent_make_trigger(trig, sizeof trig, name);
            /* "a victory pose triggered by vpose": a class word just before
             * that no subject took is a new subject, whatever came before */
            c = class_before(p, i, &e, p->in->n_subjects == 0);
            if (c >= 0 && t[c].used) c = -1;
            if (p->in->n_subjects == 0 || c >= 0) {
                /* "Train this watercolour style, trigger word aqv" */
                if (c >= 0) mark_class(p, c, e);
                add_subject(p, n0, n1, c >= 0 ? e->canon : NULL, c >= 0 ? e->cat : IT_LEXC_NONE);
            } else {
                /* "Mira [1], trigger word mira, and Tobi [2], trigger word
                 * tobi": the subject named last before it */
                int s = -1, best = -1;
                for (int k = 0; k < p->in->n_subjects; k++)
                    if (p->decl_tok[k] >= p->s0 && p->decl_tok[k] < i && p->decl_tok[k] > best) best = p->decl_tok[k], s = k;
                if (s < 0) s = p->focus >= 0 ? p->focus : p->in->n_subjects - 1;
                if (it_intent_find_subject(p->in, trig) < 0) p->in->subjects[s].trigger = it_intent_strdup(p->in, trig);
            }
            for (int k = i; k < n1; k++) t[k].used = 1;
            i = n1 - 1;
            return i;
        }
    }
    return -1;
}

/* "my dog Rex", "our mascot Blip" */
static int decl_poss_class_name(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    /* "the fox knight Reynard": up to two modifiers after the determiner */
    int d = i - 1;
    while (d > p->s0 && d > i - 3 && t[d].kind == TK_WORD && !t[d].used && !pt_wf(&t[d], WF_FUNCTION) &&
           !pt_wf(&t[d], WF_VERBISH))
        d--;
    if (class_at(&e, p, i) && i > p->s0 && i + 1 < p->s1 && t[d].kind == TK_WORD &&
        (pt_wf(&t[d], WF_POSSESSIVE) || pt_is(&t[d], "the")) && cap_name(&t[i + 1]) &&
        !(i + 2 < p->s1 && t[i + 2].kind == TK_POSS)) {
        int j = i + 1;
        while (j < p->s1 && j < i + 3 && (j == i + 1 ? cap_name(&t[j]) : cap_name_more(&t[j]))) j++;
        for (int k = d + 1; k < i; k++) t[k].used = 1;
        t[i].used = 1;
        add_subject(p, i + 1, j, e->canon, e->cat);
        i = j - 1;
        return i;
    }
    /* "my cousin Dana": after my/our, an unknown noun is the class */
    if (i > p->s0 && i + 1 < p->s1 && (pt_is(&t[i - 1], "my") || pt_is(&t[i - 1], "our")) && unknown_noun(&t[i]) &&
        cap_name(&t[i + 1]) && !(i + 2 < p->s1 && t[i + 2].kind == TK_POSS)) {
        int j = i + 1;
        while (j < p->s1 && j < i + 3 && cap_name(&t[j])) j++;
        t[i].used = 1;
        char sing[64];
        add_subject(p, i + 1, j, it_lex_singular(sing, sizeof sing, t[i].w), IT_LEXC_PERSON);
        return j - 1;
    }
    return -1;
}

/* "Bix the tiny robot", "Pip the green creature" */
static int decl_name_the_class(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if (!cap_name(&t[i]) || i + 2 >= p->s1 || !pt_is(&t[i + 1], "the")) return -1;
    for (int j = i + 2; j < p->s1 && j < i + 6 && t[j].kind == TK_WORD; j++) {
        if (class_at(&e, p, j)) {
            mark_class(p, j, e);
            t[i + 1].used = 1;
            add_subject(p, i, i + 1, e->canon, e->cat);
            return i;
        }
        if (pt_wf(&t[j], WF_FUNCTION)) break;
    }
    return -1;
}

/* "David, a bald man", "Luna, a cat girl" */
static int decl_name_apposition(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if (cap_name(&t[i]) && i + 2 < p->s1 && pt_punct(&t[i + 1], ',') && t[i + 2].kind == TK_WORD &&
        (pt_is(&t[i + 2], "a") || pt_is(&t[i + 2], "an") || pt_is(&t[i + 2], "my") || pt_is(&t[i + 2], "our") ||
         pt_is(&t[i + 2], "the"))) {
        int j = i + 3;
        for (; j < p->s1 && j < i + 8 && t[j].kind == TK_WORD && !class_at(&e, p, j); j++)
            if (pt_wf(&t[j], WF_FUNCTION)) break;
        if (j < p->s1 && class_at(&e, p, j)) {
            mark_class(p, j, e);
            add_subject(p, i, i + 1, e->canon, e->cat);
            return i;
        }
        /* "Marcus, my colleague": a noun the lexicon does not know is
         * still the class when the apposition ends there */
        int last = j - 1;
        const it_lex_entry *x;
        const char *lw = t[last].w;
        if (last >= i + 3 && (j >= p->s1 || t[j].kind == TK_PUNCT || pt_wf(&t[j], WF_FUNCTION)) &&
            t[last].kind == TK_WORD && !pt_wf(&t[last], WF_FUNCTION) && !pt_lex1(&x, &t[last], 0)) {
            char sing[64];
            it_lex_singular(sing, sizeof sing, lw);
            for (int k = i + 3; k <= last; k++) t[k].used = 1;
            int mine = pt_is(&t[i + 2], "my") || pt_is(&t[i + 2], "our");
            add_subject(p, i, i + 1, sing, mine ? IT_LEXC_PERSON : IT_LEXC_CREATURE);
            return i;
        }
    }
    return -1;
}

/* "my mom, Linda", "our mascot, Blip" */
static int decl_class_apposition(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    int d = i - 1; /* "my comic hero, Captain Volt": adjectives between */
    while (d > p->s0 && d > i - 4 && t[d].kind == TK_WORD && !pt_wf(&t[d], WF_FUNCTION)) d--;
    if (class_at(&e, p, i) && i + 2 < p->s1 && pt_punct(&t[i + 1], ',') && cap_name(&t[i + 2]) &&
        d >= p->s0 && t[d].kind == TK_WORD && (pt_wf(&t[d], WF_POSSESSIVE) || pt_wf(&t[d], WF_DETERMINER))) {
        int j = i + 2;
        while (j < p->s1 && j < i + 5 && cap_name(&t[j])) j++;
        mark_class(p, i, e);
        add_subject(p, i + 2, j, e->canon, e->cat);
        i = j - 1;
        return i;
    }
    return -1;
}

/* "brand Lumi", "style name softglow", "name the style pencilfox" */
static int decl_brand(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    int n0 = 0, n1 = 0, c = -1;
    int name_verb = pt_is(&t[i], "name") || pt_is(&t[i], "call");
    if ((pt_is(&t[i], "brand") || (pt_is(&t[i], "name") && i > p->s0 && pt_is(&t[i - 1], "style")) ||
         (name_verb && i + 2 < p->s1 && pt_is(&t[i + 1], "the") && class_at(&e, p, i + 2))) &&
        i + 1 < p->s1) {
        int at = i + 1, has_class = 0;
        if (name_verb && pt_is(&t[i + 1], "the")) {
            has_class = 1;
            mark_class(p, i + 2, e);
            at = i + 2;
            while (at < p->s1 && t[at].used) at++;
        }
        if (parse_name(p, at, &n0, &n1)) {
            if (!has_class && pt_is(&t[i], "name")) { /* "style name X" */
                const char *sw = "style";
                has_class = it_lex_match(&e, &sw, 1, IT_LEX_CLASS) > 0;
                t[i - 1].used = 1;
            } else if (!has_class) { /* "brand X": the class said before */
                c = class_before(p, i, &e, 1);
                if (c >= 0) mark_class(p, c, e);
                has_class = c >= 0;
            }
            t[i].used = 1;
            add_subject(p, n0, n1, has_class ? e->canon : NULL, has_class ? e->cat : IT_LEXC_NONE);
            i = n1 - 1;
            return i;
        }
    }
    return -1;
}

/* "our new sneaker, the Zephyr" */
static int decl_class_the_name(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if (class_at(&e, p, i) && i + 3 < p->s1 && pt_punct(&t[i + 1], ',') && pt_is(&t[i + 2], "the") &&
        cap_name(&t[i + 3])) {
        int j = i + 3;
        while (j < p->s1 && j < i + 6 && (j == i + 3 ? cap_name(&t[j]) : cap_name_more(&t[j]))) j++;
        t[i].used = 1;
        add_subject(p, i + 3, j, e->canon, e->cat);
        i = j - 1;
        return i;
    }
    return -1;
}

/* "the Nova headphones" (a capitalised name before a class word) */
static int decl_the_name_class(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if ((pt_is(&t[i], "the") || pt_is(&t[i], "our") || pt_is(&t[i], "my")) && i + 2 < p->s1 && cap_name(&t[i + 1])) {
        int j = i + 1;
        while (j < p->s1 && j < i + 4 && cap_name(&t[j])) j++;
        /* "the Kestrel trail-running shoe", "our Arc wireless earbuds": up to
         * two modifiers before the class word */
        int c = j;
        while (c < p->s1 && c < j + 2 && t[c].kind == TK_WORD && !t[c].cap && !t[c].used &&
               !pt_wf(&t[c], WF_FUNCTION) && !pt_wf(&t[c], WF_VERBISH) && !class_at(&e, p, c))
            c++;
        if (c < p->s1 && class_at(&e, p, c)) {
            mark_class(p, c, e);
            add_subject(p, i + 1, j, e->canon, e->cat);
            i = c;
            return i;
        }
        /* "the Kova belt": a named thing is a product -- when it is the
         * first subject and the name is no acronym ("the USB cable") */
        int acronym = t[i + 1].end - t[i + 1].off >= 2 && isupper((unsigned char)p->tl.text[t[i + 1].off + 1]);
        if (j < p->s1 && t[j].kind == TK_WORD && pt_lex1(&e, &t[j], IT_LEX_THING) && p->in->n_subjects == 0 &&
            !acronym && !(j + 1 < p->s1 && t[j + 1].kind == TK_POSS)) {
            t[j].used = 1;
            add_subject(p, i + 1, j, e->canon, IT_LEXC_PRODUCT);
            return j;
        }
    }
    return -1;
}

/* "paint like Hokusai", "in the style of Monet" */
static int decl_style_of(pctx *p, int i)
{
    tok *t = p->tl.t;
    if ((pt_is(&t[i], "like") && i > p->s0 &&
         (pt_is(&t[i - 1], "paint") || pt_is(&t[i - 1], "paints") || pt_is(&t[i - 1], "painted") ||
          pt_is(&t[i - 1], "draw") || pt_is(&t[i - 1], "draws") || pt_is(&t[i - 1], "drawn"))) ||
        (pt_is(&t[i], "of") && i > p->s0 && pt_is(&t[i - 1], "style"))) {
        if (i + 1 < p->s1 && cap_name(&t[i + 1])) {
            int j = i + 1;
            while (j < p->s1 && j < i + 4 && cap_name(&t[j])) j++;
            if (pt_is(&t[i], "of")) t[i - 1].used = 1;
            add_subject(p, i + 1, j, "style", IT_LEXC_STYLE);
            i = j - 1;
            return i;
        }
    }
    return -1;
}

/* "photos of Chen", "portraits of Lena" */
static int decl_photos_of(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if (!(i + 2 < p->s1 && pt_is(&t[i + 1], "of"))) return -1; /* required below: the cheap test first */
    if ((pt_is(&t[i], "photos") || pt_is(&t[i], "pictures") || pt_is(&t[i], "images") ||
         pt_is(&t[i], "selfies") || pt_is(&t[i], "portraits") || pt_is(&t[i], "headshots") ||
         pt_is(&t[i], "shots") || pt_is(&t[i], "renders") || pt_is(&t[i], "drawings") ||
         pt_is(&t[i], "photographs") || pt_is(&t[i], "screenshots") || pt_is(&t[i], "lora") ||
         pt_is(&t[i], "model") || pt_is(&t[i], "sketches")) &&
        i + 2 < p->s1 + 1 && i + 1 < p->s1 && pt_is(&t[i + 1], "of") && i + 2 < p->s1 &&
        (cap_name(&t[i + 2]) || (t[i + 2].cap && class_at(&e, p, i + 2) && i + 3 < p->s1 && t[i + 3].cap && t[i + 3].kind == TK_WORD))) {
        int j = i + 2;
        const it_lex_entry *title = NULL;
        if (!cap_name(&t[j])) { /* "Grandpa Joe": the title is part of the name and gives the class */
            class_at(&title, p, j);
            j++;
        }
        /* after a title any capitalised word is the name ("Aunt May") */
        while (j < p->s1 && j < i + 5 && (cap_name(&t[j]) || (title && t[j].cap && t[j].kind == TK_WORD))) j++;
        if (j < p->s1 && pt_punct(&t[j], ',')) return -1; /* "of Priti, my neighbour": the apposition says more */
        if (!(j < p->s1 && class_at(&e, p, j))) {
            add_subject(p, i + 2, j, title ? title->canon : NULL, title ? title->cat : IT_LEXC_NONE);
            i = j - 1;
            return i;
        }
    }
    return -1;
}

/* "Our mascot is Blip" */
static int decl_class_is_name(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if (class_at(&e, p, i) && i + 2 < p->s1 && (pt_is(&t[i + 1], "is") || pt_is(&t[i + 1], "was")) &&
        cap_name(&t[i + 2]) && !(i + 3 < p->s1 && t[i + 3].kind == TK_POSS)) {
        t[i].used = 1;
        add_subject(p, i + 2, i + 3, e->canon, e->cat);
        i += 2;
        return i;
    }
    return -1;
}

/* "Sunny is a chibi sunflower mascot", "Nib is a penguin courier from my
 * webcomic": a name opening the sentence, "is a", and a class noun (known,
 * or the last noun of the phrase). */
static int decl_name_is_a(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    if (i != p->s0 || !cap_name(&t[i]) || i + 3 >= p->s1 || !pt_is(&t[i + 1], "is") ||
        !(pt_is(&t[i + 2], "a") || pt_is(&t[i + 2], "an")) || subject_named_at(p, i))
        return -1;
    int j = i + 3, last = -1;
    for (; j < p->s1 && j < i + 9 && t[j].kind == TK_WORD && !pt_wf(&t[j], WF_FUNCTION) && !pt_wf(&t[j], WF_VERBISH); j++) {
        if (class_at(&e, p, j)) {
            mark_class(p, j, e);
            add_subject(p, i, i + 1, e->canon, e->cat);
            return i;
        }
        last = j;
    }
    const it_lex_entry *x;
    if (last < 0 || pt_lex1(&x, &t[last], 0)) return -1;
    const char *lw = t[last].w;
    char sing[64];
    it_lex_singular(sing, sizeof sing, lw);
    for (int k = i + 1; k <= last; k++) t[k].used = 1;
    add_subject(p, i, i + 1, sing, IT_LEXC_CREATURE);
    return i;
}

/* A list of names after a class word that says there are several: "two
 * robots share this LoRA: Bolt, who is tall, and Widget", "Teach two
 * characters in one model: Mira [1], trigger word mira, and Tobi [2]", "A
 * couple, Sam and Priya". Names count when they follow ':' ',' or 'and'. */
static int decl_class_list(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    int m = class_at(&e, p, i);
    if (!m || e->cat == IT_LEXC_STYLE || e->cat == IT_LEXC_POSE) return -1;
    size_t wl = strlen(t[i].w);
    int plural = (wl > 1 && t[i].w[wl - 1] == 's') || !strcmp(e->canon, "couple") ||
                 (i > p->s0 && (pt_wf(&t[i - 1], WF_NUMBER) || pt_is(&t[i - 1], "both")));
    if (!plural) return -1;
    int names[IT_INTENT_MAX_SUBJECTS][2], n = 0;
    for (int j = i + m; j < p->s1 && n < IT_INTENT_MAX_SUBJECTS; j++) {
        if (!cap_name(&t[j]) || subject_named_at(p, j)) continue;
        int b = j - 1;
        while (b > i && t[b].kind == TK_REF) b--;
        if (!(pt_punct(&t[b], ':') || pt_punct(&t[b], ',') || pt_is(&t[b], "and"))) continue;
        int k = j + 1;
        while (k < p->s1 && k < j + 3 && cap_name_more(&t[k])) k++;
        if (k < p->s1 && (t[k].kind == TK_POSS || pt_is(&t[k], "named") || pt_is(&t[k], "called"))) continue;
        names[n][0] = j;
        names[n][1] = k;
        n++;
        j = k - 1;
    }
    if (n < 2) return -1;
    const char *canon = !strcmp(e->canon, "couple") ? "person" : e->canon;
    it_lex_cat cat = e->cat;
    mark_class(p, i, e);
    for (int k = 0; k < n && p->st == IT_OK; k++) add_subject(p, names[k][0], names[k][1], canon, cat);
    return i + m - 1;
}

/* "Teach the pose superhero landing shown in [1]": a pose or style named
 * right after its class word, in lowercase, when the sentence teaches it. */
static int decl_pose_name(pctx *p, int i)
{
    tok *t = p->tl.t;
    const it_lex_entry *e = NULL;
    int m = class_at(&e, p, i);
    if (!m || (e->cat != IT_LEXC_POSE && e->cat != IT_LEXC_STYLE) || i == p->s0 ||
        !(pt_is(&t[i - 1], "the") || pt_is(&t[i - 1], "this") || pt_is(&t[i - 1], "a")))
        return -1;
    int teach = 0;
    for (int k = p->s0; k < i - 1; k++)
        teach |= pt_is(&t[k], "teach") || pt_is(&t[k], "learn") || pt_is(&t[k], "train") || pt_is(&t[k], "model") ||
                 pt_is(&t[k], "lora");
    int n0, n1;
    if (!teach || !parse_name(p, i + m, &n0, &n1)) return -1;
    for (int k = n0; k < n1; k++) {
        const it_lex_entry *x;
        if (pt_lex1(&x, &t[k], 0) || pt_wf(&t[k], WF_VERBISH)) return -1;
    }
    mark_class(p, i, e);
    int s = add_subject(p, n0, n1, e->canon, e->cat);
    /* "shown in [1]": the reference shows what is taught */
    for (int k = n1; s >= 0 && k < p->s1 && k < n1 + 4; k++) {
        if (t[k].kind == TK_PUNCT) break;
        if (t[k].kind == TK_REF) add_subject_refs(p, s, &t[k]);
    }
    return n1 - 1;
}

/* Declarations of one sentence: each pattern returns the last token it
 * consumed, or -1 when it does not match at i. */
static void declarations(pctx *p)
{
    static int (*const patterns[])(pctx *, int) = {
        decl_named, decl_trigger, decl_pose_name, decl_class_list, decl_poss_class_name, decl_name_apposition,
        decl_class_apposition, decl_brand, decl_class_the_name, decl_the_name_class, decl_style_of,
        decl_photos_of, decl_class_is_name, decl_name_the_class, decl_name_is_a,
    };
    for (int i = p->s0; i < p->s1 && p->st == IT_OK; i++) {
        if (p->tl.t[i].used || p->tl.t[i].kind != TK_WORD) continue;
        for (size_t k = 0; k < sizeof patterns / sizeof patterns[0]; k++) {
            int r = patterns[k](p, i);
            if (r >= 0) {
                i = r;
                break;
            }
        }
    }
}

/* Pronoun -> subjects it can mean (by the class category). */
static int pronoun_subjects(const pctx *p, const char *w, int *out)
{
    const it_intent *in = p->in;
    int n = 0;
    if (in->n_subjects == 0) return 0;
    int male = !strcmp(w, "he") || !strcmp(w, "him") || !strcmp(w, "his");
    int female = !strcmp(w, "she") || !strcmp(w, "her") || !strcmp(w, "hers");
    int neuter = !strcmp(w, "it") || !strcmp(w, "its");
    int plural = !strcmp(w, "they") || !strcmp(w, "them") || !strcmp(w, "their");
    if (plural && in->n_subjects > 1) {
        for (int s = 0; s < in->n_subjects; s++) out[n++] = s;
        return n;
    }
    int pref = p->sent_focus >= 0 ? p->sent_focus : p->focus;
    for (int pass = 0; pass < 2 && n == 0; pass++)
        for (int s = 0; s < in->n_subjects && n == 0; s++) {
            int cand = pass == 0 ? pref : s;
            if (cand < 0) continue;
            it_lex_cat c = p->subj_cat[cand];
            int ok = plural || (male && (c == IT_LEXC_MALE || c == IT_LEXC_PERSON || c == IT_LEXC_ANIMAL ||
                                         c == IT_LEXC_CREATURE)) ||
                     (female && (c == IT_LEXC_FEMALE || c == IT_LEXC_PERSON || c == IT_LEXC_ANIMAL ||
                                 c == IT_LEXC_CREATURE)) ||
                     (neuter && c != IT_LEXC_MALE && c != IT_LEXC_FEMALE && c != IT_LEXC_PERSON);
            if (ok) out[n++] = cand;
        }
    if (n == 0 && (male || female || neuter || plural)) out[n++] = pref >= 0 ? pref : 0;
    return n;
}

/* Subject whose name (any word of it) or class is token t, or -1. */
static int subject_of_token(const pctx *p, const tok *t)
{
    if (t->kind != TK_WORD) return -1;
    for (int s = 0; s < p->in->n_subjects; s++) {
        const it_intent_subject *sj = &p->in->subjects[s];
        struct subj_words *sw = (struct subj_words *)&p->sw[s]; /* a cache: p itself is not const */
        if (!sw->valid || sw->src != sj->name) {
            pt_copy(sw->buf, sizeof sw->buf, sj->name ? sj->name : "");
            for (char *c = sw->buf; *c; c++) *c = *c == ' ' || *c == '-' ? '\0' : (char)tolower((unsigned char)*c);
            sw->len = strlen(sj->name ? sj->name : "");
            if (sw->len > sizeof sw->buf - 1) sw->len = sizeof sw->buf - 1;
            sw->src = sj->name;
            sw->valid = 1;
        }
        /* the words are the non-empty runs between the NULs (as strtok_r) */
        for (size_t k = 0; k < sw->len;) {
            if (!sw->buf[k]) {
                k++;
                continue;
            }
            const char *w = sw->buf + k;
            size_t wl = strlen(w);
            if (!strcmp(w, t->w) && !it_lex_is_function(w)) return s;
            k += wl;
        }
    }
    for (int s = 0; s < p->in->n_subjects; s++)
        if (p->in->subjects[s].class_word && !strcmp(p->in->subjects[s].class_word, t->w) &&
            p->subj_cat[s] != IT_LEXC_STYLE && p->subj_cat[s] != IT_LEXC_POSE)
            return s;
    return -1;
}

/* Marks subject names in the sentence (used, except before 's) and sets the
 * sentence focus. */
static void mentions(pctx *p)
{
    for (int i = p->s0; i < p->s1; i++) {
        tok *t = &p->tl.t[i];
        if (t->used || t->kind != TK_WORD || !t->cap) continue;
        int s = subject_of_token(p, t);
        if (s < 0) continue;
        p->focus = p->sent_focus = s;
        t->name = 1;
        if (!(i + 1 < p->s1 && p->tl.t[i + 1].kind == TK_POSS)) t->used = 1;
    }
}

/* ---- concepts ------------------------------------------------------------------ */

/* Subjects a chunk belongs to; returns the count (0: the whole image). */
/* The subject whose name was written last before token i in the sentence
 * (bounded), or -1: "Ruby must keep her bow tie; Sapphire must keep her
 * necklace" -- each "her" is the name just before it. */
static int nearest_mention(const pctx *p, int i)
{
    int lim = i - 24 > p->s0 ? i - 24 : p->s0;
    for (int j = i - 1; j >= lim; j--)
        if (p->tl.t[j].cap) {
            int s = subject_of_token(p, &p->tl.t[j]);
            if (s >= 0) return s;
        }
    return -1;
}

/* pronoun_subjects, preferring the nearest name before token i. */
static int pronoun_near(pctx *p, const char *w, int i, int *out)
{
    int saved = p->sent_focus, near = nearest_mention(p, i);
    if (near >= 0) p->sent_focus = near;
    int n = pronoun_subjects(p, w, out);
    p->sent_focus = saved;
    return n;
}

static int chunk_subjects(pctx *p, const chunk *c, int *out)
{
    const tok *t = p->tl.t;
    if (c->poss_t >= 0) {
        int s = subject_of_token(p, &t[c->poss_t]);
        if (s >= 0) {
            out[0] = s;
            return 1;
        }
    }
    if (c->poss_word && strcmp(c->poss_word, "my") && strcmp(c->poss_word, "our") && strcmp(c->poss_word, "your")) {
        int n = pronoun_near(p, c->poss_word, c->t0, out);
        if (n) return n;
    }
    /* "Keep each face", "both faces": every subject */
    for (int j = c->t0 - 1; j >= p->s0 && j >= c->t0 - 2; j--)
        if ((pt_is(&t[j], "each") || pt_is(&t[j], "every") || pt_is(&t[j], "both")) && p->in->n_subjects > 1) {
            int n = 0;
            for (int s = 0; s < p->in->n_subjects; s++) out[n++] = s;
            return n;
        }
    /* "for either of them", "for both" after the phrase */
    for (int j = c->t1; j < p->s1 && j < c->t1 + 4; j++)
        if (pt_is(&t[j], "either") || pt_is(&t[j], "both") || pt_is(&t[j], "each")) {
            int n = 0;
            for (int s = 0; s < p->in->n_subjects; s++) out[n++] = s;
            if (n) return n;
        }
    /* the clause's grammatical subject: a name or pronoun before the phrase
     * (a clause is short: the scan is bounded, which also keeps very long
     * sentences linear) */
    int lim = c->t0 - 24 > p->s0 ? c->t0 - 24 : p->s0;
    for (int j = c->t0 - 1; j >= lim; j--) {
        if (t[j].kind == TK_PUNCT && t[j].w[0] != ',') break;
        if (t[j].kind != TK_WORD) continue;
        if (pt_wf(&t[j], WF_CLAUSE)) break;
        int s = subject_of_token(p, &t[j]);
        if (s >= 0) {
            out[0] = s;
            return 1;
        }
        if (pt_wf(&t[j], WF_PRONOUN) || !strcmp(t[j].w, "her")) {
            int n = pronoun_near(p, t[j].w, j, out);
            if (n) return n;
        }
    }
    if (p->in->n_subjects == 1) {
        out[0] = 0;
        return 1;
    }
    if (p->sent_focus >= 0) {
        out[0] = p->sent_focus;
        return 1;
    }
    int n = 0;
    for (int s = 0; s < p->in->n_subjects; s++) out[n++] = s;
    return n;
}

static int subject_with_cat(const pctx *p, it_lex_cat cat)
{
    for (int s = 0; s < p->in->n_subjects; s++)
        if (p->subj_cat[s] == cat) return s;
    return -1;
}

static it_intent_concept *find_concept(it_intent *in, int subject, const char *head, const char *prop)
{
    for (int i = 0; i < in->n_concepts; i++) {
        it_intent_concept *c = &in->concepts[i];
        if (c->subject == subject && !strcmp(c->head, head) &&
            ((c->property == NULL && prop == NULL) || (c->property && prop && !strcmp(c->property, prop))))
            return c;
    }
    return NULL;
}

static void add_refs(int *dst, int *n, const int *src, int n_src)
{
    for (int k = 0; k < n_src; k++) {
        int dup = 0;
        for (int j = 0; j < *n; j++) dup |= dst[j] == src[k];
        if (!dup && *n < IT_INTENT_MAX_CREFS) dst[(*n)++] = src[k];
    }
}

/* Modifier words of a chunk (before its head): values and unknown words. */
static void chunk_attrs(pctx *p, it_intent_concept *c, const chunk *ch)
{
    int a = ch->poss_t >= 0 ? ch->poss_t + 2 : ch->t0;
    int b = ch->head_t0 >= 0 ? ch->head_t0 : ch->t1;
    for (int i = a; i < b && c->n_attrs < IT_INTENT_MAX_ATTRS; i++) {
        const tok *t = &p->tl.t[i];
        if (t->kind != TK_WORD && t->kind != TK_NUM) continue;
        const it_lex_entry *e;
        const char *w = t->w;
        if (pt_lex1(&e, t, IT_LEX_PROPERTY) && !pt_lex1(&e, t, IT_LEX_VALUE)) continue;
        if (ch->is_class && !strcmp(c->head, ch->class_canon) && pt_lex1(&e, t, IT_LEX_CLASS)) continue;
        c->attrs[c->n_attrs++] = it_intent_strdup(p->in, w);
    }
    if (ch->pred_value_t >= 0 && c->n_attrs < IT_INTENT_MAX_ATTRS)
        c->attrs[c->n_attrs++] = it_intent_strdup(p->in, p->tl.t[ch->pred_value_t].w);
}

static void adjunct(char *head, size_t n);

static void set_phrase(pctx *p, it_intent_concept *c)
{
    char buf[256];
    size_t k = 0;
    buf[0] = '\0';
    int one = 0;
    for (int i = 0; i < c->n_attrs && c->level != IT_LEVEL_ATTRIBUTE; i++) {
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s ", c->attrs[i]);
        one |= !strcmp(c->attrs[i], "one") || !strcmp(c->attrs[i], "single") || !strcmp(c->attrs[i], "a");
    }
    if (k >= sizeof buf) k = sizeof buf - 1;
    char head[64];
    pt_copy(head, sizeof head, c->head);
    if (one && c->level == IT_LEVEL_INSTANCE) adjunct(head, sizeof head); /* "one eye", not "one eyes" */
    snprintf(buf + k, sizeof buf - k, "%s%s%s", head, c->property ? " " : "", c->property ? c->property : "");
    c->phrase = it_intent_strdup(p->in, buf);
}

/* The owner of a bare property ("its colour", "the colour"): a head noun. */
static int property_owner(pctx *p, chunk *c, int idx, char *head, size_t n, int *subject)
{
    const tok *t = p->tl.t;
    *subject = -1;
    if (c->poss_t >= 0) {
        int s = subject_of_token(p, &t[c->poss_t]);
        if (s >= 0) {
            *subject = s;
            pt_copy(head, n, p->in->subjects[s].class_word);
            return 1;
        }
        const it_lex_entry *e;
        const char *w = t[c->poss_t].w;
        if (pt_lex1(&e, &t[c->poss_t], IT_LEX_THING) || pt_lex1(&e, &t[c->poss_t], IT_LEX_CLASS)) {
            pt_copy(head, n, e->canon);
            return 1;
        }
        char sing[64];
        pt_copy(head, n, it_lex_singular(sing, sizeof sing, w));
        return 1;
    }
    /* "her hair can be any colour": the unclaimed phrase before it */
    for (int k = idx - 1; k >= 0; k--) {
        chunk *d = &p->ch[k];
        if (d->has_head && !d->claimed && !d->prop) {
            pt_copy(head, n, d->head_canon);
            d->claimed = -1;
            int subs[IT_INTENT_MAX_SUBJECTS];
            if (chunk_subjects(p, d, subs) >= 1) *subject = subs[0];
            return 1;
        }
    }
    int subs[IT_INTENT_MAX_SUBJECTS];
    int ns = chunk_subjects(p, c, subs);
    if (ns >= 1) {
        *subject = subs[0];
        pt_copy(head, n, p->in->subjects[subs[0]].class_word);
        return 1;
    }
    return 0;
}

static it_intent_concept *new_concept(pctx *p, int subject, const char *head, const char *prop,
                                      it_concept_level level, it_concept_op op, int *is_new)
{
    *is_new = 0;
    it_intent_concept *c = find_concept(p->in, subject, head, prop);
    if (c) {
        if (c->op != op) {
            char key[160], q[220];
            it_intent_concept_key(key, sizeof key, c);
            quote_sentence(q, sizeof q, p);
            it_intent_warn(p->in, "'%s' is asked to %s and also to %s (in \"%s\"); kept %s", key,
                           it_intent_op_name(c->op), it_intent_op_name(op), q, it_intent_op_name(c->op));
        }
        return c;
    }
    if (it_intent_add_concept(p->err, p->in, &c) != IT_OK) {
        p->st = p->err ? p->err->code : IT_ERR_RANGE;
        return NULL;
    }
    *is_new = 1;
    c->head = it_intent_strdup(p->in, head);
    c->property = prop ? it_intent_strdup(p->in, prop) : NULL;
    c->level = level;
    c->op = op;
    c->subject = subject;
    char src[400];
    span_text(src, sizeof src, p, p->s0, p->s1);
    c->source = it_intent_strdup(p->in, src);
    if (!c->head || !c->source) p->st = IT_ERR_NOMEM;
    return c;
}

/* Variant phrase: "white mug" for a bare value, the words as written else. */
static void add_variant(pctx *p, it_intent_concept *c, const chunk *v)
{
    if (c->op != IT_OP_MODIFY) {
        /* "keep the hat, between red and blue": values only make sense for
         * something that may change; the first operation said wins */
        char q[220];
        quote_sentence(q, sizeof q, p);
        it_intent_warn(p->in, "values given for '%s', which is to %s, are ignored (in \"%s\")", c->head,
                       it_intent_op_name(c->op), q);
        return;
    }
    if (c->n_variants >= IT_INTENT_MAX_VARIANTS) return;
    char words[200], buf[260];
    int a = v->poss_t >= 0 ? v->poss_t + 2 : v->t0;
    words_text(words, sizeof words, p, a, v->t1);
    if (v->value_only) {
        snprintf(buf, sizeof buf, "%s %s", words, c->head);
    } else if (!words[0]) {
        /* "between [1] and [2]": only the references say which */
        size_t k = (size_t)snprintf(buf, sizeof buf, "%s", c->head);
        for (int r = 0; r < v->n_refs && k < sizeof buf; r++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, " [%d]", v->refs[r]);
    } else {
        pt_copy(buf, sizeof buf, words);
    }
    for (int k = 0; k < c->n_variants; k++)
        if (!strcmp(c->variants[k].phrase, buf)) return;
    it_intent_variant *var = &c->variants[c->n_variants++];
    var->phrase = it_intent_strdup(p->in, buf);
    var->n_refs = 0;
    add_refs(var->refs, &var->n_refs, v->refs, v->n_refs);
    add_refs(c->refs, &c->n_refs, v->refs, v->n_refs);
}

/* A noun used before a property is singular in English ("eye count", "ear
 * colour"), except nouns that only exist in the plural. */
static void adjunct(char *head, size_t n)
{
    static const char *const plural_only[] = {"glasses", "sunglasses", "goggles", "trousers", "jeans",
                                              "shorts", "overalls", "headphones", "pants", "scales",
                                              "freckles", "whiskers", "clothes", NULL};
    for (int i = 0; plural_only[i]; i++)
        if (!strcmp(head, plural_only[i])) return;
    if (!strcmp(head, "teeth")) {
        snprintf(head, n, "tooth");
        return;
    }
    char sing[64];
    pt_copy(head, n, it_lex_singular(sing, sizeof sing, head));
}

/* A concept (or one per subject) from a governed chunk. Returns how many. */
/* "Mira must never get Tobi's features": one subject must not take another's
 * look. Separate trigger words are what keeps subjects apart; there is no
 * concept to add (and Tobi's features are not to be removed from Tobi). */
static int keeps_subjects_apart(pctx *p, const chunk *ch)
{
    if (ch->op != IT_OP_REMOVE || ch->poss_t < 0 || p->in->n_subjects < 2) return 0;
    int owner = subject_of_token(p, &p->tl.t[ch->poss_t]);
    if (owner < 0) return 0;
    for (int j = ch->t0 - 1; j >= p->s0; j--) {
        const tok *t = &p->tl.t[j];
        if (t->kind == TK_PUNCT && t->w[0] != ',') break;
        int s = subject_of_token(p, t);
        if (s >= 0 && s != owner) {
            char words[160], q[220];
            words_text(words, sizeof words, p, ch->t0, ch->t1);
            quote_sentence(q, sizeof q, p);
            it_intent_warn(p->in, "'%s' is for %s to keep apart from %s: their own trigger words do that; no "
                                  "concept added (in \"%s\")",
                           words, p->in->subjects[s].name ? p->in->subjects[s].name : p->in->subjects[s].trigger,
                           p->in->subjects[owner].name ? p->in->subjects[owner].name : p->in->subjects[owner].trigger, q);
            return 1;
        }
    }
    return 0;
}

static int concept_from_chunk(pctx *p, int idx)
{
    chunk *ch = &p->ch[idx];
    char head[64], sing[64];
    if (keeps_subjects_apart(p, ch)) return 1;
    const char *prop = ch->prop ? ch->prop : ch->pred_value_prop;
    int subs[IT_INTENT_MAX_SUBJECTS], n_subs = 0;
    it_concept_level level = IT_LEVEL_INSTANCE;
    if (ch->has_head) {
        pt_copy(head, sizeof head, ch->head_canon);
    } else if (ch->prop) {
        int s;
        if (!property_owner(p, ch, idx, head, sizeof head, &s)) {
            char q[220];
            quote_sentence(q, sizeof q, p);
            it_intent_warn(p->in, "'%s' of what? no owner found in \"%s\"", ch->prop, q);
            return 0;
        }
        if (s >= 0) subs[n_subs++] = s;
        /* "Both can be repainted in any colour": every subject of that class */
        if (s >= 0 && !strcmp(head, p->in->subjects[s].class_word) && ch->poss_t < 0) {
            int all[IT_INTENT_MAX_SUBJECTS];
            int na = chunk_subjects(p, ch, all);
            for (int k = 0; k < na; k++)
                if (all[k] != s && all[k] >= 0 && !strcmp(p->in->subjects[all[k]].class_word, head)) subs[n_subs++] = all[k];
        }
    } else if (ch->value_only) {
        return 0; /* a bare value with no thing: reported by the caller */
    } else if (ch->is_class) {
        /* "the creature" is the subject; "characters" in a style is content */
        for (int s = 0; s < p->in->n_subjects; s++)
            if (!strcmp(p->in->subjects[s].class_word, ch->class_canon)) return 0;
        pt_copy(head, sizeof head, ch->class_canon);
    } else {
        /* an unknown noun: the last word of the phrase */
        int last = -1;
        for (int i = ch->t0; i < ch->t1; i++)
            if (p->tl.t[i].kind == TK_WORD) last = i;
        if (last < 0 || !p->tl.t[last].w[0]) return 0;
        pt_copy(head, sizeof head, it_lex_singular(sing, sizeof sing, p->tl.t[last].w));
        ch->head_t0 = last; /* its modifiers are the words before it */
        ch->head_t1 = last + 1;
        char q[220];
        quote_sentence(q, sizeof q, p);
        it_intent_warn(p->in, "'%s' is not in the vocabulary; taken as an instance-level concept (in \"%s\")",
                       head, q);
    }
    if (prop) level = IT_LEVEL_ATTRIBUTE;
    else if (ch->head && ch->head->kind == IT_LEX_SCENE) level = IT_LEVEL_IMAGE;
    if (n_subs == 0) {
        if (ch->head && ch->head->kind == IT_LEX_SCENE) {
            int s = -1;
            if (!strcmp(head, "style")) s = subject_with_cat(p, IT_LEXC_STYLE);
            if (!strcmp(head, "pose")) s = subject_with_cat(p, IT_LEXC_POSE);
            subs[n_subs++] = s;
        } else {
            n_subs = chunk_subjects(p, ch, subs);
            if (n_subs == 0) subs[n_subs++] = -1;
        }
    }
    char query[64];
    pt_copy(query, sizeof query, head);
    if (level == IT_LEVEL_ATTRIBUTE) adjunct(head, sizeof head);
    for (int k = 0; k < n_subs; k++) {
        int is_new;
        it_intent_concept *c = new_concept(p, subs[k], head, prop, level, ch->op, &is_new);
        if (c && is_new && strcmp(query, head)) c->query = it_intent_strdup(p->in, query);
        if (!c) return k;
        if (is_new) chunk_attrs(p, c, ch);
        add_refs(c->refs, &c->n_refs, ch->refs, ch->n_refs);
    }
    return n_subs;
}

static void warn_unplaced(pctx *p, const chunk *c, const char *why)
{
    char words[160], q[220];
    words_text(words, sizeof words, p, c->t0, c->t1);
    quote_sentence(q, sizeof q, p);
    it_intent_warn(p->in, "'%s' %s (in \"%s\")", words, why, q);
}

/* ", on the other hand,", ", of course,": asides between commas say
 * nothing about the intent; they are skipped (commas included) so that the
 * phrase before them meets its predicate. */
static void skip_asides(pctx *p)
{
    static const char *const asides[] = {"on the other hand", "however", "of course", "in fact", "though",
                                         "by the way", "if possible", "ideally", "naturally", "obviously", NULL};
    tok *t = p->tl.t;
    for (int j = p->s0; j < p->s1; j++) {
        if (!pt_punct(&t[j], ',')) continue;
        for (int a = 0; asides[a]; a++) {
            int k = j + 1;
            const char *w = asides[a];
            while (*w && k < p->s1) {
                size_t l = strcspn(w, " ");
                if (t[k].kind != TK_WORD || strlen(t[k].w) != l || strncmp(t[k].w, w, l)) break;
                w += l;
                if (*w == ' ') w++;
                k++;
            }
            if (*w || k >= p->s1 || !pt_punct(&t[k], ',')) continue;
            for (int x = j; x <= k; x++) t[x].used = t[x].aside = 1;
            j = k - 1;
            break;
        }
    }
}

static void sentence(pctx *p)
{
    int n_before = p->in->n_concepts, n_subj_before = p->in->n_subjects;
    p->sent_focus = -1;
    for (int s = 0; s < p->in->n_subjects; s++)
        if (p->decl_tok[s] >= p->s0 && p->decl_tok[s] < p->s1) p->focus = p->sent_focus = s;
    mentions(p);
    skip_asides(p);
    int n_cu = pt_cues(p->cu, p->max_items, &p->tl, p->s0, p->s1);
    int n_ch = pt_chunks(p->ch, p->max_items, &p->tl, p->s0, p->s1);
    pt_assign(p->ch, n_ch, p->cu, n_cu, &p->tl, p->s0, p->s1);
    /* concepts for governed chunks */
    for (int k = 0; k < n_ch && p->st == IT_OK; k++) {
        chunk *c = &p->ch[k];
        if (c->claimed <= 0 || c->claimed == 4) continue;
        if (concept_from_chunk(p, k) == 0 && c->value_only)
            warn_unplaced(p, c, "is a value with nothing to apply it to");
    }
    /* explicit values */
    for (int k = 0; k < n_ch && p->st == IT_OK; k++) {
        chunk *v = &p->ch[k];
        if (v->claimed != 4) continue;
        if (v->variant_of >= 0) {
            chunk *t = &p->ch[v->variant_of];
            /* every concept this sentence made from the target */
            int any = 0;
            for (int i = n_before; i < p->in->n_concepts; i++) {
                it_intent_concept *c = &p->in->concepts[i];
                char head[64];
                if (t->has_head) pt_copy(head, sizeof head, t->head_canon);
                else head[0] = '\0';
                if (t->has_head && strcmp(c->head, head)) continue;
                if (!t->has_head && (!t->prop || !c->property || strcmp(c->property, t->prop))) continue;
                if (v->value_only && !c->property && c->level == IT_LEVEL_INSTANCE && v->value_prop &&
                    c->op == IT_OP_MODIFY) {
                    c->property = it_intent_strdup(p->in, v->value_prop);
                    c->level = IT_LEVEL_ATTRIBUTE;
                }
                add_variant(p, c, v);
                any = 1;
            }
            if (!any) warn_unplaced(p, v, "is a value whose concept was not found");
            continue;
        }
        /* values with no target: the values define the concept */
        int group = v->variant_of;
        it_intent_concept *c = NULL;
        for (int j = 0; j < n_ch; j++) {
            chunk *w = &p->ch[j];
            if (w->claimed != 4 || w->variant_of != group) continue;
            if (!c) {
                if (!w->has_head) {
                    warn_unplaced(p, w, "is a value with nothing to apply it to");
                    w->claimed = -1;
                    continue;
                }
                int subs[IT_INTENT_MAX_SUBJECTS];
                int ns = chunk_subjects(p, w, subs);
                int is_new;
                c = new_concept(p, ns ? subs[0] : -1, w->head_canon, NULL,
                                w->head && w->head->kind == IT_LEX_SCENE ? IT_LEVEL_IMAGE : IT_LEVEL_INSTANCE,
                                IT_OP_MODIFY, &is_new);
                if (!c) break;
            }
            add_variant(p, c, w);
            w->claimed = -1;
        }
    }
    /* what the sentence left unplaced */
    int placed = p->in->n_concepts > n_before || p->in->n_subjects > n_subj_before;
    for (int s = 0; s < p->in->n_subjects; s++)
        placed |= p->decl_tok[s] >= p->s0 && p->decl_tok[s] < p->s1;
    /* A sentence with no cue that names body parts, when a pose is taught,
     * describes the pose ("one knee on the ground"): one note, not a
     * warning per phrase. */
    int pose = subject_with_cat(p, IT_LEXC_POSE), body = 0;
    for (int i = p->s0; i < p->s1 && pose >= 0 && n_cu == 0; i++) {
        const it_lex_entry *e;
        body |= p->tl.t[i].kind == TK_WORD && pt_lex1(&e, &p->tl.t[i], IT_LEX_THING) && e->cat == IT_LEXC_BODY;
    }
    if (body) {
        char q[220];
        quote_sentence(q, sizeof q, p);
        it_intent_warn(p->in, "taken as a description of the pose '%s', with no operation of its own: \"%s\"",
                       p->in->subjects[pose].name ? p->in->subjects[pose].name : p->in->subjects[pose].trigger, q);
        return;
    }
    for (int k = 0; k < n_ch; k++) {
        chunk *c = &p->ch[k];
        if (c->claimed == 0 && (c->has_head || (c->prop && !c->value_only)))
            warn_unplaced(p, c, "has no operation (keep, vary or remove?)");
    }
    for (int k = 0; k < n_cu; k++) {
        int any = 0;
        for (int j = 0; j < n_ch; j++) any |= p->ch[j].cue_index == k && p->ch[j].claimed != 0;
        if (!any && !placed) {
            char cw[80], q[220];
            span_text(cw, sizeof cw, p, p->cu[k].t0, p->cu[k].t1);
            quote_sentence(q, sizeof q, p);
            it_intent_warn(p->in, "'%s' applies to nothing I recognise in \"%s\"", cw, q);
            placed = 1;
        }
        placed |= any;
    }
    if (!placed && n_cu == 0) {
        int content = 0;
        for (int i = p->s0; i < p->s1; i++) content |= p->tl.t[i].kind == TK_WORD;
        int described = 0;
        for (int k = 0; k < n_ch; k++) described |= p->ch[k].has_head;
        if (content && pose >= 0 && !described) {
            /* "Crouched low, one knee on the ground...": how the pose looks */
            char q[220];
            quote_sentence(q, sizeof q, p);
            it_intent_warn(p->in, "taken as a description of the pose '%s', with no operation of its own: \"%s\"",
                           p->in->subjects[pose].name ? p->in->subjects[pose].name : p->in->subjects[pose].trigger, q);
        } else if (content && !described) {
            char q[220];
            quote_sentence(q, sizeof q, p);
            it_intent_warn(p->in, "not understood: \"%s\"", q);
        }
    }
}

/* ---- after all sentences ----------------------------------------------------------- */

static void auto_concepts(pctx *p)
{
    for (int s = 0; s < p->in->n_subjects && p->st == IT_OK; s++) {
        const char *head = p->subj_cat[s] == IT_LEXC_STYLE ? "style" : p->subj_cat[s] == IT_LEXC_POSE ? "pose" : NULL;
        if (!head || find_concept(p->in, s, head, NULL)) continue;
        it_intent_concept *c;
        if (it_intent_add_concept(p->err, p->in, &c) != IT_OK) {
            p->st = p->err ? p->err->code : IT_ERR_RANGE;
            return;
        }
        c->head = it_intent_strdup(p->in, head);
        c->level = IT_LEVEL_IMAGE;
        c->op = IT_OP_PRESERVE;
        c->subject = s;
        char src[200];
        snprintf(src, sizeof src, "the %s called %s is what is taught", head, p->in->subjects[s].name);
        c->source = it_intent_strdup(p->in, src);
    }
}

static void contrast(pctx *p, it_intent_concept *c)
{
    /* Variants known only by their references ("jacket [1]") cannot be
     * written in a prompt: they make no contrast pair. */
    const char *words[IT_INTENT_MAX_VARIANTS];
    int n_words = 0;
    for (int k = 0; k < c->n_variants; k++)
        if (!strchr(c->variants[k].phrase, '[')) words[n_words++] = c->variants[k].phrase;
    if (n_words >= 2) {
        for (int k = 0; k + 1 < n_words && c->n_contrast < IT_INTENT_MAX_CONTRAST; k++) {
            c->contrast[c->n_contrast][0] = (char *)words[k];
            c->contrast[c->n_contrast][1] = (char *)words[k + 1];
            c->n_contrast++;
        }
        c->contrast_source = IT_CONTRAST_EXPLICIT;
        return;
    }
    if (c->n_variants > n_words) {
        it_intent_warn(p->in, "the variants of '%s' are only references; describe them in words (or use "
                              "--contrast) so that control can be tested", c->phrase);
        return;
    }
    if (c->op != IT_OP_MODIFY) return;
    const char *a, *b;
    int whole;
    const char *prop = c->property;
    if (!prop && c->level == IT_LEVEL_INSTANCE) prop = "colour";
    if (!it_lex_opposites(&a, &b, &whole, c->head, prop)) return;
    char pa[160], pb[160];
    if (whole) {
        pt_copy(pa, sizeof pa, a);
        pt_copy(pb, sizeof pb, b);
    } else {
        snprintf(pa, sizeof pa, "%s %s", a, c->head);
        snprintf(pb, sizeof pb, "%s %s", b, c->head);
    }
    c->contrast[0][0] = it_intent_strdup(p->in, pa);
    c->contrast[0][1] = it_intent_strdup(p->in, pb);
    c->n_contrast = 1;
    c->contrast_source = IT_CONTRAST_OPPOSITES;
}

/* References cited with a subject go to the concept that stands for it:
 * the taught pose or style, else its face (identity). */
static void subject_refs_to_concepts(pctx *p)
{
    for (int s = 0; s < p->in->n_subjects; s++) {
        if (!p->n_subj_refs[s]) continue;
        it_intent_concept *c = find_concept(p->in, s, "pose", NULL);
        if (!c) c = find_concept(p->in, s, "style", NULL);
        if (!c) c = find_concept(p->in, s, "face", NULL);
        if (c) add_refs(c->refs, &c->n_refs, p->subj_refs[s], p->n_subj_refs[s]);
    }
}

static void finish(pctx *p)
{
    auto_concepts(p);
    subject_refs_to_concepts(p);
    for (int i = 0; i < p->in->n_concepts && p->st == IT_OK; i++) {
        it_intent_concept *c = &p->in->concepts[i];
        char id[16];
        snprintf(id, sizeof id, "c%d", i + 1);
        c->id = it_intent_strdup(p->in, id);
        set_phrase(p, c);
        if (!c->query) c->query = c->head;
        contrast(p, c);
    }
    if (p->in->n_subjects == 0)
        it_intent_warn(p->in, "no subject declared (say e.g. \"a man named Vincent\" or \"my dog Rex\")");
    if (p->in->n_concepts == 0) it_intent_warn(p->in, "no concept found: nothing to keep, vary or remove");
}

/* Unnamed subject when none was declared: "Train the model on this style". */
static void unnamed_subject(pctx *p)
{
    if (p->in->n_subjects) return;
    for (int i = 0; i < p->tl.n; i++) {
        const it_lex_entry *e;
        tok *t = &p->tl.t[i];
        if (t->kind != TK_WORD || i == 0 || p->tl.t[i - 1].kind != TK_WORD) continue;
        const char *pw = p->tl.t[i - 1].w;
        if (!(pt_wf(&p->tl.t[i - 1], WF_POSSESSIVE) || !strcmp(pw, "this") || !strcmp(pw, "a") || !strcmp(pw, "an") ||
              !strcmp(pw, "the")))
            continue;
        p->s0 = 0;
        p->s1 = p->tl.n;
        if (!class_at(&e, p, i) || !strcmp(e->canon, "person")) continue;
        int s;
        if (it_intent_add_subject(p->err, p->in, &s) != IT_OK) return;
        it_intent_subject *sj = &p->in->subjects[s];
        sj->name = NULL;
        sj->trigger = it_intent_strdup(p->in, "sks");
        sj->class_word = it_intent_strdup(p->in, e->canon);
        p->subj_cat[s] = e->cat;
        p->focus = s;
        it_intent_warn(p->in, "the %s has no name; using the trigger word 'sks' (say \"called NAME\" to choose one)",
                       e->canon);
        return;
    }
}

static void infer_domain(pctx *p, const it_intent_parse_opts *opts)
{
    /* The vocabulary's votes do not change between the two calls (before
     * and after the declarations): count them once. */
    if (!p->word_score_done) {
        const char *words[PT_MAX_TOKENS];
        unsigned char may_start[PT_MAX_TOKENS];
        int n = 0;
        for (int i = 0; i < p->tl.n; i++)
            if (p->tl.t[i].kind == TK_WORD) {
                may_start[n] = pt_wf(&p->tl.t[i], WF_LEXHEAD);
                words[n++] = p->tl.t[i].w;
            }
        it_lex_domain_score(p->word_score, words, n, may_start);
        p->word_score_done = 1;
    }
    double score[IT_DOMAIN_COUNT];
    memcpy(score, p->word_score, sizeof score);
    /* what is taught says most about the domain */
    for (int s = 0; s < p->in->n_subjects; s++) {
        switch (p->subj_cat[s]) {
        case IT_LEXC_STYLE: score[IT_DOMAIN_PAINTING] += 3; break;
        case IT_LEXC_PRODUCT: score[IT_DOMAIN_PRODUCT] += 2; break;
        case IT_LEXC_CREATURE: score[IT_DOMAIN_CHARACTER_2D] += 1.5; break;
        case IT_LEXC_MALE: case IT_LEXC_FEMALE: case IT_LEXC_PERSON: score[IT_DOMAIN_PORTRAIT] += 1; break;
        default: break;
        }
    }
    int best = 0;
    for (int d = 1; d < IT_DOMAIN_COUNT; d++)
        if (score[d] > score[best]) best = d;
    p->in->domain = (it_intent_domain)best;
    p->in->domain_source = score[best] > 0 ? IT_DOMSRC_INFERRED : IT_DOMSRC_DEFAULT;
    if (opts && opts->domain >= 0 && opts->domain < IT_DOMAIN_COUNT) {
        p->in->domain = (it_intent_domain)opts->domain;
        p->in->domain_source = IT_DOMSRC_OVERRIDE;
    }
}

static it_status copy_refs(it_err *err, it_intent *in, const it_intent_parse_opts *opts)
{
    for (int i = 0; opts && i < opts->n_refs; i++) {
        it_intent_ref *r;
        if (it_intent_find_ref(in, opts->refs[i].n))
            return it_err_set(err, IT_ERR_ARG, "reference %d is given twice", opts->refs[i].n);
        IT_TRY(it_intent_add_ref(err, in, &r));
        *r = opts->refs[i];
        r->image = it_intent_strdup(in, opts->refs[i].image);
        if (opts->refs[i].image && !r->image) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    }
    return IT_OK;
}

/* Words longer than a token holds are cut: say so rather than match a
 * shortened word silently. */
static void warn_long_words(pctx *p)
{
    for (int i = 0; i < p->tl.n; i++) {
        const tok *t = &p->tl.t[i];
        if (t->kind == TK_WORD && t->long_word)
            it_intent_warn(p->in, "a %zu-byte word at offset %zu is longer than %d bytes; only '%.20s...' was read",
                           t->end - t->off, t->off, PT_WORD_MAX - 1, t->w);
    }
}

static it_status run(pctx *p, const it_intent_parse_opts *opts)
{
    warn_long_words(p);
    infer_domain(p, opts);
    /* Declarations first, over the whole text, so that a subject introduced
     * late is known everywhere and the unnamed-subject rule sees them all. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < p->tl.n && p->st == IT_OK;) {
            int j = i;
            while (j < p->tl.n && !sentence_end(&p->tl.t[j])) j++;
            p->s0 = i;
            p->s1 = j;
            if (j > i) {
                if (pass == 0) declarations(p);
                else sentence(p);
            }
            i = j + 1;
        }
        if (pass == 0) {
            unnamed_subject(p);
            infer_domain(p, opts);
        }
        p->focus = -1;
    }
    if (p->st != IT_OK) return p->st;
    finish(p);
    return p->st;
}

it_status it_intent_parse(it_err *err, it_intent *out, const char *text, size_t len,
                          const it_intent_parse_opts *opts)
{
    IT_TRY(it_intent_init(err, out));
    pctx p = {.in = out, .focus = -1, .sent_focus = -1, .err = err};
    it_status s = copy_refs(err, out, opts);
    if (s == IT_OK) {
        out->text = it_intent_strndup(out, text, len);
        out->parser = it_intent_strdup(out, "builtin");
        if (!out->text || !out->parser) s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
    }
    if (s == IT_OK) s = pt_tokenize(err, &p.tl, text, len);
    for (int i = 0; s == IT_OK && i < p.tl.n; i++)
        if (name_stop_word(p.tl.t[i].w)) p.tl.t[i].wf |= WF_NAMESTOP;
    if (s == IT_OK) {
        /* The input's own problems first (boxes, images, [n] without a
         * reference), with the validator's messages. */
        it_intent_check_opts co = {.image_size = opts ? opts->image_size : NULL};
        s = it_intent_validate(err, out, &co, NULL);
        if (s != IT_OK) pt_tokens_free(&p.tl);
    }
    if (s == IT_OK) {
        p.max_items = p.tl.n + 1;
        /* not zeroed: pt_chunks and pt_cues fill every item they return */
        p.ch = it_malloc((size_t)p.max_items * sizeof *p.ch);
        p.cu = it_malloc((size_t)p.max_items * sizeof *p.cu);
        if (!p.ch || !p.cu) s = it_err_set(err, IT_ERR_NOMEM, "out of memory parsing the intent");
        if (s == IT_OK) {
            s = run(&p, opts);
            if (s == IT_ERR_NOMEM) it_err_set(err, s, "out of memory parsing the intent");
        }
        it_free(p.ch);
        it_free(p.cu);
        pt_tokens_free(&p.tl);
    }
    if (s == IT_OK && out->oom) s = it_err_set(err, IT_ERR_NOMEM, "out of memory parsing the intent");
    if (s == IT_OK) {
        /* Anything wrong now is the parser's own doing: say so. */
        it_intent_check_opts co = {.image_size = NULL};
        s = it_intent_validate(err, out, &co, NULL);
        if (s == IT_ERR_FORMAT) {
            char msg[IT_ERR_MSG_MAX];
            pt_copy(msg, sizeof msg, err ? err->msg : "");
            s = it_err_set(err, IT_ERR_INTERNAL,
                           "the built-in parser produced an invalid hierarchy (a bug; please report the text): %s", msg);
        }
    }
    /* The JSON writer adds "(N more warnings not shown)" after the stored
     * warnings when some were dropped, and the reader takes at most
     * IT_INTENT_MAX_WARNINGS entries: with the table full, one stored
     * warning goes into the count so that the parser's JSON reads back
     * (found by fuzz/intent_parse.c: 65 entries; regression seed
     * regress-warnings-overflow.txt). After the validation, which may warn. */
    if (s == IT_OK && out->n_warnings_dropped && out->n_warnings >= IT_INTENT_MAX_WARNINGS) {
        out->n_warnings = IT_INTENT_MAX_WARNINGS - 1;
        out->n_warnings_dropped++;
    }
    if (s != IT_OK) it_intent_free(out);
    return s;
}
