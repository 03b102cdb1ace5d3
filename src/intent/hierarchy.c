/* hierarchy.c: the intent hierarchy in memory: lifetime, builders, names,
 * the validator and the readable tree. The JSON reader and writer live in
 * intent_json.c. */
#include "intent/hierarchy.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "intent/intent_priv.h"
#include "intent/refs.h"

/* ---- names ------------------------------------------------------------- */

static const char *const g_domain_names[IT_DOMAIN_COUNT] = {"2d-character", "portrait", "product",
                                                             "painting"};
static const char *const g_level_names[IT_LEVEL_COUNT] = {"attribute", "instance", "image"};
static const char *const g_op_names[IT_OP_COUNT] = {"preserve", "modify", "remove"};
static const char *const g_contrast_names[] = {"none", "explicit", "opposites", "user"};

const char *it_intent_domain_name(it_intent_domain d)
{
    return (unsigned)d < IT_DOMAIN_COUNT ? g_domain_names[d] : "?";
}
const char *it_intent_level_name(it_concept_level l)
{
    return (unsigned)l < IT_LEVEL_COUNT ? g_level_names[l] : "?";
}
const char *it_intent_op_name(it_concept_op op)
{
    return (unsigned)op < IT_OP_COUNT ? g_op_names[op] : "?";
}
const char *it_intent_contrast_source_name(it_contrast_source s)
{
    return (unsigned)s <= IT_CONTRAST_USER ? g_contrast_names[s] : "?";
}

static int find_name(const char *const *names, int n, const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

int it_intent_domain_parse(const char *s)
{
    int d = find_name(g_domain_names, IT_DOMAIN_COUNT, s);
    if (d >= 0 || !s) return d;
    /* Short spellings people type on the command line. */
    if (!strcmp(s, "2d") || !strcmp(s, "character") || !strcmp(s, "2d_character")) return 0;
    if (!strcmp(s, "style") || !strcmp(s, "painting-style")) return IT_DOMAIN_PAINTING;
    return -1;
}
int it_intent_level_parse(const char *s) { return find_name(g_level_names, IT_LEVEL_COUNT, s); }
int it_intent_op_parse(const char *s) { return find_name(g_op_names, IT_OP_COUNT, s); }

int it_intent_trigger_ok(const char *s)
{
    if (!s || !*s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(islower(c) || isdigit(c) || c == '_' || c == '-')) return 0;
    }
    return n <= IT_INTENT_MAX_WORD;
}

/* ---- lifetime and builders --------------------------------------------- */

it_status it_intent_init(it_err *err, it_intent *in)
{
    memset(in, 0, sizeof *in);
    it_arena_init(&in->arena, 8192);
    in->domain = IT_DOMAIN_CHARACTER_2D;
    in->domain_source = IT_DOMSRC_DEFAULT;
    /* Not zeroed: the add_* builders clear each element they hand out, so
     * only the pages of elements in use are ever touched (the concept table
     * alone is ~50 KB, and most intents use a handful). */
    in->subjects = it_arena_alloc(&in->arena, IT_INTENT_MAX_SUBJECTS * sizeof *in->subjects);
    in->concepts = it_arena_alloc(&in->arena, IT_INTENT_MAX_CONCEPTS * sizeof *in->concepts);
    in->refs = it_arena_alloc(&in->arena, IT_INTENT_MAX_REFS * sizeof *in->refs);
    if (!in->subjects || !in->concepts || !in->refs) {
        it_intent_free(in);
        return it_err_set(err, IT_ERR_NOMEM, "out of memory for an intent hierarchy");
    }
    return IT_OK;
}

void it_intent_free(it_intent *in)
{
    if (!in) return;
    it_arena_free(&in->arena);
    memset(in, 0, sizeof *in);
}

char *it_intent_strndup(it_intent *in, const char *s, size_t n)
{
    if (!s) return NULL;
    char *d = it_arena_alloc(&in->arena, n + 1);
    if (!d) {
        in->oom = 1;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    it_intent_utf8_clean(d);
    return d;
}

/* Length of the valid UTF-8 sequence at s (1-4), 0 if invalid. */
static int utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (!n) return 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0; /* overlong, surrogate */
    if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
    return n;
}

void it_intent_utf8_clean(char *s)
{
    /* Every string of an intent ends up in JSON, which must be valid UTF-8:
     * a byte that does not start a valid sequence (a quote cut inside a
     * character) becomes '?'. */
    for (unsigned char *p = (unsigned char *)s; *p;) {
        int n = utf8_seq(p);
        if (n) p += n;
        else *p++ = '?';
    }
}

