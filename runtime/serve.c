#include "common/names.h"
#include "runtime/serve.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/httpframe.h"
#include "common/netaddr.h"
#include "common/timeutil.h"
#include "runtime/invoke.h"
#include "runtime/pipeline.h"
#include "runtime/record.h"

#define BODY_MAX RT_OUTPUT_MAX
/* Request bodies held at once, all connections together: many slow uploads must not take
 * the runtime's memory (each may hold BODY_MAX). One beyond it is answered 503. */
#define BODIES_HELD_MAX (8 * (size_t)BODY_MAX)
#define PREFIX "/invoke/"

struct rt_server {
    struct rt_server_config cfg;
    struct MHD_Daemon *daemon;
    char host[FM_HOST_BUFSZ];
    uint16_t port;
    atomic_int in_flight; /* requests that run something, until their answer is sent */
    atomic_bool stopping; /* SIGTERM: no new runs, and connections close after an answer */
    atomic_size_t held;   /* bytes of request bodies held, up to BODIES_HELD_MAX */
};

/* Per request, in *req_cls: created on the first call, freed in request_done. */
struct request {
    struct fm_buf body;
    bool too_large;
    bool refused; /* answered before its body was read (fm_http_framing_refused) */
    bool counted; /* in in_flight: it runs something */
    size_t held;  /* its part of the server's held bytes */
    bool crowded; /* its body did not fit under BODIES_HELD_MAX */
};

/* What an invocation or pipeline run came to, for the answer. */
struct outcome {
    enum rt_status st;            /* of the call itself */
    struct rt_invoke_result res;  /* the (last) invocation */
    const char *step;             /* the pipeline step that failed, or NULL */
    const char *correlation_id;
    int64_t duration_us;
    bool cold_start;
    bool no_retry; /* a pipeline refused after some of its steps ran */
    char message[600];
};

