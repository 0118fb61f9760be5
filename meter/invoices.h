#ifndef FM_METER_INVOICES_H
#define FM_METER_INVOICES_H

#include <libpq-fe.h>

#include "billing/catalog.h"
#include "billing/invoice.h"
#include "common/err.h"

/* Pricing a tenant's stored usage: the database side of invoices, shared by meterd's
 * invoice endpoints and `faasbill invoice`. */

enum meter_invoice_status {
    METER_INVOICE_OK,
    METER_INVOICE_NO_TENANT, /* no such tenant */
    METER_INVOICE_NO_PLAN,   /* the plan asked for (or the tenant's) is not in the catalog */
    METER_INVOICE_BAD_INPUT, /* a malformed period */
    METER_INVOICE_FAILED,    /* the database failed, or pricing overflowed */
};

/**
 * Price a tenant's month of finished invocations. Each invocation is rounded under the plan
 * on its own (a 100 ms plan bills a 260 ms call as 300 ms), then the period is priced.
 *
 * @param cat      borrowed catalog
 * @param plan_id  the plan to price under, or NULL for the tenant's own plan
 * @param out      on METER_INVOICE_OK, the invoice (caller frees with bill_invoice_free)
 * @param err      says which tenant, plan or period was wrong, or what failed
 */
enum meter_invoice_status meter_invoice_price(PGconn *conn, const struct bill_catalog *cat,
                                              const char *tenant, const char *period,
                                              const char *plan_id, struct bill_invoice **out,
                                              struct fm_err *err);

#endif
