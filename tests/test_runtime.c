/*
 * The runtime with real processes: manifest validation, exec statuses and limits, the
 * records in the spool, the faasrun command line, and shipping to a scripted metering
 * service (libmicrohttpd on port 0).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "runtime/cgroup.h"
#include "runtime/exec.h"
#include "runtime/invoke.h"
#include "runtime/manifest.h"
#include "runtime/procstat.h"
#include "runtime/ship.h"
#include "runtime/spool.h"
#include "tests/proc.h"
#include "tests/suites.h"

extern char **environ;

static char tmp[64];

static void make_tmp(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmp, sizeof tmp, "/tmp/faasmeter-rt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tmp(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* $FAASMETER_BIN/rel: the binaries under test. */
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

static const char *in_tmp(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", tmp, name);
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* All lines of every spool segment, concatenated. */
static char *read_segments(const char *dir)
{
    struct fm_buf b;
    fm_buf_init(&b, 1 << 20);
    for (int seq = 1; seq < 100; seq++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/seg-%016d.ndjson", dir, seq);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            fm_buf_append(&b, chunk, n);
        fclose(f);
    }
    return b.data ? fm_buf_steal(&b) : strdup("");
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---------------------------------------------------------------- manifest */

static const struct {
    const char *json;
    const char *message;
} bad_manifests[] = {
    {"[]", "manifest.json: manifest: expected a JSON object"},
    {"{\"functions\": 3}", "manifest.json: functions: expected an array"},
    {"{\"functions\": [], \"extra\": 1}", "manifest.json: extra: unknown field"},
    {"{\"functions\": [{\"tenant\": \"Acme\", \"name\": \"f\", \"command\": [\"/x\"]}]}",
     "manifest.json: functions[0].tenant: expected a name matching [a-z0-9][a-z0-9_-]{0,63}"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"-f\", \"command\": [\"/x\"]}]}",
     "manifest.json: functions[0].name: expected a name matching "
     "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": []}]}",
     "manifest.json: functions[0].command: expected an array of 1-64 strings"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\", 3]}]}",
     "manifest.json: functions[0].command[1]: expected a string of at most 4096 bytes"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"]},"
     " {\"tenant\": \"a\", \"name\": \"g\", \"command\": [\"/x\"]},"
     " {\"tenant\": \"a\", \"name\": \"h\", \"command\": [\"/x\"], \"memory_mb\": 10241}]}",
     "manifest.json: functions[2].memory_mb: expected an integer 1-10240"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"memory_mb\": 1.5}]}",
     "manifest.json: functions[0].memory_mb: expected an integer 1-10240"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"timeout_ms\": 0}]}",
     "manifest.json: functions[0].timeout_ms: expected an integer 1-900000"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"mode\": \"hot\"}]}",
     "manifest.json: functions[0].mode: expected \"exec\" or \"warm\""},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"env\": {\"1X\": \"v\"}}]}",
     "manifest.json: functions[0].env.1X: expected a name matching [A-Za-z_][A-Za-z0-9_]*"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"memroy_mb\": 5}]}",
     "manifest.json: functions[0].memroy_mb: unknown field"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"]},"
     " {\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/y\"]}]}",
     "manifest.json: functions[1].name: duplicate function of this tenant"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"]}],"
     " \"pipelines\": [{\"tenant\": \"b\", \"name\": \"p\", \"steps\": [\"f\"]}]}",
     "manifest.json: pipelines[0].steps[0]: expected the name of a function of the same "
     "tenant"},
    /* cJSON would end a string at \u0000 and keep what came before (A=x). */
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"env\": {\"A\": \"x\\u0000y\"}}]}",
     "manifest.json: functions[0].env.A: expected a string without \\u0000"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\","
     " \"command\": [\"/x\", \"\\\\\\u0000\"]}]}",
     "manifest.json: functions[0].command[1]: expected a string without \\u0000"},
    {"{\"functions\": [{\"tenant\": \"a\\u0000b\", \"name\": \"f\","
     " \"command\": [\"/x\"]}]}",
     "manifest.json: functions[0].tenant: expected a string without \\u0000"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"env\": {\"A\\u0000B\": \"x\"}}]}",
     "manifest.json: functions[0].env.A: expected a key without \\u0000"},
    /* cJSON keeps both members of a key given twice, and a lookup finds the first. */
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"memory_mb\": 64, \"memory_mb\": 10240}]}",
     "manifest.json: functions[0].memory_mb: duplicate key"},
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"],"
     " \"env\": {\"A\": \"1\", \"B\": \"2\", \"A\": \"3\"}}]}",
     "manifest.json: functions[0].env.A: duplicate key"},
    {"{\"functions\": [], \"functions\": [{\"tenant\": \"a\", \"name\": \"f\","
     " \"command\": [\"/x\"]}]}",
     "manifest.json: functions: duplicate key"},
    {"{\"functions\": [", "manifest.json: not valid JSON"},
    /* cJSON alone would stop after the first object and take it. */
    {"{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\", \"command\": [\"/x\"]}]}\n"
     "{\"functions\": []}",
     "manifest.json: not valid JSON"},
};

START_TEST(manifest_errors_name_entry_and_field)
{
    struct fm_err err = {""};
    struct rt_manifest *m = (struct rt_manifest *)&err; /* must stay untouched */
    ck_assert_int_eq(rt_manifest_parse(bad_manifests[_i].json, "manifest.json", "/base", &m,
                                       &err),
                     RT_EINVAL);
    ck_assert_str_eq(err.msg, bad_manifests[_i].message);
    ck_assert_ptr_eq(m, (struct rt_manifest *)&err);
}
END_TEST

/* An escaped backslash before u0000 is text, not a zero character; and a zero byte in the
 * file is no JSON (it would end the text early). */
