/*
 * faasrun: the invocation runtime. Runs tenants' functions from a manifest, meters every
 * invocation into a durable spool and ships the records to the metering service.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "common/cli.h"
#include "runtime/cli.h"

static const char usage[] =
    "usage: faasrun COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  invoke --manifest FILE [--spool DIR] [--meter URL] [--meter-key KEY] TENANT FUNCTION\n"
    "         run one invocation (or pipeline): request on stdin, response on stdout\n"
    "  serve  --manifest FILE --meter URL --spool DIR [--listen ADDR:PORT] [--meter-key KEY]\n"
    "         serve POST /invoke/{tenant}/{function or pipeline} over HTTP, metered\n"
    "  ship   --spool DIR --meter URL [--meter-key KEY]\n"
    "         send the spool's unsent records to the metering service\n"
    "\n"
    "Run `faasrun COMMAND --help` for a command's options.\n";

int main(int argc, char **argv)
{
    if (fm_cli_std_fds() != 0)
        return 1;
    /* A function may close its stdin before reading the request; that is not our death. */
    signal(SIGPIPE, SIG_IGN);
    /* Each warm worker and each running invocation holds a few descriptors: take all the
     * system allows rather than the small default. */
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    if (argc < 2) {
        fputs("faasrun: expected a command: invoke, serve or ship (try faasrun --help)\n",
              stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "invoke") == 0)
        return cli_invoke(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") == 0)
        return cli_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "ship") == 0)
        return cli_ship(argc - 1, argv + 1);
    fprintf(stderr, "faasrun: unknown command '%s' (try faasrun --help)\n", argv[1]);
    return CLI_USAGE;
}
