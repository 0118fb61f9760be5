#include "common/cli.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"

/* Print "<prog> <cmd>: <what>" as one line; with hint, what to read next. Returns 2. */
__attribute__((format(printf, 3, 4))) static int refuse(const struct fm_cli *cli, bool hint,
                                                         const char *fmt, ...)
{
    const char *sep = cli->cmd ? " " : "";
    const char *cmd = cli->cmd ? cli->cmd : "";
    fprintf(stderr, "%s%s%s: ", cli->prog, sep, cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (hint)
        fprintf(stderr, " (try %s%s%s --help)", cli->prog, sep, cmd);
    fputc('\n', stderr);
    return 2;
}

/* s as a whole integer in min..max, else -1. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* s as milliseconds 0..max_ms with at most 3 decimals ("250", "0.125"), in microseconds;
 * else -1. */
static int parse_ms(const char *s, int64_t max_ms, int64_t *out_us)
{
    int64_t us = 0;
    int decimals = -1; /* none until the point */
    for (const char *p = s; *p; p++) {
        if (*p == '.' && decimals < 0 && p > s && p[1] != '\0') {
            decimals = 0;
        } else if (*p >= '0' && *p <= '9' && decimals < 3) {
            us = us * 10 + (*p - '0');
            decimals += decimals >= 0;
            if (us > max_ms * 1000)
                return -1;
        } else {
            return -1;
        }
    }
    for (int d = decimals < 0 ? 0 : decimals; d < 3; d++)
        us *= 10;
    if (*s == '\0' || us > max_ms * 1000)
        return -1;
    *out_us = us;
    return 0;
}

static const char *take_secret(char *arg)
{
    static char *kept;
    free(kept);
    kept = strdup(arg);
    if (kept == NULL)
        return arg;
    memset(arg, 'x', strlen(arg));
    return kept;
}

/* Store value (NULL for a flag) as option o. Returns 0, or 2 with the mistake told. */
static int take(const struct fm_cli *cli, const struct fm_cli_opt *o, char *value)
{
    switch (o->type) {
    case FM_CLI_FLAG:
        *(bool *)o->to = true;
        break;
    case FM_CLI_TEXT:
        *(const char **)o->to = value;
        break;
    case FM_CLI_SECRET:
        /* A key or password is one line of printable characters; its value is not echoed. */
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return refuse(cli, false, "%s: expected printable characters on one line",
                              o->name);
        *(const char **)o->to = take_secret(value);
        break;
    case FM_CLI_INT:
        if (parse_int(value, o->min, o->max, o->to) != 0)
            return refuse(cli, false, "%s: expected an integer %" PRId64 "-%" PRId64 ", got '%s'",
                          o->name, o->min, o->max, value);
        break;
    case FM_CLI_MS:
        if (parse_ms(value, o->max, o->to) != 0)
            return refuse(cli, false,
                          "%s: expected milliseconds 0-%" PRId64
                          " with at most 3 decimals, got '%s'",
                          o->name, o->max, value);
        break;
    case FM_CLI_LIST:
        if (*o->count >= (size_t)o->max)
            return refuse(cli, false, "%s: at most %" PRId64, o->name, o->max);
        ((const char **)o->to)[(*o->count)++] = value;
        break;
    case FM_CLI_CHECKED:
        if (!o->check(value, o->to))
            return refuse(cli, false, "%s: expected %s, got '%s'", o->name, o->expected, value);
        break;
    }
    if (o->given)
        *o->given = true;
    return 0;
}

/* The option of cli whose name is the n bytes of arg, or NULL. */
static const struct fm_cli_opt *find(const struct fm_cli *cli, const char *arg, size_t n)
{
    for (const struct fm_cli_opt *o = cli->opts; o->name; o++)
        if (strncmp(o->name, arg, n) == 0 && o->name[n] == '\0')
            return o;
    return NULL;
}

/* Refuse arg, an option nobody asked for: a prefix of one long option is told which. */
static int unknown(const struct fm_cli *cli, const char *arg, size_t n)
{
    const char *of = NULL;
    int prefix_of = 0;
    if (strncmp(arg, "--", 2) == 0 && n > 2) {
        if (strncmp("--help", arg, n) == 0)
            of = "--help", prefix_of++;
        for (const struct fm_cli_opt *o = cli->opts; o->name; o++)
            if (strncmp(o->name, arg, n) == 0)
                of = o->name, prefix_of++;
    }
    if (prefix_of == 1)
        return refuse(cli, true, "%.*s: write %s in full", (int)n, arg, of);
    return refuse(cli, true, "%.*s: unknown option", (int)n, arg);
}

int fm_cli_parse(const struct fm_cli *cli, int argc, char **argv)
{
    if (cli->npositional)
        *cli->npositional = 0;
    uint64_t given = 0; /* which options appeared, by their place in the table */
    bool options = true;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
            continue;
        }
        if (!options || arg[0] != '-' || arg[1] == '\0') {
            if (cli->positional == NULL || *cli->npositional >= cli->max)
                return refuse(cli, true, "'%s': unexpected argument", arg);
            cli->positional[(*cli->npositional)++] = arg;
            continue;
        }
        size_t n = strcspn(arg, "=");
        bool has_value = arg[n] == '=';
        if ((n == 6 && strncmp(arg, "--help", 6) == 0) || strcmp(arg, "-h") == 0) {
            if (has_value)
                return refuse(cli, true, "--help: takes no value");
            if (cli->help)
                cli->help(cli->cmd);
            else
                fputs(cli->usage, stdout);
            return 0;
        }
        const struct fm_cli_opt *o = find(cli, arg, n);
        if (o == NULL)
            return unknown(cli, arg, n);
        /* A second value would silently replace the first: only lists take several. */
        assert(o - cli->opts < 64); /* a table of at most 64 options: one bit each */
        uint64_t bit = UINT64_C(1) << (o - cli->opts);
        if (o->type != FM_CLI_LIST && (given & bit))
            return refuse(cli, true, "%s: given twice", o->name);
        given |= bit;
        char *value = NULL;
        if (o->type == FM_CLI_FLAG) {
            if (has_value)
                return refuse(cli, true, "%.*s: takes no value", (int)n, arg);
        } else if (has_value) {
            value = arg + n + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return refuse(cli, true, "%s: missing its value", o->name);
        }
        if (take(cli, o, value) != 0)
            return 2;
    }
    return -1;
}

bool fm_cli_check_period(const char *value, void *to)
{
    int64_t from, until;
    if (fm_period_parse(value, &from, &until) != 0)
        return false;
    *(const char **)to = value;
    return true;
}

int fm_cli_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* The lowest free number is fd itself: those below it are open by now. */
        int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (got != fd) {
            if (got >= 0)
                close(got);
            return -1;
        }
    }
    return 0;
}
