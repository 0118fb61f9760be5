/*
 * The test runner: every suite of tests/suites.def in one Check run, so that the run ends
 * with a single summary line. Arguments name suites to run (default: all).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/suites.h"

struct suite_entry {
    const char *name;
    Suite *(*make)(void);
    bool needs_db;
};

static const struct suite_entry suites[] = {
#define SUITE(n, db) {#n, suite_##n, db},
#include "tests/suites.def"
#undef SUITE
};

static bool wanted(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    SRunner *runner = NULL;
    int chosen = 0;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (!wanted(suites[i].name, argc, argv))
            continue;
        const char *db = getenv("FAASMETER_DB");
        if (suites[i].needs_db && (db == NULL || *db == '\0')) {
            fprintf(stderr, "suite %s needs a database: set FAASMETER_DB (make test does)\n",
                    suites[i].name);
            return 1;
        }
        if (runner == NULL)
            runner = srunner_create(suites[i].make());
        else
            srunner_add_suite(runner, suites[i].make());
        chosen++;
    }
    if (chosen == 0) {
        fprintf(stderr, "no such suite\n");
        return 2;
    }
    srunner_run_all(runner, CK_NORMAL);
    int run = srunner_ntests_run(runner);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    printf("%d passed, %d failed\n", run - failed, failed);
    return failed == 0 && run > 0 ? 0 : 1;
}
