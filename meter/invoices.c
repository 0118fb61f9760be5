#include "meter/invoices.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/money.h"
#include "billing/usage.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/plans.h"
#include "meter/fold.h"

static int64_t col_int(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

int meter_tenant_plan(PGconn *conn, const char *tenant, char *buf, size_t n,
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

/* The period's rollups under plan (each invocation was rated when it arrived). */
static int add_rated(PGconn *conn, const struct bill_plan *plan, const char *tenant,
                     int64_t from_us, struct bill_usage *use, struct fm_err *err)
{
    char month[FM_TIME_BUFSZ];
    fm_time_format(from_us, month, sizeof month);
    const char *params[] = {tenant, month, bill_plan_id(plan)};
    PGresult *res = PQexecParams(conn,
                                 "SELECT function, invocations, billed_ms, mb_ms, mhz_ms,"
                                 "       cpu_us, egress_bytes"
                                 "  FROM usage_rated"
                                 " WHERE tenant = $1 AND month = $2 AND plan = $3"
                                 "   AND invocations <> 0 ORDER BY function",
                                 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "reading rated usage");
        PQclear(res);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        struct bill_quantities q = {
            .requests = strtoll(PQgetvalue(res, i, 1), NULL, 10),
            .billed_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10),
            .mb_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10),
            .mhz_ms = strtoll(PQgetvalue(res, i, 4), NULL, 10),
            .cpu_us = strtoll(PQgetvalue(res, i, 5), NULL, 10),
            .egress_bytes = strtoll(PQgetvalue(res, i, 6), NULL, 10),
        };
        if (bill_usage_add_quantities(use, PQgetvalue(res, i, 0), &q, err) != BILL_OK)
            rc = -1;
    }
    PQclear(res);
    return rc;
}

int meter_invocations_each(PGconn *conn, const char *tenant, const char *from,
                          const char *to, meter_invocation_fn fn, void *ctx,
                          struct fm_err *err)
{
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
            rc = fn(ctx, PQgetvalue(res, 0, 0), &inv, err); /* read on: leave it idle */
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
            db_err_from(err, conn, res, "reading invocations");
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

struct round_into {
    const struct bill_plan *plan;
    struct bill_usage *use;
};

static int round_one(void *ctx, const char *function, const struct bill_invocation *inv,
                     struct fm_err *err)
{
    const struct round_into *r = ctx;
    return bill_usage_add_invocation(r->use, r->plan, function, inv, err) == BILL_OK ? 0 : -1;
}

/* Stream the period's finished invocations into use, rounding each under plan: for plans
 * the database does not rate (added to the catalog since the last registration). */
static int add_invocations(PGconn *conn, const struct bill_plan *plan, const char *tenant,
                           int64_t from_us, int64_t to_us, struct bill_usage *use,
                           struct fm_err *err)
{
    char from[FM_TIME_BUFSZ], to[FM_TIME_BUFSZ];
    fm_time_format(from_us, from, sizeof from);
    fm_time_format(to_us, to, sizeof to);
    struct round_into r = {plan, use};
    return meter_invocations_each(conn, tenant, from, to, round_one, &r, err);
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
    int found = meter_tenant_plan(conn, tenant, own_plan, sizeof own_plan, err);
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
    int rated = meter_plan_is_rated(conn, plan, err);
    if (rated < 0)
        goto out;
    int got = rated ? add_rated(conn, plan, tenant, from_us, use, err)
                    : add_invocations(conn, plan, tenant, from_us, to_us, use, err);
    if (got == 0 && bill_price(plan, use, out, err) == BILL_OK)
        st = METER_INVOICE_OK;
out:
    bill_usage_free(use);
    return st;
}

/* ---- Stored invoices ------------------------------------------------------------------ */

/* Run a parameterised statement; NULL with err set unless it returned what was expected. */
static PGresult *query(PGconn *conn, const char *sql, int n, const char *const *params,
                       const char *what, struct fm_err *err)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        db_err_from(err, conn, res, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* A stored amount ("-12.34", "1500", "0.011") in units of 10^-digits, the minor unit of
 * its currency, to which it was rounded before it was stored. -1 when it is not one. */
static int stored_amount(const char *s, int digits, int64_t *out)
{
    bool neg = *s == '-';
    struct bill_dec d;
    __int128 units;
    if (bill_dec_parse(s + neg, &d) != 0 || bill_dec_units_at(d, digits, &units) != 0 ||
        units > INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)units : (int64_t)units;
    return 0;
}

void meter_invoice_clear(struct meter_invoice *inv)
{
    free(inv->json);
    free(inv->text);
    free(inv->csv);
    inv->json = inv->text = inv->csv = NULL;
}

enum meter_invoice_status meter_invoice_get(PGconn *conn, int64_t id, const char *tenant,
                                            const char *period, struct meter_invoice *out,
                                            struct fm_err *err)
{
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)id);
    const char *params[] = {idbuf, tenant ? tenant : "", period ? period : ""};
    PGresult *res = query(conn,
                          "SELECT invoice_id, tenant, period, status,"
                          "       jsonb_build_object('invoice_id', invoice_id, 'status', status,"
                          "                          'finalized_at', finalized_at)"
                          "         || document,"
                          "       text_render, csv_render"
                          "  FROM invoices"
                          " WHERE CASE WHEN $1::bigint >= 0 THEN invoice_id = $1::bigint"
                          "            ELSE tenant = $2 AND period = $3 END",
                          3, params, "reading the invoice", err);
    if (res == NULL)
        return METER_INVOICE_FAILED;
    if (PQntuples(res) != 1) {
        PQclear(res);
        fm_err_set(err, "invoice: no such invoice");
        return METER_INVOICE_NOT_FOUND;
    }
    struct meter_invoice inv = {.id = strtoll(PQgetvalue(res, 0, 0), NULL, 10)};
    snprintf(inv.tenant, sizeof inv.tenant, "%s", PQgetvalue(res, 0, 1));
    snprintf(inv.period, sizeof inv.period, "%s", PQgetvalue(res, 0, 2));
    snprintf(inv.status, sizeof inv.status, "%s", PQgetvalue(res, 0, 3));
    /* A heading that says which invoice this is and whether it can still change. */
    struct fm_buf text;
    fm_buf_init(&text, 64u << 20);
    fm_buf_printf(&text, "Invoice: %lld (%s)\n%s", (long long)inv.id, inv.status,
                  PQgetvalue(res, 0, 5));
    inv.json = strdup(PQgetvalue(res, 0, 4));
    inv.text = fm_buf_steal(&text);
    inv.csv = strdup(PQgetvalue(res, 0, 6));
    PQclear(res);
    if (inv.json == NULL || inv.text == NULL || inv.csv == NULL) {
        meter_invoice_clear(&inv);
        fm_err_set(err, "out of memory");
        return METER_INVOICE_FAILED;
    }
    *out = inv;
    return METER_INVOICE_OK;
}

