/* POST /v1/records: validate a batch of usage records and store the valid ones once. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "meter/api.h"
#include "meter/batch.h"
#include "meter/metrics.h"
#include "meter/record.h"

/* How far ahead of meterd's clock a record may be dated: clocks differ, by less. */
#define FUTURE_MAX_US (INT64_C(86400) * 1000000)

/* A batch from its parsing to its answer, which comes from a writer thread when the
 * records are stored. */
struct records_job {
    const struct api_request *req;
    struct meter_batch batch;
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
    meter_batch_free(&j->batch);
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
                                         "records) or application/x-ndjson, in UTF-8");

    struct records_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return reply_error(E_INTERNAL, "out of memory");
    j->req = req;
    fm_buf_init(&j->rejected, 8u << 20);
    struct fm_err why;
    if (meter_batch_parse(req->body, req->body_len, ndjson, &j->batch, &why) != 0) {
        free(j);
        return reply_error(E_BAD_REQUEST, "%s", why.msg);
    }
    size_t n = j->batch.n ? j->batch.n : 1;
    j->recs = calloc(n, sizeof *j->recs);
    j->origin = calloc(n, sizeof *j->origin);
    j->outcomes = calloc(n, sizeof *j->outcomes);
    if (j->recs == NULL || j->origin == NULL || j->outcomes == NULL) {
        job_free(j);
        return reply_error(E_INTERNAL, "out of memory");
    }
    /* A record dated further ahead comes from a clock gone wrong; each month it names
     * would also get partitions of its own. */
    int64_t latest = fm_wall_us() + FUTURE_MAX_US;
    for (size_t i = 0; i < j->batch.n; i++) {
        struct fm_err rerr;
        const cJSON *item = meter_batch_record(&j->batch, i);
        if (item == NULL)
            fm_err_set(&rerr, "record: not one valid JSON value on its line, or a string "
                              "holds \\u0000 or a zero byte");
        else if (meter_record_parse(item, &j->recs[j->valid], &rerr) == 0) {
            int written = meter_batch_written_int(&j->batch, i);
            if (written < 0 && j->recs[j->valid].time_us <= latest) {
                j->origin[j->valid++] = i;
                continue;
            }
            meter_record_clear(&j->recs[j->valid]);
            if (written >= 0)
                meter_record_int_refused((enum meter_field)written, &rerr);
            else
                fm_err_set(&rerr, "time: more than a day ahead of meterd's clock");
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
