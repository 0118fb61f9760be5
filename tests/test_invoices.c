/*
 * Stored invoices through meterd's API: build, rebuild while draft, finalize, late usage as
 * adjustments on later invoices, tenant isolation. A plan without free allowances and with
 * 100 ms steps makes every cent visible.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "billing/catalog.h"
#include "common/apikey.h"
#include "meter/http.h"
#include "meter/invoices.h"
#include "meter/plans.h"
#include "tests/httpc.h"
#include "tests/suites.h"
#include "tests/testdb.h"

static char conninfo[1024];
static char admin_key[APIKEY_LEN + 1], ingest_key[APIKEY_LEN + 1];
static char acme_key[APIKEY_LEN + 1], globex_key[APIKEY_LEN + 1];
static char catalog_dir[64];
static struct bill_catalog *catalog;
static struct meter_server *server;
static char base[96];

static const char test_plan[] =
    "{\"id\": \"test-100ms\", \"name\": \"100 ms steps, no free tier\", \"currency\": \"USD\","
    " \"duration\": {\"step_ms\": 100, \"min_ms\": 0, \"include_init\": true},"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"0\", \"charges\": ["
    "  {\"meter\": \"requests\", \"free\": \"0\","
    "   \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.01\"}]},"
    "  {\"meter\": \"gb_seconds\", \"free\": \"0\","
    "   \"tiers\": [{\"up_to\": null, \"unit_price\": \"1\"}]}]}";

/* Plans in currencies whose minor unit is not the cent: the yen has none, the Bahraini
 * dinar three decimals. */
static const char yen_plan[] =
    "{\"id\": \"test-jpy\", \"name\": \"yen\", \"currency\": \"JPY\","
    " \"duration\": {\"step_ms\": 100, \"min_ms\": 0, \"include_init\": true},"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"0\", \"charges\": ["
    "  {\"meter\": \"requests\", \"free\": \"0\","
    "   \"tiers\": [{\"up_to\": null, \"unit_price\": \"1\"}]},"
    "  {\"meter\": \"gb_seconds\", \"free\": \"0\","
    "   \"tiers\": [{\"up_to\": null, \"unit_price\": \"1\"}]}]}";
static const char dinar_plan[] =
    "{\"id\": \"test-bhd\", \"name\": \"dinar\", \"currency\": \"BHD\","
    " \"duration\": {\"step_ms\": 100, \"min_ms\": 0, \"include_init\": true},"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128, \"max_mb\": 10240},"
    " \"subscription\": \"0\", \"charges\": ["
    "  {\"meter\": \"requests\", \"free\": \"0\","
    "   \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.001\"}]},"
    "  {\"meter\": \"gb_seconds\", \"free\": \"0\","
    "   \"tiers\": [{\"up_to\": null, \"unit_price\": \"0.1\"}]}]}";

