#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cli.h"
#include "runtime/cli.h"
#include "runtime/invoke.h"
#include "runtime/manifest.h"
#include "runtime/pipeline.h"
#include "runtime/pool.h"

#define INVOKE_SHIP_DEADLINE_MS 10000
#define DEFAULT_SPOOL "var/spool"

static const char usage[] =
    "usage: faasrun invoke --manifest FILE [--spool DIR] [--meter URL] [--meter-key KEY]\n"
    "                      [--ship-deadline-ms N] [--sample-ms N] [--verbose]\n"
    "                      TENANT FUNCTION|PIPELINE\n"
    "\n"
    "Run FUNCTION of TENANT once with stdin as the request and print its response on\n"
    "stdout; a PIPELINE runs its steps in turn, each step's output the next one's input.\n"
    "A warm function gets a worker for this one invocation (a cold start). The start and\n"
    "stop records go to the spool (default $FAASMETER_SPOOL, else ./" DEFAULT_SPOOL ") before\n"
    "the response is printed; with --meter the spool is then shipped (for up to 10000 ms\n"
    "by default; what is not delivered stays in the spool).\n"
    "\n"
    "  --meter-key KEY   bearer key (default $FAASMETER_KEY)\n"
    "  --sample-ms N     a resource record every N ms of a long run (default 10000)\n"
    "  --verbose         print the invocation id and the function's stderr on stderr\n"
    "\n"
    "Exit status: 0 when the function succeeded, 1 when it failed (its status is named on\n"
    "stderr) or could not be metered, 2 on bad usage: bad options, a manifest that is\n"
    "missing or invalid, an unknown function, a request over 6291456 bytes.\n";

