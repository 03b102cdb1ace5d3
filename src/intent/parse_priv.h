/* parse_priv.h: the built-in parser's internal types, shared by its files:
 * tokens (intent_tokens.c), chunks and cues (intent_cues.c), and the driver
 * (parser.c). Not a public interface. */
#ifndef IT_PARSE_PRIV_H
#define IT_PARSE_PRIV_H

#include <stddef.h>

#include "intent/hierarchy.h"
#include "intent/lexicon.h"

#define PT_WORD_MAX 40      /* bytes of a lowercase token word (longer: truncated, flagged) */
#define PT_MAX_TOKENS 4096  /* tokens in one intent text */

typedef enum tok_kind {
    TK_WORD = 0, /* letters (and digits, '-', non-ASCII letters) */
    TK_NUM,      /* digits */
    TK_PUNCT,    /* . , ; : ! ? ( ) " and '/' '&' mapped to "or"/"and" words */
    TK_REF,      /* [n], [n,m] */
    TK_POSS,     /* the 's of a possessive */
} tok_kind;

typedef struct tok {
    char w[PT_WORD_MAX];   /* lowercase word, or the punctuation character */
    tok_kind kind;
    unsigned cap : 1;      /* first letter upper case in the text */
    unsigned used : 1;     /* consumed by a subject declaration or a cue */
    unsigned long_word : 1;
    unsigned name : 1;     /* a mention of a subject's name */
    unsigned aside : 1;    /* in an aside between commas (", on the other hand,") */
    size_t off, end;       /* byte span in the original text */
    int refs[IT_INTENT_MAX_CREFS];
    int n_refs;
    /* What the vocabularies say about the word, looked up once per token by
     * pt_word_info: the grammar asks these questions many times per token
     * (each pattern at each position), and a lookup hashes the word. */
    unsigned wf;                /* WF_* word classes */
    unsigned short cue_lo, cue_hi; /* cues whose first word is this word: [cue_lo, cue_hi) */
    const it_lex_entry *lx[6];  /* it_lex_match of the word alone, by kind (0: any); NULL: none */
    /* parser.c's class_at(i) memo: the words it reads never change, only the
     * sentence end it stops at (ca_s1; -1: not computed) */
    int ca_s1, ca_m;
    const it_lex_entry *ca_e;
} tok;

/* Word classes of a token (tok.wf). WF_LEXHEAD: the lexicon has entries that
 * start with the word (or with its singular), so a lookup starting at this
 * token can match; without it every it_lex_match from here returns 0. */
enum {
    WF_FUNCTION = 1u << 0,   /* it_lex_is_function */
    WF_POSSESSIVE = 1u << 1, /* it_lex_is_possessive */
    WF_DETERMINER = 1u << 2, /* it_lex_is_determiner */
    WF_PRONOUN = 1u << 3,    /* it_lex_is_pronoun */
    WF_FILLER = 1u << 4,     /* pt_is_filler */
    WF_VERBISH = 1u << 5,    /* pt_is_verbish */
    WF_CLAUSE = 1u << 6,     /* pt_is_clause_word */
    WF_MODAL = 1u << 7,      /* a modal or "to" (intent_cues.c) */
    WF_BREAKER = 1u << 8,    /* a verb that ends a noun phrase (intent_cues.c) */
    WF_LEXHEAD = 1u << 9,
    WF_NAMESTOP = 1u << 10,  /* never part of a name (parser.c) */
    WF_NUMBER = 1u << 11,    /* it_lex_is_number */
};

typedef struct tok_list {
    tok *t;
    int n;
    int cap;   /* tokens allocated (grows by doubling up to PT_MAX_TOKENS) */
    const char *text;
    size_t len;
} tok_list;

/* Splits text into tokens (contractions expanded: "don't" -> do not,
 * possessive 's as TK_POSS). Errors: invalid UTF-8, NUL bytes, bad [n],
 * too many tokens. tl->t is it_malloc'd; free with pt_tokens_free. */
it_status pt_tokenize(it_err *err, tok_list *tl, const char *text, size_t len);
void pt_tokens_free(tok_list *tl);
/* Fills wf, cue_lo/cue_hi and lx of every token (pt_tokenize calls it). */
void pt_word_info(tok_list *tl);

/* snprintf(buf, n, "%s", s) without the format machinery (glibc's "(null)"
 * included): the parser copies words and heads into fixed buffers often. */
