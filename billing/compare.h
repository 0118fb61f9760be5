#ifndef FM_BILLING_COMPARE_H
#define FM_BILLING_COMPARE_H

/*
 * Pay-per-use against a flat server fee (DESIGN.md, "Comparison with a flat server fee").
 *
 * A producer (the database side, or the trace simulator) fills a bill_stats with what it
 * observed over a period: per function, its totals and its quantities rounded per invocation
 * under every plan (from single invocations, or from rollups that were rounded per
 * invocation when they were stored); the load to size servers for; the usage over time.
 * bill_compare then prices the same usage under each plan, sizes each catalog server for
 * that load, and finds the break-even monthly volume. Pure computation on integers: no I/O,
 * no binary fractions.
 *
 * Assumptions, stated once here and in the rendered reports:
 *  - Servers are sized for the busiest hour's sustained load, not for the momentary peak of
 *    overlapping executions: concurrency is an hour's execution time over the hour (the
 *    mean number running at once), rounded up; memory is an hour's configured MB × execution
 *    time over the hour, rounded up; CPU is an hour's CPU time over the hour. Each is the
 *    maximum over the period's hours on its own, so a fleet sized by them carries every
 *    hour. An execution counts in every hour it runs in, for the time it runs there (its
 *    CPU time in proportion). Short bursts above the hourly mean are
 *    taken to queue briefly or be absorbed by headroom, as a server fleet would; sizing for
 *    the momentary peak would also need every invocation row, which a month-long report
 *    for every tenant cannot afford to read.
 *  - Servers are sized by memory and by CPU with one concurrent execution per vCPU:
 *    functions are assumed CPU-bound, so a vCPU never serves two executions at once; and
 *    by the CPU time, so that executions on several threads get a vCPU for each core
 *    they keep busy.
 *  - A server type with less memory than the largest configured memory of any one invocation
 *    in the period cannot run that invocation at all, however many of it there are: it is
 *    not sized, never the best server, and reported too small. When no server fits, the
 *    verdict is functions.
 *  - A month of server time is 730 hours (BILL_HOURS_PER_MONTH), whatever the period.
 *  - Utilisation is busy time (sum of execution durations) over capacity (servers × vCPUs ×
 *    the period's length): the fleet's mean load over the period, at most the busiest
 *    hour's load that sized it.
 *  - Amounts are set side by side only in one currency, the tenant's plan's: plans and
 *    servers priced in another are left out of the comparison and listed as left out.
 *  - The break-even volume prices N identical "mean" invocations (each field the period's
 *    mean, rounded half-up to its unit) and keeps the server fee fixed at the sizing for the
 *    busiest hour. Cost under a plan never falls as N grows (allowances and tiers are
 *    monotone), so the smallest N whose bill reaches the fee is found by bisection.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing/catalog.h"
#include "billing/invoice.h"
#include "billing/plan.h"
#include "billing/server.h"
#include "billing/status.h"
#include "billing/usage.h"
#include "common/buf.h"
#include "common/err.h"

#define BILL_COMPARE_MAX_BUCKETS 2000 /* a month by the hour fits; more is refused */
#define BILL_COMPARE_MAX_VOLUME INT64_C(1000000000000000) /* break-even search ceiling */
#define BILL_HOUR_US INT64_C(3600000000)
#define BILL_DAY_US INT64_C(86400000000)

/* Flags of one observed invocation. */
#define BILL_OBS_ERROR 1u      /* its status was not "ok" */
#define BILL_OBS_COLD_START 2u /* it paid a cold start */

/* One function's observed totals over the period. */
struct bill_fn_stats {
    char *function;
    int64_t invocations;
    int64_t errors;
    int64_t cold_starts;
    int64_t duration_us; /* sums over its invocations, for the means */
    int64_t init_us;
    int64_t memory_mb;
    int64_t max_rss_kb;
    int64_t cpu_us;
    int64_t bytes_out;
    int64_t max_memory_mb; /* the largest configured memory of one invocation, not a sum */
};

/* Usage over time: one bucket per hour or day from the period's start. */
struct bill_bucket {
    int64_t invocations;
    int64_t errors;
    int64_t cold_starts;
};

struct bill_stats;

