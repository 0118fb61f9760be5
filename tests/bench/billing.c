/*
 * Billing benchmarks over a generated month (2026-10) of finished invocations for 1,000
 * tenants, each figure against a baseline measured in the same run:
 *   a) the invoice run from the rollups (meter_invoice_price for every tenant) against the
 *      same invoices computed by a GROUP BY over the raw invocations, each invocation
 *      rounded in SQL under its tenant's plan; the two sets of invoices must be identical;
 *   b) pricing (bill_price) against reading the rolled-up usage it prices;
 *   c) the report for every tenant (what `faasbill report` does, from the rollups) against
 *      the invoice run, with the report's time split into reading, comparing and rendering.
 *
 * The rollups are built as ingestion leaves them: usage_hourly and usage_rated from the
 * invocations, then the report's usage_tenant_hourly and usage_monthly from usage_hourly.
 *
 * The data lives in its own database, faasmeter_bench_billing, on the server FAASMETER_DB
 * names. Generating it is the slow part, so a second run reuses it when its marker says it
 * holds the same scale. Rows go straight into invocations with INSERT ... SELECT over
 * generate_series; invocation_ids (the ingestion gate) is left empty because billing never
 * reads it. Every draw (tenant, function, memory, duration, ...) is a hash of the row
 * number, so every run at a scale generates the same month.
 *
 * usage: billing [--invocations N] [--regenerate] [--rate-with-plan-register]
 *   --rate-with-plan-register  rate the month as the product's own registration does (a
 *                              pass per plan after the load) instead of in one pass; slower,
 *                              kept to check that both give the same usage_rated
 * Prints figures and ratios; never fails on a timing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/catalog.h"
#include "billing/compare.h"
#include "billing/invoice.h"
#include "billing/usage.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/compare_stats.h"
#include "meter/invoices.h"
#include "meter/plans.h"
#include "reports/render.h"
#include "schema/migrate.h"

#define DB_NAME "faasmeter_bench_billing"
#define PERIOD "2026-10"
#define MONTH "2026-10-01 00:00:00+00"
#define NEXT_MONTH "2026-11-01 00:00:00+00"
#define TENANTS 1000
#define LOADERS 2 /* concurrent INSERTs: one per core of the machine it was sized on */
#define ROLLUP_RUNS 3
#define DEFAULT_INVOCATIONS INT64_C(10000000)
#define REPORT_MAX (256u << 20)

static const char *catalog_plans[] = {"aws-lambda-x86",       "aws-lambda-arm64",
                                      "aws-lambda-x86-2018", "azure-functions-consumption",
                                      "gcf-gen1-tier1",      "cloudflare-workers-standard"};

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench billing: %s: %s\n", what, msg);
    exit(1);
}

static double secs_since(int64_t t0)
{
    return (double)(fm_mono_us() - t0) / 1e6;
}

static PGconn *connect_or_die(const char *conninfo)
{
    struct fm_err err = {{0}};
    PGconn *conn = db_connect(conninfo, &err);
    if (conn == NULL)
        die("connect", err.msg);
    return conn;
}

/* Run sql with text parameters; dies unless it succeeded. Caller clears the result. */
static PGresult *exec_or_die(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die(sql, PQresultErrorMessage(res));
    return res;
}

static void run_or_die(PGconn *conn, const char *sql)
{
    PQclear(exec_or_die(conn, sql, 0, NULL));
}

/* The server's conninfo with dbname replaced, as keyword='value' pairs. */
static void bench_conninfo(const char *base, char *out, size_t n)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &msg);
    if (opts == NULL)
        die("FAASMETER_DB does not parse", msg ? msg : "");
    struct fm_buf b;
    fm_buf_init(&b, n - 1);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
            continue;
        fm_buf_printf(&b, "%s='", o->keyword);
        for (const char *p = o->val; *p; p++)
            fm_buf_printf(&b, "%s%c", (*p == '\'' || *p == '\\') ? "\\" : "", *p);
        fm_buf_puts(&b, "' ");
    }
    fm_buf_puts(&b, "dbname='" DB_NAME "'");
    PQconninfoFree(opts);
    if (b.failed)
        die("conninfo", "too long");
    memcpy(out, b.data, b.len + 1);
    fm_buf_free(&b);
}

/* ---- The data -------------------------------------------------------------------------- */

