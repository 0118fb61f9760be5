/*
 * Batched ingestion: stop records, 1,000 per request, from 4 concurrent keep-alive clients
 * into a real meterd process, against a raw COPY of the same rows into the same tables and
 * indexes by 4 concurrent connections, measured in the same run: the five tables a batch's
 * transaction writes (the record, its id, the invocation, its key, and its usage delta),
 * and for comparison the first four alone. meterd's figure runs until
 * every record is acknowledged and folded into the rollups: meterd folds in the background,
 * and what is left when the clients are done is folded then, and timed. Also meterd's peak
 * resident memory. Prints figures; never fails on a timing.
 *
 *   bin/bench/ingest [RECORDS]     (default 200000; FAASMETER_DB and FAASMETER_BIN set)
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "billing/catalog.h"
#include "common/apikey.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/fold.h"
#include "meter/plans.h"
#include "schema/migrate.h"

#define BATCH 1000
#define CLIENTS 4
#define ROUNDS 4

static char conninfo[1024];
static long nbatches;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench ingest: %s: %s\n", what, why);
    exit(1);
}

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* A fresh database with the schema and the catalog's plans registered. */
static void fresh_database(void)
{
    const char *base = getenv("FAASMETER_DB");
    if (base == NULL || *base == '\0')
        die("FAASMETER_DB", "not set (make bench sets it)");
    struct fm_err err;
    PGconn *admin = db_connect(base, &err);
    if (admin == NULL)
        die("database", err.msg);
    exec_or_die(admin, "DROP DATABASE IF EXISTS faasmeter_bench_ingest WITH (FORCE)");
    exec_or_die(admin, "CREATE DATABASE faasmeter_bench_ingest TEMPLATE template0 ENCODING UTF8"
                       " LC_COLLATE 'C' LC_CTYPE 'C'");
    PQfinish(admin);
    snprintf(conninfo, sizeof conninfo, "%s dbname=faasmeter_bench_ingest", base);
    PGconn *c = db_connect(conninfo, &err);
    struct bill_catalog *cat = NULL;
    if (c == NULL || schema_migrate(c, NULL, NULL, &err) != 0 ||
        bill_catalog_load(NULL, &cat, &err) != BILL_OK ||
        meter_plans_register(c, cat, NULL, &err) != 0)
        die("set-up", err.msg);
    bill_catalog_free(cat);
    /* The raw COPY needs the month partitions that ingestion makes on demand. */
    exec_or_die(c, "SELECT ensure_month_partition(t, m) FROM"
                   " unnest(ARRAY['records', 'invocations']) t,"
                   " unnest(ARRAY['2026-10-15'::timestamptz, '2026-11-15']) m");
    PQfinish(c);
}

/* Empty the tables between the turns, keeping plans and keys. They are analyzed empty, as
 * autovacuum may find them at any time after an emptying: meterd's sessions then make their
 * plans over tables that the statistics say are empty (schema 016). */
static void truncate_usage(void)
{
    struct fm_err err;
    PGconn *c = db_connect(conninfo, &err);
    if (c == NULL)
        die("database", err.msg);
    exec_or_die(c, "TRUNCATE record_ids, records, invocation_ids, invocations, usage_delta,"
                   " usage_hourly, usage_rated, usage_rated_hourly, usage_tenant_hourly,"
                   " usage_monthly; ANALYZE; CHECKPOINT");
    PQfinish(c);
}

/* Stop record k as NDJSON: tenant, function and duration vary like a real mix. */
static void stop_record(struct fm_buf *b, const char *run, long k)
{
    char t[FM_TIME_BUFSZ];
    int64_t at = fm_civil_to_us(2026, 11, 1) + (int64_t)k * 997 % (INT64_C(86400) * 1000000);
    fm_time_format(at, t, sizeof t);
    fm_buf_printf(b,
                  "{\"id\":\"%s-%ld:stop\",\"type\":\"stop\",\"invocation_id\":\"%s-%ld\","
                  "\"tenant\":\"t%03ld\",\"function\":\"fn%ld\",\"time\":\"%s\","
                  "\"memory_mb\":%d,\"cold_start\":%s,\"duration_us\":%ld,\"init_us\":0,"
                  "\"status\":\"ok\",\"exit_code\":0,\"cpu_user_us\":%ld,\"cpu_sys_us\":300,"
                  "\"max_rss_kb\":%ld,\"bytes_in\":512,\"bytes_out\":2048}\n",
                  run, k, run, k, k % 100, k % 7, t, 128 << (k % 4), k % 50 ? "false" : "true",
                  1000 + k * 7919 % 900000, k % 5000, 20000 + k % 100000);
}

