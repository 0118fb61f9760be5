#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "billing/invoice.h"
#include "tests/proc.h"
#include "tests/suites.h"
#include "tests/test_billing_util.h"

static const struct bill_line *line_for(const struct bill_invoice *inv, enum bill_meter m)
{
    for (size_t i = 0; i < inv->nlines; i++)
        if (inv->lines[i].meter == m)
            return &inv->lines[i];
    ck_abort_msg("no line for %s", bill_meter_info(m)->name);
    return NULL;
}

static void assert_money(int64_t minor, const char *want, const char *what)
{
    char buf[BILL_NUM_BUFSZ];
    ck_assert_int_eq(bill_money_format(minor, 2, buf, sizeof buf), 0);
    ck_assert_msg(strcmp(buf, want) == 0, "%s: got %s, want %s", what, buf, want);
}

static void assert_shares_add_up(const struct bill_invoice *inv)
{
    for (size_t i = 0; i < inv->nlines; i++) {
        int64_t sum = 0;
        for (size_t j = 0; j < inv->lines[i].nshares; j++)
            sum += inv->lines[i].shares[j].amount;
        if (inv->lines[i].nshares > 0)
            ck_assert_int_eq(sum, inv->lines[i].amount);
    }
}

/* Add n identical invocations the way faasbill quote does: one rounded, then scaled. */
static void add_uniform(struct bill_usage *use, const struct bill_plan *plan, const char *fn,
                        int64_t n, const char *duration_ms, int32_t memory_mb, int64_t cpu_ms,
                        int64_t egress_kb)
{
    struct bill_dec d;
    __int128 us;
    ck_assert_int_eq(bill_dec_parse(duration_ms, &d), 0);
    ck_assert_int_eq(bill_dec_units_at(d, 3, &us), 0);
    struct bill_invocation inv = {.duration_us = (int64_t)us,
                                  .memory_mb = memory_mb,
                                  .max_rss_kb = (int64_t)memory_mb * 1024,
                                  .cpu_user_us = cpu_ms * 1000,
                                  .bytes_out = egress_kb * 1024};
    struct bill_quantities one, all;
    ck_assert_int_eq(bill_plan_round(plan, &inv, &one, NULL), BILL_OK);
    ck_assert_int_eq(bill_quantities_scale(&one, n, &all, NULL), BILL_OK);
    ck_assert_int_eq(bill_usage_add_quantities(use, fn, &all, NULL), BILL_OK);
}

static struct bill_invoice *price(const struct bill_plan *plan, const struct bill_usage *use,
                                  bool no_free)
{
    struct bill_invoice *inv = NULL;
    struct fm_err err = {{0}};
    struct bill_price_options opts = {.no_free_tier = no_free};
    ck_assert_msg(bill_price_with(plan, use, &opts, &inv, &err) == BILL_OK, "%s", err.msg);
    assert_shares_add_up(inv);
    return inv;
}

START_TEST(published_examples)
{
    struct bill_catalog *cat = tb_catalog();
    FILE *f = tb_data("billing_examples.txt");
    char line[1024], name[128] = "", source[1024] = "";
    const struct bill_plan *plan = NULL;
    struct bill_usage *use = NULL;
    struct bill_invoice *inv = NULL;
    bool no_free = false;
    int cases = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strncmp(line, "source ", 7) == 0) {
            snprintf(source, sizeof source, "%s", line + 7);
            continue;
        }
        char *w[8];
        int n = tb_split(line, w, 8);
        if (n == 0)
            continue;
        if (strcmp(w[0], "case") == 0) {
            ck_assert(n == 3 || n == 4);
            snprintf(name, sizeof name, "%s", w[1]);
            plan = tb_plan(cat, w[2]);
            no_free = n == 4 && strcmp(w[3], "no-free") == 0;
            use = bill_usage_new();
            source[0] = '\0';
        } else if (strcmp(w[0], "load") == 0) {
            ck_assert_int_eq(n, 7);
            add_uniform(use, plan, w[1], strtoll(w[2], NULL, 10), w[3],
                        (int32_t)strtol(w[4], NULL, 10), strtoll(w[5], NULL, 10),
                        strtoll(w[6], NULL, 10));
        } else {
            if (inv == NULL)
                inv = price(plan, use, no_free);
            char what[1400];
            snprintf(what, sizeof what, "%s (line %d; %.*s)", name, lineno,
                     (int)strcspn(source, "\n"), source);
            if (strcmp(w[0], "line") == 0) {
                enum bill_meter m;
                ck_assert_int_eq(bill_meter_from_name(w[1], &m), 0);
                assert_money(line_for(inv, m)->amount, w[2], what);
            } else if (strcmp(w[0], "subscription") == 0) {
                assert_money(inv->subscription, w[1], what);
            } else if (strcmp(w[0], "total") == 0) {
                assert_money(inv->total, w[1], what);
            } else if (strcmp(w[0], "end") == 0) {
                ck_assert_msg(source[0] != '\0', "%s names no source", name);
                bill_invoice_free(inv);
                bill_usage_free(use);
                inv = NULL;
                use = NULL;
                cases++;
            } else {
                ck_abort_msg("billing_examples.txt:%d: unknown keyword %s", lineno, w[0]);
            }
        }
    }
    fclose(f);
    ck_assert_ptr_null(use);
    ck_assert_int_ge(cases, 10);
    bill_catalog_free(cat);
}
END_TEST

/* The amount of the quote's line for meter ("subscription" too), or NULL. */
static const char *quote_amount(const cJSON *quote, const char *meter)
{
    const cJSON *l = NULL;
    cJSON_ArrayForEach(l, cJSON_GetObjectItem(quote, "lines"))
    {
        const cJSON *m = cJSON_GetObjectItem(l, "meter");
        if (cJSON_IsString(m) && strcmp(m->valuestring, meter) == 0)
            return cJSON_GetStringValue(cJSON_GetObjectItem(l, "amount"));
    }
    return NULL;
}

