/* intent_parse.c: libFuzzer harness for the built-in intent parser.
 *
 * Byte 0 chooses options (bit 0: give references [1]..[3]; bits 1-3: a
 * domain override); the rest is the intent text. Besides crashes and
 * sanitizer reports it checks one property: whatever the parser accepts, its
 * JSON passes the strict reader and serialises back to the same bytes, and
 * what it rejects is the input's fault (never IT_ERR_INTERNAL, which the
 * parser returns when its own output fails validation).
 *
 * The JSON round trip (write, strict read, write again) runs on one input in
 * ROUNDTRIP_EVERY, chosen by a hash of the input bytes so that a failing
 * input fails every time it is replayed. It costs more than the parse itself
 * (jansson allocates every value, and each allocation is expensive under
 * ASan), and the JSON reader and writer have their own harness
 * (intent_file.c); sampling keeps the check on over a million parser outputs
 * per 10 M executions while the parser gets most of the time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "intent/hierarchy.h"
#include "intent/parser.h"

#define ROUNDTRIP_EVERY 8

static unsigned input_hash(const uint8_t *data, size_t size)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const it_intent_ref refs[3] = {
        {1, "a.png", {0, 0, 10, 10}, 0, 0}, {2, "b.png", {1, 1, 5, 5}, 0, 0}, {3, "c.png", {2, 3, 4, 5}, 0, 0}};
    it_intent_parse_opts o = {.domain = -1};
    if (data[0] & 1) {
        o.refs = refs;
        o.n_refs = 3;
    }
    int d = (data[0] >> 1) & 7;
    if (d < IT_DOMAIN_COUNT) o.domain = d;
    it_err e;
    it_intent in;
    it_status s = it_intent_parse(&e, &in, (const char *)data + 1, size - 1, &o);
    if (s != IT_OK) {
        /* an error must say what is wrong, and must be the input's fault */
        if (!e.msg[0] || s == IT_ERR_INTERNAL) abort();
        return 0;
    }
    if (input_hash(data, size) % ROUNDTRIP_EVERY != 0) {
        it_intent_free(&in);
        return 0;
    }
    char *j1 = NULL, *j2 = NULL;
    if (it_intent_to_json(&e, &j1, &in, 0) != IT_OK) abort();
    it_intent back;
    if (it_intent_from_json(&e, &back, j1, strlen(j1), NULL, NULL) != IT_OK) abort();
    if (it_intent_to_json(&e, &j2, &back, 0) != IT_OK) abort();
    if (strcmp(j1, j2) != 0) abort();
    it_free(j1);
    it_free(j2);
    it_intent_free(&back);
    it_intent_free(&in);
    return 0;
}
