#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/netaddr.h"
#include "common/timeutil.h"
#include "runtime/cgroup.h"
#include "runtime/cli.h"
#include "runtime/manifest.h"
#include "runtime/pool.h"
#include "runtime/serve.h"
#include "runtime/ship.h"
#include "runtime/spool.h"

#define DEFAULT_LISTEN "127.0.0.1:8081"
#define DEFAULT_SPOOL_MAX_MB 1024
#define DEFAULT_DRAIN_MS 5000
#define REAP_EVERY_MS 100

static const char usage[] =
    "usage: faasrun serve --manifest FILE --meter URL --spool DIR [--listen ADDR:PORT]\n"
    "                     [--meter-key KEY] [--spool-max-mb N] [--sample-ms N]\n"
    "                     [--drain-ms N] [--max-connections N] [--per-ip N]\n"
    "                     [--timeout SECONDS]\n"
    "\n"
    "Serve POST /invoke/{tenant}/{function or pipeline} over HTTP (default " DEFAULT_LISTEN
    ";\n"
    "port 0 picks a free port; ADDR is IPv4, IPv6 in brackets, or localhost) and ship the\n"
    "spool to the metering service continuously.\n"
    "Prints \"faasrun listening on ADDR:PORT\" once ready. Statuses: 200 ok, 400 a body\n"
    "framed two ways, 404 unknown, 413 request too large, 415 a Content-Encoding other than\n"
    "identity, 429 concurrency limit, 502 function failed (a pipeline names its run and\n"
    "failed step in X-Correlation-Id and X-Failed-Step), 504 timeout, 503 when the\n"
    "invocation cannot be metered (spool over --spool-max-mb, default 1024, or not\n"
    "writable), while 48 MiB of request bodies are held, and while stopping. Exit code 2\n"
    "for bad usage, a manifest included. SIGTERM stops accepting, finishes what runs, ships\n"
    "for up to --drain-ms (default 5000) and exits 0. A function's processes share a\n"
    "memory cgroup of its memory_mb where one can be made (else each runs under an\n"
    "address-space limit, and running out of memory shows as error, not oom); the\n"
    "choice is printed on stderr at start. What a function leaves running dies with its\n"
    "invocation, and with faasrun however it ends (a faasrun-guard process sees to it).\n"
    "A function with \"user\" in the manifest runs as that system user (faasrun as root\n"
    "only), so it cannot change its own limits.\n"
    "\n"
    "  --meter-key KEY   bearer key (default $FAASMETER_KEY); blanked from the command\n"
    "                    line once read\n"
    "  --sample-ms N     a resource record every N ms of a long run (default 10000)\n"
    "  --max-connections N  connections open at once (default 1024); each has a thread\n"
    "  --per-ip N        connections open at once from one address (0: no limit)\n"
    "  --timeout SECONDS an idle connection is closed after this (default 60)\n";

struct serve_args {
    const char *manifest, *meter, *key, *spool, *listen;
    int64_t spool_max_mb, sample_ms, drain_ms, max_connections, per_ip, timeout_s;
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct serve_args *a)
{
    const struct fm_cli_opt opts[] = {
        FM_OPT_TEXT("--manifest", &a->manifest),
        FM_OPT_CHECKED("--meter", &a->meter, cli_check_meter, CLI_METER_EXPECTED),
        FM_OPT_SECRET("--meter-key", &a->key),
        FM_OPT_CHECKED("--spool", &a->spool, cli_check_folder, CLI_FOLDER_EXPECTED),
        FM_OPT_TEXT("--listen", &a->listen),
        FM_OPT_INT("--spool-max-mb", &a->spool_max_mb, NULL, 1, 1 << 20),
        FM_OPT_INT("--sample-ms", &a->sample_ms, NULL, 1, 3600000),
        FM_OPT_INT("--drain-ms", &a->drain_ms, NULL, 1, 3600000),
        FM_OPT_INT("--max-connections", &a->max_connections, NULL, 1, 100000),
        FM_OPT_INT("--per-ip", &a->per_ip, NULL, 0, 100000),
        FM_OPT_INT("--timeout", &a->timeout_s, NULL, 1, 3600),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasrun", .cmd = "serve", .opts = opts, .usage = usage};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->manifest == NULL || a->meter == NULL || a->spool == NULL) {
        fprintf(stderr, "faasrun serve: --manifest, --meter and --spool are required\n");
        return CLI_USAGE;
    }
    char host[FM_HOST_BUFSZ];
    uint16_t port;
    struct fm_err err;
    if (fm_listen_parse(a->listen, host, &port, &err) != 0) {
        fprintf(stderr, "faasrun serve: --listen: %s\n", err.msg);
        return CLI_USAGE;
    }
    if (a->key == NULL)
        a->key = getenv("FAASMETER_KEY");
    return -1;
}

