/* Always fails: says so on stderr and exits 3. */
#include <stdio.h>

int main(void)
{
    fputs("fail: failing on purpose\n", stderr);
    return 3;
}