/* The one place an outcome becomes an HTTP status and an error code. */
static unsigned http_status(const struct outcome *o, const char **code)
{
    switch (o->st) {
    case RT_OK:
        break;
    case RT_EBUSY:
        *code = "concurrency_limit";
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case RT_EFULL:
    case RT_EIO:
        *code = "metering_unavailable";
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    default:
        *code = "internal";
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    switch (o->res.run.status) {
    case RT_RUN_OK:
        *code = NULL;
        return MHD_HTTP_OK;
    case RT_RUN_TIMEOUT:
        *code = "timeout";
        return MHD_HTTP_GATEWAY_TIMEOUT;
    default:
        *code = "function_failed";
        return MHD_HTTP_BAD_GATEWAY;
    }
}

static enum MHD_Result send_response(struct MHD_Connection *conn, unsigned status,
                                     const char *body, size_t len, const char *type,
                                     const char *const *headers)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    for (size_t i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  const char *code, const char *message,
                                  const char *const *headers)
{
    struct fm_buf b;
    fm_buf_init(&b, 4096);
    fm_buf_printf(&b, "{\"error\":\"%s\",\"message\":", code);
    rt_json_string(&b, message, strlen(message));
    fm_buf_puts(&b, "}");
    enum MHD_Result ret =
        b.failed ? MHD_NO
                 : send_response(conn, status, b.data, b.len, "application/json", headers);
    fm_buf_free(&b);
    return ret;
}

static void describe_failure(struct outcome *o, const char *what)
{
    const struct rt_exec_result *r = &o->res.run;
    snprintf(o->message, sizeof o->message, "%s%s%s: status %s (exit code %d)%s%.256s", what,
             o->step ? ", step " : "", o->step ? o->step : "", rt_run_status_name(r->status),
             r->exit_code, r->reason[0] ? ": " : "", r->reason);
}

static void run_function(struct rt_server *s, const struct rt_function *fn,
                         const struct fm_buf *body, struct outcome *o)
{
    struct rt_invoke_opts opts = {.trigger = "http", .pool = s->cfg.pool,
                                  .sample_every_ms = s->cfg.sample_every_ms};
    struct fm_err err = {""};
    o->st = rt_invoke(fn, s->cfg.spool, &opts, body->data ? body->data : "", body->len, &o->res,
                      &err);
    if (o->st != RT_OK) {
        snprintf(o->message, sizeof o->message, "%s", err.msg);
        return;
    }
    o->duration_us = o->res.run.duration_us;
    o->cold_start = o->res.cold_start;
    char what[300];
    snprintf(what, sizeof what, "%s/%s", fn->tenant, fn->name);
    describe_failure(o, what);
}

static void run_pipeline(struct rt_server *s, const struct rt_pipeline *pl,
                         const struct fm_buf *body, struct outcome *o, char *run_id)
{
    struct rt_invoke_opts opts = {.trigger = "http", .pool = s->cfg.pool,
                                  .sample_every_ms = s->cfg.sample_every_ms};
    struct fm_err err = {""};
    struct rt_pipeline_result pr;
    o->st = rt_pipeline_run(pl, s->cfg.spool, &opts, body->data ? body->data : "", body->len,
                            &pr, &err);
    if (o->st != RT_OK) {
        /* Steps before the one that could not run ran and were metered: the answer names
         * the run and the step, and does not invite a retry that would run them again. */
        if (pr.steps_run > 0) {
            memcpy(run_id, pr.run_id, sizeof pr.run_id);
            o->correlation_id = run_id;
            o->step = pl->steps[pr.failed_step]->name;
            o->no_retry = true;
            snprintf(o->message, sizeof o->message, "%s (steps before it ran)", err.msg);
        } else {
            snprintf(o->message, sizeof o->message, "%s", err.msg);
        }
        return;
    }
    o->res = pr.last;
    o->duration_us = pr.duration_us;
    o->cold_start = pr.cold_start;
    memcpy(run_id, pr.run_id, sizeof pr.run_id);
    o->correlation_id = run_id;
    o->step = pr.failed_step >= 0 ? pl->steps[pr.failed_step]->name : NULL;
    char what[300];
    snprintf(what, sizeof what, "pipeline %s/%s", pl->tenant, pl->name);
    describe_failure(o, what);
}

/* The answer for o; with closing, the connection is closed after it (faasrun is
 * stopping, and a keep-alive client must not slip more requests into the drain). */
static enum MHD_Result answer_outcome(struct MHD_Connection *conn, const struct outcome *o,
                                      bool closing)
{
    const char *code = NULL;
    unsigned status = http_status(o, &code);
    char dur[32];
    snprintf(dur, sizeof dur, "%" PRId64, o->duration_us);
    const char *headers[16];
    size_t n = 0;
    if (o->st == RT_OK) {
        headers[n++] = "X-Invocation-Id";
        headers[n++] = o->res.invocation_id;
        headers[n++] = "X-Duration-Us";
        headers[n++] = dur;
        headers[n++] = "X-Cold-Start";
        headers[n++] = o->cold_start ? "true" : "false";
    }
    if (o->correlation_id) {
        headers[n++] = "X-Correlation-Id";
        headers[n++] = o->correlation_id;
    }
    if (o->step) {
        headers[n++] = "X-Failed-Step";
        headers[n++] = o->step;
    }
    if ((status == MHD_HTTP_TOO_MANY_REQUESTS || status == MHD_HTTP_SERVICE_UNAVAILABLE) &&
        !o->no_retry) {
        headers[n++] = MHD_HTTP_HEADER_RETRY_AFTER;
        headers[n++] = "1";
    }
    if (closing) {
        headers[n++] = MHD_HTTP_HEADER_CONNECTION;
        headers[n++] = "close";
    }
    headers[n] = NULL;
    if (status == MHD_HTTP_OK)
        return send_response(conn, status, o->res.run.output, o->res.run.output_len,
                             "application/octet-stream", headers);
    return send_error(conn, status, code, o->message, headers);
}

/* Split "/invoke/TENANT/NAME" into its names; false when it is not of that shape. */
static bool parse_path(const char *url, char *tenant, char *name)
{
    if (strncmp(url, PREFIX, strlen(PREFIX)) != 0)
        return false;
    const char *t = url + strlen(PREFIX);
    const char *slash = strchr(t, '/');
    if (slash == NULL || (size_t)(slash - t) > FM_TENANT_MAX || strlen(slash + 1) > FM_FUNCTION_MAX)
        return false;
    memcpy(tenant, t, (size_t)(slash - t));
    tenant[slash - t] = '\0';
    snprintf(name, FM_FUNCTION_MAX + 1, "%s", slash + 1);
    return fm_name_ok(tenant, false) && fm_name_ok(name, true);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req_cls)
{
    (void)version;
    struct rt_server *s = cls;
    struct request *rq = *req_cls;
    if (rq == NULL) {
        rq = calloc(1, sizeof *rq);
        if (rq == NULL)
            return MHD_NO;
        fm_buf_init(&rq->body, BODY_MAX);
        *req_cls = rq;
        char why[256];
        unsigned refused = fm_http_framing_refused(conn, why, sizeof why);
        if (refused != 0) {
            rq->refused = true;
            return send_error(conn, refused,
                              refused == MHD_HTTP_BAD_REQUEST ? "bad_request"
                                                              : "unsupported_media_type",
                              why, NULL);
        }
        const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len && strtoull(len, NULL, 10) > BODY_MAX)
            rq->too_large = true;
        else
            return MHD_YES;
    }
    if (rq->refused) { /* answered before its body was read: the body is not read */
        *size = 0;
        return MHD_YES;
    }
    if (*size > 0) {
        if (!rq->too_large && !rq->crowded) {
            if (atomic_fetch_add(&s->held, *size) + *size > BODIES_HELD_MAX) {
                atomic_fetch_sub(&s->held, *size);
                rq->crowded = true;
            } else {
                rq->held += *size;
                if (fm_buf_append(&rq->body, data, *size) != 0)
                    rq->too_large = true;
            }
        }
        *size = 0;
        return MHD_YES;
    }
    char tenant[FM_TENANT_MAX + 1], name[FM_FUNCTION_MAX + 1], msg[512];
    if (!parse_path(url, tenant, name)) {
        snprintf(msg, sizeof msg, "no such path; invoke with POST " PREFIX "{tenant}/{function}");
        return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", msg, NULL);
    }
    const struct rt_function *fn = rt_manifest_find(s->cfg.manifest, tenant, name);
    const struct rt_pipeline *pl = fn ? NULL : rt_manifest_find_pipeline(s->cfg.manifest, tenant, name);
    if (fn == NULL && pl == NULL) {
        snprintf(msg, sizeof msg, "tenant %s has no function or pipeline %s", tenant, name);
        return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", msg, NULL);
    }
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
        const char *allow[] = {MHD_HTTP_HEADER_ALLOW, "POST", NULL};
        return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                          "invoke with POST", allow);
    }
    if (rq->too_large) {
        snprintf(msg, sizeof msg, "the request is larger than %zu bytes", (size_t)BODY_MAX);
        return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", msg, NULL);
    }
    if (rq->crowded) {
        const char *headers[] = {MHD_HTTP_HEADER_RETRY_AFTER, "1", NULL};
        snprintf(msg, sizeof msg, "other requests' bodies take the %zu MiB held at once; retry",
                 BODIES_HELD_MAX >> 20);
        return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", msg, headers);
    }
    /* Stopping: what has not started does not start, and the client is told to go
     * elsewhere; the answers of what runs are awaited (rt_server_stop). */
    rq->counted = true;
    atomic_fetch_add(&s->in_flight, 1);
    if (atomic_load(&s->stopping)) {
        const char *headers[] = {MHD_HTTP_HEADER_CONNECTION, "close", MHD_HTTP_HEADER_RETRY_AFTER,
                                 "1", NULL};
        return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping",
                          "faasrun is stopping; retry", headers);
    }
    struct outcome o = {0};
    char run_id[RT_INVOCATION_ID_LEN + 1];
    if (fn)
        run_function(s, fn, &rq->body, &o);
    else
        run_pipeline(s, pl, &rq->body, &o, run_id);
    enum MHD_Result ret = answer_outcome(conn, &o, atomic_load(&s->stopping));
    rt_exec_result_free(&o.res.run);
    if (s->cfg.on_recorded)
        s->cfg.on_recorded(s->cfg.ctx);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)conn, (void)why;
    struct rt_server *s = cls;
    struct request *rq = *req_cls;
    if (rq == NULL)
        return;
    if (rq->counted)
        atomic_fetch_sub(&s->in_flight, 1);
    atomic_fetch_sub(&s->held, rq->held);
    fm_buf_free(&rq->body);
    free(rq);
    *req_cls = NULL;
}

