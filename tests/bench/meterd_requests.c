/*
 * One record per request from 64 keep-alive clients: how many records meterd acknowledges
 * per second (each 200 comes after its commit), against a hello-world libmicrohttpd server
 * with the same thread pool that answers every POST with a constant JSON, driven by the
 * same client in the same run. Also meterd's peak resident memory, and two more turns each
 * round, on invocations whose starts were stored beforehand (a runtime that sends each
 * record as it happens), which update stored invocations: one resource sample a request of
 * invocations still running, then one stop a request.
 *
 * Each server runs in a child process of its own (started with meter_server_start, or
 * MHD_start_daemon for hello-world), so that its memory is measured apart from the client.
 * They take turns, a second at a time, so that a busy machine weighs on all alike.
 * The database is faasmeter_bench_requests on the server of FAASMETER_DB, made afresh.
 *
 * Environment: FAASMETER_DB (required), FAASMETER_BENCH_SECONDS (per server, default 5,
 * in as many rounds).
 * Figures only: it never fails on a timing.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/apikey.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/http.h"
#include "schema/migrate.h"

#define BENCH_DB "faasmeter_bench_requests"
#define CLIENTS 64
#define CLIENT_THREADS 2

static const char hello_reply[] = "{\"accepted\":1,\"duplicates\":0,\"rejected\":[]}";

static int fail(const char *what, const char *why)
{
    fprintf(stderr, "meterd_requests: %s: %s\n", what, why);
    return 1;
}

/* ---- the database ---------------------------------------------------------------------- */

static int exec_ok(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "meterd_requests: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* A fresh, migrated database with an ingest key (into key); its conninfo into out. */
static int bench_db(const char *base, char *out, size_t n, char *key)
{
    struct fm_err err;
    int rc = -1;
    PGconn *conn = db_connect(base, &err), *bench = NULL;
    if (conn == NULL)
        return fail("FAASMETER_DB", err.msg), -1;
    if (exec_ok(conn, "DROP DATABASE IF EXISTS " BENCH_DB " WITH (FORCE)", 0, NULL) != 0 ||
        exec_ok(conn, "CREATE DATABASE " BENCH_DB, 0, NULL) != 0)
        goto out;
    /* In a keyword=value conninfo the last setting of a keyword wins. */
    if ((size_t)snprintf(out, n, "%s dbname=" BENCH_DB, base) >= n) {
        fail("FAASMETER_DB", "too long");
        goto out;
    }
    bench = db_connect(out, &err);
    if (bench == NULL || schema_migrate(bench, NULL, NULL, &err) != 0) {
        fail(BENCH_DB, err.msg);
        goto out;
    }
    char id[APIKEY_ID_LEN + 1];
    if (apikey_generate(key) != 0 || !apikey_id(key, id)) {
        fail("key", "no randomness");
        goto out;
    }
    const char *params[] = {id, key};
    rc = exec_ok(bench,
                 "INSERT INTO api_keys (key_id, key_hash, role)"
                 " VALUES ($1, sha256(convert_to($2, 'UTF8')), 'ingest')",
                 2, params);
out:
    PQfinish(bench);
    PQfinish(conn);
    return rc;
}

/* Starts stored beforehand, as the direct path stores them, for the stops of the second
 * meterd phase: invocations "p<index>-<seq>" for the client indexes below n_index and seq
 * below STORED_PER_INDEX. */
#define STORED_PER_INDEX 12000
static int store_starts(const char *conninfo, int n_index)
{
    struct fm_err err;
    PGconn *conn = db_connect(conninfo, &err);
    if (conn == NULL)
        return fail("stored starts", err.msg);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "BEGIN;"
             " SELECT ensure_month_partition(t, '2026-05-01') FROM"
             "  unnest(ARRAY['records', 'invocations']) t;"
             " INSERT INTO tenants VALUES ('bench') ON CONFLICT DO NOTHING;"
             " CREATE TEMP TABLE s AS SELECT 'p' || i || '-' || k AS inv"
             "  FROM generate_series(0, %d) i, generate_series(0, %d) k;"
             " INSERT INTO record_ids SELECT 'bench', inv || ':start', '\\x00',"
             "  '2026-05-01T10:00:00Z' FROM s;"
             " INSERT INTO records (tenant, id, type, invocation_id, time, body)"
             "  SELECT 'bench', inv || ':start', 'start', inv, '2026-05-01T10:00:00Z',"
             "  jsonb_build_object('id', inv || ':start', 'type', 'start', 'invocation_id', inv,"
             "   'tenant', 'bench', 'function', 'f', 'time', '2026-05-01T10:00:00Z',"
             "   'memory_mb', 128, 'timeout_ms', 3000, 'cold_start', false, 'trigger', 'http')"
             "  FROM s;"
             " INSERT INTO invocation_ids SELECT 'bench', inv, '2026-05-01T10:00:00Z' FROM s;"
             " INSERT INTO invocations (tenant, invocation_id, started_at, function, has_start,"
             "  memory_mb, timeout_ms, cold_start, trigger)"
             "  SELECT 'bench', inv, '2026-05-01T10:00:00Z', 'f', true, 128, 3000, false, 'http'"
             "  FROM s;"
             " COMMIT",
             n_index - 1, STORED_PER_INDEX - 1);
    int rc = 0;
    const char *steps[] = {sql, "VACUUM ANALYZE record_ids, invocation_ids, invocations"};
    for (int i = 0; i < 2 && rc == 0; i++) {
        PGresult *res = PQexec(conn, steps[i]);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = fail("stored starts", PQresultErrorMessage(res));
        PQclear(res);
    }
    PQfinish(conn);
    return rc;
}