static int read_all(FILE *f, struct fm_buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (fm_buf_append(b, chunk, n) != 0)
            return -1;
    return ferror(f) ? -1 : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

struct invoke_args {
    const char *manifest, *spool, *meter, *key, *tenant, *function;
    int64_t ship_deadline_ms;
    int64_t sample_ms;
    bool verbose;
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct invoke_args *a)
{
    const struct fm_cli_opt opts[] = {
        FM_OPT_TEXT("--manifest", &a->manifest),
        FM_OPT_CHECKED("--spool", &a->spool, cli_check_folder, CLI_FOLDER_EXPECTED),
        FM_OPT_CHECKED("--meter", &a->meter, cli_check_meter, CLI_METER_EXPECTED),
        FM_OPT_SECRET("--meter-key", &a->key),
        FM_OPT_INT("--ship-deadline-ms", &a->ship_deadline_ms, NULL, 1, 3600000),
        FM_OPT_INT("--sample-ms", &a->sample_ms, NULL, 1, 3600000),
        FM_OPT_FLAG("--verbose", &a->verbose),
        FM_OPT_END,
    };
    const char *names[2];
    size_t nnames = 0;
    const struct fm_cli cli = {
        .prog = "faasrun",
        .cmd = "invoke",
        .opts = opts,
        .usage = usage,
        .positional = names,
        .npositional = &nnames,
        .max = 2,
    };
    int rc = fm_cli_parse(&cli, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->manifest == NULL || nnames != 2) {
        fprintf(stderr, "faasrun invoke: needs --manifest FILE, TENANT and FUNCTION\n");
        return CLI_USAGE;
    }
    a->tenant = names[0];
    a->function = names[1];
    if (a->spool == NULL)
        a->spool = getenv("FAASMETER_SPOOL");
    if (a->spool == NULL || *a->spool == '\0')
        a->spool = DEFAULT_SPOOL;
    return -1;
}

/* Say how the invocation went; returns the exit code for it. step names the pipeline step
 * that failed, or is NULL. */
static int report(const struct invoke_args *a, const struct rt_invoke_result *res,
                  const char *step)
{
    const struct rt_exec_result *r = &res->run;
    if (a->verbose) {
        fprintf(stderr, "faasrun: invocation %s: %s in %lld us\n", res->invocation_id,
                rt_run_status_name(r->status), (long long)r->duration_us);
        if (r->errlog_len)
            fwrite(r->errlog, 1, r->errlog_len, stderr);
    }
    if (r->status == RT_RUN_OK)
        return CLI_OK;
    fprintf(stderr, "faasrun: %s/%s%s%s: status %s (exit code %d)%s%s\n", a->tenant,
            a->function, step ? ": step " : "", step ? step : "", rt_run_status_name(r->status),
            r->exit_code, r->reason[0] ? ": " : "", r->reason);
    return CLI_FAILED;
}

/* Run the function or pipeline named by a; its outcome into *res. Returns an rt_status. */
static enum rt_status run(const struct invoke_args *a, const struct rt_manifest *m,
                          struct rt_spool *spool, struct rt_pool *pool, const struct fm_buf *input,
                          struct rt_invoke_result *res, const char **failed_step,
                          struct fm_err *err)
{
    struct rt_invoke_opts opts = {.trigger = "cli", .pool = pool, .sample_every_ms = a->sample_ms};
    const struct rt_function *fn = rt_manifest_find(m, a->tenant, a->function);
    if (fn)
        return rt_invoke(fn, spool, &opts, input->data, input->len, res, err);
    const struct rt_pipeline *pl = rt_manifest_find_pipeline(m, a->tenant, a->function);
    struct rt_pipeline_result pr;
    enum rt_status st = rt_pipeline_run(pl, spool, &opts, input->data, input->len, &pr, err);
    if (st != RT_OK)
        return st;
    *res = pr.last;
    *failed_step = pr.failed_step >= 0 ? pl->steps[pr.failed_step]->name : NULL;
    return RT_OK;
}

int cli_invoke(int argc, char **argv)
{
    struct invoke_args a = {.ship_deadline_ms = INVOKE_SHIP_DEADLINE_MS};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    rc = CLI_FAILED;
    struct fm_err err = {""};
    struct rt_manifest *m = NULL;
    struct rt_spool *spool = NULL;
    struct rt_pool *pool = NULL;
    struct rt_invoke_result res = {0};
    const char *failed_step = NULL;
    struct fm_buf input;
    fm_buf_init(&input, RT_OUTPUT_MAX);
    enum rt_status st = rt_manifest_load(a.manifest, &m, &err);
    if (st == RT_OK)
        st = rt_pool_new(m, &pool, &err);
    if (st != RT_OK) {
        fprintf(stderr, "faasrun: %s\n", err.msg);
        /* A manifest that is missing or invalid is bad input on the command line. */
        rc = st == RT_EINVAL ? CLI_USAGE : CLI_FAILED;
        goto out;
    }
    if (rt_manifest_find(m, a.tenant, a.function) == NULL &&
        rt_manifest_find_pipeline(m, a.tenant, a.function) == NULL) {
        fprintf(stderr, "faasrun: %s: no function or pipeline %s of tenant %s\n", a.manifest,
                a.function, a.tenant);
        rc = CLI_USAGE;
        goto out;
    }
    if (read_all(stdin, &input) != 0) {
        fprintf(stderr, "faasrun: request: %s\n",
                input.failed ? "larger than 6291456 bytes" : strerror(errno));
        /* A request over the cap is the caller's input, refused before anything ran (serve
         * answers it 413); a failing read is not. */
        rc = input.failed ? CLI_USAGE : CLI_FAILED;
        goto out;
    }
    if (rt_spool_open(a.spool, 0, &spool, &err) != RT_OK) {
        fprintf(stderr, "faasrun: %s\n", err.msg);
        goto out;
    }
    if (run(&a, m, spool, pool, &input, &res, &failed_step, &err) != RT_OK) {
        fprintf(stderr, "faasrun: %s/%s: %s\n", a.tenant, a.function, err.msg);
        goto out;
    }
    /* The response only goes out once both records are on disk, which rt_invoke ensured. */
    if (res.run.status == RT_RUN_OK &&
        write_all(STDOUT_FILENO, res.run.output, res.run.output_len) != 0) {
        fprintf(stderr, "faasrun: writing the response: %s\n", strerror(errno));
        goto out;
    }
    rc = report(&a, &res, failed_step);
    /* Shipping problems do not change the exit code: the records are safe in the spool. */
    if (a.meter) {
        /* A running shipper (faasrun serve) sends these records too: waiting for it to let
         * go of the spool would only hold up the caller until the deadline. */
        struct fm_err ship_err = {""};
        enum rt_status claimed = rt_spool_claim(spool, &ship_err);
        if (claimed == RT_EBUSY && a.verbose)
            fprintf(stderr, "faasrun: not shipping: %s; it will send the records\n",
                    ship_err.msg);
        else if (claimed != RT_EBUSY)
            cli_ship_spool(spool, a.meter, a.key, a.ship_deadline_ms, false);
    }
out:
    rt_exec_result_free(&res.run);
    rt_pool_free(pool);
    rt_spool_close(spool);
    rt_manifest_free(m);
    fm_buf_free(&input);
    return rc;
}
