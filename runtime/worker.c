#include "runtime/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "runtime/cgroup.h"
#include "runtime/procstat.h"

#define ENV_MAX 128
#define HEADER_MAX 256
#define STOP_GRACE_MS 100
#define EXIT_CANNOT_START 127

struct rt_worker {
    pid_t pid;
    int req, rep, log, pidfd; /* the runtime's ends; -1 once closed */
    struct rt_proc proc; /* its CPU clock and /proc files, kept open from one call to the next */
    struct rt_cgroup cg; /* its memory group, when one could be made */
    long long oom_seen;  /* its OOM kills as last read */
    int64_t spawn_peak_kb; /* the runtime's own peak RSS once the worker exec'd */
    int64_t seen_hwm_kb;   /* the largest VmHWM the samples of this invocation read */
    bool have_proc;
    bool ready;
    bool dead;    /* gone or to be discarded */
    bool reaped;
    int wstatus;
    struct rusage ru;
    int64_t started_us, idle_since_us;
    struct fm_buf in; /* reply bytes not yet consumed */
    char *log_tail;
    size_t log_len;
};

/* How an exchange with the worker ended. */
enum xchg { XCHG_FRAME, XCHG_TIMEOUT, XCHG_EXITED, XCHG_TOO_LARGE, XCHG_PROTOCOL };

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* What the child that becomes a worker needs. */
struct worker_child {
    const struct rt_worker_spec *spec;
    char *const *envp;
    int req, rep, log, devnull; /* the child's ends */
    pid_t parent;
    const struct rt_cgroup *cg;
};

/* Runs in the child of vfork (see rt_child_spawn), on the keeper thread. Descriptors are
 * first moved above the protocol's numbers so that placing them cannot clobber another. */
static void child_start(void *ctx)
{
    const struct worker_child *c = ctx;
    rt_child_isolate();
    /* Limits before the moves: the memory group is joined through a descriptor that they
     * could overwrite. */
    if (rt_child_confine(c->spec->memory_mb, &c->spec->user, c->cg, c->parent) < 0)
        _exit(EXIT_CANNOT_START);
    int r = fcntl(c->req, F_DUPFD_CLOEXEC, 10), w = fcntl(c->rep, F_DUPFD_CLOEXEC, 10);
    int l = fcntl(c->log, F_DUPFD_CLOEXEC, 10), n = fcntl(c->devnull, F_DUPFD_CLOEXEC, 10);
    if (r < 0 || w < 0 || l < 0 || n < 0 || dup2(n, 0) < 0 || dup2(l, 1) < 0 ||
        dup2(l, 2) < 0 || dup2(r, 3) < 0 || dup2(w, 4) < 0)
        _exit(EXIT_CANNOT_START);
    syscall(SYS_close_range, 5U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
    execve(c->spec->argv[0], c->spec->argv, c->envp);
    _exit(EXIT_CANNOT_START);
}

/*
 * Workers are started by one thread that lives as long as the runtime, so that they can be
 * told to die with it: the kernel's parent-death signal follows the thread that forked a
 * process, and the threads that ask for workers come and go. A runtime killed with SIGKILL
 * thus takes its workers along, even one busy in a handler that never returns.
 */
struct spawn_call {
    void (*child)(void *ctx);
    void *ctx;
    pid_t pid;
    int error;
    bool done;
    struct spawn_call *next;
};

static pthread_mutex_t keeper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t keeper_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t keeper_done = PTHREAD_COND_INITIALIZER;
static struct spawn_call *keeper_queue;
static pthread_once_t keeper_once = PTHREAD_ONCE_INIT;
static bool keeper_running;

static void *keeper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&keeper_lock);
    for (;;) {
        while (keeper_queue == NULL)
            pthread_cond_wait(&keeper_wake, &keeper_lock);
        struct spawn_call *c = keeper_queue;
        keeper_queue = c->next;
        pthread_mutex_unlock(&keeper_lock);
        pid_t pid = rt_child_spawn(c->child, c->ctx);
        int error = errno;
        pthread_mutex_lock(&keeper_lock);
        c->pid = pid;
        c->error = error;
        c->done = true;
        pthread_cond_broadcast(&keeper_done);
    }
    return NULL;
}

