#include "common/names.h"
#include "meter/record.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/sha256.h"
#include "common/timeutil.h"

/* Which record types a field belongs to. */
enum {
    T_START = 1,
    T_STOP = 2,
    T_RES = 4,
    T_ALL = T_START | T_STOP | T_RES,
};

enum field_kind { F_STRING, F_TENANT, F_FUNCTION, F_TIME, F_INT, F_BOOL, F_ENUM };

struct field {
    const char *name;
    enum field_kind kind;
    int types;      /* where it is required */
    bool optional;  /* may be absent (or null) */
    int64_t min, max;        /* F_INT range; F_STRING length range */
    const char *const *values; /* F_ENUM */
};

static const char *const record_types[] = {"start", "stop", "resource", NULL};
static const char *const triggers[] = {"http", "queue", "event", "timer", "pipeline", "cli", NULL};
static const char *const statuses[] = {"ok", "error", "timeout", "oom", "crashed", "rejected",
                                       NULL};

/* Limits past any real invocation, so that no accepted record can overflow a month's sums
 * of memory times duration (which fold into 64-bit rollups). */
#define DAY_US INT64_C(86400000000)   /* durations: a day */
#define DAY_MS INT64_C(86400000)      /* timeouts: a day */
#define CPU_US_MAX (INT64_C(1) << 40) /* CPU time: about 12 days, many cores */
#define BYTES_MAX (INT64_C(1) << 40)  /* payloads: a TiB */
#define RSS_KB_MAX (INT64_C(1) << 31) /* peak memory: 2 TiB */

/* The contract of DESIGN.md as a table; the canonical form lists fields in this order, the
 * order of enum meter_field. */
static const struct field fields[MF_COUNT] = {
    [MF_ID] = {"id", F_STRING, T_ALL, false, 1, 128, NULL},
    [MF_TYPE] = {"type", F_ENUM, T_ALL, false, 0, 0, record_types},
    [MF_INVOCATION_ID] = {"invocation_id", F_STRING, T_ALL, false, 1, 128, NULL},
    [MF_TENANT] = {"tenant", F_TENANT, T_ALL, false, 0, 0, NULL},
    [MF_FUNCTION] = {"function", F_FUNCTION, T_ALL, false, 0, 0, NULL},
    [MF_TIME] = {"time", F_TIME, T_ALL, false, 0, 0, NULL},
    [MF_MEMORY_MB] = {"memory_mb", F_INT, T_START | T_STOP, false, 1, 10240, NULL},
    [MF_TIMEOUT_MS] = {"timeout_ms", F_INT, T_START, false, 1, DAY_MS, NULL},
    [MF_COLD_START] = {"cold_start", F_BOOL, T_START | T_STOP, false, 0, 0, NULL},
    [MF_TRIGGER] = {"trigger", F_ENUM, T_START, false, 0, 0, triggers},
    [MF_CORRELATION_ID] = {"correlation_id", F_STRING, T_ALL, true, 0, 128, NULL},
    [MF_DURATION_US] = {"duration_us", F_INT, T_STOP, false, 0, DAY_US, NULL},
    [MF_INIT_US] = {"init_us", F_INT, T_STOP, false, 0, DAY_US, NULL},
    [MF_STATUS] = {"status", F_ENUM, T_STOP, false, 0, 0, statuses},
    [MF_EXIT_CODE] = {"exit_code", F_INT, T_STOP, false, INT32_MIN, INT32_MAX, NULL},
    [MF_CPU_USER_US] = {"cpu_user_us", F_INT, T_STOP | T_RES, false, 0, CPU_US_MAX, NULL},
    [MF_CPU_SYS_US] = {"cpu_sys_us", F_INT, T_STOP | T_RES, false, 0, CPU_US_MAX, NULL},
    [MF_MAX_RSS_KB] = {"max_rss_kb", F_INT, T_STOP | T_RES, false, 0, RSS_KB_MAX, NULL},
    [MF_BYTES_IN] = {"bytes_in", F_INT, T_STOP, false, 0, BYTES_MAX, NULL},
    [MF_BYTES_OUT] = {"bytes_out", F_INT, T_STOP, false, 0, BYTES_MAX, NULL},
};

