/* faasbill: prices usage, manages tenants and keys, builds invoices and reports. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "billing/catalog.h"
#include "billing/cli.h"
#include "common/cli.h"
#include "common/db.h"
#include "common/names.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"quote", cli_quote, "price a uniform workload under a plan (no database)"},
    {"plans", cli_plans, "list the plan catalog"},
    {"servers", cli_servers, "list the server catalog"},
    {"migrate", cli_migrate, "apply the schema migrations to the database"},
    {"tenant", cli_tenant, "add or list tenants and their plans"},
    {"key", cli_key, "create API keys for meterd"},
    {"invoice", cli_invoice, "build, store and print a tenant's invoice for a month"},
    {"compare", cli_compare, "a tenant's month: pay-per-use against flat server fees"},
    {"report", cli_report, "every tenant's comparison as one HTML page"},
    {"simulate", cli_simulate, "price a described or replayed workload, storing nothing"},
};

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "faasbill %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_check_tenant(const char *cmd, const char *name)
{
    if (fm_name_ok(name, false))
        return 0;
    cli_error(cmd, "--tenant: expected a tenant name " FM_TENANT_RULE ", got '%s'", name);
    return 2;
}

int cli_load_catalog(const char *cmd, const char *dir, struct bill_catalog **out)
{
    struct fm_err err = {{0}};
    if (dir != NULL && *dir == '\0') {
        cli_error(cmd, "--catalog: empty; give the catalog folder (with plans/ and servers/)");
        return 2;
    }
    enum bill_status st = bill_catalog_load(dir, out, &err);
    if (st == BILL_OK)
        return 0;
    /* A folder named on the command line is the user's input; the default one is the
     * installation's, and running out of memory is nobody's input. */
    cli_error(cmd, "%s: %s", dir ? "--catalog" : "catalog", err.msg);
    return dir != NULL && st != BILL_ENOMEM ? 2 : 1;
}

int cli_connect(const char *cmd, const char *db, PGconn **out)
{
    struct fm_err err;
    const char *conninfo = db_conninfo_checked(db, &err);
    if (conninfo == NULL) {
        cli_error(cmd, "%s", err.msg);
        return 2;
    }
    if ((*out = db_connect(conninfo, &err)) == NULL) {
        cli_error(cmd, "%s", err.msg);
        return 1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: faasbill COMMAND [OPTIONS]   (faasbill COMMAND --help for more)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nThe database is --db CONNINFO, else $FAASMETER_DB, else libpq's defaults.\n"
                 "Catalogs are read from $FAASMETER_CATALOG, else billing/catalog/ of the "
                 "installation.\n");
}

int main(int argc, char **argv)
{
    if (fm_cli_std_fds() != 0)
        return 1;
    if (argc < 2) {
        fprintf(stderr, "faasbill: missing command (try faasbill --help)\n");
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "faasbill: unknown command '%s' (try faasbill --help)\n", argv[1]);
    return 2;
}
