/*
 * GET /v1/usage?tenant=T&from=F&to=U[&window=hour|day|month][&function=FN]
 *
 * A tenant's usage per window (calendar hours, days or months in UTC) and function, summed
 * from usage_hourly: never from raw records or invocations, so the cost of a query follows
 * the number of hours asked for, not the number of invocations in them.
 *
 * from and to are RFC 3339 UTC times ("2026-11-03T10:00:00Z") or dates ("2026-11-03",
 * meaning 00:00 UTC), on whole hours since usage is kept per hour; to is exclusive. Windows
 * at either end are cut to [from, to), and each row says the span it covers. window is day
 * when absent. Counts and microsecond sums are JSON integers (checked below 2^53);
 * milliseconds and GB-seconds are exact decimal strings.
 *
 * measured_gb_seconds is the sum of memory_mb x duration over the invocations (GB = 1024
 * MB), unrounded. A plan bills GB-seconds after rounding each invocation's duration and
 * memory up to its steps, so the billed figure on an invoice is at least this one.
 * billed_gb_seconds is that billed figure under the tenant's plan (named in the answer), as
 * usage_rated_hourly keeps it per hour the invocations started in, summed like the rest;
 * null when the plan is not registered for rating.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "billing/money.h"
#include "common/log.h"
#include "common/names.h"
#include "common/timeutil.h"
#include "meter/api.h"
#include "meter/fold.h"
#include "meter/metrics.h"
#include "meter/record.h"

#define USAGE_REPLY_MAX (16u << 20)
#define US_PER_HOUR INT64_C(3600000000)
#define JSON_INT_MAX (INT64_C(1) << 53)

static const char usage_note[] =
    "measured_gb_seconds is memory_mb x duration summed without rounding (GB = 1024 MB); "
    "billed_gb_seconds rounds each invocation up to the steps of the tenant's plan, as "
    "invoices do; both date an invocation by the hour it started in";

/* One name: a first character from `first`, then up to max - 1 from `rest`. */
/* Two digits at s into *v; false when they are not digits. */
static bool two_digits(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* "YYYY-MM-DD", from 1970 on, as 00:00 UTC of that day. */
static int date_parse(const char *s, int64_t *out)
{
    int c1, c2, m, d;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !two_digits(s, &c1) ||
        !two_digits(s + 2, &c2) || !two_digits(s + 5, &m) || !two_digits(s + 8, &d))
        return -1;
    int y = c1 * 100 + c2;
    /* From 1970 on, as times are: PostgreSQL has no year 0, and no usage precedes 1970. */
    if (y < 1970 || m < 1 || m > 12 || d < 1)
        return -1;
    int64_t first = fm_civil_to_us(y, m, 1);
    int64_t next = m == 12 ? fm_civil_to_us(y + 1, 1, 1) : fm_civil_to_us(y, m + 1, 1);
    int64_t day = fm_civil_to_us(y, m, d);
    if (day >= next || day < first)
        return -1;
    *out = day;
    return 0;
}

/* A from/to parameter: a date or an RFC 3339 UTC time on a whole hour. On failure *why
 * says what was wrong. */
static int instant_parse(const char *s, int64_t *out, const char **why)
{
    int64_t us;
    if (date_parse(s, &us) != 0 && fm_time_parse(s, &us) != 0) {
        *why = "expected an RFC 3339 UTC time from 1970 on, such as 2026-11-03T10:00:00Z, "
               "or a date YYYY-MM-DD";
        return -1;
    }
    if (us % US_PER_HOUR != 0) {
        *why = "expected a whole hour (usage is kept per hour)";
        return -1;
    }
    *out = us;
    return 0;
}

/* "2026-11-03T10:00:00Z" for a whole second; buf holds FM_TIME_BUFSZ bytes. */
static void time_text(int64_t us, char *buf)
{
    if (fm_time_format(us, buf, FM_TIME_BUFSZ) != 0 || strlen(buf) < 20) {
        buf[0] = '\0';
        return;
    }
    buf[19] = 'Z';
    buf[20] = '\0';
}

struct usage_query {
    const char *tenant;
    const char *function; /* NULL for every function */
    const char *window;   /* "hour", "day" or "month" */
    char from[FM_TIME_BUFSZ], to[FM_TIME_BUFSZ];
};

/* The query's parameters, checked; false with *refusal set to a 400 naming the first
 * parameter that is wrong. */
