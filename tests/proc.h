#ifndef FM_TESTS_PROC_H
#define FM_TESTS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Real processes for end-to-end tests: the built binaries, found in $FAASMETER_BIN. */

struct proc_result {
    int status;   /* exit code, or 128 + signal */
    char *out;    /* stdout, caller frees */
    char *err;    /* stderr, caller frees */
};

/** The path of a built binary ("faasrun", "fn/hello") in buf; fails the test without
 *  FAASMETER_BIN. */
const char *proc_bin(const char *name, char *buf, size_t n);

/**
 * Run argv (argv[0] a path) with stdin from `input` (may be NULL), wait at most timeout_s
 * seconds (then kill it and fail the test), and collect its output.
 */
struct proc_result proc_run(char *const argv[], const char *input, int timeout_s);

/** Run argv and check that it refused its usage: exit code 2, nothing on stdout, and
 *  exactly err on stderr. */
void proc_expect_usage(char *const argv[], const char *err);

/**
 * Start argv in the background with stdout to a pipe; wait up to timeout_s for a first line
 * of output containing `ready` and copy that line into line. Returns the pid.
 */
pid_t proc_start(char *const argv[], const char *ready, char *line, size_t n, int timeout_s);

/** Whether process pid ends (is gone, or a zombie awaiting its reaper) within a second. */
bool proc_ends(long pid);

/** SIGTERM the process and wait for it; returns its exit status as in proc_result. */
int proc_stop(pid_t pid);

#endif
