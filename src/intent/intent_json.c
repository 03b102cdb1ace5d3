/* intent_json.c: the JSON form of the intent hierarchy (docs/INTENT.md):
 * writer, and a strict reader that reports every problem with its location
 * (a JSON path such as concepts[2].operation, or line and column for syntax
 * errors) instead of stopping at the first one, because people edit these
 * files by hand and want the whole list at once. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "intent/hierarchy.h"
#include "intent/intent_priv.h"

/* ---- writer ------------------------------------------------------------- */

static json_t *jstr_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* json_object_set_new with NULL-propagation: a NULL value marks the whole
 * document as failed (out of memory) without a check at every call. */
static void put(json_t *o, const char *k, json_t *v, int *bad)
{
    if (!o || !v || json_object_set_new(o, k, v)) *bad = 1;
}

static void append(json_t *a, json_t *v, int *bad)
{
    if (!a || !v || json_array_append_new(a, v)) *bad = 1;
}

static json_t *concept_json(const it_intent *in, const it_intent_concept *c, int *bad)
{
    json_t *o = json_object();
    put(o, "id", json_string(c->id ? c->id : ""), bad);
    put(o, "phrase", json_string(c->phrase ? c->phrase : ""), bad);
    put(o, "head", json_string(c->head ? c->head : ""), bad);
    put(o, "property", jstr_or_null(c->property), bad);
    json_t *attrs = json_array();
    for (int k = 0; k < c->n_attrs; k++) append(attrs, json_string(c->attrs[k]), bad);
    put(o, "attributes", attrs, bad);
    put(o, "level", json_string(it_intent_level_name(c->level)), bad);
    put(o, "operation", json_string(it_intent_op_name(c->op)), bad);
    put(o, "subject",
        c->subject >= 0 && c->subject < in->n_subjects ? json_string(in->subjects[c->subject].trigger)
                                                        : json_null(),
        bad);
    put(o, "refs", int_array(c->refs, c->n_refs), bad);
    json_t *vars = json_array();
    for (int k = 0; k < c->n_variants; k++) {
        json_t *v = json_object();
        put(v, "phrase", json_string(c->variants[k].phrase), bad);
        put(v, "refs", int_array(c->variants[k].refs, c->variants[k].n_refs), bad);
        append(vars, v, bad);
    }
    put(o, "variants", vars, bad);
    json_t *pairs = json_array();
    for (int k = 0; k < c->n_contrast; k++)
        append(pairs, json_pack("[ss]", c->contrast[k][0], c->contrast[k][1]), bad);
    put(o, "contrast", pairs, bad);
    put(o, "contrast_source", json_string(it_intent_contrast_source_name(c->contrast_source)), bad);
    put(o, "query", json_string(c->query ? c->query : ""), bad);
    put(o, "source", jstr_or_null(c->source), bad);
    return o;
}

static json_t *ref_json(const it_intent_ref *r, int *bad)
{
    json_t *o = json_object();
    put(o, "n", json_integer(r->n), bad);
    put(o, "image", json_string(r->image ? r->image : ""), bad);
    put(o, "box", json_pack("[ffff]", r->box[0], r->box[1], r->box[2], r->box[3]), bad);
    if (r->img_w > 0 && r->img_h > 0) put(o, "image_size", json_pack("[ii]", r->img_w, r->img_h), bad);
    return o;
}

static const char *const g_domsrc_names[] = {"inferred", "override", "default"};

