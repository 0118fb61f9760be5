#include <check.h>
#include <stdint.h>
#include <string.h>

#include "billing/money.h"
#include "tests/suites.h"

static const char *fmt_dec(const char *in, char *buf, size_t n)
{
    struct bill_dec d;
    ck_assert_msg(bill_dec_parse(in, &d) == 0, "rejected %s", in);
    ck_assert_int_eq(bill_dec_format(d, buf, n), 0);
    return buf;
}

START_TEST(dec_parse_and_format)
{
    static const struct {
        const char *in, *out;
        __int128 units;
        int scale;
    } cases[] = {
        {"0", "0", 0, 0},
        {"0.20", "0.2", 2, 1},
        {"0.0000166667", "0.0000166667", 166667, 10},
        {"6000000000", "6000000000", INT64_C(6000000000), 0},
        {"0.000000000000000001", "0.000000000000000001", 1, 18},
        {"007.50", "7.5", 75, 1},
        /* The widest accepted: 38 digits; its units are not spelt out here. */
        {"99999999999999999999.999999999999999999", "99999999999999999999.999999999999999999",
         0, 18},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[BILL_NUM_BUFSZ];
        struct bill_dec d;
        ck_assert_int_eq(bill_dec_parse(cases[i].in, &d), 0);
        ck_assert_int_eq(d.scale, cases[i].scale);
        ck_assert_str_eq(fmt_dec(cases[i].in, buf, sizeof buf), cases[i].out);
        if (i + 1 < sizeof cases / sizeof cases[0])
            ck_assert_msg(d.units == cases[i].units, "units of %s", cases[i].in);
    }
}
END_TEST

START_TEST(dec_rejects)
{
    static const char *const bad[] = {"",     "-1",   "+1",   ".5",   "5.",   "1e5", " 1",
                                      "1 ",   "0x10", "1,5",  "1.2.3", "NaN",
                                      "0.0000000000000000001", /* 19 decimals */
                                      "123456789012345678901"}; /* 21 integer digits */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct bill_dec d = {.units = 42, .scale = 1};
        ck_assert_msg(bill_dec_parse(bad[i], &d) == -1, "accepted '%s'", bad[i]);
        ck_assert_msg(d.units == 42 && d.scale == 1, "wrote out on failure");
    }
}
END_TEST

START_TEST(dec_compare)
{
    struct bill_dec a, b;
    bill_dec_parse("6000000000", &a);
    bill_dec_parse("6000000000.000001", &b);
    ck_assert_int_eq(bill_dec_cmp(a, b), -1);
    ck_assert_int_eq(bill_dec_cmp(b, a), 1);
    bill_dec_parse("6000000000.0", &b);
    ck_assert_int_eq(bill_dec_cmp(a, b), 0);
}
END_TEST

/* Half-up to cents: a ratio exactly on .005 goes up, anything below stays down. */
START_TEST(round_half_up_at_half_cent)
{
    static const struct {
        int64_t num, den;
        int64_t cents;
    } cases[] = {
        {5, 1000, 1},       /* 0.005 -> 0.01 */
        {15, 1000, 2},      /* 0.015 -> 0.02 */
        {4999, 1000000, 0}, /* 0.004999 -> 0.00 */
        {5001, 1000000, 1}, /* 0.005001 -> 0.01 */
        {2345, 1000, 235},  /* 2.345 -> 2.35 */
        {2344999, 1000000, 234},
        {1, 3, 33},         /* 0.333... */
        {2, 3, 67},         /* 0.666... */
        {0, 7, 0},
        {9000018, 1000000, 900}, /* 9.000018 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t out = -1;
        ck_assert_int_eq(bill_ratio_round(cases[i].num, cases[i].den, 2, &out), 0);
        ck_assert_msg(out == cases[i].cents, "%lld/%lld -> %lld, want %lld",
                      (long long)cases[i].num, (long long)cases[i].den, (long long)out,
                      (long long)cases[i].cents);
    }
}
END_TEST

START_TEST(round_overflow_is_reported)
{
    int64_t out = 7;
    __int128 big = (__int128)1 << 120;
    ck_assert_int_eq(bill_ratio_round(big, 1, 2, &out), -1); /* num x 100 overflows */
    ck_assert_int_eq(bill_ratio_round((__int128)INT64_MAX, 1, 2, &out), -1); /* result > int64 */
    ck_assert_int_eq(out, 7);
    ck_assert_int_eq(bill_ratio_round(-1, 1, 2, &out), -1);
    ck_assert_int_eq(bill_ratio_round(1, 0, 2, &out), -1);
    __int128 p;
    ck_assert_int_eq(bill_pow10(38, &p), 0);
    ck_assert_int_eq(bill_pow10(39, &p), -1);
}
END_TEST

START_TEST(ratio_and_money_format)
{
    char buf[BILL_NUM_BUFSZ];
    ck_assert_int_eq(bill_ratio_format(184320, 1024000, 15, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "0.18");
    ck_assert_int_eq(bill_ratio_format(1, 1024000, 15, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "0.0000009765625");
    ck_assert_int_eq(bill_ratio_format(2, 3, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "0.6667");
    ck_assert_int_eq(bill_ratio_format(540000, 1, 15, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "540000");
    static const struct {
        int64_t minor;
        int digits;
        const char *out;
    } m[] = {{273, 2, "2.73"}, {5, 2, "0.05"},   {-5, 2, "-0.05"}, {0, 2, "0.00"},
             {500, 2, "5.00"}, {10000020, 2, "100000.20"}, {42, 0, "42"},
             {INT64_MAX, 2, "92233720368547758.07"}, {INT64_MIN, 2, "-92233720368547758.08"}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        ck_assert_int_eq(bill_money_format(m[i].minor, m[i].digits, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, m[i].out);
    }
    char tiny[4];
    ck_assert_int_eq(bill_money_format(12345, 2, tiny, sizeof tiny), -1);
}
END_TEST

Suite *suite_money(void)
{
    Suite *s = suite_create("money");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, dec_parse_and_format);
    tcase_add_test(tc, dec_rejects);
    tcase_add_test(tc, dec_compare);
    tcase_add_test(tc, round_half_up_at_half_cent);
    tcase_add_test(tc, round_overflow_is_reported);
    tcase_add_test(tc, ratio_and_money_format);
    suite_add_tcase(s, tc);
    return s;
}
