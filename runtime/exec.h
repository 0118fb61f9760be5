#ifndef RT_EXEC_H
#define RT_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "runtime/status.h"

#define RT_OUTPUT_MAX ((size_t)6 * 1024 * 1024)
#define RT_ERRLOG_MAX ((size_t)64 * 1024)
/* 128 + SIGKILL: what a shell reports for a child the kernel's OOM killer ended. A function
 * whose allocation failed exits with it to be reported as "oom" (see rt_exec_run). */
#define RT_EXIT_OOM 137

/* How an invocation ended: the record's "status". */
enum rt_run_status {
    RT_RUN_OK,
    RT_RUN_ERROR,
    RT_RUN_TIMEOUT,
    RT_RUN_OOM,
    RT_RUN_CRASHED,
    RT_RUN_REJECTED,
};

/** The record's spelling of s ("ok", "error", ...). Static. */
const char *rt_run_status_name(enum rt_run_status s);

struct rt_exec_spec {
    char *const *argv;   /* argv[0] is the program's path; no PATH search */
    char *const *envp;   /* the child's whole environment */
    int memory_mb;       /* address-space limit of the child; 0: none (the runtime's tools) */
    int64_t timeout_ms;  /* wall time until the process group is killed */
    const void *input;   /* written to the child's stdin, which is then closed */
    size_t input_len;
    size_t output_max;   /* cap on stdout; 0 means RT_OUTPUT_MAX */
};

struct rt_exec_result {
    enum rt_run_status status;
    int exit_code;       /* exit status, or 128 + signal when a signal ended it */
    int64_t duration_us; /* from spawn to exit, monotonic clock */
    int64_t cpu_user_us;
    int64_t cpu_sys_us;
    int64_t max_rss_kb;
    char *output;        /* stdout, NUL-terminated for convenience; output_len excludes it */
    size_t output_len;
    char *errlog;        /* the last RT_ERRLOG_MAX bytes of stderr, NUL-terminated */
    size_t errlog_len;
    char reason[256];    /* why the runtime ended it or could not start it; "" otherwise */
};

/**
 * Run one invocation in a process of its own, in its own process group.
 *
 * Status rule: exit 0 is "ok"; a timeout kills the group and is "timeout"; stdout beyond the
 * cap kills the group and is "error"; a program that cannot be started is "error" with exit
 * code 127. Memory: the child runs under RLIMIT_AS = memory_mb, so allocations beyond it
 * fail inside the function; "oom" is reported when the child exits with RT_EXIT_OOM or is
 * killed by a SIGKILL the runtime did not send (the kernel's OOM killer). Any other non-zero
 * exit is "error", any other fatal signal "crashed".
 *
 * The caller must ignore SIGPIPE (a child may close stdin before reading all input).
 * Thread-safe as long as each call has its own spec and result.
 *
 * @param out  on RT_OK filled in (caller frees with rt_exec_result_free); untouched on error
 * @return RT_OK whenever the function ran or could not be started (see out->status);
 *         RT_EIO or RT_ENOMEM when the runtime itself failed (pipes, fork)
 */
enum rt_status rt_exec_run(const struct rt_exec_spec *spec, struct rt_exec_result *out,
                           struct fm_err *err);

/** Free what a result holds; safe on a zeroed result. */
void rt_exec_result_free(struct rt_exec_result *r);

#endif
