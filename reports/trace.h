#ifndef FM_REPORTS_TRACE_H
#define FM_REPORTS_TRACE_H

/*
 * Replaying a day of the Azure Functions 2019 trace layout (N_inv.csv, N_run.csv, N_mem.csv
 * in one folder) into comparison statistics, without storing the invocations:
 *  - each row's HashOwner is the tenant and HashFunction the function; the function is
 *    named "<owner 12 hex>.<function 12 hex>" and the whole trace is priced as one account;
 *  - each minute's count is spread evenly over that minute;
 *  - each invocation's duration is drawn from the row's execution-time percentiles (linear
 *    between them) and its memory from its app's allocated-memory percentiles, with a
 *    seeded generator, so a replay is the same every time; memory is both the configured
 *    and the observed memory; an app without a memory row gets 128 MB;
 *  - the peak is the largest per-second mean concurrency (busy time in a second over one
 *    second, rounded up) and the memory in use likewise; CPU at the peak is taken as one
 *    core per execution (CPU-bound);
 *  - the day is made a month by multiplying every count and quantity by 30 (a 30-day
 *    month); the usage-over-time chart shows the replayed day by the hour.
 */

#include <stddef.h>
#include <stdint.h>

#include "billing/compare.h"
#include "common/err.h"

/* Called now and then with the bytes of N_inv.csv read so far and its size. */
typedef void (*trace_progress_fn)(int64_t done, int64_t total, void *ctx);

#define TRACE_DAYS_PER_MONTH 30

/*
 * The most a replay takes: it draws every invocation on its own, so its time grows with the
 * day's count (a few million a second in the release build). A function's minute holds at
 * most TRACE_MINUTE_MAX (about 170,000 a second), the day at most TRACE_DAY_MAX; beyond is
 * refused, not looped over for hours.
 */
#define TRACE_MINUTE_MAX INT64_C(10000000)
#define TRACE_DAY_MAX INT64_C(1000000000)

/**
 * Replay the trace in dir into stats over the plans. Execution times are at most a day
 * (86,400,000 ms) and memory at most 10240 MB, as in usage records.
 *
 * @param plans     borrowed; must outlive the stats
 * @param progress  optional
 * @param out       on BILL_OK, the month's stats (caller frees with bill_stats_free)
 * @return BILL_OK; BILL_EINVAL (a file missing, or a value out of bounds or malformed) or
 *         BILL_EOVERFLOW (totals too large) with err naming the file and line, and the
 *         column or minute, that was wrong; BILL_ENOMEM
 */
enum bill_status trace_replay(const char *dir, const struct bill_plan *const *plans,
                              size_t nplans, trace_progress_fn progress, void *ctx,
                              struct bill_stats **out, struct fm_err *err);

#endif
