#ifndef FM_DB_H
#define FM_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "common/err.h"

/**
 * The libpq connection string to use: the explicit value (a --db flag) when given, else
 * $FAASMETER_DB, else "" (libpq's own defaults: PGHOST, PGDATABASE, ...). Static or borrowed.
 */
const char *db_conninfo(const char *explicit_value);

/**
 * Connect, with UTC as the session time zone and synchronous commit on.
 * @return the connection (caller closes with PQfinish), or NULL with err set
 */
PGconn *db_connect(const char *conninfo, struct fm_err *err);

/** Put "what: <server message, first line>" into err, from res when given, else from conn. */
void db_err_from(struct fm_err *err, PGconn *conn, const PGresult *res, const char *what);

/**
 * Whether an idle connection's server has gone away. Such a connection looks healthy until
 * it is used, and the request that used it would fail; an idle one has nothing to read, so
 * a socket that reads as ready is closed (libpq is then let read it, marking it bad).
 */
bool db_idle_conn_broken(PGconn *conn);

#endif
