#include "meter/compare_stats.h"
#include "meter/fold.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/timeutil.h"
#include "meter/plans.h"

/*
 * Everything here is read from rollups, never from the invocation rows: a month of a large
 * tenant is millions of rows, and the report covers every tenant. The bills come from
 * usage_rated (rounded per invocation under every registered plan, as invoices read it),
 * the per-function totals from usage_monthly and the usage by hour from
 * usage_tenant_hourly. usage_hourly, a row per function, hour and memory size, is too
 * detailed to read for every tenant (millions of rows a month for 1,000 tenants).
 * The one exception is a plan the database does not rate (added to the catalog since the
 * last registration), whose usage can only come from rounding each invocation here.
 *
 * The load servers are sized for is therefore the busiest hour's mean, not the momentary
 * peak of overlapping executions (billing/compare.h says why that is also the right
 * sizing): per hour, execution time / 1 h, configured MB x execution time / 1 h and CPU
 * time / 1 h, each rounded up and each the maximum over the month on its own. Each
 * execution counts in every hour it runs in, for its time there (the busy_* columns,
 * schema 013): a run of a day is one execution at once through the hours it touches, not
 * 24 in its first.
 *
 * A server with less memory than one invocation's configured memory cannot run it: each
 * function's largest configured memory comes with its totals from usage_monthly (schema
 * 020), and the tenant's is the largest of them. A function whose month has no invocation
 * left does not count.
 */

#define TENANTS_MAX 1000000 /* tenants in one report; more is refused */