/* Whether the report's rollups hold every invocation of the month, as usage_hourly does. */
static bool report_rollups_complete(PGconn *conn, int64_t invocations)
{
    PGresult *res = exec_or_die(
        conn,
        "SELECT (SELECT coalesce(sum(invocations), 0) FROM usage_tenant_hourly"
        "         WHERE hour >= '" MONTH "' AND hour < '" NEXT_MONTH "'),"
        "       (SELECT coalesce(sum(invocations), 0) FROM usage_monthly"
        "         WHERE month = '" MONTH "')",
        0, NULL);
    bool complete = strtoll(PQgetvalue(res, 0, 0), NULL, 10) == invocations &&
                    strtoll(PQgetvalue(res, 0, 1), NULL, 10) == invocations;
    PQclear(res);
    return complete;
}

/* Whether the database exists, its marker says it holds `invocations` rows for the month
 * (the marker is written last, so an interrupted generation is never reused) and the
 * report's rollups hold them all (a database made by an older schema is generated anew). */
static bool data_ready(const char *base, const char *conninfo, int64_t invocations)
{
    PGconn *admin = connect_or_die(base);
    PGresult *res = exec_or_die(admin, "SELECT 1 FROM pg_database WHERE datname = $1", 1,
                                (const char *[]){DB_NAME});
    bool exists = PQntuples(res) == 1;
    PQclear(res);
    PQfinish(admin);
    if (!exists)
        return false;
    PGconn *conn = connect_or_die(conninfo);
    res = PQexec(conn, "SELECT invocations FROM bench_billing_marker");
    bool ready = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                 strtoll(PQgetvalue(res, 0, 0), NULL, 10) == invocations;
    PQclear(res);
    if (ready) {
        res = exec_or_die(conn,
                          "SELECT to_regclass('usage_tenant_hourly') IS NOT NULL"
                          "   AND to_regclass('usage_monthly') IS NOT NULL",
                          0, NULL);
        ready = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    if (ready) {
        if (!report_rollups_complete(conn, invocations)) {
            printf("the report's rollups do not hold the generated month: generating anew\n");
            ready = false;
        }
    }
    PQfinish(conn);
    return ready;
}

static void recreate_db(const char *base)
{
    PGconn *admin = connect_or_die(base);
    run_or_die(admin, "DROP DATABASE IF EXISTS " DB_NAME " WITH (FORCE)");
    run_or_die(admin, "CREATE DATABASE " DB_NAME);
    PQfinish(admin);
}

/*
 * Rows lo..hi of the month. Each uniform draw is a 53-bit slice of hashint8extended(row,
 * seed) (seed k gives u<k>). Skews: tenant t0000 gets the most calls (index = 1000 u1^2),
 * bigger tenants have more functions and a function's calls are skewed too (u2^2);
 * memory is the function's configured size; durations run 1 ms..10 s with a long tail
 * (1 ms x 10^(4 u3^2): median 10 ms, p90 1.7 s) plus a sub-millisecond part so that
 * rounding matters; 5% pay an init of 50 ms..1 s; 97% end ok, 2% error, 1% timeout.
 */
static const char *generate_sql =
    "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start, has_stop,"
    "    memory_mb, timeout_ms, cold_start, trigger, stopped_at, duration_us, init_us, status,"
    "    exit_code, cpu_user_us, cpu_sys_us, max_rss_kb, bytes_in, bytes_out)"
    " SELECT 't' || lpad(a.ti::text, 4, '0'), 'i' || g, a.at, 'fn-' || lpad(a.fi::text, 2, '0'),"
    "        true, true, a.mem, 30000, r.u4 < 0.05, 'http',"
    "        a.at + a.dur * interval '1 microsecond', a.dur,"
    "        CASE WHEN r.u4 < 0.05 THEN 50000 + floor(r.u5 * 950000)::bigint ELSE 0 END,"
    "        CASE WHEN r.u6 < 0.97 THEN 'ok' WHEN r.u6 < 0.99 THEN 'error' ELSE 'timeout' END,"
    "        CASE WHEN r.u6 < 0.97 THEN 0 ELSE 1 END,"
    "        floor(a.dur * 0.8 * r.u7)::bigint, floor(a.dur * 0.05 * r.u7)::bigint,"
    "        floor(a.mem * 1024 * (0.2 + 0.7 * r.u8))::bigint,"
    "        floor(r.u9 * 4096)::bigint, floor(r.u9 * r.u9 * 100000)::bigint"
    "   FROM generate_series($1::bigint, $2::bigint) g,"
    "        LATERAL (SELECT"
    "           (hashint8extended(g, 1) & 9007199254740991)::float8 / 9007199254740992 AS u1,"
    "           (hashint8extended(g, 2) & 9007199254740991)::float8 / 9007199254740992 AS u2,"
    "           (hashint8extended(g, 3) & 9007199254740991)::float8 / 9007199254740992 AS u3,"
    "           (hashint8extended(g, 4) & 9007199254740991)::float8 / 9007199254740992 AS u4,"
    "           (hashint8extended(g, 5) & 9007199254740991)::float8 / 9007199254740992 AS u5,"
    "           (hashint8extended(g, 6) & 9007199254740991)::float8 / 9007199254740992 AS u6,"
    "           (hashint8extended(g, 7) & 9007199254740991)::float8 / 9007199254740992 AS u7,"
    "           (hashint8extended(g, 8) & 9007199254740991)::float8 / 9007199254740992 AS u8,"
    "           (hashint8extended(g, 9) & 9007199254740991)::float8 / 9007199254740992 AS u9,"
    "           hashint8extended(g, 10) & 9007199254740991 AS h10,"
    "           hashint8extended(g, 11) & 1023 AS h11) r,"
    "        LATERAL (SELECT floor(1000 * r.u1 * r.u1)::int AS ti) t,"
    "        LATERAL (SELECT t.ti, floor((1 + (t.ti * 37) % 23"
    "                                     + CASE WHEN t.ti < 50 THEN 20 ELSE 0 END)"
    "                                    * r.u2 * r.u2)::int AS fi) f,"
    "        LATERAL (SELECT f.ti, f.fi,"
    "           (ARRAY[128, 256, 512, 1024, 1536, 2048])"
    "               [1 + (hashint4(f.ti * 100 + f.fi) & 2147483647) % 6] AS mem,"
    "           least(10000000, floor(1000 * exp(r.u3 * r.u3 * 9.2103404))::bigint"
    "                           + least(r.h11, 999)) AS dur,"
    "           '" MONTH "'::timestamptz"
    "               + (r.h10 % 2678400000000) * interval '1 microsecond' AS at) a";

/* The rollups ingestion keeps (usage_apply), built set-wise over one slice of tenants
 * [$1, $2). With the clock table of plan_register when the schema has one. */
static const char *hourly_sql =
    "INSERT INTO usage_hourly (tenant, function, hour, memory_mb, invocations, errors,"
    "                          cold_starts, duration_us, init_us, cpu_us, bytes_in, bytes_out)"
    " SELECT tenant, function, date_trunc('hour', started_at, 'UTC'), memory_mb, count(*),"
    "        count(*) FILTER (WHERE status <> 'ok'), count(*) FILTER (WHERE cold_start),"
    "        sum(duration_us), sum(init_us), sum(cpu_user_us + cpu_sys_us), sum(bytes_in),"
    "        sum(bytes_out)"
    "   FROM invocations"
    "  WHERE has_stop AND started_at >= '" MONTH "' AND started_at < '" NEXT_MONTH "'"
    "    AND tenant >= $1 AND tenant < $2"
    "  GROUP BY 1, 2, 3, 4";

/* The report's rollups, which the fold keeps beside usage_hourly, each one GROUP BY over
 * the usage_hourly rows of a slice of tenants [$1, $2) (as one would backfill them). */
static const char *tenant_hourly_sql =
    "INSERT INTO usage_tenant_hourly (tenant, hour, invocations, errors, cold_starts,"
    "                                 duration_us, mb_us, cpu_us)"
    " SELECT tenant, hour, sum(invocations), sum(errors), sum(cold_starts), sum(duration_us),"
    "        sum(memory_mb::numeric * duration_us), sum(cpu_us)"
    "   FROM usage_hourly WHERE tenant >= $1 AND tenant < $2"
    "  GROUP BY tenant, hour";

static const char *monthly_sql =
    "INSERT INTO usage_monthly (tenant, month, function, invocations, errors, cold_starts,"
    "                           duration_us, init_us, mb_invocations, cpu_us, bytes_in,"
    "                           bytes_out, max_memory_mb)"
    " SELECT tenant, date_trunc('month', hour, 'UTC'), function, sum(invocations),"
    "        sum(errors), sum(cold_starts), sum(duration_us), sum(init_us),"
    "        sum(memory_mb::bigint * invocations), sum(cpu_us), sum(bytes_in), sum(bytes_out),"
    "        coalesce(max(memory_mb) FILTER (WHERE invocations > 0), 0)"
    "   FROM usage_hourly WHERE tenant >= $1 AND tenant < $2"
    "  GROUP BY 1, 2, 3";

/* How the schema ties a CPU clock to billed memory: the plan_clock table that
 * plan_register fills, or the plan_mhz function of earlier schemas. The rating SQL below
 * says MHZ for the expression and CLOCK_JOIN where the join goes. */
static const char *clock_join, *clock_mhz;

static void detect_clock(PGconn *conn)
{
    PGresult *res = exec_or_die(conn, "SELECT to_regclass('plan_clock') IS NOT NULL", 0, NULL);
    bool table = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    clock_join = table ? " LEFT JOIN plan_clock c ON c.plan = p.plan AND c.mb = q.mb" : "";
    clock_mhz = table ? "coalesce(c.mhz, 0)" : "plan_mhz(p, q.mb)";
}

/* sql with MHZ and CLOCK_JOIN replaced; static storage, overwritten by the next call. */
static const char *with_clock(const char *sql)
{
    static char out[4096];
    struct fm_buf b;
    fm_buf_init(&b, sizeof out - 1);
    for (const char *p = sql; *p;) {
        if (strncmp(p, "CLOCK_JOIN", 10) == 0) {
            fm_buf_puts(&b, clock_join);
            p += 10;
        } else if (strncmp(p, "MHZ", 3) == 0) {
            fm_buf_puts(&b, clock_mhz);
            p += 3;
        } else {
            fm_buf_append(&b, p++, 1);
        }
    }
    if (b.failed)
        die("SQL", "too long");
    memcpy(out, b.data, b.len + 1);
    fm_buf_free(&b);
    return out;
}

/* plan_register's own backfill, for every plan in one pass instead of one pass per plan. */
static const char *rated_sql =
    "INSERT INTO usage_rated (tenant, month, plan, function, invocations, billed_ms, mb_ms,"
    "                         mhz_ms, cpu_us, egress_bytes)"
    " SELECT i.tenant, date_trunc('month', i.started_at, 'UTC'), p.plan, i.function, count(*),"
    "        sum(q.ms), sum(q.ms * q.mb), sum(q.ms * MHZ),"
    "        sum(i.cpu_user_us + i.cpu_sys_us), sum(i.bytes_out)"
    "   FROM invocations i CROSS JOIN plans p CROSS JOIN"
    "        LATERAL (SELECT plan_billed_ms(p, i.duration_us, i.init_us) AS ms,"
    "                        plan_billed_mb(p, i.memory_mb, i.max_rss_kb) AS mb) q CLOCK_JOIN"
    "  WHERE i.has_stop AND i.tenant >= $1 AND i.tenant < $2"
    "  GROUP BY 1, 2, 3, 4";

/* Three in four tenants on the default plan, the others spread over the catalog. */
static const char *tenants_sql =
    "INSERT INTO tenants (tenant, plan)"
    " SELECT 't' || lpad(i::text, 4, '0'),"
    "        CASE WHEN i % 20 BETWEEN 1 AND 5 THEN ($1::text[])[1 + i % 20] ELSE $2 END"
    "   FROM generate_series(0, 999) i";

/* Slices of tenants of about equal size: a quarter of the tenant indexes hold half the
 * calls, since the index is 1000 u^2. */
static const char *const slices[LOADERS + 1] = {"t0000", "t0250", "u"};

/* Run one statement per connection, each with its two parameters, side by side. */
static void run_parallel(const char *conninfo, const char *what, const char *sql,
                         const char *const params[LOADERS][2])
{
    PGconn *conns[LOADERS];
    for (int i = 0; i < LOADERS; i++) {
        conns[i] = connect_or_die(conninfo);
        /* Session settings only: big enough that the month's aggregates stay in memory. */
        run_or_die(conns[i], "SET work_mem = '512MB'");
        /* usage_rated is written here as the fold of this schema would (the usage API's
         * hourly rollup, which invoices do not read, is left out). */
        run_or_die(conns[i], "SET faasmeter.rollups = '015'");
        if (!PQsendQueryParams(conns[i], sql, 2, NULL, params[i], NULL, NULL, 0))
            die(what, PQerrorMessage(conns[i]));
    }
    for (int i = 0; i < LOADERS; i++) {
        PGresult *res;
        while ((res = PQgetResult(conns[i])) != NULL) {
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                die(what, PQresultErrorMessage(res));
            PQclear(res);
        }
        PQfinish(conns[i]);
    }
}

static void generate(const char *conninfo, const struct bill_catalog *cat, int64_t invocations,
                     bool by_plan_register)
{
    struct fm_err err = {{0}};
    PGconn *conn = connect_or_die(conninfo);
    int64_t t0 = fm_mono_us();
    if (schema_migrate(conn, NULL, NULL, &err) != 0)
        die("migrate", err.msg);
    /* On the empty database registering only writes the rules; the month is rated below. */
    if (!by_plan_register && meter_plans_register(conn, cat, NULL, &err) != 0)
        die("registering plans", err.msg);
    run_or_die(conn, "SELECT ensure_month_partition('invocations', '" MONTH "')");
    char plans[512];
    snprintf(plans, sizeof plans, "{%s,%s,%s,%s,%s,%s}", catalog_plans[0], catalog_plans[1],
             catalog_plans[2], catalog_plans[3], catalog_plans[4], catalog_plans[5]);
    PQclear(exec_or_die(conn, tenants_sql, 2, (const char *[]){plans, catalog_plans[0]}));

    char bounds[LOADERS][2][24];
    const char *rows[LOADERS][2], *tenants[LOADERS][2];
    for (int i = 0; i < LOADERS; i++) {
        snprintf(bounds[i][0], sizeof bounds[i][0], "%" PRId64, invocations * i / LOADERS + 1);
        snprintf(bounds[i][1], sizeof bounds[i][1], "%" PRId64,
                 invocations * (i + 1) / LOADERS);
        rows[i][0] = bounds[i][0];
        rows[i][1] = bounds[i][1];
        tenants[i][0] = slices[i];
        tenants[i][1] = slices[i + 1];
    }
    run_parallel(conninfo, "generating invocations", generate_sql, rows);
    double t_inv = secs_since(t0);
    int64_t t1 = fm_mono_us();
    run_parallel(conninfo, "building usage_hourly", hourly_sql, tenants);
    double t_hourly = secs_since(t1);
    t1 = fm_mono_us();
    run_parallel(conninfo, "building usage_tenant_hourly", tenant_hourly_sql, tenants);
    run_parallel(conninfo, "building usage_monthly", monthly_sql, tenants);
    double t_report_rollups = secs_since(t1);
    t1 = fm_mono_us();
    if (by_plan_register) {
        if (meter_plans_register(conn, cat, NULL, &err) != 0)
            die("registering plans", err.msg);
    } else {
        detect_clock(conn);
        run_parallel(conninfo, "building usage_rated", with_clock(rated_sql), tenants);
    }
    double t_rated = secs_since(t1);
    t1 = fm_mono_us();
    run_or_die(conn, "VACUUM ANALYZE");
    double t_vacuum = secs_since(t1);
    char n[24];
    snprintf(n, sizeof n, "%" PRId64, invocations);
    run_or_die(conn, "CREATE TABLE bench_billing_marker (invocations bigint NOT NULL)");
    PQclear(exec_or_die(conn, "INSERT INTO bench_billing_marker VALUES ($1)", 1,
                        (const char *[]){n}));
    PQfinish(conn);
    printf("generated %" PRId64 " invocations in %.1f s: invocations %.1f s (%d loaders),"
           " usage_hourly %.1f s, usage_tenant_hourly and usage_monthly %.1f s,"
           " usage_rated %.1f s (%s), vacuum analyze %.1f s\n",
           invocations, secs_since(t0), t_inv, LOADERS, t_hourly, t_report_rollups, t_rated,
           by_plan_register ? "plan_register after the load, a pass per plan"
                            : "plans registered first, one pass for every plan",
           t_vacuum);
}

/* ---- The tenants' invoices ------------------------------------------------------------- */

struct tenant_run {
    char **names;
    size_t n;
    const struct bill_plan **plans; /* each tenant's plan */
    struct bill_invoice **rollup;   /* from meter_invoice_price */
    struct bill_invoice **raw;      /* from the GROUP BY over invocations */
    struct bill_usage **uses;       /* for (b) */
};

static void free_invoices(struct bill_invoice **invs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bill_invoice_free(invs[i]);
        invs[i] = NULL;
    }
}

