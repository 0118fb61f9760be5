#include "common/paths.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef FAASMETER_HOME
#define FAASMETER_HOME "."
#endif

const char *fm_home(void)
{
    const char *env = getenv("FAASMETER_HOME");
    return env && *env ? env : FAASMETER_HOME;
}

int fm_home_path(const char *rel, char *buf, size_t n)
{
    int len = snprintf(buf, n, "%s/%s", fm_home(), rel);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}
