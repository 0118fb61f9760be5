/*
 * Warm functions: one process serves many invocations, so its initialisation (loading a
 * model, opening a connection, parsing config) is paid once per cold start instead of per
 * request. Header-only, so a function stays one standalone program linking nothing of
 * faasmeter.
 *
 * A function writes a handler and calls warm_run from main after its own init:
 *
 *     static int handle(const struct warm_request *req, FILE *out, void *ctx)
 *     { ...read req->in or req->payload, write the response to out, return 0... }
 *     int main(void) { init(); return warm_run(handle, NULL); }
 *
 * Started by the runtime in warm mode (FAASMETER_WARM=1) it speaks the protocol below; run
 * any other way it handles exactly one request from stdin to stdout, so the same binary
 * also works in exec mode and from a shell.
 *
 * The protocol, modelled on the Lambda Runtime API but over two pipes: the runtime writes
 * requests to fd 3 and reads replies from fd 4; the function's stdout and stderr go to its
 * log. Each header is one line of ASCII, then exactly <len> payload bytes.
 *
 *     worker:  READY\n                                    once, when init is done
 *     runtime: INVOKE <request-id> <deadline-unix-ms> <len>\n<payload>
 *     worker:  DONE <code> <len>\n<payload>               code 0 ok, else as an exit code
 *
 * End of file on fd 3 asks the worker to exit. A handler's code counts as an exit code: 0
 * is status "ok", any other "error" (137 too, which the helpers below return when memory
 * runs out); the runtime records "oom" only when the kernel's OOM killer ended a process.
 */
#ifndef FN_WARM_H
#define FN_WARM_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define WARM_FD_IN 3
#define WARM_FD_OUT 4
#define WARM_MAX_PAYLOAD ((size_t)64 * 1024 * 1024)

struct warm_request {
    const char *id;          /* the invocation id; "" when run once */
    long long deadline_ms;   /* Unix time in ms when the runtime kills it; 0 when run once */
    const char *payload;     /* the request bytes (also readable through in) */
    size_t len;
    FILE *in;
};

/* Return 0 on success, else an exit code; the response is what was written to out. */
typedef int (*warm_handler)(const struct warm_request *req, FILE *out, void *ctx);

static inline int warm_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static inline int warm_read_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The request pipe, read ahead: a header and a small payload come in one read, not one
 * read per header byte. */
struct warm_reader {
    int fd;
    size_t at, len; /* buf[at, len) is read but not used yet */
    char buf[4096];
};

/* Read once more into r's buffer. Returns 0, or -1 at end of file or on an error. */
static inline int warm_fill(struct warm_reader *r)
{
    memmove(r->buf, r->buf + r->at, r->len - r->at);
    r->len -= r->at;
    r->at = 0;
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
        return 0;
    }
}

/* One header line without its newline; -1 at end of file or when it is not shorter than
 * n - 1 bytes. */
static inline int warm_read_line(struct warm_reader *r, char *line, size_t n)
{
    for (;;) {
        const char *start = r->buf + r->at;
        const char *nl = memchr(start, '\n', r->len - r->at);
        size_t have = nl ? (size_t)(nl - start) : r->len - r->at;
        if (have >= n - 1)
            return -1;
        if (nl != NULL) {
            memcpy(line, start, have);
            line[have] = '\0';
            r->at += have + 1;
            return 0;
        }
        if (warm_fill(r) != 0)
            return -1;
    }
}

/* n payload bytes: first those read ahead, then the rest straight from the pipe. */
static inline int warm_read_payload(struct warm_reader *r, char *p, size_t n)
{
    size_t ahead = r->len - r->at < n ? r->len - r->at : n;
    memcpy(p, r->buf + r->at, ahead);
    r->at += ahead;
    return warm_read_all(r->fd, p + ahead, n - ahead);
}

