/*
 * The whole path with the built binaries: faasrun runs a function and meters it, meterd
 * stores the records in PostgreSQL, faasbill prices the month. Real processes, real HTTP,
 * a real database.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/proc.h"
#include "tests/suites.h"
#include "tests/testdb.h"

static char conninfo[1024];
static char dir[64];
static char path_buf[8][512];

/* A plan without free allowances, so that one small invocation costs something. */
static const char test_plan[] =
    "{\"id\": \"e2e-metered\", \"name\": \"end-to-end test plan\", \"currency\": \"USD\",\n"
    " \"duration\": {\"step_ms\": 1, \"min_ms\": 0, \"include_init\": true},\n"
    " \"memory\": {\"basis\": \"configured\", \"step_mb\": 1, \"min_mb\": 128, \"max_mb\": 10240},\n"
    " \"subscription\": \"0\",\n"
    " \"charges\": [\n"
    "  {\"meter\": \"requests\", \"free\": \"0\", \"tiers\": [{\"up_to\": null, \"unit_price\": "
    "\"0.01\"}]},\n"
    "  {\"meter\": \"gb_seconds\", \"free\": \"0\", \"tiers\": [{\"up_to\": null, "
    "\"unit_price\": \"10\"}]}]}\n";

static const char *in_dir(int slot, const char *name)
{
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", dir, name);
    return path_buf[slot];
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
    testdb_create("faasmeter_test_e2e", conninfo, sizeof conninfo);
    snprintf(dir, sizeof dir, "/tmp/faasmeter-e2e.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(mkdir(in_dir(0, "catalog"), 0700), 0);
    ck_assert_int_eq(mkdir(in_dir(0, "catalog/plans"), 0700), 0);
    ck_assert_int_eq(mkdir(in_dir(0, "catalog/servers"), 0700), 0);
    write_file(in_dir(0, "catalog/plans/e2e.json"), test_plan);
    char bin[512], manifest[2048];
    proc_bin("fn/hello", bin, sizeof bin);
    char fail[512];
    proc_bin("fn/fail", fail, sizeof fail);
    snprintf(manifest, sizeof manifest,
             "{\"functions\": ["
             "{\"tenant\": \"acme\", \"name\": \"hello\", \"command\": [\"%s\"],"
             " \"memory_mb\": 128, \"timeout_ms\": 5000},"
             "{\"tenant\": \"acme\", \"name\": \"fail\", \"command\": [\"%s\"],"
             " \"memory_mb\": 256, \"timeout_ms\": 5000}]}",
             bin, fail);
    write_file(in_dir(0, "manifest.json"), manifest);
    /* Every child process reads this catalog. */
    setenv("FAASMETER_CATALOG", in_dir(1, "catalog"), 1);
}

static void teardown(void)
{
    char *argv[] = {"/bin/rm", "-rf", dir, NULL};
    struct proc_result r = proc_run(argv, NULL, 30);
    free(r.out);
    free(r.err);
}

/* Run a binary with arguments; checks the exit status and returns stdout (caller frees). */
static char *run(int want_status, const char *input, const char *name, ...)
{
    char bin[512];
    char *argv[32] = {(char *)proc_bin(name, bin, sizeof bin)};
    va_list ap;
    va_start(ap, name);
    int n = 1;
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 31;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    struct proc_result r = proc_run(argv, input, 60);
    ck_assert_msg(r.status == want_status, "%s exited %d, wanted %d; stderr: %s", name, r.status,
                  want_status, r.err);
    free(r.err);
    return r.out;
}

static const char *last_line(char *text)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

START_TEST(a_metered_invocation_becomes_an_invoice)
{
    free(run(0, NULL, "faasbill", "migrate", "--db", conninfo, NULL));
    free(run(0, NULL, "faasbill", "tenant", "add", "acme", "--plan", "e2e-metered", "--db",
             conninfo, NULL));
    char *out = run(0, NULL, "faasbill", "key", "create", "--role", "ingest", "--db", conninfo,
                    NULL);
    char key[128];
    snprintf(key, sizeof key, "%s", last_line(out));
    free(out);
    ck_assert_int_eq(strlen(key), 64);

    char bin[512], line[256];
    char *meterd_argv[] = {(char *)proc_bin("meterd", bin, sizeof bin), "--listen",
                           "127.0.0.1:0", "--db", conninfo, NULL};
    pid_t meterd = proc_start(meterd_argv, "meterd listening on", line, sizeof line, 30);
    char url[300];
    snprintf(url, sizeof url, "http://%s", line + strlen("meterd listening on "));

    out = run(0, "world", "faasrun", "invoke", "--manifest", in_dir(0, "manifest.json"),
              "--spool", in_dir(1, "spool"), "--meter", url, "--meter-key", key, "acme",
              "hello", NULL);
    ck_assert_str_eq(out, "Hello, world!\n");
    free(out);
    /* A failed invocation is billed too, and faasrun says it failed. */
    out = run(1, "", "faasrun", "invoke", "--manifest", in_dir(0, "manifest.json"), "--spool",
              in_dir(1, "spool"), "--meter", url, "--meter-key", key, "acme", "fail", NULL);
    free(out);
    ck_assert_int_eq(proc_stop(meterd), 0);

    PGconn *db = testdb_connect(conninfo);
    const char *hello[] = {"hello"};
    char *row = testdb_value(db,
                             "SELECT concat_ws('|', tenant, status, exit_code, has_start,"
                             " has_stop, memory_mb, timeout_ms, trigger, cold_start, bytes_in,"
                             " bytes_out, duration_us > 0, max_rss_kb > 0, init_us)"
                             " FROM invocations WHERE function = $1",
                             1, hello);
    ck_assert_str_eq(row, "acme|ok|0|t|t|128|5000|cli|t|5|14|t|t|0");
    free(row);
    const char *fail[] = {"fail"};
    row = testdb_value(db,
                       "SELECT concat_ws('|', status, exit_code, memory_mb, has_start, has_stop)"
                       " FROM invocations WHERE function = $1",
                       1, fail);
    ck_assert_str_eq(row, "error|3|256|t|t");
    free(row);
    row = testdb_value(db, "SELECT count(*) || '|' || (SELECT count(*) FROM records)"
                           " FROM invocations", 0, NULL);
    ck_assert_str_eq(row, "2|4");
    free(row);
    /* The expected bill, from the stored durations: per invocation billed ms = ceil(us/1000);
     * GB-s = MB x ms / 1024000 at $10, requests at $0.01. */
    char *sums = testdb_value(db,
                              "SELECT sum(memory_mb::bigint * ((duration_us + init_us + 999)"
                              " / 1000)) || '|' || to_char(min(started_at), 'YYYY-MM')"
                              " FROM invocations",
                              0, NULL);
    PQfinish(db);
    int64_t mb_ms = 0;
    char period[8] = "";
    ck_assert_int_eq(sscanf(sums, "%" SCNd64 "|%7s", &mb_ms, period), 2);
    free(sums);
    /* dollars = mb_ms x 10 / 1024000; cents rounded half up. */
    int64_t gb_cents = (mb_ms * 1000 + 512000) / 1024000;
    int64_t total_cents = 2 + gb_cents;
    char want_gb[32], want_total[32];
    snprintf(want_gb, sizeof want_gb, "%" PRId64 ".%02" PRId64, gb_cents / 100, gb_cents % 100);
    snprintf(want_total, sizeof want_total, "%" PRId64 ".%02" PRId64, total_cents / 100,
             total_cents % 100);

    out = run(0, NULL, "faasbill", "invoice", "--tenant", "acme", "--period", period,
              "--format", "json", "--db", conninfo, NULL);
    cJSON *inv = cJSON_Parse(out);
    ck_assert_msg(inv != NULL, "not JSON: %s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(inv, "plan")->valuestring, "e2e-metered");
    ck_assert_str_eq(cJSON_GetObjectItem(inv, "total")->valuestring, want_total);
    cJSON *lines = cJSON_GetObjectItem(inv, "lines");
    ck_assert_int_eq(cJSON_GetArraySize(lines), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(lines, 0), "quantity")->valuestring,
                     "2");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(lines, 0), "amount")->valuestring,
                     "0.02");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(lines, 1), "amount")->valuestring,
                     want_gb);
    cJSON_Delete(inv);
    free(out);

    /* Bad input is one line on stderr and exit 2, or 1 for an unknown tenant. */
    free(run(2, NULL, "faasbill", "invoice", "--tenant", "acme", "--period", "2026-13", "--db",
             conninfo, NULL));
    free(run(2, NULL, "faasbill", "invoice", "--tenant", "nobody", "--period", period, "--db",
             conninfo, NULL));
}
END_TEST