static bool query_parse(const struct api_request *req, const struct meter_key *key,
                        struct usage_query *q, struct reply *refusal)
{
    const char *tenant = api_tenant(req, key);
    const char *from = api_query(req, "from");
    const char *to = api_query(req, "to");
    const char *window = api_query(req, "window");
    const char *function = api_query(req, "function");
    const char *why = NULL;
    int64_t from_us = 0, to_us = 0;
    if (tenant == NULL || !fm_name_ok(tenant, false)) {
        *refusal = reply_error(E_BAD_REQUEST, "tenant: %s",
                               tenant ? "expected " FM_TENANT_RULE : "required");
        return false;
    }
    if (from == NULL || instant_parse(from, &from_us, &why) != 0) {
        *refusal = reply_error(E_BAD_REQUEST, "from: %s", from ? why : "required");
        return false;
    }
    if (to == NULL || instant_parse(to, &to_us, &why) != 0) {
        *refusal = reply_error(E_BAD_REQUEST, "to: %s", to ? why : "required");
        return false;
    }
    if (to_us <= from_us) {
        *refusal = reply_error(E_BAD_REQUEST, "to: must be after from (to is exclusive)");
        return false;
    }
    if (window == NULL)
        window = "day";
    if (strcmp(window, "hour") != 0 && strcmp(window, "day") != 0 &&
        strcmp(window, "month") != 0) {
        *refusal = reply_error(E_BAD_REQUEST, "window: expected hour, day or month");
        return false;
    }
    if (function != NULL && !fm_name_ok(function, true)) {
        *refusal = reply_error(E_BAD_REQUEST, "function: expected " FM_FUNCTION_RULE);
        return false;
    }
    q->tenant = tenant;
    q->function = function;
    q->window = window;
    time_text(from_us, q->from);
    time_text(to_us, q->to);
    return true;
}

static const char usage_sql[] =
    "SELECT to_char(greatest(u.w, $2::timestamptz) AT TIME ZONE 'UTC',"
    "               'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    "       to_char(least(u.w + ('1 ' || $4)::interval, $3::timestamptz) AT TIME ZONE 'UTC',"
    "               'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    "       u.function, u.invocations, u.errors, u.cold_starts, u.duration_us, u.init_us,"
    "       u.cpu_us, u.mb_us,"
    "       CASE WHEN EXISTS (SELECT 1 FROM plans p WHERE p.plan = $6)"
    "            THEN coalesce(r.mb_ms, 0) END"
    "  FROM (SELECT date_trunc($4, hour, 'UTC') AS w, function, sum(invocations) AS invocations,"
    "               sum(errors) AS errors, sum(cold_starts) AS cold_starts,"
    "               sum(duration_us) AS duration_us, sum(init_us) AS init_us,"
    "               sum(cpu_us) AS cpu_us, sum(memory_mb::numeric * duration_us) AS mb_us"
    "          FROM usage_hourly"
    "         WHERE tenant = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz"
    "           AND ($5::text IS NULL OR function = $5)"
    "         GROUP BY 1, 2"
    /* An hour every invocation left (dated anew by its start, come later) sums to nothing. */
    "        HAVING sum(invocations) <> 0) u"
    "  LEFT JOIN (SELECT date_trunc($4, hour, 'UTC') AS w, function, sum(mb_ms) AS mb_ms"
    "               FROM usage_rated_hourly"
    "              WHERE tenant = $1 AND plan = $6 AND hour >= $2::timestamptz"
    "                AND hour < $3::timestamptz AND ($5::text IS NULL OR function = $5)"
    "              GROUP BY 1, 2) r ON r.w = u.w AND r.function = u.function"
    " ORDER BY u.w, u.function";

/* The tenant's plan, which billed_gb_seconds is under (usage_sql's $6). */
static const char plan_sql[] = "SELECT plan FROM tenants WHERE tenant = $1";

/* A sum column as a JSON integer; false when it is not one below 2^53. */
static bool put_int(struct fm_buf *b, const char *name, const char *text)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v >= JSON_INT_MAX)
        return false;
    fm_buf_printf(b, ",\"%s\":%lld", name, v);
    return true;
}

/* A sum column divided by den, as an exact decimal string. */
static bool put_ratio(struct fm_buf *b, const char *name, const char *text, __int128 den,
                      int frac_digits)
{
    struct bill_dec n;
    char out[BILL_NUM_BUFSZ];
    if (bill_dec_parse(text, &n) != 0 || n.scale != 0 ||
        bill_ratio_format(n.units, den, frac_digits, out, sizeof out) != 0)
        return false;
    fm_buf_printf(b, ",\"%s\":\"%s\"", name, out);
    return true;
}

