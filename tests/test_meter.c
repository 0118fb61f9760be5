/* meterd's records API against a real PostgreSQL, over real HTTP. */
#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/apikey.h"
#include "common/buf.h"
#include "common/timeutil.h"
#include "meter/fold.h"
#include "meter/http.h"
#include "meter/record.h"
#include "meter/store.h"
#include "meter/upkeep.h"
#include "tests/httpc.h"
#include "tests/suites.h"
#include "tests/testdb.h"

static char conninfo[1024];
static char admin_key[APIKEY_LEN + 1];
static char ingest_key[APIKEY_LEN + 1];
static char tenant_key[APIKEY_LEN + 1];

static struct meter_server *server;
static PGconn *db;
static char records_url[128];
static char healthz_url[128];

/* Once, in the runner: a fresh database with three keys. */
static void suite_setup(void)
{
    testdb_create("faasmeter_test_meter", conninfo, sizeof conninfo);
    PGconn *conn = testdb_connect(conninfo);
    testdb_exec(conn, "INSERT INTO tenants (tenant) VALUES ('acme')");
    testdb_add_key(conn, admin_key, "admin", NULL);
    testdb_add_key(conn, ingest_key, "ingest", NULL);
    testdb_add_key(conn, tenant_key, "tenant", "acme");
    PQfinish(conn);
}

/* In each test's process: a server on a free port and a database connection. */
static void test_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread makes a handle */
    struct meter_config cfg;
    meter_config_defaults(&cfg);
    cfg.port = 0;
    cfg.body_limit = 64 * 1024;
    cfg.conninfo = conninfo;
    struct fm_err err;
    ck_assert_msg(meter_server_start(&cfg, &server, &err) == 0, "%s", err.msg);
    unsigned port = meter_server_port(server);
    snprintf(records_url, sizeof records_url, "http://127.0.0.1:%u/v1/records", port);
    snprintf(healthz_url, sizeof healthz_url, "http://127.0.0.1:%u/healthz", port);
    db = testdb_connect(conninfo);
}

static void test_teardown(void)
{
    meter_server_stop(server);
    server = NULL;
    PQfinish(db);
    db = NULL;
}

