#include "tests/proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"

const char *proc_bin(const char *name, char *buf, size_t n)
{
    const char *dir = getenv("FAASMETER_BIN");
    ck_assert_msg(dir && *dir, "FAASMETER_BIN is not set (make test sets it)");
    ck_assert((size_t)snprintf(buf, n, "%s/%s", dir, name) < n);
    ck_assert_msg(access(buf, X_OK) == 0, "%s is not built", buf);
    return buf;
}

static int exit_status(int wstatus)
{
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

struct proc_result proc_run(char *const argv[], const char *input, int timeout_s)
{
    int in[2], out[2], err[2];
    ck_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
              pipe2(err, O_CLOEXEC) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    signal(SIGPIPE, SIG_IGN);
    size_t in_len = input ? strlen(input) : 0, in_at = 0;
    if (in_len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    struct fm_buf bo, be;
    fm_buf_init(&bo, 64u << 20);
    fm_buf_init(&be, 64u << 20);
    int64_t deadline = fm_mono_us() + (int64_t)timeout_s * 1000000;
    while (out[0] >= 0 || err[0] >= 0) {
        struct pollfd p[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
        int64_t left = deadline - fm_mono_us();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            ck_abort_msg("%s did not finish within %d s", argv[0], timeout_s);
        }
        if (poll(p, 3, (int)(left / 1000) + 1) < 0 && errno != EINTR)
            ck_abort_msg("poll: %s", strerror(errno));
        int *fds[2] = {&out[0], &err[0]};
        struct fm_buf *bufs[2] = {&bo, &be};
        for (int i = 0; i < 2; i++) {
            if (*fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[65536];
            ssize_t n = read(*fds[i], chunk, sizeof chunk);
            if (n > 0)
                fm_buf_append(bufs[i], chunk, (size_t)n);
            else if (n == 0 || errno != EINTR) {
                close(*fds[i]);
                *fds[i] = -1;
            }
        }
        if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in[1], input + in_at, in_len - in_at);
            if (n > 0)
                in_at += (size_t)n;
            if (n < 0 || in_at == in_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    int wstatus = 0;
    ck_assert(waitpid(pid, &wstatus, 0) == pid);
    struct proc_result r = {exit_status(wstatus), fm_buf_steal(&bo), fm_buf_steal(&be)};
    ck_assert(r.out && r.err);
    return r;
}

pid_t proc_start(char *const argv[], const char *ready, char *line, size_t n, int timeout_s)
{
    int out[2];
    ck_assert(pipe2(out, O_CLOEXEC) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    size_t len = 0;
    int64_t deadline = fm_mono_us() + (int64_t)timeout_s * 1000000;
    for (;;) {
        struct pollfd p = {out[0], POLLIN, 0};
        int64_t left = deadline - fm_mono_us();
        if (left <= 0 || poll(&p, 1, (int)(left / 1000) + 1) <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            ck_abort_msg("%s did not say '%s' within %d s", argv[0], ready, timeout_s);
        }
        ssize_t r = read(out[0], line + len, n - 1 - len);
        if (r <= 0) {
            waitpid(pid, NULL, 0);
            ck_abort_msg("%s ended before saying '%s'", argv[0], ready);
        }
        len += (size_t)r;
        line[len] = '\0';
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            ck_assert_msg(strstr(line, ready), "%s said '%s'", argv[0], line);
            break;
        }
        ck_assert_msg(len < n - 1, "first line too long");
    }
    close(out[0]);
    return pid;
}

int proc_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int wstatus = 0;
    ck_assert(waitpid(pid, &wstatus, 0) == pid);
    return exit_status(wstatus);
}

bool proc_ends(long pid)
{
    for (int i = 0; i < 100; i++) {
        char path[64], stat[256] = "";
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return true;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        const char *state = strrchr(stat, ')');
        if (state && (state[2] == 'Z' || state[2] == 'X'))
            return true;
        usleep(10000);
    }
    return false;
}

void proc_expect_usage(char *const argv[], const char *err)
{
    struct proc_result r = proc_run(argv, NULL, 10);
    ck_assert_int_eq(r.status, 2);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, err);
    free(r.out);
    free(r.err);
}