static inline IT_LEX_NOCOV void pt_copy(char *buf, size_t n, const char *s)
{
    if (n == 0) return;
    if (!s) s = "(null)";
    size_t l = __builtin_strlen(s);
    if (l >= n) l = n - 1;
    __builtin_memmove(buf, s, l);
    buf[l] = '\0';
}

static inline int pt_wf(const tok *t, unsigned f) { return (t->wf & f) != 0; }
/* it_lex_match(e, &t->w, 1, kind), from the table filled by pt_word_info. */
static inline int pt_lex1(const it_lex_entry **e, const tok *t, it_lex_kind kind)
{
    *e = t->lx[kind];
    return *e != NULL;
}

/* The first-byte test avoids most strcmp calls: the grammar asks pt_is many
 * times per token, and under sanitizers each strcmp is an intercepted call. */
static inline __attribute__((always_inline)) int pt_is(const tok *t, const char *w)
{
    return t->kind == TK_WORD && t->w[0] == w[0] && !__builtin_strcmp(t->w, w);
}
static inline __attribute__((always_inline)) int pt_punct(const tok *t, char c) { return t->kind == TK_PUNCT && t->w[0] == c; }

/* ---- chunks (noun phrases) and cues ---- */

typedef enum cue_dir { CUE_LEFT = 1, CUE_RIGHT = 2, CUE_BOTH = 3 } cue_dir;

#define CUE_TIGHT 1u    /* binds the chunk list right after it, beats others */
#define CUE_VALUES 2u   /* introduces explicit values ("between X and Y") */
#define CUE_PRESENCE 4u /* a presence verb (wear, have): only a cue when negated */
#define CUE_PREDVAL 8u  /* may be followed by a value ("stay striped") */
#define CUE_ANY 16u     /* "any": the next chunk may be a bare property */
#define CUE_KNOWN 32u   /* governs only phrases with a known head ("learn") */

typedef struct cue {
    int t0, t1;      /* token range */
    it_concept_op op;
    cue_dir dir;
    unsigned flags;
    int negated;     /* flipped by a negation */
} cue;

typedef struct chunk {
    int t0, t1;              /* token range [t0, t1), determiners excluded */
    int head_t0, head_t1;    /* tokens of the head noun, -1 if none */
    const it_lex_entry *head;/* lexicon entry of the head (NULL: unknown noun) */
    char head_canon[64];     /* canonical head ("" if none) */
    const char *prop;        /* property (attribute level) or NULL */
    const char *value_prop;  /* value-only chunk: property of its values */
    int value_only;
    int has_head;            /* a head (known, or unknown before a property) */
    int is_class;            /* names a class ("the creature", "characters") */
    const char *class_canon; /* that class */
    int poss_subject;        /* subject index from "Name's", or -1 */
    int poss_t;              /* token of the possessor before 's, or -1 */
    const char *poss_word;   /* his/her/its/their/my/our before the chunk, or NULL */
    int refs[IT_INTENT_MAX_CREFS];
    int n_refs;
    /* assignment */
    int claimed;             /* 0 none, 1 right cue, 2 left cue, 3 tight right cue,
                                4 an explicit value, -1 consumed */
    it_concept_op op;
    int cue_index;
    int variant_of;          /* chunk index this is an explicit value of, -1 */
    const char *pred_value_prop; /* "stay striped": property from a predicate value */
    int pred_value_t;        /* token of that value */
} chunk;

/* Finds the chunks of tokens [s0, s1) that are not used; at most max. */
int pt_chunks(chunk *out, int max, tok_list *tl, int s0, int s1);
/* Finds the cues of [s0, s1); at most max. Marks their tokens used. */
int pt_cues(cue *out, int max, tok_list *tl, int s0, int s1);
/* Assigns cues to chunks (op, variants, predicate values). */
void pt_assign(chunk *ch, int n_ch, const cue *cu, int n_cu, tok_list *tl, int s0, int s1);

/* Words that fill the space between a noun phrase and its predicate
 * ("should", "be", "always", "look"). */
int pt_is_filler(const char *w);
/* Verbs and cue words (a capitalised one starts a sentence; it is no name). */
int pt_is_verbish(const char *w);
/* Words that start a new clause inside a sentence. */
int pt_is_clause_word(const char *w);

#endif
