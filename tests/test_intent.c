/* test_intent.c: the intent hierarchy (JSON, validation with locations),
 * reference marks and --ref specs, the parser's rules and its errors, and
 * the `intent` command end to end. Corpus accuracy: test_intent_corpus.c;
 * LLM mode: test_intent_llm.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "intent/hierarchy.h"
#include "intent/parser.h"
#include "intent/refs.h"
#include "test.h"

static const char *VINCENT =
    "I want to train a model of a man named Vincent. Keep his facial features consistent. He should be "
    "able to switch between the black leather jacket [1] and the black striped jacket [2]. His hair colour "
    "should be adjustable, and don't let him wear a necklace.";

static const it_intent_ref VREFS[2] = {
    {1, "tests/fixtures/intent/ref_a.png", {10, 10, 60, 50}, 0, 0},
    {2, "tests/fixtures/intent/ref_b.jpg", {20, 5, 90, 40}, 0, 0},
};

static it_status parse(it_err *e, it_intent *in, const char *text)
{
    it_intent_parse_opts o = {.domain = -1, .refs = VREFS, .n_refs = 2, .image_size = it_intent_image_size};
    return it_intent_parse(e, in, text, strlen(text), &o);
}

static const it_intent_concept *find(const it_intent *in, const char *key)
{
    for (int i = 0; i < in->n_concepts; i++) {
        char k[160];
        it_intent_concept_key(k, sizeof k, &in->concepts[i]);
        if (!strcmp(k, key)) return &in->concepts[i];
    }
    return NULL;
}

IT_TEST(intent_vincent_hierarchy) {
    it_err e;
    it_err_clear(&e);
    it_intent in;
    IT_REQUIRE_OK(parse(&e, &in, VINCENT), &e);
    IT_CHECK_STR(it_intent_domain_name(in.domain), "portrait");
    IT_REQUIRE(in.n_subjects == 1);
    IT_CHECK_STR(in.subjects[0].trigger, "vincent");
    IT_CHECK_STR(in.subjects[0].class_word, "man");
    IT_CHECK_STR(in.subjects[0].name, "Vincent");
    IT_CHECK_INT(in.n_concepts, 4);
    const it_intent_concept *c = find(&in, "face");
    IT_REQUIRE(c);
    IT_CHECK_INT(c->op, IT_OP_PRESERVE);
    IT_CHECK_INT(c->level, IT_LEVEL_INSTANCE);
    IT_CHECK_INT(c->subject, 0);
    c = find(&in, "jacket");
    IT_REQUIRE(c);
    IT_CHECK_INT(c->op, IT_OP_MODIFY);
    IT_CHECK_INT(c->n_refs, 2);
    IT_REQUIRE(c->n_variants == 2);
    IT_CHECK_STR(c->variants[0].phrase, "black leather jacket");
    IT_CHECK_INT(c->variants[0].refs[0], 1);
    IT_CHECK_STR(c->variants[1].phrase, "black striped jacket");
    IT_CHECK_INT(c->variants[1].refs[0], 2);
    IT_CHECK_INT(c->contrast_source, IT_CONTRAST_EXPLICIT);
    IT_CHECK_STR(c->contrast[0][0], "black leather jacket");
    IT_CHECK_STR(c->contrast[0][1], "black striped jacket");
    c = find(&in, "hair colour");
    IT_REQUIRE(c);
    IT_CHECK_INT(c->level, IT_LEVEL_ATTRIBUTE);
    IT_CHECK_INT(c->op, IT_OP_MODIFY);
    IT_CHECK_STR(c->query, "hair");
    IT_CHECK_INT(c->contrast_source, IT_CONTRAST_OPPOSITES);
    IT_CHECK_STR(c->contrast[0][0], "red hair");
    IT_CHECK_STR(c->contrast[0][1], "blonde hair");
    c = find(&in, "necklace");
    IT_REQUIRE(c);
    IT_CHECK_INT(c->op, IT_OP_REMOVE);
    IT_CHECK_INT(in.refs[0].img_w, 128); /* checked against the PNG */
    IT_CHECK_INT(in.refs[1].img_h, 96);  /* and the JPEG */
    it_intent_free(&in);
}

/* Table: a phrase and the (key, op, level, subject) it must give. */
typedef struct rule_case {
    const char *text, *key, *op, *level, *subject;
} rule_case;

