#include "billing/invoice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Quantities terminate within 30 digits (bytes / 2^30) but nobody reads that many. */
#define QTY_DIGITS 15

void bill_invoice_free(struct bill_invoice *inv)
{
    if (inv == NULL)
        return;
    for (size_t i = 0; i < inv->nlines; i++) {
        struct bill_line *l = &inv->lines[i];
        for (size_t j = 0; j < l->nshares; j++)
            free(l->shares[j].function);
        free(l->shares);
        free(l->tiers);
        free(l->item);
    }
    free(inv->lines);
    free(inv->adjustments);
    free(inv->plan_id);
    free(inv->plan_name);
    free(inv);
}

static enum bill_status overflow(const struct bill_charge *c, struct fm_err *err)
{
    fm_err_set(err, "%s: the amount does not fit in 128-bit arithmetic",
               bill_meter_info(c->meter)->name);
    return BILL_EOVERFLOW;
}

/*
 * All quantities of a charge are put in one exact unit: 1 / (base_per_unit × 10^k) of the
 * display unit, where k is the most decimals the free allowance and tier bounds carry. Usage
 * in base units, the allowance and the bounds are then plain integers in that unit, and the
 * tiered amount is an integer over (base_per_unit × 10^k × 10^pk), pk being the most
 * decimals of the tier prices. Only that final ratio is rounded.
 */
static enum bill_status price_charge(const struct bill_charge *c, int64_t usage, bool no_free,
                                     int digits, struct bill_line *line, struct fm_err *err)
{
    int k, pk;
    __int128 per = bill_meter_info(c->meter)->base_per_unit;
    __int128 s10, unit, den, x, f = 0, num = 0, lower = 0;
    if (bill_charge_unit(c, no_free, &k, &pk, &unit, &den) != 0 || bill_pow10(k, &s10) != 0 ||
        __builtin_mul_overflow((__int128)usage, s10, &x))
        return overflow(c, err);
    if (!no_free &&
        (bill_dec_units_at(c->free, k, &f) != 0 || __builtin_mul_overflow(f, per, &f)))
        return overflow(c, err);
    __int128 billable = x > f ? x - f : 0;
    __int128 used_free = x > f ? f : x;

    line->tiers = calloc(c->ntiers, sizeof *line->tiers);
    if (line->tiers == NULL)
        return fm_err_set(err, "out of memory"), BILL_ENOMEM;
    size_t last = 0;
    for (size_t i = 0; i < c->ntiers && billable > lower; i++) {
        const struct bill_tier *t = &c->tiers[i];
        __int128 upper = 0, price, part;
        if (!t->unbounded && (bill_dec_units_at(t->up_to, k, &upper) != 0 ||
                              __builtin_mul_overflow(upper, per, &upper)))
            return overflow(c, err);
        __int128 top = t->unbounded || billable < upper ? billable : upper;
        if (bill_dec_units_at(t->unit_price, pk, &price) != 0 ||
            __builtin_mul_overflow(top - lower, price, &part) ||
            __builtin_add_overflow(num, part, &num))
            return overflow(c, err);
        struct bill_tier_use *tu = &line->tiers[line->ntiers++];
        if (bill_ratio_format(top - lower, unit, QTY_DIGITS, tu->quantity, sizeof tu->quantity) !=
                0 ||
            bill_dec_format(t->unit_price, tu->unit_price, sizeof tu->unit_price) != 0)
            return overflow(c, err);
        last = i;
        lower = upper;
    }
    if (bill_ratio_round(num, den, digits, &line->amount) != 0 ||
        bill_ratio_format(x, unit, QTY_DIGITS, line->usage, sizeof line->usage) != 0 ||
        bill_ratio_format(used_free, unit, QTY_DIGITS, line->free, sizeof line->free) != 0 ||
        bill_ratio_format(billable, unit, QTY_DIGITS, line->quantity, sizeof line->quantity) !=
            0 ||
        bill_dec_format(c->tiers[last].unit_price, line->unit_price, sizeof line->unit_price) !=
            0)
        return overflow(c, err);
    line->usage_base = usage;
    return BILL_OK;
}

struct remainder {
    size_t share;
    __int128 rem;
    int64_t quantity;
};

static int cmp_remainder(const void *a, const void *b)
{
    const struct remainder *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem > y->rem ? -1 : 1;
    if (x->quantity != y->quantity)
        return x->quantity > y->quantity ? -1 : 1;
    return (x->share > y->share) - (x->share < y->share); /* shares are in name order */
}

/*
 * Split line->amount between the functions in proportion to their usage by largest
 * remainder: everyone gets the floor of their exact share, and the cents left over go to
 * the largest fractions, so the shares add up to the line to the cent.
 */
