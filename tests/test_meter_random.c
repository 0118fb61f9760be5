/*
 * meterd under requests made at random from its own API's words, against a real PostgreSQL
 * over real HTTP: every request gets an answer below 500 (JSON where it says JSON), the
 * server stays up, and the database holds exactly the records the answers accepted.
 * A fixed seed makes every run send the same requests.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "billing/catalog.h"
#include "common/apikey.h"
#include "common/buf.h"
#include "meter/http.h"
#include "tests/httpc.h"
#include "tests/suites.h"
#include "tests/testdb.h"

#define REQUESTS 1500
#define RAW_REQUESTS 300

static char conninfo[1024];
static char admin_key[APIKEY_LEN + 1];
static char ingest_key[APIKEY_LEN + 1];
static char acme_key[APIKEY_LEN + 1];

static struct meter_server *server;
static struct bill_catalog *catalog;
static unsigned port;
static PGconn *db;

static void suite_setup(void)
{
    testdb_create("faasmeter_test_meter_random", conninfo, sizeof conninfo);
    PGconn *conn = testdb_connect(conninfo);
    testdb_exec(conn, "INSERT INTO tenants (tenant, plan) VALUES ('acme', 'aws-lambda-x86'),"
                      " ('globex', 'aws-lambda-x86')");
    testdb_add_key(conn, admin_key, "admin", NULL);
    testdb_add_key(conn, ingest_key, "ingest", NULL);
    testdb_add_key(conn, acme_key, "tenant", "acme");
    PQfinish(conn);
}

static void test_setup(void)
{
    struct fm_err err;
    ck_assert_msg(bill_catalog_load(NULL, &catalog, &err) == BILL_OK, "%s", err.msg);
    struct meter_config cfg;
    meter_config_defaults(&cfg);
    cfg.port = 0;
    cfg.body_limit = 64u * 1024;
    cfg.conninfo = conninfo;
    cfg.catalog = catalog;
    ck_assert_msg(meter_server_start(&cfg, &server, &err) == 0, "%s", err.msg);
    port = meter_server_port(server);
    db = testdb_connect(conninfo);
}

static void test_teardown(void)
{
    meter_server_stop(server); /* before the catalog it borrows */
    server = NULL;
    bill_catalog_free(catalog);
    catalog = NULL;
    PQfinish(db);
    db = NULL;
}

