#include "billing/plan.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/json_field.h"

#define PATH_MAX_LEN 128
#define ID_MAX 64
#define NAME_MAX_LEN 200
#define SOURCE_MAX 500
#define MAX_TIERS 32
#define MAX_GHZ 64
#define MAX_DURATION_MS INT64_C(86400000) /* a day: steps and minimums beyond are mistakes */
#define MAX_MEMORY_MB 1048576

struct bill_plan {
    char *id;
    char *name;
    char *source;
    char *as_of;
    char currency[4];
    int minor_digits;
    struct bill_rounding rounding;
    struct bill_dec subscription;
    size_t ncharges;
    struct bill_charge charges[BILL_METER_COUNT];
    size_t nghz;
    struct bill_ghz *ghz; /* sorted by memory_mb */
};

static const struct bill_meter_info meters[BILL_METER_COUNT] = {
    [BILL_METER_REQUESTS] = {"requests", "Requests", "requests", "requests", 1},
    [BILL_METER_GB_SECONDS] = {"gb_seconds", "Compute (GB-s)", "GB-s", "MB-ms", 1024 * 1000},
    [BILL_METER_GHZ_SECONDS] = {"ghz_seconds", "Compute (GHz-s)", "GHz-s", "MHz-ms",
                                1000 * 1000},
    [BILL_METER_CPU_MS] = {"cpu_ms", "CPU time (ms)", "CPU-ms", "CPU-us", 1000},
    [BILL_METER_EGRESS_GB] = {"egress_gb", "Egress (GB)", "GB", "bytes",
                              INT64_C(1024) * 1024 * 1024},
};

const struct bill_meter_info *bill_meter_info(enum bill_meter m)
{
    return &meters[m];
}

int bill_meter_from_name(const char *name, enum bill_meter *out)
{
    for (int m = 0; m < BILL_METER_COUNT; m++)
        if (strcmp(meters[m].name, name) == 0) {
            *out = (enum bill_meter)m;
            return 0;
        }
    return -1;
}

void bill_plan_free(struct bill_plan *plan)
{
    if (plan == NULL)
        return;
    for (size_t i = 0; i < plan->ncharges; i++) {
        free(plan->charges[i].item);
        free(plan->charges[i].tiers);
    }
    free(plan->ghz);
    free(plan->id);
    free(plan->name);
    free(plan->source);
    free(plan->as_of);
    free(plan);
}

/* Copy a string field into *dst (heap). Optional fields left out become "". */
static enum bill_status take_string(const cJSON *obj, const char *key, size_t max_len,
                                    bool required, char **dst, struct fm_err *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *s = "";
    if ((item != NULL || required) && bill_json_string(item, key, max_len, &s, err) != 0)
        return BILL_EINVAL;
    *dst = strdup(s);
    return *dst ? BILL_OK : BILL_ENOMEM;
}

static int object_field(const cJSON *root, const char *key, const cJSON **out,
                        struct fm_err *err)
{
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, key);
    if (obj == NULL)
        return fm_err_set(err, "%s: missing", key);
    if (!cJSON_IsObject(obj))
        return fm_err_set(err, "%s: expected an object", key);
    *out = obj;
    return 0;
}

static int parse_duration(const cJSON *root, struct bill_rounding *r, struct fm_err *err)
{
    const cJSON *d = NULL;
    int64_t step = 0, min = 0;
    bool init = false;
    static const char *const known[] = {"step_ms", "min_ms", "include_init", NULL};
    if (object_field(root, "duration", &d, err) != 0 ||
        bill_json_known(d, "duration", known, err) != 0 ||
        bill_json_int(cJSON_GetObjectItemCaseSensitive(d, "step_ms"), "duration.step_ms", 1,
                      MAX_DURATION_MS, &step, err) != 0 ||
        bill_json_int(cJSON_GetObjectItemCaseSensitive(d, "min_ms"), "duration.min_ms", 0,
                      MAX_DURATION_MS, &min, err) != 0 ||
        bill_json_bool(cJSON_GetObjectItemCaseSensitive(d, "include_init"),
                       "duration.include_init", &init, err) != 0)
        return -1;
    r->step_ms = step;
    r->min_ms = min;
    r->include_init = init;
    return 0;
}

