/*
 * Rating in the database must agree exactly with the billing library: the rollups that
 * invoices read (usage_rated), kept as batches arrive in any order, against each stored
 * invocation rounded in C under every catalog plan.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/usage.h"
#include "common/timeutil.h"
#include "meter/fold.h"
#include "meter/plans.h"
#include "meter/record.h"
#include "meter/store.h"
#include "tests/suites.h"
#include "tests/testdb.h"

static char conninfo[1024];

static void setup(void)
{
    testdb_create("faasmeter_test_rating", conninfo, sizeof conninfo);
}

/* A small deterministic generator, so a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(uint64_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

/* Parse and store records given as JSON texts, as meterd does. Returns accepted count. */
static int store(PGconn *conn, char **texts, size_t n)
{
    struct meter_record *recs = calloc(n, sizeof *recs);
    enum meter_outcome *out = calloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(texts[i]);
        struct fm_err err;
        ck_assert_msg(meter_record_parse(j, &recs[i], &err) == 0, "%s: %s", texts[i], err.msg);
        cJSON_Delete(j);
    }
    struct fm_err err;
    ck_assert_msg(meter_store_records(conn, recs, n, out, &err) == 0, "%s", err.msg);
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        accepted += out[i] == METER_ACCEPTED;
        meter_record_clear(&recs[i]);
    }
    free(recs);
    free(out);
    return accepted;
}

static char *start_json(int k, int64_t start_us, int memory_mb)
{
    char t[FM_TIME_BUFSZ], *s = malloc(512);
    fm_time_format(start_us, t, sizeof t);
    snprintf(s, 512,
             "{\"id\":\"i%d:start\",\"type\":\"start\",\"invocation_id\":\"i%d\","
             "\"tenant\":\"t%d\",\"function\":\"f%d\",\"time\":\"%s\",\"memory_mb\":%d,"
             "\"timeout_ms\":900000,\"cold_start\":%s,\"trigger\":\"queue\"}",
             k, k, k % 3, k % 5, t, memory_mb, k % 4 ? "false" : "true");
    return s;
}

static char *stop_json(int k, int64_t start_us, int memory_mb, int64_t dur, int64_t init,
                       int64_t rss_kb, int64_t cpu)
{
    char t[FM_TIME_BUFSZ], *s = malloc(640);
    fm_time_format(start_us + dur + init, t, sizeof t);
    snprintf(s, 640,
             "{\"id\":\"i%d:stop\",\"type\":\"stop\",\"invocation_id\":\"i%d\","
             "\"tenant\":\"t%d\",\"function\":\"f%d\",\"time\":\"%s\",\"memory_mb\":%d,"
             "\"cold_start\":%s,\"duration_us\":%" PRId64 ",\"init_us\":%" PRId64 ","
             "\"status\":\"%s\",\"exit_code\":0,\"cpu_user_us\":%" PRId64 ",\"cpu_sys_us\":7,"
             "\"max_rss_kb\":%" PRId64 ",\"bytes_in\":10,\"bytes_out\":%d}",
             k, k, k % 3, k % 5, t, memory_mb, k % 4 ? "false" : "true", dur, init,
             k % 7 ? "ok" : "error", cpu, rss_kb, 1000 * k);
    return s;
}

/* Every plan's quantities per tenant, function and month: from the rollups, and from the
 * invocation rows rounded by the billing library; they must be equal. */