START_TEST(manifest_zero_characters)
{
    struct rt_manifest *m = NULL;
    struct fm_err err = {""};
    ck_assert_int_eq(rt_manifest_parse("{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\","
                                       " \"command\": [\"/x\"], \"env\": {\"A\": \"x\\\\u0000\","
                                       " \"B\": \"\\\\\\u0041\"}}]}",
                                       "manifest.json", "/base", &m, &err),
                     RT_OK);
    ck_assert_str_eq(m->functions[0].env[0], "A=x\\u0000");
    ck_assert_str_eq(m->functions[0].env[1], "B=\\A");
    rt_manifest_free(m);
    m = NULL;
    static const char text[] = "{\"functions\": []}\0{\"extra\": 1}";
    FILE *f = fopen(in_tmp("zero.json"), "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, sizeof text - 1, f), sizeof text - 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rt_manifest_load(in_tmp("zero.json"), &m, &err), RT_EINVAL);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s: not valid JSON", in_tmp("zero.json"));
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(manifest_defaults_and_paths)
{
    write_file(in_tmp("manifest.json"),
               "{\"functions\": [{\"tenant\": \"acme\", \"name\": \"thumbnail\","
               " \"command\": [\"fn/thumbnail\", \"--width\", \"128\"], \"env\": {\"K\": \"V\"}},"
               " {\"tenant\": \"acme\", \"name\": \"store\", \"command\": [\"/bin/true\"],"
               " \"mode\": \"exec\", \"memory_mb\": 256, \"timeout_ms\": 1500,"
               " \"concurrency\": 8}],"
               " \"pipelines\": [{\"tenant\": \"acme\", \"name\": \"upload\","
               " \"steps\": [\"thumbnail\", \"store\"]}]}");
    struct rt_manifest *m = NULL;
    struct fm_err err = {""};
    ck_assert_int_eq(rt_manifest_load(in_tmp("manifest.json"), &m, &err), RT_OK);
    const struct rt_function *t = rt_manifest_find(m, "acme", "thumbnail");
    ck_assert_ptr_nonnull(t);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/fn/thumbnail", tmp);
    ck_assert_str_eq(t->argv[0], want);
    ck_assert_str_eq(t->argv[2], "128");
    ck_assert_ptr_null(t->argv[3]);
    ck_assert_str_eq(t->env[0], "K=V");
    ck_assert_int_eq(t->mode, RT_MODE_EXEC);
    ck_assert_int_eq(t->memory_mb, 128);
    ck_assert_int_eq(t->timeout_ms, 3000);
    ck_assert_int_eq(t->concurrency, 1);
    const struct rt_function *s = rt_manifest_find(m, "acme", "store");
    ck_assert_str_eq(s->argv[0], "/bin/true");
    ck_assert_int_eq(s->memory_mb, 256);
    ck_assert_int_eq(s->timeout_ms, 1500);
    ck_assert_int_eq(s->concurrency, 8);
    ck_assert_uint_eq(m->npipelines, 1);
    ck_assert_ptr_eq(m->pipelines[0].steps[1], s);
    ck_assert_ptr_null(rt_manifest_find(m, "other", "store"));
    rt_manifest_free(m);
}
END_TEST

/* ---------------------------------------------------------------- exec */

static struct rt_exec_result run_argv(char **argv, char **envp, int memory_mb,
                                      int64_t timeout_ms, const char *input)
{
    struct rt_exec_spec spec = {
        .argv = argv, .envp = envp, .memory_mb = memory_mb, .timeout_ms = timeout_ms,
        .input = input, .input_len = input ? strlen(input) : 0,
    };
    struct rt_exec_result r;
    struct fm_err err = {""};
    ck_assert_msg(rt_exec_run(&spec, &r, &err) == RT_OK, "%s", err.msg);
    return r;
}

static struct rt_exec_result run_fn(const char *name, const char *arg1, const char *arg2,
                                    int memory_mb, int64_t timeout_ms, const char *input)
{
    char *argv[] = {(char *)bin(name), (char *)arg1, (char *)arg2, NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    return run_argv(argv, envp, memory_mb, timeout_ms, input);
}

START_TEST(exec_ok_captures_output)
{
    struct rt_exec_result r = run_fn("fn/hello", NULL, NULL, 64, 5000, "faasmeter\n");
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_str_eq(r.output, "Hello, faasmeter!\n");
    ck_assert_uint_eq(r.output_len, 18);
    ck_assert_int_gt(r.duration_us, 0);
    ck_assert_int_gt(r.max_rss_kb, 0);
    rt_exec_result_free(&r);
}
END_TEST

START_TEST(exec_nonzero_exit_is_error)
{
    struct rt_exec_result r = run_fn("fn/fail", NULL, NULL, 64, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "error");
    ck_assert_int_eq(r.exit_code, 3);
    ck_assert_str_eq(r.errlog, "fail: failing on purpose\n");
    rt_exec_result_free(&r);
}
END_TEST

START_TEST(exec_timeout_kills_the_group)
{
    int64_t t0 = fm_mono_us();
    struct rt_exec_result r = run_fn("fn/sleepy", "20000", "--fork", 64, 300, NULL);
    int64_t took = fm_mono_us() - t0;
    ck_assert_str_eq(rt_run_status_name(r.status), "timeout");
    ck_assert_int_eq(r.exit_code, 137);
    ck_assert_int_ge(r.duration_us, 300000);
    ck_assert_int_lt(took, 3000000);
    /* The grandchild printed its pid; it must be gone (or a zombie awaiting its reaper). */
    long pid = strtol(r.output, NULL, 10);
    ck_assert_int_gt(pid, 1);
    ck_assert_msg(proc_ends(pid), "grandchild %ld survived the timeout", pid);
    rt_exec_result_free(&r);
}
END_TEST

/* Whether a function of memory_mb 64 runs in a memory cgroup of faasrun's here, rather than
 * under the address-space limit. */
static bool functions_get_memory_groups(void)
{
    char *argv[] = {"/bin/sh", "-c", "grep -c faasrun- /proc/self/cgroup", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    struct rt_exec_result r = run_argv(argv, envp, 64, 5000, NULL);
    bool grouped = strcmp(r.output, "1\n") == 0;
    rt_exec_result_free(&r);
    return grouped;
}

START_TEST(exec_memory_limit_is_oom)
{
    bool grouped = functions_get_memory_groups();
    struct rt_exec_result r = run_fn("fn/hog", "256", NULL, 64, 10000, NULL);
    /* In a memory group the kernel's OOM killer ends it (SIGKILL, 137). Under the
     * address-space limit its allocation fails and it exits with 137 itself: a code like any
     * other, which the runtime cannot tell from other failures. */
    ck_assert_str_eq(rt_run_status_name(r.status), grouped ? "oom" : "error");
    ck_assert_int_eq(r.exit_code, 137);
    /* Stopped near its limit, far from the 256 MB it asked for. (Its peak RSS may pass 64 MB
     * by a little under a memory cgroup, which counts what the group is charged: shared
     * library pages are resident in the process but charged to whoever loaded them first.) */
    ck_assert_int_le(r.max_rss_kb, 72 * 1024);
    rt_exec_result_free(&r);
    /* The same function within its limit is fine and its peak RSS shows it. */
    r = run_fn("fn/hog", "32", NULL, 128, 10000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_ge(r.max_rss_kb, 32 * 1024);
    rt_exec_result_free(&r);
}
END_TEST

/*
 * Where faasrun can make memory cgroups, a function's processes share one: a process that
 * left the function's process group (setsid) still dies when the invocation ends, and the
 * emptied group serves the next invocation. Where it cannot, rt_cgroup_open says so and the address-space limit of
 * exec_memory_limit_is_oom applies instead; this test then checks only that.
 */
START_TEST(exec_cgroup_holds_every_process_of_the_function)
{
    struct rt_cgroup probe;
    if (rt_cgroup_open(64, &probe) != 0) {
        ck_assert(!rt_cgroup_active(&probe));
        fprintf(stderr, "exec_cgroup_holds_every_process_of_the_function: no memory cgroup "
                        "can be made here; the runtime limits the address space instead\n");
        return;
    }
    /* A group is kept for the next invocation, under that one's limit. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", probe.path);
    rt_cgroup_close(&probe);
    ck_assert_int_eq(access(dir, F_OK), 0);
    ck_assert_int_eq(rt_cgroup_open(32, &probe), 0);
    ck_assert_str_eq(probe.path, dir);
    char limit_path[PATH_MAX + 32], limit[32] = "";
    snprintf(limit_path, sizeof limit_path, "%s/memory.limit_in_bytes", dir);
    if (access(limit_path, F_OK) != 0)
        snprintf(limit_path, sizeof limit_path, "%s/memory.max", dir);
    FILE *f = fopen(limit_path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(limit, sizeof limit, f));
    fclose(f);
    ck_assert_str_eq(limit, "33554432\n");
    rt_cgroup_close(&probe);

    /* A system may still refuse to move a process into the group (a co-mounted controller
     * with nothing assigned, a security module): the function then runs under the
     * address-space limit, which is all this test can check there. */
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    char *where[] = {"/bin/sh", "-c", "grep -c faasrun- /proc/self/cgroup; ulimit -v", NULL};
    struct rt_exec_result r = run_argv(where, envp, 64, 5000, NULL);
    if (strcmp(r.output, "0\n65536\n") == 0) {
        fprintf(stderr, "exec_cgroup_holds_every_process_of_the_function: the system refuses "
                        "to move processes into memory cgroups here\n");
        rt_exec_result_free(&r);
        return;
    }
    /* In its group, and no address-space limit: a runtime that maps far more than it uses
     * starts, since only resident memory counts. */
    ck_assert_str_eq(r.output, "1\nunlimited\n");
    rt_exec_result_free(&r);

    char *argv[] = {"/bin/sh", "-c", "setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $!",
                    NULL};
    r = run_argv(argv, envp, 64, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    long pid = strtol(r.output, NULL, 10);
    ck_assert_int_gt(pid, 1);
    ck_assert_msg(proc_ends(pid), "process %ld outlived its invocation", pid);
    rt_exec_result_free(&r);

    /* A function that fails after one of its processes went past the limit failed for
     * memory, though the process the kernel ended was not the function's own. */
    char script[PATH_MAX + 64];
    snprintf(script, sizeof script, "%s 256; exit 3", bin("fn/hog"));
    char *forks[] = {"/bin/sh", "-c", script, NULL};
    r = run_argv(forks, envp, 64, 10000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "oom");
    ck_assert_int_eq(r.exit_code, 3);
    rt_exec_result_free(&r);

}
END_TEST

/* The runtime (this test) touches 96 MB more than it holds and keeps them: its peak is then
 * at least that, far above what the functions below use. (Not its peak before plus 96 MB:
 * memory it held earlier and gave back may have set that peak above what it holds now.) */
static char *grow_runtime(void)
{
    size_t n = (size_t)96 << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    memset(p, 1, n);
    ck_assert_int_ge(rt_self_peak_kb(), 96 * 1024);
    return p;
}

/*
 * A function's peak memory is its own, whatever the runtime's: at execve the kernel keeps
 * the peak RSS of the memory a child of vfork leaves, the runtime's, in the child's
 * ru_maxrss, which made /bin/true as large as the runtime had ever been.
 */
START_TEST(exec_peak_memory_is_the_functions_own)
{
    char *ballast = grow_runtime();
    int64_t runtime_kb = rt_self_peak_kb();
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    char *truth[] = {"/bin/true", NULL};
    /* In a memory group: what the group was charged; else the readings of its VmHWM. */
    struct rt_exec_result r = run_argv(truth, envp, 64, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_lt(r.max_rss_kb, 4 * 1024);
    rt_exec_result_free(&r);
    r = run_fn("fn/hog", "32", NULL, 64, 10000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_ge(r.max_rss_kb, 32 * 1024);
    ck_assert_int_lt(r.max_rss_kb, 40 * 1024);
    rt_exec_result_free(&r);

    /* Without a group (memory_mb 0): wait4's figure where it exceeds the runtime's own
     * peak, exactly the function's; below it, a lower bound of what was read. */
    r = run_argv(truth, envp, 0, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_lt(r.max_rss_kb, 4 * 1024);
    rt_exec_result_free(&r);
    long mb = (long)(runtime_kb / 1024) + 32;
    char arg[32];
    snprintf(arg, sizeof arg, "%ld", mb);
    r = run_fn("fn/hog", arg, NULL, 0, 20000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_ge(r.max_rss_kb, mb * 1024);
    ck_assert_int_lt(r.max_rss_kb, (mb + 8) * 1024);
    rt_exec_result_free(&r);
    munmap(ballast, (size_t)96 << 20);
}
END_TEST

/* The largest peak memory the samples of one run carried, and how many there were. */
struct peak_seen {
    int64_t kb;
    int samples;
};

static void see_sample(void *ctx, const struct rt_usage_sample *s)
{
    struct peak_seen *seen = ctx;
    seen->samples++;
    if (s->max_rss_kb > seen->kb)
        seen->kb = s->max_rss_kb;
}

/* Samples carry the peak the stop record will: in a memory group, the group's, not the
 * process's VmHWM (which counts the shared libraries another process brought in), so that
 * meterd, which keeps the largest, bills the same whether a sample was taken or not. */
START_TEST(samples_carry_the_peak_the_stop_carries)
{
    struct peak_seen seen = {0};
    struct rt_sampler sampler = {.every_us = 20 * 1000, .fn = see_sample, .ctx = &seen};
    char *argv[] = {(char *)bin("fn/sleepy"), "300", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    struct rt_exec_spec spec = {.argv = argv, .envp = envp, .memory_mb = 64,
                                .timeout_ms = 10000, .sampler = &sampler};
    struct rt_exec_result r;
    struct fm_err err = {""};
    ck_assert_msg(rt_exec_run(&spec, &r, &err) == RT_OK, "%s", err.msg);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_int_ge(seen.samples, 3);
    ck_assert_msg(seen.kb <= r.max_rss_kb, "a sample said %lld kB, the stop %lld kB",
                  (long long)seen.kb, (long long)r.max_rss_kb);
    rt_exec_result_free(&r);
}
END_TEST

/* Only the kernel's OOM killer makes "oom": a function's own exit code 137 is an error like
 * any other, and a SIGKILL that did not come from the OOM killer is a crash. */
START_TEST(exec_137_and_sigkill_are_not_oom)
{
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    char *exits[] = {"/bin/sh", "-c", "exit 137", NULL};
    struct rt_exec_result r = run_argv(exits, envp, 64, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "error");
    ck_assert_int_eq(r.exit_code, 137);
    rt_exec_result_free(&r);
    char *kills[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    r = run_argv(kills, envp, 64, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "crashed");
    ck_assert_int_eq(r.exit_code, 137);
    rt_exec_result_free(&r);
}
END_TEST

START_TEST(exec_signal_is_crashed)
{
    struct rt_exec_result r = run_fn("fn/crash", NULL, NULL, 64, 5000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "crashed");
    ck_assert_int_eq(r.exit_code, 128 + SIGSEGV);
    rt_exec_result_free(&r);
}
END_TEST

START_TEST(exec_output_over_cap_is_error)
{
    struct rt_exec_result r = run_fn("fn/spew", "7000000", NULL, 64, 10000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "error");
    ck_assert_str_eq(r.reason, "response larger than 6291456 bytes");
    rt_exec_result_free(&r);
    r = run_fn("fn/spew", "6291456", NULL, 64, 10000, NULL);
    ck_assert_str_eq(rt_run_status_name(r.status), "ok");
    ck_assert_uint_eq(r.output_len, 6291456);
    rt_exec_result_free(&r);
}
END_TEST

START_TEST(exec_missing_program_is_error_127)
{
    char *argv[] = {(char *)in_tmp("no-such-program"), NULL};
    char *envp[] = {NULL};
    struct rt_exec_spec spec = {.argv = argv, .envp = envp, .memory_mb = 64, .timeout_ms = 1000};
    struct rt_exec_result r;
    ck_assert_int_eq(rt_exec_run(&spec, &r, NULL), RT_OK);
    ck_assert_str_eq(rt_run_status_name(r.status), "error");
    ck_assert_int_eq(r.exit_code, 127);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "cannot start %s: No such file or directory", argv[0]);
    ck_assert_str_eq(r.reason, want);
    rt_exec_result_free(&r);
}
END_TEST

/* A child that touched 32 MB, gave it back and waits to be killed. */
static pid_t start_peaked_child(void)
{
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        size_t n = (size_t)32 << 20;
        char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(1);
        memset(p, 1, n);
        munmap(p, n);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    close(ready[1]);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return pid;
}

START_TEST(proc_readings_reuse_their_files)
{
    pid_t pid = start_peaked_child();
    struct rt_proc proc;
    struct rt_usage u = {0}, cpu = {.hwm_kb = -1};
    ck_assert_int_eq(rt_proc_init(&proc, pid), 0);
    ck_assert_int_eq(rt_proc_usage(&proc, &u), 0);
    ck_assert_int_ge(u.hwm_kb, 32 * 1024);
    /* After a reset the peak is what the child holds: the pages it shares with this test,
     * whose number depends on what ran before, but not the 32 MB it gave back. */
    const int64_t touched_peak_kb = u.hwm_kb;
    ck_assert_int_eq(rt_proc_cpu(&proc, &cpu), 0);
    ck_assert_int_eq(cpu.hwm_kb, 0); /* the peak is not read */
    ck_assert_int_ge(cpu.cpu_us, u.cpu_us);
    ck_assert_int_ge(cpu.user_ticks + cpu.sys_ticks, u.user_ticks + u.sys_ticks);
    /* Every reading after the first goes through the same descriptors. */
    int stat_fd = proc.stat_fd, status_fd = proc.status_fd;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(rt_proc_reset_peak(&proc), 0);
        ck_assert_int_eq(rt_proc_usage(&proc, &u), 0);
        ck_assert_int_le(u.hwm_kb, touched_peak_kb - 30 * 1024);
    }
    ck_assert_int_eq(proc.stat_fd, stat_fd);
    ck_assert_int_eq(proc.status_fd, status_fd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_int_eq(rt_proc_usage(&proc, &u), -1); /* gone, whatever reuses its pid */
    rt_proc_close(&proc);
    ck_assert_int_eq(proc.stat_fd, -1);
    rt_proc_close(&proc);
}
END_TEST

/* ---------------------------------------------------------------- records */

static void assert_exact_keys(const cJSON *rec, const char *const *keys)
{
    size_t want = 0, have = 0;
    for (; keys[want]; want++)
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(rec, keys[want]) != NULL, "no %s",
                      keys[want]);
    for (const cJSON *c = rec->child; c; c = c->next)
        have++;
    ck_assert_uint_eq(have, want);
}

static const char *str_of(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", key);
    return v->valuestring;
}

static double num_of(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

START_TEST(records_in_spool_are_exact)
{
    char manifest[1024];
    snprintf(manifest, sizeof manifest,
             "{\"functions\": [{\"tenant\": \"acme\", \"name\": \"fail\", \"command\": [\"%s\"],"
             " \"memory_mb\": 96, \"timeout_ms\": 2000}]}",
             bin("fn/fail"));
    struct rt_manifest *m = NULL;
    ck_assert_int_eq(rt_manifest_parse(manifest, "m", "/", &m, NULL), RT_OK);
    struct rt_spool *spool = NULL;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &spool, NULL), RT_OK);
    struct rt_invoke_opts opts = {.trigger = "cli"};
    struct rt_invoke_result res;
    struct fm_err err = {""};
    ck_assert_int_eq(rt_invoke(&m->functions[0], spool, &opts, "12345", 5, &res, &err), RT_OK);
    ck_assert_str_eq(rt_run_status_name(res.run.status), "error");

    char *text = read_segments(in_tmp("spool"));
    ck_assert_uint_eq(count_lines(text), 2);
    char *nl = strchr(text, '\n');
    *nl = '\0';
    cJSON *start = cJSON_Parse(text), *stop = cJSON_Parse(nl + 1);
    ck_assert_ptr_nonnull(start);
    ck_assert_ptr_nonnull(stop);
    static const char *const start_keys[] = {"id", "type", "invocation_id", "tenant",
                                             "function", "time", "memory_mb", "timeout_ms",
                                             "cold_start", "trigger", NULL};
    static const char *const stop_keys[] = {
        "id", "type", "invocation_id", "tenant", "function", "time", "memory_mb",
        "cold_start", "duration_us", "init_us", "status", "exit_code", "cpu_user_us",
        "cpu_sys_us", "max_rss_kb", "bytes_in", "bytes_out", NULL};
    assert_exact_keys(start, start_keys);
    assert_exact_keys(stop, stop_keys);

    char id[64];
    snprintf(id, sizeof id, "%s:start", res.invocation_id);
    ck_assert_str_eq(str_of(start, "id"), id);
    snprintf(id, sizeof id, "%s:stop", res.invocation_id);
    ck_assert_str_eq(str_of(stop, "id"), id);
    ck_assert_uint_eq(strlen(res.invocation_id), 32);
    ck_assert_str_eq(str_of(start, "invocation_id"), res.invocation_id);
    ck_assert_str_eq(str_of(start, "type"), "start");
    ck_assert_str_eq(str_of(stop, "type"), "stop");
    ck_assert_str_eq(str_of(start, "tenant"), "acme");
    ck_assert_str_eq(str_of(stop, "function"), "fail");
    ck_assert_str_eq(str_of(start, "trigger"), "cli");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(start, "cold_start")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(stop, "cold_start")));
    ck_assert(num_of(start, "memory_mb") == 96 && num_of(stop, "memory_mb") == 96);
    ck_assert(num_of(start, "timeout_ms") == 2000);
    ck_assert_str_eq(str_of(stop, "status"), "error");
    ck_assert(num_of(stop, "exit_code") == 3);
    ck_assert(num_of(stop, "init_us") == 0);
    ck_assert(num_of(stop, "bytes_in") == 5 && num_of(stop, "bytes_out") == 0);
    ck_assert(num_of(stop, "duration_us") == (double)res.run.duration_us);
    ck_assert(num_of(stop, "max_rss_kb") > 0);
    int64_t t1, t2;
    ck_assert_int_eq(fm_time_parse(str_of(start, "time"), &t1), 0);
    ck_assert_int_eq(fm_time_parse(str_of(stop, "time"), &t2), 0);
    ck_assert_int_le(t1, t2);
    ck_assert_uint_eq(strlen(str_of(start, "time")), 27); /* six fractional digits */

    cJSON_Delete(start);
    cJSON_Delete(stop);
    free(text);
    rt_exec_result_free(&res.run);
    rt_spool_close(spool);
    rt_manifest_free(m);
}
END_TEST

/* ---------------------------------------------------------------- faasrun command line */

static void write_manifest(void)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"functions\": ["
             "{\"tenant\": \"acme\", \"name\": \"hello\", \"command\": [\"%s\"]},"
             "{\"tenant\": \"acme\", \"name\": \"fail\", \"command\": [\"%s\"]},"
             "{\"tenant\": \"acme\", \"name\": \"slow\", \"command\": [\"%s\", \"5000\"],"
             " \"timeout_ms\": 200}]}",
             bin("fn/hello"), bin("fn/fail"), bin("fn/sleepy"));
    write_file(in_tmp("manifest.json"), text);
}

/* Run faasrun with args (NULL-terminated) and input; memory unlimited for the sanitizer. */
static struct rt_exec_result faasrun(const char *input, const char *const *args)
{
    char *argv[24] = {(char *)bin("faasrun")};
    for (int i = 0; args[i] && i < 22; i++)
        argv[i + 1] = (char *)args[i];
    return run_argv(argv, environ, 0, 30000, input);
}

/* What a function running as its "user" may do: print its ids, try to lift its memory
 * group's limit and to leave the group for the top one, look for the runtime's meter key in
 * its command line, and tell whether it has a session (and so no terminal) of its own. */
static const char who_script[] =
    "id -u; id -g\n"
    "cg=$(sed -n 's/^[0-9]*:memory:\\(.*\\)/\\1/p' /proc/self/cgroup)\n"
    "if [ -n \"$cg\" ]; then f=/sys/fs/cgroup/memory$cg/memory.limit_in_bytes;"
    " top=/sys/fs/cgroup/memory/cgroup.procs\n"
    "else cg=$(sed -n 's/^0:://p' /proc/self/cgroup); f=/sys/fs/cgroup$cg/memory.max;"
    " top=/sys/fs/cgroup/cgroup.procs; fi\n"
    "echo 1073741824 2>/dev/null >$f && echo lifted || echo kept\n"
    "echo $$ 2>/dev/null >$top && echo left || echo stayed\n"
    "tr '\\0' ' ' </proc/$PPID/cmdline | grep -c SECRET-KEY\n"
    "awk '{print ($6 == $1) ? \"own session\" : \"shared session\"}' /proc/$$/stat\n";

START_TEST(functions_run_as_their_user)
{
    struct fm_err err = {""};
    struct rt_manifest *m = NULL;
    ck_assert_int_eq(rt_manifest_parse("{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\","
                                       " \"command\": [\"/x\"], \"user\": \"no-such-user\"}]}",
                                       "manifest.json", "/base", &m, &err),
                     RT_EINVAL);
    ck_assert_str_eq(err.msg, "manifest.json: functions[0].user: no user named 'no-such-user' "
                              "on this system");
    const struct passwd *nobody = getpwnam("nobody");
    ck_assert_ptr_nonnull(nobody);
    uid_t uid = nobody->pw_uid;
    gid_t gid = nobody->pw_gid;
    const char *nobody_manifest = "{\"functions\": [{\"tenant\": \"a\", \"name\": \"f\","
                                  " \"command\": [\"/x\"], \"user\": \"nobody\"}]}";
    if (geteuid() != 0) {
        ck_assert_int_eq(rt_manifest_parse(nobody_manifest, "manifest.json", "/base", &m, &err),
                         RT_EINVAL);
        ck_assert_str_eq(err.msg, "manifest.json: functions[0].user: running functions as "
                                  "another user needs faasrun to run as root");
        return;
    }
    ck_assert_int_eq(rt_manifest_parse(nobody_manifest, "manifest.json", "/base", &m, &err),
                     RT_OK);
    ck_assert(m->functions[0].user.set);
    ck_assert_int_eq(m->functions[0].user.uid, uid);
    ck_assert_int_eq(m->functions[0].user.gid, gid);
    rt_manifest_free(m);

    /* The script, where that user can read it. */
    ck_assert_int_eq(chmod(tmp, 0711), 0);
    write_file(in_tmp("who.sh"), who_script);
    ck_assert_int_eq(chmod(in_tmp("who.sh"), 0644), 0);
    char text[2048];
    snprintf(text, sizeof text,
             "{\"functions\": [{\"tenant\": \"acme\", \"name\": \"who\", \"command\":"
             " [\"/bin/sh\", \"%s\"], \"memory_mb\": 64, \"user\": \"nobody\"}]}",
             in_tmp("who.sh"));
    write_file(in_tmp("manifest.json"), text);
    struct rt_exec_result r = faasrun(
        NULL, (const char *[]){"invoke", "--manifest", in_tmp("manifest.json"), "--spool",
                               in_tmp("spool"), "--meter-key", "SECRET-KEY", "acme", "who",
                               NULL});
    char want[128];
    snprintf(want, sizeof want, "%u\n%u\nkept\nstayed\n0\nown session\n", (unsigned)uid,
             (unsigned)gid);
    ck_assert_msg(r.exit_code == 0, "exit %d: %s", r.exit_code, r.errlog);
    ck_assert_str_eq(r.output, want);
    rt_exec_result_free(&r);
}
END_TEST

START_TEST(cli_invoke_exit_codes)
{
    write_manifest();
    const char *spool = in_tmp("spool");
    const char *manifest = in_tmp("manifest.json");
    struct rt_exec_result r = faasrun(
        "you", (const char *[]){"invoke", "--manifest", manifest, "--spool", spool, "acme",
                                "hello", NULL});
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_str_eq(r.output, "Hello, you!\n");
    ck_assert_str_eq(r.errlog, "");
    rt_exec_result_free(&r);

    r = faasrun(NULL, (const char *[]){"invoke", "--manifest", manifest, "--spool", spool,
                                       "acme", "fail", NULL});
    ck_assert_int_eq(r.exit_code, 1);
    ck_assert_str_eq(r.output, "");
    ck_assert_str_eq(r.errlog, "faasrun: acme/fail: status error (exit code 3)\n");
    rt_exec_result_free(&r);

    r = faasrun(NULL, (const char *[]){"invoke", "--manifest", manifest, "--spool", spool,
                                       "acme", "slow", NULL});
    ck_assert_int_eq(r.exit_code, 1);
    ck_assert_str_eq(r.errlog, "faasrun: acme/slow: status timeout (exit code 137)\n");
    rt_exec_result_free(&r);

    r = faasrun(NULL, (const char *[]){"invoke", "--manifest", manifest, "acme", NULL});
    ck_assert_int_eq(r.exit_code, 2);
    rt_exec_result_free(&r);
    r = faasrun(NULL, (const char *[]){"invoke", "--help", NULL});
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_ptr_nonnull(strstr(r.output, "usage: faasrun invoke"));
    /* The help reads in a terminal: no line runs on past the width the others keep. */
    for (const char *line = r.output; *line;) {
        size_t n = strcspn(line, "\n");
        ck_assert_msg(n <= 88, "a help line of %zu columns: %.*s", n, (int)n, line);
        line += n + (line[n] == '\n');
    }
    rt_exec_result_free(&r);

    char *text = read_segments(spool);
    ck_assert_uint_eq(count_lines(text), 6);
    free(text);
}
END_TEST

/* faasrun started with its standard output or error closed: what it writes there goes
 * nowhere, and never into the spool, which would otherwise be given their number. */
START_TEST(closed_standard_streams_stay_out_of_the_spool)
{
    write_manifest();
    const char *spool = in_tmp("spool");
    char script[1024];
    snprintf(script, sizeof script,
             "echo you | \"$0\" invoke --manifest %s --spool %s acme hello >&- || exit 10\n"
             "\"$0\" invoke --manifest %s --spool %s acme fail 2>&- </dev/null\n"
             "[ $? -eq 1 ] || exit 11\n",
             in_tmp("manifest.json"), spool, in_tmp("manifest.json"), spool);
    char *argv[] = {"/bin/sh", "-c", script, (char *)bin("faasrun"), NULL};
    struct rt_exec_result r = run_argv(argv, environ, 0, 30000, NULL);
    ck_assert_msg(r.exit_code == 0, "exit %d: %s", r.exit_code, r.errlog);
    rt_exec_result_free(&r);
    /* Two invocations: a start and a stop each, and nothing else. */
    char *text = read_segments(spool);
    ck_assert_uint_eq(count_lines(text), 4);
    for (char *line = text; *line; line = strchr(line, '\n') + 1)
        ck_assert_msg(strncmp(line, "{\"id\":", 6) == 0, "not a record: %.60s", line);
    free(text);
}
END_TEST

/* A manifest that is missing or invalid, and a request over the cap, are bad input: one
 * line, exit code 2, and nothing runs (no spool is made). */
START_TEST(cli_invoke_bad_input_is_usage)
{
    write_file(in_tmp("bad.json"), "{\"functions\": [{\"tenant\": \"acme\"}]}");
    ck_assert_int_eq(mkdir(in_tmp("folder.json"), 0700), 0);
    static const struct {
        const char *manifest, *err;
    } cases[] = {
        {"missing.json", "No such file or directory"},
        {"bad.json", "functions[0].name: expected a name matching "
                     "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"},
        {"folder.json", "Is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = in_tmp(cases[i].manifest);
        struct rt_exec_result r = faasrun(
            "x", (const char *[]){"invoke", "--manifest", path, "--spool", in_tmp("spool"),
                                  "acme", "hello", NULL});
        char want[PATH_MAX + 128];
        snprintf(want, sizeof want, "faasrun: %s: %s\n", path, cases[i].err);
        ck_assert_int_eq(r.exit_code, 2);
        ck_assert_str_eq(r.output, "");
        ck_assert_str_eq(r.errlog, want);
        rt_exec_result_free(&r);
    }

    write_manifest();
    size_t n = RT_OUTPUT_MAX + 1;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', n);
    big[n] = '\0';
    struct rt_exec_result r = faasrun(
        big, (const char *[]){"invoke", "--manifest", in_tmp("manifest.json"), "--spool",
                              in_tmp("spool"), "acme", "hello", NULL});
    free(big);
    ck_assert_int_eq(r.exit_code, 2);
    ck_assert_str_eq(r.output, "");
    ck_assert_str_eq(r.errlog, "faasrun: request: larger than 6291456 bytes\n");
    rt_exec_result_free(&r);
    ck_assert_int_ne(access(in_tmp("spool"), F_OK), 0);
}
END_TEST

/* ---------------------------------------------------------------- a scripted meterd */

#define MAX_SCRIPT 8

struct fake_meter {
    struct MHD_Daemon *daemon;
    unsigned port;
    pthread_mutex_t lock;
    int script_status[MAX_SCRIPT]; /* answers in turn; the last one repeats */
    int script_reject[MAX_SCRIPT]; /* with 200: reject this index, -1 for none; -2: count
                                    * one record short; -3: reject index 0 twice */
    int nscript;
    int requests;
    struct fm_buf received;        /* bodies answered with 200, concatenated */
    char auth[128];
    char content_type[64];
};

static struct fake_meter meter;

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req_cls)
{
    (void)cls, (void)version;
    struct fm_buf *body = *req_cls;
    if (body == NULL) {
        body = calloc(1, sizeof *body);
        fm_buf_init(body, 8 << 20);
        *req_cls = body;
        return MHD_YES;
    }
    if (*size > 0) {
        fm_buf_append(body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&meter.lock);
    int turn = meter.requests < meter.nscript ? meter.requests : meter.nscript - 1;
    int status = meter.script_status[turn], reject = meter.script_reject[turn];
    meter.requests++;
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    snprintf(meter.auth, sizeof meter.auth, "%s", v ? v : "");
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    snprintf(meter.content_type, sizeof meter.content_type, "%s", v ? v : "");
    char reply[256];
    if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/records") != 0)
        status = 404;
    if (status == 200) {
        fm_buf_append(&meter.received, body->data ? body->data : "", body->len);
        size_t n = body->data ? count_lines(body->data) : 0;
        if (reject == -2)
            snprintf(reply, sizeof reply,
                     "{\"accepted\": %zu, \"duplicates\": 0, \"rejected\": []}", n - 1);
        else if (reject == -3)
            snprintf(reply, sizeof reply,
                     "{\"accepted\": %zu, \"duplicates\": 0, \"rejected\": [{\"index\": 0,"
                     " \"error\": \"x\"}, {\"index\": 0, \"error\": \"x\"}]}",
                     n - 2);
        else if (reject >= 0)
            snprintf(reply, sizeof reply,
                     "{\"accepted\": %zu, \"duplicates\": 0, \"rejected\": [{\"index\": %d,"
                     " \"error\": \"bad tenant\"}]}",
                     n - 1, reject);
        else
            snprintf(reply, sizeof reply,
                     "{\"accepted\": %zu, \"duplicates\": 0, \"rejected\": []}", n);
    } else {
        snprintf(reply, sizeof reply, "{\"error\": \"scripted\", \"message\": \"answer %d\"}",
                 status);
    }
    pthread_mutex_unlock(&meter.lock);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(reply), reply, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)conn, (void)why;
    struct fm_buf *body = *req_cls;
    if (body) {
        fm_buf_free(body);
        free(body);
    }
    *req_cls = NULL;
}

/* Start the fake service answering with statuses in turn (0 ends the list). */
static void meter_start(const int *statuses, const int *rejects)
{
    meter = (struct fake_meter){.nscript = 0};
    pthread_mutex_init(&meter.lock, NULL);
    fm_buf_init(&meter.received, 64 << 20);
    for (; statuses[meter.nscript] && meter.nscript < MAX_SCRIPT; meter.nscript++) {
        meter.script_status[meter.nscript] = statuses[meter.nscript];
        meter.script_reject[meter.nscript] = rejects ? rejects[meter.nscript] : -1;
    }
    meter.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer,
                                    NULL, MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                                    MHD_OPTION_END);
    ck_assert_ptr_nonnull(meter.daemon);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(meter.daemon, MHD_DAEMON_INFO_BIND_PORT);
    meter.port = info->port;
    ck_assert_uint_gt(meter.port, 0);
}

static void meter_stop(void)
{
    if (meter.daemon)
        MHD_stop_daemon(meter.daemon);
    meter.daemon = NULL;
    fm_buf_free(&meter.received);
    pthread_mutex_destroy(&meter.lock);
}

static const char *meter_url(void)
{
    static char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", meter.port);
    return url;
}

static void append_records(struct rt_spool *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        char rec[128];
        int n = snprintf(rec, sizeof rec, "{\"id\": \"r%d\", \"n\": %d}", i, i);
        ck_assert_int_eq(rt_spool_append(s, rec, (size_t)n, NULL), RT_OK);
    }
}

/* Records r<from>..r<to-1> appended to the test's spool by a process that then ends. */
static void fill_spool(int from, int to, size_t segment_bytes)
{
    struct rt_spool *s = NULL;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), segment_bytes, &s, NULL), RT_OK);
    append_records(s, from, to);
    rt_spool_close(s);
}

