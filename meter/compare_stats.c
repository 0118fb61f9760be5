#include "meter/compare_stats.h"
#include "meter/upkeep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/timeutil.h"

#define MAX_RUNNING (64u << 20) /* executions overlapping at once; more is refused */

/* Column col of the current single row as an integer; NULL reads as 0. */
static int64_t cell(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* A running execution in the sweep: when it ends and what it holds. */
struct running {
    int64_t end_us;
    int64_t memory_mb;
    int64_t cpu_milli;
};

/* The sweep for the peak: a min-heap of running executions by end time. */
struct sweep {
    struct running *heap;
    size_t n, cap;
    int64_t memory_mb, cpu_milli; /* held by the running executions */
    int64_t peak, peak_memory_mb, peak_cpu_milli;
};

static void heap_pop(struct sweep *s)
{
    s->memory_mb -= s->heap[0].memory_mb;
    s->cpu_milli -= s->heap[0].cpu_milli;
    s->heap[0] = s->heap[--s->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n && s->heap[l].end_us < s->heap[m].end_us)
            m = l;
        if (r < s->n && s->heap[r].end_us < s->heap[m].end_us)
            m = r;
        if (m == i)
            break;
        struct running t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

/* One execution starting at start_us, in start order. Returns 0, or -1 out of memory. */
static int sweep_add(struct sweep *s, int64_t start_us, struct running r)
{
    while (s->n > 0 && s->heap[0].end_us <= start_us)
        heap_pop(s);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct running *h = cap <= MAX_RUNNING ? realloc(s->heap, cap * sizeof *h) : NULL;
        if (h == NULL)
            return -1;
        s->heap = h;
        s->cap = cap;
    }
    size_t i = s->n++;
    while (i > 0 && s->heap[(i - 1) / 2].end_us > r.end_us) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = r;
    s->memory_mb += r.memory_mb;
    s->cpu_milli += r.cpu_milli;
    if ((int64_t)s->n > s->peak)
        s->peak = (int64_t)s->n;
    if (s->memory_mb > s->peak_memory_mb)
        s->peak_memory_mb = s->memory_mb;
    if (s->cpu_milli > s->peak_cpu_milli)
        s->peak_cpu_milli = s->cpu_milli;
    return 0;
}

/* Stream the period's finished invocations in start order into st and the sweep. */
static int add_invocations(PGconn *conn, const char *tenant, const char *from, const char *to,
                           struct bill_stats *st, struct sweep *sw, struct fm_err *err)
{
    const char *params[] = {tenant, from, to};
    if (!PQsendQueryParams(conn,
                           "SELECT function, duration_us, init_us, memory_mb, max_rss_kb,"
                           "       cpu_user_us, cpu_sys_us, bytes_out,"
                           "       (status IS DISTINCT FROM 'ok')::int,"
                           "       coalesce(cold_start, false)::int,"
                           "       (extract(epoch FROM started_at) * 1000000)::bigint"
                           "  FROM invocations"
                           " WHERE tenant = $1 AND started_at >= $2 AND started_at < $3"
                           "   AND has_stop"
                           " ORDER BY started_at",
                           3, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        db_err_from(err, conn, NULL, "reading invocations");
        return -1;
    }
    int rc = 0;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_SINGLE_TUPLE && rc == 0) {
            struct bill_invocation inv = {
                .duration_us = cell(res, 1),
                .init_us = cell(res, 2),
                .memory_mb = (int32_t)cell(res, 3),
                .max_rss_kb = cell(res, 4),
                .cpu_user_us = cell(res, 5),
                .cpu_sys_us = cell(res, 6),
                .bytes_out = cell(res, 7),
            };
            unsigned flags = (cell(res, 8) ? BILL_OBS_ERROR : 0) |
                             (cell(res, 9) ? BILL_OBS_COLD_START : 0);
            int64_t start = cell(res, 10);
            /* CPU share in thousandths of a core: busy CPU over wall time. */
            int64_t cpu = inv.cpu_user_us + inv.cpu_sys_us;
            struct running r = {
                .end_us = start + inv.duration_us,
                .memory_mb = inv.memory_mb,
                .cpu_milli = inv.duration_us > 0 ? (int64_t)((__int128)cpu * 1000 /
                                                             inv.duration_us)
                                                 : 0,
            };
            if (bill_stats_add(st, PQgetvalue(res, 0, 0), &inv, flags, err) != BILL_OK)
                rc = -1; /* keep reading so the connection is left idle */
            else if (sweep_add(sw, start, r) != 0)
                rc = fm_err_set(err, "more than %u executions overlap", MAX_RUNNING);
        } else if (status != PGRES_SINGLE_TUPLE && status != PGRES_TUPLES_OK && rc == 0) {
            db_err_from(err, conn, res, "reading invocations");
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

/* Usage by hour from the rollup, folded first so that it includes every record. */
static int add_timeline(PGconn *conn, const char *tenant, const char *from, const char *to,
                        struct bill_stats *st, struct fm_err *err)
{
    if (meter_usage_fold(conn, NULL, err) != 0)
        return -1;
    const char *params[] = {tenant, from, to};
    PGresult *res = PQexecParams(conn,
                                 "SELECT (extract(epoch FROM hour) * 1000000)::bigint,"
                                 "       sum(invocations), sum(errors), sum(cold_starts)"
                                 "  FROM usage_hourly"
                                 " WHERE tenant = $1 AND hour >= $2 AND hour < $3"
                                 " GROUP BY hour",
                                 3, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "reading hourly usage");
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        int64_t v[4];
        for (int c = 0; c < 4; c++)
            v[c] = strtoll(PQgetvalue(res, i, c), NULL, 10);
        if (bill_stats_add_timeline(st, v[0], v[1], v[2], v[3], err) != BILL_OK)
            rc = -1;
    }
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
    struct sweep sw = {0};
    size_t nplans = bill_catalog_plan_count(cat);
    const struct bill_plan **plans = calloc(nplans ? nplans : 1, sizeof *plans);
    if (plans == NULL) {
        fm_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nplans; i++)
        plans[i] = bill_catalog_plan_at(cat, i);
    if (bill_stats_new(plans, nplans, from_us, to_us, BILL_HOUR_US, &st, err) != BILL_OK)
        goto done;
    char from[FM_TIME_BUFSZ], to[FM_TIME_BUFSZ];
    fm_time_format(from_us, from, sizeof from);
    fm_time_format(to_us, to, sizeof to);
    if (add_invocations(conn, tenant, from, to, st, &sw, err) != 0 ||
        add_timeline(conn, tenant, from, to, st, err) != 0)
        goto done;
    bill_stats_set_peak(st, sw.peak, sw.peak_memory_mb, sw.peak_cpu_milli);
    snprintf(own_plan, n, "%s", plan);
    *out = st;
    st = NULL;
    rc = METER_INVOICE_OK;
done:
    bill_stats_free(st);
    free(plans);
    free(sw.heap);
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
    size_t rows = (size_t)PQntuples(res);
    if ((names = calloc(rows ? rows : 1, sizeof *names)) == NULL)
        goto nomem;
    for (; count < rows; count++)
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
