#ifndef FM_APIKEY_H
#define FM_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * API keys: "fm_" + 12 hex digits of public id + "_" + 48 hex digits of secret (192 random
 * bits). Only the SHA-256 of the whole key is stored; the id finds the stored hash.
 */
#define APIKEY_LEN 64          /* strlen of a key */
#define APIKEY_ID_LEN 12
#define APIKEY_HASH_LEN 32

/** Make a new random key. key must hold APIKEY_LEN + 1 bytes. Returns 0, or -1 without
 *  randomness from the kernel. */
int apikey_generate(char *key);

/** The public id of a well-formed key into id (APIKEY_ID_LEN + 1 bytes); false when the key
 *  is not of the key format. */
bool apikey_id(const char *key, char *id);

/** SHA-256 of the key. */
void apikey_hash(const char *key, unsigned char hash[APIKEY_HASH_LEN]);

/** Compare two hashes in time independent of where they differ. */
bool apikey_hash_equal(const unsigned char *a, const unsigned char *b);

#endif
