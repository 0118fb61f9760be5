/*
 * The comparison from stored usage and the reports: the busiest hour's load and the totals
 * from the rollups of crafted invocation rows (one tenant and every tenant at once, and a
 * plan the database does not rate), faasbill compare / report / simulate on a real database, the trace
 * replay on a tiny trace written here, their usage errors, and the HTML page rendered by
 * headless Chromium with its charts present.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/db.h"
#include "common/paths.h"
#include "meter/compare_stats.h"
#include "meter/fold.h"
#include "tests/proc.h"
#include "tests/suites.h"
#include "tests/test_billing_util.h"
#include "tests/testdb.h"

static char conninfo[1024];
static char dir[64];

static void setup(void)
{
    testdb_create("faasmeter_test_reports", conninfo, sizeof conninfo);
    snprintf(dir, sizeof dir, "/tmp/faasmeter-reports.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('acme', 'aws-lambda-x86'),"
                    " ('zeta', 'gcf-gen1-tier1')");
    testdb_exec(db, "SELECT ensure_month_partition('invocations', '2026-11-01Z')");
    /* acme: "api" runs 10:00:00-10:00:02 (256 MB), 10:00:01-10:00:03 (512 MB) and
     * 10:00:02-10:00:04 (1024 MB); "batch" runs once, 11:00-11:00:10 at 2048 MB, failed,
     * cold. */
    testdb_exec(db,
                "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " has_stop, memory_mb, cold_start, duration_us, init_us, status, cpu_user_us,"
                " cpu_sys_us, max_rss_kb, bytes_in, bytes_out) VALUES"
                " ('acme', 'i1', '2026-11-03T10:00:00Z', 'api', true, true, 256, false,"
                "  2000000, 0, 'ok', 1000000, 0, 100000, 0, 0),"
                " ('acme', 'i2', '2026-11-03T10:00:01Z', 'api', true, true, 512, false,"
                "  2000000, 0, 'ok', 2000000, 0, 100000, 0, 0),"
                " ('acme', 'i3', '2026-11-03T10:00:02Z', 'api', true, true, 1024, false,"
                "  2000000, 0, 'ok', 2000000, 0, 100000, 0, 0),"
                " ('acme', 'i4', '2026-11-03T11:00:00Z', 'batch', true, true, 2048, true,"
                "  10000000, 0, 'error', 10000000, 0, 100000, 0, 0),"
                " ('zeta', 'z1', '2026-11-04T00:00:00Z', 'f', true, true, 128, false,"
                "  100000, 0, 'ok', 100000, 0, 1000, 0, 0)");
    /* As ingestion does for each finished invocation: a delta for the rollups, folded by
     * the reader. */
    testdb_exec(db, "SELECT usage_apply(i, 1) FROM invocations i");
    PQfinish(db);
}

static void teardown(void)
{
    char *argv[] = {"/bin/rm", "-rf", dir, NULL};
    struct proc_result r = proc_run(argv, NULL, 30);
    free(r.out);
    free(r.err);
}

/* Run faasbill with arguments; checks the exit status; returns stdout (caller frees) and
 * stderr into *err_out when not NULL. */
static char *faasbill(int want, char **err_out, ...)
{
    char bin[512];
    char *argv[40] = {(char *)proc_bin("faasbill", bin, sizeof bin)};
    va_list ap;
    va_start(ap, err_out);
    int n = 1;
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 39;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    struct proc_result r = proc_run(argv, NULL, 120);
    ck_assert_msg(r.status == want, "faasbill %s exited %d, wanted %d; stderr: %s", argv[1],
                  r.status, want, r.err);
    if (err_out)
        *err_out = r.err;
    else
        free(r.err);
    return r.out;
}

/* The figures both readers must give for acme (see the rows in setup). */
static void check_acme(const struct bill_comparison *cmp)
{
    /* The busiest hour by each measure is 11:00, where batch runs alone:
     *  concurrency ceil(10,000,000 us / 3,600,000,000 us) = 1 (10:00 has 6 s: also 1);
     *  memory ceil(2048 MB x 10 s / 3600 s) = ceil(5.69) = 6 MB (10:00: (256 + 512 + 1024)
     *  x 2 s / 3600 s = 0.996, 1 MB);
     *  CPU ceil(10 s x 1000 / 3600 s) = ceil(2.78) = 3 thousandths of a core (10:00: 5 s,
     *  ceil(1.39) = 2). */
    ck_assert_int_eq(cmp->peak_concurrency, 1);
    ck_assert_int_eq(cmp->peak_memory_mb, 6);
    ck_assert_int_eq(cmp->peak_cpu_millicores, 3);
    ck_assert_int_eq(cmp->invocations, 4);
    ck_assert_int_eq(cmp->errors, 1);
    ck_assert_int_eq(cmp->cold_starts, 1);
    ck_assert_int_eq(cmp->busy_us, 16000000);
    /* (256 + 512 + 1024 + 2048) / 4 = 960 MB; 16 s / 4 = 4 s. */
    ck_assert_int_eq(cmp->mean.memory_mb, 960);
    ck_assert_int_eq(cmp->mean.duration_us, 4000000);
    ck_assert_uint_eq(cmp->nfunctions, 2);
    for (size_t i = 0; i < cmp->nfunctions; i++) {
        const struct bill_fn_stats *f = cmp->functions[i].stats;
        bool api = strcmp(f->function, "api") == 0;
        ck_assert(api || strcmp(f->function, "batch") == 0);
        ck_assert_int_eq(f->invocations, api ? 3 : 1);
        ck_assert_int_eq(f->memory_mb, api ? 1792 : 2048);
        ck_assert_int_eq(f->cpu_us, api ? 5000000 : 10000000);
    }
}

/* The usage under each plan, line by line in plan order, then each bill: what the rounding
 * decided, so that two ways of rounding can be compared even within free tiers. */
static size_t plan_figures(const struct bill_comparison *cmp, int64_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < cmp->nplans; i++) {
        const struct bill_invoice *inv = cmp->plans[i].invoice;
        for (size_t l = 0; l < inv->nlines; l++) {
            ck_assert_uint_lt(k, cap);
            out[k++] = inv->lines[l].usage_base;
        }
        ck_assert_uint_lt(k, cap);
        out[k++] = inv->total;
    }
    return k;
}

START_TEST(load_and_totals_from_rollups)
{
    PGconn *db = testdb_connect(conninfo);
    struct bill_catalog *cat = tb_catalog();
    struct bill_stats *st = NULL;
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    char plan[64];
    ck_assert_int_eq(meter_compare_stats(db, cat, "acme", "2026-11", plan, sizeof plan, &st,
                                         &err),
                     METER_INVOICE_OK);
    ck_assert_str_eq(plan, "aws-lambda-x86");
    ck_assert_int_eq(bill_compare(st, plan, NULL, 0, "acme", "2026-11", &cmp, &err), BILL_OK);
    check_acme(cmp);
    /* Hour 58 of November: the 3rd at 10:00. */
    ck_assert_int_eq(bill_compare_bucket(cmp, 2 * 24 + 10)->invocations, 3);
    ck_assert_int_eq(bill_compare_bucket(cmp, 2 * 24 + 11)->errors, 1);
    bill_comparison_free(cmp);
    bill_stats_free(st);
    ck_assert_int_eq(meter_compare_stats(db, cat, "nobody", "2026-11", plan, sizeof plan, &st,
                                         &err),
                     METER_INVOICE_NO_TENANT);
    ck_assert_int_eq(meter_compare_stats(db, cat, "acme", "2026-13", plan, sizeof plan, &st,
                                         &err),
                     METER_INVOICE_BAD_INPUT);
    bill_catalog_free(cat);
    PQfinish(db);
}
END_TEST

/* A run counts in every hour it lasts into, for its time there: one execution of a day at
 * 10 GB is one at once, not 24 in the hour it started. */