it_status it_intent_to_json(it_err *err, char **out, const it_intent *in, int pretty)
{
    *out = NULL;
    int bad = 0;
    json_t *root = json_object();
    put(root, "version", json_integer(IT_INTENT_SCHEMA_VERSION), &bad);
    put(root, "text", jstr_or_null(in->text), &bad);
    put(root, "domain", json_string(it_intent_domain_name(in->domain)), &bad);
    put(root, "domain_source",
        json_string((unsigned)in->domain_source < 3 ? g_domsrc_names[in->domain_source] : "default"),
        &bad);
    put(root, "parser", jstr_or_null(in->parser), &bad);
    json_t *subs = json_array();
    for (int i = 0; i < in->n_subjects; i++) {
        const it_intent_subject *s = &in->subjects[i];
        json_t *o = json_object();
        put(o, "name", jstr_or_null(s->name), &bad);
        put(o, "trigger", json_string(s->trigger ? s->trigger : ""), &bad);
        put(o, "class", json_string(s->class_word ? s->class_word : ""), &bad);
        append(subs, o, &bad);
    }
    put(root, "subjects", subs, &bad);
    json_t *cons = json_array();
    for (int i = 0; i < in->n_concepts; i++) append(cons, concept_json(in, &in->concepts[i], &bad), &bad);
    put(root, "concepts", cons, &bad);
    json_t *refs = json_array();
    for (int i = 0; i < in->n_refs; i++) append(refs, ref_json(&in->refs[i], &bad), &bad);
    put(root, "refs", refs, &bad);
    json_t *warns = json_array();
    for (int i = 0; i < in->n_warnings; i++) append(warns, json_string(in->warnings[i]), &bad);
    if (in->n_warnings_dropped) {
        char buf[80];
        snprintf(buf, sizeof buf, "(%d more warnings not shown)", in->n_warnings_dropped);
        append(warns, json_string(buf), &bad);
    }
    put(root, "warnings", warns, &bad);
    char *s = bad ? NULL : json_dumps(root, JSON_PRESERVE_ORDER | (pretty ? JSON_INDENT(2) : JSON_COMPACT));
    json_decref(root);
    if (!s) return it_err_set(err, IT_ERR_NOMEM, "out of memory writing intent JSON");
    *out = it_strdup(s);
    free(s); /* jansson allocates with the C library */
    if (!*out) return it_err_set(err, IT_ERR_NOMEM, "out of memory writing intent JSON");
    return IT_OK;
}

/* ---- reader ---------------------------------------------------------------- */

typedef struct rd {
    it_intent *in;
    it_buf *problems;
    int n;
    char first[IT_ERR_MSG_MAX];
    int strict;
    int nomem;
} rd;

static void rp(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rp(rd *r, const char *fmt, ...)
{
    char buf[IT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (r->n++ == 0) snprintf(r->first, sizeof r->first, "%s", buf);
    if (r->problems) (void)it_buf_printf(r->problems, "%s\n", buf);
}

static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static void check_keys(rd *r, json_t *o, const char *loc, const char *const *allowed)
{
    if (!r->strict) return;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, k);
        if (!ok) rp(r, "%s%s%.60s: unknown key", loc, *loc ? "." : "", k);
    }
}

static char *dup_or_nomem(rd *r, const char *s)
{
    char *d = it_intent_strdup(r->in, s);
    if (!d) r->nomem = 1;
    return d;
}

/* A string value: required ones must be present; nullable ones may be null. */
static char *get_str(rd *r, json_t *o, const char *key, const char *loc, int required, int nullable)
{
    json_t *v = json_object_get(o, key);
    if (!v || (nullable && json_is_null(v))) {
        if (!v && required) rp(r, "%s.%s: missing", loc, key);
        return NULL;
    }
    if (!json_is_string(v)) {
        rp(r, "%s.%s: expected a string%s, got %s", loc, key, nullable ? " or null" : "", jtype(v));
        return NULL;
    }
    return dup_or_nomem(r, json_string_value(v));
}

static json_t *get_array(rd *r, json_t *o, const char *key, const char *loc, int required, int max)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required) rp(r, "%s%s%s: missing", loc, *loc ? "." : "", key);
        return NULL;
    }
    if (!json_is_array(v)) {
        rp(r, "%s%s%s: expected an array, got %s", loc, *loc ? "." : "", key, jtype(v));
        return NULL;
    }
    if ((int)json_array_size(v) > max) {
        rp(r, "%s%s%s: %zu entries, at most %d allowed", loc, *loc ? "." : "", key, json_array_size(v),
           max);
        return NULL;
    }
    return v;
}

