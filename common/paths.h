#ifndef FM_PATHS_H
#define FM_PATHS_H

#include <stddef.h>

/**
 * The folder holding faasmeter's data files (schema/, billing/catalog/): $FAASMETER_HOME
 * when set, else the source tree the binaries were built in. The string is static.
 */
const char *fm_home(void);

/** Write fm_home()/rel into buf. Returns 0, or -1 when buf is too small. */
int fm_home_path(const char *rel, char *buf, size_t n);

#endif