static void load_tenants(PGconn *conn, const struct bill_catalog *cat, struct tenant_run *tr)
{
    struct fm_err err = {{0}};
    if (meter_tenants(conn, &tr->names, &tr->n, &err) != 0)
        die("listing tenants", err.msg);
    tr->plans = calloc(tr->n, sizeof *tr->plans);
    tr->rollup = calloc(tr->n, sizeof *tr->rollup);
    tr->raw = calloc(tr->n, sizeof *tr->raw);
    tr->uses = calloc(tr->n, sizeof *tr->uses);
    if (!tr->plans || !tr->rollup || !tr->raw || !tr->uses)
        die("tenants", "out of memory");
    for (size_t i = 0; i < tr->n; i++) {
        char id[256];
        if (meter_tenant_plan(conn, tr->names[i], id, sizeof id, &err) != 1)
            die(tr->names[i], "no plan");
        if ((tr->plans[i] = bill_catalog_plan(cat, id)) == NULL)
            die(tr->names[i], "plan not in the catalog");
    }
}

/* (a) with rollups: what `faasbill invoice` does for each tenant. */
static double invoice_run(PGconn *conn, const struct bill_catalog *cat, struct tenant_run *tr)
{
    struct fm_err err = {{0}};
    free_invoices(tr->rollup, tr->n);
    int64_t t0 = fm_mono_us();
    for (size_t i = 0; i < tr->n; i++)
        if (meter_invoice_price(conn, cat, tr->names[i], PERIOD, NULL, &tr->rollup[i], &err) !=
            METER_INVOICE_OK)
            die(tr->names[i], err.msg);
    return secs_since(t0);
}

