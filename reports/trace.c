#include "reports/trace.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/timeutil.h"

#define LINE_MAX_BYTES (1u << 20)
#define HASH_MAX 64
#define NAME_HEX 12
#define MINUTES 1440
#define SECONDS (86400 + 3600) /* the day, and an hour for executions that run past it */
#define US INT64_C(1000000)
#define DEFAULT_MB 128
/* What a trace may hold, as records are bounded (README, "Records"): an execution of at most
 * a day and a function of at most 10240 MB. */
#define RUN_MAX_MS INT64_C(86400000)
#define MEM_MAX_MB INT64_C(10240)

/* Percentile points, in hundredths of a percent, of the two files' columns. */
static const int64_t run_pct[] = {0, 100, 2500, 5000, 7500, 9900, 10000};
static const int64_t mem_pct[] = {100, 500, 2500, 5000, 7500, 9500, 9900, 10000};
#define RUN_N 7
#define MEM_N 8

struct dist {
    char key[HASH_MAX + 1];
    int64_t v[MEM_N]; /* microseconds (run) or MB (memory) */
};

struct table {
    struct dist *d;
    size_t n, cap;
};

struct replay {
    struct table run, mem;
    /* Per second of the day: busy time and MB x time of the parts of executions that cover
     * a second only in part; whole seconds are counted as differences (a count and the MB
     * starting minus those ending at each second), so an execution costs the same whatever
     * its length. */
    int64_t *busy_us, *runs_diff, *mb_diff;
    __int128 *mb_us;
    int64_t calls; /* replayed so far */
    uint64_t rng;
};

/* splitmix64: small, fast and good enough to draw percentiles reproducibly. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Interpolate at u (hundredths of a percent) between percentile points. The values are
 * bounded (RUN_MAX_MS in microseconds at most), and the product is taken in 128 bits. */
static int64_t draw(const int64_t *pct, const int64_t *v, int n, int64_t u)
{
    if (u <= pct[0])
        return v[0];
    for (int i = 1; i < n; i++)
        if (u <= pct[i])
            return v[i - 1] + (int64_t)((__int128)(v[i] - v[i - 1]) * (u - pct[i - 1]) /
                                        (pct[i] - pct[i - 1]));
    return v[n - 1];
}

enum { SCALED_OK = 0, SCALED_NAN = -1, SCALED_BIG = -2 };

/* A decimal number of milliseconds or MB ("1095.0") of at most max, times mul, fractions
 * truncated past the third digit. Returns SCALED_OK, SCALED_NAN when it is not a plain
 * non-negative number, or SCALED_BIG when it is above max. */
static int parse_scaled(const char *s, int64_t max, int64_t mul, int64_t *out)
{
    int64_t whole = 0, frac = 0, div = 1;
    bool big = false;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return SCALED_NAN;
    for (; *p >= '0' && *p <= '9'; p++) {
        big = big || whole > max;
        if (!big)
            whole = whole * 10 + (*p - '0'); /* whole <= max before: cannot overflow */
    }
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (div < 1000) {
                frac = frac * 10 + (*p - '0');
                div *= 10;
            }
    if (*p != '\0' && *p != '\r' && *p != '\n')
        return SCALED_NAN;
    if (big || whole > max || (whole == max && frac > 0))
        return SCALED_BIG;
    *out = whole * mul + frac * mul / div;
    return SCALED_OK;
}

