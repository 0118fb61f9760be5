#include "meter/orphans.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/log.h"

int meter_orphans_close(PGconn *conn, long grace_ms, enum meter_orphan_policy policy,
                        int limit, int *closed, struct fm_err *err)
{
    char grace[32], lim[16];
    snprintf(grace, sizeof grace, "%ld milliseconds", grace_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {grace, policy == METER_ORPHAN_BILL_NONE ? "none" : "timeout", lim};
    PGresult *res = PQexecParams(conn, "SELECT close_orphans($1::interval, $2, $3)", 3, NULL,
                                 params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "closing orphans");
        PQclear(res);
        return -1;
    }
    *closed = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

struct meter_orphan_sweeper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    const char *conninfo;
    long interval_ms, grace_ms;
    enum meter_orphan_policy policy;
};

/* One sweep, if no other meterd is sweeping. */
static void sweep(struct meter_orphan_sweeper *s, PGconn **conn)
{
    struct fm_err err;
    if (*conn == NULL || PQstatus(*conn) != CONNECTION_OK) {
        PQfinish(*conn);
        *conn = db_connect(s->conninfo, &err);
        if (*conn == NULL) {
            fm_debug("orphans: %s", err.msg);
            return;
        }
    }
    PGresult *res = PQexec(*conn, "SELECT pg_try_advisory_lock(hashtext('faasmeter.orphans'))");
    bool mine = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!mine)
        return;
    int closed = 0;
    if (meter_orphans_close(*conn, s->grace_ms, s->policy, 10000, &closed, &err) != 0)
        fm_warn("orphans: %s", err.msg);
    else if (closed > 0)
        fm_info("orphans: %d invocation%s closed as lost", closed, closed == 1 ? "" : "s");
    PQclear(PQexec(*conn, "SELECT pg_advisory_unlock(hashtext('faasmeter.orphans'))"));
}

static void *run(void *arg)
{
    struct meter_orphan_sweeper *s = arg;
    PGconn *conn = NULL;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s->interval_ms / 1000;
        until.tv_nsec += (s->interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!s->stopping && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT)
            ;
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->lock);
        sweep(s, &conn);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    PQfinish(conn);
    return NULL;
}

struct meter_orphan_sweeper *meter_orphans_start(const char *conninfo, long interval_ms,
                                                 long grace_ms,
                                                 enum meter_orphan_policy policy)
{
    struct meter_orphan_sweeper *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->conninfo = conninfo;
    s->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    s->grace_ms = grace_ms;
    s->policy = policy;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->wake);
        free(s);
        return NULL;
    }
    return s;
}

void meter_orphans_stop(struct meter_orphan_sweeper *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    free(s);
}
