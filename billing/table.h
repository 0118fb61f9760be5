#ifndef FM_BILLING_TABLE_H
#define FM_BILLING_TABLE_H

/*
 * Aligned plain-text tables for people: the invoice, the plan and server listings. Cells
 * are copied in; widths are counted in characters (UTF-8), so names with accents align.
 */

#include <stddef.h>

#include "common/buf.h"

struct bill_table;

/**
 * A table of ncols columns; align holds one letter per column, 'l' or 'r'.
 * @return the table (caller frees with bill_table_free), or NULL when out of memory
 */
struct bill_table *bill_table_new(size_t ncols, const char *align);

/** Free a table. NULL is a no-op. */
void bill_table_free(struct bill_table *t);

/** Add a row of ncols cells (NULL cells are empty). Returns 0, or -1 when out of memory. */
int bill_table_row(struct bill_table *t, const char *const *cells);

/** Add a rule: a line of dashes as wide as the table. Returns 0 or -1. */
int bill_table_rule(struct bill_table *t);

/** Append the table to out, columns two spaces apart. Returns 0, or -1 (out's cap). */
int bill_table_render(const struct bill_table *t, struct fm_buf *out);

#endif