IT_TEST(intent_parser_rules_table) {
    static const rule_case cases[] = {
        /* negation flips a cue */
        {"A man named Al. Don't change his face.", "face", "preserve", "instance", "al"},
        {"A man named Al. His hat doesn't need to stay the same.", "hat", "modify", "instance", "al"},
        {"A man named Al. He should not wear glasses.", "glasses", "remove", "instance", "al"},
        {"A man named Al. The background is not important.", "background", "modify", "image", NULL},
        /* coordination and postfix cues */
        {"A man named Al. His face and hair stay the same.", "hair", "preserve", "instance", "al"},
        {"A man named Al. Keep his face, his beard and his eyes.", "eyes", "preserve", "instance", "al"},
        /* pronouns resolve by gender; possessives by name */
        {"A man named Al and a woman named Bea. She must never wear a hat.", "hat", "remove", "instance", "bea"},
        {"A man named Al and a woman named Bea. Keep Al's beard.", "beard", "preserve", "instance", "al"},
        /* attribute level from a property word, a value, "any" */
        {"A girl named Cy. Her eye colour can vary.", "eye colour", "modify", "attribute", "cy"},
        {"A girl named Cy. Her scarf must stay striped.", "scarf pattern", "preserve", "attribute", "cy"},
        {"A girl named Cy. Her hair can be any colour.", "hair colour", "modify", "attribute", "cy"},
        {"A girl named Cy. The colour of her dress should be adjustable.", "dress colour", "modify", "attribute", "cy"},
        /* values make attributes and variants */
        {"A creature named Dee. The outfit may be plain, striped or dotted.", "outfit pattern", "modify", "attribute", "dee"},
        /* image level; taught poses and styles */
        {"Teach the pose called superhero landing.", "pose", "preserve", "image", "superhero_landing"},
        {"Paint like Monet. The lighting can vary.", "lighting", "modify", "image", NULL},
        /* the unknown-noun fallback keeps the phrase */
        {"A robot named Eve. Remove the propeller.", "propeller", "remove", "instance", "eve"},
        /* my dog Rex */
        {"Learn my dog Rex. His collar must be kept.", "collar", "preserve", "instance", "rex"},
        /* declarations: "Name is a ...", titles, lists, poses named after their class */
        {"Zed is a small green gremlin. Keep its ears.", "ears", "preserve", "instance", "zed"},
        {"Photos of Dr. Ana Ruiz. Keep her glasses.", "glasses", "preserve", "instance", "ana_ruiz"},
        {"Two robots in one LoRA: Bolt and Widget. Neither should carry a gun.", "gun", "remove", "instance", "bolt"},
        {"Teach the pose tiger crouch shown here. No hat.", "pose", "preserve", "image", "tiger_crouch"},
        {"A knight named Rob and a pose triggered by kpose. Keep Rob's shield.", "shield", "preserve", "instance", "rob"},
        /* scopes: colon elaboration, "with", "so does", values after swap verbs and colons */
        {"A man named Al. Keep his look: he has a red scarf.", "scarf", "preserve", "instance", "al"},
        {"A man named Al. Keep his face, with the scar.", "scar", "preserve", "instance", "al"},
        {"A man named Al. The hat must stay, and so does the scarf.", "scarf", "preserve", "instance", "al"},
        {"A man named Al. His cap may be swapped for a beanie.", "cap", "modify", "instance", "al"},
        {"A man named Al. Background: a forest or a city.", "background", "modify", "image", NULL},
        {"Paint like Monet. What matters most is the palette.", "palette", "preserve", "image", NULL},
        /* negation: "neither...nor", orders to keep, asides, relative clauses */
        {"A lamp called Halo. Neither the stem nor the base should change.", "stem", "preserve", "instance", "halo"},
        {"Paint like Monet. Don't reproduce the signature.", "signature", "remove", "instance", "monet"},
        {"A man named Al. His cape, on the other hand, can vary.", "cape", "modify", "instance", "al"},
        {"A man named Al. The axe he carries can change.", "axe", "modify", "instance", "al"},
        {"A woman named Bea. She must not appear with a hat.", "hat", "remove", "instance", "bea"},
        {"A woman named Bea. No \xE2\x80\x9C" "cap\xE2\x80\x9D.", "cap", "remove", "instance", "bea"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const rule_case *rc = &cases[i];
        it_err e;
        it_err_clear(&e);
        it_intent in;
        it_intent_parse_opts o = {.domain = -1};
        if (it_intent_parse(&e, &in, rc->text, strlen(rc->text), &o) != IT_OK) {
            it_test_fail(t, __FILE__, __LINE__, "case %zu: %s", i, e.msg);
            continue;
        }
        const it_intent_concept *c = find(&in, rc->key);
        if (!c) {
            it_test_fail(t, __FILE__, __LINE__, "case %zu \"%s\": no concept '%s'", i, rc->text, rc->key);
        } else {
            const char *subj = c->subject >= 0 ? in.subjects[c->subject].trigger : NULL;
            if (strcmp(it_intent_op_name(c->op), rc->op) || strcmp(it_intent_level_name(c->level), rc->level) ||
                (subj == NULL) != (rc->subject == NULL) || (subj && strcmp(subj, rc->subject)))
                it_test_fail(t, __FILE__, __LINE__, "case %zu \"%s\": got %s %s %s", i, rc->text,
                             it_intent_op_name(c->op), it_intent_level_name(c->level), subj ? subj : "(image)");
        }
        it_intent_free(&in);
    }
}

IT_TEST(intent_parser_warns_instead_of_dropping) {
    it_err e;
    it_err_clear(&e);
    it_intent in;
    const char *text = "A man named Al. Keep his face. The quantum flux is nice. Blorp zib.";
    it_intent_parse_opts o = {.domain = -1};
    IT_REQUIRE_OK(it_intent_parse(&e, &in, text, strlen(text), &o), &e);
    int quoted = 0;
    for (int i = 0; i < in.n_warnings; i++) quoted += strstr(in.warnings[i], "Blorp zib") != NULL;
    IT_CHECK(quoted >= 1);
    it_intent_free(&in);
    /* no subject, no concept: both said */
    IT_REQUIRE_OK(it_intent_parse(&e, &in, "hello", 5, &o), &e);
    IT_CHECK(in.n_warnings >= 2);
    it_intent_free(&in);
}

/* Table: input text and the start of the error message. */
IT_TEST(intent_parser_input_errors) {
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"Keep the jacket [3].", "cites [3] at offset 16 but no reference 3 is given"},
        {"Keep the jacket [1.", "unclosed '[' at offset 16"},
        {"Keep the jacket 1].", "unmatched ']' at offset 17"},
        {"Keep the jacket [one].", "\"[one]\" at offset 16 is not a reference"},
        {"Keep the jacket [0].", "numbers go from 1 to 999"},
        {"Keep the jacket [1,,2].", "is not a reference"},
        {"Bad \xC3\x28 byte.", "not valid UTF-8 at byte 4"},
        {"Overlong \xC0\xAF slash.", "not valid UTF-8 at byte 9"},
        {"A surrogate \xED\xA0\x80 half.", "not valid UTF-8 at byte 12"},
        {"Past U+10FFFF \xF4\x90\x80\x80.", "not valid UTF-8 at byte 14"},
        {"Cut at the end \xE2\x80", "not valid UTF-8 at byte 15"},
        {"Lone \x80 continuation.", "not valid UTF-8 at byte 5"},
        {"Keep [[1]] the hat.", "unclosed '[' at offset 5"},
        {"Keep the hat [", "unclosed '[' at offset 13"},
        {"Keep the hat ]]", "unmatched ']' at offset 13"},
        {"Keep the hat [1000].", "numbers go from 1 to 999"},
        {"Keep the hat [1-2].", "\"[1-2]\" at offset 13 is not a reference"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err e;
        it_err_clear(&e);
        it_intent in;
        it_intent_parse_opts o = {.domain = -1};
        it_status s = it_intent_parse(&e, &in, cases[i].text, strlen(cases[i].text), &o);
        IT_CHECK(s != IT_OK);
        IT_CHECK_CONTAINS(e.msg, cases[i].msg);
        if (s == IT_OK) it_intent_free(&in);
    }
    /* a NUL inside the given length, and text over the limit */
    it_err e;
    it_intent in;
    it_intent_parse_opts o = {.domain = -1};
    IT_CHECK(it_intent_parse(&e, &in, "ab\0cd", 5, &o) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "NUL byte at offset 2");
    size_t big = IT_INTENT_MAX_TEXT + 1;
    char *t2 = it_malloc(big);
    IT_REQUIRE(t2);
    memset(t2, 'a', big);
    IT_CHECK(it_intent_parse(&e, &in, t2, big, &o) == IT_ERR_RANGE);
    IT_CHECK_CONTAINS(e.msg, "more than the 16384 allowed");
    /* under the byte limit but over the token limit: a word count error */
    for (size_t k = 0; k < 8200; k += 2) t2[k] = 'a', t2[k + 1] = ' ';
    IT_CHECK(it_intent_parse(&e, &in, t2, 8200, &o) == IT_ERR_RANGE);
    IT_CHECK_CONTAINS(e.msg, "more than 4096 words and marks");
    it_free(t2);
    /* a word longer than a token holds is read in part, with a warning */
    char longw[400];
    int n = snprintf(longw, sizeof longw, "A man named Al. Keep the %0300d hat.", 0);
    for (int k = 0; k < n; k++)
        if (longw[k] == '0') longw[k] = 'x';
    IT_REQUIRE_OK(it_intent_parse(&e, &in, longw, (size_t)n, &o), &e);
    int warned = 0;
    for (int k = 0; k < in.n_warnings; k++) warned |= strstr(in.warnings[k], "300-byte word at offset 25") != NULL;
    IT_CHECK(warned);
    it_intent_free(&in);
}