static int parse_memory(const cJSON *root, struct bill_rounding *r, struct fm_err *err)
{
    const cJSON *m = NULL;
    const char *basis = NULL;
    int64_t step = 0, min = 0, max = 0;
    static const char *const known[] = {"basis", "step_mb", "min_mb", "max_mb", NULL};
    if (object_field(root, "memory", &m, err) != 0 ||
        bill_json_known(m, "memory", known, err) != 0 ||
        bill_json_string(cJSON_GetObjectItemCaseSensitive(m, "basis"), "memory.basis", 32,
                         &basis, err) != 0)
        return -1;
    if (strcmp(basis, "configured") == 0)
        r->basis = BILL_MEMORY_CONFIGURED;
    else if (strcmp(basis, "observed") == 0)
        r->basis = BILL_MEMORY_OBSERVED;
    else
        return fm_err_set(err, "memory.basis: expected \"configured\" or \"observed\", got \"%s\"",
                          basis);
    if (bill_json_int(cJSON_GetObjectItemCaseSensitive(m, "step_mb"), "memory.step_mb", 1,
                      MAX_MEMORY_MB, &step, err) != 0 ||
        bill_json_int(cJSON_GetObjectItemCaseSensitive(m, "min_mb"), "memory.min_mb", 1,
                      MAX_MEMORY_MB, &min, err) != 0 ||
        bill_json_int(cJSON_GetObjectItemCaseSensitive(m, "max_mb"), "memory.max_mb", 1,
                      MAX_MEMORY_MB, &max, err) != 0)
        return -1;
    if (max < min)
        return fm_err_set(err, "memory.max_mb: below memory.min_mb");
    r->step_mb = (int32_t)step;
    r->min_mb = (int32_t)min;
    r->max_mb = (int32_t)max;
    return 0;
}

static int parse_tiers(const cJSON *arr, const char *cpath, struct bill_charge *c,
                       struct fm_err *err)
{
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s.tiers", cpath);
    if (arr == NULL)
        return fm_err_set(err, "%s: missing", path);
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1)
        return fm_err_set(err, "%s: expected a non-empty array", path);
    if (n > MAX_TIERS)
        return fm_err_set(err, "%s: more than %d tiers", path, MAX_TIERS);
    c->tiers = calloc((size_t)n, sizeof *c->tiers);
    if (c->tiers == NULL)
        return fm_err_set(err, "out of memory");
    int i = 0;
    const cJSON *t = NULL;
    cJSON_ArrayForEach(t, arr)
    {
        struct bill_tier *tier = &c->tiers[i];
        static const char *const known[] = {"up_to", "unit_price", NULL};
        snprintf(path, sizeof path, "%s.tiers[%d]", cpath, i);
        if (!cJSON_IsObject(t))
            return fm_err_set(err, "%s: expected an object", path);
        if (bill_json_known(t, path, known, err) != 0)
            return -1;
        snprintf(path, sizeof path, "%s.tiers[%d].up_to", cpath, i);
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(t, "up_to");
        if (up == NULL)
            return fm_err_set(err, "%s: missing (null for the last, unbounded tier)", path);
        if (cJSON_IsNull(up)) {
            if (i != n - 1)
                return fm_err_set(err, "%s: only the last tier may be unbounded", path);
            tier->unbounded = true;
        } else {
            if (bill_json_dec(up, path, &tier->up_to, err) != 0)
                return -1;
            if (i == n - 1)
                return fm_err_set(err, "%s: the last tier must be unbounded (null)", path);
            if (tier->up_to.units == 0)
                return fm_err_set(err, "%s: must be above 0", path);
            if (i > 0 && bill_dec_cmp(tier->up_to, c->tiers[i - 1].up_to) <= 0)
                return fm_err_set(err, "%s: not above the previous tier's up_to", path);
        }
        snprintf(path, sizeof path, "%s.tiers[%d].unit_price", cpath, i);
        if (bill_json_dec(cJSON_GetObjectItemCaseSensitive(t, "unit_price"), path,
                          &tier->unit_price, err) != 0)
            return -1;
        c->ntiers = (size_t)++i;
    }
    return 0;
}

