/* faasbill invoice: price a tenant's month of stored usage. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "billing/invoice.h"
#include "common/buf.h"
#include "common/cli.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/invoices.h"

#define CMD "invoice"

static void help(const char *cmd)
{
    (void)cmd;
    fputs("usage: faasbill invoice --tenant T --period YYYY-MM [--plan ID] [--finalize]\n"
          "                        [--format text|json|csv] [--catalog DIR] [--db CONNINFO]\n"
          "       faasbill invoice --tenant T --period YYYY-MM --close [--db CONNINFO]\n"
          "\n"
          "Builds (or rebuilds, while it is a draft) the tenant's invoice for the period (a\n"
          "calendar month, UTC), stores it and prints it. It prices the finished invocations\n"
          "that started in the period under the tenant's plan, or under --plan. Each\n"
          "invocation is rounded on its own, as the provider does; each line is rounded\n"
          "half-up to the currency's minor unit (the cent for USD) and the total is the sum\n"
          "of the lines. Per-function shares of each line add up to the line. Usage that\n"
          "arrived for an earlier, final invoice after it was frozen appears as an\n"
          "adjustment line.\n"
          "--finalize freezes the invoice after building it. A final invoice is printed as\n"
          "it was issued and never rebuilt.\n"
          "--close closes a final month to corrections: usage that comes for it later is no\n"
          "longer carried by the next invoices. It is for a correction no invoice can carry\n"
          "(the tenant's plan now bills in another currency), once it is settled outside.\n",
          stdout);
}

struct invoice_args {
    const char *tenant, *period, *plan, *catalog, *db;
    enum bill_format format;
    bool finalize, close;
};

static bool check_format(const char *value, void *to)
{
    return bill_format_from_name(value, to) == 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, struct invoice_args *o)
{
    o->format = BILL_FORMAT_TEXT;
    const struct fm_cli_opt opts[] = {
        FM_OPT_FLAG("--finalize", &o->finalize),
        FM_OPT_FLAG("--close", &o->close),
        FM_OPT_TEXT("--tenant", &o->tenant),
        FM_OPT_CHECKED("--period", &o->period, fm_cli_check_period, "YYYY-MM"),
        FM_OPT_TEXT("--plan", &o->plan),
        FM_OPT_CHECKED("--format", &o->format, check_format, "text, json or csv"),
        FM_OPT_TEXT("--catalog", &o->catalog),
        FM_OPT_TEXT("--db", &o->db),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasbill", .cmd = CMD, .opts = opts, .help = help};
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    const char *missing = !o->tenant ? "--tenant" : !o->period ? "--period" : NULL;
    if (missing) {
        cli_error(CMD, "%s: required (try faasbill invoice --help)", missing);
        return 2;
    }
    if (o->close && (o->finalize || o->plan)) {
        cli_error(CMD, "--close: a month is closed on its own, without %s",
                  o->finalize ? "--finalize" : "--plan");
        return 2;
    }
    return cli_check_tenant(CMD, o->tenant) != 0 ? 2 : -1;
}

/* faasbill invoice --close: an exit code. */
static int close_month(PGconn *conn, const struct invoice_args *o)
{
    int64_t id = 0;
    struct fm_err err;
    enum meter_invoice_status st = meter_invoice_close(conn, o->tenant, o->period, &id, &err);
    if (st != METER_INVOICE_OK) {
        cli_error(CMD, "%s", err.msg);
        return st == METER_INVOICE_FAILED ? 1 : 2;
    }
    printf("invoice %lld (%s %s) closed: usage that comes for %s later is no longer carried\n",
           (long long)id, o->tenant, o->period, o->period);
    return 0;
}

int cli_invoice(int argc, char **argv)
{
    struct invoice_args o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct bill_catalog *cat = NULL;
    PGconn *conn = NULL;
    struct meter_invoice inv = {0};
    struct fm_err err;
    if ((rc = cli_load_catalog(CMD, o.catalog, &cat)) != 0)
        goto out;
    rc = 1;
    if (o.plan && bill_catalog_plan(cat, o.plan) == NULL) {
        cli_error(CMD, "--plan: no plan '%s' in the catalog (faasbill plans lists them)",
                  o.plan);
        rc = 2;
        goto out;
    }
    if ((rc = cli_connect(CMD, o.db, &conn)) != 0)
        goto out;
    rc = 1;
    if (o.close) {
        rc = close_month(conn, &o);
        goto out;
    }
    enum meter_invoice_status st =
        meter_invoice_build(conn, cat, o.tenant, o.period, o.plan, o.finalize, &inv, NULL, &err);
    if (st == METER_INVOICE_FINAL) {
        /* Printing a final invoice is fine; asking to change it is not. */
        if (o.plan || o.finalize) {
            cli_error(CMD, "%s: it cannot be rebuilt or finalized again", err.msg);
            goto out;
        }
    } else if (st == METER_INVOICE_NO_TENANT) {
        cli_error(CMD, "--tenant: no tenant '%s' (faasbill tenant list)", o.tenant);
        rc = 2;
        goto out;
    } else if (st != METER_INVOICE_OK) {
        cli_error(CMD, "%s", err.msg);
        goto out;
    }
    const char *text = o.format == BILL_FORMAT_JSON ? inv.json
                       : o.format == BILL_FORMAT_CSV ? inv.csv
                                                     : inv.text;
    fputs(text, stdout);
    if (*text && text[strlen(text) - 1] != '\n')
        fputs("\n", stdout);
    rc = 0;
out:
    meter_invoice_clear(&inv);
    PQfinish(conn);
    bill_catalog_free(cat);
    return rc;
}
