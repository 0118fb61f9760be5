/*
 * faasrun serve as a user meets it: a real process on a free port, driven over HTTP, its
 * records shipped to a test metering service (libmicrohttpd on port 0) that keeps each
 * record id once, as meterd does.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "runtime/cgroup.h"
#include "tests/proc.h"
#include "tests/suites.h"

static char tmp[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmp, sizeof tmp, "/tmp/faasmeter-serve-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in_tmp(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", tmp, name);
    return p;
}

/* ---------------------------------------------------------------- a deduplicating meter */

struct meter {
    struct MHD_Daemon *daemon;
    unsigned port;
    pthread_mutex_t lock;
    bool down;           /* answer 503 */
    unsigned refuse;     /* when not 0, answer every request with this status */
    useconds_t delay_us; /* how long each answer takes */
    char **ids;          /* every record id stored, once */
    size_t nids;
    size_t posts;
    size_t duplicates;   /* records received again after they were stored */
};

static struct meter meter;

static bool meter_has(const char *id)
{
    for (size_t i = 0; i < meter.nids; i++)
        if (strcmp(meter.ids[i], id) == 0)
            return true;
    return false;
}

static enum MHD_Result meter_answer(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *data,
                                    size_t *size, void **req_cls)
{
    (void)cls, (void)url, (void)method, (void)version;
    struct fm_buf *body = *req_cls;
    if (body == NULL) {
        body = calloc(1, sizeof *body);
        fm_buf_init(body, 16 << 20);
        *req_cls = body;
        return MHD_YES;
    }
    if (*size > 0) {
        fm_buf_append(body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&meter.lock);
    useconds_t delay = meter.delay_us;
    pthread_mutex_unlock(&meter.lock);
    if (delay > 0)
        usleep(delay);
    pthread_mutex_lock(&meter.lock);
    meter.posts++;
    unsigned status = meter.refuse ? meter.refuse : meter.down ? 503 : 200;
    size_t accepted = 0, dups = 0;
    for (char *line = body->data; status == 200 && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        cJSON *rec = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
        if (cJSON_IsString(id) && meter_has(id->valuestring)) {
            dups++;
            meter.duplicates++;
        } else if (cJSON_IsString(id)) {
            meter.ids = realloc(meter.ids, (meter.nids + 1) * sizeof *meter.ids);
            meter.ids[meter.nids++] = strdup(id->valuestring);
            accepted++;
        }
        cJSON_Delete(rec);
        line = nl ? nl + 1 : NULL;
    }
    pthread_mutex_unlock(&meter.lock);
    char reply[128];
    snprintf(reply, sizeof reply, "{\"accepted\": %zu, \"duplicates\": %zu, \"rejected\": []}",
             accepted, dups);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(reply), reply, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void meter_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)conn, (void)why;
    struct fm_buf *body = *req_cls;
    if (body) {
        fm_buf_free(body);
        free(body);
    }
    *req_cls = NULL;
}

