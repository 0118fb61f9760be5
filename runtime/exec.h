#ifndef RT_EXEC_H
#define RT_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/err.h"
#include "runtime/status.h"

#define RT_OUTPUT_MAX ((size_t)6 * 1024 * 1024)
#define RT_ERRLOG_MAX ((size_t)64 * 1024)

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

/* Usage of a running invocation so far, for resource records of long runs. */
struct rt_usage_sample {
    int64_t cpu_user_us;
    int64_t cpu_sys_us;
    int64_t max_rss_kb;
};

/* Called every every_us while an invocation runs, from the thread running it. */
struct rt_sampler {
    int64_t every_us;
    void (*fn)(void *ctx, const struct rt_usage_sample *s);
    void *ctx;
};

/* Who a function's processes run as: a user of the system (no supplementary groups), or,
 * unset, the runtime's own user. */
struct rt_user {
    bool set;
    uid_t uid;
    gid_t gid;
};

struct rt_exec_spec {
    char *const *argv;   /* argv[0] is the program's path; no PATH search */
    char *const *envp;   /* the child's whole environment */
    int memory_mb;       /* memory limit of the child (cgroup.h); 0: none (the runtime's tools) */
    struct rt_user user; /* who the child runs as */
    int64_t timeout_ms;  /* wall time until the process group is killed */
    const void *input;   /* written to the child's stdin, which is then closed */
    size_t input_len;
    size_t output_max;   /* cap on stdout; 0 means RT_OUTPUT_MAX */
    const struct rt_sampler *sampler; /* optional */
};

struct rt_exec_result {
    enum rt_run_status status;
    int exit_code;       /* exit status, or 128 + signal when a signal ended it */
    int64_t duration_us; /* from spawn to exit (warm: request to reply), monotonic clock */
    int64_t init_us;     /* warm cold start: process start until the worker was ready */
    pid_t pid;           /* the process that ran it */
    int64_t cpu_user_us;
    int64_t cpu_sys_us;
    int64_t max_rss_kb;  /* peak memory: see rt_exec_run, and rt_worker_invoke for warm */
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
 * code 127. Memory: the child and every process it starts share a memory cgroup of
 * memory_mb (cgroup.h), and whatever is left of them is killed when the invocation ends;
 * where no cgroup can be made, the child runs under RLIMIT_AS = memory_mb instead, so that
 * allocations beyond it fail inside the function. "oom" is reported only when the kernel's
 * OOM killer ended a process of the function's group (its count of OOM kills rose) and the
 * function then failed; otherwise a non-zero exit is "error" and a fatal signal "crashed",
 * whatever the exit code or signal (a function's own exit 137, a SIGKILL from elsewhere).
 * Under the address-space limit nothing is "oom": an allocation that fails there ends the
 * function as the function makes it end, which the runtime cannot tell from other failures.
 *
 * Peak memory (max_rss_kb): in a memory group with a peak counter (cgroup v1, v2 from
 * Linux 6.12), the most memory charged to the group during the run, less what earlier
 * invocations left charged to the reused group: every process of the function together, as
 * the limit counts them; its resident anonymous memory and page tables, and the page cache
 * it brought in, but not the pages of shared libraries another process loaded first. It is
 * exact unless the kernel reclaimed that leftover during the run (near the limit), which
 * makes it less. Otherwise (the address-space limit) wait4's ru_maxrss, the peak RSS of the
 * largest of its processes, where it exceeds the runtime's own peak at the spawn; below
 * that, ru_maxrss may be the runtime's own peak (see rt_child_own_peak_kb), and the largest
 * VmHWM read while the function ran (at each wake-up of the runtime and each sample) is
 * reported instead: a lower bound.
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

/* What exec mode and warm workers (worker.c) share. */

struct rt_usage;
struct rt_proc;
struct rt_cgroup;
struct rusage;

/**
 * Start a child process that runs child(ctx), which must end in execve or _exit, and
 * return once it did either (vfork). The child shares the runtime's memory until then: it
 * may make system calls and write to ctx, nothing else. Returns its pid, or -1 with errno.
 */
pid_t rt_child_spawn(void (*child)(void *ctx), void *ctx);

/** In the child of vfork, first, with every signal still blocked: a session and process
 *  group of its own, without the runtime's controlling terminal. Signal-safe. */
void rt_child_isolate(void);

/** In the child of vfork, after rt_child_isolate: every signal's default action, no core
 *  files, memory_mb (0: none) as the limit of cg when it is a real group (the child joins
 *  it), else as RLIMIT_AS; when user is set, that user's identity, so that the function can
 *  change neither its group's limits nor the runtime's files; killed when the thread that
 *  forked it ends (also when the runtime is killed; it exits at once when parent is already
 *  gone); last, no signal blocked. Signal-safe. Returns 1 when it joined cg, 0 when it
 *  did not (the address-space limit holds), or -1 with errno. */
int rt_child_confine(int memory_mb, const struct rt_user *user, const struct rt_cgroup *cg,
                     pid_t parent);

/** Append data to a log of at most RT_ERRLOG_MAX bytes, keeping the newest bytes. */
void rt_log_keep_tail(char *log, size_t *len, const char *data, size_t n);

/** Read the usage of proc's process since base and hand it to the sampler; silent when pid
 *  is gone. The sample's peak memory is peak_kb when it is not -1 (a memory group's, which
 *  the stop record will carry too), else the process's VmHWM. Returns the VmHWM read (kB),
 *  or -1 when nothing was read. */
int64_t rt_sample_take(const struct rt_sampler *sm, struct rt_proc *proc,
                       const struct rt_usage *base, int64_t peak_kb);

/** The runtime's own peak RSS so far, in kB. */
int64_t rt_self_peak_kb(void);

/**
 * The peak RSS (kB) in wait4's usage of a child, when it can only be the child's: above
 * spawn_peak_kb, the runtime's own peak read after the child exec'd. At execve the kernel
 * keeps the peak RSS of the memory the process leaves in its ru_maxrss, and a child of
 * vfork leaves the runtime's: its ru_maxrss is never below what the runtime had used then.
 * Returns -1 when ru_maxrss is not above spawn_peak_kb.
 */
int64_t rt_child_own_peak_kb(const struct rusage *ru, int64_t spawn_peak_kb);

/** Milliseconds to poll before the deadline or the next sample (NULL: none), 0-60000. */
int64_t rt_sample_wait_ms(int64_t deadline_us, int64_t *next_sample_us);

#endif
