#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/opts.h"
#include "common/timeutil.h"
#include "runtime/cli.h"
#include "runtime/ship.h"

#define SHIP_DEADLINE_MS 30000

static const char usage[] =
    "usage: faasrun ship --spool DIR --meter URL [--meter-key KEY] [--deadline-ms N]\n"
    "\n"
    "Send every unsent record of the spool to the metering service and print what it\n"
    "answered. Records it rejects go to DIR/dead-letter.ndjson with the reason. While it is\n"
    "unreachable the shipper retries until the deadline (default 30000 ms); the records stay\n"
    "in the spool when it gives up.\n"
    "\n"
    "  --meter-key KEY   bearer key (default $FAASMETER_KEY)\n";

int cli_parse_int(const char *s, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_bad_option(const char *cmd, const struct option *opts, char **argv, int c)
{
    char what[256];
    fm_opt_refused(opts, argv, c, what, sizeof what);
    fprintf(stderr, "faasrun %s: %s (try faasrun %s --help)\n", cmd, what, cmd);
    return CLI_USAGE;
}

const char *cli_take_secret(char *arg)
{
    static char *kept; /* the copy lives as long as the process; one secret a command */
    free(kept);
    kept = strdup(arg);
    if (kept == NULL)
        return arg;
    memset(arg, 'x', strlen(arg));
    return kept;
}

int cli_ship_spool(struct rt_spool *spool, const char *meter_url, const char *key,
                   int64_t deadline_ms, bool summary)
{
    struct fm_err err = {""};
    struct rt_shipper *sh = NULL;
    struct rt_ship_stats stats = {0};
    if (key == NULL)
        key = getenv("FAASMETER_KEY");
    enum rt_status st = rt_shipper_new(meter_url, key, &sh, &err);
    if (st == RT_OK)
        st = rt_ship_spool(sh, spool, fm_mono_us() + deadline_ms * 1000, &stats, &err);
    rt_shipper_free(sh);
    if (summary)
        printf("accepted %zu, duplicates %zu, dead-lettered %zu\n", stats.accepted,
               stats.duplicates, stats.dead_lettered);
    if (stats.dead_lettered > 0)
        fprintf(stderr, "faasrun: %zu records refused, see %s/" RT_SPOOL_DEAD_LETTER "\n",
                stats.dead_lettered, rt_spool_dir(spool));
    if (st != RT_OK) {
        fprintf(stderr, "faasrun: records stay in the spool %s: %s\n", rt_spool_dir(spool),
                err.msg);
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cli_ship(int argc, char **argv)
{
    static const struct option opts[] = {
        {"spool", required_argument, NULL, 's'},   {"meter", required_argument, NULL, 'm'},
        {"meter-key", required_argument, NULL, 'k'}, {"deadline-ms", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *meter = NULL, *key = NULL;
    int64_t deadline_ms = SHIP_DEADLINE_MS;
    int c;
    opterr = 0;
    while ((c = fm_getopt(argc, argv, CLI_GETOPT, opts, NULL)) != -1) {
        switch (c) {
        case 's': dir = optarg; break;
        case 'm': meter = optarg; break;
        case 'k': key = cli_take_secret(optarg); break;
        case 'd':
            if (cli_parse_int(optarg, 3600000, &deadline_ms) != 0) {
                fprintf(stderr, "faasrun ship: --deadline-ms: expected 1-3600000\n");
                return CLI_USAGE;
            }
            break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_bad_option("ship", opts, argv, c);
        }
    }
    if (dir == NULL || meter == NULL || optind != argc) {
        fprintf(stderr, "faasrun ship: --spool and --meter are required, nothing else\n");
        return CLI_USAGE;
    }
    struct fm_err err = {""};
    struct rt_spool *spool = NULL;
    if (rt_spool_open(dir, 0, &spool, &err) != RT_OK) {
        fprintf(stderr, "faasrun ship: %s\n", err.msg);
        return CLI_FAILED;
    }
    int rc = cli_ship_spool(spool, meter, key, deadline_ms, true);
    rt_spool_close(spool);
    return rc;
}
