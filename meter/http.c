#include "meter/http.h"

#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/apikey.h"
#include "common/buf.h"
#include "common/httpframe.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "common/queue.h"
#include "common/timeutil.h"
#include "meter/api.h"
#include "meter/keycache.h"
#include "meter/metrics.h"
#include "meter/store.h"

/* Threads that run the handlers which wait on the database (see struct route). */
#define BLOCKING_THREADS 4

struct meter_server {
    struct MHD_Daemon *daemon;
    struct meter_config cfg;
    struct meter_keycache *keys;
    struct meter_group *group;
    atomic_uint active;   /* requests between their headers and their completion */
    atomic_bool stopping; /* set by meter_server_stop: answers close their connection */
    atomic_bool started;  /* the daemon runs: before, its messages are about starting */
    /* The blocking requests waiting for a thread, and those threads. */
    struct fm_queue jobs; /* requests for the blocking threads */
    pthread_t blocking[BLOCKING_THREADS];
    int nblocking;
};

static const struct {
    unsigned status;
    const char *code;
} api_errors[] = {
    [E_BAD_REQUEST] = {400, "bad_request"},
    [E_UNAUTHORIZED] = {401, "unauthorized"},
    [E_FORBIDDEN] = {403, "forbidden"},
    [E_NOT_FOUND] = {404, "not_found"},
    [E_METHOD] = {405, "method_not_allowed"},
    [E_CONFLICT] = {409, "conflict"},
    [E_TOO_LARGE] = {413, "payload_too_large"},
    [E_MEDIA_TYPE] = {415, "unsupported_media_type"},
    [E_UNPROCESSABLE] = {422, "unprocessable"},
    [E_UNAVAILABLE] = {503, "unavailable"},
    [E_INTERNAL] = {500, "internal"},
};

/* Per-request state, in *req_cls from the first call to the completion callback. */
struct request {
    struct fm_qnode job; /* in the server's queue of blocking requests; first, see queue.h */
    struct fm_buf body;
    bool too_large;
    bool refused;           /* answered before its body was read (refuse_framing) */
    bool deferred;          /* suspended until api_answer; then its answer is sent */
    struct api_request api; /* what the handler sees, from the end of the body on */
    char params[API_PARAMS_MAX][160]; /* api.params point here */
    const struct route *rt; /* the route taken */
    int64_t started_us;
    struct reply answer; /* a deferred answer, until it is sent */
};

static struct request *request_of(const struct api_request *r)
{
    return (struct request *)((char *)r - offsetof(struct request, api));
}

void api_defer(const struct api_request *r)
{
    struct request *req = request_of(r);
    if (req->deferred) /* already suspended: it runs on a blocking thread */
        return;
    req->deferred = true;
    MHD_suspend_connection(r->conn_handle);
}

void api_answer(const struct api_request *r, struct reply answer)
{
    request_of(r)->answer = answer;
    /* libmicrohttpd calls on_request again, in the connection's own thread. */
    MHD_resume_connection(r->conn_handle);
}

struct reply reply_error(enum api_error e, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    struct fm_buf b;
    fm_buf_init(&b, 4096);
    fm_buf_printf(&b, "{\"error\":\"%s\",\"message\":", api_errors[e].code);
    fm_buf_json_string(&b, message);
    fm_buf_puts(&b, "}");
    return (struct reply){.status = api_errors[e].status, .body = fm_buf_steal(&b)};
}

struct reply reply_json(unsigned status, char *body)
{
    return (struct reply){.status = status, .body = body};
}

const char *api_header(const struct api_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn_handle, MHD_HEADER_KIND, name);
}

const char *api_query(const struct api_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn_handle, MHD_GET_ARGUMENT_KIND, name);
}

PGconn *api_db(const struct api_request *r, struct reply *refusal)
{
    struct fm_err err;
    PGconn *conn = meter_store_conn(r->cfg->conninfo, &err);
    if (conn == NULL) {
        metrics_db_error();
        fm_warn("database: %s", err.msg);
        *refusal = reply_error(E_UNAVAILABLE, "the database is unavailable; retry later");
    }
    return conn;
}

/* The key the caller presents (Authorization: Bearer <key>), or NULL; *has_id tells
 * whether its public id could be read into id. */
