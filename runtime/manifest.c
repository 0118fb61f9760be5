#include "common/names.h"
#include "runtime/manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"

#define MANIFEST_MAX_BYTES (1024 * 1024)
#define MAX_ARGS 64
#define MAX_ARG_BYTES 4096
#define MAX_ENV 64
#define MAX_STEPS 16

/* Where in the document a message points: "functions[2]". */
struct where {
    const char *label;
    char entry[48];
};

static enum rt_status bad_top(struct fm_err *err, const char *label, const char *field,
                              const char *msg)
{
    fm_err_set(err, "%s: %s: %s", label, field, msg);
    return RT_EINVAL;
}

static enum rt_status bad(struct fm_err *err, const struct where *w, const char *field,
                          const char *msg)
{
    fm_err_set(err, "%s: %s.%s: %s", w->label, w->entry, field, msg);
    return RT_EINVAL;
}

static bool env_key_valid(const char *s)
{
    if (*s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* cJSON holds numbers as doubles: accept only exact integers within [lo, hi]. */
static bool int_field(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
        return false;
    *out = (int64_t)d;
    return true;
}

static bool is_one_of(const char *key, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(key, *names) == 0)
            return true;
    return false;
}

/* Typos in optional fields would silently fall back to defaults: refuse unknown fields. */
static enum rt_status check_fields(const cJSON *obj, const char *const *known,
                                   const struct where *w, struct fm_err *err)
{
    for (const cJSON *c = obj->child; c; c = c->next)
        if (!is_one_of(c->string, known))
            return bad(err, w, c->string, "unknown field");
    return RT_OK;
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static enum rt_status name_field(const cJSON *obj, const char *field, bool is_function,
                                 char *dst, size_t n, const struct where *w, struct fm_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsString(v) || !fm_name_ok(v->valuestring, is_function))
        return bad(err, w, field,
                   is_function ? "expected a name matching " FM_FUNCTION_RULE
                               : "expected a name matching " FM_TENANT_RULE);
    snprintf(dst, n, "%s", v->valuestring);
    return RT_OK;
}

static enum rt_status command_field(const cJSON *obj, const char *base_dir, char ***out,
                                    const struct where *w, struct fm_err *err)
{
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(obj, "command");
    int n = cJSON_GetArraySize(cmd);
    if (!cJSON_IsArray(cmd) || n < 1 || n > MAX_ARGS)
        return bad(err, w, "command", "expected an array of 1-64 strings");
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (argv == NULL)
        return RT_ENOMEM;
    enum rt_status st = RT_OK;
    int i = 0;
    for (const cJSON *a = cmd->child; a; a = a->next, i++) {
        char field[32];
        snprintf(field, sizeof field, "command[%d]", i);
        if (!cJSON_IsString(a) || strlen(a->valuestring) > MAX_ARG_BYTES ||
            (i == 0 && a->valuestring[0] == '\0')) {
            st = bad(err, w, field, i == 0 ? "expected a non-empty path"
                                           : "expected a string of at most 4096 bytes");
            goto out;
        }
        struct fm_buf b;
        fm_buf_init(&b, PATH_MAX);
        if (i == 0 && a->valuestring[0] != '/')
            fm_buf_printf(&b, "%s/", base_dir);
        fm_buf_puts(&b, a->valuestring);
        argv[i] = fm_buf_steal(&b);
        if (argv[i] == NULL) {
            st = bad(err, w, field, "path too long");
            goto out;
        }
    }
    *out = argv;
    argv = NULL;
out:
    free_strv(argv);
    return st;
}

static enum rt_status env_field(const cJSON *obj, char ***out, const struct where *w,
                                struct fm_err *err)
{
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(obj, "env");
    int n = env ? cJSON_GetArraySize(env) : 0;
    if (env && (!cJSON_IsObject(env) || n > MAX_ENV))
        return bad(err, w, "env", "expected an object of at most 64 string values");
    char **vars = calloc((size_t)n + 1, sizeof *vars);
    if (vars == NULL)
        return RT_ENOMEM;
    enum rt_status st = RT_OK;
    int i = 0;
    for (const cJSON *e = env ? env->child : NULL; e; e = e->next, i++) {
        char field[160];
        snprintf(field, sizeof field, "env.%.128s", e->string);
        if (!env_key_valid(e->string)) {
            st = bad(err, w, field, "expected a name matching [A-Za-z_][A-Za-z0-9_]*");
            goto out;
        }
        if (!cJSON_IsString(e) || strlen(e->valuestring) > MAX_ARG_BYTES) {
            st = bad(err, w, field, "expected a string of at most 4096 bytes");
            goto out;
        }
        struct fm_buf b;
        fm_buf_init(&b, 2 * MAX_ARG_BYTES);
        fm_buf_printf(&b, "%s=%s", e->string, e->valuestring);
        vars[i] = fm_buf_steal(&b);
        if (vars[i] == NULL) {
            st = RT_ENOMEM;
            goto out;
        }
    }
    *out = vars;
    vars = NULL;
out:
    free_strv(vars);
    return st;
}

/* "user": a user of this system. Only a runtime running as root can take on another. */
static enum rt_status user_field(const cJSON *obj, struct rt_user *out, const struct where *w,
                                 struct fm_err *err)
{
    *out = (struct rt_user){0};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "user");
    if (v == NULL)
        return RT_OK;
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return bad(err, w, "user", "expected the name of a user of this system");
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwnam_r(v->valuestring, &pw, buf, sizeof buf, &found) != 0 || found == NULL) {
        char msg[160];
        snprintf(msg, sizeof msg, "no user named '%.64s' on this system", v->valuestring);
        return bad(err, w, "user", msg);
    }
    if (geteuid() == 0) {
        *out = (struct rt_user){.set = true, .uid = pw.pw_uid, .gid = pw.pw_gid};
    } else if (pw.pw_uid != geteuid()) {
        return bad(err, w, "user", "running functions as another user needs faasrun to run "
                                   "as root");
    }
    return RT_OK;
}

