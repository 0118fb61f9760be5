#ifndef FM_METER_KEYCACHE_H
#define FM_METER_KEYCACHE_H

/*
 * The API keys a meterd has looked up lately, so that a request does not cost a database
 * round trip to authenticate. Entries live ttl_ms; a revoked key therefore keeps working
 * for at most that long. Only keys found in the database are kept: an unknown id is asked
 * for again each time, so a key created a moment ago works at once.
 */

#include <stdbool.h>
#include <stdint.h>

#include "meter/store.h"

struct meter_keycache;

/**
 * A new, empty cache whose entries expire ttl_ms after they were looked up.
 * @param ttl_ms  0 disables caching (every get misses)
 * @param out     on 0, the cache (caller frees with meter_keycache_free)
 * @return 0, or -1 when memory ran out
 */
int meter_keycache_new(unsigned ttl_ms, struct meter_keycache **out);

/** Free c. NULL is a no-op. No other thread may use c any more. */
void meter_keycache_free(struct meter_keycache *c);

/**
 * The live entry for key_id.
 * @param out  written only when found
 * @return true when key_id is cached and younger than the TTL. Thread-safe (readers share
 *         a read lock).
 */
bool meter_keycache_get(struct meter_keycache *c, const char *key_id, struct meter_key *out);

/**
 * Remember key (as the database has it) under key_id, from now for the TTL; replaces an
 * entry of the same id, or the oldest entry among its probe slots when they are all taken.
 * key_id longer than APIKEY_ID_LEN is ignored. Thread-safe.
 */
void meter_keycache_put(struct meter_keycache *c, const char *key_id,
                        const struct meter_key *key);

#endif
