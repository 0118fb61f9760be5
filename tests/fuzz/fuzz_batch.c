/*
 * A POST /v1/records body, as a JSON array (first byte even) or as NDJSON (odd), from any
 * bytes: the batch is refused as a whole with a reason, or each of its records parses or
 * is refused with a message, and the scan of how its integers are written stays in its
 * text. Nothing read outside the body, nothing leaked.
 */

#include <stdlib.h>
#include <string.h>

#include "meter/batch.h"
#include "meter/record.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool ndjson = data[0] & 1;
    size_t len = size - 1;
    /* The scan of one record's text, JSON or not, within its bytes: from a copy of
     * exactly its size, where nothing follows it. */
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data + 1, len);
    int scanned = meter_batch_line_written_int(copy, len);
    free(copy);
    if (scanned < -1 || scanned >= MF_COUNT)
        abort();
    /* The server hands the body over NUL-terminated, as fuzz_string does. */
    char *body = fuzz_string(data + 1, len);
    if (body == NULL)
        return 0;
    struct meter_batch b;
    struct fm_err why = {""};
    if (meter_batch_parse(body, len, ndjson, &b, &why) != 0) {
        if (why.msg[0] == '\0')
            abort();
        free(body);
        return 0;
    }
    for (size_t i = 0; i < b.n; i++) {
        const cJSON *item = meter_batch_record(&b, i);
        struct meter_record r;
        struct fm_err err;
        if (item != NULL && meter_record_parse(item, &r, &err) == 0)
            meter_record_clear(&r);
        int written = meter_batch_written_int(&b, i);
        if (written < -1 || written >= MF_COUNT)
            abort();
    }
    meter_batch_free(&b);
    free(body);
    return 0;
}
