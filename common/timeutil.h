#ifndef FM_TIMEUTIL_H
#define FM_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Times are int64 microseconds: since the Unix epoch (UTC) for wall time, since an arbitrary
 * point for the monotonic clock. */

#define FM_TIME_BUFSZ 32 /* "2026-11-27T10:11:32.123456Z" and its NUL */

int64_t fm_wall_us(void);
int64_t fm_mono_us(void);

/** Format wall time as RFC 3339 UTC with 6 fractional digits. Returns 0, or -1 if n is short. */
int fm_time_format(int64_t us, char *buf, size_t n);

/**
 * Parse RFC 3339 UTC ("YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z", "+00:00" accepted for Z).
 * @param out  written only on success
 * @return 0, or -1 when s is not such a time (other offsets are refused)
 */
int fm_time_parse(const char *s, int64_t *out);

/**
 * Parse a billing period "YYYY-MM" into [start, end) microseconds (calendar month, UTC).
 * Out-parameters are written only on success. Returns 0 or -1.
 */
int fm_period_parse(const char *s, int64_t *start_us, int64_t *end_us);

/** Microseconds at 00:00 UTC on the given civil date (month 1-12). No range checks. */
int64_t fm_civil_to_us(int year, int month, int day);

/** 00:00 UTC on the first day of the calendar month containing wall time us. */
int64_t fm_month_start_us(int64_t us);

/** The "YYYY-MM" period containing wall time us. buf must hold 8 bytes. */
void fm_period_of(int64_t us, char buf[8]);

#endif