/* Split line at commas in place into at most max fields; returns the count. */
static size_t split(char *line, char **f, size_t max)
{
    size_t n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (c == NULL)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static FILE *open_in(const char *dir, const char *suffix, char *path, size_t n, int64_t *size,
                     struct fm_err *err)
{
    /* The files share a prefix (N_); find it from the folder's one *_inv.csv. */
    char pattern[64];
    snprintf(pattern, sizeof pattern, "_%s.csv", suffix);
    FILE *f = NULL;
    for (int num = 1; num <= 100000 && f == NULL; num++) {
        if (snprintf(path, n, "%s/%d%s", dir, num, pattern) >= (int)n)
            break;
        f = fopen(path, "r");
    }
    if (f == NULL) {
        fm_err_set(err, "%s: no N%s file", dir, pattern);
        return NULL;
    }
    struct stat sb;
    *size = fstat(fileno(f), &sb) == 0 ? (int64_t)sb.st_size : 0;
    return f;
}

/* Read N_run.csv or N_mem.csv: the key column and npct percentile columns from first, each
 * at most max (in the file's unit, named by unit) and kept times mul. */
static enum bill_status read_table(const char *dir, const char *suffix, int first, int npct,
                                   int64_t max, const char *unit, int64_t mul, struct table *t,
                                   struct fm_err *err)
{
    char path[4096], *line = NULL, *head = NULL, *f[32], *names[32];
    size_t cap = 0, nnames = 0;
    int64_t size, lineno = 0;
    enum bill_status rc = BILL_EINVAL;
    FILE *in = open_in(dir, suffix, path, sizeof path, &size, err);
    if (in == NULL)
        return BILL_EINVAL;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) > 0) {
        if (++lineno == 1) {
            /* The header names the columns in messages. */
            if ((head = strdup(line)) == NULL) {
                rc = BILL_ENOMEM;
                fm_err_set(err, "out of memory");
                goto done;
            }
            head[strcspn(head, "\r\n")] = '\0';
            nnames = split(head, names, 32);
            continue;
        }
        if ((size_t)len > LINE_MAX_BYTES ||
            split(line, f, 32) < (size_t)(first + npct) || strlen(f[0]) > HASH_MAX) {
            fm_err_set(err, "%s:%" PRId64 ": not a row of this layout", path, lineno);
            goto done;
        }
        if (t->n == t->cap) {
            size_t nc = t->cap ? t->cap * 2 : 64;
            struct dist *d = realloc(t->d, nc * sizeof *d);
            if (d == NULL) {
                rc = BILL_ENOMEM;
                fm_err_set(err, "out of memory");
                goto done;
            }
            t->d = d;
            t->cap = nc;
        }
        struct dist *d = &t->d[t->n];
        snprintf(d->key, sizeof d->key, "%s", f[0]);
        for (int i = 0; i < npct; i++) {
            int col = first + i;
            int got = parse_scaled(f[col], max, mul, &d->v[i]);
            if (got == SCALED_OK)
                continue;
            fm_err_set(err, "%s:%" PRId64 ": column %d (%.64s): %s %" PRId64 " %s", path,
                       lineno, col + 1, (size_t)col < nnames ? names[col] : "?",
                       got == SCALED_NAN ? "not a number from 0 to" : "more than", max, unit);
            goto done;
        }
        t->n++;
    }
    rc = BILL_OK;
done:
    free(head);
    free(line);
    fclose(in);
    return rc;
}

static const struct dist *find(const struct table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->d[i].key, key) == 0)
            return &t->d[i];
    return NULL;
}

/* Count one execution's busy time and memory in the seconds it spans: the first and last
 * second in part, those between as differences (see struct replay). */
static void occupy(struct replay *r, int64_t start_us, int64_t dur_us, int64_t mb)
{
    int64_t end = start_us + dur_us, first = start_us / US, last = end / US;
    if (first >= SECONDS)
        return;
    if (first == last) {
        r->busy_us[first] += dur_us;
        r->mb_us[first] += (__int128)dur_us * mb;
        return;
    }
    int64_t head = (first + 1) * US - start_us;
    r->busy_us[first] += head;
    r->mb_us[first] += (__int128)head * mb;
    if (first + 1 < SECONDS) {
        r->runs_diff[first + 1]++;
        r->mb_diff[first + 1] += mb;
    }
    if (last < SECONDS) {
        r->runs_diff[last]--;
        r->mb_diff[last] -= mb;
        r->busy_us[last] += end - last * US;
        r->mb_us[last] += (__int128)(end - last * US) * mb;
    }
}

