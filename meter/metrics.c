#include "meter/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

/* Upper bounds of the latency buckets in microseconds; Prometheus wants seconds, printed
 * from these integers so that no bound is ever a rounded binary fraction. */
static const int64_t latency_bounds_us[] = {
    100,    250,    500,     1000,    2500,    5000,     10000,   25000,
    50000,  100000, 250000,  500000,  1000000, 2500000,  5000000, 10000000,
};
#define LATENCY_BUCKETS (sizeof latency_bounds_us / sizeof latency_bounds_us[0])

/* Records per POST /v1/records; a request holds at most 10000. */
static const int64_t batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                                       10000};
#define BATCH_BUCKETS (sizeof batch_bounds / sizeof batch_bounds[0])

/* Per-bucket counts (not cumulative, so one observation touches one counter); the last
 * slot is above every bound. The count is their sum, so +Inf and _count always agree. */
struct histogram_latency {
    atomic_uint_fast64_t buckets[LATENCY_BUCKETS + 1];
    atomic_uint_fast64_t sum_us;
};

struct endpoint {
    const char *method;  /* NULL for the "unmatched" and "other" slots */
    const char *pattern;
    char label[192];
    atomic_uint_fast64_t by_class[5]; /* 1xx .. 5xx */
    struct histogram_latency latency;
};

/* Slots are claimed in order under claim_lock and published by n_endpoints (release), so
 * readers that load n_endpoints (acquire) see the slots below it complete. */
static struct endpoint endpoints[METRICS_ENDPOINTS_MAX];
static atomic_size_t n_endpoints;
static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;
static struct endpoint unmatched = {.label = "unmatched"};
static struct endpoint other = {.label = "other"};

static atomic_uint_fast64_t records_accepted, records_duplicates, records_rejected;
static atomic_uint_fast64_t records_direct;
static atomic_uint_fast64_t store_retries;
static atomic_uint_fast64_t db_errors;
static atomic_uint_fast64_t folded_deltas, fold_failures;
static atomic_uint_fast64_t last_fold_s; /* Unix time of the last fold that left nothing pending */
static atomic_uint_fast64_t batch_buckets[BATCH_BUCKETS + 1];
static atomic_uint_fast64_t batch_sum;