/* Write text to catalog_dir/rel. */
static void put_file(const char *rel, const char *text)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", catalog_dir, rel);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    testdb_create("faasmeter_test_invoices", conninfo, sizeof conninfo);
    snprintf(catalog_dir, sizeof catalog_dir, "/tmp/faasmeter-invoices.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(catalog_dir));
    char path[160];
    snprintf(path, sizeof path, "%s/plans", catalog_dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/servers", catalog_dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    put_file("plans/test.json", test_plan);
    put_file("plans/yen.json", yen_plan);
    put_file("plans/dinar.json", dinar_plan);
    FILE *f;
    /* A server in the plan's currency and one in another, which comparisons leave out;
     * and a large one in the plan's, dearer than the first. */
    snprintf(path, sizeof path, "%s/servers/s.json", catalog_dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("[{\"id\": \"usd-box\", \"name\": \"usd\", \"provider\": \"t\", \"vcpus\": 2,"
          " \"memory_mb\": 4096, \"hourly_price\": \"0.01\", \"currency\": \"USD\","
          " \"source\": \"t\", \"as_of\": \"2024-01-01\"},"
          " {\"id\": \"big-box\", \"name\": \"big\", \"provider\": \"t\", \"vcpus\": 2,"
          " \"memory_mb\": 16384, \"hourly_price\": \"0.1\", \"currency\": \"USD\","
          " \"source\": \"t\", \"as_of\": \"2024-01-01\"},"
          " {\"id\": \"eur-box\", \"name\": \"eur\", \"provider\": \"t\", \"vcpus\": 2,"
          " \"memory_mb\": 4096, \"hourly_price\": \"0.001\", \"currency\": \"EUR\","
          " \"source\": \"t\", \"as_of\": \"2024-01-01\"}]",
          f);
    fclose(f);
    struct fm_err err;
    ck_assert_msg(bill_catalog_load(catalog_dir, &catalog, &err) == BILL_OK, "%s", err.msg);

    PGconn *conn = testdb_connect(conninfo);
    ck_assert_msg(meter_plans_register(conn, catalog, NULL, &err) == 0, "%s", err.msg);
    testdb_exec(conn, "INSERT INTO tenants VALUES ('acme', 'test-100ms'),"
                      " ('globex', 'test-100ms'), ('tokyo', 'test-jpy'), ('manama', 'test-bhd')");
    testdb_add_key(conn, admin_key, "admin", NULL);
    testdb_add_key(conn, ingest_key, "ingest", NULL);
    testdb_add_key(conn, acme_key, "tenant", "acme");
    testdb_add_key(conn, globex_key, "tenant", "globex");
    PQfinish(conn);

    struct meter_config cfg;
    meter_config_defaults(&cfg);
    cfg.port = 0;
    cfg.conninfo = conninfo;
    cfg.catalog = catalog;
    ck_assert_msg(meter_server_start(&cfg, &server, &err) == 0, "%s", err.msg);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", meter_server_port(server));
}

static void teardown(void)
{
    meter_server_stop(server);
    bill_catalog_free(catalog);
    char path[160];
    static const char *const files[] = {"plans/test.json", "plans/yen.json",
                                        "plans/dinar.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", catalog_dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/servers/s.json", catalog_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/plans", catalog_dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/servers", catalog_dir);
    rmdir(path);
    rmdir(catalog_dir);
}

static struct http_reply call(const char *method, const char *path, const char *key,
                              const char *body)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    return http_call(method, url, headers, body);
}

/* One finished invocation of tenant, function fn configured with mb, stopped at time. */
static void invocation_mb(const char *tenant, const char *id, const char *fn, int mb,
                          const char *time, long duration_us)
{
    char body[1024];
    snprintf(body, sizeof body,
             "[{\"id\":\"%s:stop\",\"type\":\"stop\",\"invocation_id\":\"%s\","
             "\"tenant\":\"%s\",\"function\":\"%s\",\"time\":\"%s\",\"memory_mb\":%d,"
             "\"cold_start\":false,\"duration_us\":%ld,\"init_us\":0,\"status\":\"ok\","
             "\"exit_code\":0,\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":1,"
             "\"bytes_in\":0,\"bytes_out\":0}]",
             id, id, tenant, fn, time, mb, duration_us);
    struct http_reply r = call("POST", "/v1/records", ingest_key, body);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    free(r.body);
}

/* One finished invocation of tenant, function fn, 1024 MB, stopped at time. */
static void invocation_of(const char *tenant, const char *id, const char *fn, const char *time,
                          long duration_us)
{
    invocation_mb(tenant, id, fn, 1024, time, duration_us);
}

static void invocation(const char *id, const char *fn, const char *time, long duration_us)
{
    invocation_of("acme", id, fn, time, duration_us);
}

/* A JSON member's text in a reply body: enough for the flat fields checked here. */
static void expect_member(const char *body, const char *needle)
{
    ck_assert_msg(strstr(body, needle) != NULL, "'%s' not in %s", needle, body);
}

static long build_for(const char *tenant, const char *period, long want_status,
                      const char *want_total)
{
    char req[128];
    snprintf(req, sizeof req, "{\"tenant\": \"%s\", \"period\": \"%s\"}", tenant, period);
    struct http_reply r = call("POST", "/v1/invoices", admin_key, req);
    ck_assert_msg(r.status == want_status, "%ld: %s", r.status, r.body);
    char total[64];
    snprintf(total, sizeof total, "\"total\": \"%s\"", want_total);
    expect_member(r.body, total);
    /* The invoice's own id, not an adjustment line's. */
    cJSON *doc = cJSON_Parse(r.body);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "invoice_id");
    ck_assert_msg(cJSON_IsNumber(id), "no invoice_id in %s", r.body);
    long n = (long)id->valuedouble;
    cJSON_Delete(doc);
    free(r.body);
    return n;
}

static long build(const char *period, long want_status, const char *want_total)
{
    return build_for("acme", period, want_status, want_total);
}

#define SETTLED "; once it is settled, close the month (faasbill invoice --close)"

/* Amounts stored and read back in the minor unit of their currency: a late invocation's
 * adjustment is what it adds, in yen and in dinars as in dollars. */
START_TEST(adjustments_keep_to_the_minor_unit_of_the_currency)
{
    static const struct {
        const char *tenant, *march, *adjustment;
    } cases[] = {
        /* One request (1) and 0.1 GB-s (0.1, rounded to none): 1 yen; one more, 1 more. */
        {"tokyo", "1", "1"},
        /* 0.001 and 0.01 dinar: 0.011, stored with its three decimals; one more, as much. */
        {"manama", "0.011", "0.011"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].tenant;
        char id[32];
        snprintf(id, sizeof id, "%s-1", t);
        invocation_of(t, id, "f", "2026-03-10T10:00:00.1Z", 100000);
        long march = build_for(t, "2026-03", 201, cases[i].march);
        char path[96];
        snprintf(path, sizeof path, "/v1/invoices/%ld/finalize", march);
        struct http_reply r = call("POST", path, admin_key, "");
        ck_assert_int_eq(r.status, 200);
        free(r.body);
        snprintf(id, sizeof id, "%s-2", t);
        invocation_of(t, id, "f", "2026-03-11T10:00:00.1Z", 100000);
        build_for(t, "2026-04", 201, cases[i].adjustment);
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT total || '/' || usage_total FROM invoices"
                                  " WHERE tenant = '%s' AND period = '2026-03'", t);
        PGconn *conn = testdb_connect(conninfo);
        char *stored = testdb_value(conn, sql, 0, NULL);
        char want[64];
        snprintf(want, sizeof want, "%s/%s", cases[i].march, cases[i].march);
        ck_assert_str_eq(stored, want);
        free(stored);
        PQfinish(conn);
    }
    /* A tenant moved to a plan in dollars cannot carry a correction counted in yen. */
    PGconn *conn = testdb_connect(conninfo);
    testdb_exec(conn, "UPDATE tenants SET plan = 'test-100ms' WHERE tenant = 'tokyo'");
    char *march = testdb_value(conn, "SELECT invoice_id FROM invoices WHERE tenant = 'tokyo'"
                                     " AND period = '2026-03'", 0, NULL);
    PQfinish(conn);
    invocation_of("tokyo", "tokyo-3", "f", "2026-03-12T10:00:00.1Z", 100000);
    struct http_reply r = call("POST", "/v1/invoices", admin_key,
                               "{\"tenant\": \"tokyo\", \"period\": \"2026-05\"}");
    char want[256];
    snprintf(want, sizeof want,
             "{\"error\":\"unprocessable\",\"message\":\"invoice %s (2026-03) was billed in "
             "JPY, and this one is in USD: its correction of 2 JPY cannot be carried" SETTLED
             "\"}",
             march);
    ck_assert_int_eq(r.status, 422);
    ck_assert_str_eq(r.body, want);
    free(r.body);
    /* Settled outside, the month is closed to corrections: the next invoice is built. A
     * draft cannot be closed, nor a month without an invoice. */
    conn = testdb_connect(conninfo);
    int64_t id = 0;
    struct fm_err err;
    ck_assert_int_eq(meter_invoice_close(conn, "tokyo", "2026-04", &id, &err),
                     METER_INVOICE_BAD_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, " for tokyo 2026-04 is a draft: finalize it first"));
    ck_assert_int_eq(meter_invoice_close(conn, "tokyo", "2026-08", &id, &err),
                     METER_INVOICE_NOT_FOUND);
    ck_assert_str_eq(err.msg, "no invoice for tokyo 2026-08");
    ck_assert_int_eq(meter_invoice_close(conn, "tokyo", "2026-03", &id, &err), METER_INVOICE_OK);
    ck_assert_int_eq(id, strtoll(march, NULL, 10));
    ck_assert_int_eq(meter_invoice_close(conn, "tokyo", "2026-03", &id, &err), METER_INVOICE_OK);
    PQfinish(conn);
    build_for("tokyo", "2026-05", 201, "0.00");
    free(march);

    /* A month billed in a currency its plan no longer bills in, and one stored with more
     * decimals than its currency has: neither can be compared, and both say so. */
    conn = testdb_connect(conninfo);
    march = testdb_value(conn, "SELECT invoice_id FROM invoices WHERE tenant = 'manama'"
                               " AND period = '2026-03'", 0, NULL);
    static const struct {
        const char *set, *message;
    } stale[] = {
        {"currency = 'KWD'", "was billed in KWD, and its plan now bills in BHD: its correction "
                             "cannot be worked out" SETTLED},
        {"usage_total = 0.0115", ": its amounts 0.0115 and 0 have more decimals than BHD has; "
                                 "it was priced before amounts kept their currency's minor "
                                 "unit" SETTLED},
    };
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "UPDATE invoices SET %s WHERE invoice_id = %s", stale[i].set,
                 march);
        testdb_exec(conn, sql);
        r = call("POST", "/v1/invoices", admin_key,
                 "{\"tenant\": \"manama\", \"period\": \"2026-05\"}");
        snprintf(want, sizeof want,
                 "{\"error\":\"unprocessable\",\"message\":\"invoice %s (2026-03)%s%s\"}",
                 march, i == 0 ? " " : "", stale[i].message);
        ck_assert_int_eq(r.status, 422);
        ck_assert_str_eq(r.body, want);
        free(r.body);
        testdb_exec(conn, "UPDATE invoices SET currency = 'BHD', usage_total = 0.011"
                          " WHERE tenant = 'manama' AND period = '2026-03'");
    }
    free(march);
    PQfinish(conn);
}
END_TEST

