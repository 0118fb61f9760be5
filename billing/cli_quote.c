/* faasbill quote: price a uniform workload under one plan, without a database. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "billing/invoice.h"
#include "billing/usage.h"
#include "common/cli.h"

#define CMD "quote"
#define MAX_MEMORY_MB 10240
#define MAX_INVOCATIONS INT64_C(1000000000000000) /* 10^15 a month */
#define MAX_MS INT64_C(86400000)                  /* a day per invocation */
#define MAX_EGRESS_KB INT64_C(1073741824)         /* a TiB per invocation */
#define OUTPUT_MAX (4 * 1024 * 1024)

static void help(const char *cmd)
{
    (void)cmd;
    printf("usage: faasbill quote (--plan ID | --plan-file FILE) --memory-mb M --invocations N\n"
           "                      --avg-duration-ms D [--observed-memory-mb M]\n"
           "                      [--cpu-ms-per-invocation C] [--egress-kb-per-invocation K]\n"
           "                      [--no-free-tier] [--json] [--catalog DIR]\n\n"
           "Prices N identical invocations of D ms (up to 3 decimals) at M MB under a plan,\n"
           "rounding each invocation as the plan says. CPU time defaults to the duration,\n"
           "observed memory to the configured memory, egress to 0 (1 KB = 1024 bytes).\n"
           "--no-free-tier ignores the plan's free allowances. Plans come from --catalog DIR,\n"
           "else $FAASMETER_CATALOG, else the installed catalog; --plan-file reads one file.\n");
}

struct quote_args {
    const char *plan_id, *plan_file, *catalog;
    int64_t memory_mb, invocations, duration_us, observed_mb, cpu_us, egress_kb;
    bool have_memory, have_invocations, have_duration, have_cpu, no_free, json;
};

