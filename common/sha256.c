#include "common/sha256.h"

#include <openssl/evp.h>
#include <pthread.h>

/* The algorithm is looked up once and a context kept per thread: OpenSSL's one-shot
 * SHA256() looks the algorithm up again on every call. */
static EVP_MD *sha256;
static pthread_key_t sha_ctx_key;
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void free_sha_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha_init(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha_ctx_key, free_sha_ctx) != 0) {
        EVP_MD_free(sha256);
        sha256 = NULL;
    }
}

int fm_sha256(const void *p, size_t n, unsigned char out[FM_SHA256_LEN])
{
    pthread_once(&sha_once, sha_init);
    if (sha256 == NULL)
        return -1;
    EVP_MD_CTX *ctx = pthread_getspecific(sha_ctx_key);
    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL)
            return -1;
        if (pthread_setspecific(sha_ctx_key, ctx) != 0) {
            EVP_MD_CTX_free(ctx);
            return -1;
        }
    }
    unsigned len = 0;
    if (!EVP_DigestInit_ex2(ctx, sha256, NULL) || !EVP_DigestUpdate(ctx, p, n) ||
        !EVP_DigestFinal_ex(ctx, out, &len))
        return -1;
    return 0;
}
