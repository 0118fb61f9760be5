#include "billing/compare.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/json_field.h"
#include "common/timeutil.h"

#define FUNCTION_MAX 128
#define DRIVER_PERCENT 80 /* drivers: the costliest functions that make up this much */

struct bill_stats {
    const struct bill_plan **plans;
    struct bill_usage **uses; /* one per plan, rounded under it */
    size_t nplans;
    struct bill_fn_stats *fns;
    size_t nfns, capfns, last;
    int64_t from_us, to_us, bucket_us;
    size_t nbuckets;
    struct bill_bucket *buckets;
    int64_t peak_concurrency, peak_memory_mb, peak_cpu_millicores;
    int64_t max_memory_mb; /* of one invocation: servers with less cannot run it */
};

void bill_stats_free(struct bill_stats *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nplans; i++)
        bill_usage_free(st->uses[i]);
    for (size_t i = 0; i < st->nfns; i++)
        free(st->fns[i].function);
    free(st->uses);
    free(st->plans);
    free(st->fns);
    free(st->buckets);
    free(st);
}

enum bill_status bill_stats_new(const struct bill_plan *const *plans, size_t nplans,
                                int64_t from_us, int64_t to_us, int64_t bucket_us,
                                struct bill_stats **out, struct fm_err *err)
{
    if (to_us <= from_us || (bucket_us != BILL_HOUR_US && bucket_us != BILL_DAY_US))
        return fm_err_set(err, "stats: empty period or bad bucket width"), BILL_EINVAL;
    int64_t nb = (to_us - from_us + bucket_us - 1) / bucket_us;
    if (nb > BILL_COMPARE_MAX_BUCKETS)
        return fm_err_set(err, "stats: more than %d buckets", BILL_COMPARE_MAX_BUCKETS),
               BILL_EINVAL;
    struct bill_stats *st = calloc(1, sizeof *st);
    if (st == NULL)
        goto nomem;
    st->from_us = from_us;
    st->to_us = to_us;
    st->bucket_us = bucket_us;
    st->nbuckets = (size_t)nb;
    st->plans = calloc(nplans ? nplans : 1, sizeof *st->plans);
    st->uses = calloc(nplans ? nplans : 1, sizeof *st->uses);
    st->buckets = calloc(st->nbuckets, sizeof *st->buckets);
    if (st->plans == NULL || st->uses == NULL || st->buckets == NULL)
        goto nomem;
    for (; st->nplans < nplans; st->nplans++) {
        st->plans[st->nplans] = plans[st->nplans];
        if ((st->uses[st->nplans] = bill_usage_new()) == NULL)
            goto nomem;
    }
    *out = st;
    return BILL_OK;
nomem:
    bill_stats_free(st);
    fm_err_set(err, "out of memory");
    return BILL_ENOMEM;
}

/* The totals of function, created empty when new; NULL when out of memory. */
static struct bill_fn_stats *fn_for(struct bill_stats *st, const char *function)
{
    if (st->last < st->nfns && strcmp(st->fns[st->last].function, function) == 0)
        return &st->fns[st->last];
    for (size_t i = 0; i < st->nfns; i++)
        if (strcmp(st->fns[i].function, function) == 0) {
            st->last = i;
            return &st->fns[i];
        }
    if (st->nfns == st->capfns) {
        size_t cap = st->capfns ? st->capfns * 2 : 8;
        struct bill_fn_stats *f = realloc(st->fns, cap * sizeof *f);
        if (f == NULL)
            return NULL;
        st->fns = f;
        st->capfns = cap;
    }
    char *name = strdup(function);
    if (name == NULL)
        return NULL;
    st->fns[st->nfns] = (struct bill_fn_stats){.function = name};
    st->last = st->nfns;
    return &st->fns[st->nfns++];
}

/* The per-function counters in one place, so adding and scaling treat them alike. */
#define FN_FIELDS 9
static void fn_fields(struct bill_fn_stats *f, int64_t *p[FN_FIELDS])
{
    p[0] = &f->invocations;
    p[1] = &f->errors;
    p[2] = &f->cold_starts;
    p[3] = &f->duration_us;
    p[4] = &f->init_us;
    p[5] = &f->memory_mb;
    p[6] = &f->max_rss_kb;
    p[7] = &f->cpu_us;
    p[8] = &f->bytes_out;
}

enum bill_status bill_stats_add(struct bill_stats *st, const char *function,
                                const struct bill_invocation *inv, unsigned flags,
                                struct fm_err *err)
{
    size_t len = function ? strlen(function) : 0;
    if (len == 0 || len > FUNCTION_MAX)
        return fm_err_set(err, "function name must be 1-%d characters", FUNCTION_MAX),
               BILL_EINVAL;
    for (size_t i = 0; i < st->nplans; i++) {
        enum bill_status s = bill_usage_add_invocation(st->uses[i], st->plans[i], function, inv,
                                                       err);
        if (s != BILL_OK)
            return s;
    }
    struct bill_fn_stats *f = fn_for(st, function);
    if (f == NULL)
        return fm_err_set(err, "out of memory"), BILL_ENOMEM;
    struct bill_fn_stats add = {
        .invocations = 1,
        .errors = (flags & BILL_OBS_ERROR) != 0,
        .cold_starts = (flags & BILL_OBS_COLD_START) != 0,
        .duration_us = inv->duration_us,
        .init_us = inv->init_us,
        .memory_mb = inv->memory_mb,
        .max_rss_kb = inv->max_rss_kb,
        .bytes_out = inv->bytes_out,
    };
    struct bill_fn_stats sum = *f;
    int64_t *s[FN_FIELDS], *a[FN_FIELDS];
    fn_fields(&sum, s);
    fn_fields(&add, a);
    if (__builtin_add_overflow(inv->cpu_user_us, inv->cpu_sys_us, &add.cpu_us))
        return fm_err_set(err, "invocation CPU time overflows"), BILL_EOVERFLOW;
    for (int i = 0; i < FN_FIELDS; i++)
        if (__builtin_add_overflow(*s[i], *a[i], s[i]))
            return fm_err_set(err, "function totals overflow 64 bits"), BILL_EOVERFLOW;
    *f = sum;
    if (inv->memory_mb > f->max_memory_mb)
        f->max_memory_mb = inv->memory_mb;
    bill_stats_note_memory(st, inv->memory_mb);
    return BILL_OK;
}