/* The published examples of one workload again, through the binary: faasbill quote --json
 * with the example's figures as options must print the same amounts line by line. */
START_TEST(published_examples_through_quote)
{
    FILE *f = tb_data("billing_examples.txt");
    char line[1024], bin[512], name[128] = "", plan[64] = "";
    char load[6][32], want[8][2][32];
    int nload = 0, nwant = 0, lineno = 0, cases = 0;
    bool no_free = false;
    proc_bin("faasbill", bin, sizeof bin);
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *w[8];
        int n = strncmp(line, "source ", 7) == 0 ? 0 : tb_split(line, w, 8);
        if (n == 0)
            continue;
        if (strcmp(w[0], "case") == 0) {
            snprintf(name, sizeof name, "%s", w[1]);
            snprintf(plan, sizeof plan, "%s", w[2]);
            no_free = n == 4 && strcmp(w[3], "no-free") == 0;
            nload = nwant = 0;
        } else if (strcmp(w[0], "load") == 0) {
            for (int i = 0; i < 6; i++)
                snprintf(load[i], sizeof load[i], "%s", w[i + 1]);
            nload++;
        } else if (strcmp(w[0], "line") == 0 || strcmp(w[0], "subscription") == 0 ||
                   strcmp(w[0], "total") == 0) {
            ck_assert_int_lt(nwant, 8);
            snprintf(want[nwant][0], sizeof want[nwant][0], "%s",
                     strcmp(w[0], "line") == 0 ? w[1] : w[0]);
            snprintf(want[nwant][1], sizeof want[nwant][1], "%s", w[n - 1]);
            nwant++;
        } else if (strcmp(w[0], "end") == 0 && nload == 1) {
            /* load FUNCTION N DURATION_MS MEMORY_MB CPU_MS EGRESS_KB */
            char *argv[] = {bin, "quote", "--plan", plan, "--invocations", load[1],
                            "--avg-duration-ms", load[2], "--memory-mb", load[3],
                            "--cpu-ms-per-invocation", load[4], "--egress-kb-per-invocation",
                            load[5], "--json", no_free ? "--no-free-tier" : NULL, NULL};
            struct proc_result r = proc_run(argv, NULL, 30);
            ck_assert_msg(r.status == 0, "%s (line %d): %s", name, lineno, r.err);
            cJSON *q = cJSON_Parse(r.out);
            ck_assert_msg(q != NULL, "%s: not JSON: %s", name, r.out);
            for (int i = 0; i < nwant; i++) {
                const char *got = strcmp(want[i][0], "total") == 0
                                      ? cJSON_GetStringValue(cJSON_GetObjectItem(q, "total"))
                                      : quote_amount(q, want[i][0]);
                /* A plan without a subscription prints no subscription line. */
                if (got == NULL && strcmp(want[i][0], "subscription") == 0)
                    got = "0.00";
                ck_assert_msg(got != NULL && strcmp(got, want[i][1]) == 0,
                              "%s (line %d): %s: got %s, want %s", name, lineno, want[i][0],
                              got ? got : "nothing", want[i][1]);
            }
            cJSON_Delete(q);
            free(r.out);
            free(r.err);
            cases++;
        }
    }
    fclose(f);
    ck_assert_int_ge(cases, 10);
}
END_TEST

/* The per-function split of the mixed-memory example, by largest remainder. */
/* faasbill quote --json, the binary: AWS's worked example (3 M calls of 1 s at 512 MB) in the
 * shape DESIGN.md gives, every number a decimal string. */
START_TEST(quote_json_from_the_command_line)
{
    char bin[512];
    char *argv[] = {(char *)proc_bin("faasbill", bin, sizeof bin), "quote", "--plan",
                    "aws-lambda-x86", "--memory-mb", "512", "--invocations", "3000000",
                    "--avg-duration-ms", "1000", "--json", NULL};
    struct proc_result r = proc_run(argv, NULL, 30);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_str_eq(r.err, "");
    cJSON *q = cJSON_Parse(r.out);
    ck_assert_ptr_nonnull(q);
    ck_assert_str_eq(cJSON_GetObjectItem(q, "plan")->valuestring, "aws-lambda-x86");
    ck_assert_str_eq(cJSON_GetObjectItem(q, "currency")->valuestring, "USD");
    ck_assert_str_eq(cJSON_GetObjectItem(q, "total")->valuestring, "18.73");
    static const char *const want[][4] = {
        {"Requests", "2000000", "0.0000002", "0.40"},
        {"Compute (GB-s)", "1100000", "0.0000166667", "18.33"},
    };
    const cJSON *lines = cJSON_GetObjectItem(q, "lines");
    ck_assert_int_eq(cJSON_GetArraySize(lines), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *l = cJSON_GetArrayItem(lines, i);
        static const char *const keys[] = {"item", "quantity", "unit_price", "amount"};
        for (int k = 0; k < 4; k++) {
            const cJSON *v = cJSON_GetObjectItem(l, keys[k]);
            ck_assert_msg(cJSON_IsString(v), "line %d: %s is not a string", i, keys[k]);
            ck_assert_str_eq(v->valuestring, want[i][k]);
        }
    }
    cJSON_Delete(q);
    free(r.out);
    free(r.err);
}
END_TEST

