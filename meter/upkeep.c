#include "meter/upkeep.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/log.h"
#include "meter/fold.h"

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

struct meter_upkeep {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    struct meter_upkeep_config cfg;
};

/* One sweep for orphans, if no other meterd is sweeping. */
static void sweep(const struct meter_upkeep_config *cfg, PGconn *conn)
{
    struct fm_err err;
    PGresult *res = PQexec(conn, "SELECT pg_try_advisory_lock(hashtext('faasmeter.orphans'))");
    bool mine = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!mine)
        return;
    int closed = 0;
    if (meter_orphans_close(conn, cfg->grace_ms, cfg->policy, 10000, &closed, &err) != 0)
        fm_warn("orphans: %s", err.msg);
    else if (closed > 0)
        fm_info("orphans: %d invocation%s closed as lost", closed, closed == 1 ? "" : "s");
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(hashtext('faasmeter.orphans'))"));
}

bool meter_partitions_ready(PGconn *conn, struct fm_err *err)
{
    PGresult *res = PQexec(conn, "SELECT ensure_month_partition(t, m)"
                                 "  FROM unnest(ARRAY['records', 'invocations']) t,"
                                 "       unnest(ARRAY[now(), now() + interval '1 month']) m");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        db_err_from(err, conn, res, "making partitions");
    PQclear(res);
    return ok;
}

/* Wait until the next tick or until told to stop; false when stopping. Called locked. */
static bool wait_tick(struct meter_upkeep *u, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (!u->stopping && pthread_cond_timedwait(&u->wake, &u->lock, &until) != ETIMEDOUT)
        ;
    return !u->stopping;
}

static void *run(void *arg)
{
    struct meter_upkeep *u = arg;
    const struct meter_upkeep_config *cfg = &u->cfg;
    PGconn *conn = NULL;
    long tick = cfg->fold_ms > 0 ? cfg->fold_ms : cfg->sweep_ms;
    if (cfg->sweep_ms > 0 && cfg->sweep_ms < tick)
        tick = cfg->sweep_ms;
    long since_sweep = 0;
    pthread_mutex_lock(&u->lock);
    while (wait_tick(u, tick)) {
        pthread_mutex_unlock(&u->lock);
        struct fm_err err;
        if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = db_connect(cfg->conninfo, &err);
            if (conn == NULL)
                fm_debug("upkeep: %s", err.msg);
        }
        if (conn && cfg->fold_ms > 0 && meter_usage_fold(conn, NULL, &err) != 0)
            fm_warn("upkeep: %s", err.msg);
        /* Making a partition locks its whole table: do it here, ahead of the month, and
         * not inside a batch of records when the month turns. */
        if (conn && !meter_partitions_ready(conn, &err))
            fm_warn("upkeep: %s", err.msg);
        since_sweep += tick;
        if (conn && cfg->sweep_ms > 0 && since_sweep >= cfg->sweep_ms) {
            since_sweep = 0;
            sweep(cfg, conn);
        }
        pthread_mutex_lock(&u->lock);
    }
    pthread_mutex_unlock(&u->lock);
    PQfinish(conn);
    return NULL;
}

struct meter_upkeep *meter_upkeep_start(const struct meter_upkeep_config *cfg)
{
    if (cfg->fold_ms <= 0 && cfg->sweep_ms <= 0)
        return NULL;
    struct meter_upkeep *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->cfg = *cfg;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->wake, NULL);
    if (pthread_create(&u->thread, NULL, run, u) != 0) {
        pthread_mutex_destroy(&u->lock);
        pthread_cond_destroy(&u->wake);
        free(u);
        return NULL;
    }
    return u;
}

void meter_upkeep_stop(struct meter_upkeep *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->lock);
    u->stopping = true;
    pthread_cond_signal(&u->wake);
    pthread_mutex_unlock(&u->lock);
    pthread_join(u->thread, NULL);
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->wake);
    free(u);
}
