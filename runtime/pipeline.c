#include "runtime/pipeline.h"

#include <string.h>

#include "runtime/record.h"

enum rt_status rt_pipeline_run(const struct rt_pipeline *pl, struct rt_spool *spool,
                               const struct rt_invoke_opts *opts, const void *input,
                               size_t input_len, struct rt_pipeline_result *out,
                               struct fm_err *err)
{
    struct rt_pipeline_result res = {.failed_step = -1};
    if (rt_invocation_id(res.run_id) != 0) {
        fm_err_set(err, "no random bytes for a pipeline run id");
        return RT_EIO;
    }
    struct rt_invoke_opts step_opts = *opts;
    step_opts.correlation_id = res.run_id;
    const void *in = input;
    size_t in_len = input_len;
    enum rt_status st = RT_OK;
    for (size_t i = 0; i < pl->nsteps; i++) {
        const struct rt_function *fn = pl->steps[i];
        struct rt_invoke_result step = {0};
        if (i > 0)
            step_opts.trigger = "pipeline";
        st = rt_invoke(fn, spool, &step_opts, in, in_len, &step, err);
        if (st != RT_OK) {
            fm_err_prefix(err, "pipeline %s, step %zu (%s)", pl->name, i + 1, fn->name);
            res.failed_step = (int)i;
            break;
        }
        /* The previous step's output was this step's input and is done with now. */
        rt_exec_result_free(&res.last.run);
        res.last = step;
        res.steps_run++;
        res.duration_us += step.run.duration_us;
        res.cold_start = res.cold_start || step.cold_start;
        if (step.run.status != RT_RUN_OK) {
            res.failed_step = (int)i;
            break;
        }
        in = res.last.run.output;
        in_len = res.last.run.output_len;
    }
    if (st != RT_OK) {
        /* What ran is told all the same: its steps were metered under run_id. */
        rt_exec_result_free(&res.last.run);
        res.last = (struct rt_invoke_result){0};
    }
    *out = res;
    return st;
}