/* Returns -1 to go on, else the exit code (0 after --help, 2 on bad usage). */
static int parse(int argc, char **argv, struct quote_args *q)
{
    q->observed_mb = -1;
    const struct fm_cli_opt opts[] = {
        FM_OPT_FLAG("--json", &q->json),
        FM_OPT_FLAG("--no-free-tier", &q->no_free),
        FM_OPT_TEXT("--plan", &q->plan_id),
        FM_OPT_TEXT("--plan-file", &q->plan_file),
        FM_OPT_TEXT("--catalog", &q->catalog),
        FM_OPT_INT("--memory-mb", &q->memory_mb, &q->have_memory, 1, MAX_MEMORY_MB),
        FM_OPT_INT("--observed-memory-mb", &q->observed_mb, NULL, 1, MAX_MEMORY_MB),
        FM_OPT_INT("--invocations", &q->invocations, &q->have_invocations, 0,
                   MAX_INVOCATIONS),
        FM_OPT_MS("--avg-duration-ms", &q->duration_us, &q->have_duration, MAX_MS),
        FM_OPT_MS("--cpu-ms-per-invocation", &q->cpu_us, &q->have_cpu, MAX_MS),
        FM_OPT_INT("--egress-kb-per-invocation", &q->egress_kb, NULL, 0, MAX_EGRESS_KB),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasbill", .cmd = CMD, .opts = opts, .help = help};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    const char *missing = !q->plan_id && !q->plan_file ? "--plan or --plan-file"
                          : !q->have_memory            ? "--memory-mb"
                          : !q->have_invocations       ? "--invocations"
                          : !q->have_duration          ? "--avg-duration-ms"
                                                       : NULL;
    if (missing) {
        cli_error(CMD, "%s: required (try faasbill quote --help)", missing);
        return 2;
    }
    if (q->plan_id && q->plan_file) {
        cli_error(CMD, "--plan-file: give either --plan or --plan-file, not both");
        return 2;
    }
    return -1;
}

/*
 * all = each x --invocations, quantity by quantity, so that one too large for 64 bits is
 * told with the options it comes from. Returns 0, or 2 after printing the error.
 */
static int scale(const struct quote_args *q, const struct bill_plan *plan,
                 const struct bill_quantities *each, struct bill_quantities *all)
{
    bool observed =
        bill_plan_rounding(plan)->basis == BILL_MEMORY_OBSERVED && q->observed_mb >= 0;
    const char *memory = observed ? "--avg-duration-ms and --observed-memory-mb"
                                  : "--avg-duration-ms and --memory-mb";
    const struct {
        int64_t v, *to;
        const char *from;
    } f[] = {
        {each->requests, &all->requests, "--invocations"},
        {each->billed_ms, &all->billed_ms, "--avg-duration-ms"},
        {each->mb_ms, &all->mb_ms, memory},
        {each->mhz_ms, &all->mhz_ms, memory},
        {each->cpu_us, &all->cpu_us,
         q->have_cpu ? "--cpu-ms-per-invocation" : "--avg-duration-ms (the CPU time)"},
        {each->egress_bytes, &all->egress_bytes, "--egress-kb-per-invocation"},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (__builtin_mul_overflow(f[i].v, q->invocations, f[i].to)) {
            cli_error(CMD, "%s times --invocations %" PRId64 ": usage quantities overflow 64 "
                           "bits",
                      f[i].from, q->invocations);
            return 2;
        }
    return 0;
}

int cli_quote(int argc, char **argv)
{
    struct quote_args q = {0};
    int rc = parse(argc, argv, &q);
    if (rc >= 0)
        return rc;
    rc = 1;
    struct fm_err err = {{0}};
    struct bill_catalog *cat = NULL;
    struct bill_plan *own = NULL;
    struct bill_usage *use = NULL;
    struct bill_invoice *inv = NULL;
    struct fm_buf out;
    fm_buf_init(&out, OUTPUT_MAX);
    const struct bill_plan *plan = NULL;
    if (q.plan_file) {
        enum bill_status st = bill_plan_load_file(q.plan_file, &own, &err);
        if (st != BILL_OK) {
            /* The file is the user's input, whatever is wrong with it. */
            cli_error(CMD, "--plan-file: %s", err.msg);
            rc = st == BILL_ENOMEM ? 1 : 2;
            goto done;
        }
        plan = own;
    } else {
        if ((rc = cli_load_catalog(CMD, q.catalog, &cat)) != 0)
            goto done;
        if ((plan = bill_catalog_plan(cat, q.plan_id)) == NULL) {
            cli_error(CMD, "--plan: no plan '%s' in the catalog (see faasbill plans)",
                      q.plan_id);
            rc = 2;
            goto done;
        }
    }
    struct bill_invocation one = {
        .duration_us = q.duration_us,
        .memory_mb = (int32_t)q.memory_mb,
        .max_rss_kb = (q.observed_mb >= 0 ? q.observed_mb : q.memory_mb) * 1024,
        .cpu_user_us = q.have_cpu ? q.cpu_us : q.duration_us,
        .bytes_out = q.egress_kb * 1024,
    };
    struct bill_quantities each, all;
    struct bill_price_options opts = {.no_free_tier = q.no_free};
    enum bill_status st = bill_plan_round(plan, &one, &each, &err);
    if (st == BILL_OK && (rc = scale(&q, plan, &each, &all)) != 0)
        goto done;
    if (st == BILL_OK && (use = bill_usage_new()) == NULL)
        st = BILL_ENOMEM;
    if (st == BILL_OK)
        st = bill_usage_add_quantities(use, "workload", &all, &err);
    if (st == BILL_OK)
        st = bill_price_with(plan, use, &opts, &inv, &err);
    if (st != BILL_OK) {
        /* Every figure comes from the options and the plan: only memory is not input. */
        if (st == BILL_ENOMEM)
            cli_error(CMD, "out of memory");
        else
            cli_error(CMD, "--invocations %" PRId64 " under plan %s: %s", q.invocations,
                      bill_plan_id(plan), err.msg);
        rc = st == BILL_ENOMEM ? 1 : 2;
        goto done;
    }
    rc = 1;
    char ms[BILL_NUM_BUFSZ];
    bill_dec_format((struct bill_dec){.units = q.duration_us, .scale = 3}, ms, sizeof ms);
    if (!q.json)
        fm_buf_printf(&out,
                      "Workload: %" PRId64 " invocations of %s ms at %" PRId64
                      " MB, each billed as %" PRId64 " ms at %d MB%s\n",
                      q.invocations, ms, q.memory_mb, each.billed_ms,
                      (int)bill_plan_billed_mb(plan, one.memory_mb, one.max_rss_kb),
                      q.no_free ? " (no free tier)" : "");
    if (bill_invoice_render(inv, q.json ? BILL_FORMAT_JSON : BILL_FORMAT_TEXT, NULL, NULL,
                            &out) != 0) {
        cli_error(CMD, "output larger than %d bytes", OUTPUT_MAX);
        goto done;
    }
    fputs(out.data, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    fm_buf_free(&out);
    bill_invoice_free(inv);
    bill_usage_free(use);
    bill_plan_free(own);
    bill_catalog_free(cat);
    return rc;
}
