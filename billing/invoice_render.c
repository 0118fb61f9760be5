#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/invoice.h"
#include "billing/json_field.h"
#include "billing/table.h"

int bill_format_from_name(const char *name, enum bill_format *out)
{
    static const char *const names[] = {[BILL_FORMAT_TEXT] = "text",
                                        [BILL_FORMAT_JSON] = "json",
                                        [BILL_FORMAT_CSV] = "csv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (enum bill_format)i;
            return 0;
        }
    return -1;
}

static void money(const struct bill_invoice *inv, int64_t minor, char buf[BILL_NUM_BUFSZ])
{
    /* Cannot fail: an int64 with at most 18 minor digits fits the buffer. */
    bill_money_format(minor, inv->minor_digits, buf, BILL_NUM_BUFSZ);
}

static void adjustment_label(const struct bill_adjustment *a, char *buf, size_t n)
{
    snprintf(buf, n, "Adjustment for %s (invoice %lld)", a->period, (long long)a->invoice_id);
}

static int render_text(const struct bill_invoice *inv, const char *tenant, const char *period,
                       struct fm_buf *out)
{
    char amount[BILL_NUM_BUFSZ], head[32], label[160];
    int rc = -1;
    struct bill_table *t = bill_table_new(6, "lrrrrr");
    if (t == NULL)
        return -1;
    fm_buf_printf(out, "Plan:    %s (%s)\n", inv->plan_name, inv->plan_id);
    if (tenant)
        fm_buf_printf(out, "Tenant:  %s\n", tenant);
    if (period)
        fm_buf_printf(out, "Period:  %s\n", period);
    fm_buf_puts(out, "\n");
    snprintf(head, sizeof head, "Amount (%s)", inv->currency);
    const char *header[] = {"Item", "Usage", "Free", "Billable", "Unit price", head};
    if (bill_table_row(t, header) != 0 || bill_table_rule(t) != 0)
        goto done;
    for (size_t i = 0; i < inv->nlines; i++) {
        const struct bill_line *l = &inv->lines[i];
        money(inv, l->amount, amount);
        const char *row[] = {l->item, l->usage, l->free, l->quantity, l->unit_price, amount};
        if (bill_table_row(t, row) != 0)
            goto done;
        for (size_t j = 0; l->ntiers > 1 && j < l->ntiers; j++) {
            snprintf(label, sizeof label, "  tier %zu", j + 1);
            const char *tier[] = {label, NULL, NULL, l->tiers[j].quantity,
                                  l->tiers[j].unit_price, NULL};
            if (bill_table_row(t, tier) != 0)
                goto done;
        }
        /* A lone function's share is the line itself: not worth a row. */
        for (size_t j = 0; l->nshares > 1 && j < l->nshares; j++) {
            snprintf(label, sizeof label, "  %s", l->shares[j].function);
            money(inv, l->shares[j].amount, amount);
            const char *share[] = {label, NULL, NULL, NULL, NULL, amount};
            if (bill_table_row(t, share) != 0)
                goto done;
        }
    }
    if (inv->subscription != 0) {
        money(inv, inv->subscription, amount);
        const char *row[] = {"Subscription", NULL, NULL, NULL, NULL, amount};
        if (bill_table_row(t, row) != 0)
            goto done;
    }
    for (size_t i = 0; i < inv->nadjustments; i++) {
        adjustment_label(&inv->adjustments[i], label, sizeof label);
        money(inv, inv->adjustments[i].amount, amount);
        const char *row[] = {label, NULL, NULL, NULL, NULL, amount};
        if (bill_table_row(t, row) != 0)
            goto done;
    }
    money(inv, inv->total, amount);
    const char *total[] = {"Total", NULL, NULL, NULL, NULL, amount};
    if (bill_table_rule(t) != 0 || bill_table_row(t, total) != 0)
        goto done;
    rc = bill_table_render(t, out);
done:
    bill_table_free(t);
    return rc;
}

static cJSON *json_line(const struct bill_invoice *inv, const struct bill_line *l)
{
    char amount[BILL_NUM_BUFSZ];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item", l->item);
    cJSON_AddStringToObject(o, "meter", bill_meter_info(l->meter)->name);
    cJSON_AddStringToObject(o, "usage", l->usage);
    cJSON_AddStringToObject(o, "free", l->free);
    cJSON_AddStringToObject(o, "quantity", l->quantity);
    cJSON_AddStringToObject(o, "unit_price", l->unit_price);
    cJSON *tiers = cJSON_AddArrayToObject(o, "tiers");
    for (size_t j = 0; tiers && j < l->ntiers; j++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToArray(tiers, t);
        cJSON_AddStringToObject(t, "quantity", l->tiers[j].quantity);
        cJSON_AddStringToObject(t, "unit_price", l->tiers[j].unit_price);
    }
    money(inv, l->amount, amount);
    cJSON_AddStringToObject(o, "amount", amount);
    cJSON *fns = cJSON_AddArrayToObject(o, "functions");
    for (size_t j = 0; fns && j < l->nshares; j++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddItemToArray(fns, f);
        money(inv, l->shares[j].amount, amount);
        cJSON_AddStringToObject(f, "function", l->shares[j].function);
        cJSON_AddStringToObject(f, "amount", amount);
    }
    return o;
}

