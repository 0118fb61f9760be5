-- The fold moves out of the database into meterd (meter/fold.c). The SQL fold rated a row
-- per delta and plan, then sorted or hashed them all by their text keys to group them:
-- about 16 µs a delta with six plans on an idle server, more than storing the record.
-- meterd takes the deltas out in one binary COPY, rates them with the billing library's
-- own rounding, adds them up in memory and writes only the sums: one upsert a rollup row.
--
-- plan_register no longer folds: its caller (meter_plans_register) locks plans, folds in
-- the same transaction, then registers. It refuses to rate anew while deltas are pending,
-- which would count them twice.
--
-- Nothing in the database rates usage any more, but what leaves deltas (ingestion, the
-- stored stops, close_orphans) still takes ROW SHARE on plans, as 005, 006 and 008 say
-- "because rating reads plans". The lock now keeps a delta from being committed between
-- that fold and the rating anew, which would count it twice: keep it.
DROP FUNCTION usage_fold();

CREATE OR REPLACE FUNCTION plan_register(p_plan text, p_step_ms bigint, p_min_ms bigint,
                                         p_include_init boolean, p_basis text,
                                         p_step_mb integer, p_min_mb integer,
                                         p_max_mb integer, p_ghz jsonb)
RETURNS boolean
LANGUAGE plpgsql
SET jit = off
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
