#include "meter/fold.h"

#include <cjson/cJSON.h>
#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/plan.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/timeutil.h"
#include "meter/metrics.h"
#include "meter/record.h"
#include "meter/store_direct.h"

/* Deltas are taken a chunk at a time, and a transaction takes chunks while its sums stay
 * under FOLD_GROUPS rows, a chunk no larger than what could still fit if every delta made
 * rows of its own (about 10 MB in all): memory stays bounded whatever the backlog. */
#define FOLD_CHUNK 20000
#define FOLD_GROUPS 32768
#define HOUR_US (INT64_C(3600) * 1000000)
/* PostgreSQL's timestamps count microseconds from 2000-01-01 00:00 UTC. */
#define PG_EPOCH_US (INT64_C(946684800) * 1000000)
#define MAX_SUMS 10
/* The most hours a run touches: a day's run (meter/record.c's bound) that starts mid-hour. */
#define RUN_HOURS_MAX 25

/* A registered plan's rules, as the plans table holds them. */
struct fold_plan {
    char *id;
    struct bill_rounding r;
    size_t nghz;
    struct bill_ghz *ghz; /* by ascending memory */
};

/* One rollup row being built: its key (NULL or 0 where the rollup has no such column) and
 * its sums, in the order of the rollup's columns (see the writers). Sums are kept in 128
 * bits, as PostgreSQL's sum(bigint) adds in numeric: only the total must fit the rollup's
 * bigint, which the writer checks. */
struct group {
    const char *tenant, *function, *plan;
    int64_t at; /* hour or month, wall microseconds */
    int32_t mb;
    __int128 sum[MAX_SUMS];
    __int128 mb_us, busy_mb_us; /* usage_tenant_hourly's, numeric there */
};

/* An open-addressing index over rows kept in a dense array beside it: a slot holds a row
 * number plus one (0: empty). Grown at half full. */
struct row_index {
    uint32_t *slot;
    size_t cap;
};

/* The rows of one rollup. */
struct groups {
    struct group *row;
    size_t n, row_cap;
    struct row_index index;
};

/* Tenant and function names, each kept once, so that group keys compare by pointer. */
struct names {
    char **row;
    size_t n, row_cap;
    struct row_index index;
};

/* Where a delta's row is in usage_delta (its ctid). The fold takes deltas in this order,
 * each chunk after the last one taken: a chunk that started from the table's first page
 * would read again every row the fold already deleted, dead until vacuumed. */
struct row_at {
    uint32_t block;
    uint16_t offset;
};

struct fold {
    struct row_at after; /* the last delta taken */
    struct fold_plan *plans;
    size_t nplans;
    struct names names;
    struct groups hourly, tenant_hourly, monthly, rated, rated_hourly;
    long deltas;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    return h * 0xbf58476d1ce4e5b9u;
}

/* splitmix64's finalizer: every bit of h reaches the low bits that pick a slot (hours and
 * months have many low zero bits). */
static uint64_t avalanche(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return avalanche(h);
}

/* Room in x for one more of n rows: twice the slots once half full, each row placed again
 * by hash(rows, i). false when out of memory. */
static bool index_reserve(struct row_index *x, size_t n, uint64_t (*hash)(const void *, size_t),
                          const void *rows)
{
    if ((n + 1) * 2 <= x->cap)
        return true;
    size_t cap = x->cap ? x->cap * 2 : 512;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (slot == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t at = hash(rows, i) & (cap - 1);
        while (slot[at] != 0)
            at = (at + 1) & (cap - 1);
        slot[at] = (uint32_t)(i + 1);
    }
    free(x->slot);
    x->slot = slot;
    x->cap = cap;
    return true;
}

/* The slot for a key of hash h: the one of the row that same(key, rows, row) accepts, else
 * the empty one where that row belongs. */
static size_t index_find(const struct row_index *x, uint64_t h,
                         bool (*same)(const void *, const void *, size_t), const void *key,
                         const void *rows)
{
    size_t at = h & (x->cap - 1);
    while (x->slot[at] != 0 && !same(key, rows, x->slot[at] - 1))
        at = (at + 1) & (x->cap - 1);
    return at;
}

/* A dense array of n rows of size bytes with room for one more (*cap counts the room);
 * NULL when out of memory, rows then as they were. */
static void *rows_reserve(void *rows, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return rows;
    size_t more = *cap ? *cap * 2 : 512;
    void *grown = realloc(rows, more * size);
    if (grown != NULL)
        *cap = more;
    return grown;
}

static void names_free(struct names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->row[i]);
    free(t->row);
    free(t->index.slot);
    *t = (struct names){0};
}

