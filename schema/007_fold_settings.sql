-- Settings of the statements that fold, rate and store batches.
--
-- JIT compilation pays off for long analytic queries, but the batch statements run
-- thousands of times for a few thousand rows each, and the planner cannot know their
-- sizes (fresh temporary tables have no statistics): it would compile code for every
-- fold, which costs far more than the fold itself. Rating sorts a row per invocation and
-- plan: memory enough to sort in memory, not on disk.
ALTER FUNCTION usage_fold() SET jit = off;
ALTER FUNCTION usage_fold() SET work_mem = '64MB';
ALTER FUNCTION ingest_staged() SET jit = off;
ALTER FUNCTION ingest_direct_prepare(text[], timestamptz[], text[], text[]) SET jit = off;
ALTER FUNCTION plan_register(text, bigint, bigint, boolean, text, integer, integer, integer, jsonb)
    SET jit = off;
ALTER FUNCTION close_orphans(interval, text, integer) SET jit = off;
