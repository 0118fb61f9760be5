-- Lookups of a batch's keys that stay index probes whatever the planner was told about
-- table sizes; and resource samples of stored invocations on the direct path.
--
-- Ingestion looks a batch's keys up in invocation_ids, invocations and record_ids: the
-- direct path's probe (ingest_direct_prepare, 006), the stops of stored invocations
-- (invocations_stop, 012), and the staged path's repeats and new invocations
-- (ingest_staged, 008). A session keeps those plans: the probe's by force (011), the
-- others as PL/pgSQL keeps them. A plan made while the tables were empty and analyzed so
-- (an ANALYZE of a new database, or autovacuum passing just after the tables were emptied)
-- read the whole table for every batch or every key: a whole-index scan joined the other
-- way round, or a sequential scan. It stayed until autovacuum analyzed the tables again.
-- Batches of 1,000 stops went from 27,000 records/s to 3,700, and the cost grew with every
-- row stored.
--
-- Now each lookup is a subquery of its own, parameterized by one key, with sequential
-- scans off: a scalar subquery, or for the stops a lateral one that locks. PostgreSQL does
-- not merge either kind into a join, so the only plan is an index probe a key. The stopped
-- rows are then updated by their row address (tableoid, ctid) and start time, with index
-- scans off, which only a TID scan of the row's partition reaches. The probe and the
-- staged path look keys up through the two functions below (the staged path's own
-- statements plan the staging tables, which only sequential scans read, so they keep
-- sequential scans on). Results and locks stay as they were, in the same order: each
-- invocation's key, then its row, in the order the callers give (the keys' order), as the
-- staged path and the orphan sweep lock them.
--
-- A long run sends a resource sample every so often (faasrun: every 10 s) before its stop.
-- Its invocation is stored by then (its start came first), so the sample took the staged
-- path, which costs PostgreSQL 2.5-3.8 ms of CPU a transaction whatever its size, and took
-- the lone stops of stored invocations of its batch with it. Now the samples of a stored
-- invocation that come without its start or stop go with the lone stops, in the same call
-- of invocations_stop (meter/store_direct.c), before or after the invocation's stop.

-- A batch's keys looked up, the arrays going pairwise: the pairs that invocation_ids holds,
-- with their positions (from 1); each pair with the digest record_ids holds for it (NULL
-- for none).
CREATE FUNCTION invocation_ids_held(p_tenants text[], p_ids text[])
RETURNS TABLE (pos bigint, tenant text, invocation_id text)
LANGUAGE plpgsql STABLE
SET jit = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT u.pos, u.tenant, u.id
      FROM unnest(p_tenants, p_ids) WITH ORDINALITY AS u(tenant, id, pos)
     WHERE (SELECT true FROM invocation_ids i
             WHERE i.tenant = u.tenant AND i.invocation_id = u.id);
END $$;

CREATE FUNCTION record_ids_digests(p_tenants text[], p_ids text[])
RETURNS TABLE (tenant text, id text, digest bytea)
LANGUAGE plpgsql STABLE
SET jit = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT u.tenant, u.id, (SELECT r.digest FROM record_ids r
                             WHERE r.tenant = u.tenant AND r.id = u.id)
      FROM unnest(p_tenants, p_ids) AS u(tenant, id);
END $$;

CREATE OR REPLACE FUNCTION ingest_direct_prepare(p_months timestamptz[], p_inv_tenants text[],
                                                 p_inv_ids text[])
RETURNS SETOF bigint
LANGUAGE plpgsql
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    m timestamptz;
BEGIN
    -- Deltas are rated under the registered plans: hold off plan_register until commit.
    LOCK TABLE plans IN ROW SHARE MODE;
    FOREACH m IN ARRAY p_months LOOP
        PERFORM ensure_month_partition('records', m);
        PERFORM ensure_month_partition('invocations', m);
    END LOOP;
    RETURN QUERY SELECT h.pos FROM invocation_ids_held(p_inv_tenants, p_inv_ids) h;
END $$;