static void compare_all_plans(PGconn *conn, const struct bill_catalog *cat)
{
    struct fm_err err;
    ck_assert_msg(meter_usage_fold(conn, NULL, &err) == 0, "%s", err.msg);
    for (size_t p = 0; p < bill_catalog_plan_count(cat); p++) {
        const struct bill_plan *plan = bill_catalog_plan_at(cat, p);
        const char *params[] = {bill_plan_id(plan)};
        PGresult *rated = PQexecParams(
            conn,
            "SELECT tenant || '/' || function || '/' || to_char(month, 'YYYY-MM'),"
            " invocations, billed_ms, mb_ms, mhz_ms, cpu_us, egress_bytes FROM usage_rated"
            " WHERE plan = $1 AND invocations <> 0 ORDER BY 1",
            1, NULL, params, NULL, NULL, 0);
        ck_assert_int_eq(PQresultStatus(rated), PGRES_TUPLES_OK);
        PGresult *rows = PQexec(conn,
                                "SELECT tenant || '/' || function || '/' ||"
                                " to_char(started_at, 'YYYY-MM'), duration_us, init_us,"
                                " memory_mb, max_rss_kb, cpu_user_us, cpu_sys_us, bytes_out"
                                " FROM invocations WHERE has_stop ORDER BY 1");
        ck_assert_int_eq(PQresultStatus(rows), PGRES_TUPLES_OK);
        struct bill_usage *use = bill_usage_new();
        for (int i = 0; i < PQntuples(rows); i++) {
            struct bill_invocation inv = {
                .duration_us = strtoll(PQgetvalue(rows, i, 1), NULL, 10),
                .init_us = strtoll(PQgetvalue(rows, i, 2), NULL, 10),
                .memory_mb = (int32_t)strtol(PQgetvalue(rows, i, 3), NULL, 10),
                .max_rss_kb = strtoll(PQgetvalue(rows, i, 4), NULL, 10),
                .cpu_user_us = strtoll(PQgetvalue(rows, i, 5), NULL, 10),
                .cpu_sys_us = strtoll(PQgetvalue(rows, i, 6), NULL, 10),
                .bytes_out = strtoll(PQgetvalue(rows, i, 7), NULL, 10),
            };
            ck_assert_int_eq(bill_usage_add_invocation(use, plan, PQgetvalue(rows, i, 0), &inv,
                                                       &err),
                             BILL_OK);
        }
        ck_assert_int_eq(PQntuples(rated), (int)bill_usage_count(use));
        for (int i = 0; i < PQntuples(rated); i++) {
            const char *key = PQgetvalue(rated, i, 0);
            ck_assert_str_eq(bill_usage_function(use, (size_t)i), key);
            const struct bill_quantities *q = bill_usage_quantities(use, (size_t)i);
            int64_t want[] = {q->requests, q->billed_ms, q->mb_ms,
                              q->mhz_ms,   q->cpu_us,    q->egress_bytes};
            for (int c = 0; c < 6; c++)
                ck_assert_msg(strtoll(PQgetvalue(rated, i, c + 1), NULL, 10) == want[c],
                              "plan %s, %s, column %d: database %s, library %" PRId64,
                              bill_plan_id(plan), key, c + 1, PQgetvalue(rated, i, c + 1),
                              want[c]);
        }
        bill_usage_free(use);
        PQclear(rated);
        PQclear(rows);
    }
    /* The hours the usage API reads add up to the months invoices read, plan by plan. */
    char *apart = testdb_value(
        conn,
        "WITH h AS (SELECT tenant, plan, function, date_trunc('month', hour, 'UTC') AS month,"
        "   sum(invocations) AS i, sum(billed_ms) AS b, sum(mb_ms) AS m"
        "   FROM usage_rated_hourly GROUP BY 1, 2, 3, 4"
        "   HAVING (sum(invocations), sum(billed_ms), sum(mb_ms)) <> (0, 0, 0)),"
        " r AS (SELECT tenant, plan, function, month, invocations AS i, billed_ms AS b,"
        "   mb_ms AS m FROM usage_rated WHERE (invocations, billed_ms, mb_ms) <> (0, 0, 0))"
        " SELECT (SELECT count(*) FROM (SELECT * FROM h EXCEPT SELECT * FROM r) x)"
        "      + (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM h) y)",
        0, NULL);
    char *rated_rows = testdb_value(
        conn, "SELECT count(*) FROM usage_rated WHERE invocations <> 0", 0, NULL);
    ck_assert_msg(strcmp(apart, "0") == 0 && strcmp(rated_rows, "0") != 0,
                  "%s rows of usage_rated_hourly differ from usage_rated's %s", apart,
                  rated_rows);
    free(apart);
    free(rated_rows);
}

/* The report's rollups hold exactly the sums of usage_hourly over their coarser keys, row
 * for row, rows whose usage was all retracted included. */
