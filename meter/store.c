#include "meter/store.h"

#include <libpq-events.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/queue.h"
#include "meter/metrics.h"
#include "meter/store_direct.h"

/*
 * A pool of connections shared by the request threads: a thread borrows one for the
 * request that needs it (meter_store_conn) and gives it back when the request is done
 * (meter_store_release), so that many clients share a bounded number of connections.
 */
#define POOL_MAX 32
#define POOL_WAIT_S 5
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_free = PTHREAD_COND_INITIALIZER;
static PGconn *idle[POOL_MAX];
static int nidle;
static int nopen; /* borrowed and idle */
static _Thread_local PGconn *held;

static const struct {
    const char *name;
    const char *sql;
    int nparams;
    bool ingest; /* used to store records: the group's writers prepare only these */
} statements[] = {
    {"ingest", "SELECT ord, outcome FROM ingest_staged()", 0, true},
    {"find_key",
     "SELECT key_hash, role, coalesce(tenant, '') FROM api_keys"
     " WHERE key_id = $1 AND revoked_at IS NULL",
     1, false},
    {METER_DIRECT_PREPARE, "SELECT * FROM ingest_direct_prepare($1, $2, $3)", 3, true},
    {METER_DIRECT_TENANTS,
     "INSERT INTO tenants (tenant) SELECT t FROM unnest($1::text[]) t"
     " WHERE NOT EXISTS (SELECT 1 FROM tenants x WHERE x.tenant = t) ON CONFLICT DO NOTHING",
     1, true},
    {METER_DIRECT_STOPS, "SELECT count(*) FROM invocations_stop($1, true)", 1, true},
};

/* Prepare the statements on a new connection; with ingest_only, those that store records
 * (a writer then never waits on the tables it does not use). */
static int prepare_all(PGconn *conn, bool ingest_only, struct fm_err *err)
{
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        if (ingest_only && !statements[i].ingest)
            continue;
        PGresult *res = PQprepare(conn, statements[i].name, statements[i].sql,
                                  statements[i].nparams, NULL);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            db_err_from(err, conn, res, statements[i].name);
        PQclear(res);
        if (!ok)
            return -1;
    }
    return 0;
}

/*
 * The staging tables are made in a session when it first takes the staged path, not when
 * it connects: most batches never need them, and making them costs far more than a batch.
 * libpq's per-connection data marks the sessions that have them.
 */
static int session_events(PGEventId id, void *info, void *pass)
{
    (void)id, (void)info, (void)pass;
    return 1;
}

static int stage_ready(PGconn *conn, struct fm_err *err)
{
    if (PQinstanceData(conn, session_events) != NULL)
        return 0;
    PGresult *res = PQexec(conn, "SELECT ingest_prepare_session()");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        db_err_from(err, conn, res, "preparing the staging tables");
    PQclear(res);
    if (!ok)
        return -1;
    static char ready = 1;
    PQregisterEventProc(conn, session_events, "faasmeter staging", NULL);
    PQsetInstanceData(conn, session_events, &ready);
    return 0;
}

/* After a rollback: tables made in the transaction are gone. */
static void stage_forget(PGconn *conn)
{
    PQsetInstanceData(conn, session_events, NULL);
}

/* Take an idle connection, or room for a new one (NULL then). false when the pool stayed
 * full for POOL_WAIT_S. */
static bool pool_take(PGconn **out)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += POOL_WAIT_S;
    pthread_mutex_lock(&pool_lock);
    while (nidle == 0 && nopen >= POOL_MAX)
        if (pthread_cond_timedwait(&pool_free, &pool_lock, &until) != 0)
            break;
    bool ok = nidle > 0 || nopen < POOL_MAX;
    if (ok) {
        if (nidle > 0) {
            *out = idle[--nidle];
        } else {
            *out = NULL;
            nopen++;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return ok;
}

/* Give back room for a connection that was closed. */
static void pool_forget(void)
{
    pthread_mutex_lock(&pool_lock);
    nopen--;
    pthread_cond_signal(&pool_free);
    pthread_mutex_unlock(&pool_lock);
}

PGconn *meter_store_conn(const char *conninfo, struct fm_err *err)
{
    if (held && PQstatus(held) == CONNECTION_OK && !db_idle_conn_broken(held))
        return held;
    meter_store_close();
    PGconn *conn = NULL;
    if (!pool_take(&conn)) {
        fm_err_set(err, "all %d database connections are busy", POOL_MAX);
        return NULL;
    }
    if (conn && PQstatus(conn) == CONNECTION_OK && !db_idle_conn_broken(conn)) {
        held = conn;
        return conn;
    }
    PQfinish(conn); /* an idle one that broke: make it anew in its place */
    conn = db_connect(conninfo, err);
    if (conn != NULL && prepare_all(conn, false, err) != 0) {
        PQfinish(conn);
        conn = NULL;
    }
    if (conn == NULL) {
        pool_forget();
        return NULL;
    }
    held = conn;
    return conn;
}

void meter_store_release(void)
{
    if (held == NULL)
        return;
    PGconn *conn = held;
    held = NULL;
    /* Only a healthy connection outside any transaction goes back. */
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQfinish(conn);
        pool_forget();
        return;
    }
    pthread_mutex_lock(&pool_lock);
    idle[nidle++] = conn;
    pthread_cond_signal(&pool_free);
    pthread_mutex_unlock(&pool_lock);
}

