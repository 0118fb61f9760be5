#ifndef FM_OPTS_H
#define FM_OPTS_H

#include <getopt.h>
#include <stddef.h>

/*
 * What getopt_long refused, in words, for the programs that parse their options with it
 * (meterd, faasrun). They call it with opterr 0 and an option string starting with ':'
 * (a missing value returns ':'), and have long options only.
 */

/**
 * getopt_long, but a long option is taken only written in full. getopt_long also takes any
 * unambiguous prefix ("--lis" for --listen), which an option added later can make
 * ambiguous, and faasbill, with a parser of its own, takes none. A prefix comes back as
 * '?', which fm_opt_refused words. idx: as getopt_long's longindex (may be NULL).
 */
int fm_getopt(int argc, char *const argv[], const char *optstring, const struct option *opts,
              int *idx);

/**
 * Describe the argument fm_getopt (or getopt_long) (c: '?' or ':') into out: "--name:
 * missing its value", "--name: takes no value", "--name: unknown or ambiguous option",
 * "--na: write --name in full" or "-x: unknown option". opts is the table it was given.
 */
void fm_opt_refused(const struct option *opts, char *const argv[], int c, char *out,
                    size_t n);

#endif
