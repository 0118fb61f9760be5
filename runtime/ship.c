#include "runtime/ship.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"

#define REPLY_MAX ((size_t)1024 * 1024)
#define BODY_MAX ((size_t)4 * 1024 * 1024)
#define BACKOFF_FIRST_US INT64_C(100000)
#define BACKOFF_MAX_US INT64_C(5000000)
#define REQUEST_MAX_MS INT64_C(30000)
#define LOOP_ROUND_US INT64_C(1000000)
#define LOOP_IDLE_US INT64_C(50000)
#define LOOP_CHANGE_LOG_US INT64_C(1000000)
#define LOOP_REPEAT_LOG_US INT64_C(60000000)

struct rt_shipper {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    struct fm_buf reply;
    int64_t retry_after_us; /* what the service asked for with its last 429 or 503 */
    /* Set for a background loop: requests then run to their own timeout whatever the
     * caller's deadline, and only this flag cuts one short. */
    const atomic_bool *stop;
};

/* How one POST went. */
enum attempt { ATTEMPT_DONE, ATTEMPT_RETRY, ATTEMPT_REFUSED };

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_reply(char *data, size_t size, size_t n, void *user)
{
    struct fm_buf *b = user;
    return fm_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

bool rt_ship_url_valid(const char *url)
{
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0)
        return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    /* The authority: [userinfo@]host[:port], up to the path, query or fragment. */
    const char *host = url + scheme, *end = host + strcspn(host, "/?#");
    for (const char *p = host; p < end; p++)
        if (*p == '@')
            host = p + 1;
    const char *port;
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (close == NULL || close == host + 1)
            return false;
        port = close + 1;
    } else {
        port = memchr(host, ':', (size_t)(end - host));
        if (port == NULL)
            port = end;
        if (port == host)
            return false;
    }
    if (port == end)
        return true;
    if (*port != ':' || port + 1 == end || end - port > 6)
        return false;
    long n = 0;
    for (const char *p = port + 1; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (*p - '0');
    }
    return n >= 1 && n <= 65535;
}