static uint64_t name_hash(const void *rows, size_t i)
{
    const char *s = ((char *const *)rows)[i];
    return hash_bytes(s, strlen(s));
}

/* A name as n bytes, not terminated. */
struct name_key {
    const char *p;
    size_t n;
};

static bool same_name(const void *key, const void *rows, size_t i)
{
    const struct name_key *k = key;
    const char *s = ((char *const *)rows)[i];
    return strncmp(s, k->p, k->n) == 0 && s[k->n] == '\0';
}

/* The one copy of the n bytes at p; NULL when out of memory. */
static const char *name_of(struct names *t, const char *p, size_t n)
{
    char **row = rows_reserve(t->row, t->n, &t->row_cap, sizeof *t->row);
    if (row == NULL)
        return NULL;
    t->row = row;
    if (!index_reserve(&t->index, t->n, name_hash, t->row))
        return NULL;
    struct name_key k = {p, n};
    size_t at = index_find(&t->index, hash_bytes(p, n), same_name, &k, t->row);
    if (t->index.slot[at] != 0)
        return t->row[t->index.slot[at] - 1];
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    t->row[t->n++] = s;
    t->index.slot[at] = (uint32_t)t->n;
    return s;
}

static uint64_t group_hash(const struct group *k)
{
    uint64_t h = mix(0, (uintptr_t)k->tenant);
    h = mix(h, (uintptr_t)k->function);
    h = mix(h, (uintptr_t)k->plan);
    h = mix(h, (uint64_t)k->at);
    return avalanche(mix(h, (uint64_t)(uint32_t)k->mb));
}

static uint64_t group_hash_at(const void *rows, size_t i)
{
    return group_hash(&((const struct group *)rows)[i]);
}

static bool same_group(const void *key, const void *rows, size_t i)
{
    const struct group *a = key, *b = &((const struct group *)rows)[i];
    return a->tenant == b->tenant && a->function == b->function && a->plan == b->plan &&
           a->at == b->at && a->mb == b->mb;
}

/* The row of key k, made with zero sums when new; NULL when out of memory. */
static struct group *group_of(struct groups *t, const struct group *k)
{
    struct group *row = rows_reserve(t->row, t->n, &t->row_cap, sizeof *t->row);
    if (row == NULL)
        return NULL;
    t->row = row;
    if (!index_reserve(&t->index, t->n, group_hash_at, t->row))
        return NULL;
    size_t at = index_find(&t->index, group_hash(k), same_group, k, t->row);
    if (t->index.slot[at] != 0)
        return &t->row[t->index.slot[at] - 1];
    struct group *g = &t->row[t->n++];
    *g = (struct group){.tenant = k->tenant, .function = k->function, .plan = k->plan,
                        .at = k->at, .mb = k->mb};
    t->index.slot[at] = (uint32_t)t->n;
    return g;
}

/* group_of, trying row near first: a new key's rows under each plan are made one after
 * the other, so the row of a key under a plan is most often next to its row under the plan
 * before. */
static struct group *group_near(struct groups *t, const struct group *k, size_t near)
{
    if (near < t->n && same_group(k, t->row, near))
        return &t->row[near];
    return group_of(t, k);
}

static void add_sums(struct group *g, const int64_t *v, int n)
{
    for (int i = 0; i < n; i++)
        g->sum[i] += v[i];
}

/* add_sums to key k's row; -1 when out of memory. */
static int add(struct groups *t, const struct group *k, const int64_t *v, int n)
{
    struct group *g = group_of(t, k);
    if (g == NULL)
        return -1;
    add_sums(g, v, n);
    return 0;
}

static size_t groups_held(const struct fold *f)
{
    return f->hourly.n + f->tenant_hourly.n + f->monthly.n + f->rated.n + f->rated_hourly.n;
}

static void fold_clear(struct fold *f)
{
    struct groups *all[] = {&f->hourly, &f->tenant_hourly, &f->monthly, &f->rated,
                            &f->rated_hourly};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(all[i]->row);
        free(all[i]->index.slot);
        *all[i] = (struct groups){0};
    }
    names_free(&f->names);
    for (size_t i = 0; i < f->nplans; i++) {
        free(f->plans[i].id);
        free(f->plans[i].ghz);
    }
    free(f->plans);
    f->plans = NULL;
    f->nplans = 0;
    f->deltas = 0;
}

static int cmp_ghz(const void *a, const void *b)
{
    const struct bill_ghz *x = a, *y = b;
    return (x->memory_mb > y->memory_mb) - (x->memory_mb < y->memory_mb);
}

/* The ghz column of plans: [[memory_mb, mhz], ...], put in ascending memory as the lookup
 * needs it (plan_register's plan_clock does the same). */