/* What to do about a correction no invoice can carry. */
#define SETTLED "; once it is settled, close the month (faasbill invoice --close)"

/* Corrections for earlier finalized periods whose usage changed since they were frozen,
 * but for months closed to them (meter_invoice_close). */
static enum meter_invoice_status add_adjustments(PGconn *conn, const struct bill_catalog *cat,
                                                 const char *tenant, const char *period,
                                                 struct bill_invoice *inv, struct fm_err *err)
{
    const char *params[] = {tenant, period};
    PGresult *res = query(conn,
                          "SELECT i.invoice_id, i.period, i.plan, i.usage_total,"
                          "       i.currency,"
                          "       coalesce((SELECT sum(a.amount)"
                          "                   FROM invoice_adjustments a JOIN invoices c"
                          "                     ON c.tenant = a.tenant"
                          "                    AND c.invoice_id = a.invoice_id"
                          "                  WHERE a.tenant = i.tenant"
                          "                    AND a.for_invoice_id = i.invoice_id"
                          "                    AND c.status = 'final'), 0)"
                          "  FROM invoices i"
                          " WHERE i.tenant = $1 AND i.status = 'final' AND i.period < $2"
                          "   AND i.closed_at IS NULL"
                          " ORDER BY i.period",
                          2, params, "reading finalized invoices", err);
    if (res == NULL)
        return METER_INVOICE_FAILED;
    enum meter_invoice_status st = METER_INVOICE_OK;
    for (int i = 0; i < PQntuples(res) && st == METER_INVOICE_OK; i++) {
        struct bill_invoice *now = NULL;
        const char *old_period = PQgetvalue(res, i, 1);
        st = meter_invoice_price(conn, cat, tenant, old_period, PQgetvalue(res, i, 2), &now,
                                 err);
        if (st != METER_INVOICE_OK) {
            fm_err_prefix(err, "repricing invoice %s (%s)", PQgetvalue(res, i, 0), old_period);
            st = METER_INVOICE_FAILED;
            break;
        }
        /* The month as billed and as priced now must be in one currency to be compared:
         * a plan file whose currency changed since cannot say what the month lacked. */
        const char *id = PQgetvalue(res, i, 0), *billed_in = PQgetvalue(res, i, 4);
        if (strcmp(billed_in, now->currency) != 0) {
            fm_err_set(err, "invoice %s (%s) was billed in %s, and its plan now bills in %s: "
                            "its correction cannot be worked out" SETTLED,
                       id, old_period, billed_in, now->currency);
            bill_invoice_free(now);
            st = METER_INVOICE_BAD_INPUT;
            break;
        }
        int64_t own, adjusted;
        if (stored_amount(PQgetvalue(res, i, 3), now->minor_digits, &own) != 0 ||
            stored_amount(PQgetvalue(res, i, 5), now->minor_digits, &adjusted) != 0) {
            /* Only an invoice stored before amounts kept their currency's minor unit. */
            fm_err_set(err, "invoice %s (%s): its amounts %s and %s have more decimals than "
                            "%s has; it was priced before amounts kept their currency's minor "
                            "unit" SETTLED,
                       id, old_period, PQgetvalue(res, i, 3), PQgetvalue(res, i, 5),
                       now->currency);
            bill_invoice_free(now);
            st = METER_INVOICE_BAD_INPUT;
            break;
        }
        int64_t charged = now->total - own - adjusted;
        /* Amounts in two currencies do not add up: a tenant moved to a plan billed in
         * another currency cannot carry the correction of a month billed in the first. */
        if (charged != 0 && strcmp(now->currency, inv->currency) != 0) {
            char amount[BILL_NUM_BUFSZ];
            bill_money_format(charged, now->minor_digits, amount, sizeof amount);
            fm_err_set(err, "invoice %s (%s) was billed in %s, and this one is in %s: its "
                            "correction of %s %s cannot be carried" SETTLED,
                       id, old_period, now->currency, inv->currency, amount, now->currency);
            bill_invoice_free(now);
            st = METER_INVOICE_BAD_INPUT;
            break;
        }
        bill_invoice_free(now);
        if (charged != 0 &&
            bill_invoice_add_adjustment(inv, old_period, strtoll(id, NULL, 10), charged, err) !=
                BILL_OK)
            st = METER_INVOICE_FAILED;
    }
    PQclear(res);
    return st;
}

