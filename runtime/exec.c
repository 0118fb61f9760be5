#include "runtime/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "runtime/cgroup.h"
#include "runtime/procstat.h"

#define EXIT_CANNOT_START 127

const char *rt_run_status_name(enum rt_run_status s)
{
    static const char *const names[] = {"ok", "error", "timeout", "oom", "crashed", "rejected"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "error";
}

/* The parent's ends of the child's pipes and what the pump has seen so far. */
struct pump {
    int in, out, err, exited; /* -1 once closed */
    const char *input;
    size_t input_len, input_off;
    struct fm_buf output;
    char *errlog;
    size_t errlog_len;
    bool overflow;
    pid_t pid;
    const struct rt_sampler *sampler;
    struct rt_proc proc; /* the child's /proc files, opened by their first reading */
    bool watch_hwm;      /* read the child's VmHWM at every wake-up (see run_peak_kb) */
    const struct rt_cgroup *cg; /* the child's memory group, when its peak is measured: */
    long long charged_before;   /* what the group held before the run (see group_peak_kb) */
    int64_t hwm_kb;      /* the largest VmHWM read so far, by that or by a sample */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void rt_child_isolate(void)
{
    /* A session, not only a process group: no controlling terminal to push keystrokes into
     * (TIOCSTI) or to stop the runtime with, and its job-control signals miss the child. */
    setsid();
}

/* The user's identity, by system calls: the C library's setuid would signal every thread
 * of the runtime, whose memory a child of vfork shares. */
static int become(const struct rt_user *user)
{
    if (!user->set)
        return 0;
    if (syscall(SYS_setgroups, 0, NULL) != 0 ||
        syscall(SYS_setresgid, user->gid, user->gid, user->gid) != 0 ||
        syscall(SYS_setresuid, user->uid, user->uid, user->uid) != 0)
        return -1;
    return 0;
}

int rt_child_confine(int memory_mb, const struct rt_user *user, const struct rt_cgroup *cg,
                     pid_t parent)
{
    /* Ignored signals stay ignored across execve, so the function gets a clean slate. And
     * the child of vfork shares the runtime's memory until execve: a runtime handler must
     * not run in it, so every disposition is reset before the signals are let in, last. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* the C library's own signals refuse: no matter */
    struct rlimit as = {(rlim_t)memory_mb << 20, (rlim_t)memory_mb << 20};
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &core) != 0)
        return -1;
    /* A group the system refuses to take the child into (a co-mounted controller with
     * nothing assigned, a security module) leaves the address-space limit to hold. */
    bool joined = rt_cgroup_active(cg) && rt_cgroup_join(cg) == 0;
    if (!joined && memory_mb > 0 && setrlimit(RLIMIT_AS, &as) != 0)
        return -1;
    if (become(user) != 0)
        return -1;
    /* A runtime killed with SIGKILL cannot end its functions: the kernel does. The signal
     * comes when the forking thread ends, which suits only a child that thread waits for.
     * After the change of user, which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(EXIT_CANNOT_START);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return joined ? 1 : 0;
}

/* What the child of one exec-mode invocation needs. */
struct exec_child {
    const struct rt_exec_spec *spec;
    int in, out, err;   /* the child's ends of its stdin, stdout, stderr */
    pid_t parent;
    const struct rt_cgroup *cg;
    volatile int start_errno; /* why it could not start; read once the child exec'd or exited */
    volatile bool joined;     /* it runs in cg */
};

/* Runs in the child of vfork (see rt_child_spawn). */
static void child_exec(void *ctx)
{
    struct exec_child *c = ctx;
    const struct rt_exec_spec *spec = c->spec;
    rt_child_isolate();
    /* Limits before the moves: the memory group is joined through a descriptor that they
     * could overwrite. */
    int confined = rt_child_confine(spec->memory_mb, &spec->user, c->cg, c->parent);
    if (confined < 0)
        goto fail;
    c->joined = confined == 1;
    if (dup2(c->in, 0) < 0 || dup2(c->out, 1) < 0 || dup2(c->err, 2) < 0)
        goto fail;
    /* Descriptors someone opened without O_CLOEXEC must not leak into tenants' code. */
    syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
    execve(spec->argv[0], spec->argv, spec->envp);
fail:
    c->start_errno = errno ? errno : ENOEXEC;
    _exit(EXIT_CANNOT_START);
}

pid_t rt_child_spawn(void (*child)(void *ctx), void *ctx)
{
    /* vfork, not fork: copying the runtime's page tables costs more the bigger it grows
     * (tens of milliseconds for a few hundred MB), and the child only sets up and execs.
     * Until the child has reset its signal dispositions every signal stays blocked, or a
     * runtime handler could run in the child on the runtime's memory. */
    sigset_t all, mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &mask);
    int dumpable = prctl(PR_GET_DUMPABLE);
    pid_t pid = vfork();
    if (pid == 0) {
        child(ctx);
        _exit(EXIT_CANNOT_START);
    }
    int saved = errno;
    /* A child that took on another user made the memory it shared with the runtime
     * undumpable: the runtime's own setting comes back. */
    if (dumpable >= 0 && prctl(PR_GET_DUMPABLE) != dumpable)
        prctl(PR_SET_DUMPABLE, dumpable);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    errno = saved;
    return pid;
}

