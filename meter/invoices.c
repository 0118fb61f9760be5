#include "meter/invoices.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/usage.h"
#include "common/db.h"
#include "common/timeutil.h"

static int64_t col_int(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* The tenant's plan id into buf; 1 found, 0 no such tenant, -1 database error. */
static int tenant_plan(PGconn *conn, const char *tenant, char *buf, size_t n,
                       struct fm_err *err)
{
    const char *params[] = {tenant};
    PGresult *res = PQexecParams(conn, "SELECT plan FROM tenants WHERE tenant = $1", 1, NULL,
                                 params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "reading the tenant");
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) == 1;
    if (found)
        snprintf(buf, n, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}

/* Stream the period's finished invocations into use, rounding each under plan. */
static int add_invocations(PGconn *conn, const struct bill_plan *plan, const char *tenant,
                           int64_t from_us, int64_t to_us, struct bill_usage *use,
                           struct fm_err *err)
{
    char from[FM_TIME_BUFSZ], to[FM_TIME_BUFSZ];
    fm_time_format(from_us, from, sizeof from);
    fm_time_format(to_us, to, sizeof to);
    const char *params[] = {tenant, from, to};
    if (!PQsendQueryParams(conn,
                           "SELECT function, duration_us, init_us, memory_mb, max_rss_kb,"
                           "       cpu_user_us, cpu_sys_us, bytes_out"
                           "  FROM invocations"
                           " WHERE tenant = $1 AND started_at >= $2 AND started_at < $3"
                           "   AND has_stop",
                           3, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        db_err_from(err, conn, NULL, "reading invocations");
        return -1;
    }
    int rc = 0;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE && rc == 0) {
            struct bill_invocation inv = {
                .duration_us = col_int(res, 1),
                .init_us = col_int(res, 2),
                .memory_mb = (int32_t)col_int(res, 3),
                .max_rss_kb = col_int(res, 4),
                .cpu_user_us = col_int(res, 5),
                .cpu_sys_us = col_int(res, 6),
                .bytes_out = col_int(res, 7),
            };
            if (bill_usage_add_invocation(use, plan, PQgetvalue(res, 0, 0), &inv, err) !=
                BILL_OK)
                rc = -1; /* keep reading so the connection is left idle */
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
            db_err_from(err, conn, res, "reading invocations");
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

enum meter_invoice_status meter_invoice_price(PGconn *conn, const struct bill_catalog *cat,
                                              const char *tenant, const char *period,
                                              const char *plan_id, struct bill_invoice **out,
                                              struct fm_err *err)
{
    int64_t from_us, to_us;
    if (fm_period_parse(period, &from_us, &to_us) != 0) {
        fm_err_set(err, "period: expected YYYY-MM, got '%s'", period);
        return METER_INVOICE_BAD_INPUT;
    }
    char own_plan[256];
    int found = tenant_plan(conn, tenant, own_plan, sizeof own_plan, err);
    if (found < 0)
        return METER_INVOICE_FAILED;
    if (found == 0) {
        fm_err_set(err, "tenant: no tenant '%s'", tenant);
        return METER_INVOICE_NO_TENANT;
    }
    const char *id = plan_id ? plan_id : own_plan;
    const struct bill_plan *plan = bill_catalog_plan(cat, id);
    if (plan == NULL) {
        fm_err_set(err, "plan: no plan '%s' in the catalog", id);
        return METER_INVOICE_NO_PLAN;
    }
    struct bill_usage *use = bill_usage_new();
    if (use == NULL) {
        fm_err_set(err, "out of memory");
        return METER_INVOICE_FAILED;
    }
    enum meter_invoice_status st = METER_INVOICE_FAILED;
    if (add_invocations(conn, plan, tenant, from_us, to_us, use, err) == 0 &&
        bill_price(plan, use, out, err) == BILL_OK)
        st = METER_INVOICE_OK;
    bill_usage_free(use);
    return st;
}
