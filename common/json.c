#include "common/json.h"

#include <stdbool.h>

cJSON *fm_json_parse(const char *text, size_t len, const char **end)
{
    const char *stop = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &stop, false);
    if (root != NULL) {
        const char *p = stop, *last = text + len;
        while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p == last)
            return root;
        cJSON_Delete(root);
        root = NULL;
        stop = p;
    }
    if (end != NULL)
        *end = stop;
    return NULL;
}