START_TEST(a_long_run_counts_in_each_hour_it_lasts)
{
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('longrun', 'aws-lambda-x86')");
    testdb_exec(db,
                "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " has_stop, memory_mb, cold_start, duration_us, init_us, status, cpu_user_us,"
                " cpu_sys_us, max_rss_kb, bytes_in, bytes_out) VALUES"
                " ('longrun', 'day', '2026-11-05T10:30:00Z', 'etl', true, true, 10240, false,"
                "  86400000000, 0, 'ok', 86400000000, 0, 100000, 0, 0)");
    testdb_exec(db, "SELECT usage_apply(i, 1) FROM invocations i WHERE tenant = 'longrun'");
    struct bill_catalog *cat = tb_catalog();
    struct bill_stats *st = NULL;
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    char plan[64];
    ck_assert_int_eq(meter_compare_stats(db, cat, "longrun", "2026-11", plan, sizeof plan, &st,
                                         &err),
                     METER_INVOICE_OK);
    ck_assert_int_eq(bill_compare(st, plan, NULL, 0, "longrun", "2026-11", &cmp, &err), BILL_OK);
    ck_assert_int_eq(cmp->peak_concurrency, 1);
    ck_assert_int_eq(cmp->peak_memory_mb, 10240);
    ck_assert_int_eq(cmp->peak_cpu_millicores, 1000);
    ck_assert_int_eq(cmp->busy_us, INT64_C(86400000000));
    /* Its first hour holds half an hour of it, the next 23 whole ones, the last half. */
    char *hours = testdb_value(db,
                               "SELECT count(*) || ' ' || min(busy_us) || ' ' || max(busy_us)"
                               "  FROM usage_tenant_hourly WHERE tenant = 'longrun'",
                               0, NULL);
    ck_assert_str_eq(hours, "25 1800000000 3600000000");
    free(hours);
    bill_comparison_free(cmp);
    bill_stats_free(st);
    bill_catalog_free(cat);
    PQfinish(db);
}
END_TEST

/* A function that keeps four cores busy for its hour needs four vCPUs, however few
 * executions run at once: the CPU load sizes the servers beside concurrency and memory. */
START_TEST(cpu_time_beyond_one_core_sizes_the_servers)
{
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('threads', 'aws-lambda-x86')");
    testdb_exec(db,
                "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " has_stop, memory_mb, cold_start, duration_us, init_us, status, cpu_user_us,"
                " cpu_sys_us, max_rss_kb, bytes_in, bytes_out) VALUES"
                " ('threads', 't1', '2026-11-05T10:00:00Z', 'render', true, true, 1024, false,"
                "  3600000000, 0, 'ok', 12600000000, 1800000000, 100000, 0, 0)");
    testdb_exec(db, "SELECT usage_apply(i, 1) FROM invocations i WHERE tenant = 'threads'");
    PQfinish(db);
    /* The hour at 10:00 holds one execution at once, 1024 MB, and 4 h of CPU: 4 cores.
     * t3.micro (2 vCPUs, 1024 MB): 2 for the CPU, 1 for memory or concurrency, so 2 at
     * 7.59 = 15.18; m5.large (2 vCPUs): 2 as well, 140.16. */
    char *out = faasbill(0, NULL, "compare", "--tenant", "threads", "--period", "2026-11",
                         "--server", "aws-t3.micro", "--server", "aws-m5.large", "--format",
                         "csv", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,aws-t3.micro,,2,15.18,,"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,aws-m5.large,,2,140.16,,"));
    free(out);
}
END_TEST

/* A function's own server, in the functions table, is sized by its CPU time as the fleet is:
 * 30 runs of a day on 8 cores are 240 core-days, 4 t3.micro over the 30 days of November
 * (2 vCPUs each), 30.36 a month, where its execution time alone asked for one. */
START_TEST(a_function_s_server_counts_its_cpu_time)
{
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('cores', 'aws-lambda-x86')");
    testdb_exec(db,
                "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " has_stop, memory_mb, cold_start, duration_us, init_us, status, cpu_user_us,"
                " cpu_sys_us, max_rss_kb, bytes_in, bytes_out)"
                " SELECT 'cores', 'c' || d, timestamptz '2026-11-01Z' + d * interval '1 day',"
                " 'crunch', true, true, 1024, false, 86400000000, 0, 'ok', 691200000000, 0,"
                " 100000, 0, 0 FROM generate_series(0, 29) d");
    testdb_exec(db, "SELECT usage_apply(i, 1) FROM invocations i WHERE tenant = 'cores'");
    PQfinish(db);
    char *out = faasbill(0, NULL, "compare", "--tenant", "cores", "--period", "2026-11",
                         "--server", "aws-t3.micro", "--format", "json", "--db", conninfo, NULL);
    cJSON *root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "functions"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(f, "server")->valuestring, "aws-t3.micro");
    ck_assert_str_eq(cJSON_GetObjectItem(f, "server_monthly_fee")->valuestring, "30.36");
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "servers"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(s, "monthly_fee")->valuestring, "30.36");
    cJSON_Delete(root);
    free(out);
}
END_TEST

/* Every tenant at once gives each the figures it gets alone, and a plan the database does
 * not rate is rounded from the rows to the same bill. */
START_TEST(every_tenant_and_unrated_plan)
{
    PGconn *db = testdb_connect(conninfo);
    struct bill_catalog *cat = tb_catalog();
    struct fm_err err = {{0}};
    struct meter_tenant_stats *all = NULL;
    size_t n = 0;
    int64_t rated[256], unrated[256];
    size_t nrated = 0, nunrated = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) /* as if the plan were added to the catalog since registration */
            testdb_exec(db, "DELETE FROM plans WHERE plan = 'gcf-gen1-tier1'");
        ck_assert_msg(meter_compare_stats_all(db, cat, "2026-11", &all, &n, &err) ==
                          METER_INVOICE_OK,
                      "%s", err.msg);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(all[0].tenant, "acme");
        ck_assert_str_eq(all[0].plan, "aws-lambda-x86");
        ck_assert_str_eq(all[1].tenant, "zeta");
        ck_assert_str_eq(all[1].plan, "gcf-gen1-tier1");
        struct bill_comparison *cmp = NULL;
        ck_assert_int_eq(bill_compare(all[0].stats, all[0].plan, NULL, 0, "acme", "2026-11",
                                      &cmp, &err),
                         BILL_OK);
        check_acme(cmp);
        if (pass == 0)
            nrated = plan_figures(cmp, rated, 256);
        else
            nunrated = plan_figures(cmp, unrated, 256);
        bill_comparison_free(cmp);
        ck_assert_int_eq(bill_compare(all[1].stats, all[1].plan, NULL, 0, "zeta", "2026-11",
                                      &cmp, &err),
                         BILL_OK);
        /* 100 ms at 128 MB, at 00:00: ceil(128 x 0.1 s / 3600 s) = 1 MB, 1 concurrent. */
        ck_assert_int_eq(cmp->invocations, 1);
        ck_assert_int_eq(cmp->peak_concurrency, 1);
        ck_assert_int_eq(cmp->peak_memory_mb, 1);
        bill_comparison_free(cmp);
        meter_tenant_stats_free(all, n);
        all = NULL;
    }
    ck_assert_uint_eq(nrated, nunrated);
    int64_t sum = 0;
    for (size_t i = 0; i < nrated; i++) {
        ck_assert_int_eq(rated[i], unrated[i]);
        sum += rated[i];
    }
    ck_assert_int_gt(sum, 0);
    bill_catalog_free(cat);
    PQfinish(db);
}
END_TEST

/* acme once "batch" (i4) is taken back, as a replaced stop does: 10:00 is the busiest hour
 * by every measure, 6 s of execution (ceil(6 / 3600) = 1), (256 + 512 + 1024) MB x 2 s
 * (ceil(0.996) = 1 MB) and 5 s of CPU (ceil(1.39) = 2 thousandths of a core); the mean is
 * 1792 / 3 = 597.3, 597 MB, for 2 s; batch, with no invocation left, is not listed. */
