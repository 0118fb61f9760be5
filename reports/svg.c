#include "reports/svg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The plot area inside each chart, in pixels. */
#define W 760
#define H 340
#define LEFT 80
#define TOP 40
#define PW (W - LEFT - 30)
#define PH (H - TOP - 100)

int html_escape(struct fm_buf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fm_buf_puts(out, "&amp;");
            break;
        case '<':
            fm_buf_puts(out, "&lt;");
            break;
        case '>':
            fm_buf_puts(out, "&gt;");
            break;
        case '"':
            fm_buf_puts(out, "&quot;");
            break;
        case '\'':
            fm_buf_puts(out, "&#39;");
            break;
        default:
            fm_buf_append(out, s, 1);
        }
    }
    return out->failed ? -1 : 0;
}

/* v in 0..max onto 0..px, clipped; integer arithmetic in 128 bits. */
static int scale(int64_t v, int64_t max, int px)
{
    if (max <= 0 || v <= 0)
        return 0;
    if (v >= max)
        return px;
    return (int)((__int128)v * px / max);
}

static void open_chart(struct fm_buf *out, const struct svg_axes *ax)
{
    fm_buf_printf(out,
                  "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                  "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<text x=\"%d\" y=\"22\" "
                  "class=\"title\">",
                  W, H, W, H, LEFT);
    html_escape(out, ax->title);
    fm_buf_printf(out, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                       "class=\"plot\"/>\n",
                  LEFT, TOP, PW, PH);
}

/* The y axis's top: max rounded up to a multiple of the grid's 4 steps, so that every grid
 * line falls on a whole value and is labelled with it (a top of 3 labelled its lines 0, 0,
 * 1, 2, 3). Near INT64_MAX, rounded down instead: the largest values then clip at the edge. */
static int64_t grid_max(int64_t max)
{
    if (max < 4)
        return 4;
    return max > INT64_MAX - 3 ? INT64_MAX - INT64_MAX % 4 : max + (4 - max % 4) % 4;
}

/* Grid lines and labels: 5 steps on the y axis, and on the x axis when it has a formatter. */
static void axes(struct fm_buf *out, const struct svg_axes *ax)
{
    char label[64];
    for (int i = 0; i <= 4; i++) {
        int y = TOP + PH - PH * i / 4;
        fm_buf_printf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>\n",
                      LEFT, y, LEFT + PW, y);
        ax->y_label((int64_t)((__int128)ax->y_max * i / 4), label, sizeof label, ax->ctx);
        fm_buf_printf(out, "<text x=\"%d\" y=\"%d\" class=\"axis\" text-anchor=\"end\">",
                      LEFT - 6, y + 4);
        html_escape(out, label);
        fm_buf_puts(out, "</text>\n");
        if (ax->x_label == NULL)
            continue;
        int x = LEFT + PW * i / 4;
        ax->x_label((int64_t)((__int128)ax->x_max * i / 4), label, sizeof label, ax->ctx);
        fm_buf_printf(out, "<text x=\"%d\" y=\"%d\" class=\"axis\" text-anchor=\"middle\">",
                      x, TOP + PH + 16);
        html_escape(out, label);
        fm_buf_puts(out, "</text>\n");
    }
    fm_buf_printf(out, "<text x=\"%d\" y=\"%d\" class=\"axis\" text-anchor=\"middle\">",
                  LEFT + PW / 2, TOP + PH + 34);
    html_escape(out, ax->x_title);
    fm_buf_printf(out, "</text>\n<text x=\"14\" y=\"%d\" class=\"axis\" "
                       "transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">",
                  TOP + PH / 2, TOP + PH / 2);
    html_escape(out, ax->y_title);
    fm_buf_puts(out, "</text>\n");
}

static void legend(struct fm_buf *out, const struct svg_series *s, size_t nseries)
{
    int x = LEFT, y = TOP + PH + 56;
    for (size_t k = 0; k < nseries; k++) {
        /* Each entry as wide as its name (about 7 px a character at this size). */
        int step = 30 + 7 * (int)strlen(s[k].name);
        if (x > LEFT && x + step > W) {
            x = LEFT;
            y += 14;
        }
        fm_buf_printf(out, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"4\" fill=\"%s\"/>"
                           "<text x=\"%d\" y=\"%d\" class=\"legend\">",
                      x, y - 6, s[k].color, x + 16, y);
        html_escape(out, s[k].name);
        fm_buf_puts(out, "</text>\n");
        x += step;
    }
}