enum bill_status bill_stats_add_rated(struct bill_stats *st, const char *plan_id,
                                      const char *function, const struct bill_quantities *q,
                                      struct fm_err *err)
{
    for (size_t i = 0; i < st->nplans; i++)
        if (strcmp(bill_plan_id(st->plans[i]), plan_id) == 0)
            return bill_usage_add_quantities(st->uses[i], function, q, err);
    return fm_err_set(err, "plan '%s' is not among the compared plans", plan_id),
           BILL_ENOTFOUND;
}

enum bill_status bill_stats_add_function(struct bill_stats *st, const struct bill_fn_stats *add,
                                         struct fm_err *err)
{
    size_t len = add->function ? strlen(add->function) : 0;
    if (len == 0 || len > FUNCTION_MAX)
        return fm_err_set(err, "function name must be 1-%d characters", FUNCTION_MAX),
               BILL_EINVAL;
    struct bill_fn_stats a = *add, sum;
    int64_t *s[FN_FIELDS], *p[FN_FIELDS];
    fn_fields(&a, p);
    for (int k = 0; k < FN_FIELDS; k++)
        if (*p[k] < 0)
            return fm_err_set(err, "function %s: negative total", add->function), BILL_EINVAL;
    struct bill_fn_stats *f = fn_for(st, add->function);
    if (f == NULL)
        return fm_err_set(err, "out of memory"), BILL_ENOMEM;
    sum = *f;
    fn_fields(&sum, s);
    for (int k = 0; k < FN_FIELDS; k++)
        if (__builtin_add_overflow(*s[k], *p[k], s[k]))
            return fm_err_set(err, "function totals overflow 64 bits"), BILL_EOVERFLOW;
    if (add->invocations > 0 && add->max_memory_mb > sum.max_memory_mb)
        sum.max_memory_mb = add->max_memory_mb;
    *f = sum;
    if (add->invocations > 0)
        bill_stats_note_memory(st, add->max_memory_mb);
    return BILL_OK;
}

enum bill_status bill_stats_add_timeline(struct bill_stats *st, int64_t at_us,
                                         int64_t invocations, int64_t errors,
                                         int64_t cold_starts, struct fm_err *err)
{
    if (invocations < 0 || errors < 0 || cold_starts < 0)
        return fm_err_set(err, "negative count in usage over time"), BILL_EINVAL;
    if (at_us < st->from_us || at_us >= st->to_us)
        return BILL_OK;
    struct bill_bucket *b = &st->buckets[(at_us - st->from_us) / st->bucket_us];
    struct bill_bucket sum = *b;
    if (__builtin_add_overflow(sum.invocations, invocations, &sum.invocations) ||
        __builtin_add_overflow(sum.errors, errors, &sum.errors) ||
        __builtin_add_overflow(sum.cold_starts, cold_starts, &sum.cold_starts))
        return fm_err_set(err, "usage over time overflows"), BILL_EOVERFLOW;
    *b = sum;
    return BILL_OK;
}

void bill_stats_set_peak(struct bill_stats *st, int64_t concurrency, int64_t memory_mb,
                         int64_t cpu_millicores)
{
    st->peak_concurrency = concurrency > 0 ? concurrency : 0;
    st->peak_memory_mb = memory_mb > 0 ? memory_mb : 0;
    st->peak_cpu_millicores = cpu_millicores > 0 ? cpu_millicores : 0;
}

void bill_stats_note_memory(struct bill_stats *st, int64_t memory_mb)
{
    if (memory_mb > st->max_memory_mb)
        st->max_memory_mb = memory_mb;
}

enum bill_status bill_stats_scale(struct bill_stats *st, int64_t factor, int64_t period_us,
                                  struct fm_err *err)
{
    if (factor < 1 || period_us < 1)
        return fm_err_set(err, "scale: factor and period must be positive"), BILL_EINVAL;
    /* Check every product first so that a failure leaves the stats as they were. */
    for (size_t i = 0; i < st->nfns; i++) {
        int64_t *p[FN_FIELDS], v;
        fn_fields(&st->fns[i], p);
        for (int k = 0; k < FN_FIELDS; k++)
            if (__builtin_mul_overflow(*p[k], factor, &v))
                return fm_err_set(err, "scaled totals overflow 64 bits"), BILL_EOVERFLOW;
    }
    struct bill_usage **scaled = calloc(st->nplans ? st->nplans : 1, sizeof *scaled);
    enum bill_status rc = BILL_ENOMEM;
    if (scaled == NULL)
        goto done;
    for (size_t i = 0; i < st->nplans; i++) {
        const struct bill_usage *u = st->uses[i];
        if ((scaled[i] = bill_usage_new()) == NULL)
            goto done;
        for (size_t j = 0; j < bill_usage_count(u); j++) {
            struct bill_quantities q;
            rc = bill_quantities_scale(bill_usage_quantities(u, j), factor, &q, err);
            if (rc == BILL_OK)
                rc = bill_usage_add_quantities(scaled[i], bill_usage_function(u, j), &q, err);
            if (rc != BILL_OK)
                goto done;
        }
    }
    for (size_t i = 0; i < st->nplans; i++) {
        bill_usage_free(st->uses[i]);
        st->uses[i] = scaled[i];
        scaled[i] = NULL;
    }
    for (size_t i = 0; i < st->nfns; i++) {
        int64_t *p[FN_FIELDS];
        fn_fields(&st->fns[i], p);
        for (int k = 0; k < FN_FIELDS; k++)
            *p[k] *= factor;
    }
    st->to_us = st->from_us + period_us;
    rc = BILL_OK;
done:
    if (rc == BILL_ENOMEM)
        fm_err_set(err, "out of memory");
    for (size_t i = 0; scaled && i < st->nplans; i++)
        bill_usage_free(scaled[i]);
    free(scaled);
    return rc;
}