static int parse_ghz(const char *text, struct fold_plan *p, struct fm_err *err)
{
    cJSON *a = cJSON_Parse(text);
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n > 0 && (p->ghz = calloc((size_t)n, sizeof *p->ghz)) == NULL)
        n = -1;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        const cJSON *mb = cJSON_GetArrayItem(e, 0), *mhz = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsNumber(mb) || !cJSON_IsNumber(mhz)) {
            n = -1;
            break;
        }
        p->ghz[i] = (struct bill_ghz){(int32_t)mb->valuedouble, (int64_t)mhz->valuedouble};
    }
    cJSON_Delete(a);
    if (n < 0)
        return fm_err_set(err, "plan %s: its clock table in plans.ghz is malformed", p->id);
    p->nghz = (size_t)n;
    if (n > 1)
        qsort(p->ghz, p->nghz, sizeof *p->ghz, cmp_ghz);
    return 0;
}

static int load_plans(const PGresult *res, struct fold *f, struct fm_err *err)
{
    int n = PQntuples(res);
    if (n > 0 && (f->plans = calloc((size_t)n, sizeof *f->plans)) == NULL)
        return fm_err_set(err, "out of memory");
    for (int i = 0; i < n; i++) {
        struct fold_plan *p = &f->plans[f->nplans++];
        if ((p->id = strdup(PQgetvalue(res, i, 0))) == NULL)
            return fm_err_set(err, "out of memory");
        p->r = (struct bill_rounding){
            .step_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10),
            .min_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10),
            .include_init = strcmp(PQgetvalue(res, i, 3), "t") == 0,
            .basis = strcmp(PQgetvalue(res, i, 4), "observed") == 0 ? BILL_MEMORY_OBSERVED
                                                                   : BILL_MEMORY_CONFIGURED,
            .step_mb = (int32_t)strtol(PQgetvalue(res, i, 5), NULL, 10),
            .min_mb = (int32_t)strtol(PQgetvalue(res, i, 6), NULL, 10),
            .max_mb = (int32_t)strtol(PQgetvalue(res, i, 7), NULL, 10),
        };
        if (parse_ghz(PQgetvalue(res, i, 8), p, err) != 0)
            return -1;
    }
    return 0;
}

/* One delta row, as the fold's COPY sends it (binary: big-endian integers). */
struct delta {
    const char *tenant, *function;
    int64_t started_at; /* wall microseconds */
    int64_t sign;
    int32_t memory_mb;
    bool ok, cold_start;
    int64_t duration_us, init_us, max_rss_kb, cpu_us, bytes_in, bytes_out;
    struct row_at at;
};

#define DELTA_COLUMNS                                                                      \
    "tenant, function, started_at, sign, memory_mb, ok, cold_start, duration_us, init_us,"  \
    " max_rss_kb, cpu_us, bytes_in, bytes_out, ctid"
#define DELTA_FIELDS 14

/*
 * The execution's share of each hour it runs in, [started, started + duration), into
 * usage_tenant_hourly's busy sums (schema 013): its time in the hour, its MB x that time,
 * and its CPU time in proportion, by cumulative floors so that the shares add up to the
 * whole (usage_busy_spread does the same in SQL). -1 with err set when the run is longer than
 * records may be, or memory ran out.
 */
static int add_busy(struct fold *f, const struct delta *d, int64_t hour, struct fm_err *err)
{
    /* Records run at most a day (meter/record.c): a delta that runs longer was not made by
     * ingestion, and would take an hour row for every hour it claims. It stops the fold,
     * pending, as a delta the plans cannot rate does. */
    if (d->duration_us < 0 || d->duration_us > (RUN_HOURS_MAX - 1) * HOUR_US)
        return fm_err_set(err, "a usage delta of %s/%s runs %" PRId64 " us, outside 0 to a day",
                          d->tenant, d->function, d->duration_us);
    int64_t s = d->sign, start = d->started_at, end = start + d->duration_us;
    int64_t upto = 0;       /* µs of the run up to the end of this hour's share */
    __int128 cpu_before = 0; /* CPU µs given to the hours before */
    for (int64_t h = hour;; h += HOUR_US) {
        int64_t from = start > h ? start : h, to = end < h + HOUR_US ? end : h + HOUR_US;
        upto += to - from;
        __int128 cpu_upto = d->duration_us > 0
                                ? (__int128)d->cpu_us * upto / d->duration_us
                                : (__int128)d->cpu_us;
        struct group *g = group_of(&f->tenant_hourly, &(struct group){.tenant = d->tenant,
                                                                       .at = h});
        if (g == NULL)
            return fm_err_set(err, "out of memory");
        g->sum[5] += (__int128)s * (to - from);
        g->sum[6] += s * (cpu_upto - cpu_before);
        g->busy_mb_us += (__int128)s * d->memory_mb * (to - from);
        cpu_before = cpu_upto;
        if (to >= end)
            return 0;
    }
}