static enum rt_status ship(const char *dir, const char *key, int64_t deadline_ms,
                           struct rt_ship_stats *stats, struct fm_err *err)
{
    struct rt_spool *s = NULL;
    struct rt_shipper *sh = NULL;
    ck_assert_int_eq(rt_spool_open(dir, 0, &s, NULL), RT_OK);
    ck_assert_int_eq(rt_shipper_new(meter_url(), key, &sh, NULL), RT_OK);
    enum rt_status st = rt_ship_spool(sh, s, fm_mono_us() + deadline_ms * 1000, stats, err);
    rt_shipper_free(sh);
    rt_spool_close(s);
    return st;
}

static void expect_received(int from, int to)
{
    struct fm_buf want;
    fm_buf_init(&want, 1 << 20);
    for (int i = from; i < to; i++)
        fm_buf_printf(&want, "{\"id\": \"r%d\", \"n\": %d}\n", i, i);
    ck_assert_str_eq(meter.received.data ? meter.received.data : "", want.data ? want.data : "");
    fm_buf_free(&want);
}

/* What --meter takes: an http:// or https:// URL with a host, as curl would read it. */
START_TEST(meter_urls)
{
    static const char *const good[] = {
        "http://127.0.0.1:8080", "https://meter.example.com", "HTTP://Meter:1/base/",
        "http://[::1]:65535/", "https://user:pw@meter/x?y#z", "http://meter?x", "http://m#f",
    };
    static const char *const bad[] = {
        "", "notaurl", "ftp://x", "http:/x", "http://", "https://:80", "http://@",
        "http://m:", "http://m:0", "http://m:65536", "http://m:123456", "http://m:8a",
        "http://[::1", "http://[]", "http://[::1]x", "http://a b", "http://m/\t", "http://m\n",
        "http://user@:80",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(rt_ship_url_valid(good[i]), "refused %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!rt_ship_url_valid(bad[i]), "took '%s'", bad[i]);
    struct rt_shipper *sh = (struct rt_shipper *)&sh;
    struct fm_err err = {""};
    ck_assert_int_eq(rt_shipper_new("notaurl", NULL, &sh, &err), RT_EINVAL);
    ck_assert_str_eq(err.msg,
                     "expected an http:// or https:// URL for the metering service, got "
                     "'notaurl'");
    ck_assert_ptr_eq(sh, (struct rt_shipper *)&sh);
}
END_TEST

START_TEST(ship_sends_ndjson_with_key)
{
    meter_start((int[]){200, 0}, NULL);
    fill_spool(0, 2500, 0);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), "k1", 5000, &stats, NULL), RT_OK);
    ck_assert_int_eq(meter.requests, 3); /* batches of 1000 */
    ck_assert_uint_eq(stats.accepted, 2500);
    ck_assert_str_eq(meter.auth, "Bearer k1");
    ck_assert_str_eq(meter.content_type, "application/x-ndjson");
    expect_received(0, 2500);
    /* Nothing is sent twice once delivered. */
    ck_assert_int_eq(ship(in_tmp("spool"), "k1", 5000, &stats, NULL), RT_OK);
    ck_assert_int_eq(meter.requests, 3);
    meter_stop();
}
END_TEST