IT_TEST(intent_parser_odd_input_is_handled) {
    /* long repetitive input, unicode, emoji, brackets in every position:
     * a result or a clear error, never a crash, never a leak */
    it_buf b;
    it_buf_init(&b);
    for (int i = 0; i < 400; i++) IT_REQUIRE_OK(it_buf_printf(&b, "Keep the hat and no scarf, "), NULL);
    it_err e;
    it_intent in;
    it_intent_parse_opts o = {.domain = -1};
    it_status s = it_intent_parse(&e, &in, b.data, b.len, &o);
    IT_CHECK(s == IT_OK);
    if (s == IT_OK) {
        IT_CHECK_INT(in.n_concepts, 2); /* repeated mentions merge */
        it_intent_free(&in);
    }
    it_buf_free(&b);
    const char *odd[] = {"in_;;no n't k", "n't", "A man named Al. No hat between red and blue.", "'s", "Zoë’s café – “keep” the naïve façade 🎨 and no señor’s hat.",
                         "\xE2\x80\x99\xE2\x80\x99\xE2\x80\x9C", "''''s's's", "[1][2][3]", ",,,...;;;", ""};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        s = it_intent_parse(&e, &in, odd[i], strlen(odd[i]), &o);
        IT_CHECK(s != IT_ERR_INTERNAL); /* found by the fuzzer: "n't" alone made an empty word */
        if (s == IT_OK) it_intent_free(&in);
        else IT_CHECK(e.msg[0] != '\0');
    }
    /* quotes in warnings are cut at ~190 bytes: never inside a character
     * (found by the fuzzer: the JSON writer refused the cut string) */
    for (int shift = 0; shift < 4; shift++) {
        it_buf_init(&b);
        for (int k = 0; k < 186 + shift; k++) IT_REQUIRE_OK(it_buf_printf(&b, "%c", k % 7 == 6 ? ' ' : 'q'), NULL);
        for (int k = 0; k < 20; k++) IT_REQUIRE_OK(it_buf_printf(&b, "\xCF\x9A\xE2\x82\xAC"), NULL);
        s = it_intent_parse(&e, &in, b.data, b.len, &o);
        IT_CHECK_INT(s, IT_OK);
        if (s == IT_OK) {
            char *j = NULL;
            IT_CHECK_INT(it_intent_to_json(&e, &j, &in, 0), IT_OK);
            it_free(j);
            it_intent_free(&in);
        }
        it_buf_free(&b);
    }
    /* many subjects: over the maximum is an error that names it */
    it_buf_init(&b);
    for (int i = 0; i < 20; i++) IT_REQUIRE_OK(it_buf_printf(&b, "a creature named N%c. ", 'A' + i), NULL);
    s = it_intent_parse(&e, &in, b.data, b.len, &o);
    IT_CHECK(s == IT_ERR_RANGE);
    IT_CHECK_CONTAINS(e.msg, "more than 16 subjects");
    if (s == IT_OK) it_intent_free(&in);
    it_buf_free(&b);
}