/* (a) the baseline: every invocation rounded under its tenant's plan in SQL (the functions
 * of schema/003), summed per tenant and function, then priced like the rollups. */
static double groupby_run(PGconn *conn, struct tenant_run *tr)
{
    struct fm_err err = {{0}};
    int64_t t0 = fm_mono_us();
    PGresult *res = exec_or_die(
        conn,
        with_clock(
            "SELECT i.tenant, i.function, count(*), sum(q.ms), sum(q.ms * q.mb),"
            "       sum(q.ms * MHZ), sum(i.cpu_user_us + i.cpu_sys_us), sum(i.bytes_out)"
            "  FROM invocations i JOIN tenants t ON t.tenant = i.tenant"
            "       JOIN plans p ON p.plan = t.plan CROSS JOIN"
            "       LATERAL (SELECT plan_billed_ms(p, i.duration_us, i.init_us) AS ms,"
            "                       plan_billed_mb(p, i.memory_mb, i.max_rss_kb) AS mb) q CLOCK_JOIN"
            " WHERE i.has_stop AND i.started_at >= '" MONTH "'"
            "   AND i.started_at < '" NEXT_MONTH "'"
            " GROUP BY 1, 2 ORDER BY 1, 2"),
        0, NULL);
    int rows = PQntuples(res), r = 0;
    for (size_t i = 0; i < tr->n; i++) {
        struct bill_usage *use = bill_usage_new();
        if (use == NULL)
            die("usage", "out of memory");
        for (; r < rows && strcmp(PQgetvalue(res, r, 0), tr->names[i]) == 0; r++) {
            struct bill_quantities q = {
                .requests = strtoll(PQgetvalue(res, r, 2), NULL, 10),
                .billed_ms = strtoll(PQgetvalue(res, r, 3), NULL, 10),
                .mb_ms = strtoll(PQgetvalue(res, r, 4), NULL, 10),
                .mhz_ms = strtoll(PQgetvalue(res, r, 5), NULL, 10),
                .cpu_us = strtoll(PQgetvalue(res, r, 6), NULL, 10),
                .egress_bytes = strtoll(PQgetvalue(res, r, 7), NULL, 10),
            };
            if (bill_usage_add_quantities(use, PQgetvalue(res, r, 1), &q, &err) != BILL_OK)
                die(tr->names[i], err.msg);
        }
        free_invoices(&tr->raw[i], 1);
        if (bill_price(tr->plans[i], use, &tr->raw[i], &err) != BILL_OK)
            die(tr->names[i], err.msg);
        bill_usage_free(use);
    }
    if (r != rows)
        die("GROUP BY", "rows of tenants that are not in the tenants table");
    PQclear(res);
    return secs_since(t0);
}