/* A line of one fixed amount (the subscription, an adjustment). */
static cJSON *json_fixed_line(const char *item, const char *kind, const char *amount)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item", item);
    cJSON_AddStringToObject(o, "meter", kind);
    cJSON_AddStringToObject(o, "quantity", "1");
    cJSON_AddStringToObject(o, "unit_price", amount);
    cJSON_AddStringToObject(o, "amount", amount);
    return o;
}

static int render_json(const struct bill_invoice *inv, const char *tenant, const char *period,
                       struct fm_buf *out)
{
    char amount[BILL_NUM_BUFSZ];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "plan", inv->plan_id);
    cJSON_AddStringToObject(root, "plan_name", inv->plan_name);
    cJSON_AddStringToObject(root, "currency", inv->currency);
    if (tenant)
        cJSON_AddStringToObject(root, "tenant", tenant);
    if (period)
        cJSON_AddStringToObject(root, "period", period);
    /* Every amount the total adds up is a line: the charges, then the subscription and the
     * adjustments, each one of a "quantity" 1 at its amount. */
    cJSON *lines = cJSON_AddArrayToObject(root, "lines");
    for (size_t i = 0; lines && i < inv->nlines; i++)
        cJSON_AddItemToArray(lines, json_line(inv, &inv->lines[i]));
    if (lines != NULL && inv->subscription != 0) {
        money(inv, inv->subscription, amount);
        cJSON_AddItemToArray(lines, json_fixed_line("Subscription", "subscription", amount));
    }
    for (size_t i = 0; lines != NULL && i < inv->nadjustments; i++) {
        char label[128];
        adjustment_label(&inv->adjustments[i], label, sizeof label);
        money(inv, inv->adjustments[i].amount, amount);
        cJSON *a = json_fixed_line(label, "adjustment", amount);
        cJSON_AddStringToObject(a, "period", inv->adjustments[i].period);
        bill_json_add_int(a, "invoice_id", inv->adjustments[i].invoice_id);
        cJSON_AddItemToArray(lines, a);
    }
    money(inv, inv->total, amount);
    cJSON_AddStringToObject(root, "total", amount);
    /* cJSON builders return NULL when out of memory; printing the tree catches any gap. */
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text == NULL)
        return -1;
    int rc = fm_buf_puts(out, text) == 0 && fm_buf_puts(out, "\n") == 0 ? 0 : -1;
    free(text);
    return rc;
}

/* One RFC 4180 field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(struct fm_buf *out, const char *s, bool last)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fm_buf_puts(out, s);
    } else {
        fm_buf_append(out, "\"", 1);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                fm_buf_puts(out, "\"\"");
            else
                fm_buf_append(out, p, 1);
        }
        fm_buf_append(out, "\"", 1);
    }
    fm_buf_puts(out, last ? "\r\n" : ",");
}

static void csv_row(struct fm_buf *out, const char *const cells[6])
{
    for (int i = 0; i < 6; i++)
        csv_field(out, cells[i] ? cells[i] : "", i == 5);
}

static int render_csv(const struct bill_invoice *inv, struct fm_buf *out)
{
    char amount[BILL_NUM_BUFSZ];
    const char *header[] = {"item", "meter", "function", "quantity", "unit_price", "amount"};
    csv_row(out, header);
    for (size_t i = 0; i < inv->nlines; i++) {
        const struct bill_line *l = &inv->lines[i];
        const char *meter = bill_meter_info(l->meter)->name;
        money(inv, l->amount, amount);
        const char *row[] = {l->item, meter, NULL, l->quantity, l->unit_price, amount};
        csv_row(out, row);
        for (size_t j = 0; j < l->nshares; j++) {
            money(inv, l->shares[j].amount, amount);
            const char *share[] = {l->item, meter, l->shares[j].function, NULL, NULL, amount};
            csv_row(out, share);
        }
    }
    /* As in text and JSON: a plan without a subscription has no such line. */
    if (inv->subscription != 0) {
        money(inv, inv->subscription, amount);
        const char *sub[] = {"Subscription", "subscription", NULL, "1", amount, amount};
        csv_row(out, sub);
    }
    /* A fixed line reads as in JSON: its kind as the meter, a quantity of 1 at its amount. */
    for (size_t i = 0; i < inv->nadjustments; i++) {
        char label[128];
        adjustment_label(&inv->adjustments[i], label, sizeof label);
        money(inv, inv->adjustments[i].amount, amount);
        const char *row[] = {label, "adjustment", NULL, "1", amount, amount};
        csv_row(out, row);
    }
    money(inv, inv->total, amount);
    const char *total[] = {"Total", NULL, NULL, NULL, NULL, amount};
    csv_row(out, total);
    return out->failed ? -1 : 0;
}

int bill_invoice_render(const struct bill_invoice *inv, enum bill_format fmt, const char *tenant,
                        const char *period, struct fm_buf *out)
{
    switch (fmt) {
    case BILL_FORMAT_TEXT:
        return render_text(inv, tenant, period, out);
    case BILL_FORMAT_JSON:
        return render_json(inv, tenant, period, out);
    case BILL_FORMAT_CSV:
        return render_csv(inv, out);
    }
    return -1;
}