/* Run faasbill with arguments and check its exit status, stdout and stderr whole. */
static void faasbill_says(int status, const char *out, const char *err, char **args)
{
    char bin[512];
    char *argv[16] = {(char *)proc_bin("faasbill", bin, sizeof bin)};
    for (int n = 1; n < 15 && args[n - 1]; n++)
        argv[n] = args[n - 1];
    struct proc_result r = proc_run(argv, NULL, 60);
    ck_assert_int_eq(r.status, status);
    ck_assert_str_eq(r.out, out);
    ck_assert_str_eq(r.err, err);
    free(r.out);
    free(r.err);
}

/* Bad usage is one line on stderr and exit code 2; a command's options are its own. */
START_TEST(faasbill_usage_is_checked)
{
    faasbill_says(2, "", "faasbill: missing command (try faasbill --help)\n", (char *[]){NULL});
    faasbill_says(2, "",
                  "faasbill migrate: --role: unknown option (try faasbill migrate --help)\n",
                  (char *[]){"migrate", "--role", "admin", "--db", conninfo, NULL});
    faasbill_says(2, "", "faasbill key: --plan: unknown option (try faasbill key --help)\n",
                  (char *[]){"key", "create", "--role", "admin", "--plan=x", NULL});
    faasbill_says(2, "", "faasbill key: --role: missing its value (try faasbill key --help)\n",
                  (char *[]){"key", "create", "--role", NULL});
    faasbill_says(2, "", "faasbill key: 'extra': unexpected argument (try faasbill key --help)\n",
                  (char *[]){"key", "create", "--role", "admin", "extra", NULL});
    faasbill_says(2, "", "faasbill key: expected 'create' (try faasbill key --help)\n",
                  (char *[]){"key", "--role", "admin", NULL});
    faasbill_says(2, "",
                  "faasbill migrate: 'extra': unexpected argument (try faasbill migrate --help)\n",
                  (char *[]){"migrate", "extra", "--db", conninfo, NULL});
    faasbill_says(2, "",
                  "faasbill tenant: 'extra': unexpected argument (try faasbill tenant --help)\n",
                  (char *[]){"tenant", "add", "globex", "extra", "--db", conninfo, NULL});
    faasbill_says(2, "", "faasbill tenant: --plan is an option of 'add', not 'list'\n",
                  (char *[]){"tenant", "list", "--plan", "x", "--db", conninfo, NULL});
    /* tenant add checks its plan in the catalog it is given. */
    free(run(0, NULL, "faasbill", "migrate", "--db", conninfo, NULL));
    unsetenv("FAASMETER_CATALOG");
    faasbill_says(2, "",
                  "faasbill tenant: --plan: no plan 'e2e-metered' in the catalog (faasbill plans "
                  "lists them)\n",
                  (char *[]){"tenant", "add", "globex", "--plan", "e2e-metered", "--db", conninfo,
                             NULL});
    faasbill_says(0, "tenant globex added with plan e2e-metered\n", "",
                  (char *[]){"tenant", "add", "globex", "--plan", "e2e-metered", "--catalog",
                             (char *)in_dir(1, "catalog"), "--db", conninfo, NULL});
    /* Added again without --plan, it keeps its plan; with one, it takes it. */
    faasbill_says(0, "tenant globex exists already with plan e2e-metered\n", "",
                  (char *[]){"tenant", "add", "globex", "--db", conninfo, NULL});
    faasbill_says(0, "tenant globex updated with plan aws-lambda-arm64\n", "",
                  (char *[]){"tenant", "add", "globex", "--plan", "aws-lambda-arm64", "--db",
                             conninfo, NULL});
    faasbill_says(0, "tenant umbrella added with plan aws-lambda-x86\n", "",
                  (char *[]){"tenant", "add", "umbrella", "--db", conninfo, NULL});
    /* A tenant that does not exist is bad input for every command that names one; a name
     * that cannot be a tenant's is told as such. */
    faasbill_says(2, "", "faasbill invoice: --tenant: no tenant 'nosuch' (faasbill tenant list)\n",
                  (char *[]){"invoice", "--tenant", "nosuch", "--period", "2026-11", "--db",
                             conninfo, NULL});
    faasbill_says(2, "", "faasbill compare: --tenant: no tenant 'nosuch' (faasbill tenant list)\n",
                  (char *[]){"compare", "--tenant", "nosuch", "--period", "2026-11", "--db",
                             conninfo, NULL});
    faasbill_says(2, "", "faasbill key: --tenant: no tenant 'nosuch' (faasbill tenant add)\n",
                  (char *[]){"key", "create", "--role", "tenant", "--tenant", "nosuch", "--db",
                             conninfo, NULL});
    /* A month is closed only once its invoice is final, and on its own. */
    faasbill_says(2, "", "faasbill invoice: no invoice for globex 2026-08\n",
                  (char *[]){"invoice", "--tenant", "globex", "--period", "2026-08", "--close",
                             "--db", conninfo, NULL});
    faasbill_says(2, "",
                  "faasbill invoice: --close: a month is closed on its own, without --finalize\n",
                  (char *[]){"invoice", "--tenant", "globex", "--period", "2026-08", "--close",
                             "--finalize", "--db", conninfo, NULL});
    static const char *const by_tenant[] = {"invoice", "compare"};
    for (size_t i = 0; i < 2; i++) {
        char want[160];
        snprintf(want, sizeof want,
                 "faasbill %s: --tenant: expected a tenant name [a-z0-9][a-z0-9_-]{0,63}, got "
                 "'BAD'\n",
                 by_tenant[i]);
        faasbill_says(2, "", want,
                      (char *[]){(char *)by_tenant[i], "--tenant", "BAD", "--period", "2026-11",
                                 "--db", conninfo, NULL});
    }
    faasbill_says(2, "",
                  "faasbill key: --tenant: expected a tenant name [a-z0-9][a-z0-9_-]{0,63}, got "
                  "'BAD'\n",
                  (char *[]){"key", "create", "--role", "tenant", "--tenant", "BAD", "--db",
                             conninfo, NULL});
    /* A connection string that does not parse is the user's mistake, not a database down:
     * every command that connects says which string, --db or FAASMETER_DB. */
    static const char *const connecting[][8] = {
        {"migrate"},
        {"tenant", "list"},
        {"key", "create", "--role", "admin"},
        {"invoice", "--tenant", "acme", "--period", "2026-11"},
        {"compare", "--tenant", "acme", "--period", "2026-11"},
        {"report", "--period", "2026-11", "-o", "unwritten.html"},
    };
    for (size_t i = 0; i < sizeof connecting / sizeof connecting[0]; i++) {
        char want[160];
        snprintf(want, sizeof want, "faasbill %s: --db: invalid connection option \"bogus\"\n",
                 connecting[i][0]);
        char *args[12] = {NULL};
        size_t n = 0;
        for (; connecting[i][n]; n++)
            args[n] = (char *)connecting[i][n];
        args[n] = "--db";
        args[n + 1] = "dbname=x bogus=1";
        faasbill_says(2, "", want, args);
    }
    char *env = strdup(getenv("FAASMETER_DB"));
    setenv("FAASMETER_DB", "host='x", 1);
    faasbill_says(2, "",
                  "faasbill tenant: FAASMETER_DB: unterminated quoted string in connection info "
                  "string\n",
                  (char *[]){"tenant", "list", NULL});
    setenv("FAASMETER_DB", env, 1);
    free(env);
}
END_TEST