/* Run faasbill with args; check its exit status, that stdout is empty and stderr is err. */
static void faasbill_refuses(int status, const char *err, char **args)
{
    char bin[512];
    char *argv[24] = {(char *)proc_bin("faasbill", bin, sizeof bin)};
    for (int n = 1; n < 23 && args[n - 1]; n++)
        argv[n] = args[n - 1];
    struct proc_result r = proc_run(argv, NULL, 30);
    ck_assert_msg(r.status == status, "%s %s: exited %d, wanted %d; %s", argv[1], argv[2],
                  r.status, status, r.err);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, err);
    free(r.out);
    free(r.err);
}

/* What the user gives quote and simulate, files and folders included, is bad input when it
 * is wrong: exit code 2 and one line naming it, including figures too large to add up. */
START_TEST(quote_and_simulate_input_errors_exit_2)
{
    char dir[] = "/tmp/fm-quote-XXXXXX", path[128], cat[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/plan.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\": \"x\"}", f);
    ck_assert_int_eq(fclose(f), 0);
    char want[512];
    snprintf(want, sizeof want, "faasbill quote: --plan-file: %s: name: missing\n", path);
    faasbill_refuses(2, want,
                     (char *[]){"quote", "--plan-file", path, "--memory-mb", "128",
                                "--invocations", "1", "--avg-duration-ms", "1", NULL});
    snprintf(want, sizeof want, "faasbill quote: --plan-file: %s: a folder, not a file\n", dir);
    faasbill_refuses(2, want,
                     (char *[]){"quote", "--plan-file", dir, "--memory-mb", "128",
                                "--invocations", "1", "--avg-duration-ms", "1", NULL});
    snprintf(cat, sizeof cat, "%s/missing.json", dir);
    snprintf(want, sizeof want, "faasbill quote: --plan-file: %s: No such file or directory\n",
             cat);
    faasbill_refuses(2, want,
                     (char *[]){"quote", "--plan-file", cat, "--memory-mb", "128",
                                "--invocations", "1", "--avg-duration-ms", "1", NULL});
    faasbill_refuses(2,
                     "faasbill quote: --catalog: /nonexistent/plans: No such file or "
                     "directory\n",
                     (char *[]){"quote", "--plan", "x", "--catalog", "/nonexistent",
                                "--memory-mb", "128", "--invocations", "1",
                                "--avg-duration-ms", "1", NULL});
    /* A catalog folder holding a bad plan file. */
    snprintf(cat, sizeof cat, "%s/plans", dir);
    ck_assert_int_eq(mkdir(cat, 0700), 0);
    snprintf(cat, sizeof cat, "%s/plans/p.json", dir);
    ck_assert_int_eq(rename(path, cat), 0);
    faasbill_refuses(2, "faasbill plans: --catalog: plans/p.json: name: missing\n",
                     (char *[]){"plans", "--catalog", dir, NULL});
    ck_assert_int_eq(unlink(cat), 0);
    snprintf(cat, sizeof cat, "%s/plans", dir);
    ck_assert_int_eq(rmdir(cat), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    /* Products that do not fit 64 bits are the options' doing, and named. */
    faasbill_refuses(2,
                     "faasbill quote: --avg-duration-ms times --invocations 1000000000000000: "
                     "usage quantities overflow 64 bits\n",
                     (char *[]){"quote", "--plan", "aws-lambda-x86", "--memory-mb", "10240",
                                "--invocations", "1000000000000000", "--avg-duration-ms",
                                "86400000", NULL});
    faasbill_refuses(2,
                     "faasbill quote: --avg-duration-ms and --memory-mb times --invocations "
                     "1000000000000000: usage quantities overflow 64 bits\n",
                     (char *[]){"quote", "--plan", "aws-lambda-x86", "--memory-mb", "10240",
                                "--invocations", "1000000000000000", "--avg-duration-ms",
                                "1000", NULL});
    faasbill_refuses(2,
                     "faasbill quote: --egress-kb-per-invocation times --invocations "
                     "1000000000000000: usage quantities overflow 64 bits\n",
                     (char *[]){"quote", "--plan", "aws-lambda-x86", "--memory-mb", "128",
                                "--invocations", "1000000000000000", "--avg-duration-ms", "1",
                                "--egress-kb-per-invocation", "1073741824", NULL});
    faasbill_refuses(2,
                     "faasbill simulate: --invocations 1000000000000 of --avg-duration-ms "
                     "900000 at --memory-mb 10240: scaled totals overflow 64 bits\n",
                     (char *[]){"simulate", "--invocations", "1000000000000",
                                "--avg-duration-ms", "900000", "--memory-mb", "10240", NULL});
}
END_TEST

/* Every command answers --help on stdout with its usage; the catalogs list what they hold. */
START_TEST(every_command_has_help_and_the_catalogs_list)
{
    static const char *const commands[] = {"quote",   "plans",   "servers", "migrate",
                                           "tenant",  "key",     "invoice", "compare",
                                           "report",  "simulate"};
    char bin[512];
    proc_bin("faasbill", bin, sizeof bin);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char *argv[] = {bin, (char *)commands[i], "--help", NULL};
        struct proc_result r = proc_run(argv, NULL, 30);
        char head[64];
        snprintf(head, sizeof head, "usage: faasbill %s ", commands[i]);
        ck_assert_msg(r.status == 0 && strncmp(r.out, head, strlen(head)) == 0 &&
                          r.err[0] == '\0',
                      "%s --help: %d %s %s", commands[i], r.status, r.out, r.err);
        free(r.out);
        free(r.err);
    }
    static const char *const lists[][2] = {{"plans", "\naws-lambda-x86 "},
                                           {"servers", "\naws-t3.micro "}};
    for (size_t i = 0; i < 2; i++) {
        char *argv[] = {bin, (char *)lists[i][0], NULL};
        struct proc_result r = proc_run(argv, NULL, 30);
        ck_assert_int_eq(r.status, 0);
        ck_assert_msg(strstr(r.out, lists[i][1]) != NULL, "%s: %s", lists[i][0], r.out);
        free(r.out);
        free(r.err);
    }
}
END_TEST