static int parse_charges(const cJSON *root, struct bill_plan *plan, struct fm_err *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "charges");
    if (arr == NULL)
        return fm_err_set(err, "charges: missing");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return fm_err_set(err, "charges: expected a non-empty array");
    int i = 0;
    const cJSON *c = NULL;
    cJSON_ArrayForEach(c, arr)
    {
        char cpath[32], path[PATH_MAX_LEN];
        static const char *const known[] = {"meter", "item", "free", "tiers", NULL};
        snprintf(cpath, sizeof cpath, "charges[%d]", i);
        if (!cJSON_IsObject(c))
            return fm_err_set(err, "%s: expected an object", cpath);
        if (bill_json_known(c, cpath, known, err) != 0)
            return -1;
        const char *name = NULL;
        enum bill_meter m;
        snprintf(path, sizeof path, "%s.meter", cpath);
        if (bill_json_string(cJSON_GetObjectItemCaseSensitive(c, "meter"), path, 32, &name,
                             err) != 0)
            return -1;
        if (bill_meter_from_name(name, &m) != 0)
            return fm_err_set(err,
                              "%s: unknown meter \"%s\" (expected requests, gb_seconds, "
                              "ghz_seconds, cpu_ms or egress_gb)",
                              path, name);
        for (size_t j = 0; j < plan->ncharges; j++)
            if (plan->charges[j].meter == m)
                return fm_err_set(err, "%s: \"%s\" is charged already by charges[%zu]", path,
                                  name, j);
        /* Counted before parsing the rest so that bill_plan_free releases a half-built one. */
        struct bill_charge *ch = &plan->charges[plan->ncharges++];
        ch->meter = m;
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(c, "item");
        const char *label = meters[m].item;
        snprintf(path, sizeof path, "%s.item", cpath);
        if (item != NULL && bill_json_string(item, path, NAME_MAX_LEN, &label, err) != 0)
            return -1;
        ch->item = strdup(label);
        if (ch->item == NULL)
            return fm_err_set(err, "out of memory");
        const cJSON *free_item = cJSON_GetObjectItemCaseSensitive(c, "free");
        snprintf(path, sizeof path, "%s.free", cpath);
        if (free_item != NULL && bill_json_dec(free_item, path, &ch->free, err) != 0)
            return -1;
        if (parse_tiers(cJSON_GetObjectItemCaseSensitive(c, "tiers"), cpath, ch, err) != 0)
            return -1;
        /* Refused here rather than on every invoice: no usage, not even none, could be
         * priced under it. */
        int k, pk;
        __int128 unit, den;
        if (bill_charge_unit(ch, false, &k, &pk, &unit, &den) != 0)
            return fm_err_set(err,
                              "%s: free, up_to and unit_price carry too many digits to price "
                              "in 128-bit arithmetic",
                              cpath);
        i++;
    }
    return 0;
}

int bill_charge_unit(const struct bill_charge *c, bool no_free, int *k, int *pk,
                     __int128 *unit, __int128 *den)
{
    int kk = no_free ? 0 : c->free.scale, pp = 0;
    for (size_t i = 0; i < c->ntiers; i++) {
        if (!c->tiers[i].unbounded && c->tiers[i].up_to.scale > kk)
            kk = c->tiers[i].up_to.scale;
        if (c->tiers[i].unit_price.scale > pp)
            pp = c->tiers[i].unit_price.scale;
    }
    __int128 per = meters[c->meter].base_per_unit, s10, p10, u, d, v;
    if (bill_pow10(kk, &s10) != 0 || bill_pow10(pp, &p10) != 0 ||
        __builtin_mul_overflow(per, s10, &u) || __builtin_mul_overflow(u, p10, &d))
        return -1;
    if (!no_free &&
        (bill_dec_units_at(c->free, kk, &v) != 0 || __builtin_mul_overflow(v, per, &v)))
        return -1;
    for (size_t i = 0; i < c->ntiers; i++)
        if (!c->tiers[i].unbounded && (bill_dec_units_at(c->tiers[i].up_to, kk, &v) != 0 ||
                                       __builtin_mul_overflow(v, per, &v)))
            return -1;
    *k = kk;
    *pk = pp;
    *unit = u;
    *den = d;
    return 0;
}

