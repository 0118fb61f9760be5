#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cli.h"
#include "common/json.h"
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

/* Every time from 1970 to 9999 is written as gmtime and printf would write it; years past
 * 9999 get their digits whole. */
START_TEST(time_format_agrees_with_gmtime)
{
    char got[FM_TIME_BUFSZ], want[64];
    const int64_t last = fm_civil_to_us(10000, 1, 1);
    for (int64_t us = 0; us < last; us += INT64_C(86399999999) * 37 + 999983) {
        time_t secs = (time_t)(us / 1000000);
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&secs, &tm));
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(us % 1000000));
        ck_assert_int_eq(fm_time_format(us, got, sizeof got), 0);
        ck_assert_str_eq(got, want);
    }
    ck_assert_int_eq(fm_time_format(last - 1, got, sizeof got), 0);
    ck_assert_str_eq(got, "9999-12-31T23:59:59.999999Z");
    char wide[40];
    ck_assert_int_eq(fm_time_format(last + 1, wide, sizeof wide), 0);
    ck_assert_str_eq(wide, "10000-01-01T00:00:00.000001Z");
    char exact[sizeof "2026-01-31T12:00:00.000000Z"];
    ck_assert_int_eq(fm_time_format(0, exact, sizeof exact), 0);
    ck_assert_str_eq(exact, "1970-01-01T00:00:00.000000Z");
    ck_assert_int_eq(fm_time_format(last, exact, sizeof exact), -1); /* no room for 5 digits */
    ck_assert_int_eq(fm_time_format(0, exact, sizeof exact - 1), -1);
}
END_TEST