START_TEST(mixed_memory_shares)
{
    struct bill_catalog *cat = tb_catalog();
    const struct bill_plan *p = tb_plan(cat, "aws-lambda-x86-2018");
    struct bill_usage *use = bill_usage_new();
    add_uniform(use, p, "small", 5000000, "200", 128, 0, 0);
    add_uniform(use, p, "medium", 2500000, "500", 448, 0, 0);
    add_uniform(use, p, "large", 2500000, "1000", 1024, 0, 0);
    struct bill_invoice *inv = price(p, use, false);
    const struct bill_line *gb = line_for(inv, BILL_METER_GB_SECONDS);
    /* 4621 cents over 125000 : 546875 : 2500000 GB-s gives 182.11 : 796.75 : 3642.13 */
    ck_assert_uint_eq(gb->nshares, 3);
    ck_assert_str_eq(gb->shares[0].function, "large");
    ck_assert_int_eq(gb->shares[0].amount, 3642);
    ck_assert_str_eq(gb->shares[1].function, "medium");
    ck_assert_int_eq(gb->shares[1].amount, 797);
    ck_assert_str_eq(gb->shares[2].function, "small");
    ck_assert_int_eq(gb->shares[2].amount, 182);
    ck_assert_str_eq(gb->usage, "3171875");
    ck_assert_str_eq(gb->free, "400000");
    ck_assert_str_eq(gb->quantity, "2771875");
    bill_invoice_free(inv);
    bill_usage_free(use);
    bill_catalog_free(cat);
}
END_TEST

#define REQ_PLAN(price)                                                                        \
    "{\"id\":\"p\",\"name\":\"P\",\"currency\":\"USD\","                                       \
    "\"duration\":{\"step_ms\":1,\"min_ms\":0,\"include_init\":false},"                        \
    "\"memory\":{\"basis\":\"configured\",\"step_mb\":1,\"min_mb\":1,\"max_mb\":1024},"        \
    "\"charges\":[{\"meter\":\"requests\",\"tiers\":[{\"up_to\":null,\"unit_price\":\"" price  \
    "\"}]}]}"

static struct bill_invoice *price_requests(const struct bill_plan *p, const char *const *fns,
                                           const int64_t *counts, size_t n)
{
    struct bill_usage *use = bill_usage_new();
    for (size_t i = 0; i < n; i++) {
        struct bill_quantities q = {.requests = counts[i]};
        ck_assert_int_eq(bill_usage_add_quantities(use, fns[i], &q, NULL), BILL_OK);
    }
    struct bill_invoice *inv = price(p, use, false);
    bill_usage_free(use);
    return inv;
}

#define CURRENCY_PLAN(currency, price)                                                         \
    "{\"id\":\"p\",\"name\":\"P\",\"currency\":\"" currency "\","                              \
    "\"duration\":{\"step_ms\":1,\"min_ms\":0,\"include_init\":false},"                        \
    "\"memory\":{\"basis\":\"configured\",\"step_mb\":1,\"min_mb\":1,\"max_mb\":1024},"        \
    "\"subscription\":\"0.0005\","                                                             \
    "\"charges\":[{\"meter\":\"requests\",\"tiers\":[{\"up_to\":null,\"unit_price\":\"" price  \
    "\"}]}]}"

/* Each line is rounded to its currency's ISO 4217 minor unit: yen and won have none, the
 * dinars of Kuwait and Bahrain three decimals, the others cents. */
