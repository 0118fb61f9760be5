#ifndef FM_METER_METRICS_H
#define FM_METER_METRICS_H

/*
 * meterd's own counters, served by GET /metrics in the Prometheus text format. One set per
 * process: every server started in it adds to the same counters, as Prometheus expects of
 * a process it scrapes. Recording is lock-free (C11 atomics), so worker threads never wait
 * on each other to count.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Count one answered request and observe its latency.
 *
 * @param method   the route's method ("POST"), or NULL when no route matched
 * @param pattern  the route's path pattern ("/v1/records"), or NULL when no route matched;
 *                 method and pattern must be static strings (their pointers identify the
 *                 endpoint on the fast path)
 * @param status   the HTTP status sent
 * @param latency_us  time spent answering, in microseconds (negative counts as 0)
 *
 * Thread-safe. Endpoints beyond METRICS_ENDPOINTS_MAX are counted under "other".
 */
void metrics_request(const char *method, const char *pattern, unsigned status,
                     int64_t latency_us);

/**
 * Count the outcome of one stored POST /v1/records batch: records in it (observed in the
 * batch size histogram), accepted, duplicates and rejected (invalid or conflicting).
 * Thread-safe.
 */
void metrics_records(size_t in_batch, size_t accepted, size_t duplicates, size_t rejected);

/** Count records stored on the direct path (store_direct.h), not staged. Thread-safe. */
void metrics_records_direct(size_t n);

/** Count one database failure (unreachable, or a statement that failed). Thread-safe. */
void metrics_db_error(void);

/** Count a batch tried again after it lost a deadlock (store.c). Thread-safe. */
void metrics_store_retry(void);

/** A fold of the pending usage: whether it ended with nothing pending (ok), and how many
 *  deltas it folded and committed either way. */
void metrics_fold(bool ok, long deltas);

/**
 * Render every metric in the Prometheus text exposition format (version 0.0.4).
 * @return a heap string (caller frees with free), or NULL when memory ran out.
 * Thread-safe; counters are read one by one, so a scrape taken while requests are being
 * answered may see a histogram's buckets and its count a few observations apart.
 */
char *metrics_render(void);

#define METRICS_ENDPOINTS_MAX 32

#endif
