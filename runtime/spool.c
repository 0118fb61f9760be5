#include "runtime/spool.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"

#define BATCH_BYTES ((size_t)2 * 1024 * 1024)
#define SEG_PREFIX "seg-"
#define SEG_SUFFIX ".ndjson"
#define SEG_DIGITS 16
#define USAGE_RESCAN_US 100000

struct rt_spool {
    char dir[PATH_MAX - 128]; /* leaves room for the file names inside */
    size_t segment_bytes;
    int append_fd; /* segment the writer appends to, -1 until the first append */
    uint64_t append_seq;
    int lock_fd;   /* ship.lock while claimed, else -1 */
    uint64_t cur_seq, cur_off;
    /* Group commit: appends are numbered; one fdatasync covers every append numbered up to
     * what was written when it started. Syncs are numbered too, and a caller waits on the
     * condition of the sync that covers its append: the one in flight, else the next (which
     * starts when that one ends and covers all written by then). The parity of the number
     * tells the two apart, so the end of a sync wakes only the callers it covered, and one
     * caller to lead the next sync when some wait for it. */
    pthread_mutex_t lock;
    pthread_cond_t synced_cv[2];
    unsigned waiting[2];   /* callers waiting on each condition */
    uint64_t written, synced;
    uint64_t sync_no;      /* syncs started so far; the last one is in flight when syncing */
    uint64_t sync_target;  /* what the sync in flight covers */
    bool syncing;
    /* An fdatasync failed: what it covered may be lost, refuse from now on. Atomic, like
     * the cap's figures, so that rt_spool_has_room (once per invocation) reads them without
     * the lock that appends and syncs take. */
    atomic_bool broken;
    _Atomic size_t max_bytes;
    _Atomic uint64_t usage_bytes; /* unshipped at the last look, plus appends since */
    _Atomic int64_t usage_at_us;  /* when the folder was last looked at; 0: look now */
    pthread_mutex_t usage_lock;   /* one look at a time */
};

static enum rt_status sys_err(struct fm_err *err, const char *what, const char *path)
{
    fm_err_set(err, "%s %s: %s", what, path, strerror(errno));
    return RT_EIO;
}

static int path_in(const struct rt_spool *s, const char *name, char *buf, size_t n)
{
    int w = snprintf(buf, n, "%s/%s", s->dir, name);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int seg_path(const struct rt_spool *s, uint64_t seq, char *buf, size_t n)
{
    char name[64];
    snprintf(name, sizeof name, SEG_PREFIX "%0*" PRIu64 SEG_SUFFIX, SEG_DIGITS, seq);
    return path_in(s, name, buf, n);
}

static bool parse_seg_name(const char *name, uint64_t *seq)
{
    size_t plen = strlen(SEG_PREFIX);
    if (strlen(name) != plen + SEG_DIGITS + strlen(SEG_SUFFIX) ||
        strncmp(name, SEG_PREFIX, plen) != 0 || strcmp(name + plen + SEG_DIGITS, SEG_SUFFIX))
        return false;
    uint64_t v = 0;
    for (size_t i = plen; i < plen + SEG_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return true;
}

/* The lowest segment >= from and the highest segment overall (0 when none). */
static enum rt_status scan_segments(const struct rt_spool *s, uint64_t from, uint64_t *lowest,
                                    uint64_t *highest, struct fm_err *err)
{
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return sys_err(err, "cannot list", s->dir);
    uint64_t lo = 0, hi = 0, seq;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!parse_seg_name(e->d_name, &seq))
            continue;
        if (seq >= from && (lo == 0 || seq < lo))
            lo = seq;
        if (seq > hi)
            hi = seq;
    }
    closedir(d);
    *lowest = lo;
    *highest = hi;
    return RT_OK;
}

static enum rt_status sync_dir(const struct rt_spool *s, struct fm_err *err)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        enum rt_status st = sys_err(err, "cannot sync", s->dir);
        if (fd >= 0)
            close(fd);
        return st;
    }
    close(fd);
    return RT_OK;
}