static void keeper_start(void)
{
    /* Signals are for the runtime's other threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    keeper_running = pthread_create(&t, NULL, keeper_main, NULL) == 0;
    if (keeper_running)
        pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* rt_child_spawn on the keeper thread; the caller's ctx stays valid while it waits. */
static pid_t keeper_spawn(void (*child)(void *ctx), void *ctx)
{
    pthread_once(&keeper_once, keeper_start);
    if (!keeper_running) {
        errno = EAGAIN;
        return -1;
    }
    struct spawn_call c = {.child = child, .ctx = ctx};
    pthread_mutex_lock(&keeper_lock);
    struct spawn_call **tail = &keeper_queue;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &c;
    pthread_cond_signal(&keeper_wake);
    while (!c.done)
        pthread_cond_wait(&keeper_done, &keeper_lock);
    pthread_mutex_unlock(&keeper_lock);
    errno = c.error;
    return c.pid;
}

enum rt_status rt_worker_start(const struct rt_worker_spec *spec, struct rt_worker **out,
                               struct fm_err *err)
{
    enum rt_status st = RT_EIO;
    int req[2] = {-1, -1}, rep[2] = {-1, -1}, lg[2] = {-1, -1}, devnull = -1;
    char *envp[ENV_MAX + 2];
    size_t n = 0;
    for (char *const *e = spec->envp; e && *e && n < ENV_MAX; e++)
        envp[n++] = *e;
    envp[n++] = "FAASMETER_WARM=1";
    envp[n] = NULL;
    struct rt_worker *w = calloc(1, sizeof *w);
    char *log_tail = malloc(RT_ERRLOG_MAX + 1);
    if (w == NULL || log_tail == NULL) {
        fm_err_set(err, "out of memory");
        st = RT_ENOMEM;
        goto out;
    }
    *w = (struct rt_worker){.req = -1, .rep = -1, .log = -1, .pidfd = -1, .log_tail = log_tail,
                            .proc = RT_PROC_NONE, .cg = RT_CGROUP_NONE};
    log_tail = NULL;
    fm_buf_init(&w->in, RT_OUTPUT_MAX + HEADER_MAX);
    if (pipe2(req, O_CLOEXEC) || pipe2(rep, O_CLOEXEC) || pipe2(lg, O_CLOEXEC) ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        fm_err_set(err, "pipe: %s", strerror(errno));
        goto out;
    }
    rt_cgroup_open(spec->memory_mb, &w->cg); /* else the child limits its address space */
    w->oom_seen = rt_cgroup_oom_kills(&w->cg);
    w->started_us = fm_mono_us();
    struct worker_child child = {.spec = spec, .envp = envp, .req = req[0], .rep = rep[1],
                                 .log = lg[1], .devnull = devnull, .parent = getpid(),
                                 .cg = &w->cg};
    /* Returns once the child exec'd (its process group made) or gave up. */
    pid_t pid = keeper_spawn(child_start, &child);
    if (pid < 0) {
        fm_err_set(err, "vfork: %s", strerror(errno));
        goto out;
    }
    w->spawn_peak_kb = rt_self_peak_kb();
    w->pid = pid;
    w->req = req[1];
    w->rep = rep[0];
    w->log = lg[0];
    req[1] = rep[0] = lg[0] = -1;
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (w->pidfd < 0 || fcntl(w->req, F_SETFL, O_NONBLOCK) || fcntl(w->rep, F_SETFL, O_NONBLOCK) ||
        fcntl(w->log, F_SETFL, O_NONBLOCK)) {
        fm_err_set(err, "worker pipes: %s", strerror(errno));
        goto out;
    }
    w->have_proc = rt_proc_init(&w->proc, pid) == 0;
    w->idle_since_us = w->started_us;
    *out = w;
    w = NULL;
    st = RT_OK;
out:
    {
        int *fds[] = {&req[0], &req[1], &rep[0], &rep[1], &lg[0], &lg[1], &devnull};
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
            close_fd(fds[i]);
    }
    free(log_tail);
    rt_worker_stop(w);
    return st;
}

/* Everything the worker logged so far, into this invocation's log tail. */
static void drain_log(struct rt_worker *w)
{
    char chunk[16384];
    for (;;) {
        ssize_t n = read(w->log, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        rt_log_keep_tail(w->log_tail, &w->log_len, chunk, (size_t)n);
    }
}

/* The exit code of a "DONE <code> <length>" header at text: 0-255, as a process's; -1
 * when it is not one. */
static int done_code(const char *text)
{
    const char *p = text + 5; /* past "DONE " */
    char *end = NULL;
    errno = 0;
    long code = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
    return errno == 0 && end != NULL && *end == ' ' && code >= 0 && code <= 255 ? (int)code
                                                                              : -1;
}

/* Whether w->in starts with a whole frame; its length into *len. -1: not a frame. */
static int frame_ready(const struct rt_worker *w, size_t *len)
{
    const char *nl = w->in.data ? memchr(w->in.data, '\n', w->in.len) : NULL;
    if (nl == NULL)
        return w->in.len > HEADER_MAX ? -1 : 0;
    size_t head = (size_t)(nl - w->in.data) + 1;
    if (strncmp(w->in.data, "READY\n", 6) == 0) {
        *len = head;
        return 1;
    }
    int code;
    unsigned long long payload;
    char extra;
    if (strncmp(w->in.data, "DONE ", 5) != 0 || done_code(w->in.data) < 0 ||
        sscanf(w->in.data, "DONE %d %llu%c", &code, &payload, &extra) != 3 || extra != '\n' ||
        payload > RT_OUTPUT_MAX)
        return -1;
    if (w->in.len < head + payload)
        return 0;
    *len = head + (size_t)payload;
    return 1;
}

/* Read what the reply pipe holds. Returns -1 on end of file. A read that comes back short
 * has emptied the pipe: asking again would only hear EAGAIN. */
static int read_replies(struct rt_worker *w)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(w->rep, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0;
        if (n == 0)
            return -1;
        if (fm_buf_append(&w->in, chunk, (size_t)n) != 0)
            return 0; /* frame_ready reports the overflow */
        if ((size_t)n < sizeof chunk)
            return 0;
    }
}

/* A request: its header and payload, sent in one system call when the pipe takes both. */
struct outgoing {
    struct iovec seg[2];
    int at; /* the first segment not wholly sent; 2 when done */
};

static void feed(struct rt_worker *w, struct outgoing *o)
{
    while (o->at < 2) {
        if (o->seg[o->at].iov_len == 0) {
            o->at++;
            continue;
        }
        ssize_t n = writev(w->req, &o->seg[o->at], 2 - o->at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) { /* EPIPE: the worker stopped reading; its exit tells the rest */
            o->at = 2;
            return;
        }
        for (size_t left = (size_t)n; left > 0 && o->at < 2;) {
            struct iovec *v = &o->seg[o->at];
            size_t take = left < v->iov_len ? left : v->iov_len;
            v->iov_base = (char *)v->iov_base + take;
            v->iov_len -= take;
            left -= take;
            if (v->iov_len == 0)
                o->at++;
        }
    }
}

/*
 * Send what o holds and wait for one whole frame, the worker's exit or the deadline. Logs
 * and resource samples are taken on the way.
 */
static enum xchg exchange(struct rt_worker *w, struct outgoing *o, int64_t deadline_us,
                          const struct rt_sampler *sm, const struct rt_usage *base,
                          size_t *frame_len)
{
    int64_t next_sample = sm && w->have_proc ? fm_mono_us() + sm->every_us : INT64_MAX;
    /* The request pipe is almost always empty: write at once rather than poll for room. */
    if (o)
        feed(w, o);
    for (;;) {
        int fr = frame_ready(w, frame_len);
        if (fr != 0)
            return fr > 0 ? XCHG_FRAME : w->in.failed ? XCHG_TOO_LARGE : XCHG_PROTOCOL;
        if (fm_mono_us() >= deadline_us)
            return XCHG_TIMEOUT;
        if (fm_mono_us() >= next_sample) {
            int64_t kb = rt_sample_take(sm, &w->proc, base, -1);
            if (kb > w->seen_hwm_kb)
                w->seen_hwm_kb = kb;
            next_sample += sm->every_us;
        }
        struct pollfd fds[4] = {
            {.fd = o && o->at < 2 ? w->req : -1, .events = POLLOUT},
            {.fd = w->rep, .events = POLLIN},
            {.fd = w->log, .events = POLLIN},
            {.fd = w->pidfd, .events = POLLIN},
        };
        int n = poll(fds, 4, (int)rt_sample_wait_ms(deadline_us, &next_sample));
        if (n < 0 && errno != EINTR)
            return XCHG_PROTOCOL;
        if (n <= 0)
            continue;
        if (fds[0].revents)
            feed(w, o);
        if (fds[2].revents)
            drain_log(w);
        bool eof = fds[1].revents && read_replies(w) != 0;
        if (fds[3].revents) {
            /* It may have replied and then exited: what it sent still counts. */
            read_replies(w);
            drain_log(w);
            w->dead = true;
            return frame_ready(w, frame_len) > 0 ? XCHG_FRAME : XCHG_EXITED;
        }
        if (eof && frame_ready(w, frame_len) <= 0) {
            /* A dying process closes its pipes just before its exit is announced. */
            struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
            if (poll(&p, 1, STOP_GRACE_MS) == 1) {
                drain_log(w);
                w->dead = true;
                return XCHG_EXITED;
            }
            return XCHG_PROTOCOL; /* closed its reply pipe but lives on */
        }
    }
}

static void consume(struct rt_worker *w, size_t n)
{
    memmove(w->in.data, w->in.data + n, w->in.len - n);
    w->in.len -= n;
    w->in.data[w->in.len] = '\0';
}

/* Kill the worker's group and collect its exit status and lifetime usage. */
static void reap(struct rt_worker *w)
{
    if (w->reaped)
        return;
    kill(-w->pid, SIGKILL);
    while (wait4(w->pid, &w->wstatus, 0, &w->ru) < 0 && errno == EINTR)
        ;
    w->reaped = true;
    w->dead = true;
}

static int64_t tv_us(struct timeval tv)
{
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/*
 * The outcome of an exchange that ended without a reply: the worker is done for.
 *
 * Its peak RSS since the invocation began: VmHWM (reset before the invocation), read before
 * the kill while it still runs, or the samples' largest reading. Only when nothing of this
 * invocation was read does wait4's ru_maxrss stand in, when above the runtime's own peak at
 * its spawn (rt_child_own_peak_kb): it is the worker's peak over its whole life, earlier
 * invocations included.
 */
static void failed(struct rt_worker *w, enum xchg how, const struct rt_usage *base,
                   struct rt_exec_result *r)
{
    int64_t peak = w->seen_hwm_kb, kb;
    if (how != XCHG_EXITED && !w->reaped && w->have_proc && rt_proc_hwm(&w->proc, &kb) == 0 &&
        kb > peak)
        peak = kb;
    reap(w);
    int64_t own = rt_child_own_peak_kb(&w->ru, w->spawn_peak_kb);
    r->max_rss_kb = peak > 0 ? peak : own > 0 ? own : 0;
    int64_t user = tv_us(w->ru.ru_utime), sys = tv_us(w->ru.ru_stime);
    int64_t spent = user + sys - base->cpu_us;
    if (spent < 0)
        spent = 0;
    r->cpu_user_us = user + sys > 0 ? (int64_t)((__int128)spent * user / (user + sys)) : 0;
    r->cpu_sys_us = spent - r->cpu_user_us;
    r->exit_code = 128 + SIGKILL;
    r->status = RT_RUN_ERROR;
    switch (how) {
    case XCHG_TIMEOUT:
        r->status = RT_RUN_TIMEOUT;
        break;
    case XCHG_TOO_LARGE:
        snprintf(r->reason, sizeof r->reason, "response larger than %zu bytes",
                 (size_t)RT_OUTPUT_MAX);
        break;
    case XCHG_PROTOCOL:
        snprintf(r->reason, sizeof r->reason, "the worker broke the warm protocol");
        break;
    case XCHG_EXITED:
    case XCHG_FRAME:
        /* "oom" only when the group's count of OOM kills rose (rt_worker_invoke). */
        if (WIFEXITED(w->wstatus)) {
            r->exit_code = WEXITSTATUS(w->wstatus);
            r->status = RT_RUN_ERROR;
            snprintf(r->reason, sizeof r->reason, "the worker exited with %d without replying",
                     r->exit_code);
        } else {
            r->exit_code = 128 + WTERMSIG(w->wstatus);
            r->status = RT_RUN_CRASHED;
        }
        break;
    }
}

#define LEFTOVER_NOTE                                                                         \
    "faasrun: the worker replied more than once, or before reading the whole request; it is "  \
    "stopped\n"

/* Fill r from a DONE frame of frame_len bytes at the start of w->in. */
static enum rt_status replied(struct rt_worker *w, size_t frame_len, const struct rt_usage *base,
                              struct rt_exec_result *r)
{
    const char *nl = memchr(w->in.data, '\n', frame_len);
    size_t head = (size_t)(nl - w->in.data) + 1;
    int code = done_code(w->in.data); /* frame_ready checked it */
    r->output_len = frame_len - head;
    r->output = malloc(r->output_len + 1);
    if (r->output == NULL)
        return RT_ENOMEM;
    memcpy(r->output, w->in.data + head, r->output_len);
    r->output[r->output_len] = '\0';
    consume(w, frame_len);
    r->exit_code = code;
    r->status = code == 0 ? RT_RUN_OK : RT_RUN_ERROR;
    struct rt_usage after;
    if (w->have_proc && rt_proc_usage(&w->proc, &after) == 0) {
        rt_usage_split(base, &after, &r->cpu_user_us, &r->cpu_sys_us);
        r->max_rss_kb = after.hwm_kb;
    }
    return RT_OK;
}

/* Wait for READY within the deadline. Returns XCHG_FRAME when ready. */
static enum xchg await_ready(struct rt_worker *w, int64_t deadline_us)
{
    size_t len = 0;
    enum xchg x = exchange(w, NULL, deadline_us, NULL, NULL, &len);
    if (x != XCHG_FRAME)
        return x;
    if (strncmp(w->in.data, "READY\n", 6) != 0)
        return XCHG_PROTOCOL;
    consume(w, len);
    w->ready = true;
    return XCHG_FRAME;
}

enum rt_status rt_worker_invoke(struct rt_worker *w, const char *request_id, int64_t timeout_ms,
                                const void *input, size_t input_len,
                                const struct rt_sampler *sampler, struct rt_exec_result *out,
                                struct fm_err *err)
{
    struct rt_exec_result r = {.pid = w->pid};
    struct rt_usage base = {0};
    enum rt_status st = RT_OK;
    w->log_len = 0;
    w->seen_hwm_kb = 0;
    drain_log(w);
    int64_t t0 = fm_mono_us();
    if (!w->ready) {
        enum xchg x = w->dead ? XCHG_EXITED : await_ready(w, t0 + timeout_ms * 1000);
        r.init_us = fm_mono_us() - w->started_us;
        if (x != XCHG_FRAME) {
            failed(w, x, &base, &r);
            r.duration_us = 0;
            goto done;
        }
        t0 = fm_mono_us();
    }
    /* The peak is reset just before: the base's own is not read, the reply's is the one.
     * The worker's memory group's too, as the processes the worker starts count in it. */
    if (w->have_proc) {
        rt_proc_reset_peak(&w->proc);
        rt_proc_cpu(&w->proc, &base);
    }
    bool group_peak = rt_cgroup_peak_reset(&w->cg) >= 0;
    char head[HEADER_MAX];
    int hn = snprintf(head, sizeof head, "INVOKE %.128s %" PRId64 " %zu\n", request_id,
                      (fm_wall_us() + timeout_ms * 1000) / 1000, input_len);
    struct outgoing o = {{{head, (size_t)hn}, {(void *)input, input_len}}, 0};
    size_t frame_len = 0;
    enum xchg x = exchange(w, &o, t0 + timeout_ms * 1000, sampler, &base, &frame_len);
    r.duration_us = fm_mono_us() - t0;
    if (x == XCHG_FRAME && strncmp(w->in.data, "DONE ", 5) == 0) {
        st = replied(w, frame_len, &base, &r);
        /* The most memory charged to the worker's group meanwhile: the worker and the
         * programs it ran for this request, which its own VmHWM does not count. */
        long long peak = group_peak ? rt_cgroup_peak(&w->cg) : -1;
        if (peak >= 0 && (peak + 1023) / 1024 > r.max_rss_kb)
            r.max_rss_kb = (peak + 1023) / 1024;
        /* A worker that replied more than once, or before it read the whole request, would
         * hand what is left in the pipes to the next caller: it is done for. */
        if (w->in.len > 0 || o.at < 2) {
            rt_log_keep_tail(w->log_tail, &w->log_len, LEFTOVER_NOTE, sizeof LEFTOVER_NOTE - 1);
            reap(w);
        }
    } else {
        failed(w, x == XCHG_FRAME ? XCHG_PROTOCOL : x, &base, &r);
    }
    /* A failure after the OOM killer ended one of the worker's processes is the memory
     * limit's doing. (Read only on failures, to keep successes cheap: a kill during a
     * success is then counted for the next failure.) */
    if ((r.status == RT_RUN_ERROR || r.status == RT_RUN_CRASHED) && w->oom_seen >= 0) {
        long long kills = rt_cgroup_oom_kills(&w->cg);
        if (kills > w->oom_seen)
            r.status = RT_RUN_OOM;
        w->oom_seen = kills;
    }
done:
    if (st == RT_OK && r.output == NULL)
        r.output = calloc(1, 1);
    r.errlog = malloc(w->log_len + 1);
    if (st != RT_OK || r.output == NULL || r.errlog == NULL) {
        rt_exec_result_free(&r);
        fm_err_set(err, "out of memory");
        return RT_ENOMEM;
    }
    memcpy(r.errlog, w->log_tail, w->log_len);
    r.errlog[w->log_len] = '\0';
    r.errlog_len = w->log_len;
    w->idle_since_us = fm_mono_us();
    *out = r;
    return RT_OK;
}

bool rt_worker_usable(const struct rt_worker *w)
{
    return !w->dead && w->ready;
}

bool rt_worker_alive(const struct rt_worker *w)
{
    if (w->dead || w->reaped || w->pidfd < 0)
        return false;
    /* A pidfd turns readable when its process exits; it does not reap it. An idle worker
     * has nothing to say either: a reply nobody asked for (a second answer, written late)
     * would go to the next caller. */
    struct pollfd p[2] = {{.fd = w->pidfd, .events = POLLIN}, {.fd = w->rep, .events = POLLIN}};
    int rc;
    while ((rc = poll(p, 2, 0)) < 0 && errno == EINTR)
        ;
    return rc == 0 && w->in.len == 0;
}

pid_t rt_worker_pid(const struct rt_worker *w)
{
    return w->pid;
}

int64_t rt_worker_idle_since(const struct rt_worker *w)
{
    return w->idle_since_us;
}

void rt_worker_stop(struct rt_worker *w)
{
    if (w == NULL)
        return;
    close_fd(&w->req);
    if (w->pid > 0 && !w->reaped && w->pidfd >= 0) {
        struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
        while (poll(&p, 1, STOP_GRACE_MS) < 0 && errno == EINTR)
            ;
    }
    if (w->pid > 0)
        reap(w);
    close_fd(&w->rep);
    close_fd(&w->log);
    close_fd(&w->pidfd);
    rt_proc_close(&w->proc);
    rt_cgroup_close(&w->cg);
    fm_buf_free(&w->in);
    free(w->log_tail);
    free(w);
}
