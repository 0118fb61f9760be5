#ifndef FM_METER_RECORD_H
#define FM_METER_RECORD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* The record's fields, in the order of meter_record_columns() and of the canonical form. */
enum meter_field {
    MF_ID, MF_TYPE, MF_INVOCATION_ID, MF_TENANT, MF_FUNCTION, MF_TIME, MF_MEMORY_MB,
    MF_TIMEOUT_MS, MF_COLD_START, MF_TRIGGER, MF_CORRELATION_ID, MF_DURATION_US, MF_INIT_US,
    MF_STATUS, MF_EXIT_CODE, MF_CPU_USER_US, MF_CPU_SYS_US, MF_MAX_RSS_KB, MF_BYTES_IN,
    MF_BYTES_OUT, MF_COUNT
};

/* A usage record that passed validation (DESIGN.md, "Usage records"). */
struct meter_record {
    char tenant[65];
    const char *id;            /* up to 128 characters, so 512 bytes; in body's allocation */
    const char *invocation_id; /* likewise */
    char type[9];           /* "start", "stop" or "resource" */
    int64_t time_us;        /* wall time, microseconds since the epoch */
    char time_text[32];     /* the same, as RFC 3339 with 6 fractional digits */
    unsigned char digest[32]; /* SHA-256 of body: tells a repeat from a conflict */
    char *body;             /* canonical JSON of the listed fields, owned by the record */
    char *copy_row;         /* the fields as one row of COPY text, in meter_record_columns()
                               order, absent ones \N; in body's allocation */
    unsigned short at[MF_COUNT]; /* where each field's COPY text starts in copy_row */
    short len[MF_COUNT];         /* its length, -1 when the field is absent */
    int64_t ints[MF_COUNT];      /* an integer field's value, 0 when absent (and for the rest) */
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

#define METER_DIGEST_HEX 65

/** The record's digest as 64 lowercase hex digits and a NUL. */
void meter_record_digest_hex(const struct meter_record *r, char out[METER_DIGEST_HEX]);

/** The value of integer field f (0 when absent). */
int64_t meter_record_int(const struct meter_record *r, enum meter_field f);

/** Whether field f is present and its text is exactly s. */
bool meter_record_is(const struct meter_record *r, enum meter_field f, const char *s);

/** Append field f's COPY text to b, or \N when it is absent. */
void meter_record_put(struct fm_buf *b, const struct meter_record *r, enum meter_field f);

/** The integer field named name (len bytes, not NUL-terminated), or MF_COUNT. */
enum meter_field meter_record_int_field(const char *name, size_t len);

/** Set err to integer field f's refusal ("memory_mb: expected an integer 1-10240").
 *  @return -1 */
int meter_record_int_refused(enum meter_field f, struct fm_err *err);

/** Free what meter_record_parse allocated in r (safe on a zeroed record). */
void meter_record_clear(struct meter_record *r);

#endif