static void check_report_rollups(PGconn *conn)
{
    char *monthly = testdb_value(
        conn,
        "SELECT count(*) || ':' || string_agg(concat_ws('|', tenant, to_char(month, 'YYYY-MM'),"
        "       function, invocations, errors, cold_starts, duration_us, init_us,"
        "       mb_invocations, cpu_us, bytes_in, bytes_out), ','"
        "       ORDER BY tenant, month, function)"
        "  FROM usage_monthly",
        0, NULL);
    char *monthly_want = testdb_value(
        conn,
        "SELECT count(*) || ':' || string_agg(concat_ws('|', tenant, to_char(month, 'YYYY-MM'),"
        "       function, i, e, c, d, n, m, u, bi, bo), ',' ORDER BY tenant, month, function)"
        "  FROM (SELECT tenant, date_trunc('month', hour, 'UTC') AS month, function,"
        "               sum(invocations) AS i, sum(errors) AS e, sum(cold_starts) AS c,"
        "               sum(duration_us) AS d, sum(init_us) AS n,"
        "               sum(memory_mb::bigint * invocations) AS m, sum(cpu_us) AS u,"
        "               sum(bytes_in) AS bi, sum(bytes_out) AS bo"
        "          FROM usage_hourly GROUP BY 1, 2, 3) h",
        0, NULL);
    ck_assert_str_eq(monthly, monthly_want);
    char *hourly = testdb_value(
        conn,
        "SELECT count(*) || ':' || string_agg(concat_ws('|', tenant, hour, invocations, errors,"
        "       cold_starts, duration_us, mb_us, cpu_us), ',' ORDER BY tenant, hour)"
        "  FROM usage_tenant_hourly",
        0, NULL);
    char *hourly_want = testdb_value(
        conn,
        "SELECT count(*) || ':' || string_agg(concat_ws('|', tenant, hour, i, e, c, d, m, u),"
        "       ',' ORDER BY tenant, hour)"
        "  FROM (SELECT tenant, hour, sum(invocations) AS i, sum(errors) AS e,"
        "               sum(cold_starts) AS c, sum(duration_us) AS d,"
        "               sum(memory_mb::numeric * duration_us) AS m, sum(cpu_us) AS u"
        "          FROM usage_hourly GROUP BY 1, 2) h",
        0, NULL);
    ck_assert_str_eq(hourly, hourly_want);
    /* Both months of the scenario, every tenant: the comparison covers something. */
    char *months = testdb_value(conn,
                                "SELECT count(DISTINCT month) || '/' || count(DISTINCT tenant)"
                                "  || '/' || sum(invocations) FROM usage_monthly",
                                0, NULL);
    ck_assert_str_eq(months, "2/3/600");
    free(monthly);
    free(monthly_want);
    free(hourly);
    free(hourly_want);
    free(months);
}