/* A catalog that does not load is refused before the database is touched: a fresh database
 * stays empty, and the exit code says the input was bad. */
START_TEST(migrate_checks_the_catalog_first)
{
    char fresh[1024];
    testdb_create_empty("faasmeter_test_e2e_fresh", fresh, sizeof fresh);
    faasbill_says(2, "",
                  "faasbill migrate: --catalog: /nonexistent/plans: No such file or directory\n",
                  (char *[]){"migrate", "--catalog", "/nonexistent", "--db", fresh, NULL});
    write_file(in_dir(2, "catalog/plans/bad.json"), "{\"id\": \"bad\"}");
    faasbill_says(2, "", "faasbill migrate: --catalog: plans/bad.json: name: missing\n",
                  (char *[]){"migrate", "--catalog", (char *)in_dir(1, "catalog"), "--db", fresh,
                             NULL});
    faasbill_says(2, "",
                  "faasbill migrate: --catalog: empty; give the catalog folder (with plans/ and "
                  "servers/)\n",
                  (char *[]){"migrate", "--catalog", "", "--db", fresh, NULL});
    PGconn *conn = testdb_connect(fresh);
    char *tables = testdb_value(conn,
                                "SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                                " ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
                                0, NULL);
    ck_assert_str_eq(tables, "0");
    free(tables);
    PQfinish(conn);
}
END_TEST

Suite *suite_e2e(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("path");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, a_metered_invocation_becomes_an_invoice);
    tcase_add_test(tc, faasbill_usage_is_checked);
    tcase_add_test(tc, migrate_checks_the_catalog_first);
    suite_add_tcase(s, tc);
    return s;
}
