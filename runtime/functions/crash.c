/* Dies of SIGSEGV, as a function with a wild pointer would. */
#include <signal.h>
#include <stdio.h>

int main(void)
{
    fputs("crash: about to crash\n", stderr);
    fflush(stderr);
    raise(SIGSEGV);
    return 0;
}