/* Well-formed UTF-8: no stray continuation bytes, overlong forms, surrogates, or code
 * points past U+10FFFF. PostgreSQL refuses anything else, and one such string would fail
 * the whole batch it was stored with. */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                                   : (c & 0xf8) == 0xf0                 ? 3
                                                                        : -1;
        if (n < 0 || (n == 1 && c < 0xc2))
            return false;
        unsigned cp = n == 0 ? c : c & (0x3fu >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

static int enum_index(const char *const *values, const char *s)
{
    for (int i = 0; values[i]; i++)
        if (strcmp(values[i], s) == 0)
            return i;
    return -1;
}

/* A JSON number that is an integer in [min, max]. cJSON keeps numbers as doubles, which hold
 * every integer below 2^53 exactly; the contract keeps integers below that. */
static bool int_in_range(const cJSON *v, int64_t min, int64_t max, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0))
        return false;
    int64_t i = (int64_t)d;
    if ((double)i != d || i < min || i > max)
        return false;
    *out = i;
    return true;
}

/* Room for any int64_t's digits, sign and NUL. */
#define INT_TEXT_SIZE 24

static int type_mask(const char *type)
{
    return 1 << enum_index(record_types, type);
}

void meter_copy_text(struct fm_buf *b, const char *s)
{
    /* Copy the runs between special characters whole: most text holds none. */
    for (;;) {
        size_t run = strcspn(s, "\\\t\n\r");
        fm_buf_append(b, s, run);
        s += run;
        if (*s == '\0')
            return;
        char esc[2] = {'\\', *s == '\\' ? '\\' : *s == '\t' ? 't' : *s == '\n' ? 'n' : 'r'};
        fm_buf_append(b, esc, sizeof esc);
        s++;
    }
}

/* The decimal digits of i, written to end backwards; returns where they start. */
static char *int_text(int64_t i, char *end)
{
    uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    do {
        *--end = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (i < 0)
        *--end = '-';
    return end;
}

#define CANONICAL_TIME_LEN 27 /* 2026-01-31T12:00:00.000000Z */

/*
 * Whether a time that fm_time_parse accepted is written as fm_time_format would write it.
 * The parse has checked every digit's place and range, and after the '.' it takes only
 * digits and then the Z: with the T, the '.' and the Z where they belong, all 27 characters
 * are as the format puts them. Runtimes send times so; formatting them again is skipped.
 */
static bool time_is_canonical(const char *s)
{
    return strlen(s) == CANONICAL_TIME_LEN && s[10] == 'T' && s[19] == '.' && s[26] == 'Z';
}

/*
 * Check one field and point *text at its value as text: a string's own text, the time's
 * canonical form, an integer's digits (written into num) or true or false. Returns 0, or
 * -1 with err naming the field.
 */
/* The characters of UTF-8 text s: its bytes but continuation bytes. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

static int check_field(const struct field *f, const cJSON *v, struct meter_record *r,
                       char num[INT_TEXT_SIZE], const char **text, struct fm_err *err)
{
    int64_t i = 0;
    switch (f->kind) {
    case F_STRING:
        if (!cJSON_IsString(v) || (i = (int64_t)utf8_length(v->valuestring)) < f->min ||
            i > f->max)
            return fm_err_set(err, "%s: expected a string of %" PRId64 "-%" PRId64 " characters",
                              f->name, f->min, f->max);
        if (!utf8_ok(v->valuestring))
            return fm_err_set(err, "%s: not valid UTF-8", f->name);
        break;
    case F_TENANT:
        if (!cJSON_IsString(v) || !fm_name_ok(v->valuestring, false))
            return fm_err_set(err, "%s: expected " FM_TENANT_RULE, f->name);
        break;
    case F_FUNCTION:
        if (!cJSON_IsString(v) || !fm_name_ok(v->valuestring, true))
            return fm_err_set(err, "%s: expected " FM_FUNCTION_RULE, f->name);
        break;
    case F_TIME:
        if (!cJSON_IsString(v) || fm_time_parse(v->valuestring, &r->time_us) != 0)
            return fm_err_set(err, "%s: expected an RFC 3339 UTC time from 1970 on, such as "
                                   "2026-01-31T12:00:00.000000Z",
                              f->name);
        if (time_is_canonical(v->valuestring))
            memcpy(r->time_text, v->valuestring, CANONICAL_TIME_LEN + 1);
        else
            fm_time_format(r->time_us, r->time_text, sizeof r->time_text);
        *text = r->time_text;
        return 0;
    case F_INT:
        if (!int_in_range(v, f->min, f->max, &i))
            return meter_record_int_refused((enum meter_field)(f - fields), err);
        r->ints[f - fields] = i;
        num[INT_TEXT_SIZE - 1] = '\0';
        *text = int_text(i, num + INT_TEXT_SIZE - 1);
        return 0;
    case F_BOOL:
        if (!cJSON_IsBool(v))
            return fm_err_set(err, "%s: expected true or false", f->name);
        *text = cJSON_IsTrue(v) ? "true" : "false";
        return 0;
    case F_ENUM:
        if (!cJSON_IsString(v) || enum_index(f->values, v->valuestring) < 0) {
            char list[160] = "";
            size_t len = 0;
            for (int k = 0; f->values[k] && len < sizeof list; k++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "",
                                        f->values[k]);
            return fm_err_set(err, "%s: expected one of %s", f->name, list);
        }
        break;
    }
    *text = v->valuestring;
    return 0;
}

static char columns[512];
static pthread_once_t columns_once = PTHREAD_ONCE_INIT;

static void make_columns(void)
{
    size_t len = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        len += (size_t)snprintf(columns + len, sizeof columns - len, "%s%s", i ? ", " : "",
                                fields[i].name);
}

const char *meter_record_columns(void)
{
    /* Worker threads ask at once on the first batches: build it exactly once. */
    pthread_once(&columns_once, make_columns);
    return columns;
}

