#include "runtime/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Where faasrun makes its groups, and the file that limits one; found once. */
static char base[PATH_MAX];
static const char *limit_file;
static pthread_once_t found = PTHREAD_ONCE_INIT;
static atomic_uint next_id;
/* Groups are named "faasrun-<pid>-<token>-<n>": the random token tells this runtime's
 * groups from those of a runtime with the same pid in another pid namespace. */
static char group_prefix[48];

static void drop_spares(void);

/* Whether the comma-separated list has the word. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0' || p[n] == '\n'))
            return true;
    return false;
}

/* This process's group in the memory hierarchy (v1) or the unified one (v2), from
 * /proc/self/cgroup ("id:controllers:path"). */
static void own_groups(char *v1, char *v2, size_t n)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[PATH_MAX + 128];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        if (c1[1] == '\0')
            snprintf(v2, n, "%s", c2 + 1);
        else if (has_word(c1 + 1, "memory"))
            snprintf(v1, n, "%s", c2 + 1);
    }
    if (f)
        fclose(f);
}

/* The mount point of the memory hierarchy (v1) and of the unified one (v2), from
 * /proc/self/mountinfo; only mounts of a hierarchy's root, so that paths line up. */
static void mounts(char *v1, char *v2, size_t n)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[PATH_MAX * 2];
    while (f && fgets(line, sizeof line, f)) {
        char root[PATH_MAX], point[PATH_MAX], type[32], opts[512];
        const char *dash = strstr(line, " - ");
        if (dash == NULL || sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2 ||
            sscanf(dash + 3, "%31s %*s %511s", type, opts) != 2 || strcmp(root, "/") != 0)
            continue;
        if (strcmp(type, "cgroup") == 0 && has_word(opts, "memory"))
            snprintf(v1, n, "%s", point);
        else if (strcmp(type, "cgroup2") == 0)
            snprintf(v2, n, "%s", point);
    }
    if (f)
        fclose(f);
}

static bool file_has_word(const char *path, const char *word)
{
    char text[512] = "";
    FILE *f = fopen(path, "re");
    bool yes = f && fgets(text, sizeof text, f) && has_word(text, word);
    if (f)
        fclose(f);
    return yes;
}

/* Groups a runtime left behind when it was killed: removed once they are empty and a
 * minute old, and only when no process of that id lives here. Their processes are never
 * killed from here: the id may be a runtime's in another pid namespace. */
