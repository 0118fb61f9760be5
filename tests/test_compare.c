/*
 * The server comparison on known usage: bills under each plan, server sizing and fees,
 * utilisation, the break-even volume against its formula, the per-function breakdown and
 * the JSON figures. Pure: no database.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "billing/compare.h"
#include "common/timeutil.h"
#include "tests/suites.h"
#include "tests/test_billing_util.h"

/* 1 cent a request and 0.0001 a GB-s, no allowances: a bill easy to work out by hand. */
static const char flat_plan[] =
    "{\"id\": \"flat\", \"name\": \"flat\", \"currency\": \"USD\","
    " \"duration\": {\"step_ms\": 1, \"min_ms\": 0, \"include_init\": false},"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"0\", \"charges\": ["
    " {\"meter\": \"requests\", \"free\": \"0\", \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.01\"}]},"
    " {\"meter\": \"gb_seconds\", \"free\": \"0\", \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.0001\"}]}]}";

/* 50 free requests, then 2 cents each; nothing for time. */
static const char free_plan[] =
    "{\"id\": \"free50\", \"name\": \"free 50\", \"currency\": \"USD\","
    " \"duration\": {\"step_ms\": 1, \"min_ms\": 0, \"include_init\": false},"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"0\", \"charges\": ["
    " {\"meter\": \"requests\", \"free\": \"50\", \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.02\"}]}]}";

static const char servers_json[] =
    "[{\"id\": \"s2\", \"name\": \"two\", \"provider\": \"t\", \"vcpus\": 2, \"memory_mb\": 2048,"
    "  \"hourly_price\": \"0.01\", \"currency\": \"USD\", \"source\": \"t\", \"as_of\": \"2024-01-01\"},"
    " {\"id\": \"s8\", \"name\": \"eight\", \"provider\": \"t\", \"vcpus\": 8, \"memory_mb\": 16384,"
    "  \"hourly_price\": \"0.05\", \"currency\": \"USD\", \"source\": \"t\", \"as_of\": \"2024-01-01\"}]";

static const cJSON *field(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(f != NULL, "no field %s", name);
    return f;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *f = field(o, name);
    ck_assert_msg(cJSON_IsString(f), "%s is not a string", name);
    return f->valuestring;
}

static int64_t num(const cJSON *o, const char *name)
{
    const cJSON *f = field(o, name);
    ck_assert_msg(cJSON_IsNumber(f), "%s is not a number", name);
    return (int64_t)f->valueint;
}

static cJSON *to_json(const struct bill_comparison *cmp)
{
    struct fm_buf b;
    fm_buf_init(&b, 1u << 20);
    ck_assert_int_eq(bill_compare_json(cmp, &b), 0);
    cJSON *root = cJSON_Parse(b.data);
    ck_assert_ptr_nonnull(root);
    fm_buf_free(&b);
    return root;
}

struct fixture {
    struct bill_plan *flat, *free50;
    struct bill_server *servers;
    size_t nservers;
    struct bill_stats *st;
    struct bill_comparison *cmp;
};

/* 100 invocations of "a" (1 s at 1024 MB, 2 errors) and 10 of "b" (0.5 s at 512 MB) in
 * November 2026; the busiest hour's mean load (as the producer works it out) 3 executions
 * holding 3072 MB and 2.5 cores. */
static void build(struct fixture *f)
{
    struct fm_err err = {{0}};
    f->flat = tb_plan_json(flat_plan);
    f->free50 = tb_plan_json(free_plan);
    ck_assert_int_eq(bill_servers_parse(servers_json, strlen(servers_json), "s.json",
                                        &f->servers, &f->nservers, &err),
                     BILL_OK);
    const struct bill_plan *plans[] = {f->flat, f->free50};
    int64_t from, to;
    ck_assert_int_eq(fm_period_parse("2026-11", &from, &to), 0);
    ck_assert_int_eq(bill_stats_new(plans, 2, from, to, BILL_HOUR_US, &f->st, &err), BILL_OK);
    struct bill_invocation a = {.duration_us = 1000000, .memory_mb = 1024};
    struct bill_invocation b = {.duration_us = 500000, .memory_mb = 512};
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(bill_stats_add(f->st, "a", &a, i < 2 ? BILL_OBS_ERROR : 0, &err),
                         BILL_OK);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(bill_stats_add(f->st, "b", &b, BILL_OBS_COLD_START, &err), BILL_OK);
    ck_assert_int_eq(bill_stats_add_timeline(f->st, from + 5 * BILL_HOUR_US, 110, 2, 10, &err),
                     BILL_OK);
    bill_stats_set_peak(f->st, 3, 3072, 2500);
    const struct bill_server *sv[] = {&f->servers[0], &f->servers[1]};
    ck_assert_msg(bill_compare(f->st, "flat", sv, 2, "acme", "2026-11", &f->cmp, &err) ==
                      BILL_OK,
                  "%s", err.msg);
}

