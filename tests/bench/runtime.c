/*
 * Runtime benchmarks, each against a baseline measured in the same run:
 *   a) exec mode with metering vs a bare posix_spawn + wait4 loop of the same binary;
 *   b) warm mode vs exec mode for a trivial function, and the p99 of a whole warm
 *      invocation (an upper bound of what the runtime adds around the function);
 *   c) a warm invocation with its records written (fsync'd) vs without, one caller and
 *      eight concurrent callers (where the group commit shares the syncs).
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

#define EXEC_N 300
#define WARM_N 3000
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

/* Bare baseline: spawn, feed nothing, wait. */
static double bare_spawn_us(const char *path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = {(char *)path, NULL};
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < EXEC_N; i++) {
        pid_t pid;
        if (posix_spawn(&pid, path, &fa, NULL, argv, environ) != 0)
            return -1;
        int st;
        struct rusage ru;
        wait4(pid, &st, 0, &ru);
    }
    posix_spawn_file_actions_destroy(&fa);
    return (double)(fm_mono_us() - t0) / EXEC_N;
}

static double invoke_loop_us(const char *name, int n, int64_t *lat)
{
    const struct rt_function *fn = rt_manifest_find(man, "bench", name);
    struct rt_invoke_opts opts = {.trigger = "cli", .pool = pool};
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < n; i++) {
        int64_t t = fm_mono_us();
        struct rt_invoke_result r;
        if (rt_invoke(fn, spool, &opts, "x", 1, &r, NULL) != RT_OK || r.run.status != RT_RUN_OK)
            return -1;
        rt_exec_result_free(&r.run);
        if (lat)
            lat[i] = fm_mono_us() - t;
    }
    return (double)(fm_mono_us() - t0) / n;
}

/* The same warm invocation without records: pool and worker only. */
static double unmetered_loop_us(int n)
{
    const struct rt_function *fn = rt_manifest_find(man, "bench", "hello-warm");
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < n; i++) {
        struct rt_worker *w = rt_pool_take(pool, fn);
        if (w == NULL)
            return -1;
        struct rt_exec_result r;
        if (rt_worker_invoke(w, "bench", fn->timeout_ms, "x", 1, NULL, &r, NULL) != RT_OK)
            return -1;
        rt_exec_result_free(&r);
        rt_pool_give(pool, fn, w);
    }
    return (double)(fm_mono_us() - t0) / n;
}

struct par {
    bool metered;
    double us;
};

static void *par_run(void *arg)
{
    struct par *p = arg;
    p->us = p->metered ? invoke_loop_us("hello-warm", WARM_N / THREADS, NULL)
                       : unmetered_loop_us(WARM_N / THREADS);
    return NULL;
}

/* Invocations per second of THREADS callers at once. */
static double parallel_rate(bool metered)
{
    pthread_t t[THREADS];
    struct par p[THREADS];
    int64_t t0 = fm_mono_us();
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct par){.metered = metered};
        pthread_create(&t[i], NULL, par_run, &p[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return (double)(WARM_N / THREADS * THREADS) * 1e6 / (double)(fm_mono_us() - t0);
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
             "{\"functions\": [{\"tenant\": \"bench\", \"name\": \"hello\", \"command\": [\"%s\"]},"
             "{\"tenant\": \"bench\", \"name\": \"hello-warm\", \"command\": [\"%s\"],"
             " \"mode\": \"warm\", \"concurrency\": %d}]}",
             hello, warm, THREADS);
    struct fm_err err = {""};
    int rc = 1;
    if (rt_manifest_parse(text, "bench", "/", &man, &err) != RT_OK ||
        rt_spool_open(dir, 0, &spool, &err) != RT_OK || rt_pool_new(man, &pool, &err) != RT_OK) {
        fprintf(stderr, "bench runtime: %s\n", err.msg);
        goto out;
    }
    printf("spool in %s (fsync on every answered invocation)\n", tmp);

    double bare = bare_spawn_us(hello);
    double exec = invoke_loop_us("hello", EXEC_N, NULL);
    printf("a) exec mode, metered:        %8.1f us/invocation\n", exec);
    printf("   bare posix_spawn + wait4:   %8.1f us/invocation\n", bare);
    printf("   ratio metered/bare:         %8.2fx (target <= 1.15x)\n", exec / bare);

    int64_t *lat = calloc(WARM_N, sizeof *lat);
    invoke_loop_us("hello-warm", 10, NULL); /* the cold start is not what is measured */
    double warm_us = invoke_loop_us("hello-warm", WARM_N, lat);
    qsort(lat, WARM_N, sizeof *lat, cmp_i64);
    printf("b) warm mode, metered:        %8.1f us/invocation, %8.0f/s\n", warm_us,
           1e6 / warm_us);
    printf("   exec mode, metered:         %8.1f us/invocation, %8.0f/s\n", exec, 1e6 / exec);
    printf("   ratio warm/exec rate:       %8.1fx (target >= 20x)\n", exec / warm_us);
    printf("   warm p50 %lld us, p99 %lld us for a whole invocation incl. records\n",
           (long long)lat[WARM_N / 2], (long long)lat[WARM_N * 99 / 100]);
    free(lat);

    double bare_warm = unmetered_loop_us(WARM_N);
    printf("c) warm, no records:          %8.1f us/invocation\n", bare_warm);
    printf("   warm, records fsync'd:      %8.1f us/invocation\n", warm_us);
    printf("   metering overhead, 1 caller: %7.1f%% (target <= 5%%)\n",
           (warm_us / bare_warm - 1) * 100);
    double r_plain = parallel_rate(false), r_metered = parallel_rate(true);
    printf("   %d callers: %.0f/s without records, %.0f/s with (group commit): overhead %.1f%%\n",
           THREADS, r_plain, r_metered, (r_plain / r_metered - 1) * 100);
    rc = 0;
out:
    rt_pool_free(pool);
    rt_spool_close(spool);
    rt_manifest_free(man);
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
