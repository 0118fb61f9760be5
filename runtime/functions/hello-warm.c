/*
 * hello-warm [--init-ms MS]: hello as a warm function. --init-ms stands for the costly
 * initialisation real functions do once per cold start (the time shows up as init_us).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/functions/warm.h"

static int greet(const struct warm_request *req, FILE *out, void *ctx)
{
    (void)ctx;
    size_t n = req->len;
    while (n > 0 && (req->payload[n - 1] == '\n' || req->payload[n - 1] == '\r'))
        n--;
    if (n == 0)
        fputs("Hello, world!\n", out);
    else
        fprintf(out, "Hello, %.*s!\n", (int)n, req->payload);
    return 0;
}

int main(int argc, char **argv)
{
    long init_ms = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--init-ms") == 0)
            init_ms = strtol(argv[i + 1], NULL, 10);
    struct timespec ts = {init_ms / 1000, (init_ms % 1000) * 1000000L};
    while (init_ms > 0 && nanosleep(&ts, &ts) != 0)
        ;
    return warm_run(greet, NULL);
}