static void release(struct fixture *f)
{
    bill_comparison_free(f->cmp);
    bill_stats_free(f->st);
    bill_servers_free(f->servers, f->nservers);
    bill_plan_free(f->flat);
    bill_plan_free(f->free50);
}

START_TEST(hand_computed_plans_and_servers)
{
    struct fixture f = {0};
    build(&f);
    cJSON *root = to_json(f.cmp);
    ck_assert_str_eq(str(root, "plan"), "flat");
    const cJSON *u = field(root, "usage");
    ck_assert_int_eq(num(u, "invocations"), 110);
    ck_assert_int_eq(num(u, "errors"), 2);
    ck_assert_int_eq(num(u, "cold_starts"), 10);
    ck_assert_str_eq(str(u, "busy_seconds"), "105");
    /* (100 s + 5 s) / 110 = 954.5454.. ms; memory (102400 + 5120) / 110 = 977.45 -> 977 */
    ck_assert_str_eq(str(u, "mean_duration_ms"), "954.545");
    ck_assert_int_eq(num(u, "mean_memory_mb"), 977);
    ck_assert_str_eq(str(u, "peak_cpu_cores"), "2.5");

    const cJSON *plans = field(root, "plans");
    ck_assert_int_eq(cJSON_GetArraySize(plans), 2);
    /* flat: 110 requests x 0.01 = 1.10; GB-s 100 x 1 + 10 x 0.5 x 0.5 = 102.5 x 0.0001
     * = 0.01025 -> 0.01; total 1.11. */
    ck_assert_str_eq(str(cJSON_GetArrayItem(plans, 0), "total"), "1.11");
    /* free50: (110 - 50) x 0.02 = 1.20. */
    ck_assert_str_eq(str(cJSON_GetArrayItem(plans, 1), "total"), "1.20");

    const cJSON *servers = field(root, "servers");
    const cJSON *s2 = cJSON_GetArrayItem(servers, 0), *s8 = cJSON_GetArrayItem(servers, 1);
    /* s2 for the busiest hour: by memory ceil(3072 / 2048) = 2, by CPU ceil(3 / 2) = 2;
     * 0.01 x 730 = 7.30 each. */
    ck_assert_int_eq(num(s2, "count"), 2);
    ck_assert_str_eq(str(s2, "unit_monthly_fee"), "7.30");
    ck_assert_str_eq(str(s2, "monthly_fee"), "14.60");
    /* 105 s busy over 2 x 2 vCPUs x 2,592,000 s = 0.001 %, shown to 2 places. */
    ck_assert_str_eq(str(s2, "utilisation_percent"), "0");
    /* s8: one is enough; 0.05 x 730 = 36.50. */
    ck_assert_int_eq(num(s8, "count"), 1);
    ck_assert_str_eq(str(s8, "monthly_fee"), "36.50");
    ck_assert_str_eq(str(root, "best_server"), "s2");
    ck_assert_str_eq(str(root, "verdict"), "functions");

    const cJSON *fns = field(root, "functions");
    const cJSON *fa = cJSON_GetArrayItem(fns, 0), *fb = cJSON_GetArrayItem(fns, 1);
    ck_assert_str_eq(str(fa, "function"), "a");
    ck_assert_int_eq(num(fa, "errors"), 2);
    ck_assert(cJSON_IsTrue(field(fa, "driver")));
    ck_assert(cJSON_IsFalse(field(fb, "driver")));
    ck_assert(cJSON_IsFalse(field(fa, "cheaper_on_server")));
    ck_assert_str_eq(str(fa, "server"), "s2");
    ck_assert_str_eq(str(fa, "server_monthly_fee"), "7.30");
    const cJSON *tl = field(root, "timeline");
    ck_assert_str_eq(str(tl, "bucket"), "hour");
    ck_assert_int_eq(cJSON_GetArraySize(field(tl, "buckets")), 720);
    const cJSON *b5 = cJSON_GetArrayItem(field(tl, "buckets"), 5);
    ck_assert_int_eq(cJSON_GetArrayItem(b5, 0)->valueint, 110);
    ck_assert_int_eq(cJSON_GetArrayItem(b5, 2)->valueint, 10);
    cJSON_Delete(root);
    release(&f);
}
END_TEST