/* The same invoices both ways, to the rendered byte: otherwise the race is meaningless. */
static int64_t check_same(const struct tenant_run *tr)
{
    int64_t total = 0;
    struct fm_buf a, b;
    fm_buf_init(&a, 16u << 20);
    fm_buf_init(&b, 16u << 20);
    for (size_t i = 0; i < tr->n; i++) {
        fm_buf_reset(&a);
        fm_buf_reset(&b);
        if (bill_invoice_render(tr->rollup[i], BILL_FORMAT_JSON, tr->names[i], PERIOD, &a) != 0 ||
            bill_invoice_render(tr->raw[i], BILL_FORMAT_JSON, tr->names[i], PERIOD, &b) != 0)
            die(tr->names[i], "rendering the invoice");
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            die(tr->names[i], "the rollup invoice differs from the GROUP BY one");
        total += tr->rollup[i]->total;
    }
    fm_buf_free(&a);
    fm_buf_free(&b);
    return total;
}

/* (b) reading: the queries meter_invoice_price issues (the tenant's plan, whether the
 * database rates it, its rated rows), each tenant's usage kept for pricing. */
static double read_phase(PGconn *conn, struct tenant_run *tr)
{
    struct fm_err err = {{0}};
    int64_t t0 = fm_mono_us();
    for (size_t i = 0; i < tr->n; i++) {
        char id[256];
        if (meter_tenant_plan(conn, tr->names[i], id, sizeof id, &err) != 1 ||
            meter_plan_is_rated(conn, tr->plans[i], &err) != 1)
            die(tr->names[i], "plan not rated");
        PGresult *res = exec_or_die(conn,
                                    "SELECT function, invocations, billed_ms, mb_ms, mhz_ms,"
                                    "       cpu_us, egress_bytes"
                                    "  FROM usage_rated"
                                    " WHERE tenant = $1 AND month = $2 AND plan = $3"
                                    "   AND invocations <> 0 ORDER BY function",
                                    3, (const char *[]){tr->names[i], MONTH, id});
        bill_usage_free(tr->uses[i]);
        if ((tr->uses[i] = bill_usage_new()) == NULL)
            die("usage", "out of memory");
        for (int r = 0; r < PQntuples(res); r++) {
            struct bill_quantities q = {
                .requests = strtoll(PQgetvalue(res, r, 1), NULL, 10),
                .billed_ms = strtoll(PQgetvalue(res, r, 2), NULL, 10),
                .mb_ms = strtoll(PQgetvalue(res, r, 3), NULL, 10),
                .mhz_ms = strtoll(PQgetvalue(res, r, 4), NULL, 10),
                .cpu_us = strtoll(PQgetvalue(res, r, 5), NULL, 10),
                .egress_bytes = strtoll(PQgetvalue(res, r, 6), NULL, 10),
            };
            if (bill_usage_add_quantities(tr->uses[i], PQgetvalue(res, r, 0), &q, &err) !=
                BILL_OK)
                die(tr->names[i], err.msg);
        }
        PQclear(res);
    }
    return secs_since(t0);
}

