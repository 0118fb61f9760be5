/* faasbill migrate, tenant and key: the database set-up an operator does. */
#include <stdio.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "common/apikey.h"
#include "common/cli.h"
#include "common/db.h"
#include "common/names.h"
#include "meter/plans.h"
#include "meter/upkeep.h"
#include "schema/migrate.h"

/* The options of the database commands, and their words that are not options. */
struct db_opts {
    const char *db;
    const char *plan;
    const char *role;
    const char *tenant;
    const char *catalog;
    const char *words[2]; /* "add NAME", "list", "create" */
    size_t nwords;
};

/* The options a command takes beyond --db and --help: another's is an unknown option. */
enum { TAKES_PLAN = 1, TAKES_ROLE = 2, TAKES_TENANT = 4, TAKES_CATALOG = 8 };

/* Returns -1 to go on, else the exit code (0 after --help, 2 on bad usage). */
static int parse_opts(const char *cmd, int argc, char **argv, struct db_opts *o,
                      void (*help)(const char *cmd), unsigned takes)
{
    struct fm_cli_opt opts[6];
    size_t n = 0;
    opts[n++] = (struct fm_cli_opt)FM_OPT_TEXT("--db", &o->db);
    if (takes & TAKES_PLAN)
        opts[n++] = (struct fm_cli_opt)FM_OPT_TEXT("--plan", &o->plan);
    if (takes & TAKES_ROLE)
        opts[n++] = (struct fm_cli_opt)FM_OPT_TEXT("--role", &o->role);
    if (takes & TAKES_TENANT)
        opts[n++] = (struct fm_cli_opt)FM_OPT_TEXT("--tenant", &o->tenant);
    if (takes & TAKES_CATALOG)
        opts[n++] = (struct fm_cli_opt)FM_OPT_TEXT("--catalog", &o->catalog);
    opts[n] = (struct fm_cli_opt)FM_OPT_END;
    const struct fm_cli cli = {
        .prog = "faasbill",
        .cmd = cmd,
        .opts = opts,
        .help = help,
        .positional = o->words,
        .npositional = &o->nwords,
        .max = sizeof o->words / sizeof o->words[0],
    };
    return fm_cli_parse(&cli, argc, argv);
}

static void migrate_help(const char *cmd)
{
    (void)cmd;
    fputs("usage: faasbill migrate [--db CONNINFO] [--catalog DIR]\n"
          "Applies the schema/ migrations the database has not recorded yet, in order, then\n"
          "registers the catalog's plans so that usage is rated under each as it arrives\n"
          "(a new or changed plan is rated anew from the stored invocations). Run it again\n"
          "after adding or changing a plan file.\n",
          stdout);
}

int cli_migrate(int argc, char **argv)
{
    struct db_opts o = {0};
    int rc = parse_opts("migrate", argc, argv, &o, migrate_help, TAKES_CATALOG);
    if (rc >= 0)
        return rc;
    if (o.nwords > 0) {
        fprintf(stderr,
                "faasbill migrate: '%s': unexpected argument (try faasbill migrate --help)\n",
                o.words[0]);
        return 2;
    }
    /* The catalog is checked before the database is touched: a bad one changes nothing. */
    struct bill_catalog *cat = NULL;
    if ((rc = cli_load_catalog("migrate", o.catalog, &cat)) != 0)
        return rc;
    PGconn *conn = NULL;
    if ((rc = cli_connect("migrate", o.db, &conn)) != 0) {
        bill_catalog_free(cat);
        return rc;
    }
    struct fm_err err;
    int applied = 0, changed = 0;
    rc = 1;
    if (schema_migrate(conn, NULL, &applied, &err) != 0)
        goto out;
    printf("migrate: %d migration%s applied\n", applied, applied == 1 ? "" : "s");
    if (meter_plans_register(conn, cat, &changed, &err) != 0)
        goto out;
    printf("migrate: %d plan%s registered for rating\n", changed, changed == 1 ? "" : "s");
    if (!meter_partitions_ready(conn, &err))
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "faasbill migrate: %s\n", err.msg);
    bill_catalog_free(cat);
    PQfinish(conn);
    return rc;
}