static void sweep_stale(void)
{
    DIR *d = opendir(base);
    struct dirent *e;
    time_t now = time(NULL);
    while (d && (e = readdir(d)) != NULL) {
        int pid;
        unsigned n;
        char path[PATH_MAX + 300];
        struct stat sb;
        if (sscanf(e->d_name, "faasrun-%d-%x", &pid, &n) != 2 || pid <= 0 ||
            kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        if (stat(path, &sb) == 0 && now - sb.st_ctime >= 60)
            rmdir(path); /* refused while the group has members */
    }
    if (d)
        closedir(d);
}

/* Kill the members of the group name under dirfd until it is empty, then remove it.
 * Allocates nothing: it runs in the guardian, a child of a threaded runtime. */
static void empty_group(int dirfd, const char *name)
{
    char path[300];
    if ((size_t)snprintf(path, sizeof path, "%s/cgroup.procs", name) >= sizeof path)
        return;
    for (int round = 0; round < 2000; round++) {
        int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
        char text[4096];
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0)
            break;
        text[n] = '\0';
        /* Whole lines only: a read may end inside a pid. The rest comes next round. */
        for (char *p = text, *end; *p; p = end + 1) {
            long pid = strtol(p, &end, 10);
            if (end == p || *end != '\n')
                break;
            if (pid > 0)
                kill((pid_t)pid, SIGKILL);
        }
        usleep(1000); /* the kernel ends them in a moment */
    }
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* In the guardian: empty and remove every group of its runtime. */
static void guard_sweep(void)
{
    size_t len = strlen(group_prefix);
    int dirfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return;
    /* Twice: a listing that groups vanish from during the walk may skip some. */
    for (int pass = 0; pass < 2; pass++) {
        lseek(dirfd, 0, SEEK_SET);
        char buf[8192];
        ssize_t n;
        while ((n = getdents64(dirfd, buf, sizeof buf)) > 0) {
            for (ssize_t at = 0; at < n;) {
                const struct dirent64 *e = (const struct dirent64 *)(buf + at);
                at += e->d_reclen;
                if (strncmp(e->d_name, group_prefix, len) == 0)
                    empty_group(dirfd, e->d_name);
            }
        }
    }
    close(dirfd);
}

/*
 * A runtime killed with SIGKILL cannot end what its functions started and left running. A
 * guardian process can: started with the first group, it waits for the end of a pipe that
 * only the runtime holds open (close-on-exec, so no function inherits it), which comes
 * however the runtime ends. It then kills the members of the runtime's groups and removes
 * the groups. It shares the runtime's pid namespace, so the pids it reads are its own to
 * kill, and it has a session of its own, so that signals meant for the runtime's process
 * group miss it.
 */
static void guard_start(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        prctl(PR_SET_NAME, "faasrun-guard");
        /* The runtime's signal handlers are not the guardian's; and a signal meant for the
         * runtime by name (pkill faasrun) must not end the guardian before its sweep. */
        struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, sig == SIGTERM || sig == SIGINT || sig == SIGHUP ? &ign : &dfl,
                          NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Every descriptor but the pipe's read end, which must see the runtime's end. */
        if (p[0] > 0)
            syscall(SYS_close_range, 0U, (unsigned)p[0] - 1, 0U);
        syscall(SYS_close_range, (unsigned)p[0] + 1, ~0U, 0U);
        for (;;) {
            char byte;
            ssize_t r = read(p[0], &byte, 1);
            if (r == 0)
                break; /* the runtime ended */
            if (r < 0 && errno != EINTR)
                _exit(0); /* cannot watch it: touch nothing */
        }
        guard_sweep();
        _exit(0);
    }
    close(p[0]);
    if (pid < 0)
        close(p[1]); /* no guardian: leftovers of a killed runtime stay, as before */
    /* Otherwise p[1] stays open as long as the runtime lives. */
}

static void find_base(void)
{
    char own1[PATH_MAX] = "", own2[PATH_MAX] = "", at1[PATH_MAX] = "", at2[PATH_MAX] = "";
    own_groups(own1, own2, sizeof own1);
    mounts(at1, at2, sizeof at1);
    char path[PATH_MAX + 32];
    if (*own1 && *at1 && (size_t)snprintf(base, sizeof base, "%s%s", at1, own1) < sizeof base) {
        limit_file = "memory.limit_in_bytes";
    } else if (*own2 && *at2 &&
               (size_t)snprintf(base, sizeof base, "%s%s", at2, own2) < sizeof base &&
               (snprintf(path, sizeof path, "%s/cgroup.subtree_control", base),
                file_has_word(path, "memory"))) {
        limit_file = "memory.max";
    }
    if (limit_file == NULL || access(base, W_OK) != 0) {
        limit_file = NULL;
        base[0] = '\0';
        return;
    }
    unsigned token;
    if (getrandom(&token, sizeof token, 0) != (ssize_t)sizeof token)
        token = (unsigned)time(NULL) ^ (unsigned)getpid() << 16;
    snprintf(group_prefix, sizeof group_prefix, "faasrun-%d-%08x-", (int)getpid(), token);
    sweep_stale();
    guard_start();
    atexit(drop_spares);
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, strlen(text));
    close(fd);
    return w == (ssize_t)strlen(text) ? 0 : -1;
}

/*
 * Groups are kept for the next invocation rather than removed: removing one that was
 * charged page cache leaves the kernel a dying group until the cache goes, and the kernel
 * has room for 65,535 groups on the whole machine. A runtime keeps at most SPARE_MAX.
 */
