/*
 * meterd beyond ingestion, against a real PostgreSQL over real HTTP: usage queries, tenant
 * isolation and the key cache, /metrics (checked with promtool), connection limits, the
 * database going away and coming back (through a TCP proxy the test can cut), and a
 * graceful stop of the real binary.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/apikey.h"
#include "common/buf.h"
#include "common/timeutil.h"
#include "meter/http.h"
#include "tests/httpc.h"
#include "tests/proc.h"
#include "tests/suites.h"
#include "tests/testdb.h"

static char conninfo[1024];
static char admin_key[APIKEY_LEN + 1];
static char ingest_key[APIKEY_LEN + 1];
static char acme_key[APIKEY_LEN + 1];
static char globex_key[APIKEY_LEN + 1];

static struct meter_server *server;
static unsigned port;
static PGconn *db;

/* ---- set-up ---------------------------------------------------------------------------- */

/* Hourly usage rows, as ingestion would have left them (tenant, function, hour, memory_mb,
 * invocations, errors, cold_starts, duration_us, init_us, cpu_us). */
static const char usage_rows[] =
    "INSERT INTO usage_hourly (tenant, function, hour, memory_mb, invocations, errors,"
    " cold_starts, duration_us, init_us, cpu_us) VALUES"
    " ('acme', 'thumbnail', '2026-11-03T10:00:00Z', 256, 2, 1, 1, 400000, 50000, 3000),"
    " ('acme', 'thumbnail', '2026-11-03T10:00:00Z', 512, 1, 0, 0, 100001, 0, 7),"
    " ('acme', 'thumbnail', '2026-11-03T11:00:00Z', 256, 3, 0, 0, 3, 0, 1),"
    " ('acme', 'resize', '2026-11-04T23:00:00Z', 128, 1, 0, 1, 1000000, 20000, 500),"
    " ('acme', 'thumbnail', '2026-12-01T00:00:00Z', 1024, 1, 1, 0, 1, 0, 0),"
    " ('acme', 'thumbnail', '2026-10-31T23:00:00Z', 256, 1, 0, 0, 10, 0, 0),"
    " ('globex', 'thumbnail', '2026-11-03T10:00:00Z', 256, 9, 0, 0, 9, 0, 0),"
    " ('huge', 'f', '2026-11-03T10:00:00Z', 128, 1, 0, 0, 9007199254740992, 0, 0),"
    " ('unrated', 'f', '2026-11-03T10:00:00Z', 128, 1, 0, 0, 1000, 0, 0)";

/* What the plans bill of them, each invocation rounded (tenant, plan, hour, function,
 * invocations, billed_ms, mb_ms): acme's under its plan and under another, which its usage
 * must leave out. */
static const char rated_rows[] =
    "INSERT INTO usage_rated_hourly (tenant, plan, hour, function, invocations, billed_ms,"
    " mb_ms) VALUES"
    " ('acme', 'aws-lambda-x86', '2026-11-03T10:00:00Z', 'thumbnail', 3, 601, 153856),"
    " ('acme', 'aws-lambda-x86', '2026-11-03T11:00:00Z', 'thumbnail', 3, 3, 768),"
    " ('acme', 'aws-lambda-x86', '2026-11-04T23:00:00Z', 'resize', 1, 1000, 128000),"
    " ('acme', 'aws-lambda-x86', '2026-12-01T00:00:00Z', 'thumbnail', 1, 1, 1024),"
    " ('acme', 'aws-lambda-x86', '2026-10-31T23:00:00Z', 'thumbnail', 1, 10, 2560),"
    " ('acme', 'gcp-functions-gen2', '2026-11-03T10:00:00Z', 'thumbnail', 3, 900, 999999),"
    " ('globex', 'aws-lambda-x86', '2026-11-03T10:00:00Z', 'thumbnail', 9, 9, 2304)";

/* Once, in the runner: a fresh database, tenants, keys and hourly usage. */
static void suite_setup(void)
{
    testdb_create("faasmeter_test_meter_api", conninfo, sizeof conninfo);
    PGconn *conn = testdb_connect(conninfo);
    testdb_exec(conn, "INSERT INTO tenants (tenant) VALUES ('acme'), ('globex'), ('huge')");
    testdb_exec(conn, "INSERT INTO tenants (tenant, plan) VALUES ('unrated', 'not-registered')");
    testdb_add_key(conn, admin_key, "admin", NULL);
    testdb_add_key(conn, ingest_key, "ingest", NULL);
    testdb_add_key(conn, acme_key, "tenant", "acme");
    testdb_add_key(conn, globex_key, "tenant", "globex");
    testdb_exec(conn, usage_rows);
    testdb_exec(conn, rated_rows);
    PQfinish(conn);
}

static void test_config(struct meter_config *cfg)
{
    meter_config_defaults(cfg);
    cfg->port = 0;
    cfg->body_limit = 8u << 20;
    cfg->conninfo = conninfo;
}

static void serve(const struct meter_config *cfg)
{
    meter_server_stop(server);
    struct fm_err err;
    ck_assert_msg(meter_server_start(cfg, &server, &err) == 0, "%s", err.msg);
    port = meter_server_port(server);
}

static void test_setup(void)
{
    struct meter_config cfg;
    test_config(&cfg);
    serve(&cfg);
    db = testdb_connect(conninfo);
}

static void test_teardown(void)
{
    meter_server_stop(server);
    server = NULL;
    PQfinish(db);
    db = NULL;
}

/* ---- HTTP helpers ---------------------------------------------------------------------- */

static const char *url_of(const char *path_and_query)
{
    static char url[1024];
    ck_assert((size_t)snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port,
                               path_and_query) < sizeof url);
    return url;
}

/* GET a path with a key (NULL: none). */
static struct http_reply get(const char *key, const char *path)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {auth, NULL};
    return http_call("GET", url_of(path), key ? headers : NULL, NULL);
}

static struct http_reply post_records(const char *key, const char *body)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {auth, "Content-Type: application/x-ndjson", NULL};
    return http_call("POST", url_of("/v1/records"), headers, body);
}

static void expect(struct http_reply r, long status, const char *body)
{
    ck_assert_int_eq(r.status, status);
    ck_assert_str_eq(r.body, body);
    free(r.body);
}

static void expect_value(const char *sql, const char *param, const char *want)
{
    const char *params[] = {param};
    char *v = testdb_value(db, sql, param ? 1 : 0, params);
    ck_assert_str_eq(v, want);
    free(v);
}

/* ---- usage ----------------------------------------------------------------------------- */

#define NOTE                                                                                  \
    "\"note\":\"measured_gb_seconds is memory_mb x duration summed without rounding (GB = "   \
    "1024 MB); billed_gb_seconds rounds each invocation up to the steps of the tenant's plan, " \
    "as invoices do; both date an invocation by the hour it started in\""
#define PLAN "\"aws-lambda-x86\""
#define HEAD(tenant, window, from, to, function, plan)                                        \
    "{\"tenant\":\"" tenant "\",\"window\":\"" window "\",\"from\":\"" from "\",\"to\":\"" to \
    "\",\"function\":" function ",\"plan\":" plan "," NOTE ",\"usage\":["
#define ROW(from, to, fn, inv, err, cold, dur, dur_ms, init, cpu, cpu_ms, gbs, billed)        \
    "{\"from\":\"" from "\",\"to\":\"" to "\",\"function\":\"" fn "\",\"invocations\":" inv   \
    ",\"errors\":" err ",\"cold_starts\":" cold ",\"duration_us\":" dur                       \
    ",\"duration_ms\":\"" dur_ms "\",\"init_us\":" init ",\"cpu_us\":" cpu                    \
    ",\"cpu_ms\":\"" cpu_ms "\",\"measured_gb_seconds\":\"" gbs "\",\"billed_gb_seconds\":" billed "}"

