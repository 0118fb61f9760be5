/* meterd: the metering service. Takes usage records over HTTP and stores them in PostgreSQL. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/db.h"
#include "common/log.h"
#include "common/netaddr.h"
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

static bool check_orphan_policy(const char *value, void *to)
{
    enum meter_orphan_policy *policy = to;
    if (strcmp(value, "timeout") == 0)
        *policy = METER_ORPHAN_BILL_TIMEOUT;
    else if (strcmp(value, "none") == 0)
        *policy = METER_ORPHAN_BILL_NONE;
    else
        return false;
    return true;
}

static bool check_log_level(const char *value, void *to)
{
    (void)to;
    return fm_log_set_level(value) == 0;
}

static void help(const char *cmd)
{
    (void)cmd;
    usage(stdout);
}

/* meterd's options, beyond what goes straight into the server's configuration. */
struct meterd_args {
    const char *listen, *db, *catalog_dir;
    int64_t orphan_grace_ms, orphan_sweep_ms, fold_ms;
    enum meter_orphan_policy orphan_policy;
    int64_t body_limit, connection_limit, threads, per_ip_limit, timeout_s, key_cache_ms;
};

/* Returns -1 to go on, else the exit code (0 after --help, 2 on bad usage). */
static int parse_args(int argc, char **argv, struct meterd_args *a, struct meter_config *cfg,
                      char addr[FM_HOST_BUFSZ])
{
    *a = (struct meterd_args){
        .orphan_grace_ms = 60000,
        .orphan_sweep_ms = 10000,
        .fold_ms = 1000,
        .orphan_policy = METER_ORPHAN_BILL_TIMEOUT,
        .body_limit = (int64_t)cfg->body_limit,
        .connection_limit = cfg->connection_limit,
        .threads = cfg->threads,
        .per_ip_limit = cfg->per_ip_limit,
        .timeout_s = cfg->timeout_s,
        .key_cache_ms = cfg->key_cache_ms,
    };
    const struct fm_cli_opt opts[] = {
        FM_OPT_TEXT("--listen", &a->listen),
        FM_OPT_TEXT("--db", &a->db),
        FM_OPT_TEXT("--catalog", &a->catalog_dir),
        FM_OPT_INT("--orphan-grace-ms", &a->orphan_grace_ms, NULL, 0, 86400000),
        FM_OPT_CHECKED("--orphan-policy", &a->orphan_policy, check_orphan_policy,
                       "timeout or none"),
        FM_OPT_INT("--orphan-sweep-ms", &a->orphan_sweep_ms, NULL, 0, 86400000),
        FM_OPT_INT("--fold-ms", &a->fold_ms, NULL, 0, 3600000),
        FM_OPT_INT("--body-limit", &a->body_limit, NULL, 0, 1 << 30),
        FM_OPT_INT("--max-connections", &a->connection_limit, NULL, 0, 100000),
        FM_OPT_INT("--threads", &a->threads, NULL, 1, 256),
        FM_OPT_INT("--per-ip", &a->per_ip_limit, NULL, 0, 100000),
        FM_OPT_INT("--timeout", &a->timeout_s, NULL, 0, 3600),
        FM_OPT_INT("--key-cache-ms", &a->key_cache_ms, NULL, 0, 3600000),
        FM_OPT_CHECKED("--log-level", NULL, check_log_level, "error, warn, info or debug"),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "meterd", .opts = opts, .help = help};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->listen != NULL) {
        struct fm_err err;
        if (fm_listen_parse(a->listen, addr, &cfg->port, &err) != 0) {
            fprintf(stderr, "meterd: --listen: %s\n", err.msg);
            return 2;
        }
        cfg->listen_addr = addr;
    }
    cfg->body_limit = (size_t)a->body_limit;
    cfg->connection_limit = (unsigned)a->connection_limit;
    cfg->threads = (unsigned)a->threads;
    cfg->per_ip_limit = (unsigned)a->per_ip_limit;
    cfg->timeout_s = (unsigned)a->timeout_s;
    cfg->key_cache_ms = (unsigned)a->key_cache_ms;
    return -1;
}

int main(int argc, char **argv)
{
    if (fm_cli_std_fds() != 0)
        return 1;
    struct meter_config cfg;
    meter_config_defaults(&cfg);
    char addr[FM_HOST_BUFSZ];
    struct meterd_args a;
    int rc = parse_args(argc, argv, &a, &cfg, addr);
    if (rc >= 0)
        return rc;
    struct fm_err err;
    /* An unreachable database is waited for; one that no string could reach is not. */
    if ((cfg.conninfo = db_conninfo_checked(a.db, &err)) == NULL) {
        fprintf(stderr, "meterd: %s\n", err.msg);
        return 2;
    }

    /* The invoice endpoints price with the catalog; its plans are registered for rating
     * here too, so a plan file added since the last migrate is rated from now on. */
    struct bill_catalog *catalog = NULL;
    if (bill_catalog_load(a.catalog_dir, &catalog, &err) != BILL_OK) {
        /* A catalog named on the command line is bad usage; the installed one, a failure. */
        fprintf(stderr, "meterd: %s%s\n", a.catalog_dir ? "--catalog: " : "", err.msg);
        return a.catalog_dir ? 2 : 1;
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
        .fold_ms = a.fold_ms,
        .sweep_ms = a.orphan_sweep_ms,
        .grace_ms = a.orphan_grace_ms,
        .policy = a.orphan_policy,
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
