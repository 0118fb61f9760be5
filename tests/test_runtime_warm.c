/*
 * Warm workers, the pool, pipelines and the spool's group commit and cap, with real
 * processes (the sample functions of $FAASMETER_BIN).
 */
#include <check.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "runtime/cgroup.h"
#include "runtime/invoke.h"
#include "runtime/manifest.h"
#include "runtime/pipeline.h"
#include "runtime/pool.h"
#include "runtime/spool.h"
#include "tests/suites.h"

static char tmp[64];
static struct rt_manifest *man;
static struct rt_pool *pool;
static struct rt_spool *spool;

static const char *bin(const char *rel)
{
    static char paths[8][PATH_MAX];
    static int next;
    const char *dir = getenv("FAASMETER_BIN");
    ck_assert_msg(dir && *dir, "FAASMETER_BIN must name the folder of the test binaries");
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", dir, rel);
    ck_assert_msg(access(p, X_OK) == 0, "missing %s: build it first", p);
    return p;
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmp, sizeof tmp, "/tmp/faasmeter-warm-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    char text[4096], dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/spool", tmp);
    snprintf(text, sizeof text,
             "{\"functions\": ["
             "{\"tenant\": \"acme\", \"name\": \"probe\", \"command\": [\"%s\"], \"mode\": \"warm\","
             " \"timeout_ms\": 400, \"memory_mb\": 64, \"concurrency\": 2,"
             " \"keep_alive_ms\": 150},"
             "{\"tenant\": \"acme\", \"name\": \"hello\", \"command\": [\"%s\", \"--init-ms\","
             " \"60\"], \"mode\": \"warm\", \"concurrency\": 8},"
             "{\"tenant\": \"acme\", \"name\": \"fail\", \"command\": [\"%s\"]},"
             "{\"tenant\": \"acme\", \"name\": \"noisy\", \"command\": [\"/bin/sh\", \"-c\","
             " \"printf partial; exit 3\"]},"
             "{\"tenant\": \"acme\", \"name\": \"upper\", \"command\": [\"/usr/bin/tr\", \"a-z\","
             " \"A-Z\"]}],"
             " \"pipelines\": [{\"tenant\": \"acme\", \"name\": \"greet\","
             " \"steps\": [\"hello\", \"upper\"]},"
             " {\"tenant\": \"acme\", \"name\": \"broken\", \"steps\": [\"hello\", \"fail\","
             " \"upper\"]}]}",
             bin("fn/probe-warm"), bin("fn/hello-warm"), bin("fn/fail"));
    struct fm_err err = {""};
    ck_assert_msg(rt_manifest_parse(text, "m", "/", &man, &err) == RT_OK, "%s", err.msg);
    ck_assert_int_eq(rt_pool_new(man, &pool, NULL), RT_OK);
    ck_assert_int_eq(rt_spool_open(dir, 0, &spool, NULL), RT_OK);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    rt_pool_free(pool);
    rt_spool_close(spool);
    rt_manifest_free(man);
    pool = NULL;
    spool = NULL;
    man = NULL;
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const struct rt_function *fn(const char *name)
{
    const struct rt_function *f = rt_manifest_find(man, "acme", name);
    ck_assert_ptr_nonnull(f);
    return f;
}

static struct rt_invoke_result call(const char *name, const char *input)
{
    struct rt_invoke_opts opts = {.trigger = "http", .pool = pool, .sample_every_ms = 100};
    struct rt_invoke_result r;
    struct fm_err err = {""};
    ck_assert_msg(rt_invoke(fn(name), spool, &opts, input, strlen(input), &r, &err) == RT_OK,
                  "%s", err.msg);
    return r;
}

/* Every record in the spool, as a JSON array. */
static cJSON *records(void)
{
    cJSON *all = cJSON_CreateArray();
    for (int seq = 1; seq < 100; seq++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/spool/seg-%016d.ndjson", tmp, seq);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char line[8192];
        while (fgets(line, sizeof line, f)) {
            cJSON *rec = cJSON_Parse(line);
            ck_assert_msg(rec != NULL, "not JSON in the spool: %s", line);
            cJSON_AddItemToArray(all, rec);
        }
        fclose(f);
    }
    return all;
}

