#include "meter/keycache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/apikey.h"
#include "common/timeutil.h"

/* Open addressing over a fixed table: keys are few (one per runtime or tenant), so a fixed
 * size with a short probe run bounds memory and time whatever callers send. */
#define KEYCACHE_SLOTS 1024
#define KEYCACHE_PROBE 8

struct keycache_entry {
    char id[APIKEY_ID_LEN + 1]; /* "" when the slot is free */
    int64_t expires_us;         /* monotonic clock */
    struct meter_key key;
};

struct meter_keycache {
    pthread_rwlock_t lock;
    int64_t ttl_us;
    struct keycache_entry slots[KEYCACHE_SLOTS];
};

int meter_keycache_new(unsigned ttl_ms, struct meter_keycache **out)
{
    struct meter_keycache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    if (pthread_rwlock_init(&c->lock, NULL) != 0) {
        free(c);
        return -1;
    }
    c->ttl_us = (int64_t)ttl_ms * 1000;
    *out = c;
    return 0;
}

void meter_keycache_free(struct meter_keycache *c)
{
    if (c == NULL)
        return;
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

/* FNV-1a: ids are random hex already, any cheap mix spreads them. */
static size_t slot_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % KEYCACHE_SLOTS;
}

bool meter_keycache_get(struct meter_keycache *c, const char *key_id, struct meter_key *out)
{
    if (c->ttl_us == 0 || strlen(key_id) > APIKEY_ID_LEN)
        return false;
    int64_t now = fm_mono_us();
    size_t at = slot_of(key_id);
    bool found = false;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < KEYCACHE_PROBE; i++) {
        const struct keycache_entry *e = &c->slots[(at + i) % KEYCACHE_SLOTS];
        if (strcmp(e->id, key_id) == 0 && e->expires_us > now) {
            *out = e->key;
            found = true;
            break;
        }
    }
    pthread_rwlock_unlock(&c->lock);
    return found;
}

void meter_keycache_put(struct meter_keycache *c, const char *key_id,
                        const struct meter_key *key)
{
    size_t len = strlen(key_id);
    if (c->ttl_us == 0 || len > APIKEY_ID_LEN)
        return;
    int64_t now = fm_mono_us();
    size_t at = slot_of(key_id);
    pthread_rwlock_wrlock(&c->lock);
    /* The same id, else the entry closest to expiry (a free slot expires at 0). */
    struct keycache_entry *victim = &c->slots[at];
    for (size_t i = 0; i < KEYCACHE_PROBE; i++) {
        struct keycache_entry *e = &c->slots[(at + i) % KEYCACHE_SLOTS];
        if (strcmp(e->id, key_id) == 0) {
            victim = e;
            break;
        }
        if (e->expires_us < victim->expires_us)
            victim = e;
    }
    memcpy(victim->id, key_id, len + 1);
    victim->expires_us = now + c->ttl_us;
    victim->key = *key;
    pthread_rwlock_unlock(&c->lock);
}
