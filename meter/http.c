#include "meter/http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/apikey.h"
#include "common/buf.h"
#include "common/log.h"
#include "meter/record.h"
#include "meter/store.h"

#define RECORDS_PER_REQUEST_MAX 10000

struct meter_server {
    struct MHD_Daemon *daemon;
    struct meter_config cfg;
};

/* Every error the API answers with; the HTTP status of each is chosen here and only here. */
enum api_error {
    E_BAD_REQUEST,
    E_UNAUTHORIZED,
    E_FORBIDDEN,
    E_NOT_FOUND,
    E_METHOD,
    E_TOO_LARGE,
    E_MEDIA_TYPE,
    E_UNAVAILABLE,
    E_INTERNAL,
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
    [E_TOO_LARGE] = {413, "payload_too_large"},
    [E_MEDIA_TYPE] = {415, "unsupported_media_type"},
    [E_UNAVAILABLE] = {503, "unavailable"},
    [E_INTERNAL] = {500, "internal"},
};

/* What a handler answers: a status and a JSON body (owned). */
struct reply {
    unsigned status;
    char *body;
};

/* Per-request state, in *req_cls from the first call to the completion callback. */
struct request {
    struct fm_buf body;
    bool too_large;
};

static void json_escape(struct fm_buf *b, const char *s)
{
    fm_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fm_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            fm_buf_printf(b, "\\u%04x", *p);
        else
            fm_buf_append(b, p, 1);
    }
    fm_buf_puts(b, "\"");
}

static struct reply reply_error(enum api_error e, const char *message)
{
    struct fm_buf b;
    fm_buf_init(&b, 4096);
    fm_buf_printf(&b, "{\"error\":\"%s\",\"message\":", api_errors[e].code);
    json_escape(&b, message);
    fm_buf_puts(&b, "}");
    return (struct reply){api_errors[e].status, fm_buf_steal(&b)};
}

static struct reply reply_json(unsigned status, char *body)
{
    return (struct reply){status, body};
}

/* The caller's key, checked against the database; false with *refusal set when refused. */
static bool authenticate(struct MHD_Connection *c, PGconn *conn, struct meter_key *key,
                         struct reply *refusal)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        *refusal = reply_error(E_UNAUTHORIZED, "an API key is required: "
                                               "Authorization: Bearer <key>");
        return false;
    }
    const char *given = auth + 7;
    char id[APIKEY_ID_LEN + 1];
    unsigned char hash[APIKEY_HASH_LEN];
    struct fm_err err;
    if (!apikey_id(given, id)) {
        *refusal = reply_error(E_UNAUTHORIZED, "the API key is not valid");
        return false;
    }
    int found = meter_store_find_key(conn, id, key, &err);
    if (found < 0) {
        fm_warn("key lookup: %s", err.msg);
        *refusal = reply_error(E_UNAVAILABLE, "the database is unavailable; retry later");
        return false;
    }
    apikey_hash(given, hash);
    /* Compare even when the id is unknown, so that timing tells nothing. */
    static const unsigned char no_key[APIKEY_HASH_LEN];
    bool match = apikey_hash_equal(hash, found ? key->hash : no_key);
    if (!found || !match) {
        *refusal = reply_error(E_UNAUTHORIZED, "the API key is not valid");
        return false;
    }
    return true;
}

static bool content_type_is(struct MHD_Connection *c, const char *want)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL)
        return false;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The records of a JSON array or of NDJSON lines. A line of NDJSON that does not parse is
 * that record's error; a JSON body that does not parse is the request's. */
struct batch {
    cJSON **items;  /* parsed records, NULL where a line did not parse */
    size_t n;
    cJSON *array;   /* the parsed array, for a JSON body */
};

static void batch_free(struct batch *b)
{
    if (b->array == NULL)
        for (size_t i = 0; i < b->n; i++)
            cJSON_Delete(b->items[i]);
    cJSON_Delete(b->array);
    free(b->items);
}

