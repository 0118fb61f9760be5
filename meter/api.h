#ifndef FM_METER_API_H
#define FM_METER_API_H

/*
 * What meterd's endpoint handlers share: the request as a handler sees it, replies, errors,
 * and authentication. Each endpoint lives in a meter/api_*.c file; meter/http.c routes to
 * them and is the only place that talks to libmicrohttpd.
 */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "meter/http.h"
#include "meter/store.h"

/* Every error the API answers with; the HTTP status of each is chosen in http.c only. */
enum api_error {
    E_BAD_REQUEST,
    E_UNAUTHORIZED,
    E_FORBIDDEN,
    E_NOT_FOUND,
    E_METHOD,
    E_CONFLICT,
    E_TOO_LARGE,
    E_MEDIA_TYPE,
    E_UNPROCESSABLE,
    E_UNAVAILABLE,
    E_INTERNAL,
};

/* What a handler answers: a status and a body (owned), JSON unless content_type says. */
/* Room for a 405's Allow header, "GET, HEAD, POST". */
#define API_ALLOW_LEN 24

struct reply {
    unsigned status;
    char *body;
    const char *content_type; /* static; NULL for application/json */
    char allow[API_ALLOW_LEN]; /* a 405's Allow header: the path's methods */
};

#define API_PARAMS_MAX 2

struct meter_keycache;

struct api_request {
    const struct meter_config *cfg;
    struct meter_keycache *keys; /* the server's key cache, shared by its threads */
    struct meter_group *group;   /* the server's group commit for records */
    void *conn_handle; /* the libmicrohttpd connection, for headers and query arguments */
    const char *method;
    const char *url;
    const char *body; /* NUL-terminated; "" when there is none */
    size_t body_len;
    const char *params[API_PARAMS_MAX]; /* the path segments matched by '*' in the route */
    bool key_cached; /* api_key_cached found the presented key's id: it is in key */
    struct meter_key key;
};

/*
 * A handler that would wait (for a commit) answers later instead of holding its thread:
 * it calls api_defer, hands its work to another thread and returns REPLY_LATER. That thread
 * calls api_answer once; the connection waits meanwhile without a thread of its own.
 */
#define REPLY_LATER ((struct reply){.status = 0})

/** Mark r as answered later (by api_answer); call before handing the work on. A request
 *  already running on a blocking thread is marked already. */
void api_defer(const struct api_request *r);

/** Answer a deferred request, from any thread, exactly once. Takes answer's body. */
void api_answer(const struct api_request *r, struct reply answer);

/** An error reply {"error": code, "message": ...}; the message is printf-style. */
struct reply reply_error(enum api_error e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** A 2xx reply owning body (a JSON text from malloc); NULL body becomes a 500. */
struct reply reply_json(unsigned status, char *body);

/** A request header's value, or NULL. */
const char *api_header(const struct api_request *r, const char *name);

/** A query-string argument's value, or NULL. */
const char *api_query(const struct api_request *r, const char *name);

/** True when the Content-Type is want, with no charset parameter or utf-8. */
bool api_content_type_is(const struct api_request *r, const char *want);

/**
 * This worker thread's database connection, or NULL with *refusal set to a 503.
 */
PGconn *api_db(const struct api_request *r, struct reply *refusal);

/**
 * Check the caller's API key (Authorization: Bearer <key>).
 * @return true with *key filled; false with *refusal set (401, or 503 when the database
 *         cannot be asked)
 */
bool api_authenticate(const struct api_request *r, struct meter_key *key,
                      struct reply *refusal);

/** Whether api_authenticate can check r's key without the database: no key, a malformed
 *  one, or one the cache holds (kept in r for api_authenticate, which then does not look
 *  it up again). */
bool api_key_cached(struct api_request *r);

/** The tenant the query names (tenant=), else a tenant key's own; NULL when an admin key
 *  names none. */
const char *api_tenant(const struct api_request *r, const struct meter_key *key);

/** May this key read tenant's data? Admin keys read every tenant, tenant keys their own. */
bool api_may_read(const struct meter_key *key, const char *tenant);

/* The endpoints. */
struct reply api_post_records(const struct api_request *r);
struct reply api_post_invoices(const struct api_request *r);
struct reply api_list_invoices(const struct api_request *r);
struct reply api_get_invoice(const struct api_request *r);
struct reply api_finalize_invoice(const struct api_request *r);
struct reply api_get_compare(const struct api_request *r);
struct reply api_get_usage(const struct api_request *r);

#endif
