/*
 * sleepy MS [--fork]: sleeps MS milliseconds, then says so. With --fork it first starts a
 * child that prints its pid and sleeps as long, to show that a timeout ends the whole
 * process group and not just the function's own process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    if (argc > 2 && strcmp(argv[2], "--fork") == 0) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            printf("%ld\n", (long)getpid());
            fflush(stdout);
        }
        if (pid < 0)
            return 1;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    printf("slept %ld ms\n", ms);
    return 0;
}
