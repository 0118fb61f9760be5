/* faasbill simulate: price a described or replayed workload without storing it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/cli.h"
#include "common/cli.h"
#include "common/timeutil.h"
#include "reports/cli_common.h"
#include "reports/trace.h"

#define CMD "simulate"
#define MAX_INVOCATIONS INT64_C(1000000000000) /* 10^12 a month */
#define MAX_MS INT64_C(900000)                 /* 15 minutes per invocation */
#define MAX_PLANS 256
#define MONTH_US ((int64_t)TRACE_DAYS_PER_MONTH * BILL_DAY_US)

static void help(const char *cmd)
{
    (void)cmd;
    fputs("usage: faasbill simulate (--invocations N --avg-duration-ms D --memory-mb M\n"
          "                          | --trace DIR) [--plan ID] [--server ID]...\n"
          "                         [--format text|json|csv|html] [-o FILE] [--catalog DIR]\n\n"
          "Prices a workload under every catalog plan and against the servers, storing\n"
          "nothing. A described workload is N identical invocations a month (30 days),\n"
          "spread evenly, so its busiest hour is its mean: concurrency, memory x time and\n"
          "CPU time over the hour, each rounded up, as for stored usage. --trace replays\n"
          "one day in the Azure Functions 2019 layout (N_inv.csv, N_run.csv, N_mem.csv):\n"
          "minute counts spread evenly, durations and memory drawn reproducibly from each\n"
          "row's percentiles, the day multiplied by 30. A server with less memory than\n"
          "--memory-mb (or the trace's largest) is too small: it is not sized. --plan\n"
          "names the plan the verdict uses (default: the first catalog plan).\n",
          stdout);
}