/* Add one delta to every rollup, and under every plan to usage_rated and
 * usage_rated_hourly. */
static int add_delta(struct fold *f, const struct delta *d, struct fm_err *err)
{
    int64_t s = d->sign;
    int64_t hour = d->started_at - ((d->started_at % HOUR_US) + HOUR_US) % HOUR_US;
    int64_t month = fm_month_start_us(d->started_at);
    int64_t errors = d->ok ? 0 : s, cold = d->cold_start ? s : 0;
    int rc = 0;
    {
        struct group k = {.tenant = d->tenant, .function = d->function, .at = hour,
                          .mb = d->memory_mb};
        int64_t v[] = {s, errors, cold, s * d->duration_us, s * d->init_us, s * d->cpu_us,
                       s * d->bytes_in, s * d->bytes_out};
        rc |= add(&f->hourly, &k, v, 8);
    }
    {
        struct group k = {.tenant = d->tenant, .at = hour};
        int64_t v[] = {s, errors, cold, s * d->duration_us, s * d->cpu_us};
        struct group *g = group_of(&f->tenant_hourly, &k);
        if (g != NULL) {
            add_sums(g, v, 5);
            g->mb_us += (__int128)s * d->memory_mb * d->duration_us;
        }
        rc |= g == NULL ? -1 : 0;
    }
    {
        struct group k = {.tenant = d->tenant, .function = d->function, .at = month};
        int64_t v[] = {s, errors, cold, s * d->duration_us, s * d->init_us, s * d->memory_mb,
                       s * d->cpu_us, s * d->bytes_in, s * d->bytes_out};
        struct group *g = group_of(&f->monthly, &k);
        if (g != NULL) {
            add_sums(g, v, 9);
            /* The largest configured memory, raised by an invocation, never lowered by its
             * retraction (schema 020). */
            if (s > 0 && d->memory_mb > g->sum[9])
                g->sum[9] = d->memory_mb;
        }
        rc |= g == NULL ? -1 : 0;
    }
    size_t near_rated = SIZE_MAX, near_hourly = SIZE_MAX;
    for (size_t i = 0; i < f->nplans && rc == 0; i++) {
        const struct fold_plan *p = &f->plans[i];
        int64_t ms = bill_rounding_ms(&p->r, d->duration_us, d->init_us);
        int64_t mb = bill_rounding_mb(&p->r, d->memory_mb, d->max_rss_kb);
        /* Records are validated non-negative and bounded (meter/record.c): a delta the
         * library cannot rate was not made by ingestion, and folding it anyway would bill
         * a guess. The fold stops with it pending, loudly. */
        if (ms < 0 || mb < 0)
            return fm_err_set(err, "a usage delta of %s/%s has a duration, initialisation or"
                                   " memory that plan %s cannot rate (negative or too large)",
                              d->tenant, d->function, p->id);
        int64_t mhz = bill_ghz_mhz(p->ghz, p->nghz, (int32_t)mb);
        struct group k = {.tenant = d->tenant, .function = d->function, .plan = p->id,
                          .at = month};
        struct group *g = group_near(&f->rated, &k, near_rated);
        k.at = hour;
        struct group *h = g ? group_near(&f->rated_hourly, &k, near_hourly) : NULL;
        if (h == NULL) {
            rc = -1;
            break;
        }
        near_rated = (size_t)(g - f->rated.row) + 1;
        near_hourly = (size_t)(h - f->rated_hourly.row) + 1;
        g->sum[0] += s;
        g->sum[1] += (__int128)s * ms;
        g->sum[2] += (__int128)s * ms * mb;
        g->sum[3] += (__int128)s * ms * mhz;
        g->sum[4] += (__int128)s * d->cpu_us;
        g->sum[5] += (__int128)s * d->bytes_out;
        h->sum[0] += s;
        h->sum[1] += (__int128)s * ms;
        h->sum[2] += (__int128)s * ms * mb;
    }
    if (rc != 0)
        return fm_err_set(err, "out of memory");
    if (add_busy(f, d, hour, err) != 0)
        return -1;
    f->deltas++;
    return 0;
}

static uint16_t be16_at(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return be16toh(v);
}

static uint32_t be32_at(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return be32toh(v);
}

static int64_t be64_at(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return (int64_t)be64toh(v);
}

/* The binary COPY stream: its header, tuples and trailer. A message holds whole tuples. */
struct copy_reader {
    bool header_done, ended;
};