/* The start of the invocation of stop_record(run, k). */
static void start_record(struct fm_buf *b, const char *run, long k)
{
    char t[FM_TIME_BUFSZ];
    int64_t at = fm_civil_to_us(2026, 11, 1) + (int64_t)k * 997 % (INT64_C(86400) * 1000000);
    fm_time_format(at - (1000 + k * 7919 % 900000), t, sizeof t);
    fm_buf_printf(b,
                  "{\"id\":\"%s-%ld:start\",\"type\":\"start\",\"invocation_id\":\"%s-%ld\","
                  "\"tenant\":\"t%03ld\",\"function\":\"fn%ld\",\"time\":\"%s\","
                  "\"memory_mb\":%d,\"timeout_ms\":3000,\"cold_start\":%s,"
                  "\"trigger\":\"http\"}\n",
                  run, k, run, k, k % 100, k % 7, t, 128 << (k % 4), k % 50 ? "false" : "true");
}

/* Request bodies of n batches of records made by one (run "s", records k of batch b). */
static char **make_bodies(long n, void (*one)(struct fm_buf *, const char *, long))
{
    char **out = calloc((size_t)n, sizeof *out);
    for (long b = 0; b < n; b++) {
        struct fm_buf body;
        fm_buf_init(&body, 8u << 20);
        for (long k = b * BATCH; k < (b + 1) * BATCH; k++)
            one(&body, "s", k);
        out[b] = fm_buf_steal(&body);
    }
    return out;
}

static void free_bodies(char **b, long n)
{
    for (long i = 0; i < n; i++)
        free(b[i]);
    free(b);
}

/* ---- meterd over HTTP -------------------------------------------------------------- */

static char **bodies;
static int64_t *answer_us; /* per batch of the main run: how long its request took */
static char url[128], auth[128];
static long next_batch;
static pthread_mutex_t next_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static long batch_end;

static long take_batch(void)
{
    pthread_mutex_lock(&next_lock);
    long b = next_batch < batch_end ? next_batch++ : -1;
    pthread_mutex_unlock(&next_lock);
    return b;
}

static void *http_client(void *arg)
{
    (void)arg;
    CURL *curl = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/x-ndjson");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    for (long b; (b = take_batch()) >= 0;) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, bodies[b]);
        long status = 0;
        int64_t t0 = fm_mono_us();
        if (curl_easy_perform(curl) != CURLE_OK ||
            (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status), status != 200))
            die("POST /v1/records", "failed");
        if (answer_us)
            answer_us[b] = fm_mono_us() - t0;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    return NULL;
}

