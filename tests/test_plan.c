#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "billing/catalog.h"
#include "billing/usage.h"
#include "common/buf.h"
#include "tests/suites.h"
#include "tests/test_billing_util.h"

START_TEST(shipped_catalog_ids)
{
    static const char *const plans[] = {"aws-lambda-arm64",           "aws-lambda-x86",
                                        "aws-lambda-x86-2018",        "azure-functions-consumption",
                                        "cloudflare-workers-standard", "gcf-gen1-tier1"};
    static const struct {
        const char *id;
        int vcpus, memory_mb;
        const char *hourly;
        int64_t monthly_cents;
    } servers[] = {
        {"aws-t3.micro", 2, 1024, "0.0104", 759},     {"aws-t3.small", 2, 2048, "0.0208", 1518},
        {"aws-t3.medium", 2, 4096, "0.0416", 3037},   {"aws-m5.large", 2, 8192, "0.096", 7008},
        {"azure-b1s", 1, 1024, "0.0104", 759},        {"azure-b2s", 2, 4096, "0.0416", 3037},
        {"gce-e2-small", 2, 2048, "0.016751", 1223},  {"gce-e2-medium", 2, 4096, "0.033503", 2446},
    };
    struct bill_catalog *cat = tb_catalog();
    ck_assert_uint_eq(bill_catalog_plan_count(cat), sizeof plans / sizeof plans[0]);
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        const struct bill_plan *p = bill_catalog_plan_at(cat, i);
        ck_assert_str_eq(bill_plan_id(p), plans[i]); /* listed in id order */
        ck_assert_msg(strlen(bill_plan_source(p)) > 0, "%s names no source", plans[i]);
        ck_assert_uint_eq(strlen(bill_plan_as_of(p)), 10);
        ck_assert_str_eq(bill_plan_currency(p), "USD");
    }
    ck_assert_uint_eq(bill_catalog_server_count(cat), sizeof servers / sizeof servers[0]);
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++) {
        const struct bill_server *s = bill_catalog_server(cat, servers[i].id);
        ck_assert_msg(s != NULL, "no server %s", servers[i].id);
        char hourly[BILL_NUM_BUFSZ];
        int64_t fee = 0;
        bill_dec_format(s->hourly, hourly, sizeof hourly);
        ck_assert_str_eq(hourly, servers[i].hourly);
        ck_assert_int_eq(s->vcpus, servers[i].vcpus);
        ck_assert_int_eq(s->memory_mb, servers[i].memory_mb);
        ck_assert_int_eq(bill_server_monthly_fee(s, &fee), 0);
        ck_assert_int_eq(fee, servers[i].monthly_cents);
        ck_assert(strlen(s->source) > 0 && strlen(s->as_of) == 10);
    }
    ck_assert_ptr_null(bill_catalog_plan(cat, "no-such-plan"));
    bill_catalog_free(cat);
}
END_TEST

START_TEST(shipped_plan_terms)
{
    struct bill_catalog *cat = tb_catalog();
    const struct bill_plan *az = tb_plan(cat, "azure-functions-consumption");
    const struct bill_rounding *r = bill_plan_rounding(az);
    ck_assert_int_eq(r->basis, BILL_MEMORY_OBSERVED);
    ck_assert_int_eq(r->step_mb, 128);
    ck_assert_int_eq(r->min_mb, 128);
    ck_assert_int_eq(r->max_mb, 1536);
    ck_assert_int_eq(r->step_ms, 1);
    ck_assert_int_eq(r->min_ms, 100);
    const struct bill_plan *x86 = tb_plan(cat, "aws-lambda-x86");
    const struct bill_charge *gb = bill_plan_charge_for(x86, BILL_METER_GB_SECONDS);
    ck_assert_ptr_nonnull(gb);
    ck_assert_uint_eq(gb->ntiers, 3);
    char buf[BILL_NUM_BUFSZ];
    bill_dec_format(gb->tiers[1].up_to, buf, sizeof buf);
    ck_assert_str_eq(buf, "15000000000");
    ck_assert(gb->tiers[2].unbounded);
    const struct bill_plan *cf = tb_plan(cat, "cloudflare-workers-standard");
    ck_assert_ptr_null(bill_plan_charge_for(cf, BILL_METER_GB_SECONDS));
    ck_assert_ptr_nonnull(bill_plan_charge_for(cf, BILL_METER_CPU_MS));
    bill_dec_format(bill_plan_subscription(cf), buf, sizeof buf);
    ck_assert_str_eq(buf, "5");
    const struct bill_plan *gcf = tb_plan(cat, "gcf-gen1-tier1");
    ck_assert_int_eq(bill_plan_mhz(gcf, 20000), 4800); /* beyond the table: the largest */
    ck_assert_int_eq(bill_plan_mhz(gcf, 1), 200);
    ck_assert_int_eq(bill_plan_mhz(gcf, 1025), 2400);
    ck_assert_int_eq(bill_plan_mhz(x86, 1024), 0); /* no table */
    bill_catalog_free(cat);
}
END_TEST

