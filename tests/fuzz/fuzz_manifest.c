/* A function manifest from any text: rt_manifest_parse accepts it or says why. */

#include "runtime/manifest.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_string(data, size);
    if (text == NULL)
        return 0;
    struct rt_manifest *m = NULL;
    if (rt_manifest_parse(text, "fuzz", "/nonexistent", &m, NULL) == RT_OK)
        rt_manifest_free(m);
    free(text);
    return 0;
}