void meter_store_close(void)
{
    if (held == NULL)
        return;
    PQfinish(held);
    held = NULL;
    pool_forget();
}

void meter_store_close_all(void)
{
    meter_store_close();
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < nidle; i++)
        PQfinish(idle[i]);
    nopen -= nidle;
    nidle = 0;
    pthread_mutex_unlock(&pool_lock);
}

/* The batch as COPY text: the record's fields, then ord, digest and body. */
static int copy_batch(PGconn *conn, const struct meter_record *recs, size_t n,
                      struct fm_err *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "COPY ingest_stage (%s, ord, digest, body) FROM STDIN",
             meter_record_columns());
    struct fm_buf b;
    fm_buf_init(&b, 1u << 30);
    for (size_t i = 0; i < n; i++) {
        char digest[METER_DIGEST_HEX];
        meter_record_digest_hex(&recs[i], digest);
        fm_buf_puts(&b, recs[i].copy_row);
        fm_buf_printf(&b, "\t%zu\t\\\\x%s\t", i, digest);
        meter_copy_text(&b, recs[i].body);
        fm_buf_puts(&b, "\n");
    }
    int rc = -1;
    if (b.failed)
        fm_err_set(err, "out of memory");
    else if ((rc = meter_copy_in(conn, &(struct meter_copy){sql, b.data, b.len}, 1, NULL,
                                 err)) > 0)
        fm_err_set(err, "COPY of the batch into the staging table was refused");
    rc = rc == 0 ? 0 : -1;
    fm_buf_free(&b);
    return rc;
}

/* Stage recs and store them with ingest_staged(), inside the caller's transaction. */
static int store_staged(PGconn *conn, const struct meter_record *recs, size_t n,
                        enum meter_outcome *outcomes, struct fm_err *err)
{
    if (stage_ready(conn, err) != 0 || copy_batch(conn, recs, n, err) != 0)
        return -1;
    PGresult *res = PQexecPrepared(conn, "ingest", 0, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != (int)n) {
        db_err_from(err, conn, res, "storing the batch");
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long ord = strtol(PQgetvalue(res, i, 0), NULL, 10);
        const char *what = PQgetvalue(res, i, 1);
        if (ord < 0 || (size_t)ord >= n)
            continue;
        outcomes[ord] = strcmp(what, "accepted") == 0    ? METER_ACCEPTED
                        : strcmp(what, "duplicate") == 0 ? METER_DUPLICATE
                                                         : METER_CONFLICT;
    }
    PQclear(res);
    return 0;
}

/* Store what the direct path leaves (all of recs when d is NULL) on the staged path; the
 * outcomes of those records. */
static int store_rest(PGconn *conn, const struct meter_direct *d, const struct meter_record *recs,
                      size_t n, enum meter_outcome *outcomes, struct fm_err *err)
{
    if (d == NULL)
        return store_staged(conn, recs, n, outcomes, err);
    struct meter_record *rest = malloc(n * sizeof *rest);
    enum meter_outcome *got = malloc(n * sizeof *got);
    size_t *from = malloc(n * sizeof *from);
    int rc = -1;
    if (rest == NULL || got == NULL || from == NULL) {
        fm_err_set(err, "out of memory");
        goto out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!meter_direct_stored(d, i)) {
            rest[m] = recs[i]; /* a shallow copy: the record keeps its strings */
            from[m++] = i;
        }
    }
    rc = m == 0 ? 0 : store_staged(conn, rest, m, got, err);
    for (size_t k = 0; rc == 0 && k < m; k++)
        outcomes[from[k]] = got[k];
out:
    free(rest);
    free(got);
    free(from);
    return rc;
}

/*
 * One transaction, in the lock order of ingest_staged: the direct part's new keys first,
 * then the staged part's locks on existing invocations. A batch with no staged part sends
 * its COPYs and the commit as one query.
 */