int svg_lines(struct fm_buf *out, const struct svg_axes *ax, const struct svg_series *s,
              size_t nseries, int64_t mark_x, int64_t mark_y, const char *mark_label)
{
    int64_t y_max = grid_max(ax->y_max);
    struct svg_axes grid = *ax;
    grid.y_max = y_max;
    open_chart(out, ax);
    axes(out, &grid);
    for (size_t k = 0; k < nseries; k++) {
        fm_buf_printf(out, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"",
                      s[k].color, s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        for (size_t i = 0; i < s[k].n && i < SVG_MAX_POINTS; i++)
            fm_buf_printf(out, "%s%d %d", i ? " L" : "M", LEFT + scale(s[k].x[i], ax->x_max, PW),
                          TOP + PH - scale(s[k].y[i], y_max, PH));
        fm_buf_puts(out, "\"/>\n");
    }
    if (mark_label) {
        int x = LEFT + scale(mark_x, ax->x_max, PW), y = TOP + PH - scale(mark_y, y_max, PH);
        fm_buf_printf(out,
                      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"mark\"/>"
                      "<circle cx=\"%d\" cy=\"%d\" r=\"6\" class=\"mark\"/>"
                      "<text x=\"%d\" y=\"%d\" class=\"marklabel\">",
                      x, TOP, x, TOP + PH, x, y, x + 8 > LEFT + PW - 200 ? x - 200 : x + 8,
                      y - 10 < TOP + 12 ? TOP + 12 : y - 10);
        html_escape(out, mark_label);
        fm_buf_puts(out, "</text>\n");
    }
    legend(out, s, nseries);
    fm_buf_puts(out, "</svg>\n");
    return out->failed ? -1 : 0;
}

int svg_hbars(struct fm_buf *out, const char *title, const char *const *labels,
              const int64_t *values, const char *const *texts, size_t n, const char *color)
{
    int row = 22, left = 220, width = W - left - 140;
    int64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (values[i] > max)
            max = values[i];
    int h = TOP + row * (int)(n ? n : 1) + 10;
    fm_buf_printf(out,
                  "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                  "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<text x=\"10\" y=\"22\" "
                  "class=\"title\">",
                  W, h, W, h);
    html_escape(out, title);
    fm_buf_puts(out, "</text>\n");
    for (size_t i = 0; i < n; i++) {
        int y = TOP + row * (int)i;
        int bw = scale(values[i], max, width);
        fm_buf_printf(out, "<text x=\"%d\" y=\"%d\" class=\"axis\" text-anchor=\"end\">",
                      left - 8, y + 14);
        html_escape(out, labels[i]);
        fm_buf_printf(out, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                           "fill=\"%s\"/><text x=\"%d\" y=\"%d\" class=\"axis\">",
                      left, y + 2, bw > 1 ? bw : 1, row - 6, color, left + bw + 6, y + 14);
        html_escape(out, texts[i]);
        fm_buf_puts(out, "</text>\n");
    }
    fm_buf_puts(out, "</svg>\n");
    return out->failed ? -1 : 0;
}

int svg_columns(struct fm_buf *out, const struct svg_axes *ax, const struct svg_series *s,
                size_t nseries, size_t n, size_t step)
{
    /* x_label names slots here, labelled under their columns below: the grid's quarter
     * marks would give slot 0's name to every one of them. */
    struct svg_axes grid = *ax;
    grid.x_label = NULL;
    grid.y_max = grid_max(ax->y_max);
    open_chart(out, ax);
    axes(out, &grid);
    char label[64];
    for (size_t i = 0; i < n; i++) {
        /* Slot edges from integer division, so the columns tile the plot exactly. */
        int x0 = LEFT + (int)((size_t)PW * i / n), x1 = LEFT + (int)((size_t)PW * (i + 1) / n);
        int w = (x1 - x0) / (int)(nseries ? nseries : 1);
        for (size_t k = 0; k < nseries; k++) {
            int hgt = scale(s[k].y[i], grid.y_max, PH);
            if (hgt == 0)
                continue;
            fm_buf_printf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n",
                          x0 + w * (int)k, TOP + PH - hgt, w > 1 ? w : 1, hgt, s[k].color);
        }
        if (ax->x_label && step && i % step == 0) {
            ax->x_label((int64_t)i, label, sizeof label, ax->ctx);
            fm_buf_printf(out, "<text x=\"%d\" y=\"%d\" class=\"axis\">", x0, TOP + PH + 16);
            html_escape(out, label);
            fm_buf_puts(out, "</text>\n");
        }
    }
    legend(out, s, nseries);
    fm_buf_puts(out, "</svg>\n");
    return out->failed ? -1 : 0;
}