static void check_acme_retracted(const struct bill_comparison *cmp)
{
    ck_assert_int_eq(cmp->peak_concurrency, 1);
    ck_assert_int_eq(cmp->peak_memory_mb, 1);
    ck_assert_int_eq(cmp->peak_cpu_millicores, 2);
    ck_assert_int_eq(cmp->invocations, 3);
    ck_assert_int_eq(cmp->errors, 0);
    ck_assert_int_eq(cmp->cold_starts, 0);
    ck_assert_int_eq(cmp->busy_us, 6000000);
    ck_assert_int_eq(cmp->mean.memory_mb, 597);
    ck_assert_int_eq(cmp->mean.duration_us, 2000000);
    ck_assert_uint_eq(cmp->nfunctions, 1);
    ck_assert_str_eq(cmp->functions[0].stats->function, "api");
    ck_assert_int_eq(cmp->functions[0].stats->memory_mb, 1792);
}

/* Usage taken back after it was folded leaves both readers with the figures of what remains,
 * read from the report's rollups alone: the per-function, hour and memory detail of
 * usage_hourly is emptied first, so a reader that still used it would find nothing. */
START_TEST(retraction_from_report_rollups)
{
    PGconn *db = testdb_connect(conninfo);
    struct bill_catalog *cat = tb_catalog();
    struct bill_stats *st = NULL;
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    char plan[64];
    ck_assert_msg(meter_usage_fold(db, NULL, &err) == 0, "%s", err.msg);
    testdb_exec(db, "TRUNCATE usage_hourly");
    testdb_exec(db, "SELECT usage_apply(i, -1) FROM invocations i WHERE invocation_id = 'i4'");
    ck_assert_msg(meter_compare_stats(db, cat, "acme", "2026-11", plan, sizeof plan, &st,
                                      &err) == METER_INVOICE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(bill_compare(st, plan, NULL, 0, "acme", "2026-11", &cmp, &err), BILL_OK);
    check_acme_retracted(cmp);
    ck_assert_int_eq(bill_compare_bucket(cmp, 2 * 24 + 10)->invocations, 3);
    ck_assert_int_eq(bill_compare_bucket(cmp, 2 * 24 + 11)->invocations, 0);
    ck_assert_int_eq(bill_compare_bucket(cmp, 2 * 24 + 11)->errors, 0);
    bill_comparison_free(cmp);
    bill_stats_free(st);

    struct meter_tenant_stats *all = NULL;
    size_t n = 0;
    ck_assert_msg(meter_compare_stats_all(db, cat, "2026-11", &all, &n, &err) ==
                      METER_INVOICE_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(all[0].tenant, "acme");
    ck_assert_int_eq(bill_compare(all[0].stats, all[0].plan, NULL, 0, "acme", "2026-11", &cmp,
                                  &err),
                     BILL_OK);
    check_acme_retracted(cmp);
    bill_comparison_free(cmp);
    meter_tenant_stats_free(all, n);
    bill_catalog_free(cat);
    PQfinish(db);
}
END_TEST

START_TEST(compare_json_and_csv)
{
    char *out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-11",
                         "--server", "aws-t3.small", "--format", "json", "--db", conninfo, NULL);
    cJSON *root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    const cJSON *servers = cJSON_GetObjectItem(root, "servers");
    ck_assert_int_eq(cJSON_GetArraySize(servers), 1);
    /* The busiest hour holds 6 MB and 1 execution on average, batch is configured with
     * 2048 MB: one server (2048 MB, 2 vCPUs) at 0.0208 x 730 = 15.18. */
    const cJSON *s = cJSON_GetArrayItem(servers, 0);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "fits")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "reason")));
    ck_assert_int_eq(cJSON_GetObjectItem(s, "count")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(s, "monthly_fee")->valuestring, "15.18");
    const cJSON *u = cJSON_GetObjectItem(root, "usage");
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_memory_mb")->valueint, 6);
    ck_assert_int_eq(cJSON_GetObjectItem(u, "max_memory_mb")->valueint, 2048);
    ck_assert_str_eq(cJSON_GetObjectItem(u, "peak_cpu_cores")->valuestring, "0.003");
    /* Within the free tier: nothing to pay under the tenant's plan. */
    const cJSON *p0 = NULL, *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(root, "plans")) if (cJSON_IsTrue(
        cJSON_GetObjectItem(p, "own"))) p0 = p;
    ck_assert_ptr_nonnull(p0);
    ck_assert_str_eq(cJSON_GetObjectItem(p0, "total")->valuestring, "0.00");
    cJSON_Delete(root);
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-11", "--format",
                   "csv", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "kind,name,invocations,count,amount,"));
    ck_assert_ptr_nonnull(strstr(out, "plan,aws-lambda-x86,4,,0.00,"));
    ck_assert_ptr_nonnull(strstr(out, "function,batch,1,"));
    free(out);
}
END_TEST

/* A month without an invocation has no mean invocation to price at volume: no break-even
 * is given (JSON null, "-" in text and the report, empty in CSV), where one was once worked
 * out for an invocation of 0 ms at 0 MB. */
START_TEST(an_empty_month_has_no_breakeven)
{
    char *out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-10",
                         "--server", "aws-t3.micro", "--format", "csv", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\r\nplan,aws-lambda-x86,0,,0.00,,,,own\r\n"));
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-10", "--server",
                   "aws-t3.micro", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\naws-lambda-x86 (own)         0.00"
                                      "                             -\n"));
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-10", "--server",
                   "aws-t3.micro", "--format", "json", "--db", conninfo, NULL);
    cJSON *root = cJSON_Parse(out);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(root, "plans"))
        ck_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "breakeven_invocations")));
    cJSON_Delete(root);
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-10", "--server",
                   "aws-t3.micro", "--format", "html", "--db", conninfo, NULL);
    ck_assert_ptr_null(strstr(out, "break-even:"));
    free(out);
}
END_TEST

/* A described workload is sized as stored usage is (billing/compare.h): the busiest hour's
 * memory is configured MB x execution time over the hour, not a whole execution's memory
 * for every execution running at once rounded up. 1,000,000 runs of 100 ms at 10240 MB
 * over 30 days: 100,000 s x 10240 MB / 2,592,000 s = 395.06, 396 MB, not 10240 MB for the
 * one execution running at once; CPU 100,000 s / 2,592,000 s = 0.0386, 0.039 cores. Yet
 * one invocation needs 10240 MB, more than an m5.large has (8192 MB): it is too small. At
 * 1024 MB the same runs hold 39.5, 40 MB an hour: one t3.micro (1024 MB) carries them. */
START_TEST(a_described_workload_is_sized_as_stored_usage)
{
    char *out = faasbill(0, NULL, "simulate", "--invocations", "1000000", "--avg-duration-ms",
                         "100", "--memory-mb", "10240", "--server", "aws-m5.large", "--format",
                         "json", NULL);
    cJSON *root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    const cJSON *u = cJSON_GetObjectItem(root, "usage");
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_concurrency")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_memory_mb")->valueint, 396);
    ck_assert_str_eq(cJSON_GetObjectItem(u, "peak_cpu_cores")->valuestring, "0.039");
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "servers"), 0);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s, "fits")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "count")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "best_server")));
    cJSON_Delete(root);
    free(out);
    out = faasbill(0, NULL, "simulate", "--invocations", "1000000", "--avg-duration-ms", "100",
                   "--memory-mb", "1024", "--server", "aws-t3.micro", "--format", "json", NULL);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    u = cJSON_GetObjectItem(root, "usage");
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_memory_mb")->valueint, 40);
    s = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "servers"), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(s, "count")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(s, "monthly_fee")->valuestring, "7.59");
    cJSON_Delete(root);
    free(out);
}
END_TEST

