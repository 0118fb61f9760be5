/* GET /v1/compare: a tenant's pay-per-use bill against the flat fees of servers. */
#include <microhttpd.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/compare.h"
#include "common/log.h"
#include "common/names.h"
#include "common/timeutil.h"
#include "meter/api.h"
#include "meter/compare_stats.h"
#include "meter/record.h"

#define COMPARE_SERVERS_MAX BILL_CATALOG_SERVERS_MAX
#define COMPARE_REPLY_MAX (4u << 20)

struct server_pick {
    const struct bill_catalog *cat;
    const struct bill_server *chosen[COMPARE_SERVERS_MAX];
    size_t n;
    const char *unknown; /* the first id not in the catalog */
    const char *twice;   /* the first id given twice */
    bool too_many;
    bool named; /* chosen by server=ID, not the whole catalog */
};

/* Each server=ID argument, in order. */
static enum MHD_Result pick_server(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    struct server_pick *p = cls;
    if (strcmp(key, "server") != 0 || value == NULL)
        return MHD_YES;
    const struct bill_server *s = bill_catalog_server(p->cat, value);
    if (s == NULL) {
        if (p->unknown == NULL)
            p->unknown = value;
    } else if (p->n == COMPARE_SERVERS_MAX) {
        p->too_many = true;
    } else {
        for (size_t i = 0; i < p->n && p->twice == NULL; i++)
            if (p->chosen[i] == s)
                p->twice = value; /* it would be sized and listed twice */
        p->chosen[p->n++] = s;
    }
    return MHD_YES;
}

struct reply api_get_compare(const struct api_request *r)
{
    if (r->cfg->catalog == NULL)
        return reply_error(E_UNAVAILABLE, "comparisons are not served: no plan catalog");
    struct reply refusal;
    struct meter_key key;
    if (!api_authenticate(r, &key, &refusal))
        return refusal;
    PGconn *conn = api_db(r, &refusal);
    if (conn == NULL)
        return refusal;
    if (strcmp(key.role, "ingest") == 0)
        return reply_error(E_FORBIDDEN, "this needs an admin or tenant key");
    const char *tenant = api_tenant(r, &key);
    const char *period = api_query(r, "period");
    int64_t from, to;
    if (tenant == NULL)
        return reply_error(E_BAD_REQUEST, "tenant: required");
    if (!fm_name_ok(tenant, false))
        return reply_error(E_BAD_REQUEST, "tenant: expected " FM_TENANT_RULE);
    if (period == NULL)
        return reply_error(E_BAD_REQUEST, "period: required, YYYY-MM");
    if (fm_period_parse(period, &from, &to) != 0)
        return reply_error(E_BAD_REQUEST, "period: expected YYYY-MM, got '%s'", period);
    if (!api_may_read(&key, tenant))
        return reply_error(E_FORBIDDEN, "this key may not read tenant %s", tenant);

    struct server_pick pick = {.cat = r->cfg->catalog};
    MHD_get_connection_values(r->conn_handle, MHD_GET_ARGUMENT_KIND, pick_server, &pick);
    if (pick.unknown)
        return reply_error(E_BAD_REQUEST, "server: no server '%s' in the catalog",
                           pick.unknown);
    if (pick.twice)
        return reply_error(E_BAD_REQUEST, "server: '%s' given twice", pick.twice);
    if (pick.too_many)
        return reply_error(E_BAD_REQUEST, "server: at most %d", COMPARE_SERVERS_MAX);
    pick.named = pick.n > 0;
    if (pick.n == 0)
        for (size_t i = 0; i < bill_catalog_server_count(pick.cat) && i < COMPARE_SERVERS_MAX;
             i++)
            pick.chosen[pick.n++] = bill_catalog_server_at(pick.cat, i);

    struct bill_stats *st = NULL;
    struct bill_comparison *cmp = NULL;
    struct fm_err err = {{0}};
    char plan[256];
    struct reply out;
    struct fm_buf body;
    fm_buf_init(&body, COMPARE_REPLY_MAX);
    switch (meter_compare_stats(conn, pick.cat, tenant, period, plan, sizeof plan, &st, &err)) {
    case METER_INVOICE_OK:
        break;
    case METER_INVOICE_NO_TENANT:
        out = reply_error(E_NOT_FOUND, "tenant: no tenant '%s'", tenant);
        goto done;
    case METER_INVOICE_NO_PLAN:
        out = reply_error(E_UNPROCESSABLE, "%s", err.msg);
        goto done;
    default:
        fm_warn("compare: %s", err.msg);
        out = reply_error(E_UNAVAILABLE, "the comparison could not be built; retry later");
        goto done;
    }
    /* A server asked for by name must be priced in the plan's currency; unnamed ones in
     * another are left out of the comparison and listed as such. */
    const char *currency = bill_plan_currency(bill_catalog_plan(pick.cat, plan));
    for (size_t i = 0; pick.named && i < pick.n; i++)
        if (strcmp(pick.chosen[i]->currency, currency) != 0) {
            out = reply_error(E_BAD_REQUEST,
                              "server: '%s' is priced in %s, the tenant's plan in %s",
                              pick.chosen[i]->id, pick.chosen[i]->currency, currency);
            goto done;
        }
    if (bill_compare(st, plan, pick.chosen, pick.n, tenant, period, &cmp, &err) != BILL_OK ||
        bill_compare_json(cmp, &body) != 0 || body.failed) {
        fm_warn("compare: %s", err.msg);
        out = reply_error(E_INTERNAL, "the comparison could not be computed");
        goto done;
    }
    out = reply_json(200, fm_buf_steal(&body));
done:
    fm_buf_free(&body);
    bill_comparison_free(cmp);
    bill_stats_free(st);
    return out;
}