START_TEST(buf_put_int_writes_what_printf_writes)
{
    static const long long v[] = {0, 7, -7, 10, -10, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct fm_buf b;
        char want[32];
        fm_buf_init(&b, 64);
        fm_buf_puts(&b, "x");
        ck_assert_int_eq(fm_buf_put_int(&b, v[i]), 0);
        snprintf(want, sizeof want, "x%lld", v[i]);
        ck_assert_str_eq(b.data, want);
        fm_buf_free(&b);
    }
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

START_TEST(json_key_twice_finds_the_repeated_key)
{
    const char *twice = NULL;
    cJSON *o = cJSON_Parse("{\"b\": 1, \"a\": {\"x\": 1, \"x\": 2}, \"c\": 3, \"b\": 4}");
    ck_assert_int_eq(fm_json_key_twice(o, &twice), 0);
    ck_assert_str_eq(twice, "b");
    /* Nested objects are not looked into. */
    ck_assert_int_eq(fm_json_key_twice(cJSON_GetObjectItem(o, "c"), &twice), 0);
    ck_assert_ptr_null(twice);
    cJSON_Delete(o);
    /* Many keys, one given twice at the far ends. */
    struct fm_buf b;
    fm_buf_init(&b, 4u << 20);
    fm_buf_puts(&b, "{\"k-dup\": 0");
    for (int i = 0; i < 100000; i++)
        fm_buf_printf(&b, ", \"k%d\": %d", i, i);
    fm_buf_puts(&b, ", \"k-dup\": 1}");
    o = cJSON_Parse(b.data);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(fm_json_key_twice(o, &twice), 0);
    ck_assert_str_eq(twice, "k-dup");
    cJSON_Delete(o);
    fm_buf_free(&b);
    o = cJSON_Parse("[1, 1]");
    ck_assert_int_eq(fm_json_key_twice(o, &twice), 0);
    ck_assert_ptr_null(twice);
    cJSON_Delete(o);
}
END_TEST

/* ---- command-line options (common/cli.c) ---- */

/* The values one parse stores. */
static struct cli_seen {
    bool flag;
    const char *text, *secret, *list[2];
    int64_t num, us;
    size_t nlist, npos;
    const char *pos[2];
} seen;

static bool check_even(const char *value, void *to)
{
    size_t n = strlen(value);
    if (n == 0 || n % 2 != 0)
        return false;
    *(const char **)to = value;
    return true;
}

static const char *helped; /* the command whose help was asked for */

static void say_help(const char *cmd)
{
    helped = cmd;
}

/* Parse args (NULL-ended, without argv[0]) as "prog cmd"'s options; return what it
 * returned, and what it printed on stderr into err. */
static int cli_run(char **args, char *err, size_t n)
{
    static const struct fm_cli_opt opts[] = {
        FM_OPT_FLAG("--flag", &seen.flag),
        FM_OPT_TEXT("--text", &seen.text),
        FM_OPT_SECRET("--secret", &seen.secret),
        FM_OPT_INT("--num", &seen.num, NULL, -5, 100),
        FM_OPT_MS("--ms", &seen.us, NULL, 900000),
        FM_OPT_LIST("--item", seen.list, &seen.nlist, 2),
        FM_OPT_CHECKED("--even", &seen.text, check_even, "an even length"),
        FM_OPT_TEXT("-o", &seen.text),
        FM_OPT_END,
    };
    const struct fm_cli cli = {
        .prog = "prog",
        .cmd = "cmd",
        .opts = opts,
        .help = say_help,
        .positional = seen.pos,
        .npositional = &seen.npos,
        .max = 2,
    };
    memset(&seen, 0, sizeof seen);
    helped = NULL;
    char *argv[16] = {"cmd"};
    int argc = 1;
    while (args[argc - 1] != NULL)
        argv[argc] = args[argc - 1], argc++;
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(f), 2);
    int rc = fm_cli_parse(&cli, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t got = fread(err, 1, n - 1, f);
    err[got] = '\0';
    fclose(f);
    return rc;
}

#define CLI_ARGS(...) ((char *[]){__VA_ARGS__, NULL})

START_TEST(cli_takes_each_kind_of_option)
{
    char err[256];
    char secret[] = "s3cret";
    ck_assert_int_eq(cli_run(CLI_ARGS("--flag", "a", "--num", "-5", "--ms=0.125", "--text",
                                      "t", "--item", "x", "--item=y", "--secret", secret, "b"),
                             err, sizeof err),
                     -1);
    ck_assert_str_eq(err, "");
    ck_assert(seen.flag);
    ck_assert_str_eq(seen.text, "t");
    ck_assert_int_eq(seen.num, -5);
    ck_assert_int_eq(seen.us, 125);
    ck_assert_int_eq(seen.nlist, 2);
    ck_assert_str_eq(seen.list[1], "y");
    /* The secret is a copy; the argument is overwritten. */
    ck_assert_str_eq(seen.secret, "s3cret");
    ck_assert_str_eq(secret, "xxxxxx");
    ck_assert_int_eq(seen.npos, 2);
    ck_assert_str_eq(seen.pos[0], "a");
    ck_assert_str_eq(seen.pos[1], "b");
    /* "--" ends the options; "-" is an argument. */
    ck_assert_int_eq(cli_run(CLI_ARGS("-", "--", "--flag"), err, sizeof err), -1);
    ck_assert(!seen.flag);
    ck_assert_str_eq(seen.pos[0], "-");
    ck_assert_str_eq(seen.pos[1], "--flag");
    ck_assert_int_eq(cli_run(CLI_ARGS("--ms", "900000", "-o", "out", "--even=ab"), err,
                             sizeof err),
                     -1);
    ck_assert_int_eq(seen.us, INT64_C(900000000));
    ck_assert_str_eq(seen.text, "ab");
    ck_assert_int_eq(cli_run(CLI_ARGS("--ms", "7.5"), err, sizeof err), -1);
    ck_assert_int_eq(seen.us, 7500);
}
END_TEST

START_TEST(cli_refuses_in_one_line_naming_the_option)
{
    static const struct {
        const char *args[4], *err;
    } cases[] = {
        {{"--num", "101"}, "prog cmd: --num: expected an integer -5-100, got '101'\n"},
        {{"--num", "-6"}, "prog cmd: --num: expected an integer -5-100, got '-6'\n"},
        {{"--num", "+1"}, "prog cmd: --num: expected an integer -5-100, got '+1'\n"},
        {{"--num", " 1"}, "prog cmd: --num: expected an integer -5-100, got ' 1'\n"},
        {{"--num", "1x"}, "prog cmd: --num: expected an integer -5-100, got '1x'\n"},
        {{"--num", "-"}, "prog cmd: --num: expected an integer -5-100, got '-'\n"},
        {{"--num="}, "prog cmd: --num: expected an integer -5-100, got ''\n"},
        {{"--ms", "1.2345"},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '1.2345'\n"},
        {{"--ms", "900000.001"},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '900000.001'\n"},
        {{"--ms", "99999999999999999999"},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '99999999999999999999'\n"},
        {{"--ms", ".5"},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '.5'\n"},
        {{"--ms", "5."},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '5.'\n"},
        {{"--ms", "1.2.3"},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '1.2.3'\n"},
        {{"--ms", "-1"},
         "prog cmd: --ms: expected milliseconds 0-900000 with at most 3 decimals,"
         " got '-1'\n"},
        {{"--even", "abc"}, "prog cmd: --even: expected an even length, got 'abc'\n"},
        /* A secret is not echoed, even when refused. */
        {{"--secret", "k1\nk2"},
         "prog cmd: --secret: expected printable characters on one line\n"},
        {{"--item", "1", "--item", "2"}, NULL},
        {{"--text"}, "prog cmd: --text: missing its value (try prog cmd --help)\n"},
        {{"--flag=1"}, "prog cmd: --flag: takes no value (try prog cmd --help)\n"},
        {{"--help=1"}, "prog cmd: --help: takes no value (try prog cmd --help)\n"},
        {{"--fla"}, "prog cmd: --fla: write --flag in full (try prog cmd --help)\n"},
        {{"--he"}, "prog cmd: --he: write --help in full (try prog cmd --help)\n"},
        {{"--te=x"}, "prog cmd: --te: write --text in full (try prog cmd --help)\n"},
        {{"--"}, NULL},
        {{"--num", "1", "--num=2"}, "prog cmd: --num: given twice (try prog cmd --help)\n"},
        {{"--flag", "--flag"}, "prog cmd: --flag: given twice (try prog cmd --help)\n"},
        {{"--x"}, "prog cmd: --x: unknown option (try prog cmd --help)\n"},
        {{"-x", "1"}, "prog cmd: -x: unknown option (try prog cmd --help)\n"},
        {{"-oout"}, "prog cmd: -oout: unknown option (try prog cmd --help)\n"},
        {{"a", "b", "c"}, "prog cmd: 'c': unexpected argument (try prog cmd --help)\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *args[5] = {NULL};
        for (int k = 0; k < 4 && cases[i].args[k]; k++)
            args[k] = (char *)cases[i].args[k];
        char err[256];
        int rc = cli_run(args, err, sizeof err);
        if (cases[i].err == NULL) {
            ck_assert_int_eq(rc, -1);
            ck_assert_str_eq(err, "");
            continue;
        }
        ck_assert_msg(rc == 2, "%s: returned %d", cases[i].err, rc);
        ck_assert_str_eq(err, cases[i].err);
    }
    char err[256];
    ck_assert_int_eq(cli_run(CLI_ARGS("--item", "1", "--item", "2", "--item", "3"), err,
                             sizeof err),
                     2);
    ck_assert_str_eq(err, "prog cmd: --item: at most 2\n");
    /* --help and -h print the help, and the parse ends there. */
    ck_assert_int_eq(cli_run(CLI_ARGS("--num", "1", "-h", "--bogus"), err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(helped, "cmd");
}
END_TEST

Suite *suite_common(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, time_round_trip);
    tcase_add_test(tc, time_format_agrees_with_gmtime);
    tcase_add_test(tc, time_rejects);
    tcase_add_test(tc, period_bounds);
    tcase_add_test(tc, buf_cap_is_an_error);
    tcase_add_test(tc, buf_put_int_writes_what_printf_writes);
    tcase_add_test(tc, buf_json_string_escapes);
    tcase_add_test(tc, buf_fixed_stays_in_its_memory);
    tcase_add_test(tc, buf_printf_fills_or_fails_whole);
    tcase_add_test(tc, sha256_known_answers);
    tcase_add_test(tc, queue_takes_in_order_what_fits_and_drains_when_closed);
    tcase_add_test(tc, json_key_twice_finds_the_repeated_key);
    tcase_add_test(tc, cli_takes_each_kind_of_option);
    tcase_add_test(tc, cli_refuses_in_one_line_naming_the_option);
    suite_add_tcase(s, tc);
    return s;
}
