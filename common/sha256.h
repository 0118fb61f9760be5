#ifndef FM_COMMON_SHA256_H
#define FM_COMMON_SHA256_H

#include <stddef.h>

#define FM_SHA256_LEN 32

/** SHA-256 of n bytes at p into out. Thread-safe. @return 0, or -1 when OpenSSL failed. */
int fm_sha256(const void *p, size_t n, unsigned char out[FM_SHA256_LEN]);

#endif