static pid_t start_meterd(char *line, size_t n)
{
    const char *dir = getenv("FAASMETER_BIN");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/meterd", dir ? dir : "bin");
    int out[2];
    if (pipe(out) != 0)
        die("pipe", "failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(bin, bin, "--listen", "127.0.0.1:0", "--db", conninfo,
              "--log-level", "error", "--orphan-sweep-ms", "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    size_t len = 0;
    while (len < n - 1) {
        ssize_t r = read(out[0], line + len, 1);
        if (r <= 0 || line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    close(out[0]);
    if (strstr(line, "listening on ") == NULL)
        die("meterd", "did not start");
    return pid;
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], row[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(row, sizeof row, f))
        if (strncmp(row, "VmHWM:", 6) == 0)
            kb = strtol(row + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* ---- raw COPY ------------------------------------------------------------------------ */

/* Per batch: rows for record_ids, records, invocation_ids, invocations and usage_delta, the
 * tables a batch's transaction writes; the baseline is run on the first four (the record
 * and the invocation), then on all five. */
#define COPY_TABLES 5
static char **copies[COPY_TABLES];
static int copy_tables;
static const char *const copy_sql[COPY_TABLES] = {
    "COPY record_ids (tenant, id, digest, time) FROM STDIN",
    "COPY records (tenant, id, type, invocation_id, time, body) FROM STDIN",
    "COPY invocation_ids (tenant, invocation_id, started_at) FROM STDIN",
    "COPY invocations (tenant, invocation_id, started_at, function, has_stop, memory_mb,"
    " cold_start, stopped_at, duration_us, init_us, status, exit_code, cpu_user_us,"
    " cpu_sys_us, max_rss_kb, bytes_in, bytes_out) FROM STDIN",
    "COPY usage_delta (tenant, function, started_at, sign, memory_mb, ok, cold_start,"
    " duration_us, init_us, max_rss_kb, cpu_us, bytes_in, bytes_out) FROM STDIN",
};

static void *copy_client(void *arg)
{
    (void)arg;
    struct fm_err err;
    PGconn *c = db_connect(conninfo, &err);
    if (c == NULL)
        die("database", err.msg);
    for (long b; (b = take_batch()) >= 0;) {
        exec_or_die(c, "BEGIN");
        for (int t = 0; t < copy_tables; t++) {
            PGresult *r = PQexec(c, copy_sql[t]);
            if (PQresultStatus(r) != PGRES_COPY_IN)
                die(copy_sql[t], PQresultErrorMessage(r));
            PQclear(r);
            const char *rows = copies[t][b];
            if (PQputCopyData(c, rows, (int)strlen(rows)) != 1 || PQputCopyEnd(c, NULL) != 1)
                die("COPY", PQerrorMessage(c));
            r = PQgetResult(c);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                die("COPY", PQresultErrorMessage(r));
            PQclear(r);
            while ((r = PQgetResult(c)) != NULL)
                PQclear(r);
        }
        exec_or_die(c, "COMMIT");
    }
    PQfinish(c);
    return NULL;
}

/* The same stops as COPY rows: what ingestion stores for each, without the rollups. */
static void copy_rows(long k, struct fm_buf out[COPY_TABLES])
{
    char t[FM_TIME_BUFSZ], s[FM_TIME_BUFSZ];
    int64_t at = fm_civil_to_us(2026, 11, 1) + (int64_t)k * 997 % (INT64_C(86400) * 1000000);
    long dur = 1000 + k * 7919 % 900000;
    fm_time_format(at, t, sizeof t);
    fm_time_format(at - dur, s, sizeof s);
    struct fm_buf body;
    fm_buf_init(&body, 4096);
    stop_record(&body, "c", k);
    body.data[body.len - 1] = '\0'; /* no newline inside the COPY field */
    fm_buf_printf(&out[0], "t%03ld\tc-%ld:stop\t\\\\x%064ld\t%s\n", k % 100, k, k, t);
    fm_buf_printf(&out[1], "t%03ld\tc-%ld:stop\tstop\tc-%ld\t%s\t%s\n", k % 100, k, k, t,
                  body.data);
    fm_buf_printf(&out[2], "t%03ld\tc-%ld\t%s\n", k % 100, k, s);
    fm_buf_printf(&out[3],
                  "t%03ld\tc-%ld\t%s\tfn%ld\tt\t%d\t%s\t%s\t%ld\t0\tok\t0\t%ld\t300\t%ld\t512"
                  "\t2048\n",
                  k % 100, k, s, k % 7, 128 << (k % 4), k % 50 ? "f" : "t", t, dur, k % 5000,
                  20000 + k % 100000);
    fm_buf_printf(&out[4], "t%03ld\tfn%ld\t%s\t1\t%d\tt\t%s\t%ld\t0\t%ld\t%ld\t512\t2048\n",
                  k % 100, k % 7, s, 128 << (k % 4), k % 50 ? "f" : "t", dur,
                  20000 + k % 100000, k % 5000 + 300);
    fm_buf_free(&body);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Seconds for the clients to send batches lo..hi-1. */
static double run_clients(void *(*client)(void *), long lo, long hi)
{
    pthread_t th[CLIENTS];
    next_batch = lo;
    batch_end = hi;
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&th[i], NULL, client, NULL);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    return (double)(fm_mono_us() - t0) / 1e6;
}

/* A meterd for one turn, its URL in url. */
static pid_t meterd_up(void)
{
    char line[256];
    pid_t pid = start_meterd(line, sizeof line);
    snprintf(url, sizeof url, "http://%s/v1/records", strstr(line, "listening on ") + 13);
    return pid;
}

/* Stop it: the highest peak resident memory so far in *rss_kb, its CPU seconds added to
 * *cpu_s. */
static void meterd_down(pid_t pid, long *rss_kb, double *cpu_s)
{
    long kb = peak_rss_kb(pid);
    if (kb > *rss_kb)
        *rss_kb = kb;
    kill(pid, SIGTERM);
    struct rusage ru;
    if (wait4(pid, NULL, 0, &ru) == pid)
        *cpu_s += (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long count_invocations(void)
{
    struct fm_err err;
    PGconn *c = db_connect(conninfo, &err);
    if (c == NULL)
        die("database", err.msg);
    PGresult *r = PQexec(c, "SELECT count(*) FROM invocations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("count", PQresultErrorMessage(r));
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

/*
 * Seconds to fold what meterd stored and has not folded yet. meterd folds every second,
 * in the background: a run that ended leaves the deltas not folded yet behind (more than a
 * second's when the fold falls behind), and their fold is part of ingesting them, so every
 * meterd phase ends with it.
 */
static double fold_rest(void)
{
    struct fm_err err;
    PGconn *c = db_connect(conninfo, &err);
    if (c == NULL)
        die("fold", err.msg);
    int64_t t0 = fm_mono_us();
    if (meter_usage_fold(c, NULL, &err) != 0)
        die("fold", err.msg);
    double s = (double)(fm_mono_us() - t0) / 1e6;
    PQfinish(c);
    return s;
}

int main(int argc, char **argv)
{
    long records = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    if (records < BATCH)
        records = BATCH;
    nbatches = records / BATCH;
    records = nbatches * BATCH;
    fresh_database();

    /* Build every request body and COPY chunk before timing anything. */
    bodies = calloc((size_t)nbatches, sizeof *bodies);
    answer_us = calloc((size_t)nbatches, sizeof *answer_us);
    for (int t = 0; t < COPY_TABLES; t++)
        copies[t] = calloc((size_t)nbatches, sizeof *copies[t]);
    for (long b = 0; b < nbatches; b++) {
        struct fm_buf body, rows[COPY_TABLES];
        fm_buf_init(&body, 8u << 20);
        for (int t = 0; t < COPY_TABLES; t++)
            fm_buf_init(&rows[t], 8u << 20);
        for (long k = b * BATCH; k < (b + 1) * BATCH; k++) {
            stop_record(&body, "h", k);
            copy_rows(k, rows);
        }
        bodies[b] = fm_buf_steal(&body);
        for (int t = 0; t < COPY_TABLES; t++)
            copies[t][b] = fm_buf_steal(&rows[t]);
    }

    /* A key for the clients. */
    struct fm_err err;
    PGconn *c = db_connect(conninfo, &err);
    char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1], hex[2 * APIKEY_HASH_LEN + 3] = "\\x";
    unsigned char hash[APIKEY_HASH_LEN];
    if (c == NULL || apikey_generate(key) != 0 || !apikey_id(key, id))
        die("key", "cannot make one");
    apikey_hash(key, hash);
    for (int i = 0; i < APIKEY_HASH_LEN; i++)
        snprintf(hex + 2 + 2 * i, 3, "%02x", hash[i]);
    const char *params[] = {id, hex};
    PGresult *r = PQexecParams(c, "INSERT INTO api_keys (key_id, key_hash, role)"
                                  " VALUES ($1, $2::bytea, 'ingest')",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("key", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    printf("%ld stop records, %d per request, %d concurrent clients\n", records, BATCH,
           CLIENTS);

    /* The variants take turns on a quarter of the batches at a time, in an order that
     * rotates, each into emptied tables, so that a busy machine or disk weighs on all of
     * them alike. meterd runs only in its own turns: its fold would otherwise work on the
     * baseline's deltas. */
    enum { V_COPY4, V_COPY5, V_METERD, NVARIANTS };
    double copy4_s = 0, copy_s = 0, acked_s = 0, last_fold_s = 0, meterd_cpu = 0;
    long stored = 0, rss = 0;
    for (int round = 0; round < ROUNDS; round++) {
        long lo = nbatches * round / ROUNDS, hi = nbatches * (round + 1) / ROUNDS;
        for (int turn = 0; turn < NVARIANTS; turn++) {
            switch ((round + turn) % NVARIANTS) {
            case V_COPY4:
                copy_tables = 4;
                copy4_s += run_clients(copy_client, lo, hi);
                break;
            case V_COPY5:
                copy_tables = COPY_TABLES;
                copy_s += run_clients(copy_client, lo, hi);
                break;
            default: {
                pid_t meterd = meterd_up();
                acked_s += run_clients(http_client, lo, hi);
                last_fold_s += fold_rest();
                meterd_down(meterd, &rss, &meterd_cpu);
                stored += count_invocations();
            }
            }
            truncate_usage();
        }
    }
    double http_s = acked_s + last_fold_s;

    /* How long a request waited for its answer: a stalled one shows here first. */
    int64_t *lat = answer_us;
    answer_us = NULL;
    qsort(lat, (size_t)nbatches, sizeof *lat, cmp_i64);

    /* Invocations longer than a shipper's round: their starts and stops come in different
     * requests, and each stop updates a stored invocation (invocations_stop). */
    long main_batches = nbatches;
    char **main_bodies = bodies;
    nbatches = main_batches / 10 ? main_batches / 10 : 1;
    pid_t meterd = meterd_up();
    bodies = make_bodies(nbatches, start_record);
    double starts_s = run_clients(http_client, 0, nbatches) + fold_rest();
    free_bodies(bodies, nbatches);
    bodies = make_bodies(nbatches, stop_record);
    double stops_s = run_clients(http_client, 0, nbatches) + fold_rest();
    free_bodies(bodies, nbatches);
    meterd_down(meterd, &rss, &meterd_cpu);
    long split_records = nbatches * BATCH;
    nbatches = main_batches;
    bodies = main_bodies;

    printf("stored invocations: %ld (expected %ld), then %ld (expected %ld)\n", stored,
           records, count_invocations(), split_records);

    double copy_rate = (double)records / copy_s, http_rate = (double)records / http_s;
    double copy4_rate = (double)records / copy4_s;
    printf("raw COPY into record_ids, records, invocation_ids, invocations: %.0f records/s\n",
           copy4_rate);
    printf("raw COPY into those and usage_delta, as a batch's transaction: %.0f records/s\n",
           copy_rate);
    printf("meterd POST /v1/records, acknowledged (validated, stored exactly once): %.0f "
           "records/s\n",
           (double)records / acked_s);
    printf("  a request of %d records answered in %.1f ms at the median, %.1f ms at the 99th"
           " percentile, %.1f ms at most\n",
           BATCH, (double)lat[nbatches / 2] / 1e3, (double)lat[nbatches * 99 / 100] / 1e3,
           (double)lat[nbatches - 1] / 1e3);
    free(lat);
    printf("  and folded into the rollups: %.0f records/s (the fold of what was left when the "
           "clients were done took %.2f s)\n",
           http_rate, last_fold_s);
    printf("meterd's own CPU: %.2f s of %.2f s and the runs below, %.1f us per record\n",
           meterd_cpu, http_s, meterd_cpu * 1e6 / (double)(records + 2 * split_records));
    printf("then %ld starts, then their stops in later requests: starts %.0f records/s, "
           "stops of stored starts %.0f records/s\n",
           split_records, (double)split_records / starts_s, (double)split_records / stops_s);
    printf("SUMMARY ingest: meterd %.0f records/s stored and folded = %.2f of raw COPY into the"
           " same five tables %.0f records/s (%.2f of the four record and invocation tables'"
           " %.0f/s) (targets >= 100000/s and >= 0.7); meterd peak RSS %.1f MB (target < 64"
           " MB)\n",
           http_rate, http_rate / copy_rate, copy_rate, http_rate / copy4_rate, copy4_rate,
           (double)rss / 1024.0);
    free_bodies(bodies, nbatches);
    for (int t = 0; t < COPY_TABLES; t++)
        free_bodies(copies[t], nbatches);
    curl_global_cleanup();
    return 0;
}