static enum rt_status int_with_default(const cJSON *obj, const char *field, int64_t lo,
                                       int64_t hi, int64_t dflt, int64_t *out,
                                       const struct where *w, struct fm_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (v == NULL) {
        *out = dflt;
        return RT_OK;
    }
    if (!int_field(v, lo, hi, out)) {
        char msg[80];
        snprintf(msg, sizeof msg, "expected an integer %" PRId64 "-%" PRId64, lo, hi);
        return bad(err, w, field, msg);
    }
    return RT_OK;
}

/* What functions and pipelines share: an object of known fields, a tenant and a name. */
static enum rt_status parse_entry(const cJSON *obj, const char *const *known,
                                  char tenant[FM_TENANT_MAX + 1], char name[FM_FUNCTION_MAX + 1],
                                  const struct where *w, struct fm_err *err)
{
    if (!cJSON_IsObject(obj))
        return bad_top(err, w->label, w->entry, "expected an object");
    enum rt_status st = check_fields(obj, known, w, err);
    if (st == RT_OK)
        st = name_field(obj, "tenant", false, tenant, FM_TENANT_MAX + 1, w, err);
    if (st == RT_OK)
        st = name_field(obj, "name", true, name, FM_FUNCTION_MAX + 1, w, err);
    return st;
}

static enum rt_status parse_function(const cJSON *obj, const char *base_dir,
                                     struct rt_function *fn, const struct where *w,
                                     struct fm_err *err)
{
    static const char *const known[] = {"tenant", "name", "command", "mode", "memory_mb",
                                        "timeout_ms", "concurrency", "keep_alive_ms", "env",
                                        "user", NULL};
    enum rt_status st = parse_entry(obj, known, fn->tenant, fn->name, w, err);
    if (st == RT_OK)
        st = command_field(obj, base_dir, &fn->argv, w, err);
    if (st != RT_OK)
        return st;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(obj, "mode");
    if (mode == NULL || (cJSON_IsString(mode) && strcmp(mode->valuestring, "exec") == 0))
        fn->mode = RT_MODE_EXEC;
    else if (cJSON_IsString(mode) && strcmp(mode->valuestring, "warm") == 0)
        fn->mode = RT_MODE_WARM;
    else
        return bad(err, w, "mode", "expected \"exec\" or \"warm\"");
    int64_t mem = 0, timeout = 0, conc = 0, keep = 0;
    st = int_with_default(obj, "memory_mb", 1, 10240, 128, &mem, w, err);
    if (st == RT_OK)
        st = int_with_default(obj, "timeout_ms", 1, 900000, 3000, &timeout, w, err);
    if (st == RT_OK)
        st = int_with_default(obj, "concurrency", 1, 1000, 1, &conc, w, err);
    if (st == RT_OK)
        st = int_with_default(obj, "keep_alive_ms", 1, 3600000, 300000, &keep, w, err);
    if (st == RT_OK)
        st = env_field(obj, &fn->env, w, err);
    if (st == RT_OK)
        st = user_field(obj, &fn->user, w, err);
    if (st != RT_OK)
        return st;
    fn->memory_mb = (int)mem;
    fn->timeout_ms = timeout;
    fn->concurrency = (int)conc;
    fn->keep_alive_ms = keep;
    return RT_OK;
}

