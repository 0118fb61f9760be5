#include "common/apikey.h"

#include <openssl/crypto.h>
#include <string.h>
#include <sys/random.h>

#include "common/sha256.h"

static const char hexdigits[] = "0123456789abcdef";

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
}

int apikey_generate(char *key)
{
    unsigned char rnd[6 + 24];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    memcpy(key, "fm_", 3);
    hex(rnd, 6, key + 3);
    key[3 + APIKEY_ID_LEN] = '_';
    hex(rnd + 6, 24, key + 4 + APIKEY_ID_LEN);
    key[APIKEY_LEN] = '\0';
    return 0;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(hexdigits, s[i]) || s[i] == '\0')
            return false;
    return true;
}

bool apikey_id(const char *key, char *id)
{
    if (strlen(key) != APIKEY_LEN || memcmp(key, "fm_", 3) != 0 ||
        key[3 + APIKEY_ID_LEN] != '_' || !is_hex(key + 3, APIKEY_ID_LEN) ||
        !is_hex(key + 4 + APIKEY_ID_LEN, APIKEY_LEN - 4 - APIKEY_ID_LEN))
        return false;
    memcpy(id, key + 3, APIKEY_ID_LEN);
    id[APIKEY_ID_LEN] = '\0';
    return true;
}

void apikey_hash(const char *key, unsigned char hash[APIKEY_HASH_LEN])
{
    if (fm_sha256(key, strlen(key), hash) != 0)
        memset(hash, 0, APIKEY_HASH_LEN); /* matches no stored key: those are real hashes */
}

bool apikey_hash_equal(const unsigned char *a, const unsigned char *b)
{
    return CRYPTO_memcmp(a, b, APIKEY_HASH_LEN) == 0;
}
