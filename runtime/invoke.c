#include "runtime/invoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "runtime/pool.h"
#include "runtime/worker.h"

#define RECORD_MAX 4096
#define ENV_MAX 80 /* the manifest's 64 plus the runtime's own */

static bool env_has(char *const *env, const char *entry)
{
    size_t klen = strcspn(entry, "=");
    for (; env && *env; env++)
        if (strncmp(*env, entry, klen) == 0 && (*env)[klen] == '=')
            return true;
    return false;
}

/*
 * The function's environment: the manifest's variables, then the runtime's defaults unless
 * the manifest set them. Nothing leaks in from the runtime's own environment.
 * Returns a NULL-terminated array whose strings live in vars[], or NULL on overflow.
 */
static char **build_env(const struct rt_function *fn, const char *invocation_id,
                        char vars[][160], char **envp)
{
    size_t n = 0, nvars = 0;
    for (char **e = fn->env; e && *e && n < ENV_MAX; e++)
        envp[n++] = *e;
    const char *fixed[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TZ=UTC"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!env_has(fn->env, fixed[i]))
            envp[n++] = (char *)fixed[i];
    snprintf(vars[nvars++], 160, "FAASMETER_TENANT=%s", fn->tenant);
    snprintf(vars[nvars++], 160, "FAASMETER_FUNCTION=%s", fn->name);
    /* A warm worker serves many invocations: each request frame carries its id instead. */
    if (invocation_id)
        snprintf(vars[nvars++], 160, "FAASMETER_INVOCATION_ID=%s", invocation_id);
    snprintf(vars[nvars++], 160, "FAASMETER_MEMORY_MB=%d", fn->memory_mb);
    snprintf(vars[nvars++], 160, "FAASMETER_TIMEOUT_MS=%lld", (long long)fn->timeout_ms);
    for (size_t i = 0; i < nvars; i++)
        envp[n++] = vars[i];
    envp[n] = NULL;
    return envp;
}

/* Append rec to the spool; with sync, wait until it and everything before it is on disk. */
static enum rt_status spool_record(struct rt_spool *spool, const struct fm_buf *rec, bool sync,
                                   struct fm_err *err)
{
    if (rec->failed) {
        fm_err_set(err, "record larger than %d bytes", RECORD_MAX);
        return RT_ENOMEM;
    }
    uint64_t ticket = 0;
    enum rt_status st = rt_spool_write(spool, rec->data, rec->len, &ticket, err);
    if (st == RT_OK && sync)
        st = rt_spool_sync(spool, ticket, err);
    if (st != RT_OK)
        fm_err_prefix(err, "cannot record the invocation");
    return st;
}

/* Resource records of one invocation, written as its sampler fires. */
struct sampling {
    const struct rt_invocation *inv;
    struct rt_spool *spool;
    int n;
};

static void on_sample(void *ctx, const struct rt_usage_sample *use)
{
    struct sampling *sm = ctx;
    struct fm_buf rec;
    fm_buf_init(&rec, RECORD_MAX);
    if (rt_record_resource(sm->inv, sm->n, fm_wall_us(), use, &rec) == 0 &&
        rt_spool_write(sm->spool, rec.data, rec.len, NULL, NULL) == RT_OK)
        sm->n++;
    /* A lost sample loses detail, not money: the stop record carries the totals. */
    fm_buf_free(&rec);
}

/* Run inv on a warm worker: the one taken from the pool, else a new one (cold start). */
static void run_warm(const struct rt_function *fn, struct rt_worker **w,
                     const struct rt_invocation *inv, const struct rt_sampler *sampler,
                     const void *input, size_t input_len, struct rt_exec_result *run,
                     struct fm_err *err)
{
    char vars[8][160];
    char *envp[ENV_MAX + 16];
    struct rt_worker_spec spec = {
        .argv = fn->argv,
        .envp = build_env(fn, NULL, vars, envp),
        .memory_mb = fn->memory_mb,
        .user = fn->user,
    };
    if (*w == NULL && rt_worker_start(&spec, w, err) != RT_OK)
        return;
    rt_worker_invoke(*w, inv->id, fn->timeout_ms, input, input_len, sampler, run, err);
}

static void run_exec(const struct rt_function *fn, const struct rt_invocation *inv,
                     const struct rt_sampler *sampler, const void *input, size_t input_len,
                     struct rt_exec_result *run, struct fm_err *err)
{
    char vars[8][160];
    char *envp[ENV_MAX + 16];
    struct rt_exec_spec spec = {
        .argv = fn->argv,
        .envp = build_env(fn, inv->id, vars, envp),
        .memory_mb = fn->memory_mb,
        .user = fn->user,
        .timeout_ms = fn->timeout_ms,
        .input = input,
        .input_len = input_len,
        .sampler = sampler,
    };
    rt_exec_run(&spec, run, err);
}

enum rt_status rt_invoke(const struct rt_function *fn, struct rt_spool *spool,
                         const struct rt_invoke_opts *opts, const void *input, size_t input_len,
                         struct rt_invoke_result *out, struct fm_err *err)
{
    struct rt_invocation inv = {
        .fn = fn,
        .trigger = opts->trigger,
        .correlation_id = opts->correlation_id,
        .cold_start = true, /* exec mode starts a process every time */
    };
    struct rt_exec_result run = {0};
    struct rt_worker *worker = NULL;
    struct fm_buf rec;
    fm_buf_init(&rec, RECORD_MAX);
    enum rt_status st = RT_EBUSY;
    bool entered = false;
    if (opts->pool) {
        if (rt_pool_enter(opts->pool, fn) != RT_OK) {
            fm_err_set(err, "%s/%s runs %d invocations already, its concurrency limit",
                       fn->tenant, fn->name, fn->concurrency);
            goto out;
        }
        entered = true;
    }
    if (!rt_spool_has_room(spool)) {
        fm_err_set(err, "the metering spool %s is full or failing: not running unmetered",
                   rt_spool_dir(spool));
        st = RT_EFULL;
        goto out;
    }
    st = RT_EIO;
    if (rt_invocation_id(inv.id) != 0) {
        fm_err_set(err, "no random bytes for an invocation id");
        goto out;
    }
    if (fn->mode == RT_MODE_WARM && opts->pool)
        worker = rt_pool_take(opts->pool, fn);
    inv.cold_start = worker == NULL;
    inv.start_wall_us = fm_wall_us();
    /*
     * Durability is owed to the answer, not to the start: the start record is written (so a
     * killed runtime cannot lose it) but not synced, and the one sync after the stop record
     * covers both. A power loss while the function runs may then lose the start of an
     * invocation nobody was answered for; anything answered has both records on disk.
     */
    rt_record_start(&inv, &rec);
    if ((st = spool_record(spool, &rec, false, err)) != RT_OK)
        goto out;

    struct sampling sm = {.inv = &inv, .spool = spool};
    int64_t every_ms = opts->sample_every_ms > 0 ? opts->sample_every_ms : RT_SAMPLE_DEFAULT_MS;
    struct rt_sampler sampler = {.every_us = every_ms * 1000, .fn = on_sample, .ctx = &sm};
    struct fm_err run_err = {""};
    run.status = RT_RUN_REJECTED; /* until something ran */
    if (fn->mode == RT_MODE_WARM)
        run_warm(fn, &worker, &inv, &sampler, input, input_len, &run, &run_err);
    else
        run_exec(fn, &inv, &sampler, input, input_len, &run, &run_err);
    if (run.output == NULL) {
        /* It never ran: the stop record says so rather than leave the start dangling. */
        run = (struct rt_exec_result){.status = RT_RUN_REJECTED};
        snprintf(run.reason, sizeof run.reason, "%s", run_err.msg);
    }
    struct rt_stop_info stop = {
        .run = &run,
        .init_us = run.init_us,
        .bytes_in = (int64_t)input_len,
        /* What the caller is handed, not what the function wrote: the output of a failed
         * run is dropped (serve answers with an error, invoke prints nothing), and billing
         * it as egress would charge for bytes nobody received. */
        .bytes_out = run.status == RT_RUN_OK ? (int64_t)run.output_len : 0,
        .stop_wall_us = fm_wall_us(),
    };
    fm_buf_reset(&rec);
    rt_record_stop(&inv, &stop, &rec);
    if ((st = spool_record(spool, &rec, true, err)) != RT_OK)
        goto out;
    memcpy(out->invocation_id, inv.id, sizeof inv.id);
    out->cold_start = inv.cold_start;
    out->run = run;
    run = (struct rt_exec_result){0};
out:
    if (opts->pool)
        rt_pool_give(opts->pool, fn, worker);
    else
        rt_worker_stop(worker);
    if (entered)
        rt_pool_leave(opts->pool, fn);
    rt_exec_result_free(&run);
    fm_buf_free(&rec);
    return st;
}
