/*
 * probe-warm: a warm function that does what the request says, to show how the runtime
 * meters and contains warm workers:
 *   "pid"        answers its process id (to tell one worker from another)
 *   "count"      answers how many requests this worker has served
 *   "fail"       fails with code 3
 *   "crash"      dies of SIGSEGV
 *   "kill"       dies of SIGKILL, sent to itself
 *   "code N"     replies with code N and no output
 *   "sleep MS"   sleeps MS milliseconds
 *   "burn MS"    spins until it has used MS milliseconds of CPU
 *   "hog MB"     allocates and touches MB mebibytes (code 137 when that fails)
 *   "print TEXT" prints TEXT and a newline to its (buffered) stdout, the log
 *   "child MS MB" runs a child that spins for MS milliseconds of CPU and touches MB
 *                mebibytes, and waits for it
 *   "twice"      breaks the protocol: answers "A" and, at once, "B" unasked
 */
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/functions/warm.h"

static long served;

static long arg_of(const struct warm_request *req, size_t skip)
{
    char num[32] = "";
    size_t n = req->len - skip < sizeof num - 1 ? req->len - skip : sizeof num - 1;
    memcpy(num, req->payload + skip, n);
    return strtol(num, NULL, 10);
}

static bool starts(const struct warm_request *req, const char *word)
{
    size_t n = strlen(word);
    return req->len >= n && memcmp(req->payload, word, n) == 0;
}

/* Spin until this process has used ms milliseconds of CPU. */
static void burn(long ms)
{
    /* CPU time, not wall time: on a busy machine the same wall time holds less CPU, and
     * what the runtime must account for is the CPU spent. */
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile unsigned long spin = 0;
    do {
        for (int i = 0; i < 100000; i++)
            spin += (unsigned long)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

static int probe(const struct warm_request *req, FILE *out, void *ctx)
{
    (void)ctx;
    served++;
    if (starts(req, "pid")) {
        fprintf(out, "%ld\n", (long)getpid());
    } else if (starts(req, "count")) {
        fprintf(out, "%ld\n", served);
    } else if (starts(req, "fail")) {
        fputs("probe: failing on purpose\n", stderr);
        return 3;
    } else if (starts(req, "crash")) {
        raise(SIGSEGV);
    } else if (starts(req, "kill")) {
        raise(SIGKILL);
    } else if (starts(req, "code ")) {
        return (int)arg_of(req, 5);
    } else if (starts(req, "sleep ")) {
        long ms = arg_of(req, 6);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
        fprintf(out, "slept %ld ms\n", ms);
    } else if (starts(req, "burn ")) {
        long ms = arg_of(req, 5);
        burn(ms);
        fprintf(out, "burnt %ld ms\n", ms);
    } else if (starts(req, "child ")) {
        char *mb_at = memchr(req->payload + 6, ' ', req->len - 6);
        long ms = arg_of(req, 6), mb = mb_at ? arg_of(req, (size_t)(mb_at - req->payload)) : 0;
        fflush(out);
        pid_t pid = fork();
        if (pid == 0) {
            /* Touched through a volatile pointer, so that the pages become resident and
             * the compiler cannot drop stores nobody reads. */
            volatile char *mem = mb > 0 ? malloc((size_t)mb << 20) : NULL;
            for (size_t at = 0; mem && at < (size_t)mb << 20; at += 4096)
                mem[at] = 1;
            burn(ms);
            _exit(mem || mb == 0 ? 0 : 1);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            return 4;
        fprintf(out, "child done\n");
    } else if (starts(req, "hog ")) {
        long mb = arg_of(req, 4);
        char **chunks = calloc((size_t)(mb > 0 ? mb : 1), sizeof *chunks);
        long got = 0;
        while (chunks && got < mb && (chunks[got] = malloc(1 << 20)) != NULL)
            memset(chunks[got++], 1, 1 << 20); /* touched, so the pages become resident */
        /* Given back either way: only this invocation's peak should show it. */
        for (long i = 0; i < got; i++)
            free(chunks[i]);
        free(chunks);
        if (got < mb)
            return 137;
        fprintf(out, "allocated %ld MB\n", mb);
    } else if (starts(req, "twice")) {
        /* The runtime reads replies on fd 4: two answers go there in one write, the second
         * nobody asked for (and warm_run's own after them). */
        static const char both[] = "DONE 0 1\nADONE 0 1\nB";
        if (warm_write_all(4, both, sizeof both - 1) != 0)
            return 5;
    } else if (starts(req, "print ")) {
        printf("%.*s\n", (int)(req->len - 6), req->payload + 6);
        fputs("printed\n", out);
    } else {
        fputs("probe: unknown request\n", stderr);
        return 2;
    }
    return 0;
}

int main(void)
{
    return warm_run(probe, NULL);
}
