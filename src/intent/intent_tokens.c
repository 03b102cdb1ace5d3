/* intent_tokens.c: the tokenizer of the built-in intent parser.
 *
 * Text -> words, numbers, punctuation, reference groups and possessive marks,
 * each with its byte span in the original text (so that warnings can quote
 * it). English contractions are expanded here ("don't" -> "do" "not",
 * "she's" -> "she" "is", "Arthur's" -> "arthur" + 's) because negation and
 * possession are what the grammar keys on. Typographic quotes and dashes are
 * folded to their ASCII meaning. Invalid UTF-8 and NUL bytes are errors: a
 * parser that silently skipped them would quote garbage back to the user. */
#include <ctype.h>
#include <string.h>

#include "base/mem.h"
#include "intent/parse_priv.h"
#include "intent/refs.h"

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid. */
static int utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Typographic characters with an ASCII meaning: returns the ASCII char or 0. */
static char fold3(const unsigned char *p)
{
    if (p[0] != 0xE2 || p[1] != 0x80) return 0;
    switch (p[2]) {
    case 0x98: case 0x99: return '\'';      /* ‘ ’ */
    case 0x9C: case 0x9D: return '"';       /* “ ” */
    case 0x93: case 0x94: return ',';       /* – — as a clause break */
    case 0xA6: return '.';                  /* … */
    }
    return 0;
}

static it_status push(it_err *err, tok_list *tl, tok_kind kind, const char *w, size_t wl, size_t off,
                      size_t end, int cap)
{
    if (wl == 0 && kind == TK_WORD) return IT_OK; /* "n't" alone leaves no word before "not" */
    if (tl->n >= PT_MAX_TOKENS)
        return it_err_set(err, IT_ERR_RANGE, "intent text has more than %d words and marks", PT_MAX_TOKENS);
    if (tl->n >= tl->cap) {
        int cap = tl->cap * 2 < PT_MAX_TOKENS ? tl->cap * 2 : PT_MAX_TOKENS;
        tok *nt = it_realloc(tl->t, (size_t)cap * sizeof *nt);
        if (!nt) return it_err_set(err, IT_ERR_NOMEM, "out of memory tokenizing the intent");
        tl->t = nt;
        tl->cap = cap;
    }
    tok *t = &tl->t[tl->n++];
    /* every field is set here or by pt_word_info (refs: only n_refs are read) */
    t->kind = kind;
    t->used = t->name = t->aside = 0;
    t->n_refs = 0;
    t->long_word = wl >= PT_WORD_MAX;
    if (wl >= PT_WORD_MAX) {
        wl = PT_WORD_MAX - 1;
        while (wl > 0 && ((unsigned char)w[wl] & 0xC0) == 0x80) wl--; /* not inside a character */
    }
    for (size_t i = 0; i < wl; i++) t->w[i] = (char)tolower((unsigned char)w[i]);
    t->w[wl] = '\0';
    t->off = off;
    t->end = end;
    t->cap = cap ? 1 : 0;
    return IT_OK;
}

/* Splits a word with an apostrophe into its parts. w holds the word with
 * typographic apostrophes already folded to '\''. */
