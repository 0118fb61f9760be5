#include "billing/json_field.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int bill_json_string(const cJSON *item, const char *path, size_t max_len, const char **out,
                     struct fm_err *err)
{
    if (item == NULL)
        return fm_err_set(err, "%s: missing", path);
    if (!cJSON_IsString(item))
        return fm_err_set(err, "%s: expected a string", path);
    size_t len = strlen(item->valuestring);
    if (len == 0)
        return fm_err_set(err, "%s: empty", path);
    if (len > max_len)
        return fm_err_set(err, "%s: longer than %zu characters", path, max_len);
    *out = item->valuestring;
    return 0;
}

bool bill_json_id_ok(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return true;
}

/* Whole-string base-10 integer; 0 or -1. */
static int parse_int(const char *s, int64_t *out)
{
    if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int bill_json_int(const cJSON *item, const char *path, int64_t min, int64_t max, int64_t *out,
                  struct fm_err *err)
{
    if (item == NULL)
        return fm_err_set(err, "%s: missing", path);
    int64_t v = 0;
    /* cJSON prints a whole value as plain digits, anything else with a point or an exponent,
     * so its text tells an integer apart without looking at the binary value. */
    char text[64];
    if (!cJSON_IsNumber(item) ||
        !cJSON_PrintPreallocated((cJSON *)item, text, sizeof text, false) ||
        parse_int(text, &v) != 0)
        return fm_err_set(err, "%s: expected an integer %" PRId64 "-%" PRId64, path, min, max);
    if (v < min || v > max)
        return fm_err_set(err, "%s: %" PRId64 " is outside %" PRId64 "-%" PRId64, path, v, min,
                          max);
    *out = v;
    return 0;
}

int bill_json_int_text(const char *text, const char *path, int64_t min, int64_t max,
                       int64_t *out, struct fm_err *err)
{
    int64_t v = 0;
    if (parse_int(text, &v) != 0)
        return fm_err_set(err, "%s: expected an integer %" PRId64 "-%" PRId64, path, min, max);
    if (v < min || v > max)
        return fm_err_set(err, "%s: %" PRId64 " is outside %" PRId64 "-%" PRId64, path, v, min,
                          max);
    *out = v;
    return 0;
}

int bill_json_known(const cJSON *obj, const char *path, const char *const *known,
                    struct fm_err *err)
{
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], c->string) != 0)
            i++;
        if (known[i] != NULL)
            continue;
        char list[512] = "";
        size_t used = 0;
        for (size_t k = 0; known[k] != NULL && used < sizeof list; k++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s",
                             k == 0 ? "" : known[k + 1] == NULL ? " or " : ", ", known[k]);
            used += w > 0 ? (size_t)w : 0;
        }
        return fm_err_set(err, "%s%s%.64s: unknown field (expected %s)", path, *path ? "." : "",
                          c->string, list);
    }
    return 0;
}

int bill_json_dec(const cJSON *item, const char *path, struct bill_dec *out, struct fm_err *err)
{
    if (item == NULL)
        return fm_err_set(err, "%s: missing", path);
    if (!cJSON_IsString(item))
        return fm_err_set(err, "%s: expected a decimal string such as \"0.20\"", path);
    if (bill_dec_parse(item->valuestring, out) != 0)
        return fm_err_set(err, "%s: not a decimal number", path);
    return 0;
}

int bill_json_bool(const cJSON *item, const char *path, bool *out, struct fm_err *err)
{
    if (item == NULL)
        return fm_err_set(err, "%s: missing", path);
    if (!cJSON_IsBool(item))
        return fm_err_set(err, "%s: expected true or false", path);
    *out = cJSON_IsTrue(item);
    return 0;
}

int bill_json_date(const cJSON *item, const char *path, const char **out, struct fm_err *err)
{
    const char *s = NULL;
    if (bill_json_string(item, path, 10, &s, err) != 0)
        return -1;
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 0, m = 0, d = 0;
    bool shape = strlen(s) == 10 && s[4] == '-' && s[7] == '-';
    for (int i = 0; shape && i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            shape = false;
    if (shape) {
        y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        m = (s[5] - '0') * 10 + (s[6] - '0');
        d = (s[8] - '0') * 10 + (s[9] - '0');
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (!shape || m < 1 || m > 12 || d < 1 || d > days[m - 1] || (m == 2 && d == 29 && !leap))
        return fm_err_set(err, "%s: expected a date YYYY-MM-DD", path);
    *out = s;
    return 0;
}

int bill_json_currency(const cJSON *item, const char *path, char out[4], struct fm_err *err)
{
    const char *s = NULL;
    if (bill_json_string(item, path, 3, &s, err) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return fm_err_set(err, "%s: expected an ISO 4217 code such as \"USD\"", path);
    /* Amounts are rounded to the currency's minor unit: a code whose unit is not known would
     * be rounded by a guess. */
    if (bill_currency_minor_digits(s) < 0)
        return fm_err_set(err, "%s: \"%s\" is not an ISO 4217 currency with a minor unit",
                          path, s);
    memcpy(out, s, 4);
    return 0;
}

/* Refuse a key given twice in any object under item (whose path is path). */
static int unique_keys(const cJSON *item, const char *path, struct fm_err *err)
{
    if (!cJSON_IsObject(item) && !cJSON_IsArray(item))
        return 0;
    const char *twice = NULL;
    if (fm_json_key_twice(item, &twice) != 0)
        return fm_err_set(err, "out of memory");
    if (twice != NULL)
        return fm_err_set(err, "%s%s%.64s: given twice", path, *path ? "." : "", twice);
    size_t i = 0;
    for (const cJSON *c = item->child; c != NULL; c = c->next, i++) {
        char sub[160];
        if (cJSON_IsArray(item))
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        else
            snprintf(sub, sizeof sub, "%s%s%.64s", path, *path ? "." : "", c->string);
        if (unique_keys(c, sub, err) != 0)
            return -1;
    }
    return 0;
}

cJSON *bill_json_parse(const char *text, size_t len, struct fm_err *err)
{
    const char *end = NULL;
    cJSON *root = fm_json_parse(text, len, &end);
    if (root != NULL && unique_keys(root, "", err) != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    if (root != NULL)
        return root;
    int line = 1;
    if (end != NULL && end >= text && end <= text + len)
        for (const char *p = text; p < end; p++)
            line += *p == '\n';
    fm_err_set(err, "not valid JSON (line %d)", line);
    return NULL;
}

int bill_json_add_int(cJSON *obj, const char *name, int64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, v);
    return cJSON_AddRawToObject(obj, name, text) ? 0 : -1;
}