static int mkdir_parents(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static enum rt_status spool_open(const char *dir, size_t segment_bytes, bool create,
                                 struct rt_spool **out, struct fm_err *err)
{
    if (strlen(dir) >= sizeof ((struct rt_spool *)NULL)->dir) {
        fm_err_set(err, "spool folder name too long");
        return RT_EINVAL;
    }
    struct stat sb;
    if (!create && stat(dir, &sb) != 0) {
        fm_err_set(err, "no spool folder %s: %s", dir, strerror(errno));
        return RT_EINVAL;
    }
    if (!create && !S_ISDIR(sb.st_mode)) {
        fm_err_set(err, "no spool folder %s: %s", dir, strerror(ENOTDIR));
        return RT_EINVAL;
    }
    if (create && mkdir_parents(dir) != 0)
        return sys_err(err, "cannot create", dir);
    struct rt_spool *s = calloc(1, sizeof *s);
    if (s == NULL) {
        fm_err_set(err, "out of memory");
        return RT_ENOMEM;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->segment_bytes = segment_bytes ? segment_bytes : RT_SPOOL_SEGMENT_BYTES;
    s->append_fd = -1;
    s->lock_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->usage_lock, NULL);
    pthread_cond_init(&s->synced_cv[0], NULL);
    pthread_cond_init(&s->synced_cv[1], NULL);
    *out = s;
    return RT_OK;
}

enum rt_status rt_spool_open(const char *dir, size_t segment_bytes, struct rt_spool **out,
                             struct fm_err *err)
{
    return spool_open(dir, segment_bytes, true, out, err);
}

enum rt_status rt_spool_open_existing(const char *dir, struct rt_spool **out,
                                      struct fm_err *err)
{
    return spool_open(dir, 0, false, out, err);
}

void rt_spool_close(struct rt_spool *s)
{
    if (s == NULL)
        return;
    if (s->append_fd >= 0)
        close(s->append_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_cond_destroy(&s->synced_cv[0]);
    pthread_cond_destroy(&s->synced_cv[1]);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->usage_lock);
    free(s);
}

const char *rt_spool_dir(const struct rt_spool *s)
{
    return s->dir;
}

/* The first segment number a new segment may take: past what the shipper's cursor has
 * passed, even where its segments are gone (cleared by hand, restored from elsewhere).
 * Records in a segment behind the cursor would be taken as shipped and deleted. */
static uint64_t first_unshipped(const struct rt_spool *s)
{
    char path[PATH_MAX], text[64] = "";
    path_in(s, "cursor", path, sizeof path);
    FILE *f = fopen(path, "re");
    uint64_t seq = 0, off = 0;
    bool ok = f && fgets(text, sizeof text, f) != NULL &&
              sscanf(text, "%" SCNu64 " %" SCNu64, &seq, &off) == 2;
    if (f)
        fclose(f);
    if (!ok)
        return 0;
    return off > 0 ? seq + 1 : seq;
}

/* Open the newest segment for appending, or create the one after `after` when it is the
 * newest. */
static enum rt_status open_for_append(struct rt_spool *s, uint64_t after, struct fm_err *err)
{
    uint64_t lo, hi;
    enum rt_status st = scan_segments(s, 0, &lo, &hi, err);
    if (st != RT_OK)
        return st;
    uint64_t seq = hi > after ? hi : after + 1;
    uint64_t floor = first_unshipped(s);
    if (seq < floor)
        seq = floor;
    char path[PATH_MAX];
    seg_path(s, seq, path, sizeof path);
    /* Only a new segment may be created: recreating one the shipper just retired would put
     * records behind its cursor. Readable, to see how the segment ends before each append. */
    int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | (seq > hi ? O_CREAT : 0), 0600);
    if (fd < 0 && errno == ENOENT && seq <= hi)
        return RT_EBUSY;
    if (fd < 0)
        return sys_err(err, "cannot open", path);
    /* The creator may have been killed between creating the segment and syncing the
     * folder: whoever answers from a segment first makes sure its entry is durable. */
    if ((st = sync_dir(s, err)) != RT_OK) {
        close(fd);
        return st;
    }
    s->append_fd = fd;
    s->append_seq = seq;
    return RT_OK;
}

