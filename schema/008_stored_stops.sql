-- Stops of invocations stored earlier, set-based.
--
-- An invocation that outlasts a shipper's round has its start in one batch and its stop in
-- a later one. 003 applied such stops record by record (invocation_apply, some 280 us
-- each). Here the per-record pass only locks a stop that is the only start or stop of its
-- stored invocation in the batch, and ingest_stored_stops then stores all of those in one
-- update, with the same result: the stop's figures, the start's time, function and trigger,
-- the first correlation id, the larger peak memory, and the invocation's usage delta.
-- Resource samples of the same invocations (long runs have them) are applied in the pass,
-- so before the stop even when they came after it: the same row either way, since the stop
-- sets the CPU figures and both keep the larger peak memory. Anything else (a second stop,
-- a start in the same batch, a stop that finds its invocation stopped already, by
-- close_orphans say) still goes record by record.

-- 002's usage_apply as a SQL function was planned anew at every call from PL/pgSQL; a
-- PL/pgSQL body keeps its plan for the session.
CREATE OR REPLACE FUNCTION usage_apply(inv invocations, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_delta VALUES (
        inv.tenant, inv.function, inv.started_at, sign, inv.memory_mb, inv.status = 'ok',
        coalesce(inv.cold_start, false), inv.duration_us, inv.init_us, inv.max_rss_kb,
        inv.cpu_user_us + inv.cpu_sys_us, inv.bytes_in, inv.bytes_out);
END $$;

-- The per-record path reaches each invocation by its key. A PL/pgSQL statement keeps the
-- plan it was first given for the session: in a young database, over a few rows, that is
-- a sequential scan, and it stays the plan as the tables grow until autoanalyze comes by
-- (a stop then took over 100 ms against a million invocations). With sequential scans off,
-- these statements probe the indexes whatever the sizes.
ALTER FUNCTION invocation_apply(text, text, timestamptz, jsonb) SET enable_seqscan = off;

-- Lock one stored invocation (its key), as invocation_apply does first.
CREATE FUNCTION invocation_lock(p_tenant text, p_invocation_id text) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    PERFORM 1 FROM invocation_ids
     WHERE tenant = p_tenant AND invocation_id = p_invocation_id FOR UPDATE;
END $$;

-- Store the stops staged with the given ords, whose invocations the caller has locked; a
-- stop whose invocation has a stop already, or is not stored, goes through invocation_apply.
-- Called by ingest_staged after its per-record pass, which took every lock of the batch in
-- key order, so that this step adds no lock order of its own.
--
-- Plans: one index probe per stop, as in ingest_direct_prepare: a hash or merge join would
-- read whole tables for every batch, and a plan made while the tables were small would keep
-- doing so as they grow. The stops are joined to their keys first, apart (MATERIALIZED): the
-- planner misjudges the three-column join of invocations and invocation_ids as one row, and
-- with only nested loops left it would put the staging side inside that join, once per
-- stored invocation.
CREATE FUNCTION ingest_stored_stops(p_ords integer[]) RETURNS void
LANGUAGE plpgsql
SET jit = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
AS $$
DECLARE
    v_done integer[];
    r record;
BEGIN
    IF cardinality(p_ords) = 0 THEN
        RETURN;
    END IF;
    WITH alone AS MATERIALIZED (
        SELECT s.*, d.started_at AS at
          FROM ingest_stage s
          JOIN invocation_ids d ON d.tenant = s.tenant AND d.invocation_id = s.invocation_id
         WHERE s.ord = ANY (p_ords)),
    stopped AS (
        UPDATE invocations i SET
            has_stop = true, memory_mb = a.memory_mb, cold_start = a.cold_start,
            correlation_id = coalesce(i.correlation_id, a.correlation_id),
            stopped_at = a.time, duration_us = a.duration_us, init_us = a.init_us,
            status = a.status, exit_code = a.exit_code, cpu_user_us = a.cpu_user_us,
            cpu_sys_us = a.cpu_sys_us, max_rss_kb = greatest(i.max_rss_kb, a.max_rss_kb),
            bytes_in = a.bytes_in, bytes_out = a.bytes_out, updated_at = now()
          FROM alone a
         WHERE i.tenant = a.tenant AND i.invocation_id = a.invocation_id
           AND i.started_at = a.at AND NOT i.has_stop
        RETURNING i.*, a.ord),
    deltas AS (
        INSERT INTO usage_delta
        SELECT v.tenant, v.function, v.started_at, 1, v.memory_mb, v.status = 'ok',
               coalesce(v.cold_start, false), v.duration_us, v.init_us, v.max_rss_kb,
               v.cpu_user_us + v.cpu_sys_us, v.bytes_in, v.bytes_out
          FROM stopped v)
    SELECT coalesce(array_agg(v.ord), '{}') INTO v_done FROM stopped v;

    FOR r IN SELECT s.tenant, s.type, s.time, s.body FROM ingest_stage s
              WHERE s.ord = ANY (p_ords) AND NOT s.ord = ANY (v_done)
              ORDER BY s.tenant COLLATE "C", s.invocation_id COLLATE "C" LOOP
        PERFORM invocation_apply(r.tenant, r.type, r.time, r.body);
    END LOOP;
END $$;

-- 003's ingest_staged, its per-record pass leaving such stops to the step above (a
-- migration cannot change a function in part), and with its keys in byte order
-- (COLLATE "C") wherever the order is the order of its locks: the direct path
-- (meter/store_direct.c) sorts them with strcmp, and in a database of another collation the
-- two orders differed, so concurrent batches could deadlock.
CREATE OR REPLACE FUNCTION ingest_staged() RETURNS TABLE (ord integer, outcome text)
LANGUAGE plpgsql
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    m timestamptz;
    r record;
    v_alone integer[] := '{}'; -- ords of the stops left to ingest_stored_stops
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
        SELECT DISTINCT ON (s.tenant COLLATE "C", s.id COLLATE "C")
               s.tenant, s.id, s.digest, s.time, s.ord
          FROM ingest_stage s ORDER BY s.tenant COLLATE "C", s.id COLLATE "C", s.ord),
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
         ORDER BY f.tenant COLLATE "C", f.invocation_id COLLATE "C" -- one lock order
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
    -- invocation, and invocations in key order, so that concurrent batches lock alike. A
    -- stop that is its invocation's only start or stop here is only locked, and stored with
    -- the others like it afterwards (ingest_stored_stops).
    FOR r IN SELECT s.tenant, s.type, s.time, s.body, s.invocation_id, s.ord,
                    s.type = 'stop' AND count(*) FILTER (WHERE s.type <> 'resource')
                                            OVER (PARTITION BY s.tenant, s.invocation_id) = 1
                        AS alone
               FROM ingest_stage s
              WHERE s.outcome = 'accepted'
                AND (s.type = 'resource'
                     OR NOT EXISTS (SELECT 1 FROM ingest_won w
                                     WHERE w.tenant = s.tenant
                                       AND w.invocation_id = s.invocation_id))
              ORDER BY s.tenant COLLATE "C", s.invocation_id COLLATE "C", s.ord LOOP
        IF r.alone THEN
            PERFORM invocation_lock(r.tenant, r.invocation_id);
            v_alone := v_alone || r.ord;
        ELSE
            PERFORM invocation_apply(r.tenant, r.type, r.time, r.body);
        END IF;
    END LOOP;
    PERFORM ingest_stored_stops(v_alone);

    RETURN QUERY SELECT s.ord, s.outcome FROM ingest_stage s ORDER BY s.ord;
END $$;
