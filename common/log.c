#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/timeutil.h"

enum fm_log_level fm_log_threshold = FM_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int fm_log_set_level(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            fm_log_threshold = (enum fm_log_level)i;
            return 0;
        }
    }
    return -1;
}

void fm_log_write(enum fm_log_level level, const char *fmt, ...)
{
    char when[FM_TIME_BUFSZ];
    char line[2048];
    fm_time_format(fm_wall_us(), when, sizeof when);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One write per line so concurrent threads do not interleave within a line. */
    fprintf(stderr, "%s %s %s\n", when, level_names[level], line);
}