/* The plan must exist in the catalog (dir, or the default one when NULL), so that invoices
 * can be built. */
/* The plan of a tenant added without --plan. */
#define DEFAULT_PLAN "aws-lambda-x86"

static int check_plan(const char *dir, const char *plan)
{
    struct bill_catalog *cat = NULL;
    int rc = cli_load_catalog("tenant", dir, &cat);
    if (rc != 0)
        return rc;
    if (bill_catalog_plan(cat, plan) == NULL) {
        fprintf(stderr, "faasbill tenant: --plan: no plan '%s' in the catalog "
                        "(faasbill plans lists them)\n",
                plan);
        rc = 2;
    }
    bill_catalog_free(cat);
    return rc;
}

/* Add the tenant with plan (NULL: the default), or give an existing one plan (NULL: keep
 * its own; a plan decides what a tenant pays, so it changes only when asked). */
static int tenant_add(PGconn *conn, const char *name, const char *plan)
{
    const char *params[3] = {name, plan, DEFAULT_PLAN};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO tenants AS t (tenant, plan)"
                                 " VALUES ($1, coalesce($2, $3))"
                                 " ON CONFLICT (tenant) DO UPDATE SET plan = coalesce($2, t.plan)"
                                 " RETURNING (xmax = 0), plan",
                                 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        struct fm_err err;
        db_err_from(&err, conn, res, "adding the tenant");
        fprintf(stderr, "faasbill tenant: %s\n", err.msg);
        PQclear(res);
        return 1;
    }
    bool created = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    printf("tenant %s %s with plan %s\n", name,
           created ? "added" : plan ? "updated" : "exists already", PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

static int tenant_list(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT tenant, plan FROM tenants ORDER BY tenant");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        struct fm_err err;
        db_err_from(&err, conn, res, "listing tenants");
        fprintf(stderr, "faasbill tenant: %s\n", err.msg);
        PQclear(res);
        return 1;
    }
    printf("%-32s %s\n", "TENANT", "PLAN");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-32s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    return 0;
}

static void tenant_help(const char *cmd)
{
    (void)cmd;
    fputs("usage: faasbill tenant add NAME [--plan ID] [--catalog DIR] [--db CONNINFO]\n"
          "       faasbill tenant list [--db CONNINFO]\n"
          "add creates the tenant with --plan, by default " DEFAULT_PLAN ", or gives an\n"
          "existing one --plan (without it, its plan stays as it is). The plan must be in\n"
          "the catalog (--catalog DIR, else $FAASMETER_CATALOG, else billing/catalog of the\n"
          "installation).\n",
          stdout);
}

int cli_tenant(int argc, char **argv)
{
    struct db_opts o = {0};
    int rc = parse_opts("tenant", argc, argv, &o, tenant_help, TAKES_PLAN | TAKES_CATALOG);
    if (rc >= 0)
        return rc;
    const char *verb = o.nwords > 0 ? o.words[0] : "";
    bool add = strcmp(verb, "add") == 0 && o.nwords == 2;
    bool list = strcmp(verb, "list") == 0 && o.nwords == 1;
    if (!add && !list) {
        fprintf(stderr, "faasbill tenant: expected 'add NAME' or 'list' (try --help)\n");
        return 2;
    }
    if (list && (o.plan || o.catalog)) {
        fprintf(stderr, "faasbill tenant: --%s is an option of 'add', not 'list'\n",
                o.plan ? "plan" : "catalog");
        return 2;
    }
    const char *plan = o.plan; /* NULL: the default for a new tenant, else unchanged */
    if (add) {
        if (!fm_name_ok(o.words[1], false)) {
            fprintf(stderr, "faasbill tenant: NAME: expected " FM_TENANT_RULE ", got "
                            "'%s'\n",
                    o.words[1]);
            return 2;
        }
        if ((rc = check_plan(o.catalog, plan ? plan : DEFAULT_PLAN)) != 0)
            return rc;
    }
    PGconn *conn = NULL;
    if ((rc = cli_connect("tenant", o.db, &conn)) != 0)
        return rc;
    rc = add ? tenant_add(conn, o.words[1], plan) : tenant_list(conn);
    PQfinish(conn);
    return rc;
}

