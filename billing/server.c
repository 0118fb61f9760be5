#include "billing/server.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/json_field.h"

#define MAX_SERVERS 256

void bill_server_clear(struct bill_server *s)
{
    free(s->id);
    free(s->name);
    free(s->provider);
    free(s->source);
    free(s->as_of);
    memset(s, 0, sizeof *s);
}

void bill_servers_free(struct bill_server *servers, size_t n)
{
    if (servers == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        bill_server_clear(&servers[i]);
    free(servers);
}

/* prefix is "" for a lone object, "[i]." inside an array. */
static int copy_field(const cJSON *o, const char *prefix, const char *key, size_t max_len,
                      char **dst, struct fm_err *err)
{
    char path[64];
    const char *s = NULL;
    snprintf(path, sizeof path, "%s%s", prefix, key);
    if (bill_json_string(cJSON_GetObjectItemCaseSensitive(o, key), path, max_len, &s, err) != 0)
        return -1;
    if ((*dst = strdup(s)) == NULL)
        return fm_err_set(err, "out of memory");
    return 0;
}

static int parse_one(const cJSON *o, const char *prefix, struct bill_server *s,
                     struct fm_err *err)
{
    char path[64];
    int64_t vcpus = 0, mem = 0;
    const char *date = NULL;
    static const char *const known[] = {"id",       "name",         "provider", "vcpus",
                                        "memory_mb", "hourly_price", "currency", "source",
                                        "as_of",     NULL};
    if (!cJSON_IsObject(o))
        return fm_err_set(err, "%sexpected an object", prefix);
    /* The path of the object itself: "[2]" in an array, "" alone. */
    char self[24];
    snprintf(self, sizeof self, "%.*s", (int)(strlen(prefix) ? strlen(prefix) - 1 : 0), prefix);
    if (bill_json_known(o, self, known, err) != 0)
        return -1;
    if (copy_field(o, prefix, "id", 64, &s->id, err) != 0)
        return -1;
    /* As a plan's: an id is printed bare in CSV, text tables and command lines. */
    if (!bill_json_id_ok(s->id))
        return fm_err_set(err,
                          "%sid: \"%s\" is not lower-case letters, digits, '.', '-' and '_'",
                          prefix, s->id);
    if (copy_field(o, prefix, "name", 200, &s->name, err) != 0 ||
        copy_field(o, prefix, "provider", 64, &s->provider, err) != 0 ||
        copy_field(o, prefix, "source", 500, &s->source, err) != 0)
        return -1;
    snprintf(path, sizeof path, "%sas_of", prefix);
    if (bill_json_date(cJSON_GetObjectItemCaseSensitive(o, "as_of"), path, &date, err) != 0)
        return -1;
    if ((s->as_of = strdup(date)) == NULL)
        return fm_err_set(err, "out of memory");
    snprintf(path, sizeof path, "%svcpus", prefix);
    if (bill_json_int(cJSON_GetObjectItemCaseSensitive(o, "vcpus"), path, 1, 4096, &vcpus,
                      err) != 0)
        return -1;
    snprintf(path, sizeof path, "%smemory_mb", prefix);
    if (bill_json_int(cJSON_GetObjectItemCaseSensitive(o, "memory_mb"), path, 1, 1 << 30, &mem,
                      err) != 0)
        return -1;
    snprintf(path, sizeof path, "%shourly_price", prefix);
    if (bill_json_dec(cJSON_GetObjectItemCaseSensitive(o, "hourly_price"), path, &s->hourly,
                      err) != 0)
        return -1;
    snprintf(path, sizeof path, "%scurrency", prefix);
    if (bill_json_currency(cJSON_GetObjectItemCaseSensitive(o, "currency"), path, s->currency,
                           err) != 0)
        return -1;
    s->vcpus = (int32_t)vcpus;
    s->memory_mb = (int32_t)mem;
    return 0;
}

enum bill_status bill_servers_parse(const char *text, size_t len, const char *origin,
                                    struct bill_server **out, size_t *n, struct fm_err *err)
{
    enum bill_status st = BILL_EINVAL;
    struct bill_server *servers = NULL;
    size_t count = 0;
    cJSON *root = bill_json_parse(text, len, err);
    if (root == NULL)
        goto done;
    bool many = cJSON_IsArray(root);
    int want = many ? cJSON_GetArraySize(root) : 1;
    if (want < 1 || want > MAX_SERVERS) {
        fm_err_set(err, "expected a server object or an array of 1-%d", MAX_SERVERS);
        goto done;
    }
    servers = calloc((size_t)want, sizeof *servers);
    if (servers == NULL) {
        st = BILL_ENOMEM;
        fm_err_set(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < want; i++) {
        char prefix[24] = "";
        if (many)
            snprintf(prefix, sizeof prefix, "[%d].", i);
        count++;
        if (parse_one(many ? cJSON_GetArrayItem(root, i) : root, prefix, &servers[i], err) != 0)
            goto done;
        for (int j = 0; j < i; j++)
            if (strcmp(servers[j].id, servers[i].id) == 0) {
                fm_err_set(err, "%sid: \"%s\" is listed twice", prefix, servers[i].id);
                goto done;
            }
    }
    *out = servers;
    *n = count;
    servers = NULL;
    st = BILL_OK;
done:
    if (st != BILL_OK)
        fm_err_prefix(err, "%s", origin);
    bill_servers_free(servers, count);
    cJSON_Delete(root);
    return st;
}

int bill_server_monthly_fee(const struct bill_server *s, int64_t *out)
{
    __int128 den, num;
    if (bill_pow10(s->hourly.scale, &den) != 0 ||
        __builtin_mul_overflow(s->hourly.units, (__int128)BILL_HOURS_PER_MONTH, &num))
        return -1;
    int digits = bill_currency_minor_digits(s->currency);
    return digits < 0 ? -1 : bill_ratio_round(num, den, digits, out);
}