static int get_enum(rd *r, json_t *o, const char *key, const char *loc, int (*parse)(const char *),
                    const char *choices)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        rp(r, "%s.%s: missing (one of %s)", loc, key, choices);
        return -1;
    }
    if (!json_is_string(v)) {
        rp(r, "%s.%s: expected a string (one of %s), got %s", loc, key, choices, jtype(v));
        return -1;
    }
    int e = parse(json_string_value(v));
    if (e < 0) rp(r, "%s.%s: '%.60s' is not one of %s", loc, key, json_string_value(v), choices);
    return e;
}

static int get_refs(rd *r, json_t *o, const char *loc, int *out)
{
    json_t *a = get_array(r, o, "refs", loc, 0, IT_INTENT_MAX_CREFS);
    if (!a) return 0;
    size_t i;
    json_t *v;
    int n = 0;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v)) {
            rp(r, "%s.refs[%zu]: expected an integer, got %s", loc, i, jtype(v));
            continue;
        }
        json_int_t x = json_integer_value(v);
        out[n++] = x < 0 ? -1 : x > IT_INTENT_MAX_REF_N ? IT_INTENT_MAX_REF_N + 1 : (int)x;
    }
    return n;
}

static int contrast_parse(const char *s)
{
    for (int i = 0; i <= IT_CONTRAST_USER; i++)
        if (!strcmp(s, it_intent_contrast_source_name((it_contrast_source)i))) return i;
    return -1;
}

static void read_variants(rd *r, json_t *o, const char *loc, it_intent_concept *c)
{
    static const char *const keys[] = {"phrase", "refs", NULL};
    json_t *a = get_array(r, o, "variants", loc, 0, IT_INTENT_MAX_VARIANTS);
    size_t i;
    json_t *v;
    char vloc[96];
    if (!a) return;
    json_array_foreach(a, i, v) {
        snprintf(vloc, sizeof vloc, "%s.variants[%zu]", loc, i);
        if (!json_is_object(v)) {
            rp(r, "%s: expected an object, got %s", vloc, jtype(v));
            continue;
        }
        check_keys(r, v, vloc, keys);
        it_intent_variant *var = &c->variants[c->n_variants++];
        var->phrase = get_str(r, v, "phrase", vloc, 1, 0);
        var->n_refs = get_refs(r, v, vloc, var->refs);
    }
}

static void read_contrast(rd *r, json_t *o, const char *loc, it_intent_concept *c)
{
    json_t *a = get_array(r, o, "contrast", loc, 0, IT_INTENT_MAX_CONTRAST);
    size_t i;
    json_t *v;
    if (a) {
        json_array_foreach(a, i, v) {
            if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
                !json_is_string(json_array_get(v, 1))) {
                rp(r, "%s.contrast[%zu]: expected a pair of strings [\"red hair\", \"blonde hair\"]", loc, i);
                continue;
            }
            c->contrast[c->n_contrast][0] = dup_or_nomem(r, json_string_value(json_array_get(v, 0)));
            c->contrast[c->n_contrast][1] = dup_or_nomem(r, json_string_value(json_array_get(v, 1)));
            c->n_contrast++;
        }
    }
    json_t *src = json_object_get(o, "contrast_source");
    if (!src) {
        /* Pairs a person typed into the file are the user's. */
        c->contrast_source = c->n_contrast ? IT_CONTRAST_USER : IT_CONTRAST_NONE;
    } else {
        int s = json_is_string(src) ? contrast_parse(json_string_value(src)) : -1;
        if (s < 0) rp(r, "%s.contrast_source: expected one of none, explicit, opposites, user", loc);
        else c->contrast_source = (it_contrast_source)s;
    }
}

static void read_attrs(rd *r, json_t *o, const char *loc, it_intent_concept *c)
{
    json_t *a = get_array(r, o, "attributes", loc, 0, IT_INTENT_MAX_ATTRS);
    size_t i;
    json_t *v;
    if (!a) return;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v)) rp(r, "%s.attributes[%zu]: expected a string, got %s", loc, i, jtype(v));
        else c->attrs[c->n_attrs++] = dup_or_nomem(r, json_string_value(v));
    }
}

