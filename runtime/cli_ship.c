#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/timeutil.h"
#include "runtime/cli.h"
#include "runtime/ship.h"

#define SHIP_DEADLINE_MS 30000

static const char usage[] =
    "usage: faasrun ship --spool DIR --meter URL [--meter-key KEY] [--deadline-ms N]\n"
    "\n"
    "Send every unsent record of the spool (the folder DIR, which must exist) to the\n"
    "metering service and print what it answered. Records it rejects go to\n"
    "DIR/dead-letter.ndjson with the reason. While it is unreachable the shipper retries\n"
    "until the deadline (default 30000 ms); the records stay in the spool when it gives up,\n"
    "or when an answer does not account for each record sent. Exit code 0 when all was\n"
    "sent, 1 when records stay, 2 for bad usage (a spool folder that does not exist).\n"
    "\n"
    "  --meter-key KEY   bearer key (default $FAASMETER_KEY)\n";

bool cli_check_meter(const char *value, void *to)
{
    if (!rt_ship_url_valid(value))
        return false;
    *(const char **)to = value;
    return true;
}

bool cli_check_folder(const char *value, void *to)
{
    if (*value == '\0')
        return false;
    *(const char **)to = value;
    return true;
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
    const char *dir = NULL, *meter = NULL, *key = NULL;
    int64_t deadline_ms = SHIP_DEADLINE_MS;
    const struct fm_cli_opt opts[] = {
        FM_OPT_CHECKED("--spool", &dir, cli_check_folder, CLI_FOLDER_EXPECTED),
        FM_OPT_CHECKED("--meter", &meter, cli_check_meter, CLI_METER_EXPECTED),
        FM_OPT_SECRET("--meter-key", &key),
        FM_OPT_INT("--deadline-ms", &deadline_ms, NULL, 1, 3600000),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasrun", .cmd = "ship", .opts = opts, .usage = usage};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    if (dir == NULL || meter == NULL) {
        fprintf(stderr, "faasrun ship: --spool and --meter are required\n");
        return CLI_USAGE;
    }
    struct fm_err err = {""};
    struct rt_spool *spool = NULL;
    /* A spool that is not there is a mistake on the command line, not an empty spool. */
    enum rt_status st = rt_spool_open_existing(dir, &spool, &err);
    if (st != RT_OK) {
        fprintf(stderr, "faasrun ship: --spool: %s\n", err.msg);
        return st == RT_EINVAL ? CLI_USAGE : CLI_FAILED;
    }
    rc = cli_ship_spool(spool, meter, key, deadline_ms, true);
    rt_spool_close(spool);
    return rc;
}
