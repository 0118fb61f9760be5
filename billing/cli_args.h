#ifndef FM_BILLING_CLI_ARGS_H
#define FM_BILLING_CLI_ARGS_H

/*
 * Command-line helpers shared by faasbill's subcommands. Options are "--name value" or
 * "--name=value". Every error is printed here as one line, "faasbill <cmd>: <what>", so
 * that each command reports bad usage the same way.
 */

#include <stdbool.h>
#include <stdint.h>

#include "billing/catalog.h"

struct cli_args {
    const char *cmd; /* "quote", for messages */
    int argc;
    char **argv;
    int i; /* the argument being looked at */
};

/** Print "faasbill <cmd>: <message>" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** true when the current argument is exactly name (a flag without a value). */
bool cli_flag(const struct cli_args *a, const char *name);

/**
 * When the current argument is option name, store its value in *val (borrowed from argv)
 * and step past it. Returns 1 when it matched, 0 when it is another argument, -1 when the
 * value is missing (the error is printed).
 */
int cli_option(struct cli_args *a, const char *name, const char **val);

/**
 * Parse s as a whole integer in min..max for option flag; on failure print
 * "faasbill <cmd>: <flag>: expected an integer <min>-<max>, got '<s>'" and return -1.
 */
int cli_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max,
            int64_t *out);

/**
 * Parse s as milliseconds with at most 3 decimals into microseconds, in 0..max_ms.
 * Prints the error and returns -1 when it is not.
 */
int cli_ms_to_us(const char *cmd, const char *flag, const char *s, int64_t max_ms,
                 int64_t *out_us);

/** Report an argument nobody asked for; returns 2, the bad-usage exit code. */
int cli_unknown(const struct cli_args *a);

/** Load the catalog (dir may be NULL), printing the error. Returns 0, or 1 (the exit code). */
int cli_load_catalog(const char *cmd, const char *dir, struct bill_catalog **out);

#endif