START_TEST(cli_usage_errors)
{
    char *err = NULL;
    free(faasbill(2, &err, "compare", "--period", "2026-11", NULL));
    ck_assert_str_eq(err, "faasbill compare: --tenant: required (try faasbill compare --help)\n");
    free(err);
    free(faasbill(2, &err, "compare", "--tenant", "acme", "--period", "2026-1", NULL));
    ck_assert_str_eq(err, "faasbill compare: --period: expected YYYY-MM, got '2026-1'\n");
    free(err);
    free(faasbill(2, &err, "compare", "--tenant", "acme", "--period", "2026-11", "--format",
                  "pdf", NULL));
    ck_assert_str_eq(err, "faasbill compare: --format: expected text, json, csv or html, got "
                          "'pdf'\n");
    free(err);
    free(faasbill(2, &err, "compare", "--tenant", "acme", "--period", "2026-11", "--server",
                  "nope", "--db", conninfo, NULL));
    ck_assert_ptr_nonnull(strstr(err, "--server: no server 'nope'"));
    free(err);
    /* A server named twice would be sized, listed and charted twice. */
    free(faasbill(2, &err, "compare", "--tenant", "acme", "--period", "2026-11", "--server",
                  "aws-t3.micro", "--server", "azure-b1s", "--server", "aws-t3.micro", "--db",
                  conninfo, NULL));
    ck_assert_str_eq(err, "faasbill compare: --server: 'aws-t3.micro' given twice\n");
    free(err);
    free(faasbill(2, &err, "simulate", "--invocations", "10", "--avg-duration-ms", "1",
                  "--memory-mb", "128", "--server", "azure-b1s", "--server", "azure-b1s", NULL));
    ck_assert_str_eq(err, "faasbill simulate: --server: 'azure-b1s' given twice\n");
    free(err);
    free(faasbill(2, &err, "compare", "--tenant", "nobody", "--period", "2026-11", "--db",
                  conninfo, NULL));
    ck_assert_str_eq(err, "faasbill compare: --tenant: no tenant 'nobody' (faasbill tenant "
                          "list)\n");
    free(err);
    free(faasbill(2, &err, "report", "--period", "2026-11", NULL));
    ck_assert_str_eq(err, "faasbill report: -o: required (try faasbill report --help)\n");
    free(err);
    /* An output that can be no file is the command line's fault, told before any work. */
    free(faasbill(2, &err, "report", "--period", "2026-11", "-o", dir, "--db", conninfo, NULL));
    char want[256];
    snprintf(want, sizeof want,
             "faasbill report: -o: expected a file to write, or - for standard output, got "
             "'%s'\n",
             dir);
    ck_assert_str_eq(err, want);
    free(err);
    free(faasbill(2, &err, "compare", "--tenant", "acme", "--period", "2026-11", "-o", "",
                  "--db", conninfo, NULL));
    ck_assert_str_eq(err, "faasbill compare: -o: expected a file to write, or - for standard "
                          "output, got ''\n");
    free(err);
    free(faasbill(2, &err, "simulate", "--invocations", "10", "--avg-duration-ms", "1",
                  "--memory-mb", "128", "-o", "", NULL));
    ck_assert_str_eq(err, "faasbill simulate: -o: expected a file to write, or - for standard "
                          "output, got ''\n");
    free(err);
    free(faasbill(2, &err, "simulate", "--invocations", "10", NULL));
    ck_assert_str_eq(err, "faasbill simulate: --avg-duration-ms: required (try faasbill "
                          "simulate --help)\n");
    free(err);
    free(faasbill(2, &err, "simulate", "--trace", dir, "--memory-mb", "128", NULL));
    ck_assert_ptr_nonnull(strstr(err, "either --trace or a described workload"));
    free(err);
}
END_TEST

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(trace_replay_tiny)
{
    /* Two functions of one owner: "aa..." called 2 times in minute 1 and 4 in minute 3,
     * always 1000 ms at 256 MB; "bb..." once, 500 ms, and no memory row (128 MB). */
    struct fm_buf inv;
    fm_buf_init(&inv, 1u << 20);
    fm_buf_puts(&inv, "HashFunction,HashApp,HashOwner");
    for (int m = 1; m <= 1440; m++)
        fm_buf_printf(&inv, ",minute_%d", m);
    fm_buf_puts(&inv, "\naaaaaaaaaaaaaaaa,aaaaaaaaaaaaaaaa,oooooooooooooooo,2,0,4");
    for (int m = 4; m <= 1440; m++)
        fm_buf_puts(&inv, ",0");
    fm_buf_puts(&inv, "\nbbbbbbbbbbbbbbbb,bbbbbbbbbbbbbbbb,oooooooooooooooo,0,1");
    for (int m = 3; m <= 1440; m++)
        fm_buf_puts(&inv, ",0");
    fm_buf_puts(&inv, "\n");
    write_file("1_inv.csv", inv.data);
    fm_buf_free(&inv);
    write_file("1_run.csv",
               "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,percentile_Average_0,"
               "percentile_Average_1,percentile_Average_25,percentile_Average_50,"
               "percentile_Average_75,percentile_Average_99,percentile_Average_100\n"
               "aaaaaaaaaaaaaaaa,aaaaaaaaaaaaaaaa,oooooooooooooooo,6,1000,1000.0,1000.0,1000,1000,"
               "1000,1000,1000,1000,1000\n"
               "bbbbbbbbbbbbbbbb,bbbbbbbbbbbbbbbb,oooooooooooooooo,1,500,500.0,500.0,500,500,500,"
               "500,500,500,500\n");
    write_file("1_mem.csv",
               "HashApp,HashOwner,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,"
               "AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,"
               "AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,"
               "AverageAllocatedMb_pct100\n"
               "aaaaaaaaaaaaaaaa,oooooooooooooooo,9,256,256,256,256,256,256,256,256,256\n");
    char *out = faasbill(0, NULL, "simulate", "--trace", dir, "--plan", "aws-lambda-x86",
                         "--server", "aws-t3.micro", "--format", "json", NULL);
    cJSON *root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    const cJSON *u = cJSON_GetObjectItem(root, "usage");
    /* 7 a day, x 30. */
    ck_assert_int_eq(cJSON_GetObjectItem(u, "invocations")->valueint, 210);
    /* (6 x 1000 + 500) ms x 30 = 195 s. */
    ck_assert_str_eq(cJSON_GetObjectItem(u, "busy_seconds")->valuestring, "195");
    /* 4 calls of 1 s spread over minute 3, 15 s apart: never two at once. */
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_concurrency")->valueint, 1);
    const cJSON *fns = cJSON_GetObjectItem(root, "functions");
    ck_assert_int_eq(cJSON_GetArraySize(fns), 2);
    const cJSON *f;
    cJSON_ArrayForEach(f, fns)
    {
        const char *name = cJSON_GetObjectItem(f, "function")->valuestring;
        if (strcmp(name, "oooooooooooo.aaaaaaaaaaaa") == 0) {
            ck_assert_int_eq(cJSON_GetObjectItem(f, "invocations")->valueint, 180);
            ck_assert_str_eq(cJSON_GetObjectItem(f, "mean_memory_mb")->valuestring, "256");
        } else {
            ck_assert_str_eq(name, "oooooooooooo.bbbbbbbbbbbb");
            ck_assert_str_eq(cJSON_GetObjectItem(f, "mean_memory_mb")->valuestring, "128");
        }
    }
    cJSON_Delete(root);
    free(out);
    /* The replay is reproducible. */
    char *a = faasbill(0, NULL, "simulate", "--trace", dir, "--format", "csv", NULL);
    char *b = faasbill(0, NULL, "simulate", "--trace", dir, "--format", "csv", NULL);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST

/* A trace of one function "aaaa...": minute 1 called first times, minute 2 second times,
 * the rest never; every percentile of its execution time run_ms except the 100th, run_max,
 * and every memory percentile mem_mb. */
static void write_trace(const char *first, const char *second, const char *run_ms,
                        const char *run_max, const char *mem_mb)
{
    struct fm_buf b;
    fm_buf_init(&b, 1u << 20);
    fm_buf_puts(&b, "HashFunction,HashApp,HashOwner");
    for (int m = 1; m <= 1440; m++)
        fm_buf_printf(&b, ",minute_%d", m);
    fm_buf_printf(&b, "\naaaaaaaaaaaaaaaa,aaaaaaaaaaaaaaaa,oooooooooooooooo,%s,%s", first,
                  second);
    for (int m = 3; m <= 1440; m++)
        fm_buf_puts(&b, ",0");
    fm_buf_puts(&b, "\n");
    write_file("1_inv.csv", b.data);
    fm_buf_reset(&b);
    fm_buf_printf(&b,
                  "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,"
                  "percentile_Average_0,percentile_Average_1,percentile_Average_25,"
                  "percentile_Average_50,percentile_Average_75,percentile_Average_99,"
                  "percentile_Average_100\n"
                  "aaaaaaaaaaaaaaaa,aaaaaaaaaaaaaaaa,oooooooooooooooo,1,1,1,1,%s,%s,%s,%s,%s,%s,"
                  "%s\n",
                  run_ms, run_ms, run_ms, run_ms, run_ms, run_ms, run_max);
    write_file("1_run.csv", b.data);
    fm_buf_reset(&b);
    fm_buf_printf(&b,
                  "HashApp,HashOwner,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,"
                  "AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,"
                  "AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,"
                  "AverageAllocatedMb_pct100\n"
                  "aaaaaaaaaaaaaaaa,oooooooooooooooo,9,1,%s,%s,%s,%s,%s,%s,%s,%s\n",
                  mem_mb, mem_mb, mem_mb, mem_mb, mem_mb, mem_mb, mem_mb, mem_mb);
    write_file("1_mem.csv", b.data);
    fm_buf_free(&b);
}

/* A replayed trace is bounded as usage records are (an execution of at most a day, at most
 * 10240 MB) and in what a replay can go through; beyond is refused with the place named. */
START_TEST(trace_values_are_bounded)
{
    char *err = NULL, want[512];
    /* Executions of exactly a day at the most memory: 3000 of them run at once. */
    write_trace("3000", "0", "86400000", "86400000", "10240");
    char *out = faasbill(0, NULL, "simulate", "--trace", dir, "--server", "aws-t3.micro",
                         "--format", "json", NULL);
    cJSON *root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    const cJSON *u = cJSON_GetObjectItem(root, "usage");
    ck_assert_int_eq(cJSON_GetObjectItem(u, "invocations")->valueint, 90000);
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_concurrency")->valueint, 3000);
    ck_assert_int_eq(cJSON_GetObjectItem(u, "peak_memory_mb")->valueint, 3000 * 10240);
    ck_assert_str_eq(cJSON_GetObjectItem(u, "mean_duration_ms")->valuestring, "86400000");
    cJSON_Delete(root);
    free(out);

    /* Beyond the bounds, refused by file, line and column: a run of more than a day, more
     * memory than a function may have, a count the replay would loop over for days (refused
     * before any is replayed), a count below zero. */
    static const struct {
        const char *cells[5], *file, *what;
    } beyond[] = {
        {{"3000", "0", "0", "9000000000000000", "256"}, "1_run.csv",
         "column 14 (percentile_Average_100): more than 86400000 ms"},
        {{"3000", "0", "0", "86400000.5", "256"}, "1_run.csv",
         "column 14 (percentile_Average_100): more than 86400000 ms"},
        {{"3000", "0", "1", "1", "10241"}, "1_mem.csv",
         "column 5 (AverageAllocatedMb_pct1): more than 10240 MB"},
        {{"0", "100000000000000000", "1", "1", "256"}, "1_inv.csv",
         "minute_2: more than 10000000 invocations"},
        {{"-1", "0", "1", "1", "256"}, "1_inv.csv",
         "minute_1: not a count from 0 to 10000000 invocations"},
    };
    for (size_t i = 0; i < sizeof beyond / sizeof beyond[0]; i++) {
        const char *const *c = beyond[i].cells;
        write_trace(c[0], c[1], c[2], c[3], c[4]);
        free(faasbill(2, &err, "simulate", "--trace", dir, "--plan", "aws-lambda-x86", NULL));
        snprintf(want, sizeof want, "faasbill simulate: --trace: %s/%s:2: %s\n", dir,
                 beyond[i].file, beyond[i].what);
        ck_assert_str_eq(err, want);
        free(err);
    }
    free(faasbill(2, &err, "simulate", "--trace", "/nonexistent", NULL));
    ck_assert_str_eq(err, "faasbill simulate: --trace: /nonexistent: no N_run.csv file\n");
    free(err);
}
END_TEST

/* The day's total is bounded too: 101 minutes of 10,000,000 calls each pass the minute's
 * bound and exceed the day's, which is told before any of them is replayed. */
START_TEST(trace_day_is_bounded)
{
    write_trace("0", "0", "1", "1", "256");
    struct fm_buf b;
    fm_buf_init(&b, 1u << 20);
    fm_buf_puts(&b, "HashFunction,HashApp,HashOwner");
    for (int m = 1; m <= 1440; m++)
        fm_buf_printf(&b, ",minute_%d", m);
    fm_buf_puts(&b, "\naaaaaaaaaaaaaaaa,aaaaaaaaaaaaaaaa,oooooooooooooooo");
    for (int m = 1; m <= 1440; m++)
        fm_buf_puts(&b, m <= 101 ? ",10000000" : ",0");
    fm_buf_puts(&b, "\n");
    write_file("1_inv.csv", b.data);
    fm_buf_free(&b);
    char *err = NULL, want[512];
    free(faasbill(2, &err, "simulate", "--trace", dir, NULL));
    snprintf(want, sizeof want,
             "faasbill simulate: --trace: %s/1_inv.csv:2: minute_101: more than 1000000000 "
             "invocations in the day, the most a replay takes\n",
             dir);
    ck_assert_str_eq(err, want);
    free(err);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct fm_buf b;
    fm_buf_init(&b, 64u << 20);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fm_buf_append(&b, chunk, n);
    fclose(f);
    char *s = fm_buf_steal(&b);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Count occurrences of needle in hay. */
static int occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* The shipped catalog copied to dir/catalog, with a plan and a server priced in euros; a
 * tenant "euro" on that plan with one invocation. */
static void euro_catalog(void)
{
    char src[512], dst[256];
    ck_assert_int_eq(fm_home_path("billing/catalog", src, sizeof src), 0);
    snprintf(dst, sizeof dst, "%s/catalog", dir);
    char *argv[] = {"/bin/cp", "-r", src, dst, NULL};
    struct proc_result r = proc_run(argv, NULL, 30);
    ck_assert_int_eq(r.status, 0);
    free(r.out);
    free(r.err);
    write_file("catalog/plans/euro.json",
               "{\"id\": \"euro-flat\", \"name\": \"euro\", \"currency\": \"EUR\","
               " \"duration\": {\"step_ms\": 1, \"min_ms\": 0, \"include_init\": false},"
               " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128,"
               " \"max_mb\": 10240}, \"charges\": [{\"meter\": \"requests\","
               " \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.5\"}]}]}");
    write_file("catalog/servers/eur.json",
               "{\"id\": \"eur-box\", \"name\": \"box\", \"provider\": \"t\", \"vcpus\": 2,"
               " \"memory_mb\": 4096, \"hourly_price\": \"0.001\", \"currency\": \"EUR\","
               " \"source\": \"t\", \"as_of\": \"2024-01-01\"}");
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('euro', 'euro-flat')");
    testdb_exec(db,
                "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " has_stop, memory_mb, cold_start, duration_us, init_us, status, cpu_user_us,"
                " cpu_sys_us, max_rss_kb, bytes_in, bytes_out) VALUES"
                " ('euro', 'e1', '2026-11-03T10:00:00Z', 'f', true, true, 256, false,"
                "  1000000, 0, 'ok', 1000000, 0, 1000, 0, 0)");
    testdb_exec(db, "SELECT usage_apply(i, 1) FROM invocations i WHERE tenant = 'euro'");
    PQfinish(db);
}

/* Amounts are set side by side in one currency only: under a dollar plan a euro server is
 * left out and said to be, named with --server it is refused; under a euro plan the dollar
 * servers are left out; the report adds up each currency on its own. */
START_TEST(compare_keeps_to_one_currency)
{
    euro_catalog();
    char cat[256], *err = NULL;
    snprintf(cat, sizeof cat, "%s/catalog", dir);
    char *out = faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-11",
                         "--catalog", cat, "--db", conninfo, NULL);
    /* acme's batch is configured with 2048 MB: the cheapest server with as much. */
    ck_assert_ptr_nonnull(strstr(out, "Best server: 1 x gce-e2-small at 12.23 USD a month"));
    ck_assert_ptr_nonnull(strstr(out, "Left out, priced in another currency than USD: plan "
                                      "euro-flat (EUR), server eur-box (EUR).\n"));
    ck_assert_ptr_null(strstr(out, "eur-box  "));
    free(out);
    free(faasbill(2, &err, "compare", "--tenant", "acme", "--period", "2026-11", "--server",
                  "eur-box", "--catalog", cat, "--db", conninfo, NULL));
    ck_assert_str_eq(err, "faasbill compare: --server: 'eur-box' is priced in EUR, the tenant's "
                          "plan aws-lambda-x86 in USD: amounts in two currencies are not "
                          "compared\n");
    free(err);
    out = faasbill(0, NULL, "compare", "--tenant", "euro", "--period", "2026-11", "--catalog",
                   cat, "--format", "csv", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\r\nplan,euro-flat,1,,0.50,"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,eur-box,,1,0.73,,"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,aws-t3.micro,,,,,,,left out: priced in USD\r\n"));
    ck_assert_ptr_null(strstr(out, "plan,aws-lambda-x86,1,"));
    free(out);
    free(faasbill(2, &err, "simulate", "--invocations", "10", "--avg-duration-ms", "1",
                  "--memory-mb", "128", "--plan", "euro-flat", "--server", "aws-t3.micro",
                  "--catalog", cat, NULL));
    ck_assert_str_eq(err, "faasbill simulate: --server: 'aws-t3.micro' is priced in USD, the "
                          "plan euro-flat in EUR: amounts in two currencies are not compared\n");
    free(err);
    char report[256];
    snprintf(report, sizeof report, "%s/report.html", dir);
    free(faasbill(0, NULL, "report", "--period", "2026-11", "-o", report, "--catalog", cat,
                  "--db", conninfo, NULL));
    char *page = slurp(report);
    ck_assert_ptr_nonnull(strstr(page, "3 tenants, 6 invocations. Pay-per-use total: 0.00 USD "
                                       "and 0.50 EUR; best servers total: 19.82 USD and 0.73 "
                                       "EUR."));
    ck_assert_ptr_nonnull(strstr(page, "<td>euro</td><td>euro-flat</td><td>EUR</td>"));
    ck_assert_ptr_nonnull(strstr(page, "Largest pay-per-use bills, EUR"));
    free(page);
}
END_TEST

/* A server's id is held to a plan's rule (lower-case letters, digits, '.', '-', '_'): ids are
 * printed bare in CSV rows, text tables and command lines, so one holding a comma or a quote
 * would split a CSV row. Such a catalog is refused, naming the file and the id. */
START_TEST(server_ids_follow_the_plan_id_rule)
{
    euro_catalog();
    write_file("catalog/servers/odd.json",
               "[{\"id\": \"box,\\\"2\\\"\", \"name\": \"box\", \"provider\": \"t\","
               " \"vcpus\": 2, \"memory_mb\": 4096, \"hourly_price\": \"0.002\","
               " \"currency\": \"EUR\", \"source\": \"t\", \"as_of\": \"2024-01-01\"}]");
    char cat[256], *err = NULL;
    snprintf(cat, sizeof cat, "%s/catalog", dir);
    free(faasbill(2, &err, "compare", "--tenant", "euro", "--period", "2026-11", "--catalog",
                  cat, "--format", "csv", "--db", conninfo, NULL));
    ck_assert_str_eq(err, "faasbill compare: --catalog: servers/odd.json: [0].id: \"box,\"2\"\" "
                          "is not lower-case letters, digits, '.', '-' and '_'\n");
    free(err);
}
END_TEST

/* A tenant whose plan has left the catalog does not keep the others out of the report: the
 * page is written with every other tenant priced as before, that one shown as not priced
 * with the reason, and the exit code and stderr say that the report is incomplete. */
START_TEST(report_with_a_plan_gone_from_the_catalog)
{
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('gone', 'retired-plan')");
    PQfinish(db);
    char report[256], *err = NULL;
    snprintf(report, sizeof report, "%s/report.html", dir);
    free(faasbill(1, &err, "report", "--period", "2026-11", "-o", report, "--server",
                  "aws-t3.micro", "--db", conninfo, NULL));
    char want[512];
    snprintf(want, sizeof want,
             "faasbill report: 1 tenant not priced, shown as such in %s: gone (plan "
             "retired-plan): its plan is not in the catalog\n",
             report);
    ck_assert_str_eq(err, want);
    free(err);
    char *page = slurp(report);
    ck_assert_ptr_nonnull(strstr(page, "1 tenant not priced (below)"));
    ck_assert_ptr_nonnull(strstr(page, "<h2>Tenants not priced</h2>"));
    ck_assert_ptr_nonnull(
        strstr(page, "<tr><td>gone</td><td>retired-plan</td><td>its plan is not in the "
                     "catalog</td></tr>"));
    /* The others as they are without it: zeta on a t3.micro (7.59); acme on none, its
     * batch configured with 2048 MB, more than a t3.micro's 1024. */
    ck_assert_ptr_nonnull(strstr(page, "2 tenants, 5 invocations. Pay-per-use total: 0.00 USD; "
                                       "best servers total: 7.59 USD."));
    ck_assert_ptr_nonnull(strstr(page, "<td>acme</td><td>aws-lambda-x86</td><td>USD</td><td>4"
                                       "</td>"));
    ck_assert_ptr_nonnull(strstr(page, "<td>zeta</td><td>gcf-gen1-tier1</td>"));
    free(page);
    /* A comparison of that tenant alone cannot be made, and says why. */
    free(faasbill(1, &err, "compare", "--tenant", "gone", "--period", "2026-11", "--db",
                  conninfo, NULL));
    ck_assert_str_eq(err, "faasbill compare: gone: plan: the tenant's plan 'retired-plan' is "
                          "not in the catalog\n");
    free(err);
}
END_TEST

/* A server fee near the top of 64 bits (an hourly price of 10^14 dollars, 7.3 x 10^18
 * cents a month) still draws: the cost chart's axes saturate instead of overflowing. */
START_TEST(html_with_a_fee_near_64_bits)
{
    euro_catalog();
    write_file("catalog/servers/huge.json",
               "{\"id\": \"huge\", \"name\": \"huge\", \"provider\": \"t\", \"vcpus\": 4096,"
               " \"memory_mb\": 1000000000, \"hourly_price\": \"100000000000000\","
               " \"currency\": \"USD\", \"source\": \"t\", \"as_of\": \"2024-01-01\"}");
    char cat[256];
    snprintf(cat, sizeof cat, "%s/catalog", dir);
    char *out = faasbill(0, NULL, "simulate", "--invocations", "1000", "--avg-duration-ms", "1",
                         "--memory-mb", "128", "--plan", "aws-lambda-x86", "--server", "huge",
                         "--format", "html", "--catalog", cat, NULL);
    ck_assert_ptr_nonnull(strstr(out, "Best server: 1 x huge at 73000000000000000.00 USD"));
    ck_assert_int_eq(occurrences(out, "<svg class=\"chart\""), 4);
    ck_assert_ptr_nonnull(strstr(out, "</body></html>"));
    free(out);
}
END_TEST

/* The cost chart draws at most 8 plans' curves, and the tenant's own is always among them:
 * with three plans more in the catalog, zeta's gcf-gen1-tier1 is the ninth by id. */
START_TEST(cost_chart_draws_the_own_plan_among_many)
{
    euro_catalog();
    static const char *const extra[] = {"a1", "a2", "a3"};
    for (size_t i = 0; i < 3; i++) {
        char name[64], text[512];
        snprintf(name, sizeof name, "catalog/plans/%s.json", extra[i]);
        snprintf(text, sizeof text,
                 "{\"id\": \"%s\", \"name\": \"%s\", \"currency\": \"USD\","
                 " \"duration\": {\"step_ms\": 1, \"min_ms\": 0, \"include_init\": false},"
                 " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128,"
                 " \"max_mb\": 10240}, \"charges\": [{\"meter\": \"requests\","
                 " \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.001\"}]}]}",
                 extra[i], extra[i]);
        write_file(name, text);
    }
    char cat[256];
    snprintf(cat, sizeof cat, "%s/catalog", dir);
    char *out = faasbill(0, NULL, "compare", "--tenant", "zeta", "--period", "2026-11",
                         "--server", "aws-t3.micro", "--format", "html", "--catalog", cat,
                         "--db", conninfo, NULL);
    ck_assert_int_eq(occurrences(out, "class=\"legend\">gcf-gen1-tier1</text>"), 1);
    ck_assert_int_eq(occurrences(out, "class=\"legend\">a1</text>"), 1);
    /* The eighth in dollars gives its place to it. */
    ck_assert_int_eq(occurrences(out, "class=\"legend\">cloudflare-workers-standard</text>"), 0);
    free(out);
}
END_TEST

/* The y-axis labels of the chart titled title in page, in order (its grid, bottom up). */
static void axis_labels(const char *page, const char *title, char *out, size_t n)
{
    const char *at = strstr(page, title), *end = at ? strstr(at, "</svg>") : NULL;
    ck_assert_msg(end != NULL, "no chart %s", title);
    const char *tag = "class=\"axis\" text-anchor=\"end\">";
    out[0] = '\0';
    for (const char *p = at; (p = strstr(p, tag)) != NULL && p < end; p++) {
        p += strlen(tag);
        snprintf(out + strlen(out), n - strlen(out), "%s%.*s", out[0] ? " " : "",
                 (int)strcspn(p, "<"), p);
    }
}

/* The usage-over-time charts label their columns by the hour each starts, once each, and
 * every grid line of every chart is labelled with its own value: at most 3 invocations an
 * hour, and 1 error or cold start, still make a scale of whole steps. */
START_TEST(html_axes_label_what_they_show)
{
    char html[256], labels[512];
    snprintf(html, sizeof html, "%s/acme.html", dir);
    free(faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-11", "--server",
                  "aws-t3.small", "--format", "html", "-o", html, "--db", conninfo, NULL));
    char *page = slurp(html);
    ck_assert_int_eq(occurrences(page, ">11-01T00</text>"), 2);
    ck_assert_int_eq(occurrences(page, ">11-04T18</text>"), 2);
    axis_labels(page, "Invocations per hour", labels, sizeof labels);
    ck_assert_str_eq(labels, "0 1 2 3 4");
    axis_labels(page, "Cold starts and errors per hour", labels, sizeof labels);
    ck_assert_str_eq(labels, "0 1 2 3 4");
    /* The volume axis, to twice the break-even volume (349,467 against a t3.small, the
     * smallest server with batch's 2048 MB), ends on a round figure in the unit of its
     * labels, so that each quarter is labelled exactly: against a t3.micro it ended at
     * 456,054 and labelled 114,013 "114k". */
    const char *at = strstr(page, "Monthly cost (USD) against monthly volume");
    ck_assert_ptr_nonnull(at);
    char xs[256] = "";
    const char *tag = "class=\"axis\" text-anchor=\"middle\">", *end = strstr(at, "</svg>");
    for (const char *p = at; (p = strstr(p, tag)) != NULL && p < end; p++) {
        p += strlen(tag);
        snprintf(xs + strlen(xs), sizeof xs - strlen(xs), "%.*s|", (int)strcspn(p, "<"), p);
    }
    ck_assert_str_eq(xs, "0|175k|350k|525k|700k|invocations per month (at the mean "
                         "invocation)|");
    /* Money in whole cents: the top, the own plan's bill at the volume axis's end, rounded
     * up to a multiple of 4 cents. */
    axis_labels(page, "Monthly cost (USD) against monthly volume", labels, sizeof labels);
    ck_assert_str_eq(labels, "0.00 9.27 18.54 27.81 37.08");
    free(page);
}
END_TEST

/* The server named id in a comparison's JSON, or NULL. */
static const cJSON *json_server(const cJSON *root, const char *id)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(root, "servers")) if (
        strcmp(cJSON_GetObjectItem(s, "server")->valuestring, id) == 0) return s;
    return NULL;
}

