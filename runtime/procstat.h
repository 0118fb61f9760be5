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
    int64_t cpu_us;     /* user + system, precise; with the waited-for children's, in ticks */
    int64_t user_ticks; /* utime and stime from /proc/<pid>/stat, cutime and cstime added */
    int64_t sys_ticks;
    int64_t hwm_kb;     /* VmHWM: peak resident set since start or the last reset */
};

/*
 * One process's CPU clock and /proc files. Each file is opened on its first use and kept
 * open, so that a warm worker's every later reading is one pread, not an open, a read and
 * a close; a kept descriptor also stays with that process when its pid is reused. Plain
 * data owned by its user, who calls rt_proc_close; one thread at a time.
 */
struct rt_proc {
    pid_t pid;
    clockid_t clk;
    int stat_fd, status_fd, clear_refs_fd; /* -1 until first used */
};

/* A struct rt_proc that has nothing open: rt_proc_close on it is a no-op. */
#define RT_PROC_NONE {.stat_fd = -1, .status_fd = -1, .clear_refs_fd = -1}

/**
 * Get ready to read pid: its CPU clock into p, no file opened yet.
 * @return 0, or -1 when pid is gone (p is then closed: rt_proc_close is a no-op)
 */
int rt_proc_init(struct rt_proc *p, pid_t pid);

/** Close the files p opened; safe to call twice. */
void rt_proc_close(struct rt_proc *p);

/**
 * Read the process's usage so far into *out (written only on success).
 * @return 0, or -1 when the process is gone or /proc cannot be read
 */
int rt_proc_usage(struct rt_proc *p, struct rt_usage *out);

/** rt_proc_usage without the peak RSS (out->hwm_kb 0), for a reading whose peak is not
 *  used: one /proc file fewer. */
int rt_proc_cpu(struct rt_proc *p, struct rt_usage *out);

/** The process's peak RSS (VmHWM) so far, in kB, into *kb (written only on success): one
 *  /proc file. 0 once it has exited (a zombie holds no memory). Returns 0 or -1. */
int rt_proc_hwm(struct rt_proc *p, int64_t *kb);

/** Reset the process's peak RSS to its current RSS, so the next peak is per invocation.
 *  Returns 0 or -1. */
int rt_proc_reset_peak(struct rt_proc *p);

/**
 * What happened between two readings: *user_us and *sys_us split the precise CPU delta in
 * the ratio of the tick deltas (all user when no tick passed).
 */
void rt_usage_split(const struct rt_usage *before, const struct rt_usage *after,
                    int64_t *user_us, int64_t *sys_us);

#endif