/* The record with this id; fails the test when there is none. */
static const cJSON *record(const cJSON *all, const char *invocation_id, const char *tail)
{
    char id[128];
    snprintf(id, sizeof id, "%s:%s", invocation_id, tail);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, all)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "id");
        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
            return rec;
    }
    ck_abort_msg("no record %s", id);
    return NULL;
}

static double num(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

static bool flag(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    ck_assert_msg(cJSON_IsBool(v), "%s is not a boolean", key);
    return cJSON_IsTrue(v);
}

static const char *str(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", key);
    return v->valuestring;
}

static bool process_gone(long pid)
{
    for (int i = 0; i < 100; i++) {
        if (kill((pid_t)pid, 0) != 0)
            return true;
        usleep(10000);
    }
    return false;
}

START_TEST(warm_worker_is_reused)
{
    struct rt_invoke_result a = call("probe", "pid"), b = call("probe", "pid");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "ok");
    ck_assert_str_eq(rt_run_status_name(b.run.status), "ok");
    ck_assert(a.cold_start);
    ck_assert(!b.cold_start);
    ck_assert_str_eq(a.run.output, b.run.output);
    ck_assert_int_eq(strtol(a.run.output, NULL, 10), b.run.pid);
    struct rt_invoke_result c = call("probe", "count");
    ck_assert_str_eq(c.run.output, "3\n");
    cJSON *all = records();
    ck_assert_int_eq(cJSON_GetArraySize(all), 6);
    ck_assert(flag(record(all, a.invocation_id, "start"), "cold_start"));
    ck_assert(flag(record(all, a.invocation_id, "stop"), "cold_start"));
    ck_assert(num(record(all, a.invocation_id, "stop"), "init_us") > 0);
    ck_assert(!flag(record(all, b.invocation_id, "start"), "cold_start"));
    ck_assert(!flag(record(all, b.invocation_id, "stop"), "cold_start"));
    ck_assert(num(record(all, b.invocation_id, "stop"), "init_us") == 0);
    ck_assert_uint_eq(rt_pool_idle(pool, fn("probe")), 1);
    cJSON_Delete(all);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
    rt_exec_result_free(&c.run);
}
END_TEST

