#include "reports/render.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/table.h"
#include "common/timeutil.h"
#include "reports/svg.h"

#define CURVE_POINTS 48
#define TOP_FUNCTIONS 20 /* bars in the cost-per-function chart */

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22"};

int report_format_from_name(const char *name, enum report_format *out)
{
    static const char *const names[] = {[REPORT_TEXT] = "text", [REPORT_JSON] = "json",
                                        [REPORT_CSV] = "csv", [REPORT_HTML] = "html"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (enum report_format)i;
            return 0;
        }
    return -1;
}

static void ratio(int64_t num, int64_t den, int frac, char buf[BILL_NUM_BUFSZ])
{
    if (den <= 0 || bill_ratio_format(num, den, frac, buf, BILL_NUM_BUFSZ) != 0)
        snprintf(buf, BILL_NUM_BUFSZ, "0");
}

static void count(int64_t v, char buf[BILL_NUM_BUFSZ])
{
    snprintf(buf, BILL_NUM_BUFSZ, "%" PRId64, v);
}

static void breakeven_text(int64_t v, char buf[BILL_NUM_BUFSZ])
{
    if (v < 0)
        snprintf(buf, BILL_NUM_BUFSZ, "never");
    else
        count(v, buf);
}

static const char *assumptions =
    "Servers are sized for the busiest hour's sustained load, not for the momentary peak of "
    "overlapping executions: concurrency is the hour's execution time over the hour, memory "
    "the configured memory times execution time over the hour, CPU the CPU time over the "
    "hour, each rounded up and each the maximum over the period's hours (an execution counts "
    "in every hour it runs in, for its time there). Servers need enough memory, one vCPU "
    "per concurrent execution (functions assumed CPU-bound) and a vCPU for each core of "
    "CPU time. A server with less memory than the largest configured memory of one "
    "invocation cannot run it, however many there are: it is reported too small, not sized "
    "and never the best server. A server month is 730 hours. Utilisation is "
    "busy time over capacity (servers x vCPUs x period). The break-even volume prices "
    "identical mean invocations against the best server's fee, which stays fixed at the "
    "busiest-hour sizing.";

static void summary_text(const struct bill_comparison *cmp, struct fm_buf *out)
{
    char ms[BILL_NUM_BUFSZ], busy[BILL_NUM_BUFSZ], cores[BILL_NUM_BUFSZ];
    ratio(cmp->mean.duration_us, 1000, 3, ms);
    ratio(cmp->busy_us, 1000000, 3, busy);
    ratio(cmp->peak_cpu_millicores, 1000, 3, cores);
    fm_buf_printf(out, "Comparison: %s%s%s, plan %s, amounts in %s\n",
                  cmp->tenant[0] ? cmp->tenant : "workload", cmp->period[0] ? ", " : "",
                  cmp->period, bill_plan_id(cmp->plans[cmp->own].plan), cmp->currency);
    fm_buf_printf(out,
                  "Usage: %" PRId64 " invocations, %" PRId64 " errors, %" PRId64
                  " cold starts; mean %s ms at %" PRId32 " MB; busy %s s\n"
                  "Busiest hour (mean): %" PRId64 " concurrent executions, %" PRId64
                  " MB, %s CPU cores\n\n",
                  cmp->invocations, cmp->errors, cmp->cold_starts, ms, cmp->mean.memory_mb,
                  busy, cmp->peak_concurrency, cmp->peak_memory_mb, cores);
}

static int plans_table(const struct bill_comparison *cmp, struct fm_buf *out)
{
    struct bill_table *t = bill_table_new(3, "lrr");
    int rc = -1;
    char amount[BILL_NUM_BUFSZ], be[BILL_NUM_BUFSZ], name[160];
    const char *head[] = {"Plan", "Bill", "Break-even invocations/month"};
    if (t == NULL || bill_table_row(t, head) != 0 || bill_table_rule(t) != 0)
        goto done;
    for (size_t i = 0; i < cmp->nplans; i++) {
        const struct bill_plan_cost *p = &cmp->plans[i];
        snprintf(name, sizeof name, "%s%s", bill_plan_id(p->plan), p->own ? " (own)" : "");
        bill_compare_money(cmp, p->invoice->total, amount);
        breakeven_text(p->breakeven, be);
        const char *row[] = {name, amount, bill_compare_has_breakeven(cmp) ? be : "-"};
        if (bill_table_row(t, row) != 0)
            goto done;
    }
    rc = bill_table_render(t, out);
done:
    bill_table_free(t);
    return rc;
}

/* A server's count, fee and utilisation as shown, "-" for each when it does not fit, and
 * why in note. */
