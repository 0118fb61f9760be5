#include "common/json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

bool fm_json_has_nul(const char *text, size_t len)
{
    if (memchr(text, '\0', len) != NULL)
        return true;
    /* Most texts hold no backslash at all: look for those, and only then for the rest.
     * An escape is a backslash and the character after it: in \\u0000 the second backslash
     * is the one escaped, and u0000 is text. */
    const char *end = text + len;
    for (const char *p = text; (p = memchr(p, '\\', (size_t)(end - p))) != NULL; p += 2) {
        if (end - p >= 6 && memcmp(p, "\\u0000", 6) == 0)
            return true;
        if (end - p < 2)
            break;
    }
    return false;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

int fm_json_key_twice(const cJSON *object, const char **twice)
{
    *twice = NULL;
    size_t n = 0, i = 0;
    for (const cJSON *c = object->child; c != NULL; c = c->next)
        n++;
    if (!cJSON_IsObject(object) || n < 2)
        return 0;
    const cJSON **keys = malloc(n * sizeof *keys);
    if (keys == NULL)
        return -1;
    for (const cJSON *c = object->child; c != NULL; c = c->next)
        keys[i++] = c;
    qsort(keys, n, sizeof *keys, cmp_key);
    for (i = 1; i < n && *twice == NULL; i++)
        if (strcmp(keys[i - 1]->string, keys[i]->string) == 0)
            *twice = keys[i]->string;
    free(keys);
    return 0;
}