START_TEST(breakeven_matches_its_formula)
{
    struct fixture f = {0};
    build(&f);
    /* The mean invocation is 954.545 ms -> 954545 us at 977 MB; under flat each costs
     * 1 cent + 0.954545 s x 977/1024 GB x 0.0001, and each line is rounded half-up to the
     * cent: bill(N) = N + round(N x 954.545 x 977 / 1024 / 1000 x 0.01) cents. The
     * break-even is the smallest N with bill(N) >= 1460 cents (2 x s2). */
    int64_t mb_ms_each = (int64_t)954545 / 1000 * 977; /* billed ms x MB under step 1 ms */
    int64_t want = -1;
    for (int64_t n = 0; n < 100000 && want < 0; n++) {
        /* GB-s line in cents: n x mb_ms / 1024 / 1000 GB-s x 0.0001 $ x 100, half-up. */
        __int128 num_ = (__int128)n * mb_ms_each, den = (__int128)1024 * 1000 * 100;
        int64_t gbs_cents = (int64_t)((2 * num_ + den) / (2 * den));
        if (n + gbs_cents >= 1460)
            want = n;
    }
    ck_assert_int_eq(f.cmp->plans[0].breakeven, want);
    /* free50: 50 free, then 2 cents: 50 + ceil(1460 / 2) = 780. */
    ck_assert_int_eq(f.cmp->plans[1].breakeven, 780);
    int64_t at, below;
    ck_assert_int_eq(bill_compare_cost_at(f.cmp, 0, want, &at, NULL), BILL_OK);
    ck_assert_int_eq(bill_compare_cost_at(f.cmp, 0, want - 1, &below, NULL), BILL_OK);
    ck_assert_int_ge(at, 1460);
    ck_assert_int_lt(below, 1460);
    release(&f);
}
END_TEST

/* The shipped catalog, 10 million invocations of 120 ms at 512 MB in one month: every plan
 * and server worked out by hand from its published prices. */
START_TEST(catalog_plans_and_servers_by_hand)
{
    struct bill_catalog *cat = tb_catalog();
    struct fm_err err = {{0}};
    const struct bill_plan *plans[32];
    size_t np = bill_catalog_plan_count(cat);
    ck_assert_uint_le(np, 32);
    for (size_t i = 0; i < np; i++)
        plans[i] = bill_catalog_plan_at(cat, i);
    struct bill_stats *st = NULL;
    int64_t from, to;
    ck_assert_int_eq(fm_period_parse("2026-11", &from, &to), 0);
    ck_assert_int_eq(bill_stats_new(plans, np, from, to, BILL_DAY_US, &st, &err), BILL_OK);
    struct bill_invocation one = {.duration_us = 120000, .memory_mb = 512,
                                  .max_rss_kb = 512 * 1024, .cpu_user_us = 120000};
    ck_assert_int_eq(bill_stats_add(st, "w", &one, 0, &err), BILL_OK);
    ck_assert_int_eq(bill_stats_scale(st, 10000000, to - from, &err), BILL_OK);
    bill_stats_set_peak(st, 1, 512, 1000);
    const struct bill_server *sv[16];
    size_t ns = bill_catalog_server_count(cat);
    for (size_t i = 0; i < ns; i++)
        sv[i] = bill_catalog_server_at(cat, i);
    struct bill_comparison *cmp = NULL;
    ck_assert_int_eq(bill_compare(st, "aws-lambda-x86", sv, ns, "t", "2026-11", &cmp, &err),
                     BILL_OK);
    static const struct {
        const char *id, *total;
    } want_plans[] = {
        /* 9M x 0.0000002 = 1.80; (600,000 - 400,000) GB-s x 0.0000166667 = 3.33 */
        {"aws-lambda-x86", "5.13"},
        /* 100 ms steps: 200 ms billed; 1.80 + 600,000 GB-s x 0.00001667 = 10.00 */
        {"aws-lambda-x86-2018", "11.80"},
        /* 1.80 + 200,000 GB-s x 0.000016 = 3.20 */
        {"azure-functions-consumption", "5.00"},
        /* 5 + 0 requests + (1.2e9 - 3e7) CPU ms x 0.00000002 = 23.40 */
        {"cloudflare-workers-standard", "28.40"},
        /* 8M x 0.0000004 = 3.20; 600,000 GB-s x 0.0000025 = 1.50;
         * 0.8 GHz x 0.2 s x 10M - 200,000 = 1,400,000 GHz-s x 0.00001 = 14.00 */
        {"gcf-gen1-tier1", "18.70"},
    };
    cJSON *root = to_json(cmp);
    const cJSON *p;
    size_t matched = 0;
    cJSON_ArrayForEach(p, field(root, "plans"))
    {
        for (size_t k = 0; k < sizeof want_plans / sizeof want_plans[0]; k++)
            if (strcmp(str(p, "plan"), want_plans[k].id) == 0) {
                ck_assert_str_eq(str(p, "total"), want_plans[k].total);
                matched++;
            }
    }
    ck_assert_uint_eq(matched, sizeof want_plans / sizeof want_plans[0]);
    static const struct {
        const char *id, *fee, *util;
    } want_servers[] = {
        /* hourly x 730, rounded to the cent; 1.2e6 busy s over vCPUs x 2,592,000 s */
        {"aws-t3.micro", "7.59", "23.15"},  {"aws-t3.small", "15.18", "23.15"},
        {"aws-t3.medium", "30.37", "23.15"}, {"aws-m5.large", "70.08", "23.15"},
        {"azure-b1s", "7.59", "46.3"},      {"azure-b2s", "30.37", "23.15"},
        {"gce-e2-small", "12.23", "23.15"}, {"gce-e2-medium", "24.46", "23.15"},
    };
    matched = 0;
    cJSON_ArrayForEach(p, field(root, "servers"))
    {
        for (size_t k = 0; k < sizeof want_servers / sizeof want_servers[0]; k++)
            if (strcmp(str(p, "server"), want_servers[k].id) == 0) {
                ck_assert_int_eq(num(p, "count"), 1);
                ck_assert_str_eq(str(p, "monthly_fee"), want_servers[k].fee);
                ck_assert_str_eq(str(p, "utilisation_percent"), want_servers[k].util);
                matched++;
            }
    }
    ck_assert_uint_eq(matched, sizeof want_servers / sizeof want_servers[0]);
    ck_assert_str_eq(str(root, "verdict"), "functions");
    /* Every break-even is where the bill first reaches the best fee (7.59). */
    for (size_t i = 0; i < cmp->nplans; i++) {
        int64_t at, below, n = cmp->plans[i].breakeven;
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(bill_compare_cost_at(cmp, i, n, &at, NULL), BILL_OK);
        ck_assert_int_eq(bill_compare_cost_at(cmp, i, n - 1, &below, NULL), BILL_OK);
        ck_assert_int_ge(at, 759);
        ck_assert_int_lt(below, 759);
    }
    cJSON_Delete(root);
    bill_comparison_free(cmp);
    bill_stats_free(st);
    bill_catalog_free(cat);
}
END_TEST