#define SPARE_MAX 256
static struct rt_cgroup spares[SPARE_MAX];
static int nspares;
static pthread_mutex_t spares_lock = PTHREAD_MUTEX_INITIALIZER;

/* Close a group's files and remove it (refused while it has members: left to a sweep). */
static void remove_group(struct rt_cgroup *g)
{
    close(g->join_fd);
    if (g->peak_fd >= 0)
        close(g->peak_fd);
    rmdir(g->path);
    *g = RT_CGROUP_NONE;
}

static void drop_spares(void)
{
    pthread_mutex_lock(&spares_lock);
    for (int i = 0; i < nspares; i++)
        remove_group(&spares[i]);
    nspares = 0;
    pthread_mutex_unlock(&spares_lock);
}

/* The group's peak file, open for reading and resetting, or -1. v2's memory.peak can be
 * reset (for the descriptor that resets it) from Linux 6.12 on; before, it is read-only,
 * and a reused group's peak would be that of every invocation it served. */
static int open_peak(const char *dir, bool v1)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, v1 ? "memory.max_usage_in_bytes" : "memory.peak");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && !v1 && write(fd, "0\n", 2) != 2) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* A new group, its OOM killer on (v1 groups inherit the parent's choice). */
static int make_group(struct rt_cgroup *g)
{
    *g = RT_CGROUP_NONE;
    char join[PATH_MAX + 16];
    bool v1 = strcmp(limit_file, "memory.limit_in_bytes") == 0;
    if ((size_t)snprintf(g->path, sizeof g->path, "%s/%s%u", base, group_prefix,
                         atomic_fetch_add(&next_id, 1)) >= sizeof g->path ||
        mkdir(g->path, 0755) != 0)
        return -1;
    snprintf(join, sizeof join, "%s/%s", g->path, v1 ? "tasks" : "cgroup.procs");
    if ((v1 && write_file(g->path, "memory.oom_control", "0") != 0) ||
        (g->join_fd = open(join, O_WRONLY | O_CLOEXEC)) < 0) {
        rmdir(g->path);
        *g = RT_CGROUP_NONE;
        return -1;
    }
    g->peak_fd = open_peak(g->path, v1); /* without one, memory is measured otherwise */
    return 0;
}

/* Memory, and memory with swap, limited to bytes. v1 wants the memory limit at most the
 * one with swap at every step; v2 keeps swap apart. Swap limits exist only where the
 * kernel accounts swap: where it does not, there is nothing to limit. */
static int set_limit(const struct rt_cgroup *g, long long bytes)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", bytes);
    if (strcmp(limit_file, "memory.max") == 0)
        return write_file(g->path, "memory.max", text) != 0 ? -1
               : (write_file(g->path, "memory.swap.max", "0"), 0);
    char memsw[PATH_MAX + 32];
    snprintf(memsw, sizeof memsw, "%s/memory.memsw.limit_in_bytes", g->path);
    if (access(memsw, F_OK) != 0)
        return write_file(g->path, "memory.limit_in_bytes", text);
    /* Raise the larger one first, lower it last. */
    if (write_file(g->path, "memory.limit_in_bytes", text) == 0)
        return write_file(g->path, "memory.memsw.limit_in_bytes", text);
    return write_file(g->path, "memory.memsw.limit_in_bytes", text) == 0
               ? write_file(g->path, "memory.limit_in_bytes", text)
               : -1;
}

int rt_cgroup_open(int memory_mb, struct rt_cgroup *cg)
{
    *cg = RT_CGROUP_NONE;
    pthread_once(&found, find_base);
    if (limit_file == NULL || memory_mb <= 0)
        return -1;
    struct rt_cgroup g = RT_CGROUP_NONE;
    pthread_mutex_lock(&spares_lock);
    if (nspares > 0)
        g = spares[--nspares];
    pthread_mutex_unlock(&spares_lock);
    if (rt_cgroup_active(&g) && set_limit(&g, (long long)memory_mb << 20) != 0)
        remove_group(&g); /* removed under us, or refusing: make another */
    if (!rt_cgroup_active(&g)) {
        if (make_group(&g) != 0)
            return -1;
        if (set_limit(&g, (long long)memory_mb << 20) != 0) {
            remove_group(&g);
            return -1;
        }
    }
    *cg = g;
    return 0;
}