START_TEST(usage_per_hour_day_and_month)
{
    /* Hours: 256 MB x 400000 us + 512 MB x 100001 us = 153600512 MB-us = 0.1500005 GB-s. */
    expect(get(acme_key, "/v1/usage?tenant=acme&from=2026-11-03T10:00:00Z"
                         "&to=2026-11-03T12:00:00Z&window=hour"),
           200,
           HEAD("acme", "hour", "2026-11-03T10:00:00Z", "2026-11-03T12:00:00Z", "null", PLAN)
           ROW("2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", "thumbnail", "3", "1", "1",
               "500001", "500.001", "50000", "3007", "3.007", "0.1500005", "\"0.15025\"") ","
           ROW("2026-11-03T11:00:00Z", "2026-11-03T12:00:00Z", "thumbnail", "3", "0", "0",
               "3", "0.003", "0", "1", "0.001", "0.00000075", "\"0.00075\"") "]}");
    /* Days by default; dates for from and to; the October and December rows stay out. */
    expect(get(acme_key, "/v1/usage?tenant=acme&from=2026-11-01&to=2026-12-01"), 200,
           HEAD("acme", "day", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "null", PLAN)
           ROW("2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z", "thumbnail", "6", "1", "1",
               "500004", "500.004", "50000", "3008", "3.008", "0.15000125", "\"0.151\"") ","
           ROW("2026-11-04T00:00:00Z", "2026-11-05T00:00:00Z", "resize", "1", "0", "1",
               "1000000", "1000", "20000", "500", "0.5", "0.125", "\"0.125\"") "]}");
    /* Months, cut to the range asked for at both ends. */
    expect(get(admin_key, "/v1/usage?tenant=acme&from=2026-11-03T11:00:00Z"
                          "&to=2026-12-01T01:00:00Z&window=month"),
           200,
           HEAD("acme", "month", "2026-11-03T11:00:00Z", "2026-12-01T01:00:00Z", "null", PLAN)
           ROW("2026-11-03T11:00:00Z", "2026-12-01T00:00:00Z", "resize", "1", "0", "1",
               "1000000", "1000", "20000", "500", "0.5", "0.125", "\"0.125\"") ","
           ROW("2026-11-03T11:00:00Z", "2026-12-01T00:00:00Z", "thumbnail", "3", "0", "0",
               "3", "0.003", "0", "1", "0.001", "0.00000075", "\"0.00075\"") ","
           ROW("2026-12-01T00:00:00Z", "2026-12-01T01:00:00Z", "thumbnail", "1", "1", "0",
               "1", "0.001", "0", "0", "0", "0.000001", "\"0.001\"") "]}");
    /* One function; a function without usage; to is exclusive. */
    expect(get(acme_key, "/v1/usage?tenant=acme&from=2026-11-01&to=2026-12-01&window=month"
                         "&function=resize"),
           200,
           HEAD("acme", "month", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "\"resize\"", PLAN)
           ROW("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "resize", "1", "0", "1",
               "1000000", "1000", "20000", "500", "0.5", "0.125", "\"0.125\"") "]}");
    expect(get(acme_key, "/v1/usage?tenant=acme&from=2026-11-01&to=2026-11-03T10:00:00Z"),
           200,
           HEAD("acme", "day", "2026-11-01T00:00:00Z", "2026-11-03T10:00:00Z", "null", PLAN) "]}");
    /* A plan that is not registered for rating bills nothing known: null, not zero. */
    expect(get(admin_key, "/v1/usage?tenant=unrated&from=2026-11-03&to=2026-11-04"), 200,
           HEAD("unrated", "day", "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z", "null",
                "\"not-registered\"")
           ROW("2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z", "f", "1", "0", "0", "1000",
               "1", "0", "0", "0", "0.000125", "null") "]}");
}
END_TEST

