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
 * Describe the argument getopt_long just refused (c: '?' or ':') into out: "--name:
 * missing its value", "--name: takes no value", "--name: unknown or ambiguous option" or
 * "-x: unknown option". opts is the table getopt_long was given.
 */
void fm_opt_refused(const struct option *opts, char *const argv[], int c, char *out,
                    size_t n);

#endif