static void read_concept(rd *r, json_t *o, int idx)
{
    static const char *const keys[] = {"id", "phrase", "head", "property", "attributes", "level",
                                       "operation", "subject", "refs", "variants", "contrast",
                                       "contrast_source", "query", "source", NULL};
    char loc[32];
    snprintf(loc, sizeof loc, "concepts[%d]", idx);
    if (!json_is_object(o)) {
        rp(r, "%s: expected an object, got %s", loc, jtype(o));
        return;
    }
    check_keys(r, o, loc, keys);
    it_intent_concept *c;
    if (it_intent_add_concept(NULL, r->in, &c) != IT_OK) return; /* bounded by get_array */
    char idbuf[16];
    snprintf(idbuf, sizeof idbuf, "c%d", idx + 1);
    c->id = get_str(r, o, "id", loc, 0, 0);
    if (!c->id && !json_object_get(o, "id")) c->id = dup_or_nomem(r, idbuf);
    c->head = get_str(r, o, "head", loc, 1, 0);
    c->property = get_str(r, o, "property", loc, 0, 1);
    read_attrs(r, o, loc, c);
    int lv = get_enum(r, o, "level", loc, it_intent_level_parse, "attribute, instance, image");
    int op = get_enum(r, o, "operation", loc, it_intent_op_parse, "preserve, modify, remove");
    c->level = lv < 0 ? IT_LEVEL_INSTANCE : (it_concept_level)lv;
    c->op = op < 0 ? IT_OP_PRESERVE : (it_concept_op)op;
    c->phrase = get_str(r, o, "phrase", loc, 0, 0);
    if (!c->phrase && !json_object_get(o, "phrase") && c->head) {
        char key[256];
        it_intent_concept_key(key, sizeof key, c);
        c->phrase = dup_or_nomem(r, key);
    }
    c->query = get_str(r, o, "query", loc, 0, 0);
    if (!c->query && !json_object_get(o, "query"))
        c->query = c->level == IT_LEVEL_ATTRIBUTE ? c->head : c->phrase;
    c->source = get_str(r, o, "source", loc, 0, 1);
    json_t *subj = json_object_get(o, "subject");
    if (subj && !json_is_null(subj)) {
        if (!json_is_string(subj)) {
            rp(r, "%s.subject: expected a trigger word or null, got %s", loc, jtype(subj));
        } else {
            c->subject = it_intent_find_subject(r->in, json_string_value(subj));
            if (c->subject < 0)
                rp(r, "%s.subject: '%.60s' is not the trigger of any subject", loc, json_string_value(subj));
        }
    }
    c->n_refs = get_refs(r, o, loc, c->refs);
    read_variants(r, o, loc, c);
    read_contrast(r, o, loc, c);
}

static void read_ref(rd *r, json_t *o, int idx)
{
    static const char *const keys[] = {"n", "image", "box", "image_size", NULL};
    char loc[32];
    snprintf(loc, sizeof loc, "refs[%d]", idx);
    if (!json_is_object(o)) {
        rp(r, "%s: expected an object, got %s", loc, jtype(o));
        return;
    }
    check_keys(r, o, loc, keys);
    it_intent_ref *ref;
    if (it_intent_add_ref(NULL, r->in, &ref) != IT_OK) return;
    json_t *n = json_object_get(o, "n");
    if (!n) rp(r, "%s.n: missing", loc);
    else if (!json_is_integer(n)) rp(r, "%s.n: expected an integer, got %s", loc, jtype(n));
    else {
        json_int_t x = json_integer_value(n);
        ref->n = x < 0 ? -1 : x > IT_INTENT_MAX_REF_N ? IT_INTENT_MAX_REF_N + 1 : (int)x;
    }
    ref->image = get_str(r, o, "image", loc, 1, 0);
    json_t *box = json_object_get(o, "box");
    int ok = box && json_is_array(box) && json_array_size(box) == 4;
    for (int k = 0; ok && k < 4; k++) ok = json_is_number(json_array_get(box, k));
    if (!ok) {
        rp(r, "%s.box: expected [x0, y0, x1, y1] (four numbers, pixels)", loc);
        ref->box[2] = ref->box[3] = 1; /* a placeholder that the validator accepts */
    } else {
        for (int k = 0; k < 4; k++) ref->box[k] = json_number_value(json_array_get(box, k));
    }
    json_t *sz = json_object_get(o, "image_size");
    if (sz) {
        if (!json_is_array(sz) || json_array_size(sz) != 2 || !json_is_integer(json_array_get(sz, 0)) ||
            !json_is_integer(json_array_get(sz, 1)) || json_integer_value(json_array_get(sz, 0)) < 1 ||
            json_integer_value(json_array_get(sz, 1)) < 1 ||
            json_integer_value(json_array_get(sz, 0)) > 1 << 20 ||
            json_integer_value(json_array_get(sz, 1)) > 1 << 20)
            rp(r, "%s.image_size: expected [width, height] (positive integers)", loc);
        else {
            ref->img_w = (int)json_integer_value(json_array_get(sz, 0));
            ref->img_h = (int)json_integer_value(json_array_get(sz, 1));
        }
    }
}