/* The invoice's lines as rows of invoice_lines and invoice_adjustments. */
static int store_lines(PGconn *conn, const char *tenant, const char *id,
                       const struct bill_invoice *inv, struct fm_err *err)
{
    const char *del[] = {tenant, id};
    PGresult *res = query(conn,
                          "DELETE FROM invoice_lines WHERE tenant = $1 AND invoice_id = $2;",
                          2, del, "replacing invoice lines", err);
    if (res == NULL)
        return -1;
    PQclear(res);
    res = query(conn, "DELETE FROM invoice_adjustments WHERE tenant = $1 AND invoice_id = $2",
                2, del, "replacing invoice adjustments", err);
    if (res == NULL)
        return -1;
    PQclear(res);
    for (size_t i = 0; i < inv->nlines; i++) {
        const struct bill_line *l = &inv->lines[i];
        char no[24], amount[BILL_NUM_BUFSZ];
        snprintf(no, sizeof no, "%zu", i + 1);
        bill_money_format(l->amount, inv->minor_digits, amount, sizeof amount);
        const char *p[] = {tenant, id, no, l->item, bill_meter_info(l->meter)->name,
                           l->quantity, l->unit_price, amount};
        res = query(conn,
                    "INSERT INTO invoice_lines (tenant, invoice_id, line_no, item, meter,"
                    " quantity, unit_price, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    8, p, "storing an invoice line", err);
        if (res == NULL)
            return -1;
        PQclear(res);
    }
    for (size_t i = 0; i < inv->nadjustments; i++) {
        const struct bill_adjustment *a = &inv->adjustments[i];
        char for_id[24], amount[BILL_NUM_BUFSZ];
        snprintf(for_id, sizeof for_id, "%lld", (long long)a->invoice_id);
        bill_money_format(a->amount, inv->minor_digits, amount, sizeof amount);
        const char *p[] = {tenant, id, for_id, a->period, amount};
        res = query(conn,
                    "INSERT INTO invoice_adjustments (tenant, invoice_id, for_invoice_id,"
                    " for_period, amount) VALUES ($1, $2, $3, $4, $5)",
                    5, p, "storing an adjustment", err);
        if (res == NULL)
            return -1;
        PQclear(res);
    }
    return 0;
}

static int render_all(const struct bill_invoice *inv, const char *tenant, const char *period,
                      struct fm_buf out[3])
{
    static const enum bill_format formats[] = {BILL_FORMAT_JSON, BILL_FORMAT_TEXT,
                                               BILL_FORMAT_CSV};
    for (int i = 0; i < 3; i++) {
        fm_buf_init(&out[i], 64u << 20);
        if (bill_invoice_render(inv, formats[i], tenant, period, &out[i]) != 0 ||
            out[i].failed || out[i].data == NULL)
            return -1;
    }
    return 0;
}

enum meter_invoice_status meter_invoice_build(PGconn *conn, const struct bill_catalog *cat,
                                              const char *tenant, const char *period,
                                              const char *plan_id, bool finalize,
                                              struct meter_invoice *out, bool *created,
                                              struct fm_err *err)
{
    int64_t from_us, to_us;
    if (fm_period_parse(period, &from_us, &to_us) != 0) {
        fm_err_set(err, "period: expected YYYY-MM, got '%s'", period);
        return METER_INVOICE_BAD_INPUT;
    }
    enum meter_invoice_status st = METER_INVOICE_FAILED;
    struct bill_invoice *inv = NULL;
    struct fm_buf r[3] = {{0}};
    /* Pending usage first, outside the transaction: folding holds a lock that readers and
     * the upkeep wait on. */
    if (meter_usage_fold(conn, NULL, err) != 0)
        return METER_INVOICE_FAILED;
    PGresult *res = query(conn, "BEGIN", 0, NULL, "begin", err);
    if (res == NULL)
        return METER_INVOICE_FAILED;
    PQclear(res);
    const char *key[] = {tenant, period};
    /* One build or finalize of a tenant at a time: each then sees the adjustments that
     * the others froze, and no late usage is charged on two final invoices. */
    res = query(conn, "SELECT 1 FROM tenants WHERE tenant = $1 FOR UPDATE", 1, key,
                "locking the tenant", err);
    if (res == NULL)
        goto rollback;
    bool known = PQntuples(res) == 1;
    PQclear(res);
    if (!known) {
        fm_err_set(err, "tenant: no tenant '%s'", tenant);
        st = METER_INVOICE_NO_TENANT;
        goto rollback;
    }
    /* Builds of one period wait for each other; a final invoice is never rebuilt. */
    res = query(conn,
                "SELECT invoice_id, status FROM invoices"
                " WHERE tenant = $1 AND period = $2 FOR UPDATE",
                2, key, "reading the invoice", err);
    if (res == NULL)
        goto rollback;
    bool final = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "final") == 0;
    int64_t final_id = final ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    if (final) {
        PQclear(PQexec(conn, "ROLLBACK"));
        st = meter_invoice_get(conn, final_id, NULL, NULL, out, err);
        if (st == METER_INVOICE_OK) {
            fm_err_set(err, "invoice %lld for %s %s is final", (long long)final_id, tenant,
                       period);
            st = METER_INVOICE_FINAL;
        }
        return st;
    }
    st = meter_invoice_price(conn, cat, tenant, period, plan_id, &inv, err);
    if (st != METER_INVOICE_OK)
        goto rollback;
    int64_t usage_total = inv->total;
    st = add_adjustments(conn, cat, tenant, period, inv, err);
    if (st != METER_INVOICE_OK)
        goto rollback;
    st = METER_INVOICE_FAILED;
    if (render_all(inv, tenant, period, r) != 0) {
        fm_err_set(err, "the invoice could not be rendered");
        goto rollback;
    }
    char total[BILL_NUM_BUFSZ], own[BILL_NUM_BUFSZ];
    bill_money_format(inv->total, inv->minor_digits, total, sizeof total);
    bill_money_format(usage_total, inv->minor_digits, own, sizeof own);
    const char *row[] = {tenant, period,   inv->plan_id, inv->currency,
                         total,  own,      r[0].data,    r[1].data,
                         r[2].data};
    res = query(conn,
                "INSERT INTO invoices AS i (tenant, period, plan, currency, total, usage_total,"
                "                           document, text_render, csv_render)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)"
                " ON CONFLICT (tenant, period) DO UPDATE SET"
                "   plan = excluded.plan, currency = excluded.currency, total = excluded.total,"
                "   usage_total = excluded.usage_total, document = excluded.document,"
                "   text_render = excluded.text_render, csv_render = excluded.csv_render,"
                "   updated_at = now()"
                " RETURNING invoice_id, (xmax = 0)",
                9, row, "storing the invoice", err);
    if (res == NULL)
        goto rollback;
    char id[24];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    bool was_created = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    if (store_lines(conn, tenant, id, inv, err) != 0)
        goto rollback;
    if (finalize) {
        const char *which[] = {id};
        res = query(conn,
                    "UPDATE invoices SET status = 'final', finalized_at = now()"
                    " WHERE invoice_id = $1",
                    1, which, "finalizing the invoice", err);
        if (res == NULL)
            goto rollback;
        PQclear(res);
    }
    res = query(conn, "COMMIT", 0, NULL, "commit", err);
    if (res == NULL)
        goto out;
    PQclear(res);
    st = meter_invoice_get(conn, strtoll(id, NULL, 10), NULL, NULL, out, err);
    if (st == METER_INVOICE_OK && created)
        *created = was_created;
    goto out;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
out:
    for (int i = 0; i < 3; i++)
        fm_buf_free(&r[i]);
    bill_invoice_free(inv);
    return st;
}

