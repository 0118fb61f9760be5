-- Batched ingestion, and the rollups that usage queries and billing read.
--
-- meterd COPYs a batch of validated records into the session's staging table and calls
-- ingest_staged() once: set-based statements store each record exactly once and build the
-- rows of invocations seen for the first time in one pass. Records of invocations that
-- exist already (late or out-of-order arrivals) take the per-record path of 002
-- (invocation_apply), which gives the same result.
--
-- Rollups are not updated by each batch: every change to a finished invocation appends a
-- signed delta row (usage_delta, no index), and usage_fold() folds all pending deltas into
-- the rollups at once, so that thousands of invocations share one update
-- of each rollup row. meterd folds every second, and every reader folds before it reads.

-- The rounding rules of every catalog plan, copied here by `faasbill migrate` and meterd at
-- start, so that usage can be rated per invocation inside the database. A reference table
-- (few rows, read by every tenant), not distributed by tenant.
CREATE TABLE plans (
    plan         text PRIMARY KEY,
    step_ms      bigint NOT NULL CHECK (step_ms > 0),
    min_ms       bigint NOT NULL CHECK (min_ms >= 0),
    include_init boolean NOT NULL,
    basis        text NOT NULL CHECK (basis IN ('configured', 'observed')),
    step_mb      integer NOT NULL CHECK (step_mb > 0),
    min_mb       integer NOT NULL,
    max_mb       integer NOT NULL,
    ghz          jsonb NOT NULL DEFAULT '[]', -- [[memory_mb, mhz], ...]
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The CPU clock a plan ties to billed memory, for every memory size the plan can bill: the
-- smallest table entry at or above it, else the largest. Plans without such a table have
-- no rows here (no clock charge). Filled by plan_register.
CREATE TABLE plan_clock (
    plan text NOT NULL,
    mb   bigint NOT NULL,
    mhz  bigint NOT NULL,
    PRIMARY KEY (plan, mb)
);

-- A tenant's month per function and plan: the sums of each invocation's quantities after
-- that plan's rounding, in the billing library's base units. Invoices read these rows.
CREATE TABLE usage_rated (
    tenant       text NOT NULL,
    month        timestamptz NOT NULL,
    plan         text NOT NULL,
    function     text NOT NULL,
    invocations  bigint NOT NULL DEFAULT 0,
    billed_ms    bigint NOT NULL DEFAULT 0,
    mb_ms        bigint NOT NULL DEFAULT 0,
    mhz_ms       bigint NOT NULL DEFAULT 0,
    cpu_us       bigint NOT NULL DEFAULT 0,
    egress_bytes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, month, plan, function)
);

-- Rollups for the comparison and the every-tenant report: usage_hourly is a row per
-- tenant, function, hour and memory size (millions a month for many tenants), while the
-- report needs only per-tenant sums per hour and per-function totals per month.

-- A tenant's usage per hour, all functions and memory sizes together. mb_us is
-- Σ memory_mb × duration_us per invocation: numeric, because an hour of many long runs at
-- 10 GB passes 64 bits, and the fold must never fail on data that was accepted.
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

-- One finished invocation's share of usage, added (sign 1) or taken back (sign -1), waiting
-- to be folded into the rollups.
CREATE TABLE usage_delta (
    tenant      text NOT NULL,
    function    text NOT NULL,
    started_at  timestamptz NOT NULL,
    sign        smallint NOT NULL CHECK (sign IN (-1, 1)),
    memory_mb   integer NOT NULL,
    ok          boolean NOT NULL,
    cold_start  boolean NOT NULL,
    duration_us bigint NOT NULL,
    init_us     bigint NOT NULL,
    max_rss_kb  bigint NOT NULL,
    cpu_us      bigint NOT NULL,
    bytes_in    bigint NOT NULL,
    bytes_out   bigint NOT NULL
);