/* Before the append segment is closed (rotation), what was written to it must be synced:
 * the group commit only ever syncs the current one. Waiting for a sync lets go of the lock,
 * and another thread may retire segment seq meanwhile and start the next one: that one
 * stays. Called with the lock held. */
static void retire_append_fd(struct rt_spool *s, uint64_t seq)
{
    while (s->syncing)
        pthread_cond_wait(&s->synced_cv[s->sync_no & 1], &s->lock);
    if (s->append_fd < 0 || s->append_seq != seq)
        return;
    if (s->written > s->synced) {
        if (fdatasync(s->append_fd) == 0)
            s->synced = s->written;
        else
            s->broken = true;
        /* It covered those waiting for the next sync as well. */
        pthread_cond_broadcast(&s->synced_cv[0]);
        pthread_cond_broadcast(&s->synced_cv[1]);
    }
    close(s->append_fd);
    s->append_fd = -1;
}

/* A short write left the first n bytes of rec at the end of the segment. Anything appended
 * after it would be glued to it (and an answered record dead-lettered with it), so it is cut
 * off while no one can append; when that cannot be done safely the spool refuses from now
 * on. Called with the lock held. */
static void drop_fragment(struct rt_spool *s, const char *rec, size_t n)
{
    struct stat sb;
    char tail[256];
    bool cut = false;
    if (flock(s->append_fd, LOCK_EX) == 0 && fstat(s->append_fd, &sb) == 0 &&
        (uint64_t)sb.st_size >= n) {
        /* Only our own bytes may go: another process may have appended after them. */
        off_t at = sb.st_size - (off_t)n;
        bool ours = true;
        for (size_t done = 0; ours && done < n;) {
            size_t want = n - done < sizeof tail ? n - done : sizeof tail;
            ours = pread(s->append_fd, tail, want, at + (off_t)done) == (ssize_t)want &&
                   memcmp(tail, rec + done, want) == 0;
            done += want;
        }
        cut = ours && ftruncate(s->append_fd, at) == 0;
    }
    flock(s->append_fd, LOCK_UN);
    if (!cut)
        s->broken = true;
}

/* Write one record to the current segment; its number in *seq. Called with the lock held. */
static enum rt_status write_record(struct rt_spool *s, const char *rec, size_t len,
                                   uint64_t *seq, struct fm_err *err)
{
    /* A few rounds at most: another process may rotate or the shipper may retire the
     * segment between our open and our lock. */
    for (int round = 0; round < 8; round++) {
        if (s->append_fd < 0) {
            enum rt_status st = open_for_append(s, s->append_seq, err);
            if (st == RT_EBUSY)
                continue;
            if (st != RT_OK)
                return st;
        }
        struct stat sb;
        if (flock(s->append_fd, LOCK_SH) != 0 || fstat(s->append_fd, &sb) != 0)
            return sys_err(err, "cannot lock a segment in", s->dir);
        if (sb.st_nlink == 0 || (size_t)sb.st_size >= s->segment_bytes) {
            flock(s->append_fd, LOCK_UN);
            retire_append_fd(s, s->append_seq);
            continue;
        }
        /* A writer killed in the middle of its write (SIGKILL between two pages of it)
         * leaves a record without its newline, maybe in a segment this process holds open:
         * start on a line of its own, or the record would be glued to the fragment and
         * dead-lettered with it. (A writer seen in the middle of its write only leaves an
         * empty line, which the shipper skips.) */
        char last = '\n';
        if (sb.st_size > 0 && pread(s->append_fd, &last, 1, sb.st_size - 1) != 1)
            last = '\n';
        size_t lead = last != '\n';
        struct iovec iov[3] = {{"\n", lead}, {(void *)rec, len}, {"\n", 1}};
        ssize_t w = writev(s->append_fd, iov, 3);
        flock(s->append_fd, LOCK_UN);
        if (w != (ssize_t)(lead + len + 1)) {
            /* A short write sets no errno: the next write would have failed with it. */
            enum rt_status st = RT_EIO;
            if (w < 0)
                st = sys_err(err, "cannot append to a segment in", s->dir);
            else
                fm_err_set(err, "cannot append to a segment in %s: only %zd of %zu bytes "
                                "written (no space left, or a file size limit)",
                           s->dir, w, lead + len + 1);
            if (w > (ssize_t)lead)
                drop_fragment(s, rec, (size_t)w - lead);
            return st;
        }
        *seq = ++s->written;
        s->usage_bytes += lead + len + 1;
        return RT_OK;
    }
    fm_err_set(err, "cannot find a segment to append to in %s", s->dir);
    return RT_EIO;
}

