#ifndef FM_RUNTIME_CGROUP_H
#define FM_RUNTIME_CGROUP_H

#include <limits.h>
#include <stdbool.h>

/*
 * Memory limits by control group, when the system lets faasrun make one: a function's
 * processes (the process and everything it starts) share one memory cgroup limited to the
 * function's memory_mb, so a function that forks gets no more memory than one that does
 * not, and a runtime that reserves a large address space still starts. The kernel kills a
 * process of the group that goes past the limit (SIGKILL, which the runtime reports as
 * `oom`). faasrun makes the groups beside itself: under its own memory cgroup (cgroup v1's
 * memory controller, or cgroup v2 when its group delegates `memory` to children). Where it
 * cannot, rt_cgroup_open fails and the caller limits the address space instead (RLIMIT_AS).
 * With the first group a guardian process starts (a child named faasrun-guard); when the
 * runtime ends, even killed with SIGKILL, it kills what is left in the runtime's groups and
 * removes them.
 */
struct rt_cgroup {
    char path[PATH_MAX]; /* "" when none */
    int join_fd;         /* the file a process writes "0" to join: v1 tasks, v2 cgroup.procs;
                          * open for writing; -1 when none */
    int peak_fd;         /* the group's peak charge (v1 memory.max_usage_in_bytes, v2
                          * memory.peak), open for reading and resetting; -1 when the kernel
                          * has no peak that can be reset (v2 before Linux 6.12) */
};

#define RT_CGROUP_NONE ((struct rt_cgroup){.path = "", .join_fd = -1, .peak_fd = -1})

/**
 * Make a memory cgroup limited to memory_mb (> 0) for one process tree.
 * @return 0 with *cg ready for rt_cgroup_join; -1 (and *cg = RT_CGROUP_NONE) when cgroups
 *         cannot be used here
 */
int rt_cgroup_open(int memory_mb, struct rt_cgroup *cg);

/** In a new, single-threaded process before execve: move it into cg. Signal-safe.
 *  @return 0, or -1 (errno set) */
int rt_cgroup_join(const struct rt_cgroup *cg);

/** Whether cg is a real group (rt_cgroup_open succeeded). */
bool rt_cgroup_active(const struct rt_cgroup *cg);

/** How many processes the kernel's OOM killer has ended in cg since it was made; -1 when
 *  unknown (no group, or a kernel that does not count them). */
long long rt_cgroup_oom_kills(const struct rt_cgroup *cg);

/**
 * Start measuring the peak memory charged to cg: reset the group's peak to its charge now.
 * A group is reused from one invocation to the next, and what earlier ones left charged to
 * it (page cache, kernel objects) stays charged: the caller subtracts the charge returned.
 * Not thread-safe for one group (a group serves one invocation or worker at a time).
 * @return the group's charge now, in bytes; -1 when cg has no peak that can be reset
 */
long long rt_cgroup_peak_reset(const struct rt_cgroup *cg);

/** The peak memory charged to cg since rt_cgroup_peak_reset, in bytes; -1 when unknown. */
long long rt_cgroup_peak(const struct rt_cgroup *cg);

/** How memory limits hold in this process: "memory cgroups under PATH (cgroup v1|v2)", or
 *  "address-space limits (no memory cgroup can be made here)". Static. */
const char *rt_cgroup_mechanism(void);

/** Kill every process left in cg and remove it. A no-op on RT_CGROUP_NONE. */
void rt_cgroup_close(struct rt_cgroup *cg);

#endif