static const char copy_signature[11] = "PGCOPY\n\377\r\n";

/* The delta at *p (a tuple of DELTA_FIELDS fields); advances *p. -1 when malformed. */
static int read_delta(struct fold *f, const unsigned char **p, const unsigned char *end,
                      struct delta *d)
{
    static const int width[DELTA_FIELDS] = {-1, -1, 8, 2, 4, 1, 1, 8, 8, 8, 8, 8, 8, 6};
    const unsigned char *q = *p;
    const unsigned char *field[DELTA_FIELDS];
    uint32_t len[DELTA_FIELDS];
    for (int i = 0; i < DELTA_FIELDS; i++) {
        if (end - q < 4)
            return -1;
        len[i] = be32_at(q);
        q += 4;
        if (len[i] == UINT32_MAX || (size_t)(end - q) < len[i] ||
            (width[i] >= 0 && len[i] != (uint32_t)width[i]))
            return -1;
        field[i] = q;
        q += len[i];
    }
    d->tenant = name_of(&f->names, (const char *)field[0], len[0]);
    d->function = name_of(&f->names, (const char *)field[1], len[1]);
    d->started_at = be64_at(field[2]) + PG_EPOCH_US;
    d->sign = (int16_t)be16_at(field[3]);
    d->memory_mb = (int32_t)be32_at(field[4]);
    d->ok = field[5][0] != 0;
    d->cold_start = field[6][0] != 0;
    d->duration_us = be64_at(field[7]);
    d->init_us = be64_at(field[8]);
    d->max_rss_kb = be64_at(field[9]);
    d->cpu_us = be64_at(field[10]);
    d->bytes_in = be64_at(field[11]);
    d->bytes_out = be64_at(field[12]);
    d->at = (struct row_at){be32_at(field[13]), be16_at(field[13] + 4)};
    *p = q;
    return 0;
}

/* One CopyData message of the delta stream. */
static int read_message(struct fold *f, struct copy_reader *cr, const unsigned char *p,
                        const unsigned char *end, struct fm_err *err)
{
    if (!cr->header_done) {
        if (end - p < 19 || memcmp(p, copy_signature, sizeof copy_signature) != 0)
            return fm_err_set(err, "folding usage: the deltas' COPY has no binary header");
        uint32_t ext = be32_at(p + 15);
        if ((size_t)(end - p - 19) < ext)
            return fm_err_set(err, "folding usage: the deltas' COPY header is cut short");
        p += 19 + ext;
        cr->header_done = true;
    }
    while (p < end && !cr->ended) {
        if (end - p < 2)
            return fm_err_set(err, "folding usage: a delta is cut short");
        int16_t nfields = (int16_t)be16_at(p);
        p += 2;
        if (nfields == -1) {
            cr->ended = true;
            break;
        }
        struct delta d;
        if (nfields != DELTA_FIELDS || read_delta(f, &p, end, &d) != 0)
            return fm_err_set(err, "folding usage: a delta row is malformed");
        if (d.tenant == NULL || d.function == NULL)
            return fm_err_set(err, "out of memory");
        if (add_delta(f, &d, err) != 0)
            return -1;
        /* Where the next chunk starts: after the furthest row taken. */
        if (d.at.block > f->after.block ||
            (d.at.block == f->after.block && d.at.offset > f->after.offset))
            f->after = d.at;
    }
    return 0;
}

/* Take out up to limit pending deltas and add them up in f; *took: how many. */
static int take_deltas(PGconn *conn, struct fold *f, long limit, long *took,
                       struct fm_err *err)
{
    long before = f->deltas;
    char sql[512];
    snprintf(sql, sizeof sql,
             "COPY (DELETE FROM usage_delta WHERE ctid = ANY (ARRAY("
             "SELECT ctid FROM usage_delta WHERE ctid > '(%" PRIu32 ",%u)' LIMIT %ld))"
             " RETURNING " DELTA_COLUMNS ") TO STDOUT (FORMAT binary)",
             f->after.block, (unsigned)f->after.offset, limit);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        db_err_from(err, conn, res, "taking the pending usage");
        PQclear(res);
        return -1;
    }
    PQclear(res);
    struct copy_reader cr = {0};
    int rc = 0, len;
    char *msg;
    while ((len = PQgetCopyData(conn, &msg, 0)) > 0) {
        if (rc == 0)
            rc = read_message(f, &cr, (const unsigned char *)msg,
                              (const unsigned char *)msg + len, err);
        PQfreemem(msg);
    }
    if (len == -2 && rc == 0)
        rc = fm_err_set(err, "taking the pending usage: %s", PQerrorMessage(conn));
    if (len == -1 && rc == 0 && !cr.ended)
        rc = fm_err_set(err, "folding usage: the deltas' COPY ended without its trailer");
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
            db_err_from(err, conn, res, "taking the pending usage");
            rc = -1;
        }
        PQclear(res);
    }
    *took = f->deltas - before;
    return rc;
}

