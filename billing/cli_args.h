#ifndef FM_BILLING_CLI_ARGS_H
#define FM_BILLING_CLI_ARGS_H

/*
 * Command-line helpers shared by faasbill's subcommands. Options are "--name value" or
 * "--name=value". Every error is printed here as one line, "faasbill <cmd>: <what>", so
 * that each command reports bad usage the same way.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing/catalog.h"

/* What an option's value is, and what it is stored as in `to`. */
enum cli_type {
    CLI_FLAG,    /* no value: bool, set */
    CLI_TEXT,    /* const char *, borrowed from argv */
    CLI_INT,     /* int64_t, a whole integer in min..max */
    CLI_MS,      /* int64_t microseconds, from milliseconds 0..max with at most 3 decimals */
    CLI_LIST,    /* const char *[max], appended to; *count how many so far */
    CLI_CHECKED, /* whatever check stores when it accepts the value */
};

/* One option of a command. A command's options are an array ending with a NULL name. */
struct cli_opt {
    const char *name; /* "--plan" */
    enum cli_type type;
    void *to;
    bool *given; /* optional: set when the option appears */
    int64_t min, max;
    size_t *count;                              /* CLI_LIST */
    bool (*check)(const char *value, void *to); /* CLI_CHECKED: parse value into to */
    const char *expected; /* CLI_CHECKED: what it accepts, for the error ("YYYY-MM") */
};

/* The entries of a command's option table, one per kind. */
#define CLI_OPT_FLAG(n, t) {.name = (n), .type = CLI_FLAG, .to = (t)}
#define CLI_OPT_TEXT(n, t) {.name = (n), .type = CLI_TEXT, .to = (t)}
#define CLI_OPT_INT(n, t, seen, lo, hi)                                                       \
    {.name = (n), .type = CLI_INT, .to = (t), .given = (seen), .min = (lo), .max = (hi)}
#define CLI_OPT_MS(n, t, seen, hi)                                                            \
    {.name = (n), .type = CLI_MS, .to = (t), .given = (seen), .max = (hi)}
#define CLI_OPT_LIST(n, t, cnt, hi)                                                           \
    {.name = (n), .type = CLI_LIST, .to = (t), .count = (cnt), .max = (hi)}
#define CLI_OPT_CHECKED(n, t, fn, what)                                                       \
    {.name = (n), .type = CLI_CHECKED, .to = (t), .check = (fn), .expected = (what)}
#define CLI_OPT_END {.name = NULL}

/**
 * Parse argv[1..] as cmd's options: "--name value" or "--name=value". --help or -h calls
 * help(cmd). Arguments that are not options are put in positional, at most max of them
 * (NULL: none is expected). The first error is printed as one line.
 * @return -1 when the command goes on, 0 after the help, 2 on bad usage
 */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
              void (*help)(const char *cmd), const char **positional, size_t *npositional,
              size_t max);

/** Print "faasbill <cmd>: <message>" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** A CLI_CHECKED check: a calendar month "YYYY-MM", kept as the text (const char *). */
bool cli_check_period(const char *value, void *to);

/** Load the catalog (dir may be NULL), printing the error. Returns 0, or 1 (the exit code). */
int cli_load_catalog(const char *cmd, const char *dir, struct bill_catalog **out);

#endif
