/*
 * Runtime benchmarks, each against a baseline measured in the same run; the variants of
 * one comparison alternate in rounds, so that a busy machine or disk weighs on all alike:
 *   0) the disk: one small append plus fdatasync, the least a metered invocation can take
 *      for one caller (its records are synced before it is answered);
 *   a) exec mode with metering vs a bare posix_spawn + wait4 loop of the same binary, and
 *      exec mode without records to tell the runtime's process handling from metering;
 *   b) warm mode vs exec mode for a trivial function, one caller and THREADS callers; the
 *      added latency of a warm invocation: the whole rt_invoke minus the function's
 *      request-to-reply time as the runtime measured it;
 *   c) a warm invocation with its records written and synced vs without, one caller and
 *      THREADS concurrent callers (where the group commit shares the syncs).
 * Prints figures and ratios; never fails on a timing.
 */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "runtime/invoke.h"
#include "runtime/manifest.h"
#include "runtime/pool.h"
#include "runtime/spool.h"
#include "runtime/worker.h"

#define ROUNDS 5
#define EXEC_N 60   /* per round */
#define WARM_N 600  /* per round */
#define SYNC_N 200
#define THREADS 8

extern char **environ;

static char tmp[64];
static struct rt_manifest *man;
static struct rt_spool *spool;
static struct rt_pool *pool;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, size_t n, int p)
{
    qsort(v, n, sizeof *v, cmp_i64);
    return v[n * (size_t)p / 100];
}

/* p50 of a small append plus fdatasync in the spool's folder. */
static int64_t disk_sync_us(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/sync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    static int64_t t[SYNC_N];
    const char rec[] = "{\"id\": \"0123456789abcdef0123456789abcdef:stop\", \"pad\": 0}\n";
    for (int i = 0; i < SYNC_N; i++) {
        int64_t t0 = fm_mono_us();
        if (write(fd, rec, sizeof rec - 1) != (ssize_t)(sizeof rec - 1) || fdatasync(fd) != 0)
            return -1;
        t[i] = fm_mono_us() - t0;
    }
    close(fd);
    unlink(path);
    return pct(t, SYNC_N, 50);
}

/* Bare baseline: spawn, feed nothing, wait. Returns the microseconds n took. */
static int64_t bare_spawn(const char *path, int n)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = {(char *)path, NULL};
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, path, &fa, NULL, argv, environ) != 0)
            return -1;
        int st;
        struct rusage ru;
        wait4(pid, &st, 0, &ru);
    }
    posix_spawn_file_actions_destroy(&fa);
    return fm_mono_us() - t0;
}

/* Exec mode without records: the runtime's process handling alone. */
static int64_t exec_unmetered(const char *path, int n)
{
    char *argv[] = {(char *)path, NULL};
    char *envp[] = {(char *)"PATH=/usr/bin:/bin", NULL};
    /* The manifest's default memory limit, as the metered runs have. */
    struct rt_exec_spec spec = {.argv = argv, .envp = envp, .memory_mb = 128,
                                .timeout_ms = 10000, .input = "x", .input_len = 1};
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < n; i++) {
        struct rt_exec_result r;
        if (rt_exec_run(&spec, &r, NULL) != RT_OK || r.status != RT_RUN_OK)
            return -1;
        rt_exec_result_free(&r);
    }
    return fm_mono_us() - t0;
}

/*
 * n metered invocations; the microseconds they took. With total and added (n entries
 * each), every invocation's whole time and the part of it outside the function's own
 * request-to-reply time.
 */
static int64_t metered(const char *name, int n, int64_t *total, int64_t *added)
{
    const struct rt_function *fn = rt_manifest_find(man, "bench", name);
    struct rt_invoke_opts opts = {.trigger = "cli", .pool = pool};
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < n; i++) {
        int64_t t = fm_mono_us();
        struct rt_invoke_result r;
        struct fm_err err = {""};
        if (rt_invoke(fn, spool, &opts, "x", 1, &r, &err) != RT_OK) {
            fprintf(stderr, "bench runtime: %s: %s\n", name, err.msg);
            return -1;
        }
        if (r.run.status != RT_RUN_OK) {
            fprintf(stderr, "bench runtime: %s: %s, exit %d: %s\n", name,
                    rt_run_status_name(r.run.status), r.run.exit_code, r.run.reason);
            rt_exec_result_free(&r.run);
            return -1;
        }
        int64_t whole = fm_mono_us() - t;
        if (total)
            total[i] = whole;
        if (added)
            added[i] = whole - r.run.duration_us;
        rt_exec_result_free(&r.run);
    }
    return fm_mono_us() - t0;
}