size_t bill_stats_function_count(const struct bill_stats *st)
{
    return st->nfns;
}

const struct bill_fn_stats *bill_stats_function(const struct bill_stats *st, size_t i)
{
    return &st->fns[i];
}

/* ---- The comparison ---------------------------------------------------------------- */

void bill_comparison_free(struct bill_comparison *cmp)
{
    if (cmp == NULL)
        return;
    for (size_t i = 0; i < cmp->nplans; i++)
        bill_invoice_free(cmp->plans[i].invoice);
    free(cmp->plans);
    free(cmp->servers);
    free(cmp->left_out);
    free(cmp->functions);
    free(cmp);
}

bool bill_compare_left_out_server(const struct bill_comparison *cmp, const char *id)
{
    for (size_t i = 0; i < cmp->nleft_out; i++)
        if (cmp->left_out[i].server && strcmp(cmp->left_out[i].id, id) == 0)
            return true;
    return false;
}

int bill_compare_left_out_text(const struct bill_comparison *cmp, struct fm_buf *out)
{
    for (size_t i = 0; i < cmp->nleft_out; i++) {
        const struct bill_left_out *l = &cmp->left_out[i];
        if (i == 0)
            fm_buf_printf(out, "Left out, priced in another currency than %s: ", cmp->currency);
        fm_buf_printf(out, "%s%s %s (%s)%s", i ? ", " : "", l->server ? "server" : "plan",
                      l->id, l->currency, i + 1 == cmp->nleft_out ? ".\n" : "");
    }
    return out->failed ? -1 : 0;
}

/* num/den rounded half-up to a whole number (den > 0, num >= 0); 0 when den is 0. */
static int64_t mean_of(int64_t num, int64_t den)
{
    int64_t q = 0;
    if (den > 0 && bill_ratio_round(num, den, 0, &q) != 0)
        q = 0; /* cannot happen: a mean of int64 values fits */
    return q;
}

