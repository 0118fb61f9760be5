#ifndef FM_BILLING_CATALOG_H
#define FM_BILLING_CATALOG_H

/*
 * The plan and server catalogs on disk: DIR/plans/<anything>.json, one plan each, and
 * DIR/servers/<anything>.json, one server or an array of them. This is the only part of
 * the billing library that reads files.
 */

#include <stddef.h>

#include "billing/plan.h"
#include "billing/server.h"
#include "billing/status.h"
#include "common/err.h"

#define BILL_FILE_MAX (1024 * 1024) /* a catalog file larger than this is refused */
/* The most servers a catalog holds: a comparison with none named sets them all side by
 * side, so a catalog with more is refused rather than some left out unsaid. */
#define BILL_CATALOG_SERVERS_MAX 64

struct bill_catalog;

/**
 * The catalog folder to use: dir when not NULL, else $FAASMETER_CATALOG, else
 * billing/catalog under the installation (fm_home_path).
 * @return 0, or -1 when buf is too small
 */
int bill_catalog_dir(const char *dir, char *buf, size_t n);

/**
 * Load and validate every plan and server of a catalog folder. Files are read in name
 * order; an id defined twice is an error.
 *
 * @param dir  the folder, or NULL for bill_catalog_dir's default
 * @param out  on BILL_OK, the catalog (caller frees with bill_catalog_free); untouched on error
 * @param err  e.g. "plans/x.json: charges[1].tiers[0].unit_price: not a decimal number"
 * @return BILL_OK, BILL_EIO, BILL_EINVAL, BILL_ENOMEM
 */
enum bill_status bill_catalog_load(const char *dir, struct bill_catalog **out,
                                   struct fm_err *err);

/** Free a catalog and every plan and server it holds. NULL is a no-op. */
void bill_catalog_free(struct bill_catalog *cat);

/** The plan with this id (borrowed from cat), or NULL. */
const struct bill_plan *bill_catalog_plan(const struct bill_catalog *cat, const char *id);
/** Number of plans; bill_catalog_plan_at(cat, i) lists them by id. */
size_t bill_catalog_plan_count(const struct bill_catalog *cat);
const struct bill_plan *bill_catalog_plan_at(const struct bill_catalog *cat, size_t i);

/** The server with this id (borrowed from cat), or NULL. */
const struct bill_server *bill_catalog_server(const struct bill_catalog *cat, const char *id);
/** Number of servers; bill_catalog_server_at lists them in file order. */
size_t bill_catalog_server_count(const struct bill_catalog *cat);
const struct bill_server *bill_catalog_server_at(const struct bill_catalog *cat, size_t i);

/**
 * Load one plan file (the --plan-file of the commands).
 * @param out  on BILL_OK, the plan (caller frees with bill_plan_free)
 * @return BILL_OK, BILL_EIO, BILL_EINVAL (err starts with path), BILL_ENOMEM
 */
enum bill_status bill_plan_load_file(const char *path, struct bill_plan **out,
                                     struct fm_err *err);

#endif