/* A decimal column as int64; -1 when it is not one (a sum beyond 64 bits). NULL reads 0. */
static int get_i64(const PGresult *res, int row, int col, int64_t *out)
{
    if (PQgetisnull(res, row, col)) {
        *out = 0;
        return 0;
    }
    const char *s = PQgetvalue(res, row, col);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Columns first..first+n-1 of row into v; -1 with err set when one does not fit. */
static int get_row(const PGresult *res, int row, int first, int n, int64_t *v,
                   struct fm_err *err)
{
    for (int c = 0; c < n; c++)
        if (get_i64(res, row, first + c, &v[c]) != 0) {
            fm_err_set(err, "usage total '%s' does not fit 64 bits",
                       PQgetvalue(res, row, first + c));
            return -1;
        }
    return 0;
}

/* Run a parameterised query expected to return rows; NULL with err set otherwise. */
static PGresult *rows(PGconn *conn, const char *sql, int n, const char *const *params,
                      const char *what, struct fm_err *err)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* The busiest hour's sums: execution µs, MB x µs, CPU µs. */
struct hour_load {
    int64_t busy_us, mb_us, cpu_us;
};

static void load_max(struct hour_load *max, const struct hour_load *h)
{
    max->busy_us = h->busy_us > max->busy_us ? h->busy_us : max->busy_us;
    max->mb_us = h->mb_us > max->mb_us ? h->mb_us : max->mb_us;
    max->cpu_us = h->cpu_us > max->cpu_us ? h->cpu_us : max->cpu_us;
}

/* ceil(a / b) for b > 0; 0 for a <= 0 (a retraction never frees capacity). */
static int64_t ceil_pos(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : a / b + (a % b != 0);
}

static void set_load(struct bill_stats *st, const struct hour_load *max)
{
    bill_stats_set_peak(st, ceil_pos(max->busy_us, BILL_HOUR_US),
                        ceil_pos(max->mb_us, BILL_HOUR_US),
                        ceil_pos(max->cpu_us, BILL_HOUR_US / 1000));
}

/* Per-function totals from usage_monthly: the select list both readers share. Mean memory
 * is mb_invocations / invocations. The rollup keeps no memory footprint, so the configured
 * memory stands in for it (it only matters to the break-even under a plan that bills
 * observed memory; the bills themselves come from usage_rated). */
#define FN_COLUMNS                                                                         \
    "function, invocations, errors, cold_starts, duration_us, init_us, mb_invocations,"   \
    " cpu_us, bytes_out, max_memory_mb"
#define FN_NCOLS 9

static int add_function_row(struct bill_stats *st, const PGresult *res, int row, int first,
                            struct fm_err *err)
{
    int64_t v[FN_NCOLS];
    if (get_row(res, row, first + 1, FN_NCOLS, v, err) != 0)
        return -1;
    struct bill_fn_stats f = {
        .function = PQgetvalue(res, row, first),
        .invocations = v[0],
        .errors = v[1],
        .cold_starts = v[2],
        .duration_us = v[3],
        .init_us = v[4],
        .memory_mb = v[5],
        .cpu_us = v[6],
        .bytes_out = v[7],
        .max_memory_mb = v[8],
    };
    if (__builtin_mul_overflow(v[5], INT64_C(1024), &f.max_rss_kb)) {
        fm_err_set(err, "function %s: memory total overflows", f.function);
        return -1;
    }
    if (f.invocations == 0)
        return 0; /* every invocation retracted: nothing to show */
    return bill_stats_add_function(st, &f, err) == BILL_OK ? 0 : -1;
}

/* usage_rated columns from first: plan, function, then the quantities. */
#define RATED_COLUMNS                                                                      \
    "plan, function, invocations, billed_ms, mb_ms, mhz_ms, cpu_us, egress_bytes"

static int add_rated_row(struct bill_stats *st, const bool *rated, const struct bill_catalog *cat,
                         const PGresult *res, int row, int first, struct fm_err *err)
{
    const char *plan = PQgetvalue(res, row, first);
    /* Rows of plans no longer in the catalog, or rated under rules since changed. */
    size_t i = 0, n = bill_catalog_plan_count(cat);
    while (i < n && strcmp(bill_plan_id(bill_catalog_plan_at(cat, i)), plan) != 0)
        i++;
    if (i == n || !rated[i])
        return 0;
    int64_t v[6];
    if (get_row(res, row, first + 2, 6, v, err) != 0)
        return -1;
    struct bill_quantities q = {.requests = v[0], .billed_ms = v[1], .mb_ms = v[2],
                                .mhz_ms = v[3], .cpu_us = v[4], .egress_bytes = v[5]};
    return bill_stats_add_rated(st, plan, PQgetvalue(res, row, first + 1), &q, err) == BILL_OK
               ? 0
               : -1;
}

/* Which catalog plans the database rates; *all says whether every one is. */
static int rated_plans(PGconn *conn, const struct bill_catalog *cat, bool *rated, bool *all,
                       struct fm_err *err)
{
    *all = true;
    for (size_t i = 0; i < bill_catalog_plan_count(cat); i++) {
        int r = meter_plan_is_rated(conn, bill_catalog_plan_at(cat, i), err);
        if (r < 0)
            return -1;
        rated[i] = r == 1;
        *all = *all && rated[i];
    }
    return 0;
}

struct unrated {
    const struct bill_catalog *cat;
    const bool *rated;
    struct bill_stats *st;
};

static int add_one_unrated(void *ctx, const char *function, const struct bill_invocation *inv,
                           struct fm_err *err)
{
    const struct unrated *u = ctx;
    for (size_t i = 0; i < bill_catalog_plan_count(u->cat); i++) {
        const struct bill_plan *plan = bill_catalog_plan_at(u->cat, i);
        struct bill_quantities q;
        if (u->rated[i])
            continue;
        if (bill_plan_round(plan, inv, &q, err) != BILL_OK ||
            bill_stats_add_rated(u->st, bill_plan_id(plan), function, &q, err) != BILL_OK)
            return -1;
    }
    return 0;
}

/* Stream the period's finished invocations, rounding each under the plans the database does
 * not rate; nothing is read when it rates them all. */
static int add_unrated(PGconn *conn, const struct bill_catalog *cat, const bool *rated,
                       const char *tenant, const char *from, const char *to,
                       struct bill_stats *st, struct fm_err *err)
{
    struct unrated u = {cat, rated, st};
    return meter_invocations_each(conn, tenant, from, to, add_one_unrated, &u, err);
}

/* The catalog's plans as the array bill_stats_new takes (caller frees), or NULL. */
static const struct bill_plan **plan_array(const struct bill_catalog *cat, struct fm_err *err)
{
    size_t n = bill_catalog_plan_count(cat);
    const struct bill_plan **plans = calloc(n ? n : 1, sizeof *plans);
    if (plans == NULL) {
        fm_err_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        plans[i] = bill_catalog_plan_at(cat, i);
    return plans;
}

/* One tenant's month from the rollups (folded by the caller) into st. */
static int read_tenant(PGconn *conn, const struct bill_catalog *cat, const bool *rated,
                       bool all_rated, const char *tenant, int64_t from_us, int64_t to_us,
                       struct bill_stats *st, struct fm_err *err)
{
    char from[FM_TIME_BUFSZ], to[FM_TIME_BUFSZ];
    fm_time_format(from_us, from, sizeof from);
    fm_time_format(to_us, to, sizeof to);
    const char *params[] = {tenant, from, to};
    int rc = -1;
    PGresult *res = rows(conn,
                         "SELECT " RATED_COLUMNS " FROM usage_rated"
                         " WHERE tenant = $1 AND month = $2 AND invocations <> 0"
                         " ORDER BY plan, function",
                         2, params, "reading rated usage", err);
    for (int i = 0; res && i < PQntuples(res); i++)
        if (add_rated_row(st, rated, cat, res, i, 0, err) != 0)
            goto done;
    if (res == NULL || (!all_rated && add_unrated(conn, cat, rated, tenant, from, to, st, err) != 0))
        goto done;
    PQclear(res);
    res = rows(conn,
               "SELECT " FN_COLUMNS " FROM usage_monthly"
               " WHERE tenant = $1 AND month = $2 ORDER BY function",
               2, params, "reading monthly usage", err);
    for (int i = 0; res && i < PQntuples(res); i++)
        if (add_function_row(st, res, i, 0, err) != 0)
            goto done;
    if (res == NULL)
        goto done;
    PQclear(res);
    /* By hour: the usage over time and the busiest hour's load. */
    res = rows(conn,
               "SELECT (extract(epoch FROM hour) * 1000000)::bigint,"
               "       invocations, errors, cold_starts, busy_us, busy_mb_us, busy_cpu_us"
               "  FROM usage_tenant_hourly"
               " WHERE tenant = $1 AND hour >= $2 AND hour < $3"
               " ORDER BY hour",
               3, params, "reading hourly usage", err);
    struct hour_load max = {0};
    for (int i = 0; res && i < PQntuples(res); i++) {
        int64_t v[7];
        if (get_row(res, i, 0, 7, v, err) != 0 ||
            bill_stats_add_timeline(st, v[0], v[1], v[2], v[3], err) != BILL_OK)
            goto done;
        load_max(&max, &(struct hour_load){v[4], v[5], v[6]});
    }
    if (res == NULL)
        goto done;
    set_load(st, &max);
    rc = 0;
done:
    PQclear(res);
    return rc;
}

enum meter_invoice_status meter_compare_stats(PGconn *conn, const struct bill_catalog *cat,
                                              const char *tenant, const char *period,
                                              char *own_plan, size_t n,
                                              struct bill_stats **out, struct fm_err *err)
{
    int64_t from_us, to_us;
    char plan[256];
    if (fm_period_parse(period, &from_us, &to_us) != 0) {
        fm_err_set(err, "period: expected YYYY-MM, got '%s'", period);
        return METER_INVOICE_BAD_INPUT;
    }
    int found = meter_tenant_plan(conn, tenant, plan, sizeof plan, err);
    if (found <= 0) {
        if (found == 0)
            fm_err_set(err, "tenant: no tenant '%s'", tenant);
        return found == 0 ? METER_INVOICE_NO_TENANT : METER_INVOICE_FAILED;
    }
    if (bill_catalog_plan(cat, plan) == NULL) {
        fm_err_set(err, "plan: the tenant's plan '%s' is not in the catalog", plan);
        return METER_INVOICE_NO_PLAN;
    }
    enum meter_invoice_status rc = METER_INVOICE_FAILED;
    struct bill_stats *st = NULL;
    size_t nplans = bill_catalog_plan_count(cat);
    bool all_rated;
    const struct bill_plan **plans = plan_array(cat, err);
    bool *rated = calloc(nplans ? nplans : 1, sizeof *rated);
    if (plans == NULL || rated == NULL) {
        fm_err_set(err, "out of memory");
        goto done;
    }
    if (bill_stats_new(plans, nplans, from_us, to_us, BILL_HOUR_US, &st, err) != BILL_OK ||
        rated_plans(conn, cat, rated, &all_rated, err) != 0 ||
        meter_usage_fold(conn, NULL, err) != 0 ||
        read_tenant(conn, cat, rated, all_rated, tenant, from_us, to_us, st, err) != 0)
        goto done;
    snprintf(own_plan, n, "%s", plan);
    *out = st;
    st = NULL;
    rc = METER_INVOICE_OK;
done:
    bill_stats_free(st);
    free(plans);
    free(rated);
    return rc;
}

/* ---- Every tenant at once ------------------------------------------------------------- */

void meter_tenant_stats_free(struct meter_tenant_stats *ts, size_t n)
{
    for (size_t i = 0; ts && i < n; i++) {
        free(ts[i].tenant);
        bill_stats_free(ts[i].stats);
    }
    free(ts);
}

/* Tenants by name in byte order, for looking rows up whatever the database's collation. */
struct by_name {
    const char *name;
    size_t i;
};

static int by_name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct by_name *)a)->name, ((const struct by_name *)b)->name);
}

