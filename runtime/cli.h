#ifndef RT_CLI_H
#define RT_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/spool.h"

/* Exit codes of every faasrun command. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/** faasrun invoke: argv[0] is "invoke". Returns an exit code. */
int cli_invoke(int argc, char **argv);

/** faasrun serve: argv[0] is "serve". Returns an exit code. */
int cli_serve(int argc, char **argv);

/** faasrun ship: argv[0] is "ship". Returns an exit code. */
int cli_ship(int argc, char **argv);

/**
 * Ship spool to meter_url within deadline_ms, reporting on stderr. key falls back to
 * $FAASMETER_KEY. Returns CLI_OK when the spool is empty afterwards, else CLI_FAILED.
 */
int cli_ship_spool(struct rt_spool *spool, const char *meter_url, const char *key,
                   int64_t deadline_ms, bool summary);

/** A secret given on the command line (--meter-key), copied; the argument itself is
 *  overwritten, so that other users cannot read it in /proc/PID/cmdline. The copy lasts
 *  until the next call (a command takes one secret). */
const char *cli_take_secret(char *arg);

/** Parse a positive decimal integer of at most max; returns 0 and writes out, or -1. */
int cli_parse_int(const char *s, int64_t max, int64_t *out);

/* The option string of every command: options stop at the first other argument, and a
 * missing value is told apart (':'). Commands set opterr to 0 and report with
 * cli_bad_option. */
#define CLI_GETOPT "+:"

/** Report what getopt_long refused (c: '?' or ':') as one line on stderr, "faasrun CMD:
 *  --name: unknown or ambiguous option (try faasrun CMD --help)" (fm_opt_refused says
 *  which). Returns CLI_USAGE. */
int cli_bad_option(const char *cmd, const struct option *opts, char **argv, int c);

#endif