START_TEST(minor_unit_of_the_currency)
{
    static const struct {
        const char *json;
        int digits;
        const char *requests, *subscription, *total;
    } cases[] = {
        /* 3 requests at 0.5: 1.5 rounds half-up to 2 yen; the subscription to 0. */
        {CURRENCY_PLAN("JPY", "0.5"), 0, "2", "0", "2"},
        {CURRENCY_PLAN("KRW", "0.5"), 0, "2", "0", "2"},
        /* 3 x 0.0005 = 0.0015: 0.002 dinar; the subscription 0.001. */
        {CURRENCY_PLAN("KWD", "0.0005"), 3, "0.002", "0.001", "0.003"},
        {CURRENCY_PLAN("BHD", "0.0005"), 3, "0.002", "0.001", "0.003"},
        {CURRENCY_PLAN("EUR", "0.005"), 2, "0.02", "0.00", "0.02"},
        {CURRENCY_PLAN("INR", "0.005"), 2, "0.02", "0.00", "0.02"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bill_plan *p = tb_plan_json(cases[i].json);
        ck_assert_int_eq(bill_plan_minor_digits(p), cases[i].digits);
        const char *fns[] = {"f"};
        const int64_t counts[] = {3};
        struct bill_invoice *inv = price_requests(p, fns, counts, 1);
        char buf[BILL_NUM_BUFSZ];
        ck_assert_int_eq(bill_money_format(inv->lines[0].amount, inv->minor_digits, buf,
                                           sizeof buf),
                         0);
        ck_assert_str_eq(buf, cases[i].requests);
        bill_money_format(inv->subscription, inv->minor_digits, buf, sizeof buf);
        ck_assert_str_eq(buf, cases[i].subscription);
        bill_money_format(inv->total, inv->minor_digits, buf, sizeof buf);
        ck_assert_str_eq(buf, cases[i].total);
        bill_invoice_free(inv);
        bill_plan_free(p);
    }
    static const struct {
        const char *code;
        int digits;
    } iso[] = {{"USD", 2}, {"EUR", 2}, {"GBP", 2}, {"CHF", 2}, {"CAD", 2}, {"AUD", 2},
               {"CNY", 2}, {"INR", 2}, {"BRL", 2}, {"JPY", 0}, {"KRW", 0}, {"BHD", 3},
               {"KWD", 3}, {"JOD", 3}, {"OMR", 3}, {"TND", 3}, {"CLF", 4}, {"XAU", -1},
               {"XYZ", -1}, {"usd", -1}, {"", -1}};
    for (size_t i = 0; i < sizeof iso / sizeof iso[0]; i++)
        ck_assert_msg(bill_currency_minor_digits(iso[i].code) == iso[i].digits, "%s",
                      iso[i].code);
    /* A server's monthly fee too: 0.5 yen an hour x 730 = 365 yen. */
    static const char yen_server[] =
        "{\"id\": \"y\", \"name\": \"y\", \"provider\": \"t\", \"vcpus\": 1, \"memory_mb\": 1,"
        " \"hourly_price\": \"0.5\", \"currency\": \"JPY\", \"source\": \"t\","
        " \"as_of\": \"2024-01-01\"}";
    struct bill_server *s = NULL;
    size_t n = 0;
    int64_t fee = 0;
    ck_assert_int_eq(bill_servers_parse(yen_server, strlen(yen_server), "y.json", &s, &n, NULL),
                     BILL_OK);
    ck_assert_int_eq(bill_server_monthly_fee(&s[0], &fee), 0);
    ck_assert_int_eq(fee, 365);
    bill_servers_free(s, n);
}
END_TEST

START_TEST(half_up_once_per_line)
{
    struct bill_plan *p = tb_plan_json(REQ_PLAN("0.005"));
    static const struct {
        int64_t requests;
        const char *amount;
    } cases[] = {{1, "0.01"}, {2, "0.01"}, {3, "0.02"}, {0, "0.00"}, {1001, "5.01"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *fn = "f";
        struct bill_invoice *inv = price_requests(p, &fn, &cases[i].requests, 1);
        assert_money(inv->lines[0].amount, cases[i].amount, "requests at 0.005");
        bill_invoice_free(inv);
    }
    bill_plan_free(p);
    /* Rounded once per line, not per function: three functions of 0.005 each make 0.015
     * -> 0.02, where rounding each first would give 0.03. */
    p = tb_plan_json(REQ_PLAN("0.005"));
    const char *fns[] = {"a", "b", "c"};
    const int64_t counts[] = {1, 1, 1};
    struct bill_invoice *inv = price_requests(p, fns, counts, 3);
    assert_money(inv->lines[0].amount, "0.02", "three functions");
    ck_assert_int_eq(inv->lines[0].shares[0].amount, 1); /* ties go in name order */
    ck_assert_int_eq(inv->lines[0].shares[1].amount, 1);
    ck_assert_int_eq(inv->lines[0].shares[2].amount, 0);
    bill_invoice_free(inv);
    bill_plan_free(p);
    p = tb_plan_json(REQ_PLAN("0.0049999"));
    const int64_t one = 1;
    inv = price_requests(p, fns, &one, 1);
    assert_money(inv->lines[0].amount, "0.00", "just under half a cent");
    bill_invoice_free(inv);
    bill_plan_free(p);
}
END_TEST

START_TEST(shares_by_largest_remainder)
{
    struct bill_plan *p = tb_plan_json(REQ_PLAN("0.01"));
    const char *fns[] = {"zeta", "alpha", "mid", "idle"};
    const int64_t counts[] = {1, 5, 4, 0};
    /* 10 cents over 1:5:4 is exact; then 7 cents over 1:2:4 = 1.0 : 2.0 : 4.0. Uneven: */
    struct bill_invoice *inv = price_requests(p, fns, counts, 4);
    ck_assert_uint_eq(inv->lines[0].nshares, 3); /* no share for a function without usage */
    ck_assert_str_eq(inv->lines[0].shares[0].function, "alpha");
    ck_assert_int_eq(inv->lines[0].shares[0].amount, 5);
    bill_invoice_free(inv);
    bill_plan_free(p);

    p = tb_plan_json(REQ_PLAN("0.001"));
    const char *three[] = {"a", "b", "c"};
    const int64_t c3[] = {3333, 3333, 3334}; /* 10.000 -> 1000 cents: 333.3, 333.3, 333.4 */
    inv = price_requests(p, three, c3, 3);
    ck_assert_int_eq(inv->lines[0].amount, 1000);
    ck_assert_int_eq(inv->lines[0].shares[0].amount, 333);
    ck_assert_int_eq(inv->lines[0].shares[1].amount, 333);
    ck_assert_int_eq(inv->lines[0].shares[2].amount, 334);
    bill_invoice_free(inv);
    const int64_t c4[] = {1, 1, 1}; /* 0.003 -> 0.00: nothing to share */
    inv = price_requests(p, three, c4, 3);
    ck_assert_int_eq(inv->lines[0].amount, 0);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(inv->lines[0].shares[i].amount, 0);
    bill_invoice_free(inv);
    const int64_t c5[] = {7, 7, 6}; /* 0.020 = 2 cents over 7:7:6 -> 0.7, 0.7, 0.6 -> 1, 1, 0 */
    inv = price_requests(p, three, c5, 3);
    ck_assert_int_eq(inv->lines[0].shares[0].amount, 1);
    ck_assert_int_eq(inv->lines[0].shares[1].amount, 1);
    ck_assert_int_eq(inv->lines[0].shares[2].amount, 0);
    bill_invoice_free(inv);
    bill_plan_free(p);
}
END_TEST

/* GB-s usage for the x86 plan: free allowance 400000 plus billable GB-s, in MB-ms. */
static struct bill_invoice *price_gb_seconds(const struct bill_plan *p, int64_t billable_gbs)
{
    struct bill_usage *use = bill_usage_new();
    struct bill_quantities q = {.mb_ms = (billable_gbs + 400000) * 1024 * 1000};
    ck_assert_int_eq(bill_usage_add_quantities(use, "f", &q, NULL), BILL_OK);
    struct bill_invoice *inv = price(p, use, false);
    bill_usage_free(use);
    return inv;
}

START_TEST(tier_boundaries)
{
    struct bill_catalog *cat = tb_catalog();
    const struct bill_plan *p = tb_plan(cat, "aws-lambda-x86");
    static const struct {
        int64_t billable;
        size_t ntiers;
        const char *last_tier_qty, *amount;
    } cases[] = {
        {INT64_C(6000000000), 1, "6000000000", "100000.20"},     /* 6e9 x 0.0000166667 */
        {INT64_C(6000000001), 2, "1", "100000.20"},              /* + 0.000015 */
        {INT64_C(6001000000), 2, "1000000", "100015.20"},        /* + 15.00 at the 2nd price */
        {INT64_C(15000000000), 2, "9000000000", "235000.20"},    /* + 9e9 x 0.000015 */
        {INT64_C(15001000000), 3, "1000000", "235013.53"},       /* + 13.3334 */
        {0, 0, NULL, "0.00"},                                    /* exactly the free allowance */
        {1, 1, "1", "0.00"},                                     /* one over: 0.0000166667 */
        {300, 1, "300", "0.01"},                                 /* 0.00500001 -> 0.01 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bill_invoice *inv = price_gb_seconds(p, cases[i].billable);
        const struct bill_line *l = line_for(inv, BILL_METER_GB_SECONDS);
        ck_assert_msg(l->ntiers == cases[i].ntiers, "case %zu: %zu tiers", i, l->ntiers);
        if (cases[i].last_tier_qty)
            ck_assert_str_eq(l->tiers[l->ntiers - 1].quantity, cases[i].last_tier_qty);
        ck_assert_str_eq(l->free, "400000");
        assert_money(l->amount, cases[i].amount, "tier boundary");
        bill_invoice_free(inv);
    }
    /* Below the allowance: nothing billable, the allowance used is the usage. */
    struct bill_usage *use = bill_usage_new();
    struct bill_quantities q = {.requests = 999999, .mb_ms = 1024 * 1000};
    ck_assert_int_eq(bill_usage_add_quantities(use, "f", &q, NULL), BILL_OK);
    struct bill_invoice *inv = price(p, use, false);
    ck_assert_str_eq(line_for(inv, BILL_METER_GB_SECONDS)->free, "1");
    ck_assert_str_eq(line_for(inv, BILL_METER_GB_SECONDS)->quantity, "0");
    ck_assert_str_eq(line_for(inv, BILL_METER_REQUESTS)->quantity, "0");
    ck_assert_int_eq(inv->total, 0);
    bill_invoice_free(inv);
    bill_usage_free(use);
    bill_catalog_free(cat);
}
END_TEST

/* A 100 ms plan rounds each invocation, not the sum: ten 10 ms calls bill 1000 ms. */
START_TEST(rounding_is_per_invocation)
{
    struct bill_catalog *cat = tb_catalog();
    const struct bill_plan *p = tb_plan(cat, "aws-lambda-x86-2018");
    struct bill_usage *use = bill_usage_new();
    struct bill_invocation inv = {.duration_us = 10000, .memory_mb = 1024};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(bill_usage_add_invocation(use, p, "f", &inv, NULL), BILL_OK);
    inv.duration_us = 260000;
    ck_assert_int_eq(bill_usage_add_invocation(use, p, "g", &inv, NULL), BILL_OK);
    ck_assert_uint_eq(bill_usage_count(use), 2);
    ck_assert_int_eq(bill_usage_quantities(use, 0)->billed_ms, 1000);
    ck_assert_int_eq(bill_usage_quantities(use, 0)->mb_ms, 1000 * 1024);
    ck_assert_int_eq(bill_usage_quantities(use, 0)->requests, 10);
    ck_assert_int_eq(bill_usage_quantities(use, 1)->billed_ms, 300);
    struct bill_invoice *out = price(p, use, true);
    ck_assert_str_eq(line_for(out, BILL_METER_GB_SECONDS)->usage, "1.3");
    ck_assert_str_eq(line_for(out, BILL_METER_GB_SECONDS)->quantity, "1.3");
    bill_invoice_free(out);
    bill_usage_free(use);
    bill_catalog_free(cat);
}
END_TEST

START_TEST(overflow_is_reported)
{
    struct fm_err err = {{0}};
    struct bill_quantities q = {.requests = INT64_MAX / 2 + 1}, out = {.requests = 5};
    ck_assert_int_eq(bill_quantities_scale(&q, 2, &out, &err), BILL_EOVERFLOW);
    ck_assert_int_eq(out.requests, 5);
    struct bill_usage *use = bill_usage_new();
    q.requests = INT64_MAX;
    ck_assert_int_eq(bill_usage_add_quantities(use, "a", &q, NULL), BILL_OK);
    q.requests = 1;
    ck_assert_int_eq(bill_usage_add_quantities(use, "a", &q, &err), BILL_EOVERFLOW);
    ck_assert_int_eq(bill_usage_quantities(use, 0)->requests, INT64_MAX); /* unchanged */
    ck_assert_int_eq(bill_usage_add_quantities(use, "b", &q, NULL), BILL_OK);
    struct bill_plan *p = tb_plan_json(REQ_PLAN("1"));
    struct bill_invoice *inv = NULL;
    /* The sum over functions overflows 64 bits. */
    ck_assert_int_eq(bill_price(p, use, &inv, &err), BILL_EOVERFLOW);
    ck_assert_ptr_null(inv);
    bill_usage_free(use);
    /* The amount in cents does not fit 64 bits: 9.2e18 requests at $1. */
    use = bill_usage_new();
    q.requests = INT64_MAX;
    ck_assert_int_eq(bill_usage_add_quantities(use, "a", &q, NULL), BILL_OK);
    ck_assert_int_eq(bill_price(p, use, &inv, &err), BILL_EOVERFLOW);
    ck_assert_str_eq(err.msg, "requests: the amount does not fit in 128-bit arithmetic");
    bill_plan_free(p);
    /* The exact product itself exceeds 128 bits. */
    p = tb_plan_json(REQ_PLAN("99999999999999999999.999999999999999999"));
    ck_assert_int_eq(bill_price(p, use, &inv, &err), BILL_EOVERFLOW);
    ck_assert_ptr_null(inv);
    bill_plan_free(p);
    bill_usage_free(use);
    /* Negative quantities and empty names are refused. */
    use = bill_usage_new();
    q.requests = -1;
    ck_assert_int_eq(bill_usage_add_quantities(use, "a", &q, NULL), BILL_EINVAL);
    q.requests = 1;
    ck_assert_int_eq(bill_usage_add_quantities(use, "", &q, NULL), BILL_EINVAL);
    ck_assert_uint_eq(bill_usage_count(use), 0);
    bill_usage_free(use);
}
END_TEST

/* A cloudflare-like month through all three renderings. */
static struct bill_invoice *sample_invoice(struct bill_catalog **cat)
{
    *cat = tb_catalog();
    const struct bill_plan *p = tb_plan(*cat, "cloudflare-workers-standard");
    struct bill_usage *use = bill_usage_new();
    add_uniform(use, p, "resize,thumb", 10000000, "40", 128, 5, 0);
    add_uniform(use, p, "api", 5000000, "20", 128, 11, 0);
    struct bill_invoice *inv = price(p, use, false);
    bill_usage_free(use);
    return inv;
}

START_TEST(render_json)
{
    struct bill_catalog *cat = NULL;
    struct bill_invoice *inv = sample_invoice(&cat);
    struct fm_buf b;
    fm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bill_invoice_render(inv, BILL_FORMAT_JSON, "acme", "2026-11", &b), 0);
    cJSON *root = cJSON_Parse(b.data);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(cJSON_GetObjectItem(root, "plan")->valuestring, "cloudflare-workers-standard");
    ck_assert_str_eq(cJSON_GetObjectItem(root, "currency")->valuestring, "USD");
    ck_assert_str_eq(cJSON_GetObjectItem(root, "tenant")->valuestring, "acme");
    ck_assert_str_eq(cJSON_GetObjectItem(root, "period")->valuestring, "2026-11");
    /* requests 5M over -> 1.50; CPU 50M + 55M = 105M ms - 30M = 75M -> 1.50; and the
     * subscription, 5.00, a line too: the total is the sum of the lines. */
    ck_assert_str_eq(cJSON_GetObjectItem(root, "total")->valuestring, "8.00");
    cJSON *lines = cJSON_GetObjectItem(root, "lines");
    ck_assert_int_eq(cJSON_GetArraySize(lines), 3);
    cJSON *sub = cJSON_GetArrayItem(lines, 2);
    ck_assert_str_eq(cJSON_GetObjectItem(sub, "item")->valuestring, "Subscription");
    ck_assert_str_eq(cJSON_GetObjectItem(sub, "meter")->valuestring, "subscription");
    ck_assert_str_eq(cJSON_GetObjectItem(sub, "quantity")->valuestring, "1");
    ck_assert_str_eq(cJSON_GetObjectItem(sub, "amount")->valuestring, "5.00");
    ck_assert_ptr_null(cJSON_GetObjectItem(root, "subscription"));
    int64_t sum = 0;
    for (int i = 0; i < 3; i++) {
        struct bill_dec d;
        const char *a = cJSON_GetObjectItem(cJSON_GetArrayItem(lines, i), "amount")->valuestring;
        ck_assert_int_eq(bill_dec_parse(a, &d), 0);
        __int128 cents;
        ck_assert_int_eq(bill_dec_units_at(d, 2, &cents), 0);
        sum += (int64_t)cents;
    }
    ck_assert_int_eq(sum, 800);
    cJSON *cpu = cJSON_GetArrayItem(lines, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cpu, "meter")->valuestring, "cpu_ms");
    ck_assert_str_eq(cJSON_GetObjectItem(cpu, "quantity")->valuestring, "75000000");
    ck_assert_str_eq(cJSON_GetObjectItem(cpu, "unit_price")->valuestring, "0.00000002");
    ck_assert_str_eq(cJSON_GetObjectItem(cpu, "amount")->valuestring, "1.50");
    cJSON *fns = cJSON_GetObjectItem(cpu, "functions");
    ck_assert_int_eq(cJSON_GetArraySize(fns), 2);
    /* 150 cents over 55M : 50M CPU-ms -> 78.57 : 71.43 */
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(fns, 0), "function")->valuestring,
                     "api");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(fns, 0), "amount")->valuestring,
                     "0.79");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(fns, 1), "amount")->valuestring,
                     "0.71");
    cJSON_Delete(root);
    fm_buf_free(&b);
    bill_invoice_free(inv);
    bill_catalog_free(cat);
}
END_TEST

