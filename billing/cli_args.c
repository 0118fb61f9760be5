#include "billing/cli_args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "faasbill %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool cli_flag(const struct cli_args *a, const char *name)
{
    return strcmp(a->argv[a->i], name) == 0;
}

int cli_option(struct cli_args *a, const char *name, const char **val)
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

int cli_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max,
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

int cli_ms_to_us(const char *cmd, const char *flag, const char *s, int64_t max_ms,
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

int cli_unknown(const struct cli_args *a)
{
    const char *arg = a->argv[a->i];
    if (arg[0] == '-')
        cli_error(a->cmd, "%s: unknown option (try faasbill %s --help)", arg, a->cmd);
    else
        cli_error(a->cmd, "'%s': unexpected argument (try faasbill %s --help)", arg, a->cmd);
    return 2;
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
