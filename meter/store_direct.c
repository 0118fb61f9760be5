#include "meter/store_direct.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/timeutil.h"

#define NONE SIZE_MAX

/* One invocation of the batch: its records, and where they go. */
struct group {
    size_t first, count; /* its records in by_inv */
    size_t start, stop;  /* record indexes, or NONE */
    bool eligible;       /* at most one start and one stop, no resource sample */
    bool sampled;        /* a stop and resource samples, nothing else */
    bool samples_alone;  /* resource samples, without the start or the stop */
    int64_t samples_rss; /* the largest max_rss_kb of its samples */
    int64_t samples_user, samples_sys; /* and the largest CPU figures */
    bool direct;         /* eligible and new to the database: its rows are COPYed */
    bool update;         /* the stop of a stored invocation, alone or with samples, or
                            samples alone: invocations_stop */
};

/* Whether the probe asks for the group's invocation: a new one goes direct when eligible,
 * a stored one when its records are a stop, with samples or without, or samples alone. */
static bool probed(const struct group *g)
{
    return g->eligible || g->sampled || g->samples_alone;
}

static int64_t larger(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

struct meter_direct {
    const struct meter_record *recs;
    size_t n;
    size_t *by_id;  /* record indexes by (tenant, id) */
    size_t *by_inv; /* record indexes by (tenant, invocation_id, arrival) */
    size_t *group_of; /* per record, its group */
    struct group *groups;
    size_t ngroups;
};

/* qsort has no context argument: the batch being sorted, one per thread. */
static _Thread_local const struct meter_record *sorting;

static int by_id(const void *a, const void *b)
{
    const struct meter_record *x = &sorting[*(const size_t *)a], *y = &sorting[*(const size_t *)b];
    int c = strcmp(x->tenant, y->tenant);
    return c ? c : strcmp(x->id, y->id);
}

static int by_inv(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const struct meter_record *x = &sorting[i], *y = &sorting[j];
    int c = strcmp(x->tenant, y->tenant);
    if (c == 0)
        c = strcmp(x->invocation_id, y->invocation_id);
    return c ? c : (i > j) - (i < j);
}

static bool same_invocation(const struct meter_record *x, const struct meter_record *y)
{
    return strcmp(x->tenant, y->tenant) == 0 && strcmp(x->invocation_id, y->invocation_id) == 0;
}

void meter_direct_free(struct meter_direct *d)
{
    if (d == NULL)
        return;
    free(d->by_id);
    free(d->by_inv);
    free(d->group_of);
    free(d->groups);
    free(d);
}

struct meter_direct *meter_direct_plan(const struct meter_record *recs, size_t n)
{
    if (n == 0)
        return NULL;
    struct meter_direct *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->recs = recs;
    d->n = n;
    d->by_id = malloc(n * sizeof *d->by_id);
    d->by_inv = malloc(n * sizeof *d->by_inv);
    d->group_of = malloc(n * sizeof *d->group_of);
    d->groups = malloc(n * sizeof *d->groups);
    if (!d->by_id || !d->by_inv || !d->group_of || !d->groups)
        goto none;
    for (size_t i = 0; i < n; i++)
        d->by_id[i] = d->by_inv[i] = i;
    sorting = recs;
    qsort(d->by_id, n, sizeof *d->by_id, by_id);
    qsort(d->by_inv, n, sizeof *d->by_inv, by_inv);
    /* A repeated id needs the staged path's outcomes (the first copy wins). */
    for (size_t k = 1; k < n; k++)
        if (by_id(&d->by_id[k - 1], &d->by_id[k]) == 0)
            goto none;
    size_t nprobed = 0;
    for (size_t k = 0; k < n;) {
        struct group *g = &d->groups[d->ngroups];
        *g = (struct group){.first = k, .start = NONE, .stop = NONE};
        size_t at = d->by_inv[k], samples = 0;
        bool repeated = false;
        for (; k < n && same_invocation(&recs[at], &recs[d->by_inv[k]]); k++) {
            size_t i = d->by_inv[k];
            size_t *slot = strcmp(recs[i].type, "start") == 0  ? &g->start
                           : strcmp(recs[i].type, "stop") == 0 ? &g->stop
                                                               : NULL;
            if (slot == NULL) {
                samples++;
                const struct meter_record *r = &recs[i];
                g->samples_rss = larger(g->samples_rss, meter_record_int(r, MF_MAX_RSS_KB));
                g->samples_user = larger(g->samples_user, meter_record_int(r, MF_CPU_USER_US));
                g->samples_sys = larger(g->samples_sys, meter_record_int(r, MF_CPU_SYS_US));
            } else if (*slot != NONE) {
                repeated = true;
            } else {
                *slot = i;
            }
            d->group_of[i] = d->ngroups;
            g->count++;
        }
        g->eligible = !repeated && samples == 0;
        g->sampled = !repeated && samples > 0 && g->start == NONE && g->stop != NONE;
        g->samples_alone = !repeated && samples > 0 && g->start == NONE && g->stop == NONE;
        g->direct = g->eligible;
        nprobed += probed(g);
        d->ngroups++;
    }
    if (nprobed == 0)
        goto none;
    return d;
none:
    meter_direct_free(d);
    return NULL;
}

bool meter_direct_stored(const struct meter_direct *d, size_t i)
{
    if (d == NULL || i >= d->n)
        return false;
    const struct group *g = &d->groups[d->group_of[i]];
    return g->direct || g->update;
}

size_t meter_direct_count(const struct meter_direct *d)
{
    size_t n = 0;
    for (size_t k = 0; d != NULL && k < d->ngroups; k++)
        n += d->groups[k].direct || d->groups[k].update ? d->groups[k].count : 0;
    return n;
}

/* Append s to an array literal, quoted. */
static void array_item(struct fm_buf *b, const char *s)
{
    fm_buf_puts(b, b->len > 1 ? ",\"" : "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fm_buf_append(b, "\\", 1);
        fm_buf_append(b, p, 1);
    }
    fm_buf_puts(b, "\"");
}

static int cmp_month(const void *a, const void *b)
{
    return memcmp(a, b, 7);
}

/* When the invocation started: its start's time, else its stop's time minus the run. */
static int64_t started_us(const struct meter_direct *d, const struct group *g)
{
    if (g->start != NONE)
        return d->recs[g->start].time_us;
    const struct meter_record *b = &d->recs[g->stop];
    return b->time_us - meter_record_int(b, MF_DURATION_US);
}

/*
 * The arguments of ingest_direct_prepare: the months of the batch's records and
 * invocations ("YYYY-MM-01"), and the invocations it probes as tenants and ids.
 */
static int prepare_args(const struct meter_direct *d, struct fm_buf args[3])
{
    char(*months)[FM_TIME_BUFSZ] = malloc((d->n + d->ngroups) * sizeof *months);
    if (months == NULL)
        return -1;
    size_t nm = 0;
    for (size_t i = 0; i < d->n; i++)
        memcpy(months[nm++], d->recs[i].time_text, 7);
    for (int a = 0; a < 3; a++)
        fm_buf_puts(&args[a], "{");
    for (size_t k = 0; k < d->ngroups; k++) {
        const struct group *g = &d->groups[k];
        const struct meter_record *r = &d->recs[d->by_inv[g->first]];
        if (!probed(g))
            continue;
        /* Samples alone are stored only into a stored invocation, in its month. */
        if (!g->samples_alone)
            fm_time_format(started_us(d, g), months[nm++], FM_TIME_BUFSZ);
        array_item(&args[1], r->tenant);
        array_item(&args[2], r->invocation_id);
    }
    qsort(months, nm, sizeof *months, cmp_month);
    for (size_t k = 0; k < nm; k++)
        if (k == 0 || cmp_month(months[k - 1], months[k]) != 0)
            fm_buf_printf(&args[0], "%s%.7s-01T00:00:00Z", args[0].len > 1 ? "," : "",
                          months[k]);
    free(months);
    int failed = 0;
    for (int a = 0; a < 3; a++)
        failed |= fm_buf_puts(&args[a], "}") != 0 || args[a].failed;
    return failed ? -1 : 0;
}

/*
 * A stored invocation's stop, alone or with resource samples, and its samples alone, take
 * the direct path too when nothing of the batch is left to the staged path: the lock on the
 * invocation then comes after every new key of the transaction, as on the staged path, and
 * no staged lock comes after it. Otherwise they go with the rest. stored[k]: whether the
 * probe found group k's invocation.
 */
static void take_updates(struct meter_direct *d, const bool *stored)
{
    bool staged = false;
    for (size_t k = 0; k < d->ngroups; k++) {
        struct group *g = &d->groups[k];
        g->update = stored[k] && (g->samples_alone || g->sampled ||
                                  (g->eligible && g->count == 1 && g->stop != NONE));
        staged |= !g->direct && !g->update;
    }
    for (size_t k = 0; staged && k < d->ngroups; k++)
        d->groups[k].update = false;
}

/* Leave to the staged path the invocations that exist already, but lone stops and samples. */
int meter_direct_begin(PGconn *conn, struct meter_direct *d, struct fm_err *err)
{
    struct fm_buf args[3];
    for (int a = 0; a < 3; a++)
        fm_buf_init(&args[a], 1u << 28);
    size_t *asked = malloc(d->ngroups * sizeof *asked); /* the probe's groups, in order */
    bool *stored = calloc(d->ngroups, sizeof *stored);
    int rc = -1;
    if (asked == NULL || stored == NULL || prepare_args(d, args) != 0) {
        fm_err_set(err, "out of memory");
        goto out;
    }
    size_t ne = 0;
    for (size_t k = 0; k < d->ngroups; k++)
        if (probed(&d->groups[k]))
            asked[ne++] = k;
    const char *params[3] = {args[0].data, args[1].data, args[2].data};
    PGresult *res = PQexecPrepared(conn, METER_DIRECT_PREPARE, 3, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "preparing the batch");
        PQclear(res);
        goto out;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        long at = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (at >= 1 && (size_t)at <= ne) {
            d->groups[asked[at - 1]].direct = false;
            stored[asked[at - 1]] = true;
        }
    }
    PQclear(res);
    take_updates(d, stored);
    rc = 0;
out:
    free(stored);
    free(asked);
    for (int a = 0; a < 3; a++)
        fm_buf_free(&args[a]);
    return rc;
}