START_TEST(render_csv_and_text)
{
    struct bill_catalog *cat = NULL;
    struct bill_invoice *inv = sample_invoice(&cat);
    struct fm_buf b;
    fm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bill_invoice_render(inv, BILL_FORMAT_CSV, NULL, NULL, &b), 0);
    ck_assert_str_eq(b.data, "item,meter,function,quantity,unit_price,amount\r\n"
                             "Requests,requests,,5000000,0.0000003,1.50\r\n"
                             "Requests,requests,api,,,0.50\r\n"
                             "Requests,requests,\"resize,thumb\",,,1.00\r\n"
                             "CPU time (ms),cpu_ms,,75000000,0.00000002,1.50\r\n"
                             "CPU time (ms),cpu_ms,api,,,0.79\r\n"
                             "CPU time (ms),cpu_ms,\"resize,thumb\",,,0.71\r\n"
                             "Subscription,subscription,,1,5.00,5.00\r\n"
                             "Total,,,,,8.00\r\n");
    /* An adjustment reads as in JSON too: its kind as the meter, 1 at its amount. */
    struct bill_catalog *late_cat = NULL;
    struct bill_invoice *late = sample_invoice(&late_cat);
    ck_assert_int_eq(bill_invoice_add_adjustment(late, "2026-10", 7, -25, NULL), BILL_OK);
    fm_buf_reset(&b);
    ck_assert_int_eq(bill_invoice_render(late, BILL_FORMAT_CSV, NULL, NULL, &b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\r\nSubscription,subscription,,1,5.00,5.00\r\n"
                                         "Adjustment for 2026-10 (invoice 7),adjustment,,1,-0.25,"
                                         "-0.25\r\nTotal,,,,,7.75\r\n"));
    bill_invoice_free(late);
    bill_catalog_free(late_cat);
    fm_buf_reset(&b);
    ck_assert_int_eq(bill_invoice_render(inv, BILL_FORMAT_TEXT, "acme", "2026-11", &b), 0);
    ck_assert_str_eq(
        b.data,
        "Plan:    Cloudflare Workers Paid, Standard usage model (cloudflare-workers-standard)\n"
        "Tenant:  acme\n"
        "Period:  2026-11\n"
        "\n"
        "Item                Usage      Free  Billable  Unit price  Amount (USD)\n"
        "-----------------------------------------------------------------------\n"
        "Requests         15000000  10000000   5000000   0.0000003          1.50\n"
        "  api                                                              0.50\n"
        "  resize,thumb                                                     1.00\n"
        "CPU time (ms)   105000000  30000000  75000000  0.00000002          1.50\n"
        "  api                                                              0.79\n"
        "  resize,thumb                                                     0.71\n"
        "Subscription                                                       5.00\n"
        "-----------------------------------------------------------------------\n"
        "Total                                                              8.00\n");
    enum bill_format fmt;
    ck_assert_int_eq(bill_format_from_name("csv", &fmt), 0);
    ck_assert_int_eq(fmt, BILL_FORMAT_CSV);
    ck_assert_int_eq(bill_format_from_name("html", &fmt), -1);
    /* A capped buffer fails instead of truncating. */
    struct fm_buf small;
    fm_buf_init(&small, 64);
    ck_assert_int_eq(bill_invoice_render(inv, BILL_FORMAT_JSON, NULL, NULL, &small), -1);
    fm_buf_free(&small);
    fm_buf_free(&b);
    bill_invoice_free(inv);
    bill_catalog_free(cat);
}
END_TEST

