/* meterd: the metering service. Takes usage records over HTTP and stores them in PostgreSQL. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/db.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "common/opts.h"
#include "billing/catalog.h"
#include "meter/http.h"
#include "meter/upkeep.h"
#include "meter/plans.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: meterd [--listen ADDR:PORT] [--db CONNINFO]\n"
            "              [--threads N] [--body-limit BYTES] [--max-connections N] [--per-ip N]\n"
            "              [--timeout SECONDS] [--key-cache-ms MS] [--catalog DIR]\n"
            "              [--orphan-grace-ms MS] [--orphan-policy timeout|none]\n"
            "              [--orphan-sweep-ms MS] [--fold-ms MS]\n"
            "              [--log-level error|warn|info|debug]\n"
            "\n"
            "Serves the metering API (POST /v1/records, GET /v1/usage, POST /v1/invoices,\n"
            "POST /v1/invoices/ID/finalize, GET /v1/invoices[/ID], GET /v1/compare,\n"
            "GET /healthz, GET /metrics). Listens on 127.0.0.1:8080 by default; port 0 picks\n"
            "a free port; the address is IPv4, IPv6 in brackets ([::1]:8080, IPv6 alone), or\n"
            "localhost (127.0.0.1).\n"
            "The database is --db, else $FAASMETER_DB, else libpq's defaults.\n"
            "\n"
            "  --threads N          threads serving the connections (default: one a core);\n"
            "                       a request waiting for its commit does not hold one\n"
            "  --max-connections N  connections open at once (default 1024)\n"
            "  --per-ip N           connections open at once from one address (0: no limit)\n"
            "  --timeout SECONDS    an idle connection is closed after this (default 30)\n"
            "  --body-limit BYTES   a larger request body gets 413 (default 8 MiB)\n"
            "  --key-cache-ms MS    an API key looked up is trusted this long, so a revoked\n"
            "                       key stops working within it (default 30000; 0: no cache)\n"
            "  --catalog DIR        plan catalog for invoices (default: $FAASMETER_CATALOG,\n"
            "                       else billing/catalog of the installation)\n"
            "  --orphan-grace-ms MS a start without its stop is closed as 'lost' this long\n"
            "                       after its timeout (default 60000)\n"
            "  --orphan-policy P    bill a lost invocation to its timeout ('timeout', the\n"
            "                       default) or for its request only ('none')\n"
            "  --orphan-sweep-ms MS how often to look for them (default 10000; 0: never)\n"
            "  --fold-ms MS         how often pending usage is folded into the rollups that\n"
            "                       usage queries and invoices read (default 1000; readers\n"
            "                       fold first anyway)\n"
            "\n"
            "On start it prints 'meterd listening on ADDR:PORT' on stdout; SIGTERM or SIGINT\n"
            "stops accepting connections, finishes the requests in flight (at most 30 s)\n"
            "and exits.\n");
}

static int parse_uint(const char *opt, const char *s, unsigned long long min,
                      unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "meterd: %s: expected an integer %llu-%llu, got '%s'\n", opt, min, max,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Best effort: with the database down at start, rating keeps the plans registered before. */
