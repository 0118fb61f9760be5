#include "billing/cli_args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "faasbill %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The argument being looked at, of cmd's. */
struct cli_args {
    const char *cmd;
    int argc;
    char **argv;
    int i;
};

/* Whether the current argument is exactly name (a flag without a value). */
static bool cli_flag(const struct cli_args *a, const char *name)
{
    return strcmp(a->argv[a->i], name) == 0;
}

/* When the current argument is option name, its value into *val (borrowed from argv), and
 * step past it. Returns 1 when it matched, 0 for another argument, -1 when the value is
 * missing (the error printed). */
static int cli_option(struct cli_args *a, const char *name, const char **val)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (a->i + 1 >= a->argc) {
        cli_error(a->cmd, "%s: missing its value", name);
        return -1;
    }
    *val = a->argv[++a->i];
    return 1;
}

/* s as a whole integer in min..max for option flag, else the error printed and -1. */
static int cli_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max,
                   int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = (*s >= '0' && *s <= '9') || *s == '-' ? strtoll(s, &end, 10) : 0;
    if (end == NULL || end == s || *end != '\0' || errno != 0 || v < min || v > max) {
        cli_error(cmd, "%s: expected an integer %" PRId64 "-%" PRId64 ", got '%s'", flag, min,
                  max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* s as milliseconds 0..max_ms with at most 3 decimals, in microseconds; else the error
 * printed and -1. */
static int cli_ms_to_us(const char *cmd, const char *flag, const char *s, int64_t max_ms,
                        int64_t *out_us)
{
    struct bill_dec d;
    __int128 us;
    if (bill_dec_parse(s, &d) != 0 || d.scale > 3 || bill_dec_units_at(d, 3, &us) != 0 ||
        us > (__int128)max_ms * 1000) {
        cli_error(cmd,
                  "%s: expected milliseconds 0-%" PRId64 " with at most 3 decimals, got '%s'",
                  flag, max_ms, s);
        return -1;
    }
    *out_us = (int64_t)us;
    return 0;
}

bool cli_check_period(const char *value, void *to)
{
    int64_t from, until;
    if (fm_period_parse(value, &from, &until) != 0)
        return false;
    *(const char **)to = value;
    return true;
}

/* Report an argument nobody asked for; returns 2, the bad-usage exit code. */
static int cli_unknown(const struct cli_args *a)
{
    const char *arg = a->argv[a->i];
    if (arg[0] == '-')
        cli_error(a->cmd, "%s: unknown option (try faasbill %s --help)", arg, a->cmd);
    else
        cli_error(a->cmd, "'%s': unexpected argument (try faasbill %s --help)", arg, a->cmd);
    return 2;
}

/* Take the value of option o for cmd. Returns 0, or 2 with the error printed. */
static int take(const char *cmd, const struct cli_opt *o, const char *value)
{
    switch (o->type) {
    case CLI_FLAG:
        *(bool *)o->to = true;
        break;
    case CLI_TEXT:
        *(const char **)o->to = value;
        break;
    case CLI_INT:
        if (cli_int(cmd, o->name, value, o->min, o->max, o->to) != 0)
            return 2;
        break;
    case CLI_MS:
        if (cli_ms_to_us(cmd, o->name, value, o->max, o->to) != 0)
            return 2;
        break;
    case CLI_LIST:
        if (*o->count >= (size_t)o->max) {
            cli_error(cmd, "%s: at most %" PRId64, o->name, o->max);
            return 2;
        }
        ((const char **)o->to)[(*o->count)++] = value;
        break;
    case CLI_CHECKED:
        if (!o->check(value, o->to)) {
            cli_error(cmd, "%s: expected %s, got '%s'", o->name, o->expected, value);
            return 2;
        }
        break;
    }
    if (o->given)
        *o->given = true;
    return 0;
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
              void (*help)(const char *cmd), const char **positional, size_t *npositional,
              size_t max)
{
    struct cli_args a = {.cmd = cmd, .argc = argc, .argv = argv};
    if (npositional)
        *npositional = 0;
    for (a.i = 1; a.i < argc; a.i++) {
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(cmd);
            return 0;
        }
        const struct cli_opt *o = opts;
        const char *value = NULL;
        int m = 0;
        for (; o->name; o++) {
            if (o->type == CLI_FLAG ? (m = cli_flag(&a, o->name)) != 0
                                    : (m = cli_option(&a, o->name, &value)) != 0)
                break;
        }
        if (m < 0)
            return 2;
        if (o->name != NULL) {
            if (take(cmd, o, value) != 0)
                return 2;
        } else if (positional && argv[a.i][0] != '-' && *npositional < max) {
            positional[(*npositional)++] = argv[a.i];
        } else {
            return cli_unknown(&a);
        }
    }
    return -1;
}

int cli_load_catalog(const char *cmd, const char *dir, struct bill_catalog **out)
{
    struct fm_err err = {{0}};
    if (bill_catalog_load(dir, out, &err) != BILL_OK) {
        cli_error(cmd, "catalog: %s", err.msg);
        return 1;
    }
    return 0;
}
