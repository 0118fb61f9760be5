#include "common/opts.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The prefix fm_getopt refused last, and the option it stands for (parsing options is
 * single-threaded, at start). */
static const char *prefix_text;
static const char *prefix_of;

int fm_getopt(int argc, char *const argv[], const char *optstring, const struct option *opts,
              int *idx)
{
    int at = -1;
    prefix_text = NULL;
    int c = getopt_long(argc, argv, optstring, opts, &at);
    if (idx != NULL && at >= 0)
        *idx = at;
    if (c == -1 || c == '?' || c == ':' || at < 0 || optind < 1)
        return c;
    /* The argument that named it: the one before its value when the value came apart. */
    const char *text = argv[optind - 1];
    if (opts[at].has_arg != no_argument && optarg == argv[optind - 1] && optind >= 2)
        text = argv[optind - 2];
    size_t len = strlen(opts[at].name);
    if (strncmp(text, "--", 2) == 0 && strncmp(text + 2, opts[at].name, len) == 0 &&
        (text[2 + len] == '\0' || text[2 + len] == '='))
        return c;
    prefix_text = text;
    prefix_of = opts[at].name;
    return '?';
}

void fm_opt_refused(const struct option *opts, char *const argv[], int c, char *out, size_t n)
{
    if (c == '?' && prefix_text != NULL) {
        snprintf(out, n, "%.*s: write --%s in full", (int)strcspn(prefix_text, "="),
                 prefix_text, prefix_of);
        return;
    }
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