/* One row of N_inv.csv: every invocation of one function over the day. */
static enum bill_status replay_row(struct replay *r, char **f, int64_t day_us,
                                   struct bill_stats *st, const char *where,
                                   struct fm_err *err)
{
    const struct dist *run = find(&r->run, f[0]);
    const struct dist *mem = find(&r->mem, f[1]);
    if (run == NULL)
        return fm_err_set(err, "%s: function %.12s has no execution-time row", where, f[0]),
               BILL_EINVAL;
    char name[2 * NAME_HEX + 2];
    snprintf(name, sizeof name, "%.*s.%.*s", NAME_HEX, f[2], NAME_HEX, f[0]);
    /* Every count is checked before any is replayed, so a row too large to replay is told
     * at once rather than after the work. */
    int64_t counts[MINUTES], calls = r->calls;
    for (int m = 0; m < MINUTES; m++) {
        int got = parse_scaled(f[3 + m], TRACE_MINUTE_MAX, 1, &counts[m]);
        if (got != SCALED_OK)
            return fm_err_set(err, "%s: minute_%d: %s %" PRId64 " invocations", where, m + 1,
                              got == SCALED_NAN ? "not a count from 0 to" : "more than",
                              TRACE_MINUTE_MAX),
                   BILL_EINVAL;
        calls += counts[m]; /* at most TRACE_DAY_MAX + MINUTES x TRACE_MINUTE_MAX */
        if (calls > TRACE_DAY_MAX)
            return fm_err_set(err, "%s: minute_%d: more than %" PRId64
                                   " invocations in the day, the most a replay takes",
                              where, m + 1, TRACE_DAY_MAX),
                   BILL_EINVAL;
    }
    r->calls = calls;
    enum bill_status rc;
    for (int m = 0; m < MINUTES; m++) {
        int64_t count = counts[m];
        int64_t hour_at = day_us + (int64_t)m * 60 * US;
        if (count > 0 &&
            (rc = bill_stats_add_timeline(st, hour_at, count, 0, 0, err)) != BILL_OK)
            return fm_err_prefix(err, "%s", where), rc;
        for (int64_t k = 0; k < count; k++) {
            int64_t at = (int64_t)m * 60 * US + (k * 60 * US + 30 * US) / count;
            int64_t dur = draw(run_pct, run->v, RUN_N, (int64_t)(next(&r->rng) % 10001));
            int64_t mb = mem ? draw(mem_pct, mem->v, MEM_N, (int64_t)(next(&r->rng) % 10001))
                             : DEFAULT_MB;
            if (mb < 1)
                mb = 1;
            struct bill_invocation inv = {.duration_us = dur,
                                          .memory_mb = (int32_t)mb,
                                          .max_rss_kb = mb * 1024,
                                          .cpu_user_us = dur};
            if ((rc = bill_stats_add(st, name, &inv, 0, err)) != BILL_OK)
                return fm_err_prefix(err, "%s", where), rc;
            occupy(r, at, dur, mb);
        }
    }
    return BILL_OK;
}