/* One result row as a JSON object; false when a sum does not fit the JSON rules. */
static bool put_row(struct fm_buf *b, const PGresult *res, int i)
{
    fm_buf_printf(b, "%s{\"from\":\"%s\",\"to\":\"%s\",\"function\":", i ? "," : "",
                  PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    fm_buf_json_string(b, PQgetvalue(res, i, 2));
    /* 1024 MB x 10^6 us = 2^16 x 5^6: every quotient ends within 16 decimal places. */
    bool ok = put_int(b, "invocations", PQgetvalue(res, i, 3)) &&
              put_int(b, "errors", PQgetvalue(res, i, 4)) &&
              put_int(b, "cold_starts", PQgetvalue(res, i, 5)) &&
              put_int(b, "duration_us", PQgetvalue(res, i, 6)) &&
              put_ratio(b, "duration_ms", PQgetvalue(res, i, 6), 1000, 3) &&
              put_int(b, "init_us", PQgetvalue(res, i, 7)) &&
              put_int(b, "cpu_us", PQgetvalue(res, i, 8)) &&
              put_ratio(b, "cpu_ms", PQgetvalue(res, i, 8), 1000, 3) &&
              put_ratio(b, "measured_gb_seconds", PQgetvalue(res, i, 9),
                        (__int128)1024 * 1000000, 16);
    /* MB-ms over 1024 x 1000 = 2^13 x 5^3: within 13 decimal places. */
    if (PQgetisnull(res, i, 10))
        fm_buf_puts(b, ",\"billed_gb_seconds\":null");
    else
        ok = ok && put_ratio(b, "billed_gb_seconds", PQgetvalue(res, i, 10),
                             (__int128)1024 * 1000, 13);
    fm_buf_puts(b, "}");
    return ok;
}

struct reply api_get_usage(const struct api_request *req)
{
    struct reply r;
    PGresult *res = NULL;
    struct fm_buf b;
    fm_buf_init(&b, USAGE_REPLY_MAX);
    struct meter_key key;
    if (!api_authenticate(req, &key, &r))
        goto out;
    PGconn *conn = api_db(req, &r);
    if (conn == NULL)
        goto out;
    if (strcmp(key.role, "tenant") != 0 && strcmp(key.role, "admin") != 0) {
        r = reply_error(E_FORBIDDEN, "usage needs a tenant or admin key");
        goto out;
    }
    struct usage_query q;
    if (!query_parse(req, &key, &q, &r))
        goto out;
    if (!api_may_read(&key, q.tenant)) {
        r = reply_error(E_FORBIDDEN, "this key may not read tenant %s", q.tenant);
        goto out;
    }

    /* Include every record committed so far. */
    struct fm_err ferr;
    if (meter_usage_fold(conn, NULL, &ferr) != 0) {
        metrics_db_error();
        fm_warn("usage: %s", ferr.msg);
        r = reply_error(E_UNAVAILABLE, "usage could not be read; retry later");
        goto out;
    }
    const char *params[6] = {q.tenant, q.from, q.to, q.window, q.function, NULL};
    PGresult *plan = PQexecParams(conn, plan_sql, 1, NULL, params, NULL, NULL, 0);
    bool has_plan = PQresultStatus(plan) == PGRES_TUPLES_OK && PQntuples(plan) == 1;
    params[5] = has_plan ? PQgetvalue(plan, 0, 0) : NULL;
    if (PQresultStatus(plan) == PGRES_TUPLES_OK)
        res = PQexecParams(conn, usage_sql, 6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(plan) != PGRES_TUPLES_OK || PQresultStatus(res) != PGRES_TUPLES_OK) {
        metrics_db_error();
        fm_warn("usage query: %s", PQresultStatus(plan) != PGRES_TUPLES_OK
                                       ? PQresultErrorMessage(plan)
                                       : PQresultErrorMessage(res));
        PQclear(plan);
        if (PQstatus(conn) != CONNECTION_OK)
            meter_store_close();
        r = reply_error(E_UNAVAILABLE, "usage could not be read; retry later");
        goto out;
    }
    fm_buf_puts(&b, "{\"tenant\":");
    fm_buf_json_string(&b, q.tenant);
    fm_buf_printf(&b, ",\"window\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"function\":",
                  q.window, q.from, q.to);
    if (q.function)
        fm_buf_json_string(&b, q.function);
    else
        fm_buf_puts(&b, "null");
    fm_buf_puts(&b, ",\"plan\":");
    if (has_plan)
        fm_buf_json_string(&b, PQgetvalue(plan, 0, 0));
    else
        fm_buf_puts(&b, "null");
    PQclear(plan);
    fm_buf_puts(&b, ",\"note\":");
    fm_buf_json_string(&b, usage_note);
    fm_buf_puts(&b, ",\"usage\":[");
    for (int i = 0; i < PQntuples(res); i++)
        if (!put_row(&b, res, i)) {
            r = reply_error(E_UNPROCESSABLE, "a sum is too large for JSON; ask for "
                                             "smaller windows or a shorter range");
            goto out;
        }
    fm_buf_puts(&b, "]}");
    char *body = fm_buf_steal(&b);
    r = body ? reply_json(200, body)
             : reply_error(E_UNPROCESSABLE, "the answer would exceed 16 MB; ask for a "
                                            "shorter range, larger windows or one function");
out:
    PQclear(res);
    fm_buf_free(&b);
    return r;
}