void rt_log_keep_tail(char *log, size_t *len, const char *data, size_t n)
{
    if (n >= RT_ERRLOG_MAX) {
        memcpy(log, data + n - RT_ERRLOG_MAX, RT_ERRLOG_MAX);
        *len = RT_ERRLOG_MAX;
        return;
    }
    if (*len + n > RT_ERRLOG_MAX) {
        size_t drop = *len + n - RT_ERRLOG_MAX;
        memmove(log, log + drop, *len - drop);
        *len -= drop;
    }
    memcpy(log + *len, data, n);
    *len += n;
}

int64_t rt_sample_take(const struct rt_sampler *sm, struct rt_proc *proc,
                       const struct rt_usage *base, int64_t peak_kb)
{
    struct rt_usage now;
    if (rt_proc_usage(proc, &now) != 0)
        return -1;
    struct rt_usage_sample s = {.max_rss_kb = peak_kb >= 0 ? peak_kb : now.hwm_kb};
    rt_usage_split(base, &now, &s.cpu_user_us, &s.cpu_sys_us);
    sm->fn(sm->ctx, &s);
    return now.hwm_kb;
}

int64_t rt_self_peak_kb(void)
{
    struct rusage self;
    return getrusage(RUSAGE_SELF, &self) == 0 ? self.ru_maxrss : 0;
}

int64_t rt_child_own_peak_kb(const struct rusage *ru, int64_t spawn_peak_kb)
{
    return ru->ru_maxrss > spawn_peak_kb ? ru->ru_maxrss : -1;
}

int64_t rt_sample_wait_ms(int64_t deadline_us, int64_t *next_sample_us)
{
    int64_t now = fm_mono_us();
    int64_t until = deadline_us;
    if (next_sample_us && *next_sample_us < until)
        until = *next_sample_us;
    int64_t ms = (until - now + 999) / 1000;
    return ms < 0 ? 0 : ms > 60000 ? 60000 : ms;
}

/* Read what is there; close the fd on EOF. Returns -1 on stdout overflow. */
static int drain(struct pump *p, int *fd, bool is_stdout)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) {
            close_fd(fd);
            return 0;
        }
        if (!is_stdout)
            rt_log_keep_tail(p->errlog, &p->errlog_len, chunk, (size_t)n);
        else if (fm_buf_append(&p->output, chunk, (size_t)n) != 0)
            return -1;
    }
}

static void feed(struct pump *p)
{
    while (p->input_off < p->input_len) {
        ssize_t n = write(p->in, p->input + p->input_off, p->input_len - p->input_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) /* EPIPE: the function stopped reading, which is its right */
            break;
        p->input_off += (size_t)n;
    }
    close_fd(&p->in);
}

/* The peak memory charged to cg since the run began, less what the group held before
 * (charged_before, -1 when its peak is not measured): kB, or -1 when unknown. */
static int64_t group_peak_kb(const struct rt_cgroup *cg, long long charged_before)
{
    long long peak = charged_before >= 0 ? rt_cgroup_peak(cg) : -1;
    if (peak < 0)
        return -1;
    return peak > charged_before ? (peak - charged_before + 1023) / 1024 : 0;
}

static void note_hwm(struct pump *p, int64_t kb)
{
    if (kb > p->hwm_kb)
        p->hwm_kb = kb;
}

/* With watch_hwm, a reading of the child's peak RSS so far. */
static void watch(struct pump *p)
{
    int64_t kb;
    if (p->watch_hwm && rt_proc_hwm(&p->proc, &kb) == 0)
        note_hwm(p, kb);
}

/*
 * Move bytes until the child exits, the deadline passes or stdout overflows. Pipes held
 * open by a grandchild do not keep the invocation alive: the child's exit ends it.
 * Returns 1 on timeout, -1 on overflow, 0 when the child exited.
 */