static int store_once(PGconn *conn, struct meter_direct *d, const struct meter_record *recs,
                      size_t n, enum meter_outcome *outcomes, struct fm_err *err)
{
    if (db_command(conn, "BEGIN", err) != 0)
        return -1;
    if (d != NULL) {
        int rc = meter_direct_begin(conn, d, err);
        bool staged = meter_direct_count(d) < n; /* known once begun */
        if (rc == 0)
            rc = meter_direct_copy(conn, d, staged ? NULL : "COMMIT", err);
        if (rc != 0 || !staged)
            return rc;
    }
    if (store_rest(conn, d, recs, n, outcomes, err) != 0)
        return -1;
    return db_command(conn, "COMMIT", err);
}

/* One try at storing recs (see meter_store_records). */
static int store_records_once(PGconn *conn, const struct meter_record *recs, size_t n,
                              enum meter_outcome *outcomes, struct fm_err *err)
{
    struct meter_direct *d = meter_direct_plan(recs, n);
    int rc = store_once(conn, d, recs, n, outcomes, err);
    if (rc > 0) {
        /* An existing key, or a stop or samples that met their invocation stopped: every
         * record takes the staged path, which tells each one's outcome. */
        PQclear(PQexec(conn, "ROLLBACK"));
        stage_forget(conn);
        meter_direct_free(d);
        d = NULL;
        rc = store_once(conn, NULL, recs, n, outcomes, err);
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            if (meter_direct_stored(d, i))
                outcomes[i] = METER_ACCEPTED;
        metrics_records_direct(meter_direct_count(d));
    } else {
        /* Whatever failed, the transaction is gone, and the staging tables it may have
         * made with it. */
        if (PQtransactionStatus(conn) != PQTRANS_IDLE)
            PQclear(PQexec(conn, "ROLLBACK"));
        stage_forget(conn);
        rc = -1;
    }
    meter_direct_free(d);
    return rc;
}

/*
 * Concurrent batches, and the orphan sweep, can still deadlock: the direct part of a batch
 * takes its keys before its staged part, and close_orphans goes by start time. The server
 * then rolls one transaction back whole, so it is tried again, a few times, before the
 * request is answered 503.
 */
#define STORE_TRIES 3

int meter_store_records(PGconn *conn, const struct meter_record *recs, size_t n,
                        enum meter_outcome *outcomes, struct fm_err *err)
{
    for (int tries = 1;; tries++) {
        db_forget_failure();
        int rc = store_records_once(conn, recs, n, outcomes, err);
        if (rc == 0 || tries == STORE_TRIES || !db_failed_transiently() ||
            PQstatus(conn) != CONNECTION_OK)
            return rc;
        metrics_store_retry();
    }
}

