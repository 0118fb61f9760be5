#ifndef RT_INVOKE_H
#define RT_INVOKE_H

#include <stddef.h>

#include "common/err.h"
#include "runtime/exec.h"
#include "runtime/manifest.h"
#include "runtime/record.h"
#include "runtime/spool.h"
#include "runtime/status.h"

struct rt_pool;

#define RT_SAMPLE_DEFAULT_MS 10000

struct rt_invoke_opts {
    const char *trigger;        /* "cli", "http", "pipeline", ... (static) */
    const char *correlation_id; /* optional */
    struct rt_pool *pool;       /* optional: concurrency limits and warm workers to reuse;
                                   without one a warm function gets a worker of its own */
    int64_t sample_every_ms;    /* resource records while it runs; 0: RT_SAMPLE_DEFAULT_MS */
};

struct rt_invoke_result {
    char invocation_id[RT_INVOCATION_ID_LEN + 1];
    bool cold_start;
    struct rt_exec_result run;  /* free with rt_exec_result_free */
};

/**
 * Run one metered invocation of fn: the start record is written to the spool before the
 * function starts, and the stop record after it; both are fsync'd (in one group sync)
 * before this returns RT_OK, so nothing runs unbilled and no answer goes out unrecorded. Long runs add a resource record every sample_every_ms. Warm
 * functions run on an idle worker of the pool (cold_start false, init_us 0) or a new one
 * (cold_start true, init_us its start-up). The caller must ignore SIGPIPE (see
 * rt_exec_run). Thread-safe with a shared spool and pool.
 *
 * @param out  on RT_OK the outcome (run.status says whether the function succeeded);
 *             untouched on error
 * @return RT_OK; RT_EBUSY when fn runs its "concurrency" invocations already (with a pool);
 *         RT_EFULL when the spool is over its cap (nothing ran); RT_EIO when a record could
 *         not be written (the function did not run when the start record failed; its output
 *         is withheld when the stop record failed); RT_ENOMEM
 */
enum rt_status rt_invoke(const struct rt_function *fn, struct rt_spool *spool,
                         const struct rt_invoke_opts *opts, const void *input, size_t input_len,
                         struct rt_invoke_result *out, struct fm_err *err);

#endif
