#ifndef FM_REPORTS_RENDER_H
#define FM_REPORTS_RENDER_H

/*
 * The server comparison for people and spreadsheets: an aligned text table, CSV, and a
 * self-contained HTML page (inline CSS and SVG charts; nothing is fetched, so it opens in
 * any browser without a network). JSON is billing's bill_compare_json, which meterd serves.
 */

#include <stddef.h>

#include "billing/compare.h"
#include "common/buf.h"

enum report_format { REPORT_TEXT, REPORT_JSON, REPORT_CSV, REPORT_HTML };

/** The format named "text", "json", "csv" or "html". Returns 0, or -1 (out untouched). */
int report_format_from_name(const char *name, enum report_format *out);

/**
 * Append the comparison in fmt to out.
 *  - TEXT: usage summary, plans with bills and break-even volumes, servers with counts,
 *    fees and utilisation, functions by cost.
 *  - CSV: header kind,name,invocations,count,amount,breakeven_invocations,
 *    utilisation_percent,share_percent,note; a row per plan, server and function.
 *  - HTML: the same tables and the charts (cost against monthly volume with the break-even
 *    marked, cost per function, usage over time, cold starts and errors).
 * @return 0, or -1 when out reached its cap or memory ran out
 */
int report_compare_render(const struct bill_comparison *cmp, enum report_format fmt,
                          struct fm_buf *out);

/* A tenant the every-tenant report could not price, and why. */
struct report_unpriced {
    const char *tenant;
    const char *plan;   /* its plan's id */
    const char *reason; /* "its plan is not in the catalog" */
};

/**
 * Append the multi-tenant HTML page for period: totals, every tenant's bill against its best
 * server, the top functions across tenants. cmps holds one comparison per tenant priced;
 * unpriced lists those that could not be (shown as not priced, with the reason).
 * @return 0, or -1 when out reached its cap or memory ran out
 */
int report_tenants_html(const char *period, const struct bill_comparison *const *cmps,
                        size_t n, const struct report_unpriced *unpriced, size_t nunpriced,
                        struct fm_buf *out);

#endif
