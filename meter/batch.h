#ifndef FM_METER_BATCH_H
#define FM_METER_BATCH_H

/*
 * The records of a POST /v1/records body, as JSON trees: a JSON array of records, or NDJSON
 * with a record a line. A JSON body that does not parse is the request's error; a line of
 * NDJSON that does not parse is that record's alone. The trees live in the batch's own
 * arena and are freed with it.
 */

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Most records one request may carry. */
#define METER_BATCH_MAX 10000

struct meter_batch_chunk;
struct meter_batch_line;

struct meter_batch_arena {
    struct meter_batch_chunk *chunks; /* newest first */
};

struct meter_batch {
    size_t n; /* records */
    cJSON **items;                  /* a JSON body's records */
    cJSON *array;                   /* a JSON body, parsed; in the arena */
    struct meter_batch_line *lines; /* NDJSON's records, each parsed when its turn comes */
    int *written;                   /* a JSON body's records: see meter_batch_written_int */
    struct meter_batch_arena arena;  /* where the trees live */
};

/**
 * Split body into records. Not thread-safe on one batch; batches on different threads are
 * independent.
 * @param out  on success, the batch (free with meter_batch_free); untouched on error
 * @param why  on error, why the request as a whole is refused ("the body is not a JSON
 *             array of records: not JSON at byte 17")
 * @return 0, or -1 for a JSON body that is not an array of records, text holding a zero
 *         byte or \u0000, more than METER_BATCH_MAX records, or no memory
 */
int meter_batch_parse(const char *body, size_t len, bool ndjson, struct meter_batch *out,
                      struct fm_err *why);

/**
 * Record i's tree (borrowed from b), or NULL for a line of NDJSON that is not JSON or holds
 * a zero byte or \u0000. An NDJSON line is parsed only now, in the place of the line before,
 * whose tree must no longer be in use.
 */
const cJSON *meter_batch_record(struct meter_batch *b, size_t i);

/**
 * The first integer field of record i (as a record reads it: the first member of its
 * name) whose number is written with a fraction or an exponent, or -1. cJSON reads numbers
 * as doubles, so "1000.00000000000001" would pass for the integer 1000: the text decides.
 * The field is an enum meter_field.
 */
int meter_batch_written_int(const struct meter_batch *b, size_t i);

/** The same for one line of NDJSON (len bytes), whatever it holds. */
int meter_batch_line_written_int(const char *text, size_t len);

/** Free the batch's trees and arrays (not b itself). */
void meter_batch_free(struct meter_batch *b);

#endif