START_TEST(late_usage_lands_on_the_next_invoice)
{
    /* Three calls of 260 ms bill as 300 ms each: 0.9 GB-s, not the 0.78 of their sum. */
    invocation("s1", "resize", "2026-09-10T10:00:00.260Z", 260000);
    invocation("s2", "resize", "2026-09-10T10:00:01.260Z", 260000);
    invocation("s3", "store", "2026-09-10T10:00:02.260Z", 260000);
    long sept = build("2026-09", 201, "0.93");
    ck_assert_int_eq(build("2026-09", 200, "0.93"), sept);
    /* A zero byte in the path does not cut the id short to the invoice's. */
    char cut[64];
    snprintf(cut, sizeof cut, "/v1/invoices/%ld%%00x", sept);
    struct http_reply c = call("GET", cut, admin_key, NULL);
    ck_assert_int_eq(c.status, 404);
    free(c.body);

    /* The usage API gives the same billed GB-seconds, under the tenant's plan, for a whole
     * month, and for a day or a month cut short that holds the same invocations. */
    struct http_reply u = call(
        "GET", "/v1/usage?tenant=acme&from=2026-09-01&to=2026-10-01&window=month", acme_key, NULL);
    ck_assert_int_eq(u.status, 200);
    expect_member(u.body, "\"plan\":\"test-100ms\"");
    expect_member(u.body, "\"function\":\"resize\",\"invocations\":2");
    expect_member(u.body, "\"measured_gb_seconds\":\"0.52\",\"billed_gb_seconds\":\"0.6\"}");
    expect_member(u.body, "\"measured_gb_seconds\":\"0.26\",\"billed_gb_seconds\":\"0.3\"}");
    free(u.body);
    static const char *const partial[] = {
        "/v1/usage?tenant=acme&from=2026-09-01&to=2026-10-01&window=day",
        "/v1/usage?tenant=acme&from=2026-09-02&to=2026-10-01&window=month",
    };
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        u = call("GET", partial[i], acme_key, NULL);
        ck_assert_int_eq(u.status, 200);
        expect_member(u.body, "\"measured_gb_seconds\":\"0.52\",\"billed_gb_seconds\":\"0.6\"}");
        expect_member(u.body, "\"measured_gb_seconds\":\"0.26\",\"billed_gb_seconds\":\"0.3\"}");
        free(u.body);
    }

    char path[96];
    snprintf(path, sizeof path, "/v1/invoices/%ld/finalize", sept);
    struct http_reply r = call("POST", path, admin_key, "");
    ck_assert_int_eq(r.status, 200);
    expect_member(r.body, "\"status\": \"final\"");
    free(r.body);
    r = call("POST", path, admin_key, "");
    ck_assert_int_eq(r.status, 409);
    free(r.body);
    r = call("POST", "/v1/invoices", admin_key, "{\"tenant\": \"acme\", \"period\": \"2026-09\"}");
    ck_assert_int_eq(r.status, 409);
    char want[160];
    snprintf(want, sizeof want,
             "{\"error\":\"conflict\",\"message\":\"invoice %ld for acme 2026-09 is final\"}",
             sept);
    ck_assert_str_eq(r.body, want);
    free(r.body);

    /* Late: 50 ms in September (100 ms billed) costs 0.11 more, carried by October. */
    invocation("s4", "resize", "2026-09-30T23:00:00.050Z", 50000);
    invocation("o1", "resize", "2026-10-05T10:00:01Z", 1000000);
    long oct = build("2026-10", 201, "1.12");
    snprintf(path, sizeof path, "/v1/invoices/%ld", oct);
    r = call("GET", path, acme_key, NULL);
    ck_assert_int_eq(r.status, 200);
    /* The adjustment is a line, as the charges are: the total is the sum of the lines. */
    cJSON *doc = cJSON_Parse(r.body);
    const cJSON *adj = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "lines"), 2);
    snprintf(want, sizeof want, "Adjustment for 2026-09 (invoice %ld)", sept);
    ck_assert_str_eq(cJSON_GetObjectItem(adj, "item")->valuestring, want);
    ck_assert_str_eq(cJSON_GetObjectItem(adj, "meter")->valuestring, "adjustment");
    ck_assert_str_eq(cJSON_GetObjectItem(adj, "quantity")->valuestring, "1");
    ck_assert_str_eq(cJSON_GetObjectItem(adj, "amount")->valuestring, "0.11");
    ck_assert_str_eq(cJSON_GetObjectItem(adj, "period")->valuestring, "2026-09");
    ck_assert_int_eq((long)cJSON_GetObjectItem(adj, "invoice_id")->valuedouble, sept);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "lines")), 3);
    cJSON_Delete(doc);
    free(r.body);
    snprintf(path, sizeof path, "/v1/invoices/%ld/finalize", oct);
    r = call("POST", path, admin_key, "");
    ck_assert_int_eq(r.status, 200);
    free(r.body);

    /* Later still: 150 ms more in September; what October carried is not billed twice. */
    invocation("s5", "store", "2026-09-29T08:00:00.150Z", 150000);
    long nov = build("2026-11", 201, "0.21");

    /* Two drafts may carry the same late usage; finalizing rebuilds, so only the first
     * frozen one charges it. 100 ms more in September: 0.11, so 0.32 is due now. */
    invocation("s6", "resize", "2026-09-29T09:00:00.100Z", 100000);
    long dec = build("2026-12", 201, "0.32");
    snprintf(path, sizeof path, "/v1/invoices/%ld/finalize", dec);
    r = call("POST", path, admin_key, "");
    ck_assert_int_eq(r.status, 200);
    expect_member(r.body, "\"total\": \"0.32\"");
    free(r.body);
    snprintf(path, sizeof path, "/v1/invoices/%ld/finalize", nov);
    r = call("POST", path, admin_key, "");
    ck_assert_int_eq(r.status, 200);
    expect_member(r.body, "\"total\": \"0.00\"");
    ck_assert_ptr_null(strstr(r.body, "\"adjustment\""));
    free(r.body);

    /* The frozen September invoice did not change. */
    snprintf(path, sizeof path, "/v1/invoices/%ld", sept);
    r = call("GET", path, admin_key, NULL);
    ck_assert_int_eq(r.status, 200);
    expect_member(r.body, "\"total\": \"0.93\"");
    free(r.body);

    /* Tenants see their own invoices only, and cannot tell another's from a missing one. */
    static const char theirs_only[] = "{\"error\":\"forbidden\",\"message\":\"this key reads"
                                      " the invoices of tenant globex only\"}";
    r = call("GET", path, globex_key, NULL);
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(r.body, theirs_only);
    free(r.body);
    r = call("GET", "/v1/invoices/999999", globex_key, NULL);
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(r.body, theirs_only);
    free(r.body);
    r = call("GET", path, ingest_key, NULL);
    ck_assert_int_eq(r.status, 403);
    free(r.body);
    r = call("GET", "/v1/invoices?tenant=acme", globex_key, NULL);
    ck_assert_int_eq(r.status, 403);
    free(r.body);
    r = call("GET", "/v1/invoices", acme_key, NULL);
    ck_assert_int_eq(r.status, 200);
    expect_member(r.body, "\"period\": \"2026-11\"");
    ck_assert_ptr_null(strstr(r.body, "globex"));
    free(r.body);
    r = call("GET", "/v1/invoices?tenant=acme&period=2026-10", admin_key, NULL);
    ck_assert_int_eq(r.status, 200);
    expect_member(r.body, "\"total\": \"1.12\"");
    /* One invoice, October's, whole: its lines, and September's adjustment among them. */
    const char *first = strstr(r.body, "\"finalized_at\"");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_null(strstr(first + 1, "\"finalized_at\""));
    expect_member(r.body, "\"item\": \"Compute (GB-s)\"");
    expect_member(r.body, "\"item\": \"Adjustment for 2026-09 (invoice 1)\"");
    free(r.body);
}
END_TEST