/* Graduated tiers with bounds in fractions of a unit, an allowance with decimals and prices
 * at 10 decimals: the exact unit gets 10 digits finer than the base unit, so quantities stop
 * fitting the invoice's decimal display long before the ceiling. */
static const char fine_plan[] =
    "{\"id\": \"fine\", \"name\": \"fine\", \"currency\": \"USD\","
    " \"duration\": {\"step_ms\": 1, \"min_ms\": 1, \"include_init\": true},"
    " \"memory\": {\"basis\": \"observed\", \"step_mb\": 64, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"0\", \"charges\": ["
    " {\"meter\": \"requests\", \"free\": \"1000.5\", \"tiers\": ["
    "   {\"up_to\": \"250000.25\", \"unit_price\": \"0.0000003\"},"
    "   {\"up_to\": null, \"unit_price\": \"0.0000001\"}]},"
    " {\"meter\": \"gb_seconds\", \"free\": \"0.12345\", \"tiers\": ["
    "   {\"up_to\": \"0.00000001\", \"unit_price\": \"1\"},"
    "   {\"up_to\": \"5000.5\", \"unit_price\": \"0.0000166667\"},"
    "   {\"up_to\": \"2000000\", \"unit_price\": \"0.000012\"},"
    "   {\"up_to\": null, \"unit_price\": \"0.0000000001\"}]},"
    " {\"meter\": \"egress_gb\", \"free\": \"1\", \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.09\"}]}]}";

/* A subscription above the cheapest fee: the bill reaches it at no volume at all. */
static const char sub_plan[] =
    "{\"id\": \"sub\", \"name\": \"sub\", \"currency\": \"USD\","
    " \"duration\": {\"step_ms\": 100, \"min_ms\": 100, \"include_init\": false},"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 128, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"25\", \"charges\": ["
    " {\"meter\": \"requests\", \"free\": \"0\", \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.000001\"}]}]}";

static const char cheap_server_json[] =
    "[{\"id\": \"tiny\", \"name\": \"tiny\", \"provider\": \"t\", \"vcpus\": 1, \"memory_mb\": 20480,"
    "  \"hourly_price\": \"0.001\", \"currency\": \"USD\", \"source\": \"t\", \"as_of\": \"2024-01-01\"}]";

/* The straightforward answer for one volume: price the whole invoice. An invoice too large
 * to price reaches any fee, as in the search. */
static bool invoice_reaches(const struct bill_comparison *cmp, size_t i, int64_t volume,
                            int64_t fee, bool *overflowed)
{
    int64_t cost;
    struct fm_err err = {{0}};
    enum bill_status rc = bill_compare_cost_at(cmp, i, volume, &cost, &err);
    ck_assert_msg(rc == BILL_OK || rc == BILL_EOVERFLOW, "%s at %lld: %s",
                  bill_plan_id(cmp->plans[i].plan), (long long)volume, err.msg);
    *overflowed = rc == BILL_EOVERFLOW;
    return rc == BILL_EOVERFLOW || cost >= fee;
}

/* Every catalog plan and plans built to hit tier bounds, allowances and overflow, over
 * workloads from tiny to absurd and fees from cents to billions: each break-even is where
 * invoices priced one by one first reach the fee. The regimes are counted so that the
 * table keeps covering all of them. */
