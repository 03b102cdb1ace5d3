/* test_intent_linking.c: a linking verb before a modify adjective ("must
 * stay adjustable") is not a preserve cue: the toy vincent scenario's own
 * wording, which the parser used to read as preserve. */
#include "intent/hierarchy.h"
#include "intent/parser.h"
#include "test.h"

typedef struct linking_case {
    const char *text;
    const char *head;
    it_concept_op op;
} linking_case;

IT_TEST(intent_linking_verb_before_modify_cue) {
    static const linking_case cases[] = {
        {"A man named Vincent. His hair colour must stay adjustable.", "hair", IT_OP_MODIFY},
        {"A man named Vincent. His hat remains changeable.", "hat", IT_OP_MODIFY},
        {"A man named Vincent. His face should stay the same.", "face", IT_OP_PRESERVE},
        {"A man named Vincent. His scarf must stay.", "scarf", IT_OP_PRESERVE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err e;
        it_err_clear(&e);
        it_intent in;
        it_intent_parse_opts po = {.domain = -1};
        IT_REQUIRE_OK(it_intent_parse(&e, &in, cases[i].text, strlen(cases[i].text), &po), &e);
        int found = 0;
        for (int c = 0; c < in.n_concepts; c++) {
            if (strcmp(in.concepts[c].head, cases[i].head) != 0) continue;
            found = 1;
            if (in.concepts[c].op != cases[i].op)
                it_test_fail(t, __FILE__, __LINE__, "case %zu: '%s' is %s, want %s", i, cases[i].head,
                             it_intent_op_name(in.concepts[c].op), it_intent_op_name(cases[i].op));
        }
        if (!found) it_test_fail(t, __FILE__, __LINE__, "case %zu: no concept '%s'", i, cases[i].head);
        it_intent_free(&in);
    }
}