IT_TEST(intent_parser_out_of_memory_is_clean) {
    it_err e;
    it_intent in;
    int failures = 0;
    for (long n = 0; n < 400; n++) {
        it_mem_fail_after(n, 1);
        it_status s = parse(&e, &in, VINCENT);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) {
            it_intent_free(&in);
            break;
        }
        failures++;
        IT_CHECK_INT(s, IT_ERR_NOMEM);
    }
    IT_CHECK(failures > 3);
}

IT_TEST(intent_refs_scan_and_spec) {
    it_err e;
    it_ref_mention m[16];
    int n = 0;
    const char *text = "a [1] b [2, 3] c [4][5]";
    IT_REQUIRE_OK(it_refs_scan(&e, m, 16, &n, text, strlen(text)), &e);
    IT_REQUIRE(n == 5);
    IT_CHECK_INT(m[0].n, 1);
    IT_CHECK_INT(m[1].n, 2);
    IT_CHECK_INT(m[2].n, 3);
    IT_CHECK_INT(m[2].offset, 8);
    IT_CHECK_INT(m[2].len, 6);
    IT_CHECK_INT(m[4].n, 5);
    it_intent in;
    IT_REQUIRE_OK(it_intent_init(&e, &in), &e);
    IT_CHECK_OK(it_refs_add_spec(&e, &in, "1=dir:with:colons/a.png:1,2,30.5,40"), &e);
    IT_CHECK_STR(in.refs[0].image, "dir:with:colons/a.png");
    IT_CHECK_NEAR(in.refs[0].box[2], 30.5, 1e-9);
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"5=a.png:1,2,3", "is not four numbers"},
        {"x=a.png:1,2,3,4", "is not a reference number"},
        {"=a.png:1,2,3,4", "missing the number"},
        {"1=:1,2,3,4", "missing the image path"},
        {"1=a.png:1,2,3,4", "given twice"},
        {"2=a.png:1,2,3,4x", "unexpected 'x'"},
        {"1000=a.png:1,2,3,4", "from 1 to 999"},
        {"2a.png", "expected N=IMAGE:x0,y0,x1,y1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        IT_CHECK(it_refs_add_spec(&e, &in, bad[i].spec) == IT_ERR_ARG);
        IT_CHECK_CONTAINS(e.msg, bad[i].msg);
    }
    it_intent_free(&in);
}

IT_TEST(intent_ref_box_checked_against_image) {
    it_err e;
    it_intent in;
    it_intent_ref r[2] = {VREFS[0], VREFS[1]};
    r[1].box[2] = 200; /* ref_b.jpg is 128 wide */
    it_intent_parse_opts o = {.domain = -1, .refs = r, .n_refs = 2, .image_size = it_intent_image_size};
    IT_CHECK(it_intent_parse(&e, &in, VINCENT, strlen(VINCENT), &o) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "refs[1].box: [20,5,200,40] lies outside its 128x96 image");
    r[1] = VREFS[1];
    r[1].image = "tests/fixtures/intent/missing.png";
    IT_CHECK(it_intent_parse(&e, &in, VINCENT, strlen(VINCENT), &o) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "refs[1].image: tests/fixtures/intent/missing.png: No such file");
    /* an unused reference is only a warning */
    it_intent_ref three[3] = {VREFS[0], VREFS[1], {3, "tests/fixtures/intent/ref_a.png", {0, 0, 5, 5}, 0, 0}};
    o.refs = three;
    o.n_refs = 3;
    IT_REQUIRE_OK(it_intent_parse(&e, &in, VINCENT, strlen(VINCENT), &o), &e);
    int warned = 0;
    for (int i = 0; i < in.n_warnings; i++) warned += strstr(in.warnings[i], "reference [3]") != NULL;
    IT_CHECK_INT(warned, 1);
    it_intent_free(&in);
}

