/* meterd: the metering service. Takes usage records over HTTP and stores them in PostgreSQL. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"
#include "meter/http.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: meterd [--listen ADDR:PORT] [--db CONNINFO] [--threads N]\n"
            "              [--body-limit BYTES] [--max-connections N] [--per-ip N]\n"
            "              [--timeout SECONDS] [--log-level error|warn|info|debug]\n"
            "\n"
            "Serves the metering API (POST /v1/records, GET /healthz). Listens on\n"
            "127.0.0.1:8080 by default; port 0 picks a free port. The database is --db,\n"
            "else $FAASMETER_DB, else libpq's defaults. On start it prints\n"
            "'meterd listening on ADDR:PORT' on stdout; SIGTERM or SIGINT stops it after\n"
            "the requests in flight.\n");
}

static int parse_uint(const char *opt, const char *s, unsigned long long max,
                      unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v > max) {
        fprintf(stderr, "meterd: %s: expected an integer 0-%llu, got '%s'\n", opt, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* "ADDR:PORT" into its parts; addr_buf holds the address. */
static int parse_listen(const char *s, char *addr_buf, size_t n, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    unsigned long long p;
    if (colon == NULL || (size_t)(colon - s) >= n || colon == s) {
        fprintf(stderr, "meterd: --listen: expected ADDR:PORT, got '%s'\n", s);
        return -1;
    }
    if (parse_uint("--listen port", colon + 1, 65535, &p) != 0)
        return -1;
    memcpy(addr_buf, s, (size_t)(colon - s));
    addr_buf[colon - s] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"db", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"body-limit", required_argument, NULL, 'b'},
        {"max-connections", required_argument, NULL, 'c'},
        {"per-ip", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 'T'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct meter_config cfg;
    meter_config_defaults(&cfg);
    char addr[64];
    const char *db = NULL;
    unsigned long long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (parse_listen(optarg, addr, sizeof addr, &cfg.port) != 0)
                return 2;
            cfg.listen_addr = addr;
            break;
        case 'd':
            db = optarg;
            break;
        case 't':
            if (parse_uint("--threads", optarg, 64, &v) != 0)
                return 2;
            if (v == 0) {
                fprintf(stderr, "meterd: --threads: expected an integer 1-64, got '0'\n");
                return 2;
            }
            cfg.threads = (unsigned)v;
            break;
        case 'b':
            if (parse_uint("--body-limit", optarg, 1ull << 30, &v) != 0)
                return 2;
            cfg.body_limit = (size_t)v;
            break;
        case 'c':
            if (parse_uint("--max-connections", optarg, 100000, &v) != 0)
                return 2;
            cfg.connection_limit = (unsigned)v;
            break;
        case 'p':
            if (parse_uint("--per-ip", optarg, 100000, &v) != 0)
                return 2;
            cfg.per_ip_limit = (unsigned)v;
            break;
        case 'T':
            if (parse_uint("--timeout", optarg, 3600, &v) != 0)
                return 2;
            cfg.timeout_s = (unsigned)v;
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
        default:
            fprintf(stderr, "meterd: unknown or incomplete option '%s' (try --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meterd: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    cfg.conninfo = db_conninfo(db);

    /* Signals are taken synchronously by this thread; worker threads inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct fm_err err;
    struct meter_server *srv = NULL;
    if (meter_server_start(&cfg, &srv, &err) != 0) {
        fprintf(stderr, "meterd: %s\n", err.msg);
        return 1;
    }
    printf("meterd listening on %s:%u\n", cfg.listen_addr, (unsigned)meter_server_port(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fm_info("meterd: %s received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    meter_server_stop(srv);
    return 0;
}
