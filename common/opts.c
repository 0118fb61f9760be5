#include "common/opts.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void fm_opt_refused(const struct option *opts, char *const argv[], int c, char *out, size_t n)
{
    /* A long option is refused with optind past it. A short one is refused with optind
     * past it only when it ends its argument ("-qz" refuses q with optind still on it), so
     * the argument before may be an earlier, accepted long option: optopt tells them apart,
     * the refused short option's letter, or the long one's value (0 when unknown). */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    int len = (int)strcspn(arg, "=");
    if (strncmp(arg, "--", 2) == 0) {
        const struct option *o = opts;
        while (o->name && !(strncmp(o->name, arg + 2, (size_t)len - 2) == 0 &&
                            o->name[len - 2] == '\0'))
            o++;
        if (c == ':') {
            snprintf(out, n, "%.*s: missing its value", len, arg);
            return;
        }
        if (optopt == 0) {
            snprintf(out, n, "%.*s: unknown or ambiguous option", len, arg);
            return;
        }
        if (o->name && o->has_arg == no_argument && arg[len] == '=' && o->val == optopt) {
            snprintf(out, n, "%.*s: takes no value", len, arg);
            return;
        }
    }
    snprintf(out, n, "-%c: unknown option", optopt);
}
