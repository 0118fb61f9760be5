#include "runtime/invoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/timeutil.h"

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
    snprintf(vars[nvars++], 160, "FAASMETER_INVOCATION_ID=%s", invocation_id);
    snprintf(vars[nvars++], 160, "FAASMETER_MEMORY_MB=%d", fn->memory_mb);
    snprintf(vars[nvars++], 160, "FAASMETER_TIMEOUT_MS=%lld", (long long)fn->timeout_ms);
    for (size_t i = 0; i < nvars; i++)
        envp[n++] = vars[i];
    envp[n] = NULL;
    return envp;
}

static enum rt_status spool_record(struct rt_spool *spool, const struct fm_buf *rec,
                                   struct fm_err *err)
{
    if (rec->failed) {
        fm_err_set(err, "record larger than %d bytes", RECORD_MAX);
        return RT_ENOMEM;
    }
    enum rt_status st = rt_spool_append(spool, rec->data, rec->len, err);
    if (st != RT_OK)
        fm_err_prefix(err, "cannot record the invocation");
    return st;
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
    struct fm_buf rec;
    fm_buf_init(&rec, RECORD_MAX);
    enum rt_status st = RT_EIO;
    if (rt_invocation_id(inv.id) != 0) {
        fm_err_set(err, "no random bytes for an invocation id");
        goto out;
    }
    inv.start_wall_us = fm_wall_us();
    rt_record_start(&inv, &rec);
    if ((st = spool_record(spool, &rec, err)) != RT_OK)
        goto out;

    char vars[8][160];
    char *envp[ENV_MAX + 16];
    struct rt_exec_spec spec = {
        .argv = fn->argv,
        .envp = build_env(fn, inv.id, vars, envp),
        .memory_mb = fn->memory_mb,
        .timeout_ms = fn->timeout_ms,
        .input = input,
        .input_len = input_len,
    };
    struct fm_err exec_err = {""};
    if (rt_exec_run(&spec, &run, &exec_err) != RT_OK) {
        /* It never ran: the stop record says so rather than leave the start dangling. */
        run = (struct rt_exec_result){.status = RT_RUN_REJECTED};
        snprintf(run.reason, sizeof run.reason, "%s", exec_err.msg);
    }
    struct rt_stop_info stop = {
        .run = &run,
        .bytes_in = (int64_t)input_len,
        .bytes_out = (int64_t)run.output_len,
        .stop_wall_us = fm_wall_us(),
    };
    fm_buf_reset(&rec);
    rt_record_stop(&inv, &stop, &rec);
    if ((st = spool_record(spool, &rec, err)) != RT_OK)
        goto out;
    memcpy(out->invocation_id, inv.id, sizeof inv.id);
    out->run = run;
    run = (struct rt_exec_result){0};
out:
    rt_exec_result_free(&run);
    fm_buf_free(&rec);
    return st;
}