START_TEST(rollups_match_the_library_in_any_arrival_order)
{
    struct bill_catalog *cat = NULL;
    struct fm_err err;
    ck_assert_int_eq(bill_catalog_load(NULL, &cat, &err), BILL_OK);
    PGconn *conn = meter_store_conn(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);

    static const int memories[] = {128, 129, 256, 512, 1024, 1536, 2048, 3008, 4096, 10240};
    enum { N = 600 };
    char *starts[N], *stops[N];
    /* Around a month boundary, so that some invocations start in one month and end in the
     * next. */
    int64_t base = fm_civil_to_us(2026, 10, 31) + INT64_C(23) * 3600 * 1000000;
    for (int k = 0; k < N; k++) {
        int mem = memories[rnd(10)];
        int64_t start = base + (int64_t)rnd(2 * 3600) * 1000000 + (int64_t)rnd(1000000);
        int64_t dur = (int64_t)rnd(5) == 0 ? (int64_t)rnd(1000) : (int64_t)rnd(3000000);
        int64_t init = k % 4 ? 0 : (int64_t)rnd(400000);
        int64_t rss = (int64_t)rnd(2u << 20);
        starts[k] = start_json(k, start, mem);
        stops[k] = stop_json(k, start, mem, dur, init, rss, (int64_t)rnd(dur + 1));
    }
    /* Batch 1: start and stop together (the one-pass path) for the first third. */
    char *batch[2 * N];
    size_t n = 0;
    for (int k = 0; k < N / 3; k++) {
        batch[n++] = starts[k];
        batch[n++] = stops[k];
    }
    ck_assert_int_eq(store(conn, batch, n), 2 * (N / 3));
    /* Batch 2: stops alone for the rest; batch 3: their starts, late, plus repeats. */
    n = 0;
    for (int k = N / 3; k < N; k++)
        batch[n++] = stops[k];
    ck_assert_int_eq(store(conn, batch, n), N - N / 3);
    /* Folded now, so that the late starts below take back usage already in the rollups
     * (an update of existing rows with a negative sign), not deltas still pending. */
    ck_assert_msg(meter_usage_fold(conn, NULL, &err) == 0, "%s", err.msg);
    n = 0;
    for (int k = N / 3; k < N; k++) {
        batch[n++] = starts[k];
        if (k % 10 == 0)
            batch[n++] = stops[k];
    }
    ck_assert_int_eq(store(conn, batch, n), N - N / 3);

    ck_assert_msg(meter_usage_fold(conn, NULL, &err) == 0, "%s", err.msg);
    char *count = testdb_value(conn,
                               "SELECT count(*) || '/' || (SELECT sum(invocations)"
                               " FROM usage_hourly) FROM invocations WHERE has_stop AND has_start",
                               0, NULL);
    ck_assert_str_eq(count, "600/600");
    free(count);
    compare_all_plans(conn, cat);
    check_report_rollups(conn);

    /* A plan whose rules change is rated anew from the stored invocations. */
    testdb_exec(conn, "SELECT plan_register('aws-lambda-x86', 50, 0, false, 'observed', 64,"
                      " 128, 3008, '[]')");
    char *check = testdb_value(conn,
                               "SELECT sum(billed_ms) FROM usage_rated WHERE plan = "
                               "'aws-lambda-x86'",
                               0, NULL);
    char *want = testdb_value(conn,
                              "SELECT sum((duration_us + 49999) / 50000 * 50) FROM invocations"
                              " WHERE has_stop",
                              0, NULL);
    ck_assert_str_eq(check, want);
    free(check);
    check = testdb_value(conn,
                         "SELECT sum(billed_ms) FROM usage_rated_hourly WHERE plan = "
                         "'aws-lambda-x86'",
                         0, NULL);
    ck_assert_str_eq(check, want);
    free(check);
    free(want);
    ck_assert_int_eq(meter_plans_register(conn, cat, NULL, &err), 0);
    compare_all_plans(conn, cat);

    for (int k = 0; k < N; k++) {
        free(starts[k]);
        free(stops[k]);
    }
    meter_store_close();
    bill_catalog_free(cat);
}
END_TEST

/*
 * The fold against the SQL it replaced, as an independent reference: every rollup must
 * equal a GROUP BY over the deltas it took, and usage_rated the database's own rounding
 * (plan_billed_ms, plan_billed_mb, plan_clock) under every registered plan. The backlog
 * is large enough to be taken in several chunks, and its first part has a function per
 * delta, so that the sums pass the bound of one round and the fold needs two.
 */