/* ---- the words requests are made of -------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t below(size_t n)
{
    return (size_t)(next() % n);
}

#define PICK(a) ((a)[below(sizeof(a) / sizeof((a)[0]))])

static const char *const methods[] = {"GET", "GET", "POST", "POST", "POST", "PUT",
                                      "DELETE", "HEAD", "PATCH", "OPTIONS"};
static const char *const paths[] = {
    "/v1/records", "/v1/records", "/v1/records", "/healthz", "/metrics", "/v1/usage",
    "/v1/usage", "/v1/invoices", "/v1/invoices", "/v1/invoices/INV-1",
    "/v1/invoices/x/finalize", "/v1/compare", "/", "/v1", "/v1/records/", "/v1/records/x",
    "//v1/usage", "/v1/invoices/%00", "/v1/invoices/%2e%2e/finalize", "/V1/RECORDS",
    "/v1/invoices//finalize", "/healthz/"};
static const char *const keys[] = {"tenant", "period", "from", "to", "window", "function",
                                   "plan", "server", "tenant", "period"};
static const char *const values[] = {
    "acme", "globex", "nobody", "", "2026-11", "2026-13", "2026-11-03T10:00:00Z",
    "2026-11-03", "hour", "day", "month", "year", "-1", "99999999999999999999", "%00",
    "%ZZ", "%C3%A9", "%27%3B%20DROP%20TABLE%20records%3B--", "0001-01",
    "9999-12-31T23:59:59Z", "2026-11-03T10:00:00%2B02:00", "aws-lambda-x86", "t3.micro",
    "1e3", "%0A", "a%20b"};
static const char *const content_types[] = {
    "Content-Type: application/json", "Content-Type: application/x-ndjson",
    "Content-Type: application/x-ndjson", "Content-Type: text/plain",
    "Content-Type: application/json; charset=utf-8", "Content-Type: ", NULL};
static const char *const json_values[] = {
    "0", "-1", "1", "1.5", "1e308", "-1e308", "9007199254740993", "18446744073709551616",
    "\"1\"", "null", "true", "false", "[]", "{}", "\"\"", "\"\\u0000\"", "\"\\ud800\"",
    "\"stop\"", "\"start\"", "\"resource\"", "\"ok\"", "\"error\"", "\"timeout\"",
    "\"2026-11-03T10:00:00Z\"", "\"2026-11-03T10:00:00.1234567Z\"", "\"1969-12-31T23:59:59Z\"",
    "\"acme\"", "\"globex\"", "\"null\"", "\"Acme\"", "\"a b\"", "\"\xc3\xa9\"", "128", "10240", "10241"};
static const char *const fields[] = {
    "id", "type", "invocation_id", "tenant", "function", "time", "memory_mb", "timeout_ms",
    "cold_start", "trigger", "correlation_id", "duration_us", "init_us", "status",
    "exit_code", "cpu_user_us", "cpu_sys_us", "max_rss_kb", "bytes_in", "bytes_out", "extra"};

/* A record much like the runtime's, from a small set of ids so that repeats and
 * conflicts happen, with a field or two changed to any of the words above. */
static void add_record(struct fm_buf *b)
{
    unsigned inv = (unsigned)below(300);
    bool stop = below(2);
    char rec[1024];
    snprintf(rec, sizeof rec,
             "\"id\":\"r%u:%s\",\"type\":\"%s\",\"invocation_id\":\"r%u\","
             "\"tenant\":\"%s\",\"function\":\"f\",\"time\":\"2026-11-03T10:00:0%uZ\","
             "\"memory_mb\":128",
             inv, stop ? "stop" : "start", stop ? "stop" : "start", inv,
             below(4) ? "acme" : "globex", (unsigned)below(2));
    fm_buf_puts(b, "{");
    fm_buf_puts(b, rec);
    if (stop)
        fm_buf_puts(b, ",\"duration_us\":1000,\"init_us\":0,\"status\":\"ok\",\"exit_code\":0,"
                       "\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":1,\"bytes_in\":1,"
                       "\"bytes_out\":1");
    else
        fm_buf_puts(b, ",\"timeout_ms\":3000,\"cold_start\":false,\"trigger\":\"http\"");
    for (size_t n = below(2) ? 0 : 1 + below(2); n > 0; n--)
        fm_buf_printf(b, ",\"%s\":%s", PICK(fields), PICK(json_values));
    fm_buf_puts(b, "}");
}

/* A body: records as an array or as lines, now and then bent out of shape. */
static void make_body(struct fm_buf *b, bool ndjson)
{
    size_t n = below(6);
    if (!ndjson)
        fm_buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fm_buf_puts(b, ndjson ? (below(4) ? "\n" : "\n\r\n \n") : ",");
        add_record(b);
    }
    if (!ndjson)
        fm_buf_puts(b, "]");
    switch (below(8)) {
    case 0: /* cut short */
        if (b->len > 0) {
            b->len = below(b->len);
            b->data[b->len] = '\0';
        }
        break;
    case 1: /* a byte changed to any byte */
        if (b->len)
            b->data[below(b->len)] = (char)below(256);
        break;
    case 2: /* a word from the API's language dropped in */
        fm_buf_puts(b, PICK(json_values));
        break;
    case 3: /* nothing but noise */
        b->len = 0;
        for (size_t k = below(300); k > 0; k--) {
            char c = (char)below(256);
            fm_buf_append(b, &c, 1);
        }
        break;
    default:
        break;
    }
}

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    return fm_buf_append(userdata, p, size * n) == 0 ? size * n : 0;
}

