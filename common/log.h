#ifndef FM_LOG_H
#define FM_LOG_H

/* Leveled logging to stderr. The level is checked before anything is formatted. */
enum fm_log_level { FM_LOG_ERROR = 0, FM_LOG_WARN, FM_LOG_INFO, FM_LOG_DEBUG };

extern enum fm_log_level fm_log_threshold;

/** Set the threshold from a name ("error", "warn", "info", "debug"); returns -1 when unknown. */
int fm_log_set_level(const char *name);

void fm_log_write(enum fm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define fm_log(level, ...)                                                                    \
    do {                                                                                      \
        if ((level) <= fm_log_threshold)                                                      \
            fm_log_write((level), __VA_ARGS__);                                               \
    } while (0)
#define fm_error(...) fm_log(FM_LOG_ERROR, __VA_ARGS__)
#define fm_warn(...) fm_log(FM_LOG_WARN, __VA_ARGS__)
#define fm_info(...) fm_log(FM_LOG_INFO, __VA_ARGS__)
#define fm_debug(...) fm_log(FM_LOG_DEBUG, __VA_ARGS__)

#endif