static const char *const fold_reference[][2] = {
    {"usage_hourly",
     "SELECT tenant, function, date_trunc('hour', started_at, 'UTC'), memory_mb, sum(sign),"
     " coalesce(sum(sign) FILTER (WHERE NOT ok), 0),"
     " coalesce(sum(sign) FILTER (WHERE cold_start), 0),"
     " sum(sign * duration_us), sum(sign * init_us), sum(sign * cpu_us), sum(sign * bytes_in),"
     " sum(sign * bytes_out) FROM fold_input GROUP BY 1, 2, 3, 4"},
    /* Dated by the start, and each run shared out over the hours it lasts into, as
     * usage_busy_spread (schema 013) shares it: every hour a run touches has a row. */
    {"usage_tenant_hourly",
     "SELECT b.tenant, b.hour, coalesce(s.i, 0), coalesce(s.e, 0), coalesce(s.c, 0),"
     " coalesce(s.d, 0), coalesce(s.m, 0), coalesce(s.u, 0), b.bu, b.bc, b.bm"
     " FROM (SELECT f.tenant, x.hour, sum(f.sign * x.busy_us) AS bu,"
     "        sum(f.sign * x.busy_cpu_us) AS bc, sum(f.sign * x.busy_mb_us) AS bm"
     "        FROM fold_input f, usage_busy_spread(f.started_at, f.duration_us, f.cpu_us,"
     "        f.memory_mb) x GROUP BY 1, 2) b"
     " LEFT JOIN (SELECT tenant, date_trunc('hour', started_at, 'UTC') AS hour, sum(sign) AS i,"
     "        coalesce(sum(sign) FILTER (WHERE NOT ok), 0) AS e,"
     "        coalesce(sum(sign) FILTER (WHERE cold_start), 0) AS c,"
     "        sum(sign * duration_us) AS d, sum(sign * memory_mb * duration_us::numeric) AS m,"
     "        sum(sign * cpu_us) AS u FROM fold_input GROUP BY 1, 2) s"
     " ON s.tenant = b.tenant AND s.hour = b.hour"},
    {"usage_monthly",
     "SELECT tenant, date_trunc('month', started_at, 'UTC'), function, sum(sign),"
     " coalesce(sum(sign) FILTER (WHERE NOT ok), 0),"
     " coalesce(sum(sign) FILTER (WHERE cold_start), 0),"
     " sum(sign * duration_us), sum(sign * init_us), sum(sign * memory_mb),"
     " sum(sign * cpu_us), sum(sign * bytes_in), sum(sign * bytes_out),"
     " coalesce(max(memory_mb) FILTER (WHERE sign > 0), 0)"
     " FROM fold_input GROUP BY 1, 2, 3"},
    {"usage_rated",
     "SELECT d.tenant, date_trunc('month', d.started_at, 'UTC'), p.plan, d.function,"
     " sum(d.sign), sum(d.sign * q.ms), sum(d.sign * q.ms * q.mb),"
     " sum(d.sign * q.ms * coalesce(c.mhz, 0)), sum(d.sign * d.cpu_us),"
     " sum(d.sign * d.bytes_out)"
     " FROM fold_input d CROSS JOIN plans p CROSS JOIN"
     " LATERAL (SELECT plan_billed_ms(p, d.duration_us, d.init_us) AS ms,"
     "                 plan_billed_mb(p, d.memory_mb, d.max_rss_kb) AS mb) q"
     " LEFT JOIN plan_clock c ON c.plan = p.plan AND c.mb = q.mb GROUP BY 1, 2, 3, 4"},
    {"usage_rated_hourly",
     "SELECT d.tenant, date_trunc('hour', d.started_at, 'UTC'), p.plan, d.function,"
     " sum(d.sign), sum(d.sign * q.ms), sum(d.sign * q.ms * q.mb)"
     " FROM fold_input d CROSS JOIN plans p CROSS JOIN"
     " LATERAL (SELECT plan_billed_ms(p, d.duration_us, d.init_us) AS ms,"
     "                 plan_billed_mb(p, d.memory_mb, d.max_rss_kb) AS mb) q"
     " GROUP BY 1, 2, 3, 4"},
};

/* "N of M": N rows of rollup i differ from the reference, either way, of M rows. */
static char *fold_differences(PGconn *conn, size_t i)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "WITH want AS (SELECT * FROM (%s) w), have AS (SELECT * FROM %s)"
             " SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM have) a)"
             " + (SELECT count(*) FROM (SELECT * FROM have EXCEPT SELECT * FROM want) b)"
             " || ' of ' || (SELECT count(*) FROM have)",
             fold_reference[i][1], fold_reference[i][0]);
    return testdb_value(conn, sql, 0, NULL);
}

