/* faasbill compare and faasbill report: a tenant's month, or every tenant's, against servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/cli.h"
#include "common/cli.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/compare_stats.h"
#include "reports/cli_common.h"

struct compare_args {
    const char *cmd, *tenant, *period, *catalog, *db, *output;
    const char *servers[CLI_MAX_SERVERS];
    size_t nservers;
    enum report_format format;
};

static void help(const char *cmd)
{
    if (strcmp(cmd, "report") == 0) {
        fputs("usage: faasbill report --period YYYY-MM -o FILE.html [--server ID]...\n"
              "                       [--catalog DIR] [--db CONNINFO]\n\n"
              "Writes one HTML page for every tenant: totals, each tenant's bill against the\n"
              "servers its busiest hour would need, the break-even volume, the top functions.\n"
              "A tenant whose plan is not in the catalog is shown as not priced; the page is\n"
              "still written, and the command then exits 1.\n",
              stdout);
        return;
    }
    fputs("usage: faasbill compare --tenant T --period YYYY-MM [--server ID]...\n"
          "                        [--format text|json|csv|html] [-o FILE]\n"
          "                        [--catalog DIR] [--db CONNINFO]\n\n"
          "Prices the tenant's month under its plan and every other catalog plan, sizes the\n"
          "servers (all, or each --server) for the busiest hour's mean concurrency (its\n"
          "execution time over the hour) by memory, by one concurrent execution per vCPU\n"
          "and by CPU time (a vCPU for each core kept busy), and finds the monthly volume\n"
          "where the pay-per-use bill meets the cheapest server's fee. A server with less\n"
          "memory than an invocation's configured memory is too small: it is not sized.\n"
          "Reads the usage rollups only. HTML is a self-contained page.\n",
          stdout);
}

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, struct compare_args *o)
{
    bool report = strcmp(o->cmd, "report") == 0;
    const struct fm_cli_opt opts[] = {
        FM_OPT_CHECKED("--period", &o->period, fm_cli_check_period, "YYYY-MM"),
        FM_OPT_LIST("--server", o->servers, &o->nservers, CLI_MAX_SERVERS),
        FM_OPT_CHECKED("-o", &o->output, cli_check_output, CLI_OUTPUT),
        FM_OPT_TEXT("--catalog", &o->catalog),
        FM_OPT_TEXT("--db", &o->db),
        /* The table ends here for report, which covers every tenant, in HTML. */
        report ? (struct fm_cli_opt)FM_OPT_END
               : (struct fm_cli_opt)FM_OPT_TEXT("--tenant", &o->tenant),
        FM_OPT_CHECKED("--format", &o->format, cli_check_report_format, CLI_REPORT_FORMATS),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasbill", .cmd = o->cmd, .opts = opts, .help = help};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    const char *missing = !report && !o->tenant ? "--tenant"
                          : !o->period          ? "--period"
                          : report && !o->output ? "-o"
                                                 : NULL;
    if (missing) {
        cli_error(o->cmd, "%s: required (try faasbill %s --help)", missing, o->cmd);
        return 2;
    }
    return o->tenant && cli_check_tenant(o->cmd, o->tenant) != 0 ? 2 : -1;
}

/* One tenant's comparison; prints the error. Returns 0, 1 or 2. */
static int compare_one(PGconn *conn, const struct bill_catalog *cat, const struct compare_args *o,
                       const char *tenant, const struct bill_server *const *servers,
                       size_t nservers, struct bill_stats **st, struct bill_comparison **cmp)
{
    struct fm_err err = {{0}};
    char plan[256];
    switch (meter_compare_stats(conn, cat, tenant, o->period, plan, sizeof plan, st, &err)) {
    case METER_INVOICE_OK:
        break;
    case METER_INVOICE_NO_TENANT:
        cli_error(o->cmd, "--tenant: no tenant '%s' (faasbill tenant list)", tenant);
        return 2;
    default:
        cli_error(o->cmd, "%s: %s", tenant, err.msg);
        return 1;
    }
    if (o->nservers && cli_check_server_currency(o->cmd, servers, nservers,
                                                 bill_catalog_plan(cat, plan), "the tenant's"))
        return 2;
    if (bill_compare(*st, plan, servers, nservers, tenant, o->period, cmp, &err) != BILL_OK) {
        cli_error(o->cmd, "%s: %s", tenant, err.msg);
        return 1;
    }
    return 0;
}

/* The tenants the every-tenant report could not price. */
struct unpriced {
    struct report_unpriced *list; /* its strings are owned here */
    size_t n;
};

static void unpriced_free(struct unpriced *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free((char *)u->list[i].tenant);
        free((char *)u->list[i].plan);
    }
    free(u->list);
}

/*
 * meter_compare_stats_all, tenant by tenant, when some tenant's plan is no longer in the
 * catalog: those are listed in unpriced, the others read as they would be alone (each in a
 * snapshot of its own). Returns METER_INVOICE_OK, or the status that stopped it (err set).
 */
