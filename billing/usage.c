#include "billing/usage.h"

#include <stdlib.h>
#include <string.h>

#define FUNCTION_MAX 128

struct usage_entry {
    char *function;
    struct bill_quantities q;
};

struct bill_usage {
    struct usage_entry *entries;
    size_t n;
    size_t cap;
    size_t last; /* the entry found last: records of one function tend to come together */
};

/* The fields in meter order, so that per-field loops and bill_quantities_get agree. */
#define NFIELDS 6
static void fields(struct bill_quantities *q, int64_t *f[NFIELDS])
{
    f[0] = &q->requests;
    f[1] = &q->mb_ms;
    f[2] = &q->mhz_ms;
    f[3] = &q->cpu_us;
    f[4] = &q->egress_bytes;
    f[5] = &q->billed_ms;
}

int64_t bill_quantities_get(const struct bill_quantities *q, enum bill_meter m)
{
    switch (m) {
    case BILL_METER_REQUESTS:
        return q->requests;
    case BILL_METER_GB_SECONDS:
        return q->mb_ms;
    case BILL_METER_GHZ_SECONDS:
        return q->mhz_ms;
    case BILL_METER_CPU_MS:
        return q->cpu_us;
    case BILL_METER_EGRESS_GB:
        return q->egress_bytes;
    case BILL_METER_COUNT:
        break;
    }
    return 0;
}

enum bill_status bill_plan_round(const struct bill_plan *plan, const struct bill_invocation *inv,
                                 struct bill_quantities *out, struct fm_err *err)
{
    if (inv->duration_us < 0 || inv->init_us < 0 || inv->memory_mb < 0 || inv->max_rss_kb < 0 ||
        inv->cpu_user_us < 0 || inv->cpu_sys_us < 0 || inv->bytes_out < 0)
        return fm_err_set(err, "invocation has a negative quantity"), BILL_EINVAL;
    int64_t ms = bill_plan_billed_ms(plan, inv->duration_us, inv->init_us);
    int32_t mb = bill_plan_billed_mb(plan, inv->memory_mb, inv->max_rss_kb);
    if (ms < 0 || mb < 0)
        return fm_err_set(err, "invocation duration overflows"), BILL_EOVERFLOW;
    struct bill_quantities q = {.requests = 1, .billed_ms = ms, .egress_bytes = inv->bytes_out};
    if (__builtin_mul_overflow(ms, (int64_t)mb, &q.mb_ms) ||
        __builtin_mul_overflow(ms, bill_plan_mhz(plan, mb), &q.mhz_ms) ||
        __builtin_add_overflow(inv->cpu_user_us, inv->cpu_sys_us, &q.cpu_us))
        return fm_err_set(err, "invocation quantities overflow"), BILL_EOVERFLOW;
    *out = q;
    return BILL_OK;
}

enum bill_status bill_quantities_add(struct bill_quantities *acc, const struct bill_quantities *q,
                                     struct fm_err *err)
{
    struct bill_quantities sum = *acc, addend = *q;
    int64_t *s[NFIELDS], *a[NFIELDS];
    fields(&sum, s);
    fields(&addend, a);
    for (int i = 0; i < NFIELDS; i++)
        if (__builtin_add_overflow(*s[i], *a[i], s[i]))
            return fm_err_set(err, "usage quantities overflow 64 bits"), BILL_EOVERFLOW;
    *acc = sum;
    return BILL_OK;
}

enum bill_status bill_quantities_scale(const struct bill_quantities *q, int64_t n,
                                       struct bill_quantities *out, struct fm_err *err)
{
    if (n < 0)
        return fm_err_set(err, "negative invocation count"), BILL_EINVAL;
    struct bill_quantities r = *q;
    int64_t *f[NFIELDS];
    fields(&r, f);
    for (int i = 0; i < NFIELDS; i++)
        if (__builtin_mul_overflow(*f[i], n, f[i]))
            return fm_err_set(err, "usage quantities overflow 64 bits"), BILL_EOVERFLOW;
    *out = r;
    return BILL_OK;
}

struct bill_usage *bill_usage_new(void)
{
    return calloc(1, sizeof(struct bill_usage));
}

void bill_usage_free(struct bill_usage *use)
{
    if (use == NULL)
        return;
    for (size_t i = 0; i < use->n; i++)
        free(use->entries[i].function);
    free(use->entries);
    free(use);
}

/* The entry of function, created empty when new; NULL with err set on failure. */
static struct usage_entry *entry_for(struct bill_usage *use, const char *function,
                                     enum bill_status *st, struct fm_err *err)
{
    size_t len = function ? strlen(function) : 0;
    if (len == 0 || len > FUNCTION_MAX) {
        *st = BILL_EINVAL;
        fm_err_set(err, "function name must be 1-%d characters", FUNCTION_MAX);
        return NULL;
    }
    if (use->last < use->n && strcmp(use->entries[use->last].function, function) == 0)
        return &use->entries[use->last];
    for (size_t i = 0; i < use->n; i++)
        if (strcmp(use->entries[i].function, function) == 0) {
            use->last = i;
            return &use->entries[i];
        }
    if (use->n == use->cap) {
        size_t cap = use->cap ? use->cap * 2 : 8;
        struct usage_entry *e = realloc(use->entries, cap * sizeof *e);
        if (e == NULL)
            goto nomem;
        use->entries = e;
        use->cap = cap;
    }
    char *name = strdup(function);
    if (name == NULL)
        goto nomem;
    use->entries[use->n] = (struct usage_entry){.function = name};
    use->last = use->n;
    return &use->entries[use->n++];
nomem:
    *st = BILL_ENOMEM;
    fm_err_set(err, "out of memory");
    return NULL;
}

enum bill_status bill_usage_add_quantities(struct bill_usage *use, const char *function,
                                           const struct bill_quantities *q, struct fm_err *err)
{
    struct bill_quantities copy = *q;
    int64_t *f[NFIELDS];
    fields(&copy, f);
    for (int i = 0; i < NFIELDS; i++)
        if (*f[i] < 0)
            return fm_err_set(err, "negative usage quantity"), BILL_EINVAL;
    enum bill_status st = BILL_OK;
    struct usage_entry *e = entry_for(use, function, &st, err);
    if (e == NULL)
        return st;
    return bill_quantities_add(&e->q, q, err);
}

enum bill_status bill_usage_add_invocation(struct bill_usage *use, const struct bill_plan *plan,
                                           const char *function,
                                           const struct bill_invocation *inv, struct fm_err *err)
{
    struct bill_quantities q;
    enum bill_status st = bill_plan_round(plan, inv, &q, err);
    if (st != BILL_OK)
        return st;
    return bill_usage_add_quantities(use, function, &q, err);
}

size_t bill_usage_count(const struct bill_usage *use)
{
    return use->n;
}

const char *bill_usage_function(const struct bill_usage *use, size_t i)
{
    return use->entries[i].function;
}

const struct bill_quantities *bill_usage_quantities(const struct bill_usage *use, size_t i)
{
    return &use->entries[i].q;
}

enum bill_status bill_usage_total(const struct bill_usage *use, struct bill_quantities *out,
                                  struct fm_err *err)
{
    struct bill_quantities sum = {0};
    for (size_t i = 0; i < use->n; i++) {
        enum bill_status st = bill_quantities_add(&sum, &use->entries[i].q, err);
        if (st != BILL_OK)
            return st;
    }
    *out = sum;
    return BILL_OK;
}
