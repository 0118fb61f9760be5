#ifndef FM_SCHEMA_MIGRATE_H
#define FM_SCHEMA_MIGRATE_H

#include <libpq-fe.h>

#include "common/err.h"

/**
 * Apply the numbered migrations of dir (files NNN_name.sql) that the database has not
 * recorded yet, in order, each in its own transaction, recording each in
 * schema_migrations. Safe to run twice and from several processes at once (an advisory
 * lock serialises them).
 *
 * @param dir      the migrations folder; NULL for schema/ of the installation
 * @param applied  optional: set to the number of migrations applied by this call, on success
 * @return 0, or -1 with err set (the failing migration is rolled back, earlier ones stay)
 */
int schema_migrate(PGconn *conn, const char *dir, int *applied, struct fm_err *err);

#endif