START_TEST(rounding_table)
{
    struct bill_catalog *cat = tb_catalog();
    FILE *f = tb_data("billing_rounding.txt");
    char line[512];
    int rows = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        char *w[9];
        lineno++;
        int n = tb_split(line, w, 9);
        if (n == 0)
            continue;
        ck_assert_msg(n == 8, "billing_rounding.txt:%d: 8 fields expected", lineno);
        const struct bill_plan *p = tb_plan(cat, w[0]);
        struct bill_invocation inv = {.duration_us = strtoll(w[1], NULL, 10),
                                      .init_us = strtoll(w[2], NULL, 10),
                                      .memory_mb = (int32_t)strtol(w[3], NULL, 10),
                                      .max_rss_kb = strtoll(w[4], NULL, 10)};
        int64_t want_ms = strtoll(w[5], NULL, 10), want_mb = strtoll(w[6], NULL, 10),
                want_mhz = strtoll(w[7], NULL, 10);
        struct bill_quantities q;
        ck_assert_int_eq(bill_plan_round(p, &inv, &q, NULL), BILL_OK);
        ck_assert_msg(q.billed_ms == want_ms && q.mb_ms == want_ms * want_mb &&
                          q.mhz_ms == want_ms * want_mhz && q.requests == 1,
                      "billing_rounding.txt:%d: got %lld ms, %lld MB-ms, %lld MHz-ms", lineno,
                      (long long)q.billed_ms, (long long)q.mb_ms, (long long)q.mhz_ms);
        ck_assert_int_eq(bill_plan_billed_ms(p, inv.duration_us, inv.init_us), want_ms);
        ck_assert_int_eq(bill_plan_billed_mb(p, inv.memory_mb, inv.max_rss_kb), want_mb);
        rows++;
    }
    fclose(f);
    ck_assert_int_ge(rows, 20);
    bill_catalog_free(cat);
}
END_TEST

START_TEST(rounding_rejects_bad_input)
{
    struct bill_catalog *cat = tb_catalog();
    const struct bill_plan *p = tb_plan(cat, "aws-lambda-x86");
    struct bill_quantities q = {.requests = 99};
    struct bill_invocation neg = {.duration_us = -1, .memory_mb = 128};
    struct fm_err err = {{0}};
    ck_assert_int_eq(bill_plan_round(p, &neg, &q, &err), BILL_EINVAL);
    ck_assert_int_eq(q.requests, 99);
    struct bill_invocation huge = {.duration_us = INT64_MAX, .init_us = 1, .memory_mb = 128};
    ck_assert_int_eq(bill_plan_round(p, &huge, &q, &err), BILL_EOVERFLOW);
    huge.init_us = 0;
    huge.memory_mb = 10240; /* ms fits, ms x MB does not */
    ck_assert_int_eq(bill_plan_round(p, &huge, &q, &err), BILL_EOVERFLOW);
    ck_assert_int_eq(q.requests, 99);
    struct bill_invocation cpu = {.duration_us = 1000, .memory_mb = 128, .cpu_user_us = 700,
                                  .cpu_sys_us = 300, .bytes_out = 5120};
    ck_assert_int_eq(bill_plan_round(p, &cpu, &q, NULL), BILL_OK);
    ck_assert_int_eq(q.cpu_us, 1000);
    ck_assert_int_eq(q.egress_bytes, 5120);
    bill_catalog_free(cat);
}
END_TEST

START_TEST(malformed_plans)
{
    FILE *f = tb_data("billing_bad_plans.txt");
    char line[4096], json[4096] = "";
    int cases = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "plan: ", 6) == 0) {
            snprintf(json, sizeof json, "%s", line + 6);
            continue;
        }
        if (strncmp(line, "error: ", 7) != 0)
            continue;
        const char *want = line + 7;
        struct bill_plan *p = NULL;
        struct fm_err err = {{0}};
        enum bill_status st = bill_plan_parse(json, strlen(json), "bad.json", &p, &err);
        if (strcmp(want, "ok") == 0) {
            ck_assert_msg(st == BILL_OK, "billing_bad_plans.txt:%d: %s", lineno, err.msg);
            bill_plan_free(p);
        } else {
            ck_assert_msg(st == BILL_EINVAL, "billing_bad_plans.txt:%d: accepted", lineno);
            ck_assert_ptr_null(p);
            ck_assert_msg(strcmp(err.msg, want) == 0, "billing_bad_plans.txt:%d:\n got  %s\n want %s",
                          lineno, err.msg, want);
        }
        cases++;
    }
    fclose(f);
    ck_assert_int_ge(cases, 25);
}
END_TEST