/* A rollup and its temporary table, with the columns the fold writes, in this order:
 * tenant, function, plan, hour or month, memory_mb (those the rollup has), then the sums,
 * each added to the row already there, then (wide: usage_tenant_hourly) mb_us and
 * busy_mb_us. */
struct rollup {
    const char *table, *temp, *columns, *key, *add;
    bool function, plan, mb, wide;
    int nsums;
};

static const struct rollup rollups[] = {
    {"usage_hourly", "fold_hourly",
     "tenant, function, hour, memory_mb, invocations, errors, cold_starts, duration_us,"
     " init_us, cpu_us, bytes_in, bytes_out",
     "tenant, function, hour, memory_mb",
     "invocations = u.invocations + excluded.invocations,"
     " errors = u.errors + excluded.errors,"
     " cold_starts = u.cold_starts + excluded.cold_starts,"
     " duration_us = u.duration_us + excluded.duration_us,"
     " init_us = u.init_us + excluded.init_us, cpu_us = u.cpu_us + excluded.cpu_us,"
     " bytes_in = u.bytes_in + excluded.bytes_in, bytes_out = u.bytes_out + excluded.bytes_out",
     true, false, true, false, 8},
    {"usage_tenant_hourly", "fold_tenant_hourly",
     "tenant, hour, invocations, errors, cold_starts, duration_us, cpu_us, busy_us,"
     " busy_cpu_us, mb_us, busy_mb_us",
     "tenant, hour",
     "invocations = u.invocations + excluded.invocations,"
     " errors = u.errors + excluded.errors,"
     " cold_starts = u.cold_starts + excluded.cold_starts,"
     " duration_us = u.duration_us + excluded.duration_us,"
     " mb_us = u.mb_us + excluded.mb_us, cpu_us = u.cpu_us + excluded.cpu_us,"
     " busy_us = u.busy_us + excluded.busy_us,"
     " busy_cpu_us = u.busy_cpu_us + excluded.busy_cpu_us,"
     " busy_mb_us = u.busy_mb_us + excluded.busy_mb_us",
     false, false, false, true, 7},
    {"usage_monthly", "fold_monthly",
     "tenant, function, month, invocations, errors, cold_starts, duration_us, init_us,"
     " mb_invocations, cpu_us, bytes_in, bytes_out, max_memory_mb",
     "tenant, month, function",
     "invocations = u.invocations + excluded.invocations,"
     " errors = u.errors + excluded.errors,"
     " cold_starts = u.cold_starts + excluded.cold_starts,"
     " duration_us = u.duration_us + excluded.duration_us,"
     " init_us = u.init_us + excluded.init_us,"
     " mb_invocations = u.mb_invocations + excluded.mb_invocations,"
     " cpu_us = u.cpu_us + excluded.cpu_us, bytes_in = u.bytes_in + excluded.bytes_in,"
     " bytes_out = u.bytes_out + excluded.bytes_out,"
     " max_memory_mb = greatest(u.max_memory_mb, excluded.max_memory_mb)",
     true, false, false, false, 10},
    {"usage_rated", "fold_rated",
     "tenant, function, plan, month, invocations, billed_ms, mb_ms, mhz_ms, cpu_us,"
     " egress_bytes",
     "tenant, month, plan, function",
     "invocations = u.invocations + excluded.invocations,"
     " billed_ms = u.billed_ms + excluded.billed_ms, mb_ms = u.mb_ms + excluded.mb_ms,"
     " mhz_ms = u.mhz_ms + excluded.mhz_ms, cpu_us = u.cpu_us + excluded.cpu_us,"
     " egress_bytes = u.egress_bytes + excluded.egress_bytes",
     true, true, false, false, 6},
    {"usage_rated_hourly", "fold_rated_hourly",
     "tenant, function, plan, hour, invocations, billed_ms, mb_ms",
     "plan, tenant, hour, function",
     "invocations = u.invocations + excluded.invocations,"
     " billed_ms = u.billed_ms + excluded.billed_ms, mb_ms = u.mb_ms + excluded.mb_ms",
     true, true, false, false, 3},
};
#define NROLLUPS (sizeof rollups / sizeof rollups[0])