/* A function configured with 10240 MB and called three times averages 18 MB in its busiest
 * hour, yet no catalog server (8192 MB at most) can run one invocation of it: every server
 * is too small, whichever reader and output, and the verdict is functions. Once those
 * invocations are taken back, the 512 MB left fit a t3.micro again. */
START_TEST(a_server_smaller_than_one_invocation_is_too_small)
{
    PGconn *db = testdb_connect(conninfo);
    testdb_exec(db, "INSERT INTO tenants (tenant, plan) VALUES ('bigmem', 'aws-lambda-x86')");
    testdb_exec(db,
                "INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " has_stop, memory_mb, cold_start, duration_us, init_us, status, cpu_user_us,"
                " cpu_sys_us, max_rss_kb, bytes_in, bytes_out) VALUES"
                " ('bigmem', 'b1', '2026-11-05T10:00:00Z', 'render', true, true, 10240, false,"
                "  2000000, 0, 'ok', 2000000, 0, 100000, 0, 0),"
                " ('bigmem', 'b2', '2026-11-05T10:00:10Z', 'render', true, true, 10240, false,"
                "  2000000, 0, 'ok', 2000000, 0, 100000, 0, 0),"
                " ('bigmem', 'b3', '2026-11-05T10:00:20Z', 'render', true, true, 10240, false,"
                "  2000000, 0, 'ok', 2000000, 0, 100000, 0, 0),"
                " ('bigmem', 'b4', '2026-11-06T10:00:00Z', 'thumb', true, true, 512, false,"
                "  1000000, 0, 'ok', 1000000, 0, 100000, 0, 0)");
    testdb_exec(db, "SELECT usage_apply(i, 1) FROM invocations i WHERE tenant = 'bigmem'");
    struct bill_catalog *cat = tb_catalog();
    const struct bill_server *sv[64];
    size_t ns = bill_catalog_server_count(cat);
    for (size_t i = 0; i < ns; i++)
        sv[i] = bill_catalog_server_at(cat, i);
    struct bill_stats *st = NULL;
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    char plan[64];
    /* One tenant, then every tenant at once. */
    ck_assert_msg(meter_compare_stats(db, cat, "bigmem", "2026-11", plan, sizeof plan, &st,
                                      &err) == METER_INVOICE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(bill_compare(st, plan, sv, ns, "bigmem", "2026-11", &cmp, &err), BILL_OK);
    /* 6 s x 10240 MB / 3600 s = 17.07 -> 18 MB an hour; one invocation needs 10240. */
    ck_assert_int_eq(cmp->peak_memory_mb, 18);
    ck_assert_int_eq(cmp->max_memory_mb, 10240);
    ck_assert_int_eq(cmp->best, -1);
    for (size_t i = 0; i < cmp->nservers; i++)
        ck_assert_msg(!cmp->servers[i].fits, "%s fits", cmp->servers[i].server->id);
    ck_assert_str_eq(bill_compare_verdict(cmp), "functions");
    bill_comparison_free(cmp);
    bill_stats_free(st);
    struct meter_tenant_stats *all = NULL;
    size_t n = 0;
    ck_assert_msg(meter_compare_stats_all(db, cat, "2026-11", &all, &n, &err) ==
                      METER_INVOICE_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(all[1].tenant, "bigmem");
    ck_assert_int_eq(bill_compare(all[1].stats, all[1].plan, sv, ns, "bigmem", "2026-11", &cmp,
                                  &err),
                     BILL_OK);
    ck_assert_int_eq(cmp->max_memory_mb, 10240);
    ck_assert_int_eq(cmp->best, -1);
    bill_comparison_free(cmp);
    /* acme's largest is batch's 2048 MB. */
    ck_assert_int_eq(bill_compare(all[0].stats, all[0].plan, sv, ns, "acme", "2026-11", &cmp,
                                  &err),
                     BILL_OK);
    ck_assert_int_eq(cmp->max_memory_mb, 2048);
    bill_comparison_free(cmp);
    meter_tenant_stats_free(all, n);

    char *out = faasbill(0, NULL, "compare", "--tenant", "bigmem", "--period", "2026-11",
                         "--format", "json", "--db", conninfo, NULL);
    cJSON *root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "servers")), (int)ns);
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(root, "servers"))
    {
        ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s, "fits")));
        ck_assert_str_eq(cJSON_GetObjectItem(s, "reason")->valuestring,
                         "too small: a function is configured with 10240 MB");
        ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "monthly_fee")));
    }
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "best_server")));
    ck_assert_str_eq(cJSON_GetObjectItem(root, "verdict")->valuestring, "functions");
    ck_assert_int_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "usage"), "max_memory_mb")->valueint,
        10240);
    cJSON_Delete(root);
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "bigmem", "--period", "2026-11", "--format",
                   "csv", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,aws-t3.micro,,,,,,,too small: a function is "
                                      "configured with 10240 MB\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,aws-m5.large,,,,,,,too small: a function is "
                                      "configured with 10240 MB\r\n"));
    ck_assert_ptr_null(strstr(out, ",best\r\n"));
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "bigmem", "--period", "2026-11", "--db",
                   conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\naws-m5.large       -      2       8192            -"
                                      "              -  too small: a function is configured "
                                      "with 10240 MB\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nNo server compared can run the workload: a function "
                                      "is configured with 10240 MB, more memory than any of "
                                      "them has. Pay-per-use: "));
    ck_assert_ptr_nonnull(strstr(out, ". Cheaper on functions.\n"));
    ck_assert_ptr_null(strstr(out, "Best server"));
    free(out);
    out = faasbill(0, NULL, "compare", "--tenant", "bigmem", "--period", "2026-11", "--format",
                   "html", "--db", conninfo, NULL);
    ck_assert_int_eq(occurrences(out, "too small: a function is configured with 10240 MB"),
                     (int)ns);
    ck_assert_ptr_nonnull(strstr(out, "<p class=\"verdict\">No server compared can run the "
                                      "workload: a function is configured with 10240 MB"));
    ck_assert_ptr_null(strstr(out, "class=\"legend\">1 x "));
    free(out);

    /* The 10240 MB invocations taken back: 512 MB is the largest left. */
    testdb_exec(db, "SELECT usage_apply(i, -1) FROM invocations i WHERE function = 'render'");
    out = faasbill(0, NULL, "compare", "--tenant", "bigmem", "--period", "2026-11", "--server",
                   "aws-t3.micro", "--format", "csv", "--db", conninfo, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\r\nserver,aws-t3.micro,,1,7.59,,"));
    ck_assert_ptr_nonnull(strstr(out, ",best\r\n"));
    free(out);

    /* A described workload of 10240 MB, and one of 8192 MB that an m5.large carries. */
    out = faasbill(0, NULL, "simulate", "--invocations", "3", "--avg-duration-ms", "2000",
                   "--memory-mb", "10240", NULL);
    ck_assert_ptr_nonnull(strstr(out, "\nNo server compared can run the workload: a function "
                                      "is configured with 10240 MB"));
    free(out);
    out = faasbill(0, NULL, "simulate", "--invocations", "3", "--avg-duration-ms", "2000",
                   "--memory-mb", "10240", "--format", "json", NULL);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "best_server")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(json_server(root, "aws-m5.large"), "fits")));
    cJSON_Delete(root);
    free(out);
    out = faasbill(0, NULL, "simulate", "--invocations", "3", "--avg-duration-ms", "2000",
                   "--memory-mb", "8192", "--format", "json", NULL);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(cJSON_GetObjectItem(root, "best_server")->valuestring, "aws-m5.large");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(json_server(root, "gce-e2-medium"), "fits")));
    cJSON_Delete(root);
    free(out);
    bill_catalog_free(cat);
    PQfinish(db);
}
END_TEST

