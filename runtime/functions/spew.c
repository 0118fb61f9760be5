/* spew N: writes N bytes of 'x' on stdout, to test the response cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long long left = argc > 1 ? strtoll(argv[1], NULL, 10) : 0;
    char block[65536];
    memset(block, 'x', sizeof block);
    while (left > 0) {
        size_t n = left < (long long)sizeof block ? (size_t)left : sizeof block;
        if (fwrite(block, 1, n, stdout) != n)
            return 1;
        left -= (long long)n;
    }
    return 0;
}