static int pump_until_exit(struct pump *p, int64_t deadline_us)
{
    if (p->input_len == 0)
        close_fd(&p->in);
    struct rt_usage base = {0};
    int64_t next_sample = INT64_MAX;
    bool have_proc = rt_proc_init(&p->proc, p->pid) == 0;
    if (p->sampler && have_proc)
        next_sample = fm_mono_us() + p->sampler->every_us;
    p->watch_hwm = p->watch_hwm && have_proc;
    watch(p);
    while (p->exited >= 0) {
        struct pollfd fds[4] = {
            {.fd = p->in, .events = POLLOUT},
            {.fd = p->out, .events = POLLIN},
            {.fd = p->err, .events = POLLIN},
            {.fd = p->exited, .events = POLLIN},
        };
        if (fm_mono_us() >= deadline_us)
            return 1;
        if (fm_mono_us() >= next_sample) {
            note_hwm(p, rt_sample_take(p->sampler, &p->proc, &base,
                                       group_peak_kb(p->cg, p->charged_before)));
            next_sample += p->sampler->every_us;
        }
        int n = poll(fds, 4, (int)rt_sample_wait_ms(deadline_us, &next_sample));
        if (n < 0 && errno != EINTR)
            return 1;
        if (n <= 0)
            continue;
        /* Output usually comes last, just before the exit: a reading now comes close to
         * the peak. */
        watch(p);
        if (fds[0].revents)
            feed(p);
        if (fds[1].revents && drain(p, &p->out, true) != 0)
            return -1;
        if (fds[2].revents)
            drain(p, &p->err, false);
        if (fds[3].revents)
            close_fd(&p->exited);
    }
    /* What the child wrote before exiting is still in the pipes. */
    if (p->out >= 0 && drain(p, &p->out, true) != 0)
        return -1;
    if (p->err >= 0)
        drain(p, &p->err, false);
    return 0;
}

static int make_pipe(int fds[2], int parent_end)
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    return fcntl(fds[parent_end], F_SETFL, O_NONBLOCK);
}