static int ghz_to_mhz(const cJSON *v, const char *path, int64_t *out, struct fm_err *err)
{
    struct bill_dec ghz;
    __int128 mhz;
    if (bill_json_dec(v, path, &ghz, err) != 0)
        return -1;
    /* Usage is counted in MHz-ms, so the clock must be a whole number of MHz. */
    if (ghz.scale > 3 || bill_dec_units_at(ghz, 3, &mhz) != 0)
        return fm_err_set(err, "%s: finer than 1 MHz", path);
    if (mhz <= 0 || mhz > 1000000)
        return fm_err_set(err, "%s: expected 0.001-1000 GHz", path);
    *out = (int64_t)mhz;
    return 0;
}

static int cmp_ghz(const void *a, const void *b)
{
    const struct bill_ghz *x = a, *y = b;
    return (x->memory_mb > y->memory_mb) - (x->memory_mb < y->memory_mb);
}

/* The table maps memory to clock either as {"128": "0.2", ...} or as
 * [{"memory_mb": 128, "ghz": "0.2"}, ...]. */
static int parse_ghz(const cJSON *root, struct bill_plan *plan, struct fm_err *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "ghz_by_memory_mb");
    if (t == NULL || cJSON_IsNull(t)) {
        if (bill_plan_charge_for(plan, BILL_METER_GHZ_SECONDS) != NULL)
            return fm_err_set(err, "ghz_by_memory_mb: missing (the ghz_seconds charge needs it)");
        return 0;
    }
    int n = cJSON_GetArraySize(t);
    if (!(cJSON_IsObject(t) || cJSON_IsArray(t)) || n < 1)
        return fm_err_set(err, "ghz_by_memory_mb: expected a non-empty object or array");
    if (n > MAX_GHZ)
        return fm_err_set(err, "ghz_by_memory_mb: more than %d entries", MAX_GHZ);
    plan->ghz = calloc((size_t)n, sizeof *plan->ghz);
    if (plan->ghz == NULL)
        return fm_err_set(err, "out of memory");
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, t)
    {
        char path[PATH_MAX_LEN];
        struct bill_ghz *g = &plan->ghz[plan->nghz];
        int64_t mb = 0;
        if (cJSON_IsObject(t)) {
            snprintf(path, sizeof path, "ghz_by_memory_mb.%.64s", e->string);
            if (bill_json_int_text(e->string, path, 1, MAX_MEMORY_MB, &mb, err) != 0 ||
                ghz_to_mhz(e, path, &g->mhz, err) != 0)
                return -1;
        } else {
            static const char *const known[] = {"memory_mb", "ghz", NULL};
            char ipath[PATH_MAX_LEN], epath[48];
            snprintf(epath, sizeof epath, "ghz_by_memory_mb[%zu]", plan->nghz);
            snprintf(path, sizeof path, "%s", epath);
            if (!cJSON_IsObject(e))
                return fm_err_set(err, "%s: expected an object", path);
            if (bill_json_known(e, epath, known, err) != 0)
                return -1;
            snprintf(ipath, sizeof ipath, "%s.memory_mb", epath);
            if (bill_json_int(cJSON_GetObjectItemCaseSensitive(e, "memory_mb"), ipath, 1,
                              MAX_MEMORY_MB, &mb, err) != 0)
                return -1;
            snprintf(ipath, sizeof ipath, "%s.ghz", epath);
            if (ghz_to_mhz(cJSON_GetObjectItemCaseSensitive(e, "ghz"), ipath, &g->mhz, err) != 0)
                return -1;
        }
        g->memory_mb = (int32_t)mb;
        plan->nghz++;
    }
    qsort(plan->ghz, plan->nghz, sizeof *plan->ghz, cmp_ghz);
    for (size_t i = 1; i < plan->nghz; i++)
        if (plan->ghz[i].memory_mb == plan->ghz[i - 1].memory_mb)
            return fm_err_set(err, "ghz_by_memory_mb: %d MB listed twice",
                              (int)plan->ghz[i].memory_mb);
    return 0;
}