static int batch_parse(const char *body, size_t len, bool ndjson, struct batch *out,
                       const char **why)
{
    struct batch b = {0};
    if (!ndjson) {
        b.array = cJSON_ParseWithLength(body, len);
        if (b.array == NULL || !cJSON_IsArray(b.array)) {
            *why = "the body is not a JSON array of records";
            goto fail;
        }
        b.n = (size_t)cJSON_GetArraySize(b.array);
        if (b.n > RECORDS_PER_REQUEST_MAX) {
            *why = "more than 10000 records in one request";
            goto fail;
        }
        b.items = calloc(b.n ? b.n : 1, sizeof *b.items);
        if (b.items == NULL)
            goto oom;
        size_t i = 0;
        for (cJSON *it = b.array->child; it; it = it->next)
            b.items[i++] = it;
        *out = b;
        return 0;
    }
    size_t cap = 64;
    b.items = calloc(cap, sizeof *b.items);
    if (b.items == NULL)
        goto oom;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(body + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t s = at;
        while (s < end && (body[s] == ' ' || body[s] == '\t' || body[s] == '\r'))
            s++;
        if (s < end) {
            if (b.n == RECORDS_PER_REQUEST_MAX) {
                *why = "more than 10000 records in one request";
                goto fail;
            }
            if (b.n == cap) {
                cJSON **grown = realloc(b.items, 2 * cap * sizeof *b.items);
                if (grown == NULL)
                    goto oom;
                b.items = grown;
                cap *= 2;
            }
            b.items[b.n++] = cJSON_ParseWithLength(body + s, end - s);
        }
        at = end + 1;
    }
    *out = b;
    return 0;
oom:
    *why = "out of memory";
fail:
    batch_free(&b);
    return -1;
}

