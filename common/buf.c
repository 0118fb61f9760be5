#include "common/buf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fm_buf_init(struct fm_buf *b, size_t limit)
{
    *b = (struct fm_buf){.limit = limit};
}

void fm_buf_init_fixed(struct fm_buf *b, char *mem, size_t size)
{
    assert(size >= 1);
    *b = (struct fm_buf){.data = mem, .cap = size, .limit = size - 1, .fixed = true};
    mem[0] = '\0';
}

void fm_buf_free(struct fm_buf *b)
{
    if (b->fixed) {
        fm_buf_reset(b);
        return;
    }
    free(b->data);
    fm_buf_init(b, b->limit);
}

void fm_buf_reset(struct fm_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data)
        b->data[0] = '\0';
}

/* reserve's slow path: fail at the cap, else reallocate. */
static int grow(struct fm_buf *b, size_t more)
{
    if (b->failed)
        return -1;
    if (more > b->limit - b->len) {
        b->failed = true;
        return -1;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Room for more bytes and the NUL. Appends are many and small: when the room is there
 * already, this is two comparisons. */
static inline int reserve(struct fm_buf *b, size_t more)
{
    if (!b->failed && more < b->cap - b->len && more <= b->limit - b->len)
        return 0;
    return grow(b, more);
}

int fm_buf_append_grow(struct fm_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int fm_buf_put_int(struct fm_buf *b, long long v)
{
    char digits[24], *p = digits + sizeof digits;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return fm_buf_append(b, p, (size_t)(digits + sizeof digits - p));
}

int fm_buf_printf(struct fm_buf *b, const char *fmt, ...)
{
    if (b->failed)
        return -1;
    /* Format straight into the room there is; only text longer than that is formatted
     * again, after growing. */
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0) {
        if (room)
            b->data[b->len] = '\0';
        b->failed = true;
        return -1;
    }
    if ((size_t)n >= room) {
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

char *fm_buf_steal(struct fm_buf *b)
{
    assert(!b->fixed);
    if (b->failed) {
        fm_buf_free(b);
        return NULL;
    }
    if (b->data == NULL) {
        if (reserve(b, 0) != 0)
            return NULL;
        b->data[0] = '\0';
    }
    char *s = b->data;
    fm_buf_init(b, b->limit);
    return s;
}

int fm_buf_json_string(struct fm_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    fm_buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        /* Most strings need no escape at all: copy the runs between escapes whole. */
        const unsigned char *run = p;
        while (*p >= 0x20 && *p != '"' && *p != '\\')
            p++;
        fm_buf_append(b, run, (size_t)(p - run));
        if (*p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            fm_buf_append(b, esc, sizeof esc);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            fm_buf_append(b, esc, sizeof esc);
        }
        p++;
    }
    return fm_buf_append(b, "\"", 1);
}
