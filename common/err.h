#ifndef FM_ERR_H
#define FM_ERR_H

#include <stddef.h>

/*
 * An optional error message buffer, passed by callers that want to know why a call failed.
 * Functions take `struct fm_err *err` and accept NULL when the caller does not care.
 */
struct fm_err {
    char msg[512];
};

/**
 * Write a printf-style message into err (no-op when err is NULL). Always returns -1 so that
 * `return fm_err_set(err, "...")` reads as a failure return.
 */
int fm_err_set(struct fm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Prepend "prefix: " to the message already in err (no-op when err is NULL). */
void fm_err_prefix(struct fm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