static void kick(void *ctx)
{
    rt_ship_loop_kick(ctx);
}

/* Wait for SIGTERM or SIGINT, reaping idle workers meanwhile. */
static void wait_for_stop(const sigset_t *stop, struct rt_pool *pool)
{
    struct timespec every = {0, REAP_EVERY_MS * 1000 * 1000};
    for (;;) {
        int sig = sigtimedwait(stop, NULL, &every);
        if (sig == SIGTERM || sig == SIGINT)
            return;
        rt_pool_reap(pool, fm_mono_us());
    }
}

int cli_serve(int argc, char **argv)
{
    struct serve_args a = {.listen = DEFAULT_LISTEN, .spool_max_mb = DEFAULT_SPOOL_MAX_MB,
                           .sample_ms = 0, .drain_ms = DEFAULT_DRAIN_MS,
                           .max_connections = 1024, .per_ip = 0, .timeout_s = 60};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    rc = CLI_FAILED;
    /* Blocked before any thread starts, so every thread inherits it and only sigtimedwait
     * below sees the stop signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct fm_err err = {""};
    struct rt_manifest *m = NULL;
    struct rt_spool *spool = NULL;
    struct rt_pool *pool = NULL;
    struct rt_ship_loop *loop = NULL;
    struct rt_server *server = NULL;
    enum rt_status st = rt_manifest_load(a.manifest, &m, &err);
    if (st != RT_OK) {
        fprintf(stderr, "faasrun serve: %s\n", err.msg);
        /* A manifest that is missing or invalid is bad input on the command line. */
        rc = st == RT_EINVAL ? CLI_USAGE : CLI_FAILED;
        goto out;
    }
    if (rt_pool_new(m, &pool, &err) != RT_OK || rt_spool_open(a.spool, 0, &spool, &err) != RT_OK ||
        rt_ship_loop_start(a.spool, a.meter, a.key, &loop, &err) != RT_OK) {
        fprintf(stderr, "faasrun serve: %s\n", err.msg);
        goto out;
    }
    rt_spool_set_cap(spool, (size_t)a.spool_max_mb << 20);
    struct rt_server_config cfg = {
        .manifest = m, .spool = spool, .pool = pool, .on_recorded = kick, .ctx = loop,
        .listen = a.listen, .sample_every_ms = a.sample_ms,
        .connection_limit = (unsigned)a.max_connections, .per_ip_limit = (unsigned)a.per_ip,
        .timeout_s = (unsigned)a.timeout_s,
    };
    if (rt_server_start(&cfg, &server, &err) != RT_OK) {
        fprintf(stderr, "faasrun serve: %s\n", err.msg);
        goto out;
    }
    char addr[FM_HOST_PORT_BUFSZ];
    rt_server_address(server, addr, sizeof addr);
    fprintf(stderr, "faasrun serve: functions' memory: %s\n", rt_cgroup_mechanism());
    printf("faasrun listening on %s\n", addr);
    fflush(stdout);
    wait_for_stop(&stop, pool);
    int64_t longest = 0;
    for (size_t i = 0; i < m->nfunctions; i++)
        if (m->functions[i].timeout_ms > longest)
            longest = m->functions[i].timeout_ms;
    /* A pipeline may run several steps after the signal: allow for a few of the longest. */
    rt_server_stop(server, fm_mono_us() + 4 * longest * 1000 + 1000000);
    server = NULL;
    rc = CLI_OK;
out:
    rt_server_stop(server, fm_mono_us());
    if (loop && rt_ship_loop_stop(loop, fm_mono_us() + a.drain_ms * 1000, &err) != RT_OK)
        fprintf(stderr, "faasrun serve: records stay in the spool %s: %s\n", a.spool, err.msg);
    rt_pool_free(pool);
    rt_spool_close(spool);
    rt_manifest_free(m);
    return rc;
}