START_TEST(html_in_headless_chromium)
{
    char html[256], png[256], profile[256], url[300], shot[300], prof[300];
    snprintf(html, sizeof html, "%s/acme.html", dir);
    snprintf(png, sizeof png, "%s/acme.png", dir);
    snprintf(profile, sizeof profile, "%s/profile", dir);
    ck_assert_int_eq(mkdir(profile, 0700), 0);
    free(faasbill(0, NULL, "compare", "--tenant", "acme", "--period", "2026-11", "--format",
                  "html", "-o", html, "--db", conninfo, NULL));
    char report[256];
    snprintf(report, sizeof report, "%s/report.html", dir);
    free(faasbill(0, NULL, "report", "--period", "2026-11", "-o", report, "--db", conninfo,
                  NULL));
    char *page = slurp(report);
    ck_assert_ptr_nonnull(strstr(page, "<td>zeta</td>"));
    ck_assert_ptr_nonnull(strstr(page, "<td>acme</td>"));
    free(page);

    ck_assert_msg(access("/usr/bin/chromium", X_OK) == 0,
                  "chromium is missing: make deps installs it");
    snprintf(url, sizeof url, "file://%s", html);
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    snprintf(prof, sizeof prof, "--user-data-dir=%s", profile);
    char *common[] = {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-quic", "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", prof,
                      "--window-size=1200,2000", NULL, NULL, NULL};
    common[11] = shot;
    common[12] = url;
    struct proc_result r = proc_run(common, NULL, 120);
    free(r.out);
    free(r.err);
    struct stat sb;
    ck_assert_msg(stat(png, &sb) == 0, "no screenshot");
    ck_assert_int_gt(sb.st_size, 20000); /* a blank page compresses to a few KB */
    common[11] = "--dump-dom";
    r = proc_run(common, NULL, 120);
    ck_assert_ptr_nonnull(r.out);
    /* Four charts: cost curves, cost per function, invocations, cold starts and errors. */
    ck_assert_int_ge(occurrences(r.out, "<svg class=\"chart\""), 4);
    ck_assert_int_ge(occurrences(r.out, "<path fill=\"none\""), 2);
    ck_assert_ptr_nonnull(strstr(r.out, "class=\"mark\""));
    ck_assert_int_ge(occurrences(r.out, "<rect x="), 6);
    ck_assert_ptr_nonnull(strstr(r.out, ">batch<"));
    free(r.out);
    free(r.err);
}
END_TEST

