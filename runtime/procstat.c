#include "runtime/procstat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Open /proc/<pid>/<name> into *fd unless it is open already. Returns 0 or -1. */
static int proc_file(const struct rt_proc *p, const char *name, int flags, int *fd)
{
    if (*fd >= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)p->pid, name);
    *fd = open(path, flags | O_CLOEXEC);
    return *fd >= 0 ? 0 : -1;
}

/* Read a small /proc file whole from its start; returns its length or -1. A /proc file
 * is generated afresh by every read at offset 0, so one descriptor serves every reading. */
static ssize_t read_small(int fd, char *buf, size_t n)
{
    ssize_t got = pread(fd, buf, n - 1, 0);
    if (got < 0)
        return -1;
    buf[got] = '\0';
    return got;
}

int rt_proc_init(struct rt_proc *p, pid_t pid)
{
    *p = (struct rt_proc){.pid = pid, .stat_fd = -1, .status_fd = -1, .clear_refs_fd = -1};
    return clock_getcpuclockid(pid, &p->clk) == 0 ? 0 : -1;
}

void rt_proc_close(struct rt_proc *p)
{
    int *fds[] = {&p->stat_fd, &p->status_fd, &p->clear_refs_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

/* utime, stime, cutime and cstime are fields 14 to 17; the command name before them may
 * hold spaces and parentheses, so counting starts after its last ')'. The process's own
 * time into user and sys, its waited-for children's into child_user and child_sys. */
static int parse_ticks(const char *stat, int64_t *user, int64_t *sys, int64_t *child_user,
                       int64_t *child_sys)
{
    const char *p = strrchr(stat, ')');
    if (p == NULL)
        return -1;
    p++;
    for (int field = 3; field < 14; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return -1;
    }
    int64_t *into[] = {user, sys, child_user, child_sys};
    for (size_t i = 0; i < sizeof into / sizeof into[0]; i++) {
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            return -1;
        *into[i] = v;
        p = end;
    }
    return 0;
}

static int64_t parse_hwm(const char *status)
{
    const char *p = strstr(status, "\nVmHWM:");
    return p ? strtoll(p + 7, NULL, 10) : 0;
}

int rt_proc_cpu(struct rt_proc *p, struct rt_usage *out)
{
    struct timespec ts;
    if (clock_gettime(p->clk, &ts) != 0)
        return -1;
    char text[2048]; /* stat is one line of about 300 bytes */
    struct rt_usage u = {.cpu_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000};
    int64_t child_user, child_sys;
    if (proc_file(p, "stat", O_RDONLY, &p->stat_fd) != 0 ||
        read_small(p->stat_fd, text, sizeof text) < 0 ||
        parse_ticks(text, &u.user_ticks, &u.sys_ticks, &child_user, &child_sys) != 0)
        return -1;
    /* The process's clock counts only itself. What its children spent, once it waited for
     * them, is in clock ticks: a warm worker that runs a program for each request is billed
     * that program's time too, as exec mode's wait4 bills a function's children. */
    long hz = sysconf(_SC_CLK_TCK);
    if (hz > 0)
        u.cpu_us += (child_user + child_sys) * 1000000 / hz;
    u.user_ticks += child_user;
    u.sys_ticks += child_sys;
    *out = u;
    return 0;
}

int rt_proc_usage(struct rt_proc *p, struct rt_usage *out)
{
    struct rt_usage u;
    char text[4096];
    if (rt_proc_cpu(p, &u) != 0 || proc_file(p, "status", O_RDONLY, &p->status_fd) != 0 ||
        read_small(p->status_fd, text, sizeof text) < 0)
        return -1;
    u.hwm_kb = parse_hwm(text);
    *out = u;
    return 0;
}

int rt_proc_hwm(struct rt_proc *p, int64_t *kb)
{
    char text[4096];
    if (proc_file(p, "status", O_RDONLY, &p->status_fd) != 0 ||
        read_small(p->status_fd, text, sizeof text) < 0)
        return -1;
    *kb = parse_hwm(text);
    return 0;
}

int rt_proc_reset_peak(struct rt_proc *p)
{
    if (proc_file(p, "clear_refs", O_WRONLY, &p->clear_refs_fd) != 0)
        return -1;
    return write(p->clear_refs_fd, "5", 1) == 1 ? 0 : -1; /* the offset does not matter */
}

void rt_usage_split(const struct rt_usage *before, const struct rt_usage *after,
                    int64_t *user_us, int64_t *sys_us)
{
    int64_t total = after->cpu_us - before->cpu_us;
    int64_t du = after->user_ticks - before->user_ticks;
    int64_t ds = after->sys_ticks - before->sys_ticks;
    if (total < 0)
        total = 0;
    if (du < 0)
        du = 0;
    if (ds < 0)
        ds = 0;
    int64_t user = du + ds > 0 ? (int64_t)((__int128)total * du / (du + ds)) : total;
    *user_us = user;
    *sys_us = total - user;
}