char *it_intent_strdup(it_intent *in, const char *s)
{
    return s ? it_intent_strndup(in, s, strlen(s)) : NULL;
}

it_status it_intent_add_subject(it_err *err, it_intent *in, int *out_index)
{
    if (in->n_subjects >= IT_INTENT_MAX_SUBJECTS)
        return it_err_set(err, IT_ERR_RANGE, "more than %d subjects in one intent",
                          IT_INTENT_MAX_SUBJECTS);
    *out_index = in->n_subjects++;
    memset(&in->subjects[*out_index], 0, sizeof in->subjects[0]);
    return IT_OK;
}

it_status it_intent_add_concept(it_err *err, it_intent *in, it_intent_concept **out)
{
    if (in->n_concepts >= IT_INTENT_MAX_CONCEPTS)
        return it_err_set(err, IT_ERR_RANGE, "more than %d concepts in one intent",
                          IT_INTENT_MAX_CONCEPTS);
    it_intent_concept *c = &in->concepts[in->n_concepts++];
    memset(c, 0, sizeof *c);
    c->subject = -1;
    *out = c;
    return IT_OK;
}

it_status it_intent_add_ref(it_err *err, it_intent *in, it_intent_ref **out)
{
    if (in->n_refs >= IT_INTENT_MAX_REFS)
        return it_err_set(err, IT_ERR_RANGE, "more than %d references in one intent",
                          IT_INTENT_MAX_REFS);
    it_intent_ref *r = &in->refs[in->n_refs++];
    memset(r, 0, sizeof *r);
    *out = r;
    return IT_OK;
}

void it_intent_warn(it_intent *in, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int i = 0; i < in->n_warnings; i++)
        if (strcmp(in->warnings[i], buf) == 0) return;
    if (in->n_warnings >= IT_INTENT_MAX_WARNINGS) {
        in->n_warnings_dropped++;
        return;
    }
    char *w = it_intent_strdup(in, buf);
    if (w) in->warnings[in->n_warnings++] = w;
}

int it_intent_find_subject(const it_intent *in, const char *trigger)
{
    if (!trigger) return -1;
    for (int i = 0; i < in->n_subjects; i++)
        if (in->subjects[i].trigger && strcmp(in->subjects[i].trigger, trigger) == 0) return i;
    return -1;
}

it_intent_ref *it_intent_find_ref(it_intent *in, int n)
{
    for (int i = 0; i < in->n_refs; i++)
        if (in->refs[i].n == n) return &in->refs[i];
    return NULL;
}

void it_intent_concept_key(char *buf, size_t n, const it_intent_concept *c)
{
    if (c->level == IT_LEVEL_ATTRIBUTE && c->property)
        snprintf(buf, n, "%s %s", c->head ? c->head : "?", c->property);
    else
        snprintf(buf, n, "%s", c->head ? c->head : "?");
}

/* ---- validation ---------------------------------------------------------- */

typedef struct vctx {
    it_buf *problems;
    int n_problems;
    char first[IT_ERR_MSG_MAX];
    int quiet_missing; /* the JSON reader already reported missing keys */
    int nomem;         /* an image could not be checked for lack of memory */
} vctx;

