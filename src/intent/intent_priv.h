/* intent_priv.h: declarations shared by the files of src/intent only. */
#ifndef IT_INTENT_PRIV_H
#define IT_INTENT_PRIV_H

#include "intent/hierarchy.h"

/* The validator behind it_intent_validate. quiet_missing: NULL required
 * strings are not reported (the JSON reader has reported the missing keys);
 * prior_problems/prior_first: problems the caller already found, counted into
 * the returned message. */
it_status it_intent_validate_ex(it_err *err, it_intent *in, const it_intent_check_opts *opts,
                                it_buf *problems, int quiet_missing, int prior_problems,
                                const char *prior_first);

#endif
