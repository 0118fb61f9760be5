#ifndef FM_METER_COMPARE_STATS_H
#define FM_METER_COMPARE_STATS_H

#include <libpq-fe.h>
#include <stddef.h>

#include "billing/catalog.h"
#include "billing/compare.h"
#include "common/err.h"
#include "meter/invoices.h"

/* The database side of the server comparison, shared by meterd's GET /v1/compare and
 * `faasbill compare` / `faasbill report`: a tenant's month read into a bill_stats. */

/**
 * Read a tenant's month of finished invocations into statistics for bill_compare: per
 * function totals, quantities rounded per invocation under every catalog plan (one pass over
 * the rows), the peak concurrency with the memory and CPU in use at once (a sweep over the
 * [started_at, started_at + duration) intervals in start order; an execution ending at the
 * instant another starts does not overlap it), and the usage by hour from usage_hourly.
 *
 * @param cat       borrowed; the stats borrow its plans, so it must outlive them
 * @param own_plan  on METER_INVOICE_OK, the tenant's plan id (n bytes, at most 255 used)
 * @param out       on METER_INVOICE_OK, the stats (caller frees with bill_stats_free)
 * @return METER_INVOICE_OK, METER_INVOICE_NO_TENANT, METER_INVOICE_NO_PLAN (the tenant's plan
 *         is not in the catalog), METER_INVOICE_BAD_INPUT (period), METER_INVOICE_FAILED
 */
enum meter_invoice_status meter_compare_stats(PGconn *conn, const struct bill_catalog *cat,
                                              const char *tenant, const char *period,
                                              char *own_plan, size_t n,
                                              struct bill_stats **out, struct fm_err *err);

/**
 * The names of every tenant, in name order.
 * @param out  on success, an array of *n strings (caller frees with meter_tenants_free)
 * @return 0, or -1 with err set
 */
int meter_tenants(PGconn *conn, char ***out, size_t *n, struct fm_err *err);

/** Free what meter_tenants returned. NULL is a no-op. */
void meter_tenants_free(char **names, size_t n);

#endif