static void server_cells(const struct bill_comparison *cmp, const struct bill_server_fit *f,
                         char n[BILL_NUM_BUFSZ], char fee[BILL_NUM_BUFSZ],
                         const char **utilisation, char note[BILL_FIT_BUFSZ])
{
    bill_compare_fit_text(cmp, f, note);
    if (!f->fits) {
        snprintf(n, BILL_NUM_BUFSZ, "-");
        snprintf(fee, BILL_NUM_BUFSZ, "-");
        *utilisation = "-";
        return;
    }
    count(f->count, n);
    bill_compare_money(cmp, f->fee, fee);
    *utilisation = f->utilisation;
}

static int servers_table(const struct bill_comparison *cmp, struct fm_buf *out)
{
    struct bill_table *t = bill_table_new(7, "lrrrrrl");
    int rc = -1;
    char n[BILL_NUM_BUFSZ], cpu[BILL_NUM_BUFSZ], mem[BILL_NUM_BUFSZ], fee[BILL_NUM_BUFSZ];
    char note[BILL_FIT_BUFSZ];
    const char *util;
    const char *head[] = {"Server", "Count", "vCPUs", "Memory MB", "Monthly fee",
                          "Utilisation %", "Note"};
    if (t == NULL || bill_table_row(t, head) != 0 || bill_table_rule(t) != 0)
        goto done;
    for (size_t i = 0; i < cmp->nservers; i++) {
        const struct bill_server_fit *f = &cmp->servers[i];
        server_cells(cmp, f, n, fee, &util, note);
        count(f->server->vcpus, cpu);
        count(f->server->memory_mb, mem);
        const char *row[] = {f->server->id, n, cpu, mem, fee, util, note};
        if (bill_table_row(t, row) != 0)
            goto done;
    }
    rc = bill_table_render(t, out);
done:
    bill_table_free(t);
    return rc;
}

static int functions_table(const struct bill_comparison *cmp, struct fm_buf *out)
{
    struct bill_table *t = bill_table_new(7, "lrrrrrl");
    int rc = -1;
    char n[BILL_NUM_BUFSZ], ms[BILL_NUM_BUFSZ], mb[BILL_NUM_BUFSZ], cost[BILL_NUM_BUFSZ];
    char note[200];
    const char *head[] = {"Function", "Invocations", "Mean ms", "Mean MB", "Cost", "Share %",
                          "Note"};
    if (t == NULL || bill_table_row(t, head) != 0 || bill_table_rule(t) != 0)
        goto done;
    for (size_t i = 0; i < cmp->nfunctions; i++) {
        const struct bill_fn_cost *c = &cmp->functions[i];
        const struct bill_fn_stats *f = c->stats;
        count(f->invocations, n);
        ratio(f->duration_us, f->invocations * 1000, 3, ms);
        ratio(f->memory_mb, f->invocations, 1, mb);
        bill_compare_money(cmp, c->cost, cost);
        char fee[BILL_NUM_BUFSZ] = "";
        if (c->cheaper_on_server)
            bill_compare_money(cmp, c->server_fee, fee);
        snprintf(note, sizeof note, "%s%s%s%s%s", c->driver ? "drives the cost" : "",
                 c->driver && c->cheaper_on_server ? "; " : "",
                 c->cheaper_on_server ? "cheaper on " : "",
                 c->cheaper_on_server ? c->server->id : "", c->cheaper_on_server ? " at " : "");
        if (c->cheaper_on_server)
            snprintf(note + strlen(note), sizeof note - strlen(note), "%s", fee);
        const char *row[] = {f->function, n, ms, mb, cost, c->share, note};
        if (bill_table_row(t, row) != 0)
            goto done;
    }
    rc = bill_table_render(t, out);
done:
    bill_table_free(t);
    return rc;
}

static void verdict_text(const struct bill_comparison *cmp, struct fm_buf *out)
{
    char bill[BILL_NUM_BUFSZ], fee[BILL_NUM_BUFSZ];
    bill_compare_money(cmp, cmp->plans[cmp->own].invoice->total, bill);
    if (cmp->best < 0 && cmp->nservers > 0) {
        bill_compare_no_fit_text(cmp, out);
        return;
    }
    if (cmp->best < 0) {
        fm_buf_printf(out, "No servers to compare with; the bill is %s %s.\n", bill,
                      cmp->currency);
        return;
    }
    const struct bill_server_fit *b = &cmp->servers[cmp->best];
    bill_compare_money(cmp, b->fee, fee);
    fm_buf_printf(out,
                  "Best server: %" PRId64 " x %s at %s %s a month (%s%% busy). Pay-per-use: "
                  "%s %s. Cheaper on %s.\n",
                  b->count, b->server->id, fee, cmp->currency, b->utilisation, bill,
                  cmp->currency, bill_compare_verdict(cmp));
}

static int render_text(const struct bill_comparison *cmp, struct fm_buf *out)
{
    summary_text(cmp, out);
    if (plans_table(cmp, out) != 0)
        return -1;
    fm_buf_puts(out, "\n");
    if (servers_table(cmp, out) != 0)
        return -1;
    fm_buf_puts(out, "\n");
    verdict_text(cmp, out);
    if (bill_compare_left_out_text(cmp, out) != 0)
        return -1;
    fm_buf_puts(out, "\n");
    if (functions_table(cmp, out) != 0)
        return -1;
    fm_buf_printf(out, "\n%s\n", assumptions);
    return out->failed ? -1 : 0;
}