START_TEST(breakeven_agrees_with_invoices)
{
    static const struct bill_invocation workloads[] = {
        {.duration_us = 120000, .memory_mb = 512, .max_rss_kb = 300000, .cpu_user_us = 90000,
         .bytes_out = 20000},
        {.duration_us = 3000, .memory_mb = 128, .max_rss_kb = 40000, .cpu_user_us = 2500},
        {.duration_us = 900000000, .init_us = 2000000, .memory_mb = 10240,
         .max_rss_kb = 9000000, .cpu_user_us = 850000000, .bytes_out = 5000000000},
        {.duration_us = 0},
        {.duration_us = INT64_C(1000000000000), .memory_mb = 10240, .max_rss_kb = 10000000,
         .cpu_user_us = INT64_C(1000000000000), .bytes_out = INT64_C(1000000000000000)},
    };
    static const int64_t peaks[] = {1, 40, 100000, 1000000000};
    struct bill_catalog *cat = tb_catalog();
    struct bill_plan *fine = tb_plan_json(fine_plan), *sub = tb_plan_json(sub_plan);
    struct bill_server *tiny = NULL;
    size_t ntiny = 0;
    struct fm_err err = {{0}};
    ck_assert_int_eq(bill_servers_parse(cheap_server_json, strlen(cheap_server_json), "t.json",
                                        &tiny, &ntiny, &err),
                     BILL_OK);
    const struct bill_plan *plans[34];
    size_t np = bill_catalog_plan_count(cat);
    ck_assert_uint_le(np, 32);
    for (size_t i = 0; i < np; i++)
        plans[i] = bill_catalog_plan_at(cat, i);
    plans[np++] = fine;
    plans[np++] = sub;
    const struct bill_server *sv[17];
    size_t ns = bill_catalog_server_count(cat);
    ck_assert_uint_le(ns, 16);
    for (size_t i = 0; i < ns; i++)
        sv[i] = bill_catalog_server_at(cat, i);
    int64_t from, to;
    ck_assert_int_eq(fm_period_parse("2026-11", &from, &to), 0);
    int never = 0, at_zero = 0, by_overflow = 0, priced = 0;
    for (size_t w = 0; w < sizeof workloads / sizeof workloads[0]; w++)
        for (size_t pk = 0; pk < sizeof peaks / sizeof peaks[0]; pk++)
            for (int with_tiny = 0; with_tiny < 2; with_tiny++) {
                struct bill_stats *st = NULL;
                ck_assert_int_eq(bill_stats_new(plans, np, from, to, BILL_DAY_US, &st, &err),
                                 BILL_OK);
                ck_assert_int_eq(bill_stats_add(st, "w", &workloads[w], 0, &err), BILL_OK);
                bill_stats_set_peak(st, peaks[pk], 512, 1000);
                sv[ns] = &tiny[0];
                struct bill_comparison *cmp = NULL;
                ck_assert_msg(bill_compare(st, "aws-lambda-x86", sv, ns + (size_t)with_tiny,
                                           "t", "2026-11", &cmp, &err) == BILL_OK,
                              "%s", err.msg);
                /* A workload of 10240 MB fits none of the catalog's servers, only tiny. */
                if (cmp->best < 0) {
                    ck_assert_int_gt(workloads[w].memory_mb, 8192);
                    ck_assert_int_eq(with_tiny, 0);
                    ck_assert(!bill_compare_has_breakeven(cmp));
                    bill_comparison_free(cmp);
                    bill_stats_free(st);
                    continue;
                }
                int64_t fee = cmp->servers[cmp->best].fee;
                for (size_t i = 0; i < cmp->nplans; i++) {
                    int64_t n = cmp->plans[i].breakeven;
                    bool over;
                    const char *id = bill_plan_id(cmp->plans[i].plan);
                    if (n < 0) {
                        ck_assert_msg(!invoice_reaches(cmp, i, BILL_COMPARE_MAX_VOLUME, fee,
                                                       &over),
                                      "%s, workload %zu, fee %lld: reaches at the ceiling", id,
                                      w, (long long)fee);
                        never++;
                        continue;
                    }
                    ck_assert_msg(invoice_reaches(cmp, i, n, fee, &over),
                                  "%s, workload %zu, fee %lld: not reached at %lld", id, w,
                                  (long long)fee, (long long)n);
                    if (n == 0) {
                        at_zero++;
                        continue;
                    }
                    bool over_below;
                    ck_assert_msg(!invoice_reaches(cmp, i, n - 1, fee, &over_below),
                                  "%s, workload %zu, fee %lld: already reached at %lld", id, w,
                                  (long long)fee, (long long)(n - 1));
                    if (over)
                        by_overflow++;
                    else
                        priced++;
                }
                bill_comparison_free(cmp);
                bill_stats_free(st);
            }
    ck_assert_int_gt(never, 0);
    ck_assert_int_gt(at_zero, 0);
    ck_assert_int_gt(by_overflow, 0);
    ck_assert_int_gt(priced, 0);
    bill_servers_free(tiny, ntiny);
    bill_plan_free(fine);
    bill_plan_free(sub);
    bill_catalog_free(cat);
}
END_TEST

