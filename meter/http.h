#ifndef FM_METER_HTTP_H
#define FM_METER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "billing/catalog.h"
#include "common/err.h"

/* meterd's HTTP API (DESIGN.md, "HTTP API of meterd") on libmicrohttpd. */

struct meter_config {
    const char *listen_addr; /* IPv4 or IPv6 address to bind (no brackets; IPv6 alone, not
                                mapped IPv4); "127.0.0.1" when NULL */
    uint16_t port;           /* 0: any free port (read it back with meter_server_port) */
    const char *conninfo;    /* libpq connection string */
    size_t body_limit;       /* bytes; a larger request body gets 413 */
    unsigned connection_limit;
    unsigned per_ip_limit;
    unsigned timeout_s;      /* idle connection timeout */
    unsigned key_cache_ms;   /* how long a looked-up API key is trusted; 0: ask every time */
    unsigned threads;        /* threads serving the connections */
    const struct bill_catalog *catalog; /* plans for the invoice endpoints; borrowed */
};

/** The defaults that meterd starts from. */
void meter_config_defaults(struct meter_config *cfg);

struct meter_server;

#define METER_DRAIN_MAX_S 30

/**
 * Bind and start serving: a pool of threads polls every connection.
 * @param cfg  borrowed; its strings must outlive the server
 * @param out  on success the server (stop and free with meter_server_stop)
 * @return 0, or -1 with err set (address in use, bad address)
 */
int meter_server_start(const struct meter_config *cfg, struct meter_server **out,
                       struct fm_err *err);

/** The port the server listens on. */
uint16_t meter_server_port(const struct meter_server *s);

/**
 * Stop accepting connections, let the requests in flight finish (those whose headers have
 * arrived; at most METER_DRAIN_MAX_S seconds), close the rest, free s. NULL is a no-op.
 */
void meter_server_stop(struct meter_server *s);

#endif