static void meter_start(bool down)
{
    meter = (struct meter){.down = down};
    pthread_mutex_init(&meter.lock, NULL);
    meter.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, meter_answer,
                                    NULL, MHD_OPTION_NOTIFY_COMPLETED, meter_done, NULL,
                                    MHD_OPTION_END);
    ck_assert_ptr_nonnull(meter.daemon);
    meter.port = MHD_get_daemon_info(meter.daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void meter_stop(void)
{
    MHD_stop_daemon(meter.daemon);
    for (size_t i = 0; i < meter.nids; i++)
        free(meter.ids[i]);
    free(meter.ids);
    pthread_mutex_destroy(&meter.lock);
    meter.daemon = NULL;
}

static void meter_set_down(bool down)
{
    pthread_mutex_lock(&meter.lock);
    meter.down = down;
    pthread_mutex_unlock(&meter.lock);
}

/* ---------------------------------------------------------------- faasrun serve */

struct server {
    pid_t pid;
    char base[64]; /* http://ADDR:PORT */
};

/* Where the function "leaver" writes the pid of the process it leaves running. */
static const char *leaver_pidfile(void)
{
    return in_tmp("leaver.pid");
}

static void write_manifest(void)
{
    char b[6][PATH_MAX], text[8192];
    snprintf(text, sizeof text,
             "{\"functions\": ["
             "{\"tenant\": \"acme\", \"name\": \"hello\", \"command\": [\"%s\"], \"mode\": \"warm\","
             " \"concurrency\": 8},"
             "{\"tenant\": \"acme\", \"name\": \"hello-exec\", \"command\": [\"%s\"],"
             " \"concurrency\": 8},"
             "{\"tenant\": \"acme\", \"name\": \"fail\", \"command\": [\"%s\"]},"
             "{\"tenant\": \"acme\", \"name\": \"crash\", \"command\": [\"%s\"]},"
             "{\"tenant\": \"acme\", \"name\": \"slow\", \"command\": [\"%s\", \"5000\"],"
             " \"timeout_ms\": 300},"
             "{\"tenant\": \"acme\", \"name\": \"probe\", \"command\": [\"%s\"], \"mode\": \"warm\","
             " \"timeout_ms\": 5000, \"concurrency\": 1},"
             "{\"tenant\": \"acme\", \"name\": \"upper\", \"command\": [\"/usr/bin/tr\", \"a-z\","
             " \"A-Z\"]},"
             "{\"tenant\": \"acme\", \"name\": \"leaver\", \"command\": [\"/bin/sh\", \"-c\","
             " \"setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! >%s.tmp; mv %s.tmp %s;"
             " sleep 10\"], \"timeout_ms\": 20000}],"
             " \"pipelines\": [{\"tenant\": \"acme\", \"name\": \"greet\","
             " \"steps\": [\"hello\", \"upper\"]},"
             " {\"tenant\": \"acme\", \"name\": \"broken\", \"steps\": [\"hello\", \"fail\","
             " \"upper\"]},"
             " {\"tenant\": \"acme\", \"name\": \"busy\", \"steps\": [\"hello\", \"probe\"]}]}",
             proc_bin("fn/hello-warm", b[0], PATH_MAX), proc_bin("fn/hello", b[1], PATH_MAX),
             proc_bin("fn/fail", b[2], PATH_MAX), proc_bin("fn/crash", b[3], PATH_MAX),
             proc_bin("fn/sleepy", b[4], PATH_MAX), proc_bin("fn/probe-warm", b[5], PATH_MAX),
             leaver_pidfile(), leaver_pidfile(), leaver_pidfile());
    FILE *f = fopen(in_tmp("manifest.json"), "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* serve_start with the server's stderr going to the file errpath (or not, NULL), and more
 * options (NULL-terminated; or none, NULL). */
static struct server serve_start_with(const char *spool_max_mb, const char *errpath,
                                      char *const *more);

static struct server serve_start(const char *spool_max_mb)
{
    return serve_start_with(spool_max_mb, NULL, NULL);
}

static struct server serve_start_logged(const char *spool_max_mb, const char *errpath)
{
    return serve_start_with(spool_max_mb, errpath, NULL);
}

static struct server serve_start_with(const char *spool_max_mb, const char *errpath,
                                      char *const *more)
{
    int saved_err = -1;
    if (errpath) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        saved_err = dup(2);
        ck_assert_int_ge(saved_err, 0);
        ck_assert_int_eq(dup2(fd, 2), 2); /* the child inherits it */
        close(fd);
    }
    char faasrun[PATH_MAX], url[64], line[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", meter.port);
    char *argv[] = {(char *)proc_bin("faasrun", faasrun, sizeof faasrun), "serve", "--manifest",
                    (char *)in_tmp("manifest.json"), "--meter", url, "--spool",
                    (char *)in_tmp("spool"), "--listen", "127.0.0.1:0", "--sample-ms", "1000",
                    "--drain-ms", "3000", "--spool-max-mb", NULL, NULL, NULL, NULL, NULL, NULL};
    char cap[16];
    snprintf(cap, sizeof cap, "%s", spool_max_mb);
    argv[15] = cap;
    for (int i = 0; more && more[i]; i++) {
        ck_assert_int_lt(16 + i, (int)(sizeof argv / sizeof argv[0]) - 1);
        argv[16 + i] = more[i];
    }
    struct server s = {0};
    s.pid = proc_start(argv, "faasrun listening on ", line, sizeof line, 20);
    if (saved_err >= 0) {
        dup2(saved_err, 2);
        close(saved_err);
    }
    snprintf(s.base, sizeof s.base, "http://%.40s", line + strlen("faasrun listening on "));
    return s;
}

/* SIGTERM, then wait at most 20 s for exit; returns the exit status. */
static int serve_stop(struct server *s)
{
    kill(s->pid, SIGTERM);
    int wstatus = 0;
    for (int i = 0; i < 2000; i++) {
        if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid)
            return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    ck_abort_msg("faasrun serve did not stop within 20 s of SIGTERM");
    return -1;
}

/* ---------------------------------------------------------------- an HTTP client */

struct reply {
    long status;       /* 0 when no answer came */
    char body[4096];
    size_t body_len;
    char invocation_id[64], cold_start[16], duration_us[32], correlation_id[64];
    char failed_step[64], retry_after[16], content_type[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t len = size * n, room = sizeof r->body - 1 - r->body_len;
    memcpy(r->body + r->body_len, p, len < room ? len : room);
    r->body_len += len < room ? len : room;
    r->body[r->body_len] = '\0';
    return len;
}

static void header_value(const char *line, size_t len, const char *name, char *dst, size_t n)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    while (*v == ' ')
        v++;
    size_t vl = len - (size_t)(v - line);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    snprintf(dst, n, "%.*s", (int)vl, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t len = size * n;
    header_value(p, len, "X-Invocation-Id", r->invocation_id, sizeof r->invocation_id);
    header_value(p, len, "X-Cold-Start", r->cold_start, sizeof r->cold_start);
    header_value(p, len, "X-Duration-Us", r->duration_us, sizeof r->duration_us);
    header_value(p, len, "X-Correlation-Id", r->correlation_id, sizeof r->correlation_id);
    header_value(p, len, "X-Failed-Step", r->failed_step, sizeof r->failed_step);
    header_value(p, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    header_value(p, len, "Content-Type", r->content_type, sizeof r->content_type);
    return len;
}

/* POST body (len bytes) to base + path. */
static struct reply post(const struct server *s, const char *path, const char *body, size_t len)
{
    struct reply r = {0};
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    return r;
}

static struct reply post_str(const struct server *s, const char *path, const char *body)
{
    return post(s, path, body, strlen(body));
}

/* The reply is {"error": code, "message": ...} with exactly those two keys. */
static void assert_error(const struct reply *r, long status, const char *code)
{
    ck_assert_msg(r->status == status, "status %ld, wanted %ld: %s", r->status, status, r->body);
    ck_assert_str_eq(r->content_type, "application/json");
    cJSON *j = cJSON_Parse(r->body);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    ck_assert(cJSON_IsString(e) && cJSON_IsString(m) && *m->valuestring);
    ck_assert_str_eq(e->valuestring, code);
    cJSON_Delete(j);
}

/* A call to the probe function that takes a while: "sleep MS". */
/* A call made on its own thread; path NULL for the warm probe. */
struct slow_call {
    const struct server *s;
    const char *request;
    struct reply r;
    const char *path;
};

static void *call_slow(void *arg)
{
    struct slow_call *c = arg;
    c->r = post_str(c->s, c->path ? c->path : "/invoke/acme/probe", c->request);
    return NULL;
}

/* probe (one invocation at a time) kept busy by a call of 1.5 s on its own thread, begun
 * half a second ago; join the thread for slow's answer. */
static pthread_t hold_probe(const struct server *s, struct slow_call *slow)
{
    *slow = (struct slow_call){.s = s, .request = "sleep 1500"};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, call_slow, slow), 0);
    usleep(500000);
    return t;
}

/* A connection to s's port, on the loopback. */
static int connect_to(const struct server *s)
{
    const char *colon = strrchr(s->base, ':');
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Read what comes on fd until the peer closes it (or timeout_s pass) into buf; whether it
 * closed. */
static bool read_until_closed(int fd, int timeout_s, char *buf, size_t n)
{
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0;
    ssize_t r = 0;
    while (got < n - 1 && (r = recv(fd, buf + got, n - 1 - got, 0)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    return r == 0;
}

/* Send req on a new connection to s, and read what comes back until s closes it (or 5 s
 * pass) into buf. */
static void raw_exchange(const struct server *s, const char *req, char *buf, size_t n)
{
    int fd = connect_to(s);
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    read_until_closed(fd, 5, buf, n);
    close(fd);
}

START_TEST(serve_answers_with_exact_statuses)
{
    write_manifest();
    meter_start(false);
    struct server s = serve_start("1024");

    struct reply r = post_str(&s, "/invoke/acme/hello", "bob");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "Hello, bob!\n");
    ck_assert_uint_eq(strlen(r.invocation_id), 32);
    ck_assert_str_eq(r.cold_start, "true");
    ck_assert_int_ge(strtol(r.duration_us, NULL, 10), 1);
    r = post_str(&s, "/invoke/acme/hello", "again");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.cold_start, "false");

    r = post_str(&s, "/invoke/acme/nothing", "");
    assert_error(&r, 404, "not_found");
    r = post_str(&s, "/invoke/other/hello", "");
    assert_error(&r, 404, "not_found");
    r = post_str(&s, "/elsewhere", "");
    assert_error(&r, 404, "not_found");
    /* A zero byte in the path does not cut the name short to hello's. */
    r = post_str(&s, "/invoke/acme/hello%00junk", "");
    assert_error(&r, 404, "not_found");
    r = post_str(&s, "/invoke/acme/hell%6F", "eve"); /* escapes are decoded */
    ck_assert_int_eq(r.status, 200);

    size_t big = 6 * 1024 * 1024 + 1;
    char *huge = malloc(big);
    memset(huge, 'x', big);
    r = post(&s, "/invoke/acme/hello", huge, big);
    free(huge);
    assert_error(&r, 413, "payload_too_large");

    r = post_str(&s, "/invoke/acme/fail", "");
    assert_error(&r, 502, "function_failed");
    ck_assert_uint_eq(strlen(r.invocation_id), 32);
    r = post_str(&s, "/invoke/acme/crash", "");
    assert_error(&r, 502, "function_failed");
    r = post_str(&s, "/invoke/acme/slow", "");
    assert_error(&r, 504, "timeout");
    ck_assert_int_ge(strtol(r.duration_us, NULL, 10), 300000);

    /* probe allows one invocation at a time. */
    struct slow_call slow;
    pthread_t t = hold_probe(&s, &slow);
    r = post_str(&s, "/invoke/acme/probe", "pid");
    assert_error(&r, 429, "concurrency_limit");
    ck_assert_str_eq(r.retry_after, "1");
    pthread_join(t, NULL);
    ck_assert_int_eq(slow.r.status, 200);
    ck_assert_str_eq(slow.r.body, "slept 1500 ms\n");

    /* A body framed two ways is refused before anything runs: a proxy that framed it the
     * other way would have let the second request through. */
    static const char *const smuggled[] = {
        "POST /invoke/acme/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        "Content-Length: 60\r\n\r\nabcPOST /invoke/acme/fail HTTP/1.1\r\nHost: t\r\n"
        "Content-Length: 0\r\n\r\n",
        "POST /invoke/acme/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /invoke/acme/fail HTTP/1.1\r\n"
        "Host: t\r\nContent-Length: 0\r\n\r\n",
    };
    static const char *const said[] = {
        "\"message\":\"Content-Length: given twice with different values\"",
        "\"message\":\"Content-Length and Transfer-Encoding: only one may frame the body\"",
    };
    for (size_t i = 0; i < 2; i++) {
        char buf[4096];
        raw_exchange(&s, smuggled[i], buf, sizeof buf);
        ck_assert_msg(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s", buf);
        ck_assert_msg(strstr(buf, said[i]) != NULL, "%s", buf);
        ck_assert_msg(strstr(buf, "\r\nConnection: close\r\n") != NULL, "%s", buf);
        ck_assert_msg(strstr(buf, "HTTP/1.1 502") == NULL, "%s", buf);
    }

    ck_assert_int_eq(serve_stop(&s), 0);
    /* SIGTERM shipped everything: 7 invocations ran (404, 413, 429 and the two refused
     * bodies ran nothing), and the 1.5 s one also left a resource record. */
    ck_assert_uint_eq(meter.nids, 7 * 2 + 1);
    char id[128];
    snprintf(id, sizeof id, "%s:res:0", slow.r.invocation_id);
    ck_assert(meter_has(id));
    meter_stop();
}
END_TEST

/* SIGTERM while a keep-alive client is being answered: its answer comes, saying the
 * connection closes, and it closes, so that no more requests slip into the drain. */
START_TEST(sigterm_closes_keep_alive_connections)
{
    write_manifest();
    meter_start(false);
    struct server s = serve_start("1024");
    int fd = connect_to(&s);
    static const char req[] = "POST /invoke/acme/probe HTTP/1.1\r\nHost: t\r\n"
                              "Content-Length: 9\r\n\r\nsleep 800";
    ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)sizeof req - 1);
    usleep(300000);
    kill(s.pid, SIGTERM);
    char buf[4096];
    bool closed = read_until_closed(fd, 10, buf, sizeof buf);
    ck_assert_msg(closed, "the connection stayed open: %s", buf);
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
    ck_assert_msg(strcasestr(buf, "\r\nConnection: close\r\n") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "\r\n\r\nslept 800 ms\n") != NULL, "%s", buf);
    ck_assert_int_eq(serve_stop(&s), 0);
    meter_stop();
}
END_TEST

/* --per-ip 1: a second connection from the same address is closed at once. */
START_TEST(serve_limits_connections_per_address)
{
    write_manifest();
    meter_start(false);
    struct server s = serve_start_with("1024", NULL, (char *[]){"--per-ip", "1", NULL});
    int first = connect_to(&s), second = connect_to(&s);
    char buf[256];
    ck_assert(read_until_closed(second, 5, buf, sizeof buf));
    close(second);
    close(first);
    usleep(200000);
    struct reply r = post_str(&s, "/invoke/acme/hello", "bob");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(serve_stop(&s), 0);
    meter_stop();
}
END_TEST

/* Many uploads at once hold at most 48 MiB of bodies (8 of the largest): one more is
 * answered 503 and runs nothing, and once they are gone requests are taken again. */
START_TEST(bodies_held_at_once_are_bounded)
{
    write_manifest();
    meter_start(false);
    struct server s = serve_start("1024");
    enum { SLOW = 8 };
    size_t len = (size_t)6 << 20;
    char *body = malloc(len);
    memset(body, 'x', len);
    int slow[SLOW];
    for (int i = 0; i < SLOW; i++) {
        slow[i] = connect_to(&s);
        char head[160];
        int n = snprintf(head, sizeof head,
                         "POST /invoke/acme/hello HTTP/1.1\r\nHost: t\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         len);
        ck_assert_int_eq(send(slow[i], head, (size_t)n, MSG_NOSIGNAL), n);
        /* All but its last byte: held, and never finished. */
        for (size_t at = 0; at < len - 1;) {
            ssize_t w = send(slow[i], body + at, len - 1 - at, MSG_NOSIGNAL);
            ck_assert_int_gt(w, 0);
            at += (size_t)w;
        }
    }
    free(body);
    sleep(1); /* for serve to have read them */
    struct reply r = post_str(&s, "/invoke/acme/hello", "0123456789abcdef");
    assert_error(&r, 503, "busy");
    ck_assert_str_eq(r.retry_after, "1");
    for (int i = 0; i < SLOW; i++)
        close(slow[i]);
    sleep(1); /* for serve to have dropped them */
    r = post_str(&s, "/invoke/acme/hello", "bob");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(serve_stop(&s), 0);
    ck_assert_uint_eq(meter.nids, 2); /* the last request alone ran */
    meter_stop();
}
END_TEST

START_TEST(serve_runs_pipelines)
{
    write_manifest();
    meter_start(false);
    struct server s = serve_start("1024");
    struct reply r = post_str(&s, "/invoke/acme/greet", "bob");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "HELLO, BOB!\n");
    ck_assert_uint_eq(strlen(r.correlation_id), 32);
    r = post_str(&s, "/invoke/acme/broken", "bob");
    assert_error(&r, 502, "function_failed");
    ck_assert_str_eq(r.failed_step, "fail");
    ck_assert_ptr_nonnull(strstr(r.body, "pipeline acme/broken, step fail: status error"));
    /* A step that cannot run, its function busy: the step before it ran, so the answer
     * names the run and the step, and does not invite a retry that would run it again. */
    struct slow_call slow;
    pthread_t t = hold_probe(&s, &slow);
    r = post_str(&s, "/invoke/acme/busy", "bob");
    assert_error(&r, 429, "concurrency_limit");
    ck_assert_str_eq(r.failed_step, "probe");
    ck_assert_uint_eq(strlen(r.correlation_id), 32);
    ck_assert_str_eq(r.retry_after, "");
    pthread_join(t, NULL);
    ck_assert_int_eq(slow.r.status, 200);
    ck_assert_int_eq(serve_stop(&s), 0);
    /* greet: 2 steps, broken: 2 of 3 steps, busy: 1 of 2, the slow call with a sample. */
    ck_assert_uint_eq(meter.nids, 8 + 2 + 3);
    meter_stop();
}
END_TEST

START_TEST(serve_refuses_when_the_spool_is_full)
{
    write_manifest();
    meter_start(true); /* down: nothing leaves the spool */
    ck_assert_int_eq(mkdir(in_tmp("spool"), 0700), 0);
    FILE *f = fopen(in_tmp("spool/seg-0000000000000001.ndjson"), "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 12000; i++)
        fprintf(f, "{\"id\": \"old-%d\", \"type\": \"start\", \"pad\": \"%064d\"}\n", i, i);
    ck_assert_int_eq(fclose(f), 0);
    struct server s = serve_start("1");
    struct reply r = post_str(&s, "/invoke/acme/hello", "bob");
    assert_error(&r, 503, "metering_unavailable");
    ck_assert_str_eq(r.retry_after, "1");
    ck_assert_int_eq(serve_stop(&s), 0);
    meter_stop();
}
END_TEST

/* ---------------------------------------------------------------- none lost, none twice */

#define CLIENTS 4
#define CALLS 40

struct client {
    const struct server *s;
    const char *path;
    char ids[CALLS][64];
    int answered, unanswered;
    atomic_bool *stop;
};

static void *client_run(void *arg)
{
    struct client *c = arg;
    for (int i = 0; i < CALLS && !atomic_load(c->stop); i++) {
        struct reply r = post_str(c->s, c->path, "x");
        if (r.status == 200)
            snprintf(c->ids[c->answered++], sizeof c->ids[0], "%s", r.invocation_id);
        else
            c->unanswered++;
    }
    return NULL;
}

static size_t count_suffix(const char *suffix)
{
    size_t n = 0, sl = strlen(suffix);
    for (size_t i = 0; i < meter.nids; i++) {
        size_t l = strlen(meter.ids[i]);
        n += l > sl && strcmp(meter.ids[i] + l - sl, suffix) == 0;
    }
    return n;
}

START_TEST(sigkill_and_meter_outage_lose_nothing)
{
    write_manifest();
    meter_start(true); /* the service is down from the start */
    struct server s = serve_start("1024");
    atomic_bool stop = false;
    struct client c[CLIENTS];
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (struct client){.s = &s, .path = i % 2 ? "/invoke/acme/hello"
                                                      : "/invoke/acme/hello-exec",
                               .stop = &stop};
        ck_assert_int_eq(pthread_create(&t[i], NULL, client_run, &c[i]), 0);
    }
    usleep(400000);
    /* Mid-stream. A start record is written before its function runs but synced only with
     * the stop, before the answer: what the runtime wrote is in the kernel and outlives
     * it, so even the unanswered invocations that started keep their starts. */
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    atomic_store(&stop, true);
    int answered = 0, unanswered = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        answered += c[i].answered;
        unanswered += c[i].unanswered;
    }
    ck_assert_int_gt(answered, 0);
    ck_assert_uint_eq(meter.nids, 0);

    /* The service comes back and the runtime restarts on the same spool. */
    meter_set_down(false);
    s = serve_start("1024");
    int64_t deadline = fm_mono_us() + 15000000;
    size_t missing = 1;
    while (missing > 0 && fm_mono_us() < deadline) {
        usleep(50000);
        pthread_mutex_lock(&meter.lock);
        missing = 0;
        for (int i = 0; i < CLIENTS; i++)
            for (int j = 0; j < c[i].answered; j++) {
                char id[80];
                snprintf(id, sizeof id, "%s:stop", c[i].ids[j]);
                missing += !meter_has(id);
            }
        pthread_mutex_unlock(&meter.lock);
    }
    ck_assert_int_eq(serve_stop(&s), 0);
    ck_assert_msg(missing == 0, "%zu answered invocations have no stop record", missing);
    /* Every stop has its start; stops beyond the answered ones are only those whose answer
     * the SIGKILL cut off; ids are unique by construction of the store, and one invocation
     * never has two stop records under different ids. */
    size_t stops = count_suffix(":stop"), starts = count_suffix(":start");
    ck_assert_uint_ge(stops, (size_t)answered);
    ck_assert_uint_le(stops, (size_t)(answered + unanswered));
    ck_assert_uint_ge(starts, stops);
    for (size_t i = 0; i < meter.nids; i++) {
        size_t l = strlen(meter.ids[i]);
        if (l > 5 && strcmp(meter.ids[i] + l - 5, ":stop") == 0) {
            char start[80];
            snprintf(start, sizeof start, "%.*s:start", (int)(l - 5), meter.ids[i]);
            ck_assert_msg(meter_has(start), "%s without its start", meter.ids[i]);
        }
    }
    meter_stop();
}
END_TEST

/* A runtime killed with SIGKILL takes its warm workers along, even one in the middle of a
 * handler that would run on for seconds. */
/* SIGKILL the runtime while call (on thread t) is in flight: pid must end with it, and no
 * answer come. */
static void sigkill_mid_call(const struct server *s, pthread_t t, struct slow_call *call,
                             long pid, const char *what)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    ck_assert_msg(proc_ends(pid), "%s %ld outlived its runtime", what, pid);
    pthread_join(t, NULL);
    ck_assert_int_eq(call->r.status, 0); /* no answer came */
    meter_stop();
}