START_TEST(usage_of_ingested_records)
{
    expect(post_records(ingest_key,
                        "{\"id\":\"u1:stop\",\"type\":\"stop\",\"invocation_id\":\"u1\","
                        "\"tenant\":\"initech\",\"function\":\"ocr\","
                        "\"time\":\"2026-09-10T08:00:00.260Z\",\"memory_mb\":256,"
                        "\"cold_start\":true,\"duration_us\":260000,\"init_us\":0,"
                        "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1500,"
                        "\"cpu_sys_us\":500,\"max_rss_kb\":20480,\"bytes_in\":1,"
                        "\"bytes_out\":2}\n"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    expect(get(admin_key, "/v1/usage?tenant=initech&from=2026-09-01&to=2026-10-01"), 200,
           HEAD("initech", "day", "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", "null", PLAN)
           ROW("2026-09-10T00:00:00Z", "2026-09-11T00:00:00Z", "ocr", "1", "0", "1",
               "260000", "260", "0", "2000", "2", "0.065", "\"0.065\"") "]}");
    /* Its start, come later, dates it an hour earlier: the hour it left shows no row. */
    expect(post_records(ingest_key,
                        "{\"id\":\"u1:start\",\"type\":\"start\",\"invocation_id\":\"u1\","
                        "\"tenant\":\"initech\",\"function\":\"ocr\","
                        "\"time\":\"2026-09-10T07:59:59Z\",\"memory_mb\":256,"
                        "\"timeout_ms\":3000,\"cold_start\":true,\"trigger\":\"http\"}\n"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    expect(get(admin_key, "/v1/usage?tenant=initech&from=2026-09-10T07:00:00Z"
                          "&to=2026-09-10T09:00:00Z&window=hour"),
           200,
           HEAD("initech", "hour", "2026-09-10T07:00:00Z", "2026-09-10T09:00:00Z", "null", PLAN)
           ROW("2026-09-10T07:00:00Z", "2026-09-10T08:00:00Z", "ocr", "1", "0", "1",
               "260000", "260", "0", "2000", "2", "0.065", "\"0.065\"") "]}");
}
END_TEST

/* What from and to take; a date before 1970 was taken, and the year 0 failed as 503. */
#define WHEN_EXPECTED                                                                         \
    "expected an RFC 3339 UTC time from 1970 on, such as 2026-11-03T10:00:00Z, or a date "    \
    "YYYY-MM-DD"

START_TEST(usage_parameters_are_checked)
{
    static const struct {
        const char *query, *message;
    } cases[] = {
        {"from=2026-11-01&to=2026-12-01", "tenant: required"},
        {"tenant=Acme&from=2026-11-01&to=2026-12-01",
         "tenant: expected [a-z0-9][a-z0-9_-]{0,63}"},
        {"tenant=acme&to=2026-12-01", "from: required"},
        {"tenant=acme&from=yesterday&to=2026-12-01",
         "from: " WHEN_EXPECTED},
        {"tenant=acme&from=2026-02-29&to=2026-12-01",
         "from: " WHEN_EXPECTED},
        {"tenant=acme&from=2026-11-03T10:00:00%2B02:00&to=2026-12-01",
         "from: " WHEN_EXPECTED},
        {"tenant=acme&from=1969-12-31&to=2026-12-01", "from: " WHEN_EXPECTED},
        {"tenant=acme&from=0000-01-01&to=2026-12-01", "from: " WHEN_EXPECTED},
        {"tenant=acme&from=1969-12-31T00:00:00Z&to=2026-12-01", "from: " WHEN_EXPECTED},
        {"tenant=acme&from=2026-11-01&to=0000-01-01", "to: " WHEN_EXPECTED},
        {"tenant=acme&from=2026-11-03T10:30:00Z&to=2026-12-01",
         "from: expected a whole hour (usage is kept per hour)"},
        {"tenant=acme&from=2026-11-01", "to: required"},
        {"tenant=acme&from=2026-11-01&to=2026-11-01", "to: must be after from (to is exclusive)"},
        {"tenant=acme&from=2026-11-01&to=2026-12-01&window=week",
         "window: expected hour, day or month"},
        {"tenant=acme&from=2026-11-01&to=2026-12-01&function=-x",
         "function: expected [A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
        /* A zero byte would cut the value short: usage of f1 for "f1%00zz". */
        {"tenant=acme&from=2026-11-01&to=2026-12-01&function=f1%00zz",
         "function: may not contain a zero byte (%00)"},
        {"tenant=acme%00&from=2026-11-01&to=2026-12-01",
         "tenant: may not contain a zero byte (%00)"},
        /* An argument given twice would be read as its first. */
        {"tenant=acme&from=2026-11-01&to=2026-12-01&tenant=globex", "tenant: given twice"},
        {"tenant=acme&from=2026-11-01&to=2026-12-01&window=day&window=hour",
         "window: given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512], want[512];
        snprintf(path, sizeof path, "/v1/usage?%s", cases[i].query);
        snprintf(want, sizeof want, "{\"error\":\"bad_request\",\"message\":\"%s\"}",
                 cases[i].message);
        expect(get(admin_key, path), 400, want);
    }
    /* A sum that JSON cannot carry exactly is refused, not rounded. */
    expect(get(admin_key, "/v1/usage?tenant=huge&from=2026-11-03&to=2026-11-04"), 422,
           "{\"error\":\"unprocessable\",\"message\":\"a sum is too large for JSON; ask for "
           "smaller windows or a shorter range\"}");
}
END_TEST

/* ---- auth ------------------------------------------------------------------------------ */

#define ACME_NOV "/v1/usage?tenant=acme&from=2026-11-01&to=2026-11-02"
#define ACME_NOV_EMPTY                                                                        \
    HEAD("acme", "day", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "null", PLAN) "]}"

START_TEST(tenants_see_only_their_own_usage)
{
    /* Escapes in a query are decoded (%61 is a), but for %00. */
    expect(get(acme_key, "/v1/usage?tenant=%61cme&from=2026-11-01&to=2026-11-02"), 200,
           ACME_NOV_EMPTY);
    expect(get(NULL, ACME_NOV), 401,
           "{\"error\":\"unauthorized\",\"message\":\"an API key is required: Authorization: "
           "Bearer <key>\"}");
    expect(get(globex_key, ACME_NOV), 403,
           "{\"error\":\"forbidden\",\"message\":\"this key may not read tenant acme\"}");
    expect(get(ingest_key, ACME_NOV), 403,
           "{\"error\":\"forbidden\",\"message\":\"usage needs a tenant or admin key\"}");
    expect(get(acme_key, ACME_NOV), 200, ACME_NOV_EMPTY);
    /* A tenant key that names no tenant reads its own; an admin key must name one. */
    expect(get(acme_key, "/v1/usage?from=2026-11-01&to=2026-11-02"), 200, ACME_NOV_EMPTY);
    expect(get(admin_key, ACME_NOV), 200, ACME_NOV_EMPTY);
    expect(get(globex_key, "/v1/usage?tenant=globex&from=2026-11-03&to=2026-11-04"), 200,
           HEAD("globex", "day", "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z", "null", PLAN)
           ROW("2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z", "thumbnail", "9", "0", "0",
               "9", "0.009", "0", "0", "0", "0.00000225", "\"0.00225\"") "]}");
    /* A tenant key cannot send records either. */
    expect(post_records(acme_key, "\n"), 403,
           "{\"error\":\"forbidden\",\"message\":\"records need an ingest or admin key\"}");
}
END_TEST

static void key_revoke(const char *key)
{
    char id[APIKEY_ID_LEN + 1];
    ck_assert(apikey_id(key, id));
    expect_value("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 RETURNING key_id",
                 id, id);
}

START_TEST(revoked_keys_stop_working_after_the_cache_expires)
{
    struct meter_config cfg;
    test_config(&cfg);
    cfg.key_cache_ms = 400;
    serve(&cfg);
    char key[APIKEY_LEN + 1];
    testdb_add_key(db, key, "tenant", "acme");
    expect(get(key, ACME_NOV), 200, ACME_NOV_EMPTY);
    key_revoke(key);
    /* Within the TTL the cached key is still trusted: the database is not asked. */
    int64_t revoked_at = fm_mono_us();
    struct http_reply r = get(key, ACME_NOV);
    if (fm_mono_us() - revoked_at < 300000)
        ck_assert_int_eq(r.status, 200);
    free(r.body);
    nanosleep(&(struct timespec){.tv_nsec = 450 * 1000 * 1000}, NULL);
    for (int i = 0; i < 4; i++) /* on every worker thread */
        expect(get(key, ACME_NOV), 401,
               "{\"error\":\"unauthorized\",\"message\":\"the API key is not valid\"}");
    /* A wrong secret behind a cached id is refused without the database. */
    char wrong[APIKEY_LEN + 1];
    memcpy(wrong, acme_key, sizeof wrong);
    wrong[APIKEY_LEN - 1] = wrong[APIKEY_LEN - 1] == '0' ? '1' : '0';
    expect(get(acme_key, ACME_NOV), 200, ACME_NOV_EMPTY);
    expect(get(wrong, ACME_NOV), 401,
           "{\"error\":\"unauthorized\",\"message\":\"the API key is not valid\"}");
}
END_TEST

START_TEST(unknown_keys_are_not_cached)
{
    char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
    ck_assert_int_eq(apikey_generate(key), 0);
    ck_assert(apikey_id(key, id));
    expect(get(key, ACME_NOV), 401,
           "{\"error\":\"unauthorized\",\"message\":\"the API key is not valid\"}");
    const char *params[] = {id, key};
    free(testdb_value(db,
                      "INSERT INTO api_keys (key_id, key_hash, role, tenant) VALUES"
                      " ($1, sha256(convert_to($2, 'UTF8')), 'admin', NULL) RETURNING key_id",
                      2, params));
    expect(get(key, ACME_NOV), 200, ACME_NOV_EMPTY);
}
END_TEST

/* ---- metrics --------------------------------------------------------------------------- */

static void expect_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    ck_assert_msg(strstr(text, want) != NULL, "no line '%s' in:\n%s", line, text);
}

/* promtool's verdict on an exposition: "" when it is well-formed and lint-clean. */
static void expect_promtool_clean(const char *exposition)
{
    static const char promtool[] = "/usr/bin/promtool";
    ck_assert_msg(access(promtool, X_OK) == 0,
                  "promtool is missing: install Debian's prometheus package (make deps)");
    char *argv[] = {(char *)promtool, "check", "metrics", NULL};
    struct proc_result r = proc_run(argv, exposition, 30);
    ck_assert_msg(r.status == 0, "promtool: %s%s", r.out, r.err);
    ck_assert_str_eq(r.out, "");
    free(r.out);
    free(r.err);
}

/* A counter's value in an exposition. */
static long long metric_value(const char *exposition, const char *name)
{
    char line[128];
    snprintf(line, sizeof line, "\n%s ", name);
    const char *at = strstr(exposition, line);
    ck_assert_msg(at != NULL, "no %s in:\n%s", name, exposition);
    return strtoll(at + strlen(line), NULL, 10);
}

/* The fold's figures: deltas folded, failures, and when a fold last left nothing pending
 * (for an alert on a fold that stopped). The test server has no background fold: reads
 * fold, so the counts move exactly, from what earlier tests left pending. */
START_TEST(metrics_follow_the_fold)
{
    struct http_reply r = get(admin_key, "/v1/usage?tenant=globex&from=2026-07-01&to=2026-08-01");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = get(NULL, "/metrics");
    long long folded = metric_value(r.body, "faasmeter_usage_folded_deltas_total");
    ck_assert_int_eq(metric_value(r.body, "faasmeter_usage_fold_failures_total"), 0);
    free(r.body);

    time_t before = time(NULL);
    expect(post_records(ingest_key,
                        "{\"id\":\"mf1:stop\",\"type\":\"stop\",\"invocation_id\":\"mf1\","
                        "\"tenant\":\"globex\",\"function\":\"f\","
                        "\"time\":\"2026-07-10T08:00:00Z\",\"memory_mb\":128,"
                        "\"cold_start\":false,\"duration_us\":1000,\"init_us\":0,"
                        "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,"
                        "\"cpu_sys_us\":1,\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1}\n"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    r = get(admin_key, "/v1/usage?tenant=globex&from=2026-07-01&to=2026-08-01");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = get(NULL, "/metrics");
    ck_assert_int_eq(metric_value(r.body, "faasmeter_usage_folded_deltas_total"), folded + 1);
    ck_assert_int_eq(metric_value(r.body, "faasmeter_usage_fold_failures_total"), 0);
    long long last = metric_value(r.body, "faasmeter_usage_last_fold_timestamp_seconds");
    ck_assert_int_ge(last, (long long)before);
    ck_assert_int_le(last, (long long)time(NULL));
    expect_promtool_clean(r.body);
    free(r.body);

    /* A delta that no plan can rate stops the fold: the read is refused, and counted. */
    testdb_exec(db, "INSERT INTO usage_delta VALUES ('globex', 'f', '2026-07-10T09:00:00Z', 1,"
                    " 128, true, false, -1, 0, 1, 2, 1, 1)");
    r = get(admin_key, "/v1/usage?tenant=globex&from=2026-07-01&to=2026-08-01");
    long status = r.status;
    free(r.body);
    r = get(NULL, "/metrics");
    testdb_exec(db, "DELETE FROM usage_delta WHERE tenant = 'globex' AND duration_us = -1");
    ck_assert_int_eq(status, 503);
    ck_assert_int_eq(metric_value(r.body, "faasmeter_usage_folded_deltas_total"), folded + 1);
    ck_assert_int_eq(metric_value(r.body, "faasmeter_usage_fold_failures_total"), 1);
    free(r.body);
}
END_TEST

START_TEST(metrics_count_records_requests_and_batches)
{
    const char *one = "{\"id\":\"m1:start\",\"type\":\"start\",\"invocation_id\":\"m1\","
                      "\"tenant\":\"acme\",\"function\":\"f\",\"time\":\"2026-08-01T10:00:00Z\","
                      "\"memory_mb\":128,\"timeout_ms\":1000,\"cold_start\":false,"
                      "\"trigger\":\"cli\"}\n";
    char batch[2048];
    snprintf(batch, sizeof batch, "%s%s{\"type\":\"stop\"}\n", one, one);
    expect(post_records(ingest_key, batch), 200,
           "{\"accepted\":1,\"duplicates\":1,\"rejected\":[{\"index\":2,\"error\":\"id: "
           "missing (required in a stop record)\"}]}");
    expect(post_records(ingest_key, one), 200,
           "{\"accepted\":0,\"duplicates\":1,\"rejected\":[]}");
    expect(get(NULL, "/nope"), 404, "{\"error\":\"not_found\",\"message\":\"no such endpoint\"}");
    struct http_reply r = get(NULL, "/metrics");
    ck_assert_int_eq(r.status, 200);
    expect_line(r.body, "faasmeter_records_accepted_total 1");
    expect_line(r.body, "faasmeter_records_duplicates_total 2");
    expect_line(r.body, "faasmeter_records_rejected_total 1");
    expect_line(r.body, "faasmeter_database_errors_total 0");
    expect_line(r.body, "faasmeter_store_retries_total 0");
    /* The repeat inside the batch and the stored one both sent their batch to the staged
     * path. */
    expect_line(r.body, "faasmeter_records_direct_total 0");
    expect_line(r.body,
                "faasmeter_http_requests_total{endpoint=\"POST /v1/records\",code=\"2xx\"} 2");
    expect_line(r.body, "faasmeter_http_requests_total{endpoint=\"unmatched\",code=\"4xx\"} 1");
    expect_line(r.body, "faasmeter_http_request_duration_seconds_bucket{endpoint=\"POST "
                        "/v1/records\",le=\"+Inf\"} 2");
    expect_line(r.body,
                "faasmeter_http_request_duration_seconds_count{endpoint=\"POST /v1/records\"} 2");
    expect_line(r.body, "faasmeter_batch_records_bucket{le=\"1\"} 1");
    expect_line(r.body, "faasmeter_batch_records_bucket{le=\"2\"} 1");
    expect_line(r.body, "faasmeter_batch_records_bucket{le=\"5\"} 2");
    expect_line(r.body, "faasmeter_batch_records_sum 4");
    expect_line(r.body, "faasmeter_batch_records_count 2");
    /* Bounds are whole microseconds printed as decimal seconds. */
    ck_assert_ptr_nonnull(strstr(r.body, ",le=\"0.00025\"} "));
    ck_assert_ptr_nonnull(strstr(r.body, ",le=\"2.5\"} "));
    const char *rss = strstr(r.body, "\nprocess_resident_memory_bytes ");
    ck_assert_ptr_nonnull(rss);
    long long bytes = strtoll(rss + strlen("\nprocess_resident_memory_bytes "), NULL, 10);
    ck_assert_int_gt(bytes, 1 << 20);
    ck_assert_int_lt(bytes, 1ll << 40);
    expect_promtool_clean(r.body);
    free(r.body);
    /* The scrape itself was counted, after it was answered. */
    r = get(NULL, "/metrics");
    expect_line(r.body, "faasmeter_http_requests_total{endpoint=\"GET /metrics\",code=\"2xx\"} 1");
    free(r.body);
}
END_TEST

/* ---- connection limits ----------------------------------------------------------------- */

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* What the server does with fd within timeout_ms: 1 closed it, 0 kept it open; data it
 * sends is read into buf (n bytes, NUL-terminated) when buf is given. */
static int wait_closed(int fd, int timeout_ms, char *buf, size_t n)
{
    int64_t deadline = fm_mono_us() + (int64_t)timeout_ms * 1000;
    size_t got = 0;
    for (;;) {
        int64_t left = (deadline - fm_mono_us()) / 1000;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) == 0)
            return 0;
        char scratch[512];
        char *into = buf ? buf + got : scratch;
        size_t room = buf ? n - 1 - got : sizeof scratch;
        ssize_t r = recv(fd, into, room, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
        ck_assert_int_gt(r, 0);
        if (buf) {
            got += (size_t)r;
            buf[got] = '\0';
            if (strstr(buf, "\r\n\r\n") && strstr(buf, "\"ok\"}"))
                return 0;
            ck_assert(got < n - 1);
        }
    }
}

/* A keep-alive GET /healthz on fd, answered 200, leaving fd open. */
static void healthz_on(int fd)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    char buf[1024];
    ck_assert_int_eq(wait_closed(fd, 5000, buf, sizeof buf), 0);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
}

START_TEST(one_address_gets_at_most_per_ip_connections)
{
    struct meter_config cfg;
    test_config(&cfg);
    cfg.per_ip_limit = 2;
    serve(&cfg);
    int a = tcp_connect(), b = tcp_connect();
    healthz_on(a);
    healthz_on(b);
    int c = tcp_connect(); /* the kernel completes it; meterd closes it at once */
    ck_assert_int_eq(wait_closed(c, 5000, NULL, 0), 1);
    close(c);
    healthz_on(a);
    /* Once one closes, another may connect. */
    close(b);
    nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
    int d = tcp_connect();
    healthz_on(d);
    close(a);
    close(d);
}
END_TEST

START_TEST(idle_connections_are_closed_after_the_timeout)
{
    struct meter_config cfg;
    test_config(&cfg);
    cfg.timeout_s = 1;
    serve(&cfg);
    int fd = tcp_connect();
    healthz_on(fd);
    int64_t idle_from = fm_mono_us();
    ck_assert_int_eq(wait_closed(fd, 5000, NULL, 0), 1);
    int64_t idle_ms = (fm_mono_us() - idle_from) / 1000;
    ck_assert_msg(idle_ms >= 900 && idle_ms < 4000, "closed after %lld ms", (long long)idle_ms);
    close(fd);
}
END_TEST

/* A body meterd would not read as its sender meant is refused before it is read; a 401
 * says how to authenticate. */
START_TEST(ambiguous_or_compressed_bodies_are_refused)
{
    struct meter_config cfg;
    test_config(&cfg);
    serve(&cfg);
    static const struct {
        const char *headers, *status, *body;
    } cases[] = {
        {"Content-Length: 2\r\nContent-Length: 5\r\n", "HTTP/1.1 400 ",
         "{\"error\":\"bad_request\",\"message\":\"Content-Length: given twice with "
         "different values\"}"},
        {"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1 400 ",
         "{\"error\":\"bad_request\",\"message\":\"Content-Length and Transfer-Encoding: only "
         "one may frame the body\"}"},
        {"Content-Length: 2\r\nContent-Encoding: gzip\r\n", "HTTP/1.1 415 ",
         "{\"error\":\"unsupported_media_type\",\"message\":\"Content-Encoding: only "
         "identity is taken, got 'gzip'\"}"},
        /* The same length twice says nothing new. */
        {"Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n", "HTTP/1.1 200 ",
         "{\"accepted\":0,\"duplicates\":0,\"rejected\":[]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[1024], buf[2048];
        snprintf(req, sizeof req,
                 "POST /v1/records HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\n%s\r\n[]",
                 ingest_key, cases[i].headers);
        int fd = tcp_connect();
        ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        buf[0] = '\0';
        wait_closed(fd, 5000, buf, sizeof buf);
        close(fd);
        ck_assert_msg(strncmp(buf, cases[i].status, strlen(cases[i].status)) == 0, "%s", buf);
        ck_assert_msg(strstr(buf, "\r\nConnection: close\r\n") != NULL, "%s", buf);
        const char *body = strstr(buf, "\r\n\r\n");
        ck_assert_ptr_nonnull(body);
        ck_assert_str_eq(body + 4, cases[i].body);
    }
    static const char no_key[] = "GET " ACME_NOV " HTTP/1.1\r\nHost: test\r\n"
                                 "Connection: close\r\n\r\n";
    int fd = tcp_connect();
    ck_assert_int_eq(send(fd, no_key, sizeof no_key - 1, MSG_NOSIGNAL), (ssize_t)sizeof no_key - 1);
    char buf[2048] = "";
    wait_closed(fd, 5000, buf, sizeof buf);
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 401 ", 13) == 0, "%s", buf);
    ck_assert_msg(strstr(buf, "\r\nWWW-Authenticate: Bearer\r\n") != NULL, "%s", buf);
}
END_TEST

/* ---- a TCP proxy between meterd and PostgreSQL, that the test can cut ------------------ */

#define PROXY_LINKS 64

/* One proxied connection: fds[0] to meterd, fds[1] to PostgreSQL, a pump thread each way.
 * The last pump to finish closes both and frees the slot. */
struct proxy_link {
    int fds[2];
    int pumps; /* running; guarded by the proxy's lock */
};

struct proxy {
    int listen_fd;
    unsigned port;
    struct sockaddr_storage target;
    socklen_t target_len;
    pthread_t acceptor;
    pthread_mutex_t lock;
    bool up;   /* false: connections are cut and new ones refused */
    bool quit;
    struct proxy_link links[PROXY_LINKS];
    atomic_uint_fast64_t to_server; /* bytes forwarded to PostgreSQL */
};

struct pump {
    struct proxy *p;
    struct proxy_link *link;
    int from, to;
    bool to_server;
};

static void *pump_run(void *arg)
{
    struct pump *pm = arg;
    char buf[65536];
    for (;;) {
        ssize_t n = read(pm->from, buf, sizeof buf);
        if (n <= 0)
            break;
        if (pm->to_server)
            atomic_fetch_add(&pm->p->to_server, (uint64_t)n);
        ssize_t done = 0;
        while (done < n) {
            ssize_t w = send(pm->to, buf + done, (size_t)(n - done), MSG_NOSIGNAL);
            if (w <= 0)
                goto out;
            done += w;
        }
    }
out:
    /* Either side ending ends the whole connection, as a real server's exit would. */
    pthread_mutex_lock(&pm->p->lock);
    shutdown(pm->link->fds[0], SHUT_RDWR);
    shutdown(pm->link->fds[1], SHUT_RDWR);
    if (--pm->link->pumps == 0) {
        close(pm->link->fds[0]);
        close(pm->link->fds[1]);
        pm->link->fds[0] = pm->link->fds[1] = -1;
    }
    pthread_mutex_unlock(&pm->p->lock);
    free(pm);
    return NULL;
}

static void pump_start(struct proxy *p, struct proxy_link *link, int from, int to,
                       bool to_server)
{
    struct pump *pm = malloc(sizeof *pm);
    ck_assert_ptr_nonnull(pm);
    *pm = (struct pump){p, link, from, to, to_server};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, pump_run, pm), 0);
    pthread_detach(t);
}

static void proxy_link_add(struct proxy *p, int client)
{
    int server_fd = socket(p->target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (server_fd < 0 || connect(server_fd, (struct sockaddr *)&p->target, p->target_len) != 0) {
        if (server_fd >= 0)
            close(server_fd);
        close(client);
        return;
    }
    pthread_mutex_lock(&p->lock);
    struct proxy_link *link = NULL;
    for (size_t i = 0; i < PROXY_LINKS && link == NULL; i++)
        if (p->links[i].pumps == 0 && p->links[i].fds[0] < 0)
            link = &p->links[i];
    if (link == NULL || !p->up) {
        pthread_mutex_unlock(&p->lock);
        close(server_fd);
        close(client);
        return;
    }
    *link = (struct proxy_link){{client, server_fd}, 2};
    pump_start(p, link, client, server_fd, true);
    pump_start(p, link, server_fd, client, false);
    pthread_mutex_unlock(&p->lock);
}

static void *proxy_accept_run(void *arg)
{
    struct proxy *p = arg;
    for (;;) {
        int client = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        pthread_mutex_lock(&p->lock);
        bool quit = p->quit, up = p->up;
        pthread_mutex_unlock(&p->lock);
        if (quit) {
            if (client >= 0)
                close(client);
            return NULL;
        }
        if (client < 0)
            continue;
        if (!up)
            close(client); /* a server that is down: the connection ends at once */
        else
            proxy_link_add(p, client);
    }
}

/* The real server's address from the conninfo (TCP host or Unix socket folder). */
static void proxy_target(struct proxy *p, const char *base)
{
    PQconninfoOption *opts = PQconninfoParse(base, NULL);
    ck_assert_ptr_nonnull(opts);
    const char *host = NULL, *pgport = "5432";
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && (strcmp(o->keyword, "hostaddr") == 0 ||
                       (strcmp(o->keyword, "host") == 0 && host == NULL)))
            host = o->val;
        if (o->val && strcmp(o->keyword, "port") == 0)
            pgport = o->val;
    }
    if (host == NULL || host[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)&p->target;
        un->sun_family = AF_UNIX;
        ck_assert((size_t)snprintf(un->sun_path, sizeof un->sun_path, "%s/.s.PGSQL.%s",
                                   host ? host : "/var/run/postgresql",
                                   pgport) < sizeof un->sun_path);
        p->target_len = sizeof *un;
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        ck_assert_int_eq(getaddrinfo(host, pgport, &hints, &ai), 0);
        memcpy(&p->target, ai->ai_addr, ai->ai_addrlen);
        p->target_len = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    PQconninfoFree(opts);
}

/* Start a proxy to the server of conninfo `base`; through[] receives a conninfo that goes
 * through the proxy instead. */
static void proxy_start(struct proxy *p, const char *base, char *through, size_t n)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < PROXY_LINKS; i++)
        p->links[i].fds[0] = p->links[i].fds[1] = -1;
    pthread_mutex_init(&p->lock, NULL);
    p->up = true;
    proxy_target(p, base);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert(p->listen_fd >= 0 && bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              listen(p->listen_fd, 64) == 0 &&
              getsockname(p->listen_fd, (struct sockaddr *)&a, &len) == 0);
    p->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&p->acceptor, NULL, proxy_accept_run, p), 0);

    /* In a keyword=value conninfo the last setting of a keyword wins. */
    ck_assert((size_t)snprintf(through, n, "%s host=127.0.0.1 hostaddr=127.0.0.1 port=%u",
                               base, p->port) < n);
}

