#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/queue.h"
#include "common/sha256.h"
#include "common/timeutil.h"
#include "tests/suites.h"

START_TEST(time_round_trip)
{
    int64_t us = 0;
    ck_assert_int_eq(fm_time_parse("2026-11-27T10:11:32.123456Z", &us), 0);
    ck_assert_int_eq(us, INT64_C(1795774292123456));
    char buf[FM_TIME_BUFSZ];
    ck_assert_int_eq(fm_time_format(us, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "2026-11-27T10:11:32.123456Z");
    ck_assert_int_eq(fm_time_parse("1970-01-01T00:00:00Z", &us), 0);
    ck_assert_int_eq(us, 0);
    ck_assert_int_eq(fm_time_parse("2024-02-29T23:59:59.5+00:00", &us), 0);
    ck_assert_int_eq(fm_time_format(us, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "2024-02-29T23:59:59.500000Z");
}
END_TEST

START_TEST(time_rejects)
{
    static const char *const bad[] = {
        "", "2026-11-27", "2026-11-27 10:11:32Z", "2026-11-27T10:11:32", "2026-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2026-11-27T24:00:00Z", "2026-11-27T10:11:32.1234567Z",
        "2026-11-27T10:11:32.Z", "2026-11-27T10:11:32+01:00", "2026-11-27T10:11:32Zjunk",
        "1969-12-31T23:59:59Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 42;
        ck_assert_msg(fm_time_parse(bad[i], &us) == -1, "accepted %s", bad[i]);
        ck_assert_int_eq(us, 42);
    }
}
END_TEST

START_TEST(period_bounds)
{
    int64_t a = 0, b = 0;
    ck_assert_int_eq(fm_period_parse("2026-12", &a, &b), 0);
    char s[FM_TIME_BUFSZ];
    fm_time_format(a, s, sizeof s);
    ck_assert_str_eq(s, "2026-12-01T00:00:00.000000Z");
    fm_time_format(b, s, sizeof s);
    ck_assert_str_eq(s, "2027-01-01T00:00:00.000000Z");
    ck_assert_int_eq(fm_period_parse("2026-13", &a, &b), -1);
    ck_assert_int_eq(fm_period_parse("2026-1", &a, &b), -1);
    char p[8];
    fm_period_of(b - 1, p);
    ck_assert_str_eq(p, "2026-12");
}
END_TEST

START_TEST(buf_cap_is_an_error)
{
    struct fm_buf b;
    fm_buf_init(&b, 8);
    ck_assert_int_eq(fm_buf_puts(&b, "1234"), 0);
    ck_assert_int_eq(fm_buf_printf(&b, "%d", 5678), 0);
    ck_assert_str_eq(b.data, "12345678");
    ck_assert_int_eq(fm_buf_puts(&b, "9"), -1);
    ck_assert(b.failed);
    ck_assert_ptr_null(fm_buf_steal(&b));
    fm_buf_free(&b);
    /* An empty buffer yields an empty string. */
    char *empty = fm_buf_steal(&b);
    ck_assert_str_eq(empty, "");
    free(empty);
}
END_TEST

static void expect_json_string(const char *in, const char *want)
{
    struct fm_buf b;
    fm_buf_init(&b, 1024);
    ck_assert_int_eq(fm_buf_json_string(&b, in), 0);
    ck_assert_str_eq(b.data, want);
    fm_buf_free(&b);
}

START_TEST(buf_json_string_escapes)
{
    expect_json_string("", "\"\"");
    expect_json_string("plain", "\"plain\"");
    expect_json_string("say \"hi\"\\", "\"say \\\"hi\\\"\\\\\"");
    expect_json_string("\t\n\r", "\"\\u0009\\u000a\\u000d\"");
    expect_json_string("a\x01z\x1f", "\"a\\u0001z\\u001f\"");
    expect_json_string("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\x7f",
                       "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\x7f\"");
    /* Past the cap the append fails, whole escapes or not. */
    struct fm_buf b;
    fm_buf_init(&b, 8);
    ck_assert_int_eq(fm_buf_json_string(&b, "ab\tc"), -1);
    ck_assert(b.failed);
    fm_buf_free(&b);
    fm_buf_init(&b, 8);
    ck_assert_int_eq(fm_buf_json_string(&b, "abcdef"), 0);
    ck_assert_str_eq(b.data, "\"abcdef\"");
    fm_buf_free(&b);
}
END_TEST

START_TEST(buf_fixed_stays_in_its_memory)
{
    char mem[6];
    struct fm_buf b;
    fm_buf_init_fixed(&b, mem, sizeof mem);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(fm_buf_puts(&b, "abc"), 0);
    ck_assert_int_eq(fm_buf_json_string(&b, "d"), -1); /* 6 bytes and a NUL */
    ck_assert(b.failed);
    ck_assert_ptr_eq(b.data, mem);
    fm_buf_free(&b);
    ck_assert_ptr_eq(b.data, mem);
    ck_assert(!b.failed);
    ck_assert_int_eq(fm_buf_puts(&b, "12345"), 0);
    ck_assert_str_eq(mem, "12345");
    ck_assert_int_eq(fm_buf_puts(&b, "6"), -1);
    ck_assert_str_eq(mem, "12345");
}
END_TEST

START_TEST(buf_printf_fills_or_fails_whole)
{
    struct fm_buf b;
    fm_buf_init(&b, 300);
    ck_assert_int_eq(fm_buf_printf(&b, "%s-%d", "ab", 12), 0);
    ck_assert_str_eq(b.data, "ab-12");
    /* Longer than the room allocated so far: it grows. */
    ck_assert_int_eq(fm_buf_printf(&b, "%280d", 7), 0);
    ck_assert_int_eq(b.len, 285);
    ck_assert_str_eq(b.data + 284, "7");
    /* Past the cap: nothing of it stays, and the text before is whole. */
    ck_assert_int_eq(fm_buf_printf(&b, "%20d", 8), -1);
    ck_assert(b.failed);
    ck_assert_int_eq(b.len, 285);
    ck_assert_int_eq(strlen(b.data), 285);
    fm_buf_free(&b);
}
END_TEST

/* FIPS 180-2's examples, from two threads (each keeps its own context). */
static void *hash_abc(void *arg)
{
    unsigned char *out = arg;
    return (void *)(intptr_t)fm_sha256("abc", 3, out);
}

START_TEST(sha256_known_answers)
{
    static const char *const want[] = {
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    };
    unsigned char out[2][FM_SHA256_LEN];
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hash_abc, out[0]), 0);
    ck_assert_int_eq(fm_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                               out[1]),
                     0);
    void *rc;
    pthread_join(th, &rc);
    ck_assert_ptr_null(rc);
    for (int k = 0; k < 2; k++) {
        char hex[2 * FM_SHA256_LEN + 1];
        for (int i = 0; i < FM_SHA256_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", out[k][i]);
        ck_assert_str_eq(hex, want[k]);
    }
}
END_TEST

