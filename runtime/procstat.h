#ifndef RT_PROCSTAT_H
#define RT_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/*
 * CPU time and peak memory of a live process, read by the runtime itself rather than
 * reported by the function: a tenant's code cannot understate what it is billed for.
 *
 * The total CPU time comes from the process's CPU-time clock (all its threads, nanosecond
 * resolution); the kernel exposes the user/system split only in clock ticks, so the
 * precise total is divided in the ratio of the tick counts.
 */
struct rt_usage {
    int64_t cpu_us;     /* user + system, precise */
    int64_t user_ticks; /* utime and stime from /proc/<pid>/stat */
    int64_t sys_ticks;
    int64_t hwm_kb;     /* VmHWM: peak resident set since start or the last reset */
};

/** The process's CPU-time clock into *clk. Returns 0, or -1 when pid is gone. */
int rt_proc_clock(pid_t pid, clockid_t *clk);

/**
 * Read the process's usage so far into *out (written only on success).
 * @return 0, or -1 when the process is gone or /proc cannot be read
 */
int rt_proc_usage(pid_t pid, clockid_t clk, struct rt_usage *out);

/** Reset the process's peak RSS to its current RSS, so the next peak is per invocation.
 *  Returns 0 or -1. */
int rt_proc_reset_peak(pid_t pid);

/**
 * What happened between two readings: *user_us and *sys_us split the precise CPU delta in
 * the ratio of the tick deltas (all user when no tick passed).
 */
void rt_usage_split(const struct rt_usage *before, const struct rt_usage *after,
                    int64_t *user_us, int64_t *sys_us);

#endif