START_TEST(sigkill_ends_busy_warm_workers)
{
    write_manifest();
    meter_start(false);
    struct server s = serve_start("1024");
    struct reply r = post_str(&s, "/invoke/acme/probe", "pid");
    ck_assert_int_eq(r.status, 200);
    long worker = strtol(r.body, NULL, 10);
    ck_assert_int_gt(worker, 1);
    struct slow_call busy = {.s = &s, .request = "sleep 4000"};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, call_slow, &busy), 0);
    usleep(300000); /* it is asleep in its handler */
    sigkill_mid_call(&s, t, &busy, worker, "worker");
}
END_TEST

/* A process that a function started in a session of its own dies with a runtime killed
 * with SIGKILL in the middle of the invocation. */
START_TEST(sigkill_ends_what_functions_left_running)
{
    struct rt_cgroup probe;
    if (rt_cgroup_open(16, &probe) != 0) {
        fprintf(stderr, "sigkill_ends_what_functions_left_running: no memory cgroup can be "
                        "made here, so nothing holds a function's processes together\n");
        return;
    }
    rt_cgroup_close(&probe);
    write_manifest();
    meter_start(false);
    struct server s = serve_start("1024");
    struct slow_call call = {.s = &s, .request = "", .path = "/invoke/acme/leaver"};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, call_slow, &call), 0);
    long left = 0;
    for (int64_t deadline = fm_mono_us() + 10000000; left <= 0;) {
        ck_assert_msg(fm_mono_us() < deadline, "the function never started its process");
        usleep(20000);
        FILE *f = fopen(leaver_pidfile(), "r");
        if (f) {
            if (fscanf(f, "%ld", &left) != 1)
                left = 0;
            fclose(f);
        }
    }
    ck_assert_int_eq(kill((pid_t)left, 0), 0);
    sigkill_mid_call(&s, t, &call, left, "process");
}
END_TEST

