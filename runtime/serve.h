#ifndef RT_SERVE_H
#define RT_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "runtime/manifest.h"
#include "runtime/pool.h"
#include "runtime/spool.h"
#include "runtime/status.h"

/*
 * The HTTP trigger: POST /invoke/{tenant}/{function or pipeline}, the body the request, the
 * answer the function's output. libmicrohttpd with a thread pool; each invocation runs on
 * the thread that received it. Opaque.
 */
struct rt_server;

struct rt_server_config {
    const struct rt_manifest *manifest; /* borrowed, like the three below */
    struct rt_spool *spool;
    struct rt_pool *pool;
    void (*on_recorded)(void *ctx);     /* optional: after each answered request */
    void *ctx;
    const char *listen;                 /* "ADDR:PORT" (common/netaddr.h); port 0 picks a
                                           free one */
    int64_t sample_every_ms;            /* resource records of long runs */
    unsigned connection_limit;          /* connections open at once; 0: libmicrohttpd's */
    unsigned per_ip_limit;              /* from one address; 0: no limit */
    unsigned timeout_s;                 /* an idle connection is closed after this; 0: 60 */
};

/**
 * Start serving.
 * @param out  on RT_OK the server (caller stops it with rt_server_stop); untouched on error
 * @return RT_OK, RT_EINVAL (a bad listen address), RT_EIO (cannot listen), RT_ENOMEM
 */
enum rt_status rt_server_start(const struct rt_server_config *cfg, struct rt_server **out,
                               struct fm_err *err);

/** The address it listens on, "ADDR:PORT" with the real port, into buf. */
void rt_server_address(const struct rt_server *s, char *buf, size_t n);

/**
 * Stop accepting, let the invocations in flight finish (until deadline_us, monotonic),
 * then stop and free the server. NULL is a no-op.
 */
void rt_server_stop(struct rt_server *s, int64_t deadline_us);

#endif