/* A plan and a server priced in euros beside the dollar ones: a comparison under a dollar
 * plan sets neither beside its amounts but lists them as left out, and under the euro plan
 * the dollar ones are left out. */
START_TEST(other_currencies_are_left_out)
{
    struct fixture f = {0};
    build(&f);
    static const char euro_plan[] =
        "{\"id\": \"euro\", \"name\": \"euro\", \"currency\": \"EUR\","
        " \"duration\": {\"step_ms\": 1, \"min_ms\": 0, \"include_init\": false},"
        " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128,"
        " \"max_mb\": 10240}, \"charges\": [{\"meter\": \"requests\","
        " \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.03\"}]}]}";
    static const char euro_server[] =
        "{\"id\": \"eur-box\", \"name\": \"box\", \"provider\": \"t\", \"vcpus\": 64,"
        " \"memory_mb\": 65536, \"hourly_price\": \"0.001\", \"currency\": \"EUR\","
        " \"source\": \"t\", \"as_of\": \"2024-01-01\"}";
    struct bill_plan *euro = tb_plan_json(euro_plan);
    struct bill_server *box = NULL;
    size_t nbox = 0;
    struct fm_err err = {{0}};
    ck_assert_int_eq(bill_servers_parse(euro_server, strlen(euro_server), "e.json", &box, &nbox,
                                        &err),
                     BILL_OK);
    const struct bill_plan *plans[] = {f.flat, euro, f.free50};
    int64_t from, to;
    ck_assert_int_eq(fm_period_parse("2026-11", &from, &to), 0);
    struct bill_stats *st = NULL;
    ck_assert_int_eq(bill_stats_new(plans, 3, from, to, BILL_HOUR_US, &st, &err), BILL_OK);
    struct bill_invocation a = {.duration_us = 1000000, .memory_mb = 1024};
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(bill_stats_add(st, "a", &a, 0, &err), BILL_OK);
    bill_stats_set_peak(st, 3, 3072, 2500);
    /* The euro box would be far the cheapest (0.73 a month) if its fee were taken as dollars. */
    const struct bill_server *sv[] = {box, &f.servers[0], &f.servers[1]};
    struct bill_comparison *cmp = NULL;
    ck_assert_msg(bill_compare(st, "free50", sv, 3, "acme", "2026-11", &cmp, &err) == BILL_OK,
                  "%s", err.msg);
    ck_assert_str_eq(cmp->currency, "USD");
    ck_assert_uint_eq(cmp->nplans, 2);
    ck_assert_str_eq(bill_plan_id(cmp->plans[0].plan), "flat");
    ck_assert_str_eq(bill_plan_id(cmp->plans[cmp->own].plan), "free50");
    ck_assert_uint_eq(cmp->nservers, 2);
    ck_assert_str_eq(cmp->servers[cmp->best].server->id, "s2");
    ck_assert(bill_compare_left_out_server(cmp, "eur-box"));
    ck_assert(!bill_compare_left_out_server(cmp, "s2"));
    cJSON *root = to_json(cmp);
    ck_assert_str_eq(str(root, "best_server"), "s2");
    ck_assert_int_eq(cJSON_GetArraySize(field(root, "plans")), 2);
    ck_assert_int_eq(cJSON_GetArraySize(field(root, "servers")), 2);
    const cJSON *left = field(root, "left_out");
    ck_assert_int_eq(cJSON_GetArraySize(left), 2);
    ck_assert_str_eq(str(cJSON_GetArrayItem(left, 0), "kind"), "plan");
    ck_assert_str_eq(str(cJSON_GetArrayItem(left, 0), "id"), "euro");
    ck_assert_str_eq(str(cJSON_GetArrayItem(left, 0), "currency"), "EUR");
    ck_assert_str_eq(str(cJSON_GetArrayItem(left, 1), "kind"), "server");
    ck_assert_str_eq(str(cJSON_GetArrayItem(left, 1), "id"), "eur-box");
    cJSON_Delete(root);
    struct fm_buf b;
    fm_buf_init(&b, 4096);
    ck_assert_int_eq(bill_compare_left_out_text(cmp, &b), 0);
    ck_assert_str_eq(b.data, "Left out, priced in another currency than USD: plan euro (EUR), "
                             "server eur-box (EUR).\n");
    bill_comparison_free(cmp);

    /* Under the euro plan: the euro box alone, its fee in euros (0.001 x 730 = 0.73). */
    ck_assert_msg(bill_compare(st, "euro", sv, 3, "acme", "2026-11", &cmp, &err) == BILL_OK,
                  "%s", err.msg);
    ck_assert_str_eq(cmp->currency, "EUR");
    ck_assert_uint_eq(cmp->nplans, 1);
    ck_assert_uint_eq(cmp->own, 0);
    ck_assert_uint_eq(cmp->nservers, 1);
    ck_assert_int_eq(cmp->servers[0].fee, 73);
    ck_assert_int_eq(cmp->plans[0].invoice->total, 300); /* 100 x 0.03 */
    ck_assert_uint_eq(cmp->nleft_out, 4);
    fm_buf_reset(&b);
    ck_assert_int_eq(bill_compare_left_out_text(cmp, &b), 0);
    ck_assert_str_eq(b.data, "Left out, priced in another currency than EUR: plan flat (USD), "
                             "plan free50 (USD), server s2 (USD), server s8 (USD).\n");
    fm_buf_free(&b);
    bill_comparison_free(cmp);
    bill_stats_free(st);
    bill_servers_free(box, nbox);
    bill_plan_free(euro);
    release(&f);
}
END_TEST