/* (b) pricing the usage read_phase left; repeated so the figure is not a clock tick. */
static double price_phase(const struct tenant_run *tr, int repeat)
{
    struct fm_err err = {{0}};
    int64_t t0 = fm_mono_us();
    for (int k = 0; k < repeat; k++)
        for (size_t i = 0; i < tr->n; i++) {
            struct bill_invoice *inv = NULL;
            if (bill_price(tr->plans[i], tr->uses[i], &inv, &err) != BILL_OK)
                die(tr->names[i], err.msg);
            if (inv->total != tr->rollup[i]->total)
                die(tr->names[i], "pricing the read usage gives another total");
            bill_invoice_free(inv);
        }
    return secs_since(t0) / repeat;
}

/* Where the report's time goes, for the summary. */
struct report_times {
    double read, compare, render, total;
};

/* (c) `faasbill report --period 2026-10 -o FILE` against every catalog server, in-process:
 * every tenant's statistics from the rollups, each comparison, then the page written to
 * path. */
static void report_run(PGconn *conn, const struct bill_catalog *cat, const char *path,
                       size_t *bytes, struct report_times *t)
{
    struct fm_err err = {{0}};
    size_t nservers = bill_catalog_server_count(cat);
    const struct bill_server **servers = calloc(nservers ? nservers : 1, sizeof *servers);
    if (servers == NULL)
        die("servers", "out of memory");
    for (size_t i = 0; i < nservers; i++)
        servers[i] = bill_catalog_server_at(cat, i);
    int64_t t0 = fm_mono_us();
    struct meter_tenant_stats *all = NULL;
    size_t n = 0;
    if (meter_compare_stats_all(conn, cat, PERIOD, &all, &n, &err) != METER_INVOICE_OK)
        die("report statistics", err.msg);
    t->read = secs_since(t0);
    int64_t t1 = fm_mono_us();
    struct bill_comparison **cmps = calloc(n ? n : 1, sizeof *cmps);
    if (cmps == NULL)
        die("report", "out of memory");
    for (size_t i = 0; i < n; i++)
        if (bill_compare(all[i].stats, all[i].plan, servers, nservers, all[i].tenant, PERIOD,
                         &cmps[i], &err) != BILL_OK)
            die(all[i].tenant, err.msg);
    t->compare = secs_since(t1);
    t1 = fm_mono_us();
    struct fm_buf out;
    fm_buf_init(&out, REPORT_MAX);
    if (report_tenants_html(PERIOD, (const struct bill_comparison *const *)cmps, n, NULL, 0,
                            &out) != 0 ||
        out.failed)
        die("report", "the page could not be rendered");
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(out.data, 1, out.len, f) != out.len || fclose(f) != 0)
        die(path, strerror(errno));
    t->render = secs_since(t1);
    t->total = secs_since(t0);
    *bytes = out.len;
    fm_buf_free(&out);
    for (size_t i = 0; i < n; i++)
        bill_comparison_free(cmps[i]);
    free(cmps);
    meter_tenant_stats_free(all, n);
    free(servers);
}

