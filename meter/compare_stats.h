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
 * Read a tenant's month into statistics for bill_compare, from the rollups only (folded
 * first): per function totals, mean memory and largest configured memory from
 * usage_monthly (a server with less than the largest cannot run the workload); quantities
 * rounded per invocation under every catalog plan from usage_rated (a plan the database
 * does not rate is rounded here from the invocation rows instead); the usage by hour and the
 * load to
 * size servers for, the busiest hour's mean (billing/compare.h, assumptions), from
 * usage_tenant_hourly.
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

/* One tenant's month, as meter_compare_stats_all reads it. */
struct meter_tenant_stats {
    char *tenant;
    char plan[256];          /* the tenant's plan id */
    struct bill_stats *stats;
};

/**
 * What meter_compare_stats reads, for every tenant at once (in name order) with one
 * statement per rollup instead of several per tenant, all in one snapshot. The stats carry
 * no usage over time: the every-tenant report does not draw it, and it is a row per tenant
 * and hour. When the database does not rate some catalog plan it falls back to one tenant
 * at a time, rounding that plan from the invocation rows.
 *
 * @param cat   borrowed; the stats borrow its plans, so it must outlive them
 * @param out   on METER_INVOICE_OK, *n entries (caller frees with meter_tenant_stats_free)
 * @return METER_INVOICE_OK, METER_INVOICE_NO_PLAN (a tenant's plan is not in the catalog),
 *         METER_INVOICE_BAD_INPUT (period), METER_INVOICE_FAILED
 */
enum meter_invoice_status meter_compare_stats_all(PGconn *conn, const struct bill_catalog *cat,
                                                  const char *period,
                                                  struct meter_tenant_stats **out, size_t *n,
                                                  struct fm_err *err);

/** Free what meter_compare_stats_all returned. NULL is a no-op. */
void meter_tenant_stats_free(struct meter_tenant_stats *ts, size_t n);

/**
 * The names of every tenant, in name order.
 * @param out  on success, an array of *n strings (caller frees with meter_tenants_free)
 * @return 0, or -1 with err set
 */
int meter_tenants(PGconn *conn, char ***out, size_t *n, struct fm_err *err);

/** Free what meter_tenants returned. NULL is a no-op. */
void meter_tenants_free(char **names, size_t n);

#endif