static void put_wide(struct fm_buf *b, __int128 v)
{
    char digits[48], *p = digits + sizeof digits;
    unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    *--p = '\0';
    do {
        *--p = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    fm_buf_puts(b, p);
}

/* The rows of t as COPY text for rollup r; -1 (err set) when a sum passes the rollup's
 * bigint, as PostgreSQL's own sum would have refused it. */
static int put_groups(struct fm_buf *b, const struct rollup *r, const struct groups *t,
                      struct fm_err *err)
{
    char time[FM_TIME_BUFSZ];
    for (size_t i = 0; i < t->n; i++) {
        const struct group *g = &t->row[i];
        meter_copy_text(b, g->tenant);
        if (r->function) {
            fm_buf_puts(b, "\t");
            meter_copy_text(b, g->function);
        }
        if (r->plan) {
            fm_buf_puts(b, "\t");
            meter_copy_text(b, g->plan);
        }
        fm_time_format(g->at, time, sizeof time);
        fm_buf_puts(b, "\t");
        fm_buf_puts(b, time);
        if (r->mb) {
            fm_buf_puts(b, "\t");
            fm_buf_put_int(b, g->mb);
        }
        for (int k = 0; k < r->nsums; k++) {
            if (g->sum[k] > INT64_MAX || g->sum[k] < INT64_MIN)
                return fm_err_set(err, "folding usage: %s of tenant %s passes 64 bits",
                                  r->table, g->tenant);
            fm_buf_puts(b, "\t");
            fm_buf_put_int(b, (long long)g->sum[k]);
        }
        if (r->wide) {
            fm_buf_puts(b, "\t");
            put_wide(b, g->mb_us);
            fm_buf_puts(b, "\t");
            put_wide(b, g->busy_mb_us);
        }
        fm_buf_puts(b, "\n");
    }
    return 0;
}

/* Add the sums of f to the rollups: COPY them into the session's temporary tables, then
 * one upsert a rollup; then tail (COMMIT, or NULL when the caller's transaction goes on,
 * and the temporary tables are emptied for its next round: at a commit they empty
 * themselves). Folds take turns on their lock and nothing else writes rollup rows, so
 * the rows need no order. */
static int write_rollups(PGconn *conn, const struct fold *f, const char *tail,
                         struct fm_err *err)
{
    const struct groups *sums[NROLLUPS] = {&f->hourly, &f->tenant_hourly, &f->monthly,
                                           &f->rated, &f->rated_hourly};
    struct fm_buf text[NROLLUPS], sql, copy_sql[NROLLUPS];
    struct meter_copy copies[NROLLUPS];
    fm_buf_init(&sql, 1u << 16);
    int rc = 0;
    for (size_t i = 0; i < NROLLUPS; i++) {
        const struct rollup *r = &rollups[i];
        fm_buf_init(&text[i], (size_t)1 << 30);
        fm_buf_init(&copy_sql[i], 1u << 12);
        if (rc == 0)
            rc = put_groups(&text[i], r, sums[i], err);
        fm_buf_printf(&copy_sql[i], "COPY %s (%s) FROM STDIN", r->temp, r->columns);
        copies[i] = (struct meter_copy){copy_sql[i].data, text[i].data, text[i].len};
        fm_buf_printf(&sql, "%sINSERT INTO %s AS u (%s) SELECT %s FROM %s ON CONFLICT (%s)"
                            " DO UPDATE SET %s",
                      i ? "; " : "", r->table, r->columns, r->columns, r->temp, r->key, r->add);
        if (tail == NULL)
            fm_buf_printf(&sql, "; DELETE FROM %s", r->temp);
        if (rc == 0 && (text[i].failed || copy_sql[i].failed))
            rc = fm_err_set(err, "out of memory");
    }
    if (tail)
        fm_buf_printf(&sql, "; %s", tail);
    if (rc == 0 && sql.failed)
        rc = fm_err_set(err, "out of memory");
    if (rc == 0)
        rc = meter_copy_in(conn, copies, (int)NROLLUPS, sql.data, err);
    if (rc > 0)
        rc = fm_err_set(err, "folding usage: a rollup refused its sums (a key or a partition)");
    for (size_t i = 0; i < NROLLUPS; i++) {
        fm_buf_free(&text[i]);
        fm_buf_free(&copy_sql[i]);
    }
    fm_buf_free(&sql);
    return rc;
}

/* The fold's lock, its temporary tables, and the registered plans, in one exchange. */
static const char fold_begin_sql[] =
    "SELECT pg_advisory_xact_lock(hashtext('faasmeter.fold'));"
    " SET LOCAL client_min_messages = warning;"
    /* The rollups this fold keeps (schema 015 refuses a writer of usage_rated that does
     * not say, or keeps fewer). */
    " SET LOCAL faasmeter.rollups = '020';"
    " CREATE TEMP TABLE IF NOT EXISTS fold_hourly (LIKE usage_hourly) ON COMMIT DELETE ROWS;"
    " CREATE TEMP TABLE IF NOT EXISTS fold_tenant_hourly (LIKE usage_tenant_hourly)"
    " ON COMMIT DELETE ROWS;"
    " CREATE TEMP TABLE IF NOT EXISTS fold_monthly (LIKE usage_monthly) ON COMMIT DELETE ROWS;"
    " CREATE TEMP TABLE IF NOT EXISTS fold_rated (LIKE usage_rated) ON COMMIT DELETE ROWS;"
    " CREATE TEMP TABLE IF NOT EXISTS fold_rated_hourly (LIKE usage_rated_hourly)"
    " ON COMMIT DELETE ROWS;"
    " SELECT plan, step_ms, min_ms, include_init, basis, step_mb, min_mb, max_mb, ghz"
    " FROM plans ORDER BY plan";

/* One round in the transaction open on conn: take deltas a chunk at a time, those after
 * *after, while there are more and the sums stay under FOLD_GROUPS rows, write the sums,
 * then tail. *n: how many deltas; *more: whether some may be left; *after: where the next
 * round goes on. */
static int fold_round(PGconn *conn, const char *tail, struct row_at *after, long *n,
                      bool *more, struct fm_err *err)
{
    struct fold f = {.after = *after};
    PGresult *res = PQexec(conn, fold_begin_sql);
    int rc = 0;
    long took;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "folding usage");
        rc = -1;
    }
    if (rc == 0)
        rc = load_plans(res, &f, err);
    PQclear(res);
    /* A delta makes at most a row in each rollup, one a plan in usage_rated and in
     * usage_rated_hourly, and in usage_tenant_hourly one an hour its run lasts into
     * (records are checked to run at most a day: 25 hours at most). */
    size_t per_delta = NROLLUPS - 2 + 2 * f.nplans + RUN_HOURS_MAX - 1;
    bool done = false;
    while (rc == 0 && !done && groups_held(&f) < FOLD_GROUPS) {
        size_t room = (FOLD_GROUPS - groups_held(&f)) / per_delta;
        long limit = room < 1 ? 1 : room > FOLD_CHUNK ? FOLD_CHUNK : (long)room;
        bool from_start = f.after.block == 0 && f.after.offset == 0;
        if ((rc = take_deltas(conn, &f, limit, &took, err)) != 0 || took == limit)
            continue;
        /* A short chunk took every delta after the position. Those before it were taken
         * unless they came meanwhile, or the scan did not go in page order (a plan is the
         * planner's choice): one more chunk from the first page settles it, a single pass
         * over what this fold deleted. */
        done = from_start;
        f.after = (struct row_at){0, 0};
    }
    if (rc == 0)
        rc = write_rollups(conn, &f, tail, err);
    *n = f.deltas;
    *more = !done;
    *after = f.after;
    fold_clear(&f);
    return rc;
}

