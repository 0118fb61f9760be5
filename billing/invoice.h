#ifndef FM_BILLING_INVOICE_H
#define FM_BILLING_INVOICE_H

/*
 * Pricing a period of usage under a plan into an invoice, and rendering that invoice as a
 * table, JSON or CSV. Each charge line is computed exactly over the graduated tiers after
 * the free allowance and rounded half-up to the currency's minor unit once; the total is
 * the sum of the rounded lines and the subscription.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing/money.h"
#include "billing/plan.h"
#include "billing/status.h"
#include "billing/usage.h"
#include "common/buf.h"
#include "common/err.h"

/* One function's part of a line, in minor units. */
struct bill_share {
    char *function;
    int64_t amount;
};

/* The billable quantity that fell into one tier. */
struct bill_tier_use {
    char quantity[BILL_NUM_BUFSZ];
    char unit_price[BILL_NUM_BUFSZ];
};

/*
 * A charge line. Quantities are decimal strings in the meter's display unit, exact up to
 * 15 digits after the point (rounded half-up beyond, for display only: the amount is
 * computed from the exact value).
 */
struct bill_line {
    char *item;                      /* "Compute (GB-s)" */
    enum bill_meter meter;
    int64_t usage_base;              /* the period's usage in the meter's base unit */
    char usage[BILL_NUM_BUFSZ];      /* the same in the display unit */
    char free[BILL_NUM_BUFSZ];       /* the allowance that was used up */
    char quantity[BILL_NUM_BUFSZ];   /* billable: usage minus free */
    char unit_price[BILL_NUM_BUFSZ]; /* the tier price of the last billable unit */
    size_t ntiers;                   /* tiers the billable quantity reached */
    struct bill_tier_use *tiers;
    int64_t amount;                  /* minor units */
    size_t nshares;                  /* functions with usage of this meter, by name */
    struct bill_share *shares;       /* add up to amount exactly */
};

/* A correction carried from an earlier, finalized period: usage that arrived after that
 * invoice was frozen (or a refund when it shrank), in minor units. */
struct bill_adjustment {
    char period[8];     /* "YYYY-MM" it corrects */
    int64_t invoice_id; /* the finalized invoice it corrects */
    int64_t amount;
};

struct bill_invoice {
    char *plan_id;
    char *plan_name;
    char currency[4];
    int minor_digits;
    size_t nlines; /* one per charge of the plan, in the plan's order */
    struct bill_line *lines;
    int64_t subscription; /* minor units */
    size_t nadjustments;
    struct bill_adjustment *adjustments;
    int64_t total;        /* sum of the lines' amounts, the subscription and adjustments */
};

/**
 * Add an adjustment line for an earlier period; the total includes it.
 * @return BILL_OK, BILL_EOVERFLOW (invoice unchanged), BILL_ENOMEM
 */
enum bill_status bill_invoice_add_adjustment(struct bill_invoice *inv, const char *period,
                                             int64_t invoice_id, int64_t amount,
                                             struct fm_err *err);

struct bill_price_options {
    bool no_free_tier; /* ignore every free allowance */
};

/**
 * Price one period of usage under a plan.
 *
 * @param plan  borrowed; must outlive the call
 * @param use   the period's usage, already rounded per invocation; borrowed
 * @param out   on BILL_OK, the invoice (caller frees with bill_invoice_free); untouched on error
 * @param err   optional message buffer
 * @return BILL_OK, BILL_EOVERFLOW when a quantity or an amount does not fit, BILL_ENOMEM
 *
 * Thread safety: reads plan and use only; concurrent calls on the same ones are safe.
 */
enum bill_status bill_price(const struct bill_plan *plan, const struct bill_usage *use,
                            struct bill_invoice **out, struct fm_err *err);

/** bill_price with options; opts may be NULL for the defaults. */
enum bill_status bill_price_with(const struct bill_plan *plan, const struct bill_usage *use,
                                 const struct bill_price_options *opts,
                                 struct bill_invoice **out, struct fm_err *err);

/** Free an invoice. NULL is a no-op. */
void bill_invoice_free(struct bill_invoice *inv);

enum bill_format { BILL_FORMAT_TEXT, BILL_FORMAT_JSON, BILL_FORMAT_CSV };

/** The format named "text", "json" or "csv". Returns 0, or -1 (out untouched). */
int bill_format_from_name(const char *name, enum bill_format *out);

/**
 * Append the invoice to out.
 *  - TEXT: an aligned table for people, a row per line and per function's share.
 *  - JSON: {"plan","plan_name","currency","tenant"?,"period"?,"lines":[{"item","meter",
 *    "usage","free","quantity","unit_price","tiers","amount","functions":[{"function",
 *    "amount"}]}],"total"}, every number a decimal string. The subscription and each
 *    adjustment are lines too ("meter" "subscription" or "adjustment", quantity 1, an
 *    adjustment with its "period" and "invoice_id"), so that the total is the sum of the
 *    lines' amounts.
 *  - CSV: header item,meter,function,quantity,unit_price,amount; a row per line, one per
 *    function's share, then subscription and total rows (RFC 4180 quoting).
 *
 * @param tenant  optional, shown when not NULL
 * @param period  optional ("2026-11"), shown when not NULL
 * @return 0, or -1 when out reached its cap or memory ran out
 */
int bill_invoice_render(const struct bill_invoice *inv, enum bill_format fmt, const char *tenant,
                        const char *period, struct fm_buf *out);

#endif