static enum bill_status share_line(struct bill_line *line, const struct bill_usage *use,
                                   const size_t *order, struct fm_err *err)
{
    size_t nfn = bill_usage_count(use), n = 0;
    for (size_t i = 0; i < nfn; i++)
        n += bill_quantities_get(bill_usage_quantities(use, order[i]), line->meter) > 0;
    if (n == 0)
        return BILL_OK;
    enum bill_status st = BILL_ENOMEM;
    struct remainder *rems = calloc(n, sizeof *rems);
    line->shares = calloc(n, sizeof *line->shares);
    if (rems == NULL || line->shares == NULL)
        goto done;
    int64_t given = 0;
    for (size_t i = 0; i < nfn; i++) {
        int64_t q = bill_quantities_get(bill_usage_quantities(use, order[i]), line->meter);
        if (q == 0)
            continue;
        struct bill_share *sh = &line->shares[line->nshares];
        sh->function = strdup(bill_usage_function(use, order[i]));
        if (sh->function == NULL)
            goto done;
        /* amount and q are below 2^63, so their product fits in 127 bits. */
        __int128 exact = (__int128)line->amount * q;
        sh->amount = (int64_t)(exact / line->usage_base);
        given += sh->amount;
        rems[line->nshares] = (struct remainder){line->nshares, exact % line->usage_base, q};
        line->nshares++;
    }
    qsort(rems, n, sizeof *rems, cmp_remainder);
    for (size_t i = 0; given < line->amount; i++, given++)
        line->shares[rems[i].share].amount++;
    st = BILL_OK;
done:
    if (st == BILL_ENOMEM)
        fm_err_set(err, "out of memory");
    free(rems);
    return st;
}

/* Function indices of use in name order, for a deterministic invoice. */
static size_t *function_order(const struct bill_usage *use)
{
    size_t n = bill_usage_count(use);
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (order == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* Insertion sort: qsort has no context argument in C11, and a global would make
     * pricing non-reentrant. Invoices have tens of functions, not thousands. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(bill_usage_function(use, order[j - 1]),
                                           bill_usage_function(use, order[j])) > 0;
             j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    return order;
}

enum bill_status bill_price_with(const struct bill_plan *plan, const struct bill_usage *use,
                                 const struct bill_price_options *opts,
                                 struct bill_invoice **out, struct fm_err *err)
{
    bool no_free = opts && opts->no_free_tier;
    struct bill_quantities total;
    enum bill_status st = bill_usage_total(use, &total, err);
    if (st != BILL_OK)
        return st;
    size_t *order = function_order(use);
    struct bill_invoice *inv = calloc(1, sizeof *inv);
    size_t n = bill_plan_charge_count(plan);
    st = BILL_ENOMEM;
    if (order == NULL || inv == NULL)
        goto nomem;
    inv->plan_id = strdup(bill_plan_id(plan));
    inv->plan_name = strdup(bill_plan_name(plan));
    inv->lines = calloc(n, sizeof *inv->lines);
    if (inv->plan_id == NULL || inv->plan_name == NULL || inv->lines == NULL)
        goto nomem;
    memcpy(inv->currency, bill_plan_currency(plan), sizeof inv->currency);
    inv->minor_digits = bill_plan_minor_digits(plan);

    struct bill_dec sub = bill_plan_subscription(plan);
    __int128 sub_den;
    if (bill_pow10(sub.scale, &sub_den) != 0 ||
        bill_ratio_round(sub.units, sub_den, inv->minor_digits, &inv->subscription) != 0) {
        st = BILL_EOVERFLOW;
        fm_err_set(err, "subscription: does not fit");
        goto done;
    }
    int64_t sum = inv->subscription;
    for (size_t i = 0; i < n; i++) {
        const struct bill_charge *c = bill_plan_charge(plan, i);
        struct bill_line *line = &inv->lines[inv->nlines++];
        line->meter = c->meter;
        if ((line->item = strdup(c->item)) == NULL)
            goto nomem;
        st = price_charge(c, bill_quantities_get(&total, c->meter), no_free,
                          inv->minor_digits, line, err);
        if (st == BILL_OK)
            st = share_line(line, use, order, err);
        if (st != BILL_OK)
            goto done;
        if (__builtin_add_overflow(sum, line->amount, &sum)) {
            st = BILL_EOVERFLOW;
            fm_err_set(err, "the invoice total does not fit");
            goto done;
        }
    }
    inv->total = sum;
    *out = inv;
    inv = NULL;
    st = BILL_OK;
    goto done;
nomem:
    st = BILL_ENOMEM;
    fm_err_set(err, "out of memory");
done:
    free(order);
    bill_invoice_free(inv);
    return st;
}

enum bill_status bill_price(const struct bill_plan *plan, const struct bill_usage *use,
                            struct bill_invoice **out, struct fm_err *err)
{
    return bill_price_with(plan, use, NULL, out, err);
}

enum bill_status bill_invoice_add_adjustment(struct bill_invoice *inv, const char *period,
                                             int64_t invoice_id, int64_t amount,
                                             struct fm_err *err)
{
    int64_t total;
    if (__builtin_add_overflow(inv->total, amount, &total))
        return fm_err_set(err, "adjustment for %s overflows the total", period),
               BILL_EOVERFLOW;
    struct bill_adjustment *grown =
        realloc(inv->adjustments, (inv->nadjustments + 1) * sizeof *grown);
    if (grown == NULL)
        return fm_err_set(err, "out of memory"), BILL_ENOMEM;
    inv->adjustments = grown;
    struct bill_adjustment *a = &grown[inv->nadjustments++];
    snprintf(a->period, sizeof a->period, "%s", period);
    a->invoice_id = invoice_id;
    a->amount = amount;
    inv->total = total;
    return BILL_OK;
}