static const char *presented_key(const struct api_request *r, char id[APIKEY_ID_LEN + 1],
                                 bool *has_id)
{
    const char *auth = api_header(r, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return NULL;
    *has_id = apikey_id(auth + 7, id);
    return auth + 7;
}

bool api_key_cached(struct api_request *r)
{
    char id[APIKEY_ID_LEN + 1];
    bool has_id;
    if (presented_key(r, id, &has_id) == NULL || !has_id)
        return true; /* refused without the database */
    r->key_cached = r->keys != NULL && meter_keycache_get(r->keys, id, &r->key);
    return r->key_cached;
}

bool api_authenticate(const struct api_request *r, struct meter_key *key, struct reply *refusal)
{
    char id[APIKEY_ID_LEN + 1];
    bool has_id;
    const char *given = presented_key(r, id, &has_id);
    if (given == NULL) {
        *refusal = reply_error(E_UNAUTHORIZED, "an API key is required: "
                                               "Authorization: Bearer <key>");
        return false;
    }
    unsigned char hash[APIKEY_HASH_LEN];
    struct fm_err err;
    if (!has_id) {
        *refusal = reply_error(E_UNAUTHORIZED, "the API key is not valid");
        return false;
    }
    struct meter_key k;
    int found = r->key_cached;
    if (found)
        k = r->key;
    else
        found = r->keys != NULL && meter_keycache_get(r->keys, id, &k);
    if (!found) {
        /* Only a key missing from the cache costs this thread a database connection. */
        PGconn *conn = api_db(r, refusal);
        if (conn == NULL)
            return false;
        found = meter_store_find_key(conn, id, &k, &err);
        if (found < 0) {
            metrics_db_error();
            fm_warn("key lookup: %s", err.msg);
            *refusal = reply_error(E_UNAVAILABLE, "the database is unavailable; retry later");
            return false;
        }
        /* Only keys that exist are kept: a key created a moment ago must work at once. */
        if (found && r->keys != NULL)
            meter_keycache_put(r->keys, id, &k);
    }
    apikey_hash(given, hash);
    /* Compare even when the id is unknown, so that timing tells nothing. */
    static const unsigned char no_key[APIKEY_HASH_LEN];
    bool match = apikey_hash_equal(hash, found ? k.hash : no_key);
    if (!found || !match) {
        *refusal = reply_error(E_UNAUTHORIZED, "the API key is not valid");
        return false;
    }
    *key = k;
    return true;
}

const char *api_tenant(const struct api_request *r, const struct meter_key *key)
{
    const char *named = api_query(r, "tenant");
    if (named == NULL && strcmp(key->role, "tenant") == 0)
        return key->tenant;
    return named;
}

bool api_may_read(const struct meter_key *key, const char *tenant)
{
    return strcmp(key->role, "admin") == 0 ||
           (strcmp(key->role, "tenant") == 0 && strcmp(key->tenant, tenant) == 0);
}

bool api_content_type_is(const struct api_request *r, const char *want)
{
    const char *ct = api_header(r, "Content-Type");
    if (ct == NULL)
        return false;
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0 || (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' '))
        return false;
    /* Bodies are read as UTF-8: a charset parameter saying otherwise is refused. */
    for (const char *p = strchr(ct + n, ';'); p != NULL; p = strchr(p + 1, ';')) {
        const char *name = p + 1 + strspn(p + 1, " \t");
        if (strncasecmp(name, "charset=", 8) != 0)
            continue;
        const char *v = name + 8;
        bool quoted = *v == '"';
        v += quoted;
        size_t len = strcspn(v, quoted ? "\"" : "; \t");
        if (len != 5 || strncasecmp(v, "utf-8", 5) != 0)
            return false;
    }
    return true;
}

static struct reply get_healthz(const struct api_request *r)
{
    struct reply refusal;
    PGconn *conn = api_db(r, &refusal);
    if (conn == NULL)
        return refusal;
    if (meter_store_ping(conn) != 0) {
        metrics_db_error();
        meter_store_close();
        return reply_error(E_UNAVAILABLE, "the database does not answer");
    }
    return reply_json(200, strdup("{\"status\":\"ok\",\"database\":\"ok\"}"));
}

