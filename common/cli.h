#ifndef FM_CLI_H
#define FM_CLI_H

/*
 * Command-line options read from a table, for every command of faasbill, meterd and
 * faasrun, so that they all take and refuse options alike.
 *
 * An option is "--name value" or "--name=value" (a flag takes no value), written in full;
 * "--" ends the options. The other arguments may come anywhere. --help (or -h) prints the
 * command's help. Every mistake is told as one line on stderr, "<prog> <cmd>: <what>".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an option's value is, and what it is stored as in `to`. */
enum fm_cli_type {
    FM_CLI_FLAG,    /* no value: bool, set */
    FM_CLI_TEXT,    /* const char *, borrowed from argv */
    FM_CLI_SECRET,  /* const char *, a copy; the argument itself is overwritten with 'x',
                     * so that other users cannot read it in /proc/PID/cmdline. One secret a
                     * process: the copy lasts until the next. Printable characters only. */
    FM_CLI_INT,     /* int64_t, a whole integer in min..max */
    FM_CLI_MS,      /* int64_t microseconds, from milliseconds 0..max with at most 3 decimals */
    FM_CLI_LIST,    /* const char *[max], appended to; *count how many so far */
    FM_CLI_CHECKED, /* whatever check stores when it accepts the value */
};

/* One option of a command. A command's options are an array ending with a NULL name, at
 * most 64 of them. Only a list may be given more than once. */
struct fm_cli_opt {
    const char *name; /* "--plan", or "-o" */
    enum fm_cli_type type;
    void *to;
    bool *given; /* optional: set when the option appears */
    int64_t min, max;
    size_t *count;                              /* FM_CLI_LIST */
    bool (*check)(const char *value, void *to); /* FM_CLI_CHECKED: parse value into to */
    const char *expected; /* FM_CLI_CHECKED: what it accepts, for the error ("YYYY-MM") */
};

/* The entries of a command's option table, one per kind. */
#define FM_OPT_FLAG(n, t) {.name = (n), .type = FM_CLI_FLAG, .to = (t)}
#define FM_OPT_TEXT(n, t) {.name = (n), .type = FM_CLI_TEXT, .to = (t)}
#define FM_OPT_SECRET(n, t) {.name = (n), .type = FM_CLI_SECRET, .to = (t)}
#define FM_OPT_INT(n, t, seen, lo, hi)                                                        \
    {.name = (n), .type = FM_CLI_INT, .to = (t), .given = (seen), .min = (lo), .max = (hi)}
#define FM_OPT_MS(n, t, seen, hi)                                                             \
    {.name = (n), .type = FM_CLI_MS, .to = (t), .given = (seen), .max = (hi)}
#define FM_OPT_LIST(n, t, cnt, hi)                                                            \
    {.name = (n), .type = FM_CLI_LIST, .to = (t), .count = (cnt), .max = (hi)}
#define FM_OPT_CHECKED(n, t, fn, what)                                                        \
    {.name = (n), .type = FM_CLI_CHECKED, .to = (t), .check = (fn), .expected = (what)}
#define FM_OPT_END {.name = NULL}

/* A command, as its options are parsed. */
struct fm_cli {
    const char *prog; /* "faasbill" */
    const char *cmd;  /* "invoice", or NULL for a program without commands */
    const struct fm_cli_opt *opts;
    void (*help)(const char *cmd); /* prints the help on stdout; cmd as above */
    const char *usage;             /* or the help as text, when help is NULL */
    /* Where the arguments that are not options go, at most max of them (NULL: none is
     * expected, and one is an error). */
    const char **positional;
    size_t *npositional;
    size_t max;
};

/**
 * Parse argv[1..] as cli's options (argv[0] is the program or the command's name).
 * The first mistake is printed as one line: "<prog> <cmd>: --name: missing its value (try
 * <prog> <cmd> --help)", "expected an integer 1-256, got 'two'", "expected milliseconds
 * 0-900000 with at most 3 decimals, got '1e3'", "unknown option",
 * "write --name in full" (for a prefix of one option), "takes no value", "given twice", "'word':
 * unexpected argument", "at most N", or "expected <expected>, got 'value'".
 * @return -1 when the command goes on, 0 after the help, 2 on bad usage
 */
int fm_cli_parse(const struct fm_cli *cli, int argc, char **argv);

/**
 * Open /dev/null on whichever of standard input, output and error is closed. A program
 * started with one of them closed would otherwise give its number to the next file it
 * opens, and write there what was meant for the terminal: faasrun's spool would take a
 * function's response as records. Every program calls it first thing.
 * @return 0, or -1 when /dev/null could not be opened (the program should exit)
 */
int fm_cli_std_fds(void);

/** A FM_CLI_CHECKED check: a calendar month "YYYY-MM", kept as the text (const char *). */
bool fm_cli_check_period(const char *value, void *to);

#endif
