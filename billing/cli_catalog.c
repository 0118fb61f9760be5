/* faasbill plans and faasbill servers: list the catalogs. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "billing/json_field.h"
#include "billing/table.h"
#include "common/cli.h"

#define OUTPUT_MAX (4 * 1024 * 1024)

static void help(const char *cmd)
{
    printf("usage: faasbill %s [--json] [--catalog DIR]\n\n"
           "Lists the %s catalog: --catalog DIR, else $FAASMETER_CATALOG, else the\n"
           "installed billing/catalog.\n",
           cmd, strcmp(cmd, "plans") == 0 ? "plan" : "server");
}

/* The options both listings take. Returns -1 to go on, else the exit code. */
static int parse_listing(const char *cmd, int argc, char **argv, const char **catalog,
                         bool *json)
{
    const struct fm_cli_opt opts[] = {
        FM_OPT_FLAG("--json", json),
        FM_OPT_TEXT("--catalog", catalog),
        FM_OPT_END,
    };
    const struct fm_cli cli = {.prog = "faasbill", .cmd = cmd, .opts = opts, .help = help};
    return fm_cli_parse(&cli, argc, argv);
}

/* A listing under way: a JSON array or a text table, whichever --json chose. */
struct listing {
    const char *cmd;
    struct bill_catalog *cat;
    cJSON *root;
    struct bill_table *table;
};

/* Parse the options, load the catalog and start the output. Returns -1 to go on, else the
 * exit code. */
static int listing_start(struct listing *l, int argc, char **argv,
                         size_t ncols, const char *align, const char *const *header)
{
    const char *dir = NULL;
    bool json = false;
    int rc = parse_listing(l->cmd, argc, argv, &dir, &json);
    if (rc >= 0)
        return rc;
    if ((rc = cli_load_catalog(l->cmd, dir, &l->cat)) != 0)
        return rc;
    if (json)
        l->root = cJSON_CreateArray();
    else if ((l->table = bill_table_new(ncols, align)) != NULL)
        bill_table_row(l->table, header);
    if (l->root == NULL && l->table == NULL) {
        cli_error(l->cmd, "out of memory");
        bill_catalog_free(l->cat);
        return 1;
    }
    return -1;
}

/* Print what was gathered and release everything; returns the exit code. */
static int listing_finish(struct listing *l, int rc)
{
    char *text = NULL;
    if (rc == 0 && l->root != NULL) {
        text = cJSON_Print(l->root);
    } else if (rc == 0) {
        struct fm_buf out;
        fm_buf_init(&out, OUTPUT_MAX);
        bill_table_render(l->table, &out);
        text = fm_buf_steal(&out);
    }
    if (rc == 0 && text == NULL) {
        cli_error(l->cmd, "output larger than %d bytes or out of memory", OUTPUT_MAX);
        rc = 1;
    }
    if (rc == 0) {
        fputs(text, stdout);
        if (l->root != NULL)
            fputc('\n', stdout);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    free(text);
    cJSON_Delete(l->root);
    bill_table_free(l->table);
    bill_catalog_free(l->cat);
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
    static const char *const header[] = {"ID",     "NAME",         "CURRENCY", "DURATION",
                                         "MEMORY", "METERS",       "SUBSCRIPTION", "AS OF"};
    struct listing l = {.cmd = "plans"};
    int rc = listing_start(&l, argc, argv, 8, "llllllrl", header);
    if (rc >= 0)
        return rc;
    for (size_t i = 0; i < bill_catalog_plan_count(l.cat); i++) {
        const struct bill_plan *p = bill_catalog_plan_at(l.cat, i);
        const struct bill_rounding *r = bill_plan_rounding(p);
        char dur[96], mem[96], meters[160], sub[BILL_NUM_BUFSZ];
        plan_duration(r, dur, sizeof dur);
        plan_memory(r, mem, sizeof mem);
        plan_meters(p, meters, sizeof meters);
        bill_dec_format(bill_plan_subscription(p), sub, sizeof sub);
        if (l.table) {
            const char *row[] = {bill_plan_id(p), bill_plan_name(p), bill_plan_currency(p), dur,
                                 mem, meters, sub, bill_plan_as_of(p)};
            bill_table_row(l.table, row);
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(l.root, o);
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
    }
    return listing_finish(&l, 0);
}

int cli_servers(int argc, char **argv)
{
    static const char *const header[] = {"ID",     "NAME",           "VCPUS",    "MEMORY MB",
                                         "HOURLY", "MONTHLY (730 h)", "CURRENCY", "AS OF"};
    struct listing l = {.cmd = "servers"};
    int rc = listing_start(&l, argc, argv, 8, "llrrrrll", header);
    if (rc >= 0)
        return rc;
    for (size_t i = 0; i < bill_catalog_server_count(l.cat); i++) {
        const struct bill_server *s = bill_catalog_server_at(l.cat, i);
        char hourly[BILL_NUM_BUFSZ], monthly[BILL_NUM_BUFSZ], vcpus[16], mem[16];
        int64_t fee = 0;
        if (bill_server_monthly_fee(s, &fee) != 0) {
            cli_error(l.cmd, "%s: the monthly fee does not fit", s->id);
            return listing_finish(&l, 1);
        }
        bill_dec_format(s->hourly, hourly, sizeof hourly);
        bill_money_format(fee, bill_currency_minor_digits(s->currency), monthly,
                          sizeof monthly);
        if (l.table) {
            snprintf(vcpus, sizeof vcpus, "%d", (int)s->vcpus);
            snprintf(mem, sizeof mem, "%d", (int)s->memory_mb);
            const char *row[] = {s->id,   s->name,     vcpus, mem, hourly, monthly,
                                 s->currency, s->as_of};
            bill_table_row(l.table, row);
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(l.root, o);
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
    }
    return listing_finish(&l, 0);
}