/*
 * "0": the writer. The joining child has one thread, so moving that thread through v1's
 * tasks moves the process, and the kernel then skips the lock that a move of a whole thread
 * group takes (cgroup.procs), which waits for an RCU grace period: about 40 us a join
 * instead of 150 to 220 here. Its threads to come are born in the group.
 */
int rt_cgroup_join(const struct rt_cgroup *cg)
{
    return write(cg->join_fd, "0", 1) == 1 ? 0 : -1;
}

bool rt_cgroup_active(const struct rt_cgroup *cg)
{
    return cg->join_fd >= 0;
}

const char *rt_cgroup_mechanism(void)
{
    static char text[PATH_MAX + 64];
    pthread_once(&found, find_base);
    if (limit_file == NULL)
        return "address-space limits (no memory cgroup can be made here)";
    snprintf(text, sizeof text, "memory cgroups under %s (cgroup %s)", base,
             strcmp(limit_file, "memory.max") == 0 ? "v2" : "v1");
    return text;
}

long long rt_cgroup_oom_kills(const struct rt_cgroup *cg)
{
    if (!rt_cgroup_active(cg))
        return -1;
    /* "oom_kill N": a line of memory.oom_control (v1) or of memory.events (v2). */
    char path[PATH_MAX + 32], line[128];
    snprintf(path, sizeof path, "%s/%s", cg->path,
             strcmp(limit_file, "memory.max") == 0 ? "memory.events" : "memory.oom_control");
    FILE *f = fopen(path, "re");
    long long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "oom_kill %lld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* A number of bytes, as a peak file holds it, read through fd; -1 when it cannot. */
static long long read_bytes(int fd)
{
    char text[32];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    return end != text && v >= 0 ? v : -1;
}

long long rt_cgroup_peak_reset(const struct rt_cgroup *cg)
{
    if (cg->peak_fd < 0)
        return -1;
    /* v1 takes "0"; v2 any text, and then reports the peak since to this descriptor. The
     * file is a seq_file, which refuses pwrite; where write leaves the offset is no matter,
     * as reads are preads. */
    if (write(cg->peak_fd, "0\n", 2) != 2)
        return -1;
    return read_bytes(cg->peak_fd);
}

long long rt_cgroup_peak(const struct rt_cgroup *cg)
{
    return cg->peak_fd < 0 ? -1 : read_bytes(cg->peak_fd);
}

/* SIGKILL every process listed in the group; how many there were. */
static int kill_members(const char *dir)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    int n = 0, pid;
    while (f && fscanf(f, "%d", &pid) == 1) {
        kill(pid, SIGKILL);
        n++;
    }
    if (f)
        fclose(f);
    return n;
}

void rt_cgroup_close(struct rt_cgroup *cg)
{
    if (!rt_cgroup_active(cg))
        return;
    /* What the function left behind dies with it; a group empties once the kernel has
     * ended its members, which takes a moment after SIGKILL. */
    bool empty = false;
    for (int round = 0; round < 200 && !empty; round++) {
        empty = kill_members(cg->path) == 0;
        if (!empty)
            usleep(1000);
    }
    bool kept = false;
    if (empty) {
        pthread_mutex_lock(&spares_lock);
        if (nspares < SPARE_MAX) {
            spares[nspares++] = *cg;
            kept = true;
        }
        pthread_mutex_unlock(&spares_lock);
    }
    if (!kept)
        remove_group(cg); /* refused if it could not be emptied: left to a later sweep */
    *cg = RT_CGROUP_NONE;
}