enum { T_RECORD_IDS, T_RECORDS, T_INVOCATION_IDS, T_INVOCATIONS, T_DELTAS, T_COUNT };

static const char *const copy_sql[T_COUNT] = {
    "COPY record_ids (tenant, id, digest, time) FROM STDIN",
    "COPY records (tenant, id, type, invocation_id, time, body) FROM STDIN",
    "COPY invocation_ids (tenant, invocation_id, started_at) FROM STDIN",
    ("COPY invocations (tenant, invocation_id, started_at, function, has_start, has_stop,"
     " memory_mb, timeout_ms, cold_start, trigger, correlation_id, stopped_at, duration_us,"
     " init_us, status, exit_code, cpu_user_us, cpu_sys_us, max_rss_kb, bytes_in, bytes_out)"
     " FROM STDIN"),
    ("COPY usage_delta (tenant, function, started_at, sign, memory_mb, ok, cold_start,"
     " duration_us, init_us, max_rss_kb, cpu_us, bytes_in, bytes_out) FROM STDIN"),
};

static void put_field(struct fm_buf *b, const struct meter_record *r, enum meter_field f)
{
    fm_buf_append(b, "\t", 1);
    meter_record_put(b, r, f);
}

/* The field of the start when there is one, else of the stop (or the other way round). */
static const struct meter_record *either(const struct meter_direct *d, size_t first,
                                         size_t second, enum meter_field f)
{
    if (first != NONE && d->recs[first].len[f] >= 0)
        return &d->recs[first];
    return second != NONE ? &d->recs[second] : &d->recs[first];
}

