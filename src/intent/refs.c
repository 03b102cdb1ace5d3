/* refs.c: reference marks in text and --ref specs (see refs.h). */
#include "intent/refs.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Quotes at most 24 bytes of the group for error messages. */
static int quote_len(size_t pos, size_t end) { return (int)(end - pos > 24 ? 24 : end - pos); }

it_status it_refs_group(it_err *err, int *ns, int max_ns, int *n_ns, size_t *end,
                        const char *text, size_t len, size_t pos)
{
    size_t i = pos + 1;
    size_t close = pos + 1;
    while (close < len && text[close] != ']' && text[close] != '[' && text[close] != '\n') close++;
    if (close >= len || text[close] != ']')
        return it_err_set(err, IT_ERR_FORMAT,
                          "unclosed '[' at offset %zu: \"%.*s\" (references are written [n])", pos,
                          quote_len(pos, close), text + pos);
    *n_ns = 0;
    for (;;) {
        while (i < close && text[i] == ' ') i++;
        if (i >= close || !isdigit((unsigned char)text[i])) break;
        long v = 0;
        while (i < close && isdigit((unsigned char)text[i])) {
            if (v <= IT_INTENT_MAX_REF_N) v = v * 10 + (text[i] - '0');
            i++;
        }
        if (v < 1 || v > IT_INTENT_MAX_REF_N)
            return it_err_set(err, IT_ERR_RANGE, "reference \"%.*s\" at offset %zu: numbers go from 1 to %d",
                              quote_len(pos, close + 1), text + pos, pos, IT_INTENT_MAX_REF_N);
        if (*n_ns >= max_ns)
            return it_err_set(err, IT_ERR_RANGE, "reference \"%.*s\" at offset %zu cites more than %d numbers",
                              quote_len(pos, close + 1), text + pos, pos, max_ns);
        ns[(*n_ns)++] = (int)v;
        while (i < close && text[i] == ' ') i++;
        if (i < close && text[i] == ',') {
            i++;
            continue;
        }
        break;
    }
    if (i != close || *n_ns == 0)
        return it_err_set(err, IT_ERR_FORMAT,
                          "\"%.*s\" at offset %zu is not a reference: write [n], [n,m] or [n][m]",
                          quote_len(pos, close + 1), text + pos, pos);
    *end = close + 1;
    return IT_OK;
}

it_status it_refs_scan(it_err *err, it_ref_mention *out, int max, int *n_out, const char *text,
                       size_t len)
{
    *n_out = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] == ']')
            return it_err_set(err, IT_ERR_FORMAT, "unmatched ']' at offset %zu", i);
        if (text[i] != '[') {
            i++;
            continue;
        }
        int ns[IT_INTENT_MAX_CREFS];
        int n_ns = 0;
        size_t end = 0;
        IT_TRY(it_refs_group(err, ns, IT_INTENT_MAX_CREFS, &n_ns, &end, text, len, i));
        for (int k = 0; k < n_ns; k++) {
            if (*n_out >= max)
                return it_err_set(err, IT_ERR_RANGE, "more than %d reference marks in the text", max);
            out[(*n_out)++] = (it_ref_mention){ns[k], i, end - i};
        }
        i = end;
    }
    return IT_OK;
}

static it_status parse_box(it_err *err, double box[4], const char *s, const char *spec)
{
    const char *p = s;
    for (int k = 0; k < 4; k++) {
        char *endp;
        errno = 0;
        double v = strtod(p, &endp);
        if (endp == p || errno)
            return it_err_set(err, IT_ERR_ARG, "--ref '%s': box '%s' is not four numbers x0,y0,x1,y1",
                              spec, s);
        box[k] = v;
        p = endp;
        if (k < 3) {
            if (*p != ',')
                return it_err_set(err, IT_ERR_ARG, "--ref '%s': box '%s' is not four numbers x0,y0,x1,y1",
                                  spec, s);
            p++;
        }
    }
    if (*p)
        return it_err_set(err, IT_ERR_ARG, "--ref '%s': unexpected '%s' after the box", spec, p);
    return IT_OK;
}

it_status it_refs_add_spec(it_err *err, it_intent *in, const char *spec)
{
    const char *eq = strchr(spec, '=');
    const char *colon = strrchr(spec, ':');
    if (!eq || !colon || colon < eq)
        return it_err_set(err, IT_ERR_ARG, "--ref '%s': expected N=IMAGE:x0,y0,x1,y1", spec);
    long n = 0;
    const char *p = spec;
    if (p == eq) return it_err_set(err, IT_ERR_ARG, "--ref '%s': missing the number N before '='", spec);
    for (; p < eq; p++) {
        if (!isdigit((unsigned char)*p) || n > IT_INTENT_MAX_REF_N)
            return it_err_set(err, IT_ERR_ARG, "--ref '%s': '%.*s' is not a reference number 1..%d",
                              spec, (int)(eq - spec), spec, IT_INTENT_MAX_REF_N);
        n = n * 10 + (*p - '0');
    }
    if (n < 1 || n > IT_INTENT_MAX_REF_N)
        return it_err_set(err, IT_ERR_ARG, "--ref '%s': reference numbers go from 1 to %d", spec,
                          IT_INTENT_MAX_REF_N);
    if (colon == eq + 1) return it_err_set(err, IT_ERR_ARG, "--ref '%s': missing the image path", spec);
    if (it_intent_find_ref(in, (int)n))
        return it_err_set(err, IT_ERR_ARG, "--ref '%s': reference %ld is given twice", spec, n);
    double box[4];
    IT_TRY(parse_box(err, box, colon + 1, spec));
    char *image = it_intent_strndup(in, eq + 1, (size_t)(colon - eq - 1));
    if (!image) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_intent_ref *r;
    IT_TRY(it_intent_add_ref(err, in, &r));
    r->n = (int)n;
    r->image = image;
    memcpy(r->box, box, sizeof box);
    return IT_OK;
}
