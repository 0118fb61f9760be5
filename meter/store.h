#ifndef FM_METER_STORE_H
#define FM_METER_STORE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "common/apikey.h"
#include "common/err.h"
#include "meter/record.h"

/* meterd's use of PostgreSQL: one connection per worker thread, prepared statements. */

enum meter_outcome { METER_ACCEPTED, METER_DUPLICATE, METER_CONFLICT };

/**
 * A connection to conninfo for this thread's request, borrowed from a pool shared by the
 * threads (at most 32 at once; a thread waits up to 5 s for one). The same connection is
 * returned until meter_store_release gives it back. Statements are prepared on new ones;
 * a broken one is replaced.
 * @return the connection, or NULL with err set when the database cannot be reached or
 *         every connection stayed busy
 */
PGconn *meter_store_conn(const char *conninfo, struct fm_err *err);

/** Give this thread's connection back to the pool (closed if it is broken or mid-transaction).
 *  A no-op when the thread holds none. */
void meter_store_release(void);

/** Close this thread's connection, if any (it broke). */
void meter_store_close(void);

/** Close the pool's idle connections and this thread's; at shutdown. */
void meter_store_close_all(void);

/**
 * Store a batch of validated records in one transaction, each exactly once.
 * @param outcomes  n entries, written only on success
 * @return 0 once the transaction is committed; -1 with err set when the database failed
 *         (nothing of the batch is stored then)
 */
int meter_store_records(PGconn *conn, const struct meter_record *recs, size_t n,
                        enum meter_outcome *outcomes, struct fm_err *err);

/*
 * Group commit: requests hand their records to the group and do not wait. Writer threads,
 * each with its own connection, take every request waiting when they are free and store
 * them in one transaction, so many small concurrent requests share one COPY and one commit.
 */
struct meter_group;

/** A group for one server, its writer threads started. @param conninfo borrowed.
 *  NULL when out of memory or threads. */
struct meter_group *meter_group_new(const char *conninfo);

/** Store and answer what was submitted, then stop the writers. Submissions from then on
 *  are answered at once with an error. */
void meter_group_stop(struct meter_group *g);

/** Stop g (if not yet) and free it; no thread may submit any more. NULL is a no-op. */
void meter_group_free(struct meter_group *g);

/* rc of a submission that came after meter_group_stop: nothing is stored. */
#define METER_GROUP_STOPPED (-2)

/**
 * How a submission went, called once from a writer thread (or from meter_group_submit
 * itself when the group has stopped or memory ran out). rc 0: the commit that holds the
 * records is done and the outcomes are written; -1: nothing of them is stored, err says
 * why; METER_GROUP_STOPPED: nothing is stored, the server is stopping.
 */
typedef void meter_group_done(void *arg, int rc, const struct fm_err *err);

/**
 * Queue a request's validated records for the next transaction and return at once.
 * recs and outcomes (n entries) must stay valid until done is called.
 */
void meter_group_submit(struct meter_group *g, const struct meter_record *recs, size_t n,
                        enum meter_outcome *outcomes, meter_group_done *done, void *arg);

struct meter_key {
    unsigned char hash[APIKEY_HASH_LEN];
    char role[8];    /* "admin", "ingest" or "tenant" */
    char tenant[65]; /* for tenant keys, else "" */
};

/**
 * Find the live (not revoked) key with this public id.
 * @return 1 and *out filled, 0 when there is none, -1 with err set on a database failure
 */
int meter_store_find_key(PGconn *conn, const char *key_id, struct meter_key *out,
                         struct fm_err *err);

/** 0 when the database answers a trivial query, -1 otherwise. */
int meter_store_ping(PGconn *conn);

#endif