enum meter_invoice_status meter_invoice_finalize(PGconn *conn, const struct bill_catalog *cat,
                                                 int64_t id, struct meter_invoice *out,
                                                 struct fm_err *err)
{
    struct meter_invoice cur = {0};
    enum meter_invoice_status st = meter_invoice_get(conn, id, NULL, NULL, &cur, err);
    if (st != METER_INVOICE_OK)
        return st;
    if (strcmp(cur.status, "final") == 0) {
        fm_err_set(err, "invoice %lld is final already", (long long)id);
        *out = cur;
        return METER_INVOICE_FINAL;
    }
    char plan[256] = "";
    const char *params[] = {cur.tenant, cur.period};
    PGresult *res = query(conn, "SELECT plan FROM invoices WHERE tenant = $1 AND period = $2",
                          2, params, "reading the invoice", err);
    if (res != NULL && PQntuples(res) == 1)
        snprintf(plan, sizeof plan, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    char tenant[sizeof cur.tenant], period[sizeof cur.period];
    memcpy(tenant, cur.tenant, sizeof tenant);
    memcpy(period, cur.period, sizeof period);
    meter_invoice_clear(&cur);
    if (plan[0] == '\0')
        return fm_err_set(err, "invoice %lld: cannot be read", (long long)id),
               METER_INVOICE_FAILED;
    /* Frozen as it is now: rebuilt (late usage, adjustments frozen meanwhile) and finalized
     * in one transaction. */
    return meter_invoice_build(conn, cat, tenant, period, plan, true, out, NULL, err);
}

enum meter_invoice_status meter_invoice_close(PGconn *conn, const char *tenant,
                                              const char *period, int64_t *id,
                                              struct fm_err *err)
{
    const char *params[] = {tenant, period};
    PGresult *res = query(conn,
                          "UPDATE invoices SET closed_at = coalesce(closed_at, now())"
                          " WHERE tenant = $1 AND period = $2 AND status = 'final'"
                          " RETURNING invoice_id",
                          2, params, "closing the month", err);
    if (res == NULL)
        return METER_INVOICE_FAILED;
    bool closed = PQntuples(res) == 1;
    if (closed)
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (closed)
        return METER_INVOICE_OK;
    res = query(conn, "SELECT invoice_id FROM invoices WHERE tenant = $1 AND period = $2", 2,
                params, "closing the month", err);
    if (res == NULL)
        return METER_INVOICE_FAILED;
    bool draft = PQntuples(res) == 1;
    if (draft)
        fm_err_set(err, "invoice %s for %s %s is a draft: finalize it first",
                   PQgetvalue(res, 0, 0), tenant, period);
    else
        fm_err_set(err, "no invoice for %s %s", tenant, period);
    PQclear(res);
    return draft ? METER_INVOICE_BAD_INPUT : METER_INVOICE_NOT_FOUND;
}