int meter_usage_fold_in_transaction(PGconn *conn, long *folded, struct fm_err *err)
{
    long total = 0, n;
    bool more = true;
    struct row_at after = {0, 0};
    while (more) {
        if (fold_round(conn, NULL, &after, &n, &more, err) != 0)
            return -1;
        total += n;
    }
    if (folded)
        *folded = total;
    return 0;
}

/* meter_usage_fold, without its metrics. */
static int fold_pending(PGconn *conn, long *folded, struct fm_err *err)
{
    long total = 0, n;
    *folded = 0;
    /* It commits its own rounds: inside a caller's transaction it would commit that too. */
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return fm_err_set(err, "folding usage: the connection is not idle (in a transaction"
                               " or broken)");
    /* Readers fold before every read: make the common case, nothing pending, cheap. */
    PGresult *res = PQexec(conn, "SELECT EXISTS (SELECT 1 FROM usage_delta)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "folding usage");
        PQclear(res);
        return -1;
    }
    bool pending = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    /* Rounds go on from the row where the last one stopped, and the fold ends with a chunk
     * from the first page that finds nothing more to take. */
    struct row_at after = {0, 0};
    while (pending) {
        if (db_command(conn, "BEGIN", err) != 0)
            return -1;
        if (fold_round(conn, "COMMIT", &after, &n, &pending, err) != 0) {
            PQclear(PQexec(conn, "ROLLBACK"));
            return -1;
        }
        total += n;
        *folded = total; /* committed */
    }
    return 0;
}

int meter_usage_fold(PGconn *conn, long *folded, struct fm_err *err)
{
    long n = 0;
    int rc = fold_pending(conn, &n, err);
    metrics_fold(rc == 0, n);
    if (folded)
        *folded = n;
    return rc;
}
