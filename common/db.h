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
 * db_conninfo's string, checked to parse (key=value pairs or a URI, known keys only): a
 * mistyped one could never connect, so it is bad usage, told at once, rather than a database
 * that seems unreachable on every try.
 * @return the string, or NULL with err set to "--db: <libpq's reason>" (or "FAASMETER_DB:")
 */
const char *db_conninfo_checked(const char *explicit_value, struct fm_err *err);

/**
 * Connect, with UTC as the session time zone and synchronous commit on.
 * @return the connection (caller closes with PQfinish), or NULL with err set
 */
PGconn *db_connect(const char *conninfo, struct fm_err *err);

/**
 * Put "what: <server message, first line>" into err, from res when given, else from conn.
 * The error's SQLSTATE is kept for the calling thread: see db_failed_transiently.
 */
void db_err_from(struct fm_err *err, PGconn *conn, const PGresult *res, const char *what);

/**
 * Run a statement that returns no rows (BEGIN, LOCK, COMMIT, ...).
 * @return 0, or -1 with err set to "<sql>: <server message>"
 */
int db_command(PGconn *conn, const char *sql, struct fm_err *err);

/**
 * Whether the last error db_err_from reported on this thread since db_forget_failure was a
 * deadlock or a serialization failure: the server rolled the transaction back, and the
 * same transaction tried again usually succeeds.
 */
bool db_failed_transiently(void);

/** Forget the last error's SQLSTATE on this thread (before a transaction is tried). */
void db_forget_failure(void);

/**
 * Whether an idle connection's server has gone away. Such a connection looks healthy until
 * it is used, and the request that used it would fail. An idle connection is sent nothing
 * unasked but by a server that ends the session, so a socket with anything to read (or an
 * error) counts as gone, to be made anew.
 */
bool db_idle_conn_broken(PGconn *conn);

#endif
