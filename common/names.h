#ifndef FM_COMMON_NAMES_H
#define FM_COMMON_NAMES_H

#include <stdbool.h>

/* Tenant and function names (DESIGN.md, usage records): one rule for the runtime's
 * manifests and trigger paths, meterd's records and queries, and faasbill's arguments. */
#define FM_TENANT_MAX 64
#define FM_FUNCTION_MAX 128
#define FM_TENANT_RULE "[a-z0-9][a-z0-9_-]{0,63}"
#define FM_FUNCTION_RULE "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"

/** Whether s is a tenant name (FM_TENANT_RULE), or with function, a function name
 *  (FM_FUNCTION_RULE). */
bool fm_name_ok(const char *s, bool function);

#endif
