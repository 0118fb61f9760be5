#include "common/names.h"

#include <string.h>

bool fm_name_ok(const char *s, bool function)
{
    size_t len = strlen(s);
    if (len == 0 || len > (function ? FM_FUNCTION_MAX : FM_TENANT_MAX))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                     (function && c >= 'A' && c <= 'Z');
        bool punct = i > 0 && (c == '_' || c == '-' || (function && c == '.'));
        if (!alnum && !punct)
            return false;
    }
    return true;
}
