#ifndef RT_CLI_H
#define RT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/spool.h"

/* Exit codes of every faasrun command. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* FM_CLI_CHECKED checks of the options faasrun's commands share, with what they expect. */
#define CLI_METER_EXPECTED "an http:// or https:// URL"
#define CLI_FOLDER_EXPECTED "a folder"

/** --meter: a URL that rt_ship_url_valid takes, stored as const char *. */
bool cli_check_meter(const char *value, void *to);

/** --spool: a folder's name, not empty, stored as const char *. */
bool cli_check_folder(const char *value, void *to);

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

#endif