START_TEST(ghz_table_as_array)
{
    struct bill_plan *p = tb_plan_json(
        "{\"id\":\"g\",\"name\":\"G\",\"currency\":\"USD\","
        "\"duration\":{\"step_ms\":100,\"min_ms\":0,\"include_init\":false},"
        "\"memory\":{\"basis\":\"configured\",\"step_mb\":1,\"min_mb\":128,\"max_mb\":4096},"
        "\"ghz_by_memory_mb\":[{\"memory_mb\":1024,\"ghz\":\"1.4\"},{\"memory_mb\":128,\"ghz\":\"0.2\"}],"
        "\"charges\":[{\"meter\":\"ghz_seconds\",\"tiers\":[{\"up_to\":null,\"unit_price\":\"0.00001\"}]}]}");
    ck_assert_int_eq(bill_plan_mhz(p, 128), 200);
    ck_assert_int_eq(bill_plan_mhz(p, 129), 1400);
    ck_assert_int_eq(bill_plan_mhz(p, 4096), 1400);
    bill_plan_free(p);
}
END_TEST

static char tmp_root[64];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_root, rel);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_catalog_dir(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/fm-catalog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp_root));
    char path[128];
    snprintf(path, sizeof path, "%s/plans", tmp_root);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/servers", tmp_root);
    ck_assert_int_eq(mkdir(path, 0700), 0);
}

static void remove_catalog_dir(void)
{
    static const char *const files[] = {"plans/a.json", "plans/x.json", "servers/s.json",
                                        "plans", "servers", ""};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", tmp_root, files[i]);
        if (unlink(path) != 0)
            rmdir(path); /* the folders, listed after their files */
    }
}

#define GOOD_PLAN(id)                                                                          \
    "{\"id\":\"" id "\",\"name\":\"N\",\"currency\":\"USD\","                                  \
    "\"duration\":{\"step_ms\":1,\"min_ms\":0,\"include_init\":false},"                        \
    "\"memory\":{\"basis\":\"configured\",\"step_mb\":1,\"min_mb\":128,\"max_mb\":1024},"      \
    "\"charges\":[{\"meter\":\"requests\",\"tiers\":[{\"up_to\":null,\"unit_price\":\"1\"}]}]}"