static int render_csv(const struct bill_comparison *cmp, struct fm_buf *out)
{
    char a[BILL_NUM_BUFSZ], b[BILL_NUM_BUFSZ];
    fm_buf_puts(out, "kind,name,invocations,count,amount,breakeven_invocations,"
                     "utilisation_percent,share_percent,note\r\n");
    /* Ids and function names cannot hold commas or quotes, so no field needs quoting. */
    for (size_t i = 0; i < cmp->nplans; i++) {
        const struct bill_plan_cost *p = &cmp->plans[i];
        bill_compare_money(cmp, p->invoice->total, a);
        if (p->breakeven >= 0)
            count(p->breakeven, b);
        fm_buf_printf(out, "plan,%s,%" PRId64 ",,%s,%s,,,%s\r\n", bill_plan_id(p->plan),
                      cmp->invocations, a, p->breakeven >= 0 ? b : "", p->own ? "own" : "");
    }
    for (size_t i = 0; i < cmp->nservers; i++) {
        const struct bill_server_fit *f = &cmp->servers[i];
        char why[BILL_FIT_BUFSZ];
        bill_compare_fit_text(cmp, f, why);
        bill_compare_money(cmp, f->fee, a);
        count(f->count, b);
        /* One that does not fit has no count, fee or utilisation: the note says why. */
        fm_buf_printf(out, "server,%s,,%s,%s,,%s,,%s\r\n", f->server->id, f->fits ? b : "",
                      f->fits ? a : "", f->fits ? f->utilisation : "",
                      (long)i == cmp->best ? "best" : why);
    }
    for (size_t i = 0; i < cmp->nleft_out; i++) {
        const struct bill_left_out *l = &cmp->left_out[i];
        fm_buf_printf(out, "%s,%s,,,,,,,left out: priced in %s\r\n",
                      l->server ? "server" : "plan", l->id, l->currency);
    }
    for (size_t i = 0; i < cmp->nfunctions; i++) {
        const struct bill_fn_cost *c = &cmp->functions[i];
        bill_compare_money(cmp, c->cost, a);
        fm_buf_printf(out, "function,%s,%" PRId64 ",,%s,,,%s,%s%s%s\r\n", c->stats->function,
                      c->stats->invocations, a, c->share, c->driver ? "driver" : "",
                      c->driver && c->cheaper_on_server ? ";" : "",
                      c->cheaper_on_server ? "cheaper_on_server" : "");
    }
    return out->failed ? -1 : 0;
}

/* ---- HTML ---------------------------------------------------------------------------- */

static void money_label(int64_t v, char *buf, size_t n, const void *ctx)
{
    char m[BILL_NUM_BUFSZ];
    bill_compare_money(ctx, v, m);
    snprintf(buf, n, "%s", m);
}

static void volume_label(int64_t v, char *buf, size_t n, const void *ctx)
{
    (void)ctx;
    /* Whole thousands or millions keep the axis short, written so only when exact. */
    if (v >= 10000000 && v % 1000000 == 0)
        snprintf(buf, n, "%" PRId64 "M", v / 1000000);
    else if (v >= 10000 && v % 1000 == 0)
        snprintf(buf, n, "%" PRId64 "k", v / 1000);
    else
        snprintf(buf, n, "%" PRId64, v);
}

static void count_label(int64_t v, char *buf, size_t n, const void *ctx)
{
    volume_label(v, buf, n, ctx);
}

static void bucket_label(int64_t i, char *buf, size_t n, const void *ctx)
{
    const struct bill_comparison *cmp = ctx;
    char t[FM_TIME_BUFSZ];
    fm_time_format(bill_compare_from_us(cmp) + i * bill_compare_bucket_us(cmp), t, sizeof t);
    /* "MM-DD" for days, "MM-DDTHH" for hours. */
    snprintf(buf, n, "%.*s", bill_compare_bucket_us(cmp) == BILL_DAY_US ? 5 : 8, t + 5);
}

/* The volume axis's end: v rounded up to 4 of its labels' unit (one, a thousand, a
 * million), so that each quarter is a whole number of them and is labelled short and exact. */
static int64_t volume_axis(int64_t v)
{
    int64_t step = 4 * (v >= 40000000 ? 1000000 : v >= 40000 ? 1000 : 1);
    return v > INT64_MAX - step ? v : (v + step - 1) / step * step;
}

static int64_t twice(int64_t v)
{
    return v > INT64_MAX / 2 ? INT64_MAX : v * 2;
}