static void key_help(const char *cmd)
{
    (void)cmd;
    fputs("usage: faasbill key create --role admin|ingest|tenant [--tenant NAME] [--db CONNINFO]\n"
          "Creates an API key for meterd and prints it alone on the last line. The key is\n"
          "shown only now: the database keeps its SHA-256 only. A tenant key needs --tenant.\n",
          stdout);
}

int cli_key(int argc, char **argv)
{
    struct db_opts o = {0};
    int rc = parse_opts("key", argc, argv, &o, key_help, TAKES_ROLE | TAKES_TENANT);
    if (rc >= 0)
        return rc;
    if (o.nwords == 0 || strcmp(o.words[0], "create") != 0) {
        fprintf(stderr, "faasbill key: expected 'create' (try faasbill key --help)\n");
        return 2;
    }
    if (o.nwords > 1) {
        fprintf(stderr, "faasbill key: '%s': unexpected argument (try faasbill key --help)\n",
                o.words[1]);
        return 2;
    }
    if (o.role == NULL || (strcmp(o.role, "admin") != 0 && strcmp(o.role, "ingest") != 0 &&
                           strcmp(o.role, "tenant") != 0)) {
        fprintf(stderr, "faasbill key: --role: expected admin, ingest or tenant\n");
        return 2;
    }
    bool tenant_role = strcmp(o.role, "tenant") == 0;
    if (tenant_role != (o.tenant != NULL)) {
        fprintf(stderr, "faasbill key: --tenant: %s\n",
                tenant_role ? "required with --role tenant" : "only for --role tenant");
        return 2;
    }
    if (o.tenant && (rc = cli_check_tenant("key", o.tenant)) != 0)
        return rc;
    char key[APIKEY_LEN + 1];
    char id[APIKEY_ID_LEN + 1];
    unsigned char hash[APIKEY_HASH_LEN];
    if (apikey_generate(key) != 0 || !apikey_id(key, id)) {
        fprintf(stderr, "faasbill key: no randomness from the kernel\n");
        return 1;
    }
    apikey_hash(key, hash);
    PGconn *conn = NULL;
    if ((rc = cli_connect("key", o.db, &conn)) != 0)
        return rc;
    const char *params[4] = {id, (const char *)hash, o.role, o.tenant};
    const int lengths[4] = {0, APIKEY_HASH_LEN, 0, 0};
    const int formats[4] = {0, 1, 0, 0};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO api_keys (key_id, key_hash, role, tenant)"
                                 " SELECT $1, $2, $3, $4"
                                 " WHERE $4::text IS NULL"
                                 "    OR EXISTS (SELECT 1 FROM tenants WHERE tenant = $4)",
                                 4, NULL, params, lengths, formats, 0);
    rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        struct fm_err err;
        db_err_from(&err, conn, res, "storing the key");
        fprintf(stderr, "faasbill key: %s\n", err.msg);
        rc = 1;
    } else if (strcmp(PQcmdTuples(res), "1") != 0) {
        fprintf(stderr, "faasbill key: --tenant: no tenant '%s' (faasbill tenant add)\n",
                o.tenant);
        rc = 2;
    } else {
        printf("%s key created%s%s; it is shown only once:\n%s\n", o.role,
               o.tenant ? " for tenant " : "", o.tenant ? o.tenant : "", key);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