static void register_plans(const char *conninfo, const struct bill_catalog *catalog)
{
    struct fm_err err;
    PGconn *conn = db_connect(conninfo, &err);
    int changed = 0;
    if (conn == NULL || meter_plans_register(conn, catalog, &changed, &err) != 0)
        fm_warn("meterd: plans not registered for rating: %s", err.msg);
    else if (changed > 0)
        fm_info("meterd: %d plan%s registered for rating", changed, changed == 1 ? "" : "s");
    PQfinish(conn);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"db", required_argument, NULL, 'd'},
        {"catalog", required_argument, NULL, 'C'},
        {"orphan-grace-ms", required_argument, NULL, 'G'},
        {"orphan-policy", required_argument, NULL, 'P'},
        {"orphan-sweep-ms", required_argument, NULL, 'S'},
        {"fold-ms", required_argument, NULL, 'F'},
        {"body-limit", required_argument, NULL, 'b'},
        {"max-connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"per-ip", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 'T'},
        {"key-cache-ms", required_argument, NULL, 'K'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct meter_config cfg;
    meter_config_defaults(&cfg);
    char addr[FM_HOST_BUFSZ];
    const char *db = NULL;
    const char *catalog_dir = NULL;
    long orphan_grace_ms = 60000, orphan_sweep_ms = 10000, fold_ms = 1000;
    enum meter_orphan_policy orphan_policy = METER_ORPHAN_BILL_TIMEOUT;
    unsigned long long v;
    int c;
    opterr = 0;
    while ((c = fm_getopt(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'l': {
            struct fm_err err;
            if (fm_listen_parse(optarg, addr, &cfg.port, &err) != 0) {
                fprintf(stderr, "meterd: --listen: %s\n", err.msg);
                return 2;
            }
            cfg.listen_addr = addr;
            break;
        }
        case 'C':
            catalog_dir = optarg;
            break;
        case 'G':
            if (parse_uint("--orphan-grace-ms", optarg, 0, 86400000, &v) != 0)
                return 2;
            orphan_grace_ms = (long)v;
            break;
        case 'F':
            if (parse_uint("--fold-ms", optarg, 0, 3600000, &v) != 0)
                return 2;
            fold_ms = (long)v;
            break;
        case 'S':
            if (parse_uint("--orphan-sweep-ms", optarg, 0, 86400000, &v) != 0)
                return 2;
            orphan_sweep_ms = (long)v;
            break;
        case 'P':
            if (strcmp(optarg, "timeout") == 0) {
                orphan_policy = METER_ORPHAN_BILL_TIMEOUT;
            } else if (strcmp(optarg, "none") == 0) {
                orphan_policy = METER_ORPHAN_BILL_NONE;
            } else {
                fprintf(stderr, "meterd: --orphan-policy: expected timeout or none, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'd':
            db = optarg;
            break;
        case 'b':
            if (parse_uint("--body-limit", optarg, 0, 1ull << 30, &v) != 0)
                return 2;
            cfg.body_limit = (size_t)v;
            break;
        case 'c':
            if (parse_uint("--max-connections", optarg, 0, 100000, &v) != 0)
                return 2;
            cfg.connection_limit = (unsigned)v;
            break;
        case 't':
            if (parse_uint("--threads", optarg, 1, 256, &v) != 0)
                return 2;
            cfg.threads = (unsigned)v;
            break;
        case 'p':
            if (parse_uint("--per-ip", optarg, 0, 100000, &v) != 0)
                return 2;
            cfg.per_ip_limit = (unsigned)v;
            break;
        case 'T':
            if (parse_uint("--timeout", optarg, 0, 3600, &v) != 0)
                return 2;
            cfg.timeout_s = (unsigned)v;
            break;
        case 'K':
            if (parse_uint("--key-cache-ms", optarg, 0, 3600000, &v) != 0)
                return 2;
            cfg.key_cache_ms = (unsigned)v;
            break;
        case 'L':
            if (fm_log_set_level(optarg) != 0) {
                fprintf(stderr, "meterd: --log-level: expected error, warn, info or debug\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: {
            char what[256];
            fm_opt_refused(opts, argv, c, what, sizeof what);
            fprintf(stderr, "meterd: %s (try meterd --help)\n", what);
            return 2;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meterd: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    cfg.conninfo = db_conninfo(db);

    /* The invoice endpoints price with the catalog; its plans are registered for rating
     * here too, so a plan file added since the last migrate is rated from now on. */
    struct fm_err err;
    struct bill_catalog *catalog = NULL;
    if (bill_catalog_load(catalog_dir, &catalog, &err) != BILL_OK) {
        fprintf(stderr, "meterd: %s\n", err.msg);
        return 1;
    }
    cfg.catalog = catalog;
    register_plans(cfg.conninfo, catalog);

    /* Signals are taken synchronously by this thread; worker threads inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct meter_server *srv = NULL;
    if (meter_server_start(&cfg, &srv, &err) != 0) {
        fprintf(stderr, "meterd: %s\n", err.msg);
        bill_catalog_free(catalog);
        return 1;
    }
    struct meter_upkeep_config upkeep_cfg = {
        .conninfo = cfg.conninfo,
        .fold_ms = fold_ms,
        .sweep_ms = orphan_sweep_ms,
        .grace_ms = orphan_grace_ms,
        .policy = orphan_policy,
    };
    struct meter_upkeep *upkeep = meter_upkeep_start(&upkeep_cfg);
    char where[FM_HOST_PORT_BUFSZ];
    fm_host_port(cfg.listen_addr, meter_server_port(srv), where);
    printf("meterd listening on %s\n", where);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fm_info("meterd: %s received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    meter_upkeep_stop(upkeep);
    meter_server_stop(srv);
    bill_catalog_free(catalog);
    return 0;
}