/**
 * An empty set of statistics for the period [from_us, to_us).
 *
 * @param plans      the plans to round under; borrowed, must outlive the stats
 * @param bucket_us  BILL_HOUR_US or BILL_DAY_US: the width of the usage-over-time buckets
 * @param out        on BILL_OK, the stats (caller frees with bill_stats_free)
 * @return BILL_OK, BILL_EINVAL (empty period, bad bucket, more than
 *         BILL_COMPARE_MAX_BUCKETS buckets), BILL_ENOMEM
 */
enum bill_status bill_stats_new(const struct bill_plan *const *plans, size_t nplans,
                                int64_t from_us, int64_t to_us, int64_t bucket_us,
                                struct bill_stats **out, struct fm_err *err);

/** Free stats. NULL is a no-op. */
void bill_stats_free(struct bill_stats *st);

/**
 * Add one finished invocation of function: its totals, and its quantities rounded under
 * every plan of the stats.
 *
 * @param flags  BILL_OBS_ERROR | BILL_OBS_COLD_START
 * @return BILL_OK, BILL_EINVAL (bad name, negative field), BILL_EOVERFLOW, BILL_ENOMEM; on
 *         error the stats may hold part of the invocation and should be discarded
 */
enum bill_status bill_stats_add(struct bill_stats *st, const char *function,
                                const struct bill_invocation *inv, unsigned flags,
                                struct fm_err *err);

/**
 * Add quantities of function that were rounded per invocation under plan plan_id elsewhere
 * (a rollup such as usage_rated) to the stats' usage under that plan. Does not touch the
 * function's totals: add them with bill_stats_add_function.
 * @return BILL_OK, BILL_ENOTFOUND (plan_id is not among the stats' plans), BILL_EINVAL (bad
 *         name, negative quantity), BILL_EOVERFLOW, BILL_ENOMEM
 */
enum bill_status bill_stats_add_rated(struct bill_stats *st, const char *plan_id,
                                      const char *function, const struct bill_quantities *q,
                                      struct fm_err *err);

/**
 * Add totals observed elsewhere (a rollup) to add->function's totals, creating it. Does not
 * touch the usage under the plans: add it with bill_stats_add_rated.
 * @param add  borrowed; add->function names the function (1-128 bytes, copied)
 * @return BILL_OK, BILL_EINVAL (bad name, negative total), BILL_EOVERFLOW, BILL_ENOMEM; on
 *         error the stats should be discarded
 */
enum bill_status bill_stats_add_function(struct bill_stats *st, const struct bill_fn_stats *add,
                                         struct fm_err *err);

/**
 * Add counts to the usage-over-time bucket holding at_us. Counts outside the period are
 * ignored (returns BILL_OK): they belong to another period's chart.
 * @return BILL_OK, BILL_EINVAL for a negative count, BILL_EOVERFLOW
 */
enum bill_status bill_stats_add_timeline(struct bill_stats *st, int64_t at_us,
                                         int64_t invocations, int64_t errors,
                                         int64_t cold_starts, struct fm_err *err);

/**
 * Record the load to size servers for (see the assumptions above): the busiest hour's mean
 * concurrency, configured memory in use and CPU (in thousandths of a core), each its own
 * maximum over the hours. Negative values are clamped to 0.
 */
void bill_stats_set_peak(struct bill_stats *st, int64_t concurrency, int64_t memory_mb,
                         int64_t cpu_millicores);

/**
 * Raise the largest configured memory of one invocation in the period to memory_mb when it is
 * larger: the smallest server memory that can run the workload. bill_stats_add does this for
 * each invocation it adds; a producer reading rollups calls it with what they keep.
 */
void bill_stats_note_memory(struct bill_stats *st, int64_t memory_mb);

/**
 * Multiply every count and quantity by factor (a one-day replay made a month). The load and
 * the usage-over-time buckets are left as observed; the period becomes period_us long.
 * @return BILL_OK, BILL_EINVAL (factor < 1), BILL_EOVERFLOW (stats unchanged)
 */
enum bill_status bill_stats_scale(struct bill_stats *st, int64_t factor, int64_t period_us,
                                  struct fm_err *err);

