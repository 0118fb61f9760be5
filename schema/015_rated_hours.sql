-- Billed usage by the hour.
--
-- usage_rated keeps what each plan bills (every invocation rounded up to the plan's steps)
-- per calendar month, as invoices read it, so GET /v1/usage could give billed GB-seconds
-- for whole months only, and null for hours, days and cut months. usage_rated_hourly keeps
-- the same rounded sums per hour the invocations started in, the hour usage_hourly dates
-- them by, so that every window of the usage endpoint adds up its hours. meterd's fold
-- keeps it with the other rollups (meter/fold.c); plan_register rates it anew with
-- usage_rated when a plan changes. Over a month its rows add up to usage_rated's.
--
-- The fold's lock first, as the fold takes it before the rollups (see 013). A meterd of an
-- earlier build would fold without this table: stop meterd, migrate, then start the new
-- one.
SELECT pg_advisory_xact_lock(hashtext('faasmeter.fold'));

CREATE TABLE usage_rated_hourly (
    tenant      text NOT NULL,
    hour        timestamptz NOT NULL,
    plan        text NOT NULL,
    function    text NOT NULL,
    invocations bigint NOT NULL DEFAULT 0,
    billed_ms   bigint NOT NULL DEFAULT 0,
    mb_ms       bigint NOT NULL DEFAULT 0,
    -- A usage query reads a tenant's hours under its plan; plan_register rates a plan anew.
    PRIMARY KEY (plan, tenant, hour, function)
);

-- What was folded before: every stopped invocation as it stands, less what is still
-- pending (those deltas fold later), rated under every registered plan.
WITH src AS (
    SELECT i.tenant, i.function, i.started_at, i.duration_us, i.init_us, i.memory_mb,
           i.max_rss_kb, 1 AS sign
      FROM invocations i WHERE i.has_stop
    UNION ALL
    SELECT d.tenant, d.function, d.started_at, d.duration_us, d.init_us, d.memory_mb,
           d.max_rss_kb, -d.sign
      FROM usage_delta d),
rated AS (
    SELECT s.tenant, date_trunc('hour', s.started_at, 'UTC') AS hour, p.plan, s.function,
           sum(s.sign) AS invocations, sum(s.sign * q.ms) AS billed_ms,
           sum(s.sign * q.ms * q.mb) AS mb_ms
      FROM src s CROSS JOIN plans p CROSS JOIN
           LATERAL (SELECT plan_billed_ms(p, s.duration_us, s.init_us) AS ms,
                           plan_billed_mb(p, s.memory_mb, s.max_rss_kb) AS mb) q
     GROUP BY 1, 2, 3, 4)
INSERT INTO usage_rated_hourly (tenant, hour, plan, function, invocations, billed_ms, mb_ms)
SELECT * FROM rated WHERE invocations <> 0 OR billed_ms <> 0 OR mb_ms <> 0;

-- A fold of an earlier build would go on writing the other rollups, but not this one,
-- which would stay short for good. So every writer of usage_rated now says which rollups it
-- keeps: the fold sets faasmeter.rollups for its transaction, plan_register for its call.
-- A writer that does not is refused, and its deltas wait, pending, for a fold of this build.
-- A later migration that adds a rollup raises the version asked for.
CREATE FUNCTION usage_rated_writer_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('faasmeter.rollups', true), '') < '015' THEN
        RAISE EXCEPTION 'usage_rated: written by a fold older than schema 015, which would'
                        ' leave usage_rated_hourly short'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'run meterd and faasbill of the build that migrated the database';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_rated_writer BEFORE INSERT ON usage_rated
    FOR EACH STATEMENT EXECUTE FUNCTION usage_rated_writer_check();

-- 009's plan_register, rating usage_rated_hourly anew with usage_rated, in one pass.
CREATE OR REPLACE FUNCTION plan_register(p_plan text, p_step_ms bigint, p_min_ms bigint,
                                         p_include_init boolean, p_basis text,
                                         p_step_mb integer, p_min_mb integer,
                                         p_max_mb integer, p_ghz jsonb)
RETURNS boolean
LANGUAGE plpgsql
SET jit = off
SET faasmeter.rollups = '015'
AS $$
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
    -- No fold may run between the caller's and the rebuild below.
    PERFORM pg_advisory_xact_lock(hashtext('faasmeter.fold'));
    IF EXISTS (SELECT 1 FROM usage_delta) THEN
        RAISE EXCEPTION 'plan %: usage is pending; fold it in this transaction first', p_plan
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
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
    -- One pass over the invocations: their rated sums per hour, which make the hourly rows
    -- and add up to the monthly ones.
    DELETE FROM usage_rated WHERE plan = p_plan;
    DELETE FROM usage_rated_hourly WHERE plan = p_plan;
    WITH hours AS (
        SELECT i.tenant, date_trunc('hour', i.started_at, 'UTC') AS hour, i.function,
               count(*) AS invocations, sum(q.ms) AS billed_ms, sum(q.ms * q.mb) AS mb_ms,
               sum(q.ms * coalesce(c.mhz, 0)) AS mhz_ms,
               sum(i.cpu_user_us + i.cpu_sys_us) AS cpu_us, sum(i.bytes_out) AS egress_bytes
          FROM invocations i CROSS JOIN plans p CROSS JOIN
               LATERAL (SELECT plan_billed_ms(p, i.duration_us, i.init_us) AS ms,
                               plan_billed_mb(p, i.memory_mb, i.max_rss_kb) AS mb) q
               LEFT JOIN plan_clock c ON c.plan = p.plan AND c.mb = q.mb
         WHERE i.has_stop AND p.plan = p_plan
         GROUP BY 1, 2, 3),
    hourly AS (
        INSERT INTO usage_rated_hourly (tenant, hour, plan, function, invocations, billed_ms,
                                        mb_ms)
        SELECT tenant, hour, p_plan, function, invocations, billed_ms, mb_ms FROM hours)
    INSERT INTO usage_rated (tenant, month, plan, function, invocations, billed_ms, mb_ms,
                             mhz_ms, cpu_us, egress_bytes)
    SELECT tenant, date_trunc('month', hour, 'UTC'), p_plan, function, sum(invocations),
           sum(billed_ms), sum(mb_ms), sum(mhz_ms), sum(cpu_us), sum(egress_bytes)
      FROM hours
     GROUP BY 1, 2, 3, 4;
    RETURN true;
END $$;