-- Per-invocation rounding, the same rules as the billing library (billing/plan.c).
CREATE FUNCTION plan_billed_ms(p plans, duration_us bigint, init_us bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(p.min_ms,
                    (duration_us + CASE WHEN p.include_init THEN init_us ELSE 0 END
                     + p.step_ms * 1000 - 1) / (p.step_ms * 1000) * p.step_ms)
$$;

CREATE FUNCTION plan_billed_mb(p plans, memory_mb integer, max_rss_kb bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT least(p.max_mb::bigint,
                 (least(p.max_mb::bigint, greatest(p.min_mb::bigint,
                        CASE p.basis WHEN 'observed' THEN (max_rss_kb + 1023) / 1024
                                     ELSE memory_mb::bigint END))
                  + p.step_mb - 1) / p.step_mb * p.step_mb)
$$;

-- 002's usage_apply now leaves a delta; the rollups follow at the next fold.
CREATE OR REPLACE FUNCTION usage_apply(inv invocations, sign integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO usage_delta VALUES (
        inv.tenant, inv.function, inv.started_at, sign, inv.memory_mb, inv.status = 'ok',
        coalesce(inv.cold_start, false), inv.duration_us, inv.init_us, inv.max_rss_kb,
        inv.cpu_user_us + inv.cpu_sys_us, inv.bytes_in, inv.bytes_out)
$$;

-- Fold every pending delta into the rollups (usage_hourly, usage_tenant_hourly,
-- usage_monthly, usage_rated). One folder at a time; rows are locked in key order, so folds
-- never deadlock with each other. Returns the number of deltas folded.
CREATE FUNCTION usage_fold() RETURNS bigint
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

-- Register (or change) a plan's rounding rules. A new or changed plan is rated anew from
-- the stored invocations. The exclusive lock waits for the batches in flight (they hold
-- ROW SHARE) and holds off new ones, and the pending deltas are folded first, so that no
-- invocation is rated twice or missed.
CREATE FUNCTION plan_register(p_plan text, p_step_ms bigint, p_min_ms bigint,
                              p_include_init boolean, p_basis text, p_step_mb integer,
                              p_min_mb integer, p_max_mb integer, p_ghz jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    cur plans;
BEGIN
    LOCK TABLE plans IN EXCLUSIVE MODE;
    SELECT * INTO cur FROM plans WHERE plan = p_plan;
    IF FOUND AND cur.step_ms = p_step_ms AND cur.min_ms = p_min_ms
       AND cur.include_init = p_include_init AND cur.basis = p_basis
       AND cur.step_mb = p_step_mb AND cur.min_mb = p_min_mb AND cur.max_mb = p_max_mb
       AND cur.ghz = p_ghz THEN
        RETURN false;
    END IF;
    -- No fold may run between this one and the rebuild below.
    PERFORM pg_advisory_xact_lock(hashtext('faasmeter.fold'));
    PERFORM usage_fold();
    INSERT INTO plans VALUES (p_plan, p_step_ms, p_min_ms, p_include_init, p_basis, p_step_mb,
                              p_min_mb, p_max_mb, p_ghz, now())
    ON CONFLICT (plan) DO UPDATE SET
        step_ms = excluded.step_ms, min_ms = excluded.min_ms,
        include_init = excluded.include_init, basis = excluded.basis,
        step_mb = excluded.step_mb, min_mb = excluded.min_mb, max_mb = excluded.max_mb,
        ghz = excluded.ghz, updated_at = now();
    DELETE FROM plan_clock WHERE plan = p_plan;
    INSERT INTO plan_clock (plan, mb, mhz)
    SELECT p_plan, m.mb,
           coalesce((SELECT (e->>1)::bigint FROM jsonb_array_elements(p_ghz) e
                      WHERE (e->>0)::bigint >= m.mb ORDER BY (e->>0)::bigint LIMIT 1),
                    (SELECT (e->>1)::bigint FROM jsonb_array_elements(p_ghz) e
                      ORDER BY (e->>0)::bigint DESC LIMIT 1))
      FROM generate_series(p_min_mb::bigint, p_max_mb::bigint) AS m(mb)
     WHERE jsonb_array_length(p_ghz) > 0;
    DELETE FROM usage_rated WHERE plan = p_plan;
    INSERT INTO usage_rated (tenant, month, plan, function, invocations, billed_ms, mb_ms,
                             mhz_ms, cpu_us, egress_bytes)
    SELECT i.tenant, date_trunc('month', i.started_at, 'UTC'), p.plan, i.function, count(*),
           sum(q.ms), sum(q.ms * q.mb), sum(q.ms * coalesce(c.mhz, 0)),
           sum(i.cpu_user_us + i.cpu_sys_us), sum(i.bytes_out)
      FROM invocations i CROSS JOIN plans p CROSS JOIN
           LATERAL (SELECT plan_billed_ms(p, i.duration_us, i.init_us) AS ms,
                           plan_billed_mb(p, i.memory_mb, i.max_rss_kb) AS mb) q
           LEFT JOIN plan_clock c ON c.plan = p.plan AND c.mb = q.mb
     WHERE i.has_stop AND p.plan = p_plan
     GROUP BY 1, 2, 3, 4;
    RETURN true;
END $$;

-- The batch as meterd COPYs it in (temporary tables of the session, emptied at commit).
-- Columns follow the record fields' order (meter/record.c), then ord, digest, body.
CREATE FUNCTION ingest_prepare_session() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
        id text, type text, invocation_id text, tenant text, function text,
        time timestamptz, memory_mb integer, timeout_ms bigint, cold_start boolean,
        trigger text, correlation_id text, duration_us bigint, init_us bigint, status text,
        exit_code integer, cpu_user_us bigint, cpu_sys_us bigint, max_rss_kb bigint,
        bytes_in bigint, bytes_out bigint,
        ord integer NOT NULL, digest bytea NOT NULL, body jsonb NOT NULL,
        outcome text
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS ingest_fresh (LIKE invocations) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS ingest_won (tenant text, invocation_id text)
        ON COMMIT DELETE ROWS;
END $$;

CREATE FUNCTION ingest_staged() RETURNS TABLE (ord integer, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m timestamptz;
    r record;
    -- The planner needs statistics of the staging tables to plan a large batch well, but
    -- every ANALYZE makes the statements below plan anew (some ms a batch). So they are
    -- taken once a session, on its first large batch; the plans then serve every batch.
    large boolean := (SELECT count(*) >= 256 FROM ingest_stage)
                     AND current_setting('faasmeter.stage_analyzed', true) IS DISTINCT FROM 'on';
BEGIN
    -- Deltas are rated under the registered plans: hold off plan_register until commit.
    LOCK TABLE plans IN ROW SHARE MODE;
    IF large THEN
        ANALYZE ingest_stage (tenant, id, ord, invocation_id, type);
    END IF;

    -- Exactly once: the first copy of each id in the batch claims it.
    WITH firsts AS (
        SELECT DISTINCT ON (s.tenant, s.id) s.tenant, s.id, s.digest, s.time, s.ord
          FROM ingest_stage s ORDER BY s.tenant, s.id, s.ord),
    claimed AS (
        INSERT INTO record_ids (tenant, id, digest, time)
        SELECT f.tenant, f.id, f.digest, f.time FROM firsts f
        ON CONFLICT DO NOTHING RETURNING record_ids.tenant, record_ids.id)
    UPDATE ingest_stage s SET outcome = 'accepted'
      FROM claimed c JOIN firsts f ON c.tenant = f.tenant AND c.id = f.id
     WHERE s.ord = f.ord;
    -- Repeats are few: one index probe each.
    UPDATE ingest_stage s
       SET outcome = (SELECT CASE WHEN r_ids.digest = s.digest THEN 'duplicate'
                                  ELSE 'conflict' END
                        FROM record_ids r_ids
                       WHERE r_ids.tenant = s.tenant AND r_ids.id = s.id)
     WHERE s.outcome IS NULL;
    IF large THEN
        ANALYZE ingest_stage (outcome);
    END IF;

    FOR m IN SELECT DISTINCT date_trunc('month', s.time, 'UTC') FROM ingest_stage s
              WHERE s.outcome = 'accepted' LOOP
        PERFORM ensure_month_partition('records', m);
    END LOOP;
    INSERT INTO records (tenant, id, type, invocation_id, time, body)
    SELECT s.tenant, s.id, s.type, s.invocation_id, s.time, s.body
      FROM ingest_stage s WHERE s.outcome = 'accepted';
    INSERT INTO tenants (tenant)
    SELECT DISTINCT s.tenant FROM ingest_stage s
     WHERE s.outcome = 'accepted'
       AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.tenant = s.tenant)
    ON CONFLICT DO NOTHING;

    -- Invocations first seen in this batch, with at most one start and one stop: their
    -- start and stop are joined into one row here. Stop figures win over the start's; the
    -- start's time dates it; the first record by arrival names the function.
    INSERT INTO ingest_fresh
    WITH acc AS (
        SELECT * FROM ingest_stage s WHERE s.outcome = 'accepted' AND s.type <> 'resource'),
    repeated AS (
        SELECT x.tenant, x.invocation_id FROM acc x
         GROUP BY x.tenant, x.invocation_id, x.type HAVING count(*) > 1),
    a AS (SELECT * FROM acc WHERE type = 'start'),
    b AS (SELECT * FROM acc WHERE type = 'stop')
    SELECT coalesce(a.tenant, b.tenant), coalesce(a.invocation_id, b.invocation_id),
           coalesce(a.time, b.time - b.duration_us * interval '1 microsecond'),
           CASE WHEN b.ord IS NULL OR a.ord < b.ord THEN a.function ELSE b.function END,
           a.ord IS NOT NULL, b.ord IS NOT NULL,
           coalesce(b.memory_mb, a.memory_mb), a.timeout_ms, coalesce(b.cold_start, a.cold_start),
           a.trigger,
           CASE WHEN b.ord IS NULL OR (a.ord < b.ord AND a.correlation_id IS NOT NULL)
                THEN coalesce(a.correlation_id, b.correlation_id)
                ELSE coalesce(b.correlation_id, a.correlation_id) END,
           b.time, b.duration_us, b.init_us, b.status, b.exit_code, b.cpu_user_us, b.cpu_sys_us,
           b.max_rss_kb, b.bytes_in, b.bytes_out, now()
      FROM a FULL JOIN b ON a.tenant = b.tenant AND a.invocation_id = b.invocation_id
     WHERE NOT EXISTS (SELECT 1 FROM repeated r
                        WHERE r.tenant = coalesce(a.tenant, b.tenant)
                          AND r.invocation_id = coalesce(a.invocation_id, b.invocation_id))
       AND NOT EXISTS (SELECT 1 FROM invocation_ids i
                        WHERE i.tenant = coalesce(a.tenant, b.tenant)
                          AND i.invocation_id = coalesce(a.invocation_id, b.invocation_id));
    IF large THEN
        ANALYZE ingest_fresh (tenant, invocation_id);
        PERFORM set_config('faasmeter.stage_analyzed', 'on', false);
    END IF;

    FOR m IN SELECT DISTINCT date_trunc('month', f.started_at, 'UTC') FROM ingest_fresh f LOOP
        PERFORM ensure_month_partition('invocations', m);
    END LOOP;
    -- Claim them, store them and leave their usage deltas, in one statement; one that
    -- another transaction claimed meanwhile takes the slow path below.
    WITH won AS (
        INSERT INTO invocation_ids (tenant, invocation_id, started_at)
        SELECT f.tenant, f.invocation_id, f.started_at FROM ingest_fresh f
         ORDER BY f.tenant, f.invocation_id -- one lock order for every batch
        ON CONFLICT DO NOTHING
        RETURNING invocation_ids.tenant, invocation_ids.invocation_id),
    stored AS (
        INSERT INTO invocations
        SELECT f.tenant, f.invocation_id, f.started_at, f.function, f.has_start, f.has_stop,
               f.memory_mb, f.timeout_ms, f.cold_start, f.trigger, f.correlation_id,
               f.stopped_at, f.duration_us, f.init_us, f.status, f.exit_code, f.cpu_user_us,
               f.cpu_sys_us, f.max_rss_kb, f.bytes_in, f.bytes_out, f.updated_at
          FROM ingest_fresh f JOIN won w USING (tenant, invocation_id)
        RETURNING *),
    deltas AS (
        INSERT INTO usage_delta
        SELECT v.tenant, v.function, v.started_at, 1, v.memory_mb, v.status = 'ok',
               coalesce(v.cold_start, false), v.duration_us, v.init_us, v.max_rss_kb,
               v.cpu_user_us + v.cpu_sys_us, v.bytes_in, v.bytes_out
          FROM stored v WHERE v.has_stop)
    INSERT INTO ingest_won SELECT w.tenant, w.invocation_id FROM won w;

    -- Everything else, record by record: resource samples, and records of invocations that
    -- exist already or came more than once in this batch. In arrival order within each
    -- invocation, and invocations in key order, so that concurrent batches lock alike.
    FOR r IN SELECT s.tenant, s.type, s.time, s.body FROM ingest_stage s
              WHERE s.outcome = 'accepted'
                AND (s.type = 'resource'
                     OR NOT EXISTS (SELECT 1 FROM ingest_won w
                                     WHERE w.tenant = s.tenant
                                       AND w.invocation_id = s.invocation_id))
              ORDER BY s.tenant, s.invocation_id, s.ord LOOP
        PERFORM invocation_apply(r.tenant, r.type, r.time, r.body);
    END LOOP;

    RETURN QUERY SELECT s.ord, s.outcome FROM ingest_stage s ORDER BY s.ord;
END $$;