START_TEST(ship_retries_5xx_and_429)
{
    meter_start((int[]){503, 429, 200, 0}, NULL);
    fill_spool(0, 3, 0);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 10000, &stats, NULL), RT_OK);
    ck_assert_int_eq(meter.requests, 3);
    ck_assert_uint_eq(stats.retries, 2);
    ck_assert_str_eq(meter.auth, "");
    expect_received(0, 3);
    meter_stop();
}
END_TEST

START_TEST(ship_resumes_after_crash)
{
    struct rt_spool *s = NULL;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &s, NULL), RT_OK);
    append_records(s, 0, 5);
    /* A shipper that read a batch and died before the service answered. */
    struct rt_spool_batch b;
    ck_assert_int_eq(rt_spool_claim(s, NULL), RT_OK);
    ck_assert_int_eq(rt_spool_next_batch(s, 1000, &b, NULL), RT_OK);
    ck_assert_uint_eq(b.nlines, 5);
    rt_spool_batch_free(&b);
    rt_spool_close(s);
    /* The service is down for a while: the deadline passes, nothing is lost. */
    meter_start((int[]){503, 0}, NULL);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 400, NULL, NULL), RT_ETIMEDOUT);
    ck_assert_int_ge(meter.requests, 1);
    ck_assert_ptr_null(meter.received.data);
    meter_stop();
    /* More invocations meanwhile, then the service is back. */
    fill_spool(5, 7, 0);
    meter_start((int[]){200, 0}, NULL);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    expect_received(0, 7);
    meter_stop();
}
END_TEST

