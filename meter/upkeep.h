#ifndef FM_METER_UPKEEP_H
#define FM_METER_UPKEEP_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "common/err.h"

/*
 * Work the database needs now and then, done by every meterd in the background: folding
 * pending usage deltas into the rollups (meter/fold.c) and closing starts whose stop never
 * came (status 'lost', billed by policy; schema/005).
 */

enum meter_orphan_policy { METER_ORPHAN_BILL_TIMEOUT, METER_ORPHAN_BILL_NONE };

/**
 * Close up to limit orphans whose timeout plus grace_ms has passed.
 * @param closed  on success, how many were closed
 * @return 0, or -1 with err set
 */
int meter_orphans_close(PGconn *conn, long grace_ms, enum meter_orphan_policy policy,
                        int limit, int *closed, struct fm_err *err);

/**
 * Make this month's and next month's partitions of the partitioned tables, when missing.
 * Making one locks its whole table, so it is done ahead (migrate, upkeep) rather than by
 * the first batch of a month.
 * @return true, or false with err set
 */
bool meter_partitions_ready(PGconn *conn, struct fm_err *err);

struct meter_upkeep_config {
    const char *conninfo; /* borrowed; must outlive the upkeep */
    long fold_ms;         /* fold this often; 0: never */
    long sweep_ms;        /* look for orphans this often; 0: never */
    long grace_ms;
    enum meter_orphan_policy policy;
};

struct meter_upkeep;

/**
 * Start a thread that folds usage and closes orphans on its own connection. Several meterd
 * may run one each: folds take turns on a lock, orphan sweeps skip while another runs.
 * @param cfg  copied
 * @return the upkeep (stop with meter_upkeep_stop), or NULL when no thread could start
 */
struct meter_upkeep *meter_upkeep_start(const struct meter_upkeep_config *cfg);

/** Stop the thread and wait for it. NULL is a no-op. */
void meter_upkeep_stop(struct meter_upkeep *u);

#endif