/* ceil(a / b) for a >= 0, b > 0. */
static int64_t ceil_div(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

static void percent(__int128 num, __int128 den, char buf[BILL_NUM_BUFSZ])
{
    if (den <= 0 || bill_ratio_format(num * 100, den, 2, buf, BILL_NUM_BUFSZ) != 0)
        snprintf(buf, BILL_NUM_BUFSZ, "0");
}

enum bill_status bill_compare_cost_at(const struct bill_comparison *cmp, size_t i,
                                      int64_t volume, int64_t *out, struct fm_err *err)
{
    if (volume < 0)
        return fm_err_set(err, "volume must not be negative"), BILL_EINVAL;
    const struct bill_plan *plan = cmp->plans[i].plan;
    struct bill_quantities one, all;
    struct bill_usage *use = NULL;
    struct bill_invoice *inv = NULL;
    enum bill_status rc = bill_plan_round(plan, &cmp->mean, &one, err);
    if (rc == BILL_OK)
        rc = bill_quantities_scale(&one, volume, &all, err);
    if (rc != BILL_OK)
        goto done;
    if ((use = bill_usage_new()) == NULL) {
        rc = BILL_ENOMEM;
        fm_err_set(err, "out of memory");
        goto done;
    }
    rc = bill_usage_add_quantities(use, "mean", &all, err);
    if (rc == BILL_OK)
        rc = bill_price(plan, use, &inv, err);
    if (rc == BILL_OK)
        *out = inv->total;
done:
    bill_invoice_free(inv);
    bill_usage_free(use);
    return rc;
}

/* Does the bill for volume reach fee? A bill too large to compute certainly does. */
static enum bill_status reaches(const struct bill_comparison *cmp, size_t i, int64_t volume,
                                int64_t fee, bool *out, struct fm_err *err)
{
    int64_t cost;
    enum bill_status rc = bill_compare_cost_at(cmp, i, volume, &cost, err);
    if (rc == BILL_EOVERFLOW) {
        *out = true;
        return BILL_OK;
    }
    if (rc == BILL_OK)
        *out = cost >= fee;
    return rc;
}

/*
 * The break-even search asks for some fifty points of a plan's cost curve. Pricing a whole
 * invoice for each (allocations, per-function shares, decimal strings) dominated the
 * comparison, yet only the total matters and everything but the volume is fixed. So the
 * plan is reduced once to the exact integers bill_price works in, and a point costs a few
 * 128-bit operations. A point must come out exactly as bill_compare_cost_at would, failures
 * included: any amount or quantity that invoice pricing could not hold makes the point an
 * overflow, which the search counts as reaching the fee.
 */

/* Decimals bill_price formats a line's quantities to (QTY_DIGITS in invoice.c; the compare
 * tests catch the two drifting apart): a quantity it cannot format at that precision fails
 * the invoice, so the curve must fail there too. */
#define CURVE_QTY_DIGITS 15

struct curve_tier {
    bool unbounded;
    __int128 upper; /* in the charge's exact unit; 0 when unbounded, as bill_price has it */
    __int128 price; /* in units of 10^-pk */
};

struct curve_charge {
    enum bill_meter meter;
    __int128 s10;  /* 10^k: base units to the exact unit, over base_per_unit */
    __int128 unit; /* exact units in one display unit */
    __int128 den;  /* an amount is its tier sums over this, in the currency's major unit */
    __int128 free; /* the allowance in exact units */
    size_t ntiers;
    struct curve_tier *tiers; /* points into the curve's tier array */
};

struct curve {
    /* FAST: the integers below. OVERFLOW: the mean invocation itself does not round, so
     * every volume overflows. INVOICE: a plan constant or quantity outside what the fast
     * path mirrors; such plans are not worth a second copy of the rules, so price invoices. */
    enum { CURVE_FAST, CURVE_OVERFLOW, CURVE_INVOICE } kind;
    struct bill_quantities one; /* the mean invocation rounded under the plan */
    int digits;
    int64_t subscription;
    __int128 p15; /* 10^CURVE_QTY_DIGITS */
    size_t ncharges;
    struct curve_charge *charges;
    struct curve_tier *tiers;
};

static void curve_free(struct curve *cv)
{
    free(cv->charges);
    free(cv->tiers);
}

/* Reduce charge c as bill_price's price_charge does. Returns false when a constant of it
 * does not fit; the curve then falls back to pricing invoices, which fail exactly where
 * they would. */
static bool curve_charge_init(struct curve_charge *cc, const struct bill_charge *c,
                              struct curve_tier *tiers)
{
    int k = c->free.scale, pk = 0;
    for (size_t t = 0; t < c->ntiers; t++) {
        if (!c->tiers[t].unbounded && c->tiers[t].up_to.scale > k)
            k = c->tiers[t].up_to.scale;
        if (c->tiers[t].unit_price.scale > pk)
            pk = c->tiers[t].unit_price.scale;
    }
    __int128 per = bill_meter_info(c->meter)->base_per_unit, p10;
    if (bill_pow10(k, &cc->s10) != 0 || bill_pow10(pk, &p10) != 0 ||
        __builtin_mul_overflow(per, cc->s10, &cc->unit) ||
        __builtin_mul_overflow(cc->unit, p10, &cc->den) ||
        bill_dec_units_at(c->free, k, &cc->free) != 0 ||
        __builtin_mul_overflow(cc->free, per, &cc->free))
        return false;
    cc->meter = c->meter;
    cc->ntiers = c->ntiers;
    cc->tiers = tiers;
    for (size_t t = 0; t < c->ntiers; t++) {
        const struct bill_tier *bt = &c->tiers[t];
        struct curve_tier *ct = &tiers[t];
        char shown[BILL_NUM_BUFSZ];
        ct->unbounded = bt->unbounded;
        ct->upper = 0;
        if (!bt->unbounded && (bill_dec_units_at(bt->up_to, k, &ct->upper) != 0 ||
                               __builtin_mul_overflow(ct->upper, per, &ct->upper)))
            return false;
        if (bill_dec_units_at(bt->unit_price, pk, &ct->price) != 0 ||
            bill_dec_format(bt->unit_price, shown, sizeof shown) != 0)
            return false;
    }
    return true;
}

/*
 * Set up plan's cost curve for the mean invocation.
 * @return BILL_OK (cv to be released with curve_free), or the error pricing any volume
 *         would report (BILL_EINVAL for an invocation the plan cannot round), BILL_ENOMEM
 */
static enum bill_status curve_init(struct curve *cv, const struct bill_plan *plan,
                                   const struct bill_invocation *mean, struct fm_err *err)
{
    *cv = (struct curve){.kind = CURVE_FAST, .digits = bill_plan_minor_digits(plan)};
    enum bill_status rc = bill_plan_round(plan, mean, &cv->one, err);
    if (rc == BILL_EOVERFLOW) {
        cv->kind = CURVE_OVERFLOW;
        return BILL_OK;
    }
    if (rc != BILL_OK)
        return rc;
    size_t n = bill_plan_charge_count(plan), ntiers = 0;
    for (size_t i = 0; i < n; i++)
        ntiers += bill_plan_charge(plan, i)->ntiers;
    cv->charges = calloc(n ? n : 1, sizeof *cv->charges);
    cv->tiers = calloc(ntiers ? ntiers : 1, sizeof *cv->tiers);
    if (cv->charges == NULL || cv->tiers == NULL) {
        curve_free(cv);
        return fm_err_set(err, "out of memory"), BILL_ENOMEM;
    }
    /* Quantities that are negative are refused by the usage, not priced: leave them, and
     * any plan constant that does not fit, to the invoice. */
    const int64_t q[] = {cv->one.requests, cv->one.mb_ms,        cv->one.mhz_ms,
                         cv->one.cpu_us,   cv->one.egress_bytes, cv->one.billed_ms};
    for (size_t f = 0; f < sizeof q / sizeof q[0]; f++)
        if (q[f] < 0)
            cv->kind = CURVE_INVOICE;
    struct bill_dec sub = bill_plan_subscription(plan);
    __int128 sub_den;
    if (bill_pow10(CURVE_QTY_DIGITS, &cv->p15) != 0 || bill_pow10(sub.scale, &sub_den) != 0 ||
        bill_ratio_round(sub.units, sub_den, cv->digits, &cv->subscription) != 0)
        cv->kind = CURVE_INVOICE;
    for (size_t i = 0, used = 0; cv->kind == CURVE_FAST && i < n; i++) {
        const struct bill_charge *c = bill_plan_charge(plan, i);
        if (!curve_charge_init(&cv->charges[i], c, cv->tiers + used))
            cv->kind = CURVE_INVOICE;
        used += c->ntiers;
    }
    cv->ncharges = n;
    return BILL_OK;
}

/* Would bill_price format v exact units as a quantity? (its half-up rounding must fit) */
static bool curve_qty_fits(const struct curve *cv, __int128 v, __int128 unit)
{
    __int128 t;
    return v >= 0 && unit > 0 && !__builtin_mul_overflow(v, cv->p15, &t) &&
           !__builtin_mul_overflow(t, 2, &t) && !__builtin_add_overflow(t, unit, &t);
}

/* The line's amount in minor units for usage base units, or false where bill_price fails. */
static bool curve_line(const struct curve *cv, const struct curve_charge *cc, int64_t usage,
                       int64_t *amount)
{
    __int128 x, num = 0, lower = 0;
    if (__builtin_mul_overflow((__int128)usage, cc->s10, &x))
        return false;
    __int128 billable = x > cc->free ? x - cc->free : 0;
    __int128 used_free = x > cc->free ? cc->free : x;
    for (size_t t = 0; t < cc->ntiers && billable > lower; t++) {
        const struct curve_tier *ct = &cc->tiers[t];
        __int128 top = ct->unbounded || billable < ct->upper ? billable : ct->upper, part;
        if (__builtin_mul_overflow(top - lower, ct->price, &part) ||
            __builtin_add_overflow(num, part, &num) || !curve_qty_fits(cv, top - lower, cc->unit))
            return false;
        lower = ct->upper;
    }
    return bill_ratio_round(num, cc->den, cv->digits, amount) == 0 &&
           curve_qty_fits(cv, x, cc->unit) && curve_qty_fits(cv, used_free, cc->unit) &&
           curve_qty_fits(cv, billable, cc->unit);
}

/* The bill for volume mean invocations, or false where pricing the invoice overflows. */
static bool curve_cost(const struct curve *cv, int64_t volume, int64_t *out)
{
    struct bill_quantities all;
    if (bill_quantities_scale(&cv->one, volume, &all, NULL) != BILL_OK)
        return false;
    int64_t sum = cv->subscription, amount;
    for (size_t i = 0; i < cv->ncharges; i++) {
        const struct curve_charge *cc = &cv->charges[i];
        if (!curve_line(cv, cc, bill_quantities_get(&all, cc->meter), &amount) ||
            __builtin_add_overflow(sum, amount, &sum))
            return false;
    }
    *out = sum;
    return true;
}

/* reaches(), answered from the curve when it could be set up. */
static enum bill_status curve_reaches(const struct curve *cv, const struct bill_comparison *cmp,
                                      size_t i, int64_t volume, int64_t fee, bool *out,
                                      struct fm_err *err)
{
    int64_t cost;
    switch (cv->kind) {
    case CURVE_FAST:
        *out = !curve_cost(cv, volume, &cost) || cost >= fee;
        return BILL_OK;
    case CURVE_OVERFLOW:
        *out = true;
        return BILL_OK;
    case CURVE_INVOICE:
        break;
    }
    return reaches(cmp, i, volume, fee, out, err);
}

/* The smallest volume whose bill under plan i reaches fee, or -1 below the ceiling. */
static enum bill_status breakeven(const struct bill_comparison *cmp, size_t i, int64_t fee,
                                  int64_t *out, struct fm_err *err)
{
    struct curve cv;
    bool hit;
    enum bill_status rc = curve_init(&cv, cmp->plans[i].plan, &cmp->mean, err);
    if (rc != BILL_OK)
        return rc;
    if ((rc = curve_reaches(&cv, cmp, i, BILL_COMPARE_MAX_VOLUME, fee, &hit, err)) != BILL_OK)
        goto done;
    if (!hit) {
        *out = -1;
        goto done;
    }
    /* Invariant: the bill for hi reaches the fee, the bill for lo - 1 does not. */
    int64_t lo = 0, hi = BILL_COMPARE_MAX_VOLUME;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((rc = curve_reaches(&cv, cmp, i, mid, fee, &hit, err)) != BILL_OK)
            goto done;
        if (hit)
            hi = mid;
        else
            lo = mid + 1;
    }
    *out = lo;
done:
    curve_free(&cv);
    return rc;
}