/* Bring the database "down" (cut every proxied connection, refuse new ones) or back up. */
static void proxy_set_up(struct proxy *p, bool up)
{
    pthread_mutex_lock(&p->lock);
    p->up = up;
    if (!up)
        for (size_t i = 0; i < PROXY_LINKS; i++)
            if (p->links[i].pumps > 0) {
                shutdown(p->links[i].fds[0], SHUT_RDWR);
                shutdown(p->links[i].fds[1], SHUT_RDWR);
            }
    pthread_mutex_unlock(&p->lock);
}

static void proxy_stop(struct proxy *p)
{
    proxy_set_up(p, false);
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_mutex_unlock(&p->lock);
    shutdown(p->listen_fd, SHUT_RDWR); /* wakes the acceptor */
    pthread_join(p->acceptor, NULL);
    close(p->listen_fd);
    for (int waited = 0; waited < 500; waited++) {
        pthread_mutex_lock(&p->lock);
        int running = 0;
        for (size_t i = 0; i < PROXY_LINKS; i++)
            running += p->links[i].pumps;
        pthread_mutex_unlock(&p->lock);
        if (running == 0)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
}

/* Wait until the proxy has forwarded more than `beyond` bytes to the server. */
static void proxy_wait_bytes(struct proxy *p, uint64_t beyond)
{
    int64_t deadline = fm_mono_us() + 30 * 1000000;
    while (atomic_load(&p->to_server) <= beyond) {
        ck_assert_msg(fm_mono_us() < deadline, "nothing reached the database");
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    }
}

/* ---- the database going away ----------------------------------------------------------- */

static struct proxy proxy;
static char via_proxy[1200];

static void proxied_setup(void)
{
    proxy_start(&proxy, conninfo, via_proxy, sizeof via_proxy);
    struct meter_config cfg;
    test_config(&cfg);
    cfg.conninfo = via_proxy;
    serve(&cfg);
    db = testdb_connect(conninfo);
}

static void proxied_teardown(void)
{
    test_teardown();
    proxy_stop(&proxy);
}

/* n stop records of invocations "<prefix>-<i>" as NDJSON (caller frees). */
static char *stops(const char *prefix, int n)
{
    struct fm_buf b;
    fm_buf_init(&b, 8u << 20);
    for (int i = 0; i < n; i++)
        fm_buf_printf(&b,
                      "{\"id\":\"%s-%d:stop\",\"type\":\"stop\",\"invocation_id\":\"%s-%d\","
                      "\"tenant\":\"acme\",\"function\":\"batch\","
                      "\"time\":\"2026-07-01T10:00:00.5Z\",\"memory_mb\":128,"
                      "\"cold_start\":false,\"duration_us\":%d,\"init_us\":0,"
                      "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,\"cpu_sys_us\":1,"
                      "\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1}\n",
                      prefix, i, prefix, i, 1000 + i);
    char *s = fm_buf_steal(&b);
    ck_assert_ptr_nonnull(s);
    return s;
}

static const char *stored_count(const char *prefix)
{
    static char count[32];
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%s-%%", prefix);
    const char *params[] = {pattern};
    char *v = testdb_value(db, "SELECT count(*) FROM records WHERE invocation_id LIKE $1", 1,
                           params);
    snprintf(count, sizeof count, "%s", v);
    free(v);
    return count;
}

#define UNAVAILABLE(msg) "{\"error\":\"unavailable\",\"message\":\"" msg "\"}"

/* Until a session of the test database waits for a lock. */
static void wait_for_lock_waiter(void)
{
    int64_t deadline = fm_mono_us() + 30 * 1000000;
    for (;;) {
        char *waiting = testdb_value(db, "SELECT count(*) FROM pg_stat_activity"
                                         " WHERE datname = current_database()"
                                         " AND wait_event_type = 'Lock'",
                                     0, NULL);
        bool blocked = strcmp(waiting, "0") != 0;
        free(waiting);
        if (blocked)
            return;
        ck_assert_msg(fm_mono_us() < deadline, "nothing reached the lock");
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    }
}

/* A GET made on its own thread (url and auth made before it starts). */
struct background_get {
    pthread_t thread;
    char url[1024], auth[128];
    struct http_reply reply;
};

static void *background_get_run(void *arg)
{
    struct background_get *bg = arg;
    const char *headers[] = {bg->auth, NULL};
    bg->reply = http_call("GET", bg->url, headers, NULL);
    return NULL;
}

/* A request that waits on the database does so on a thread of its own: records sent
 * meanwhile are stored and answered, even when one thread polls every connection. */
START_TEST(a_slow_report_does_not_hold_up_records)
{
    struct meter_config cfg;
    test_config(&cfg);
    cfg.threads = 1;
    serve(&cfg);
    PGconn *locker = testdb_connect(conninfo);
    testdb_exec(locker, "BEGIN");
    testdb_exec(locker, "LOCK TABLE usage_hourly IN ACCESS EXCLUSIVE MODE");
    const char *path = "/v1/usage?tenant=globex&from=2026-11-01&to=2026-12-01";
    struct background_get bg;
    snprintf(bg.url, sizeof bg.url, "%s", url_of(path));
    snprintf(bg.auth, sizeof bg.auth, "Authorization: Bearer %s", admin_key);
    ck_assert_int_eq(pthread_create(&bg.thread, NULL, background_get_run, &bg), 0);
    wait_for_lock_waiter();
    char *batch = stops("meanwhile", 3);
    expect(post_records(ingest_key, batch), 200, "{\"accepted\":3,\"duplicates\":0,\"rejected\":[]}");
    expect(get(NULL, "/healthz"), 200, "{\"status\":\"ok\",\"database\":\"ok\"}");
    testdb_exec(locker, "ROLLBACK");
    PQfinish(locker);
    pthread_join(bg.thread, NULL);
    struct http_reply again = get(admin_key, path);
    ck_assert_int_eq(again.status, 200);
    expect(bg.reply, 200, again.body);
    free(again.body);
    free(batch);
}
END_TEST

START_TEST(database_down_gives_503_and_recovery_stores_once)
{
    /* With the catalog, so that invoices and comparisons are served too. */
    struct bill_catalog *catalog = NULL;
    struct fm_err err;
    ck_assert_msg(bill_catalog_load(NULL, &catalog, &err) == BILL_OK, "%s", err.msg);
    struct meter_config cfg;
    test_config(&cfg);
    cfg.conninfo = via_proxy;
    cfg.catalog = catalog;
    serve(&cfg);
    char *warm = stops("warm", 1), *batch = stops("down", 3);
    expect(post_records(ingest_key, warm), 200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    /* Every key in the cache, so that what is refused below is the database's doing. */
    expect(get(admin_key, "/v1/invoices?tenant=acme"), 200, "{\"invoices\": []}");
    proxy_set_up(&proxy, false);
    static const char *const reads[] = {
        "/v1/usage?tenant=acme&from=2026-11-01&to=2026-12-01",
        "/v1/invoices?tenant=acme",
        "/v1/invoices/1",
        "/v1/compare?tenant=acme&period=2026-11",
    };
    for (int i = 0; i < 3; i++) { /* whichever worker thread answers */
        expect(post_records(ingest_key, batch), 503,
               UNAVAILABLE("the database is unavailable; retry later"));
        expect(get(NULL, "/healthz"), 503,
               UNAVAILABLE("the database is unavailable; retry later"));
        for (size_t k = 0; k < sizeof reads / sizeof reads[0]; k++) {
            struct http_reply r = get(admin_key, reads[k]);
            ck_assert_msg(r.status == 503, "%s: %ld %s", reads[k], r.status, r.body);
            expect(r, 503, UNAVAILABLE("the database is unavailable; retry later"));
        }
    }
    ck_assert_str_eq(stored_count("down"), "0");
    proxy_set_up(&proxy, true);
    for (int i = 0; i < 3; i++)
        expect(get(NULL, "/healthz"), 200, "{\"status\":\"ok\",\"database\":\"ok\"}");
    expect(post_records(ingest_key, batch), 200, "{\"accepted\":3,\"duplicates\":0,\"rejected\":[]}");
    expect(post_records(ingest_key, batch), 200, "{\"accepted\":0,\"duplicates\":3,\"rejected\":[]}");
    ck_assert_str_eq(stored_count("down"), "3");
    struct http_reply r = get(NULL, "/metrics");
    ck_assert_ptr_null(strstr(r.body, "\nfaasmeter_database_errors_total 0\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "\nfaasmeter_database_errors_total "));
    free(r.body);
    free(warm);
    free(batch);
    meter_server_stop(server); /* before the catalog it borrows */
    server = NULL;
    bill_catalog_free(catalog);
}
END_TEST

/* The database closed meterd's idle connections (a restart): the next request is stored on
 * new ones at its first try, not refused with 503. */
START_TEST(connections_closed_by_the_server_are_made_anew_at_once)
{
    struct meter_config cfg;
    test_config(&cfg);
    serve(&cfg);
    /* Requests in turn, so that each writer has its connection (whichever takes them). */
    for (int i = 0; i < 4; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "open-%d", i);
        char *batch = stops(prefix, 2);
        expect(post_records(ingest_key, batch), 200,
               "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
        free(batch);
    }
    free(testdb_value(db,
                      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()",
                      0, NULL));
    /* Until they are gone. */
    for (int i = 0; i < 500; i++) {
        char *left = testdb_value(db,
                                  "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                  " current_database() AND pid <> pg_backend_pid()",
                                  0, NULL);
        bool gone = strcmp(left, "0") == 0;
        free(left);
        if (gone)
            break;
        usleep(10 * 1000);
    }
    for (int i = 0; i < 4; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "closed-%d", i);
        char *batch = stops(prefix, 2);
        expect(post_records(ingest_key, batch), 200,
               "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
        ck_assert_str_eq(stored_count(prefix), "2");
        free(batch);
    }
}
END_TEST

/* A POST made on its own thread, so that the test can act while it is in flight. */
struct background_post {
    pthread_t thread;
    const char *url, *key, *body;
    long status;
    CURLcode rc;
    struct fm_buf reply;
};

static size_t background_collect(char *p, size_t size, size_t n, void *userdata)
{
    return fm_buf_append(userdata, p, size * n) == 0 ? size * n : 0;
}

static void *background_run(void *arg)
{
    struct background_post *bp = arg;
    CURL *curl = curl_easy_init();
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", bp->key);
    struct curl_slist *headers = curl_slist_append(NULL, auth);
    headers = curl_slist_append(headers, "Content-Type: application/x-ndjson");
    curl_easy_setopt(curl, CURLOPT_URL, bp->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, bp->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(bp->body));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, background_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &bp->reply);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 100L);
    bp->rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &bp->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return NULL;
}

static void background_start(struct background_post *bp, const char *url, const char *key,
                             const char *body)
{
    *bp = (struct background_post){.url = url, .key = key, .body = body};
    fm_buf_init(&bp->reply, 1u << 20);
    ck_assert_int_eq(pthread_create(&bp->thread, NULL, background_run, bp), 0);
}

/* Wait for the POST; its reply body (caller frees) in *body. */
static long background_finish(struct background_post *bp, char **body)
{
    pthread_join(bp->thread, NULL);
    ck_assert_msg(bp->rc == CURLE_OK, "POST: %s", curl_easy_strerror(bp->rc));
    *body = fm_buf_steal(&bp->reply);
    ck_assert_ptr_nonnull(*body);
    return bp->status;
}

/* The invocations whose ids match like, each as "id <columns>", joined by ';'. */
static void expect_invocations(const char *columns, const char *like, const char *want)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(concat_ws(' ', invocation_id, %s), ';' ORDER BY invocation_id)"
             " FROM invocations WHERE invocation_id LIKE $1",
             columns);
    const char *params[] = {like};
    char *rows = testdb_value(db, sql, 1, params);
    ck_assert_str_eq(rows, want);
    free(rows);
}