IT_TEST(intent_json_round_trip) {
    it_err e;
    it_intent in, back;
    IT_REQUIRE_OK(parse(&e, &in, VINCENT), &e);
    char *j1, *j2;
    IT_REQUIRE_OK(it_intent_to_json(&e, &j1, &in, 1), &e);
    it_intent_check_opts co = {.image_size = it_intent_image_size};
    IT_REQUIRE_OK(it_intent_from_json(&e, &back, j1, strlen(j1), &co, NULL), &e);
    IT_REQUIRE_OK(it_intent_to_json(&e, &j2, &back, 1), &e);
    IT_CHECK_STR(j1, j2);
    it_free(j1);
    it_free(j2);
    it_intent_free(&in);
    it_intent_free(&back);
}

IT_TEST(intent_check_reports_every_problem_with_location) {
    const char *doc =
        "{\"domain\": \"anime\", \"subjects\": [{\"trigger\": \"Bad Word\", \"class\": \"man\"},"
        " {\"trigger\": \"al\"}], \"refs\": [{\"n\": 1, \"image\": \"x.png\", \"box\": [5, 5, 2, 9]}],"
        " \"concepts\": [{\"head\": \"face\", \"level\": \"instance\", \"operation\": \"keep\"},"
        " {\"head\": \"hair\", \"level\": \"attribute\", \"operation\": \"modify\", \"subject\": \"bob\","
        " \"refs\": [7], \"contrast\": [[\"red\"]], \"colour\": 1}], \"text\": \"see [2]\", \"extra\": true}";
    it_err e;
    it_intent in;
    it_buf p;
    it_buf_init(&p);
    IT_CHECK(it_intent_from_json(&e, &in, doc, strlen(doc), NULL, &p) == IT_ERR_FORMAT);
    static const char *const expect[] = {
        "extra: unknown key",
        "domain: 'anime' is not one of 2d-character, portrait, product, painting",
        "subjects[1].class: missing",
        "concepts[0].operation: 'keep' is not one of preserve, modify, remove",
        "concepts[1].colour: unknown key",
        "concepts[1].subject: 'bob' is not the trigger of any subject",
        "concepts[1].contrast[0]: expected a pair of strings",
        "subjects[0].trigger: 'Bad Word' is not a trigger word",
        "refs[0].box: [5,5,2,9] is not a box",
        "concepts[1].property: an attribute-level concept needs a property",
        "concepts[1].refs[0]: reference [7] is not among the refs",
        "text: cites [2] at offset 4 but no reference 2 is given",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) IT_CHECK_CONTAINS(p.data, expect[i]);
    IT_CHECK_CONTAINS(e.msg, "(and 11 more problems)");
    it_buf_free(&p);
    /* syntax errors give line and column */
    it_buf_init(&p);
    IT_CHECK(it_intent_from_json(&e, &in, "{\n  \"domain\": ,\n}", 17, NULL, &p) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "line 2, column");
    it_buf_free(&p);
    /* duplicate keys are refused */
    IT_CHECK(it_intent_from_json(&e, &in, "{\"domain\": \"portrait\", \"domain\": \"product\"}", 44, NULL, NULL) ==
             IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "duplicate");
}

IT_TEST(intent_check_minimal_file_gets_defaults) {
    const char *doc = "{\"domain\": \"product\", \"subjects\": [{\"trigger\": \"aqua\", \"class\": \"bottle\"}],"
                      " \"concepts\": [{\"head\": \"bottle\", \"property\": \"colour\", \"level\": \"attribute\","
                      " \"operation\": \"modify\", \"subject\": \"aqua\", \"contrast\": [[\"red bottle\", \"blue bottle\"]]}]}";
    it_err e;
    it_intent in;
    IT_REQUIRE_OK(it_intent_from_json(&e, &in, doc, strlen(doc), NULL, NULL), &e);
    IT_CHECK_STR(in.concepts[0].id, "c1");
    IT_CHECK_STR(in.concepts[0].phrase, "bottle colour");
    IT_CHECK_STR(in.concepts[0].query, "bottle");
    IT_CHECK_INT(in.concepts[0].contrast_source, IT_CONTRAST_USER);
    IT_CHECK_INT(in.domain_source, IT_DOMSRC_OVERRIDE);
    it_intent_free(&in);
}