/* The rows of one new invocation, joined from its start and stop as ingest_staged joins
 * them: the stop's figures win; the start's time dates it; the first record by arrival
 * names the function and, when it has one, gives the correlation id. */
static void invocation_rows(const struct meter_direct *d, const struct group *g,
                            struct fm_buf *rows)
{
    size_t a = g->start, b = g->stop;
    const struct meter_record *any = &d->recs[a != NONE ? a : b];
    bool start_first = b == NONE || (a != NONE && a < b);
    char started[FM_TIME_BUFSZ];
    fm_time_format(started_us(d, g), started, sizeof started);

    struct fm_buf *ids = &rows[T_INVOCATION_IDS], *inv = &rows[T_INVOCATIONS];
    meter_record_put(ids, any, MF_TENANT);
    put_field(ids, any, MF_INVOCATION_ID);
    fm_buf_puts(ids, "\t");
    fm_buf_puts(ids, started);
    fm_buf_puts(ids, "\n");

    meter_record_put(inv, any, MF_TENANT);
    put_field(inv, any, MF_INVOCATION_ID);
    fm_buf_puts(inv, "\t");
    fm_buf_puts(inv, started);
    put_field(inv, &d->recs[start_first ? a : b], MF_FUNCTION);
    fm_buf_puts(inv, a != NONE ? "\tt" : "\tf");
    fm_buf_puts(inv, b != NONE ? "\tt" : "\tf");
    put_field(inv, either(d, b, a, MF_MEMORY_MB), MF_MEMORY_MB);
    put_field(inv, either(d, a, b, MF_TIMEOUT_MS), MF_TIMEOUT_MS);
    put_field(inv, either(d, b, a, MF_COLD_START), MF_COLD_START);
    put_field(inv, either(d, a, b, MF_TRIGGER), MF_TRIGGER);
    put_field(inv, start_first ? either(d, a, b, MF_CORRELATION_ID)
                               : either(d, b, a, MF_CORRELATION_ID),
              MF_CORRELATION_ID);
    if (b == NONE) {
        fm_buf_puts(inv, "\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n");
        return;
    }
    const struct meter_record *stop = &d->recs[b];
    put_field(inv, stop, MF_TIME);
    static const enum meter_field figures[] = {MF_DURATION_US, MF_INIT_US,     MF_STATUS,
                                               MF_EXIT_CODE,   MF_CPU_USER_US, MF_CPU_SYS_US,
                                               MF_MAX_RSS_KB,  MF_BYTES_IN,    MF_BYTES_OUT};
    for (size_t k = 0; k < sizeof figures / sizeof figures[0]; k++)
        put_field(inv, stop, figures[k]);
    fm_buf_puts(inv, "\n");