/* The stats of the tenant named in column col of row, or NULL (a tenant added since). */
static struct bill_stats *stats_of(const struct by_name *idx, size_t n,
                                   const struct meter_tenant_stats *ts, const PGresult *res,
                                   int row, int col)
{
    struct by_name key = {.name = PQgetvalue(res, row, col)};
    const struct by_name *hit = bsearch(&key, idx, n, sizeof *idx, by_name_cmp);
    return hit ? ts[hit->i].stats : NULL;
}

/* One statement per rollup for every tenant, each row added to its tenant's stats. */
static int read_all(PGconn *conn, const struct bill_catalog *cat, const bool *rated,
                    const char *from, const char *to, struct meter_tenant_stats *ts, size_t n,
                    const struct by_name *idx, struct fm_err *err)
{
    const char *params[] = {from, to};
    int rc = -1;
    PGresult *res = rows(conn,
                         "SELECT tenant, " RATED_COLUMNS " FROM usage_rated"
                         " WHERE month = $1 AND invocations <> 0",
                         1, params, "reading rated usage", err);
    for (int i = 0; res && i < PQntuples(res); i++) {
        struct bill_stats *st = stats_of(idx, n, ts, res, i, 0);
        if (st && add_rated_row(st, rated, cat, res, i, 1, err) != 0)
            goto done;
    }
    if (res == NULL)
        goto done;
    PQclear(res);
    res = rows(conn,
               "SELECT tenant, " FN_COLUMNS " FROM usage_monthly"
               " WHERE month = $1 ORDER BY tenant, function",
               1, params, "reading monthly usage", err);
    for (int i = 0; res && i < PQntuples(res); i++) {
        struct bill_stats *st = stats_of(idx, n, ts, res, i, 0);
        if (st && add_function_row(st, res, i, 1, err) != 0)
            goto done;
    }
    if (res == NULL)
        goto done;
    PQclear(res);
    res = rows(conn,
               "SELECT tenant, max(busy_us), max(busy_mb_us), max(busy_cpu_us)"
               "  FROM usage_tenant_hourly WHERE hour >= $1 AND hour < $2"
               " GROUP BY tenant",
               2, params, "reading hourly usage", err);
    for (int i = 0; res && i < PQntuples(res); i++) {
        struct bill_stats *st = stats_of(idx, n, ts, res, i, 0);
        int64_t v[3];
        if (get_row(res, i, 1, 3, v, err) != 0)
            goto done;
        if (st)
            set_load(st, &(struct hour_load){v[0], v[1], v[2]});
    }
    if (res != NULL)
        rc = 0;
done:
    PQclear(res);
    return rc;
}

