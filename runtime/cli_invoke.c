#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "runtime/cli.h"
#include "runtime/invoke.h"
#include "runtime/manifest.h"

#define INVOKE_SHIP_DEADLINE_MS 10000
#define DEFAULT_SPOOL "var/spool"

static const char usage[] =
    "usage: faasrun invoke --manifest FILE [--spool DIR] [--meter URL] [--meter-key KEY]\n"
    "                      [--ship-deadline-ms N] [--verbose] TENANT FUNCTION\n"
    "\n"
    "Run FUNCTION of TENANT once with stdin as the request and print its response on\n"
    "stdout. The start and stop records go to the spool (default $FAASMETER_SPOOL, else\n"
    "./" DEFAULT_SPOOL ") before the response is printed; with --meter the spool is then\n"
    "shipped (for up to 10000 ms by default; what is not delivered stays in the spool).\n"
    "\n"
    "  --meter-key KEY   bearer key (default $FAASMETER_KEY)\n"
    "  --verbose         print the invocation id and the function's stderr on stderr\n"
    "\n"
    "Exit status: 0 when the function succeeded, 1 when it failed (its status is named on\n"
    "stderr) or could not be metered, 2 on bad usage.\n";

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
    bool verbose;
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct invoke_args *a)
{
    static const struct option opts[] = {
        {"manifest", required_argument, NULL, 'f'}, {"spool", required_argument, NULL, 's'},
        {"meter", required_argument, NULL, 'm'},    {"meter-key", required_argument, NULL, 'k'},
        {"ship-deadline-ms", required_argument, NULL, 'd'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'f': a->manifest = optarg; break;
        case 's': a->spool = optarg; break;
        case 'm': a->meter = optarg; break;
        case 'k': a->key = optarg; break;
        case 'v': a->verbose = true; break;
        case 'd':
            if (cli_parse_int(optarg, 3600000, &a->ship_deadline_ms) != 0) {
                fprintf(stderr, "faasrun invoke: --ship-deadline-ms: expected 1-3600000\n");
                return CLI_USAGE;
            }
            break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: fputs(usage, stderr); return CLI_USAGE;
        }
    }
    if (a->manifest == NULL || argc - optind != 2) {
        fprintf(stderr, "faasrun invoke: needs --manifest FILE, TENANT and FUNCTION\n");
        return CLI_USAGE;
    }
    a->tenant = argv[optind];
    a->function = argv[optind + 1];
    if (a->spool == NULL)
        a->spool = getenv("FAASMETER_SPOOL");
    if (a->spool == NULL || *a->spool == '\0')
        a->spool = DEFAULT_SPOOL;
    return -1;
}

/* Say how the invocation went; returns the exit code for it. */
static int report(const struct invoke_args *a, const struct rt_invoke_result *res)
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
    fprintf(stderr, "faasrun: %s/%s: status %s (exit code %d)%s%s\n", a->tenant, a->function,
            rt_run_status_name(r->status), r->exit_code, r->reason[0] ? ": " : "", r->reason);
    return CLI_FAILED;
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
    struct rt_invoke_result res = {0};
    struct fm_buf input;
    fm_buf_init(&input, RT_OUTPUT_MAX);
    if (rt_manifest_load(a.manifest, &m, &err) != RT_OK) {
        fprintf(stderr, "faasrun: %s\n", err.msg);
        goto out;
    }
    const struct rt_function *fn = rt_manifest_find(m, a.tenant, a.function);
    if (fn == NULL) {
        fprintf(stderr, "faasrun: %s: no function %s of tenant %s\n", a.manifest, a.function,
                a.tenant);
        rc = CLI_USAGE;
        goto out;
    }
    if (read_all(stdin, &input) != 0) {
        fprintf(stderr, "faasrun: request: %s\n",
                input.failed ? "larger than 6291456 bytes" : strerror(errno));
        goto out;
    }
    if (rt_spool_open(a.spool, 0, &spool, &err) != RT_OK) {
        fprintf(stderr, "faasrun: %s\n", err.msg);
        goto out;
    }
    struct rt_invoke_opts opts = {.trigger = "cli"};
    if (rt_invoke(fn, spool, &opts, input.data, input.len, &res, &err) != RT_OK) {
        fprintf(stderr, "faasrun: %s/%s: %s\n", a.tenant, a.function, err.msg);
        goto out;
    }
    /* The response only goes out once both records are on disk, which rt_invoke ensured. */
    if (res.run.status == RT_RUN_OK &&
        write_all(STDOUT_FILENO, res.run.output, res.run.output_len) != 0) {
        fprintf(stderr, "faasrun: writing the response: %s\n", strerror(errno));
        goto out;
    }
    rc = report(&a, &res);
    /* Shipping problems do not change the exit code: the records are safe in the spool. */
    if (a.meter)
        cli_ship_spool(spool, a.meter, a.key, a.ship_deadline_ms, false);
out:
    rt_exec_result_free(&res.run);
    rt_spool_close(spool);
    rt_manifest_free(m);
    fm_buf_free(&input);
    return rc;
}