    /* Its share of usage, as usage_apply leaves it. */
    struct fm_buf *dl = &rows[T_DELTAS];
    const struct meter_record *cold = either(d, b, a, MF_COLD_START);
    meter_record_put(dl, any, MF_TENANT);
    put_field(dl, &d->recs[start_first ? a : b], MF_FUNCTION);
    fm_buf_puts(dl, "\t");
    fm_buf_puts(dl, started);
    fm_buf_puts(dl, "\t1");
    put_field(dl, either(d, b, a, MF_MEMORY_MB), MF_MEMORY_MB);
    fm_buf_puts(dl, meter_record_is(stop, MF_STATUS, "ok") ? "\tt" : "\tf");
    fm_buf_puts(dl, meter_record_is(cold, MF_COLD_START, "true") ? "\tt" : "\tf");
    put_field(dl, stop, MF_DURATION_US);
    put_field(dl, stop, MF_INIT_US);
    put_field(dl, stop, MF_MAX_RSS_KB);
    fm_buf_puts(dl, "\t");
    fm_buf_put_int(dl, meter_record_int(stop, MF_CPU_USER_US) +
                           meter_record_int(stop, MF_CPU_SYS_US));
    put_field(dl, stop, MF_BYTES_IN);
    put_field(dl, stop, MF_BYTES_OUT);
    fm_buf_puts(dl, "\n");
}

static void record_rows(const struct meter_record *r, struct fm_buf *rows)
{
    struct fm_buf *ids = &rows[T_RECORD_IDS], *recs = &rows[T_RECORDS];
    char digest[METER_DIGEST_HEX];
    meter_record_digest_hex(r, digest);
    meter_record_put(ids, r, MF_TENANT);
    put_field(ids, r, MF_ID);
    fm_buf_puts(ids, "\t\\\\x");
    fm_buf_puts(ids, digest);
    put_field(ids, r, MF_TIME);
    fm_buf_puts(ids, "\n");

    meter_record_put(recs, r, MF_TENANT);
    put_field(recs, r, MF_ID);
    put_field(recs, r, MF_TYPE);
    put_field(recs, r, MF_INVOCATION_ID);
    put_field(recs, r, MF_TIME);
    fm_buf_puts(recs, "\t");
    meter_copy_text(recs, r->body);
    fm_buf_puts(recs, "\n");
}

