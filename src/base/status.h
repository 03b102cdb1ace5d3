/* status.h: result codes and the error context every fallible call fills.
 *
 * Owns: the it_status codes, the it_err message buffer, the assert macro for
 * broken invariants. Does not own logging (log.h) or process exit: library
 * code never calls exit() or abort() on bad input; it returns a negative
 * it_status and leaves a one-line, human-readable message in the it_err.
 *
 * Convention: the it_err is the first argument ("context") of a fallible
 * function; it may be NULL when the caller does not want the message. */
#ifndef IT_STATUS_H
#define IT_STATUS_H

#include <stdarg.h>
#include <stddef.h>

typedef enum it_status {
    IT_OK = 0,
    IT_ERR_NOMEM = -1,       /* an allocation failed */
    IT_ERR_IO = -2,          /* open/read/write/mmap/rename failed */
    IT_ERR_FORMAT = -3,      /* the bytes of a file or request are malformed */
    IT_ERR_ARG = -4,         /* a caller or user argument is invalid */
    IT_ERR_UNSUPPORTED = -5, /* well-formed but not something we handle */
    IT_ERR_RANGE = -6,       /* a size, index or offset is out of bounds */
    IT_ERR_NOT_FOUND = -7,   /* a named thing (key, file, tensor) is absent */
    IT_ERR_NET = -8,         /* a network call failed or timed out */
    IT_ERR_STATE = -9,       /* called in the wrong state (e.g. closed) */
    IT_ERR_INTERNAL = -10,   /* a bug of ours surfaced as an error */
} it_status;

#define IT_ERR_MSG_MAX 512

typedef struct it_err {
    it_status code;
    char msg[IT_ERR_MSG_MAX];
} it_err;

/* Clears the context to IT_OK and an empty message. */
void it_err_clear(it_err *err);

/* Records code and a printf-style message; returns code so that callers can
 * write `return it_err_set(err, IT_ERR_FORMAT, "...")`. err may be NULL. */
it_status it_err_set(it_err *err, it_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
it_status it_err_setv(it_err *err, it_status code, const char *fmt, va_list ap);

/* Prepends "prefix: " to the current message (adds context on the way up,
 * e.g. the file name). Returns the current code. */
it_status it_err_prefix(it_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Short name of a code: "format error", "out of memory", ... */
const char *it_status_str(it_status code);

/* Broken invariant: prints file:line and the expression, then aborts. Only for
 * bugs, never for bad input. Active in every build. */
#define IT_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) it_assert_fail(__FILE__, __LINE__, #cond);                \
    } while (0)
_Noreturn void it_assert_fail(const char *file, int line, const char *expr);

/* Propagate a non-OK status from an expression. */
#define IT_TRY(expr)                                                           \
    do {                                                                       \
        it_status it_try_s_ = (expr);                                          \
        if (it_try_s_ != IT_OK) return it_try_s_;                              \
    } while (0)

#endif
