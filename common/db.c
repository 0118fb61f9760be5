#include "common/db.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *db_conninfo(const char *explicit_value)
{
    if (explicit_value && *explicit_value)
        return explicit_value;
    const char *env = getenv("FAASMETER_DB");
    return env ? env : "";
}

const char *db_conninfo_checked(const char *explicit_value, struct fm_err *err)
{
    const char *conninfo = db_conninfo(explicit_value);
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
    PQconninfoFree(opts);
    if (opts != NULL || why == NULL) /* parsed, or out of memory: connecting will say */
        return conninfo;
    /* libpq's reason ends with a newline. */
    fm_err_set(err, "%s: %.*s", explicit_value && *explicit_value ? "--db" : "FAASMETER_DB",
               (int)strcspn(why, "\n"), why);
    PQfreemem(why);
    return NULL;
}

/* The SQLSTATE of the last error db_err_from reported on this thread. */
static _Thread_local char last_sqlstate[6];

bool db_failed_transiently(void)
{
    return strcmp(last_sqlstate, "40P01") == 0 || strcmp(last_sqlstate, "40001") == 0;
}

void db_forget_failure(void)
{
    last_sqlstate[0] = '\0';
}

void db_err_from(struct fm_err *err, PGconn *conn, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(last_sqlstate, sizeof last_sqlstate, "%s", state ? state : "");
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (msg == NULL || *msg == '\0')
        msg = conn ? PQerrorMessage(conn) : "no connection";
    char line[400];
    size_t n = 0;
    for (; msg[n] && msg[n] != '\n' && n < sizeof line - 1; n++)
        line[n] = msg[n];
    line[n] = '\0';
    fm_err_set(err, "%s: %s", what, line);
}

int db_command(PGconn *conn, const char *sql, struct fm_err *err)
{
    PGresult *res = PQexec(conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        db_err_from(err, conn, res, sql);
    PQclear(res);
    return rc;
}

PGconn *db_connect(const char *conninfo, struct fm_err *err)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        db_err_from(err, conn, NULL, "database connection failed");
        PQfinish(conn);
        return NULL;
    }
    /* What we send is UTF-8 (records are checked to be), whatever PGCLIENTENCODING says. */
    PGresult *res = PQexec(conn, "SET TIME ZONE 'UTC'; SET synchronous_commit = on; "
                                 "SET client_min_messages = warning; "
                                 "SET client_encoding = 'UTF8'");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_err_from(err, conn, res, "database session set-up failed");
        PQclear(res);
        PQfinish(conn);
        return NULL;
    }
    PQclear(res);
    return conn;
}

bool db_idle_conn_broken(PGconn *conn)
{
    struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
    if (p.fd < 0)
        return true;
    /* Anything to read is the server ending the session: its FATAL message, with the end
     * of the stream close behind. libpq alone would read the message, not yet the end, and
     * call the connection sound until its next statement failed. */
    return poll(&p, 1, 0) != 0;
}