/* Everything but the JSON syntax; messages carry the field path, the caller adds origin. */
static enum bill_status build_plan(const cJSON *root, struct bill_plan *plan, struct fm_err *err)
{
    enum bill_status st;
    static const char *const known[] = {"id",       "name",    "currency", "source",
                                        "as_of",    "subscription",        "duration",
                                        "memory",   "charges", "ghz_by_memory_mb", NULL};
    if (!cJSON_IsObject(root))
        return fm_err_set(err, "expected a JSON object"), BILL_EINVAL;
    if (bill_json_known(root, "", known, err) != 0)
        return BILL_EINVAL;
    if ((st = take_string(root, "id", ID_MAX, true, &plan->id, err)) != BILL_OK)
        return st;
    if (!bill_json_id_ok(plan->id))
        return fm_err_set(err, "id: \"%s\" is not lower-case letters, digits, '.', '-' and '_'",
                          plan->id),
               BILL_EINVAL;
    if ((st = take_string(root, "name", NAME_MAX_LEN, true, &plan->name, err)) != BILL_OK ||
        (st = take_string(root, "source", SOURCE_MAX, false, &plan->source, err)) != BILL_OK)
        return st;
    if (bill_json_currency(cJSON_GetObjectItemCaseSensitive(root, "currency"), "currency",
                           plan->currency, err) != 0)
        return BILL_EINVAL;
    plan->minor_digits = bill_currency_minor_digits(plan->currency); /* known: checked */
    const cJSON *as_of = cJSON_GetObjectItemCaseSensitive(root, "as_of");
    const char *date = "";
    if (as_of != NULL && bill_json_date(as_of, "as_of", &date, err) != 0)
        return BILL_EINVAL;
    if ((plan->as_of = strdup(date)) == NULL)
        return BILL_ENOMEM;
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(root, "subscription");
    if (sub != NULL && bill_json_dec(sub, "subscription", &plan->subscription, err) != 0)
        return BILL_EINVAL;
    /* Checked here, where the file is named, rather than on every invoice. */
    __int128 den;
    int64_t minor;
    if (bill_pow10(plan->subscription.scale, &den) != 0 ||
        bill_ratio_round(plan->subscription.units, den, plan->minor_digits, &minor) != 0) {
        char most[BILL_NUM_BUFSZ];
        bill_money_format(INT64_MAX, plan->minor_digits, most, sizeof most);
        return fm_err_set(err, "subscription: more than an amount can hold (%s %s)", most,
                          plan->currency),
               BILL_EINVAL;
    }
    if (parse_duration(root, &plan->rounding, err) != 0 ||
        parse_memory(root, &plan->rounding, err) != 0 || parse_charges(root, plan, err) != 0 ||
        parse_ghz(root, plan, err) != 0)
        return BILL_EINVAL;
    return BILL_OK;
}

enum bill_status bill_plan_parse(const char *text, size_t len, const char *origin,
                                 struct bill_plan **out, struct fm_err *err)
{
    enum bill_status st = BILL_EINVAL;
    struct bill_plan *plan = NULL;
    cJSON *root = bill_json_parse(text, len, err);
    if (root == NULL)
        goto done;
    plan = calloc(1, sizeof *plan);
    if (plan == NULL) {
        st = BILL_ENOMEM;
        fm_err_set(err, "out of memory");
        goto done;
    }
    st = build_plan(root, plan, err);
    if (st == BILL_ENOMEM)
        fm_err_set(err, "out of memory");
    if (st == BILL_OK) {
        *out = plan;
        plan = NULL;
    }
done:
    if (st != BILL_OK)
        fm_err_prefix(err, "%s", origin);
    cJSON_Delete(root);
    bill_plan_free(plan);
    return st;
}