START_TEST(cold_start_counts_the_functions_init)
{
    struct rt_invoke_result a = call("hello", "warm"), b = call("hello", "again");
    ck_assert_str_eq(a.run.output, "Hello, warm!\n");
    ck_assert_str_eq(b.run.output, "Hello, again!\n");
    ck_assert_int_ge(a.run.init_us, 60000); /* the function's --init-ms 60 */
    ck_assert_int_lt(a.run.duration_us, 60000); /* and not in the invocation's duration */
    ck_assert_int_eq(b.run.init_us, 0);
    cJSON *all = records();
    ck_assert(num(record(all, a.invocation_id, "stop"), "init_us") == (double)a.run.init_us);
    cJSON_Delete(all);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

START_TEST(crashed_worker_is_replaced)
{
    struct rt_invoke_result a = call("probe", "pid"), b = call("probe", "crash");
    ck_assert_str_eq(rt_run_status_name(b.run.status), "crashed");
    ck_assert_int_eq(b.run.exit_code, 128 + SIGSEGV);
    ck_assert(!b.cold_start);
    ck_assert_uint_eq(rt_pool_idle(pool, fn("probe")), 0);
    struct rt_invoke_result c = call("probe", "pid");
    ck_assert(c.cold_start);
    ck_assert_str_ne(a.run.output, c.run.output);
    struct rt_invoke_result d = call("probe", "fail");
    ck_assert_str_eq(rt_run_status_name(d.run.status), "error");
    ck_assert_int_eq(d.run.exit_code, 3);
    ck_assert_str_eq(d.run.errlog, "probe: failing on purpose\n");
    /* A function that fails cleanly keeps its worker. */
    ck_assert_uint_eq(rt_pool_idle(pool, fn("probe")), 1);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
    rt_exec_result_free(&c.run);
    rt_exec_result_free(&d.run);
}
END_TEST

START_TEST(log_and_framing_are_per_invocation)
{
    struct rt_invoke_result a = call("probe", "print to the log"), b = call("probe", "pid");
    ck_assert_str_eq(a.run.output, "printed\n");
    ck_assert_str_eq(a.run.errlog, "to the log\n"); /* not left for the next invocation */
    ck_assert_str_eq(b.run.errlog, "");
    /* A request bigger than what the worker reads ahead, then a small one on its heels. */
    size_t n = 200000;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    memcpy(big, "pid", 3);
    big[n] = '\0';
    struct rt_invoke_result c = call("probe", big), d = call("probe", "count");
    ck_assert_str_eq(c.run.output, b.run.output);
    ck_assert_str_eq(d.run.output, "4\n");
    ck_assert(!d.cold_start);
    free(big);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
    rt_exec_result_free(&c.run);
    rt_exec_result_free(&d.run);
}
END_TEST

START_TEST(warm_timeout_kills_the_worker)
{
    struct rt_invoke_result a = call("probe", "pid");
    int64_t t0 = fm_mono_us();
    struct rt_invoke_result b = call("probe", "sleep 5000");
    ck_assert_int_lt(fm_mono_us() - t0, 2000000);
    ck_assert_str_eq(rt_run_status_name(b.run.status), "timeout");
    ck_assert_int_eq(b.run.exit_code, 137);
    ck_assert_int_ge(b.run.duration_us, 400000);
    ck_assert(process_gone(strtol(a.run.output, NULL, 10)));
    struct rt_invoke_result c = call("probe", "pid");
    ck_assert(c.cold_start);
    ck_assert_str_eq(rt_run_status_name(c.run.status), "ok");
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
    rt_exec_result_free(&c.run);
}
END_TEST

/* Whether process pid is in a memory cgroup of faasrun's. */
static bool in_memory_group(long pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%ld/cgroup", pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    bool found = false;
    while (fgets(line, sizeof line, f))
        found = found || strstr(line, "/faasrun-") != NULL;
    fclose(f);
    return found;
}

START_TEST(warm_memory_limit_is_oom)
{
    struct rt_invoke_result p = call("probe", "pid");
    bool grouped = in_memory_group(strtol(p.run.output, NULL, 10));
    struct rt_invoke_result a = call("probe", "hog 256");
    /* In a memory group the kernel's OOM killer ends the worker (SIGKILL, 137). Under the
     * address-space limit the allocation fails and the handler's own 137 is an error code. */
    ck_assert_str_eq(rt_run_status_name(a.run.status), grouped ? "oom" : "error");
    ck_assert_int_eq(a.run.exit_code, 137);
    rt_exec_result_free(&p.run);
    rt_exec_result_free(&a.run);
}
END_TEST

/* A reply with code 137 is an error like any other code, and a worker that dies of a
 * SIGKILL the OOM killer did not send crashed. */
START_TEST(warm_137_and_sigkill_are_not_oom)
{
    struct rt_invoke_result a = call("probe", "code 137");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "error");
    ck_assert_int_eq(a.run.exit_code, 137);
    struct rt_invoke_result b = call("probe", "kill");
    ck_assert_str_eq(rt_run_status_name(b.run.status), "crashed");
    ck_assert_int_eq(b.run.exit_code, 137);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

/*
 * A warm invocation that fails reports the worker's peak, not the runtime's: wait4's
 * ru_maxrss of a worker is never below the runtime's own peak when it was spawned (see
 * rt_child_own_peak_kb). The runtime (this test) first touches 96 MB and keeps them.
 */
START_TEST(failed_warm_invocation_reports_the_workers_peak)
{
    size_t n = (size_t)96 << 20;
    char *ballast = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(ballast, MAP_FAILED);
    memset(ballast, 1, n);
    ck_assert_int_ge(rt_self_peak_kb(), 96 * 1024);
    /* Killed by the deadline: its VmHWM, read before the kill. */
    struct rt_invoke_result a = call("probe", "sleep 5000");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "timeout");
    ck_assert_int_gt(a.run.max_rss_kb, 0);
    ck_assert_int_lt(a.run.max_rss_kb, 8 * 1024);
    /* Dead before it replied: nothing of the runtime's. */
    struct rt_invoke_result b = call("probe", "kill");
    ck_assert_str_eq(rt_run_status_name(b.run.status), "crashed");
    ck_assert_int_lt(b.run.max_rss_kb, 8 * 1024);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
    munmap(ballast, n);
}
END_TEST

/* A warm worker that runs a program for a request is billed that program's CPU and, in a
 * memory group, its memory, as exec mode bills a function's children. */
