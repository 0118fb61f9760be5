/* The invoice endpoints: build (or rebuild a draft), finalize, read, list. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/json_field.h"
#include "common/json.h"
#include "common/log.h"
#include "common/names.h"
#include "common/timeutil.h"
#include "meter/api.h"
#include "meter/invoices.h"
#include "meter/record.h"

/* The reply for a status of meter/invoices.c that is not OK. */
static struct reply invoice_error(enum meter_invoice_status st, const struct fm_err *err)
{
    switch (st) {
    case METER_INVOICE_NO_TENANT:
    case METER_INVOICE_NOT_FOUND:
        return reply_error(E_NOT_FOUND, "%s", err->msg);
    case METER_INVOICE_NO_PLAN:
    case METER_INVOICE_BAD_INPUT:
        return reply_error(E_UNPROCESSABLE, "%s", err->msg);
    case METER_INVOICE_FINAL:
        return reply_error(E_CONFLICT, "%s", err->msg);
    default:
        fm_warn("invoice: %s", err->msg);
        return reply_error(E_UNAVAILABLE, "the invoice could not be built; retry later");
    }
}

/* The invoice as the reply body (taken from inv) when st is OK, else the error. */
static struct reply invoice_reply(enum meter_invoice_status st, unsigned ok_status,
                                  struct meter_invoice *inv, const struct fm_err *err)
{
    if (st != METER_INVOICE_OK)
        return invoice_error(st, err);
    struct reply out = reply_json(ok_status, inv->json);
    inv->json = NULL;
    return out;
}

/* Database and an authenticated key of one of the roles; false with *refusal set. */
static bool open_as(const struct api_request *r, bool admin_only, PGconn **conn,
                    struct meter_key *key, struct reply *refusal)
{
    if (r->cfg->catalog == NULL) {
        *refusal = reply_error(E_UNAVAILABLE, "invoices are not served: no plan catalog");
        return false;
    }
    if (!api_authenticate(r, key, refusal))
        return false;
    *conn = api_db(r, refusal);
    if (*conn == NULL)
        return false;
    if (strcmp(key->role, "ingest") == 0 || (admin_only && strcmp(key->role, "admin") != 0)) {
        *refusal = reply_error(E_FORBIDDEN, admin_only ? "this needs an admin key"
                                                       : "this needs an admin or tenant key");
        return false;
    }
    return true;
}

/* A JSON body's string member, or NULL. */
static const char *member(const cJSON *body, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

struct reply api_post_invoices(const struct api_request *r)
{
    PGconn *conn;
    struct meter_key key;
    struct reply refusal;
    if (!open_as(r, true, &conn, &key, &refusal))
        return refusal;
    if (!api_content_type_is(r, "application/json"))
        return reply_error(E_MEDIA_TYPE, "Content-Type must be application/json, in UTF-8");
    if (fm_json_has_nul(r->body, r->body_len))
        return reply_error(E_BAD_REQUEST, FM_JSON_NUL_ERROR);
    cJSON *body = fm_json_parse(r->body, r->body_len, NULL);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return reply_error(E_BAD_REQUEST, "the body is not a JSON object");
    }
    /* As in plan files and manifests: a member given twice, or one misspelt, would
     * otherwise be dropped unseen ("plna" would build the invoice under the tenant's plan). */
    static const char *const known[] = {"tenant", "period", "plan", NULL};
    const char *twice = NULL;
    struct fm_err why;
    struct reply early = {0};
    if (fm_json_key_twice(body, &twice) != 0)
        early = reply_error(E_INTERNAL, "out of memory");
    else if (twice != NULL)
        early = reply_error(E_BAD_REQUEST, "%.64s: given twice", twice);
    else if (bill_json_known(body, "", known, &why) != 0)
        early = reply_error(E_BAD_REQUEST, "%s", why.msg);
    if (early.status != 0) {
        cJSON_Delete(body);
        return early;
    }
    const char *tenant = member(body, "tenant");
    const char *period = member(body, "period");
    const cJSON *plan_item = cJSON_GetObjectItemCaseSensitive(body, "plan");
    const char *plan = member(body, "plan");
    struct reply out;
    int64_t from, to;
    if (tenant == NULL) {
        out = reply_error(E_BAD_REQUEST, "tenant: required, a string");
    } else if (!fm_name_ok(tenant, false)) {
        out = reply_error(E_BAD_REQUEST, "tenant: expected " FM_TENANT_RULE);
    } else if (period == NULL) {
        out = reply_error(E_BAD_REQUEST, "period: required, YYYY-MM");
    } else if (fm_period_parse(period, &from, &to) != 0) {
        out = reply_error(E_BAD_REQUEST, "period: expected YYYY-MM, got '%s'", period);
    } else if (plan_item && !cJSON_IsNull(plan_item) && plan == NULL) {
        out = reply_error(E_BAD_REQUEST, "plan: expected a plan id string");
    } else {
        struct meter_invoice inv = {0};
        struct fm_err err;
        bool created = false;
        enum meter_invoice_status st = meter_invoice_build(
            conn, r->cfg->catalog, tenant, period, plan, false, &inv, &created, &err);
        out = invoice_reply(st, created ? 201 : 200, &inv, &err);
        meter_invoice_clear(&inv);
    }
    cJSON_Delete(body);
    return out;
}