static int64_t tv_us(struct timeval tv)
{
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/*
 * The function's peak memory in kB (see rt_exec_run). wait4's ru_maxrss alone will not do:
 * it is never below the runtime's own peak when the child was spawned (rt_child_own_peak_kb),
 * so a function of 1 MB run by a runtime that once held 40 MB would be billed 40 MB. A
 * group's peak counts every process of the function together and nothing of the runtime's.
 */
static int64_t run_peak_kb(const struct rt_cgroup *cg, long long charged_before,
                           const struct rusage *ru, int64_t spawn_peak_kb, int64_t hwm_kb)
{
    int64_t group = group_peak_kb(cg, charged_before);
    if (group >= 0)
        return group;
    int64_t own = rt_child_own_peak_kb(ru, spawn_peak_kb);
    return own > hwm_kb ? own : hwm_kb;
}

static void classify(struct rt_exec_result *r, int wstatus, int ended_by_us)
{
    if (ended_by_us == 1) {
        r->status = RT_RUN_TIMEOUT;
        r->exit_code = 128 + SIGKILL;
    } else if (ended_by_us == -1) {
        r->status = RT_RUN_ERROR;
        r->exit_code = 128 + SIGKILL;
    } else if (WIFEXITED(wstatus)) {
        r->exit_code = WEXITSTATUS(wstatus);
        r->status = r->exit_code == 0 ? RT_RUN_OK : RT_RUN_ERROR;
    } else {
        /* A SIGKILL too: whether the OOM killer sent it, only the group's count can say. */
        r->exit_code = 128 + WTERMSIG(wstatus);
        r->status = RT_RUN_CRASHED;
    }
}

enum rt_status rt_exec_run(const struct rt_exec_spec *spec, struct rt_exec_result *out,
                           struct fm_err *err)
{
    enum rt_status st = RT_EIO;
    int in[2] = {-1, -1}, o[2] = {-1, -1}, e[2] = {-1, -1};
    pid_t pid = -1;
    struct rt_cgroup cg = RT_CGROUP_NONE;
    struct rt_exec_result r = {0};
    struct pump p = {.in = -1, .out = -1, .err = -1, .exited = -1,
                     .input = spec->input, .input_len = spec->input_len,
                     .proc = RT_PROC_NONE, .charged_before = -1};
    fm_buf_init(&p.output, spec->output_max ? spec->output_max : RT_OUTPUT_MAX);
    p.errlog = malloc(RT_ERRLOG_MAX + 1);
    if (p.errlog == NULL) {
        st = RT_ENOMEM;
        fm_err_set(err, "out of memory");
        goto out;
    }
    if (make_pipe(in, 1) || make_pipe(o, 0) || make_pipe(e, 0)) {
        fm_err_set(err, "pipe: %s", strerror(errno));
        goto out;
    }
    rt_cgroup_open(spec->memory_mb, &cg); /* else the child limits its address space */
    long long oom_before = rt_cgroup_oom_kills(&cg);
    long long charged_before = rt_cgroup_peak_reset(&cg);
    int64_t t0 = fm_mono_us();
    struct exec_child child = {.spec = spec, .in = in[0], .out = o[1], .err = e[1],
                               .parent = getpid(), .cg = &cg};
    pid = rt_child_spawn(child_exec, &child);
    int start_errno = child.start_errno;
    if (pid < 0) {
        fm_err_set(err, "vfork: %s", strerror(errno));
        goto out;
    }
    /* A child the system would not take into its group is measured as without one. */
    if (!child.joined)
        charged_before = -1;
    /* Read in any case: should the group's peak not be read after all, ru_maxrss is then
     * taken only above it. */
    int64_t spawn_peak_kb = rt_self_peak_kb();
    p.watch_hwm = charged_before < 0;
    p.cg = &cg;
    p.charged_before = charged_before;
    /* The parent resumes only once the child exec'd or exited, so its process group (the
     * child's first call) exists and start_errno is final. */
    close_fd(&in[0]);
    close_fd(&o[1]);
    close_fd(&e[1]);
    p.in = in[1];
    p.pid = pid;
    p.sampler = spec->sampler;
    p.out = o[0];
    p.err = e[0];
    in[1] = o[0] = e[0] = -1;

    int ended_by_us = 0;
    if (start_errno != 0) {
        snprintf(r.reason, sizeof r.reason, "cannot start %s: %s", spec->argv[0],
                 strerror(start_errno));
    } else {
        p.exited = (int)syscall(SYS_pidfd_open, pid, 0);
        if (p.exited < 0) {
            fm_err_set(err, "pidfd_open: %s", strerror(errno));
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            goto out;
        }
        ended_by_us = pump_until_exit(&p, t0 + spec->timeout_ms * 1000);
    }
    /* Leftover members of the group die with the invocation, whichever way it ended. */
    kill(-pid, SIGKILL);
    int wstatus = 0;
    struct rusage ru = {0};
    while (wait4(pid, &wstatus, 0, &ru) < 0 && errno == EINTR)
        ;
    r.duration_us = fm_mono_us() - t0;
    r.cpu_user_us = tv_us(ru.ru_utime);
    r.cpu_sys_us = tv_us(ru.ru_stime);
    r.max_rss_kb = run_peak_kb(&cg, charged_before, &ru, spawn_peak_kb, p.hwm_kb);
    r.pid = pid;
    if (start_errno != 0) {
        r.status = RT_RUN_ERROR;
        r.exit_code = EXIT_CANNOT_START;
    } else {
        classify(&r, wstatus, ended_by_us);
        /* A failure after the OOM killer ended one of the function's processes is the
         * memory limit's doing, whichever process it was; nothing else is "oom". */
        bool failed = r.status == RT_RUN_ERROR || r.status == RT_RUN_CRASHED;
        if (failed && ended_by_us == 0 && rt_cgroup_oom_kills(&cg) > oom_before &&
            oom_before >= 0)
            r.status = RT_RUN_OOM;
    }
    if (ended_by_us == -1)
        snprintf(r.reason, sizeof r.reason, "response larger than %zu bytes", p.output.limit);
    /* Half a response is no response: an overflowing one is dropped whole. */
    bool keep = !p.output.failed && p.output.data != NULL;
    r.output_len = keep ? p.output.len : 0;
    r.output = keep ? fm_buf_steal(&p.output) : calloc(1, 1);
    r.errlog = p.errlog;
    r.errlog_len = p.errlog_len;
    r.errlog[r.errlog_len] = '\0';
    p.errlog = NULL;
    if (r.output == NULL) {
        rt_exec_result_free(&r);
        st = RT_ENOMEM;
        fm_err_set(err, "out of memory");
        goto out;
    }
    *out = r;
    st = RT_OK;
out:
    {
        int *fds[] = {&in[0], &in[1], &o[0], &o[1], &e[0], &e[1],
                      &p.in, &p.out, &p.err, &p.exited};
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
            close_fd(fds[i]);
    }
    rt_proc_close(&p.proc);
    rt_cgroup_close(&cg);
    fm_buf_free(&p.output);
    free(p.errlog);
    return st;
}

void rt_exec_result_free(struct rt_exec_result *r)
{
    free(r->output);
    free(r->errlog);
    r->output = r->errlog = NULL;
    r->output_len = r->errlog_len = 0;
}
