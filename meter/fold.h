#ifndef FM_METER_FOLD_H
#define FM_METER_FOLD_H

#include <libpq-fe.h>

#include "common/err.h"

/*
 * The fold: every change to a finished invocation leaves a signed delta row (usage_delta);
 * the fold takes pending deltas out and adds them to the rollups (usage_hourly,
 * usage_tenant_hourly, usage_monthly, and per registered plan usage_rated and
 * usage_rated_hourly), both in the
 * same transaction. Rating happens here, with the billing library's rounding
 * (billing/plan.h) under the rules registered in the plans table, so that a delta is rated
 * exactly as an invoice from raw records would rate it. Folds take turns on an advisory
 * lock that plan_register also holds, and nothing else writes rollup rows: so folds cannot
 * deadlock each other, whatever order they write rows in.
 */

/**
 * Fold every pending usage delta. Readers of the rollups call it first, so that what they
 * read includes every committed record. Runs its own transactions, one a round (a round
 * holds a bounded number of rollup rows in memory, whatever the backlog), so conn must be
 * idle, not in a transaction.
 * @param folded  optional: on success, how many deltas were folded
 * @return 0, or -1 with err set (the round that failed is rolled back: its deltas stay
 *         pending; earlier rounds stay folded)
 */
int meter_usage_fold(PGconn *conn, long *folded, struct fm_err *err);

/**
 * The same inside the caller's transaction, which it neither commits nor rolls back: for
 * plan_register, which must rate anew with no delta pending.
 * @return 0, or -1 with err set: the caller must then roll back, as deltas may have been
 *         taken out and not added up
 */
int meter_usage_fold_in_transaction(PGconn *conn, long *folded, struct fm_err *err);

#endif