/* The {id} of the path as a positive integer written as the API writes it ("7", never
 * "07" or "+7"), or -1. */
static int64_t path_id(const struct api_request *r)
{
    const char *text = r->params[0];
    if (text[0] < '1' || text[0] > '9' || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    long long id = strtoll(text, NULL, 10);
    return errno ? -1 : id;
}

/* GET /v1/invoices/{id} (finalize false) and POST /v1/invoices/{id}/finalize (true). */
static struct reply invoice_by_id(const struct api_request *r, bool finalize)
{
    PGconn *conn;
    struct meter_key key;
    struct reply refusal;
    if (!open_as(r, finalize, &conn, &key, &refusal))
        return refusal;
    int64_t id = path_id(r);
    if (id < 0)
        return reply_error(E_NOT_FOUND, "invoice: no such invoice");
    struct meter_invoice inv = {0};
    struct fm_err err;
    enum meter_invoice_status st = finalize ? meter_invoice_finalize(conn, r->cfg->catalog, id,
                                                                     &inv, &err)
                                            : meter_invoice_get(conn, id, NULL, NULL, &inv, &err);
    struct reply out;
    bool tenant_key = strcmp(key.role, "tenant") == 0;
    if ((st == METER_INVOICE_OK && !api_may_read(&key, inv.tenant)) ||
        (tenant_key && st == METER_INVOICE_NOT_FOUND)) {
        /* To a tenant key, another tenant's invoice and a missing one look alike: neither
         * whose it is nor whether it exists may be learnt by trying ids. */
        out = tenant_key ? reply_error(E_FORBIDDEN, "this key reads the invoices of tenant %s"
                                                    " only",
                                       key.tenant)
                         : reply_error(E_FORBIDDEN, "this key may not read this invoice");
    } else {
        out = invoice_reply(st, 200, &inv, &err);
    }
    meter_invoice_clear(&inv);
    return out;
}

struct reply api_get_invoice(const struct api_request *r)
{
    return invoice_by_id(r, false);
}

struct reply api_finalize_invoice(const struct api_request *r)
{
    return invoice_by_id(r, true);
}

struct reply api_list_invoices(const struct api_request *r)
{
    PGconn *conn;
    struct meter_key key;
    struct reply refusal;
    if (!open_as(r, false, &conn, &key, &refusal))
        return refusal;
    const char *tenant = api_tenant(r, &key);
    const char *period = api_query(r, "period");
    int64_t from, to;
    if (period && fm_period_parse(period, &from, &to) != 0)
        return reply_error(E_BAD_REQUEST, "period: expected YYYY-MM, got '%s'", period);
    if (tenant && !fm_name_ok(tenant, false))
        return reply_error(E_BAD_REQUEST, "tenant: expected " FM_TENANT_RULE);
    if (tenant && !api_may_read(&key, tenant))
        return reply_error(E_FORBIDDEN, "this key may not read tenant %s", tenant);
    const char *params[] = {tenant, period};
    PGresult *res = PQexecParams(
        conn,
        "SELECT coalesce(jsonb_agg(jsonb_build_object('invoice_id', invoice_id,"
        "  'status', status, 'finalized_at', finalized_at) || document"
        "  ORDER BY tenant, period), '[]')"
        "  FROM invoices"
        " WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR period = $2)",
        2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return reply_error(E_UNAVAILABLE, "the database is unavailable; retry later");
    }
    size_t n = strlen(PQgetvalue(res, 0, 0)) + 32;
    char *body = malloc(n);
    if (body)
        snprintf(body, n, "{\"invoices\": %s}", PQgetvalue(res, 0, 0));
    PQclear(res);
    return reply_json(200, body);
}