/* Where the field called name is in the table, or MF_COUNT for an unknown name. */
static size_t field_index(const char *name, size_t guess)
{
    /* Records mostly list their fields in the table's order, skipping those of other
     * types: look from the one after the last found on. */
    for (size_t j = 0; j < MF_COUNT; j++) {
        size_t k = (guess + j) % MF_COUNT;
        if (strcmp(fields[k].name, name) == 0)
            return k;
    }
    return MF_COUNT;
}

/*
 * Each listed field's member in one pass over the object: the first of its name, as
 * cJSON_GetObjectItemCaseSensitive would find it (which also stops at a member without a
 * name), or NULL.
 */
static void find_fields(const cJSON *json, const cJSON *v[MF_COUNT])
{
    for (size_t k = 0; k < MF_COUNT; k++)
        v[k] = NULL;
    size_t guess = 0;
    for (const cJSON *m = json->child; m != NULL && m->string != NULL; m = m->next) {
        size_t k = field_index(m->string, guess);
        if (k == MF_COUNT)
            continue;
        if (v[k] == NULL)
            v[k] = m;
        guess = (k + 1) % MF_COUNT;
    }
}

/* The most either text of a record may hold. The fields' own limits keep both far below. */
#define RECORD_TEXT_MAX 8192

int meter_record_parse(const cJSON *json, struct meter_record *out, struct fm_err *err)
{
    struct meter_record r = {0};
    /* Both texts are built on the stack, then copied into one allocation. */
    char canon_mem[RECORD_TEXT_MAX + 1], copy_mem[RECORD_TEXT_MAX + 1];
    struct fm_buf canon, copy;
    fm_buf_init_fixed(&canon, canon_mem, sizeof canon_mem);
    fm_buf_init_fixed(&copy, copy_mem, sizeof copy_mem);
    bool first = true;

    if (!cJSON_IsObject(json))
        return fm_err_set(err, "record: expected a JSON object");
    const cJSON *v[MF_COUNT];
    find_fields(json, v);
    const cJSON *type = v[MF_TYPE];
    if (type == NULL)
        return fm_err_set(err, "type: missing (start, stop or resource)");
    if (!cJSON_IsString(type) || enum_index(record_types, type->valuestring) < 0)
        return fm_err_set(err, "type: expected one of start, stop, resource");
    int mask = type_mask(type->valuestring);
    for (size_t i = 0; i < MF_COUNT; i++) {
        const struct field *f = &fields[i];
        if (i > 0)
            fm_buf_append(&copy, "\t", 1);
        r.at[i] = (unsigned short)copy.len;
        r.len[i] = -1;
        char num[INT_TEXT_SIZE];
        const char *text = NULL;
        if (!(f->types & mask) || v[i] == NULL || (f->optional && cJSON_IsNull(v[i]))) {
            if ((f->types & mask) && !f->optional)
                return fm_err_set(err, "%s: missing (required in a %s record)", f->name,
                                  type->valuestring);
            /* A listed field of another type is checked all the same (null is absent), then
             * dropped. */
            struct meter_record scratch = {0};
            if (!(f->types & mask) && v[i] != NULL && !cJSON_IsNull(v[i]) &&
                check_field(f, v[i], &scratch, num, &text, err) != 0)
                return -1;
            fm_buf_append(&copy, "\\N", 2);
            continue;
        }
        if (check_field(f, v[i], &r, num, &text, err) != 0)
            return -1;
        fm_buf_append(&canon, first ? "{\"" : ",\"", 2);
        fm_buf_puts(&canon, f->name);
        fm_buf_append(&canon, "\":", 2);
        first = false;
        if (f->kind == F_STRING) {
            fm_buf_json_string(&canon, text);
            meter_copy_text(&copy, text);
        } else {
            /* Digits, true or false, names, listed words or the canonical time, checked
             * above: nothing in them needs escaping in JSON or in COPY text. */
            size_t n = strlen(text);
            bool quoted = f->kind != F_INT && f->kind != F_BOOL;
            if (quoted)
                fm_buf_append(&canon, "\"", 1);
            fm_buf_append(&canon, text, n);
            if (quoted)
                fm_buf_append(&canon, "\"", 1);
            fm_buf_append(&copy, text, n);
        }
        r.len[i] = (short)(copy.len - r.at[i]);
    }
    fm_buf_append(&canon, "}", 1);
    if (canon.failed || copy.failed)
        return fm_err_set(err, "record: too large");
    /* A stop alone dates its invocation by its time less its duration: usage before 1970
     * could be stored but never billed, as no period precedes 1970-01. */
    if (strcmp(type->valuestring, "stop") == 0 && r.time_us < r.ints[MF_DURATION_US])
        return fm_err_set(err, "duration_us: longer than the time since 1970-01-01, when "
                               "the invocation would have started");
    /* Lengths were checked against these buffers' sizes above. */
    memcpy(r.tenant, v[MF_TENANT]->valuestring, strlen(v[MF_TENANT]->valuestring) + 1);
    memcpy(r.type, type->valuestring, strlen(type->valuestring) + 1);
    if (fm_sha256(canon.data, canon.len, r.digest) != 0)
        return fm_err_set(err, "record: SHA-256 failed");
    const char *id = v[MF_ID]->valuestring, *inv = v[MF_INVOCATION_ID]->valuestring;
    size_t id_len = strlen(id), inv_len = strlen(inv);
    r.body = malloc(canon.len + 1 + copy.len + 1 + id_len + 1 + inv_len + 1);
    if (r.body == NULL)
        return fm_err_set(err, "out of memory");
    memcpy(r.body, canon.data, canon.len + 1);
    r.copy_row = r.body + canon.len + 1;
    memcpy(r.copy_row, copy.data, copy.len + 1);
    r.id = memcpy(r.copy_row + copy.len + 1, id, id_len + 1);
    r.invocation_id = memcpy((char *)r.id + id_len + 1, inv, inv_len + 1);
    *out = r;
    return 0;
}

