#ifndef FM_JSON_H
#define FM_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/**
 * Parse text as one JSON value, with nothing but whitespace after it. cJSON alone stops at
 * the end of the first value and ignores what follows, so "[...][...]" or a record followed
 * by another on the same line would lose the rest without a word.
 * @param end  optional: when the text is refused, where it went wrong
 * @return the tree (free with cJSON_Delete), or NULL
 */
cJSON *fm_json_parse(const char *text, size_t len, const char **end);

/**
 * Whether text holds a zero byte or a \u0000 escape. cJSON ends a string at either, so two
 * different values could read as one ("acme\u0000x" as "acme"): such text is refused
 * before it is parsed.
 */
bool fm_json_has_nul(const char *text, size_t len);

/* What a text that fm_json_has_nul refuses is told. */
#define FM_JSON_NUL_ERROR "strings may not contain \\u0000 or a zero byte"

/**
 * A key given twice in object (cJSON keeps both, and a lookup finds the first), found in
 * n log n however many keys it has. Only object's own keys: nested objects are the caller's.
 * @param twice  the key, or NULL when every key is given once
 * @return 0, or -1 when memory ran out
 */
int fm_json_key_twice(const cJSON *object, const char **twice);

#endif
