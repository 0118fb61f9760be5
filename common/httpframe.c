#include "common/httpframe.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The framing headers seen. */
struct framing {
    const char *length;
    bool lengths_differ, chunked;
};

static enum MHD_Result see_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct framing *f = cls;
    if (value == NULL)
        return MHD_YES;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        f->chunked = true;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
        return MHD_YES;
    if (f->length == NULL)
        f->length = value;
    else if (strcmp(f->length, value) != 0)
        f->lengths_differ = true;
    return MHD_YES;
}

unsigned fm_http_framing_refused(struct MHD_Connection *c, char *why, size_t n)
{
    struct framing f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, see_header, &f);
    if (f.lengths_differ) {
        snprintf(why, n, "Content-Length: given twice with different values");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.length != NULL && f.chunked) {
        snprintf(why, n, "Content-Length and Transfer-Encoding: only one may frame the body");
        return MHD_HTTP_BAD_REQUEST;
    }
    const char *coding =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (coding != NULL && strcasecmp(coding, "identity") != 0) {
        snprintf(why, n, "Content-Encoding: only identity is taken, got '%s'", coding);
        return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    return 0;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t fm_http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi = r[0] == '%' ? hex_digit(r[1]) : -1, lo = hi >= 0 ? hex_digit(r[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}