void meter_record_digest_hex(const struct meter_record *r, char out[METER_DIGEST_HEX])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t k = 0; k < sizeof r->digest; k++) {
        out[2 * k] = hex[r->digest[k] >> 4];
        out[2 * k + 1] = hex[r->digest[k] & 15];
    }
    out[2 * sizeof r->digest] = '\0';
}

int64_t meter_record_int(const struct meter_record *r, enum meter_field f)
{
    return r->ints[f];
}

bool meter_record_is(const struct meter_record *r, enum meter_field f, const char *s)
{
    size_t n = strlen(s);
    return r->len[f] >= 0 && (size_t)r->len[f] == n && memcmp(r->copy_row + r->at[f], s, n) == 0;
}

void meter_record_put(struct fm_buf *b, const struct meter_record *r, enum meter_field f)
{
    if (r->len[f] < 0)
        fm_buf_puts(b, "\\N");
    else
        fm_buf_append(b, r->copy_row + r->at[f], (size_t)r->len[f]);
}

enum meter_field meter_record_int_field(const char *name, size_t len)
{
    for (size_t k = 0; k < MF_COUNT; k++)
        if (fields[k].kind == F_INT && len > 0 && fields[k].name[0] == name[0] &&
            strnlen(fields[k].name, len + 1) == len && memcmp(fields[k].name, name, len) == 0)
            return (enum meter_field)k;
    return MF_COUNT;
}

int meter_record_int_refused(enum meter_field f, struct fm_err *err)
{
    return fm_err_set(err, "%s: expected an integer %" PRId64 "-%" PRId64, fields[f].name,
                      fields[f].min, fields[f].max);
}

void meter_record_clear(struct meter_record *r)
{
    free(r->body); /* copy_row, id and invocation_id share its allocation */
    r->body = NULL;
    r->copy_row = NULL;
    r->id = r->invocation_id = NULL;
}
