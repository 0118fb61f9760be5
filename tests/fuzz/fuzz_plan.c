/*
 * A price plan from any text: bill_plan_parse accepts it or says why, and an accepted plan
 * prices usage at the edges of what records can carry (checked overflow, never a crash).
 */

#include "billing/invoice.h"
#include "billing/plan.h"
#include "billing/usage.h"
#include "common/buf.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bill_plan *plan = NULL;
    if (bill_plan_parse((const char *)data, size, "fuzz", &plan, NULL) != BILL_OK)
        return 0;
    static const struct bill_invocation calls[] = {
        {.duration_us = 0, .memory_mb = 1},
        {.duration_us = 1, .init_us = 1, .memory_mb = 128, .max_rss_kb = 1, .cpu_user_us = 1},
        {.duration_us = 260000, .init_us = 90000, .memory_mb = 10240, .max_rss_kb = 10485760,
         .cpu_user_us = 250000, .cpu_sys_us = 10000, .bytes_out = 1 << 30},
        {.duration_us = INT64_MAX / 4, .init_us = INT64_MAX / 4, .memory_mb = INT32_MAX,
         .max_rss_kb = INT64_MAX / 4, .cpu_user_us = INT64_MAX / 4,
         .cpu_sys_us = INT64_MAX / 4, .bytes_out = INT64_MAX / 4},
    };
    struct bill_usage *use = bill_usage_new();
    for (size_t i = 0; use && i < sizeof calls / sizeof calls[0]; i++) {
        for (int repeat = 0; repeat < 3; repeat++)
            (void)bill_usage_add_invocation(use, plan, i % 2 ? "f" : "g", &calls[i], NULL);
        struct bill_invoice *inv = NULL;
        if (bill_price(plan, use, &inv, NULL) == BILL_OK) {
            for (int fmt = BILL_FORMAT_TEXT; fmt <= BILL_FORMAT_CSV; fmt++) {
                struct fm_buf out;
                fm_buf_init(&out, 1u << 20);
                (void)bill_invoice_render(inv, (enum bill_format)fmt, "t", "2026-11", &out);
                fm_buf_free(&out);
            }
        }
        bill_invoice_free(inv);
    }
    bill_usage_free(use);
    bill_plan_free(plan);
    return 0;
}
