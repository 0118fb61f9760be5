#ifndef FM_METER_RECORD_H
#define FM_METER_RECORD_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/err.h"

/* A usage record that passed validation (DESIGN.md, "Usage records"). */
struct meter_record {
    char tenant[65];
    char id[129];
    char type[9];           /* "start", "stop" or "resource" */
    int64_t time_us;        /* wall time, microseconds since the epoch */
    char time_text[32];     /* the same, as RFC 3339 with 6 fractional digits */
    unsigned char digest[32]; /* SHA-256 of body: tells a repeat from a conflict */
    char *body;             /* canonical JSON of the listed fields, owned by the record */
};

/**
 * Check one record against the contract and build its canonical form: the listed fields
 * only (unknown ones are dropped), in a fixed order, integers printed exactly.
 *
 * @param json  borrowed
 * @param out   on success filled in; release with meter_record_clear. Untouched on error.
 * @param err   on error: "<field>: <reason>", e.g. "memory_mb: expected an integer 1-10240"
 * @return 0, or -1 when the record is invalid (or memory ran out)
 */
int meter_record_parse(const cJSON *json, struct meter_record *out, struct fm_err *err);

/** Free what meter_record_parse allocated in r (safe on a zeroed record). */
void meter_record_clear(struct meter_record *r);

#endif