-- 012's invocations_stop in two steps. The first locks each invocation's key, then its
-- row at the start time the key holds once locked (a start that came meanwhile moved it),
-- in the array's order, and notes the row's address (with the element's position in the
-- array); a stop whose row has a stop already, or a row that moved, is left alone. The second,
-- invocations_stop_locked, updates the rows by their address and start time. It runs as a
-- statement of its own, so that its snapshot shows the rows as they were locked: one that
-- another transaction updated while the first step waited for the key is seen in that
-- transaction's version. It runs with index scans off, so that a TID scan of the row's
-- partition (pruned by the start time) is the only way to a row.
--
-- An element of type 'resource' stands for resource samples of a stored invocation that
-- came without its start or stop (meter/store_direct.c), as invocation_apply applies them:
-- they raise a running invocation's peak memory and CPU to the samples' peaks; after the
-- stop, whose figures are final, they may only raise the peak memory, and the
-- invocation's usage is then retracted and added again.
CREATE FUNCTION invocations_stop_locked(p_stops jsonb, p_pos bigint[], p_toid oid[],
                                        p_tid tid[], p_at timestamptz[], p_stopped boolean[],
                                        p_rss bigint[])
RETURNS TABLE (tenant text, invocation_id text)
LANGUAGE plpgsql
SET jit = off
SET enable_seqscan = off
SET enable_indexscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH alone AS MATERIALIZED (
        SELECT s.*, l.toid, l.tid, l.at, l.stopped, l.rss
          FROM unnest(p_pos, p_toid, p_tid, p_at, p_stopped, p_rss)
               AS l(pos, toid, tid, at, stopped, rss)
         CROSS JOIN LATERAL jsonb_to_record(p_stops -> (l.pos - 1)::integer) AS s(
            tenant text, invocation_id text, "time" timestamptz, memory_mb integer,
            cold_start boolean, correlation_id text, duration_us bigint, init_us bigint,
            status text, exit_code integer, cpu_user_us bigint, cpu_sys_us bigint,
            max_rss_kb bigint, bytes_in bigint, bytes_out bigint, samples_max_rss_kb bigint,
            type text, samples_cpu_user_us bigint, samples_cpu_sys_us bigint)),
    stopped AS (
        UPDATE invocations i SET
            has_stop = true, memory_mb = a.memory_mb, cold_start = a.cold_start,
            correlation_id = coalesce(i.correlation_id, a.correlation_id),
            stopped_at = a.time, duration_us = a.duration_us, init_us = a.init_us,
            status = a.status, exit_code = a.exit_code, cpu_user_us = a.cpu_user_us,
            cpu_sys_us = a.cpu_sys_us,
            max_rss_kb = greatest(i.max_rss_kb, a.max_rss_kb, a.samples_max_rss_kb),
            bytes_in = a.bytes_in, bytes_out = a.bytes_out, updated_at = now()
          FROM alone a
         WHERE i.tableoid = a.toid AND i.ctid = a.tid AND i.started_at = a.at
           AND a.type IS DISTINCT FROM 'resource'
        RETURNING i.*),
    sampled AS (
        UPDATE invocations i SET
            max_rss_kb = greatest(i.max_rss_kb, a.samples_max_rss_kb),
            cpu_user_us = greatest(i.cpu_user_us, a.samples_cpu_user_us),
            cpu_sys_us = greatest(i.cpu_sys_us, a.samples_cpu_sys_us), updated_at = now()
          FROM alone a
         WHERE i.tableoid = a.toid AND i.ctid = a.tid AND i.started_at = a.at
           AND a.type = 'resource' AND NOT a.stopped
        RETURNING i.tenant, i.invocation_id),
    -- Samples that came after the stop: the stop's figures are final, but for the peak
    -- memory, which may rise. Its usage is retracted and added again, as invocation_apply
    -- does, when it does.
    late AS (
        UPDATE invocations i SET
            max_rss_kb = greatest(i.max_rss_kb, a.samples_max_rss_kb), updated_at = now()
          FROM alone a
         WHERE i.tableoid = a.toid AND i.ctid = a.tid AND i.started_at = a.at
           AND a.type = 'resource' AND a.stopped
        RETURNING i.*, a.rss AS rss_before),
    late_deltas AS (
        INSERT INTO usage_delta
        SELECT v.tenant, v.function, v.started_at, s.sign, v.memory_mb, v.status = 'ok',
               coalesce(v.cold_start, false), v.duration_us, v.init_us,
               CASE s.sign WHEN 1 THEN v.max_rss_kb ELSE v.rss_before END,
               v.cpu_user_us + v.cpu_sys_us, v.bytes_in, v.bytes_out
          FROM late v CROSS JOIN (VALUES (-1), (1)) AS s(sign)
         WHERE v.max_rss_kb IS DISTINCT FROM v.rss_before),
    deltas AS (
        INSERT INTO usage_delta
        SELECT v.tenant, v.function, v.started_at, 1, v.memory_mb, v.status = 'ok',
               coalesce(v.cold_start, false), v.duration_us, v.init_us, v.max_rss_kb,
               v.cpu_user_us + v.cpu_sys_us, v.bytes_in, v.bytes_out
          FROM stopped v)
    SELECT v.tenant, v.invocation_id FROM stopped v
    UNION ALL SELECT s.tenant, s.invocation_id FROM sampled s
    UNION ALL SELECT l.tenant, l.invocation_id FROM late l;