static struct reply get_metrics(const struct api_request *r)
{
    (void)r;
    struct reply out = reply_json(200, metrics_render());
    out.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return out;
}

/* The API: a path pattern ('*' matches one segment, handed to the handler in params) and
 * a handler per method. A blocking handler waits on the database: it runs on one of the
 * server's blocking threads while its connection is suspended, so that a slow report never
 * holds up the connections that share its polling thread. The others run on the polling
 * thread (records hand their waiting to the group commit, metrics read memory), unless
 * their caller's key has to be looked up. */
static const struct route {
    const char *method;
    const char *pattern;
    struct reply (*handler)(const struct api_request *r);
    bool blocking;
} routes[] = {
    {"POST", "/v1/records", api_post_records, false},
    {"GET", "/healthz", get_healthz, true},
    {"GET", "/metrics", get_metrics, false},
    {"GET", "/v1/usage", api_get_usage, true},
    {"POST", "/v1/invoices", api_post_invoices, true},
    {"GET", "/v1/invoices", api_list_invoices, true},
    {"GET", "/v1/invoices/*", api_get_invoice, true},
    {"POST", "/v1/invoices/*/finalize", api_finalize_invoice, true},
    {"GET", "/v1/compare", api_get_compare, true},
};

/* Match url against pattern, collecting the '*' segments. */
static bool path_matches(const char *pattern, const char *url, const char **params,
                         char storage[API_PARAMS_MAX][160])
{
    int n = 0;
    while (*pattern && *url) {
        if (*pattern == '*') {
            size_t len = strcspn(url, "/");
            if (len == 0 || len >= sizeof storage[0] || n == API_PARAMS_MAX)
                return false;
            memcpy(storage[n], url, len);
            storage[n][len] = '\0';
            params[n] = storage[n];
            n++;
            pattern++;
            url += len;
        } else if (*pattern++ != *url++) {
            return false;
        }
    }
    return *pattern == '\0' && *url == '\0';
}

/* The route for method and url, filling params; NULL when none, and then the methods the
 * path takes (a 405's Allow header, "GET, HEAD, POST") into allow, "" when none would match
 * it. HEAD takes GET's route: libmicrohttpd sends the headers alone. */
static const struct route *route_find(const char *method, const char *url,
                                      const char **params, char storage[API_PARAMS_MAX][160],
                                      char allow[API_ALLOW_LEN])
{
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    bool get = false, post = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_matches(routes[i].pattern, url, params, storage))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        get |= strcmp(routes[i].method, "GET") == 0;
        post |= strcmp(routes[i].method, "POST") == 0;
    }
    snprintf(allow, API_ALLOW_LEN, "%s%s%s", get ? "GET, HEAD" : "", get && post ? ", " : "",
             post ? "POST" : "");
    return NULL;
}

/* What route() finds wrong in a query's arguments: the first argument refused, and why. */
struct query_check {
    const char *bad, *why;
    const char *seen[64]; /* the names met so far (the first 64) */
    size_t nseen;
};

/* An argument whose name or value holds a zero byte, %00, which fm_http_unescape leaves as
 * it was written; or one given twice, which api_query would read as its first. server=
 * alone names a list. */
static enum MHD_Result check_argument(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct query_check *q = cls;
    (void)kind;
    if (strstr(key, "%00") != NULL || (value != NULL && strstr(value, "%00") != NULL)) {
        q->bad = key;
        q->why = "may not contain a zero byte (%00)";
        return MHD_NO;
    }
    if (strcmp(key, "server") == 0)
        return MHD_YES;
    for (size_t i = 0; i < q->nseen; i++)
        if (strcmp(q->seen[i], key) == 0) {
            q->bad = key;
            q->why = "given twice";
            return MHD_NO;
        }
    if (q->nseen < sizeof q->seen / sizeof q->seen[0])
        q->seen[q->nseen++] = key;
    return MHD_YES;
}

/* The route of req, its params filled; NULL with *refusal (404, 405, or 400 for a query
 * argument that a zero byte would cut short or that is given twice) when none. */