/* How many of the second phase's stops found their stored start. */
static long long stops_of_stored(const char *conninfo, long long *stops)
{
    struct fm_err err;
    PGconn *conn = db_connect(conninfo, &err);
    if (conn == NULL)
        return -1;
    PGresult *res = PQexec(conn, "SELECT count(*) FILTER (WHERE has_start),"
                                 " count(*) FROM invocations"
                                 " WHERE invocation_id LIKE 'p%' AND has_stop");
    long long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *stops = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    PQfinish(conn);
    return n;
}

static long long stored_records(const char *conninfo)
{
    struct fm_err err;
    PGconn *conn = db_connect(conninfo, &err);
    if (conn == NULL)
        return -1;
    PGresult *res = PQexec(conn, "SELECT count(*) FROM records");
    long long n = PQresultStatus(res) == PGRES_TUPLES_OK
                      ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                      : -1;
    PQclear(res);
    PQfinish(conn);
    return n;
}

/* ---- the servers, each in a child process ---------------------------------------------- */

static enum MHD_Result hello_request(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_size,
                                     void **req_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    static int started;
    if (*req_cls == NULL) {
        *req_cls = &started;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof hello_reply - 1, (void *)hello_reply, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* The threads of both servers: meterd's default pool. */
static unsigned server_threads(void)
{
    struct meter_config cfg;
    meter_config_defaults(&cfg);
    return cfg.threads;
}

struct child {
    pid_t pid;
    int stop_fd; /* closing it tells the child to stop */
    unsigned port;
};

/* The stop pipes the parent holds: a later child closes its copies, or the earlier child
 * would never see its pipe closed. */
static int held_fd[2];
static int nheld;

/* Run a server in a child: it writes its port on a pipe, serves until the parent closes
 * the other pipe, then stops. conninfo NULL: the hello-world server. */
static int child_start(const char *conninfo, struct child *out)
{
    int port_pipe[2], stop_pipe[2];
    if (pipe(port_pipe) != 0 || pipe(stop_pipe) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(port_pipe[0]);
        close(stop_pipe[1]);
        for (int i = 0; i < nheld; i++)
            close(held_fd[i]);
        unsigned port = 0;
        struct meter_server *srv = NULL;
        struct MHD_Daemon *hello = NULL;
        if (conninfo) {
            struct meter_config cfg;
            meter_config_defaults(&cfg);
            cfg.port = 0;
            cfg.conninfo = conninfo;
            struct fm_err err;
            if (meter_server_start(&cfg, &srv, &err) != 0)
                _exit(fail("meterd", err.msg));
            port = meter_server_port(srv);
        } else {
            struct sockaddr_in addr = {.sin_family = AF_INET};
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            hello = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0, NULL, NULL,
                hello_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                MHD_OPTION_THREAD_POOL_SIZE, server_threads(),
                MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                MHD_OPTION_END);
            if (hello == NULL)
                _exit(fail("hello-world", "cannot start"));
            const union MHD_DaemonInfo *info =
                MHD_get_daemon_info(hello, MHD_DAEMON_INFO_BIND_PORT);
            port = info ? info->port : 0;
        }
        if (write(port_pipe[1], &port, sizeof port) != sizeof port)
            _exit(1);
        char byte;
        while (read(stop_pipe[0], &byte, 1) > 0)
            ;
        meter_server_stop(srv);
        if (hello)
            MHD_stop_daemon(hello);
        _exit(0);
    }
    close(port_pipe[1]);
    close(stop_pipe[0]);
    unsigned port = 0;
    ssize_t got = read(port_pipe[0], &port, sizeof port);
    close(port_pipe[0]);
    if (got != sizeof port || port == 0) {
        close(stop_pipe[1]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *out = (struct child){pid, stop_pipe[1], port};
    if (nheld < 2)
        held_fd[nheld++] = stop_pipe[1];
    return 0;
}

/* Stop the child and wait for it; its peak resident memory in kB (-1 when unknown) and the
 * CPU time it used in user and system mode, in microseconds. */
static long long child_stop(struct child *c, long long cpu_us[2])
{
    close(c->stop_fd);
    struct rusage ru;
    cpu_us[0] = cpu_us[1] = 0;
    if (wait4(c->pid, NULL, 0, &ru) != c->pid)
        return -1;
    cpu_us[0] = ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
    cpu_us[1] = ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
    return ru.ru_maxrss;
}

/* ---- the client: threads, each a curl multi handle with its share of connections ------- */

struct client_thread {
    pthread_t thread;
    int index;
    enum sent { NEW_STOPS, STORED_SAMPLES, STORED_STOPS } sent; /* stored: "p", else "b" */
    unsigned port;
    const char *key;
    int64_t start_us, end_us; /* answers counted between these */
    long long ok, failed;
    long long answered; /* 200s, the warm-up's too: what the server's CPU time served */
    long long cpu_us;   /* the thread's own CPU, user and system */
};

static void request_arm(CURL *h, const struct client_thread *t, long long seq,
                        struct curl_slist *headers, char *url)
{
    char body[1024];
    const char *kind = t->sent == NEW_STOPS ? "b" : "p";
    if (t->sent == STORED_SAMPLES)
        snprintf(body, sizeof body,
                 "{\"id\":\"p%d-%lld:res:1\",\"type\":\"resource\",\"invocation_id\":"
                 "\"p%d-%lld\",\"tenant\":\"bench\",\"function\":\"f\","
                 "\"time\":\"2026-05-01T10:00:00.0005Z\",\"cpu_user_us\":1,\"cpu_sys_us\":1,"
                 "\"max_rss_kb\":2}\n",
                 t->index, seq, t->index, seq);
    else
        snprintf(body, sizeof body,
                 "{\"id\":\"%s%d-%lld:stop\",\"type\":\"stop\",\"invocation_id\":"
                 "\"%s%d-%lld\",\"tenant\":\"bench\",\"function\":\"f\","
                 "\"time\":\"2026-05-01T10:00:00.001Z\",\"memory_mb\":128,\"cold_start\":false,"
                 "\"duration_us\":1000,\"init_us\":0,\"status\":\"ok\",\"exit_code\":0,"
                 "\"cpu_user_us\":1,\"cpu_sys_us\":1,\"max_rss_kb\":1,\"bytes_in\":1,"
                 "\"bytes_out\":1}\n",
                 kind, t->index, seq, kind, t->index, seq);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
}

static size_t reply_check(char *p, size_t size, size_t n, void *userdata)
{
    bool *accepted = userdata;
    *accepted = *accepted || memmem(p, size * n, "\"accepted\":1", 12) != NULL;
    return size * n;
}

static void *client_run(void *arg)
{
    struct client_thread *t = arg;
    enum { PER_THREAD = CLIENTS / CLIENT_THREADS };
    char url[64], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/records", t->port);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->key);
    struct curl_slist *headers = curl_slist_append(NULL, auth);
    headers = curl_slist_append(headers, "Content-Type: application/x-ndjson");
    CURLM *multi = curl_multi_init();
    CURL *easy[PER_THREAD];
    bool accepted[PER_THREAD];
    long long seq = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        easy[i] = curl_easy_init();
        accepted[i] = false;
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, reply_check);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &accepted[i]);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, &accepted[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT, 60L);
        request_arm(easy[i], t, seq++, headers, url);
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = PER_THREAD;
    while (running > 0) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *h = msg->easy_handle;
            bool *acc = NULL;
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&acc);
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            int64_t now = fm_mono_us();
            t->answered += msg->data.result == CURLE_OK && status == 200 && *acc;
            if (now >= t->start_us && now < t->end_us) {
                if (msg->data.result == CURLE_OK && status == 200 && *acc)
                    t->ok++;
                else
                    t->failed++;
            }
            curl_multi_remove_handle(multi, h);
            if (now < t->end_us) {
                *acc = false;
                request_arm(h, t, seq++, headers, url);
                curl_multi_add_handle(multi, h);
                running++;
            }
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < PER_THREAD; i++)
        curl_easy_cleanup(easy[i]);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) == 0)
        t->cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
                    ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    return NULL;
}

