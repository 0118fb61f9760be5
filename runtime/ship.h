#ifndef RT_SHIP_H
#define RT_SHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "runtime/spool.h"
#include "runtime/status.h"

#define RT_SHIP_BATCH 1000

/* A connection to the metering service, kept alive across batches. Opaque. */
struct rt_shipper;

struct rt_ship_stats {
    size_t batches;       /* batches the service answered with 200 */
    size_t accepted;
    size_t duplicates;
    size_t dead_lettered; /* refused by the service or unreadable in the spool */
    size_t retries;
};

/**
 * Whether url can name a metering service: http:// or https:// (in any case), a host (a
 * name, an address, or an IPv6 address in brackets), an optional :PORT of 1-65535 and
 * anything after a '/', '?' or '#'; no spaces or control characters.
 */
bool rt_ship_url_valid(const char *url);

/**
 * Prepare a shipper for meter_url (e.g. "http://127.0.0.1:8080"), sending key as a bearer
 * token when it is non-NULL and non-empty.
 * @param out  on RT_OK the shipper (caller frees with rt_shipper_free); untouched on error
 * @return RT_OK, RT_EINVAL for a URL that rt_ship_url_valid refuses, RT_ENOMEM
 */
enum rt_status rt_shipper_new(const char *meter_url, const char *key, struct rt_shipper **out,
                              struct fm_err *err);

/** Free a shipper; NULL is a no-op. */
void rt_shipper_free(struct rt_shipper *sh);

/**
 * Send every unsent record of the spool, in batches of up to RT_SHIP_BATCH, as
 * POST {meter}/v1/records with application/x-ndjson. Records the service rejects go to the
 * dead-letter file with its reason; after each answered batch the spool's cursor moves on
 * durably. Connection errors, 5xx and 429 are retried with exponential backoff and jitter
 * until deadline_us (monotonic clock, fm_mono_us). Waits for the spool's claim while
 * another shipper holds it, up to the deadline too.
 *
 * @param stats  optional; counts what happened, also when the call fails
 * @return RT_OK when the spool is empty; RT_ETIMEDOUT when the deadline passed first;
 *         RT_EREMOTE when the service refused a whole batch (401, 400, 415, ...: the
 *         records stay in the spool); RT_EIO, RT_ENOMEM. A batch refused as too large
 *         (413) is sent again in halves, and a record too large alone is dead-lettered.
 */
enum rt_status rt_ship_spool(struct rt_shipper *sh, struct rt_spool *spool, int64_t deadline_us,
                             struct rt_ship_stats *stats, struct fm_err *err);

/*
 * A background shipper: a thread that ships a spool continuously (what rt_ship_spool does,
 * again and again) with its own connection and its own handle on the spool, backing off
 * with jitter while the service is down. Each request has its own timeout (30 s), however
 * often the loop looks for a stop; only rt_ship_loop_stop cuts one short. Failures are
 * logged to stderr (common/log.h): the first, each change of reason, and a reminder once a
 * minute. Opaque.
 */
struct rt_ship_loop;

/**
 * Start shipping the spool folder dir to meter_url (key as in rt_shipper_new).
 * @param out  on RT_OK the loop (caller ends it with rt_ship_loop_stop); untouched on error
 * @return RT_OK, RT_EINVAL, RT_EIO, RT_ENOMEM
 */
enum rt_status rt_ship_loop_start(const char *dir, const char *meter_url, const char *key,
                                  struct rt_ship_loop **out, struct fm_err *err);

/** Ship soon: new records are waiting. Thread-safe. */
void rt_ship_loop_kick(struct rt_ship_loop *l);

/**
 * Stop the loop: one last attempt to ship everything until deadline_us (monotonic), then
 * free it. Records not delivered stay in the spool for the next start. NULL is a no-op.
 * @return RT_OK when the spool was empty at the end, else why not
 */
enum rt_status rt_ship_loop_stop(struct rt_ship_loop *l, int64_t deadline_us, struct fm_err *err);

#endif