static const struct route *route(struct request *req, struct reply *refusal)
{
    struct api_request *r = &req->api;
    char allow[API_ALLOW_LEN];
    const struct route *rt = route_find(r->method, r->url, r->params, req->params, allow);
    struct query_check q = {0};
    if (rt == NULL && allow[0] != '\0') {
        *refusal = reply_error(E_METHOD, "%s is not allowed on %s", r->method, r->url);
        memcpy(refusal->allow, allow, sizeof allow);
    } else if (rt == NULL) {
        *refusal = reply_error(E_NOT_FOUND, "no such endpoint");
    } else if (MHD_get_connection_values(r->conn_handle, MHD_GET_ARGUMENT_KIND,
                                           check_argument, &q) >= 0 &&
               q.bad != NULL) {
        *refusal = reply_error(E_BAD_REQUEST, "%s: %s", q.bad, q.why);
        rt = NULL;
    }
    return rt;
}

/* A blocking thread: runs the queued requests' handlers and answers them, until the
 * queue is closed and empty. */
static void *blocking_run(void *arg)
{
    struct meter_server *srv = arg;
    struct fm_qnode *job;
    while ((job = fm_queue_take(&srv->jobs, NULL, NULL)) != NULL) {
        struct request *req = (struct request *)job;
        struct reply answer = req->rt->handler(&req->api);
        meter_store_release(); /* the request's database connection, if it took one */
        if (answer.status != 0) /* else it handed its answer on (REPLY_LATER) */
            api_answer(&req->api, answer);
    }
    return NULL;
}

/* Hand a suspended request to the blocking threads; false once they stopped. */
static bool blocking_submit(struct meter_server *srv, struct request *req)
{
    return fm_queue_push(&srv->jobs, &req->job);
}

/* Answer what was queued, then stop the blocking threads. */
static void blocking_stop(struct meter_server *srv)
{
    fm_queue_close(&srv->jobs);
    for (int i = 0; i < srv->nblocking; i++)
        pthread_join(srv->blocking[i], NULL);
    srv->nblocking = 0;
}

/* Queue r on c and count it under the route it took (NULL: none) since started_us. */
static enum MHD_Result send_reply(struct MHD_Connection *c, const struct meter_server *srv,
                                  struct reply r, const struct route *rt, int64_t started_us)
{
    if (r.body == NULL) /* only when memory ran out building it */
        r = (struct reply){
            .status = 500,
            .body = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}")};
    metrics_request(rt ? rt->method : NULL, rt ? rt->pattern : NULL, r.status,
                    fm_mono_us() - started_us);
    if (r.body == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type",
                            r.content_type ? r.content_type : "application/json");
    if (r.allow[0] != '\0')
        MHD_add_response_header(resp, "Allow", r.allow);
    if (r.status == 401) /* how to authenticate (RFC 6750) */
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    /* While stopping, a keep-alive client must not slip new requests into the drain. */
    if (atomic_load(&srv->stopping))
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The 413 for a body over the limit, counted under the route it was meant for. */
static enum MHD_Result send_too_large(struct MHD_Connection *c, const struct meter_server *srv,
                                      const char *method, const char *url)
{
    int64_t started = fm_mono_us();
    char storage[API_PARAMS_MAX][160];
    const char *params[API_PARAMS_MAX];
    char allow[API_ALLOW_LEN];
    const struct route *rt = route_find(method, url, params, storage, allow);
    return send_reply(c, srv, reply_error(E_TOO_LARGE, "the request body is too large"), rt,
                      started);
}

/* A body meterd would not read as its sender meant (see common/httpframe.h), refused
 * before it is read. Status 0 when there is none. */
static struct reply refuse_framing(struct MHD_Connection *c)
{
    char why[256];
    unsigned status = fm_http_framing_refused(c, why, sizeof why);
    if (status == 0)
        return (struct reply){0};
    return reply_error(status == MHD_HTTP_BAD_REQUEST ? E_BAD_REQUEST : E_MEDIA_TYPE, "%s",
                       why);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)version;
    struct meter_server *srv = cls;
    struct request *req = *req_cls;
    if (req == NULL) {
        req = calloc(1, sizeof *req);
        if (req == NULL)
            return MHD_NO;
        fm_buf_init(&req->body, srv->cfg.body_limit);
        *req_cls = req;
        atomic_fetch_add(&srv->active, 1);
        struct reply refused = refuse_framing(c);
        if (refused.status != 0) {
            req->refused = true;
            return send_reply(c, srv, refused, NULL, fm_mono_us());
        }
        /* Refuse a declared oversized body before reading it. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->cfg.body_limit) {
            req->too_large = true;
            return send_too_large(c, srv, method, url);
        }
        return MHD_YES;
    }
    if (req->refused) { /* its answer is queued: the body is not read */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!req->too_large && fm_buf_append(&req->body, upload_data, *upload_size) != 0)
            req->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->too_large)
        return send_too_large(c, srv, method, url);
    if (req->deferred) { /* resumed: the answer is in */
        struct reply answer = req->answer;
        req->answer.body = NULL;
        return send_reply(c, srv, answer, req->rt, req->started_us);
    }
    req->api = (struct api_request){
        .cfg = &srv->cfg,
        .keys = srv->keys,
        .group = srv->group,
        .conn_handle = c,
        .method = method,
        .url = url,
        .body = req->body.data ? req->body.data : "",
        .body_len = req->body.len,
    };
    req->started_us = fm_mono_us();
    struct reply answer;
    req->rt = route(req, &answer);
    /* A key the cache does not hold is looked up in the database: away from this thread. */
    if (req->rt != NULL && (req->rt->blocking || !api_key_cached(&req->api))) {
        api_defer(&req->api);
        if (!blocking_submit(srv, req))
            api_answer(&req->api, reply_error(E_UNAVAILABLE, "meterd is stopping; retry later"));
        return MHD_YES;
    }
    if (req->rt != NULL)
        answer = req->rt->handler(&req->api);
    meter_store_release(); /* the request's database connection, if it took one */
    if (answer.status == 0) /* REPLY_LATER */
        return MHD_YES;
    return send_reply(c, srv, answer, req->rt, req->started_us);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct meter_server *srv = cls;
    struct request *req = *req_cls;
    if (req == NULL)
        return;
    fm_buf_free(&req->body);
    free(req->answer.body); /* a deferred answer the client left before */
    free(req);
    *req_cls = NULL;
    atomic_fetch_sub(&srv->active, 1);
}

