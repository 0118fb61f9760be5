#ifndef FM_METER_ORPHANS_H
#define FM_METER_ORPHANS_H

#include <libpq-fe.h>

#include "common/err.h"

/* Closing starts whose stop never came: status 'lost', billed by policy (schema/005). */

enum meter_orphan_policy { METER_ORPHAN_BILL_TIMEOUT, METER_ORPHAN_BILL_NONE };

/**
 * Close up to limit orphans whose timeout plus grace_ms has passed.
 * @param closed  on success, how many were closed
 * @return 0, or -1 with err set
 */
int meter_orphans_close(PGconn *conn, long grace_ms, enum meter_orphan_policy policy,
                        int limit, int *closed, struct fm_err *err);

struct meter_orphan_sweeper;

/**
 * Start a thread that closes orphans every interval_ms, on its own connection. Several
 * meterd may run one each: an advisory lock lets one sweep at a time.
 * @param conninfo  borrowed; must outlive the sweeper
 * @return the sweeper (stop with meter_orphans_stop), or NULL when no thread could start
 */
struct meter_orphan_sweeper *meter_orphans_start(const char *conninfo, long interval_ms,
                                                 long grace_ms,
                                                 enum meter_orphan_policy policy);

/** Stop the thread and wait for it. NULL is a no-op. */
void meter_orphans_stop(struct meter_orphan_sweeper *s);

#endif
