#include "billing/table.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 16

struct table_row {
    bool rule;
    char *cells[MAX_COLS];
};

struct bill_table {
    size_t ncols;
    char align[MAX_COLS];
    size_t nrows, cap;
    struct table_row *rows;
};

struct bill_table *bill_table_new(size_t ncols, const char *align)
{
    if (ncols == 0 || ncols > MAX_COLS || strlen(align) != ncols)
        return NULL;
    struct bill_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    memcpy(t->align, align, ncols);
    return t;
}

void bill_table_free(struct bill_table *t)
{
    if (t == NULL)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++)
            free(t->rows[r].cells[c]);
    free(t->rows);
    free(t);
}

static struct table_row *new_row(struct bill_table *t)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct table_row *rows = realloc(t->rows, cap * sizeof *rows);
        if (rows == NULL)
            return NULL;
        t->rows = rows;
        t->cap = cap;
    }
    struct table_row *row = &t->rows[t->nrows++];
    memset(row, 0, sizeof *row);
    return row;
}

int bill_table_row(struct bill_table *t, const char *const *cells)
{
    struct table_row *row = new_row(t);
    if (row == NULL)
        return -1;
    for (size_t c = 0; c < t->ncols; c++)
        /* A failed copy leaves a NULL cell that bill_table_free skips. */
        if ((row->cells[c] = strdup(cells[c] ? cells[c] : "")) == NULL)
            return -1;
    return 0;
}

int bill_table_rule(struct bill_table *t)
{
    struct table_row *row = new_row(t);
    if (row == NULL)
        return -1;
    row->rule = true;
    return 0;
}

/* A cell whose copy failed is shown empty rather than crashing the listing. */
static const char *cell(const struct table_row *row, size_t c)
{
    return row->cells[c] ? row->cells[c] : "";
}

/* Characters, not bytes: continuation bytes of UTF-8 do not take a column. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static int pad(struct fm_buf *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fm_buf_append(out, " ", 1) != 0)
            return -1;
    return 0;
}

int bill_table_render(const struct bill_table *t, struct fm_buf *out)
{
    size_t widths[MAX_COLS] = {0}, total = 0;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols && !t->rows[r].rule; c++) {
            size_t w = width(cell(&t->rows[r], c));
            if (w > widths[c])
                widths[c] = w;
        }
    for (size_t c = 0; c < t->ncols; c++)
        total += widths[c] + (c ? 2 : 0);
    for (size_t r = 0; r < t->nrows; r++) {
        const struct table_row *row = &t->rows[r];
        if (row->rule) {
            for (size_t i = 0; i < total; i++)
                fm_buf_append(out, "-", 1);
            fm_buf_append(out, "\n", 1);
            continue;
        }
        /* Trailing blanks are left out: find the last non-empty cell. */
        size_t last = 0;
        for (size_t c = 0; c < t->ncols; c++)
            if (cell(row, c)[0] != '\0')
                last = c;
        for (size_t c = 0; c <= last; c++) {
            size_t gap = widths[c] - width(cell(row, c));
            if (c > 0)
                pad(out, 2);
            if (t->align[c] == 'r')
                pad(out, gap);
            fm_buf_puts(out, cell(row, c));
            if (t->align[c] != 'r' && c < last)
                pad(out, gap);
        }
        fm_buf_append(out, "\n", 1);
    }
    return out->failed ? -1 : 0;
}
