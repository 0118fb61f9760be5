/* The records of a request body, parsed into an arena of their own. */
#include "meter/batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "meter/record.h"

/*
 * A batch's parsed JSON lives in an arena: a record's tree is some fifty small allocations,
 * all freed together when the request ends. cJSON's allocation hooks are process-wide and
 * other code uses cJSON too, so the hooks are malloc and free for everyone but the thread
 * that is parsing a batch, and only while it parses: then they take from that batch's arena,
 * and free is a no-op for memory inside it. Trees are never freed node by node:
 * meter_batch_free drops the arena whole, and each line of NDJSON empties it for the next.
 */
struct meter_batch_chunk {
    struct meter_batch_chunk *next;
    size_t size, used;
    _Alignas(max_align_t) char mem[];
};

#define ARENA_CHUNK_MIN (64u * 1024)

/* The arena this thread takes from. */
static _Thread_local struct meter_batch_arena *parsing_into;

static void *arena_malloc(size_t n)
{
    struct meter_batch_arena *a = parsing_into;
    if (a == NULL)
        return malloc(n);
    size_t align = _Alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + align - 1) / align * align;
    struct meter_batch_chunk *c = a->chunks;
    if (c == NULL || c->size - c->used < n) {
        /* Each chunk twice the last: a batch of any size takes a few. */
        size_t size = c ? 2 * c->size : ARENA_CHUNK_MIN;
        while (size < n)
            size *= 2;
        struct meter_batch_chunk *grown = malloc(sizeof *grown + size);
        if (grown == NULL)
            return NULL;
        *grown = (struct meter_batch_chunk){.next = c, .size = size};
        a->chunks = c = grown;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

static bool in_arena(const struct meter_batch_arena *a, const void *p)
{
    uintptr_t u = (uintptr_t)p;
    for (const struct meter_batch_chunk *c = a->chunks; c; c = c->next)
        if (u >= (uintptr_t)c->mem && u < (uintptr_t)c->mem + c->size)
            return true;
    return false;
}

static void arena_free(void *p)
{
    /* cJSON frees while parsing only what it allocated then (a tree that failed, in part). */
    struct meter_batch_arena *a = parsing_into;
    if (a != NULL && in_arena(a, p))
        return;
    free(p);
}

static void arena_release(struct meter_batch_arena *a)
{
    while (a->chunks) {
        struct meter_batch_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
}

/* Empty the arena for reuse: its newest chunk, the largest, is kept. */
static void arena_clear(struct meter_batch_arena *a)
{
    struct meter_batch_chunk *keep = a->chunks;
    if (keep == NULL)
        return;
    a->chunks = keep->next;
    arena_release(a);
    keep->next = NULL;
    keep->used = 0;
    a->chunks = keep;
}

/* Set the hooks before main, while no thread can be inside cJSON. */
__attribute__((constructor)) static void install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {.malloc_fn = arena_malloc, .free_fn = arena_free};
    cJSON_InitHooks(&hooks);
}

struct meter_batch_line {
    const char *text;
    size_t len;
};

/* The integer field a member's name (the text between its quotes) names, or -1. A name
 * with escapes is read back first: \u0064uration_us is duration_us. Any other escape
 * stands for a character no field name holds (a quote, a slash, a control character). */
static int int_field_of(const char *raw, size_t len)
{
    if (memchr(raw, '\\', len) == NULL) {
        enum meter_field f = meter_record_int_field(raw, len);
        return f == MF_COUNT ? -1 : (int)f;
    }
    char name[32];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c == '\\') {
            if (i + 5 >= len || raw[i + 1] != 'u')
                return -1;
            unsigned u = 0;
            for (size_t k = i + 2; k <= i + 5; k++) {
                char h = raw[k];
                int v = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (v < 0)
                    return -1;
                u = u * 16 + (unsigned)v;
            }
            if (u == 0 || u >= 0x80)
                return -1;
            c = (char)u;
            i += 5;
        }
        if (n == sizeof name)
            return -1;
        name[n++] = c;
    }
    enum meter_field f = meter_record_int_field(name, n);
    return f == MF_COUNT ? -1 : (int)f;
}

/* Where the string whose text starts at t[i] ends (its closing quote), or len. */
static size_t string_end(const char *t, size_t i, size_t len)
{
    for (size_t from = i;;) {
        const char *q = memchr(t + i, '"', len - i);
        if (q == NULL)
            return len;
        size_t at = (size_t)(q - t), escapes = 0;
        while (at - escapes > from && t[at - escapes - 1] == '\\')
            escapes++;
        if (escapes % 2 == 0)
            return at;
        i = at + 1; /* an escaped quote: the string goes on */
    }
}

static bool in_number(char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E';
}

/*
 * meter_batch_written_int for the records in text, which cJSON parsed already: one record
 * when depth is 1, an array of n records when it is 2 (out[k] for the k-th). Records are
 * the objects at that depth; only their own members count, not those of nested values.
 */