START_TEST(serve_delivers_to_a_slow_meter)
{
    write_manifest();
    meter_start(false);
    meter.delay_us = 1500000; /* longer than the shipper's rounds */
    struct server s = serve_start("1024");
    struct reply r = post_str(&s, "/invoke/acme/hello", "bob");
    ck_assert_int_eq(r.status, 200);
    char stop_id[80];
    snprintf(stop_id, sizeof stop_id, "%s:stop", r.invocation_id);
    bool delivered = false;
    for (int64_t deadline = fm_mono_us() + 15000000; !delivered && fm_mono_us() < deadline;) {
        usleep(50000);
        pthread_mutex_lock(&meter.lock);
        delivered = meter_has(stop_id);
        pthread_mutex_unlock(&meter.lock);
    }
    ck_assert_msg(delivered, "the stop record was not delivered within 15 s");
    /* Answered batches are done with: nothing is sent again. */
    usleep(3500000);
    pthread_mutex_lock(&meter.lock);
    size_t dups = meter.duplicates, nids = meter.nids;
    pthread_mutex_unlock(&meter.lock);
    ck_assert_uint_eq(dups, 0);
    ck_assert_uint_eq(nids, 2);
    ck_assert_int_eq(serve_stop(&s), 0);
    meter_stop();
}
END_TEST