END $$;

CREATE OR REPLACE FUNCTION invocations_stop(p_stops jsonb, p_all boolean)
RETURNS TABLE (tenant text, invocation_id text)
LANGUAGE plpgsql
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_pos bigint[];
    v_toid oid[];
    v_tid tid[];
    v_at timestamptz[];
    v_stopped boolean[];
    v_rss bigint[];
    n bigint;
BEGIN
    -- One aggregate row: SELECT INTO would stop at the first row otherwise, and lock no
    -- more. The callers give an invocation once (meterd one element a group, the staged
    -- path its lone stops).
    SELECT array_agg(s.position ORDER BY s.position), array_agg(v.toid ORDER BY s.position),
           array_agg(v.tid ORDER BY s.position), array_agg(d.started_at ORDER BY s.position),
           array_agg(v.has_stop ORDER BY s.position),
           array_agg(v.max_rss_kb ORDER BY s.position)
      INTO v_pos, v_toid, v_tid, v_at, v_stopped, v_rss
      FROM jsonb_array_elements(p_stops) WITH ORDINALITY AS s(e, position)
     CROSS JOIN LATERAL (
           SELECT k.started_at FROM invocation_ids k
            WHERE k.tenant = s.e->>'tenant' AND k.invocation_id = s.e->>'invocation_id'
              FOR UPDATE) d
     CROSS JOIN LATERAL (
           SELECT i.tableoid AS toid, i.ctid AS tid, i.has_stop, i.max_rss_kb
             FROM invocations i
            WHERE i.tenant = s.e->>'tenant' AND i.invocation_id = s.e->>'invocation_id'
              AND i.started_at = d.started_at
              AND (NOT i.has_stop OR s.e->>'type' = 'resource')
              FOR UPDATE) v;
    RETURN QUERY SELECT * FROM invocations_stop_locked(p_stops, v_pos, v_toid, v_tid, v_at,
                                                       v_stopped, v_rss);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF p_all AND n <> jsonb_array_length(p_stops) THEN
        RAISE EXCEPTION 'a stop or sample of a stored invocation found it stopped already,'
                        ' or moved'
            USING ERRCODE = 'FM001',
                  HINT = 'meterd stores such a batch on the staged path';
    END IF;
END $$;

-- 008's ingest_staged, its two reads of stored keys on the functions above. Its own
-- statements plan the staging tables, which only sequential scans read, so sequential
-- scans stay on for them.
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
       SET outcome = CASE WHEN h.digest = s.digest THEN 'duplicate' ELSE 'conflict' END
      FROM (SELECT array_agg(r.tenant) AS tenants, array_agg(r.id) AS ids
              FROM ingest_stage r WHERE r.outcome IS NULL) k
     CROSS JOIN LATERAL record_ids_digests(k.tenants, k.ids) h
     WHERE s.outcome IS NULL AND s.tenant = h.tenant AND s.id = h.id;
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
    b AS (SELECT * FROM acc WHERE type = 'stop'),
    held AS (
        SELECT h.tenant, h.invocation_id
          FROM (SELECT array_agg(x.tenant) AS tenants, array_agg(x.invocation_id) AS ids
                  FROM acc x) k
         CROSS JOIN LATERAL invocation_ids_held(k.tenants, k.ids) h)
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
     -- NOT IN over the batch's own keys (never NULL): a hashed subplan, whatever the
     -- estimates; NOT EXISTS let a misestimate make it a nested loop over both.
     WHERE (coalesce(a.tenant, b.tenant), coalesce(a.invocation_id, b.invocation_id))
           NOT IN (SELECT r.tenant, r.invocation_id FROM repeated r)
       AND (coalesce(a.tenant, b.tenant), coalesce(a.invocation_id, b.invocation_id))
           NOT IN (SELECT h.tenant, h.invocation_id FROM held h);
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