/* The number after "accepted": in a 200's body, checked to be an answer to a batch. */
static long long accepted_in(const char *body, size_t records)
{
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(j != NULL, "not JSON: %s", body);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(j, "accepted");
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(j, "duplicates");
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(j, "rejected");
    ck_assert_msg(cJSON_IsNumber(acc) && cJSON_IsNumber(dup) && cJSON_IsArray(rej), "%s", body);
    long long n = (long long)acc->valuedouble;
    /* Every record of the batch is accepted, a duplicate or rejected, once. */
    ck_assert_int_eq((size_t)(n + (long long)dup->valuedouble) +
                         (size_t)cJSON_GetArraySize(rej), records);
    cJSON_Delete(j);
    return n;
}

/* Records in the body as the server would count them (lines that are not blank, or the
 * array's members); -1 when that is not known (not JSON). */
static long long records_in(const char *body, size_t len, bool ndjson)
{
    if (!ndjson) {
        cJSON *j = cJSON_ParseWithLength(body, len);
        long long n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
        cJSON_Delete(j);
        return n;
    }
    long long n = 0;
    for (const char *p = body, *end = body + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        bool blank = true;
        for (const char *c = p; c < stop && blank; c++)
            blank = *c == ' ' || *c == '\t' || *c == '\r';
        n += !blank;
        p = stop + 1;
    }
    return n;
}

static long long stored_records(void)
{
    char *v = testdb_value(db, "SELECT count(*) FROM record_ids", 0, NULL);
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

START_TEST(random_requests_get_answers_and_store_what_they_accept)
{
    long long before = stored_records(), accepted = 0;
    CURL *curl = curl_easy_init(); /* one connection, kept alive from request to request */
    ck_assert_ptr_nonnull(curl);
    for (int i = 0; i < REQUESTS; i++) {
        /* Two requests in five post records; the rest are anything. */
        bool records = below(5) < 2;
        const char *method = records ? "POST" : PICK(methods);
        const char *path = records ? "/v1/records" : PICK(paths);
        char url[1024];
        int at = snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
        for (size_t q = below(4); q > 0; q--)
            at += snprintf(url + at, sizeof url - (size_t)at, "%s%s=%s",
                           strchr(url, '?') == NULL ? "?" : "&", PICK(keys), PICK(values));

        char auth[160];
        const char *key = below(records ? 20 : 6) == 0 ? NULL
                          : records || below(3) ? (below(2) ? ingest_key : admin_key)
                                                : acme_key;
        snprintf(auth, sizeof auth, "Authorization: %s%s", below(10) ? "Bearer " : "Basic ",
                 key ? key : "x");
        if (key && below(10) == 0)
            auth[strlen(auth) - 1] ^= 1; /* a key off by one bit */
        const char *type = records && below(4) ? content_types[below(2)] : PICK(content_types);
        struct curl_slist *headers = NULL;
        if (key != NULL || below(2))
            headers = curl_slist_append(headers, auth);
        if (type != NULL)
            headers = curl_slist_append(headers, type);

        bool ndjson = type && strstr(type, "ndjson");
        struct fm_buf body, out;
        fm_buf_init(&body, 1u << 20);
        fm_buf_init(&out, 8u << 20);
        bool with_body = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
        if (with_body && strncmp(path, "/v1/invoices", 12) == 0)
            fm_buf_printf(&body, "{\"tenant\":%s,\"period\":%s}", PICK(json_values),
                          below(2) ? "\"2026-11\"" : PICK(json_values));
        else if (with_body)
            make_body(&body, ndjson);

        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
        if (strcmp(method, "HEAD") == 0)
            curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        else
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        if (with_body) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data ? body.data : "");
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body.len);
        }
        CURLcode rc = curl_easy_perform(curl);
        ck_assert_msg(rc == CURLE_OK, "request %d, %s %s: %s", i, method, url,
                      curl_easy_strerror(rc));
        long status = 0;
        char *ctype = NULL;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
        ck_assert_msg(status >= 200 && status < 500, "request %d, %s %s (%s): %ld %s", i,
                      method, url, body.data ? body.data : "", status,
                      out.data ? out.data : "");
        if (ctype != NULL && strncmp(ctype, "application/json", 16) == 0 && out.len > 0) {
            cJSON *j = cJSON_ParseWithLength(out.data, out.len);
            ck_assert_msg(j != NULL, "request %d: JSON that does not parse: %s", i, out.data);
            if (status >= 400)
                ck_assert_msg(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "error")),
                              "request %d: an error without \"error\": %s", i, out.data);
            cJSON_Delete(j);
        }
        if (status == 200 && strcmp(method, "POST") == 0 && strcmp(path, "/v1/records") == 0) {
            long long n = records_in(body.data ? body.data : "", body.len, ndjson);
            ck_assert_msg(n >= 0, "request %d: 200 for a body that is no batch", i);
            accepted += accepted_in(out.data, (size_t)n);
        }
        fm_buf_free(&body);
        fm_buf_free(&out);
        curl_slist_free_all(headers);
    }
    curl_easy_cleanup(curl);
    ck_assert_int_eq(stored_records() - before, accepted);
    ck_assert_msg(accepted > 20, "too few records accepted to tell: %lld", accepted);
}
END_TEST