IT_TEST(intent_domain_inferred_and_overridden) {
    static const struct {
        const char *text, *domain;
    } cases[] = {
        {"Product shots of our sneaker called Dash. Keep the logo.", "product"},
        {"Learn this watercolour painting style. Keep the brushwork.", "painting"},
        {"Photos of my wife Ann. Keep her face.", "portrait"},
        {"An anime girl named Mika. Keep her outfit.", "2d-character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err e;
        it_intent in;
        it_intent_parse_opts o = {.domain = -1};
        IT_REQUIRE_OK(it_intent_parse(&e, &in, cases[i].text, strlen(cases[i].text), &o), &e);
        IT_CHECK_STR(it_intent_domain_name(in.domain), cases[i].domain);
        IT_CHECK_INT(in.domain_source, IT_DOMSRC_INFERRED);
        it_intent_free(&in);
    }
    it_err e;
    it_intent in;
    it_intent_parse_opts o = {.domain = IT_DOMAIN_PAINTING};
    IT_REQUIRE_OK(it_intent_parse(&e, &in, "Photos of my wife Ann.", 22, &o), &e);
    IT_CHECK_STR(it_intent_domain_name(in.domain), "painting");
    IT_CHECK_INT(in.domain_source, IT_DOMSRC_OVERRIDE);
    it_intent_free(&in);
}

IT_TEST(intent_trigger_words) {
    char b[80];
    it_intent_make_trigger(b, sizeof b, "Superhero Landing");
    IT_CHECK_STR(b, "superhero_landing");
    it_intent_make_trigger(b, sizeof b, "Unit-7");
    IT_CHECK_STR(b, "unit_7");
    it_intent_make_trigger(b, sizeof b, "Zoë");
    IT_CHECK_STR(b, "zo");
    it_intent_make_trigger(b, sizeof b, "Ωμέγα");
    IT_CHECK_STR(b, "sks");
    IT_CHECK(it_intent_trigger_ok("vincent"));
    IT_CHECK(!it_intent_trigger_ok("Vincent"));
    IT_CHECK(!it_intent_trigger_ok(""));
}

/* ---- the command ---------------------------------------------------------------- */

static int run_cmd(it_test_ctx *t, const char *args, const char *out_name, char **out)
{
    it_test_cli_io io = {.out_name = out_name};
    int rc = it_test_cli(t, &io, args);
    uint8_t *data = NULL;
    size_t n = 0;
    it_err e;
    if (it_file_read(&e, &data, &n, it_test_tmp(t, out_name), 1 << 22) != IT_OK) data = NULL;
    *out = (char *)data;
    return rc;
}

IT_TEST(intent_cli_round_trip_through_check) {
    char *out = NULL;
    char args[2048];
    snprintf(args, sizeof args,
             "intent parse --json --text \"%s\" --ref 1=tests/fixtures/intent/ref_a.png:10,10,60,50 "
             "--ref 2=tests/fixtures/intent/ref_b.jpg:20,5,90,40",
             VINCENT);
    IT_REQUIRE(run_cmd(t, args, "v.json", &out) == 0);
    IT_CHECK_CONTAINS(out, "\"trigger\": \"vincent\"");
    it_free(out);
    snprintf(args, sizeof args, "intent check '%s'", it_test_tmp(t, "v.json"));
    IT_CHECK_INT(run_cmd(t, args, "check.txt", &out), 0);
    IT_CHECK_CONTAINS(out, "ok (1 subject, 4 concepts, 2 references)");
    it_free(out);
    /* the file parses back to the same hierarchy */
    uint8_t *data;
    size_t n;
    it_err e;
    IT_REQUIRE_OK(it_file_read(&e, &data, &n, it_test_tmp(t, "v.json"), 1 << 22), &e);
    it_intent back, direct;
    IT_REQUIRE_OK(it_intent_from_json(&e, &back, (char *)data, n, NULL, NULL), &e);
    it_free(data);
    IT_REQUIRE_OK(parse(&e, &direct, VINCENT), &e);
    char *a, *b;
    IT_REQUIRE_OK(it_intent_to_json(&e, &a, &back, 0), &e);
    IT_REQUIRE_OK(it_intent_to_json(&e, &b, &direct, 0), &e);
    IT_CHECK_STR(a, b);
    it_free(a);
    it_free(b);
    it_intent_free(&back);
    it_intent_free(&direct);
    /* the tree view */
    snprintf(args, sizeof args, "intent parse --text \"A man named Al. Keep his face. No hat.\"");
    IT_CHECK_INT(run_cmd(t, args, "tree.txt", &out), 0);
    IT_CHECK_CONTAINS(out, "subject Al: trigger 'al', class 'man'");
    IT_CHECK_CONTAINS(out, "preserve instance  face");
    IT_CHECK_CONTAINS(out, "remove   instance  hat");
    it_free(out);
}

IT_TEST(intent_cli_errors) {
    char *out = NULL;
    IT_CHECK_INT(run_cmd(t, "intent parse --text \"Keep the hat [2].\"", "e1.txt", &out), 1);
    IT_CHECK_CONTAINS(out, "cites [2]");
    it_free(out);
    IT_CHECK_INT(run_cmd(t, "intent parse --text x --ref 1=a.png:1,2", "e2.txt", &out), 2);
    IT_CHECK_CONTAINS(out, "is not four numbers");
    it_free(out);
    IT_CHECK_INT(run_cmd(t, "intent parse --text x --domain anime", "e3.txt", &out), 2);
    IT_CHECK_CONTAINS(out, "--domain 'anime'");
    it_free(out);
    IT_CHECK_INT(run_cmd(t, "intent frobnicate", "e4.txt", &out), 2);
    it_free(out);
    const char *bad = it_test_write_tmp(t, "bad.json", "{\"domain\": \"portrait\", \"concepts\": [{}]}", 40);
    char args[600];
    snprintf(args, sizeof args, "intent check '%s'", bad);
    IT_CHECK_INT(run_cmd(t, args, "e5.txt", &out), 1);
    IT_CHECK_CONTAINS(out, "bad.json: subjects: missing");
    IT_CHECK_CONTAINS(out, "bad.json: concepts[0].head: missing");
    IT_CHECK_CONTAINS(out, "bad.json: concepts[0].level: missing");
    it_free(out);
    /* --contrast overrides a pair; --from reads text and refs from a file */
    /* (an absolute image path: relative ones are relative to the file) */
    char cwd[2048], doc[3000];
    IT_REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    int dn = snprintf(doc, sizeof doc,
                      "{\"text\": \"A man named Al. His hair colour can vary. Keep the hat [1].\","
                      " \"refs\": [{\"n\": 1, \"image\": \"%s/tests/fixtures/intent/ref_a.png\", \"box\": [0,0,10,10]}]}",
                      cwd);
    const char *in = it_test_write_tmp(t, "in.json", doc, (size_t)dn);
    snprintf(args, sizeof args, "intent parse --json --from '%s' --contrast 'hair colour=black hair/white hair'", in);
    IT_CHECK_INT(run_cmd(t, args, "c.json", &out), 0);
    IT_CHECK_CONTAINS(out, "\"black hair\"");
    IT_CHECK_CONTAINS(out, "\"contrast_source\": \"user\"");
    it_free(out);
}

IT_TEST(intent_json_reader_out_of_memory_is_clean) {
    it_err e;
    it_intent in;
    IT_REQUIRE_OK(parse(&e, &in, VINCENT), &e);
    char *doc;
    IT_REQUIRE_OK(it_intent_to_json(&e, &doc, &in, 0), &e);
    it_intent_free(&in);
    int failures = 0;
    for (long n = 0; n < 200; n++) {
        it_mem_fail_after(n, 1);
        it_status s = it_intent_from_json(&e, &in, doc, strlen(doc), NULL, NULL);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) {
            it_intent_free(&in);
            break;
        }
        failures++;
        IT_CHECK_INT(s, IT_ERR_NOMEM);
    }
    IT_CHECK(failures >= 1);
    it_free(doc);
}