static void add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static size_t bucket_of(const int64_t *bounds, size_t n, int64_t v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

static struct endpoint *endpoint_claim(const char *method, const char *pattern)
{
    struct endpoint *e = &other;
    pthread_mutex_lock(&claim_lock);
    size_t n = atomic_load_explicit(&n_endpoints, memory_order_relaxed);
    /* Another thread may have claimed it, or a caller may pass equal strings at other
     * addresses: compare the text before taking a new slot. */
    for (size_t i = 0; i < n; i++)
        if (strcmp(endpoints[i].method, method) == 0 &&
            strcmp(endpoints[i].pattern, pattern) == 0) {
            e = &endpoints[i];
            goto out;
        }
    if (n == METRICS_ENDPOINTS_MAX)
        goto out;
    e = &endpoints[n];
    e->method = method;
    e->pattern = pattern;
    snprintf(e->label, sizeof e->label, "%s %s", method, pattern);
    atomic_store_explicit(&n_endpoints, n + 1, memory_order_release);
out:
    pthread_mutex_unlock(&claim_lock);
    return e;
}

static struct endpoint *endpoint_for(const char *method, const char *pattern)
{
    if (method == NULL || pattern == NULL)
        return &unmatched;
    size_t n = atomic_load_explicit(&n_endpoints, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (endpoints[i].method == method && endpoints[i].pattern == pattern)
            return &endpoints[i];
    return endpoint_claim(method, pattern);
}

void metrics_request(const char *method, const char *pattern, unsigned status,
                     int64_t latency_us)
{
    struct endpoint *e = endpoint_for(method, pattern);
    unsigned cls = status / 100;
    add(&e->by_class[cls >= 1 && cls <= 5 ? cls - 1 : 4], 1);
    if (latency_us < 0)
        latency_us = 0;
    add(&e->latency.buckets[bucket_of(latency_bounds_us, LATENCY_BUCKETS, latency_us)], 1);
    add(&e->latency.sum_us, (uint64_t)latency_us);
}

void metrics_records(size_t in_batch, size_t accepted, size_t duplicates, size_t rejected)
{
    add(&records_accepted, accepted);
    add(&records_duplicates, duplicates);
    add(&records_rejected, rejected);
    add(&batch_buckets[bucket_of(batch_bounds, BATCH_BUCKETS, (int64_t)in_batch)], 1);
    add(&batch_sum, in_batch);
}

void metrics_records_direct(size_t n)
{
    add(&records_direct, n);
}

void metrics_db_error(void)
{
    add(&db_errors, 1);
}

void metrics_store_retry(void)
{
    add(&store_retries, 1);
}

void metrics_fold(bool ok, long deltas)
{
    add(&folded_deltas, deltas > 0 ? (uint64_t)deltas : 0);
    if (!ok) {
        add(&fold_failures, 1);
        return;
    }
    /* Folds end on several threads: the latest time wins, whatever the order. */
    uint64_t now = (uint64_t)time(NULL), seen = atomic_load(&last_fold_s);
    while (seen < now && !atomic_compare_exchange_weak(&last_fold_s, &seen, now))
        ;
}

/* A count of microseconds as seconds in plain decimal notation ("0.00025", "2"). */
static void put_seconds(struct fm_buf *b, uint64_t us)
{
    char frac[8];
    snprintf(frac, sizeof frac, "%06" PRIu64, us % 1000000);
    size_t len = strlen(frac);
    while (len > 0 && frac[len - 1] == '0')
        len--;
    fm_buf_printf(b, "%" PRIu64, us / 1000000);
    if (len > 0)
        fm_buf_printf(b, ".%.*s", (int)len, frac);
}

static void put_family(struct fm_buf *b, const char *name, const char *type, const char *help)
{
    fm_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_counter(struct fm_buf *b, const char *name, const char *help,
                        atomic_uint_fast64_t *c)
{
    put_family(b, name, "counter", help);
    fm_buf_printf(b, "%s %" PRIu64 "\n", name, get(c));
}

/* Cumulative bucket lines, then _sum and _count, for one label set (may be ""). Bounds
 * are microseconds when as_seconds, else plain integers. */
static void put_histogram(struct fm_buf *b, const char *name, const char *labels,
                          const int64_t *bounds, size_t n, atomic_uint_fast64_t *buckets,
                          uint64_t sum, bool as_seconds)
{
    const char *sep = *labels ? "," : "";
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= n; i++) {
        cumulative += get(&buckets[i]);
        fm_buf_printf(b, "%s_bucket{%s%sle=\"", name, labels, sep);
        if (i == n)
            fm_buf_puts(b, "+Inf");
        else if (as_seconds)
            put_seconds(b, (uint64_t)bounds[i]);
        else
            fm_buf_printf(b, "%" PRId64, bounds[i]);
        fm_buf_printf(b, "\"} %" PRIu64 "\n", cumulative);
    }
    fm_buf_printf(b, "%s_sum%s%s%s ", name, *labels ? "{" : "", labels, *labels ? "}" : "");
    if (as_seconds)
        put_seconds(b, sum);
    else
        fm_buf_printf(b, "%" PRIu64, sum);
    fm_buf_printf(b, "\n%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
                  *labels ? "}" : "", cumulative);
}

/* Resident memory from /proc/self/statm (pages); -1 when it cannot be read. */
static int64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    unsigned long long size = 0, resident = 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return got == 2 && page > 0 ? (int64_t)(resident * (unsigned long long)page) : -1;
}

/* The endpoints to show: those claimed, then the two fixed slots when they were used. */
static size_t endpoints_list(struct endpoint **list, size_t max)
{
    size_t n = atomic_load_explicit(&n_endpoints, memory_order_acquire), k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        list[k++] = &endpoints[i];
    struct endpoint *fixed[] = {&unmatched, &other};
    for (size_t i = 0; i < 2 && k < max; i++) {
        uint64_t seen = 0;
        for (size_t c = 0; c < 5; c++)
            seen += get(&fixed[i]->by_class[c]);
        if (seen > 0)
            list[k++] = fixed[i];
    }
    return k;
}

char *metrics_render(void)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    struct endpoint *list[METRICS_ENDPOINTS_MAX + 2];
    size_t n = endpoints_list(list, sizeof list / sizeof list[0]);
    struct fm_buf b;
    fm_buf_init(&b, 1u << 20);

    put_counter(&b, "faasmeter_records_accepted_total",
                "Usage records stored (first arrival of their id).", &records_accepted);
    put_counter(&b, "faasmeter_records_duplicates_total",
                "Usage records whose id was stored already with the same content.",
                &records_duplicates);
    put_counter(&b, "faasmeter_records_rejected_total",
                "Usage records refused: invalid, or a conflict with a stored id.",
                &records_rejected);
    put_counter(&b, "faasmeter_records_direct_total",
                "Accepted records COPYed straight into their tables (new invocations, and "
                "lone stops of stored ones); the others took the staged path.",
                &records_direct);
    put_counter(&b, "faasmeter_database_errors_total",
                "Database failures: unreachable, or a statement that failed.", &db_errors);
    put_counter(&b, "faasmeter_store_retries_total",
                "Batches tried again after losing a deadlock to another transaction.",
                &store_retries);
    put_counter(&b, "faasmeter_usage_folded_deltas_total",
                "Usage deltas folded into the rollups that usage, invoices and comparisons "
                "read.",
                &folded_deltas);
    put_counter(&b, "faasmeter_usage_fold_failures_total",
                "Folds that failed, leaving usage pending (the log says why).", &fold_failures);
    put_family(&b, "faasmeter_usage_last_fold_timestamp_seconds", "gauge",
               "When a fold last left nothing pending (Unix time; 0: not yet).");
    fm_buf_printf(&b, "faasmeter_usage_last_fold_timestamp_seconds %" PRIu64 "\n",
                  get(&last_fold_s));

    put_family(&b, "faasmeter_http_requests_total", "counter",
               "HTTP requests answered, by endpoint and status class.");
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < 5; c++) {
            uint64_t v = get(&list[i]->by_class[c]);
            if (v > 0)
                fm_buf_printf(&b,
                              "faasmeter_http_requests_total{endpoint=\"%s\",code=\"%s\"} "
                              "%" PRIu64 "\n",
                              list[i]->label, classes[c], v);
        }

    put_family(&b, "faasmeter_http_request_duration_seconds", "histogram",
               "Time from a complete request to its queued answer.");
    for (size_t i = 0; i < n; i++) {
        char labels[224];
        /* Labels come from the route table, never from a client: nothing to escape. */
        snprintf(labels, sizeof labels, "endpoint=\"%s\"", list[i]->label);
        put_histogram(&b, "faasmeter_http_request_duration_seconds", labels,
                      latency_bounds_us, LATENCY_BUCKETS, list[i]->latency.buckets,
                      get(&list[i]->latency.sum_us), true);
    }

    put_family(&b, "faasmeter_batch_records", "histogram",
               "Records per stored POST /v1/records request.");
    put_histogram(&b, "faasmeter_batch_records", "", batch_bounds, BATCH_BUCKETS,
                  batch_buckets, get(&batch_sum), false);

    int64_t rss = resident_bytes();
    if (rss >= 0) {
        put_family(&b, "process_resident_memory_bytes", "gauge",
                   "Resident memory of this meterd process.");
        fm_buf_printf(&b, "process_resident_memory_bytes %" PRId64 "\n", rss);
    }
    return fm_buf_steal(&b);
}
