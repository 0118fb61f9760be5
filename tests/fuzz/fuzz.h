#ifndef FM_TESTS_FUZZ_H
#define FM_TESTS_FUZZ_H

/* What the fuzz targets share: libFuzzer's entry point, and inputs as C strings. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated copy of just its length (caller frees), so that the
 * sanitizer sees any read past it; NULL when out of memory. */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