/* The same warm invocation without records: pool and worker only. */
static int64_t unmetered_warm(int n, int64_t *added)
{
    const struct rt_function *fn = rt_manifest_find(man, "bench", "hello-warm");
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < n; i++) {
        int64_t t = fm_mono_us();
        struct rt_worker *w = rt_pool_take(pool, fn);
        if (w == NULL) {
            fprintf(stderr, "bench runtime: no idle warm worker to take\n");
            return -1;
        }
        struct rt_exec_result r;
        if (rt_worker_invoke(w, "bench", fn->timeout_ms, "x", 1, NULL, &r, NULL) != RT_OK)
            return -1;
        rt_pool_give(pool, fn, w);
        if (added)
            added[i] = fm_mono_us() - t - r.duration_us;
        rt_exec_result_free(&r);
    }
    return fm_mono_us() - t0;
}

enum variant { V_BARE, V_EXEC_PLAIN, V_EXEC, V_WARM_PLAIN, V_WARM };

struct par {
    enum variant v;
    int n;
    const char *path;
    int64_t us;
};

static int64_t run_variant(enum variant v, const char *path, int n)
{
    switch (v) {
    case V_BARE:
        return bare_spawn(path, n);
    case V_EXEC_PLAIN:
        return exec_unmetered(path, n);
    case V_EXEC:
        return metered("hello", n, NULL, NULL);
    case V_WARM_PLAIN:
        return unmetered_warm(n, NULL);
    case V_WARM:
        return metered("hello-warm", n, NULL, NULL);
    }
    return -1;
}

static void *par_run(void *arg)
{
    struct par *p = arg;
    p->us = run_variant(p->v, p->path, p->n);
    return NULL;
}

/* Invocations per second of THREADS callers at once, n each; -1 when one failed. */
static double parallel_rate(enum variant v, const char *path, int n)
{
    pthread_t t[THREADS];
    struct par p[THREADS];
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct par){.v = v, .n = n, .path = path};
        pthread_create(&t[i], NULL, par_run, &p[i]);
    }
    bool failed = false;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failed |= p[i].us < 0;
    }
    return failed ? -1 : (double)n * THREADS * 1e6 / (double)(fm_mono_us() - t0);
}