const char *bill_plan_id(const struct bill_plan *plan)
{
    return plan->id;
}

const char *bill_plan_name(const struct bill_plan *plan)
{
    return plan->name;
}

const char *bill_plan_currency(const struct bill_plan *plan)
{
    return plan->currency;
}

const char *bill_plan_source(const struct bill_plan *plan)
{
    return plan->source;
}

const char *bill_plan_as_of(const struct bill_plan *plan)
{
    return plan->as_of;
}

int bill_plan_minor_digits(const struct bill_plan *plan)
{
    return plan->minor_digits;
}

const struct bill_rounding *bill_plan_rounding(const struct bill_plan *plan)
{
    return &plan->rounding;
}

struct bill_dec bill_plan_subscription(const struct bill_plan *plan)
{
    return plan->subscription;
}

size_t bill_plan_charge_count(const struct bill_plan *plan)
{
    return plan->ncharges;
}

const struct bill_charge *bill_plan_charge(const struct bill_plan *plan, size_t i)
{
    return i < plan->ncharges ? &plan->charges[i] : NULL;
}

const struct bill_charge *bill_plan_charge_for(const struct bill_plan *plan, enum bill_meter m)
{
    for (size_t i = 0; i < plan->ncharges; i++)
        if (plan->charges[i].meter == m)
            return &plan->charges[i];
    return NULL;
}

int64_t bill_rounding_ms(const struct bill_rounding *r, int64_t duration_us, int64_t init_us)
{
    int64_t t = duration_us;
    if (duration_us < 0 || init_us < 0 ||
        (r->include_init && __builtin_add_overflow(t, init_us, &t)))
        return -1;
    int64_t step_us = r->step_ms * 1000;
    int64_t steps = t / step_us + (t % step_us != 0);
    int64_t ms = steps * r->step_ms; /* <= t / 1000 + step_ms: cannot overflow */
    return ms < r->min_ms ? r->min_ms : ms;
}

int32_t bill_rounding_mb(const struct bill_rounding *r, int32_t memory_mb, int64_t max_rss_kb)
{
    int64_t mb;
    if (r->basis == BILL_MEMORY_OBSERVED) {
        if (max_rss_kb < 0)
            return -1;
        mb = max_rss_kb / 1024 + (max_rss_kb % 1024 != 0);
    } else {
        if (memory_mb < 0)
            return -1;
        mb = memory_mb;
    }
    if (mb < r->min_mb)
        mb = r->min_mb;
    if (mb > r->max_mb)
        mb = r->max_mb; /* also keeps the rounding below far from overflow */
    mb = (mb + r->step_mb - 1) / r->step_mb * r->step_mb;
    if (mb > r->max_mb)
        mb = r->max_mb;
    return (int32_t)mb;
}

int64_t bill_ghz_mhz(const struct bill_ghz *table, size_t n, int32_t memory_mb)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (table[i].memory_mb >= memory_mb)
            return table[i].mhz;
    return table[n - 1].mhz;
}

int64_t bill_plan_billed_ms(const struct bill_plan *plan, int64_t duration_us, int64_t init_us)
{
    return bill_rounding_ms(&plan->rounding, duration_us, init_us);
}

int32_t bill_plan_billed_mb(const struct bill_plan *plan, int32_t memory_mb, int64_t max_rss_kb)
{
    return bill_rounding_mb(&plan->rounding, memory_mb, max_rss_kb);
}

int64_t bill_plan_mhz(const struct bill_plan *plan, int32_t memory_mb)
{
    return bill_ghz_mhz(plan->ghz, plan->nghz, memory_mb);
}

size_t bill_plan_ghz_count(const struct bill_plan *plan)
{
    return plan->nghz;
}

void bill_plan_ghz_at(const struct bill_plan *plan, size_t i, int32_t *memory_mb, int64_t *mhz)
{
    *memory_mb = plan->ghz[i].memory_mb;
    *mhz = plan->ghz[i].mhz;
}
