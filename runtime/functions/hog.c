/*
 * hog MB: allocates MB mebibytes and touches every page. When an allocation fails (under an
 * address-space limit) it exits with 137, which the runtime reports as status "error": only
 * the kernel's OOM killer, ending it under a memory cgroup, makes "oom".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_OOM 137

int main(int argc, char **argv)
{
    long mb = argc > 1 ? strtol(argv[1], NULL, 10) : 64;
    for (long i = 0; i < mb; i++) {
        char *chunk = malloc(1 << 20);
        if (chunk == NULL) {
            fprintf(stderr, "hog: out of memory after %ld MB\n", i);
            return EXIT_OOM;
        }
        memset(chunk, (int)i, 1 << 20); /* written, so the pages become resident */
    }
    printf("allocated %ld MB\n", mb);
    return 0;
}
