#ifndef RT_SPOOL_H
#define RT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "runtime/status.h"

/*
 * The metering spool: a folder of append-only NDJSON segments ("seg-<16 digits>.ndjson"),
 * a cursor file saying how far the shipper got, and dead-letter.ndjson for records the
 * metering service refused. Many processes may append to one spool at once; one shipper at
 * a time reads it (see rt_spool_claim).
 */
struct rt_spool;

#define RT_SPOOL_SEGMENT_BYTES ((size_t)8 * 1024 * 1024)
#define RT_SPOOL_DEAD_LETTER "dead-letter.ndjson"

/* Consecutive records of one segment, as read by the shipper. */
struct rt_spool_batch {
    char *data;      /* the bytes read; lines point into it */
    const char **line;
    size_t *line_len; /* without the newline */
    size_t nlines;   /* 0 when the spool has nothing to ship */
    uint64_t seq;    /* segment */
    uint64_t end;    /* offset just past the batch */
};

/**
 * Open (and create, with its parents) a spool folder.
 * @param segment_bytes  size after which appends go to a new segment; 0 for the default
 * @param out  on RT_OK the spool (caller closes with rt_spool_close); untouched on error
 * @return RT_OK, RT_EIO, RT_ENOMEM
 */
enum rt_status rt_spool_open(const char *dir, size_t segment_bytes, struct rt_spool **out,
                             struct fm_err *err);

/**
 * Open a spool folder that exists already, creating nothing (for a shipper: a folder that
 * is not there holds no records, and a mistyped name must not become a new spool).
 * @return as rt_spool_open; RT_EINVAL when dir is not an existing folder (the message names
 *         dir and why)
 */
enum rt_status rt_spool_open_existing(const char *dir, struct rt_spool **out,
                                      struct fm_err *err);

/** Close a spool (and release a claim); NULL is a no-op. */
void rt_spool_close(struct rt_spool *s);

/** The spool's folder, borrowed from s. */
const char *rt_spool_dir(const struct rt_spool *s);

/**
 * Append one record (no newline inside) without waiting for the disk: it reaches the
 * segment (and survives the process being killed) but not yet a power loss. Numbers
 * appends in *ticket (optional) for rt_spool_sync. Safe against other processes appending
 * at once; thread-safe. A write cut short (disk full) is cut back off the segment, so that
 * no later record is glued to its fragment; when that cannot be done the spool refuses
 * from then on.
 * @return RT_OK, RT_EINVAL (a newline in rec), RT_EIO (also once a sync has failed)
 */
enum rt_status rt_spool_write(struct rt_spool *s, const char *rec, size_t len,
                              uint64_t *ticket, struct fm_err *err);

/**
 * Wait until the append numbered ticket, and so every earlier append of this spool handle,
 * is on disk. Concurrent callers share their fdatasync (a group commit: one sync covers
 * every record written before it started, and each caller waits until one covers its own).
 * After a failed sync the spool refuses every append and sync (the kernel may have dropped
 * what it covered), so nothing more runs unmetered. Thread-safe.
 * @return RT_OK, RT_EIO
 */
enum rt_status rt_spool_sync(struct rt_spool *s, uint64_t ticket, struct fm_err *err);

/**
 * rt_spool_write then rt_spool_sync: once this returns RT_OK the record survives a crash.
 * @return RT_OK, RT_EINVAL (a newline in rec), RT_EIO
 */
enum rt_status rt_spool_append(struct rt_spool *s, const char *rec, size_t len,
                               struct fm_err *err);

/** Cap the spool at max_bytes of unshipped records (0: no cap); see rt_spool_has_room. */
void rt_spool_set_cap(struct rt_spool *s, size_t max_bytes);

/**
 * Whether a new invocation may start: the spool works and the records its shipper has not
 * sent yet (looked at again every 100 ms, so other processes' appends and the shipper's
 * progress count) are under the cap. Appends themselves never check it: an invocation
 * that started gets its stop record whatever the size. Thread-safe.
 */
bool rt_spool_has_room(struct rt_spool *s);

/**
 * Become the spool's only shipper and load the cursor. Held until rt_spool_close.
 * @return RT_OK, RT_EBUSY when another process ships this spool now, RT_EIO
 */
enum rt_status rt_spool_claim(struct rt_spool *s, struct fm_err *err);

/**
 * Read the next records after the cursor, at most max_records of one segment. Fully shipped
 * segments that a newer one follows are deleted on the way. Requires a claim.
 * @param out  on RT_OK the batch (free with rt_spool_batch_free); nlines 0 when nothing is left
 * @return RT_OK, RT_EIO, RT_ENOMEM
 */
enum rt_status rt_spool_next_batch(struct rt_spool *s, size_t max_records,
                                   struct rt_spool_batch *out, struct fm_err *err);

/** Durably move the cursor past b (the records were delivered or dead-lettered). */
enum rt_status rt_spool_commit(struct rt_spool *s, const struct rt_spool_batch *b,
                               struct fm_err *err);

/**
 * Append {"error": reason, "record": REC} to the dead-letter file and fsync it. REC is
 * embedded as JSON when it parses, else as a string.
 */
enum rt_status rt_spool_dead_letter(struct rt_spool *s, const char *rec, size_t len,
                                    const char *reason, struct fm_err *err);

/** Free what a batch holds; safe on a zeroed batch. */
void rt_spool_batch_free(struct rt_spool_batch *b);

#endif
