#include "schema/migrate.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/paths.h"

#define MIGRATION_MAX_BYTES (4u << 20)
#define MIGRATIONS_MAX 1000

static int exec_ok(PGconn *conn, const char *sql, struct fm_err *err, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        db_err_from(err, conn, res, what);
    PQclear(res);
    return ok ? 0 : -1;
}

/* A migration file name: three or more digits, '_', a name, ".sql". */
static int migration_version(const char *name)
{
    int v = 0;
    size_t i = 0;
    for (; name[i] >= '0' && name[i] <= '9'; i++) {
        if (v > 100000)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    size_t len = strlen(name);
    if (i < 3 || name[i] != '_' || len < 5 || strcmp(name + len - 4, ".sql") != 0)
        return -1;
    return v;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(const char *path, struct fm_buf *out, struct fm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fm_err_set(err, "%s: cannot open", path);
    char chunk[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (fm_buf_append(out, chunk, n) != 0) {
            rc = fm_err_set(err, "%s: larger than %u bytes", path, MIGRATION_MAX_BYTES);
            break;
        }
    if (rc == 0 && ferror(f))
        rc = fm_err_set(err, "%s: read error", path);
    fclose(f);
    return rc;
}

static int apply_one(PGconn *conn, const char *dir, const char *name, int version, int *done,
                     struct fm_err *err)
{
    char path[4096];
    char vbuf[16];
    struct fm_buf sql;
    fm_buf_init(&sql, MIGRATION_MAX_BYTES);
    PGresult *res = NULL;
    int rc = -1;

    snprintf(vbuf, sizeof vbuf, "%d", version);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        fm_err_set(err, "%s: path too long", name);
        goto out;
    }
    if (exec_ok(conn, "BEGIN", err, "begin") != 0)
        goto out;
    const char *params[] = {vbuf, name};
    res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_err_from(err, conn, res, "reading schema_migrations");
        goto rollback;
    }
    if (PQntuples(res) == 1) {
        rc = exec_ok(conn, "COMMIT", err, "commit");
        goto out;
    }
    PQclear(res);
    res = NULL;
    if (read_file(path, &sql, err) != 0)
        goto rollback;
    if (exec_ok(conn, sql.data, err, name) != 0)
        goto rollback;
    res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_err_from(err, conn, res, "recording the migration");
        goto rollback;
    }
    if (exec_ok(conn, "COMMIT", err, "commit") != 0)
        goto out;
    (*done)++;
    rc = 0;
    goto out;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
out:
    PQclear(res);
    fm_buf_free(&sql);
    return rc;
}

int schema_migrate(PGconn *conn, const char *dir, int *applied, struct fm_err *err)
{
    char home_dir[4096];
    char *names[MIGRATIONS_MAX];
    int count = 0;
    int done = 0;
    int rc = -1;
    DIR *d = NULL;

    if (dir == NULL) {
        if (fm_home_path("schema", home_dir, sizeof home_dir) != 0)
            return fm_err_set(err, "schema folder path too long");
        dir = home_dir;
    }
    d = opendir(dir);
    if (d == NULL)
        return fm_err_set(err, "%s: cannot open the migrations folder", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (migration_version(e->d_name) < 0)
            continue;
        if (count == MIGRATIONS_MAX) {
            fm_err_set(err, "%s: more than %d migrations", dir, MIGRATIONS_MAX);
            goto out;
        }
        names[count] = strdup(e->d_name);
        if (names[count] == NULL) {
            fm_err_set(err, "out of memory");
            goto out;
        }
        count++;
    }
    qsort(names, (size_t)count, sizeof names[0], cmp_names);

    if (exec_ok(conn,
                "SELECT pg_advisory_lock(hashtext('faasmeter.migrate'));"
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, "preparing schema_migrations") != 0)
        goto unlock;
    for (int i = 0; i < count; i++)
        if (apply_one(conn, dir, names[i], migration_version(names[i]), &done, err) != 0)
            goto unlock;
    rc = 0;
    if (applied)
        *applied = done;
unlock:
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(hashtext('faasmeter.migrate'))"));
out:
    for (int i = 0; i < count; i++)
        free(names[i]);
    closedir(d);
    return rc;
}