START_TEST(catalog_errors_name_the_file)
{
    struct bill_catalog *cat = NULL;
    struct fm_err err = {{0}};
    write_file("plans/a.json", GOOD_PLAN("a"));
    write_file("plans/x.json",
               "{\"id\":\"x\",\"name\":\"N\",\"currency\":\"USD\","
               "\"duration\":{\"step_ms\":1,\"min_ms\":0,\"include_init\":false},"
               "\"memory\":{\"basis\":\"configured\",\"step_mb\":1,\"min_mb\":128,\"max_mb\":1024},"
               "\"charges\":[{\"meter\":\"requests\",\"tiers\":[{\"up_to\":null,\"unit_price\":\"1\"}]},"
               "{\"meter\":\"gb_seconds\",\"tiers\":[{\"up_to\":null,\"unit_price\":\"abc\"}]}]}");
    ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_EINVAL);
    ck_assert_ptr_null(cat);
    ck_assert_str_eq(err.msg, "plans/x.json: charges[1].tiers[0].unit_price: not a decimal number");

    write_file("plans/x.json", GOOD_PLAN("a"));
    ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_EINVAL);
    ck_assert_str_eq(err.msg, "plans/x.json: id: \"a\" is defined already by plans/a.json");

    write_file("plans/x.json", GOOD_PLAN("x"));
    write_file("servers/s.json", "[{\"id\":\"s1\",\"name\":\"S\",\"provider\":\"p\",\"vcpus\":2,"
                                 "\"memory_mb\":1024,\"hourly_price\":0.01,\"currency\":\"USD\","
                                 "\"source\":\"here\",\"as_of\":\"2024-01-01\"}]");
    ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_EINVAL);
    ck_assert_str_eq(err.msg,
                     "servers/s.json: [0].hourly_price: expected a decimal string such as \"0.20\"");

    /* Server files are held to the same rules as plans: known fields, each of its type,
     * given once. */
    static const struct {
        const char *json, *error;
    } bad_servers[] = {
        {"[{\"id\":\"s1\",\"name\":\"S\",\"provider\":\"p\",\"vcpus\":\"2\","
         "\"memory_mb\":1024,\"hourly_price\":\"0.01\",\"currency\":\"USD\","
         "\"source\":\"here\",\"as_of\":\"2024-01-01\"}]",
         "servers/s.json: [0].vcpus: expected an integer 1-4096"},
        {"{\"id\":\"s1\",\"name\":\"S\",\"provider\":\"p\",\"vcpus\":2,\"memory_mb\":1024,"
         "\"hourly_price\":\"0.01\",\"currency\":\"USD\",\"source\":\"here\","
         "\"as_of\":\"2024-01-01\",\"monthly_price\":\"7\"}",
         "servers/s.json: monthly_price: unknown field (expected id, name, provider, vcpus, "
         "memory_mb, hourly_price, currency, source or as_of)"},
        {"[{\"id\":\"s1\",\"name\":\"S\",\"provider\":\"p\",\"vcpus\":2,\"memory_mb\":1024,"
         "\"hourly_price\":\"0.01\",\"currency\":\"USD\",\"source\":\"here\","
         "\"as_of\":\"2024-01-01\",\"hourly_price\":\"0.001\"}]",
         "servers/s.json: [0].hourly_price: given twice"},
    };
    for (size_t i = 0; i < sizeof bad_servers / sizeof bad_servers[0]; i++) {
        write_file("servers/s.json", bad_servers[i].json);
        ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_EINVAL);
        ck_assert_str_eq(err.msg, bad_servers[i].error);
    }
    /* A comparison sets every server side by side: a catalog holds at most 64. */
    for (int many = 64; many <= 65; many++) {
        struct fm_buf list;
        fm_buf_init(&list, 1 << 20);
        for (int k = 0; k < many; k++)
            fm_buf_printf(&list,
                          "%s{\"id\":\"s%d\",\"name\":\"S\",\"provider\":\"p\",\"vcpus\":2,"
                          "\"memory_mb\":1024,\"hourly_price\":\"0.01\",\"currency\":\"USD\","
                          "\"source\":\"here\",\"as_of\":\"2024-01-01\"}",
                          k ? "," : "[", k);
        fm_buf_puts(&list, "]");
        write_file("servers/s.json", list.data);
        fm_buf_free(&list);
        if (many == 64) {
            ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_OK);
            ck_assert_uint_eq(bill_catalog_server_count(cat), 64);
            bill_catalog_free(cat);
        } else {
            ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_EINVAL);
            ck_assert_str_eq(err.msg, "servers/s.json: more than 64 servers in the catalog");
        }
    }
    write_file("servers/s.json", "{\"id\":\"s1\",\"name\":\"S\",\"provider\":\"p\",\"vcpus\":2,"
                                 "\"memory_mb\":1024,\"hourly_price\":\"0.01\",\"currency\":\"USD\","
                                 "\"source\":\"here\",\"as_of\":\"2024-01-01\"}");
    ck_assert_int_eq(bill_catalog_load(tmp_root, &cat, &err), BILL_OK);
    ck_assert_uint_eq(bill_catalog_plan_count(cat), 2);
    ck_assert_uint_eq(bill_catalog_server_count(cat), 1);
    ck_assert_str_eq(bill_catalog_server_at(cat, 0)->id, "s1");
    bill_catalog_free(cat);

    struct bill_plan *p = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/plans/x.json", tmp_root);
    ck_assert_int_eq(bill_plan_load_file(path, &p, &err), BILL_OK);
    ck_assert_str_eq(bill_plan_id(p), "x");
    bill_plan_free(p);
    snprintf(path, sizeof path, "%s/plans/missing.json", tmp_root);
    ck_assert_int_eq(bill_plan_load_file(path, &p, &err), BILL_EIO);
    char want[256];
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(bill_catalog_load("/nonexistent/catalog", &cat, &err), BILL_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/catalog/plans: No such file or directory");
}
END_TEST

Suite *suite_plan(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, shipped_catalog_ids);
    tcase_add_test(tc, shipped_plan_terms);
    tcase_add_test(tc, rounding_table);
    tcase_add_test(tc, rounding_rejects_bad_input);
    tcase_add_test(tc, malformed_plans);
    tcase_add_test(tc, ghz_table_as_array);
    suite_add_tcase(s, tc);
    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, make_catalog_dir, remove_catalog_dir);
    tcase_add_test(files, catalog_errors_name_the_file);
    suite_add_tcase(s, files);
    return s;
}
