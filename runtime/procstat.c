#include "runtime/procstat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read a small /proc file whole; returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, n - 1);
    close(fd);
    if (got < 0)
        return -1;
    buf[got] = '\0';
    return got;
}

int rt_proc_clock(pid_t pid, clockid_t *clk)
{
    clockid_t c;
    if (clock_getcpuclockid(pid, &c) != 0)
        return -1;
    *clk = c;
    return 0;
}

/* utime and stime are fields 14 and 15; the command name before them may hold spaces and
 * parentheses, so counting starts after its last ')'. */
static int parse_ticks(const char *stat, int64_t *user, int64_t *sys)
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
    char *end = NULL;
    long long u = strtoll(p, &end, 10);
    if (end == p)
        return -1;
    const char *q = end;
    long long s = strtoll(q, &end, 10);
    if (end == q)
        return -1;
    *user = u;
    *sys = s;
    return 0;
}

static int64_t parse_hwm(const char *status)
{
    const char *p = strstr(status, "\nVmHWM:");
    return p ? strtoll(p + 7, NULL, 10) : 0;
}

int rt_proc_usage(pid_t pid, clockid_t clk, struct rt_usage *out)
{
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0)
        return -1;
    char path[64], text[4096];
    struct rt_usage u = {.cpu_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000};
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small(path, text, sizeof text) < 0 || parse_ticks(text, &u.user_ticks,
                                                               &u.sys_ticks) != 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_small(path, text, sizeof text) < 0)
        return -1;
    u.hwm_kb = parse_hwm(text);
    *out = u;
    return 0;
}

int rt_proc_reset_peak(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = write(fd, "5", 1) == 1 ? 0 : -1;
    close(fd);
    return rc;
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
