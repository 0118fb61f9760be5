#ifndef FM_TESTS_BILLING_UTIL_H
#define FM_TESTS_BILLING_UTIL_H

/* Helpers shared by the billing suites (money, plan, price). */

#include <stdio.h>

#include "billing/catalog.h"

/** Open tests/data/<name> of the source tree; fails the test when it cannot. */
FILE *tb_data(const char *name);

/**
 * Split line in place into at most max whitespace-separated words, ignoring everything
 * from a '#'. Returns the number of words.
 */
int tb_split(char *line, char **words, int max);

/** The shipped catalog (caller frees with bill_catalog_free); fails the test on error. */
struct bill_catalog *tb_catalog(void);

/** A catalog plan by id; fails the test when it is missing. */
const struct bill_plan *tb_plan(const struct bill_catalog *cat, const char *id);

/** Parse a plan that must be valid (caller frees with bill_plan_free). */
struct bill_plan *tb_plan_json(const char *json);

#endif