static void fit_server(struct bill_server_fit *fit, const struct bill_server *s,
                       const struct bill_stats *st, int64_t busy_us, int64_t period_us)
{
    /* The busiest hour's mean memory may be far below one invocation's: a function of
     * 10 GB run now and then averages a few MB, yet no number of 1 GB servers runs it. */
    fit->server = s;
    fit->fits = s->memory_mb >= st->max_memory_mb;
    if (!fit->fits) {
        snprintf(fit->utilisation, sizeof fit->utilisation, "0");
        return;
    }
    int64_t by_mem = ceil_div(st->peak_memory_mb, s->memory_mb);
    int64_t by_cpu = ceil_div(st->peak_concurrency, s->vcpus);
    /* An execution on several threads keeps more than its one vCPU busy: the CPU time
     * sizes the fleet as well. */
    int64_t by_cores = ceil_div(st->peak_cpu_millicores, (int64_t)s->vcpus * 1000);
    fit->count = by_mem > by_cpu ? by_mem : by_cpu;
    if (by_cores > fit->count)
        fit->count = by_cores;
    if (fit->count < 1)
        fit->count = 1; /* running anything at all takes one */
    percent(busy_us, (__int128)fit->count * s->vcpus * period_us, fit->utilisation);
}

static int by_cost_desc(const void *a, const void *b)
{
    const struct bill_fn_cost *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return strcmp(x->stats->function, y->stats->function);
}

/* The cheapest server whose memory holds f's mean invocation, enough of them to carry its
 * busy time and its CPU time over the period (a vCPU for each execution or core kept busy,
 * as the fleet is sized); leaves c->server NULL when none fits. */
static void fn_server(struct bill_fn_cost *c, const struct bill_comparison *cmp)
{
    const struct bill_fn_stats *f = c->stats;
    /* As for the fleet: a server with less memory than one of its invocations cannot run
     * it. */
    for (size_t k = 0; k < cmp->nservers; k++) {
        const struct bill_server *s = cmp->servers[k].server;
        if (s->memory_mb < f->max_memory_mb)
            continue;
        __int128 cap = (__int128)s->vcpus * cmp->period_us;
        __int128 n = (f->duration_us + cap - 1) / cap, by_cpu = (f->cpu_us + cap - 1) / cap;
        if (by_cpu > n)
            n = by_cpu;
        if (n < 1)
            n = 1;
        __int128 fee = n * cmp->servers[k].unit_fee;
        if (fee > INT64_MAX)
            continue;
        if (c->server == NULL || fee < c->server_fee) {
            c->server = s;
            c->server_fee = (int64_t)fee;
        }
    }
    c->cheaper_on_server = c->server != NULL && c->server_fee < c->cost;
}