enum meter_invoice_status meter_compare_stats_all(PGconn *conn, const struct bill_catalog *cat,
                                                  const char *period,
                                                  struct meter_tenant_stats **out,
                                                  size_t *nout, struct fm_err *err)
{
    int64_t from_us, to_us;
    if (fm_period_parse(period, &from_us, &to_us) != 0) {
        fm_err_set(err, "period: expected YYYY-MM, got '%s'", period);
        return METER_INVOICE_BAD_INPUT;
    }
    char from[FM_TIME_BUFSZ], to[FM_TIME_BUFSZ];
    fm_time_format(from_us, from, sizeof from);
    fm_time_format(to_us, to, sizeof to);
    enum meter_invoice_status rc = METER_INVOICE_FAILED;
    size_t nplans = bill_catalog_plan_count(cat), n = 0;
    bool all_rated, in_txn = false;
    struct meter_tenant_stats *ts = NULL;
    struct by_name *idx = NULL;
    const struct bill_plan **plans = plan_array(cat, err);
    bool *rated = calloc(nplans ? nplans : 1, sizeof *rated);
    PGresult *res = NULL;
    if (plans == NULL || rated == NULL) {
        fm_err_set(err, "out of memory");
        goto done;
    }
    if (rated_plans(conn, cat, rated, &all_rated, err) != 0 ||
        meter_usage_fold(conn, NULL, err) != 0)
        goto done;
    /* One snapshot for every statement, so each tenant's bills, totals and load agree. */
    res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (!(in_txn = PQresultStatus(res) == PGRES_COMMAND_OK)) {
        db_err_from(err, conn, res, "starting the report's snapshot");
        goto done;
    }
    PQclear(res);
    if ((res = rows(conn, "SELECT tenant, plan FROM tenants ORDER BY tenant", 0, NULL,
                    "listing tenants", err)) == NULL)
        goto done;
    if (PQntuples(res) > TENANTS_MAX) {
        fm_err_set(err, "more than %d tenants", TENANTS_MAX);
        goto done;
    }
    n = (size_t)PQntuples(res);
    ts = calloc(n ? n : 1, sizeof *ts);
    idx = calloc(n ? n : 1, sizeof *idx);
    if (ts == NULL || idx == NULL) {
        fm_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *plan = PQgetvalue(res, (int)i, 1);
        if (bill_catalog_plan(cat, plan) == NULL) {
            fm_err_set(err, "plan: tenant %s's plan '%s' is not in the catalog",
                       PQgetvalue(res, (int)i, 0), plan);
            rc = METER_INVOICE_NO_PLAN;
            goto done;
        }
        snprintf(ts[i].plan, sizeof ts[i].plan, "%s", plan);
        if ((ts[i].tenant = strdup(PQgetvalue(res, (int)i, 0))) == NULL) {
            fm_err_set(err, "out of memory");
            goto done;
        }
        if (bill_stats_new(plans, nplans, from_us, to_us, BILL_HOUR_US, &ts[i].stats, err) !=
            BILL_OK)
            goto done;
        idx[i] = (struct by_name){ts[i].tenant, i};
    }
    PQclear(res);
    res = NULL;
    qsort(idx, n, sizeof *idx, by_name_cmp);
    if (all_rated) {
        if (read_all(conn, cat, rated, from, to, ts, n, idx, err) != 0)
            goto done;
    } else {
        /* A plan the database does not rate needs each invocation: tenant by tenant. */
        for (size_t i = 0; i < n; i++)
            if (read_tenant(conn, cat, rated, false, ts[i].tenant, from_us, to_us,
                            ts[i].stats, err) != 0)
                goto done;
    }
    *out = ts;
    *nout = n;
    ts = NULL;
    rc = METER_INVOICE_OK;
done:
    PQclear(res);
    if (in_txn) /* read only: ending it either way writes nothing */
        PQclear(PQexec(conn, "ROLLBACK"));
    meter_tenant_stats_free(ts, n);
    free(idx);
    free(plans);
    free(rated);
    return rc;
}

void meter_tenants_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

int meter_tenants(PGconn *conn, char ***out, size_t *n, struct fm_err *err)
{
    PGresult *res = PQexecParams(conn, "SELECT tenant FROM tenants ORDER BY tenant", 0, NULL,
                                 NULL, NULL, NULL, 0);
    char **names = NULL;
    size_t count = 0;
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "listing tenants");
        goto done;
    }
    size_t rows_ = (size_t)PQntuples(res);
    if ((names = calloc(rows_ ? rows_ : 1, sizeof *names)) == NULL)
        goto nomem;
    for (; count < rows_; count++)
        if ((names[count] = strdup(PQgetvalue(res, (int)count, 0))) == NULL)
            goto nomem;
    *out = names;
    *n = count;
    names = NULL;
    rc = 0;
    goto done;
nomem:
    fm_err_set(err, "out of memory");
done:
    meter_tenants_free(names, count);
    PQclear(res);
    return rc;
}