/** Number of functions seen, in the order they first appeared; borrowed accessors. */
size_t bill_stats_function_count(const struct bill_stats *st);
const struct bill_fn_stats *bill_stats_function(const struct bill_stats *st, size_t i);

/* ---- The comparison ---------------------------------------------------------------- */

struct bill_plan_cost {
    const struct bill_plan *plan; /* borrowed from the stats' plans */
    bool own;                     /* the tenant's plan */
    struct bill_invoice *invoice; /* the observed usage priced under the plan */
    int64_t breakeven;            /* monthly volume where it meets the best server's fee;
                                     -1 when it never does below BILL_COMPARE_MAX_VOLUME,
                                     or when none is sought (bill_compare_has_breakeven) */
};

struct bill_server_fit {
    const struct bill_server *server; /* borrowed from the catalog */
    bool fits;                        /* its memory holds the largest invocation; when not,
                                         count, fee and utilisation are 0 and unshown */
    int64_t count;                    /* servers of this type the busiest hour needs */
    int64_t unit_fee;                 /* monthly fee of one, minor units */
    int64_t fee;                      /* count × unit_fee */
    char utilisation[BILL_NUM_BUFSZ]; /* percent, 2 decimals ("12.5") */
};

#define BILL_FIT_BUFSZ 96

struct bill_fn_cost {
    const struct bill_fn_stats *stats;     /* borrowed from the stats */
    int64_t cost;                          /* its share of the own plan's bill, minor units */
    char share[BILL_NUM_BUFSZ];            /* percent of the bill, 2 decimals */
    bool driver;                           /* among the functions making 80% of the bill */
    const struct bill_server *server;      /* cheapest server able to carry it alone (with
                                            * its largest invocation's memory), or NULL */
    int64_t server_fee;                    /* that server's monthly fee × count needed */
    bool cheaper_on_server;                /* server_fee < cost */
};

/* A plan or server left out of a comparison: it is priced in another currency. */
struct bill_left_out {
    bool server;    /* a server, else a plan */
    const char *id; /* borrowed from the plan or server */
    char currency[4];
};

struct bill_comparison {
    const struct bill_stats *stats; /* borrowed */
    char tenant[72];
    char period[32];
    char currency[4];
    int minor_digits;
    size_t own;                     /* index of the tenant's plan in plans */
    size_t nplans;
    struct bill_plan_cost *plans;   /* in the stats' plan order, those in currency */
    size_t nservers;
    struct bill_server_fit *servers; /* in the order given, those in currency */
    size_t nleft_out;
    struct bill_left_out *left_out;  /* plans, then servers, in another currency */
    long best;                      /* index of the cheapest server that fits, -1 without */
    size_t nfunctions;
    struct bill_fn_cost *functions; /* by cost, highest first */
    struct bill_invocation mean;    /* the mean invocation */
    int64_t invocations, errors, cold_starts, busy_us, period_us;
    /* the load servers are sized for: each the busiest hour's mean (see above) */
    int64_t peak_concurrency, peak_memory_mb, peak_cpu_millicores;
    int64_t max_memory_mb; /* the largest configured memory of one invocation */
};

/**
 * Compare the stats' usage under every plan with the servers.
 *
 * @param st        borrowed; must outlive the comparison
 * @param own_plan  id of the tenant's plan; must be one of the stats' plans
 * @param servers   the servers to size (borrowed, must outlive the comparison); may be empty.
 *                  Those priced in another currency than own_plan are left out, as are
 *                  the stats' plans in another currency (cmp->left_out lists both).
 * @param tenant    label ("acme"), copied; period likewise ("2026-11")
 * @param out       on BILL_OK, the comparison (caller frees with bill_comparison_free)
 * @return BILL_OK, BILL_ENOTFOUND (own_plan), BILL_EOVERFLOW, BILL_ENOMEM
 */
enum bill_status bill_compare(const struct bill_stats *st, const char *own_plan,
                              const struct bill_server *const *servers, size_t nservers,
                              const char *tenant, const char *period,
                              struct bill_comparison **out, struct fm_err *err);

/** Free a comparison. NULL is a no-op. */
void bill_comparison_free(struct bill_comparison *cmp);

/**
 * Whether cmp left out server s (by its id) for its currency. The commands that name
 * servers refuse such a one rather than compare without it.
 */