static int html_cost_curves(const struct bill_comparison *cmp, struct fm_buf *out)
{
    /* The first plans, as many as there are colours, and the tenant's own among them: it
     * sets the chart's height and its break-even is the one marked. */
    size_t np = cmp->nplans < 8 ? cmp->nplans : 8, plan[8];
    for (size_t k = 0; k < np; k++)
        plan[k] = k;
    if (cmp->own >= np)
        plan[np - 1] = cmp->own;
    int64_t xs[CURVE_POINTS], ys[8][CURVE_POINTS], fee_y[2], fee_x[2];
    struct svg_series s[9];
    int64_t fee = cmp->best >= 0 ? cmp->servers[cmp->best].fee : 0;
    int64_t own_be = cmp->plans[cmp->own].breakeven;
    /* Twice the volume and the fee, saturated: a fee from a catalog may come near 2^63. */
    int64_t xmax = twice(cmp->invocations);
    if (own_be > 0 && twice(own_be) > xmax)
        xmax = twice(own_be);
    xmax = volume_axis(xmax < 1000 ? 1000 : xmax);
    int64_t ymax = twice(fee);
    for (int i = 0; i < CURVE_POINTS; i++)
        xs[i] = (int64_t)((__int128)xmax * i / (CURVE_POINTS - 1));
    for (size_t k = 0; k < np; k++) {
        for (int i = 0; i < CURVE_POINTS; i++) {
            if (bill_compare_cost_at(cmp, plan[k], xs[i], &ys[k][i], NULL) != BILL_OK)
                ys[k][i] = INT64_MAX;
            if (plan[k] == cmp->own && ys[k][i] > ymax && ys[k][i] != INT64_MAX)
                ymax = ys[k][i];
        }
        s[k] = (struct svg_series){bill_plan_id(cmp->plans[plan[k]].plan), palette[k],
                                   CURVE_POINTS, xs, ys[k], 0};
    }
    size_t ns = np;
    char fee_name[160];
    if (cmp->best >= 0) {
        fee_x[0] = 0;
        fee_x[1] = xmax;
        fee_y[0] = fee_y[1] = fee;
        snprintf(fee_name, sizeof fee_name, "%" PRId64 " x %s", cmp->servers[cmp->best].count,
                 cmp->servers[cmp->best].server->id);
        s[ns++] = (struct svg_series){fee_name, "#d62728", 2, fee_x, fee_y, 1};
    }
    if (ymax < 100)
        ymax = 100;
    char title[200], mark[200];
    snprintf(title, sizeof title, "Monthly cost (%s) against monthly volume", cmp->currency);
    snprintf(mark, sizeof mark, "break-even: %" PRId64 " invocations", own_be);
    struct svg_axes ax = {title, "invocations per month (at the mean invocation)",
                          cmp->currency, xmax, ymax, volume_label, money_label, cmp};
    return svg_lines(out, &ax, s, ns, own_be, fee, cmp->best >= 0 && own_be >= 0 ? mark : NULL);
}

static int html_function_bars(const struct bill_comparison *cmp, struct fm_buf *out)
{
    size_t n = cmp->nfunctions < TOP_FUNCTIONS ? cmp->nfunctions : TOP_FUNCTIONS;
    const char *labels[TOP_FUNCTIONS], *texts[TOP_FUNCTIONS];
    int64_t values[TOP_FUNCTIONS];
    char buf[TOP_FUNCTIONS][BILL_NUM_BUFSZ + 8];
    for (size_t i = 0; i < n; i++) {
        labels[i] = cmp->functions[i].stats->function;
        values[i] = cmp->functions[i].cost;
        bill_compare_money(cmp, values[i], buf[i]);
        texts[i] = buf[i];
    }
    char title[160];
    snprintf(title, sizeof title, "Cost per function under %s (%s)",
             bill_plan_id(cmp->plans[cmp->own].plan), cmp->currency);
    return svg_hbars(out, title, labels, values, texts, n, "#1f77b4");
}

static int html_timeline(const struct bill_comparison *cmp, struct fm_buf *out)
{
    size_t n = bill_compare_bucket_count(cmp);
    int64_t *inv = calloc(n ? n : 1, sizeof *inv), *errs = calloc(n ? n : 1, sizeof *errs),
            *cold = calloc(n ? n : 1, sizeof *cold);
    int rc = -1;
    if (inv == NULL || errs == NULL || cold == NULL)
        goto done;
    int64_t max_inv = 1, max_ev = 1;
    for (size_t i = 0; i < n; i++) {
        const struct bill_bucket *b = bill_compare_bucket(cmp, i);
        inv[i] = b->invocations;
        errs[i] = b->errors;
        cold[i] = b->cold_starts;
        max_inv = inv[i] > max_inv ? inv[i] : max_inv;
        max_ev = errs[i] > max_ev ? errs[i] : max_ev;
        max_ev = cold[i] > max_ev ? cold[i] : max_ev;
    }
    const char *unit = bill_compare_bucket_us(cmp) == BILL_DAY_US ? "day" : "hour";
    char t1[80], t2[80];
    snprintf(t1, sizeof t1, "Invocations per %s", unit);
    snprintf(t2, sizeof t2, "Cold starts and errors per %s", unit);
    size_t step = n > 8 ? n / 8 : 1;
    struct svg_series s1 = {"invocations", "#1f77b4", n, NULL, inv, 0};
    struct svg_axes a1 = {t1, "time (UTC)", "invocations", 0, max_inv, NULL, count_label, cmp};
    a1.x_label = bucket_label;
    struct svg_series s2[] = {{"cold starts", "#ff7f0e", n, NULL, cold, 0},
                              {"errors", "#d62728", n, NULL, errs, 0}};
    struct svg_axes a2 = a1;
    a2.title = t2;
    a2.y_title = "count";
    a2.y_max = max_ev;
    rc = svg_columns(out, &a1, &s1, 1, n, step) == 0 && svg_columns(out, &a2, s2, 2, n, step) == 0
             ? 0
             : -1;
done:
    free(inv);
    free(errs);
    free(cold);
    return rc;
}