enum bill_status trace_replay(const char *dir, const struct bill_plan *const *plans,
                              size_t nplans, trace_progress_fn progress, void *ctx,
                              struct bill_stats **out, struct fm_err *err)
{
    struct replay r = {.rng = UINT64_C(20190701)};
    struct bill_stats *st = NULL;
    char path[4096], *line = NULL, *f[MINUTES + 8], where[4200];
    size_t cap = 0;
    int64_t size = 0, done = 0, lineno = 0;
    enum bill_status rc = BILL_ENOMEM;
    FILE *in = NULL;
    int64_t day_us = fm_civil_to_us(2019, 7, 1); /* a nominal day; the trace has no dates */
    r.busy_us = calloc(SECONDS, sizeof *r.busy_us);
    r.runs_diff = calloc(SECONDS, sizeof *r.runs_diff);
    r.mb_diff = calloc(SECONDS, sizeof *r.mb_diff);
    r.mb_us = calloc(SECONDS, sizeof *r.mb_us);
    if (r.busy_us == NULL || r.runs_diff == NULL || r.mb_diff == NULL || r.mb_us == NULL) {
        fm_err_set(err, "out of memory");
        goto out;
    }
    /* Run percentiles start at column 8 (percentile_Average_0); memory at column 5. */
    if ((rc = read_table(dir, "run", 7, RUN_N, RUN_MAX_MS, "ms", 1000, &r.run, err)) !=
            BILL_OK ||
        (rc = read_table(dir, "mem", 4, MEM_N, MEM_MAX_MB, "MB", 1, &r.mem, err)) != BILL_OK)
        goto out;
    rc = BILL_EINVAL;
    if ((in = open_in(dir, "inv", path, sizeof path, &size, err)) == NULL)
        goto out;
    if ((rc = bill_stats_new(plans, nplans, day_us, day_us + 86400 * US, BILL_HOUR_US, &st,
                             err)) != BILL_OK)
        goto out;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) > 0) {
        done += len;
        if (++lineno == 1)
            continue;
        snprintf(where, sizeof where, "%s:%" PRId64, path, lineno);
        if ((size_t)len > LINE_MAX_BYTES || split(line, f, MINUTES + 8) < MINUTES + 3) {
            rc = BILL_EINVAL;
            fm_err_set(err, "%s: expected 3 hashes and %d minutes", where, MINUTES);
            goto out;
        }
        if ((rc = replay_row(&r, f, day_us, st, where, err)) != BILL_OK)
            goto out;
        if (progress)
            progress(done, size, ctx);
    }
    /* Sized like stored usage (billing/compare.h): the busiest hour's mean load, with the
     * functions taken as CPU-bound, so CPU time is execution time. At most TRACE_DAY_MAX
     * executions of at most a day at MEM_MAX_MB overlap a second, so a second's busy time
     * fits 64 bits, and an hour's sums are taken in 128. */
    int64_t peak = 0, peak_mb = 0, peak_cpu = 0, runs = 0, run_mb = 0;
    for (int h = 0; h * 3600 < SECONDS; h++) {
        __int128 busy = 0, mb = 0;
        for (int s = h * 3600; s < (h + 1) * 3600 && s < SECONDS; s++) {
            runs += r.runs_diff[s];
            run_mb += r.mb_diff[s];
            busy += r.busy_us[s] + (__int128)runs * US;
            mb += r.mb_us[s] + (__int128)run_mb * US;
        }
        int64_t c = (int64_t)((busy + BILL_HOUR_US - 1) / BILL_HOUR_US);
        int64_t m = (int64_t)((mb + BILL_HOUR_US - 1) / BILL_HOUR_US);
        int64_t cpu = (int64_t)((busy + BILL_HOUR_US / 1000 - 1) / (BILL_HOUR_US / 1000));
        peak = c > peak ? c : peak;
        peak_mb = m > peak_mb ? m : peak_mb;
        peak_cpu = cpu > peak_cpu ? cpu : peak_cpu;
    }
    bill_stats_set_peak(st, peak, peak_mb, peak_cpu);
    if ((rc = bill_stats_scale(st, TRACE_DAYS_PER_MONTH, TRACE_DAYS_PER_MONTH * 86400 * US,
                               err)) != BILL_OK) {
        fm_err_prefix(err, "%s", path);
        goto out;
    }
    *out = st;
    st = NULL;
    rc = BILL_OK;
out:
    if (in)
        fclose(in);
    free(line);
    free(r.busy_us);
    free(r.runs_diff);
    free(r.mb_diff);
    free(r.mb_us);
    free(r.run.d);
    free(r.mem.d);
    bill_stats_free(st);
    return rc;
}