bool bill_compare_left_out_server(const struct bill_comparison *cmp, const char *id);

/**
 * Append cmp's left-out plans and servers as one sentence to out ("Left out, priced in
 * another currency than USD: server eur-box (EUR)."), nothing when there is none.
 * @return 0, or -1 when out reached its cap
 */
int bill_compare_left_out_text(const struct bill_comparison *cmp, struct fm_buf *out);

/**
 * The monthly bill, in minor units, under plan i of cmp for volume identical mean
 * invocations: a point of the cost curve.
 * @return BILL_OK, BILL_EINVAL (volume < 0), BILL_EOVERFLOW, BILL_ENOMEM (out untouched)
 */
enum bill_status bill_compare_cost_at(const struct bill_comparison *cmp, size_t i,
                                      int64_t volume, int64_t *out, struct fm_err *err);

/** Width of cmp's usage-over-time buckets, their count, and bucket i (borrowed). */
int64_t bill_compare_bucket_us(const struct bill_comparison *cmp);
size_t bill_compare_bucket_count(const struct bill_comparison *cmp);
const struct bill_bucket *bill_compare_bucket(const struct bill_comparison *cmp, size_t i);
/** Start of the period, microseconds since the epoch. */
int64_t bill_compare_from_us(const struct bill_comparison *cmp);

/**
 * Why server fit f of cmp cannot carry the workload, one line without commas or quotes
 * ("too small: a function is configured with 10240 MB"), into buf; "" when it fits. Every
 * output says it in these words.
 */
void bill_compare_fit_text(const struct bill_comparison *cmp, const struct bill_server_fit *f,
                           char buf[BILL_FIT_BUFSZ]);

/**
 * Append what the verdict rests on when cmp has servers but none fits ("No server compared
 * can run the workload: ..."), one sentence and a newline; nothing otherwise.
 * @return 0, or -1 when out reached its cap
 */
int bill_compare_no_fit_text(const struct bill_comparison *cmp, struct fm_buf *out);

/** Format minor units of cmp's currency as a decimal ("12.34") into buf. */
void bill_compare_money(const struct bill_comparison *cmp, int64_t minor,
                        char buf[BILL_NUM_BUFSZ]);

/**
 * Append the comparison as JSON, every amount a decimal string and every count an integer
 * below 2^53 (see DESIGN.md):
 * {"tenant","period","currency","plan","assumptions",
 *  "usage":{"invocations","errors","cold_starts","busy_seconds","mean_duration_ms",
 *           "mean_memory_mb","max_memory_mb","peak_concurrency","peak_memory_mb",
 *           "peak_cpu_cores"},
 *   (the peak_* fields are the busiest hour's means, the load servers are sized for;
 *    max_memory_mb the largest configured memory of one invocation)
 *  "plans":[{"plan","name","own","total","breakeven_invocations"}],
 *  "servers":[{"server","name","vcpus","memory_mb","fits","reason","count",
 *              "unit_monthly_fee","monthly_fee","utilisation_percent"}],
 *   (a server that does not fit has "fits":false, the reason, and null count,
 *    monthly_fee and utilisation_percent; one that fits a null reason)
 *  "best_server","verdict","left_out":[{"kind":"plan"|"server","id","currency"}],
 *  "functions":[{"function","invocations","errors","cold_starts","mean_duration_ms",
 *                "mean_memory_mb","cost","share_percent","driver","server",
 *                "server_monthly_fee","cheaper_on_server"}],
 *  "timeline":{"bucket":"hour"|"day","start","buckets":[[invocations,errors,cold_starts]]}}
 * @return 0, or -1 when out reached its cap or memory ran out
 */
int bill_compare_json(const struct bill_comparison *cmp, struct fm_buf *out);

/**
 * Whether cmp sought break-even volumes: it needs a server to meet and a mean invocation to
 * price, so at least one invocation (an empty period has no mean). Without, every plan's
 * breakeven is -1, shown as "-" rather than "never".
 */
bool bill_compare_has_breakeven(const struct bill_comparison *cmp);

/** "functions" when the own plan's bill is at most the best server's fee, else "servers";
 *  "functions" without a server that fits. Static string. */
const char *bill_compare_verdict(const struct bill_comparison *cmp);

#endif
