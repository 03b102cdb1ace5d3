/* intent_file.c: libFuzzer harness for the intent-file reader (`intent
 * check`): arbitrary bytes as an intent JSON document. Accepted documents
 * must serialise and read back to the same bytes; rejected ones must list at
 * least one problem. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "intent/hierarchy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    it_err e;
    it_intent in;
    it_buf problems;
    it_buf_init(&problems);
    it_status s = it_intent_from_json(&e, &in, (const char *)data, size, NULL, &problems);
    if (s != IT_OK) {
        if (s != IT_ERR_NOMEM && problems.len == 0) abort();
        it_buf_free(&problems);
        return 0;
    }
    it_buf_free(&problems);
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
