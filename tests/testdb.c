#include "tests/testdb.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apikey.h"
#include "common/buf.h"
#include "common/db.h"
#include "meter/plans.h"
#include "schema/migrate.h"

/* The base conninfo with dbname replaced, as keyword='value' pairs. */
static void with_dbname(const char *base, const char *dbname, char *out, size_t n)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
    ck_assert_msg(opts != NULL, "FAASMETER_DB does not parse: %s", errmsg ? errmsg : "");
    struct fm_buf b;
    fm_buf_init(&b, n - 1);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
            continue;
        fm_buf_printf(&b, "%s='", o->keyword);
        for (const char *p = o->val; *p; p++)
            fm_buf_printf(&b, "%s%c", (*p == '\'' || *p == '\\') ? "\\" : "", *p);
        fm_buf_puts(&b, "' ");
    }
    fm_buf_printf(&b, "dbname='%s'", dbname);
    PQconninfoFree(opts);
    ck_assert_msg(!b.failed, "conninfo too long");
    memcpy(out, b.data, b.len + 1);
    fm_buf_free(&b);
}

PGconn *testdb_connect(const char *conninfo)
{
    struct fm_err err;
    PGconn *conn = db_connect(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    return conn;
}

void testdb_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    PQclear(res);
}

char *testdb_value(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    const char *v = PQntuples(res) == 0 ? "" : PQgetisnull(res, 0, 0) ? "NULL"
                                                                       : PQgetvalue(res, 0, 0);
    char *copy = strdup(v);
    PQclear(res);
    return copy;
}

void testdb_create_empty(const char *name, char *out, size_t n)
{
    const char *base = getenv("FAASMETER_DB");
    ck_assert_msg(base && *base, "FAASMETER_DB is not set");
    PGconn *admin = testdb_connect(base);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    testdb_exec(admin, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    testdb_exec(admin, sql);
    PQfinish(admin);

    with_dbname(base, name, out, n);
}

void testdb_create(const char *name, char *out, size_t n)
{
    testdb_create_empty(name, out, n);
    PGconn *conn = testdb_connect(out);
    struct fm_err err;
    int applied = 0;
    ck_assert_msg(schema_migrate(conn, NULL, &applied, &err) == 0, "migrate: %s", err.msg);
    ck_assert_int_gt(applied, 0);
    /* As faasbill migrate does: rate usage under every catalog plan. */
    struct bill_catalog *cat = NULL;
    ck_assert_msg(bill_catalog_load(NULL, &cat, &err) == BILL_OK, "catalog: %s", err.msg);
    ck_assert_msg(meter_plans_register(conn, cat, NULL, &err) == 0, "plans: %s", err.msg);
    bill_catalog_free(cat);
    PQfinish(conn);
}

void testdb_add_key(PGconn *conn, char *key, const char *role, const char *tenant)
{
    char id[APIKEY_ID_LEN + 1];
    ck_assert_int_eq(apikey_generate(key), 0);
    ck_assert(apikey_id(key, id));
    const char *params[] = {id, key, role, tenant};
    free(testdb_value(conn,
                      "INSERT INTO api_keys (key_id, key_hash, role, tenant)"
                      " VALUES ($1, sha256(convert_to($2, 'UTF8')), $3, $4) RETURNING key_id",
                      4, params));
}