START_TEST(programs_a_warm_worker_runs_are_metered)
{
    struct rt_invoke_result a = call("probe", "child 150 48");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "ok");
    ck_assert_int_ge(a.run.cpu_user_us + a.run.cpu_sys_us, 120000);
    struct rt_cgroup cg;
    if (rt_cgroup_open(fn("probe")->memory_mb, &cg) == 0 && rt_cgroup_active(&cg))
        ck_assert_int_ge(a.run.max_rss_kb, 48 * 1024);
    else
        fprintf(stderr, "programs_a_warm_worker_runs_are_metered: no memory cgroup here\n");
    rt_cgroup_close(&cg);
    /* The next invocation starts from zero. */
    struct rt_invoke_result b = call("probe", "pid");
    ck_assert(!b.cold_start);
    ck_assert_int_lt(b.run.cpu_user_us + b.run.cpu_sys_us, 50000);
    ck_assert_int_lt(b.run.max_rss_kb, 48 * 1024);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

/* A worker that answers twice, or before it has read its request, is stopped after its
 * first answer: what is left in the pipes never reaches the next caller. */
START_TEST(a_worker_that_answers_twice_is_stopped)
{
    struct rt_invoke_result a = call("probe", "twice");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "ok");
    ck_assert_str_eq(a.run.output, "A");
    ck_assert_ptr_nonnull(strstr(a.run.errlog, "replied more than once"));
    /* A new worker answers the next caller, not the old one's leftover "B". */
    struct rt_invoke_result b = call("probe", "count");
    ck_assert_str_eq(b.run.output, "1\n");
    ck_assert(b.cold_start);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

START_TEST(idle_workers_are_reaped)
{
    struct rt_invoke_result a = call("probe", "pid");
    long pid = strtol(a.run.output, NULL, 10);
    ck_assert_uint_eq(rt_pool_reap(pool, fm_mono_us()), 0);
    ck_assert_int_eq(kill((pid_t)pid, 0), 0);
    usleep(200000); /* past keep_alive_ms 150 */
    ck_assert_uint_eq(rt_pool_reap(pool, fm_mono_us()), 1);
    ck_assert(process_gone(pid));
    ck_assert_uint_eq(rt_pool_idle(pool, fn("probe")), 0);
    struct rt_invoke_result b = call("probe", "pid");
    ck_assert(b.cold_start);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

START_TEST(usage_is_per_invocation)
{
    struct rt_invoke_result a = call("probe", "hog 40"), b = call("probe", "burn 150"),
                            c = call("probe", "pid");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "ok");
    ck_assert_int_ge(a.run.max_rss_kb, 40 * 1024);
    ck_assert_int_ge(b.run.cpu_user_us + b.run.cpu_sys_us, 120000);
    ck_assert_int_lt(b.run.max_rss_kb, 40 * 1024); /* the peak was reset */
    ck_assert_int_lt(c.run.cpu_user_us + c.run.cpu_sys_us, 50000); /* not cumulative */
    ck_assert(!c.cold_start);
    /* burn ran over its 100 ms sampling interval: resource records with their own ids. */
    cJSON *all = records();
    const cJSON *res = record(all, b.invocation_id, "res:0");
    ck_assert_str_eq(str(res, "type"), "resource");
    ck_assert_str_eq(str(res, "invocation_id"), b.invocation_id);
    ck_assert(num(res, "cpu_user_us") + num(res, "cpu_sys_us") > 0);
    ck_assert(num(res, "max_rss_kb") > 0);
    cJSON_Delete(all);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
    rt_exec_result_free(&c.run);
}
END_TEST

START_TEST(concurrency_limit_is_ebusy)
{
    ck_assert_int_eq(rt_pool_enter(pool, fn("probe")), RT_OK);
    ck_assert_int_eq(rt_pool_enter(pool, fn("probe")), RT_OK);
    struct rt_invoke_opts opts = {.trigger = "http", .pool = pool};
    struct rt_invoke_result r;
    struct fm_err err = {""};
    ck_assert_int_eq(rt_invoke(fn("probe"), spool, &opts, "pid", 3, &r, &err), RT_EBUSY);
    ck_assert_str_eq(err.msg, "acme/probe runs 2 invocations already, its concurrency limit");
    rt_pool_leave(pool, fn("probe"));
    rt_pool_leave(pool, fn("probe"));
    cJSON *all = records();
    ck_assert_int_eq(cJSON_GetArraySize(all), 0); /* refused before anything ran */
    cJSON_Delete(all);
}
END_TEST