static enum meter_invoice_status each_tenant(PGconn *conn, const struct bill_catalog *cat,
                                             const char *period,
                                             struct meter_tenant_stats **out, size_t *nout,
                                             struct unpriced *unpriced, struct fm_err *err)
{
    char **names = NULL;
    size_t nnames = 0, n = 0;
    enum meter_invoice_status rc = METER_INVOICE_FAILED;
    struct meter_tenant_stats *ts = NULL;
    if (meter_tenants(conn, &names, &nnames, err) != 0)
        return METER_INVOICE_FAILED;
    ts = calloc(nnames ? nnames : 1, sizeof *ts);
    unpriced->list = calloc(nnames ? nnames : 1, sizeof *unpriced->list);
    if (ts == NULL || unpriced->list == NULL) {
        fm_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nnames; i++) {
        struct meter_tenant_stats *t = &ts[n];
        rc = meter_compare_stats(conn, cat, names[i], period, t->plan, sizeof t->plan,
                                 &t->stats, err);
        if (rc == METER_INVOICE_OK) {
            t->tenant = names[i];
            names[i] = NULL;
            n++;
            continue;
        }
        if (rc == METER_INVOICE_NO_TENANT) /* removed meanwhile */
            continue;
        if (rc != METER_INVOICE_NO_PLAN)
            goto done;
        char plan[256];
        struct report_unpriced *u = &unpriced->list[unpriced->n];
        if (meter_tenant_plan(conn, names[i], plan, sizeof plan, err) != 1) {
            rc = METER_INVOICE_FAILED;
            goto done;
        }
        u->tenant = names[i];
        names[i] = NULL;
        u->reason = "its plan is not in the catalog";
        unpriced->n++;
        if ((u->plan = strdup(plan)) == NULL) {
            fm_err_set(err, "out of memory");
            rc = METER_INVOICE_FAILED;
            goto done;
        }
    }
    *out = ts;
    *nout = n;
    ts = NULL;
    rc = METER_INVOICE_OK;
done:
    meter_tenant_stats_free(ts, n);
    meter_tenants_free(names, nnames);
    return rc;
}

static int run(const char *cmd, int argc, char **argv)
{
    struct compare_args o = {.cmd = cmd, .format = REPORT_TEXT};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct bill_catalog *cat = NULL;
    PGconn *conn = NULL;
    struct fm_err err = {{0}};
    const struct bill_server *servers[CLI_MAX_SERVERS];
    size_t nservers = 0, ntenants = 0, done = 0;
    struct meter_tenant_stats *all = NULL;
    struct unpriced unpriced = {0};
    struct bill_comparison **cmps = NULL;
    struct fm_buf out;
    fm_buf_init(&out, CLI_OUTPUT_MAX);
    if ((rc = cli_load_catalog(cmd, o.catalog, &cat)) != 0)
        goto done;
    if ((rc = cli_pick_servers(cmd, cat, o.servers, o.nservers, servers, &nservers)) != 0)
        goto done;
    if ((rc = cli_connect(cmd, o.db, &conn)) != 0)
        goto done;
    rc = 1;
    if (o.tenant) {
        struct bill_stats *st = NULL;
        struct bill_comparison *cmp = NULL;
        rc = compare_one(conn, cat, &o, o.tenant, servers, nservers, &st, &cmp);
        if (rc == 0)
            rc = cli_write_comparison(cmd, cmp, o.format, o.output);
        bill_comparison_free(cmp);
        bill_stats_free(st);
        goto done;
    }
    enum meter_invoice_status read =
        meter_compare_stats_all(conn, cat, o.period, &all, &ntenants, &err);
    if (read == METER_INVOICE_NO_PLAN)
        read = each_tenant(conn, cat, o.period, &all, &ntenants, &unpriced, &err);
    if (read != METER_INVOICE_OK) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    cmps = calloc(ntenants ? ntenants : 1, sizeof *cmps);
    if (cmps == NULL) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    for (; done < ntenants; done++)
        if (bill_compare(all[done].stats, all[done].plan, servers, nservers, all[done].tenant,
                         o.period, &cmps[done], &err) != BILL_OK) {
            cli_error(cmd, "%s: %s", all[done].tenant, err.msg);
            goto done;
        }
    if (report_tenants_html(o.period, (const struct bill_comparison *const *)cmps, ntenants,
                            unpriced.list, unpriced.n, &out) != 0 ||
        out.failed) {
        cli_error(cmd, "the report could not be rendered (larger than %u bytes?)",
                  CLI_OUTPUT_MAX);
        goto done;
    }
    rc = cli_write_output(cmd, &out, o.output);
    if (rc == 0 && unpriced.n > 0) {
        /* Written, yet incomplete: said on stderr and in the exit code. */
        cli_error(cmd, "%zu tenant%s not priced, shown as such in %s: %s (plan %s): %s%s",
                  unpriced.n, unpriced.n == 1 ? "" : "s", o.output, unpriced.list[0].tenant,
                  unpriced.list[0].plan, unpriced.list[0].reason,
                  unpriced.n > 1 ? "; and others" : "");
        rc = 1;
    }
done:
    unpriced_free(&unpriced);
    for (size_t i = 0; i < ntenants && cmps; i++)
        bill_comparison_free(cmps[i]);
    free(cmps);
    meter_tenant_stats_free(all, ntenants);
    fm_buf_free(&out);
    PQfinish(conn);
    bill_catalog_free(cat);
    return rc;
}

int cli_compare(int argc, char **argv)
{
    return run("compare", argc, argv);
}

int cli_report(int argc, char **argv)
{
    return run("report", argc, argv);
}