static const char *css =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;"
    "max-width:1100px}h1{font-size:22px}h2{font-size:18px;margin-top:28px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{padding:4px 10px;border-bottom:1px "
    "solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}"
    "th{background:#f4f4f4}.own{font-weight:bold}.verdict{font-size:17px;padding:10px;"
    "background:#eef6ee;border-left:4px solid #2ca02c}.note{color:#555;font-size:13px}"
    "svg.chart{display:block;margin:12px 0;background:#fff}.plot{fill:#fafafa;stroke:#ccc}"
    ".grid{stroke:#e4e4e4}.axis{font-size:11px;fill:#444}.title{font-size:14px;"
    "font-weight:bold}.legend{font-size:11px}.mark{stroke:#d62728;fill:#d62728;"
    "stroke-dasharray:3 3}.marklabel{font-size:12px;fill:#d62728;font-weight:bold}";

/* The page head with its inline style sheet: nothing is fetched. */
static void html_head(struct fm_buf *out, const char *title)
{
    fm_buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<title>");
    html_escape(out, title);
    fm_buf_printf(out, "</title><style>%s</style></head><body>\n<h1>", css);
    html_escape(out, title);
    fm_buf_puts(out, "</h1>\n");
}

static void cell(struct fm_buf *out, const char *tag, const char *text)
{
    fm_buf_printf(out, "<%s>", tag);
    html_escape(out, text);
    fm_buf_printf(out, "</%s>", tag);
}

