#ifndef RT_MANIFEST_H
#define RT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/names.h"
#include "runtime/exec.h"
#include "runtime/status.h"


enum rt_mode { RT_MODE_EXEC, RT_MODE_WARM };

/* One function of the manifest. Plain data, owned by its manifest. */
struct rt_function {
    char tenant[FM_TENANT_MAX + 1];
    char name[FM_FUNCTION_MAX + 1];
    char **argv;       /* NULL-terminated; argv[0] is an absolute or cwd-relative path */
    enum rt_mode mode; /* default exec */
    int memory_mb;     /* 1-10240, default 128 */
    int64_t timeout_ms; /* 1-900000, default 3000 */
    int concurrency;   /* 1-1000, default 1: invocations (and warm workers) at once */
    int64_t keep_alive_ms; /* warm: idle time before a worker is stopped, default 300000 */
    char **env;        /* NULL-terminated "KEY=VALUE" strings from the manifest's env */
    struct rt_user user; /* "user": the system user its processes run as; unset: faasrun's */
};

struct rt_pipeline {
    char tenant[FM_TENANT_MAX + 1];
    char name[FM_FUNCTION_MAX + 1];
    const struct rt_function **steps; /* borrowed from the same manifest */
    size_t nsteps;
};

struct rt_manifest {
    struct rt_function *functions;
    size_t nfunctions;
    struct rt_pipeline *pipelines;
    size_t npipelines;
};

/**
 * Read and validate a manifest file. A command[0] that is not absolute resolves against the
 * folder holding the manifest (never against PATH, so what runs does not depend on who
 * starts the runtime).
 *
 * @param out  on RT_OK the manifest (caller frees with rt_manifest_free); untouched on error
 * @param err  optional; "PATH: functions[2].memory_mb: expected an integer 1-10240" and alike
 * @return RT_OK; RT_EINVAL when it is not valid, or when path names no readable file (not
 *         there, a folder, no permission); RT_EIO when reading it failed otherwise; RT_ENOMEM
 */
enum rt_status rt_manifest_load(const char *path, struct rt_manifest **out, struct fm_err *err);

/**
 * Validate manifest text. label prefixes every message; base_dir is where relative commands
 * resolve. Same contract as rt_manifest_load otherwise.
 */
enum rt_status rt_manifest_parse(const char *text, const char *label, const char *base_dir,
                                 struct rt_manifest **out, struct fm_err *err);

/** The function tenant/name, or NULL. The result is borrowed from m. */
const struct rt_function *rt_manifest_find(const struct rt_manifest *m, const char *tenant,
                                           const char *name);

/** The pipeline tenant/name, or NULL. The result is borrowed from m. */
const struct rt_pipeline *rt_manifest_find_pipeline(const struct rt_manifest *m,
                                                    const char *tenant, const char *name);

/** Free a manifest; NULL is a no-op. */
void rt_manifest_free(struct rt_manifest *m);

#endif
