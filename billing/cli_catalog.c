/* faasbill plans and faasbill servers: list the catalogs. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "billing/cli_args.h"
#include "billing/json_field.h"
#include "billing/table.h"

#define OUTPUT_MAX (4 * 1024 * 1024)

/* The options both listings take. Returns -1 to go on, else the exit code. */
static int parse_listing(const char *cmd, const char *what, int argc, char **argv,
                         const char **catalog, bool *json)
{
    struct cli_args a = {.cmd = cmd, .argc = argc, .argv = argv};
    for (a.i = 1; a.i < argc; a.i++) {
        const char *v = NULL;
        int m;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            printf("usage: faasbill %s [--json] [--catalog DIR]\n\n"
                   "Lists the %s catalog: --catalog DIR, else $FAASMETER_CATALOG, else the\n"
                   "installed billing/catalog.\n",
                   cmd, what);
            return 0;
        } else if (cli_flag(&a, "--json")) {
            *json = true;
        } else if ((m = cli_option(&a, "--catalog", &v)) != 0) {
            if (m < 0)
                return 2;
            *catalog = v;
        } else {
            return cli_unknown(&a);
        }
    }
    return -1;
}

/* Print a finished listing: the JSON tree (consumed) or the table's buffer. */
static int emit(const char *cmd, cJSON *root, struct fm_buf *text)
{
    int rc = 1;
    if (root != NULL) {
        char *s = cJSON_Print(root);
        cJSON_Delete(root);
        if (s == NULL) {
            cli_error(cmd, "out of memory");
            return 1;
        }
        printf("%s\n", s);
        free(s);
    } else if (text->failed) {
        cli_error(cmd, "output larger than %d bytes", OUTPUT_MAX);
        return 1;
    } else {
        fputs(text->data ? text->data : "", stdout);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    return rc;
}

static void plan_duration(const struct bill_rounding *r, char *buf, size_t n)
{
    snprintf(buf, n, "%" PRId64 " ms steps, min %" PRId64 " ms%s", r->step_ms, r->min_ms,
             r->include_init ? ", init billed" : "");
}

static void plan_memory(const struct bill_rounding *r, char *buf, size_t n)
{
    snprintf(buf, n, "%s %d-%d MB, step %d",
             r->basis == BILL_MEMORY_OBSERVED ? "observed" : "configured", (int)r->min_mb,
             (int)r->max_mb, (int)r->step_mb);
}

static void plan_meters(const struct bill_plan *p, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < bill_plan_charge_count(p) && used < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? "," : "",
                         bill_meter_info(bill_plan_charge(p, i)->meter)->name);
        used += w > 0 ? (size_t)w : 0;
    }
}

int cli_plans(int argc, char **argv)
{
    const char *dir = NULL;
    bool json = false;
    int rc = parse_listing("plans", "plan", argc, argv, &dir, &json);
    if (rc >= 0)
        return rc;
    struct bill_catalog *cat = NULL;
    if (cli_load_catalog("plans", dir, &cat) != 0)
        return 1;
    struct fm_buf out;
    fm_buf_init(&out, OUTPUT_MAX);
    cJSON *root = json ? cJSON_CreateArray() : NULL;
    struct bill_table *t = json ? NULL : bill_table_new(8, "llllllrl");
    const char *header[] = {"ID", "NAME", "CURRENCY", "DURATION", "MEMORY",
                            "METERS", "SUBSCRIPTION", "AS OF"};
    if (t)
        bill_table_row(t, header);
    for (size_t i = 0; i < bill_catalog_plan_count(cat); i++) {
        const struct bill_plan *p = bill_catalog_plan_at(cat, i);
        char dur[96], mem[96], meters[160], sub[BILL_NUM_BUFSZ];
        plan_duration(bill_plan_rounding(p), dur, sizeof dur);
        plan_memory(bill_plan_rounding(p), mem, sizeof mem);
        plan_meters(p, meters, sizeof meters);
        bill_dec_format(bill_plan_subscription(p), sub, sizeof sub);
        if (root) {
            const struct bill_rounding *r = bill_plan_rounding(p);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(root, o);
            cJSON_AddStringToObject(o, "id", bill_plan_id(p));
            cJSON_AddStringToObject(o, "name", bill_plan_name(p));
            cJSON_AddStringToObject(o, "currency", bill_plan_currency(p));
            bill_json_add_int(o, "step_ms", r->step_ms);
            bill_json_add_int(o, "min_ms", r->min_ms);
            cJSON_AddBoolToObject(o, "include_init", r->include_init);
            cJSON_AddStringToObject(o, "memory_basis",
                                    r->basis == BILL_MEMORY_OBSERVED ? "observed" : "configured");
            bill_json_add_int(o, "step_mb", r->step_mb);
            bill_json_add_int(o, "min_mb", r->min_mb);
            bill_json_add_int(o, "max_mb", r->max_mb);
            cJSON_AddStringToObject(o, "meters", meters);
            cJSON_AddStringToObject(o, "subscription", sub);
            cJSON_AddStringToObject(o, "source", bill_plan_source(p));
            cJSON_AddStringToObject(o, "as_of", bill_plan_as_of(p));
        } else if (t) {
            const char *row[] = {bill_plan_id(p), bill_plan_name(p), bill_plan_currency(p), dur,
                                 mem, meters, sub, bill_plan_as_of(p)};
            bill_table_row(t, row);
        }
    }
    if (t == NULL && root == NULL)
        out.failed = true;
    else if (t)
        bill_table_render(t, &out);
    rc = emit("plans", root, &out);
    bill_table_free(t);
    fm_buf_free(&out);
    bill_catalog_free(cat);
    return rc;
}