Suite *suite_reports(void)
{
    Suite *s = suite_create("reports");
    TCase *tc = tcase_create("db");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, load_and_totals_from_rollups);
    tcase_add_test(tc, a_long_run_counts_in_each_hour_it_lasts);
    tcase_add_test(tc, cpu_time_beyond_one_core_sizes_the_servers);
    tcase_add_test(tc, a_function_s_server_counts_its_cpu_time);
    tcase_add_test(tc, every_tenant_and_unrated_plan);
    tcase_add_test(tc, retraction_from_report_rollups);
    tcase_add_test(tc, compare_json_and_csv);
    tcase_add_test(tc, an_empty_month_has_no_breakeven);
    tcase_add_test(tc, a_described_workload_is_sized_as_stored_usage);
    tcase_add_test(tc, cli_usage_errors);
    tcase_add_test(tc, trace_replay_tiny);
    tcase_add_test(tc, trace_values_are_bounded);
    tcase_add_test(tc, trace_day_is_bounded);
    tcase_add_test(tc, compare_keeps_to_one_currency);
    tcase_add_test(tc, server_ids_follow_the_plan_id_rule);
    tcase_add_test(tc, report_with_a_plan_gone_from_the_catalog);
    tcase_add_test(tc, html_with_a_fee_near_64_bits);
    tcase_add_test(tc, cost_chart_draws_the_own_plan_among_many);
    tcase_add_test(tc, html_axes_label_what_they_show);
    tcase_add_test(tc, a_server_smaller_than_one_invocation_is_too_small);
    tcase_add_test(tc, html_in_headless_chromium);
    suite_add_tcase(s, tc);
    return s;
}