IT_TEST(intent_variants_known_only_by_reference) {
    it_err e;
    it_intent in;
    const char *text = "A man named Al. His jacket can switch between [1] and [2], his hair colour adjustable.";
    IT_REQUIRE_OK(parse(&e, &in, text), &e);
    const it_intent_concept *c = find(&in, "jacket");
    IT_REQUIRE(c);
    IT_REQUIRE(c->n_variants == 2);
    IT_CHECK_STR(c->variants[0].phrase, "jacket [1]");
    IT_CHECK_INT(c->variants[1].refs[0], 2);
    IT_CHECK_INT(c->n_contrast, 0); /* nothing a prompt could say */
    int warned = 0;
    for (int i = 0; i < in.n_warnings; i++) warned += strstr(in.warnings[i], "describe them in words") != NULL;
    IT_CHECK_INT(warned, 1);
    IT_CHECK(find(&in, "hair colour") != NULL); /* not swallowed as a third value */
    it_intent_free(&in);
}

/* Copies a fixture file to a path under the test's tmpdir (creating folders). */
static const char *copy_fixture(it_test_ctx *t, const char *fixture, const char *dst_dir, const char *dst_name)
{
    it_err e;
    uint8_t *data;
    size_t n;
    if (it_file_read(&e, &data, &n, fixture, 1 << 22) != IT_OK) return NULL;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", it_test_tmp(t, dst_dir));
    if (it_mkdir_p(&e, dir) != IT_OK) {
        it_free(data);
        return NULL;
    }
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", dst_dir, dst_name);
    const char *p = it_test_write_tmp(t, rel, data, n);
    it_free(data);
    return p;
}

/* `parse --from FILE`: image paths relative to the file's folder (as the toy
 * scenarios write them), whatever the current directory; a "domain" in the
 * file is the override; unknown keys are errors. */
