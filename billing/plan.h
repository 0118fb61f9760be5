#ifndef FM_BILLING_PLAN_H
#define FM_BILLING_PLAN_H

/*
 * A pricing plan, read from JSON (DESIGN.md, "Plans are data"): how each invocation's time
 * and memory are rounded, and what each meter costs over free allowances and graduated
 * tiers. Plans are immutable once parsed and may be shared between threads.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing/money.h"
#include "billing/status.h"
#include "common/err.h"

enum bill_meter {
    BILL_METER_REQUESTS,
    BILL_METER_GB_SECONDS,
    BILL_METER_GHZ_SECONDS,
    BILL_METER_CPU_MS,
    BILL_METER_EGRESS_GB,
    BILL_METER_COUNT
};

/*
 * How a meter is counted. Usage is kept in integer base units and converted to the display
 * unit that plans price (and state allowances in) only when pricing, as an exact ratio.
 */
struct bill_meter_info {
    const char *name;     /* in plan files: "gb_seconds" */
    const char *item;     /* default line label: "Compute (GB-s)" */
    const char *unit;     /* display unit: "GB-s" */
    const char *base;     /* base unit of the usage: "MB-ms" */
    int64_t base_per_unit; /* base units in one display unit: 1024 * 1000 for GB-s */
};

/** The description of meter m (static). m must be below BILL_METER_COUNT. */
const struct bill_meter_info *bill_meter_info(enum bill_meter m);

/** The meter named name ("cpu_ms"). Returns 0, or -1 when there is none (out untouched). */
int bill_meter_from_name(const char *name, enum bill_meter *out);

enum bill_memory_basis { BILL_MEMORY_CONFIGURED, BILL_MEMORY_OBSERVED };

/* Per-invocation rounding, public so that a database query can reproduce it. */
struct bill_rounding {
    int64_t step_ms;   /* billed duration is a multiple of this */
    int64_t min_ms;    /* and at least this */
    bool include_init; /* cold-start initialisation is billed time */
    enum bill_memory_basis basis;
    int32_t step_mb; /* billed memory is a multiple of this */
    int32_t min_mb;  /* within min_mb..max_mb */
    int32_t max_mb;
};

/* One entry of a plan's ghz_by_memory_mb table. */
struct bill_ghz {
    int32_t memory_mb;
    int64_t mhz;
};

/** bill_plan_billed_ms under rules r. */
int64_t bill_rounding_ms(const struct bill_rounding *r, int64_t duration_us, int64_t init_us);

/** bill_plan_billed_mb under rules r. */
int32_t bill_rounding_mb(const struct bill_rounding *r, int32_t memory_mb, int64_t max_rss_kb);

/** bill_plan_mhz for a ghz_by_memory_mb table of n entries sorted by memory_mb. */
int64_t bill_ghz_mhz(const struct bill_ghz *table, size_t n, int32_t memory_mb);

struct bill_tier {
    bool unbounded;            /* the last tier: no upper bound */
    struct bill_dec up_to;     /* upper bound of billable quantity, in the display unit */
    struct bill_dec unit_price; /* per display unit */
};

struct bill_charge {
    enum bill_meter meter;
    char *item;           /* line label */
    struct bill_dec free; /* allowance in the display unit, subtracted before the tiers */
    size_t ntiers;
    struct bill_tier *tiers; /* increasing up_to; the last is unbounded */
};

/**
 * The exact unit a charge's quantities are priced in: 1 / unit of the display unit, with
 * unit = base_per_unit × 10^k and k the most decimals of the free allowance (unless
 * no_free) and the tier bounds; prices are counted in 1 / 10^pk, pk their most decimals.
 * @param unit  base_per_unit × 10^k
 * @param den   unit × 10^pk: an amount is an integer over den
 * @return 0, or -1 when den, the allowance or a tier bound does not fit in 128 bits in
 *         that unit (the plan cannot be priced at all)
 */
int bill_charge_unit(const struct bill_charge *c, bool no_free, int *k, int *pk,
                     __int128 *unit, __int128 *den);

struct bill_plan;

/**
 * Parse and validate a plan from JSON text. Every field must be one the format knows, given
 * once, of its type: an unknown field (a typo) or a key given twice is refused.
 *
 * @param origin  names the text in messages ("plans/x.json")
 * @param out     on BILL_OK, the plan (caller frees with bill_plan_free); untouched on error
 * @param err     optional; e.g. "plans/x.json: charges[1].tiers[0].unit_price: not a decimal number"
 * @return BILL_OK, BILL_EINVAL for a malformed plan, BILL_ENOMEM
 */
enum bill_status bill_plan_parse(const char *text, size_t len, const char *origin,
                                 struct bill_plan **out, struct fm_err *err);

/** Free a plan. NULL is a no-op. */
void bill_plan_free(struct bill_plan *plan);

const char *bill_plan_id(const struct bill_plan *plan);
const char *bill_plan_name(const struct bill_plan *plan);
const char *bill_plan_currency(const struct bill_plan *plan); /* "USD" */
const char *bill_plan_source(const struct bill_plan *plan);   /* "" when the file names none */
const char *bill_plan_as_of(const struct bill_plan *plan);    /* "YYYY-MM-DD" or "" */
/** Digits of the currency's minor unit, by ISO 4217 (2 for cents, 0 for yen). */
int bill_plan_minor_digits(const struct bill_plan *plan);
const struct bill_rounding *bill_plan_rounding(const struct bill_plan *plan);
/** The flat fee per period. */
struct bill_dec bill_plan_subscription(const struct bill_plan *plan);
size_t bill_plan_charge_count(const struct bill_plan *plan);
/** Charge i (i < bill_plan_charge_count), in the plan's order; borrowed from the plan. */
const struct bill_charge *bill_plan_charge(const struct bill_plan *plan, size_t i);
/** The charge for meter m, or NULL when the plan does not charge it. */
const struct bill_charge *bill_plan_charge_for(const struct bill_plan *plan, enum bill_meter m);

/**
 * Billed milliseconds of one invocation: max(min_ms, ceil(t / step) * step) where t is the
 * duration, plus init when the plan bills it. Returns -1 for negative or overflowing input.
 */
int64_t bill_plan_billed_ms(const struct bill_plan *plan, int64_t duration_us, int64_t init_us);

/**
 * Billed memory of one invocation in MB: the configured memory, or the peak RSS rounded up
 * to whole MB, raised to min_mb, rounded up to step_mb and capped at max_mb (whichever the
 * plan's basis says). Returns -1 when the input it uses is negative.
 */
int32_t bill_plan_billed_mb(const struct bill_plan *plan, int32_t memory_mb, int64_t max_rss_kb);

/**
 * CPU clock in MHz tied to billed memory by the plan's ghz_by_memory_mb table: the entry of
 * the smallest memory size >= memory_mb, else the largest entry. 0 without a table.
 */
int64_t bill_plan_mhz(const struct bill_plan *plan, int32_t memory_mb);

/** Entries of the ghz_by_memory_mb table (0 without one), by ascending memory. */
size_t bill_plan_ghz_count(const struct bill_plan *plan);

/** Entry i (i < bill_plan_ghz_count) of the ghz_by_memory_mb table. */
void bill_plan_ghz_at(const struct bill_plan *plan, size_t i, int32_t *memory_mb, int64_t *mhz);

#endif