/* A refusal the staged path can settle: an existing key, a missing partition, or a stop or
 * samples whose stored invocation was stopped already, or moved (invocations_stop). */
static bool settled_by_staging(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state && (strcmp(state, "23505") == 0 || strcmp(state, "23514") == 0 ||
                     strcmp(state, "FM001") == 0);
}

/* Send one COPY's data, a chunk at a time (libpq takes an int length). */
static int put_copy(PGconn *conn, const struct meter_copy *c)
{
    int rc = 0;
    for (size_t at = 0; at < c->len && rc == 0; at += 1u << 20) {
        size_t chunk = c->len - at < (1u << 20) ? c->len - at : 1u << 20;
        if (PQputCopyData(conn, c->data + at, (int)chunk) != 1)
            rc = -1;
    }
    if (PQputCopyEnd(conn, rc == 0 ? NULL : "batch could not be sent") != 1)
        rc = -1;
    return rc;
}

int meter_copy_in(PGconn *conn, const struct meter_copy *copies, int n, const char *tail,
                  struct fm_err *err)
{
    struct fm_buf sql; /* the tail may carry a batch's stops */
    fm_buf_init(&sql, 1u << 30);
    for (int k = 0; k < n; k++)
        fm_buf_printf(&sql, "%s%s", k ? "; " : "", copies[k].sql);
    if (tail)
        fm_buf_printf(&sql, "%s%s", n ? "; " : "", tail);
    if (sql.failed || PQsendQuery(conn, sql.data) != 1) {
        fm_buf_free(&sql);
        fm_err_set(err, "cannot send the batch: %s", PQerrorMessage(conn));
        return -1;
    }
    fm_buf_free(&sql);
    /* The server answers each COPY with a request for its data, then its completion, and
     * skips the rest after an error. */
    int rc = 0, k = 0;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) {
            if (k >= n || put_copy(conn, &copies[k++]) != 0) {
                /* End this COPY with an error, or give up on a connection that cannot. */
                if (rc == 0)
                    fm_err_set(err, "COPY of the batch: %s", PQerrorMessage(conn));
                rc = -1;
                if (PQputCopyEnd(conn, "the batch could not be sent") != 1) {
                    PQclear(res);
                    break;
                }
            }
        } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == 0) {
            rc = settled_by_staging(res) ? 1 : -1;
            if (rc < 0)
                db_err_from(err, conn, res, "COPY of the batch");
        }
        PQclear(res);
    }
    return rc;
}

/* The statement that adds the tenants of the new invocations: after their record ids, as
 * on the staged path. The names were validated (letters, digits, '_' and '-'), so nothing
 * in them needs escaping in the SQL string; each is still quoted in the array, where a
 * bare null would be NULL. Nothing when there is no new invocation. */
static void add_tenants(const struct meter_direct *d, struct fm_buf *b)
{
    const char *last = NULL;
    for (size_t k = 0; k < d->ngroups; k++) {
        const char *tenant = d->recs[d->by_inv[d->groups[k].first]].tenant;
        if (d->groups[k].direct && (last == NULL || strcmp(last, tenant) != 0)) {
            fm_buf_printf(b, "%s\"%s\"", last ? "," : "EXECUTE " METER_DIRECT_TENANTS "('{",
                          tenant);
            last = tenant;
        }
    }
    if (last != NULL)
        fm_buf_puts(b, "}'); ");
}

/* Append text to an escaped SQL string constant (E'...'): quotes and backslashes doubled
 * ('' holds whatever backslash_quote says). */
static void put_escaped(struct fm_buf *b, const char *text, size_t len)
{
    for (const char *p = text, *end = text + len, *q; p < end; p = q + 1) {
        for (q = p; q < end && *q != '\'' && *q != '\\'; q++)
            ;
        fm_buf_append(b, p, (size_t)(q - p));
        if (q == end)
            break;
        fm_buf_append(b, *q == '\'' ? "''" : "\\\\", 2);
    }
}