START_TEST(full_spool_refuses_to_run)
{
    struct rt_invoke_result a = call("hello", "one");
    rt_exec_result_free(&a.run);
    rt_spool_set_cap(spool, 100); /* two records are more than that */
    struct rt_invoke_opts opts = {.trigger = "http", .pool = pool};
    struct rt_invoke_result r;
    struct fm_err err = {""};
    ck_assert_int_eq(rt_invoke(fn("hello"), spool, &opts, "x", 1, &r, &err), RT_EFULL);
    cJSON *all = records();
    ck_assert_int_eq(cJSON_GetArraySize(all), 2);
    cJSON_Delete(all);
    rt_spool_set_cap(spool, 1 << 20);
    a = call("hello", "two");
    rt_exec_result_free(&a.run);
}
END_TEST

#define THREADS 8
#define PER_THREAD 12

struct batch {
    char ids[PER_THREAD][RT_INVOCATION_ID_LEN + 1];
    int ok;
};

static void *invoke_many(void *arg)
{
    struct batch *b = arg;
    struct rt_invoke_opts opts = {.trigger = "http", .pool = pool};
    for (int i = 0; i < PER_THREAD; i++) {
        struct rt_invoke_result r;
        if (rt_invoke(rt_manifest_find(man, "acme", "hello"), spool, &opts, "x", 1, &r, NULL) !=
            RT_OK)
            continue;
        memcpy(b->ids[i], r.invocation_id, sizeof r.invocation_id);
        b->ok += r.run.status == RT_RUN_OK;
        rt_exec_result_free(&r.run);
    }
    return NULL;
}

START_TEST(group_commit_keeps_every_record)
{
    pthread_t t[THREADS];
    struct batch b[THREADS];
    memset(b, 0, sizeof b);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, invoke_many, &b[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    cJSON *all = records();
    ck_assert_int_eq(cJSON_GetArraySize(all), 2 * THREADS * PER_THREAD);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(b[i].ok, PER_THREAD);
        for (int j = 0; j < PER_THREAD; j++) {
            ck_assert_str_eq(str(record(all, b[i].ids[j], "stop"), "status"), "ok");
            ck_assert_str_eq(str(record(all, b[i].ids[j], "start"), "trigger"), "http");
        }
    }
    cJSON_Delete(all);
}
END_TEST

START_TEST(pipeline_ties_steps_and_stops_on_failure)
{
    struct rt_invoke_opts opts = {.trigger = "http", .pool = pool};
    struct rt_pipeline_result pr;
    const struct rt_pipeline *greet = rt_manifest_find_pipeline(man, "acme", "greet");
    ck_assert_int_eq(rt_pipeline_run(greet, spool, &opts, "bob", 3, &pr, NULL), RT_OK);
    ck_assert_int_eq(pr.failed_step, -1);
    ck_assert_uint_eq(pr.steps_run, 2);
    ck_assert_str_eq(pr.last.run.output, "HELLO, BOB!\n");
    rt_exec_result_free(&pr.last.run);
    cJSON *all = records();
    ck_assert_int_eq(cJSON_GetArraySize(all), 4);
    const cJSON *rec;
    int first = 0;
    cJSON_ArrayForEach(rec, all)
    {
        ck_assert_str_eq(str(rec, "correlation_id"), pr.run_id);
        if (strcmp(str(rec, "type"), "start") == 0)
            first += strcmp(str(rec, "trigger"), "http") == 0;
    }
    ck_assert_int_eq(first, 1);
    cJSON_Delete(all);

    const struct rt_pipeline *broken = rt_manifest_find_pipeline(man, "acme", "broken");
    ck_assert_int_eq(rt_pipeline_run(broken, spool, &opts, "bob", 3, &pr, NULL), RT_OK);
    ck_assert_int_eq(pr.failed_step, 1);
    ck_assert_uint_eq(pr.steps_run, 2);
    ck_assert_str_eq(rt_run_status_name(pr.last.run.status), "error");
    rt_exec_result_free(&pr.last.run);
    all = records();
    ck_assert_int_eq(cJSON_GetArraySize(all), 8); /* "upper" never ran */
    cJSON_Delete(all);
}
END_TEST

