/* faasbill invoice: price a tenant's month of stored usage. */
#include <stdio.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "billing/cli_args.h"
#include "billing/invoice.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/invoices.h"

#define CMD "invoice"

static void help(void)
{
    fputs("usage: faasbill invoice --tenant T --period YYYY-MM [--plan ID]\n"
          "                        [--format text|json|csv] [--catalog DIR] [--db CONNINFO]\n"
          "\n"
          "Prices the tenant's finished invocations that started in the period (a calendar\n"
          "month, UTC) under its plan, or under --plan. Each invocation is rounded on its\n"
          "own, as the provider does; each line is rounded half-up to the cent and the total\n"
          "is the sum of the lines. Per-function shares of each line add up to the line.\n",
          stdout);
}

struct invoice_args {
    const char *tenant, *period, *plan, *catalog, *db;
    enum bill_format format;
};

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, struct invoice_args *o)
{
    struct cli_args a = {.cmd = CMD, .argc = argc, .argv = argv};
    o->format = BILL_FORMAT_TEXT;
    for (a.i = 1; a.i < argc; a.i++) {
        const char *v = NULL;
        int m;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help();
            return 0;
        } else if ((m = cli_option(&a, "--tenant", &v)) != 0) {
            if (m < 0)
                return 2;
            o->tenant = v;
        } else if ((m = cli_option(&a, "--period", &v)) != 0) {
            int64_t from, to;
            if (m < 0)
                return 2;
            if (fm_period_parse(v, &from, &to) != 0) {
                cli_error(CMD, "--period: expected YYYY-MM, got '%s'", v);
                return 2;
            }
            o->period = v;
        } else if ((m = cli_option(&a, "--plan", &v)) != 0) {
            if (m < 0)
                return 2;
            o->plan = v;
        } else if ((m = cli_option(&a, "--format", &v)) != 0) {
            if (m < 0)
                return 2;
            if (bill_format_from_name(v, &o->format) != 0) {
                cli_error(CMD, "--format: expected text, json or csv, got '%s'", v);
                return 2;
            }
        } else if ((m = cli_option(&a, "--catalog", &v)) != 0) {
            if (m < 0)
                return 2;
            o->catalog = v;
        } else if ((m = cli_option(&a, "--db", &v)) != 0) {
            if (m < 0)
                return 2;
            o->db = v;
        } else {
            return cli_unknown(&a);
        }
    }
    const char *missing = !o->tenant ? "--tenant" : !o->period ? "--period" : NULL;
    if (missing) {
        cli_error(CMD, "%s: required (try faasbill invoice --help)", missing);
        return 2;
    }
    return -1;
}

int cli_invoice(int argc, char **argv)
{
    struct invoice_args o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct bill_catalog *cat = NULL;
    PGconn *conn = NULL;
    struct bill_invoice *inv = NULL;
    struct fm_buf out;
    struct fm_err err;
    fm_buf_init(&out, 64u << 20);
    rc = 1;
    if (cli_load_catalog(CMD, o.catalog, &cat) != 0)
        goto out;
    if (o.plan && bill_catalog_plan(cat, o.plan) == NULL) {
        cli_error(CMD, "--plan: no plan '%s' in the catalog (faasbill plans lists them)",
                  o.plan);
        rc = 2;
        goto out;
    }
    conn = db_connect(db_conninfo(o.db), &err);
    if (conn == NULL) {
        cli_error(CMD, "%s", err.msg);
        goto out;
    }
    switch (meter_invoice_price(conn, cat, o.tenant, o.period, o.plan, &inv, &err)) {
    case METER_INVOICE_OK:
        break;
    case METER_INVOICE_NO_TENANT:
        cli_error(CMD, "--tenant: no tenant '%s' (faasbill tenant list)", o.tenant);
        goto out;
    default:
        cli_error(CMD, "%s", err.msg);
        goto out;
    }
    if (bill_invoice_render(inv, o.format, o.tenant, o.period, &out) != 0 || out.failed) {
        cli_error(CMD, "the invoice could not be rendered");
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = 0;
out:
    fm_buf_free(&out);
    bill_invoice_free(inv);
    PQfinish(conn);
    bill_catalog_free(cat);
    return rc;
}