static void scan_written_ints(const char *t, size_t len, int depth_of_records, int *out,
                              size_t n)
{
    int depth = 0, field = -1;
    size_t rec = 0;
    bool expect_name = false;
    uint32_t seen = 0; /* integer fields whose first member was met, in this record */
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        bool here = depth == depth_of_records;
        if (c == '"') {
            size_t from = ++i;
            i = string_end(t, from, len);
            if (here && expect_name) {
                expect_name = false;
                field = int_field_of(t + from, i - from);
                if (field >= 0 && (seen & (UINT32_C(1) << field)))
                    field = -1; /* a later member of the name: not the one read */
                else if (field >= 0)
                    seen |= UINT32_C(1) << field;
            }
        } else if (c == '{' || c == '[') {
            depth++;
            if (depth == depth_of_records && c == '{') {
                expect_name = true;
                seen = 0;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',') {
            if (here)
                expect_name = true;
            else if (depth == depth_of_records - 1)
                rec++;
            field = -1;
        } else if (here && (c == '-' || (c >= '0' && c <= '9'))) {
            /* Digits and a sign only, and no leading zero (0128 is not JSON, though cJSON
             * reads it as 128). */
            size_t lead = i + (c == '-');
            bool integer = !(lead + 1 < len && t[lead] == '0' && t[lead + 1] >= '0' &&
                             t[lead + 1] <= '9');
            for (; i + 1 < len && in_number(t[i + 1]); i++)
                integer &= t[i + 1] != '.' && t[i + 1] != 'e' && t[i + 1] != 'E';
            if (field >= 0 && !integer && rec < n && out[rec] < 0)
                out[rec] = field;
            field = -1;
        }
    }
}

void meter_batch_free(struct meter_batch *b)
{
    arena_release(&b->arena); /* every tree with it */
    free(b->items);
    free(b->lines);
    free(b->written);
}

/* One JSON value, whitespace around it, into the batch's arena. */
static cJSON *parse_into(struct meter_batch *b, const char *text, size_t len,
                         const char **stop)
{
    parsing_into = &b->arena;
    cJSON *json = fm_json_parse(text, len, stop);
    parsing_into = NULL;
    return json;
}

/* How deep in arrays and objects the text is at byte at, strings skipped. */
static int depth_at(const char *t, size_t at)
{
    int depth = 0;
    for (size_t i = 0; i < at; i++) {
        if (t[i] == '"')
            i = string_end(t, i + 1, at);
        else if (t[i] == '[' || t[i] == '{')
            depth++;
        else if (t[i] == ']' || t[i] == '}')
            depth--;
    }
    return depth;
}

/* Why a JSON body whose parse stopped at stop (NULL: it is JSON) is refused. */
static void refuse_body(const char *body, size_t len, const char *stop, struct fm_err *why)
{
    static const char head[] = "the body is not a JSON array of records";
    size_t at = stop ? (size_t)(stop - body) : len;
    if (stop == NULL)
        fm_err_set(why, "%s", head);
    else if (at >= len)
        fm_err_set(why, "%s: it ends before its JSON does", head);
    else if (depth_at(body, at) >= CJSON_NESTING_LIMIT)
        fm_err_set(why, "%s: nested deeper than %d levels, at byte %zu", head,
                   CJSON_NESTING_LIMIT, at + 1);
    else
        fm_err_set(why, "%s: not JSON at byte %zu", head, at + 1);
}

int meter_batch_parse(const char *body, size_t len, bool ndjson, struct meter_batch *out,
                      struct fm_err *why)
{
    struct meter_batch b = {0};
    if (!ndjson) {
        if (fm_json_has_nul(body, len)) {
            fm_err_set(why, "%s", FM_JSON_NUL_ERROR);
            goto fail;
        }
        const char *stop = NULL;
        b.array = parse_into(&b, body, len, &stop);
        if (b.array == NULL || !cJSON_IsArray(b.array)) {
            refuse_body(body, len, b.array == NULL ? stop : NULL, why);
            goto fail;
        }
        b.n = (size_t)cJSON_GetArraySize(b.array);
        if (b.n > METER_BATCH_MAX) {
            fm_err_set(why, "more than 10000 records in one request");
            goto fail;
        }
        b.items = calloc(b.n ? b.n : 1, sizeof *b.items);
        b.written = malloc((b.n ? b.n : 1) * sizeof *b.written);
        if (b.items == NULL || b.written == NULL)
            goto oom;
        for (size_t k = 0; k < b.n; k++)
            b.written[k] = -1;
        scan_written_ints(body, len, 2, b.written, b.n);
        size_t i = 0;
        for (cJSON *it = b.array->child; it; it = it->next)
            b.items[i++] = it;
        *out = b;
        return 0;
    }
    size_t cap = 64;
    b.lines = calloc(cap, sizeof *b.lines);
    if (b.lines == NULL)
        goto oom;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(body + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t s = at;
        while (s < end && (body[s] == ' ' || body[s] == '\t' || body[s] == '\r'))
            s++;
        if (s < end) {
            if (b.n == METER_BATCH_MAX) {
                fm_err_set(why, "more than 10000 records in one request");
                goto fail;
            }
            if (b.n == cap) {
                struct meter_batch_line *grown = realloc(b.lines, 2 * cap * sizeof *b.lines);
                if (grown == NULL)
                    goto oom;
                b.lines = grown;
                cap *= 2;
            }
            b.lines[b.n++] = (struct meter_batch_line){body + s, end - s};
        }
        at = end + 1;
    }
    *out = b;
    return 0;
oom:
    fm_err_set(why, "out of memory");
fail:
    meter_batch_free(&b);
    return -1;
}

/* An NDJSON line parsed only when its turn comes, in the place of the line before: its tree
 * stays in the few kilobytes the cache holds instead of a whole batch's worth of trees. */
const cJSON *meter_batch_record(struct meter_batch *b, size_t i)
{
    if (b->lines == NULL)
        return b->items[i];
    arena_clear(&b->arena);
    const struct meter_batch_line *l = &b->lines[i];
    return fm_json_has_nul(l->text, l->len) ? NULL : parse_into(b, l->text, l->len, NULL);
}

int meter_batch_line_written_int(const char *text, size_t len)
{
    int field = -1;
    scan_written_ints(text, len, 1, &field, 1);
    return field;
}

int meter_batch_written_int(const struct meter_batch *b, size_t i)
{
    if (b->lines == NULL)
        return b->written[i];
    return meter_batch_line_written_int(b->lines[i].text, b->lines[i].len);
}
