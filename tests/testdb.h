#ifndef FM_TESTS_TESTDB_H
#define FM_TESTS_TESTDB_H

#include <libpq-fe.h>
#include <stddef.h>

/*
 * A fresh database per suite on the server that FAASMETER_DB names: dropped if it exists,
 * created, migrated. Tests can run twice in a row.
 */

/** Create database `name` (fails the test on error) and write its conninfo into out. */
void testdb_create(const char *name, char *out, size_t n);

/** Create database `name` empty, without the schema (fails the test on error), and write
 *  its conninfo into out. */
void testdb_create_empty(const char *name, char *out, size_t n);

/** Connect to conninfo or fail the test. */
PGconn *testdb_connect(const char *conninfo);

/** Run a query with text parameters and return the first column of the first row as a new
 *  string ("" when there is no row, "NULL" for a null); fails the test on a SQL error. The
 *  caller frees the result. */
char *testdb_value(PGconn *conn, const char *sql, int nparams, const char *const *params);

/**
 * Make a new API key of role (for tenant, NULL for none) and store it as meterd expects
 * (the database computes the SHA-256, independently of meterd's code). key receives the
 * key and must hold APIKEY_LEN + 1 bytes.
 */
void testdb_add_key(PGconn *conn, char *key, const char *role, const char *tenant);

/** Run a statement; fails the test on error. */
void testdb_exec(PGconn *conn, const char *sql);

#endif
