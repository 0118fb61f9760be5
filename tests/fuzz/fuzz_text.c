/*
 * The short texts that arrive in query strings and plan files: times, periods and
 * decimals. Each parser accepts the text or refuses it, and what it accepts
 * formats back to a text it accepts again as the same value.
 */

#include "billing/money.h"
#include "common/timeutil.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_string(data, size);
    if (text == NULL)
        return 0;

    int64_t t;
    if (fm_time_parse(text, &t) == 0) {
        char again[FM_TIME_BUFSZ];
        int64_t back;
        fm_time_format(t, again, sizeof again);
        if (fm_time_parse(again, &back) != 0 || back != t)
            abort();
    }
    int64_t start, end;
    if (fm_period_parse(text, &start, &end) == 0 && !(start < end))
        abort();
    struct bill_dec d;
    if (bill_dec_parse(text, &d) == 0) {
        char again[BILL_NUM_BUFSZ];
        struct bill_dec back;
        if (bill_dec_format(d, again, sizeof again) != 0 || bill_dec_parse(again, &back) != 0 ||
            bill_dec_cmp(d, back) != 0)
            abort();
    }
    free(text);
    return 0;
}
