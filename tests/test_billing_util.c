#include "tests/test_billing_util.h"

#include <check.h>
#include <string.h>

#include "common/paths.h"

FILE *tb_data(const char *name)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/data/%s", name);
    ck_assert_int_eq(fm_home_path(rel, path, sizeof path), 0);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    return f;
}

int tb_split(char *line, char **words, int max)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    int n = 0;
    char *p = line;
    while (n < max) {
        p += strspn(p, " \t\r\n");
        if (*p == '\0')
            break;
        words[n++] = p;
        p += strcspn(p, " \t\r\n");
        if (*p != '\0')
            *p++ = '\0';
    }
    return n;
}

struct bill_catalog *tb_catalog(void)
{
    char dir[4096];
    struct fm_err err = {{0}};
    struct bill_catalog *cat = NULL;
    ck_assert_int_eq(fm_home_path("billing/catalog", dir, sizeof dir), 0);
    ck_assert_msg(bill_catalog_load(dir, &cat, &err) == BILL_OK, "catalog: %s", err.msg);
    return cat;
}

const struct bill_plan *tb_plan(const struct bill_catalog *cat, const char *id)
{
    const struct bill_plan *p = bill_catalog_plan(cat, id);
    ck_assert_msg(p != NULL, "no plan %s in the catalog", id);
    return p;
}

struct bill_plan *tb_plan_json(const char *json)
{
    struct bill_plan *p = NULL;
    struct fm_err err = {{0}};
    ck_assert_msg(bill_plan_parse(json, strlen(json), "test.json", &p, &err) == BILL_OK, "%s",
                  err.msg);
    return p;
}