/* POST a body with a key and content type; returns the reply. */
static struct http_reply post(const char *key, const char *content_type, const char *body)
{
    char auth[128], ct[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    const char *headers[] = {auth, ct, NULL};
    return http_call("POST", records_url, headers, body);
}

static void expect(struct http_reply r, long status, const char *body)
{
    ck_assert_int_eq(r.status, status);
    ck_assert_str_eq(r.body, body);
    free(r.body);
}

static void expect_value(const char *sql, const char *param, const char *want)
{
    /* Rollups follow pending deltas at a fold, as every reader does first. */
    struct fm_err err;
    ck_assert_msg(meter_usage_fold(db, NULL, &err) == 0, "%s", err.msg);
    const char *params[] = {param};
    char *v = testdb_value(db, sql, param ? 1 : 0, params);
    ck_assert_str_eq(v, want);
    free(v);
}

/* How many records this test's server stored on the direct path, from its /metrics. */
static long direct_total(void)
{
    char url[160];
    snprintf(url, sizeof url, "%.*s/metrics", (int)(strlen(healthz_url) - strlen("/healthz")),
             healthz_url);
    struct http_reply r = http_call("GET", url, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    const char *line = strstr(r.body, "\nfaasmeter_records_direct_total ");
    ck_assert_ptr_nonnull(line);
    long n = strtol(line + strlen("\nfaasmeter_records_direct_total "), NULL, 10);
    free(r.body);
    return n;
}

#define START(inv, time)                                                                      \
    "{\"id\":\"" inv ":start\",\"type\":\"start\",\"invocation_id\":\"" inv "\","             \
    "\"tenant\":\"acme\",\"function\":\"thumbnail\",\"time\":\"" time "\","                   \
    "\"memory_mb\":256,\"timeout_ms\":3000,\"cold_start\":true,\"trigger\":\"http\"}"
/* The error of an NDJSON line that is not one JSON value, as the reply's JSON holds it. */
#define NOT_ONE_VALUE                                                                         \
    "record: not one valid JSON value on its line, or a string holds \\\\u0000 or a zero byte"

#define STOP(inv, time, dur)                                                                  \
    "{\"id\":\"" inv ":stop\",\"type\":\"stop\",\"invocation_id\":\"" inv "\","               \
    "\"tenant\":\"acme\",\"function\":\"thumbnail\",\"time\":\"" time "\","                   \
    "\"memory_mb\":256,\"cold_start\":true,\"duration_us\":" dur ",\"init_us\":0,"            \
    "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1500,\"cpu_sys_us\":500,"              \
    "\"max_rss_kb\":20480,\"bytes_in\":100,\"bytes_out\":2000}"

START_TEST(start_and_stop_make_one_invocation)
{
    expect(post(ingest_key, "application/json",
                "[" START("inv-a", "2026-11-03T10:00:00Z") "," STOP("inv-a",
                                                                   "2026-11-03T10:00:00.260Z",
                                                                   "260000") "]"),
           200, "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    expect_value("SELECT concat_ws('|', function, started_at, has_start, has_stop, memory_mb,"
                 " timeout_ms, cold_start, trigger, duration_us, status, cpu_user_us + cpu_sys_us,"
                 " max_rss_kb, bytes_out) FROM invocations WHERE invocation_id = $1",
                 "inv-a",
                 "thumbnail|2026-11-03 10:00:00+00|t|t|256|3000|t|http|260000|ok|2000|20480|2000");
    expect_value("SELECT concat_ws('|', invocations, duration_us, cpu_us) FROM usage_hourly"
                 " WHERE hour = $1::timestamptz",
                 "2026-11-03T10:00:00Z", "1|260000|2000");
}
END_TEST

START_TEST(repeats_are_duplicates_and_changes_are_conflicts)
{
    const char *body = "[" START("inv-b", "2026-11-04T10:00:00Z") "]";
    expect(post(ingest_key, "application/json", body), 200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    expect(post(ingest_key, "application/json", body), 200,
           "{\"accepted\":0,\"duplicates\":1,\"rejected\":[]}");
    /* The same id with another time, in another month: a conflict, stored nowhere. */
    expect(post(ingest_key, "application/x-ndjson",
                START("inv-b", "2026-10-04T10:00:00Z") "\n"),
           200,
           "{\"accepted\":0,\"duplicates\":0,\"rejected\":[{\"index\":0,\"error\":\"id: already "
           "stored with different content (conflict)\"}]}");
    expect_value("SELECT count(*) FROM records WHERE id = $1", "inv-b:start", "1");
    /* Unknown fields do not change a record's content. */
    char extra[1024];
    snprintf(extra, sizeof extra, "[{\"extra\":[1,2],%s]",
             START("inv-b", "2026-11-04T10:00:00Z") + 1);
    expect(post(ingest_key, "application/json", extra), 200,
           "{\"accepted\":0,\"duplicates\":1,\"rejected\":[]}");
}
END_TEST

START_TEST(stop_before_start)
{
    expect(post(ingest_key, "application/x-ndjson",
                STOP("inv-c", "2026-11-05T11:00:00.500Z", "1000000") "\n"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    /* Alone, the stop dates the start from its duration: 10:59:59.5, the 10 o'clock hour. */
    expect_value("SELECT started_at FROM invocations WHERE invocation_id = $1", "inv-c",
                 "2026-11-05 10:59:59.5+00");
    expect_value("SELECT invocations FROM usage_hourly WHERE hour = $1::timestamptz",
                 "2026-11-05T10:00:00Z", "1");
    expect(post(ingest_key, "application/json", "[" START("inv-c", "2026-11-05T11:00:00Z") "]"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    /* The start's own time wins, and the usage moves to its hour. */
    expect_value("SELECT concat_ws('|', started_at, has_start, has_stop, trigger)"
                 " FROM invocations WHERE invocation_id = $1",
                 "inv-c", "2026-11-05 11:00:00+00|t|t|http");
    expect_value("SELECT coalesce(sum(invocations), 0) FROM usage_hourly"
                 " WHERE hour = $1::timestamptz",
                 "2026-11-05T10:00:00Z", "0");
    expect_value("SELECT invocations FROM usage_hourly WHERE hour = $1::timestamptz",
                 "2026-11-05T11:00:00Z", "1");
    expect_value("SELECT count(*) FROM invocations WHERE invocation_id = $1", "inv-c", "1");
}
END_TEST

#define SAMPLE(inv, n, time)                                                                  \
    "{\"id\":\"" inv ":res:" n "\",\"type\":\"resource\",\"invocation_id\":\"" inv "\","      \
    "\"tenant\":\"acme\",\"function\":\"thumbnail\",\"time\":\"" time "\","                   \
    "\"cpu_user_us\":7,\"cpu_sys_us\":1,\"max_rss_kb\":30000}"

/*
 * A resource sample that comes before anything else of its invocation stores the row at the
 * sample's time, as it knows no other. The stop, still without a start, dates it by its
 * time less its duration as it would have alone: the run began on 31 January and January
 * bills it, whether the stop came alone (the direct path's lone stop) or beside a repeat
 * that sends its batch down the staged path.
 */
START_TEST(a_stop_dates_an_invocation_its_samples_came_before)
{
    const char *q = "SELECT concat_ws('|', started_at, tableoid::regclass, has_stop, max_rss_kb,"
                    " (SELECT sum(invocations) FROM usage_monthly"
                    "   WHERE month = '2026-01-01T00:00:00Z' AND function = 'thumbnail'))"
                    " FROM invocations WHERE invocation_id = $1";
    expect(post(ingest_key, "application/json",
                "[" SAMPLE("early-a", "1", "2026-02-01T00:00:05Z") "," SAMPLE(
                    "early-b", "1", "2026-02-01T00:00:05Z") "]"),
           200, "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    expect_value("SELECT count(*) FROM invocations WHERE started_at = $1::timestamptz"
                 " AND invocation_id LIKE 'early-%'",
                 "2026-02-01T00:00:05Z", "2");
    expect(post(ingest_key, "application/json",
                "[" STOP("early-a", "2026-02-01T00:00:10Z", "20000000") "]"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    expect_value(q, "early-a", "2026-01-31 23:59:50+00|invocations_2026_01|t|30000|1");
    expect(post(ingest_key, "application/json",
                "[" STOP("early-b", "2026-02-01T00:00:10Z", "20000000") "," SAMPLE(
                    "early-b", "1", "2026-02-01T00:00:05Z") "]"),
           200, "{\"accepted\":1,\"duplicates\":1,\"rejected\":[]}");
    expect_value(q, "early-b", "2026-01-31 23:59:50+00|invocations_2026_01|t|30000|2");
    expect_value("SELECT count(*) FROM invocations WHERE started_at >= $1::timestamptz"
                 " AND invocation_id LIKE 'early-%'",
                 "2026-02-01T00:00:00Z", "0");
}
END_TEST

START_TEST(bad_records_are_named_and_good_ones_kept)
{
    expect(post(ingest_key, "application/json",
                "[" START("inv-d", "2026-11-06T10:00:00Z") ","
                "{\"id\":\"x\",\"type\":\"start\"},"
                "{\"id\":\"y\",\"type\":\"launch\"},"
                "7,"
                "{\"id\":\"z:stop\",\"type\":\"stop\",\"invocation_id\":\"z\",\"tenant\":\"Acme\"},"
                "{\"id\":\"w\"}]"),
           200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":["
           "{\"index\":1,\"error\":\"invocation_id: missing (required in a start record)\"},"
           "{\"index\":2,\"error\":\"type: expected one of start, stop, resource\"},"
           "{\"index\":3,\"error\":\"record: expected a JSON object\"},"
           "{\"index\":4,\"error\":\"tenant: expected [a-z0-9][a-z0-9_-]{0,63}\"},"
           "{\"index\":5,\"error\":\"type: missing (start, stop or resource)\"}]}");
    /* Field by field: each rule names its field. */
    static const struct {
        const char *from, *to, *error;
    } cases[] = {
        {"\"memory_mb\":256", "\"memory_mb\":0", "memory_mb: expected an integer 1-10240"},
        {"\"memory_mb\":256", "\"memory_mb\":1.5", "memory_mb: expected an integer 1-10240"},
        {"\"timeout_ms\":3000", "\"timeout_ms\":9007199254740992",
         "timeout_ms: expected an integer 1-86400000"},
        {"\"timeout_ms\":3000", "\"timeout_ms\":86400001", "timeout_ms: expected an integer 1-86400000"},
        {"\"thumbnail\"", "\"th\\u00e9\"", "function: expected [A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
        {"\"cold_start\":true", "\"cold_start\":1", "cold_start: expected true or false"},
        {"\"trigger\":\"http\"", "\"trigger\":\"cron\"",
         "trigger: expected one of http, queue, event, timer, pipeline, cli"},
        {"2026-11-06T10:00:00Z", "2026-11-06T10:00:00+02:00",
         "time: expected an RFC 3339 UTC time from 1970 on, such as 2026-01-31T12:00:00.000000Z"},
        {"\"thumbnail\"", "\"-thumb\"", "function: expected [A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
        {"2026-11-06T10:00:00Z", "1969-12-31T23:59:59Z",
         "time: expected an RFC 3339 UTC time from 1970 on, such as 2026-01-31T12:00:00.000000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rec[1024], body[1200], want[400];
        const char *tmpl = START("inv-e", "2026-11-06T10:00:00Z");
        const char *at = strstr(tmpl, cases[i].from);
        ck_assert_ptr_nonnull(at);
        snprintf(rec, sizeof rec, "%.*s%s%s", (int)(at - tmpl), tmpl, cases[i].to,
                 at + strlen(cases[i].from));
        snprintf(body, sizeof body, "[%s]", rec);
        snprintf(want, sizeof want,
                 "{\"accepted\":0,\"duplicates\":0,\"rejected\":[{\"index\":0,\"error\":\"%s\"}]}",
                 cases[i].error);
        expect(post(ingest_key, "application/json", body), 200, want);
    }
    expect_value("SELECT count(*) FROM records WHERE invocation_id = $1", "inv-e", "0");
    /* A line of NDJSON that does not parse is that record's error only. */
    expect(post(ingest_key, "application/x-ndjson",
                "{not json\n" STOP("inv-f", "2026-11-06T12:00:00Z", "5") "\n"
                "{\"id\":\"x\\u0000y\"}\n"),
           200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":["
           "{\"index\":0,\"error\":\"" NOT_ONE_VALUE "\"},"
           "{\"index\":2,\"error\":\"" NOT_ONE_VALUE "\"}]}");
    /* A line holds one record: a second one after it, or text, is that line's error (a
     * bare carriage return does not end a line), never lost without a word. */
    expect(post(ingest_key, "application/x-ndjson",
                STOP("nd-1", "2026-11-06T12:00:00Z", "5") " "
                STOP("nd-2", "2026-11-06T12:00:00Z", "5") "\n"
                STOP("nd-3", "2026-11-06T12:00:00Z", "5") " garbage\r\n"
                STOP("nd-4", "2026-11-06T12:00:00Z", "5") "\r"
                STOP("nd-5", "2026-11-06T12:00:00Z", "5") "\r\n"
                STOP("nd-6", "2026-11-06T12:00:00Z", "5") " \t\r\n"),
           200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":["
           "{\"index\":0,\"error\":\"" NOT_ONE_VALUE "\"},"
           "{\"index\":1,\"error\":\"" NOT_ONE_VALUE "\"},"
           "{\"index\":2,\"error\":\"" NOT_ONE_VALUE "\"}]}");
    expect_value("SELECT string_agg(invocation_id, ',') FROM records"
                 " WHERE invocation_id ~ $1",
                 "^nd-[1-6]$", "nd-6");
    /* Nor does a JSON array take what follows it: the body is refused whole, and the
     * answer says where. */
    expect(post(ingest_key, "application/json",
                "[" STOP("nd-7", "2026-11-06T12:00:00Z", "5") "]"
                "[" STOP("nd-8", "2026-11-06T12:00:00Z", "5") "]"),
           400, "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON array of "
                "records: not JSON at byte 304\"}");
    expect_value("SELECT count(*) FROM records WHERE invocation_id IN ('nd-7', $1)", "nd-8",
                 "0");
    /* An integer written with a fraction or an exponent is refused, in either body: cJSON
     * reads 1000.00000000000001 as the double 1000, so only the text tells. Only the
     * record's own first member of the name counts, as only it is read; a number of
     * another field, or inside a nested value, may be anything. */
    static const char *const written[][2] = {
        {"\"duration_us\":1000.00000000000001", "duration_us: expected an integer 0-86400000000"},
        {"\"duration_us\":1000.0", "duration_us: expected an integer 0-86400000000"},
        {"\"duration_us\":1e3", "duration_us: expected an integer 0-86400000000"},
        {"\"duration_u\\u0073\":2E1", "duration_us: expected an integer 0-86400000000"},
        {"\"cpu_sys_us\":-0.0", "cpu_sys_us: expected an integer 0-1099511627776"},
        /* Strings before it, with escaped quotes and backslashes, and brackets inside. */
        {"\"correlation_id\":\"q\\\"{[\\\\\",\"duration_us\":1000.0",
         "duration_us: expected an integer 0-86400000000"},
        {"\"correlation_id\":\"\\\\\\\\\",\"exit_code\":1e0",
         "exit_code: expected an integer -2147483648-2147483647"},
        /* JSON has no leading zeros; cJSON would read 0128 as 128. */
        {"\"memory_mb\":0128", "memory_mb: expected an integer 1-10240"},
        {"\"bytes_in\":-01", "bytes_in: expected an integer 0-1099511627776"},
        {"\"bytes_in\":00", "bytes_in: expected an integer 0-1099511627776"},
        /* A name with another escape is no field's: the real member after it is judged. */
        {"\"dura\\tion_us\":1,\"duration_us\":1000.00000000000001",
         "duration_us: expected an integer 0-86400000000"},
        {"\"duratio\\n_us\":0.5,\"latency\":0.25,\"duration_us\":7,"
         "\"extra\":{\"duration_us\":1.5},\"duration_us\":2.5", NULL},
    };
    for (int nd = 0; nd < 2; nd++) {
        for (size_t i = 0; i < sizeof written / sizeof written[0]; i++) {
            char inv[32], rec[1024], body[1200], want[400];
            snprintf(inv, sizeof inv, "num-%d-%zu", nd, i);
            snprintf(rec, sizeof rec,
                     "{\"id\":\"%s:stop\",\"type\":\"stop\",\"invocation_id\":\"%s\","
                     "\"tenant\":\"acme\",\"function\":\"f\",\"time\":\"2026-11-06T12:00:00Z\","
                     "%s,\"memory_mb\":256,\"cold_start\":true,\"duration_us\":5,"
                     "\"init_us\":0,\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,"
                     "\"cpu_sys_us\":1,\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1}",
                     inv, inv, written[i][0]);
            snprintf(body, sizeof body, nd ? "%s\n" : "[%s]", rec);
            if (written[i][1] == NULL)
                snprintf(want, sizeof want,
                         "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
            else
                snprintf(want, sizeof want,
                         "{\"accepted\":0,\"duplicates\":0,\"rejected\":[{\"index\":0,"
                         "\"error\":\"%s\"}]}",
                         written[i][1]);
            expect(post(ingest_key, nd ? "application/x-ndjson" : "application/json", body),
                   200, want);
        }
    }
    expect_value("SELECT string_agg(invocation_id || '=' || duration_us, ',' ORDER BY"
                 " invocation_id) FROM invocations WHERE invocation_id ~ $1",
                 "^num-", "num-0-11=7,num-1-11=7");
    /* A stop alone is dated by its time less its duration: never before 1970. */
    expect(post(ingest_key, "application/json",
                "[" STOP("e1970", "1970-01-01T00:00:00.5Z", "1000000") ","
                STOP("e1970b", "1970-01-01T00:00:01Z", "1000000") "]"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[{\"index\":0,\"error\":"
                "\"duration_us: longer than the time since 1970-01-01, when the invocation "
                "would have started\"}]}");
    /* In a JSON array, such a string refuses the request: nothing is stored. */
    expect(post(ingest_key, "application/json",
                "[" STOP("inv-j", "2026-11-06T12:00:00Z", "5") ",{\"id\":\"a\\u0000\"}]"),
           400, "{\"error\":\"bad_request\",\"message\":\"strings may not contain \\\\u0000 or "
                "a zero byte\"}");
    expect_value("SELECT count(*) FROM records WHERE invocation_id = $1", "inv-j", "0");
    /* An escaped backslash before the text u0000 is no such string. */
    expect(post(ingest_key, "application/json",
                "[" STOP("inv-m\\\\u0000", "2026-11-06T12:00:00Z", "5") "]"),
           200, "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    expect_value("SELECT count(*) FROM records WHERE invocation_id = $1", "inv-m\\u0000", "1");
    /* A zero byte ends a string early just the same: ids "z\0A" and "z\0B" would meet. */
    static const char zero[] = "{\"id\":\"z\0A\",\"type\":\"start\"}\n"
                               "{\"id\":\"z\0B\",\"type\":\"start\"}\n";
    const char *nd[] = {"Authorization: Bearer ", "Content-Type: application/x-ndjson", NULL};
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", ingest_key);
    nd[0] = auth;
    expect(http_call_n("POST", records_url, nd, zero, sizeof zero - 1), 200,
           "{\"accepted\":0,\"duplicates\":0,\"rejected\":["
           "{\"index\":0,\"error\":\"" NOT_ONE_VALUE "\"},"
           "{\"index\":1,\"error\":\"" NOT_ONE_VALUE "\"}]}");
    static const char zero_array[] = "[{\"id\":\"z\0C\",\"type\":\"start\"}]";
    const char *js[] = {auth, "Content-Type: application/json", NULL};
    expect(http_call_n("POST", records_url, js, zero_array, sizeof zero_array - 1), 400,
           "{\"error\":\"bad_request\",\"message\":\"strings may not contain \\\\u0000 or "
           "a zero byte\"}");
    /* Bytes that are not UTF-8 would fail the database write of a whole batch. */
    expect(post(ingest_key, "application/json", "[" START("inv-k\xff", "2026-11-06T10:00:00Z") "]"),
           200,
           "{\"accepted\":0,\"duplicates\":0,\"rejected\":[{\"index\":0,\"error\":\"id: not "
           "valid UTF-8\"}]}");
}
END_TEST

START_TEST(requests_are_checked_before_anything_is_stored)
{
    const char *body = "[" START("inv-g", "2026-11-07T10:00:00Z") "]";
    const char *json = "Content-Type: application/json";
    const char *no_key[] = {json, NULL};
    expect(http_call("POST", records_url, no_key, body), 401,
           "{\"error\":\"unauthorized\",\"message\":\"an API key is required: Authorization: "
           "Bearer <key>\"}");
    char wrong[APIKEY_LEN + 1];
    memcpy(wrong, ingest_key, sizeof wrong);
    wrong[APIKEY_LEN - 1] = wrong[APIKEY_LEN - 1] == '0' ? '1' : '0';
    expect(post(wrong, "application/json", body), 401,
           "{\"error\":\"unauthorized\",\"message\":\"the API key is not valid\"}");
    expect(post("fm_short", "application/json", body), 401,
           "{\"error\":\"unauthorized\",\"message\":\"the API key is not valid\"}");
    expect(post(tenant_key, "application/json", body), 403,
           "{\"error\":\"forbidden\",\"message\":\"records need an ingest or admin key\"}");
    /* Bodies are read as UTF-8; a charset saying otherwise is refused, whatever its case or
     * quotes. */
    static const char *const refused_types[] = {
        "text/plain", "application/json; charset=latin1",
        "application/x-ndjson;charset=\"ISO-8859-1\"", "application/json; charset=utf-16"};
    for (size_t i = 0; i < sizeof refused_types / sizeof refused_types[0]; i++)
        expect(post(ingest_key, refused_types[i], body), 415,
               "{\"error\":\"unsupported_media_type\",\"message\":\"Content-Type must be "
               "application/json (an array of records) or application/x-ndjson, in UTF-8\"}");
    expect(post(ingest_key, "application/json; Charset=\"UTF-8\"", "[]"), 200,
           "{\"accepted\":0,\"duplicates\":0,\"rejected\":[]}");
    expect(post(ingest_key, "application/json", "{\"records\": []}"), 400,
           "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON array of records\"}");
    expect(post(ingest_key, "application/json", "[{"), 400,
           "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON array of records: "
           "not JSON at byte 2\"}");
    /* A lone surrogate escape is no character. */
    expect(post(ingest_key, "application/json", "[{\"id\": \"\\ud800\"}]"), 400,
           "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON array of records: "
           "not JSON at byte 10\"}");
    /* Deeper than the parser goes: said so. */
    char deep[2001];
    memset(deep, '[', 2000);
    deep[2000] = '\0';
    expect(post(ingest_key, "application/json", deep), 400,
           "{\"error\":\"bad_request\",\"message\":\"the body is not a JSON array of records: "
           "nested deeper than 1000 levels, at byte 1001\"}");
    char *big = malloc(70 * 1024);
    memset(big, ' ', 70 * 1024 - 1);
    big[0] = '[';
    big[70 * 1024 - 2] = ']';
    big[70 * 1024 - 1] = '\0';
    expect(post(ingest_key, "application/json", big), 413,
           "{\"error\":\"payload_too_large\",\"message\":\"the request body is too large\"}");
    free(big);
    expect(http_call("GET", records_url, NULL, NULL), 405,
           "{\"error\":\"method_not_allowed\",\"message\":\"GET is not allowed on "
           "/v1/records\"}");
    expect_value("SELECT count(*) FROM records WHERE invocation_id = $1", "inv-g", "0");
    /* The admin key may send records too. */
    expect(post(admin_key, "application/json", body), 200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
}
END_TEST

START_TEST(health_and_unknown_paths)
{
    expect(http_call("GET", healthz_url, NULL, NULL), 200,
           "{\"status\":\"ok\",\"database\":\"ok\"}");
    char url[160];
    snprintf(url, sizeof url, "%s/nope", records_url);
    expect(http_call("GET", url, NULL, NULL), 404,
           "{\"error\":\"not_found\",\"message\":\"no such endpoint\"}");
    /* A 405 says which methods the path takes; HEAD goes where GET does, without a body. */
    static const struct {
        const char *method, *path, *allow;
        long status;
    } cases[] = {
        {"POST", "/healthz", "GET, HEAD", 405},
        {"GET", "/v1/records", "POST", 405},
        {"DELETE", "/v1/invoices", "GET, HEAD, POST", 405},
        {"PUT", "/v1/invoices/7/finalize", "POST", 405},
        {"HEAD", "/healthz", "", 200},
        {"HEAD", "/v1/records", "POST", 405},
    };
    size_t base = strlen(records_url) - strlen("/v1/records");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(url, sizeof url, "%.*s%s", (int)base, records_url, cases[i].path);
        long status = 0;
        size_t body_len = 0;
        char *allow = http_header(cases[i].method, url, "Allow", &status, &body_len);
        ck_assert_int_eq(status, cases[i].status);
        ck_assert_str_eq(allow, cases[i].allow);
        if (strcmp(cases[i].method, "HEAD") != 0)
            ck_assert_uint_gt(body_len, 0);
        free(allow);
    }
}
END_TEST

START_TEST(months_get_their_own_partitions)
{
    expect(post(ingest_key, "application/json",
                "[" STOP("inv-h", "2026-10-31T23:59:59.900Z", "200000") "," STOP(
                    "inv-i", "2026-01-01T00:00:00.100Z", "50000") "]"),
           200, "{\"accepted\":2,\"duplicates\":0,\"rejected\":[]}");
    expect_value("SELECT tableoid::regclass FROM invocations WHERE invocation_id = $1", "inv-h",
                 "invocations_2026_10");
    expect_value("SELECT tableoid::regclass FROM invocations WHERE invocation_id = $1", "inv-i",
                 "invocations_2026_01");
    expect_value("SELECT tableoid::regclass FROM records WHERE id = $1", "inv-i:stop",
                 "records_2026_01");
    /* A record dated more than a day ahead is refused (a clock gone wrong), and makes no
     * partition: up to a day ahead is taken. */
    char ahead[32], far[32], body[2048];
    fm_time_format(fm_wall_us() + INT64_C(23) * 3600 * 1000000, ahead, sizeof ahead);
    fm_time_format(fm_wall_us() + INT64_C(400) * 86400 * 1000000, far, sizeof far);
    snprintf(body, sizeof body, "[" STOP("inv-ahead", "%s", "1000") "," STOP("inv-far", "%s",
                                                                           "1000") "]",
             ahead, far);
    expect(post(ingest_key, "application/json", body), 200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":[{\"index\":1,\"error\":\"time: "
           "more than a day ahead of meterd's clock\"}]}");
    char partition[32];
    snprintf(partition, sizeof partition, "records_%.4s_%.2s", far, far + 5);
    expect_value("SELECT count(*) FROM pg_class WHERE relname = $1", partition, "0");
}
END_TEST

START_TEST(orphans_are_closed_as_lost_and_replaced_by_a_late_stop)
{
    char t[FM_TIME_BUFSZ], body[1024];
    int64_t started = fm_wall_us() - INT64_C(600) * 1000000;
    fm_time_format(started, t, sizeof t);
    snprintf(body, sizeof body,
             "[{\"id\":\"orph:start\",\"type\":\"start\",\"invocation_id\":\"orph\","
             "\"tenant\":\"acme\",\"function\":\"lonely\",\"time\":\"%s\","
             "\"memory_mb\":512,\"timeout_ms\":3000,\"cold_start\":false,\"trigger\":\"queue\"}]",
             t);
    expect(post(ingest_key, "application/json", body), 200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    struct fm_err err;
    int closed = -1;
    const char *q = "SELECT concat_ws('|', status, duration_us, has_stop) FROM invocations"
                    " WHERE invocation_id = $1";
    /* Not yet: ten minutes ago plus 3 s is within a grace of an hour. */
    ck_assert_int_eq(meter_orphans_close(db, 3600000, METER_ORPHAN_BILL_TIMEOUT, 100, &closed,
                                         &err), 0);
    expect_value(q, "orph", "f");
    ck_assert_int_eq(meter_orphans_close(db, 60000, METER_ORPHAN_BILL_TIMEOUT, 100, &closed,
                                         &err), 0);
    ck_assert_int_ge(closed, 1);
    expect_value(q, "orph", "lost|3000000|t");
    const char *usage = "SELECT concat_ws('|', sum(invocations), sum(duration_us), sum(errors))"
                        " FROM usage_hourly WHERE function = $1";
    expect_value(usage, "lonely", "1|3000000|1");
    /* The real stop comes after all: it replaces the lost figures. */
    fm_time_format(started + 1200000, t, sizeof t);
    snprintf(body, sizeof body,
             "[{\"id\":\"orph:stop\",\"type\":\"stop\",\"invocation_id\":\"orph\","
             "\"tenant\":\"acme\",\"function\":\"lonely\",\"time\":\"%s\","
             "\"memory_mb\":512,\"cold_start\":false,\"duration_us\":1200000,\"init_us\":0,"
             "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":5,\"cpu_sys_us\":5,"
             "\"max_rss_kb\":100,\"bytes_in\":1,\"bytes_out\":2}]",
             t);
    expect(post(ingest_key, "application/json", body), 200,
           "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
    expect_value(q, "orph", "ok|1200000|t");
    expect_value(usage, "lonely", "1|1200000|0");
    /* The start went the direct path; the stop found its invocation stopped (as lost), which
     * only the staged path settles. */
    ck_assert_int_eq(direct_total(), 1);
}
END_TEST

/* Many small concurrent requests share group commits; exactly-once still holds across
 * requests that land in the same transaction. */
#define SENDERS 12
static void *send_same_and_own(void *arg)
{
    long k = (long)arg;
    char body[2048];
    /* Every sender repeats one start, and sends one start of its own. */
    snprintf(body, sizeof body,
             "[" START("same", "2026-11-08T10:00:00Z") ","
             "{\"id\":\"own-%02ld:start\",\"type\":\"start\",\"invocation_id\":\"own-%02ld\","
             "\"tenant\":\"acme\",\"function\":\"thumbnail\",\"time\":\"2026-11-08T10:00:00Z\","
             "\"memory_mb\":256,\"timeout_ms\":3000,\"cold_start\":true,\"trigger\":\"http\"}]",
             k, k);
    struct http_reply *r = malloc(sizeof *r);
    *r = post(ingest_key, "application/json", body);
    return r;
}

struct group_answer {
    int calls, rc;
    char why[sizeof(struct fm_err)];
};

static void group_done(void *arg, int rc, const struct fm_err *err)
{
    struct group_answer *a = arg;
    a->calls++;
    a->rc = rc;
    snprintf(a->why, sizeof a->why, "%s", err ? err->msg : "");
}

/* Records handed to a group that has stopped are answered at once, as not stored because the
 * server stops (not as a database failure). */
START_TEST(a_stopped_group_answers_at_once)
{
    struct meter_group *g = meter_group_new(conninfo);
    ck_assert_ptr_nonnull(g);
    meter_group_stop(g);
    struct meter_record rec = {0};
    enum meter_outcome outcome = METER_ACCEPTED;
    struct group_answer a = {0};
    meter_group_submit(g, &rec, 1, &outcome, group_done, &a);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.rc, METER_GROUP_STOPPED);
    ck_assert_str_eq(a.why, "meterd is stopping");
    meter_group_free(g);
}
END_TEST

START_TEST(concurrent_requests_stay_exactly_once)
{
    pthread_t th[SENDERS];
    for (long k = 0; k < SENDERS; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, send_same_and_own, (void *)k), 0);
    int accepted = 0, duplicates = 0;
    for (long k = 0; k < SENDERS; k++) {
        struct http_reply *r;
        pthread_join(th[k], (void **)&r);
        ck_assert_int_eq(r->status, 200);
        int a = -1, d = -1;
        ck_assert_int_eq(sscanf(r->body, "{\"accepted\":%d,\"duplicates\":%d", &a, &d), 2);
        accepted += a;
        duplicates += d;
        free(r->body);
        free(r);
    }
    /* The shared start once, and every sender's own record once. */
    ck_assert_int_eq(accepted, 1 + SENDERS);
    ck_assert_int_eq(duplicates, SENDERS - 1);
    expect_value("SELECT count(*) FROM records WHERE id = $1", "same:start", "1");
    expect_value("SELECT count(*) FROM records WHERE id LIKE 'own-%' AND 1 = $1::int", "1",
                 "12");
}
END_TEST

/* ---- The direct path and the staged path store alike ----------------------------------- */

/* A record of tenant t as NDJSON: type, invocation, time, function, and the rest. */
static void add_record(struct fm_buf *b, const char *t, const char *type, const char *inv,
                       const char *time, const char *fn, const char *extra)
{
    fm_buf_printf(b,
                  "{\"id\":\"%s:%s\",\"type\":\"%s\",\"invocation_id\":\"%s\",\"tenant\":\"%s\","
                  "\"function\":\"%s\",\"time\":\"%s\",%s}\n",
                  inv, type, type, inv, t, fn, time, extra);
}

#define START_REST "\"memory_mb\":512,\"timeout_ms\":9000,\"cold_start\":true,\"trigger\":\"queue\""
#define STOP_REST                                                                             \
    "\"memory_mb\":512,\"cold_start\":false,\"duration_us\":200000,\"init_us\":1500,"         \
    "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":7000,\"cpu_sys_us\":900,"              \
    "\"max_rss_kb\":70000,\"bytes_in\":10,\"bytes_out\":20"

/* Every way an invocation's records can arrive in one batch, for tenant t. */
static char *mixed_batch(const char *t)
{
    struct fm_buf b;
    fm_buf_init(&b, 1u << 20);
    /* Start first; only the start names a correlation. */
    add_record(&b, t, "start", "m1", "2026-11-05T10:00:00Z", "resize", START_REST ",\"correlation_id\":\"up-1\"");
    add_record(&b, t, "stop", "m1", "2026-11-05T10:00:00.2Z", "resize", STOP_REST);
    /* Stop first, under another function name and correlation: the first arrival wins. */
    add_record(&b, t, "stop", "m2", "2026-11-05T11:00:01Z", "late-name", STOP_REST ",\"correlation_id\":\"up-stop\"");
    add_record(&b, t, "start", "m2", "2026-11-05T11:00:00.8Z", "resize", START_REST ",\"correlation_id\":\"up-start\"");
    /* A stop alone, whose run began in the month before its record. */
    add_record(&b, t, "stop", "m3", "2026-11-01T00:00:00.1Z", "resize", STOP_REST);
    /* A start alone. */
    add_record(&b, t, "start", "m4", "2026-11-05T12:00:00Z", "resize", START_REST);
    /* Start first without a correlation, the stop with one. */
    add_record(&b, t, "start", "m5", "2026-11-05T13:00:00Z", "resize", START_REST);
    add_record(&b, t, "stop", "m5", "2026-11-05T13:00:00.2Z", "resize",
               "\"memory_mb\":512,\"cold_start\":true,\"duration_us\":200000,\"init_us\":0,"
               "\"status\":\"error\",\"exit_code\":3,\"cpu_user_us\":1,\"cpu_sys_us\":2,"
               "\"max_rss_kb\":3,\"bytes_in\":4,\"bytes_out\":0,\"correlation_id\":\"up-5\"");
    /* The stop of an invocation whose start is stored already. */
    add_record(&b, t, "stop", "m6", "2026-11-05T14:00:00.2Z", "resize", STOP_REST);
    ck_assert(!b.failed);
    return fm_buf_steal(&b);
}

/* One tenant's stored invocations and rollups, as text that names no tenant. */
static char *stored_state(const char *tenant)
{
    struct fm_err err;
    ck_assert_msg(meter_usage_fold(db, NULL, &err) == 0, "%s", err.msg);
    const char *params[] = {tenant};
    return testdb_value(
        db,
        "SELECT concat_ws(E'\\n',"
        " (SELECT string_agg(ROW(invocation_id, started_at, function, has_start, has_stop,"
        "   memory_mb, timeout_ms, cold_start, trigger, correlation_id, stopped_at, duration_us,"
        "   init_us, status, exit_code, cpu_user_us, cpu_sys_us, max_rss_kb, bytes_in,"
        "   bytes_out)::text, ';' ORDER BY invocation_id) FROM invocations WHERE tenant = $1),"
        " (SELECT string_agg(concat_ws('|', function, hour, memory_mb, invocations, errors,"
        "   cold_starts, duration_us, init_us, cpu_us, bytes_in, bytes_out), ';'"
        "   ORDER BY function, hour, memory_mb) FROM usage_hourly WHERE tenant = $1),"
        " (SELECT string_agg(concat_ws('|', plan, month, function, invocations, billed_ms,"
        "   mb_ms, mhz_ms, cpu_us, egress_bytes), ';' ORDER BY plan, month, function)"
        "   FROM usage_rated WHERE tenant = $1),"
        " (SELECT string_agg(concat_ws('|', hour, invocations, errors, cold_starts,"
        "   duration_us, mb_us, cpu_us), ';' ORDER BY hour) FROM usage_tenant_hourly"
        "   WHERE tenant = $1),"
        " (SELECT string_agg(concat_ws('|', month, function, invocations, errors, cold_starts,"
        "   duration_us, init_us, mb_invocations, cpu_us, bytes_in, bytes_out), ';'"
        "   ORDER BY month, function) FROM usage_monthly WHERE tenant = $1),"
        " (SELECT string_agg(id, ',' ORDER BY id) FROM records WHERE tenant = $1))",
        1, params);
}

/* Stops of invocations stored with their starts alone (invocations that outlasted a
 * shipping round): alone in their batch, or each followed by a resource sample, which
 * changes nothing once the stop is in. Both store the same invocations and usage. So do
 * stops after samples, in one batch or record by record. */
static const char *const stored_starts[][3] = {
    {"s1", "2026-11-06T10:00:00Z", START_REST ",\"correlation_id\":\"up-1\""},
    {"s2", "2026-11-06T10:30:00Z", START_REST},
    {"s3", "2026-11-06T11:00:00Z", START_REST},
};

/* The three starts above for tenant, in a request of their own. */
static void post_stored_starts(const char *tenant)
{
    struct fm_buf b;
    fm_buf_init(&b, 8192);
    for (int i = 0; i < 3; i++)
        add_record(&b, tenant, "start", stored_starts[i][0], stored_starts[i][1], "resize",
                   stored_starts[i][2]);
    expect(post(ingest_key, "application/x-ndjson", b.data), 200,
           "{\"accepted\":3,\"duplicates\":0,\"rejected\":[]}");
    fm_buf_free(&b);
}

START_TEST(stops_of_stored_starts_store_alike_alone_or_with_samples)
{
    static const char *const stops[][3] = {
        {"s1", "2026-11-06T10:00:01Z", STOP_REST ",\"correlation_id\":\"other\""},
        {"s2", "2026-11-06T10:30:02Z",
         "\"memory_mb\":1024,\"cold_start\":true,\"duration_us\":1500000,\"init_us\":0,"
         "\"status\":\"error\",\"exit_code\":2,\"cpu_user_us\":1,\"cpu_sys_us\":2,"
         "\"max_rss_kb\":3,\"bytes_in\":4,\"bytes_out\":5,\"correlation_id\":\"up-2\""},
        {"s3", "2026-11-06T11:00:03Z", STOP_REST},
    };
    /* A resource sample after the stop changes nothing: the stop's figures are final. */
    static const char resource_rest[] = "\"cpu_user_us\":0,\"cpu_sys_us\":0,\"max_rss_kb\":0";
    for (int k = 0; k < 2; k++) {
        const char *tenant = k ? "sampled" : "alone";
        post_stored_starts(tenant);
        struct fm_buf b;
        fm_buf_init(&b, 8192);
        for (int i = 0; i < 3; i++) {
            add_record(&b, tenant, "stop", stops[i][0], stops[i][1], "renamed", stops[i][2]);
            if (k)
                add_record(&b, tenant, "resource", stops[i][0], stops[i][1], "renamed",
                           resource_rest);
        }
        expect(post(ingest_key, "application/x-ndjson", b.data), 200,
               k ? "{\"accepted\":6,\"duplicates\":0,\"rejected\":[]}"
                 : "{\"accepted\":3,\"duplicates\":0,\"rejected\":[]}");
        fm_buf_free(&b);
    }
    char *a = stored_state("alone"), *b = stored_state("sampled");
    /* All but the last line, the record ids (the resource samples are records too). */
    *strrchr(a, '\n') = '\0';
    *strrchr(b, '\n') = '\0';
    ck_assert_str_eq(a, b);
    char *invocations = strndup(a, strcspn(a, "\n"));
    ck_assert_str_eq(
        invocations,
        "(s1,\"2026-11-06 10:00:00+00\",resize,t,t,512,9000,f,queue,up-1,"
        "\"2026-11-06 10:00:01+00\",200000,1500,ok,0,7000,900,70000,10,20);"
        "(s2,\"2026-11-06 10:30:00+00\",resize,t,t,1024,9000,t,queue,up-2,"
        "\"2026-11-06 10:30:02+00\",1500000,0,error,2,1,2,3,4,5);"
        "(s3,\"2026-11-06 11:00:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-06 11:00:03+00\",200000,1500,ok,0,7000,900,70000,10,20)");
    free(invocations);
    free(a);
    free(b);

    /* Samples that came before their stop, with a higher peak and CPU than the stop says:
     * in one batch, and record by record in arrival order through ingest_record (the
     * per-record path alone). Both store the sample's peak and the stop's CPU. */
    static const char sample_rest[] =
        "\"cpu_user_us\":9999,\"cpu_sys_us\":999,\"max_rss_kb\":90000";
    for (int k = 0; k < 2; k++) {
        const char *tenant = k ? "by-record" : "batched";
        post_stored_starts(tenant);
        struct fm_buf nd;
        fm_buf_init(&nd, 8192);
        for (int i = 0; i < 3; i++) {
            add_record(&nd, tenant, "resource", stops[i][0], stored_starts[i][1], "resize",
                       sample_rest);
            add_record(&nd, tenant, "stop", stops[i][0], stops[i][1], "renamed", stops[i][2]);
        }
        if (k == 0)
            expect(post(ingest_key, "application/x-ndjson", nd.data), 200,
                   "{\"accepted\":6,\"duplicates\":0,\"rejected\":[]}");
        for (char *line = nd.data; k == 1 && *line; line = strchr(line, '\n') + 1) {
            *strchr(line, '\n') = '\0';
            const char *params[] = {line};
            char *outcome = testdb_value(
                db,
                "SELECT ingest_record(b->>'tenant', b->>'id', '\\x00', b->>'type',"
                " (b->>'time')::timestamptz, b) FROM (SELECT $1::jsonb AS b) r",
                1, params);
            ck_assert_str_eq(outcome, "accepted");
            free(outcome);
            line[strlen(line)] = '\n';
        }
        fm_buf_free(&nd);
    }
    a = stored_state("batched");
    b = stored_state("by-record");
    ck_assert_str_eq(a, b);
    ck_assert_msg(strstr(a, ",9999,999,90000,") == NULL && strstr(a, ",7000,900,90000,") != NULL,
                  "not the sample's peak with the stop's CPU: %s", a);
    free(a);
    free(b);
}
END_TEST

START_TEST(direct_and_staged_paths_store_alike)
{
    /* m6's start first, in a request of its own, for both tenants. */
    for (int k = 0; k < 2; k++) {
        struct fm_buf b;
        fm_buf_init(&b, 4096);
        add_record(&b, k ? "staged" : "direct", "start", "m6", "2026-11-05T14:00:00Z", "resize",
                   START_REST);
        expect(post(ingest_key, "application/x-ndjson", b.data), 200,
               "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
        fm_buf_free(&b);
    }
    /* The same batch: as it is for one tenant; with a record repeated inside it, which
     * sends the whole batch down the staged path, for the other. */
    char *direct = mixed_batch("direct");
    expect(post(ingest_key, "application/x-ndjson", direct), 200,
           "{\"accepted\":9,\"duplicates\":0,\"rejected\":[]}");
    char *staged = mixed_batch("staged");
    char twice[8192];
    snprintf(twice, sizeof twice, "%s%s", staged, strchr(staged, '\n') + 1);
    expect(post(ingest_key, "application/x-ndjson", twice), 200,
           "{\"accepted\":9,\"duplicates\":8,\"rejected\":[]}");
    free(direct);
    free(staged);

    char *a = stored_state("direct"), *b = stored_state("staged");
    ck_assert_str_eq(a, b);
    expect_value("SELECT count(*) FROM tenants WHERE tenant IN ('direct', $1)", "staged", "2");
    free(b);
    /* And what they both say, for the joins the two paths make each in their own way. */
    char *invocations = strndup(a, strcspn(a, "\n"));
    ck_assert_str_eq(
        invocations,
        "(m1,\"2026-11-05 10:00:00+00\",resize,t,t,512,9000,f,queue,up-1,"
        "\"2026-11-05 10:00:00.2+00\",200000,1500,ok,0,7000,900,70000,10,20);"
        "(m2,\"2026-11-05 11:00:00.8+00\",late-name,t,t,512,9000,f,queue,up-stop,"
        "\"2026-11-05 11:00:01+00\",200000,1500,ok,0,7000,900,70000,10,20);"
        "(m3,\"2026-10-31 23:59:59.9+00\",resize,f,t,512,,f,,,\"2026-11-01 00:00:00.1+00\","
        "200000,1500,ok,0,7000,900,70000,10,20);"
        "(m4,\"2026-11-05 12:00:00+00\",resize,t,f,512,9000,t,queue,,,,,,,,,,,);"
        "(m5,\"2026-11-05 13:00:00+00\",resize,t,t,512,9000,t,queue,up-5,"
        "\"2026-11-05 13:00:00.2+00\",200000,0,error,3,1,2,3,4,0);"
        "(m6,\"2026-11-05 14:00:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-05 14:00:00.2+00\",200000,1500,ok,0,7000,900,70000,10,20)");
    free(invocations);
    free(a);

    /* Direct: both m6 starts, and the whole first batch, m6's stop of a stored start too. */
    ck_assert_int_eq(direct_total(), 11);
}
END_TEST

/* Post the batch in b (then freed): as it is, or with its first record repeated at its
 * end, which sends the whole batch down the staged path. Either way its records but the
 * repeat are accepted; direct of them take the direct path when it is not staged. */
static void post_batch(struct fm_buf *b, bool staged, int accepted, long direct)
{
    long before = direct_total();
    if (staged) {
        char *first = strndup(b->data, strcspn(b->data, "\n") + 1);
        fm_buf_puts(b, first);
        free(first);
    }
    ck_assert(!b->failed);
    char answer[96];
    snprintf(answer, sizeof answer, "{\"accepted\":%d,\"duplicates\":%d,\"rejected\":[]}",
             accepted, staged ? 1 : 0);
    expect(post(ingest_key, "application/x-ndjson", b->data), 200, answer);
    fm_buf_free(b);
    ck_assert_int_eq(direct_total(), before + (staged ? 0 : direct));
}

START_TEST(lone_stops_of_stored_starts_take_the_direct_path)
{
    for (int k = 0; k < 2; k++) {
        const char *t = k ? "lone-staged" : "lone-direct";
        bool staged = k == 1;
        post_stored_starts(t);
        /* Two lone stops of stored starts. */
        struct fm_buf b;
        fm_buf_init(&b, 8192);
        add_record(&b, t, "stop", "s1", "2026-11-06T10:00:01Z", "renamed",
                   STOP_REST ",\"correlation_id\":\"other\"");
        add_record(&b, t, "stop", "s2", "2026-11-06T10:30:01Z", "renamed", STOP_REST);
        post_batch(&b, staged, 2, 2);
        /* A second stop of s1 under another id, which finds s1 stopped, and s3's stop: the
         * whole batch then takes the staged path, where the second stop replaces the first. */
        fm_buf_init(&b, 8192);
        add_record(&b, t, "stop", "s3", "2026-11-06T11:00:02Z", "renamed", STOP_REST);
        fm_buf_printf(&b,
                      "{\"id\":\"s1:again\",\"type\":\"stop\",\"invocation_id\":\"s1\","
                      "\"tenant\":\"%s\",\"function\":\"resize\","
                      "\"time\":\"2026-11-06T10:00:05Z\",%s}\n",
                      t,
                      "\"memory_mb\":2048,\"cold_start\":false,\"duration_us\":5000000,"
                      "\"init_us\":0,\"status\":\"error\",\"exit_code\":9,\"cpu_user_us\":1,"
                      "\"cpu_sys_us\":1,\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1");
        post_batch(&b, staged, 2, 0);
        /* New invocations beside a late sample of a stored invocation that has its stop
         * (s2), above its peak: all direct, the sample raising the peak (and the usage with
         * it). Then a lone stop beside a late sample below the peak (s3): direct too. */
        fm_buf_init(&b, 8192);
        add_record(&b, t, "start", "s4", "2026-11-06T12:00:00Z", "resize", START_REST);
        add_record(&b, t, "stop", "s4", "2026-11-06T12:00:00.2Z", "resize", STOP_REST);
        add_record(&b, t, "resource", "s2", "2026-11-06T10:30:00.5Z", "resize",
                   "\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":99999");
        add_record(&b, t, "start", "s5", "2026-11-06T13:00:00Z", "resize", START_REST);
        add_record(&b, t, "start", "s6", "2026-11-06T14:00:00Z", "resize", START_REST);
        post_batch(&b, staged, 5, 5);
        fm_buf_init(&b, 8192);
        add_record(&b, t, "stop", "s5", "2026-11-06T13:00:01Z", "resize", STOP_REST);
        add_record(&b, t, "resource", "s3", "2026-11-06T11:00:00.5Z", "resize",
                   "\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":1");
        post_batch(&b, staged, 2, 2);
        /* Samples of a running invocation (s6), without its start or stop: direct. Its row
         * keeps the largest of each figure. */
        fm_buf_init(&b, 8192);
        static const char *const running[][2] = {
            {"1", "\"cpu_user_us\":5,\"cpu_sys_us\":9,\"max_rss_kb\":100"},
            {"2", "\"cpu_user_us\":8,\"cpu_sys_us\":2,\"max_rss_kb\":50"}};
        for (int i = 0; i < 2; i++)
            fm_buf_printf(&b,
                          "{\"id\":\"s6:res:%s\",\"type\":\"resource\",\"invocation_id\":"
                          "\"s6\",\"tenant\":\"%s\",\"function\":\"resize\","
                          "\"time\":\"2026-11-06T14:00:00.%sZ\",%s}\n",
                          running[i][0], t, running[i][0], running[i][1]);
        post_batch(&b, staged, 2, 2);
        expect_value("SELECT concat_ws('|', has_stop, cpu_user_us, cpu_sys_us, max_rss_kb)"
                     " FROM invocations WHERE tenant = $1 AND invocation_id = 's6'",
                     t, "f|8|9|100");
        /* A stop with a sample of its stored invocation, above its own peak and with more
         * CPU: direct, keeping the sample's peak and the stop's CPU. */
        fm_buf_init(&b, 8192);
        add_record(&b, t, "resource", "s6", "2026-11-06T14:00:00.5Z", "resize",
                   "\"cpu_user_us\":99999,\"cpu_sys_us\":9,\"max_rss_kb\":123456");
        add_record(&b, t, "stop", "s6", "2026-11-06T14:00:01Z", "resize", STOP_REST);
        post_batch(&b, staged, 2, 2);
    }
    char *a = stored_state("lone-direct"), *b = stored_state("lone-staged");
    ck_assert_str_eq(a, b);
    char *invocations = strndup(a, strcspn(a, "\n"));
    ck_assert_str_eq(
        invocations,
        "(s1,\"2026-11-06 10:00:00+00\",resize,t,t,2048,9000,f,queue,up-1,"
        "\"2026-11-06 10:00:05+00\",5000000,0,error,9,1,1,70000,1,1);"
        "(s2,\"2026-11-06 10:30:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-06 10:30:01+00\",200000,1500,ok,0,7000,900,99999,10,20);"
        "(s3,\"2026-11-06 11:00:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-06 11:00:02+00\",200000,1500,ok,0,7000,900,70000,10,20);"
        "(s4,\"2026-11-06 12:00:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-06 12:00:00.2+00\",200000,1500,ok,0,7000,900,70000,10,20);"
        "(s5,\"2026-11-06 13:00:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-06 13:00:01+00\",200000,1500,ok,0,7000,900,70000,10,20);"
        "(s6,\"2026-11-06 14:00:00+00\",resize,t,t,512,9000,f,queue,,"
        "\"2026-11-06 14:00:01+00\",200000,1500,ok,0,7000,900,123456,10,20)");
    free(invocations);
    free(a);
    free(b);

    /* The stops and samples go to the database in a string constant: a quote and a
     * backslash in an invocation id must arrive as they are. */
    static const char odd_id[] = "it's\\\\here";
    static const char *const records[][3] = {
        {"start", "2026-11-07T10:00:00Z", START_REST},
        {"resource", "2026-11-07T10:00:00.1Z",
         "\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":99999"},
        {"stop", "2026-11-07T10:00:00.2Z", STOP_REST}};
    long before = direct_total();
    for (int k = 0; k < 3; k++) {
        struct fm_buf nd;
        fm_buf_init(&nd, 4096);
        add_record(&nd, "lone-direct", records[k][0], odd_id, records[k][1], "resize",
                   records[k][2]);
        expect(post(ingest_key, "application/x-ndjson", nd.data), 200,
               "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}");
        fm_buf_free(&nd);
    }
    ck_assert_int_eq(direct_total(), before + 3);
    expect_value("SELECT concat_ws('|', has_start, has_stop, duration_us, max_rss_kb)"
                 " FROM invocations WHERE tenant = 'lone-direct' AND invocation_id = $1",
                 "it's\\here", "t|t|200000|99999");
}
END_TEST

START_TEST(a_tenant_named_null_is_a_tenant)
{
    /* Tenant names are letters, digits, '_' and '-': "null" is one, and must not become
     * SQL's NULL on its way into an array or a JSON constant, on the direct path (new
     * invocations, then a lone stop of a stored one) or the staged one (a stop with a
     * sample, and a repeated record). */
    struct fm_buf b;
    fm_buf_init(&b, 4096);
    add_record(&b, "null", "start", "z1", "2026-11-07T10:00:00Z", "resize", START_REST);
    add_record(&b, "null", "start", "z2", "2026-11-07T10:00:00Z", "resize", START_REST);
    post_batch(&b, false, 2, 2);
    fm_buf_init(&b, 4096);
    add_record(&b, "null", "stop", "z1", "2026-11-07T10:00:00.2Z", "resize", STOP_REST);
    add_record(&b, "null", "resource", "z1", "2026-11-07T10:00:00.1Z", "resize",
               "\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":1");
    post_batch(&b, true, 2, 0);
    fm_buf_init(&b, 4096);
    add_record(&b, "null", "stop", "z2", "2026-11-07T10:00:00.2Z", "resize", STOP_REST);
    post_batch(&b, false, 1, 1);
    expect_value("SELECT count(*) FROM tenants WHERE tenant = $1", "null", "1");
    expect_value("SELECT count(*) FROM invocations WHERE tenant = $1 AND has_start AND has_stop",
                 "null", "2");
}
END_TEST

START_TEST(large_batches_parse_whole)
{
    /* Enough records that their parsed form outgrows a first block of memory many times. */
    enum { N = 200 };
    struct fm_buf json, ndjson;
    fm_buf_init(&json, 64 * 1024);
    fm_buf_init(&ndjson, 64 * 1024);
    fm_buf_puts(&json, "[");
    for (int i = 0; i < N; i++) {
        char inv[32];
        snprintf(inv, sizeof inv, "big-%03d", i);
        fm_buf_printf(&json, "%s{\"id\":\"%s:start\",\"type\":\"start\",\"invocation_id\":\"%s\","
                             "\"tenant\":\"acme\",\"function\":\"f\","
                             "\"time\":\"2026-11-08T10:00:00Z\",\"memory_mb\":128,"
                             "\"timeout_ms\":1000,\"cold_start\":false,\"trigger\":\"cli\"}",
                      i ? "," : "", inv, inv);
        fm_buf_printf(&ndjson, "%s%s\n", i == N / 2 ? "{\"id\":[1,2\n" : "",
                      strrchr(json.data, '{'));
    }
    fm_buf_puts(&json, "]");
    ck_assert(!json.failed && !ndjson.failed);
    expect(post(ingest_key, "application/json", json.data), 200,
           "{\"accepted\":200,\"duplicates\":0,\"rejected\":[]}");
    /* The same again as NDJSON, with a line cut short among them. */
    expect(post(ingest_key, "application/x-ndjson", ndjson.data), 200,
           "{\"accepted\":0,\"duplicates\":200,\"rejected\":[{\"index\":100,\"error\":"
           "\"" NOT_ONE_VALUE "\"}]}");
    expect_value("SELECT count(*) FROM records WHERE invocation_id LIKE $1", "big-%", "200");
    /* After an escaped backslash, u0000 is text: those lines are read, and each fails on its
     * own (no type); a real \u0000 still refuses its line. */
    expect(post(ingest_key, "application/x-ndjson",
                "{\"id\":\"x\\\\u0000\"}\n{\"id\":\"\\\\\"}\n{\"id\":\"\\u0001\"}\n"
                "{\"id\":\"x\\\\\\u0000\"}"),
           200,
           "{\"accepted\":0,\"duplicates\":0,\"rejected\":["
           "{\"index\":0,\"error\":\"type: missing (start, stop or resource)\"},"
           "{\"index\":1,\"error\":\"type: missing (start, stop or resource)\"},"
           "{\"index\":2,\"error\":\"type: missing (start, stop or resource)\"},"
           "{\"index\":3,\"error\":\"" NOT_ONE_VALUE "\"}]}");
    fm_buf_free(&json);
    fm_buf_free(&ndjson);

    /* At most 10,000 records a request, in either form: beyond, the request is refused. */
    struct fm_buf over_json, over_nd;
    fm_buf_init(&over_json, 1u << 20);
    fm_buf_init(&over_nd, 1u << 20);
    fm_buf_puts(&over_json, "[");
    for (int i = 0; i < 10001; i++) {
        fm_buf_puts(&over_json, i ? ",{}" : "{}");
        fm_buf_puts(&over_nd, "{}\n");
    }
    fm_buf_puts(&over_json, "]");
    ck_assert(!over_json.failed && !over_nd.failed);
    static const char over[] =
        "{\"error\":\"bad_request\",\"message\":\"more than 10000 records in one request\"}";
    expect(post(ingest_key, "application/json", over_json.data), 400, over);
    expect(post(ingest_key, "application/x-ndjson", over_nd.data), 400, over);
    fm_buf_free(&over_json);
    fm_buf_free(&over_nd);
}
END_TEST

/* ---- one record, without the server ------------------------------------------------- */

struct parsed {
    struct meter_record rec;
    char digest[METER_DIGEST_HEX];
};

/* Parse text as one record; on success fills out, else returns the error message. */
static const char *parse(const char *text, struct parsed *out)
{
    static struct fm_err err;
    cJSON *json = cJSON_Parse(text);
    int rc = meter_record_parse(json, &out->rec, &err);
    cJSON_Delete(json);
    if (rc != 0)
        return err.msg;
    meter_record_digest_hex(&out->rec, out->digest);
    return NULL;
}

static void expect_copy_text(const char *in, const char *want)
{
    struct fm_buf b;
    fm_buf_init(&b, 1024);
    fm_buf_puts(&b, "<");
    meter_copy_text(&b, in);
    ck_assert_str_eq(b.data, want);
    fm_buf_free(&b);
}

START_TEST(copy_text_escapes_its_four_characters)
{
    expect_copy_text("", "<");
    expect_copy_text("plain text", "<plain text");
    expect_copy_text("a\\b\tc\nd\re", "<a\\\\b\\tc\\nd\\re");
    expect_copy_text("\\\t\n\r", "<\\\\\\t\\n\\r");
    expect_copy_text("\t\tx\\\\", "<\\t\\tx\\\\\\\\");
    expect_copy_text("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \x01", "<h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \x01");
    /* The cap holds here as everywhere. */
    struct fm_buf b;
    fm_buf_init(&b, 4);
    meter_copy_text(&b, "ab\tc");
    ck_assert(b.failed);
    fm_buf_free(&b);
}
END_TEST

START_TEST(record_has_one_canonical_form)
{
    struct parsed p;
    ck_assert_ptr_null(parse(
        "{\"id\":\"r1:stop\",\"type\":\"stop\",\"invocation_id\":\"r1\",\"tenant\":\"acme\","
        "\"function\":\"Img.resize_2\",\"time\":\"2026-11-05T10:00:00.2Z\",\"memory_mb\":512,"
        "\"cold_start\":false,\"correlation_id\":\"a\\\\b\\tc\\nd\\re \\\"q\\\" \\u0001 h\\u00e9 "
        "\\u20ac \\ud83d\\ude00\",\"duration_us\":200000,\"init_us\":0,\"status\":\"error\","
        "\"exit_code\":-3,\"cpu_user_us\":7000,\"cpu_sys_us\":900,\"max_rss_kb\":70000,"
        "\"bytes_in\":10,\"bytes_out\":20,\"timeout_ms\":5,\"trigger\":\"http\","
        "\"extra\":{\"x\":1}}",
        &p));
    /* Fields of other types and unknown ones are dropped; integers and the time rewritten. */
    ck_assert_str_eq(
        p.rec.body,
        "{\"id\":\"r1:stop\",\"type\":\"stop\",\"invocation_id\":\"r1\",\"tenant\":\"acme\","
        "\"function\":\"Img.resize_2\",\"time\":\"2026-11-05T10:00:00.200000Z\",\"memory_mb\":512,"
        "\"cold_start\":false,\"correlation_id\":\"a\\\\b\\u0009c\\u000ad\\u000de \\\"q\\\" "
        "\\u0001 h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"duration_us\":200000,\"init_us\":0,"
        "\"status\":\"error\",\"exit_code\":-3,\"cpu_user_us\":7000,\"cpu_sys_us\":900,"
        "\"max_rss_kb\":70000,\"bytes_in\":10,\"bytes_out\":20}");
    ck_assert_str_eq(p.rec.copy_row,
                     "r1:stop\tstop\tr1\tacme\tImg.resize_2\t2026-11-05T10:00:00.200000Z\t512\t\\N\t"
                     "false\t\\N\ta\\\\b\\tc\\nd\\re \"q\" \x01 h\xc3\xa9 \xe2\x82\xac "
                     "\xf0\x9f\x98\x80\t200000\t0\terror\t-3\t7000\t900\t70000\t10\t20");
    ck_assert_str_eq(p.digest, "cf2dfee8622c34b04ed2e6391c44415521fbb6adc8fb6630add59a9225b3e7b2");
    ck_assert_str_eq(p.rec.id, "r1:stop");
    ck_assert_str_eq(p.rec.invocation_id, "r1");
    ck_assert_str_eq(p.rec.tenant, "acme");
    ck_assert_str_eq(p.rec.type, "stop");
    ck_assert_str_eq(p.rec.time_text, "2026-11-05T10:00:00.200000Z");
    ck_assert_int_eq(p.rec.time_us, INT64_C(1793872800200000));
    ck_assert_int_eq(meter_record_int(&p.rec, MF_EXIT_CODE), -3);
    ck_assert_int_eq(meter_record_int(&p.rec, MF_TIMEOUT_MS), 0);
    ck_assert_int_eq(meter_record_int(&p.rec, MF_DURATION_US), 200000);
    ck_assert_int_eq(meter_record_int(&p.rec, MF_INIT_US), 0);
    ck_assert(meter_record_is(&p.rec, MF_CORRELATION_ID,
                              "a\\\\b\\tc\\nd\\re \"q\" \x01 h\xc3\xa9 \xe2\x82\xac "
                              "\xf0\x9f\x98\x80"));
    ck_assert_int_eq(p.rec.at[MF_TIMEOUT_MS], 66);
    ck_assert_int_eq(p.rec.len[MF_TIMEOUT_MS], -1);
    ck_assert_int_eq(p.rec.at[MF_CORRELATION_ID], 78);
    ck_assert_int_eq(p.rec.len[MF_CORRELATION_ID], 32);
    ck_assert_int_eq(p.rec.at[MF_BYTES_OUT], 147);
    ck_assert_int_eq(p.rec.len[MF_BYTES_OUT], 2);
    struct fm_buf b;
    fm_buf_init(&b, 1024);
    meter_copy_text(&b, p.rec.body);
    ck_assert_ptr_nonnull(strstr(b.data, "\"correlation_id\":\"a\\\\\\\\b\\\\u0009c\\\\u000ad"));
    fm_buf_free(&b);
    meter_record_clear(&p.rec);

    /* An empty optional string is kept; one of a resource record's own fields. */
    ck_assert_ptr_null(parse("{\"id\":\"s1\",\"type\":\"resource\",\"invocation_id\":\"s1\","
                             "\"tenant\":\"acme\",\"function\":\"f\","
                             "\"time\":\"2026-11-05T23:59:59.999999Z\",\"cpu_user_us\":1,"
                             "\"cpu_sys_us\":2,\"max_rss_kb\":3,\"correlation_id\":\"\"}",
                             &p));
    ck_assert_str_eq(p.rec.body,
                     "{\"id\":\"s1\",\"type\":\"resource\",\"invocation_id\":\"s1\","
                     "\"tenant\":\"acme\",\"function\":\"f\","
                     "\"time\":\"2026-11-05T23:59:59.999999Z\",\"correlation_id\":\"\","
                     "\"cpu_user_us\":1,\"cpu_sys_us\":2,\"max_rss_kb\":3}");
    ck_assert_str_eq(p.rec.copy_row, "s1\tresource\ts1\tacme\tf\t2026-11-05T23:59:59.999999Z\t"
                                     "\\N\t\\N\t\\N\t\\N\t\t\\N\t\\N\t\\N\t\\N\t1\t2\t3\t\\N\t\\N");
    ck_assert_str_eq(p.digest, "88fc2701f0332d6b5a5fac92dea566866d87b8ac64d3fd2b74355174e4a3af59");
    ck_assert_int_eq(p.rec.len[MF_CORRELATION_ID], 0);
    meter_record_clear(&p.rec);
}
END_TEST

#define STOP_TAIL                                                                             \
    "\"invocation_id\":\"e\",\"tenant\":\"acme\",\"function\":\"f\","                         \
    "\"time\":\"2026-11-05T10:00:00Z\",\"memory_mb\":256,\"cold_start\":true,"                \
    "\"duration_us\":1,\"init_us\":0,\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,"    \
    "\"cpu_sys_us\":1,\"max_rss_kb\":1,\"bytes_in\":1,\"bytes_out\":1}"

START_TEST(record_keys_count_once_the_first_time)
{
    /* A repeated key: its first value counts, whatever follows. */
    struct parsed p;
    ck_assert_ptr_null(parse(
        "{\"type\":\"start\",\"id\":\"d1:start\",\"id\":\"ignored\",\"invocation_id\":\"d1\","
        "\"tenant\":\"acme\",\"function\":\"f\",\"time\":\"2026-11-05T10:00:00Z\","
        "\"memory_mb\":256,\"memory_mb\":\"x\",\"timeout_ms\":3000,\"cold_start\":true,"
        "\"trigger\":\"queue\",\"correlation_id\":null,\"type\":\"stop\"}",
        &p));
    ck_assert_str_eq(p.rec.body,
                     "{\"id\":\"d1:start\",\"type\":\"start\",\"invocation_id\":\"d1\","
                     "\"tenant\":\"acme\",\"function\":\"f\","
                     "\"time\":\"2026-11-05T10:00:00.000000Z\",\"memory_mb\":256,"
                     "\"timeout_ms\":3000,\"cold_start\":true,\"trigger\":\"queue\"}");
    ck_assert_str_eq(p.rec.copy_row,
                     "d1:start\tstart\td1\tacme\tf\t2026-11-05T10:00:00.000000Z\t256\t3000\ttrue\t"
                     "queue\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N");
    ck_assert_str_eq(p.digest, "3b097641d44563c6cf5b15f3c5c15a15de6475bdc08433f7f6f545cd81635aca");
    ck_assert_str_eq(p.rec.id, "d1:start");
    ck_assert_str_eq(p.rec.type, "start");
    meter_record_clear(&p.rec);
    /* A bad first value is not rescued by a good second one. */
    ck_assert_str_eq(parse("{\"id\":\"e\",\"type\":\"start\",\"memory_mb\":\"x\","
                           "\"memory_mb\":256,\"invocation_id\":\"e\",\"tenant\":\"acme\","
                           "\"function\":\"f\",\"time\":\"2026-11-05T10:00:00Z\"}",
                           &p),
                     "memory_mb: expected an integer 1-10240");
    /* The integers at their limits. */
    ck_assert_ptr_null(parse("{\"id\":\"e\",\"type\":\"stop\",\"exit_code\":-2147483648,"
                             "\"bytes_out\":1099511627776," STOP_TAIL,
                             &p));
    ck_assert_int_eq(meter_record_int(&p.rec, MF_EXIT_CODE), INT32_MIN);
    ck_assert_int_eq(meter_record_int(&p.rec, MF_BYTES_OUT), INT64_C(1099511627776));
    ck_assert_ptr_nonnull(strstr(p.rec.body, "\"exit_code\":-2147483648,"));
    ck_assert_ptr_nonnull(strstr(p.rec.copy_row, "\t-2147483648\t"));
    meter_record_clear(&p.rec);
    ck_assert_str_eq(parse("{\"type\":\"stop\",\"type\":\"start\"}", &p),
                     "id: missing (required in a stop record)");
}
END_TEST

START_TEST(record_errors_name_the_field)
{
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"7", "record: expected a JSON object"},
        {"{\"id\":\"e\"," STOP_TAIL, "type: missing (start, stop or resource)"},
        {"{\"id\":\"e\",\"type\":null," STOP_TAIL, "type: expected one of start, stop, resource"},
        {"{\"type\":\"stop\"," STOP_TAIL, "id: missing (required in a stop record)"},
        {"{\"id\":\"\",\"type\":\"stop\"," STOP_TAIL, "id: expected a string of 1-128 characters"},
        {"{\"id\":\"e\xff\",\"type\":\"stop\"," STOP_TAIL, "id: not valid UTF-8"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"exit_code\":2147483648," STOP_TAIL,
         "exit_code: expected an integer -2147483648-2147483647"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"status\":\"done\"," STOP_TAIL,
         "status: expected one of ok, error, timeout, oom, crashed, rejected"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"memory_mb\":null," STOP_TAIL,
         "memory_mb: expected an integer 1-10240"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"function\":\"\"," STOP_TAIL,
         "function: expected [A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"cold_start\":0," STOP_TAIL,
         "cold_start: expected true or false"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"time\":\"2026-11-05\"," STOP_TAIL,
         "time: expected an RFC 3339 UTC time from 1970 on, such as 2026-01-31T12:00:00.000000Z"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"correlation_id\":\""
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"," STOP_TAIL,
         "correlation_id: expected a string of 0-128 characters"},
        /* Every figure is checked for its sign, and the names for their length. */
        {"{\"id\":\"e\",\"type\":\"stop\",\"duration_us\":-1," STOP_TAIL,
         "duration_us: expected an integer 0-86400000000"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"init_us\":-1," STOP_TAIL,
         "init_us: expected an integer 0-86400000000"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"cpu_user_us\":-1," STOP_TAIL,
         "cpu_user_us: expected an integer 0-1099511627776"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"cpu_sys_us\":-1," STOP_TAIL,
         "cpu_sys_us: expected an integer 0-1099511627776"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"max_rss_kb\":-1," STOP_TAIL,
         "max_rss_kb: expected an integer 0-2147483648"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"bytes_in\":-1," STOP_TAIL,
         "bytes_in: expected an integer 0-1099511627776"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"bytes_out\":-1," STOP_TAIL,
         "bytes_out: expected an integer 0-1099511627776"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"tenant\":\""
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"," STOP_TAIL,
         "tenant: expected [a-z0-9][a-z0-9_-]{0,63}"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"function\":\""
         "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
         "fffffffffffffffffffffffffffffffffffffffffffffffff\"," STOP_TAIL,
         "function: expected [A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
        {"{\"id\":\"e\",\"type\":\"stop\",\"invocation_id\":\""
         "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"
         "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii\"," STOP_TAIL,
         "invocation_id: expected a string of 1-128 characters"},
        /* A listed field of another type is checked too, though a start does not keep it. */
        {"{\"id\":\"e:start\",\"type\":\"start\",\"invocation_id\":\"e\",\"tenant\":\"acme\","
         "\"function\":\"f\",\"time\":\"2026-11-05T10:00:00Z\",\"memory_mb\":256,"
         "\"timeout_ms\":1000,\"cold_start\":true,\"trigger\":\"http\",\"duration_us\":-5}",
         "duration_us: expected an integer 0-86400000000"},
        {"{\"id\":\"e:start\",\"type\":\"start\",\"invocation_id\":\"e\",\"tenant\":\"acme\","
         "\"function\":\"f\",\"time\":\"2026-11-05T10:00:00Z\",\"memory_mb\":256,"
         "\"timeout_ms\":1000,\"cold_start\":true,\"trigger\":\"http\",\"status\":\"bogus\"}",
         "status: expected one of ok, error, timeout, oom, crashed, rejected"},
        /* A resource sample needs its own fields too. */
        {"{\"id\":\"e:res:0\",\"type\":\"resource\",\"invocation_id\":\"e\","
         "\"tenant\":\"acme\",\"function\":\"f\",\"time\":\"2026-11-05T10:00:00Z\","
         "\"cpu_user_us\":1,\"cpu_sys_us\":1}",
         "max_rss_kb: missing (required in a resource record)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parsed p;
        const char *error = parse(cases[i].text, &p);
        ck_assert_msg(error && strcmp(error, cases[i].error) == 0, "%s: got %s", cases[i].text,
                      error ? error : "no error");
    }
}
END_TEST

/* Lengths are in characters, as DESIGN.md gives them: 128 characters may be 512 bytes. */
START_TEST(record_lengths_count_characters)
{
    struct fm_buf id, inv;
    fm_buf_init(&id, 4096);
    fm_buf_init(&inv, 4096);
    for (int i = 0; i < 128; i++) {
        fm_buf_puts(&id, "\xc3\xa9");         /* U+00E9, two bytes */
        fm_buf_puts(&inv, "\xf0\x9f\x98\x80"); /* U+1F600, four bytes */
    }
    char text[4096];
    snprintf(text, sizeof text,
             "{\"id\":\"%s\",\"type\":\"stop\",\"invocation_id\":\"%s\",\"tenant\":\"acme\","
             "\"function\":\"f\",\"time\":\"2026-11-05T10:00:00Z\",\"memory_mb\":256,"
             "\"cold_start\":true,\"duration_us\":1,\"init_us\":0,\"status\":\"ok\","
             "\"exit_code\":0,\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":1,"
             "\"bytes_in\":1,\"bytes_out\":1}",
             id.data, inv.data);
    struct parsed p;
    const char *error = parse(text, &p); /* the JSON tree is gone once parse returns */
    ck_assert_msg(error == NULL, "%s", error);
    ck_assert_str_eq(p.rec.id, id.data);
    ck_assert_str_eq(p.rec.invocation_id, inv.data);
    ck_assert_int_eq(strlen(p.rec.invocation_id), 512);
    ck_assert(meter_record_is(&p.rec, MF_INVOCATION_ID, inv.data));
    meter_record_clear(&p.rec);
    /* One character more is one too many. */
    fm_buf_puts(&id, "e");
    snprintf(text, sizeof text, "{\"id\":\"%s\",\"type\":\"stop\"," STOP_TAIL, id.data);
    ck_assert_str_eq(parse(text, &p), "id: expected a string of 1-128 characters");
    fm_buf_free(&id);
    fm_buf_free(&inv);
}
END_TEST

START_TEST(record_time_is_written_one_way)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"2026-11-05T10:00:00.123456Z", "2026-11-05T10:00:00.123456Z"},
        {"2026-11-05t10:00:00.123456Z", "2026-11-05T10:00:00.123456Z"},
        {"2026-11-05T10:00:00.123456z", "2026-11-05T10:00:00.123456Z"},
        {"2026-11-05T10:00:00.1234Z", "2026-11-05T10:00:00.123400Z"},
        {"2026-11-05T10:00:00+00:00", "2026-11-05T10:00:00.000000Z"},
        {"2026-11-05T10:00:00.5+00:00", "2026-11-05T10:00:00.500000Z"},
        {"2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"id\":\"e\",\"type\":\"stop\",\"time\":\"%s\"," STOP_TAIL,
                 cases[i].in);
        struct parsed p;
        const char *error = parse(text, &p);
        ck_assert_msg(error == NULL, "%s: %s", cases[i].in, error);
        ck_assert_str_eq(p.rec.time_text, cases[i].want);
        ck_assert(meter_record_is(&p.rec, MF_TIME, cases[i].want));
        char in_body[64];
        snprintf(in_body, sizeof in_body, "\"time\":\"%s\"", cases[i].want);
        ck_assert_ptr_nonnull(strstr(p.rec.body, in_body));
        meter_record_clear(&p.rec);
    }
}
END_TEST

/* ---- Starts and stops of the same invocations from concurrent senders ------------------- */

#define SPLIT_INVOCATIONS 240
#define SPLIT_BATCH 12

/* Sender 0 sends the starts in order, sender 1 the stops from the last to the first, each
 * in batches: every invocation's records meet in some order, often in concurrent
 * transactions, on both paths. A 503 (a lock cycle PostgreSQL broke) is sent again. */
static void *send_half(void *arg)
{
    long side = (long)arg;
    long *retries = calloc(1, sizeof *retries);
    for (int b = 0; b < SPLIT_INVOCATIONS / SPLIT_BATCH; b++) {
        struct fm_buf body;
        fm_buf_init(&body, 1u << 20);
        for (int j = 0; j < SPLIT_BATCH; j++) {
            int k = side == 0 ? b * SPLIT_BATCH + j : SPLIT_INVOCATIONS - 1 - (b * SPLIT_BATCH + j);
            char inv[32], t0[40], t1[40];
            snprintf(inv, sizeof inv, "split-%03d", k);
            snprintf(t0, sizeof t0, "2026-11-09T10:%02d:%02d.000000Z", k / 60, k % 60);
            snprintf(t1, sizeof t1, "2026-11-09T10:%02d:%02d.200000Z", k / 60, k % 60);
            if (side == 0)
                add_record(&body, "split", "start", inv, t0, "resize", START_REST);
            else
                add_record(&body, "split", "stop", inv, t1, "resize", STOP_REST);
        }
        for (;;) {
            struct http_reply r = post(ingest_key, "application/x-ndjson", body.data);
            long status = r.status;
            int accepted = -1;
            sscanf(r.body ? r.body : "", "{\"accepted\":%d", &accepted);
            free(r.body);
            if (status == 503) {
                ++*retries;
                continue;
            }
            ck_assert_int_eq(status, 200);
            ck_assert_int_eq(accepted, SPLIT_BATCH);
            break;
        }
        fm_buf_free(&body);
    }
    return retries;
}

START_TEST(starts_and_stops_from_concurrent_senders_meet_once)
{
    pthread_t th[2];
    for (long k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, send_half, (void *)k), 0);
    long retries = 0;
    for (int k = 0; k < 2; k++) {
        long *n;
        pthread_join(th[k], (void **)&n);
        retries += *n;
        free(n);
    }
    if (retries > 0)
        fprintf(stderr, "starts_and_stops_from_concurrent_senders_meet_once: %ld batches sent "
                        "again after a 503\n", retries);
    expect_value("SELECT concat_ws('|', count(*), count(*) FILTER (WHERE has_start AND has_stop"
                 " AND timeout_ms = 9000 AND duration_us = 200000))"
                 " FROM invocations WHERE tenant = $1",
                 "split", "240|240");
    expect_value("SELECT count(*) FROM records WHERE tenant = $1", "split", "480");
    expect_value("SELECT concat_ws('|', sum(invocations), sum(duration_us), sum(cpu_us))"
                 " FROM usage_hourly WHERE tenant = $1",
                 "split", "240|48000000|1896000");
    expect_value("SELECT concat_ws('|', count(DISTINCT plan), sum(invocations))"
                 " FROM usage_rated WHERE tenant = $1",
                 "split", "6|1440");
}
END_TEST

/* A value of sql run on conn with up to two text parameters; the caller frees it. */
static char *value_on(PGconn *conn, const char *sql, const char *p1, const char *p2)
{
    const char *params[] = {p1, p2};
    return testdb_value(conn, sql, p2 ? 2 : p1 ? 1 : 0, params);
}

static void expect_on(PGconn *conn, const char *sql, const char *p1, const char *p2,
                      const char *want)
{
    char *v = value_on(conn, sql, p1, p2);
    ck_assert_str_eq(v, want);
    free(v);
}

#define PROBE_SQL                                                                             \
    "SELECT coalesce(string_agg(o::text, ',' ORDER BY o), '') FROM ingest_direct_prepare("   \
    "ARRAY['2026-11-06T00:00:00Z'::timestamptz], $1::text[], $2::text[]) o"
#define STOP_SQL                                                                              \
    "SELECT coalesce(string_agg(invocation_id, ',' ORDER BY invocation_id), '')"             \
    " FROM invocations_stop((SELECT jsonb_agg(jsonb_build_object('tenant', 'p',"             \
    " 'invocation_id', i, 'time', '2026-11-06T12:00:00Z', 'memory_mb', 128, 'cold_start',"   \
    " false, 'duration_us', 1000, 'init_us', 0, 'status', 'ok', 'exit_code', 0,"             \
    " 'cpu_user_us', 1, 'cpu_sys_us', 1, 'max_rss_kb', 1, 'bytes_in', 1, 'bytes_out', 1)"    \
    " ORDER BY o) FROM unnest($1::text[]) WITH ORDINALITY AS u(i, o)), $2::boolean)"

#define STAGE_SQL                                                                             \
    "INSERT INTO ingest_stage (id, type, invocation_id, tenant, function, time, memory_mb,"    \
    " cold_start, duration_us, init_us, status, exit_code, cpu_user_us, cpu_sys_us,"          \
    " max_rss_kb, bytes_in, bytes_out, ord, digest, body)"                                    \
    " SELECT i, 'stop', i, 'p', 'f', '2026-11-06T12:00:00Z', 128, false, 1000, 0, 'ok', 0,"   \
    " 1, 1, 1, 1, 1, o - 1, '\\x00', '{}' FROM unnest($1::text[]) WITH ORDINALITY AS u(i, o)" \
    " RETURNING ord"
#define STAGED_SQL "SELECT string_agg(ord || outcome, ',' ORDER BY ord) FROM ingest_staged()"
/* What the session read of the tables so far: index entries of their keys, and rows by
 * sequential scans; the invocations' summed over their partitions. */
#define PARTITIONS_SUM(what)                                                                  \
    "(SELECT sum(pg_stat_get_xact_tuples_returned(" what ")) FROM pg_inherits h"             \
    " JOIN pg_index x ON x.indrelid = h.inhrelid AND x.indisprimary"                          \
    " WHERE h.inhparent = 'invocations'::regclass)"
#define READS_SQL                                                                             \
    "SELECT pg_stat_get_xact_tuples_returned('invocation_ids_pkey'::regclass) AS ids, "       \
    PARTITIONS_SUM("x.indexrelid") " AS invs,"                                               \
    " pg_stat_get_xact_tuples_returned('record_ids_pkey'::regclass) AS recs,"                 \
    " pg_stat_get_xact_tuples_returned('record_ids'::regclass) AS recs_seq,"                  \
    " pg_stat_get_xact_tuples_returned('invocation_ids'::regclass) AS ids_seq, "              \
    PARTITIONS_SUM("x.indrelid") " AS invs_seq"

/*
 * A writer's session keeps the plans of the direct path's probe, of the stops of stored
 * invocations and of the staged path. Made while the tables were empty and analyzed so,
 * they must still reach each key by an index probe once the tables hold rows: the index
 * entries and the rows the calls read are counted, one a key found, none by a sequential
 * scan.
 */
START_TEST(probes_stay_probes_over_tables_analyzed_empty)
{
    char plans_db[1024];
    testdb_create("faasmeter_test_meter_plans", plans_db, sizeof plans_db);
    PGconn *writer = testdb_connect(plans_db), *other = testdb_connect(plans_db);
    testdb_exec(other, "SELECT ensure_month_partition('invocations', '2026-11-06T00:00:00Z');"
                       " ANALYZE");
    /* The writer's first batches, over empty tables: PL/pgSQL keeps a generic plan from the
     * sixth call on. Each staged batch is a new stop, rolled back. */
    testdb_exec(writer, "SELECT ingest_prepare_session()");
    for (int i = 0; i < 6; i++) {
        expect_on(writer, PROBE_SQL, "{p}", "{i7}", "");
        expect_on(writer, STOP_SQL, "{i7}", "false", "");
        char ids[16];
        snprintf(ids, sizeof ids, "{e%d}", i);
        testdb_exec(writer, "BEGIN");
        free(value_on(writer, STAGE_SQL, ids, NULL));
        expect_on(writer, STAGED_SQL, NULL, NULL, "0accepted");
        testdb_exec(writer, "ROLLBACK");
    }
    testdb_exec(other,
                "INSERT INTO invocation_ids SELECT 'p', 'i' || k,"
                " '2026-11-06T00:00:00Z'::timestamptz + k * interval '1 second'"
                " FROM generate_series(1, 2000) k;"
                " INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
                " memory_mb, timeout_ms, cold_start, trigger)"
                " SELECT tenant, invocation_id, started_at, 'f', true, 128, 60000, false, 'http'"
                " FROM invocation_ids;"
                " INSERT INTO record_ids SELECT tenant, invocation_id, '\\x00', started_at"
                " FROM invocation_ids");
    testdb_exec(writer, "BEGIN; CREATE TEMP TABLE reads_before AS " READS_SQL);
    expect_on(writer, PROBE_SQL, "{p,p,p}", "{i7,new,i1500}", "1,3");
    expect_on(writer, STOP_SQL, "{i7,i1500}", "true", "i1500,i7");
    /* A stored record again (the same digest) and a new stop. */
    free(value_on(writer, STAGE_SQL, "{i9,n1}", NULL));
    expect_on(writer, STAGED_SQL, NULL, NULL, "0duplicate,1accepted");
    /* Index entries read through invocation_ids' key (the probe and the stops' locks: two
     * each; none for the new stop), through the invocations' (the two rows stopped) and
     * through record_ids' (the repeat's: its claim and its digest); rows of record_ids,
     * invocation_ids and invocations read by sequential scans. The session's counters run
     * on until it reports them, never inside a transaction: the reads before are taken
     * away. */
    expect_on(writer,
              "SELECT concat_ws('/', r.ids - b.ids, r.invs - b.invs, r.recs - b.recs,"
              " r.recs_seq - b.recs_seq, r.ids_seq - b.ids_seq, r.invs_seq - b.invs_seq)"
              " FROM (" READS_SQL ") r, reads_before b",
              NULL, NULL, "4/2/2/0/0/0");
    testdb_exec(writer, "COMMIT");
    expect_on(other,
              "SELECT concat_ws('|', count(*) FILTER (WHERE has_stop),"
              " string_agg(invocation_id, ',' ORDER BY invocation_id) FILTER (WHERE has_stop),"
              " (SELECT count(*) FROM usage_delta)) FROM invocations",
              NULL, NULL, "3|i1500,i7,n1|3");
    PQfinish(writer);
    PQfinish(other);
}
END_TEST

/*
 * A stop of a stored invocation waits for the invocation's key while another transaction
 * holds it and updates the invocation (here a resource sample, record by record). Once
 * that commits, the stop is stored on the invocation as the other left it.
 */
START_TEST(a_stop_stores_onto_the_row_another_updated_while_it_waited)
{
    testdb_exec(db, "SELECT ensure_month_partition('invocations', '2026-11-06T00:00:00Z');"
                    " INSERT INTO invocation_ids VALUES ('waiter', 'w1', '2026-11-06T10:00:00Z');"
                    " INSERT INTO invocations (tenant, invocation_id, started_at, function,"
                    " has_start, memory_mb, timeout_ms, cold_start, trigger, max_rss_kb)"
                    " VALUES ('waiter', 'w1', '2026-11-06T10:00:00Z', 'f', true, 128, 60000,"
                    " false, 'http', 10)");
    PGconn *holder = testdb_connect(conninfo), *stopper = testdb_connect(conninfo);
    testdb_exec(holder, "BEGIN; SELECT invocation_apply('waiter', 'resource',"
                        " '2026-11-06T10:00:05Z', '{\"invocation_id\":\"w1\",\"max_rss_kb\":50,"
                        "\"cpu_user_us\":5,\"cpu_sys_us\":5}')");
    ck_assert_int_eq(
        PQsendQuery(stopper,
                    "SELECT string_agg(invocation_id, ',') FROM invocations_stop('[{\"tenant\":"
                    "\"waiter\",\"invocation_id\":\"w1\",\"time\":\"2026-11-06T10:00:09Z\","
                    "\"memory_mb\":256,\"cold_start\":false,\"duration_us\":9000000,"
                    "\"init_us\":0,\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":1,"
                    "\"cpu_sys_us\":1,\"max_rss_kb\":20,\"bytes_in\":1,\"bytes_out\":1}]',"
                    " true)"),
        1);
    /* Until the stopper waits for the key (the test is about that wait). */
    bool waits = false;
    for (int i = 0; i < 1000 && !waits; i++) {
        char *waiting = testdb_value(db,
                                     "SELECT count(*) FROM pg_stat_activity"
                                     " WHERE wait_event_type = 'Lock' AND query LIKE"
                                     " '%invocations_stop(%' AND pid <> pg_backend_pid()",
                                     0, NULL);
        waits = strcmp(waiting, "1") == 0;
        free(waiting);
        if (!waits)
            usleep(10000);
    }
    ck_assert_msg(waits, "the stop never waited for the key");
    testdb_exec(holder, "COMMIT");
    PGresult *res = PQgetResult(stopper);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "w1");
    PQclear(res);
    while ((res = PQgetResult(stopper)) != NULL)
        PQclear(res);
    expect_value("SELECT concat_ws('|', has_stop, memory_mb, max_rss_kb, cpu_user_us,"
                 " (SELECT sum(invocations) FROM usage_hourly WHERE tenant = $1))"
                 " FROM invocations WHERE tenant = $1",
                 "waiter", "t|256|50|1|1");
    PQfinish(holder);
    PQfinish(stopper);
}
END_TEST

Suite *suite_meter(void)
{
    Suite *s = suite_create("meter");
    TCase *tc = tcase_create("records");
    tcase_add_unchecked_fixture(tc, suite_setup, NULL);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, start_and_stop_make_one_invocation);
    tcase_add_test(tc, repeats_are_duplicates_and_changes_are_conflicts);
    tcase_add_test(tc, stop_before_start);
    tcase_add_test(tc, a_stop_dates_an_invocation_its_samples_came_before);
    tcase_add_test(tc, bad_records_are_named_and_good_ones_kept);
    tcase_add_test(tc, requests_are_checked_before_anything_is_stored);
    tcase_add_test(tc, health_and_unknown_paths);
    tcase_add_test(tc, months_get_their_own_partitions);
    tcase_add_test(tc, orphans_are_closed_as_lost_and_replaced_by_a_late_stop);
    tcase_add_test(tc, concurrent_requests_stay_exactly_once);
    tcase_add_test(tc, a_stopped_group_answers_at_once);
    tcase_add_test(tc, stops_of_stored_starts_store_alike_alone_or_with_samples);
    tcase_add_test(tc, direct_and_staged_paths_store_alike);
    tcase_add_test(tc, lone_stops_of_stored_starts_take_the_direct_path);
    tcase_add_test(tc, starts_and_stops_from_concurrent_senders_meet_once);
    tcase_add_test(tc, large_batches_parse_whole);
    tcase_add_test(tc, a_tenant_named_null_is_a_tenant);
    tcase_add_test(tc, probes_stay_probes_over_tables_analyzed_empty);
    tcase_add_test(tc, a_stop_stores_onto_the_row_another_updated_while_it_waited);
    suite_add_tcase(s, tc);
    TCase *one = tcase_create("record");
    tcase_add_test(one, copy_text_escapes_its_four_characters);
    tcase_add_test(one, record_has_one_canonical_form);
    tcase_add_test(one, record_keys_count_once_the_first_time);
    tcase_add_test(one, record_errors_name_the_field);
    tcase_add_test(one, record_lengths_count_characters);
    tcase_add_test(one, record_time_is_written_one_way);
    suite_add_tcase(s, one);
    return s;
}
