/* POST /v1/records: validate a batch of usage records and store the valid ones once. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "meter/api.h"
#include "meter/metrics.h"
#include "meter/record.h"

#define RECORDS_PER_REQUEST_MAX 10000

/*
 * A batch's parsed JSON lives in an arena: a record's tree is some fifty small allocations,
 * all freed together when the request ends. cJSON's allocation hooks are process-wide and
 * other code uses cJSON too, so the hooks are malloc and free for everyone but the thread
 * that is parsing a batch, and only while it parses: then they take from that batch's arena,
 * and free is a no-op for memory inside it. Trees are never freed node by node: batch_free
 * drops the arena whole, and each line of NDJSON empties it for the next.
 */
struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    _Alignas(max_align_t) char mem[];
};

struct arena {
    struct arena_chunk *chunks; /* newest first */
};

#define ARENA_CHUNK_MIN (64u * 1024)

static _Thread_local struct arena *parsing_into; /* the arena this thread takes from */

static void *arena_malloc(size_t n)
{
    struct arena *a = parsing_into;
    if (a == NULL)
        return malloc(n);
    size_t align = _Alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + align - 1) / align * align;
    struct arena_chunk *c = a->chunks;
    if (c == NULL || c->size - c->used < n) {
        /* Each chunk twice the last: a batch of any size takes a few. */
        size_t size = c ? 2 * c->size : ARENA_CHUNK_MIN;
        while (size < n)
            size *= 2;
        struct arena_chunk *grown = malloc(sizeof *grown + size);
        if (grown == NULL)
            return NULL;
        *grown = (struct arena_chunk){.next = c, .size = size};
        a->chunks = c = grown;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

static bool in_arena(const struct arena *a, const void *p)
{
    uintptr_t u = (uintptr_t)p;
    for (const struct arena_chunk *c = a->chunks; c; c = c->next)
        if (u >= (uintptr_t)c->mem && u < (uintptr_t)c->mem + c->size)
            return true;
    return false;
}

static void arena_free(void *p)
{
    /* cJSON frees while parsing only what it allocated then (a tree that failed, in part). */
    struct arena *a = parsing_into;
    if (a != NULL && in_arena(a, p))
        return;
    free(p);
}

static void arena_release(struct arena *a)
{
    while (a->chunks) {
        struct arena_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
}

/* Empty the arena for reuse: its newest chunk, the largest, is kept. */
static void arena_clear(struct arena *a)
{
    struct arena_chunk *keep = a->chunks;
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

/* The records of a JSON array or of NDJSON lines. A line of NDJSON that does not parse is
 * that record's error; a JSON body that does not parse is the request's. */
struct line {
    const char *text;
    size_t len;
};

struct batch {
    size_t n;
    cJSON **items;      /* a JSON body's records */
    cJSON *array;       /* a JSON body, parsed; in arena */
    struct line *lines; /* NDJSON's records, each parsed into the arena when its turn comes */
    struct arena arena;
};

/* cJSON ends a string at a \u0000 escape or at a zero byte, so two different ids could
 * become one: such text is refused before parsing. */
static bool has_nul(const char *text, size_t len)
{
    if (memchr(text, '\0', len) != NULL)
        return true;
    /* Most bodies hold no backslash at all: look for those, and only then for the rest.
     * An escape is a backslash and the character after it: in \\u0000 the second backslash
     * is the one escaped, and u0000 is text. */
    const char *end = text + len;
    for (const char *p = text; (p = memchr(p, '\\', (size_t)(end - p))) != NULL; p += 2) {
        if (end - p >= 6 && memcmp(p, "\\u0000", 6) == 0)
            return true;
        if (end - p < 2)
            break;
    }
    return false;
}

#define NUL_ERROR "strings may not contain \\u0000 or a zero byte"

static void batch_free(struct batch *b)
{
    arena_release(&b->arena); /* every tree with it */
    free(b->items);
    free(b->lines);
}

/* cJSON_ParseWithLength into the batch's arena. */
static cJSON *parse_into(struct batch *b, const char *text, size_t len)
{
    parsing_into = &b->arena;
    cJSON *json = cJSON_ParseWithLength(text, len);
    parsing_into = NULL;
    return json;
}

static int batch_parse(const char *body, size_t len, bool ndjson, struct batch *out,
                       const char **why)
{
    struct batch b = {0};
    if (!ndjson) {
        if (has_nul(body, len)) {
            *why = NUL_ERROR;
            goto fail;
        }
        b.array = parse_into(&b, body, len);
        if (b.array == NULL || !cJSON_IsArray(b.array)) {
            *why = "the body is not a JSON array of records";
            goto fail;
        }
        b.n = (size_t)cJSON_GetArraySize(b.array);
        if (b.n > RECORDS_PER_REQUEST_MAX) {
            *why = "more than 10000 records in one request";
            goto fail;
        }
        b.items = calloc(b.n ? b.n : 1, sizeof *b.items);
        if (b.items == NULL)
            goto oom;
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
            if (b.n == RECORDS_PER_REQUEST_MAX) {
                *why = "more than 10000 records in one request";
                goto fail;
            }
            if (b.n == cap) {
                struct line *grown = realloc(b.lines, 2 * cap * sizeof *b.lines);
                if (grown == NULL)
                    goto oom;
                b.lines = grown;
                cap *= 2;
            }
            b.lines[b.n++] = (struct line){body + s, end - s};
        }
        at = end + 1;
    }
    *out = b;
    return 0;
oom:
    *why = "out of memory";
fail:
    batch_free(&b);
    return -1;
}

/*
 * Record i of the batch, or NULL for a line that does not parse. A line of NDJSON is parsed
 * only now, in place of the line before (the caller is done with that one): its tree stays in
 * the few kilobytes the cache holds instead of a whole batch's worth of trees.
 */
static const cJSON *batch_record(struct batch *b, size_t i)
{
    if (b->lines == NULL)
        return b->items[i];
    arena_clear(&b->arena);
    const struct line *l = &b->lines[i];
    return has_nul(l->text, l->len) ? NULL : parse_into(b, l->text, l->len);
}

/* A batch from its parsing to its answer, which comes from a writer thread when the
 * records are stored. */
struct records_job {
    const struct api_request *req;
    struct batch batch;
    struct meter_record *recs; /* the valid records */
    size_t *origin;            /* each valid record's index in the batch */
    enum meter_outcome *outcomes;
    struct fm_buf rejected; /* the "rejected" array's members so far */
    size_t valid, nrejected;
};

static void job_free(struct records_job *j)
{
    for (size_t i = 0; i < j->valid; i++)
        meter_record_clear(&j->recs[i]);
    free(j->recs);
    free(j->origin);
    free(j->outcomes);
    fm_buf_free(&j->rejected);
    batch_free(&j->batch);
    free(j);
}

/* The 200 once the valid records have their outcomes. */
static struct reply job_reply(struct records_job *j)
{
    size_t accepted = 0, duplicates = 0;
    for (size_t i = 0; i < j->valid; i++) {
        if (j->outcomes[i] == METER_ACCEPTED)
            accepted++;
        else if (j->outcomes[i] == METER_DUPLICATE)
            duplicates++;
        else
            fm_buf_printf(&j->rejected,
                          "%s{\"index\":%zu,\"error\":\"id: already stored with different "
                          "content (conflict)\"}",
                          j->nrejected++ ? "," : "", j->origin[i]);
    }
    metrics_records(j->batch.n, accepted, duplicates, j->nrejected);
    struct fm_buf out;
    fm_buf_init(&out, 9u << 20);
    fm_buf_printf(&out, "{\"accepted\":%zu,\"duplicates\":%zu,\"rejected\":[%s]}", accepted,
                  duplicates, j->rejected.data ? j->rejected.data : "");
    char *body = fm_buf_steal(&out);
    return body ? reply_json(200, body) : reply_error(E_INTERNAL, "reply too large");
}

static void on_stored(void *arg, int rc, const struct fm_err *err)
{
    struct records_job *j = arg;
    struct reply r;
    if (rc == 0) {
        r = job_reply(j);
    } else if (rc == METER_GROUP_STOPPED) {
        r = reply_error(E_UNAVAILABLE, "meterd is stopping; retry later");
    } else {
        fm_warn("storing %zu records: %s", j->valid, err->msg);
        metrics_db_error();
        r = reply_error(E_UNAVAILABLE, "the database is unavailable; retry later");
    }
    const struct api_request *req = j->req;
    job_free(j);
    api_answer(req, r);
}

struct reply api_post_records(const struct api_request *req)
{
    struct reply refusal;
    struct meter_key key;
    if (!api_authenticate(req, &key, &refusal))
        return refusal;
    if (strcmp(key.role, "ingest") != 0 && strcmp(key.role, "admin") != 0)
        return reply_error(E_FORBIDDEN, "%s", "records need an ingest or admin key");
    bool ndjson = api_content_type_is(req, "application/x-ndjson");
    if (!ndjson && !api_content_type_is(req, "application/json"))
        return reply_error(E_MEDIA_TYPE, "Content-Type must be application/json (an array of "
                                         "records) or application/x-ndjson");

    struct records_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return reply_error(E_INTERNAL, "out of memory");
    j->req = req;
    fm_buf_init(&j->rejected, 8u << 20);
    const char *why = NULL;
    if (batch_parse(req->body, req->body_len, ndjson, &j->batch, &why) != 0) {
        free(j);
        return reply_error(E_BAD_REQUEST, "%s", why);
    }
    size_t n = j->batch.n ? j->batch.n : 1;
    j->recs = calloc(n, sizeof *j->recs);
    j->origin = calloc(n, sizeof *j->origin);
    j->outcomes = calloc(n, sizeof *j->outcomes);
    if (j->recs == NULL || j->origin == NULL || j->outcomes == NULL) {
        job_free(j);
        return reply_error(E_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < j->batch.n; i++) {
        struct fm_err rerr;
        const cJSON *item = batch_record(&j->batch, i);
        if (item == NULL)
            fm_err_set(&rerr, "record: not valid JSON, or a string holds \\u0000 or a zero "
                              "byte");
        else if (meter_record_parse(item, &j->recs[j->valid], &rerr) == 0) {
            j->origin[j->valid++] = i;
            continue;
        }
        fm_buf_printf(&j->rejected, "%s{\"index\":%zu,\"error\":", j->nrejected++ ? "," : "",
                      i);
        fm_buf_json_string(&j->rejected, rerr.msg);
        fm_buf_puts(&j->rejected, "}");
    }
    if (j->valid == 0) {
        struct reply r = job_reply(j);
        job_free(j);
        return r;
    }
    /* The answer comes once the records are committed, without holding this thread. */
    api_defer(req);
    meter_group_submit(req->group, j->recs, j->valid, j->outcomes, on_stored, j);
    return REPLY_LATER;
}