/* Drive the server on port for seconds (after a short warm-up): the answers it gave then;
 * *failed the others, *answered adds every 200, the warm-up's too, and *client_us the
 * client's CPU time for them. */
static long long drive(unsigned port, const char *key, int seconds, int run, enum sent sent,
                       long long *failed, long long *answered, long long *client_us)
{
    struct client_thread t[CLIENT_THREADS];
    int64_t start = fm_mono_us() + 500000; /* connections open, statements prepared */
    for (int i = 0; i < CLIENT_THREADS; i++) {
        t[i] = (struct client_thread){.index = run * CLIENT_THREADS + i, .port = port,
                                      .sent = sent, .key = key, .start_us = start,
                                      .end_us = start + (int64_t)seconds * 1000000};
        pthread_create(&t[i].thread, NULL, client_run, &t[i]);
    }
    long long ok = 0;
    *failed = 0;
    for (int i = 0; i < CLIENT_THREADS; i++) {
        pthread_join(t[i].thread, NULL);
        ok += t[i].ok;
        *failed += t[i].failed;
        *answered += t[i].answered;
        *client_us += t[i].cpu_us;
    }
    return ok;
}

int main(void)
{
    const char *base = getenv("FAASMETER_DB");
    if (base == NULL || *base == '\0')
        return fail("FAASMETER_DB", "not set (make bench sets it)");
    const char *secs_env = getenv("FAASMETER_BENCH_SECONDS");
    int seconds = secs_env ? (int)strtol(secs_env, NULL, 10) : 5;
    if (seconds < 1 || seconds > 600)
        seconds = 5;
    signal(SIGPIPE, SIG_IGN);
    char conninfo[2048], key[APIKEY_LEN + 1];
    if (bench_db(base, conninfo, sizeof conninfo, key) != 0 ||
        store_starts(conninfo, seconds * CLIENT_THREADS) != 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct child meterd, hello;
    if (child_start(conninfo, &meterd) != 0)
        return fail("meterd", "did not start");
    if (child_start(NULL, &hello) != 0)
        return fail("hello-world", "did not start");
    long long meterd_ok = 0, meterd_failed = 0, hello_ok = 0, hello_failed = 0, failed;
    long long meterd_all = 0, hello_all = 0, meterd_client_us = 0, hello_client_us = 0;
    long long stops_ok = 0, stops_failed = 0, stops_all = 0, stops_client_us = 0;
    long long samples_ok = 0, samples_failed = 0;
    for (int r = 0; r < seconds; r++) {
        meterd_ok += drive(meterd.port, key, 1, 2 * r, NEW_STOPS, &failed, &meterd_all,
                           &meterd_client_us);
        meterd_failed += failed;
        hello_ok += drive(hello.port, key, 1, 2 * r + 1, NEW_STOPS, &failed, &hello_all,
                          &hello_client_us);
        hello_failed += failed;
        /* Samples of the invocations that the stops then end, as a long run sends them. */
        samples_ok += drive(meterd.port, key, 1, r, STORED_SAMPLES, &failed, &stops_all,
                            &stops_client_us);
        samples_failed += failed;
        stops_ok += drive(meterd.port, key, 1, r, STORED_STOPS, &failed, &stops_all,
                          &stops_client_us);
        stops_failed += failed;
    }
    long long meterd_rate = meterd_ok / seconds, hello_rate = hello_ok / seconds;
    long long stops_rate = stops_ok / seconds, stops_sent = 0;
    long long samples_rate = samples_ok / seconds;
    long long stops_met = stops_of_stored(conninfo, &stops_sent);
    long long meterd_cpu[2], hello_cpu[2];
    long long peak_kb = child_stop(&meterd, meterd_cpu);
    long long stored = stored_records(conninfo);
    child_stop(&hello, hello_cpu);
    curl_global_cleanup();

    printf("one record per request, %d keep-alive clients, %d s each in turns of 1 s; both "
           "servers: a pool of %u threads (meterd's poll, hello-world's epoll)\n",
           CLIENTS, seconds, server_threads());
    printf("  meterd       %8lld records/s acknowledged after commit (%lld failed; %lld "
           "records stored in all)\n",
           meterd_rate, meterd_failed, stored);
    printf("  hello-world  %8lld requests/s (libmicrohttpd, constant JSON; %lld failed)\n",
           hello_rate, hello_failed);
    if (hello_rate > 0)
        printf("  ratio        %8.3f of hello-world (target >= 0.35)\n",
               (double)meterd_rate / (double)hello_rate);
    if (meterd_rate > 0 && hello_rate > 0) {
        double m = (double)(meterd_all + stops_all), h = (double)hello_all;
        printf("  server CPU   meterd %.0f us user + %.0f us system per record, all its turns "
               "(PostgreSQL's apart), hello-world %.0f + %.0f us per request\n",
               (double)meterd_cpu[0] / m, (double)meterd_cpu[1] / m, (double)hello_cpu[0] / h,
               (double)hello_cpu[1] / h);
        printf("  client CPU   %.0f us per request to meterd, %.0f to hello-world (the same "
               "client, on the same cores)\n",
               (double)meterd_client_us / (double)meterd_all, (double)hello_client_us / h);
    }
    printf("  samples of running invocations (their starts stored), one a request: %lld "
           "records/s (%lld failed), %.3f of hello-world\n",
           samples_rate, samples_failed,
           hello_rate > 0 ? (double)samples_rate / (double)hello_rate : 0);
    printf("  stops of stored starts, one a request: %lld records/s (%lld failed), %.3f of "
           "hello-world; %lld of %lld stops found their start stored\n",
           stops_rate, stops_failed, hello_rate > 0 ? (double)stops_rate / (double)hello_rate : 0,
           stops_met, stops_sent);
    printf("  target       %8d records/s: %s\n", 20000,
           meterd_rate >= 20000 ? "reached" : "not reached");
    if (peak_kb >= 0)
        printf("  meterd peak resident memory %lld MB (target < 64 MB)\n", peak_kb / 1024);
    return 0;
}
