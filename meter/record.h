#ifndef FM_METER_RECORD_H
#define FM_METER_RECORD_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/buf.h"
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
    char *copy_row;         /* the fields as one row of COPY text, in meter_record_columns()
                               order, absent ones \N; owned by the record */
};

/** The record's fields as a SQL column list, in the order of copy_row. Static. */
const char *meter_record_columns(void);

/** Append s escaped for COPY's text format (backslash, tab, newline, carriage return). */
void meter_copy_text(struct fm_buf *b, const char *s);

/**
 * Check one record against the contract and build its canonical form: the listed fields
 * only (unknown ones are dropped), in a fixed order, integers printed exactly; and the same
 * fields as a row for COPY into the staging table.
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
