#ifndef FM_JSON_H
#define FM_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/**
 * Parse text as one JSON value, with nothing but whitespace after it. cJSON alone stops at
 * the end of the first value and ignores what follows, so "[...][...]" or a record followed
 * by another on the same line would lose the rest without a word.
 * @param end  optional: when the text is refused, where it went wrong
 * @return the tree (free with cJSON_Delete), or NULL
 */
cJSON *fm_json_parse(const char *text, size_t len, const char **end);

#endif