static size_t count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

START_TEST(serve_logs_shipping_failures_once)
{
    write_manifest();
    meter_start(false);
    meter.refuse = 401; /* a wrong key */
    struct server s = serve_start_logged("1024", in_tmp("serve.err"));
    struct reply r = post_str(&s, "/invoke/acme/hello", "bob");
    ck_assert_int_eq(r.status, 200);
    size_t logged = 0;
    for (int64_t deadline = fm_mono_us() + 10000000; logged == 0 && fm_mono_us() < deadline;) {
        usleep(50000);
        logged = count_in_file(in_tmp("serve.err"), "metering service answered 401");
    }
    ck_assert_msg(logged > 0, "serve said nothing about the refused records");
    usleep(1500000); /* more failed rounds, for the same reason */
    ck_assert_int_ge(meter.posts, 3);
    ck_assert_int_eq(serve_stop(&s), 0);
    ck_assert_uint_eq(count_in_file(in_tmp("serve.err"), "shipping records failed"), 1);
    ck_assert_uint_eq(meter.nids, 0);
    meter_stop();
}
END_TEST

/* A bad --listen is bad usage: one line on stderr and exit code 2, before anything starts
 * (the spool is not even made). */
START_TEST(serve_listen_is_checked)
{
    static const struct {
        const char *listen, *err;
    } cases[] = {
        {"127.0.0.1", "faasrun serve: --listen: expected ADDR:PORT, got '127.0.0.1'\n"},
        {"127.0.0.1:http",
         "faasrun serve: --listen: expected a port 0-65535 after the last ':', got"
         " '127.0.0.1:http'\n"},
        {"127.0.0.1:65536",
         "faasrun serve: --listen: expected a port 0-65535 after the last ':', got"
         " '127.0.0.1:65536'\n"},
        {"example.com:8081",
         "faasrun serve: --listen: expected an IPv4 address, an IPv6 address in brackets or"
         " localhost, got 'example.com'\n"},
        {"::1:8081",
         "faasrun serve: --listen: expected an IPv4 address, an IPv6 address in brackets or"
         " localhost, got '::1'\n"},
    };
    write_manifest();
    char faasrun[PATH_MAX];
    proc_bin("faasrun", faasrun, sizeof faasrun);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {faasrun, "serve", "--manifest", (char *)in_tmp("manifest.json"),
                        "--meter", "http://127.0.0.1:1", "--spool", (char *)in_tmp("unused"),
                        "--listen", (char *)cases[i].listen, NULL};
        proc_expect_usage(argv, cases[i].err);
        ck_assert_int_ne(access(in_tmp("unused"), F_OK), 0);
    }
}
END_TEST