START_TEST(a_backlog_folds_as_the_sql_reference_rates_it)
{
    PGconn *conn = testdb_connect(conninfo);
    struct fm_err err;
    /* 45,000 deltas over two months and many hours: signs both ways, every memory size
     * the plans round differently, failures, cold starts, observed memory from 0 up. The
     * first 25,000 have a function each. */
    testdb_exec(conn,
                "CREATE TABLE fold_input AS SELECT"
                " 't' || (k % 13) AS tenant,"
                " CASE WHEN k <= 25000 THEN 'f' || k ELSE 'fn' || (k % 5) END AS function,"
                " '2026-10-31 20:00Z'::timestamptz + (k * 7919 % 172800) * interval '1 s'"
                "   + (k % 1000) * interval '1 microsecond' AS started_at,"
                " (CASE WHEN k % 11 = 0 THEN -1 ELSE 1 END)::smallint AS sign,"
                " (ARRAY[128, 129, 256, 1536, 3008, 10240])[1 + k % 6] AS memory_mb,"
                " k % 9 <> 0 AS ok, k % 17 = 0 AS cold_start,"
                " (k::bigint * 104729 % 3000000) AS duration_us,"
                " (CASE WHEN k % 4 = 0 THEN k::bigint * 31 % 400000 ELSE 0 END) AS init_us,"
                " (k::bigint * 7 % 2100000) AS max_rss_kb, (k % 5000)::bigint AS cpu_us,"
                " (k % 700)::bigint AS bytes_in, (k::bigint * 3 % 90000) AS bytes_out"
                " FROM generate_series(1, 45000) k");
    /* And some before PostgreSQL's epoch (2000) and the Unix one, across an hour. */
    testdb_exec(conn, "INSERT INTO fold_input SELECT tenant, function,"
                      " timestamptz '1999-12-31 23:59:59.5Z' - (duration_us % 3) * interval '10 years'"
                      "   + (cpu_us % 4) * interval '1 s',"
                      " sign, memory_mb, ok, cold_start, duration_us, init_us, max_rss_kb,"
                      " cpu_us, bytes_in, bytes_out FROM fold_input WHERE function = 'fn1'"
                      " LIMIT 300");
    /* And runs of up to a day, some from the top of an hour to the top of another. */
    testdb_exec(conn, "INSERT INTO fold_input SELECT tenant, function,"
                      " CASE WHEN cpu_us % 3 = 0 THEN date_trunc('hour', started_at, 'UTC')"
                      "      ELSE started_at END,"
                      " sign, memory_mb, ok, cold_start,"
                      " CASE cpu_us % 4 WHEN 0 THEN 86400000000 WHEN 1 THEN 3600000000"
                      "      ELSE cpu_us * 17280017 % 86400000001 END,"
                      " init_us, max_rss_kb, cpu_us * 1000003, bytes_in, bytes_out"
                      " FROM fold_input WHERE function = 'fn2' LIMIT 500");
    testdb_exec(conn, "INSERT INTO usage_delta SELECT * FROM fold_input");
    long folded = 0;
    ck_assert_msg(meter_usage_fold(conn, &folded, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(folded, 45800);
    char *left = testdb_value(conn, "SELECT count(*) FROM usage_delta", 0, NULL);
    ck_assert_str_eq(left, "0");
    free(left);
    for (size_t i = 0; i < sizeof fold_reference / sizeof fold_reference[0]; i++) {
        char *diff = fold_differences(conn, i);
        ck_assert_msg(strncmp(diff, "0 of ", 5) == 0 && strcmp(diff, "0 of 0") != 0,
                      "%s: %s rows differ from the reference", fold_reference[i][0], diff);
        free(diff);
    }

    /* The same backlog taken back, folded in rounds inside one transaction (as a plan's
     * registration does): every sum comes back to zero, none counted twice. */
    testdb_exec(conn, "INSERT INTO usage_delta SELECT tenant, function, started_at, -sign,"
                      " memory_mb, ok, cold_start, duration_us, init_us, max_rss_kb, cpu_us,"
                      " bytes_in, bytes_out FROM fold_input");
    testdb_exec(conn, "BEGIN");
    ck_assert_int_eq(meter_usage_fold(conn, NULL, &err), -1); /* not inside a transaction */
    ck_assert_msg(strstr(err.msg, "not idle") != NULL, "%s", err.msg);
    ck_assert_msg(meter_usage_fold_in_transaction(conn, &folded, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(folded, 45800);
    testdb_exec(conn, "COMMIT");
    char *nonzero = testdb_value(
        conn,
        "SELECT (SELECT count(*) FROM usage_hourly WHERE (invocations, errors, cold_starts,"
        " duration_us, init_us, cpu_us, bytes_in, bytes_out) <> (0, 0, 0, 0, 0, 0, 0, 0))"
        " + (SELECT count(*) FROM usage_tenant_hourly WHERE (invocations, duration_us, mb_us,"
        " busy_us, busy_cpu_us, busy_mb_us) <> (0, 0, 0, 0, 0, 0)) + (SELECT count(*) FROM usage_monthly WHERE (invocations,"
        " mb_invocations, bytes_out) <> (0, 0, 0)) + (SELECT count(*) FROM usage_rated WHERE"
        " (invocations, billed_ms, mb_ms, mhz_ms, cpu_us, egress_bytes) <> (0, 0, 0, 0, 0, 0))"
        " + (SELECT count(*) FROM usage_rated_hourly WHERE (invocations, billed_ms, mb_ms)"
        " <> (0, 0, 0))",
        0, NULL);
    ck_assert_str_eq(nonzero, "0");
    free(nonzero);

    /* A delta no plan can rate stops the fold with it and its round pending, and the
     * rollups as they were; once it is gone, the rest folds. These land on the table's
     * first page, emptied, behind where the last fold stopped: a fold goes on from where
     * its last chunk stopped, and must still take them. */
    testdb_exec(conn, "TRUNCATE usage_delta");
    testdb_exec(conn, "INSERT INTO usage_delta SELECT * FROM fold_input WHERE function = 'fn2'"
                      " LIMIT 5");
    testdb_exec(conn, "INSERT INTO usage_delta SELECT tenant, function, started_at, sign,"
                      " memory_mb, ok, cold_start, -1, init_us, max_rss_kb, cpu_us, bytes_in,"
                      " bytes_out FROM fold_input WHERE function = 'fn2' LIMIT 1");
    char *first_page = testdb_value(conn, "SELECT count(*) FROM usage_delta WHERE ctid < '(1,0)'",
                                    0, NULL);
    ck_assert_str_eq(first_page, "6");
    free(first_page);
    ck_assert_int_eq(meter_usage_fold(conn, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "cannot rate") != NULL, "%s", err.msg);
    left = testdb_value(conn, "SELECT count(*) FROM usage_delta", 0, NULL);
    ck_assert_str_eq(left, "6");
    free(left);
    nonzero = testdb_value(conn, "SELECT count(*) FROM usage_hourly WHERE invocations <> 0", 0,
                           NULL);
    ck_assert_str_eq(nonzero, "0");
    free(nonzero);
    testdb_exec(conn, "DELETE FROM usage_delta WHERE duration_us < 0");
    /* So does one that runs longer than a record may: it would claim a row an hour. */
    testdb_exec(conn, "INSERT INTO usage_delta SELECT tenant, function, started_at, sign,"
                      " memory_mb, ok, cold_start, 86400000001, init_us, max_rss_kb, cpu_us,"
                      " bytes_in, bytes_out FROM fold_input WHERE function = 'fn2' LIMIT 1");
    ck_assert_int_eq(meter_usage_fold(conn, NULL, &err), -1);
    ck_assert_msg(strstr(err.msg, "runs 86400000001 us, outside 0 to a day") != NULL, "%s",
                  err.msg);
    testdb_exec(conn, "DELETE FROM usage_delta WHERE duration_us > 86400000000");
    ck_assert_msg(meter_usage_fold(conn, &folded, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(folded, 5);
    PQfinish(conn);
}
END_TEST

START_TEST(a_plan_is_rated_anew_only_once_pending_usage_is_folded)
{
    struct bill_catalog *cat = NULL;
    struct fm_err err;
    ck_assert_int_eq(bill_catalog_load(NULL, &cat, &err), BILL_OK);
    PGconn *conn = meter_store_conn(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    int64_t at = fm_civil_to_us(2026, 11, 3);
    char *batch[4] = {start_json(1, at, 512), stop_json(1, at, 512, 1234567, 0, 300000, 900),
                      start_json(2, at, 128), stop_json(2, at, 128, 81, 5000, 1000, 10)};
    ck_assert_int_eq(store(conn, batch, 4), 4);
    /* The deltas of those two are pending: registering changed rules straight away would
     * rate them twice, from the invocations and again when folded. */
    PGresult *res = PQexec(conn, "SELECT plan_register('aws-lambda-x86', 50, 0, false,"
                                 " 'observed', 64, 128, 3008, '[]')");
    ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
    ck_assert_msg(strstr(PQresultErrorMessage(res), "usage is pending") != NULL, "%s",
                  PQresultErrorMessage(res));
    PQclear(res);
    /* meterd's registration folds them in its own transaction first. */
    testdb_exec(conn, "UPDATE plans SET step_ms = 50 WHERE plan = 'aws-lambda-x86'");
    int changed = -1;
    ck_assert_msg(meter_plans_register(conn, cat, &changed, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(changed, 1);
    char *left = testdb_value(conn, "SELECT count(*) FROM usage_delta", 0, NULL);
    ck_assert_str_eq(left, "0");
    free(left);
    compare_all_plans(conn, cat);
    for (int i = 0; i < 4; i++)
        free(batch[i]);
    meter_store_close();
    bill_catalog_free(cat);
}
END_TEST

/* A fold of a build before schema 015 wrote usage_rated but not usage_rated_hourly, and one
 * before schema 020 not usage_monthly's largest memory, which would then stay short. Such a
 * writer is refused, and the deltas wait for a fold of this build; the fold and
 * plan_register of this build pass. */
START_TEST(a_fold_of_an_earlier_build_is_refused)
{
    struct fm_err err;
    PGconn *conn = meter_store_conn(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    int64_t at = fm_civil_to_us(2026, 11, 4);
    char *batch[1] = {stop_json(90007, at, 256, 1000, 0, 10, 10)};
    ck_assert_int_eq(store(conn, batch, 1), 1);
    static const char rated_sql[] =
        "SELECT (SELECT count(*) FROM usage_delta) || '/' || coalesce((SELECT"
        " sum(invocations) FROM usage_rated_hourly WHERE tenant = 't1' AND function = 'f2'"
        " AND plan = 'aws-lambda-x86' AND hour = '2026-11-04T00:00:00Z'), 0)";
    char *before = testdb_value(conn, rated_sql, 0, NULL);
    /* What 007's SQL fold did with usage_rated, as an earlier meterd would. */
    static const char *const claims[] = {"", "SET LOCAL faasmeter.rollups = '015'"};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        testdb_exec(conn, "BEGIN");
        if (*claims[i])
            testdb_exec(conn, claims[i]);
        PGresult *res = PQexec(conn,
                               "WITH d AS (DELETE FROM usage_delta RETURNING *)"
                               " INSERT INTO usage_rated (tenant, month, plan, function,"
                               "  invocations) SELECT tenant, date_trunc('month', started_at,"
                               "  'UTC'), 'aws-lambda-x86', function, count(*) FROM d"
                               " GROUP BY 1, 2, 3, 4");
        ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
        ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                         "usage_rated: written by a fold older than schema 020, which would"
                         " leave usage_monthly's largest memory short");
        PQclear(res);
        testdb_exec(conn, "ROLLBACK");
    }
    char *left = testdb_value(conn, rated_sql, 0, NULL);
    ck_assert_str_eq(left, before); /* nothing taken out, nothing added */
    free(left);
    ck_assert_msg(meter_usage_fold(conn, NULL, &err) == 0, "%s", err.msg);
    /* Before: the delta pending and the hour without it; after: folded into the hour. */
    char *after = testdb_value(conn, rated_sql, 0, NULL);
    long pending = strtol(before, NULL, 10);
    long hour_before = strtol(strchr(before, '/') + 1, NULL, 10);
    char want[64];
    snprintf(want, sizeof want, "0/%ld", hour_before + 1);
    ck_assert_int_ge(pending, 1);
    ck_assert_str_eq(after, want);
    free(before);
    free(after);
    free(batch[0]);
    meter_store_close();
}
END_TEST

Suite *suite_rating(void)
{
    Suite *s = suite_create("rating");
    TCase *tc = tcase_create("rollups");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rollups_match_the_library_in_any_arrival_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("fold");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_backlog_folds_as_the_sql_reference_rates_it);
    tcase_add_test(tc, a_plan_is_rated_anew_only_once_pending_usage_is_folded);
    tcase_add_test(tc, a_fold_of_an_earlier_build_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