static const struct rt_function *find_in(const struct rt_function *fns, size_t n,
                                         const char *tenant, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fns[i].tenant, tenant) == 0 && strcmp(fns[i].name, name) == 0)
            return &fns[i];
    return NULL;
}

static enum rt_status parse_pipeline(const cJSON *obj, const struct rt_manifest *m,
                                     struct rt_pipeline *p, const struct where *w,
                                     struct fm_err *err)
{
    static const char *const known[] = {"tenant", "name", "steps", NULL};
    enum rt_status st = parse_entry(obj, known, p->tenant, p->name, w, err);
    if (st != RT_OK)
        return st;
    /* One namespace per tenant: an HTTP trigger addresses both by name. */
    if (find_in(m->functions, m->nfunctions, p->tenant, p->name))
        return bad(err, w, "name", "a function of this tenant has the same name");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(obj, "steps");
    int n = cJSON_GetArraySize(steps);
    if (!cJSON_IsArray(steps) || n < 1 || n > MAX_STEPS)
        return bad(err, w, "steps", "expected an array of 1-16 function names");
    p->steps = calloc((size_t)n, sizeof *p->steps);
    if (p->steps == NULL)
        return RT_ENOMEM;
    for (const cJSON *s = steps->child; s; s = s->next) {
        char field[32];
        snprintf(field, sizeof field, "steps[%zu]", p->nsteps);
        const struct rt_function *fn =
            cJSON_IsString(s) ? find_in(m->functions, m->nfunctions, p->tenant, s->valuestring)
                              : NULL;
        if (fn == NULL)
            return bad(err, w, field, "expected the name of a function of the same tenant");
        p->steps[p->nsteps++] = fn;
    }
    return RT_OK;
}

static enum rt_status parse_all(const cJSON *root, const char *label, const char *base_dir,
                                struct rt_manifest *m, struct fm_err *err)
{
    if (!cJSON_IsObject(root))
        return bad_top(err, label, "manifest", "expected a JSON object");
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "functions") != 0 && strcmp(c->string, "pipelines") != 0)
            return bad_top(err, label, c->string, "unknown field");
    const cJSON *fns = cJSON_GetObjectItemCaseSensitive(root, "functions");
    const cJSON *pls = cJSON_GetObjectItemCaseSensitive(root, "pipelines");
    if (!cJSON_IsArray(fns))
        return bad_top(err, label, "functions", "expected an array");
    if (pls && !cJSON_IsArray(pls))
        return bad_top(err, label, "pipelines", "expected an array");
    m->functions = calloc((size_t)cJSON_GetArraySize(fns) + 1, sizeof *m->functions);
    m->pipelines = calloc((size_t)cJSON_GetArraySize(pls) + 1, sizeof *m->pipelines);
    if (m->functions == NULL || m->pipelines == NULL)
        return RT_ENOMEM;
    struct where w = {.label = label};
    for (const cJSON *f = fns->child; f; f = f->next) {
        snprintf(w.entry, sizeof w.entry, "functions[%zu]", m->nfunctions);
        struct rt_function *fn = &m->functions[m->nfunctions++];
        enum rt_status st = parse_function(f, base_dir, fn, &w, err);
        if (st != RT_OK)
            return st;
        if (find_in(m->functions, m->nfunctions - 1, fn->tenant, fn->name))
            return bad(err, &w, "name", "duplicate function of this tenant");
    }
    for (const cJSON *p = pls ? pls->child : NULL; p; p = p->next) {
        snprintf(w.entry, sizeof w.entry, "pipelines[%zu]", m->npipelines);
        struct rt_pipeline *pl = &m->pipelines[m->npipelines++];
        enum rt_status st = parse_pipeline(p, m, pl, &w, err);
        if (st != RT_OK)
            return st;
        for (size_t i = 0; i + 1 < m->npipelines; i++)
            if (strcmp(m->pipelines[i].tenant, pl->tenant) == 0 &&
                strcmp(m->pipelines[i].name, pl->name) == 0)
                return bad(err, &w, "name", "duplicate pipeline of this tenant");
    }
    return RT_OK;
}