/* Without a subscription no format shows a Subscription line, and all three agree. */
START_TEST(no_subscription_line_in_any_format)
{
    struct bill_plan *p = tb_plan_json(REQ_PLAN("0.01"));
    const char *fns[] = {"f"};
    const int64_t counts[] = {150};
    struct bill_invoice *inv = price_requests(p, fns, counts, 1);
    ck_assert_int_eq(inv->subscription, 0);
    struct fm_buf b;
    fm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bill_invoice_render(inv, BILL_FORMAT_CSV, NULL, NULL, &b), 0);
    ck_assert_str_eq(b.data, "item,meter,function,quantity,unit_price,amount\r\n"
                             "Requests,requests,,150,0.01,1.50\r\n"
                             "Requests,requests,f,,,1.50\r\n"
                             "Total,,,,,1.50\r\n");
    for (int fmt = BILL_FORMAT_TEXT; fmt <= BILL_FORMAT_JSON; fmt++) {
        fm_buf_reset(&b);
        ck_assert_int_eq(bill_invoice_render(inv, (enum bill_format)fmt, NULL, NULL, &b), 0);
        ck_assert_ptr_null(strstr(b.data, "Subscription"));
    }
    fm_buf_free(&b);
    bill_invoice_free(inv);
    bill_plan_free(p);
}
END_TEST

Suite *suite_price(void)
{
    Suite *s = suite_create("price");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, published_examples);
    tcase_add_test(tc, published_examples_through_quote);
    tcase_add_test(tc, quote_json_from_the_command_line);
    tcase_add_test(tc, every_command_has_help_and_the_catalogs_list);
    tcase_add_test(tc, quote_and_simulate_input_errors_exit_2);
    tcase_add_test(tc, mixed_memory_shares);
    tcase_add_test(tc, half_up_once_per_line);
    tcase_add_test(tc, minor_unit_of_the_currency);
    tcase_add_test(tc, shares_by_largest_remainder);
    tcase_add_test(tc, tier_boundaries);
    tcase_add_test(tc, rounding_is_per_invocation);
    tcase_add_test(tc, overflow_is_reported);
    suite_add_tcase(s, tc);
    TCase *render = tcase_create("render");
    tcase_add_test(render, render_json);
    tcase_add_test(render, render_csv_and_text);
    tcase_add_test(render, no_subscription_line_in_any_format);
    suite_add_tcase(s, render);
    return s;
}