START_TEST(dead_idle_worker_is_not_used)
{
    struct rt_invoke_result a = call("probe", "pid");
    pid_t pid = (pid_t)strtol(a.run.output, NULL, 10);
    ck_assert_int_eq(kill(pid, SIGKILL), 0); /* the OOM killer, say, while it idles */
    usleep(100000);
    struct rt_invoke_result b = call("probe", "pid");
    ck_assert_str_eq(rt_run_status_name(b.run.status), "ok");
    ck_assert(b.cold_start);
    ck_assert_str_ne(a.run.output, b.run.output);
    /* The reaper takes dead workers out too, before their keep-alive is over. */
    pid = (pid_t)strtol(b.run.output, NULL, 10);
    ck_assert_uint_eq(rt_pool_idle(pool, fn("probe")), 1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    usleep(50000);
    ck_assert_uint_eq(rt_pool_reap(pool, fm_mono_us()), 1);
    ck_assert_uint_eq(rt_pool_idle(pool, fn("probe")), 0);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

START_TEST(failed_output_is_not_billed_as_sent)
{
    struct rt_invoke_result a = call("noisy", ""), b = call("hello", "x");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "error");
    ck_assert_str_eq(rt_run_status_name(b.run.status), "ok");
    cJSON *all = records();
    ck_assert(num(record(all, a.invocation_id, "stop"), "bytes_out") == 0);
    ck_assert(num(record(all, b.invocation_id, "stop"), "bytes_out") == 10); /* Hello, x!\n */
    cJSON_Delete(all);
    rt_exec_result_free(&a.run);
    rt_exec_result_free(&b.run);
}
END_TEST

/* A worker's memory group kept on a low descriptor (4, the reply pipe's number in the
 * worker) is joined before the worker's pipes take their places: its cold start replies
 * as the protocol says. Without memory cgroups there is nothing to join. */
START_TEST(memory_group_on_a_low_descriptor)
{
    /* Make 4 the lowest free descriptor: fill the free ones below it, move 4 away. */
    int held[4], nheld = 0, fd;
    while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && fd < 4)
        held[nheld++] = fd;
    ck_assert_int_ge(fd, 4);
    close(fd);
    int saved = fcntl(4, F_DUPFD_CLOEXEC, 10); /* -1 when 4 was free already */
    close(4);
    struct rt_cgroup cg;
    if (rt_cgroup_open(fn("probe")->memory_mb, &cg) != 0) {
        fprintf(stderr, "memory_group_on_a_low_descriptor: no memory cgroup here\n");
        if (saved >= 0)
            dup2(saved, 4), close(saved);
        return;
    }
    ck_assert_int_eq(cg.join_fd, 4);
    rt_cgroup_close(&cg); /* kept for the next worker, descriptor and all */
    struct rt_invoke_result a = call("probe", "pid");
    ck_assert_str_eq(rt_run_status_name(a.run.status), "ok");
    ck_assert(a.cold_start);
    rt_exec_result_free(&a.run);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    if (saved >= 0)
        dup2(saved, 4), close(saved);
}
END_TEST

Suite *suite_runtime_warm(void)
{
    Suite *s = suite_create("runtime_warm");
    TCase *tc = tcase_create("warm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, warm_worker_is_reused);
    tcase_add_test(tc, cold_start_counts_the_functions_init);
    tcase_add_test(tc, crashed_worker_is_replaced);
    tcase_add_test(tc, warm_timeout_kills_the_worker);
    tcase_add_test(tc, warm_memory_limit_is_oom);
    tcase_add_test(tc, warm_137_and_sigkill_are_not_oom);
    tcase_add_test(tc, failed_warm_invocation_reports_the_workers_peak);
    tcase_add_test(tc, memory_group_on_a_low_descriptor);
    tcase_add_test(tc, idle_workers_are_reaped);
    tcase_add_test(tc, usage_is_per_invocation);
    tcase_add_test(tc, programs_a_warm_worker_runs_are_metered);
    tcase_add_test(tc, a_worker_that_answers_twice_is_stopped);
    tcase_add_test(tc, log_and_framing_are_per_invocation);
    tcase_add_test(tc, concurrency_limit_is_ebusy);
    tcase_add_test(tc, full_spool_refuses_to_run);
    tcase_add_test(tc, group_commit_keeps_every_record);
    tcase_add_test(tc, pipeline_ties_steps_and_stops_on_failure);
    tcase_add_test(tc, dead_idle_worker_is_not_used);
    tcase_add_test(tc, failed_output_is_not_billed_as_sent);
    suite_add_tcase(s, tc);
    return s;
}