IT_TEST(intent_cli_from_file_resolves_images_next_to_it) {
    IT_REQUIRE(copy_fixture(t, "tests/fixtures/intent/ref_a.png", "scen/refs", "ref1.png") != NULL);
    const char *doc = "{\"text\": \"A creature named Pip. Keep the hat [1].\", \"domain\": \"product\","
                      " \"refs\": [{\"n\": 1, \"image\": \"refs/ref1.png\", \"box\": [1, 1, 20, 20]}]}";
    const char *path = it_test_write_tmp(t, "scen/intent.json", doc, strlen(doc));
    char args[1200], want[1200];
    char *out = NULL;
    snprintf(args, sizeof args, "intent parse --json --from '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "from.json", &out), 0);
    snprintf(want, sizeof want, "\"image\": \"%s\"", it_test_tmp(t, "scen/refs/ref1.png"));
    IT_CHECK_CONTAINS(out, want);
    IT_CHECK_CONTAINS(out, "\"domain\": \"product\"");
    IT_CHECK_CONTAINS(out, "\"domain_source\": \"override\"");
    it_free(out);
    /* --domain beats the file */
    snprintf(args, sizeof args, "intent parse --json --domain painting --from '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "from2.json", &out), 0);
    IT_CHECK_CONTAINS(out, "\"domain\": \"painting\"");
    it_free(out);
    /* the same file, with the image path relative to the current directory, fails and says which */
    const char *bad = "{\"text\": \"Keep the hat [1].\", \"refs\": [{\"n\": 1, \"image\": \"nope/x.png\", \"box\": [1, 1, 2, 2]}]}";
    path = it_test_write_tmp(t, "scen/bad.json", bad, strlen(bad));
    snprintf(args, sizeof args, "intent parse --from '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "bad.txt", &out), 1);
    snprintf(want, sizeof want, "%s", it_test_tmp(t, "scen/nope/x.png"));
    IT_CHECK_CONTAINS(out, want);
    it_free(out);
    const char *typo = "{\"txt\": \"Keep the hat.\", \"text\": \"x\"}";
    path = it_test_write_tmp(t, "scen/typo.json", typo, strlen(typo));
    snprintf(args, sizeof args, "intent parse --from '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "typo.txt", &out), 1);
    IT_CHECK_CONTAINS(out, "unknown key 'txt'");
    it_free(out);
    const char *dom = "{\"text\": \"Keep the hat.\", \"domain\": \"anime\"}";
    path = it_test_write_tmp(t, "scen/dom.json", dom, strlen(dom));
    snprintf(args, sizeof args, "intent parse --from '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "dom.txt", &out), 1);
    IT_CHECK_CONTAINS(out, "domain: expected 2d-character, portrait, product or painting");
    it_free(out);
}

/* `check --json`: a JSON report whether the file is valid or not. */
IT_TEST(intent_cli_check_json_report) {
    char *out = NULL;
    char args[1200];
    snprintf(args, sizeof args, "intent parse --json --text \"%s\" --ref 1=tests/fixtures/intent/ref_a.png:10,10,60,50 "
             "--ref 2=tests/fixtures/intent/ref_b.jpg:20,5,90,40", VINCENT);
    IT_REQUIRE(run_cmd(t, args, "v.json", &out) == 0);
    it_free(out);
    snprintf(args, sizeof args, "intent check --json '%s'", it_test_tmp(t, "v.json"));
    IT_CHECK_INT(run_cmd(t, args, "ok.json", &out), 0);
    json_error_t je;
    json_t *r = json_loads(out ? out : "", 0, &je);
    IT_REQUIRE(r != NULL);
    IT_CHECK(json_is_true(json_object_get(r, "ok")));
    IT_CHECK_INT((int)json_integer_value(json_object_get(r, "concepts")), 4);
    IT_CHECK_INT((int)json_array_size(json_object_get(r, "problems")), 0);
    json_decref(r);
    it_free(out);
    const char *bad = "{\"domain\": \"portrait\", \"subjects\": [], \"concepts\": [{\"head\": \"x\", \"level\": \"huge\"}], \"oops\": 1}";
    const char *path = it_test_write_tmp(t, "bad.json", bad, strlen(bad));
    snprintf(args, sizeof args, "intent check --json '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "bad.out", &out), 1);
    r = json_loads(out ? out : "", 0, &je);
    IT_REQUIRE(r != NULL);
    IT_CHECK(json_is_false(json_object_get(r, "ok")));
    json_t *pr = json_object_get(r, "problems");
    IT_CHECK_INT((int)json_array_size(pr), 3);
    static const char *const want[][2] = {
        {"oops", "unknown key"},
        {"concepts[0].level", "'huge' is not one of attribute, instance, image"},
        {"concepts[0].operation", "missing (one of preserve, modify, remove)"},
    };
    for (size_t k = 0; k < 3 && k < json_array_size(pr); k++) {
        IT_CHECK_STR(json_string_value(json_object_get(json_array_get(pr, k), "location")), want[k][0]);
        IT_CHECK_STR(json_string_value(json_object_get(json_array_get(pr, k), "message")), want[k][1]);
    }
    json_decref(r);
    it_free(out);
    /* a syntax error has a line/column location; a missing file none */
    path = it_test_write_tmp(t, "trunc.json", "{\"domain\": ", 11);
    snprintf(args, sizeof args, "intent check --json '%s'", path);
    IT_CHECK_INT(run_cmd(t, args, "trunc.out", &out), 1);
    IT_CHECK_CONTAINS(out, "\"location\": \"line 1, column 11\"");
    it_free(out);
    snprintf(args, sizeof args, "intent check --json '%s'", it_test_tmp(t, "missing.json"));
    IT_CHECK_INT(run_cmd(t, args, "missing.out", &out), 1);
    IT_CHECK_CONTAINS(out, "\"location\": \"\"");
    IT_CHECK_CONTAINS(out, "No such file");
    it_free(out);
}
