/*
 * store [DIR]: reads an image on stdin and stores it in DIR (else $STORE_DIR) under a name
 * made from its content hash (FNV-1a, 64 bits), so storing the same image twice is
 * harmless. Prints a JSON receipt: {"name": "...", "bytes": N}. Runs in exec or warm mode
 * (see warm.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/functions/warm.h"

static int store(const struct warm_request *req, FILE *out, void *ctx)
{
    const char *dir = ctx;
    if (req->len == 0) {
        fputs("store: empty request\n", stderr);
        return 1;
    }
    const unsigned char *data = (const unsigned char *)req->payload;
    uint64_t hash = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < req->len; i++)
        hash = (hash ^ data[i]) * UINT64_C(1099511628211);
    char name[32], path[4096], tmp[4096];
    snprintf(name, sizeof name, "%016llx.ppm", (unsigned long long)hash);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld", dir, name, (long)getpid());
    /* Write then rename: a reader never sees half an image under the final name. */
    FILE *f = fopen(tmp, "wb");
    if (f == NULL || fwrite(data, 1, req->len, f) != req->len || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        perror("store");
        return 1;
    }
    fprintf(out, "{\"name\": \"%s\", \"bytes\": %zu}\n", name, req->len);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("STORE_DIR");
    if (dir == NULL || *dir == '\0') {
        fputs("store: give a folder as argument or in STORE_DIR\n", stderr);
        return 2;
    }
    return warm_run(store, (void *)dir);
}
