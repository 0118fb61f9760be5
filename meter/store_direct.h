#ifndef FM_METER_STORE_DIRECT_H
#define FM_METER_STORE_DIRECT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "meter/record.h"

/*
 * Direct ingestion (schema/006_direct_ingest.sql): the records of invocations that are new
 * to the database, with at most one start and one stop each and no resource samples, are
 * joined into their invocation rows here and COPYed straight into record_ids, records,
 * invocation_ids, invocations and usage_delta, with no staging table and no per-row
 * conflict handling. The stop of a stored invocation, alone of its invocation in the
 * batch, and the resource samples of a stored invocation that come without its start and
 * stop, are COPYed into record_ids and records likewise and stored by one call of
 * invocations_stop (schemas 012 and 016), when the whole batch takes this path.
 * The unique keys still judge: a COPY that meets an existing key fails (as does a stop
 * whose stored invocation has a stop already), and the caller then stores the whole batch
 * on the staged path (ingest_staged), which gives every record its exact outcome. The
 * staged path also takes, in the same transaction, the records that are not eligible here.
 */
struct meter_direct;

/* The name of the statement, prepared on every connection, that meter_direct_begin runs:
 * SELECT * FROM ingest_direct_prepare($1, $2, $3). */
#define METER_DIRECT_PREPARE "direct_prepare"

/* The name of the statement, prepared on every connection, that adds the tenants of a
 * batch ($1, an array) that are new: meter_direct_copy runs it by SQL EXECUTE among its
 * COPYs, since parsing and planning it anew cost more than running it. */
#define METER_DIRECT_TENANTS "direct_tenants"

/* The name of the statement, prepared on every connection, that stores the lone stops and
 * the samples of stored invocations ($1, a JSON array) with invocations_stop, all of them
 * or none: run by SQL EXECUTE after the COPYs. */
#define METER_DIRECT_STOPS "direct_stops"

/**
 * Decide which records of a batch may be stored directly, from the batch alone: none when
 * a record id repeats within the batch. @param recs borrowed until meter_direct_free.
 * @return the plan, or NULL when no record is eligible (or memory ran out)
 */
struct meter_direct *meter_direct_plan(const struct meter_record *recs, size_t n);

/**
 * First, inside the caller's transaction: take the plans lock, add month partitions, and
 * leave to the staged path the invocations that exist already, but for lone stops and
 * samples alone when nothing else is left to it (after this, meter_direct_stored tells
 * which records the direct path takes).
 * @return 0, or -1 with err set when the database failed
 */
int meter_direct_begin(PGconn *conn, struct meter_direct *d, struct fm_err *err);

/**
 * Then: COPY the direct path's rows, add the batch's new tenants and store its lone stops
 * and samples of stored invocations, followed by tail ("COMMIT" when nothing else is left
 * to do in the transaction, else NULL), in the same query. Before any staged work, so that
 * the transaction takes new keys before it locks existing invocations, as ingest_staged
 * does.
 * @return 0; 1 when a COPY met an existing key or a missing partition, or a stop or sample
 *         met a stopped invocation (the transaction is aborted: roll it back and take the staged
 *         path for every record); -1 with err set when the database failed
 */
int meter_direct_copy(PGconn *conn, struct meter_direct *d, const char *tail,
                      struct fm_err *err);

/** Whether record i goes, or went, the direct path (it is accepted then). */
bool meter_direct_stored(const struct meter_direct *d, size_t i);

/** How many records go the direct path. */
size_t meter_direct_count(const struct meter_direct *d);

/** NULL is a no-op. */
void meter_direct_free(struct meter_direct *d);

/* One COPY: its statement ("COPY t (...) FROM STDIN") and its rows as COPY text. */
struct meter_copy {
    const char *sql;
    const char *data;
    size_t len;
};

/**
 * Run n COPY statements and then tail (statements such as "COMMIT", or NULL; rows they
 * return are ignored) as one query, so that each costs the server one exchange with meterd
 * rather than two.
 * @return 0; 1 when the database refused a row for an existing key or a missing partition,
 *         or a stop for a stopped invocation (SQLSTATE 23505, 23514 or FM001; the
 *         statements after it did not run); -1 with err set otherwise
 */
int meter_copy_in(PGconn *conn, const struct meter_copy *copies, int n, const char *tail,
                  struct fm_err *err);

#endif