/* --meter must be an http:// or https:// URL with a host and --spool a folder's name, in
 * every command that takes them: else bad usage before anything runs (the function does
 * not run, no spool is made). */
START_TEST(meter_and_spool_are_checked)
{
    static const struct {
        const char *cmd, *meter, *spool, *err;
    } cases[] = {
        {"invoke", "notaurl", NULL,
         "faasrun invoke: --meter: expected an http:// or https:// URL, got 'notaurl'\n"},
        {"serve", "notaurl", NULL,
         "faasrun serve: --meter: expected an http:// or https:// URL, got 'notaurl'\n"},
        {"ship", "notaurl", NULL,
         "faasrun ship: --meter: expected an http:// or https:// URL, got 'notaurl'\n"},
        {"serve", "ftp://x", NULL,
         "faasrun serve: --meter: expected an http:// or https:// URL, got 'ftp://x'\n"},
        {"invoke", "", NULL,
         "faasrun invoke: --meter: expected an http:// or https:// URL, got ''\n"},
        {"serve", "http://", NULL,
         "faasrun serve: --meter: expected an http:// or https:// URL, got 'http://'\n"},
        {"ship", "https://:8080/", NULL,
         "faasrun ship: --meter: expected an http:// or https:// URL, got 'https://:8080/'\n"},
        {"invoke", "http://meter:0", NULL,
         "faasrun invoke: --meter: expected an http:// or https:// URL, got 'http://meter:0'\n"},
        {"serve", "http://meter:x", NULL,
         "faasrun serve: --meter: expected an http:// or https:// URL, got 'http://meter:x'\n"},
        {"ship", "http://a b", NULL,
         "faasrun ship: --meter: expected an http:// or https:// URL, got 'http://a b'\n"},
        {"serve", "http://[]:80", NULL,
         "faasrun serve: --meter: expected an http:// or https:// URL, got 'http://[]:80'\n"},
        {"invoke", NULL, "", "faasrun invoke: --spool: expected a folder, got ''\n"},
        {"serve", NULL, "", "faasrun serve: --spool: expected a folder, got ''\n"},
        {"ship", NULL, "", "faasrun ship: --spool: expected a folder, got ''\n"},
    };
    write_manifest();
    char faasrun[PATH_MAX];
    proc_bin("faasrun", faasrun, sizeof faasrun);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *url = cases[i].meter ? cases[i].meter : "http://127.0.0.1:1";
        const char *spool = cases[i].spool ? cases[i].spool : in_tmp("unused");
        char *argv[16] = {faasrun, (char *)cases[i].cmd, "--meter", (char *)url, "--spool",
                          (char *)spool};
        int n = 6;
        if (strcmp(cases[i].cmd, "ship") != 0) {
            argv[n++] = "--manifest";
            argv[n++] = (char *)in_tmp("manifest.json");
        }
        if (strcmp(cases[i].cmd, "invoke") == 0) {
            argv[n++] = "acme";
            argv[n++] = "leaver"; /* would write its pid file */
        }
        proc_expect_usage(argv, cases[i].err);
        ck_assert_int_ne(access(in_tmp("unused"), F_OK), 0);
        ck_assert_int_ne(access(leaver_pidfile(), F_OK), 0);
    }
}
END_TEST

