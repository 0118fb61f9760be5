#include "billing/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/paths.h"

#define DIR_PATH_MAX 4096
#define MAX_FILES 1024

struct bill_catalog {
    struct bill_plan **plans; /* sorted by id */
    size_t nplans;
    struct bill_server *servers;
    size_t nservers;
};

int bill_catalog_dir(const char *dir, char *buf, size_t n)
{
    const char *env = getenv("FAASMETER_CATALOG");
    if (dir == NULL && env != NULL && *env != '\0')
        dir = env;
    if (dir == NULL)
        return fm_home_path("billing/catalog", buf, n);
    int len = snprintf(buf, n, "%s", dir);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}

/* Read a whole file of at most BILL_FILE_MAX bytes into a heap string (caller frees). */
static enum bill_status read_file(const char *path, const char *origin, char **text,
                                  size_t *len, struct fm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fm_err_set(err, "%s: %s", origin, strerror(errno));
        return BILL_EIO;
    }
    enum bill_status st = BILL_EIO;
    char *buf = NULL;
    struct stat sb;
    /* A folder opens for reading but reads as an error: say what it is. */
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fm_err_set(err, "%s: a folder, not a file", origin);
        goto done;
    }
    buf = malloc(BILL_FILE_MAX + 1);
    if (buf == NULL) {
        st = BILL_ENOMEM;
        fm_err_set(err, "out of memory");
        goto done;
    }
    size_t n = fread(buf, 1, BILL_FILE_MAX + 1, f);
    if (ferror(f)) {
        fm_err_set(err, "%s: %s", origin, strerror(errno));
        goto done;
    }
    if (n > BILL_FILE_MAX) {
        st = BILL_EINVAL;
        fm_err_set(err, "%s: larger than %d bytes", origin, BILL_FILE_MAX);
        goto done;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    st = BILL_OK;
done:
    free(buf);
    fclose(f);
    return st;
}