static void read_subject(rd *r, json_t *o, int idx)
{
    static const char *const keys[] = {"name", "trigger", "class", NULL};
    char loc[32];
    snprintf(loc, sizeof loc, "subjects[%d]", idx);
    if (!json_is_object(o)) {
        rp(r, "%s: expected an object, got %s", loc, jtype(o));
        return;
    }
    check_keys(r, o, loc, keys);
    int si;
    if (it_intent_add_subject(NULL, r->in, &si) != IT_OK) return;
    it_intent_subject *s = &r->in->subjects[si];
    s->name = get_str(r, o, "name", loc, 0, 1);
    s->trigger = get_str(r, o, "trigger", loc, 1, 0);
    s->class_word = get_str(r, o, "class", loc, 1, 0);
}

static void read_top(rd *r, json_t *root)
{
    static const char *const keys[] = {"version", "text", "domain", "domain_source", "parser",
                                       "subjects", "concepts", "refs", "warnings", NULL};
    it_intent *in = r->in;
    check_keys(r, root, "", keys);
    json_t *ver = json_object_get(root, "version");
    if (ver && (!json_is_integer(ver) || json_integer_value(ver) != IT_INTENT_SCHEMA_VERSION))
        rp(r, "version: this program reads version %d", IT_INTENT_SCHEMA_VERSION);
    in->text = get_str(r, root, "text", "", 0, 1);
    int d = get_enum(r, root, "domain", "", it_intent_domain_parse,
                     "2d-character, portrait, product, painting");
    in->domain = d < 0 ? IT_DOMAIN_CHARACTER_2D : (it_intent_domain)d;
    in->domain_source = IT_DOMSRC_OVERRIDE;
    json_t *ds = json_object_get(root, "domain_source");
    if (ds) {
        int k = -1;
        for (int i = 0; i < 3 && json_is_string(ds); i++)
            if (!strcmp(json_string_value(ds), g_domsrc_names[i])) k = i;
        if (k < 0) rp(r, "domain_source: expected one of inferred, override, default");
        else in->domain_source = (it_domain_source)k;
    }
    in->parser = get_str(r, root, "parser", "", 0, 1);
    if (!in->parser) in->parser = dup_or_nomem(r, "file");
    size_t i;
    json_t *v;
    /* Subjects and refs first: concepts name them. */
    json_t *a = get_array(r, root, "subjects", "", 1, IT_INTENT_MAX_SUBJECTS);
    if (a) json_array_foreach(a, i, v) read_subject(r, v, (int)i);
    a = get_array(r, root, "refs", "", 0, IT_INTENT_MAX_REFS);
    if (a) json_array_foreach(a, i, v) read_ref(r, v, (int)i);
    a = get_array(r, root, "concepts", "", 1, IT_INTENT_MAX_CONCEPTS);
    if (a) json_array_foreach(a, i, v) read_concept(r, v, (int)i);
    a = get_array(r, root, "warnings", "", 0, IT_INTENT_MAX_WARNINGS);
    if (a) json_array_foreach(a, i, v) {
            if (json_is_string(v)) it_intent_warn(in, "%s", json_string_value(v));
            else rp(r, "warnings[%zu]: expected a string, got %s", i, jtype(v));
        }
}