static enum bill_status cost_functions(struct bill_comparison *cmp, struct fm_err *err)
{
    const struct bill_stats *st = cmp->stats;
    const struct bill_invoice *inv = cmp->plans[cmp->own].invoice;
    cmp->functions = calloc(st->nfns ? st->nfns : 1, sizeof *cmp->functions);
    if (cmp->functions == NULL)
        return fm_err_set(err, "out of memory"), BILL_ENOMEM;
    cmp->nfunctions = st->nfns;
    int64_t lines = 0;
    for (size_t i = 0; i < st->nfns; i++)
        cmp->functions[i].stats = &st->fns[i];
    for (size_t l = 0; l < inv->nlines; l++) {
        lines += inv->lines[l].amount;
        for (size_t j = 0; j < inv->lines[l].nshares; j++)
            for (size_t i = 0; i < st->nfns; i++)
                if (strcmp(inv->lines[l].shares[j].function, st->fns[i].function) == 0) {
                    cmp->functions[i].cost += inv->lines[l].shares[j].amount;
                    break;
                }
    }
    qsort(cmp->functions, cmp->nfunctions, sizeof *cmp->functions, by_cost_desc);
    int64_t before = 0;
    for (size_t i = 0; i < cmp->nfunctions; i++) {
        struct bill_fn_cost *c = &cmp->functions[i];
        percent(c->cost, inv->total, c->share);
        /* A function is a driver while the costlier ones have not yet made DRIVER_PERCENT. */
        c->driver = c->cost > 0 && (__int128)before * 100 < (__int128)lines * DRIVER_PERCENT;
        before += c->cost;
        fn_server(c, cmp);
    }
    return BILL_OK;
}

enum bill_status bill_compare(const struct bill_stats *st, const char *own_plan,
                              const struct bill_server *const *servers, size_t nservers,
                              const char *tenant, const char *period,
                              struct bill_comparison **out, struct fm_err *err)
{
    enum bill_status rc = BILL_ENOMEM;
    struct bill_comparison *cmp = calloc(1, sizeof *cmp);
    if (cmp == NULL)
        goto nomem;
    cmp->stats = st;
    snprintf(cmp->tenant, sizeof cmp->tenant, "%s", tenant ? tenant : "");
    snprintf(cmp->period, sizeof cmp->period, "%s", period ? period : "");
    cmp->period_us = st->to_us - st->from_us;
    cmp->best = -1;
    cmp->own = st->nplans;
    for (size_t i = 0; i < st->nplans; i++)
        if (strcmp(bill_plan_id(st->plans[i]), own_plan) == 0)
            cmp->own = i;
    if (cmp->own == st->nplans) {
        rc = BILL_ENOTFOUND;
        fm_err_set(err, "plan '%s' is not among the compared plans", own_plan);
        goto fail;
    }
    snprintf(cmp->currency, sizeof cmp->currency, "%s", bill_plan_currency(st->plans[cmp->own]));
    cmp->minor_digits = bill_plan_minor_digits(st->plans[cmp->own]);

    struct bill_fn_stats total = {0};
    for (size_t i = 0; i < st->nfns; i++) {
        int64_t *t[FN_FIELDS], *f[FN_FIELDS];
        fn_fields(&total, t);
        fn_fields(&st->fns[i], f);
        for (int k = 0; k < FN_FIELDS; k++)
            if (__builtin_add_overflow(*t[k], *f[k], t[k])) {
                rc = BILL_EOVERFLOW;
                fm_err_set(err, "period totals overflow 64 bits");
                goto fail;
            }
    }
    int64_t n = total.invocations;
    cmp->invocations = n;
    cmp->errors = total.errors;
    cmp->cold_starts = total.cold_starts;
    cmp->busy_us = total.duration_us;
    cmp->mean = (struct bill_invocation){
        .duration_us = mean_of(total.duration_us, n),
        .init_us = mean_of(total.init_us, n),
        .memory_mb = (int32_t)mean_of(total.memory_mb, n),
        .max_rss_kb = mean_of(total.max_rss_kb, n),
        .cpu_user_us = mean_of(total.cpu_us, n),
        .bytes_out = mean_of(total.bytes_out, n),
    };
    cmp->peak_concurrency = st->peak_concurrency;
    cmp->peak_memory_mb = st->peak_memory_mb;
    cmp->peak_cpu_millicores = st->peak_cpu_millicores;
    cmp->max_memory_mb = st->max_memory_mb;

    cmp->plans = calloc(st->nplans ? st->nplans : 1, sizeof *cmp->plans);
    cmp->servers = calloc(nservers ? nservers : 1, sizeof *cmp->servers);
    cmp->left_out = calloc(st->nplans + nservers + 1, sizeof *cmp->left_out);
    if (cmp->plans == NULL || cmp->servers == NULL || cmp->left_out == NULL)
        goto nomem;
    /* Amounts in two currencies cannot be set side by side: the others are left out. */
    size_t own = cmp->own;
    for (size_t i = 0; i < st->nplans; i++) {
        const char *currency = bill_plan_currency(st->plans[i]);
        if (strcmp(currency, cmp->currency) != 0) {
            struct bill_left_out *l = &cmp->left_out[cmp->nleft_out++];
            *l = (struct bill_left_out){.server = false, .id = bill_plan_id(st->plans[i])};
            snprintf(l->currency, sizeof l->currency, "%s", currency);
            continue;
        }
        struct bill_plan_cost *p = &cmp->plans[cmp->nplans];
        p->plan = st->plans[i];
        p->own = i == own;
        p->breakeven = -1;
        if (p->own)
            cmp->own = cmp->nplans;
        cmp->nplans++; /* counted before pricing so that a failure frees what was priced */
        if ((rc = bill_price(p->plan, st->uses[i], &p->invoice, err)) != BILL_OK)
            goto fail;
    }
    for (size_t i = 0; i < nservers; i++) {
        if (strcmp(servers[i]->currency, cmp->currency) != 0) {
            struct bill_left_out *l = &cmp->left_out[cmp->nleft_out++];
            *l = (struct bill_left_out){.server = true, .id = servers[i]->id};
            snprintf(l->currency, sizeof l->currency, "%s", servers[i]->currency);
            continue;
        }
        struct bill_server_fit *fit = &cmp->servers[cmp->nservers];
        fit_server(fit, servers[i], st, cmp->busy_us, cmp->period_us);
        if (bill_server_monthly_fee(fit->server, &fit->unit_fee) != 0 ||
            __builtin_mul_overflow(fit->unit_fee, fit->count, &fit->fee)) {
            rc = BILL_EOVERFLOW;
            fm_err_set(err, "server %s: monthly fee overflows", fit->server->id);
            goto fail;
        }
        if (fit->fits && (cmp->best < 0 || fit->fee < cmp->servers[cmp->best].fee))
            cmp->best = (long)cmp->nservers;
        cmp->nservers++;
    }
    for (size_t i = 0; bill_compare_has_breakeven(cmp) && i < cmp->nplans; i++)
        if ((rc = breakeven(cmp, i, cmp->servers[cmp->best].fee, &cmp->plans[i].breakeven,
                            err)) != BILL_OK)
            goto fail;
    if ((rc = cost_functions(cmp, err)) != BILL_OK)
        goto fail;
    *out = cmp;
    return BILL_OK;
nomem:
    fm_err_set(err, "out of memory");
fail:
    bill_comparison_free(cmp);
    return rc;
}