static int64_t parse_count(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < TENANTS || v > INT64_C(1000000000))
        die("--invocations", "expected a whole number from 1000 to 1000000000");
    return v;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int64_t invocations = DEFAULT_INVOCATIONS;
    bool regenerate = false, by_plan_register = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--invocations") == 0 && i + 1 < argc)
            invocations = parse_count(argv[++i]);
        else if (strcmp(argv[i], "--regenerate") == 0)
            regenerate = true;
        else if (strcmp(argv[i], "--rate-with-plan-register") == 0)
            by_plan_register = regenerate = true;
        else {
            fprintf(stderr, "usage: %s [--invocations N] [--regenerate] [--rate-with-plan-register]\n", argv[0]);
            return 2;
        }
    }
    const char *base = getenv("FAASMETER_DB");
    if (base == NULL || *base == '\0')
        die("FAASMETER_DB", "not set (make bench sets it)");
    char conninfo[2048];
    bench_conninfo(base, conninfo, sizeof conninfo);

    struct fm_err err = {{0}};
    struct bill_catalog *cat = NULL;
    if (bill_catalog_load(NULL, &cat, &err) != BILL_OK)
        die("catalog", err.msg);
    printf("scale: %" PRId64 " invocations over %d tenants in %s%s\n", invocations, TENANTS,
           PERIOD, invocations == DEFAULT_INVOCATIONS ? "" : " (scaled down: --invocations)");
    if (regenerate || !data_ready(base, conninfo, invocations)) {
        recreate_db(base);
        generate(conninfo, cat, invocations, by_plan_register);
    } else {
        printf("reusing the month generated by an earlier run (--regenerate to rebuild)\n");
    }

    PGconn *conn = connect_or_die(conninfo);
    /* As meterd and `faasbill migrate` do at start: no-ops unless the catalog changed. */
    if (schema_migrate(conn, NULL, NULL, &err) != 0 ||
        meter_plans_register(conn, cat, NULL, &err) != 0)
        die("migrate", err.msg);
    detect_clock(conn);
    struct tenant_run tr = {0};
    load_tenants(conn, cat, &tr);

    /* (a) The rollup run is short: best of a few, after the baseline warmed the cache. */
    double t_raw = groupby_run(conn, &tr);
    double t_rollup = 0;
    for (int k = 0; k < ROLLUP_RUNS; k++) {
        double t = invoice_run(conn, cat, &tr);
        if (k == 0 || t < t_rollup)
            t_rollup = t;
    }
    int64_t total = check_same(&tr);
    printf("a) invoices of %zu tenants: rollups %.3f s (best of %d), GROUP BY over raw"
           " invocations %.3f s, identical invoices (sum of totals %" PRId64
           " minor units)\n",
           tr.n, t_rollup, ROLLUP_RUNS, t_raw, total);

    /* (b) */
    double t_read = 0, t_price = 0;
    for (int k = 0; k < ROLLUP_RUNS; k++) {
        double t = read_phase(conn, &tr);
        if (k == 0 || t < t_read)
            t_read = t;
    }
    t_price = price_phase(&tr, 10);
    printf("b) reading the rolled-up usage of %zu tenants %.3f s (best of %d), pricing it"
           " %.3f s (mean of 10)\n",
           tr.n, t_read, ROLLUP_RUNS, t_price);

    /* (c) */
    char path[] = "/tmp/faasmeter-bench-report-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("temporary file", strerror(errno));
    close(fd);
    size_t bytes = 0;
    struct report_times rt;
    report_run(conn, cat, path, &bytes, &rt);
    remove(path);
    double t_report = rt.total;
    printf("c) report of %zu tenants: %.3f s (%zu bytes of HTML): reading the rollups %.3f s,"
           " comparing %.3f s, rendering and writing %.3f s\n",
           tr.n, t_report, bytes, rt.read, rt.compare, rt.render);

    printf("\nsummary (%" PRId64 " invocations, %zu tenants, %s):\n", invocations, tr.n, PERIOD);
    printf("invoice run: rollups %.3f s vs GROUP BY %.3f s = %.1f x (target >= 20x)\n",
           t_rollup, t_raw, t_raw / t_rollup);
    printf("pricing vs reading aggregates: pricing %.4f s vs reading %.4f s = %.2f x"
           " (target <= 2x)\n",
           t_price, t_read, t_price / t_read);
    printf("report vs invoice run: report %.3f s vs invoice run %.3f s = %.1f x"
           " (target < 2x)\n",
           t_report, t_rollup, t_report / t_rollup);

    free_invoices(tr.rollup, tr.n);
    free_invoices(tr.raw, tr.n);
    for (size_t i = 0; i < tr.n; i++)
        bill_usage_free(tr.uses[i]);
    free(tr.rollup);
    free(tr.raw);
    free(tr.uses);
    free(tr.plans);
    meter_tenants_free(tr.names, tr.n);
    PQfinish(conn);
    bill_catalog_free(cat);
    return 0;
}