/* End the other transaction, then the batch must be answered 200 with both its records. */
static void release_then_expect_both(PGconn *other, struct background_post *bp)
{
    testdb_exec(other, "ROLLBACK");
    PQfinish(other);
    char *reply;
    ck_assert_int_eq(background_finish(bp, &reply), 200);
    ck_assert_str_eq(reply, "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    free(reply);
}

/*
 * A batch stores its stops of stored invocations together, and the rest record by record,
 * taking its locks in key order either way. Here the batch holds a sample of invocation
 * lk-a1, which another transaction is creating, and the stop of stored invocation lk-b1.
 * While the batch waits for lk-a1, that transaction locks lk-b1: the batch must not hold it
 * yet, or the two deadlock and one of them fails.
 */
START_TEST(a_batch_waiting_for_an_invocation_holds_none_after_it)
{
    expect(post_records(ingest_key,
                        "{\"id\":\"lk-b1:start\",\"type\":\"start\",\"invocation_id\":\"lk-b1\","
                        "\"tenant\":\"acme\",\"function\":\"locks\","
                        "\"time\":\"2026-07-01T10:00:00Z\",\"memory_mb\":128,"
                        "\"timeout_ms\":1000,\"cold_start\":false,\"trigger\":\"http\"}\n"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    PGconn *other = testdb_connect(conninfo);
    testdb_exec(other, "BEGIN");
    testdb_exec(other, "INSERT INTO invocation_ids (tenant, invocation_id, started_at)"
                       " VALUES ('acme', 'lk-a1', '2026-07-01T10:00:00Z')");
    const char *batch =
        "{\"id\":\"lk-a1:r0\",\"type\":\"resource\",\"invocation_id\":\"lk-a1\","
        "\"tenant\":\"acme\",\"function\":\"locks\",\"time\":\"2026-07-01T10:00:00.1Z\","
        "\"cpu_user_us\":5,\"cpu_sys_us\":5,\"max_rss_kb\":5}\n"
        "{\"id\":\"lk-b1:stop\",\"type\":\"stop\",\"invocation_id\":\"lk-b1\","
        "\"tenant\":\"acme\",\"function\":\"locks\",\"time\":\"2026-07-01T10:00:00.5Z\","
        "\"memory_mb\":128,\"cold_start\":false,\"duration_us\":500000,\"init_us\":0,"
        "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,\"cpu_sys_us\":1,"
        "\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1}\n";
    struct background_post bp;
    background_start(&bp, url_of("/v1/records"), ingest_key, batch);
    wait_for_lock_waiter(); /* the batch, on lk-a1 */
    /* As invocation_apply and close_orphans lock an invocation: its key, then its row. */
    testdb_exec(other, "SELECT 1 FROM invocation_ids WHERE tenant = 'acme'"
                       " AND invocation_id = 'lk-b1' FOR UPDATE");
    testdb_exec(other, "SELECT 1 FROM invocations WHERE tenant = 'acme'"
                       " AND invocation_id = 'lk-b1' FOR UPDATE");
    release_then_expect_both(other, &bp);
    expect_invocations("has_start, has_stop, max_rss_kb", "lk-%", "lk-a1 f f 5;lk-b1 t t 1");
}
END_TEST

/*
 * A batch that loses a deadlock is tried again rather than refused. The batch locks
 * stored invocation dl-a, then waits for dl-b, which another transaction holds; that one
 * then asks for dl-a. The batch, which waited first, finds the deadlock and is rolled back;
 * meterd tries it again, and it is stored once the other transaction is through.
 */
START_TEST(a_batch_that_loses_a_deadlock_is_tried_again)
{
    const char *start_rest = "\"tenant\":\"acme\",\"function\":\"locks\","
                             "\"time\":\"2026-07-01T10:00:00Z\",\"memory_mb\":128,"
                             "\"timeout_ms\":1000,\"cold_start\":false,\"trigger\":\"http\"}\n";
    const char *stop_rest =
        "\"tenant\":\"acme\",\"function\":\"locks\",\"time\":\"2026-07-01T10:00:00.5Z\","
        "\"memory_mb\":128,\"cold_start\":false,\"duration_us\":500000,\"init_us\":0,"
        "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,\"cpu_sys_us\":1,"
        "\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1}\n";
    char starts[1024], stops_body[1024];
    snprintf(starts, sizeof starts,
             "{\"id\":\"dl-a:start\",\"type\":\"start\",\"invocation_id\":\"dl-a\",%s"
             "{\"id\":\"dl-b:start\",\"type\":\"start\",\"invocation_id\":\"dl-b\",%s",
             start_rest, start_rest);
    snprintf(stops_body, sizeof stops_body,
             "{\"id\":\"dl-a:stop\",\"type\":\"stop\",\"invocation_id\":\"dl-a\",%s"
             "{\"id\":\"dl-b:stop\",\"type\":\"stop\",\"invocation_id\":\"dl-b\",%s",
             stop_rest, stop_rest);
    expect(post_records(ingest_key, starts), 200,
           "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    PGconn *other = testdb_connect(conninfo);
    testdb_exec(other, "BEGIN");
    testdb_exec(other, "SET LOCAL deadlock_timeout = '60s'"); /* the batch finds it first */
    testdb_exec(other, "SELECT 1 FROM invocation_ids WHERE tenant = 'acme'"
                       " AND invocation_id = 'dl-b' FOR UPDATE");
    struct background_post bp;
    background_start(&bp, url_of("/v1/records"), ingest_key, stops_body);
    wait_for_lock_waiter(); /* the batch, holding dl-a, on dl-b */
    testdb_exec(other, "SELECT 1 FROM invocation_ids WHERE tenant = 'acme'"
                       " AND invocation_id = 'dl-a' FOR UPDATE");
    release_then_expect_both(other, &bp);
    expect_invocations("has_stop", "dl-%", "dl-a t;dl-b t");
    struct http_reply m = get(NULL, "/metrics");
    expect_line(m.body, "faasmeter_store_retries_total 1");
    expect_line(m.body, "faasmeter_database_errors_total 0");
    free(m.body);
}
END_TEST

/*
 * The orphan sweep picks the oldest open starts but locks them in key order, as ingestion
 * does, so the two cannot deadlock. Here os-b started first and os-a has the smaller key.
 * While another transaction holds os-a, the sweep waits there and holds nothing after it:
 * os-b can still be locked at once. (Locking in start order, it would hold os-b.)
 */
START_TEST(the_orphan_sweep_locks_in_key_order)
{
    /* Older than anything the other tests store, so that a sweep of the two oldest open
     * starts takes these two alone. */
    const char *t[2] = {"2020-01-01T00:00:00Z", "2020-01-01T00:05:00Z"};
    char body[2048];
    const char *rest = "\"tenant\":\"acme\",\"function\":\"sweep\",\"memory_mb\":128,"
                       "\"timeout_ms\":1000,\"cold_start\":false,\"trigger\":\"http\"}\n";
    snprintf(body, sizeof body,
             "{\"id\":\"os-b:start\",\"type\":\"start\",\"invocation_id\":\"os-b\","
             "\"time\":\"%s\",%s"
             "{\"id\":\"os-a:start\",\"type\":\"start\",\"invocation_id\":\"os-a\","
             "\"time\":\"%s\",%s",
             t[0], rest, t[1], rest);
    expect(post_records(ingest_key, body), 200,
           "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    PGconn *holder = testdb_connect(conninfo), *sweeper = testdb_connect(conninfo);
    testdb_exec(holder, "BEGIN");
    testdb_exec(holder, "SELECT 1 FROM invocation_ids WHERE tenant = 'acme'"
                        " AND invocation_id = 'os-a' FOR UPDATE");
    ck_assert_int_eq(PQsendQuery(sweeper, "SELECT close_orphans('1 minute', 'timeout', 2)"), 1);
    wait_for_lock_waiter(); /* the sweep, on os-a */
    testdb_exec(db, "BEGIN");
    PGresult *res = PQexec(db, "SELECT 1 FROM invocation_ids WHERE tenant = 'acme'"
                               " AND invocation_id = 'os-b' FOR UPDATE NOWAIT");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "os-b is held: %s",
                  PQresultErrorMessage(res));
    PQclear(res);
    testdb_exec(db, "ROLLBACK");
    testdb_exec(holder, "COMMIT");
    res = PQgetResult(sweeper);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "2");
    PQclear(res);
    while ((res = PQgetResult(sweeper)) != NULL)
        PQclear(res);
    expect_invocations("status", "os-%", "os-a lost;os-b lost");
    PQfinish(sweeper);
    PQfinish(holder);
}
END_TEST

/* Looking up a key the cache does not hold waits on the database too: off the polling
 * thread, so that callers whose keys are cached are answered meanwhile. */
START_TEST(a_key_lookup_does_not_hold_up_records)
{
    struct meter_config cfg;
    test_config(&cfg);
    cfg.threads = 1;
    serve(&cfg);
    char *warm = stops("cached", 1), *batch = stops("newkey", 2);
    expect(post_records(ingest_key, warm), 200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    char new_key[APIKEY_LEN + 1];
    testdb_add_key(db, new_key, "ingest", NULL);
    PGconn *locker = testdb_connect(conninfo);
    testdb_exec(locker, "BEGIN");
    testdb_exec(locker, "LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE");
    char url[128];
    snprintf(url, sizeof url, "%s", url_of("/v1/records"));
    struct background_post bp;
    background_start(&bp, url, new_key, batch);
    wait_for_lock_waiter();
    char *more = stops("cached2", 2);
    expect(post_records(ingest_key, more), 200, "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    testdb_exec(locker, "ROLLBACK");
    PQfinish(locker);
    char *reply;
    ck_assert_int_eq(background_finish(&bp, &reply), 200);
    ck_assert_str_eq(reply, "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    free(reply);
    free(warm);
    free(batch);
    free(more);
}
END_TEST

START_TEST(database_lost_mid_batch_stores_all_or_nothing)
{
    enum { N = 10000 };
    char *warm = stops("warm2", 1), *batch = stops("cut", N);
    expect(post_records(ingest_key, warm), 200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    char url[128];
    snprintf(url, sizeof url, "%s", url_of("/v1/records"));
    uint64_t before = atomic_load(&proxy.to_server);
    struct background_post bp;
    background_start(&bp, url, ingest_key, batch);
    /* A tenth of the batch's bytes has reached the database: it is mid-way. */
    proxy_wait_bytes(&proxy, before + strlen(batch) / 10);
    proxy_set_up(&proxy, false);
    char *reply;
    long status = background_finish(&bp, &reply);
    ck_assert_int_eq(status, 503);
    ck_assert_str_eq(reply, UNAVAILABLE("the database is unavailable; retry later"));
    free(reply);
    const char *stored = stored_count("cut");
    ck_assert_msg(strcmp(stored, "0") == 0 || strcmp(stored, "10000") == 0,
                  "%s of %d records stored", stored, N);
    long already = strtol(stored, NULL, 10);
    proxy_set_up(&proxy, true);
    char want[128];
    snprintf(want, sizeof want, "{\"accepted\":%ld,\"duplicates\":%ld,\"rejected\":[]}",
             N - already, already);
    /* The first try may land on a worker whose connection the cut broke. */
    struct http_reply r = post_records(ingest_key, batch);
    if (r.status == 503) {
        free(r.body);
        r = post_records(ingest_key, batch);
    }
    expect(r, 200, want);
    ck_assert_str_eq(stored_count("cut"), "10000");
    expect_value("SELECT count(DISTINCT invocation_id) FROM invocations"
                 " WHERE invocation_id LIKE $1 AND has_stop",
                 "cut-%", "10000");
    free(warm);
    free(batch);
}
END_TEST

/* A request waits for its commit without a thread of its own: a client that leaves in the
 * meantime loses none of its records, and the server, down to one thread, goes on. */
START_TEST(a_client_that_leaves_before_its_answer_loses_nothing)
{
    struct meter_config cfg;
    test_config(&cfg);
    cfg.conninfo = via_proxy;
    cfg.threads = 1;
    serve(&cfg);
    enum { N = 2000 };
    char *warm = stops("warm4", 1), *batch = stops("left", N);
    expect(post_records(ingest_key, warm), 200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    char head[256];
    int len = snprintf(head, sizeof head,
                       "POST /v1/records HTTP/1.1\r\nHost: test\r\n"
                       "Authorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\n"
                       "Content-Length: %zu\r\n\r\n",
                       ingest_key, strlen(batch));
    ck_assert(len > 0 && (size_t)len < sizeof head);
    uint64_t before = atomic_load(&proxy.to_server);
    int fd = tcp_connect();
    ck_assert_int_eq(send(fd, head, (size_t)len, MSG_NOSIGNAL), len);
    for (size_t at = 0, n = strlen(batch); at < n;) {
        ssize_t sent = send(fd, batch + at, n - at, MSG_NOSIGNAL);
        ck_assert_int_gt(sent, 0);
        at += (size_t)sent;
    }
    proxy_wait_bytes(&proxy, before + strlen(batch) / 10); /* its COPY is on the way */
    close(fd);
    int64_t deadline = fm_mono_us() + 30 * 1000000;
    while (strcmp(stored_count("left"), "2000") != 0) {
        ck_assert_msg(fm_mono_us() < deadline, "%s of %d records stored", stored_count("left"),
                      N);
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    expect(post_records(ingest_key, batch), 200,
           "{\"accepted\":0,\"duplicates\":2000,\"rejected\":[]}");
    expect(get(NULL, "/healthz"), 200, "{\"status\":\"ok\",\"database\":\"ok\"}");
    free(warm);
    free(batch);
}
END_TEST

/* Bad options: exit code 2 and one line on stderr naming the option. */
START_TEST(meterd_options_are_checked)
{
    static const struct {
        const char *opt, *value, *err;
    } cases[] = {
        {"--threads", "0", "meterd: --threads: expected an integer 1-256, got '0'\n"},
        {"--threads", "257", "meterd: --threads: expected an integer 1-256, got '257'\n"},
        {"--threads", "two", "meterd: --threads: expected an integer 1-256, got 'two'\n"},
        {"--per-ip", "-1", "meterd: --per-ip: expected an integer 0-100000, got '-1'\n"},
        {"--listen", "127.0.0.1", "meterd: --listen: expected ADDR:PORT, got '127.0.0.1'\n"},
        {"--bogus", "1", "meterd: --bogus: unknown option (try meterd --help)\n"},
        {"--help=2", "x", "meterd: --help: takes no value (try meterd --help)\n"},
        /* Long options are taken written in full only. */
        {"--thr", "2", "meterd: --thr: write --threads in full (try meterd --help)\n"},
        {"--thr=2", "x", "meterd: --thr: write --threads in full (try meterd --help)\n"},
        {"-xyz", "x", "meterd: -xyz: unknown option (try meterd --help)\n"},
        {"--orphan-policy", "all",
         "meterd: --orphan-policy: expected timeout or none, got 'all'\n"},
        {"--log-level", "loud",
         "meterd: --log-level: expected error, warn, info or debug, got 'loud'\n"},
        {"--fold-ms", "1e3", "meterd: --fold-ms: expected an integer 0-3600000, got '1e3'\n"},
        {"stray", NULL, "meterd: 'stray': unexpected argument (try meterd --help)\n"},
        {"--catalog", "/nonexistent",
         "meterd: --catalog: /nonexistent/plans: No such file or directory\n"},
        {"--threads", NULL, "meterd: --threads: missing its value (try meterd --help)\n"},
        {"--listen", "example.com:8080",
         "meterd: --listen: expected an IPv4 address, an IPv6 address in brackets or"
         " localhost, got 'example.com'\n"},
        {"--listen", "::1:8080",
         "meterd: --listen: expected an IPv4 address, an IPv6 address in brackets or"
         " localhost, got '::1'\n"},
        {"--listen", "[127.0.0.1]:8080",
         "meterd: --listen: expected an IPv4 address, an IPv6 address in brackets or"
         " localhost, got '[127.0.0.1]'\n"},
        /* A connection string that cannot parse could never connect: meterd does not start
         * to answer 503 for ever. */
        {"--db", "dbname=x bogus=1", "meterd: --db: invalid connection option \"bogus\"\n"},
        {"--db", "host='x", "meterd: --db: unterminated quoted string in connection info"
                            " string\n"},
    };
    char bin[512];
    proc_bin("meterd", bin, sizeof bin);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {bin, (char *)cases[i].opt, (char *)cases[i].value, NULL};
        proc_expect_usage(argv, cases[i].err);
    }
}
END_TEST

/* An address another socket holds: meterd says so in one line and exits 1. */
START_TEST(a_busy_address_is_one_line)
{
    int holder = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof at;
    ck_assert_int_eq(bind(holder, (struct sockaddr *)&at, sizeof at), 0);
    ck_assert_int_eq(listen(holder, 1), 0);
    ck_assert_int_eq(getsockname(holder, (struct sockaddr *)&at, &len), 0);
    char bin[512], listen_at[32], want[128];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%u", (unsigned)ntohs(at.sin_port));
    snprintf(want, sizeof want, "meterd: cannot listen on %s: Address already in use\n",
             listen_at);
    char *argv[] = {(char *)proc_bin("meterd", bin, sizeof bin), "--listen", listen_at, "--db",
                    conninfo, NULL};
    struct proc_result r = proc_run(argv, NULL, 10);
    close(holder);
    ck_assert_int_eq(r.status, 1);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, want);
    free(r.out);
    free(r.err);
}
END_TEST

/* An IPv6 address in brackets: meterd listens there, says so in the same form, and
 * answers. Where this machine has no IPv6 loopback, only the refusal is checked. */
START_TEST(meterd_listens_on_ipv6)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool has_ipv6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
    if (probe >= 0)
        close(probe);
    char bin[512], line[256];
    char *argv[] = {(char *)proc_bin("meterd", bin, sizeof bin), "--listen", "[::1]:0", "--db",
                    conninfo, NULL};
    if (!has_ipv6) {
        struct proc_result r = proc_run(argv, NULL, 10);
        ck_assert_int_ne(r.status, 0);
        ck_assert_ptr_nonnull(strstr(r.err, "cannot listen on [::1]:0: "));
        free(r.out);
        free(r.err);
        return;
    }
    pid_t pid = proc_start(argv, "meterd listening on", line, sizeof line, 30);
    ck_assert_msg(strncmp(line, "meterd listening on [::1]:", 26) == 0, "%s", line);
    char url[300];
    snprintf(url, sizeof url, "http://[::1]:%s/healthz", line + 26);
    struct http_reply r = http_call("GET", url, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\",\"database\":\"ok\"}");
    free(r.body);
    ck_assert_int_eq(proc_stop(pid), 0);
}
END_TEST

START_TEST(sigterm_finishes_the_request_in_flight)
{
    char bin[512], line[256];
    char *argv[] = {(char *)proc_bin("meterd", bin, sizeof bin), "--listen", "127.0.0.1:0",
                    "--threads", "2", "--db", via_proxy, NULL};
    pid_t pid = proc_start(argv, "meterd listening on", line, sizeof line, 30);
    const char *at = strrchr(line, ':');
    ck_assert_ptr_nonnull(at);
    unsigned own_port = port;
    port = (unsigned)strtoul(at + 1, NULL, 10);
    char *warm = stops("warm3", 1), *batch = stops("term", 2000);
    expect(post_records(ingest_key, warm), 200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    char url[128];
    snprintf(url, sizeof url, "%s", url_of("/v1/records"));
    uint64_t before = atomic_load(&proxy.to_server);
    struct background_post bp;
    background_start(&bp, url, ingest_key, batch);
    proxy_wait_bytes(&proxy, before + strlen(batch) / 10);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    char *reply;
    long status = background_finish(&bp, &reply);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(reply, "{\"accepted\":2000,\"duplicates\":0,\"rejected\":[]}");
    free(reply);
    ck_assert_int_eq(proc_stop(pid), 0);
    ck_assert_str_eq(stored_count("term"), "2000");
    port = own_port;
    free(warm);
    free(batch);
}
END_TEST

Suite *suite_meter_api(void)
{
    Suite *s = suite_create("meter_api");
    TCase *tc = tcase_create("api");
    tcase_add_unchecked_fixture(tc, suite_setup, NULL);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, usage_per_hour_day_and_month);
    tcase_add_test(tc, usage_of_ingested_records);
    tcase_add_test(tc, usage_parameters_are_checked);
    tcase_add_test(tc, tenants_see_only_their_own_usage);
    tcase_add_test(tc, revoked_keys_stop_working_after_the_cache_expires);
    tcase_add_test(tc, unknown_keys_are_not_cached);
    tcase_add_test(tc, metrics_count_records_requests_and_batches);
    tcase_add_test(tc, metrics_follow_the_fold);
    tcase_add_test(tc, one_address_gets_at_most_per_ip_connections);
    tcase_add_test(tc, idle_connections_are_closed_after_the_timeout);
    tcase_add_test(tc, ambiguous_or_compressed_bodies_are_refused);
    tcase_add_test(tc, meterd_options_are_checked);
    tcase_add_test(tc, meterd_listens_on_ipv6);
    tcase_add_test(tc, a_busy_address_is_one_line);
    tcase_add_test(tc, a_slow_report_does_not_hold_up_records);
    tcase_add_test(tc, a_batch_waiting_for_an_invocation_holds_none_after_it);
    tcase_add_test(tc, a_batch_that_loses_a_deadlock_is_tried_again);
    tcase_add_test(tc, the_orphan_sweep_locks_in_key_order);
    tcase_add_test(tc, a_key_lookup_does_not_hold_up_records);
    suite_add_tcase(s, tc);

    tc = tcase_create("database");
    tcase_add_unchecked_fixture(tc, suite_setup, NULL);
    tcase_add_checked_fixture(tc, proxied_setup, proxied_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, database_down_gives_503_and_recovery_stores_once);
    tcase_add_test(tc, connections_closed_by_the_server_are_made_anew_at_once);
    tcase_add_test(tc, database_lost_mid_batch_stores_all_or_nothing);
    tcase_add_test(tc, sigterm_finishes_the_request_in_flight);
    tcase_add_test(tc, a_client_that_leaves_before_its_answer_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}