static void html_row(struct fm_buf *out, const char *tag, const char *const *cells, size_t n,
                     const char *cls)
{
    fm_buf_printf(out, "<tr%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    for (size_t i = 0; i < n; i++)
        cell(out, tag, cells[i] ? cells[i] : "");
    fm_buf_puts(out, "</tr>\n");
}

static void html_tables(const struct bill_comparison *cmp, struct fm_buf *out)
{
    char a[BILL_NUM_BUFSZ], b[BILL_NUM_BUFSZ], c[BILL_NUM_BUFSZ], d[BILL_NUM_BUFSZ];
    fm_buf_puts(out, "<h2>Pay-per-use under each plan</h2><table>\n");
    const char *ph[] = {"Plan", "Name", "Bill", "Break-even invocations/month"};
    html_row(out, "th", ph, 4, NULL);
    for (size_t i = 0; i < cmp->nplans; i++) {
        const struct bill_plan_cost *p = &cmp->plans[i];
        bill_compare_money(cmp, p->invoice->total, a);
        breakeven_text(p->breakeven, b);
        const char *row[] = {bill_plan_id(p->plan), bill_plan_name(p->plan), a,
                             bill_compare_has_breakeven(cmp) ? b : "-"};
        html_row(out, "td", row, 4, p->own ? "own" : NULL);
    }
    fm_buf_puts(out, "</table>\n<h2>Servers sized for the busiest hour</h2><table>\n");
    const char *sh[] = {"Server", "Name", "Count", "vCPUs", "Memory MB", "Monthly fee",
                        "Utilisation %", "Note"};
    html_row(out, "th", sh, 8, NULL);
    for (size_t i = 0; i < cmp->nservers; i++) {
        const struct bill_server_fit *f = &cmp->servers[i];
        char note[BILL_FIT_BUFSZ];
        const char *util;
        server_cells(cmp, f, a, d, &util, note);
        count(f->server->vcpus, b);
        count(f->server->memory_mb, c);
        const char *row[] = {f->server->id, f->server->name, a, b, c, d, util, note};
        html_row(out, "td", row, 8, (long)i == cmp->best ? "own" : NULL);
    }
    fm_buf_puts(out, "</table>\n");
}

static void html_functions(const struct bill_comparison *cmp, struct fm_buf *out)
{
    char n[BILL_NUM_BUFSZ], ms[BILL_NUM_BUFSZ], mb[BILL_NUM_BUFSZ], cost[BILL_NUM_BUFSZ];
    char fee[BILL_NUM_BUFSZ], on[200];
    fm_buf_puts(out, "<h2>Functions by cost</h2><table>\n");
    const char *h[] = {"Function", "Invocations", "Errors", "Mean ms", "Mean MB", "Cost",
                       "Share %", "Drives the cost", "Cheaper on a server"};
    html_row(out, "th", h, 9, NULL);
    for (size_t i = 0; i < cmp->nfunctions; i++) {
        const struct bill_fn_cost *c = &cmp->functions[i];
        const struct bill_fn_stats *f = c->stats;
        char errs[BILL_NUM_BUFSZ];
        count(f->invocations, n);
        count(f->errors, errs);
        ratio(f->duration_us, f->invocations * 1000, 3, ms);
        ratio(f->memory_mb, f->invocations, 1, mb);
        bill_compare_money(cmp, c->cost, cost);
        on[0] = '\0';
        if (c->cheaper_on_server) {
            bill_compare_money(cmp, c->server_fee, fee);
            snprintf(on, sizeof on, "yes: %s at %s", c->server->id, fee);
        }
        const char *row[] = {f->function, n, errs, ms, mb, cost, c->share,
                             c->driver ? "yes" : "", on};
        html_row(out, "td", row, 9, c->driver ? "own" : NULL);
    }
    fm_buf_puts(out, "</table>\n");
}

static int render_html(const struct bill_comparison *cmp, struct fm_buf *out)
{
    char title[200], ms[BILL_NUM_BUFSZ];
    snprintf(title, sizeof title, "Functions or servers: %s%s%s",
             cmp->tenant[0] ? cmp->tenant : "workload", cmp->period[0] ? ", " : "", cmp->period);
    html_head(out, title);
    ratio(cmp->mean.duration_us, 1000, 3, ms);
    fm_buf_printf(out,
                  "<p>%" PRId64 " invocations (%" PRId64 " errors, %" PRId64
                  " cold starts), mean %s ms at %" PRId32 " MB; busiest hour %" PRId64
                  " concurrent executions using %" PRId64 " MB on average. Plan: <b>",
                  cmp->invocations, cmp->errors, cmp->cold_starts, ms, cmp->mean.memory_mb,
                  cmp->peak_concurrency, cmp->peak_memory_mb);
    html_escape(out, bill_plan_id(cmp->plans[cmp->own].plan));
    fm_buf_puts(out, "</b>.</p>\n<p class=\"verdict\">");
    struct fm_buf v;
    fm_buf_init(&v, 16384);
    verdict_text(cmp, &v);
    html_escape(out, v.data ? v.data : "");
    fm_buf_puts(out, "</p>\n");
    fm_buf_reset(&v);
    if (bill_compare_left_out_text(cmp, &v) == 0 && v.len > 0) {
        fm_buf_puts(out, "<p class=\"note\">");
        html_escape(out, v.data ? v.data : "");
        fm_buf_puts(out, "</p>\n");
    }
    fm_buf_free(&v);
    html_tables(cmp, out);
    fm_buf_puts(out, "<h2>Cost against volume</h2>\n");
    if (html_cost_curves(cmp, out) != 0)
        return -1;
    fm_buf_puts(out, "<h2>Cost per function</h2>\n");
    if (html_function_bars(cmp, out) != 0)
        return -1;
    html_functions(cmp, out);
    fm_buf_puts(out, "<h2>Usage over the period</h2>\n");
    if (html_timeline(cmp, out) != 0)
        return -1;
    fm_buf_puts(out, "<p class=\"note\">");
    html_escape(out, assumptions);
    fm_buf_puts(out, "</p>\n</body></html>\n");
    return out->failed ? -1 : 0;
}

int report_compare_render(const struct bill_comparison *cmp, enum report_format fmt,
                          struct fm_buf *out)
{
    switch (fmt) {
    case REPORT_TEXT:
        return render_text(cmp, out);
    case REPORT_JSON:
        return bill_compare_json(cmp, out);
    case REPORT_CSV:
        return render_csv(cmp, out);
    case REPORT_HTML:
        return render_html(cmp, out);
    }
    return -1;
}

/* ---- Every tenant -------------------------------------------------------------------- */

struct top_fn {
    const struct bill_comparison *cmp;
    const struct bill_fn_cost *fn;
};

static int top_desc(const void *a, const void *b)
{
    const struct top_fn *x = a, *y = b;
    return x->fn->cost != y->fn->cost ? (x->fn->cost > y->fn->cost ? -1 : 1) : 0;
}

/* The distinct currencies of cmps, in the order they first appear (at most n). */
static size_t currencies_of(const struct bill_comparison *const *cmps, size_t n,
                            const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k && strcmp(out[j], cmps[i]->currency) != 0)
            j++;
        if (j == k)
            out[k++] = cmps[i]->currency;
    }
    return k;
}

