#ifndef FM_METER_INVOICES_H
#define FM_METER_INVOICES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "billing/catalog.h"
#include "billing/invoice.h"
#include "billing/usage.h"
#include "common/err.h"

/* Pricing a tenant's stored usage: the database side of invoices, shared by meterd's
 * invoice endpoints and `faasbill invoice`. */

enum meter_invoice_status {
    METER_INVOICE_OK,
    METER_INVOICE_NO_TENANT, /* no such tenant */
    METER_INVOICE_NO_PLAN,   /* the plan asked for (or the tenant's) is not in the catalog */
    METER_INVOICE_BAD_INPUT, /* a malformed period */
    METER_INVOICE_FAILED,    /* the database failed, or pricing overflowed */
    METER_INVOICE_FINAL,     /* the period's invoice is final: it cannot be rebuilt */
    METER_INVOICE_NOT_FOUND, /* no invoice with that id */
};

/**
 * The plan id of tenant into buf (truncated to n - 1 bytes).
 * @return 1 when found, 0 when there is no such tenant, -1 on a database error (err set)
 */
int meter_tenant_plan(PGconn *conn, const char *tenant, char *buf, size_t n,
                      struct fm_err *err);

/** Called for each finished invocation; returns 0 to go on, -1 (err set) to fail. */
typedef int (*meter_invocation_fn)(void *ctx, const char *function,
                                   const struct bill_invocation *inv, struct fm_err *err);

/**
 * Stream a tenant's finished invocations that started in [from, to) (RFC 3339 times) to fn,
 * row by row, without holding them in memory.
 * @return 0, or -1 with err set (the database failed, or fn did)
 */
int meter_invocations_each(PGconn *conn, const char *tenant, const char *from,
                          const char *to, meter_invocation_fn fn, void *ctx,
                          struct fm_err *err);

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

/* A stored invoice as it was rendered when last built. */
struct meter_invoice {
    int64_t id;
    char tenant[65];
    char period[8];
    char status[8];   /* "draft" or "final" */
    char *json;       /* the document with invoice_id and status added; caller frees */
    char *text;       /* the table a person reads; caller frees */
    char *csv;        /* caller frees */
};

/** Free what a meter_invoice holds (not the struct). */
void meter_invoice_clear(struct meter_invoice *inv);

/**
 * Build, or rebuild while it is a draft, the invoice of a tenant's period and store it:
 * each charge line, and adjustment lines for earlier finalized periods whose usage changed
 * after they were frozen (usage that arrived late, priced as the difference between a fresh
 * pricing of that period and what its invoice charged, minus what later final invoices
 * already carried).
 *
 * @param plan_id   NULL for the tenant's plan
 * @param finalize  freeze it in the same transaction
 * @param out       on OK, the stored invoice; on FINAL, the frozen one (caller clears)
 * @param created  optional: true when this call created the invoice (not a rebuild)
 * @return OK, FINAL, NO_TENANT, NO_PLAN, BAD_INPUT, FAILED (err set except for OK)
 */
enum meter_invoice_status meter_invoice_build(PGconn *conn, const struct bill_catalog *cat,
                                              const char *tenant, const char *period,
                                              const char *plan_id, bool finalize,
                                              struct meter_invoice *out, bool *created,
                                              struct fm_err *err);

/**
 * Freeze a draft invoice, rebuilt first: usage that arrived since it was built, and the
 * adjustments other invoices froze meanwhile, are taken into account.
 * @return OK (out holds it, now final), NOT_FOUND, FINAL (it was final already; out holds
 *         it), FAILED
 */
enum meter_invoice_status meter_invoice_finalize(PGconn *conn, const struct bill_catalog *cat,
                                                 int64_t id, struct meter_invoice *out,
                                                 struct fm_err *err);

/**
 * Close tenant's final month period to corrections: usage that arrives for it later is no
 * longer carried by the next invoices (it stays in the rollups). For a correction no
 * invoice can carry, once it is settled outside. Closing a closed month changes nothing.
 * @param id  the month's invoice
 * @return OK, NOT_FOUND (no invoice for the month), BAD_INPUT (a draft: finalize it first),
 *         FAILED
 */
enum meter_invoice_status meter_invoice_close(PGconn *conn, const char *tenant,
                                              const char *period, int64_t *id,
                                              struct fm_err *err);

/**
 * Read a stored invoice by id, or by tenant and period when id < 0.
 * @return OK, NOT_FOUND, FAILED
 */
enum meter_invoice_status meter_invoice_get(PGconn *conn, int64_t id, const char *tenant,
                                            const char *period, struct meter_invoice *out,
                                            struct fm_err *err);

#endif
