#ifndef FM_BUF_H
#define FM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * A growable byte buffer with a hard cap. Reaching the cap is an error, never a silent
 * truncation: once an append fails the buffer is marked failed and later appends fail too,
 * so a caller may check once at the end. data is always NUL-terminated.
 */
struct fm_buf {
    char *data;
    size_t len;
    size_t cap;   /* allocated */
    size_t limit; /* most bytes it may ever hold, excluding the NUL */
    bool failed;
    bool fixed;   /* data is the caller's memory: never reallocated nor freed */
};

/** Start an empty buffer that may grow to limit bytes. Allocates nothing yet. */
void fm_buf_init(struct fm_buf *b, size_t limit);

/**
 * Start an empty buffer over the caller's memory of size bytes (size >= 1), the NUL
 * included. It never allocates: holding more than size - 1 bytes fails as the cap does.
 * fm_buf_free only empties it; fm_buf_steal is not for it.
 */
void fm_buf_init_fixed(struct fm_buf *b, char *mem, size_t size);

/** Free what b holds and make it empty again (it can be reused). */
void fm_buf_free(struct fm_buf *b);

/** Forget the contents but keep the allocation. */
void fm_buf_reset(struct fm_buf *b);

/** fm_buf_append when the room is not there yet: grows b, or fails at the cap. */
int fm_buf_append_grow(struct fm_buf *b, const void *p, size_t n);

/** Append n bytes. Returns 0, or -1 on the cap or out of memory (b->failed is then set). */
static inline int fm_buf_append(struct fm_buf *b, const void *p, size_t n)
{
    /* Inline: appends are many and small, and most fit in the room there is. */
    if (b->failed || n >= b->cap - b->len || n > b->limit - b->len)
        return fm_buf_append_grow(b, p, n);
    if (n == 0)
        return 0; /* p may be NULL then */
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static inline int fm_buf_puts(struct fm_buf *b, const char *s)
{
    return fm_buf_append(b, s, strlen(s));
}

int fm_buf_printf(struct fm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Append v in decimal, as printf's %lld would. Returns 0 or -1 as fm_buf_append. */
int fm_buf_put_int(struct fm_buf *b, long long v);

/** Append s as a JSON string literal, quoted and escaped. Returns 0 or -1 as fm_buf_append. */
int fm_buf_json_string(struct fm_buf *b, const char *s);

/**
 * Take the contents as a heap string (caller frees with free) and leave b empty.
 * Returns NULL when the buffer failed.
 */
char *fm_buf_steal(struct fm_buf *b);

#endif
