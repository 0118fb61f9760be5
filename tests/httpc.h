#ifndef FM_TESTS_HTTPC_H
#define FM_TESTS_HTTPC_H

#include <stddef.h>

/* A small HTTP client for tests, on libcurl. */

struct http_reply {
    long status;
    char *body; /* caller frees */
};

/**
 * Send one request. headers is NULL-terminated ("Name: value" strings) or NULL; body may be
 * NULL. Fails the test when the request cannot be sent at all.
 */
struct http_reply http_call(const char *method, const char *url, const char *const *headers,
                            const char *body);

/** The same with a body of len bytes, which may hold zero bytes. */
struct http_reply http_call_n(const char *method, const char *url, const char *const *headers,
                              const char *body, size_t len);

/**
 * Send a request without a body and return the value of the answer's header name (caller
 * frees; "" when it has none), its status in *status and the length of its body in
 * *body_len. HEAD is sent as HEAD: no body is read.
 */
char *http_header(const char *method, const char *url, const char *name, long *status,
                  size_t *body_len);

#endif