/* One polling thread a core: a request that waits for the database does not hold its
 * thread, so more threads than cores only add wake-ups. On two cores, 2 threads served
 * 6,700-7,400 one-record requests a second against 5,500-6,000 with 8, in alternating runs. */
static unsigned default_threads(void)
{
    /* The cores this process may run on (taskset, cpusets), else those online. */
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                         : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

void meter_config_defaults(struct meter_config *cfg)
{
    *cfg = (struct meter_config){
        .listen_addr = "127.0.0.1",
        .port = 8080,
        .conninfo = "",
        .body_limit = 8u << 20,
        .connection_limit = 1024,
        .per_ip_limit = 0,
        .timeout_s = 30,
        .key_cache_ms = 30000,
        .threads = default_threads(),
    };
}

/* libmicrohttpd's own messages: mostly about requests it refused itself (malformed ones,
 * which it answers with 400), sometimes about the server (a failed accept, no thread). They
 * are warnings, but at most one a second is written, with a count of those left out, so
 * that a client sending garbage cannot flood the log. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void on_mhd_message(void *cls, const char *fmt, va_list ap)
{
    struct meter_server *srv = cls;
    static atomic_llong last_s, left_out;
    if (!atomic_load(&srv->started)) {
        /* A daemon that cannot start is reported once, by meter_server_start: libmicrohttpd's
         * own words (it names port 0 for a busy address) are for debugging only. */
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        msg[strcspn(msg, "\r\n")] = '\0';
        fm_debug("http: %s", msg);
        return;
    }
    long long now = (long long)time(NULL), seen = atomic_load(&last_s);
    if (FM_LOG_WARN > fm_log_threshold || seen == now ||
        !atomic_compare_exchange_strong(&last_s, &seen, now)) {
        atomic_fetch_add(&left_out, 1);
        return;
    }
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    long long skipped = atomic_exchange(&left_out, 0);
    if (skipped > 0)
        fm_warn("http: %s (%lld more left out since the last one written)", msg, skipped);
    else
        fm_warn("http: %s", msg);
}
#pragma GCC diagnostic pop