int64_t bill_compare_bucket_us(const struct bill_comparison *cmp)
{
    return cmp->stats->bucket_us;
}

size_t bill_compare_bucket_count(const struct bill_comparison *cmp)
{
    return cmp->stats->nbuckets;
}

const struct bill_bucket *bill_compare_bucket(const struct bill_comparison *cmp, size_t i)
{
    return &cmp->stats->buckets[i];
}

int64_t bill_compare_from_us(const struct bill_comparison *cmp)
{
    return cmp->stats->from_us;
}

void bill_compare_money(const struct bill_comparison *cmp, int64_t minor,
                        char buf[BILL_NUM_BUFSZ])
{
    /* Cannot fail: an int64 amount fits the buffer. */
    bill_money_format(minor, cmp->minor_digits, buf, BILL_NUM_BUFSZ);
}

void bill_compare_fit_text(const struct bill_comparison *cmp, const struct bill_server_fit *f,
                           char buf[BILL_FIT_BUFSZ])
{
    if (f->fits)
        buf[0] = '\0';
    else
        snprintf(buf, BILL_FIT_BUFSZ, "too small: a function is configured with %" PRId64 " MB",
                 cmp->max_memory_mb);
}

int bill_compare_no_fit_text(const struct bill_comparison *cmp, struct fm_buf *out)
{
    if (cmp->nservers == 0 || cmp->best >= 0)
        return 0;
    char bill[BILL_NUM_BUFSZ];
    bill_compare_money(cmp, cmp->plans[cmp->own].invoice->total, bill);
    fm_buf_printf(out,
                  "No server compared can run the workload: a function is configured with "
                  "%" PRId64 " MB, more memory than any of them has. Pay-per-use: %s %s. "
                  "Cheaper on %s.\n",
                  cmp->max_memory_mb, bill, cmp->currency, bill_compare_verdict(cmp));
    return out->failed ? -1 : 0;
}

bool bill_compare_has_breakeven(const struct bill_comparison *cmp)
{
    return cmp->best >= 0 && cmp->invocations > 0;
}

const char *bill_compare_verdict(const struct bill_comparison *cmp)
{
    if (cmp->best < 0)
        return "functions";
    return cmp->plans[cmp->own].invoice->total <= cmp->servers[cmp->best].fee ? "functions"
                                                                              : "servers";
}

/* JSON helpers: numbers go in as text, so no amount passes through binary floating point. */
static void add_money(cJSON *o, const struct bill_comparison *cmp, const char *name, int64_t v)
{
    char buf[BILL_NUM_BUFSZ];
    bill_compare_money(cmp, v, buf);
    cJSON_AddStringToObject(o, name, buf);
}

static void add_ratio(cJSON *o, const char *name, int64_t num, int64_t den, int frac)
{
    char buf[BILL_NUM_BUFSZ] = "0";
    if (den > 0)
        bill_ratio_format(num, den, frac, buf, sizeof buf);
    cJSON_AddStringToObject(o, name, buf);
}

/* Counts are integers; one beyond 2^53 would lose digits in a reader that parses JSON numbers
 * as binary fractions. */
static void add_count(cJSON *o, const char *name, int64_t v, bool *too_big)
{
    if (v > (INT64_C(1) << 53))
        *too_big = true;
    bill_json_add_int(o, name, v);
}

static void json_usage(cJSON *root, const struct bill_comparison *cmp, bool *big)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    add_count(u, "invocations", cmp->invocations, big);
    add_count(u, "errors", cmp->errors, big);
    add_count(u, "cold_starts", cmp->cold_starts, big);
    add_ratio(u, "busy_seconds", cmp->busy_us, 1000000, 6);
    add_ratio(u, "mean_duration_ms", cmp->mean.duration_us, 1000, 3);
    add_count(u, "mean_memory_mb", cmp->mean.memory_mb, big);
    add_count(u, "max_memory_mb", cmp->max_memory_mb, big);
    add_count(u, "peak_concurrency", cmp->peak_concurrency, big);
    add_count(u, "peak_memory_mb", cmp->peak_memory_mb, big);
    add_ratio(u, "peak_cpu_cores", cmp->peak_cpu_millicores, 1000, 3);
}