static struct reply post_records(const struct meter_server *srv, struct MHD_Connection *c,
                                 const struct request *req)
{
    struct fm_err err;
    PGconn *conn = meter_store_conn(srv->cfg.conninfo, &err);
    if (conn == NULL) {
        fm_warn("database: %s", err.msg);
        return reply_error(E_UNAVAILABLE, "the database is unavailable; retry later");
    }
    struct meter_key key;
    struct reply refusal;
    if (!authenticate(c, conn, &key, &refusal))
        return refusal;
    if (strcmp(key.role, "ingest") != 0 && strcmp(key.role, "admin") != 0)
        return reply_error(E_FORBIDDEN, "records need an ingest or admin key");
    bool ndjson = content_type_is(c, "application/x-ndjson");
    if (!ndjson && !content_type_is(c, "application/json"))
        return reply_error(E_MEDIA_TYPE, "Content-Type must be application/json (an array of "
                                         "records) or application/x-ndjson");

    struct batch batch;
    const char *why = NULL;
    if (batch_parse(req->body.data ? req->body.data : "", req->body.len, ndjson, &batch,
                    &why) != 0)
        return reply_error(E_BAD_REQUEST, why);

    struct reply r;
    struct meter_record *recs = calloc(batch.n ? batch.n : 1, sizeof *recs);
    size_t *origin = calloc(batch.n ? batch.n : 1, sizeof *origin);
    enum meter_outcome *outcomes = calloc(batch.n ? batch.n : 1, sizeof *outcomes);
    struct fm_buf rejected;
    fm_buf_init(&rejected, 8u << 20);
    size_t valid = 0, nrejected = 0;
    if (recs == NULL || origin == NULL || outcomes == NULL) {
        r = reply_error(E_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < batch.n; i++) {
        struct fm_err rerr;
        if (batch.items[i] == NULL)
            fm_err_set(&rerr, "record: not valid JSON");
        else if (meter_record_parse(batch.items[i], &recs[valid], &rerr) == 0) {
            origin[valid++] = i;
            continue;
        }
        fm_buf_printf(&rejected, "%s{\"index\":%zu,\"error\":", nrejected++ ? "," : "", i);
        json_escape(&rejected, rerr.msg);
        fm_buf_puts(&rejected, "}");
    }
    if (valid > 0 && meter_store_records(conn, recs, valid, outcomes, &err) != 0) {
        fm_warn("storing %zu records: %s", valid, err.msg);
        if (PQstatus(conn) != CONNECTION_OK)
            meter_store_close();
        r = reply_error(E_UNAVAILABLE, "the records could not be stored; retry later");
        goto out;
    }
    size_t accepted = 0, duplicates = 0;
    for (size_t i = 0; i < valid; i++) {
        if (outcomes[i] == METER_ACCEPTED)
            accepted++;
        else if (outcomes[i] == METER_DUPLICATE)
            duplicates++;
        else
            fm_buf_printf(&rejected,
                          "%s{\"index\":%zu,\"error\":\"id: already stored with different "
                          "content (conflict)\"}",
                          nrejected++ ? "," : "", origin[i]);
    }
    struct fm_buf out;
    fm_buf_init(&out, 9u << 20);
    fm_buf_printf(&out, "{\"accepted\":%zu,\"duplicates\":%zu,\"rejected\":[%s]}", accepted,
                  duplicates, rejected.data ? rejected.data : "");
    char *body = fm_buf_steal(&out);
    r = body ? reply_json(200, body) : reply_error(E_INTERNAL, "reply too large");
out:
    for (size_t i = 0; i < valid; i++)
        meter_record_clear(&recs[i]);
    free(recs);
    free(origin);
    free(outcomes);
    fm_buf_free(&rejected);
    batch_free(&batch);
    return r;
}

static struct reply get_healthz(const struct meter_server *srv)
{
    struct fm_err err;
    PGconn *conn = meter_store_conn(srv->cfg.conninfo, &err);
    if (conn == NULL || meter_store_ping(conn) != 0) {
        if (conn)
            meter_store_close();
        return reply_error(E_UNAVAILABLE, "the database does not answer");
    }
    return reply_json(200, strdup("{\"status\":\"ok\",\"database\":\"ok\"}"));
}

static struct reply route(const struct meter_server *srv, struct MHD_Connection *c,
                          const char *method, const char *url, const struct request *req)
{
    if (strcmp(url, "/v1/records") == 0) {
        if (strcmp(method, "POST") != 0)
            return reply_error(E_METHOD, "use POST for /v1/records");
        return post_records(srv, c, req);
    }
    if (strcmp(url, "/healthz") == 0) {
        if (strcmp(method, "GET") != 0)
            return reply_error(E_METHOD, "use GET for /healthz");
        return get_healthz(srv);
    }
    return reply_error(E_NOT_FOUND, "no such endpoint");
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply r)
{
    if (r.body == NULL) /* only when memory ran out building it */
        r = (struct reply){500, strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}")};
    if (r.body == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)version;
    const struct meter_server *srv = cls;
    struct request *req = *req_cls;
    if (req == NULL) {
        req = calloc(1, sizeof *req);
        if (req == NULL)
            return MHD_NO;
        fm_buf_init(&req->body, srv->cfg.body_limit);
        *req_cls = req;
        /* Refuse a declared oversized body before reading it. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->cfg.body_limit) {
            req->too_large = true;
            return send_reply(c, reply_error(E_TOO_LARGE, "the request body is too large"));
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!req->too_large && fm_buf_append(&req->body, upload_data, *upload_size) != 0)
            req->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->too_large)
        return send_reply(c, reply_error(E_TOO_LARGE, "the request body is too large"));
    return send_reply(c, route(srv, c, method, url, req));
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct request *req = *req_cls;
    if (req == NULL)
        return;
    fm_buf_free(&req->body);
    free(req);
    *req_cls = NULL;
}

void meter_config_defaults(struct meter_config *cfg)
{
    *cfg = (struct meter_config){
        .listen_addr = "127.0.0.1",
        .port = 8080,
        .conninfo = "",
        .threads = 4,
        .body_limit = 8u << 20,
        .connection_limit = 1024,
        .per_ip_limit = 0,
        .timeout_s = 30,
    };
}

int meter_server_start(const struct meter_config *cfg, struct meter_server **out,
                       struct fm_err *err)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    const char *host = cfg->listen_addr ? cfg->listen_addr : "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return fm_err_set(err, "listen address %s: expected an IPv4 address", host);
    struct meter_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return fm_err_set(err, "out of memory");
    s->cfg = *cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads ? cfg->threads : 1,
        MHD_OPTION_CONNECTION_LIMIT, cfg->connection_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (s->daemon == NULL) {
        free(s);
        return fm_err_set(err, "cannot listen on %s:%u (in use, or not allowed)", host,
                          (unsigned)cfg->port);
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

void meter_server_stop(struct meter_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    meter_store_close_all();
    free(s);
}
