#include "common/timeutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)

int64_t fm_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t fm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, by counting 400-year eras from
 * 0000-03-01 so that the leap day falls at the end of each counted year. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *year, int *month, int *day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = m;
    *day = d;
}

int64_t fm_civil_to_us(int year, int month, int day)
{
    return days_from_civil(year, month, day) * US_PER_DAY;
}

/* v (0 <= v < 10^width) as exactly width decimal digits, leading zeros kept. */
static void put_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

int fm_time_format(int64_t us, char *buf, size_t n)
{
    int64_t days = us / US_PER_DAY;
    int64_t rem = us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / US_PER_SEC;
    if (y >= 0 && y <= 9999 && n >= sizeof "2026-01-31T12:00:00.000000Z") {
        /* The common case, digit by digit: ingestion formats a time for every invocation. */
        put_digits(buf, y, 4);
        buf[4] = '-';
        put_digits(buf + 5, m, 2);
        buf[7] = '-';
        put_digits(buf + 8, d, 2);
        buf[10] = 'T';
        put_digits(buf + 11, (int)(secs / 3600), 2);
        buf[13] = ':';
        put_digits(buf + 14, (int)(secs / 60 % 60), 2);
        buf[16] = ':';
        put_digits(buf + 17, (int)(secs % 60), 2);
        buf[19] = '.';
        put_digits(buf + 20, (int)(rem % US_PER_SEC), 6);
        buf[26] = 'Z';
        buf[27] = '\0';
        return 0;
    }
    int len = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d,
                       (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
                       (int)(rem % US_PER_SEC));
    return len < 0 || (size_t)len >= n ? -1 : 0;
}

/* Read exactly `width` decimal digits. */
static int digits(const char **p, int width, int *out)
{
    int v = 0;
    for (int i = 0; i < width; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += width;
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

int fm_time_parse(const char *s, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h, mi, se;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &se))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        return -1;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (++n > 6)
                return -1;
            frac = frac * 10 + (*p++ - '0');
        }
        if (n == 0)
            return -1;
        for (; n < 6; n++)
            frac *= 10;
    }
    bool utc = ((*p == 'Z' || *p == 'z') && p[1] == '\0') || strcmp(p, "+00:00") == 0;
    if (!utc)
        return -1;
    *out = days_from_civil(y, mo, d) * US_PER_DAY +
           ((int64_t)h * 3600 + mi * 60 + se) * US_PER_SEC + frac;
    return 0;
}

int fm_period_parse(const char *s, int64_t *start_us, int64_t *end_us)
{
    const char *p = s;
    int y, m;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &m) || *p != '\0')
        return -1;
    if (y < 1970 || m < 1 || m > 12)
        return -1;
    *start_us = fm_civil_to_us(y, m, 1);
    *end_us = m == 12 ? fm_civil_to_us(y + 1, 1, 1) : fm_civil_to_us(y, m + 1, 1);
    return 0;
}

int64_t fm_month_start_us(int64_t us)
{
    int64_t days = us / US_PER_DAY - (us % US_PER_DAY < 0);
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    return days_from_civil(y, m, 1) * US_PER_DAY;
}

void fm_period_of(int64_t us, char buf[8])
{
    int64_t days = us / US_PER_DAY - (us % US_PER_DAY < 0);
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%04d-%02d", y % 10000, m);
    memcpy(buf, tmp, 7);
    buf[7] = '\0';
}