/* A manifest that is missing or invalid is bad usage: one line, exit code 2, before
 * anything starts (the spool is not made). */
START_TEST(serve_manifest_is_checked)
{
    FILE *f = fopen(in_tmp("bad.json"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"functions\": [], \"functions\": []}", f);
    ck_assert_int_eq(fclose(f), 0);
    char faasrun[PATH_MAX], want[2][PATH_MAX + 64];
    proc_bin("faasrun", faasrun, sizeof faasrun);
    snprintf(want[0], sizeof want[0], "faasrun serve: %s: No such file or directory\n",
             in_tmp("missing.json"));
    snprintf(want[1], sizeof want[1], "faasrun serve: %s: functions: duplicate key\n",
             in_tmp("bad.json"));
    const char *manifests[] = {in_tmp("missing.json"), in_tmp("bad.json")};
    for (size_t i = 0; i < 2; i++) {
        char *argv[] = {faasrun, "serve", "--manifest", (char *)manifests[i], "--meter",
                        "http://127.0.0.1:1", "--spool", (char *)in_tmp("unused"), "--listen",
                        "127.0.0.1:0", NULL};
        proc_expect_usage(argv, want[i]);
        ck_assert_int_ne(access(in_tmp("unused"), F_OK), 0);
    }
}
END_TEST

/* A port another socket listens on: one line that says why, exit code 1. */
START_TEST(serve_says_why_it_cannot_listen)
{
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(busy, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(busy, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(busy, 1), 0);
    ck_assert_int_eq(getsockname(busy, (struct sockaddr *)&a, &len), 0);
    char listen_at[32], want[128];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    snprintf(want, sizeof want, "faasrun serve: cannot listen on %s: Address already in use\n",
             listen_at);
    write_manifest();
    char faasrun[PATH_MAX];
    char *argv[] = {(char *)proc_bin("faasrun", faasrun, sizeof faasrun), "serve",
                    "--manifest", (char *)in_tmp("manifest.json"), "--meter",
                    "http://127.0.0.1:1", "--spool", (char *)in_tmp("spool"), "--listen",
                    listen_at, NULL};
    struct proc_result r = proc_run(argv, NULL, 20);
    close(busy);
    ck_assert_int_eq(r.status, 1);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, want);
    free(r.out);
    free(r.err);
}
END_TEST

/* Every faasrun command reports bad usage the same way: one line, exit code 2. */
START_TEST(faasrun_usage_is_one_line)
{
    static const struct {
        const char *args[3], *err;
    } cases[] = {
        {{NULL}, "faasrun: expected a command: invoke, serve or ship (try faasrun --help)\n"},
        {{"serve", "--bogus"},
         "faasrun serve: --bogus: unknown option (try faasrun serve --help)\n"},
        {{"serve", "--bogus=1"},
         "faasrun serve: --bogus: unknown option (try faasrun serve --help)\n"},
        {{"serve", "--listen"},
         "faasrun serve: --listen: missing its value (try faasrun serve --help)\n"},
        {{"serve", "--help=3"},
         "faasrun serve: --help: takes no value (try faasrun serve --help)\n"},
        {{"invoke", "-x"}, "faasrun invoke: -x: unknown option (try faasrun invoke --help)\n"},
        /* The refused argument is named, not the one before it. */
        {{"invoke", "--spool=a", "-qz"},
         "faasrun invoke: -qz: unknown option (try faasrun invoke --help)\n"},
        {{"invoke", "--m", "x"},
         "faasrun invoke: --m: unknown option (try faasrun invoke --help)\n"},
        {{"ship", "--spool"}, "faasrun ship: --spool: missing its value (try faasrun ship --help)\n"},
        {{"ship", "--meter-ky", "k"},
         "faasrun ship: --meter-ky: unknown option (try faasrun ship --help)\n"},
        /* Long options are taken written in full only: a prefix of one is told which. */
        {{"ship", "--meter-k", "k"},
         "faasrun ship: --meter-k: write --meter-key in full (try faasrun ship --help)\n"},
        {{"serve", "--he"}, "faasrun serve: --he: write --help in full (try faasrun serve --help)\n"},
        {{"invoke", "--verb"},
         "faasrun invoke: --verb: write --verbose in full (try faasrun invoke --help)\n"},
    };
    char faasrun[PATH_MAX];
    proc_bin("faasrun", faasrun, sizeof faasrun);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[5] = {faasrun};
        for (int k = 0; k < 3 && cases[i].args[k]; k++)
            argv[k + 1] = (char *)cases[i].args[k];
        proc_expect_usage(argv, cases[i].err);
    }
}
END_TEST

Suite *suite_serve(void)
{
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("serve");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, serve_answers_with_exact_statuses);
    tcase_add_test(tc, serve_runs_pipelines);
    tcase_add_test(tc, sigterm_closes_keep_alive_connections);
    tcase_add_test(tc, bodies_held_at_once_are_bounded);
    tcase_add_test(tc, serve_limits_connections_per_address);
    tcase_add_test(tc, serve_refuses_when_the_spool_is_full);
    tcase_add_test(tc, sigkill_and_meter_outage_lose_nothing);
    tcase_add_test(tc, sigkill_ends_busy_warm_workers);
    tcase_add_test(tc, sigkill_ends_what_functions_left_running);
    tcase_add_test(tc, serve_delivers_to_a_slow_meter);
    tcase_add_test(tc, serve_logs_shipping_failures_once);
    tcase_add_test(tc, serve_listen_is_checked);
    tcase_add_test(tc, faasrun_usage_is_one_line);
    tcase_add_test(tc, meter_and_spool_are_checked);
    tcase_add_test(tc, serve_manifest_is_checked);
    tcase_add_test(tc, serve_says_why_it_cannot_listen);
    suite_add_tcase(s, tc);
    return s;
}