/* Sync number no ended: wake the callers it covered, and one of those waiting for the
 * next sync to lead it (all of them when the spool broke). Called with the lock held. */
static void sync_ended(struct rt_spool *s, uint64_t no)
{
    pthread_cond_broadcast(&s->synced_cv[no & 1]);
    if (s->broken)
        pthread_cond_broadcast(&s->synced_cv[(no + 1) & 1]);
    else if (s->waiting[(no + 1) & 1] > 0)
        pthread_cond_signal(&s->synced_cv[(no + 1) & 1]);
}

/* Wait until append number seq is on disk, syncing for everyone when nobody else is.
 * Called with the lock held. */
static void group_sync(struct rt_spool *s, uint64_t seq)
{
    while (s->synced < seq && !s->broken) {
        if (s->syncing) {
            /* Not covered by the sync in flight: waiting for it to end and syncing right
             * then lets the next sync cover everyone who wrote meanwhile. */
            unsigned which = (s->sync_target >= seq ? s->sync_no : s->sync_no + 1) & 1;
            s->waiting[which]++;
            pthread_cond_wait(&s->synced_cv[which], &s->lock);
            s->waiting[which]--;
            continue;
        }
        s->syncing = true;
        uint64_t no = ++s->sync_no;
        uint64_t target = s->sync_target = s->written;
        int fd = s->append_fd;
        pthread_mutex_unlock(&s->lock);
        int rc = fdatasync(fd);
        pthread_mutex_lock(&s->lock);
        s->syncing = false;
        if (rc == 0 && target > s->synced)
            s->synced = target;
        else if (rc != 0)
            s->broken = true;
        sync_ended(s, no);
    }
}

/* The error of a spool that a failed sync broke. Called with the lock held. */
static enum rt_status broken_err(const struct rt_spool *s, struct fm_err *err)
{
    fm_err_set(err, "cannot sync a segment in %s: the spool refuses appends until restarted",
               s->dir);
    return RT_EIO;
}

enum rt_status rt_spool_write(struct rt_spool *s, const char *rec, size_t len,
                              uint64_t *ticket, struct fm_err *err)
{
    if (memchr(rec, '\n', len) != NULL) {
        fm_err_set(err, "a record must not contain a newline");
        return RT_EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    uint64_t seq = 0;
    enum rt_status st = s->broken ? broken_err(s, err) : write_record(s, rec, len, &seq, err);
    pthread_mutex_unlock(&s->lock);
    if (st == RT_OK && ticket)
        *ticket = seq;
    return st;
}

enum rt_status rt_spool_sync(struct rt_spool *s, uint64_t ticket, struct fm_err *err)
{
    pthread_mutex_lock(&s->lock);
    group_sync(s, ticket);
    enum rt_status st = s->broken || s->synced < ticket ? broken_err(s, err) : RT_OK;
    pthread_mutex_unlock(&s->lock);
    return st;
}

enum rt_status rt_spool_append(struct rt_spool *s, const char *rec, size_t len,
                               struct fm_err *err)
{
    uint64_t ticket = 0;
    enum rt_status st = rt_spool_write(s, rec, len, &ticket, err);
    return st == RT_OK ? rt_spool_sync(s, ticket, err) : st;
}

void rt_spool_set_cap(struct rt_spool *s, size_t max_bytes)
{
    pthread_mutex_lock(&s->usage_lock);
    s->max_bytes = max_bytes;
    s->usage_at_us = 0;
    pthread_mutex_unlock(&s->usage_lock);
}

/* The bytes not shipped yet: from the shipper's cursor (maybe another process's) to the
 * end. Shipped records must not count: the newest segment stays on disk until a newer one
 * exists, so counting them would keep a spool capped below a segment's size full forever. */
static uint64_t unshipped_bytes(const struct rt_spool *s)
{
    uint64_t total = 0, seq, cur_seq = 0, cur_off = 0;
    char path[PATH_MAX], text[64] = "";
    path_in(s, "cursor", path, sizeof path);
    FILE *f = fopen(path, "re");
    if (f != NULL) {
        if (fgets(text, sizeof text, f) == NULL ||
            sscanf(text, "%" SCNu64 " %" SCNu64, &cur_seq, &cur_off) != 2)
            cur_seq = cur_off = 0; /* unreadable: count everything, the safe side */
        fclose(f);
    }
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat sb;
        if (!parse_seg_name(e->d_name, &seq) || seq < cur_seq ||
            fstatat(dirfd(d), e->d_name, &sb, 0) != 0)
            continue;
        uint64_t size = (uint64_t)sb.st_size;
        uint64_t done = seq == cur_seq ? cur_off : 0;
        total += size > done ? size - done : 0;
    }
    closedir(d);
    return total;
}