enum rt_status rt_shipper_new(const char *meter_url, const char *key, struct rt_shipper **out,
                              struct fm_err *err)
{
    if (meter_url == NULL || !rt_ship_url_valid(meter_url)) {
        fm_err_set(err, "expected an http:// or https:// URL for the metering service, got "
                        "'%s'", meter_url ? meter_url : "");
        return RT_EINVAL;
    }
    if (key && strpbrk(key, "\r\n")) {
        fm_err_set(err, "the metering key must be one line");
        return RT_EINVAL;
    }
    pthread_once(&curl_once, curl_init_once);
    enum rt_status st = RT_ENOMEM;
    struct fm_buf b;
    fm_buf_init(&b, 8192);
    struct rt_shipper *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        goto out;
    size_t n = strlen(meter_url);
    while (n > 0 && meter_url[n - 1] == '/')
        n--;
    fm_buf_printf(&b, "%.*s/v1/records", (int)n, meter_url);
    sh->url = fm_buf_steal(&b);
    sh->curl = curl_easy_init();
    sh->headers = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    /* curl would otherwise wait for a 100-continue on large bodies. */
    struct curl_slist *h = sh->headers ? curl_slist_append(sh->headers, "Expect:") : NULL;
    if (h && key && *key) {
        fm_buf_printf(&b, "Authorization: Bearer %s", key);
        h = b.failed ? NULL : curl_slist_append(h, b.data);
    }
    if (sh->url == NULL || sh->curl == NULL || h == NULL)
        goto out;
    fm_buf_init(&sh->reply, REPLY_MAX);
    curl_easy_setopt(sh->curl, CURLOPT_URL, sh->url);
    curl_easy_setopt(sh->curl, CURLOPT_HTTPHEADER, sh->headers);
    curl_easy_setopt(sh->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(sh->curl, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(sh->curl, CURLOPT_WRITEDATA, &sh->reply);
    curl_easy_setopt(sh->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    *out = sh;
    sh = NULL;
    st = RT_OK;
out:
    if (st != RT_OK)
        fm_err_set(err, "out of memory");
    fm_buf_free(&b);
    rt_shipper_free(sh);
    return st;
}

void rt_shipper_free(struct rt_shipper *sh)
{
    if (sh == NULL)
        return;
    if (sh->curl)
        curl_easy_cleanup(sh->curl);
    curl_slist_free_all(sh->headers);
    fm_buf_free(&sh->reply);
    free(sh->url);
    free(sh);
}

/* Put the service's own message into err when its error body says one. */
static void refused(struct rt_shipper *sh, long code, struct fm_err *err)
{
    cJSON *body = cJSON_Parse(sh->reply.data ? sh->reply.data : "");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(body, "message");
    fm_err_set(err, "metering service answered %ld: %s", code,
               cJSON_IsString(msg) ? msg->valuestring : "no message");
    cJSON_Delete(body);
}

/* Abort a transfer once the loop is told to stop. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const atomic_bool *stop = user;
    return atomic_load(stop) ? 1 : 0;
}

static enum attempt post(struct rt_shipper *sh, const struct fm_buf *body, int64_t deadline_us,
                         long *code, struct fm_err *err)
{
    /* A loop's deadline is only how often it looks for a stop: a slow service must still
     * get a whole request's time, or it would never be delivered anything. */
    int64_t left_ms = sh->stop ? REQUEST_MAX_MS : (deadline_us - fm_mono_us()) / 1000;
    if (left_ms <= 0) {
        fm_err_set(err, "deadline passed");
        return ATTEMPT_RETRY;
    }
    fm_buf_reset(&sh->reply);
    curl_easy_setopt(sh->curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(sh->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    long timeout_ms = (long)(left_ms < REQUEST_MAX_MS ? left_ms : REQUEST_MAX_MS);
    curl_easy_setopt(sh->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(sh->curl);
    if (rc != CURLE_OK) {
        fm_err_set(err, "%s: %s", sh->url, curl_easy_strerror(rc));
        return ATTEMPT_RETRY;
    }
    curl_easy_getinfo(sh->curl, CURLINFO_RESPONSE_CODE, code);
    if (*code == 200)
        return ATTEMPT_DONE;
    if (*code >= 500 || *code == 429) {
        curl_off_t after = 0;
        if (curl_easy_getinfo(sh->curl, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
            sh->retry_after_us = (int64_t)(after < 60 ? after : 60) * 1000000;
        fm_err_set(err, "metering service answered %ld", *code);
        return ATTEMPT_RETRY;
    }
    refused(sh, *code, err);
    return ATTEMPT_REFUSED;
}

/* Half of cap plus a random part of the other half. */
static int64_t jitter(int64_t cap)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint32_t)fm_mono_us();
    return cap / 2 + (int64_t)(r % (uint32_t)(cap / 2 + 1));
}

/* Exponential backoff with jitter, so that many runtimes do not retry in lockstep, but no
 * sooner than the service's Retry-After. Returns false when the wait would pass the
 * deadline. */
static bool back_off(struct rt_shipper *sh, int retry, int64_t deadline_us)
{
    int64_t cap = BACKOFF_FIRST_US << (retry < 6 ? retry : 6);
    if (cap > BACKOFF_MAX_US)
        cap = BACKOFF_MAX_US;
    int64_t wait = jitter(cap);
    if (sh->retry_after_us > wait)
        wait = sh->retry_after_us;
    sh->retry_after_us = 0;
    if (fm_mono_us() + wait >= deadline_us)
        return false;
    struct timespec ts = {wait / 1000000, (wait % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return true;
}

/* Apply a 200 answer: dead-letter what it rejected. sent maps body lines to batch lines. */
static enum rt_status apply_reply(struct rt_shipper *sh, struct rt_spool *spool,
                                  const struct rt_spool_batch *b, const size_t *sent,
                                  size_t nsent, struct rt_ship_stats *stats, struct fm_err *err)
{
    enum rt_status st = RT_OK;
    cJSON *reply = cJSON_Parse(sh->reply.data ? sh->reply.data : "");
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(reply, "accepted");
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(reply, "duplicates");
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(reply, "rejected");
    bool *named = calloc(nsent ? nsent : 1, sizeof *named);
    if (named == NULL) {
        st = RT_ENOMEM;
        fm_err_set(err, "out of memory");
        goto out;
    }
    if (!cJSON_IsNumber(acc) || !cJSON_IsNumber(dup) || (rej && !cJSON_IsArray(rej))) {
        fm_err_set(err, "metering service answered 200 without accepted/duplicates counts");
        st = RT_EREMOTE;
        goto out;
    }
    /*
     * The cursor moves past the batch only when the answer accounts for every record sent,
     * each once: accepted, a duplicate, or rejected by its own index. An answer that does
     * not (a proxy's, a service's fault) keeps the batch, to be sent again; what was stored
     * comes back as duplicates.
     */
    double n_acc = acc->valuedouble, n_dup = dup->valuedouble, n_rej = 0;
    bool whole = n_acc >= 0 && n_dup >= 0 && n_acc <= (double)nsent &&
                 n_dup <= (double)nsent && n_acc == (double)(size_t)n_acc &&
                 n_dup == (double)(size_t)n_dup;
    for (const cJSON *r = rej ? rej->child : NULL; whole && r; r = r->next, n_rej++) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(r, "index");
        whole = cJSON_IsNumber(idx) && idx->valuedouble >= 0 &&
                idx->valuedouble < (double)nsent &&
                idx->valuedouble == (double)(size_t)idx->valuedouble &&
                !named[(size_t)idx->valuedouble];
        if (whole)
            named[(size_t)idx->valuedouble] = true;
    }
    if (!whole || n_acc + n_dup + n_rej != (double)nsent) {
        fm_err_set(err,
                   "metering service answered 200 for %zu records without accounting for each"
                   " once (accepted %.0f, duplicates %.0f, rejected %.0f); they stay in the"
                   " spool",
                   nsent, n_acc, n_dup, n_rej);
        st = RT_EREMOTE;
        goto out;
    }
    stats->accepted += (size_t)n_acc;
    stats->duplicates += (size_t)n_dup;
    for (const cJSON *r = rej ? rej->child : NULL; r; r = r->next) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(r, "index");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(r, "error");
        size_t line = sent[(size_t)idx->valuedouble];
        st = rt_spool_dead_letter(spool, b->line[line], b->line_len[line],
                                  cJSON_IsString(why) ? why->valuestring : "rejected", err);
        if (st != RT_OK)
            goto out;
        stats->dead_lettered++;
    }
out:
    free(named);
    cJSON_Delete(reply);
    return st;
}

/* Build the body from the batch's lines. Lines that are not JSON (a record torn by a crash)
 * stay out of it, listed in bad: one of them would make the service refuse the whole
 * batch. */
static enum rt_status build_body(const struct rt_spool_batch *b, struct fm_buf *body,
                                 size_t *sent, size_t *nsent, size_t *bad, size_t *nbad,
                                 struct fm_err *err)
{
    *nsent = *nbad = 0;
    for (size_t i = 0; i < b->nlines; i++) {
        cJSON *rec = fm_json_parse(b->line[i], b->line_len[i], NULL);
        bool is_object = cJSON_IsObject(rec);
        cJSON_Delete(rec);
        if (!is_object) {
            bad[(*nbad)++] = i;
            continue;
        }
        fm_buf_append(body, b->line[i], b->line_len[i]);
        fm_buf_append(body, "\n", 1);
        sent[(*nsent)++] = i;
    }
    if (body->failed) {
        fm_err_set(err, "batch larger than %zu bytes", body->limit);
        return RT_ENOMEM;
    }
    return RT_OK;
}

/* Ship one batch until it is answered, refused or the deadline passes. A refusal's HTTP
 * status goes to *refused_code. */
static enum rt_status ship_batch(struct rt_shipper *sh, struct rt_spool *spool,
                                 const struct rt_spool_batch *b, int64_t deadline_us,
                                 struct rt_ship_stats *stats, long *refused_code,
                                 struct fm_err *err)
{
    struct fm_buf body;
    fm_buf_init(&body, BODY_MAX);
    size_t nsent = 0, nbad = 0;
    size_t *sent = calloc(b->nlines, sizeof *sent), *bad = calloc(b->nlines, sizeof *bad);
    enum rt_status st = sent && bad ? build_body(b, &body, sent, &nsent, bad, &nbad, err)
                                    : RT_ENOMEM;
    for (int retry = 0; st == RT_OK && nsent > 0; retry++) {
        long code = 0;
        enum attempt a = post(sh, &body, deadline_us, &code, err);
        if (a == ATTEMPT_DONE) {
            st = apply_reply(sh, spool, b, sent, nsent, stats, err);
            stats->batches += st == RT_OK;
            break;
        }
        if (a == ATTEMPT_REFUSED) {
            *refused_code = code;
            st = RT_EREMOTE;
            break;
        }
        if (!back_off(sh, retry, deadline_us)) {
            fm_err_prefix(err, "gave up before the deadline");
            st = RT_ETIMEDOUT;
            break;
        }
        stats->retries++;
    }
    /*
     * Unreadable lines are dead-lettered only now, right before the cursor moves past them:
     * written while the batch is still to be retried, they would be written again on every
     * attempt for as long as the service is down. A crash between the two repeats them
     * once, no more.
     */
    for (size_t i = 0; st == RT_OK && i < nbad; i++) {
        st = rt_spool_dead_letter(spool, b->line[bad[i]], b->line_len[bad[i]],
                                  "not a JSON object in the spool", err);
        stats->dead_lettered += st == RT_OK;
    }
    if (st == RT_OK)
        st = rt_spool_commit(spool, b, err);
    free(bad);
    free(sent);
    fm_buf_free(&body);
    return st;
}

static enum rt_status claim(struct rt_spool *spool, int64_t deadline_us, struct fm_err *err)
{
    for (;;) {
        enum rt_status st = rt_spool_claim(spool, err);
        if (st != RT_EBUSY)
            return st;
        if (fm_mono_us() + 50000 >= deadline_us) {
            fm_err_prefix(err, "gave up before the deadline");
            return RT_ETIMEDOUT;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

enum rt_status rt_ship_spool(struct rt_shipper *sh, struct rt_spool *spool, int64_t deadline_us,
                             struct rt_ship_stats *stats, struct fm_err *err)
{
    struct rt_ship_stats ignored = {0};
    if (stats == NULL)
        stats = &ignored;
    enum rt_status st = claim(spool, deadline_us, err);
    /* A batch the service finds too large (413, a --body-limit below this batch) is sent
     * again in halves, down to one record, which is then dead-lettered: else it would stop
     * the spool for good, and the spool would fill. */
    size_t max = RT_SHIP_BATCH;
    while (st == RT_OK) {
        struct rt_spool_batch b = {0};
        st = rt_spool_next_batch(spool, max, &b, err);
        if (st != RT_OK || b.nlines == 0) {
            rt_spool_batch_free(&b);
            break;
        }
        long refused = 0;
        st = ship_batch(sh, spool, &b, deadline_us, stats, &refused, err);
        if (st == RT_EREMOTE && refused == 413 && b.nlines > 1) {
            max = b.nlines / 2;
            st = RT_OK;
        } else if (st == RT_EREMOTE && refused == 413) {
            st = rt_spool_dead_letter(spool, b.line[0], b.line_len[0],
                                      "larger than the metering service takes (413)", err);
            stats->dead_lettered += st == RT_OK;
            if (st == RT_OK)
                st = rt_spool_commit(spool, &b, err);
        } else if (st == RT_OK && max < RT_SHIP_BATCH) {
            max = 2 * max < RT_SHIP_BATCH ? 2 * max : RT_SHIP_BATCH;
        }
        rt_spool_batch_free(&b);
    }
    return st;
}

struct rt_ship_loop {
    struct rt_shipper *sh;
    struct rt_spool *spool;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop, kicked;
    atomic_bool stopping; /* stop, readable by curl's progress callback without the lock */
};

/* Sleep up to us, or less when kicked or stopped. */
static void loop_wait(struct rt_ship_loop *l, int64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (us % 1000000) * 1000;
    ts.tv_sec += us / 1000000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&l->lock);
    while (!l->stop && !l->kicked)
        if (pthread_cond_timedwait(&l->wake, &l->lock, &ts) != 0)
            break;
    l->kicked = false;
    pthread_mutex_unlock(&l->lock);
}

/* Say on stderr why shipping fails: at its first failure, when the reason changes (at most
 * once a second) and otherwise once a minute, so that a bad key or an unreachable service
 * is seen without flooding the log. */
static void loop_report(const char *msg, char *last, size_t last_size, int64_t *last_at_us)
{
    int64_t now = fm_mono_us();
    bool first = last[0] == '\0', changed = strcmp(msg, last) != 0;
    if (!first && now - *last_at_us < (changed ? LOOP_CHANGE_LOG_US : LOOP_REPEAT_LOG_US))
        return;
    fm_warn("shipping records failed%s: %s", changed ? "" : " still", msg);
    snprintf(last, last_size, "%s", msg);
    *last_at_us = now;
}

static void *loop_run(void *arg)
{
    struct rt_ship_loop *l = arg;
    int failures = 0;
    char last_failure[sizeof ((struct fm_err *)NULL)->msg] = "";
    int64_t last_logged_us = 0;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        bool stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        struct fm_err err = {""};
        /* Short rounds, so that a stop request is never kept waiting for long. */
        enum rt_status st = rt_ship_spool(l->sh, l->spool, fm_mono_us() + LOOP_ROUND_US, NULL,
                                          &err);
        if (st == RT_OK) {
            if (failures > 0 && last_failure[0] != '\0')
                fm_info("shipping records works again");
            last_failure[0] = '\0';
            failures = 0;
            loop_wait(l, LOOP_IDLE_US);
            continue;
        }
        if (!atomic_load(&l->stopping))
            loop_report(err.msg, last_failure, sizeof last_failure, &last_logged_us);
        int64_t cap = BACKOFF_FIRST_US << (failures < 6 ? failures : 6);
        failures++;
        loop_wait(l, jitter(cap > BACKOFF_MAX_US ? BACKOFF_MAX_US : cap));
    }
    return NULL;
}

enum rt_status rt_ship_loop_start(const char *dir, const char *meter_url, const char *key,
                                  struct rt_ship_loop **out, struct fm_err *err)
{
    struct rt_ship_loop *l = calloc(1, sizeof *l);
    if (l == NULL) {
        fm_err_set(err, "out of memory");
        return RT_ENOMEM;
    }
    enum rt_status st = rt_shipper_new(meter_url, key, &l->sh, err);
    if (st == RT_OK)
        st = rt_spool_open(dir, 0, &l->spool, err);
    if (st != RT_OK) {
        rt_shipper_free(l->sh);
        free(l);
        return st;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    atomic_init(&l->stopping, false);
    l->sh->stop = &l->stopping;
    curl_easy_setopt(l->sh->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(l->sh->curl, CURLOPT_XFERINFODATA, &l->stopping);
    curl_easy_setopt(l->sh->curl, CURLOPT_NOPROGRESS, 0L);
    if (pthread_create(&l->thread, NULL, loop_run, l) != 0) {
        fm_err_set(err, "cannot start the shipper thread");
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        rt_spool_close(l->spool);
        rt_shipper_free(l->sh);
        free(l);
        return RT_EIO;
    }
    *out = l;
    return RT_OK;
}

void rt_ship_loop_kick(struct rt_ship_loop *l)
{
    pthread_mutex_lock(&l->lock);
    l->kicked = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
}

enum rt_status rt_ship_loop_stop(struct rt_ship_loop *l, int64_t deadline_us, struct fm_err *err)
{
    if (l == NULL)
        return RT_OK;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    atomic_store(&l->stopping, true);
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    /* The last attempt is bounded by the caller's deadline, not cut short by the stop. */
    l->sh->stop = NULL;
    curl_easy_setopt(l->sh->curl, CURLOPT_NOPROGRESS, 1L);
    enum rt_status st = rt_ship_spool(l->sh, l->spool, deadline_us, NULL, err);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    rt_spool_close(l->spool);
    rt_shipper_free(l->sh);
    free(l);
    return st;
}
