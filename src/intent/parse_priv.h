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
} tok;

typedef struct tok_list {
    tok *t;
    int n;
    const char *text;
    size_t len;
} tok_list;

/* Splits text into tokens (contractions expanded: "don't" -> do not,
 * possessive 's as TK_POSS). Errors: invalid UTF-8, NUL bytes, bad [n],
 * too many tokens. tl->t is it_malloc'd; free with pt_tokens_free. */
it_status pt_tokenize(it_err *err, tok_list *tl, const char *text, size_t len);
void pt_tokens_free(tok_list *tl);

/* The first-byte test avoids most strcmp calls: the grammar asks pt_is many
 * times per token, and under sanitizers each strcmp is an intercepted call. */
static inline int pt_is(const tok *t, const char *w)
{
    return t->kind == TK_WORD && t->w[0] == w[0] && !__builtin_strcmp(t->w, w);
}
static inline int pt_punct(const tok *t, char c) { return t->kind == TK_PUNCT && t->w[0] == c; }

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
