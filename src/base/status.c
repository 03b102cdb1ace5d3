/* status.c: error context and status names. */
#include "base/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void it_err_clear(it_err *err)
{
    if (!err) return;
    err->code = IT_OK;
    err->msg[0] = '\0';
}

it_status it_err_setv(it_err *err, it_status code, const char *fmt, va_list ap)
{
    if (!err) return code;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

it_status it_err_set(it_err *err, it_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    it_err_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

it_status it_err_prefix(it_err *err, const char *fmt, ...)
{
    if (!err) return IT_ERR_INTERNAL;
    char prefix[IT_ERR_MSG_MAX];
    char old[IT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    char joined[2 * IT_ERR_MSG_MAX + 4];
    snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    snprintf(err->msg, sizeof err->msg, "%.*s", IT_ERR_MSG_MAX - 1, joined);
    return err->code;
}

const char *it_status_str(it_status code)
{
    switch (code) {
    case IT_OK: return "ok";
    case IT_ERR_NOMEM: return "out of memory";
    case IT_ERR_IO: return "i/o error";
    case IT_ERR_FORMAT: return "format error";
    case IT_ERR_ARG: return "invalid argument";
    case IT_ERR_UNSUPPORTED: return "unsupported";
    case IT_ERR_RANGE: return "out of range";
    case IT_ERR_NOT_FOUND: return "not found";
    case IT_ERR_NET: return "network error";
    case IT_ERR_STATE: return "invalid state";
    case IT_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

_Noreturn void it_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
