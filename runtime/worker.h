#ifndef RT_WORKER_H
#define RT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "runtime/exec.h"
#include "runtime/status.h"

/*
 * A warm worker: one process of a function that serves invocation after invocation over
 * the protocol of runtime/functions/warm.h (requests on its fd 3, replies on its fd 4, its
 * stdout and stderr to a log the runtime keeps per invocation). Opaque. One invocation at
 * a time; the pool (pool.h) hands a worker to one thread at a time.
 */
struct rt_worker;

struct rt_worker_spec {
    char *const *argv;  /* argv[0] is the program's path */
    char *const *envp;  /* the whole environment; FAASMETER_WARM=1 is added */
    int memory_mb;      /* memory limit of the worker for its whole life (cgroup.h); 0: none */
    struct rt_user user; /* who the worker runs as */
};

/**
 * Start a worker process. Its initialisation runs in the background and is waited for by
 * its first rt_worker_invoke, whose result then carries init_us (process start until the
 * worker said READY).
 * @param out  on RT_OK the worker (caller ends it with rt_worker_stop); untouched on error
 * @return RT_OK; RT_EIO when pipes or fork failed; RT_ENOMEM
 */
enum rt_status rt_worker_start(const struct rt_worker_spec *spec, struct rt_worker **out,
                               struct fm_err *err);

/**
 * Run one invocation on w. A cold worker first gets timeout_ms to become ready, then
 * timeout_ms for the invocation. CPU time and peak RSS of the result are this invocation's
 * own, read from /proc by the runtime (see procstat.h), not reported by the function.
 *
 * Statuses as in rt_exec_run: reply code 0 "ok", other codes "error"; a timeout kills the
 * worker's process group ("timeout"); a worker that dies is "crashed" (signal) or "error"
 * (exit). A failure after the kernel's OOM killer ended a process of the worker's memory
 * group is "oom" instead. After anything but a reply the worker is dead: rt_worker_usable
 * says false and the caller stops it.
 *
 * @param request_id  at most 128 bytes without spaces
 * @param out  on RT_OK the outcome (caller frees with rt_exec_result_free); untouched on error
 * @return RT_OK whenever the function ran; RT_ENOMEM
 */
enum rt_status rt_worker_invoke(struct rt_worker *w, const char *request_id, int64_t timeout_ms,
                                const void *input, size_t input_len,
                                const struct rt_sampler *sampler, struct rt_exec_result *out,
                                struct fm_err *err);

/** Whether w can take another invocation (it is alive and spoke the protocol). */
bool rt_worker_usable(const struct rt_worker *w);

/** Whether w's process still runs (it may have been killed while idle) and has sent
 *  nothing unasked, which would reach the next caller. Does not reap it; rt_worker_stop
 *  does. */
bool rt_worker_alive(const struct rt_worker *w);

/** The worker's process id. */
pid_t rt_worker_pid(const struct rt_worker *w);

/** Monotonic time when w last finished an invocation (its start time before the first). */
int64_t rt_worker_idle_since(const struct rt_worker *w);

/**
 * End the worker: close its request pipe (it should exit), then kill its process group
 * after a short grace, and reap it. Frees w; NULL is a no-op.
 */
void rt_worker_stop(struct rt_worker *w);

#endif
