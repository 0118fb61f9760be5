#include "meter/plans.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/db.h"
#include "meter/fold.h"
#include "meter/metrics.h"

/* The plan's rules as the text parameters of plan_register and of the rated check. */
struct plan_params {
    char step_ms[24], min_ms[24], step_mb[16], min_mb[16], max_mb[16];
    char ghz[1024];
    const char *values[9];
};

static int plan_params(const struct bill_plan *plan, struct plan_params *p)
{
    const struct bill_rounding *r = bill_plan_rounding(plan);
    snprintf(p->step_ms, sizeof p->step_ms, "%" PRId64, r->step_ms);
    snprintf(p->min_ms, sizeof p->min_ms, "%" PRId64, r->min_ms);
    snprintf(p->step_mb, sizeof p->step_mb, "%" PRId32, r->step_mb);
    snprintf(p->min_mb, sizeof p->min_mb, "%" PRId32, r->min_mb);
    snprintf(p->max_mb, sizeof p->max_mb, "%" PRId32, r->max_mb);
    struct fm_buf b;
    fm_buf_init(&b, sizeof p->ghz - 1);
    fm_buf_puts(&b, "[");
    for (size_t i = 0; i < bill_plan_ghz_count(plan); i++) {
        int32_t mb;
        int64_t mhz;
        bill_plan_ghz_at(plan, i, &mb, &mhz);
        fm_buf_printf(&b, "%s[%" PRId32 ", %" PRId64 "]", i ? ", " : "", mb, mhz);
    }
    fm_buf_puts(&b, "]");
    int rc = b.failed ? -1 : 0;
    if (rc == 0)
        memcpy(p->ghz, b.data, b.len + 1);
    fm_buf_free(&b);
    const char *values[9] = {bill_plan_id(plan), p->step_ms, p->min_ms,
                             r->include_init ? "true" : "false",
                             r->basis == BILL_MEMORY_OBSERVED ? "observed" : "configured",
                             p->step_mb, p->min_mb, p->max_mb, p->ghz};
    memcpy(p->values, values, sizeof values);
    return rc;
}

/*
 * Register one plan whose rules the database does not have yet. A plan is rated anew from
 * the stored invocations, so no delta may be pending: the transaction holds off batches
 * (which take ROW SHARE on plans), folds what they left, then registers. Returns 1 when the
 * plan was added or changed, 0 when another meterd was first, -1 with err set.
 */
static int register_one(PGconn *conn, const struct bill_plan *plan, struct plan_params *p,
                        struct fm_err *err)
{
    if (db_command(conn, "BEGIN", err) != 0)
        return -1;
    int rc = -1;
    long folded = 0;
    PGresult *res = NULL;
    if (db_command(conn, "LOCK TABLE plans IN EXCLUSIVE MODE", err) != 0 ||
        meter_usage_fold_in_transaction(conn, &folded, err) != 0)
        goto out;
    res = PQexecParams(conn, "SELECT plan_register($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
                       9, NULL, p->values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, bill_plan_id(plan));
        goto out;
    }
    rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (db_command(conn, "COMMIT", err) != 0)
        rc = -1;
    else
        metrics_fold(true, folded); /* what it folded is committed, and nothing is pending */
out:
    PQclear(res);
    if (rc < 0)
        PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}

int meter_plans_register(PGconn *conn, const struct bill_catalog *cat, int *changed,
                         struct fm_err *err)
{
    int n = 0;
    for (size_t i = 0; i < bill_catalog_plan_count(cat); i++) {
        const struct bill_plan *plan = bill_catalog_plan_at(cat, i);
        struct plan_params p;
        if (plan_params(plan, &p) != 0)
            return fm_err_set(err, "plan %s: memory table too large", bill_plan_id(plan));
        /* Unchanged plans (every start but the first) need no lock. */
        int rated = meter_plan_is_rated(conn, plan, err);
        int added = rated == 0 ? register_one(conn, plan, &p, err) : 0;
        if (rated < 0 || added < 0)
            return -1;
        n += added;
    }
    /* plan_register rates anew by joining plans to the stored invocations: its planner must
     * know how few plans there are. Tables this small are never analyzed by autovacuum, and
     * without statistics the planner assumes hundreds of rows. */
    PGresult *res = PQexec(conn, "ANALYZE plans, plan_clock");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_err_from(err, conn, res, "analyzing plans");
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (changed)
        *changed = n;
    return 0;
}

int meter_plan_is_rated(PGconn *conn, const struct bill_plan *plan, struct fm_err *err)
{
    struct plan_params p;
    if (plan_params(plan, &p) != 0)
        return 0;
    PGresult *res = PQexecParams(conn,
                                 "SELECT 1 FROM plans WHERE plan = $1 AND step_ms = $2"
                                 " AND min_ms = $3 AND include_init = $4 AND basis = $5"
                                 " AND step_mb = $6 AND min_mb = $7 AND max_mb = $8"
                                 " AND ghz = $9::jsonb",
                                 9, NULL, p.values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "reading plans");
        PQclear(res);
        return -1;
    }
    int rated = PQntuples(res) == 1;
    PQclear(res);
    return rated;
}