/* A cursor past every segment there is (segments cleared by hand, or restored from
 * elsewhere): new records go past it, never behind it where they would count as shipped. */
START_TEST(records_never_go_behind_the_cursor)
{
    ck_assert_int_eq(mkdir(in_tmp("spool"), 0700), 0);
    static const char *const cursors[] = {"5 0\n", "7 120\n"};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/cursor", in_tmp("spool"));
        write_file(path, cursors[i]);
        fill_spool(10 * (int)i, 10 * (int)i + 2, 0);
        meter_start((int[]){200, 0}, NULL);
        ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
        expect_received(10 * (int)i, 10 * (int)i + 2);
        meter_stop();
    }
}
END_TEST

START_TEST(ship_dead_letters_rejected)
{
    meter_start((int[]){200, 0}, (int[]){1, -1});
    fill_spool(0, 3, 0);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    ck_assert_uint_eq(stats.dead_lettered, 1);
    ck_assert_uint_eq(stats.accepted, 2);
    FILE *f = fopen(in_tmp("spool/" RT_SPOOL_DEAD_LETTER), "r");
    ck_assert_ptr_nonnull(f);
    char line[512] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "{\"error\":\"bad tenant\",\"record\":{\"id\":\"r1\",\"n\":1}}\n");
    /* Delivered and dead-lettered records are both done with. */
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    ck_assert_int_eq(meter.requests, 1);
    meter_stop();
}
END_TEST