struct sim_args {
    const char *trace, *plan, *catalog, *output;
    const char *servers[CLI_MAX_SERVERS];
    size_t nservers;
    int64_t invocations, duration_us, memory_mb;
    bool have_n, have_d, have_m;
    enum report_format format;
};

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, struct sim_args *o)
{
    const struct fm_cli_opt opts[] = {
        FM_OPT_INT("--invocations", &o->invocations, &o->have_n, 0, MAX_INVOCATIONS),
        FM_OPT_MS("--avg-duration-ms", &o->duration_us, &o->have_d, MAX_MS),
        FM_OPT_INT("--memory-mb", &o->memory_mb, &o->have_m, 1, 10240),
        FM_OPT_TEXT("--trace", &o->trace),
        FM_OPT_TEXT("--plan", &o->plan),
        FM_OPT_LIST("--server", o->servers, &o->nservers, CLI_MAX_SERVERS),
        FM_OPT_CHECKED("--format", &o->format, cli_check_report_format, CLI_REPORT_FORMATS),
        FM_OPT_CHECKED("-o", &o->output, cli_check_output, CLI_OUTPUT),
        FM_OPT_TEXT("--catalog", &o->catalog),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasbill", .cmd = CMD, .opts = opts, .help = help};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    bool described = o->have_n || o->have_d || o->have_m;
    if (o->trace && described) {
        cli_error(CMD, "--trace: give either --trace or a described workload, not both");
        return 2;
    }
    const char *missing = o->trace       ? NULL
                          : !o->have_n   ? "--invocations (or --trace)"
                          : !o->have_d   ? "--avg-duration-ms"
                          : !o->have_m   ? "--memory-mb"
                                         : NULL;
    if (missing) {
        cli_error(CMD, "%s: required (try faasbill simulate --help)", missing);
        return 2;
    }
    return -1;
}

struct progress {
    int64_t started;
    bool shown;
};

/* A bar on stderr once the replay has taken a moment, and only for a person watching. */
static void show_progress(int64_t done, int64_t total, void *ctx)
{
    struct progress *p = ctx;
    if (total <= 0 || fm_mono_us() - p->started < 500000)
        return;
    int width = 40, filled = (int)(done * width / total);
    char bar[48];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\rreplaying [%s] %3d%%", bar, (int)(done * 100 / total));
    p->shown = true;
}

/* Say what went wrong with the workload: the figures that do not fit come from the options
 * (or the trace), so they are named. */
static void workload_error(const struct sim_args *o, enum bill_status st, const char *msg)
{
    if (st == BILL_ENOMEM)
        cli_error(CMD, "out of memory");
    else if (o->trace)
        cli_error(CMD, "--trace %s: %s", o->trace, msg);
    char ms[BILL_NUM_BUFSZ];
    bill_dec_format((struct bill_dec){.units = o->duration_us, .scale = 3}, ms, sizeof ms);
    if (st != BILL_ENOMEM && !o->trace)
        cli_error(CMD, "--invocations %" PRId64 " of --avg-duration-ms %s at --memory-mb %" PRId64
                       ": %s",
                  o->invocations, ms, o->memory_mb, msg);
}

/* N identical invocations over a 30-day month, spread evenly. */
static enum bill_status described(const struct sim_args *o,
                                  const struct bill_plan *const *plans, size_t nplans,
                                  struct bill_stats **out, struct fm_err *err)
{
    int64_t from = fm_civil_to_us(2000, 1, 1); /* nominal: a described month has no date */
    struct bill_stats *st = NULL;
    enum bill_status rc =
        bill_stats_new(plans, nplans, from, from + MONTH_US, BILL_DAY_US, &st, err);
    if (rc != BILL_OK)
        return rc;
    struct bill_invocation one = {.duration_us = o->duration_us,
                                  .memory_mb = (int32_t)o->memory_mb,
                                  .max_rss_kb = o->memory_mb * 1024,
                                  .cpu_user_us = o->duration_us};
    /* Sized as stored usage is (billing/compare.h): spread evenly, every hour holds the
     * month's mean of execution time, of MB x time and of CPU time (CPU-bound: its
     * execution time), each rounded up; not a whole execution's memory for each one. */
    __int128 busy = (__int128)o->invocations * o->duration_us;
    int64_t peak = o->invocations ? (int64_t)((busy + MONTH_US - 1) / MONTH_US) : 0;
    if (peak < 1 && o->invocations)
        peak = 1;
    int64_t peak_mb = (int64_t)((busy * o->memory_mb + MONTH_US - 1) / MONTH_US);
    int64_t peak_cpu = (int64_t)((busy * 1000 + MONTH_US - 1) / MONTH_US);
    int64_t per_day = o->invocations / TRACE_DAYS_PER_MONTH;
    for (int d = 0; d < TRACE_DAYS_PER_MONTH; d++)
        bill_stats_add_timeline(st, from + d * BILL_DAY_US,
                                per_day + (d < o->invocations % TRACE_DAYS_PER_MONTH), 0, 0,
                                NULL);
    if (o->invocations > 0 &&
        ((rc = bill_stats_add(st, "workload", &one, 0, err)) != BILL_OK ||
         (rc = bill_stats_scale(st, o->invocations, MONTH_US, err)) != BILL_OK)) {
        bill_stats_free(st);
        return rc;
    }
    bill_stats_set_peak(st, peak, peak_mb, peak_cpu);
    *out = st;
    return BILL_OK;
}

int cli_simulate(int argc, char **argv)
{
    struct sim_args o = {.format = REPORT_TEXT};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct bill_catalog *cat = NULL;
    struct bill_stats *st = NULL;
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    const struct bill_plan *plans[MAX_PLANS];
    const struct bill_server *servers[CLI_MAX_SERVERS];
    size_t nservers = 0;
    if ((rc = cli_load_catalog(CMD, o.catalog, &cat)) != 0)
        goto done;
    if ((rc = cli_pick_servers(CMD, cat, o.servers, o.nservers, servers, &nservers)) != 0)
        goto done;
    rc = 2;
    size_t nplans = cli_catalog_plans(cat, plans, MAX_PLANS);
    if (nplans == 0) {
        cli_error(CMD, "the catalog has no plans");
        goto done;
    }
    const struct bill_plan *verdict = o.plan ? bill_catalog_plan(cat, o.plan) : plans[0];
    if (verdict == NULL) {
        cli_error(CMD, "--plan: no plan '%s' in the catalog (see faasbill plans)", o.plan);
        goto done;
    }
    if (o.nservers && cli_check_server_currency(CMD, servers, nservers, verdict, "the") != 0)
        goto done;
    rc = 1;
    if (o.trace) {
        struct progress p = {.started = fm_mono_us()};
        enum bill_status replayed = trace_replay(
            o.trace, plans, nplans, isatty(2) ? show_progress : NULL, &p, &st, &err);
        if (p.shown)
            fputs("\n", stderr);
        if (replayed != BILL_OK) {
            /* What the trace holds is the user's input; only running out of memory is not. */
            cli_error(CMD, "--trace: %s", err.msg);
            rc = replayed == BILL_ENOMEM ? 1 : 2;
            goto done;
        }
    } else if ((rc = described(&o, plans, nplans, &st, &err)) != BILL_OK) {
        workload_error(&o, rc, err.msg);
        rc = rc == BILL_ENOMEM ? 1 : 2;
        goto done;
    }
    enum bill_status compared = bill_compare(st, bill_plan_id(verdict), servers, nservers,
                                             o.trace ? "trace" : "workload", NULL, &cmp, &err);
    if (compared != BILL_OK) {
        workload_error(&o, compared, err.msg);
        rc = compared == BILL_ENOMEM ? 1 : 2;
        goto done;
    }
    rc = cli_write_comparison(CMD, cmp, o.format, o.output);
done:
    bill_comparison_free(cmp);
    bill_stats_free(st);
    bill_catalog_free(cat);
    return rc;
}