START_TEST(compare_serves_the_same_bill)
{
    invocation("c1", "resize", "2026-09-10T10:00:00.260Z", 260000);
    invocation("c2", "resize", "2026-09-10T10:00:01.260Z", 260000);
    invocation("c3", "store", "2026-09-10T10:00:02.260Z", 260000);
    struct http_reply r = call("GET", "/v1/compare?tenant=acme&period=2026-09", acme_key, NULL);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    /* The invoice's figures: 0.93 in all, shared 0.62 and 0.31 by the two functions. */
    expect_member(r.body, "\"plans\":[{\"plan\":\"test-100ms\",\"name\":\"100 ms steps, "
                          "no free tier\",\"own\":true,\"total\":\"0.93\"");
    expect_member(r.body, "\"function\":\"resize\",\"invocations\":2");
    expect_member(r.body, "\"cost\":\"0.62\"");
    expect_member(r.body, "\"cost\":\"0.31\"");
    /* The euro server, and the plans in yen and dinars, are not set beside dollar amounts,
     * and the answer says so. */
    expect_member(r.body, "\"best_server\":\"usd-box\",\"verdict\":\"functions\","
                          "\"left_out\":[{\"kind\":\"plan\",\"id\":\"test-bhd\","
                          "\"currency\":\"BHD\"},{\"kind\":\"plan\",\"id\":\"test-jpy\","
                          "\"currency\":\"JPY\"},{\"kind\":\"server\",\"id\":\"eur-box\","
                          "\"currency\":\"EUR\"}]");
    ck_assert_ptr_null(strstr(r.body, "\"server\":\"eur-box\""));
    /* A tenant key that names no tenant is answered for its own, as the invoice list is. */
    struct http_reply own = call("GET", "/v1/compare?period=2026-09", acme_key, NULL);
    ck_assert_msg(own.status == 200, "%ld %s", own.status, own.body);
    ck_assert_str_eq(own.body, r.body);
    free(own.body);
    free(r.body);
    static const struct {
        const char *path, *key_name;
        long status;
        const char *reply;
    } bad[] = {
        {"/v1/compare?tenant=acme&period=2026-09", "globex", 403,
         "{\"error\":\"forbidden\",\"message\":\"this key may not read tenant acme\"}"},
        {"/v1/compare?tenant=acme&period=2026-09", "ingest", 403,
         "{\"error\":\"forbidden\",\"message\":\"this needs an admin or tenant key\"}"},
        {"/v1/compare?period=2026-09", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: required\"}"},
        {"/v1/compare?tenant=acme", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"period: required, YYYY-MM\"}"},
        {"/v1/compare?tenant=Acme&period=2026-09", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: expected "
         "[a-z0-9][a-z0-9_-]{0,63}\"}"},
        {"/v1/compare?tenant=acme&period=2026-13", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"period: expected YYYY-MM, got "
         "'2026-13'\"}"},
        {"/v1/compare?tenant=acme&period=2026-09%00x", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"period: may not contain a zero byte "
         "(%00)\"}"},
        {"/v1/compare?tenant=acme&period=2026-09&server=nope", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"server: no server 'nope' in the "
         "catalog\"}"},
        {"/v1/compare?tenant=acme&period=2026-09&server=usd-box&server=eur-box", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"server: 'eur-box' is priced in EUR, the "
         "tenant's plan in USD\"}"},
        {"/v1/compare?tenant=acme&period=2026-09&period=2026-10", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"period: given twice\"}"},
        {"/v1/compare?tenant=acme&period=2026-09&server=usd-box&server=usd-box", "admin", 400,
         "{\"error\":\"bad_request\",\"message\":\"server: 'usd-box' given twice\"}"},
        {"/v1/compare?tenant=nobody&period=2026-09", "admin", 404,
         "{\"error\":\"not_found\",\"message\":\"tenant: no tenant 'nobody'\"}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *key = strcmp(bad[i].key_name, "globex") == 0   ? globex_key
                          : strcmp(bad[i].key_name, "ingest") == 0 ? ingest_key
                                                                   : admin_key;
        r = call("GET", bad[i].path, key, NULL);
        ck_assert_msg(r.status == bad[i].status, "%s: %ld %s", bad[i].path, r.status, r.body);
        ck_assert_str_eq(r.body, bad[i].reply);
        free(r.body);
    }
}
END_TEST

START_TEST(bad_invoice_requests)
{
    static const struct {
        const char *method, *path, *body;
        long status;
        const char *reply;
    } cases[] = {
        {"POST", "/v1/invoices", "{\"tenant\": \"acme\", \"period\": \"2026-13\"}", 400,
         "{\"error\":\"bad_request\",\"message\":\"period: expected YYYY-MM, got "
         "'2026-13'\"}"},
        {"POST", "/v1/invoices",
         "{\"tenant\": \"acme\", \"period\": \"2026-09\", \"plna\": \"test-100ms\"}", 400,
         "{\"error\":\"bad_request\",\"message\":\"plna: unknown field (expected tenant, "
         "period or plan)\"}"},
        {"POST", "/v1/invoices",
         "{\"tenant\": \"acme\", \"tenant\": \"globex\", \"period\": \"2026-09\"}", 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: given twice\"}"},
        {"POST", "/v1/invoices", "{\"tenant\": \"acme\"}", 400,
         "{\"error\":\"bad_request\",\"message\":\"period: required, YYYY-MM\"}"},
        /* cJSON would read "acme\u0000x" as "acme", and make acme's draft. */
        {"POST", "/v1/invoices", "{\"tenant\": \"acme\\u0000x\", \"period\": \"2026-01\"}",
         400,
         "{\"error\":\"bad_request\",\"message\":\"strings may not contain \\\\u0000 or a "
         "zero byte\"}"},
        {"GET", "/v1/invoices?tenant=acme%00x", NULL, 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: may not contain a zero byte "
         "(%00)\"}"},
        {"GET", "/v1/invoices/01", NULL, 404,
         "{\"error\":\"not_found\",\"message\":\"invoice: no such invoice\"}"},
        {"POST", "/v1/invoices", "{\"period\": \"2026-01\"}", 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: required, a string\"}"},
        {"POST", "/v1/invoices", "[1]", 400,
         "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON object\"}"},
        {"POST", "/v1/invoices", "{\"tenant\": \"acme\", \"period\": \"2026-01\"} trailing", 400,
         "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON object\"}"},
        {"POST", "/v1/invoices", "{\"tenant\": \"CALC\", \"period\": \"2026-01\"}", 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: expected "
         "[a-z0-9][a-z0-9_-]{0,63}\"}"},
        {"GET", "/v1/invoices?tenant=CALC", NULL, 400,
         "{\"error\":\"bad_request\",\"message\":\"tenant: expected "
         "[a-z0-9][a-z0-9_-]{0,63}\"}"},
        {"POST", "/v1/invoices", "{\"tenant\": \"nobody\", \"period\": \"2026-01\"}", 404,
         "{\"error\":\"not_found\",\"message\":\"tenant: no tenant 'nobody'\"}"},
        {"POST", "/v1/invoices",
         "{\"tenant\": \"acme\", \"period\": \"2026-01\", \"plan\": \"nope\"}", 422,
         "{\"error\":\"unprocessable\",\"message\":\"plan: no plan 'nope' in the catalog\"}"},
        {"GET", "/v1/invoices/999999", NULL, 404,
         "{\"error\":\"not_found\",\"message\":\"invoice: no such invoice\"}"},
        {"GET", "/v1/invoices/abc", NULL, 404,
         "{\"error\":\"not_found\",\"message\":\"invoice: no such invoice\"}"},
        {"POST", "/v1/invoices/999999/finalize", "", 404,
         "{\"error\":\"not_found\",\"message\":\"invoice: no such invoice\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_reply r = call(cases[i].method, cases[i].path, admin_key, cases[i].body);
        ck_assert_msg(r.status == cases[i].status, "%s %s: %ld %s", cases[i].method,
                      cases[i].path, r.status, r.body);
        ck_assert_str_eq(r.body, cases[i].reply);
        free(r.body);
    }
    /* None of them made a draft. */
    struct http_reply none = call("GET", "/v1/invoices?tenant=acme&period=2026-01", admin_key,
                                  NULL);
    ck_assert_str_eq(none.body, "{\"invoices\": []}");
    free(none.body);
    /* Building needs an admin key. */
    struct http_reply r = call("POST", "/v1/invoices", acme_key,
                               "{\"tenant\": \"acme\", \"period\": \"2026-01\"}");
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(r.body, "{\"error\":\"forbidden\",\"message\":\"this needs an admin key\"}");
    free(r.body);
    /* So does finalizing, even the tenant's own invoice. */
    r = call("POST", "/v1/invoices", admin_key, "{\"tenant\": \"acme\", \"period\": \"2026-01\"}");
    ck_assert_int_eq(r.status, 201);
    char *id_at = strstr(r.body, "\"invoice_id\": ");
    ck_assert_ptr_nonnull(id_at);
    char path[64];
    snprintf(path, sizeof path, "/v1/invoices/%ld/finalize", strtol(id_at + 14, NULL, 10));
    free(r.body);
    r = call("POST", path, acme_key, "");
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(r.body, "{\"error\":\"forbidden\",\"message\":\"this needs an admin key\"}");
    free(r.body);
    /* A body that is not JSON by its type is refused before it is read. */
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s/v1/invoices", base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin_key);
    const char *types[] = {"Content-Type: text/plain",
                           "Content-Type: application/json; charset=latin1"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *headers[] = {auth, types[i], NULL};
        r = http_call("POST", url, headers, "{\"tenant\": \"acme\", \"period\": \"2026-02\"}");
        ck_assert_int_eq(r.status, 415);
        ck_assert_str_eq(r.body, "{\"error\":\"unsupported_media_type\",\"message\":"
                                 "\"Content-Type must be application/json, in UTF-8\"}");
        free(r.body);
    }
}
END_TEST

/* An invoice stored in the earlier JSON shape is made over by schema 014: its subscription
 * and adjustments become lines, in order, and a document in the new shape stays as it is. */
/* A function of 10240 MB called three times holds a few MB an hour, yet usd-box (4096 MB)
 * cannot run one invocation of it: meterd reports it too small, unsized, and the best
 * server is big-box (16384 MB), dearer as it is. Named alone, usd-box leaves no server
 * and the verdict functions. */
START_TEST(compare_leaves_out_a_server_too_small)
{
    invocation_mb("globex", "g1", "render", 10240, "2026-09-10T10:00:02Z", 2000000);
    invocation_mb("globex", "g2", "render", 10240, "2026-09-10T10:00:12Z", 2000000);
    invocation_mb("globex", "g3", "thumb", 256, "2026-09-10T10:00:22Z", 2000000);
    struct http_reply r = call("GET", "/v1/compare?tenant=globex&period=2026-09", admin_key,
                               NULL);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    expect_member(r.body, "\"max_memory_mb\":10240,");
    expect_member(r.body, "{\"server\":\"usd-box\",\"name\":\"usd\",\"vcpus\":2,"
                          "\"memory_mb\":4096,\"fits\":false,\"reason\":\"too small: a "
                          "function is configured with 10240 MB\",\"count\":null,"
                          "\"unit_monthly_fee\":\"7.30\",\"monthly_fee\":null,"
                          "\"utilisation_percent\":null}");
    expect_member(r.body, "{\"server\":\"big-box\",\"name\":\"big\",\"vcpus\":2,"
                          "\"memory_mb\":16384,\"fits\":true,\"reason\":null,\"count\":1,"
                          "\"unit_monthly_fee\":\"73.00\",\"monthly_fee\":\"73.00\",");
    expect_member(r.body, "\"best_server\":\"big-box\",\"verdict\":\"functions\"");
    free(r.body);
    r = call("GET", "/v1/compare?tenant=globex&period=2026-09&server=usd-box", admin_key, NULL);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    expect_member(r.body, "\"fits\":false");
    expect_member(r.body, "\"best_server\":null,\"verdict\":\"functions\"");
    free(r.body);
}
END_TEST

START_TEST(stored_documents_take_the_lines_shape)
{
    PGconn *conn = testdb_connect(conninfo);
    static const char old_doc[] =
        "{\"plan\": \"p\", \"lines\": [{\"item\": \"Requests\", \"amount\": \"1.00\"}],"
        " \"subscription\": \"5.00\", \"adjustments\": ["
        "{\"item\": \"Adjustment for 2026-08 (invoice 2)\", \"period\": \"2026-08\","
        " \"invoice_id\": 2, \"amount\": \"-0.10\"},"
        "{\"item\": \"Adjustment for 2026-09 (invoice 3)\", \"period\": \"2026-09\","
        " \"invoice_id\": 3, \"amount\": \"0.11\"}], \"total\": \"6.01\"}";
    const char *params[] = {old_doc};
    char *made_over = testdb_value(conn, "SELECT invoice_document_lines($1::jsonb)::text", 1,
                                   params);
    char *want = testdb_value(
        conn,
        "SELECT '{\"plan\": \"p\", \"lines\": [{\"item\": \"Requests\", \"amount\": \"1.00\"},"
        " {\"item\": \"Subscription\", \"meter\": \"subscription\", \"quantity\": \"1\","
        " \"unit_price\": \"5.00\", \"amount\": \"5.00\"},"
        " {\"item\": \"Adjustment for 2026-08 (invoice 2)\", \"meter\": \"adjustment\","
        " \"quantity\": \"1\", \"unit_price\": \"-0.10\", \"amount\": \"-0.10\","
        " \"period\": \"2026-08\", \"invoice_id\": 2},"
        " {\"item\": \"Adjustment for 2026-09 (invoice 3)\", \"meter\": \"adjustment\","
        " \"quantity\": \"1\", \"unit_price\": \"0.11\", \"amount\": \"0.11\","
        " \"period\": \"2026-09\", \"invoice_id\": 3}], \"total\": \"6.01\"}'::jsonb::text",
        0, NULL);
    ck_assert_str_eq(made_over, want);
    const char *again[] = {made_over};
    char *twice = testdb_value(conn, "SELECT invoice_document_lines($1::jsonb)::text", 1, again);
    ck_assert_str_eq(twice, made_over);
    free(twice);
    free(want);
    free(made_over);
    PQfinish(conn);
}
END_TEST

Suite *suite_invoices(void)
{
    Suite *s = suite_create("invoices");
    TCase *tc = tcase_create("stored");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, late_usage_lands_on_the_next_invoice);
    tcase_add_test(tc, adjustments_keep_to_the_minor_unit_of_the_currency);
    tcase_add_test(tc, bad_invoice_requests);
    tcase_add_test(tc, compare_serves_the_same_bill);
    tcase_add_test(tc, compare_leaves_out_a_server_too_small);
    tcase_add_test(tc, stored_documents_take_the_lines_shape);
    suite_add_tcase(s, tc);
    return s;
}