static size_t dead_letters(void);

/* A 200 that does not account for every record sent, each once, keeps the batch: the
 * records are sent again, and what was stored comes back as duplicates. */
START_TEST(ship_keeps_a_batch_a_200_does_not_account_for)
{
    meter_start((int[]){200, 200, 200, 0}, (int[]){-2, -3, -1});
    fill_spool(0, 3, 0);
    struct fm_err err = {""};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, &err), RT_EREMOTE);
    ck_assert_str_eq(err.msg, "metering service answered 200 for 3 records without accounting"
                              " for each once (accepted 2, duplicates 0, rejected 0); they"
                              " stay in the spool");
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, &err), RT_EREMOTE);
    ck_assert_str_eq(err.msg, "metering service answered 200 for 3 records without accounting"
                              " for each once (accepted 1, duplicates 0, rejected 2); they"
                              " stay in the spool");
    ck_assert_uint_eq(dead_letters(), 0);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    ck_assert_uint_eq(stats.accepted, 3);
    ck_assert_int_eq(meter.requests, 3);
    meter_stop();
}
END_TEST

START_TEST(ship_refused_batch_stays)
{
    meter_start((int[]){401, 200, 0}, NULL);
    fill_spool(0, 2, 0);
    struct fm_err err = {""};
    ck_assert_int_eq(ship(in_tmp("spool"), "bad", 5000, NULL, &err), RT_EREMOTE);
    ck_assert_str_eq(err.msg, "metering service answered 401: answer 401");
    ck_assert_str_eq(meter.auth, "Bearer bad");
    ck_assert_int_eq(ship(in_tmp("spool"), "good", 5000, NULL, NULL), RT_OK);
    expect_received(0, 2);
    meter_stop();
}
END_TEST

/* A batch the service finds too large is sent again in halves; a record alone too large
 * is dead-lettered, and the spool goes on. */
START_TEST(ship_halves_a_batch_too_large)
{
    meter_start((int[]){413, 413, 200, 0}, NULL);
    fill_spool(0, 4, 0);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    /* 4 records refused, then 2, then 1 taken, then the last 3 taken by 2 and 1. */
    ck_assert_int_eq(meter.requests, 5);
    expect_received(0, 4);
    ck_assert_uint_eq(stats.dead_lettered, 0);
    meter_stop();
    meter_start((int[]){413, 0}, NULL);
    fill_spool(4, 6, 0);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    ck_assert_uint_eq(stats.dead_lettered, 2);
    ck_assert_uint_eq(dead_letters(), 2);
    meter_stop();
}
END_TEST

#define APPENDERS 4
#define APPENDS 150

struct appender {
    struct rt_spool *spool;
    int id, ok;
};

static void *append_many(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < APPENDS; i++) {
        char rec[64];
        int n = snprintf(rec, sizeof rec, "{\"t\":%d,\"n\":%d}", a->id, i);
        a->ok += rt_spool_append(a->spool, rec, (size_t)n, NULL) == RT_OK;
    }
    return NULL;
}

/* Callers sharing syncs while the segment fills up and rotates under them: every append is
 * answered, and each record is in the spool once. */
START_TEST(group_commit_across_rotations_keeps_every_record)
{
    struct rt_spool *s;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 4096, &s, NULL), RT_OK);
    pthread_t t[APPENDERS];
    struct appender a[APPENDERS];
    for (int i = 0; i < APPENDERS; i++) {
        a[i] = (struct appender){.spool = s, .id = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, append_many, &a[i]), 0);
    }
    for (int i = 0; i < APPENDERS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].ok, APPENDS);
    }
    rt_spool_close(s);
    char *all = read_segments(in_tmp("spool"));
    ck_assert_uint_eq(count_lines(all), APPENDERS * APPENDS);
    for (int i = 0; i < APPENDERS; i++)
        for (int j = 0; j < APPENDS; j++) {
            char rec[64];
            snprintf(rec, sizeof rec, "{\"t\":%d,\"n\":%d}\n", i, j);
            ck_assert_msg(strstr(all, rec) != NULL, "missing %s", rec);
        }
    /* Two callers that both found a segment full retire it once: none is left short. */
    off_t size[16];
    int segments = 0;
    for (struct stat sb; segments < 16; segments++) {
        char name[64];
        snprintf(name, sizeof name, "spool/seg-%016d.ndjson", segments + 1);
        if (stat(in_tmp(name), &sb) != 0)
            break;
        size[segments] = sb.st_size;
    }
    ck_assert_int_ge(segments, 2);
    for (int i = 0; i + 1 < segments; i++)
        ck_assert_int_ge(size[i], 4096);
    free(all);
}
END_TEST

/* A writer that keeps its segment open (faasrun serve) while others start the next one
 * before it is full (a new process appends after the cursor moved into it). */
struct keeper {
    struct rt_spool *spool;
    atomic_bool stop;
    int written, failed;
};

