-- Rollups for the comparison and the every-tenant report.
--
-- usage_hourly keeps a row per tenant, function, hour and memory size: for 1,000 tenants a
-- month is millions of rows, and the report needs from it only per-function totals for the
-- month and per-tenant sums for each hour (the busiest hour, the usage over time). The two
-- tables below hold exactly those sums, kept by usage_fold() in the same pass as the other
-- rollups, so a report reads some thousand rows per tenant instead of the hourly detail.

-- A tenant's usage per hour, all functions and memory sizes together. mb_us is
-- Σ memory_mb × duration_us per invocation: numeric, because one valid invocation
-- (10,240 MB for 2^53 µs) already exceeds 64 bits, and the fold must not fail on valid data.
CREATE TABLE usage_tenant_hourly (
    tenant      text NOT NULL,
    hour        timestamptz NOT NULL,
    invocations bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    cold_starts bigint NOT NULL DEFAULT 0,
    duration_us bigint NOT NULL DEFAULT 0,
    mb_us       numeric NOT NULL DEFAULT 0,
    cpu_us      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, hour)
);

-- A tenant's month per function, all memory sizes together. mb_invocations is Σ memory_mb
-- per invocation, so that mb_invocations / invocations is the mean configured memory.
CREATE TABLE usage_monthly (
    tenant         text NOT NULL,
    month          timestamptz NOT NULL,
    function       text NOT NULL,
    invocations    bigint NOT NULL DEFAULT 0,
    errors         bigint NOT NULL DEFAULT 0,
    cold_starts    bigint NOT NULL DEFAULT 0,
    duration_us    bigint NOT NULL DEFAULT 0,
    init_us        bigint NOT NULL DEFAULT 0,
    mb_invocations bigint NOT NULL DEFAULT 0,
    cpu_us         bigint NOT NULL DEFAULT 0,
    bytes_in       bigint NOT NULL DEFAULT 0,
    bytes_out      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, month, function)
);

-- The usage folded so far, from usage_hourly; what is still pending in usage_delta reaches
-- the new tables through the new usage_fold(). A fold that is running commits before the
-- backfill reads, so that none of its deltas is counted twice or missed.
SELECT pg_advisory_xact_lock(hashtext('faasmeter.fold'));

INSERT INTO usage_tenant_hourly (tenant, hour, invocations, errors, cold_starts, duration_us,
                                 mb_us, cpu_us)
SELECT tenant, hour, sum(invocations), sum(errors), sum(cold_starts), sum(duration_us),
       sum(memory_mb::numeric * duration_us), sum(cpu_us)
  FROM usage_hourly
 GROUP BY tenant, hour;

INSERT INTO usage_monthly (tenant, month, function, invocations, errors, cold_starts,
                           duration_us, init_us, mb_invocations, cpu_us, bytes_in, bytes_out)
SELECT tenant, date_trunc('month', hour, 'UTC'), function, sum(invocations), sum(errors),
       sum(cold_starts), sum(duration_us), sum(init_us), sum(memory_mb::bigint * invocations),
       sum(cpu_us), sum(bytes_in), sum(bytes_out)
  FROM usage_hourly
 GROUP BY 1, 2, 3;

-- 003's fold, keeping the two tables above as well.
CREATE OR REPLACE FUNCTION usage_fold() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    -- Readers fold before every read: make the common case, nothing pending, cheap.
    IF NOT EXISTS (SELECT 1 FROM usage_delta) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('faasmeter.fold'));
    CREATE TEMP TABLE IF NOT EXISTS fold_batch (LIKE usage_delta) ON COMMIT DELETE ROWS;
    TRUNCATE fold_batch;
    WITH d AS (DELETE FROM usage_delta RETURNING *)
    INSERT INTO fold_batch SELECT * FROM d;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO usage_hourly AS u (tenant, function, hour, memory_mb, invocations, errors,
                                   cold_starts, duration_us, init_us, cpu_us, bytes_in,
                                   bytes_out)
    SELECT d.tenant, d.function, date_trunc('hour', d.started_at, 'UTC'), d.memory_mb,
           sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE NOT d.ok), 0),
           coalesce(sum(d.sign) FILTER (WHERE d.cold_start), 0), sum(d.sign * d.duration_us),
           sum(d.sign * d.init_us), sum(d.sign * d.cpu_us), sum(d.sign * d.bytes_in),
           sum(d.sign * d.bytes_out)
      FROM fold_batch d
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
        bytes_out   = u.bytes_out + excluded.bytes_out;

    INSERT INTO usage_tenant_hourly AS u (tenant, hour, invocations, errors, cold_starts,
                                          duration_us, mb_us, cpu_us)
    SELECT d.tenant, date_trunc('hour', d.started_at, 'UTC'), sum(d.sign),
           coalesce(sum(d.sign) FILTER (WHERE NOT d.ok), 0),
           coalesce(sum(d.sign) FILTER (WHERE d.cold_start), 0), sum(d.sign * d.duration_us),
           sum(d.sign * d.memory_mb * d.duration_us::numeric), sum(d.sign * d.cpu_us)
      FROM fold_batch d
     GROUP BY 1, 2
     ORDER BY 1, 2
    ON CONFLICT (tenant, hour) DO UPDATE SET
        invocations = u.invocations + excluded.invocations,
        errors      = u.errors + excluded.errors,
        cold_starts = u.cold_starts + excluded.cold_starts,
        duration_us = u.duration_us + excluded.duration_us,
        mb_us       = u.mb_us + excluded.mb_us,
        cpu_us      = u.cpu_us + excluded.cpu_us;

    INSERT INTO usage_monthly AS u (tenant, month, function, invocations, errors, cold_starts,
                                    duration_us, init_us, mb_invocations, cpu_us, bytes_in,
                                    bytes_out)
    SELECT d.tenant, date_trunc('month', d.started_at, 'UTC'), d.function, sum(d.sign),
           coalesce(sum(d.sign) FILTER (WHERE NOT d.ok), 0),
           coalesce(sum(d.sign) FILTER (WHERE d.cold_start), 0), sum(d.sign * d.duration_us),
           sum(d.sign * d.init_us), sum(d.sign * d.memory_mb), sum(d.sign * d.cpu_us),
           sum(d.sign * d.bytes_in), sum(d.sign * d.bytes_out)
      FROM fold_batch d
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
        bytes_out      = u.bytes_out + excluded.bytes_out;

    INSERT INTO usage_rated AS u (tenant, month, plan, function, invocations, billed_ms,
                                  mb_ms, mhz_ms, cpu_us, egress_bytes)
    SELECT d.tenant, date_trunc('month', d.started_at, 'UTC'), p.plan, d.function,
           sum(d.sign), sum(d.sign * q.ms), sum(d.sign * q.ms * q.mb),
           sum(d.sign * q.ms * coalesce(c.mhz, 0)), sum(d.sign * d.cpu_us),
           sum(d.sign * d.bytes_out)
      FROM fold_batch d CROSS JOIN plans p CROSS JOIN
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
        egress_bytes = u.egress_bytes + excluded.egress_bytes;
    RETURN n;
END $$;