START_TEST(errors_are_reported)
{
    struct fixture f = {0};
    build(&f);
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    ck_assert_int_eq(bill_compare(f.st, "nope", NULL, 0, "t", "p", &cmp, &err), BILL_ENOTFOUND);
    ck_assert_ptr_null(cmp);
    struct bill_invocation bad = {.duration_us = -1};
    ck_assert_int_eq(bill_stats_add(f.st, "a", &bad, 0, &err), BILL_EINVAL);
    ck_assert_int_eq(bill_stats_add(f.st, "", &bad, 0, &err), BILL_EINVAL);
    struct bill_stats *st = NULL;
    ck_assert_int_eq(bill_stats_new(NULL, 0, 10, 10, BILL_HOUR_US, &st, &err), BILL_EINVAL);
    ck_assert_int_eq(bill_stats_new(NULL, 0, 0, BILL_DAY_US * 365, BILL_HOUR_US, &st, &err),
                     BILL_EINVAL);
    ck_assert_ptr_null(st);
    int64_t c;
    ck_assert_int_eq(bill_compare_cost_at(f.cmp, 0, -1, &c, NULL), BILL_EINVAL);
    release(&f);
}
END_TEST

/* Servers are sized for the busiest hour's mean memory, a few MB for a function of 10240 MB
 * called three times; yet one invocation needs its 10240 MB, so no number of catalog
 * servers (8192 MB at most) runs it: each is too small, none is the best, and the verdict is
 * functions. Beside a server of 16384 MB, that one is sized and the best. */