it_status it_intent_from_json(it_err *err, it_intent *out, const char *json, size_t n,
                              const it_intent_check_opts *opts, it_buf *problems)
{
    IT_TRY(it_intent_init(err, out));
    json_error_t jerr;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (problems) (void)it_buf_printf(problems, "line %d, column %d: %s\n", jerr.line, jerr.column, jerr.text);
        it_intent_free(out);
        return it_err_set(err, IT_ERR_FORMAT, "line %d, column %d: %s", jerr.line, jerr.column,
                          jerr.text);
    }
    rd r = {.in = out, .problems = problems, .strict = !(opts && opts->allow_unknown_keys)};
    if (!json_is_object(root)) rp(&r, "the document must be a JSON object, not %s", jtype(root));
    else read_top(&r, root);
    json_decref(root);
    if (r.nomem) {
        it_intent_free(out);
        return it_err_set(err, IT_ERR_NOMEM, "out of memory reading an intent");
    }
    it_status s = it_intent_validate_ex(err, out, opts, problems, 1, r.n, r.first);
    if (s != IT_OK) it_intent_free(out);
    return s;
}

/* ---- intent input files ------------------------------------------------ */

it_status it_intent_read_input(it_err *err, it_intent *scratch, char **text, const char *path,
                               const char *base_dir)
{
    uint8_t *data;
    size_t n;
    IT_TRY(it_file_read(err, &data, &n, path, IT_INTENT_INPUT_MAX));
    json_error_t je;
    json_t *root = json_loadb((const char *)data, n, JSON_REJECT_DUPLICATES, &je);
    it_free(data);
    if (!root) return it_err_set(err, IT_ERR_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    it_status s = IT_OK;
    json_t *t = json_object_get(root, "text");
    if (!json_is_object(root) || !json_is_string(t)) {
        s = it_err_set(err, IT_ERR_FORMAT, "%s: expected an object with a \"text\" string", path);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "text") && strcmp(key, "refs") && strcmp(key, "domain")) {
            s = it_err_set(err, IT_ERR_FORMAT, "%s: unknown key '%.60s' (expected text, refs, domain)", path, key);
            goto out;
        }
    }
    json_t *dom = json_object_get(root, "domain");
    if (dom) {
        int d = json_is_string(dom) ? it_intent_domain_parse(json_string_value(dom)) : -1;
        if (d < 0) {
            s = it_err_set(err, IT_ERR_FORMAT, "%s: domain: expected 2d-character, portrait, product or painting", path);
            goto out;
        }
        scratch->domain = (it_intent_domain)d;
        scratch->domain_source = IT_DOMSRC_OVERRIDE;
    }
    *text = it_intent_strdup(scratch, json_string_value(t));
    json_t *refs = json_object_get(root, "refs");
    if (refs && !json_is_array(refs)) {
        s = it_err_set(err, IT_ERR_FORMAT, "%s: refs: expected an array", path);
        goto out;
    }
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r) {
        json_t *nn = json_object_get(r, "n"), *img = json_object_get(r, "image"), *box = json_object_get(r, "box");
        if (!json_is_integer(nn) || !json_is_string(img) || !json_is_array(box) || json_array_size(box) != 4) {
            s = it_err_set(err, IT_ERR_FORMAT, "%s: refs[%zu]: expected {\"n\", \"image\", \"box\": [x0,y0,x1,y1]}", path, i);
            goto out;
        }
        it_intent_ref *ref;
        if ((s = it_intent_add_ref(err, scratch, &ref)) != IT_OK) goto out;
        json_int_t v = json_integer_value(nn);
        ref->n = v < 0 || v > IT_INTENT_MAX_REF_N ? -1 : (int)v;
        const char *image = json_string_value(img);
        char joined[4096];
        if (base_dir && image[0] != '/') {
            if ((s = it_path_join(err, joined, sizeof joined, base_dir, image)) != IT_OK) goto out;
            image = joined;
        }
        ref->image = it_intent_strdup(scratch, image);
        for (int k = 0; k < 4; k++) ref->box[k] = json_number_value(json_array_get(box, k));
    }
out:
    json_decref(root);
    return s;
}