/* "12.34 USD" for the tenants in currency: their bills (own) or best servers' fees. */
static void currency_total(const struct bill_comparison *const *cmps, size_t n,
                           const char *currency, bool fees, struct fm_buf *out)
{
    const struct bill_comparison *any = NULL;
    int64_t sum = 0;
    bool big = false;
    for (size_t i = 0; i < n; i++) {
        const struct bill_comparison *m = cmps[i];
        if (strcmp(m->currency, currency) != 0)
            continue;
        any = m;
        int64_t v = !fees ? m->plans[m->own].invoice->total
                    : m->best >= 0 ? m->servers[m->best].fee
                                   : 0;
        big = big || __builtin_add_overflow(sum, v, &sum);
    }
    char a[BILL_NUM_BUFSZ];
    if (any == NULL || big) {
        fm_buf_printf(out, "too large to add up (%s)", currency);
        return;
    }
    bill_compare_money(any, sum, a);
    fm_buf_printf(out, "%s %s", a, currency);
}

/* The largest bills as bars (bars), or the costliest functions, of the tenants in
 * currency; several says whether there are other currencies, named then in the titles. */
static int currency_section(const struct bill_comparison *const *cmps, size_t n,
                            const char *currency, bool several, bool bars, struct top_fn *order,
                            struct top_fn *top, struct bill_fn_cost *totals, struct fm_buf *out)
{
    const char *labels[TOP_FUNCTIONS], *texts[TOP_FUNCTIONS];
    int64_t values[TOP_FUNCTIONS];
    char buf[TOP_FUNCTIONS][BILL_NUM_BUFSZ], title[120], a[BILL_NUM_BUFSZ], b[BILL_NUM_BUFSZ];
    char in[16] = "";
    if (several)
        snprintf(in, sizeof in, ", %s", currency);
    size_t no = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cmps[i]->currency, currency) != 0)
            continue;
        totals[i].cost = cmps[i]->plans[cmps[i]->own].invoice->total;
        order[no++] = (struct top_fn){cmps[i], &totals[i]};
        for (size_t j = 0; j < cmps[i]->nfunctions; j++)
            top[k++] = (struct top_fn){cmps[i], &cmps[i]->functions[j]};
    }
    /* The tenants with the largest bills, as bars. */
    qsort(order, no, sizeof *order, top_desc);
    size_t nb = no < TOP_FUNCTIONS ? no : TOP_FUNCTIONS;
    for (size_t i = 0; i < nb; i++) {
        labels[i] = order[i].cmp->tenant;
        values[i] = order[i].fn->cost;
        bill_compare_money(order[i].cmp, values[i], buf[i]);
        texts[i] = buf[i];
    }
    snprintf(title, sizeof title, "Largest pay-per-use bills%s", in);
    if (bars)
        return svg_hbars(out, title, labels, values, texts, nb, "#1f77b4");
    qsort(top, k, sizeof *top, top_desc);
    fm_buf_printf(out, "<h2>Top functions%s</h2><table>\n", in);
    const char *fh[] = {"Tenant", "Function", "Invocations", "Cost", "Share of tenant %"};
    html_row(out, "th", fh, 5, NULL);
    for (size_t i = 0; i < k && i < TOP_FUNCTIONS; i++) {
        count(top[i].fn->stats->invocations, a);
        bill_compare_money(top[i].cmp, top[i].fn->cost, b);
        const char *row[] = {top[i].cmp->tenant, top[i].fn->stats->function, a, b,
                             top[i].fn->share};
        html_row(out, "td", row, 5, NULL);
    }
    fm_buf_puts(out, "</table>\n");
    return out->failed ? -1 : 0;
}

/* The plans and servers some tenant's comparison left out for their currency, each once. */
static void left_out_note(const struct bill_comparison *const *cmps, size_t n,
                          struct fm_buf *out)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < cmps[i]->nleft_out; j++) {
            const struct bill_left_out *l = &cmps[i]->left_out[j];
            bool seen = false;
            for (size_t p = 0; p <= i && !seen; p++)
                for (size_t q = 0; q < (p == i ? j : cmps[p]->nleft_out) && !seen; q++)
                    seen = cmps[p]->left_out[q].server == l->server &&
                           strcmp(cmps[p]->left_out[q].id, l->id) == 0;
            if (seen)
                continue;
            fm_buf_puts(out, any ? ", " : "<p class=\"note\">Left out of the comparisons of "
                                          "tenants whose plan is priced in another currency: ");
            fm_buf_printf(out, "%s ", l->server ? "server" : "plan");
            html_escape(out, l->id);
            fm_buf_printf(out, " (%s)", l->currency);
            any = true;
        }
    if (any)
        fm_buf_puts(out, ".</p>\n");
}

