#ifndef FM_BILLING_USAGE_H
#define FM_BILLING_USAGE_H

/*
 * Usage of one billing period per function, in integer base units, after each invocation
 * was rounded under a plan. Summing rounded invocations (not rounding the sum) is what makes
 * a 100 ms plan bill ten 10 ms calls as 1000 ms.
 */

#include <stddef.h>
#include <stdint.h>

#include "billing/plan.h"
#include "billing/status.h"
#include "common/err.h"

/* What the meter knows about one finished invocation (a stop record). */
struct bill_invocation {
    int64_t duration_us;
    int64_t init_us;
    int32_t memory_mb; /* configured */
    int64_t max_rss_kb;
    int64_t cpu_user_us;
    int64_t cpu_sys_us;
    int64_t bytes_out;
};

/* Billable quantities, already rounded, in each meter's base unit. */
struct bill_quantities {
    int64_t requests;
    int64_t mb_ms;        /* gb_seconds: billed MB x billed ms */
    int64_t mhz_ms;       /* ghz_seconds: clock tied to billed memory x billed ms */
    int64_t cpu_us;       /* cpu_ms: user + system CPU */
    int64_t egress_bytes; /* egress_gb */
    int64_t billed_ms;    /* billed duration; informative, no meter prices it */
};

/** The quantity q holds for meter m. */
int64_t bill_quantities_get(const struct bill_quantities *q, enum bill_meter m);

/**
 * Round one invocation under plan into quantities (requests = 1).
 * @param out  written only on success
 * @return BILL_OK, BILL_EINVAL for a negative field, BILL_EOVERFLOW
 */
enum bill_status bill_plan_round(const struct bill_plan *plan, const struct bill_invocation *inv,
                                 struct bill_quantities *out, struct fm_err *err);

/** acc += q, field by field. On BILL_EOVERFLOW acc is unchanged. */
enum bill_status bill_quantities_add(struct bill_quantities *acc, const struct bill_quantities *q,
                                     struct fm_err *err);

/**
 * q × n, field by field: n identical invocations without a loop.
 * @param out  written only on success
 * @return BILL_OK, BILL_EINVAL when n < 0, BILL_EOVERFLOW
 */
enum bill_status bill_quantities_scale(const struct bill_quantities *q, int64_t n,
                                       struct bill_quantities *out, struct fm_err *err);

struct bill_usage;

/** An empty accumulator (caller frees with bill_usage_free), or NULL when out of memory. */
struct bill_usage *bill_usage_new(void);

/** Free an accumulator. NULL is a no-op. */
void bill_usage_free(struct bill_usage *use);

/**
 * Round one invocation under plan and add it to function's usage.
 * @param function  copied; 1-128 bytes
 * @return BILL_OK, BILL_EINVAL, BILL_EOVERFLOW (usage unchanged), BILL_ENOMEM
 */
enum bill_status bill_usage_add_invocation(struct bill_usage *use, const struct bill_plan *plan,
                                           const char *function,
                                           const struct bill_invocation *inv,
                                           struct fm_err *err);

/**
 * Add quantities that were aggregated and rounded elsewhere (a database rollup).
 * @return BILL_OK, BILL_EINVAL for a bad name or a negative quantity, BILL_EOVERFLOW
 *         (usage unchanged), BILL_ENOMEM
 */
enum bill_status bill_usage_add_quantities(struct bill_usage *use, const char *function,
                                           const struct bill_quantities *q, struct fm_err *err);

/** Number of functions seen, in the order they were first added. */
size_t bill_usage_count(const struct bill_usage *use);
/** Name of function i; borrowed from use. */
const char *bill_usage_function(const struct bill_usage *use, size_t i);
/** Quantities of function i; borrowed from use. */
const struct bill_quantities *bill_usage_quantities(const struct bill_usage *use, size_t i);

/** Sum over all functions. Returns BILL_OK or BILL_EOVERFLOW (out untouched). */
enum bill_status bill_usage_total(const struct bill_usage *use, struct bill_quantities *out,
                                  struct fm_err *err);

#endif