/*
 * cJSON ends a string at a \u0000 escape and keeps what came before, so {"A": "x\u0000y"}
 * would set A=x without a word. Each such escape is parsed as \uDBFF\uDFFF instead, a
 * character (U+10FFFF) that check_tree then finds and refuses with the field it is in.
 */
#define NUL_ESCAPE "\\u0000"
#define NUL_STAND_IN "\\uDBFF\\uDFFF"
#define NUL_STAND_IN_UTF8 "\xF4\x8F\xBF\xBF"

/* text with every \u0000 escape replaced, or NULL when there is none (*nomem on failure). */
static char *replace_nul_escapes(const char *text, bool *nomem)
{
    size_t n = 0, len = strlen(text);
    /* An escape is a backslash and the character after it: in \\u0000 the second
     * backslash is the one escaped, and u0000 is text. */
    for (const char *p = text; (p = strchr(p, '\\')) != NULL && p[1]; p += 2)
        n += strncmp(p, NUL_ESCAPE, 6) == 0;
    if (n == 0)
        return NULL;
    char *copy = malloc(len + n * (sizeof NUL_STAND_IN - sizeof NUL_ESCAPE) + 1);
    if (copy == NULL) {
        *nomem = true;
        return NULL;
    }
    char *w = copy;
    for (const char *p = text; *p;) {
        if (p[0] == '\\' && strncmp(p, NUL_ESCAPE, 6) == 0) {
            memcpy(w, NUL_STAND_IN, sizeof NUL_STAND_IN - 1);
            w += sizeof NUL_STAND_IN - 1;
            p += 6;
        } else if (p[0] == '\\' && p[1]) {
            *w++ = *p++;
            *w++ = *p++;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return copy;
}

/*
 * What the fields' own checks cannot see in the tree: a key given twice in one object
 * (cJSON keeps both, and a lookup finds the first) and a \u0000 in a string or a key
 * (with had_nul). path is where node is ("functions[0].env"), "" at the top.
 */
static enum rt_status check_tree(const cJSON *node, const char *path, bool had_nul,
                                 const char *label, struct fm_err *err)
{
    char where[512];
    if (cJSON_IsString(node) && had_nul && strstr(node->valuestring, NUL_STAND_IN_UTF8))
        return bad_top(err, label, path, "expected a string without \\u0000");
    const char *twice = NULL;
    if (fm_json_key_twice(node, &twice) != 0)
        return fm_err_set(err, "out of memory"), RT_ENOMEM;
    if (twice != NULL && !(had_nul && strstr(twice, NUL_STAND_IN_UTF8))) {
        snprintf(where, sizeof where, "%s%s%.128s", path, *path ? "." : "", twice);
        return bad_top(err, label, where, "duplicate key");
    }
    int i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        if (cJSON_IsObject(node)) {
            const char *key = c->string;
            const char *nul = had_nul ? strstr(key, NUL_STAND_IN_UTF8) : NULL;
            int shown = nul ? (int)(nul - key) : 128;
            snprintf(where, sizeof where, "%s%s%.*s", path, *path ? "." : "", shown, key);
            if (nul)
                return bad_top(err, label, where, "expected a key without \\u0000");
        } else {
            snprintf(where, sizeof where, "%s[%d]", path, i);
        }
        enum rt_status st = check_tree(c, where, had_nul, label, err);
        if (st != RT_OK)
            return st;
    }
    return RT_OK;
}

enum rt_status rt_manifest_parse(const char *text, const char *label, const char *base_dir,
                                 struct rt_manifest **out, struct fm_err *err)
{
    enum rt_status st = RT_OK;
    bool nomem = false;
    char *replaced = replace_nul_escapes(text, &nomem);
    const char *parsed = replaced ? replaced : text;
    struct rt_manifest *m = calloc(1, sizeof *m);
    cJSON *root = nomem ? NULL : fm_json_parse(parsed, strlen(parsed), NULL);
    if (m == NULL || nomem) {
        fm_err_set(err, "%s: out of memory", label);
        st = RT_ENOMEM;
        goto out;
    }
    if (root == NULL) {
        fm_err_set(err, "%s: not valid JSON", label);
        st = RT_EINVAL;
        goto out;
    }
    st = check_tree(root, "", replaced != NULL, label, err);
    if (st == RT_OK)
        st = parse_all(root, label, base_dir, m, err);
    if (st == RT_ENOMEM)
        fm_err_set(err, "%s: out of memory", label);
    if (st != RT_OK)
        goto out;
    *out = m;
    m = NULL;
out:
    cJSON_Delete(root);
    rt_manifest_free(m);
    free(replaced);
    return st;
}

static enum rt_status read_file(const char *path, char **out, struct fm_err *err)
{
    enum rt_status st = RT_OK;
    struct fm_buf b;
    fm_buf_init(&b, MANIFEST_MAX_BYTES);
    /* A file that is not there, not readable or a folder is a wrong name on the command
     * line (RT_EINVAL); only the runtime's own trouble is RT_EIO. */
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fm_err_set(err, "%s: %s", path, strerror(errno));
        st = errno == EMFILE || errno == ENFILE || errno == ENOMEM ? RT_EIO : RT_EINVAL;
        goto out;
    }
    char chunk[8192];
    size_t n;
    errno = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (fm_buf_append(&b, chunk, n) != 0)
            break;
    if (ferror(f) || b.failed) {
        bool folder = !b.failed && errno == EISDIR;
        fm_err_set(err, "%s: %s", path,
                   b.failed ? "larger than 1 MiB" : folder ? strerror(EISDIR) : "read error");
        st = b.failed || folder ? RT_EINVAL : RT_EIO;
        goto out;
    }
    /* A zero byte would end the text early: no valid JSON holds one. */
    if (b.data && memchr(b.data, '\0', b.len) != NULL) {
        fm_err_set(err, "%s: not valid JSON", path);
        st = RT_EINVAL;
        goto out;
    }
    *out = b.data ? fm_buf_steal(&b) : strdup("");
    if (*out == NULL)
        st = RT_ENOMEM;
out:
    if (f)
        fclose(f);
    fm_buf_free(&b);
    return st;
}