static void *keep_appending(void *arg)
{
    struct keeper *k = arg;
    while (!atomic_load(&k->stop)) {
        char rec[64];
        int n = snprintf(rec, sizeof rec, "{\"k\":%d}", k->written);
        if (rt_spool_write(k->spool, rec, (size_t)n, NULL, NULL) == RT_OK)
            k->written++;
        else
            k->failed++;
        struct timespec ts = {0, 200000}; /* an invocation's pace, not a flood */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Read everything the cursor has not passed, counting each writer's records by number. */
static void drain(struct rt_spool *s, int *keeper_seen, int nkeeper, int *other_seen,
                  int nother)
{
    for (;;) {
        struct rt_spool_batch b;
        ck_assert_int_eq(rt_spool_next_batch(s, 1000, &b, NULL), RT_OK);
        if (b.nlines == 0)
            break;
        for (size_t i = 0; i < b.nlines; i++) {
            int n = -1;
            if (sscanf(b.line[i], "{\"k\":%d}", &n) == 1 && n >= 0 && n < nkeeper)
                keeper_seen[n]++;
            else if (sscanf(b.line[i], "{\"o\":%d}", &n) == 1 && n >= 0 && n < nother)
                other_seen[n]++;
            else
                ck_abort_msg("unexpected line %.*s", (int)b.line_len[i], b.line[i]);
        }
        ck_assert_int_eq(rt_spool_commit(s, &b, NULL), RT_OK);
        rt_spool_batch_free(&b);
    }
}

#define KEEPER_MAX 1000000
#define OTHER_ROUNDS 15

/* The shipper retires a segment that has a newer one while a writer still appends to it:
 * every record is read once, none goes down with the segment. */
START_TEST(retiring_a_segment_loses_no_late_append)
{
    struct rt_spool *shipper = NULL;
    struct keeper k = {.stop = false};
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &k.spool, NULL), RT_OK);
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &shipper, NULL), RT_OK);
    ck_assert_int_eq(rt_spool_claim(shipper, NULL), RT_OK);
    int *keeper_seen = calloc(KEEPER_MAX, sizeof *keeper_seen);
    int other_seen[OTHER_ROUNDS] = {0};
    ck_assert_ptr_nonnull(keeper_seen);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, keep_appending, &k), 0);
    for (int round = 0; round < OTHER_ROUNDS; round++) {
        struct rt_spool *other = NULL;
        char rec[64];
        int n = snprintf(rec, sizeof rec, "{\"o\":%d}", round);
        ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &other, NULL), RT_OK);
        ck_assert_int_eq(rt_spool_append(other, rec, (size_t)n, NULL), RT_OK);
        rt_spool_close(other);
        drain(shipper, keeper_seen, KEEPER_MAX, other_seen, OTHER_ROUNDS);
    }
    atomic_store(&k.stop, true);
    pthread_join(t, NULL);
    drain(shipper, keeper_seen, KEEPER_MAX, other_seen, OTHER_ROUNDS);
    rt_spool_close(shipper);
    rt_spool_close(k.spool);
    ck_assert_int_eq(k.failed, 0);
    ck_assert_int_lt(k.written, KEEPER_MAX);
    int lost = 0, twice = 0;
    for (int i = 0; i < k.written; i++) {
        lost += keeper_seen[i] == 0;
        twice += keeper_seen[i] > 1;
    }
    for (int i = 0; i < OTHER_ROUNDS; i++)
        ck_assert_int_eq(other_seen[i], 1);
    free(keeper_seen);
    ck_assert_msg(lost == 0 && twice == 0, "%d of %d records lost, %d read twice", lost,
                  k.written, twice);
}
END_TEST

START_TEST(spool_rotates_and_survives_a_torn_record)
{
    fill_spool(0, 3, 100);
    /* A crash in the middle of a write left half a record at the end of the newest one. */
    FILE *f = fopen(in_tmp("spool/seg-0000000000000002.ndjson"), "a");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\": \"to", f);
    fclose(f);
    fill_spool(3, 8, 100);
    meter_start((int[]){200, 0}, NULL);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    expect_received(0, 8);
    ck_assert_uint_eq(stats.dead_lettered, 1);
    /* Fully shipped segments are gone, the newest stays for appends. */
    ck_assert_int_ne(access(in_tmp("spool/seg-0000000000000001.ndjson"), F_OK), 0);
    meter_stop();
}
END_TEST

/* Another process killed in the middle of its write (SIGKILL between two pages of it) left
 * half a record at the end of the segment that a running writer (faasrun serve) has open:
 * the writer's next record starts on a line of its own instead of being glued to it. */
START_TEST(a_torn_record_of_another_writer_takes_nothing_with_it)
{
    struct rt_spool *s = NULL;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &s, NULL), RT_OK);
    append_records(s, 0, 1);
    FILE *f = fopen(in_tmp("spool/seg-0000000000000001.ndjson"), "a");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\": \"to", f);
    fclose(f);
    append_records(s, 1, 3);
    rt_spool_close(s);
    meter_start((int[]){200, 0}, NULL);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    expect_received(0, 3);
    ck_assert_uint_eq(stats.dead_lettered, 1);
    meter_stop();
}
END_TEST

/* Empty lines where the cursor stands (a writer cut short right after the newline it put
 * before its record) are stepped over: the segments after them are still shipped. */
START_TEST(empty_lines_at_the_cursor_do_not_end_the_spool)
{
    fill_spool(0, 2, 0);
    meter_start((int[]){200, 0}, NULL);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    FILE *f = fopen(in_tmp("spool/seg-0000000000000001.ndjson"), "a");
    ck_assert_ptr_nonnull(f);
    fputs("\n\n", f);
    fclose(f);
    f = fopen(in_tmp("spool/seg-0000000000000002.ndjson"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\": \"r2\", \"n\": 2}\n", f);
    fclose(f);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    expect_received(0, 3);
    ck_assert_int_ne(access(in_tmp("spool/seg-0000000000000001.ndjson"), F_OK), 0);
    meter_stop();
}
END_TEST

START_TEST(cli_invoke_ships_to_meter)
{
    write_manifest();
    meter_start((int[]){200, 0}, NULL);
    const char *args[] = {"invoke", "--manifest", in_tmp("manifest.json"), "--spool",
                          in_tmp("spool"), "--meter", meter_url(), "--meter-key", "k9",
                          "acme", "hello", NULL};
    struct rt_exec_result r = faasrun("meter", args);
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_str_eq(r.output, "Hello, meter!\n");
    ck_assert_str_eq(r.errlog, "");
    rt_exec_result_free(&r);
    ck_assert_int_eq(meter.requests, 1);
    ck_assert_str_eq(meter.auth, "Bearer k9");
    ck_assert_uint_eq(count_lines(meter.received.data), 2);
    ck_assert_ptr_nonnull(strstr(meter.received.data, "\"type\":\"start\""));
    ck_assert_ptr_nonnull(strstr(meter.received.data, "\"type\":\"stop\""));
    meter_stop();

    /* The service is down: the invocation still succeeds and the records stay. */
    meter_start((int[]){503, 0}, NULL);
    const char *args2[] = {"invoke", "--manifest", in_tmp("manifest.json"), "--spool",
                           in_tmp("spool"), "--meter", meter_url(), "--ship-deadline-ms", "300",
                           "acme", "hello", NULL};
    r = faasrun(NULL, args2);
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_ptr_nonnull(strstr(r.errlog, "records stay in the spool"));
    rt_exec_result_free(&r);
    meter_stop();
    meter_start((int[]){200, 0}, NULL);
    const char *args3[] = {"ship", "--spool", in_tmp("spool"), "--meter", meter_url(), NULL};
    r = faasrun(NULL, args3);
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_str_eq(r.output, "accepted 2, duplicates 0, dead-lettered 0\n");
    rt_exec_result_free(&r);
    meter_stop();
}
END_TEST

/* faasrun ship sends a spool that exists: a folder that is not there (or not a folder) is
 * bad usage, one line and exit code 2, and nothing is created, neither the folder nor its
 * lock. */
START_TEST(cli_ship_refuses_a_missing_spool)
{
    meter_start((int[]){200, 0}, NULL);
    const char *missing = in_tmp("no-such/spool");
    const char *args[] = {"ship", "--spool", missing, "--meter", meter_url(), NULL};
    struct rt_exec_result r = faasrun(NULL, args);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want,
             "faasrun ship: --spool: no spool folder %s: No such file or directory\n", missing);
    ck_assert_int_eq(r.exit_code, 2);
    ck_assert_str_eq(r.output, "");
    ck_assert_str_eq(r.errlog, want);
    rt_exec_result_free(&r);
    ck_assert_int_ne(access(in_tmp("no-such"), F_OK), 0);

    write_file(in_tmp("a-file"), "");
    const char *file[] = {"ship", "--spool", in_tmp("a-file"), "--meter", meter_url(), NULL};
    r = faasrun(NULL, file);
    snprintf(want, sizeof want, "faasrun ship: --spool: no spool folder %s: Not a directory\n",
             in_tmp("a-file"));
    ck_assert_int_eq(r.exit_code, 2);
    ck_assert_str_eq(r.errlog, want);
    rt_exec_result_free(&r);
    ck_assert_int_eq(meter.requests, 0);
    meter_stop();
}
END_TEST

START_TEST(spool_cap_counts_only_unshipped_records)
{
    /* Far less than a segment: what was shipped stays on disk until a newer segment exists,
     * and must not keep the spool full. */
    fill_spool(0, 4000, 0);
    struct rt_spool *s = NULL;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &s, NULL), RT_OK);
    rt_spool_set_cap(s, 50000);
    ck_assert(!rt_spool_has_room(s));
    meter_start((int[]){200, 0}, NULL);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    expect_received(0, 4000);
    meter_stop();
    ck_assert_int_eq(access(in_tmp("spool/seg-0000000000000001.ndjson"), F_OK), 0);
    rt_spool_set_cap(s, 50000); /* look again now rather than in 100 ms */
    ck_assert(rt_spool_has_room(s));
    /* New records count again, from where the shipper stopped. */
    append_records(s, 4000, 8000);
    rt_spool_set_cap(s, 50000);
    ck_assert(!rt_spool_has_room(s));
    rt_spool_close(s);
}
END_TEST