/* ---- below HTTP: bytes on a socket ---------------------------------------------------- */

static const char *const raw_words[] = {
    "GET ", "POST ", "/v1/records", "/healthz", " HTTP/1.1\r\n", " HTTP/1.0\r\n",
    " HTTP/9.9\r\n", "\r\n", "\n", "Host: x\r\n", "Content-Length: 5\r\n",
    "Content-Length: -1\r\n", "Content-Length: 99999999999999999999\r\n",
    "Transfer-Encoding: chunked\r\n", "ffffffffffffffff\r\n", "0\r\n\r\n", "5\r\nhello\r\n",
    "Content-Type: application/x-ndjson\r\n", "Authorization: Bearer \r\n", "X: \x01\x7f\r\n",
    ": no-name\r\n", "Expect: 100-continue\r\n", "Connection: close\r\n", "[{}]", " ",
    "\x00", "%", "?tenant=", "&&&", "\xff\xfe"};

/* Send bytes made of HTTP's own words, close the sending side, read what comes back. */
static void raw_exchange(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct fm_buf b;
    fm_buf_init(&b, 1u << 20);
    for (size_t n = 1 + below(12); n > 0; n--) {
        const char *w = PICK(raw_words);
        fm_buf_append(&b, w, *w ? strlen(w) : 1);
    }
    if (b.len > 0)
        (void)send(fd, b.data, b.len, MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    char reply[4096];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    /* The server answers, closes, or waits for the rest of a request that ended early. */
    while (poll(&p, 1, 2000) == 1 && recv(fd, reply, sizeof reply, 0) > 0)
        ;
    close(fd);
    fm_buf_free(&b);
}

START_TEST(bytes_that_are_not_quite_http_leave_the_server_up)
{
    for (int i = 0; i < RAW_REQUESTS; i++)
        raw_exchange();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
    struct http_reply r = http_call("GET", url, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

Suite *suite_meter_random(void)
{
    Suite *s = suite_create("meter_random");
    TCase *tc = tcase_create("random");
    tcase_add_unchecked_fixture(tc, suite_setup, NULL);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, random_requests_get_answers_and_store_what_they_accept);
    tcase_add_test(tc, bytes_that_are_not_quite_http_leave_the_server_up);
    suite_add_tcase(s, tc);
    return s;
}