int meter_store_find_key(PGconn *conn, const char *key_id, struct meter_key *out,
                         struct fm_err *err)
{
    const char *params[1] = {key_id};
    /* Binary results: key_hash arrives as its 32 bytes. */
    PGresult *res = PQexecPrepared(conn, "find_key", 1, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "looking up a key");
        PQclear(res);
        return -1;
    }
    int found = 0;
    if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == APIKEY_HASH_LEN &&
        PQgetlength(res, 0, 1) < (int)sizeof out->role &&
        PQgetlength(res, 0, 2) < (int)sizeof out->tenant) {
        struct meter_key k = {0};
        memcpy(k.hash, PQgetvalue(res, 0, 0), APIKEY_HASH_LEN);
        memcpy(k.role, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
        memcpy(k.tenant, PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
        *out = k;
        found = 1;
    }
    PQclear(res);
    return found;
}

int meter_store_ping(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok ? 0 : -1;
}

/* ---- Group commit --------------------------------------------------------------------- */

/* At most this many records share one transaction; a larger request is never split. */
#define GROUP_RECORDS_MAX 20000

struct pending {
    struct fm_qnode node; /* first, see queue.h; also links the requests of a group */
    const struct meter_record *recs;
    size_t n;
    enum meter_outcome *outcomes;
    meter_group_done *done;
    void *arg;
    int rc;
    struct fm_err err;
};

static struct pending *next_pending(const struct pending *p)
{
    return (struct pending *)p->node.next;
}

/* Writers at once: each has its own thread and connection, so that its session keeps its
 * plans warm (a session plans ingest_staged once, which costs far more than a batch). Two
 * let one batch's database work overlap the next batch's COPY on a small machine. */
#define GROUP_LANES 2

struct meter_group {
    struct fm_queue waiting; /* submitted requests; closed when the group stops */
    const char *conninfo;
    struct lane {
        struct meter_group *group;
        pthread_t thread;
        PGconn *conn;
    } lanes[GROUP_LANES];
    int nlanes; /* writer threads started */
};

/* A lane's connection, made and prepared on first use or after it broke. */
static PGconn *lane_conn(struct lane *lane, struct fm_err *err)
{
    PGconn *conn = lane->conn;
    if (conn && PQstatus(conn) == CONNECTION_OK && !db_idle_conn_broken(conn))
        return conn;
    PQfinish(conn);
    lane->conn = NULL;
    conn = db_connect(lane->group->conninfo, err);
    if (conn == NULL)
        return NULL;
    if (prepare_all(conn, true, err) != 0) {
        PQfinish(conn);
        return NULL;
    }
    lane->conn = conn;
    return conn;
}

/* Write the requests of list in one transaction on lane and set how each went. */
static void write_group(struct lane *lane, struct pending *list)
{
    size_t total = 0;
    for (struct pending *p = list; p; p = next_pending(p))
        total += p->n;
    struct meter_record *recs = calloc(total ? total : 1, sizeof *recs);
    enum meter_outcome *outcomes = calloc(total ? total : 1, sizeof *outcomes);
    struct fm_err err;
    int rc = -1;
    PGconn *conn = NULL;
    if (recs == NULL || outcomes == NULL) {
        fm_err_set(&err, "out of memory");
    } else {
        size_t at = 0;
        /* Shallow copies: the bodies stay owned by their requests. */
        for (struct pending *p = list; p; p = next_pending(p)) {
            memcpy(recs + at, p->recs, p->n * sizeof *recs);
            at += p->n;
        }
        conn = lane_conn(lane, &err);
        if (conn != NULL)
            rc = meter_store_records(conn, recs, total, outcomes, &err);
    }
    size_t at = 0;
    for (struct pending *p = list; p; p = next_pending(p)) {
        p->rc = rc;
        if (rc == 0)
            memcpy(p->outcomes, outcomes + at, p->n * sizeof *outcomes);
        else
            p->err = err;
        at += p->n;
    }
    /* A group that failed with the database still there (a deadlock with another writer,
     * a record the database refused) is tried again request by request, so that one
     * request's trouble is not every request's. */
    if (rc != 0 && next_pending(list) != NULL && conn != NULL && PQstatus(conn) == CONNECTION_OK)
        for (struct pending *p = list; p; p = next_pending(p))
            p->rc = meter_store_records(conn, p->recs, p->n, p->outcomes, &p->err);
    free(recs);
    free(outcomes);
}

/* Whether request n still fits a group counted so far in *ctx (records). */
static bool fits_group(void *ctx, const struct fm_qnode *n)
{
    size_t *records = ctx, more = ((const struct pending *)n)->n;
    if (*records > 0 && *records + more > GROUP_RECORDS_MAX)
        return false;
    *records += more;
    return true;
}

/* A writer: takes what is waiting (up to the cap), stores it, tells each request; until
 * the group stops and nothing waits. */
static void *lane_run(void *arg)
{
    struct lane *lane = arg;
    struct fm_qnode *taken;
    size_t records = 0;
    while ((taken = fm_queue_take(&lane->group->waiting, fits_group, &records)) != NULL) {
        struct pending *list = (struct pending *)taken;
        records = 0;
        write_group(lane, list);
        for (struct pending *p = list, *next; p; p = next) {
            next = next_pending(p);
            p->done(p->arg, p->rc, &p->err);
            free(p);
        }
    }
    PQfinish(lane->conn);
    lane->conn = NULL;
    return NULL;
}

struct meter_group *meter_group_new(const char *conninfo)
{
    struct meter_group *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    fm_queue_init(&g->waiting);
    g->conninfo = conninfo;
    for (int i = 0; i < GROUP_LANES; i++) {
        g->lanes[i].group = g;
        if (pthread_create(&g->lanes[i].thread, NULL, lane_run, &g->lanes[i]) != 0)
            break;
        pthread_setname_np(g->lanes[i].thread, "meterd-writer");
        g->nlanes++;
    }
    if (g->nlanes == 0) {
        meter_group_free(g);
        return NULL;
    }
    return g;
}

void meter_group_stop(struct meter_group *g)
{
    fm_queue_close(&g->waiting);
    for (int i = 0; i < g->nlanes; i++)
        pthread_join(g->lanes[i].thread, NULL);
    g->nlanes = 0;
}

void meter_group_free(struct meter_group *g)
{
    if (g == NULL)
        return;
    meter_group_stop(g);
    fm_queue_destroy(&g->waiting);
    free(g);
}

void meter_group_submit(struct meter_group *g, const struct meter_record *recs, size_t n,
                        enum meter_outcome *outcomes, meter_group_done *done, void *arg)
{
    struct pending *p = malloc(sizeof *p);
    if (p == NULL) {
        struct fm_err err;
        fm_err_set(&err, "out of memory");
        done(arg, -1, &err);
        return;
    }
    *p = (struct pending){.recs = recs, .n = n, .outcomes = outcomes, .done = done,
                          .arg = arg};
    if (!fm_queue_push(&g->waiting, &p->node)) {
        fm_err_set(&p->err, "meterd is stopping");
        done(arg, METER_GROUP_STOPPED, &p->err);
        free(p);
    }
}