/* Stop the blocking threads and the group, and free what s holds but its daemon. */
static void server_free(struct meter_server *s)
{
    blocking_stop(s);
    meter_group_free(s->group);
    meter_store_close_all();
    meter_keycache_free(s->keys);
    fm_queue_destroy(&s->jobs);
    free(s);
}

int meter_server_start(const struct meter_config *cfg, struct meter_server **out,
                       struct fm_err *err)
{
    const char *host = cfg->listen_addr ? cfg->listen_addr : "127.0.0.1";
    struct sockaddr_storage addr;
    if (fm_sockaddr_of(host, cfg->port, &addr) == 0)
        return fm_err_set(err, "listen address %s: expected an IPv4 or IPv6 address", host);
    /* An IPv6 socket takes IPv6 alone. */
    unsigned family = addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0;
    /* glibc gives threads up to eight malloc arenas a core, and every request thread's
     * arena keeps the peak of the batches it parsed (a few MB of cJSON for 1,000 records):
     * resident memory grew with the threads that happened to serve a batch. An arena a
     * core holds it at a third less, with no loss of throughput measured. (A setting of
     * the whole process: a server is what makes its threads.) */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cores > 0 ? (int)cores : 1);
    struct meter_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return fm_err_set(err, "out of memory");
    s->cfg = *cfg;
    fm_queue_init(&s->jobs);
    for (int i = 0; i < BLOCKING_THREADS; i++) {
        if (pthread_create(&s->blocking[i], NULL, blocking_run, s) != 0)
            break;
        pthread_setname_np(s->blocking[i], "meterd-blocking");
        s->nblocking++;
    }
    s->group = meter_group_new(s->cfg.conninfo);
    if (s->nblocking == 0 || s->group == NULL ||
        meter_keycache_new(cfg->key_cache_ms, &s->keys) != 0) {
        server_free(s);
        return fm_err_set(err, "out of memory or threads");
    }
    /* A few threads serve every connection, each polling its share. A request that waits
     * for its group's commit is suspended rather than holding its thread, so the other
     * clients' requests go on joining the next group meanwhile. MHD_USE_ITC: resuming a
     * connection and quiescing the daemon need it. poll, not epoll: libmicrohttpd 0.9.75
     * quiesces a pool on epoll with a race that can abort the process. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC | family;
    /* One thread is the polling thread itself: no pool then. */
    struct MHD_OptionItem pool[] = {{MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, NULL},
                                    {MHD_OPTION_END, 0, NULL}};
    if (cfg->threads <= 1)
        pool[0].option = MHD_OPTION_END;
    errno = 0;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_message, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_ARRAY, pool,
        MHD_OPTION_CONNECTION_LIMIT, cfg->connection_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK,
        fm_http_unescape, NULL, MHD_OPTION_END);
    int why = errno; /* what the socket calls said, when they failed */
    atomic_store(&s->started, s->daemon != NULL);
    if (s->daemon == NULL) {
        server_free(s);
        char where[FM_HOST_PORT_BUFSZ];
        fm_host_port(host, cfg->port, where);
        return fm_err_set(err, "cannot listen on %s: %s", where,
                          why ? strerror(why) : "not allowed, or no threads");
    }
    *out = s;
    return 0;
}

uint16_t meter_server_port(const struct meter_server *s)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/* Wait until no request is in flight, or until deadline_us. */
static void drain(const struct meter_server *s, int64_t deadline_us)
{
    while (atomic_load(&s->active) > 0 && fm_mono_us() < deadline_us)
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
}

void meter_server_stop(struct meter_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    /* Quiescing stops the accepting but keeps the connections; stopping the daemon would
     * close them with their requests half done. The listening socket is ours to close, and
     * only once the daemon's threads are gone. */
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    drain(s, fm_mono_us() + (int64_t)METER_DRAIN_MAX_S * 1000000);
    /* The writers and the blocking threads answer what was handed to them before they stop:
     * no connection may stay suspended when the daemon stops. A request that came on a
     * keep-alive connection meanwhile is answered at once (stored, or 503); let those
     * answers go out too. */
    meter_group_stop(s->group);
    blocking_stop(s);
    drain(s, fm_mono_us() + 1000000);
    MHD_stop_daemon(s->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    server_free(s);
}