static it_status push_word(it_err *err, tok_list *tl, const char *w, size_t wl, size_t off, size_t end,
                           int cap)
{
    const char *ap = memchr(w, '\'', wl);
    if (!ap) return push(err, tl, TK_WORD, w, wl, off, end, cap);
    size_t a = (size_t)(ap - w);
    const char *rest = ap + 1;
    size_t rl = wl - a - 1;
    /* n't: "don't" -> do not, "can't" -> can not, "won't" -> will not */
    if (a >= 1 && (w[a - 1] == 'n' || w[a - 1] == 'N') && rl == 1 && (rest[0] == 't' || rest[0] == 'T')) {
        if (a == 2 && !strncasecmp(w, "wo", 2)) IT_TRY(push(err, tl, TK_WORD, "will", 4, off, end, cap));
        else if (a == 2 && !strncasecmp(w, "ca", 2)) IT_TRY(push(err, tl, TK_WORD, "can", 3, off, end, cap));
        else if (a == 3 && !strncasecmp(w, "sha", 3)) IT_TRY(push(err, tl, TK_WORD, "shall", 5, off, end, cap));
        else IT_TRY(push(err, tl, TK_WORD, w, a - 1, off, end, cap));
        return push(err, tl, TK_WORD, "not", 3, off, end, 0);
    }
    if (a == 0) return push(err, tl, TK_WORD, rest, rl, off, end, cap);
    IT_TRY(push(err, tl, TK_WORD, w, a, off, end, cap));
    if (rl == 0) return push(err, tl, TK_POSS, "'s", 2, off, end, 0); /* "Ellis'" */
    if (rl == 1 && (rest[0] == 's' || rest[0] == 'S')) {
        tok *prev = &tl->t[tl->n - 1];
        static const char *const is_words[] = {"it", "he", "she", "that", "there", "what", "who", "here", NULL};
        for (int i = 0; is_words[i]; i++)
            if (!strcmp(prev->w, is_words[i])) return push(err, tl, TK_WORD, "is", 2, off, end, 0);
        return push(err, tl, TK_POSS, "'s", 2, off, end, 0);
    }
    if (rl == 2 && !strncasecmp(rest, "re", 2)) return push(err, tl, TK_WORD, "are", 3, off, end, 0);
    if (rl == 1 && (rest[0] == 'm' || rest[0] == 'M')) return push(err, tl, TK_WORD, "am", 2, off, end, 0);
    if (rl == 2 && !strncasecmp(rest, "ll", 2)) return push(err, tl, TK_WORD, "will", 4, off, end, 0);
    if (rl == 1 && (rest[0] == 'd' || rest[0] == 'D')) return push(err, tl, TK_WORD, "would", 5, off, end, 0);
    if (rl == 2 && !strncasecmp(rest, "ve", 2)) return push(err, tl, TK_WORD, "have", 4, off, end, 0);
    /* Any other apostrophe ("o'clock", names like O'Neil): keep one word. */
    return push(err, tl, TK_WORD, w, wl, off, end, cap);
}

/* Bytes that are word bytes (is_word_byte) and start nothing special: not
 * 0xE2 (a typographic apostrophe or dash may follow) and not '\''. The
 * word loop copies these with one table load instead of the full tests. */
static const unsigned char g_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static int is_title(const char *w, size_t n)
{
    static const char *const titles[] = {"dr", "mr", "mrs", "ms", "prof", "mx", "sr", "jr", "st", NULL};
    for (int k = 0; titles[k]; k++)
        if (strlen(titles[k]) == n && !strncasecmp(w, titles[k], n)) return 1;
    return 0;
}

static int is_word_byte(unsigned char c) { return isalnum(c) || c == '-' || c == '_' || c >= 0x80; }

