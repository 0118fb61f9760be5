#include "reports/cli_common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "billing/cli.h"

int cli_pick_servers(const char *cmd, const struct bill_catalog *cat, const char *const *ids,
                     size_t nids, const struct bill_server **out, size_t *n)
{
    size_t k = 0;
    if (nids == 0)
        for (; k < bill_catalog_server_count(cat) && k < CLI_MAX_SERVERS; k++)
            out[k] = bill_catalog_server_at(cat, k);
    for (size_t i = 0; i < nids && k < CLI_MAX_SERVERS; i++) {
        if ((out[k++] = bill_catalog_server(cat, ids[i])) == NULL) {
            cli_error(cmd, "--server: no server '%s' in the catalog (see faasbill servers)",
                      ids[i]);
            return 2;
        }
        /* Named twice, it would be sized, listed and charted twice. */
        for (size_t j = 0; j + 1 < k; j++)
            if (out[j] == out[k - 1]) {
                cli_error(cmd, "--server: '%s' given twice", ids[i]);
                return 2;
            }
    }
    *n = k;
    return 0;
}

int cli_check_server_currency(const char *cmd, const struct bill_server *const *servers,
                              size_t n, const struct bill_plan *plan, const char *whose)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(servers[i]->currency, bill_plan_currency(plan)) != 0) {
            cli_error(cmd, "--server: '%s' is priced in %s, %s plan %s in %s: amounts in two "
                           "currencies are not compared",
                      servers[i]->id, servers[i]->currency, whose, bill_plan_id(plan),
                      bill_plan_currency(plan));
            return 2;
        }
    return 0;
}

size_t cli_catalog_plans(const struct bill_catalog *cat, const struct bill_plan **out,
                         size_t max)
{
    size_t n = 0;
    for (; n < bill_catalog_plan_count(cat) && n < max; n++)
        out[n] = bill_catalog_plan_at(cat, n);
    return n;
}

int cli_write_output(const char *cmd, const struct fm_buf *buf, const char *path)
{
    bool to_stdout = path == NULL || strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (f == NULL) {
        cli_error(cmd, "-o: cannot write %s: %s", path, strerror(errno));
        return 1;
    }
    size_t wrote = fwrite(buf->data ? buf->data : "", 1, buf->len, f);
    int closed = to_stdout ? fflush(f) : fclose(f);
    if (wrote != buf->len || closed != 0) {
        cli_error(cmd, "-o: writing %s failed", to_stdout ? "standard output" : path);
        return 1;
    }
    return 0;
}

int cli_write_comparison(const char *cmd, const struct bill_comparison *cmp,
                         enum report_format fmt, const char *path)
{
    struct fm_buf out;
    fm_buf_init(&out, CLI_OUTPUT_MAX);
    int rc = 1;
    if (report_compare_render(cmp, fmt, &out) != 0 || out.failed)
        cli_error(cmd, "the comparison could not be rendered (larger than %u bytes?)",
                  CLI_OUTPUT_MAX);
    else
        rc = cli_write_output(cmd, &out, path);
    fm_buf_free(&out);
    return rc;
}

bool cli_check_output(const char *value, void *to)
{
    /* Told with the other usage errors, before the database is read, rather than as a
     * failed write after the work. */
    struct stat sb;
    if (value[0] == '\0' ||
        (strcmp(value, "-") != 0 && stat(value, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return false;
    *(const char **)to = value;
    return true;
}

bool cli_check_report_format(const char *value, void *to)
{
    return report_format_from_name(value, to) == 0;
}