/* Look at the folder again; called with usage_lock held. Appends go on meanwhile: those
 * the look saw are counted twice until the next look, which errs on the side of the cap. */
static void look_at_usage(struct rt_spool *s, int64_t now)
{
    uint64_t before = s->usage_bytes;
    uint64_t seen = unshipped_bytes(s);
    uint64_t cur = s->usage_bytes;
    while (!atomic_compare_exchange_weak(&s->usage_bytes, &cur, seen + (cur - before)))
        ;
    s->usage_at_us = now;
}

bool rt_spool_has_room(struct rt_spool *s)
{
    if (s->broken)
        return false;
    size_t cap = s->max_bytes;
    if (cap == 0)
        return true;
    /* The shipper (maybe another process) shrinks the spool: look again now and then. */
    int64_t now = fm_mono_us();
    if (s->usage_at_us == 0 || now - s->usage_at_us >= USAGE_RESCAN_US) {
        pthread_mutex_lock(&s->usage_lock);
        if (s->usage_at_us == 0 || now - s->usage_at_us >= USAGE_RESCAN_US)
            look_at_usage(s, now); /* unless another caller just did */
        pthread_mutex_unlock(&s->usage_lock);
    }
    return s->usage_bytes < cap;
}

static enum rt_status read_cursor(struct rt_spool *s, struct fm_err *err)
{
    char path[PATH_MAX], text[64] = "";
    path_in(s, "cursor", path, sizeof path);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno != ENOENT)
            return sys_err(err, "cannot read", path);
        s->cur_seq = s->cur_off = 0;
        return RT_OK;
    }
    bool ok = fgets(text, sizeof text, f) != NULL &&
              sscanf(text, "%" SCNu64 " %" SCNu64, &s->cur_seq, &s->cur_off) == 2;
    fclose(f);
    if (!ok) {
        fm_err_set(err, "%s: malformed cursor", path);
        return RT_EINVAL;
    }
    return RT_OK;
}

/* Write-then-rename, so that a crash leaves the old cursor or the new, never half of one. */
static enum rt_status write_cursor(struct rt_spool *s, uint64_t seq, uint64_t off,
                                   struct fm_err *err)
{
    char tmp[PATH_MAX], path[PATH_MAX], text[64];
    path_in(s, "cursor.tmp", tmp, sizeof tmp);
    path_in(s, "cursor", path, sizeof path);
    int n = snprintf(text, sizeof text, "%" PRIu64 " %" PRIu64 "\n", seq, off);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sys_err(err, "cannot write", tmp);
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return sys_err(err, "cannot write", path);
    enum rt_status st = sync_dir(s, err);
    if (st == RT_OK) {
        s->cur_seq = seq;
        s->cur_off = off;
    }
    return st;
}