it_status pt_tokenize(it_err *err, tok_list *tl, const char *text, size_t len)
{
    memset(tl, 0, sizeof *tl);
    tl->text = text;
    tl->len = len;
    if (len > IT_INTENT_MAX_TEXT)
        return it_err_set(err, IT_ERR_RANGE, "intent text is %zu bytes, more than the %d allowed", len,
                          IT_INTENT_MAX_TEXT);
    for (size_t i = 0; i < len;) {
        if ((unsigned char)text[i] - 1u < 0x7Fu) { /* ASCII, not NUL */
            i++;
            continue;
        }
        if (text[i] == '\0') return it_err_set(err, IT_ERR_FORMAT, "intent text contains a NUL byte at offset %zu", i);
        int l = utf8_len((const unsigned char *)text + i, len - i);
        if (!l) return it_err_set(err, IT_ERR_FORMAT, "intent text is not valid UTF-8 at byte %zu", i);
        i += (size_t)l;
    }
    /* Grown by push() as needed: an upper bound (one token per byte) would
     * allocate several times what text needs. push() clears each token it
     * fills: no need to zero the table. */
    size_t cap_tokens = len / 4 + 16 < PT_MAX_TOKENS ? len / 4 + 16 : PT_MAX_TOKENS;
    tl->cap = (int)cap_tokens;
    tl->t = it_malloc(cap_tokens * sizeof *tl->t);
    if (!tl->t) return it_err_set(err, IT_ERR_NOMEM, "out of memory tokenizing the intent");
    char word[256];
    size_t i = 0;
    it_status s = IT_OK;
    while (i < len && s == IT_OK) {
        unsigned char c = (unsigned char)text[i];
        char folded = (c == 0xE2 && i + 2 < len) ? fold3((const unsigned char *)text + i) : 0;
        if (is_word_byte(c) && !folded) {
            /* A word: word bytes, with inner apostrophes (ASCII or ’). */
            size_t start = i, wl = 0;
            int cap = isupper(c) != 0;
            while (i < len) {
                unsigned char d = (unsigned char)text[i];
                if (g_plain[d]) {
                    if (wl < sizeof word - 1) word[wl++] = (char)d;
                    i++;
                    continue;
                }
                char f = (d == 0xE2 && i + 2 < len) ? fold3((const unsigned char *)text + i) : 0;
                int apos = d == '\'' || f == '\'';
                if (apos && i + (f ? 3 : 1) <= len) {
                    size_t nx = i + (f ? 3 : 1);
                    int next_word = nx < len && isalpha((unsigned char)text[nx]);
                    int trailing = wl > 0 && (word[wl - 1] == 's' || word[wl - 1] == 'S') && !next_word;
                    if (!next_word && !trailing) break;
                    if (wl < sizeof word - 1) word[wl++] = '\'';
                    i = nx;
                    if (trailing) break;
                    continue;
                }
                if (f || !is_word_byte(d)) break;
                if (wl < sizeof word - 1) word[wl++] = (char)d;
                i++;
            }
            /* "Dr. Amara Obi", "Mr. Hale": a title with its period is no
             * sentence end and no part of the name (the trigger is the name) */
            if (cap && i < len && text[i] == '.' && is_title(word, wl)) {
                i++;
                continue;
            }
            int all_digits = 1;
            for (size_t k = 0; k < wl; k++) all_digits &= isdigit((unsigned char)word[k]) != 0;
            s = all_digits ? push(err, tl, TK_NUM, word, wl, start, i, 0) : push_word(err, tl, word, wl, start, i, cap);
            continue;
        }
        if (c == '[') {
            int ns[IT_INTENT_MAX_CREFS], n_ns = 0;
            size_t end = 0;
            s = it_refs_group(err, ns, IT_INTENT_MAX_CREFS, &n_ns, &end, text, len, i);
            if (s != IT_OK) break;
            s = push(err, tl, TK_REF, "[", 1, i, end, 0);
            if (s != IT_OK) break;
            memcpy(tl->t[tl->n - 1].refs, ns, sizeof(int) * (size_t)n_ns);
            tl->t[tl->n - 1].n_refs = n_ns;
            i = end;
            continue;
        }
        if (c == ']') {
            s = it_err_set(err, IT_ERR_FORMAT, "unmatched ']' at offset %zu", i);
            break;
        }
        size_t step = folded ? 3 : 1;
        char p = folded ? folded : (char)c;
        if (p == '/') s = push(err, tl, TK_WORD, "or", 2, i, i + step, 0);
        else if (p == '&' || p == '+') s = push(err, tl, TK_WORD, "and", 3, i, i + step, 0);
        else if (strchr(".,;:!?()\"'\n", p)) s = push(err, tl, TK_PUNCT, &p, 1, i, i + step, 0);
        else if (c >= 0x80) step = (size_t)utf8_len((const unsigned char *)text + i, len - i);
        i += step;
    }
    if (s != IT_OK) pt_tokens_free(tl);
    else pt_word_info(tl);
    return s;
}

void pt_tokens_free(tok_list *tl)
{
    it_free(tl->t);
    tl->t = NULL;
    tl->n = 0;
}
