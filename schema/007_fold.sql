-- Settings and shape of the statements that fold, rate and store batches.
--
-- JIT compilation pays off for long analytic queries, but the batch statements run
-- thousands of times for a few thousand rows each, and the planner cannot know their
-- sizes: it would compile code for every fold, which costs far more than the fold itself.
-- Rating sorts or hashes a row per invocation and plan: memory enough to do it in memory.

-- The fold of 003 in one statement: the pending deltas are taken once and read by the four
-- rollups, instead of being copied to a temporary table first and scanned four times.
-- Folds take turns on the advisory lock, and no other statement updates rollup rows
-- (plan_register holds the same lock), so the rollups' key order keeps them deadlock-free.
CREATE OR REPLACE FUNCTION usage_fold() RETURNS bigint
LANGUAGE plpgsql
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    n bigint;
BEGIN
    -- Readers fold before every read: make the common case, nothing pending, cheap.
    IF NOT EXISTS (SELECT 1 FROM usage_delta) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('faasmeter.fold'));
    WITH d AS (DELETE FROM usage_delta RETURNING *),
    hourly AS (
        INSERT INTO usage_hourly AS u (tenant, function, hour, memory_mb, invocations, errors,
                                       cold_starts, duration_us, init_us, cpu_us, bytes_in,
                                       bytes_out)
        SELECT d.tenant, d.function, date_trunc('hour', d.started_at, 'UTC'), d.memory_mb,
               sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE NOT d.ok), 0),
               coalesce(sum(d.sign) FILTER (WHERE d.cold_start), 0), sum(d.sign * d.duration_us),
               sum(d.sign * d.init_us), sum(d.sign * d.cpu_us), sum(d.sign * d.bytes_in),
               sum(d.sign * d.bytes_out)
          FROM d
         GROUP BY 1, 2, 3, 4
         ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant, function, hour, memory_mb) DO UPDATE SET
            invocations = u.invocations + excluded.invocations,
            errors      = u.errors + excluded.errors,
            cold_starts = u.cold_starts + excluded.cold_starts,
            duration_us = u.duration_us + excluded.duration_us,
            init_us     = u.init_us + excluded.init_us,
            cpu_us      = u.cpu_us + excluded.cpu_us,
            bytes_in    = u.bytes_in + excluded.bytes_in,
            bytes_out   = u.bytes_out + excluded.bytes_out),
    tenant_hourly AS (
        INSERT INTO usage_tenant_hourly AS u (tenant, hour, invocations, errors, cold_starts,
                                              duration_us, mb_us, cpu_us)
        SELECT d.tenant, date_trunc('hour', d.started_at, 'UTC'), sum(d.sign),
               coalesce(sum(d.sign) FILTER (WHERE NOT d.ok), 0),
               coalesce(sum(d.sign) FILTER (WHERE d.cold_start), 0), sum(d.sign * d.duration_us),
               sum(d.sign * d.memory_mb * d.duration_us::numeric), sum(d.sign * d.cpu_us)
          FROM d
         GROUP BY 1, 2
         ORDER BY 1, 2
        ON CONFLICT (tenant, hour) DO UPDATE SET
            invocations = u.invocations + excluded.invocations,
            errors      = u.errors + excluded.errors,
            cold_starts = u.cold_starts + excluded.cold_starts,
            duration_us = u.duration_us + excluded.duration_us,
            mb_us       = u.mb_us + excluded.mb_us,
            cpu_us      = u.cpu_us + excluded.cpu_us),
    monthly AS (
        INSERT INTO usage_monthly AS u (tenant, month, function, invocations, errors, cold_starts,
                                        duration_us, init_us, mb_invocations, cpu_us, bytes_in,
                                        bytes_out)
        SELECT d.tenant, date_trunc('month', d.started_at, 'UTC'), d.function, sum(d.sign),
               coalesce(sum(d.sign) FILTER (WHERE NOT d.ok), 0),
               coalesce(sum(d.sign) FILTER (WHERE d.cold_start), 0), sum(d.sign * d.duration_us),
               sum(d.sign * d.init_us), sum(d.sign * d.memory_mb), sum(d.sign * d.cpu_us),
               sum(d.sign * d.bytes_in), sum(d.sign * d.bytes_out)
          FROM d
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3
        ON CONFLICT (tenant, month, function) DO UPDATE SET
            invocations    = u.invocations + excluded.invocations,
            errors         = u.errors + excluded.errors,
            cold_starts    = u.cold_starts + excluded.cold_starts,
            duration_us    = u.duration_us + excluded.duration_us,
            init_us        = u.init_us + excluded.init_us,
            mb_invocations = u.mb_invocations + excluded.mb_invocations,
            cpu_us         = u.cpu_us + excluded.cpu_us,
            bytes_in       = u.bytes_in + excluded.bytes_in,
            bytes_out      = u.bytes_out + excluded.bytes_out),
    rated AS (
        INSERT INTO usage_rated AS u (tenant, month, plan, function, invocations, billed_ms,
                                      mb_ms, mhz_ms, cpu_us, egress_bytes)
        SELECT d.tenant, date_trunc('month', d.started_at, 'UTC'), p.plan, d.function,
               sum(d.sign), sum(d.sign * q.ms), sum(d.sign * q.ms * q.mb),
               sum(d.sign * q.ms * coalesce(c.mhz, 0)), sum(d.sign * d.cpu_us),
               sum(d.sign * d.bytes_out)
          FROM d CROSS JOIN plans p CROSS JOIN
               LATERAL (SELECT plan_billed_ms(p, d.duration_us, d.init_us) AS ms,
                               plan_billed_mb(p, d.memory_mb, d.max_rss_kb) AS mb) q
               LEFT JOIN plan_clock c ON c.plan = p.plan AND c.mb = q.mb
         GROUP BY 1, 2, 3, 4
         ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant, month, plan, function) DO UPDATE SET
            invocations  = u.invocations + excluded.invocations,
            billed_ms    = u.billed_ms + excluded.billed_ms,
            mb_ms        = u.mb_ms + excluded.mb_ms,
            mhz_ms       = u.mhz_ms + excluded.mhz_ms,
            cpu_us       = u.cpu_us + excluded.cpu_us,
            egress_bytes = u.egress_bytes + excluded.egress_bytes)
    SELECT count(*) INTO n FROM d;
    RETURN n;
END $$;


ALTER FUNCTION ingest_staged() SET jit = off;
ALTER FUNCTION ingest_direct_prepare(timestamptz[], text[], text[]) SET jit = off;
ALTER FUNCTION plan_register(text, bigint, bigint, boolean, text, integer, integer, integer, jsonb)
    SET jit = off;
ALTER FUNCTION close_orphans(interval, text, integer) SET jit = off;
