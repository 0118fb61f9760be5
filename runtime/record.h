#ifndef RT_RECORD_H
#define RT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "runtime/exec.h"
#include "runtime/manifest.h"

#define RT_INVOCATION_ID_LEN 32 /* 128 random bits in hex */

/* What both records of one invocation share. Plain data. */
struct rt_invocation {
    char id[RT_INVOCATION_ID_LEN + 1];
    const struct rt_function *fn; /* borrowed */
    const char *trigger;          /* "cli", "http", "pipeline", ... (static) */
    const char *correlation_id;   /* optional, at most 128 bytes; NULL when none */
    bool cold_start;
    int64_t start_wall_us;        /* when it started, wall clock */
};

/* What the stop record reports beyond the exec result. */
struct rt_stop_info {
    const struct rt_exec_result *run;
    int64_t init_us;
    int64_t bytes_in;
    int64_t bytes_out;
    int64_t stop_wall_us;
};

/**
 * Fill id with a fresh random invocation id (getrandom). Random rather than counted, so
 * ids never collide across restarts and replaying a spool is harmless.
 * @return 0, or -1 when the kernel's random source failed (id untouched)
 */
int rt_invocation_id(char id[RT_INVOCATION_ID_LEN + 1]);

/**
 * Append the start record of inv to out as one JSON object (no newline), in the format of
 * DESIGN.md "Usage records". Returns 0, or -1 when out's cap is reached.
 */
int rt_record_start(const struct rt_invocation *inv, struct fm_buf *out);

/** Append the stop record; same contract as rt_record_start. */
int rt_record_stop(const struct rt_invocation *inv, const struct rt_stop_info *stop,
                   struct fm_buf *out);

/**
 * Append resource record number n (its id "<invocation_id>:res:<n>") with the usage so far
 * at wall time when; same contract as rt_record_start.
 */
int rt_record_resource(const struct rt_invocation *inv, int n, int64_t when,
                       const struct rt_usage_sample *use, struct fm_buf *out);

/** Append s to out as a JSON string literal with quotes. Returns 0 or -1 (cap). */
int rt_json_string(struct fm_buf *out, const char *s, size_t n);

#endif
