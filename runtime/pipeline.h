#ifndef RT_PIPELINE_H
#define RT_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "runtime/invoke.h"
#include "runtime/manifest.h"
#include "runtime/spool.h"
#include "runtime/status.h"

struct rt_pipeline_result {
    char run_id[RT_INVOCATION_ID_LEN + 1]; /* every step's correlation_id */
    size_t steps_run;
    int failed_step;       /* index of the step that failed, -1 when all succeeded */
    int64_t duration_us;   /* the steps' durations added up */
    bool cold_start;       /* whether any step was a cold start */
    struct rt_invoke_result last; /* the last step that ran: the output, or the failure */
};

/**
 * Run a pipeline: each step's output is the next step's input, each step its own metered
 * invocation (see rt_invoke) with the pipeline run's id as correlation_id. The first step
 * keeps the caller's trigger (the caller started it); later steps are triggered by
 * "pipeline". A step that does not succeed stops the run.
 *
 * @param out  on RT_OK the outcome (free out->last.run with rt_exec_result_free); on error,
 *             run_id, steps_run and failed_step (the step that could not run), last empty
 * @return RT_OK whenever every step that was due ran (see out->failed_step); otherwise what
 *         rt_invoke returned for the step that could not run, with err naming that step
 */
enum rt_status rt_pipeline_run(const struct rt_pipeline *pl, struct rt_spool *spool,
                               const struct rt_invoke_opts *opts, const void *input,
                               size_t input_len, struct rt_pipeline_result *out,
                               struct fm_err *err);

#endif