/* Per-invocation microseconds of each variant, one caller, alternating in rounds. */
static void alternate(const enum variant *v, double *us, int nv, const char *path, int n)
{
    int64_t sum[8] = {0};
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < nv; i++) {
            int64_t t = run_variant(v[i], path, n);
            sum[i] = sum[i] < 0 || t < 0 ? -1 : sum[i] + t;
        }
    for (int i = 0; i < nv; i++)
        us[i] = sum[i] < 0 ? -1 : (double)sum[i] / (ROUNDS * n);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *bindir = getenv("FAASMETER_BIN");
    if (bindir == NULL || *bindir == '\0') {
        fprintf(stderr, "bench runtime: set FAASMETER_BIN to the folder of the binaries\n");
        return 1;
    }
    char hello[PATH_MAX], warm[PATH_MAX], text[3 * PATH_MAX], dir[128];
    snprintf(hello, sizeof hello, "%s/fn/hello", bindir);
    snprintf(warm, sizeof warm, "%s/fn/hello-warm", bindir);
    snprintf(tmp, sizeof tmp, "/tmp/faasmeter-bench-XXXXXX");
    if (mkdtemp(tmp) == NULL)
        return 1;
    snprintf(dir, sizeof dir, "%s/spool", tmp);
    snprintf(text, sizeof text,
             "{\"functions\": [{\"tenant\": \"bench\", \"name\": \"hello\", \"command\": [\"%s\"],"
             " \"concurrency\": %d},"
             "{\"tenant\": \"bench\", \"name\": \"hello-warm\", \"command\": [\"%s\"],"
             " \"mode\": \"warm\", \"concurrency\": %d}]}",
             hello, THREADS, warm, THREADS);
    struct fm_err err = {""};
    int rc = 1;
    int64_t *total = NULL, *added = NULL;
    if (rt_manifest_parse(text, "bench", "/", &man, &err) != RT_OK ||
        rt_spool_open(dir, 0, &spool, &err) != RT_OK || rt_pool_new(man, &pool, &err) != RT_OK) {
        fprintf(stderr, "bench runtime: %s\n", err.msg);
        goto out;
    }
    printf("spool in %s; every answered invocation waits for a group fdatasync\n", tmp);
    printf("0) disk: append + fdatasync, p50:      %8lld us (one caller's floor)\n",
           (long long)disk_sync_us(dir));

    const enum variant ev[] = {V_BARE, V_EXEC_PLAIN, V_EXEC};
    double e[3];
    alternate(ev, e, 3, hello, EXEC_N);
    printf("a) bare posix_spawn + wait4:          %8.1f us/invocation\n", e[0]);
    printf("   exec mode, no records:             %8.1f us/invocation (%.2fx bare)\n", e[1],
           e[1] / e[0]);
    printf("   exec mode, metered:                %8.1f us/invocation\n", e[2]);
    printf("   ratio metered/bare, 1 caller:      %8.2fx (target <= 1.15x)\n", e[2] / e[0]);
    double pe_bare = parallel_rate(V_BARE, hello, EXEC_N / 2);
    double pe = parallel_rate(V_EXEC, hello, EXEC_N / 2);
    printf("   %d callers: bare %.0f/s, metered %.0f/s: ratio %.2fx (target <= 1.15x)\n",
           THREADS, pe_bare, pe, pe_bare / pe);

    metered("hello-warm", 10, NULL, NULL); /* the cold start is not what is measured */
    const enum variant wv[] = {V_WARM_PLAIN, V_WARM};
    double w[2];
    alternate(wv, w, 2, NULL, WARM_N);
    printf("b) warm mode, metered:                %8.1f us/invocation, %8.0f/s\n", w[1],
           1e6 / w[1]);
    printf("   exec mode, metered:                %8.1f us/invocation, %8.0f/s\n", e[2],
           1e6 / e[2]);
    printf("   ratio warm/exec rate, 1 caller:    %8.1fx (target >= 20x)\n", e[2] / w[1]);
    double pw = parallel_rate(V_WARM, NULL, WARM_N / 2);
    double pw_plain = parallel_rate(V_WARM_PLAIN, NULL, WARM_N / 2);
    printf("   %d callers: warm %.0f/s, exec %.0f/s: ratio %.1fx (target >= 20x)\n", THREADS,
           pw, pe, pw / pe);
    total = calloc(WARM_N, sizeof *total);
    added = calloc(WARM_N, sizeof *added);
    if (total == NULL || added == NULL || metered("hello-warm", WARM_N, total, added) < 0)
        goto out;
    printf("   warm, metered: whole invocation p50 %lld us, p99 %lld us\n",
           (long long)pct(total, WARM_N, 50), (long long)pct(total, WARM_N, 99));
    printf("   added latency (whole - function's request to reply): p50 %lld us, p99 %lld us"
           " (target p99 < 200 us)\n",
           (long long)pct(added, WARM_N, 50), (long long)pct(added, WARM_N, 99));
    if (unmetered_warm(WARM_N, added) < 0)
        goto out;
    printf("   the same without records: p50 %lld us, p99 %lld us\n",
           (long long)pct(added, WARM_N, 50), (long long)pct(added, WARM_N, 99));

    printf("c) warm, no records:                  %8.1f us/invocation\n", w[0]);
    printf("   warm, records synced:              %8.1f us/invocation\n", w[1]);
    printf("   metering overhead, 1 caller:       %7.1f%% (target <= 5%%)\n",
           (w[1] / w[0] - 1) * 100);
    printf("   %d callers: %.0f/s without records, %.0f/s with: overhead %.1f%% "
           "(target <= 5%%)\n",
           THREADS, pw_plain, pw, (pw_plain / pw - 1) * 100);
    rc = 0;
out:
    free(total);
    free(added);
    rt_pool_free(pool);
    rt_spool_close(spool);
    rt_manifest_free(man);
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