int cli_servers(int argc, char **argv)
{
    const char *dir = NULL;
    bool json = false;
    int rc = parse_listing("servers", "server", argc, argv, &dir, &json);
    if (rc >= 0)
        return rc;
    struct bill_catalog *cat = NULL;
    if (cli_load_catalog("servers", dir, &cat) != 0)
        return 1;
    struct fm_buf out;
    fm_buf_init(&out, OUTPUT_MAX);
    cJSON *root = json ? cJSON_CreateArray() : NULL;
    struct bill_table *t = json ? NULL : bill_table_new(8, "llrrrrll");
    const char *header[] = {"ID", "NAME", "VCPUS", "MEMORY MB", "HOURLY",
                            "MONTHLY (730 h)", "CURRENCY", "AS OF"};
    if (t)
        bill_table_row(t, header);
    for (size_t i = 0; i < bill_catalog_server_count(cat); i++) {
        const struct bill_server *s = bill_catalog_server_at(cat, i);
        char hourly[BILL_NUM_BUFSZ], monthly[BILL_NUM_BUFSZ], vcpus[16], mem[16];
        int64_t fee = 0;
        bill_dec_format(s->hourly, hourly, sizeof hourly);
        if (bill_server_monthly_fee(s, &fee) != 0) {
            cli_error("servers", "%s: the monthly fee does not fit", s->id);
            rc = 1;
            goto done;
        }
        bill_money_format(fee, 2, monthly, sizeof monthly);
        if (root) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(root, o);
            cJSON_AddStringToObject(o, "id", s->id);
            cJSON_AddStringToObject(o, "name", s->name);
            cJSON_AddStringToObject(o, "provider", s->provider);
            bill_json_add_int(o, "vcpus", s->vcpus);
            bill_json_add_int(o, "memory_mb", s->memory_mb);
            cJSON_AddStringToObject(o, "hourly_price", hourly);
            cJSON_AddStringToObject(o, "monthly_fee", monthly);
            cJSON_AddStringToObject(o, "currency", s->currency);
            cJSON_AddStringToObject(o, "source", s->source);
            cJSON_AddStringToObject(o, "as_of", s->as_of);
        } else if (t) {
            snprintf(vcpus, sizeof vcpus, "%d", (int)s->vcpus);
            snprintf(mem, sizeof mem, "%d", (int)s->memory_mb);
            const char *row[] = {s->id, s->name, vcpus, mem, hourly, monthly, s->currency,
                                 s->as_of};
            bill_table_row(t, row);
        }
    }
    if (t == NULL && root == NULL)
        out.failed = true;
    else if (t)
        bill_table_render(t, &out);
    rc = emit("servers", root, &out);
    root = NULL;
done:
    cJSON_Delete(root);
    bill_table_free(t);
    fm_buf_free(&out);
    bill_catalog_free(cat);
    return rc;
}
