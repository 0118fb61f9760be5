#include "tests/httpc.h"

#include <check.h>
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    return fm_buf_append(userdata, p, size * n) == 0 ? size * n : 0;
}

struct http_reply http_call(const char *method, const char *url, const char *const *headers,
                            const char *body)
{
    return http_call_n(method, url, headers, body, body ? strlen(body) : 0);
}

struct http_reply http_call_n(const char *method, const char *url, const char *const *headers,
                              const char *body, size_t len)
{
    CURL *curl = curl_easy_init();
    ck_assert_ptr_nonnull(curl);
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    struct fm_buf out;
    fm_buf_init(&out, 64u << 20);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(curl);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    struct http_reply r = {0};
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    r.body = fm_buf_steal(&out);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return r;
}

/* A header line into the buffer of http_header, when it is the one asked for. */
struct wanted_header {
    const char *name;
    struct fm_buf value;
};

static size_t header_line(char *p, size_t size, size_t n, void *userdata)
{
    struct wanted_header *w = userdata;
    size_t len = size * n, name_len = strlen(w->name);
    if (len > name_len + 1 && strncasecmp(p, w->name, name_len) == 0 && p[name_len] == ':') {
        const char *v = p + name_len + 1, *end = p + len;
        while (v < end && *v == ' ')
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n'))
            end--;
        fm_buf_append(&w->value, v, (size_t)(end - v));
    }
    return len;
}

char *http_header(const char *method, const char *url, const char *name, long *status,
                  size_t *body_len)
{
    CURL *curl = curl_easy_init();
    ck_assert_ptr_nonnull(curl);
    struct wanted_header w = {.name = name};
    fm_buf_init(&w.value, 4096);
    struct fm_buf body;
    fm_buf_init(&body, 1u << 20);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_line);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &w);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(curl);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    *body_len = body.len;
    fm_buf_free(&body);
    curl_easy_cleanup(curl);
    fm_buf_puts(&w.value, "");
    return fm_buf_steal(&w.value);
}