/* A reply's header and payload, in one write when the pipe takes both. */
static inline int warm_write_reply(int fd, const char *head, size_t head_len, const char *p,
                                   size_t n)
{
    struct iovec iov[2] = {{(void *)head, head_len}, {(void *)p, n}};
    ssize_t w;
    while ((w = writev(fd, iov, 2)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        return -1;
    size_t done = (size_t)w;
    if (done < head_len)
        return warm_write_all(fd, head + done, head_len - done) == 0 &&
                       warm_write_all(fd, p, n) == 0
                   ? 0
                   : -1;
    return warm_write_all(fd, p + (done - head_len), n - (done - head_len));
}

/* Call the handler with in reading the payload and out collecting the response. */
static inline int warm_call(warm_handler h, void *ctx, struct warm_request *req, char **resp,
                            size_t *resp_len)
{
    FILE *out = open_memstream(resp, resp_len);
    req->in = fmemopen((void *)(req->len ? req->payload : ""), req->len ? req->len : 1, "rb");
    if (out == NULL || req->in == NULL) {
        fputs("warm: out of memory\n", stderr);
        return 137;
    }
    if (req->len == 0)
        fgetc(req->in); /* fmemopen refuses size 0: consume the stand-in byte */
    int code = h(req, out, ctx);
    fclose(req->in);
    if (fclose(out) != 0 && code == 0)
        code = 137;
    return code;
}

/* Run once, exec style: stdin to stdout. */
static inline int warm_once(warm_handler h, void *ctx)
{
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = cap < WARM_MAX_PAYLOAD ? realloc(buf, cap * 2) : NULL;
            if (bigger == NULL) {
                free(buf);
                fputs("warm: request too large\n", stderr);
                return 1;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf == NULL)
        return 137;
    struct warm_request req = {.id = "", .payload = buf, .len = len};
    char *resp = NULL;
    size_t resp_len = 0;
    int code = warm_call(h, ctx, &req, &resp, &resp_len);
    if (code == 0 && (fwrite(resp, 1, resp_len, stdout) != resp_len || fflush(stdout) != 0))
        code = 1;
    free(resp);
    free(buf);
    return code;
}

/**
 * Serve requests until the runtime closes the request pipe (then return 0), or handle one
 * request from stdin when not started in warm mode (then return the handler's code).
 */
static inline int warm_run(warm_handler h, void *ctx)
{
    const char *mode = getenv("FAASMETER_WARM");
    if (mode == NULL || strcmp(mode, "1") != 0)
        return warm_once(h, ctx);
    if (warm_write_all(WARM_FD_OUT, "READY\n", 6) != 0)
        return 1;
    struct warm_reader reader = {.fd = WARM_FD_IN};
    for (;;) {
        char line[256], id[129];
        long long deadline = 0;
        unsigned long long len = 0;
        if (warm_read_line(&reader, line, sizeof line) != 0)
            return 0;
        if (sscanf(line, "INVOKE %128s %lld %llu", id, &deadline, &len) != 3 ||
            len > WARM_MAX_PAYLOAD) {
            fprintf(stderr, "warm: bad request header\n");
            return 1;
        }
        char *payload = malloc(len ? (size_t)len : 1);
        if (payload == NULL)
            return 137;
        if (warm_read_payload(&reader, payload, (size_t)len) != 0) {
            free(payload);
            return 0;
        }
        struct warm_request req = {.id = id, .deadline_ms = deadline, .payload = payload,
                                   .len = (size_t)len};
        char *resp = NULL;
        size_t resp_len = 0;
        int code = warm_call(h, ctx, &req, &resp, &resp_len);
        free(payload);
        if (code != 0)
            resp_len = 0;
        /* What the handler printed belongs to this invocation's log: out before the reply,
         * after which the runtime moves on to the next invocation. */
        fflush(stdout);
        fflush(stderr);
        char head[64];
        int hn = snprintf(head, sizeof head, "DONE %d %zu\n", code, resp_len);
        int rc = warm_write_reply(WARM_FD_OUT, head, (size_t)hn, resp ? resp : "", resp_len);
        free(resp);
        if (rc != 0)
            return 1;
    }
}

#endif