/* A queued item: the node first, as queue.h asks. */
struct qitem {
    struct fm_qnode node;
    int size;
};

static bool fits_ten(void *ctx, const struct fm_qnode *n)
{
    int *sum = ctx, size = ((const struct qitem *)n)->size;
    if (*sum > 0 && *sum + size > 10)
        return false;
    *sum += size;
    return true;
}

static void *take_one(void *arg)
{
    return fm_queue_take(arg, NULL, NULL);
}

START_TEST(queue_takes_in_order_what_fits_and_drains_when_closed)
{
    struct fm_queue q;
    fm_queue_init(&q);
    struct qitem it[5] = {{.size = 4}, {.size = 5}, {.size = 2}, {.size = 12}, {.size = 1}};
    for (int i = 0; i < 5; i++)
        ck_assert(fm_queue_push(&q, &it[i].node));
    /* 4 + 5 fit ten, 2 more would not. */
    int sum = 0;
    struct fm_qnode *got = fm_queue_take(&q, fits_ten, &sum);
    ck_assert_ptr_eq(got, &it[0].node);
    ck_assert_ptr_eq(got->next, &it[1].node);
    ck_assert_ptr_null(got->next->next);
    ck_assert_int_eq(sum, 9);
    /* 2 + 12 would not fit either; then 12, larger than the bound, is still taken, alone. */
    sum = 0;
    got = fm_queue_take(&q, fits_ten, &sum);
    ck_assert_ptr_eq(got, &it[2].node);
    ck_assert_ptr_null(got->next);
    sum = 0;
    got = fm_queue_take(&q, fits_ten, &sum);
    ck_assert_ptr_eq(got, &it[3].node);
    ck_assert_ptr_null(got->next);
    /* Closed: pushes are refused, what is left is still taken, then NULL. */
    fm_queue_close(&q);
    struct qitem late = {.size = 1};
    ck_assert(!fm_queue_push(&q, &late.node));
    got = fm_queue_take(&q, NULL, NULL);
    ck_assert_ptr_eq(got, &it[4].node);
    ck_assert_ptr_null(got->next);
    ck_assert_ptr_null(fm_queue_take(&q, NULL, NULL));
    fm_queue_destroy(&q);

    /* A consumer waiting on an empty queue is woken by a push, and one by the close. */
    fm_queue_init(&q);
    pthread_t th;
    void *rc;
    ck_assert_int_eq(pthread_create(&th, NULL, take_one, &q), 0);
    ck_assert(fm_queue_push(&q, &late.node));
    pthread_join(th, &rc);
    ck_assert_ptr_eq(rc, &late.node);
    ck_assert_int_eq(pthread_create(&th, NULL, take_one, &q), 0);
    fm_queue_close(&q);
    pthread_join(th, &rc);
    ck_assert_ptr_null(rc);
    fm_queue_destroy(&q);
}
END_TEST

Suite *suite_common(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, time_round_trip);
    tcase_add_test(tc, time_rejects);
    tcase_add_test(tc, period_bounds);
    tcase_add_test(tc, buf_cap_is_an_error);
    tcase_add_test(tc, buf_json_string_escapes);
    tcase_add_test(tc, buf_fixed_stays_in_its_memory);
    tcase_add_test(tc, buf_printf_fills_or_fails_whole);
    tcase_add_test(tc, sha256_known_answers);
    tcase_add_test(tc, queue_takes_in_order_what_fits_and_drains_when_closed);
    suite_add_tcase(s, tc);
    return s;
}