static void json_plans_servers(cJSON *root, const struct bill_comparison *cmp, bool *big)
{
    cJSON *plans = cJSON_AddArrayToObject(root, "plans");
    for (size_t i = 0; i < cmp->nplans; i++) {
        const struct bill_plan_cost *p = &cmp->plans[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(plans, o);
        cJSON_AddStringToObject(o, "plan", bill_plan_id(p->plan));
        cJSON_AddStringToObject(o, "name", bill_plan_name(p->plan));
        cJSON_AddBoolToObject(o, "own", p->own);
        add_money(o, cmp, "total", p->invoice->total);
        if (p->breakeven < 0)
            cJSON_AddNullToObject(o, "breakeven_invocations");
        else
            add_count(o, "breakeven_invocations", p->breakeven, big);
    }
    cJSON *servers = cJSON_AddArrayToObject(root, "servers");
    for (size_t i = 0; i < cmp->nservers; i++) {
        const struct bill_server_fit *f = &cmp->servers[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(servers, o);
        cJSON_AddStringToObject(o, "server", f->server->id);
        cJSON_AddStringToObject(o, "name", f->server->name);
        add_count(o, "vcpus", f->server->vcpus, big);
        add_count(o, "memory_mb", f->server->memory_mb, big);
        cJSON_AddBoolToObject(o, "fits", f->fits);
        if (f->fits) {
            cJSON_AddNullToObject(o, "reason");
            add_count(o, "count", f->count, big);
            add_money(o, cmp, "unit_monthly_fee", f->unit_fee);
            add_money(o, cmp, "monthly_fee", f->fee);
            cJSON_AddStringToObject(o, "utilisation_percent", f->utilisation);
        } else {
            /* Not sized: a count or fee would read as an offer it cannot keep. */
            char why[BILL_FIT_BUFSZ];
            bill_compare_fit_text(cmp, f, why);
            cJSON_AddStringToObject(o, "reason", why);
            cJSON_AddNullToObject(o, "count");
            add_money(o, cmp, "unit_monthly_fee", f->unit_fee);
            cJSON_AddNullToObject(o, "monthly_fee");
            cJSON_AddNullToObject(o, "utilisation_percent");
        }
    }
    if (cmp->best >= 0)
        cJSON_AddStringToObject(root, "best_server", cmp->servers[cmp->best].server->id);
    else
        cJSON_AddNullToObject(root, "best_server");
    cJSON_AddStringToObject(root, "verdict", bill_compare_verdict(cmp));
    cJSON *left = cJSON_AddArrayToObject(root, "left_out");
    for (size_t i = 0; i < cmp->nleft_out; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(left, o);
        cJSON_AddStringToObject(o, "kind", cmp->left_out[i].server ? "server" : "plan");
        cJSON_AddStringToObject(o, "id", cmp->left_out[i].id);
        cJSON_AddStringToObject(o, "currency", cmp->left_out[i].currency);
    }
}

static void json_functions(cJSON *root, const struct bill_comparison *cmp, bool *big)
{
    cJSON *fns = cJSON_AddArrayToObject(root, "functions");
    for (size_t i = 0; i < cmp->nfunctions; i++) {
        const struct bill_fn_cost *c = &cmp->functions[i];
        const struct bill_fn_stats *f = c->stats;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(fns, o);
        cJSON_AddStringToObject(o, "function", f->function);
        add_count(o, "invocations", f->invocations, big);
        add_count(o, "errors", f->errors, big);
        add_count(o, "cold_starts", f->cold_starts, big);
        add_ratio(o, "mean_duration_ms", f->duration_us, f->invocations * 1000, 3);
        add_ratio(o, "mean_memory_mb", f->memory_mb, f->invocations, 1);
        add_money(o, cmp, "cost", c->cost);
        cJSON_AddStringToObject(o, "share_percent", c->share);
        cJSON_AddBoolToObject(o, "driver", c->driver);
        if (c->server) {
            cJSON_AddStringToObject(o, "server", c->server->id);
            add_money(o, cmp, "server_monthly_fee", c->server_fee);
        } else {
            cJSON_AddNullToObject(o, "server");
            cJSON_AddNullToObject(o, "server_monthly_fee");
        }
        cJSON_AddBoolToObject(o, "cheaper_on_server", c->cheaper_on_server);
    }
}

static int json_timeline(cJSON *root, const struct bill_comparison *cmp, bool *big)
{
    const struct bill_stats *st = cmp->stats;
    cJSON *t = cJSON_AddObjectToObject(root, "timeline");
    char start[FM_TIME_BUFSZ];
    fm_time_format(st->from_us, start, sizeof start);
    cJSON_AddStringToObject(t, "bucket", st->bucket_us == BILL_HOUR_US ? "hour" : "day");
    cJSON_AddStringToObject(t, "start", start);
    /* Buckets as a raw array of triples: a month by the hour stays compact. */
    struct fm_buf raw;
    fm_buf_init(&raw, (size_t)BILL_COMPARE_MAX_BUCKETS * 3 * 24 + 16);
    fm_buf_puts(&raw, "[");
    for (size_t i = 0; i < st->nbuckets; i++) {
        const struct bill_bucket *b = &st->buckets[i];
        if (b->invocations > (INT64_C(1) << 53))
            *big = true;
        fm_buf_printf(&raw, "%s[%" PRId64 ",%" PRId64 ",%" PRId64 "]", i ? "," : "",
                      b->invocations, b->errors, b->cold_starts);
    }
    fm_buf_puts(&raw, "]");
    int rc = raw.failed || cJSON_AddRawToObject(t, "buckets", raw.data) == NULL ? -1 : 0;
    fm_buf_free(&raw);
    return rc;
}

int bill_compare_json(const struct bill_comparison *cmp, struct fm_buf *out)
{
    bool big = false;
    int rc = -1;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return -1;
    if (cmp->tenant[0])
        cJSON_AddStringToObject(root, "tenant", cmp->tenant);
    if (cmp->period[0])
        cJSON_AddStringToObject(root, "period", cmp->period);
    cJSON_AddStringToObject(root, "currency", cmp->currency);
    cJSON_AddStringToObject(root, "plan", bill_plan_id(cmp->plans[cmp->own].plan));
    cJSON_AddStringToObject(root, "assumptions",
                            "servers sized for the busiest hour's mean load (execution "
                            "time, memory x time and CPU time over the hour, each its own "
                            "maximum), not the momentary peak, by memory, by one "
                            "concurrent execution per vCPU (CPU-bound) and by CPU time; "
                            "a server with less memory than one invocation's configured "
                            "memory cannot run it and is left unsized; "
                            "730 hours a month; utilisation is busy time over capacity; "
                            "break-even at the mean "
                            "invocation with the server fee fixed");
    json_usage(root, cmp, &big);
    json_plans_servers(root, cmp, &big);
    json_functions(root, cmp, &big);
    if (json_timeline(root, cmp, &big) != 0 || big)
        goto done;
    if ((text = cJSON_PrintUnformatted(root)) == NULL)
        goto done;
    rc = fm_buf_puts(out, text) == 0 && fm_buf_puts(out, "\n") == 0 ? 0 : -1;
done:
    free(text);
    cJSON_Delete(root);
    return rc;
}