START_TEST(a_server_smaller_than_one_invocation_is_too_small)
{
    struct fixture f = {0};
    build(&f);
    struct bill_catalog *cat = tb_catalog();
    struct fm_err err = {{0}};
    int64_t from, to;
    ck_assert_int_eq(fm_period_parse("2026-11", &from, &to), 0);
    struct bill_stats *st = NULL;
    const struct bill_plan *plans[] = {f.flat};
    ck_assert_int_eq(bill_stats_new(plans, 1, from, to, BILL_HOUR_US, &st, &err), BILL_OK);
    struct bill_invocation big = {.duration_us = 2000000, .memory_mb = 10240,
                                  .cpu_user_us = 2000000};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bill_stats_add(st, "render", &big, 0, &err), BILL_OK);
    /* In one hour: 6 s, 6 s x 10240 MB / 3600 s = 17.07 -> 18 MB, 1.67 -> 2 millicores. */
    bill_stats_set_peak(st, 1, 18, 2);
    const struct bill_server *sv[17];
    size_t ns = bill_catalog_server_count(cat);
    ck_assert_uint_le(ns, 16);
    for (size_t i = 0; i < ns; i++)
        sv[i] = bill_catalog_server_at(cat, i);
    struct bill_comparison *cmp = NULL;
    ck_assert_msg(bill_compare(st, "flat", sv, ns, "t", "2026-11", &cmp, &err) == BILL_OK,
                  "%s", err.msg);
    ck_assert_int_eq(cmp->max_memory_mb, 10240);
    ck_assert_int_eq(cmp->best, -1);
    ck_assert_str_eq(bill_compare_verdict(cmp), "functions");
    ck_assert(!bill_compare_has_breakeven(cmp));
    char why[BILL_FIT_BUFSZ];
    for (size_t i = 0; i < cmp->nservers; i++) {
        ck_assert_msg(!cmp->servers[i].fits, "%s fits", cmp->servers[i].server->id);
        ck_assert_int_eq(cmp->servers[i].count, 0);
        ck_assert_int_eq(cmp->servers[i].fee, 0);
        bill_compare_fit_text(cmp, &cmp->servers[i], why);
        ck_assert_str_eq(why, "too small: a function is configured with 10240 MB");
    }
    ck_assert_ptr_null(cmp->functions[0].server);
    struct fm_buf b;
    fm_buf_init(&b, 4096);
    ck_assert_int_eq(bill_compare_no_fit_text(cmp, &b), 0);
    /* 3 requests x 0.01 + 3 x 2 s x 10 GB x 0.0001 = 0.03 + 0.006 = 0.036 -> 0.04. */
    ck_assert_str_eq(b.data, "No server compared can run the workload: a function is "
                             "configured with 10240 MB, more memory than any of them has. "
                             "Pay-per-use: 0.04 USD. Cheaper on functions.\n");
    fm_buf_free(&b);
    cJSON *root = to_json(cmp);
    ck_assert_int_eq(num(field(root, "usage"), "max_memory_mb"), 10240);
    ck_assert(cJSON_IsNull(field(root, "best_server")));
    ck_assert_str_eq(str(root, "verdict"), "functions");
    const cJSON *s0 = cJSON_GetArrayItem(field(root, "servers"), 0);
    ck_assert(cJSON_IsFalse(field(s0, "fits")));
    ck_assert_str_eq(str(s0, "reason"), "too small: a function is configured with 10240 MB");
    ck_assert(cJSON_IsNull(field(s0, "count")));
    ck_assert(cJSON_IsNull(field(s0, "monthly_fee")));
    ck_assert(cJSON_IsNull(field(s0, "utilisation_percent")));
    cJSON_Delete(root);
    bill_comparison_free(cmp);

    /* With s2 (2048 MB) and s8 (16384 MB) beside them: s8 alone fits, one of it. */
    sv[ns] = &f.servers[0];
    sv[ns + 1] = &f.servers[1];
    ck_assert_msg(bill_compare(st, "flat", sv, ns + 2, "t", "2026-11", &cmp, &err) == BILL_OK,
                  "%s", err.msg);
    ck_assert_int_eq(cmp->best, (long)ns + 1);
    ck_assert_str_eq(cmp->servers[cmp->best].server->id, "s8");
    ck_assert(!cmp->servers[ns].fits);
    ck_assert_int_eq(cmp->servers[cmp->best].count, 1);
    ck_assert_int_eq(cmp->servers[cmp->best].fee, 3650); /* 0.05 x 730 */
    ck_assert_str_eq(cmp->functions[0].server->id, "s8");
    root = to_json(cmp);
    ck_assert_str_eq(str(root, "best_server"), "s8");
    const cJSON *s8 = cJSON_GetArrayItem(field(root, "servers"), (int)ns + 1);
    ck_assert(cJSON_IsTrue(field(s8, "fits")));
    ck_assert(cJSON_IsNull(field(s8, "reason")));
    ck_assert_int_eq(num(s8, "count"), 1);
    ck_assert_str_eq(str(s8, "monthly_fee"), "36.50");
    cJSON_Delete(root);
    bill_comparison_free(cmp);
    bill_stats_free(st);

    /* A function's own server too: 99 invocations of 128 MB and one of 10240 MB average 229
     * MB, yet only s8 can run them all. */
    ck_assert_int_eq(bill_stats_new(plans, 1, from, to, BILL_HOUR_US, &st, &err), BILL_OK);
    struct bill_invocation small = {.duration_us = 1000, .memory_mb = 128, .cpu_user_us = 1000};
    for (int i = 0; i < 99; i++)
        ck_assert_int_eq(bill_stats_add(st, "mixed", &small, 0, &err), BILL_OK);
    ck_assert_int_eq(bill_stats_add(st, "mixed", &big, 0, &err), BILL_OK);
    bill_stats_set_peak(st, 1, 6, 1);
    ck_assert_msg(bill_compare(st, "flat", sv, ns + 2, "t", "2026-11", &cmp, &err) == BILL_OK,
                  "%s", err.msg);
    ck_assert_str_eq(cmp->functions[0].server->id, "s8");
    bill_comparison_free(cmp);
    ck_assert_msg(bill_compare(st, "flat", sv, ns, "t", "2026-11", &cmp, &err) == BILL_OK,
                  "%s", err.msg);
    ck_assert_ptr_null(cmp->functions[0].server);
    bill_comparison_free(cmp);
    bill_stats_free(st);
    bill_catalog_free(cat);
    release(&f);
}
END_TEST

Suite *suite_compare(void)
{
    Suite *s = suite_create("compare");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hand_computed_plans_and_servers);
    tcase_add_test(tc, breakeven_matches_its_formula);
    tcase_add_test(tc, catalog_plans_and_servers_by_hand);
    tcase_add_test(tc, breakeven_agrees_with_invoices);
    tcase_add_test(tc, errors_are_reported);
    tcase_add_test(tc, other_currencies_are_left_out);
    tcase_add_test(tc, a_server_smaller_than_one_invocation_is_too_small);
    suite_add_tcase(s, tc);
    return s;
}