int report_tenants_html(const char *period, const struct bill_comparison *const *cmps,
                        size_t n, const struct report_unpriced *unpriced, size_t nunpriced,
                        struct fm_buf *out)
{
    char title[120], a[BILL_NUM_BUFSZ], b[BILL_NUM_BUFSZ], c[BILL_NUM_BUFSZ], d[BILL_NUM_BUFSZ];
    snprintf(title, sizeof title, "Every tenant, %s: functions or servers", period);
    html_head(out, title);
    int64_t inv = 0, to_servers = 0;
    size_t nfns = 0;
    for (size_t i = 0; i < n; i++) {
        inv += cmps[i]->invocations;
        to_servers += strcmp(bill_compare_verdict(cmps[i]), "servers") == 0;
        nfns += cmps[i]->nfunctions;
    }
    struct top_fn *order = calloc(n ? n : 1, sizeof *order);
    struct top_fn *top = calloc(nfns ? nfns : 1, sizeof *top);
    struct bill_fn_cost *totals = calloc(n ? n : 1, sizeof *totals);
    const char **currencies = calloc(n ? n : 1, sizeof *currencies);
    int rc = -1;
    if (order == NULL || top == NULL || totals == NULL || currencies == NULL)
        goto done;
    /* Amounts in different currencies are never added up nor set side by side. */
    size_t ncur = currencies_of(cmps, n, currencies);
    struct fm_buf sums;
    fm_buf_init(&sums, 65536);
    for (size_t i = 0; i < ncur; i++) {
        fm_buf_puts(&sums, i ? " and " : "");
        currency_total(cmps, n, currencies[i], false, &sums);
    }
    fm_buf_puts(&sums, ncur ? "; best servers total: " : "0; best servers total: 0");
    for (size_t i = 0; i < ncur; i++) {
        fm_buf_puts(&sums, i ? " and " : "");
        currency_total(cmps, n, currencies[i], true, &sums);
    }
    if (nunpriced > 0)
        fm_buf_printf(out,
                      "<p class=\"verdict\">%zu tenant%s not priced (below): left out of every "
                      "figure.</p>\n",
                      nunpriced, nunpriced == 1 ? "" : "s");
    fm_buf_printf(out,
                  "<p class=\"verdict\">%zu tenants, %" PRId64 " invocations. Pay-per-use "
                  "total: ",
                  n, inv);
    html_escape(out, sums.failed || sums.data == NULL ? "?" : sums.data);
    fm_buf_printf(out, ". %" PRId64 " tenants would pay less on servers.</p>\n", to_servers);
    fm_buf_free(&sums);
    for (size_t i = 0; i < ncur; i++)
        if (currency_section(cmps, n, currencies[i], ncur > 1, true, order, top, totals,
                             out) != 0)
            goto done;
    fm_buf_puts(out, "<h2>Tenants</h2><table>\n");
    const char *h[] = {"Tenant", "Plan", "Currency", "Invocations", "Bill", "Best server",
                       "Server fee", "Break-even invocations/month", "Cheaper on"};
    html_row(out, "th", h, 9, NULL);
    for (size_t i = 0; i < n; i++) {
        const struct bill_comparison *m = cmps[i];
        count(m->invocations, a);
        bill_compare_money(m, m->plans[m->own].invoice->total, b);
        c[0] = d[0] = '\0';
        char be[BILL_NUM_BUFSZ] = "-";
        if (m->best >= 0) {
            bill_compare_money(m, m->servers[m->best].fee, d);
            snprintf(c, sizeof c, "%" PRId64 " x %s", m->servers[m->best].count,
                     m->servers[m->best].server->id);
        }
        if (bill_compare_has_breakeven(m))
            breakeven_text(m->plans[m->own].breakeven, be);
        const char *row[] = {m->tenant, bill_plan_id(m->plans[m->own].plan), m->currency, a, b,
                             c, d, be, bill_compare_verdict(m)};
        html_row(out, "td", row, 9, NULL);
    }
    fm_buf_puts(out, "</table>\n");
    if (nunpriced > 0) {
        fm_buf_puts(out, "<h2>Tenants not priced</h2><table>\n");
        const char *uh[] = {"Tenant", "Plan", "Why"};
        html_row(out, "th", uh, 3, NULL);
        for (size_t i = 0; i < nunpriced; i++) {
            const char *row[] = {unpriced[i].tenant, unpriced[i].plan, unpriced[i].reason};
            html_row(out, "td", row, 3, NULL);
        }
        fm_buf_puts(out, "</table>\n");
    }
    left_out_note(cmps, n, out);
    for (size_t i = 0; i < ncur; i++)
        if (currency_section(cmps, n, currencies[i], ncur > 1, false, order, top, totals,
                             out) != 0)
            goto done;
    fm_buf_puts(out, "<p class=\"note\">");
    html_escape(out, assumptions);
    fm_buf_puts(out, "</p>\n</body></html>\n");
    rc = out->failed ? -1 : 0;
done:
    free(order);
    free(top);
    free(totals);
    free(currencies);
    return rc;
}
