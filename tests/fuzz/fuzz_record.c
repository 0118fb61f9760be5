/*
 * A usage record from any JSON: meter_record_parse accepts it or names the field at fault,
 * and an accepted record's canonical body is itself a record that parses to the same body.
 */
#include <cjson/cJSON.h>

#include "meter/record.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *json = cJSON_ParseWithLength((const char *)data, size);
    if (json == NULL)
        return 0;
    struct meter_record r;
    struct fm_err err;
    if (meter_record_parse(json, &r, &err) == 0) {
        cJSON *again = cJSON_Parse(r.body);
        struct meter_record r2;
        if (again == NULL || meter_record_parse(again, &r2, &err) != 0)
            abort();
        if (strcmp(r.body, r2.body) != 0 || memcmp(r.digest, r2.digest, sizeof r.digest) != 0)
            abort();
        meter_record_clear(&r2);
        cJSON_Delete(again);
        meter_record_clear(&r);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    cJSON_Delete(json);
    return 0;
}