enum rt_status rt_manifest_load(const char *path, struct rt_manifest **out, struct fm_err *err)
{
    char *text = NULL;
    char *dir = NULL;
    enum rt_status st = read_file(path, &text, err);
    if (st != RT_OK)
        goto out;
    /* Resolve the folder now so commands stay valid whatever the process's cwd becomes. */
    const char *slash = strrchr(path, '/');
    char *raw = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    dir = raw ? realpath(raw, NULL) : NULL;
    free(raw);
    if (dir == NULL) {
        fm_err_set(err, "%s: cannot resolve its folder", path);
        st = RT_EIO;
        goto out;
    }
    st = rt_manifest_parse(text, path, dir, out, err);
out:
    free(text);
    free(dir);
    return st;
}

const struct rt_function *rt_manifest_find(const struct rt_manifest *m, const char *tenant,
                                           const char *name)
{
    return find_in(m->functions, m->nfunctions, tenant, name);
}

const struct rt_pipeline *rt_manifest_find_pipeline(const struct rt_manifest *m,
                                                    const char *tenant, const char *name)
{
    for (size_t i = 0; i < m->npipelines; i++)
        if (strcmp(m->pipelines[i].tenant, tenant) == 0 && strcmp(m->pipelines[i].name, name) == 0)
            return &m->pipelines[i];
    return NULL;
}

void rt_manifest_free(struct rt_manifest *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nfunctions; i++) {
        free_strv(m->functions[i].argv);
        free_strv(m->functions[i].env);
    }
    for (size_t i = 0; i < m->npipelines; i++)
        free(m->pipelines[i].steps);
    free(m->functions);
    free(m->pipelines);
    free(m);
}
