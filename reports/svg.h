#ifndef FM_REPORTS_SVG_H
#define FM_REPORTS_SVG_H

/*
 * Inline SVG charts for the HTML reports, drawn with integer arithmetic: values are int64
 * (minor units of money, counts) mapped onto a fixed pixel grid. Labels are preformatted
 * by the caller, so no value is ever printed through a binary fraction.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define SVG_MAX_POINTS 256

struct svg_series {
    const char *name;  /* legend text; escaped here */
    const char *color; /* CSS colour, trusted ("#1f77b4") */
    size_t n;          /* points, at most SVG_MAX_POINTS */
    const int64_t *x;  /* increasing */
    const int64_t *y;
    int dashed;
};

/* A formatter for axis labels: writes v into buf (n bytes). */
typedef void (*svg_label_fn)(int64_t v, char *buf, size_t n, const void *ctx);

struct svg_axes {
    const char *title;
    const char *x_title, *y_title;
    int64_t x_max, y_max; /* axes start at 0; larger values are clipped at the edge; y_max
                             is drawn rounded up to a multiple of the grid's 4 steps */
    svg_label_fn x_label, y_label;
    const void *ctx;
};

/**
 * Lines over shared axes, with an optional marked point (mark_label NULL for none).
 * @return 0, or -1 when out reached its cap
 */
int svg_lines(struct fm_buf *out, const struct svg_axes *ax, const struct svg_series *s,
              size_t nseries, int64_t mark_x, int64_t mark_y, const char *mark_label);

/**
 * Horizontal bars, one per label, with a preformatted value text at the bar's end.
 * @return 0, or -1 when out reached its cap
 */
int svg_hbars(struct fm_buf *out, const char *title, const char *const *labels,
              const int64_t *values, const char *const *texts, size_t n, const char *color);

/**
 * Columns over time: nseries series of n values each, drawn side by side in each slot,
 * with slot_label(i) under every step-th slot.
 * @return 0, or -1 when out reached its cap
 */
int svg_columns(struct fm_buf *out, const struct svg_axes *ax, const struct svg_series *s,
                size_t nseries, size_t n, size_t step);

/** Append s with &, <, >, " and ' escaped for HTML text and attributes. */
int html_escape(struct fm_buf *out, const char *s);

#endif
