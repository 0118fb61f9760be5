#include "meter/store.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/db.h"

/* Each worker thread's connection; all of them are also listed here so that
 * meter_store_close_all can close those of threads that have ended. */
#define CONNS_MAX 256
static _Thread_local PGconn *thread_conn;
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static PGconn *conns[CONNS_MAX];

static void conns_set(PGconn *old, PGconn *new_conn)
{
    pthread_mutex_lock(&conns_lock);
    for (size_t i = 0; i < CONNS_MAX; i++)
        if (conns[i] == old) {
            conns[i] = new_conn;
            break;
        }
    pthread_mutex_unlock(&conns_lock);
}

static const struct {
    const char *name;
    const char *sql;
    int nparams;
} statements[] = {
    {"ingest", "SELECT ingest_record($1, $2, $3, $4, $5::timestamptz, $6::jsonb)", 6},
    {"find_key",
     "SELECT key_hash, role, coalesce(tenant, '') FROM api_keys"
     " WHERE key_id = $1 AND revoked_at IS NULL",
     1},
};

static int prepare_all(PGconn *conn, struct fm_err *err)
{
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
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

PGconn *meter_store_conn(const char *conninfo, struct fm_err *err)
{
    if (thread_conn && PQstatus(thread_conn) == CONNECTION_OK)
        return thread_conn;
    meter_store_close();
    PGconn *conn = db_connect(conninfo, err);
    if (conn == NULL)
        return NULL;
    if (prepare_all(conn, err) != 0) {
        PQfinish(conn);
        return NULL;
    }
    thread_conn = conn;
    conns_set(NULL, conn);
    return conn;
}

void meter_store_close(void)
{
    if (thread_conn == NULL)
        return;
    conns_set(thread_conn, NULL);
    PQfinish(thread_conn);
    thread_conn = NULL;
}

void meter_store_close_all(void)
{
    pthread_mutex_lock(&conns_lock);
    for (size_t i = 0; i < CONNS_MAX; i++) {
        PQfinish(conns[i]);
        conns[i] = NULL;
    }
    pthread_mutex_unlock(&conns_lock);
    thread_conn = NULL;
}

static int simple(PGconn *conn, const char *sql, struct fm_err *err)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        db_err_from(err, conn, res, sql);
    PQclear(res);
    return ok ? 0 : -1;
}

int meter_store_records(PGconn *conn, const struct meter_record *recs, size_t n,
                        enum meter_outcome *outcomes, struct fm_err *err)
{
    if (simple(conn, "BEGIN", err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct meter_record *r = &recs[i];
        const char *params[6] = {r->tenant, r->id, (const char *)r->digest, r->type,
                                 r->time_text, r->body};
        const int lengths[6] = {0, 0, (int)sizeof r->digest, 0, 0, 0};
        const int formats[6] = {0, 0, 1, 0, 0, 0};
        PGresult *res = PQexecPrepared(conn, "ingest", 6, params, lengths, formats, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            db_err_from(err, conn, res, "storing a record");
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            return -1;
        }
        const char *what = PQgetvalue(res, 0, 0);
        outcomes[i] = strcmp(what, "accepted") == 0    ? METER_ACCEPTED
                      : strcmp(what, "duplicate") == 0 ? METER_DUPLICATE
                                                       : METER_CONFLICT;
        PQclear(res);
    }
    return simple(conn, "COMMIT", err);
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