enum bill_status bill_plan_load_file(const char *path, struct bill_plan **out,
                                     struct fm_err *err)
{
    char *text = NULL;
    size_t len = 0;
    enum bill_status st = read_file(path, path, &text, &len, err);
    if (st == BILL_OK)
        st = bill_plan_parse(text, len, path, out, err);
    free(text);
    return st;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The *.json names in dir/sub, sorted (caller frees with free_names). */
static enum bill_status list_json(const char *dir, const char *sub, char ***out, size_t *count,
                                  struct fm_err *err)
{
    char path[DIR_PATH_MAX];
    int plen = snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (plen < 0 || (size_t)plen >= sizeof path) {
        fm_err_set(err, "%s: path too long", sub);
        return BILL_EINVAL;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        fm_err_set(err, "%s: %s", path, strerror(errno));
        return BILL_EIO;
    }
    enum bill_status st = BILL_ENOMEM;
    char **names = calloc(MAX_FILES, sizeof *names);
    size_t n = 0;
    struct dirent *e;
    while (names != NULL && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        if (n == MAX_FILES) {
            st = BILL_EINVAL;
            fm_err_set(err, "%s: more than %d files", path, MAX_FILES);
            goto done;
        }
        if ((names[n] = strdup(e->d_name)) == NULL)
            goto done;
        n++;
    }
    if (names == NULL)
        goto done;
    qsort(names, n, sizeof *names, cmp_name);
    *out = names;
    *count = n;
    names = NULL;
    st = BILL_OK;
done:
    if (st == BILL_ENOMEM)
        fm_err_set(err, "out of memory");
    free_names(names, n);
    closedir(d);
    return st;
}

/* Read dir/sub/name; origin receives "sub/name" for messages. */
static enum bill_status read_entry(const char *dir, const char *sub, const char *name,
                                   char origin[300], char **text, size_t *len,
                                   struct fm_err *err)
{
    char path[DIR_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    snprintf(origin, 300, "%s/%.256s", sub, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        fm_err_set(err, "%s: path too long", origin);
        return BILL_EINVAL;
    }
    return read_file(path, origin, text, len, err);
}

static int cmp_plan(const void *a, const void *b)
{
    return strcmp(bill_plan_id(*(struct bill_plan *const *)a),
                  bill_plan_id(*(struct bill_plan *const *)b));
}

static enum bill_status load_plans(const char *dir, struct bill_catalog *cat,
                                   struct fm_err *err)
{
    char **names = NULL;
    size_t n = 0;
    enum bill_status st = list_json(dir, "plans", &names, &n, err);
    if (st != BILL_OK)
        return st;
    cat->plans = calloc(n ? n : 1, sizeof *cat->plans);
    if (cat->plans == NULL) {
        st = BILL_ENOMEM;
        fm_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char origin[300];
        char *text = NULL;
        size_t len = 0;
        struct bill_plan *plan = NULL;
        st = read_entry(dir, "plans", names[i], origin, &text, &len, err);
        if (st == BILL_OK)
            st = bill_plan_parse(text, len, origin, &plan, err);
        free(text);
        if (st != BILL_OK)
            goto done;
        for (size_t j = 0; j < cat->nplans; j++)
            if (strcmp(bill_plan_id(cat->plans[j]), bill_plan_id(plan)) == 0) {
                fm_err_set(err, "%s: id: \"%s\" is defined already by plans/%s", origin,
                           bill_plan_id(plan), names[j]);
                bill_plan_free(plan);
                st = BILL_EINVAL;
                goto done;
            }
        cat->plans[cat->nplans++] = plan;
    }
    qsort(cat->plans, cat->nplans, sizeof *cat->plans, cmp_plan);
done:
    free_names(names, n);
    return st;
}

static enum bill_status load_servers(const char *dir, struct bill_catalog *cat,
                                     struct fm_err *err)
{
    char **names = NULL;
    size_t n = 0;
    enum bill_status st = list_json(dir, "servers", &names, &n, err);
    for (size_t i = 0; st == BILL_OK && i < n; i++) {
        char origin[300];
        char *text = NULL;
        size_t len = 0, got = 0;
        struct bill_server *servers = NULL;
        st = read_entry(dir, "servers", names[i], origin, &text, &len, err);
        if (st == BILL_OK)
            st = bill_servers_parse(text, len, origin, &servers, &got, err);
        free(text);
        if (st != BILL_OK)
            break;
        if (st == BILL_OK && cat->nservers + got > BILL_CATALOG_SERVERS_MAX) {
            fm_err_set(err, "%s: more than %d servers in the catalog", origin,
                       BILL_CATALOG_SERVERS_MAX);
            st = BILL_EINVAL;
        }
        for (size_t j = 0; j < got && st == BILL_OK; j++)
            if (bill_catalog_server(cat, servers[j].id) != NULL) {
                fm_err_set(err, "%s: id: \"%s\" is defined twice", origin, servers[j].id);
                st = BILL_EINVAL;
            }
        struct bill_server *all =
            st == BILL_OK ? realloc(cat->servers, (cat->nservers + got) * sizeof *all) : NULL;
        if (st == BILL_OK && all == NULL) {
            st = BILL_ENOMEM;
            fm_err_set(err, "out of memory");
        }
        if (st == BILL_OK) {
            /* The strings move into the catalog; only the array itself is freed here. */
            memcpy(all + cat->nservers, servers, got * sizeof *servers);
            cat->servers = all;
            cat->nservers += got;
            free(servers);
        } else {
            bill_servers_free(servers, got);
        }
    }
    free_names(names, n);
    return st;
}

enum bill_status bill_catalog_load(const char *dir, struct bill_catalog **out,
                                   struct fm_err *err)
{
    char root[DIR_PATH_MAX];
    if (bill_catalog_dir(dir, root, sizeof root) != 0) {
        fm_err_set(err, "catalog folder name too long");
        return BILL_EINVAL;
    }
    struct bill_catalog *cat = calloc(1, sizeof *cat);
    if (cat == NULL) {
        fm_err_set(err, "out of memory");
        return BILL_ENOMEM;
    }
    enum bill_status st = load_plans(root, cat, err);
    if (st == BILL_OK)
        st = load_servers(root, cat, err);
    if (st != BILL_OK) {
        bill_catalog_free(cat);
        return st;
    }
    *out = cat;
    return BILL_OK;
}

void bill_catalog_free(struct bill_catalog *cat)
{
    if (cat == NULL)
        return;
    for (size_t i = 0; i < cat->nplans; i++)
        bill_plan_free(cat->plans[i]);
    free(cat->plans);
    bill_servers_free(cat->servers, cat->nservers);
    free(cat);
}

const struct bill_plan *bill_catalog_plan(const struct bill_catalog *cat, const char *id)
{
    for (size_t i = 0; i < cat->nplans; i++)
        if (strcmp(bill_plan_id(cat->plans[i]), id) == 0)
            return cat->plans[i];
    return NULL;
}

size_t bill_catalog_plan_count(const struct bill_catalog *cat)
{
    return cat->nplans;
}

const struct bill_plan *bill_catalog_plan_at(const struct bill_catalog *cat, size_t i)
{
    return i < cat->nplans ? cat->plans[i] : NULL;
}

const struct bill_server *bill_catalog_server(const struct bill_catalog *cat, const char *id)
{
    for (size_t i = 0; i < cat->nservers; i++)
        if (strcmp(cat->servers[i].id, id) == 0)
            return &cat->servers[i];
    return NULL;
}

size_t bill_catalog_server_count(const struct bill_catalog *cat)
{
    return cat->nservers;
}

const struct bill_server *bill_catalog_server_at(const struct bill_catalog *cat, size_t i)
{
    return i < cat->nservers ? &cat->servers[i] : NULL;
}