static void problem(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(vctx *v, const char *fmt, ...)
{
    char buf[IT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (v->n_problems == 0) snprintf(v->first, sizeof v->first, "%s", buf);
    v->n_problems++;
    if (v->problems) {
        /* A failed append only loses the listing; the count and the first
         * message still reach the caller. */
        (void)it_buf_printf(v->problems, "%s\n", buf);
    }
}

static int str_missing(vctx *v, const char *s, const char *loc)
{
    if (!s) {
        if (!v->quiet_missing) problem(v, "%s: missing", loc);
        return 1;
    }
    if (!*s) {
        problem(v, "%s: must not be empty", loc);
        return 1;
    }
    return 0;
}

static void check_ref_list(vctx *v, it_intent *in, const int *refs, int n, const char *loc)
{
    for (int i = 0; i < n; i++) {
        if (!it_intent_find_ref(in, refs[i]))
            problem(v, "%s[%d]: reference [%d] is not among the refs", loc, i, refs[i]);
        for (int j = 0; j < i; j++)
            if (refs[j] == refs[i]) problem(v, "%s[%d]: reference [%d] listed twice", loc, i, refs[i]);
    }
}

static void validate_subjects(vctx *v, it_intent *in)
{
    char loc[64];
    for (int i = 0; i < in->n_subjects; i++) {
        const it_intent_subject *s = &in->subjects[i];
        snprintf(loc, sizeof loc, "subjects[%d].trigger", i);
        if (!str_missing(v, s->trigger, loc)) {
            if (!it_intent_trigger_ok(s->trigger))
                problem(v, "%s: '%.80s' is not a trigger word (1-%d characters of a-z 0-9 _ -)",
                        loc, s->trigger, IT_INTENT_MAX_WORD);
            for (int j = 0; j < i; j++)
                if (in->subjects[j].trigger && !strcmp(in->subjects[j].trigger, s->trigger))
                    problem(v, "%s: '%s' is also the trigger of subjects[%d]", loc, s->trigger, j);
        }
        snprintf(loc, sizeof loc, "subjects[%d].class", i);
        str_missing(v, s->class_word, loc);
    }
}

static void validate_contrast(vctx *v, const it_intent_concept *c, const char *base)
{
    char loc[96];
    for (int k = 0; k < c->n_contrast; k++) {
        for (int side = 0; side < 2; side++) {
            snprintf(loc, sizeof loc, "%s.contrast[%d][%d]", base, k, side);
            str_missing(v, c->contrast[k][side], loc);
        }
        if (c->contrast[k][0] && c->contrast[k][1] && !strcmp(c->contrast[k][0], c->contrast[k][1]))
            problem(v, "%s.contrast[%d]: both sides are '%.80s'", base, k, c->contrast[k][0]);
    }
    if ((c->n_contrast == 0) != (c->contrast_source == IT_CONTRAST_NONE))
        problem(v, "%s.contrast_source: '%s' does not fit %d contrast pair(s)", base,
                it_intent_contrast_source_name(c->contrast_source), c->n_contrast);
}

static void validate_concept(vctx *v, it_intent *in, int i)
{
    const it_intent_concept *c = &in->concepts[i];
    char base[32], loc[96];
    snprintf(base, sizeof base, "concepts[%d]", i);
    snprintf(loc, sizeof loc, "%s.id", base);
    if (!str_missing(v, c->id, loc))
        for (int j = 0; j < i; j++)
            if (in->concepts[j].id && !strcmp(in->concepts[j].id, c->id))
                problem(v, "%s: '%.80s' is also the id of concepts[%d]", loc, c->id, j);
    snprintf(loc, sizeof loc, "%s.head", base);
    str_missing(v, c->head, loc);
    snprintf(loc, sizeof loc, "%s.phrase", base);
    str_missing(v, c->phrase, loc);
    snprintf(loc, sizeof loc, "%s.query", base);
    str_missing(v, c->query, loc);
    if ((unsigned)c->level >= IT_LEVEL_COUNT) problem(v, "%s.level: out of range", base);
    if ((unsigned)c->op >= IT_OP_COUNT) problem(v, "%s.operation: out of range", base);
    if (c->level == IT_LEVEL_ATTRIBUTE && (!c->property || !*c->property))
        problem(v, "%s.property: an attribute-level concept needs a property (colour, count...)", base);
    if (c->level != IT_LEVEL_ATTRIBUTE && c->property)
        problem(v, "%s.property: only attribute-level concepts have a property", base);
    if (c->subject < -1 || c->subject >= in->n_subjects)
        problem(v, "%s.subject: unknown subject", base);
    for (int k = 0; k < c->n_attrs; k++) {
        snprintf(loc, sizeof loc, "%s.attributes[%d]", base, k);
        str_missing(v, c->attrs[k], loc);
    }
    snprintf(loc, sizeof loc, "%s.refs", base);
    check_ref_list(v, in, c->refs, c->n_refs, loc);
    for (int k = 0; k < c->n_variants; k++) {
        snprintf(loc, sizeof loc, "%s.variants[%d].phrase", base, k);
        str_missing(v, c->variants[k].phrase, loc);
        snprintf(loc, sizeof loc, "%s.variants[%d].refs", base, k);
        check_ref_list(v, in, c->variants[k].refs, c->variants[k].n_refs, loc);
    }
    if (c->n_variants && c->op != IT_OP_MODIFY)
        problem(v, "%s.variants: only modify concepts have variants", base);
    validate_contrast(v, c, base);
}

static void validate_refs(vctx *v, it_intent *in, const it_intent_check_opts *opts)
{
    char loc[48];
    for (int i = 0; i < in->n_refs; i++) {
        it_intent_ref *r = &in->refs[i];
        if (r->n < 1 || r->n > IT_INTENT_MAX_REF_N)
            problem(v, "refs[%d].n: %d is not in 1..%d", i, r->n, IT_INTENT_MAX_REF_N);
        for (int j = 0; j < i; j++)
            if (in->refs[j].n == r->n) problem(v, "refs[%d].n: [%d] is also refs[%d]", i, r->n, j);
        snprintf(loc, sizeof loc, "refs[%d].image", i);
        if (str_missing(v, r->image, loc)) continue;
        const double *b = r->box;
        int finite = isfinite(b[0]) && isfinite(b[1]) && isfinite(b[2]) && isfinite(b[3]);
        if (!finite || b[0] < 0 || b[1] < 0 || b[0] >= b[2] || b[1] >= b[3]) {
            problem(v, "refs[%d].box: [%g,%g,%g,%g] is not a box (need 0 <= x0 < x1, 0 <= y0 < y1)",
                    i, b[0], b[1], b[2], b[3]);
            continue;
        }
        if (opts && opts->image_size) {
            it_err e;
            it_err_clear(&e);
            int w = 0, h = 0;
            it_status s = opts->image_size(&e, r->image, &w, &h);
            if (s == IT_ERR_NOMEM) v->nomem = 1;
            if (s != IT_OK) {
                problem(v, "refs[%d].image: %s", i, e.msg);
                continue;
            }
            r->img_w = w;
            r->img_h = h;
        }
        if (r->img_w > 0 && r->img_h > 0 && (b[2] > r->img_w || b[3] > r->img_h))
            problem(v, "refs[%d].box: [%g,%g,%g,%g] lies outside its %dx%d image %.200s", i, b[0],
                    b[1], b[2], b[3], r->img_w, r->img_h, r->image);
    }
}

static int ref_cited_by_concepts(const it_intent *in, int n)
{
    for (int i = 0; i < in->n_concepts; i++) {
        const it_intent_concept *c = &in->concepts[i];
        for (int k = 0; k < c->n_refs; k++)
            if (c->refs[k] == n) return 1;
        for (int k = 0; k < c->n_variants; k++)
            for (int j = 0; j < c->variants[k].n_refs; j++)
                if (c->variants[k].refs[j] == n) return 1;
    }
    return 0;
}

/* The text's [n] must name given references; a reference that nothing cites
 * is only a warning (the user may have drawn it for later). */
static void validate_text_refs(vctx *v, it_intent *in)
{
    int cited[IT_INTENT_MAX_REF_N + 1];
    memset(cited, 0, sizeof cited);
    if (in->text) {
        it_err e;
        it_err_clear(&e);
        it_ref_mention m[IT_INTENT_MAX_REFS];
        int n_m = 0;
        if (it_refs_scan(&e, m, IT_INTENT_MAX_REFS, &n_m, in->text, strlen(in->text)) != IT_OK) {
            problem(v, "text: %s", e.msg);
        } else {
            for (int i = 0; i < n_m; i++) {
                if (!it_intent_find_ref(in, m[i].n))
                    problem(v, "text: cites [%d] at offset %zu but no reference %d is given", m[i].n,
                            m[i].offset, m[i].n);
                cited[m[i].n] = 1;
            }
        }
    }
    for (int i = 0; i < in->n_refs; i++) {
        int n = in->refs[i].n;
        if (n < 1 || n > IT_INTENT_MAX_REF_N) continue;
        if (!cited[n] && !ref_cited_by_concepts(in, n))
            it_intent_warn(in, "reference [%d] (%.200s) is not used by the text or any concept", n,
                           in->refs[i].image ? in->refs[i].image : "?");
    }
}

it_status it_intent_validate_ex(it_err *err, it_intent *in, const it_intent_check_opts *opts,
                                it_buf *problems, int quiet_missing, int prior_problems,
                                const char *prior_first)
{
    vctx v = {.problems = problems, .quiet_missing = quiet_missing};
    if ((unsigned)in->domain >= IT_DOMAIN_COUNT) problem(&v, "domain: out of range");
    if (in->text && strlen(in->text) > IT_INTENT_MAX_TEXT)
        problem(&v, "text: %zu bytes, more than the %d allowed", strlen(in->text), IT_INTENT_MAX_TEXT);
    validate_subjects(&v, in);
    validate_refs(&v, in, opts);
    validate_text_refs(&v, in);
    for (int i = 0; i < in->n_concepts; i++) validate_concept(&v, in, i);
    if (v.nomem || in->oom) return it_err_set(err, IT_ERR_NOMEM, "out of memory validating an intent");
    int total = v.n_problems + prior_problems;
    if (total == 0) return IT_OK;
    const char *first = prior_problems ? prior_first : v.first;
    if (total == 1) return it_err_set(err, IT_ERR_FORMAT, "%s", first);
    return it_err_set(err, IT_ERR_FORMAT, "%s (and %d more problem%s)", first, total - 1,
                      total - 1 == 1 ? "" : "s");
}

it_status it_intent_validate(it_err *err, it_intent *in, const it_intent_check_opts *opts,
                             it_buf *problems)
{
    return it_intent_validate_ex(err, in, opts, problems, 0, 0, NULL);
}

/* ---- readable tree -------------------------------------------------------- */

static void tree_refs(it_buf *o, const int *refs, int n)
{
    for (int i = 0; i < n; i++) (void)it_buf_printf(o, " [%d]", refs[i]);
}

static void tree_concept(it_buf *o, const it_intent *in, const it_intent_concept *c, const char *indent)
{
    char key[160];
    it_intent_concept_key(key, sizeof key, c);
    (void)it_buf_printf(o, "%s%-8s %-9s %s", indent, it_intent_op_name(c->op),
                        it_intent_level_name(c->level), key);
    if (c->phrase && strcmp(c->phrase, key)) (void)it_buf_printf(o, "  \"%s\"", c->phrase);
    tree_refs(o, c->refs, c->n_refs);
    (void)it_buf_printf(o, "  (%s)\n", c->id ? c->id : "?");
    for (int k = 0; k < c->n_variants; k++) {
        (void)it_buf_printf(o, "%s    variant: %s", indent, c->variants[k].phrase);
        if (!strchr(c->variants[k].phrase, '[')) tree_refs(o, c->variants[k].refs, c->variants[k].n_refs);
        (void)it_buf_printf(o, "\n");
    }
    for (int k = 0; k < c->n_contrast; k++)
        (void)it_buf_printf(o, "%s    contrast: \"%s\" / \"%s\" (%s)\n", indent, c->contrast[k][0],
                            c->contrast[k][1], it_intent_contrast_source_name(c->contrast_source));
    if (c->query && strcmp(c->query, c->phrase ? c->phrase : ""))
        (void)it_buf_printf(o, "%s    detector query: \"%s\"\n", indent, c->query);
    (void)in;
}

it_status it_intent_format_tree(it_err *err, it_buf *o, const it_intent *in)
{
    static const char *const src[] = {"inferred", "given", "default"};
    (void)it_buf_printf(o, "domain: %s (%s)\n", it_intent_domain_name(in->domain),
                        (unsigned)in->domain_source < 3 ? src[in->domain_source] : "?");
    for (int s = -1; s < in->n_subjects; s++) {
        int any = 0;
        for (int i = 0; i < in->n_concepts; i++) any |= in->concepts[i].subject == s;
        if (s < 0 && !any) continue;
        if (s < 0) {
            (void)it_buf_printf(o, "image:\n");
        } else {
            const it_intent_subject *sj = &in->subjects[s];
            (void)it_buf_printf(o, "subject %s: trigger '%s', class '%s'\n",
                                sj->name ? sj->name : "(unnamed)", sj->trigger, sj->class_word);
        }
        for (int i = 0; i < in->n_concepts; i++)
            if (in->concepts[i].subject == s) tree_concept(o, in, &in->concepts[i], "  ");
    }
    for (int i = 0; i < in->n_refs; i++) {
        const it_intent_ref *r = &in->refs[i];
        (void)it_buf_printf(o, "ref [%d]: %s box %g,%g,%g,%g\n", r->n, r->image, r->box[0],
                            r->box[1], r->box[2], r->box[3]);
    }
    for (int i = 0; i < in->n_warnings; i++) (void)it_buf_printf(o, "warning: %s\n", in->warnings[i]);
    if (in->n_warnings_dropped)
        (void)it_buf_printf(o, "warning: (%d more warnings not shown)\n", in->n_warnings_dropped);
    if (!o->data) return it_err_set(err, IT_ERR_NOMEM, "out of memory formatting an intent");
    return IT_OK;
}
