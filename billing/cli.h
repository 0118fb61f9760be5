#ifndef FM_BILLING_CLI_H
#define FM_BILLING_CLI_H

#include <libpq-fe.h>
#include <stdbool.h>

/*
 * faasbill's subcommands. Each takes the arguments after its name (argv[0] is the
 * subcommand name) and returns the process exit code: 0 success, 1 failure, 2 bad usage.
 * Errors go to stderr as one line naming what was wrong.
 */
int cli_quote(int argc, char **argv);
int cli_plans(int argc, char **argv);
int cli_servers(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_tenant(int argc, char **argv);
int cli_key(int argc, char **argv);
int cli_invoice(int argc, char **argv);
int cli_compare(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_simulate(int argc, char **argv);

/* What the subcommands share beyond their options, which common/cli.h parses. */
struct bill_catalog;

/**
 * Check the --tenant option's value as a tenant name, printing the error.
 * @return 0, or 2 (bad usage)
 */
int cli_check_tenant(const char *cmd, const char *name);

/** Print "faasbill <cmd>: <message>" on stderr, one line. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Load the catalog (dir, from --catalog, may be NULL for the default), printing the error.
 * @return 0, or the exit code: 2 when dir is empty or cannot be loaded (missing, not a
 *         folder, a bad file), 1 when the default catalog cannot be, or memory ran out
 */
int cli_load_catalog(const char *cmd, const char *dir, struct bill_catalog **out);

/**
 * Connect to the database (db, from --db, may be NULL for $FAASMETER_DB or libpq's
 * defaults), printing the error.
 * @return 0, or the exit code: 2 when the connection string does not parse, 1 when the
 *         connection fails
 */
int cli_connect(const char *cmd, const char *db, PGconn **out);

#endif