/* One group's element of invocations_stop's array, as JSON: the stop's canonical body
 * (with the peak memory of samples that came with it, for the stop to keep the larger, as
 * the staged path applies samples before the stop), or for samples alone their peaks. */
static void stop_element(const struct meter_direct *d, const struct group *g, struct fm_buf *out)
{
    if (g->samples_alone) {
        const struct meter_record *r = &d->recs[d->by_inv[g->first]];
        fm_buf_puts(out, "{\"type\":\"resource\",\"tenant\":");
        fm_buf_json_string(out, r->tenant);
        fm_buf_puts(out, ",\"invocation_id\":");
        fm_buf_json_string(out, r->invocation_id);
        fm_buf_printf(out,
                      ",\"samples_max_rss_kb\":%lld,\"samples_cpu_user_us\":%lld,"
                      "\"samples_cpu_sys_us\":%lld}",
                      (long long)g->samples_rss, (long long)g->samples_user,
                      (long long)g->samples_sys);
        return;
    }
    fm_buf_puts(out, d->recs[g->stop].body);
    if (g->sampled && out->len > 0 && out->data[out->len - 1] == '}') {
        out->len--;
        fm_buf_printf(out, ",\"samples_max_rss_kb\":%lld}", (long long)g->samples_rss);
    }
}

/* The statement that stores the stops and samples of stored invocations: one JSON array,
 * in key order (the groups' order), in an escaped string constant. Nothing when there is
 * none. */
static void update_stops(const struct meter_direct *d, struct fm_buf *b)
{
    struct fm_buf element;
    fm_buf_init(&element, 1u << 28);
    bool first = true;
    for (size_t k = 0; k < d->ngroups; k++) {
        if (!d->groups[k].update)
            continue;
        fm_buf_puts(b, first ? "EXECUTE " METER_DIRECT_STOPS "(E'[" : ",");
        first = false;
        fm_buf_reset(&element);
        stop_element(d, &d->groups[k], &element);
        if (element.failed)
            b->failed = true;
        else
            put_escaped(b, element.data, element.len);
    }
    fm_buf_free(&element);
    if (!first)
        fm_buf_puts(b, "]'); ");
}

int meter_direct_copy(PGconn *conn, struct meter_direct *d, const char *tail,
                      struct fm_err *err)
{
    struct fm_buf rows[T_COUNT];
    for (int t = 0; t < T_COUNT; t++)
        fm_buf_init(&rows[t], 1u << 30);
    /* Keys in order, as the staged path takes them, so that batches lock alike. */
    for (size_t k = 0; k < d->n; k++)
        if (meter_direct_stored(d, d->by_id[k]))
            record_rows(&d->recs[d->by_id[k]], rows);
    for (size_t k = 0; k < d->ngroups; k++)
        if (d->groups[k].direct)
            invocation_rows(d, &d->groups[k], rows);
    struct meter_copy copies[T_COUNT];
    int n = 0, rc = 0;
    for (int t = 0; t < T_COUNT; t++) {
        if (rows[t].failed) {
            fm_err_set(err, "out of memory");
            rc = -1;
        } else if (rows[t].len > 0) {
            copies[n++] = (struct meter_copy){copy_sql[t], rows[t].data, rows[t].len};
        }
    }
    /* After the COPYs, the statements that follow them, each ending in "; ", then tail. */
    struct fm_buf after;
    fm_buf_init(&after, 1u << 30);
    add_tenants(d, &after);
    update_stops(d, &after);
    if (tail)
        fm_buf_puts(&after, tail);
    else if (after.len > 0)
        after.data[after.len -= 2] = '\0';
    if (after.failed) {
        fm_err_set(err, "out of memory");
        rc = -1;
    }
    if (rc == 0 && n > 0)
        rc = meter_copy_in(conn, copies, n, after.len > 0 ? after.data : NULL, err);
    else if (rc == 0 && tail != NULL)
        rc = meter_copy_in(conn, NULL, 0, tail, err);
    fm_buf_free(&after);
    for (int t = 0; t < T_COUNT; t++)
        fm_buf_free(&rows[t]);
    return rc;
}
