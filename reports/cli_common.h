#ifndef FM_REPORTS_CLI_COMMON_H
#define FM_REPORTS_CLI_COMMON_H

/* What faasbill's compare, report and simulate commands share. */

#include <stdbool.h>
#include <stddef.h>

#include "billing/catalog.h"
#include "billing/compare.h"
#include "common/buf.h"
#include "reports/render.h"

#define CLI_MAX_SERVERS BILL_CATALOG_SERVERS_MAX
#define CLI_OUTPUT_MAX (64u << 20)

/** A CLI_CHECKED check: a report format's name into enum report_format. */
bool cli_check_report_format(const char *value, void *to);

#define CLI_REPORT_FORMATS "text, json, csv or html"

/** A CLI_CHECKED check of -o: a path that can be a file (not empty, not a folder), or "-";
 *  stored as the const char * it is. */
bool cli_check_output(const char *value, void *to);

#define CLI_OUTPUT "a file to write, or - for standard output"

/**
 * The servers to compare with: the catalog's --server ids, or every catalog server when
 * none was given. Prints the error for an unknown id.
 * @return 0, or 2 (bad usage)
 */
int cli_pick_servers(const char *cmd, const struct bill_catalog *cat, const char *const *ids,
                     size_t nids, const struct bill_server **out, size_t *n);

/**
 * Servers named with --server must be priced in the plan's currency (who names one asks for
 * it to be compared); prints the error for the first that is not. Servers taken from the
 * catalog unnamed are left out of the comparison instead (bill_compare).
 * @return 0, or 2 (bad usage)
 */
int cli_check_server_currency(const char *cmd, const struct bill_server *const *servers,
                              size_t n, const struct bill_plan *plan, const char *whose);

/** Every catalog plan into out (at most max). Returns the count. */
size_t cli_catalog_plans(const struct bill_catalog *cat, const struct bill_plan **out,
                         size_t max);

/** Render cmp in fmt and write it to path ("-" or NULL: stdout). Returns 0 or 1. */
int cli_write_comparison(const char *cmd, const struct bill_comparison *cmp,
                         enum report_format fmt, const char *path);

/** Write buf to path ("-" or NULL: stdout), printing the error. Returns 0 or 1. */
int cli_write_output(const char *cmd, const struct fm_buf *buf, const char *path);

#endif