/* A crash between moving the cursor past a segment and deleting it leaves it behind. */
static enum rt_status drop_retired(struct rt_spool *s, struct fm_err *err)
{
    for (;;) {
        uint64_t lo, hi;
        enum rt_status st = scan_segments(s, 0, &lo, &hi, err);
        if (st != RT_OK || lo == 0 || lo >= s->cur_seq)
            return st;
        char path[PATH_MAX];
        seg_path(s, lo, path, sizeof path);
        if (unlink(path) != 0)
            return sys_err(err, "cannot remove", path);
    }
}

enum rt_status rt_spool_claim(struct rt_spool *s, struct fm_err *err)
{
    if (s->lock_fd >= 0)
        return RT_OK;
    char path[PATH_MAX];
    path_in(s, "ship.lock", path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sys_err(err, "cannot open", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        enum rt_status st = errno == EWOULDBLOCK ? RT_EBUSY : RT_EIO;
        fm_err_set(err, "%s: %s", path,
                   st == RT_EBUSY ? "another shipper holds this spool" : strerror(errno));
        close(fd);
        return st;
    }
    enum rt_status st = read_cursor(s, err);
    if (st == RT_OK)
        st = drop_retired(s, err);
    if (st != RT_OK) {
        close(fd);
        return st;
    }
    s->lock_fd = fd;
    return RT_OK;
}

/* Split buf into lines. A trailing fragment counts only when the segment is final. */
static enum rt_status split_lines(struct rt_spool_batch *b, size_t n, size_t max_records,
                                  bool final)
{
    b->line = calloc(max_records, sizeof *b->line);
    b->line_len = calloc(max_records, sizeof *b->line_len);
    if (b->line == NULL || b->line_len == NULL)
        return RT_ENOMEM;
    size_t pos = 0;
    while (pos < n && b->nlines < max_records) {
        char *nl = memchr(b->data + pos, '\n', n - pos);
        /* A line longer than a whole batch can only be damage: ship it to be refused. */
        if (nl == NULL && !final && !(pos == 0 && n == BATCH_BYTES))
            break;
        size_t len = nl ? (size_t)(nl - (b->data + pos)) : n - pos;
        if (len > 0) {
            b->line[b->nlines] = b->data + pos;
            b->line_len[b->nlines++] = len;
        }
        pos += len + (nl != NULL);
    }
    b->end += pos;
    return RT_OK;
}

/* Read from the cursor's segment. When it is fully shipped and a newer segment exists, it
 * is retired (the cursor moves to the next one and it is deleted) and *retired is set, so
 * the caller moves on. */
static enum rt_status read_segment(struct rt_spool *s, uint64_t newest, size_t max_records,
                                   struct rt_spool_batch *b, bool *retired, struct fm_err *err)
{
    char path[PATH_MAX];
    seg_path(s, s->cur_seq, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, "cannot open", path);
    bool final = s->cur_seq < newest;
    /*
     * A newer segment does not mean that nobody appends to this one: a writer that opened it
     * before may go on until it sees it full or deleted, both under its shared lock. So the
     * exclusive lock is held from the size read here to the deletion (close lets it go): an
     * append either ends before it, and is read, or starts after, and sees the segment
     * deleted and moves on. It also keeps a record being written out of what is read.
     */
    if (final && flock(fd, LOCK_EX) != 0) {
        enum rt_status st = sys_err(err, "cannot lock", path);
        close(fd);
        return st;
    }
    enum rt_status st = RT_OK;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = sys_err(err, "cannot stat", path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (s->cur_off >= size) {
        if (!final)
            goto out;
        st = write_cursor(s, s->cur_seq + 1, 0, err);
        if (st == RT_OK && unlink(path) != 0 && errno != ENOENT)
            st = sys_err(err, "cannot remove", path);
        *retired = st == RT_OK;
        goto out;
    }
    size_t want = size - s->cur_off < BATCH_BYTES ? (size_t)(size - s->cur_off) : BATCH_BYTES;
    b->data = malloc(want + 1);
    if (b->data == NULL) {
        st = RT_ENOMEM;
        goto out;
    }
    ssize_t got = pread(fd, b->data, want, (off_t)s->cur_off);
    if (got != (ssize_t)want) {
        st = sys_err(err, "cannot read", path);
        goto out;
    }
    b->data[want] = '\0';
    b->seq = s->cur_seq;
    b->end = s->cur_off;
    st = split_lines(b, want, max_records, final && want == size - s->cur_off);
out:
    close(fd);
    return st;
}

enum rt_status rt_spool_next_batch(struct rt_spool *s, size_t max_records,
                                   struct rt_spool_batch *out, struct fm_err *err)
{
    if (s->lock_fd < 0 || max_records == 0) {
        fm_err_set(err, "reading a spool needs a claim and a batch size");
        return RT_EINVAL;
    }
    for (;;) {
        uint64_t lo, hi;
        enum rt_status st = scan_segments(s, s->cur_seq, &lo, &hi, err);
        if (st != RT_OK)
            return st;
        if (lo == 0) {
            *out = (struct rt_spool_batch){0};
            return RT_OK;
        }
        if (lo != s->cur_seq) { /* the cursor's segment is gone: start the next one */
            s->cur_seq = lo;
            s->cur_off = 0;
        }
        struct rt_spool_batch b = {0};
        bool retired = false;
        st = read_segment(s, hi, max_records, &b, &retired, err);
        if (st == RT_OK && b.nlines == 0 && b.end > s->cur_off) {
            /* Only empty lines: step over them, or an empty batch would say that nothing
             * is left, and the segments after them would never be read. */
            st = write_cursor(s, b.seq, b.end, err);
            rt_spool_batch_free(&b);
            if (st != RT_OK)
                return st;
            continue;
        }
        if (st != RT_OK || !retired) {
            if (st == RT_OK)
                *out = b;
            else
                rt_spool_batch_free(&b);
            if (st == RT_ENOMEM)
                fm_err_set(err, "out of memory");
            return st;
        }
    }
}

enum rt_status rt_spool_commit(struct rt_spool *s, const struct rt_spool_batch *b,
                               struct fm_err *err)
{
    if (b->nlines == 0)
        return RT_OK;
    return write_cursor(s, b->seq, b->end, err);
}

enum rt_status rt_spool_dead_letter(struct rt_spool *s, const char *rec, size_t len,
                                    const char *reason, struct fm_err *err)
{
    enum rt_status st = RT_ENOMEM;
    char path[PATH_MAX];
    char *line = NULL;
    int fd = -1;
    cJSON *obj = cJSON_CreateObject();
    cJSON *parsed = cJSON_ParseWithLength(rec, len);
    if (obj == NULL || cJSON_AddStringToObject(obj, "error", reason) == NULL)
        goto out;
    if (parsed != NULL) {
        cJSON_AddItemToObject(obj, "record", parsed);
        parsed = NULL;
    } else {
        char *copy = strndup(rec, len);
        bool added = copy && cJSON_AddStringToObject(obj, "record", copy) != NULL;
        free(copy);
        if (!added)
            goto out;
    }
    line = cJSON_PrintUnformatted(obj);
    if (line == NULL)
        goto out;
    path_in(s, RT_SPOOL_DEAD_LETTER, path, sizeof path);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    struct iovec iov[2] = {{line, strlen(line)}, {"\n", 1}};
    if (fd < 0 || writev(fd, iov, 2) != (ssize_t)(iov[0].iov_len + 1) || fsync(fd) != 0) {
        st = sys_err(err, "cannot write", path);
        goto out;
    }
    st = RT_OK;
out:
    if (st == RT_ENOMEM)
        fm_err_set(err, "out of memory");
    if (fd >= 0)
        close(fd);
    free(line);
    cJSON_Delete(parsed);
    cJSON_Delete(obj);
    return st;
}

void rt_spool_batch_free(struct rt_spool_batch *b)
{
    free(b->data);
    free(b->line);
    free(b->line_len);
    *b = (struct rt_spool_batch){0};
}