enum rt_status rt_server_start(const struct rt_server_config *cfg, struct rt_server **out,
                               struct fm_err *err)
{
    struct rt_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        fm_err_set(err, "out of memory");
        return RT_ENOMEM;
    }
    s->cfg = *cfg;
    struct sockaddr_storage addr;
    if (fm_listen_parse(cfg->listen, s->host, &s->port, err) != 0) {
        fm_err_prefix(err, "--listen");
        free(s);
        return RT_EINVAL;
    }
    fm_sockaddr_of(s->host, s->port, &addr);
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->stopping, false);
    atomic_init(&s->held, 0);
    /* A thread per connection: an invocation blocks only its own client, so the manifest's
     * concurrency limits (429) decide how many run at once, not a pool's size. */
    errno = 0;
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ITC | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        request_done, s, MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : 60u,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit, MHD_OPTION_UNESCAPE_CALLBACK,
        fm_http_unescape, NULL,
        /* Last: without a limit of its own, the list ends here, at libmicrohttpd's. */
        cfg->connection_limit ? MHD_OPTION_CONNECTION_LIMIT : MHD_OPTION_END,
        cfg->connection_limit, MHD_OPTION_END);
    int why = errno; /* what the socket calls said, when they failed */
    if (s->daemon == NULL) {
        fm_err_set(err, "cannot listen on %s: %s", cfg->listen,
                   why ? strerror(why) : "not allowed, or no threads");
        free(s);
        return RT_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info->port;
    *out = s;
    return RT_OK;
}

void rt_server_address(const struct rt_server *s, char *buf, size_t n)
{
    char where[FM_HOST_PORT_BUFSZ];
    fm_host_port(s->host, s->port, where);
    snprintf(buf, n, "%s", where);
}

void rt_server_stop(struct rt_server *s, int64_t deadline_us)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (atomic_load(&s->in_flight) > 0 && fm_mono_us() < deadline_us)
        nanosleep(&tick, NULL);
    MHD_stop_daemon(s->daemon);
    free(s);
}
