#ifndef FM_METER_PLANS_H
#define FM_METER_PLANS_H

#include <libpq-fe.h>

#include "billing/catalog.h"
#include "common/err.h"

/**
 * Copy every catalog plan's rounding rules into the database (table plans), so that usage
 * is rated per invocation under each plan when it is folded. A plan that is new or whose rules
 * changed is rated anew from the stored invocations.
 *
 * @param changed  optional: set to the number of plans added or changed, on success
 * @return 0, or -1 with err set
 */
int meter_plans_register(PGconn *conn, const struct bill_catalog *cat, int *changed,
                         struct fm_err *err);

/**
 * Whether the database rates usage under plan with exactly the plan's current rules: then
 * the usage_rated rollups can price it. 1 yes, 0 no, -1 database error (err set).
 */
int meter_plan_is_rated(PGconn *conn, const struct bill_plan *plan, struct fm_err *err);

#endif