static size_t dead_letters(void)
{
    FILE *f = fopen(in_tmp("spool/" RT_SPOOL_DEAD_LETTER), "r");
    if (f == NULL)
        return 0;
    size_t n = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    return n;
}

START_TEST(torn_line_is_dead_lettered_once_when_delivered)
{
    fill_spool(0, 2, 0);
    FILE *f = fopen(in_tmp("spool/seg-0000000000000001.ndjson"), "a");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\": \"to\n", f);
    fclose(f);
    fill_spool(2, 4, 0);
    /* The service is down through several attempts: nothing is done with the batch yet. */
    meter_start((int[]){503, 0}, NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ship(in_tmp("spool"), NULL, 300, NULL, NULL), RT_ETIMEDOUT);
    ck_assert_int_ge(meter.requests, 3);
    meter_stop();
    ck_assert_uint_eq(dead_letters(), 0);
    meter_start((int[]){200, 0}, NULL);
    struct rt_ship_stats stats = {0};
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, &stats, NULL), RT_OK);
    expect_received(0, 4);
    ck_assert_uint_eq(stats.dead_lettered, 1);
    ck_assert_uint_eq(dead_letters(), 1);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    ck_assert_uint_eq(dead_letters(), 1);
    meter_stop();
}
END_TEST

/* In a child: a file size limit cuts one append short, then lifts; exit code 0 when the
 * spool answered as it should. */
static int short_write_child(void)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rt_spool *s = NULL;
    if (rt_spool_open(in_tmp("spool"), 0, &s, NULL) != RT_OK)
        return 10;
    const char *a = "{\"id\": \"a\"}", *c = "{\"id\": \"c\"}";
    char b[200];
    int n = snprintf(b, sizeof b, "{\"id\": \"b\", \"pad\": \"%0150d\"}", 0);
    if (rt_spool_append(s, a, strlen(a), NULL) != RT_OK)
        return 11;
    struct stat sb;
    if (stat(in_tmp("spool/seg-0000000000000001.ndjson"), &sb) != 0)
        return 12;
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 40;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 13;
    struct fm_err err = {""};
    if (rt_spool_append(s, b, (size_t)n, &err) == RT_OK)
        return 14; /* it cannot have fit */
    /* A short write sets no errno: the message says what happened, not a stale error. */
    char want[PATH_MAX + 200];
    snprintf(want, sizeof want,
             "cannot append to a segment in %s: only 40 of %d bytes written (no space left, "
             "or a file size limit)",
             in_tmp("spool"), n + 1);
    if (strcmp(err.msg, want) != 0)
        return 17;
    if (setrlimit(RLIMIT_FSIZE, &old) != 0)
        return 15;
    enum rt_status st = rt_spool_append(s, c, strlen(c), NULL);
    rt_spool_close(s);
    return st == RT_OK ? 0 : 16;
}

START_TEST(short_write_leaves_no_fragment)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(short_write_child());
    int wstatus = 0;
    for (int i = 0; i < 1000 && waitpid(pid, &wstatus, WNOHANG) == 0; i++)
        usleep(10000);
    if (waitpid(pid, &wstatus, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
        ck_abort_msg("the writing process did not finish within 10 s");
    }
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "child status %d",
                  wstatus);
    char *all = read_segments(in_tmp("spool"));
    ck_assert_str_eq(all, "{\"id\": \"a\"}\n{\"id\": \"c\"}\n");
    free(all);
}
END_TEST

START_TEST(cli_invoke_leaves_shipping_to_the_spools_shipper)
{
    write_manifest();
    meter_start((int[]){200, 0}, NULL);
    /* Another shipper (a running faasrun serve) holds the spool. */
    struct rt_spool *held = NULL;
    ck_assert_int_eq(rt_spool_open(in_tmp("spool"), 0, &held, NULL), RT_OK);
    ck_assert_int_eq(rt_spool_claim(held, NULL), RT_OK);
    const char *args[] = {"invoke", "--manifest", in_tmp("manifest.json"), "--spool",
                          in_tmp("spool"), "--meter", meter_url(), "acme", "hello", NULL};
    int64_t t0 = fm_mono_us();
    struct rt_exec_result r = faasrun("x", args);
    ck_assert_int_lt(fm_mono_us() - t0, 3000000); /* not its 10 s shipping deadline */
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_str_eq(r.output, "Hello, x!\n");
    ck_assert_str_eq(r.errlog, "");
    rt_exec_result_free(&r);
    const char *verbose[] = {"invoke", "--manifest", in_tmp("manifest.json"), "--spool",
                             in_tmp("spool"), "--meter", meter_url(), "--verbose", "acme",
                             "hello", NULL};
    t0 = fm_mono_us();
    r = faasrun("y", verbose);
    ck_assert_int_lt(fm_mono_us() - t0, 3000000);
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_ptr_nonnull(strstr(r.errlog, "another shipper holds this spool"));
    rt_exec_result_free(&r);
    ck_assert_int_eq(meter.requests, 0);
    /* The holder sends them. */
    rt_spool_close(held);
    ck_assert_int_eq(ship(in_tmp("spool"), NULL, 5000, NULL, NULL), RT_OK);
    ck_assert_uint_eq(count_lines(meter.received.data), 4);
    meter_stop();
}
END_TEST

Suite *suite_runtime(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("manifest");
    tcase_add_checked_fixture(tc, make_tmp, remove_tmp);
    tcase_add_loop_test(tc, manifest_errors_name_entry_and_field, 0,
                        (int)(sizeof bad_manifests / sizeof bad_manifests[0]));
    tcase_add_test(tc, manifest_defaults_and_paths);
    tcase_add_test(tc, manifest_zero_characters);
    suite_add_tcase(s, tc);

    tc = tcase_create("exec");
    tcase_add_checked_fixture(tc, make_tmp, remove_tmp);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, exec_ok_captures_output);
    tcase_add_test(tc, exec_nonzero_exit_is_error);
    tcase_add_test(tc, exec_timeout_kills_the_group);
    tcase_add_test(tc, exec_memory_limit_is_oom);
    tcase_add_test(tc, exec_cgroup_holds_every_process_of_the_function);
    tcase_add_test(tc, functions_run_as_their_user);
    tcase_add_test(tc, exec_signal_is_crashed);
    tcase_add_test(tc, exec_137_and_sigkill_are_not_oom);
    tcase_add_test(tc, exec_peak_memory_is_the_functions_own);
    tcase_add_test(tc, samples_carry_the_peak_the_stop_carries);
    tcase_add_test(tc, exec_output_over_cap_is_error);
    tcase_add_test(tc, exec_missing_program_is_error_127);
    tcase_add_test(tc, proc_readings_reuse_their_files);
    tcase_add_test(tc, records_in_spool_are_exact);
    tcase_add_test(tc, cli_invoke_exit_codes);
    tcase_add_test(tc, closed_standard_streams_stay_out_of_the_spool);
    tcase_add_test(tc, cli_invoke_bad_input_is_usage);
    suite_add_tcase(s, tc);
    return s;
}

Suite *suite_runtime_ship(void)
{
    Suite *s = suite_create("runtime_ship");
    TCase *tc = tcase_create("ship");
    tcase_add_checked_fixture(tc, make_tmp, remove_tmp);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, meter_urls);
    tcase_add_test(tc, ship_sends_ndjson_with_key);
    tcase_add_test(tc, ship_retries_5xx_and_429);
    tcase_add_test(tc, ship_resumes_after_crash);
    tcase_add_test(tc, records_never_go_behind_the_cursor);
    tcase_add_test(tc, ship_dead_letters_rejected);
    tcase_add_test(tc, ship_keeps_a_batch_a_200_does_not_account_for);
    tcase_add_test(tc, ship_refused_batch_stays);
    tcase_add_test(tc, ship_halves_a_batch_too_large);
    tcase_add_test(tc, spool_rotates_and_survives_a_torn_record);
    tcase_add_test(tc, a_torn_record_of_another_writer_takes_nothing_with_it);
    tcase_add_test(tc, empty_lines_at_the_cursor_do_not_end_the_spool);
    tcase_add_test(tc, group_commit_across_rotations_keeps_every_record);
    tcase_add_test(tc, retiring_a_segment_loses_no_late_append);
    tcase_add_test(tc, cli_invoke_ships_to_meter);
    tcase_add_test(tc, cli_ship_refuses_a_missing_spool);
    tcase_add_test(tc, spool_cap_counts_only_unshipped_records);
    tcase_add_test(tc, torn_line_is_dead_lettered_once_when_delivered);
    tcase_add_test(tc, short_write_leaves_no_fragment);
    tcase_add_test(tc, cli_invoke_leaves_shipping_to_the_spools_shipper);
    suite_add_tcase(s, tc);
    return s;
}
