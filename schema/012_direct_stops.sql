-- Stops of stored invocations on the direct path.
--
-- A stop whose start came in an earlier request (an invocation that outlasted a shipping
-- round, or a runtime that sends each record as it happens) took the staged path, which
-- cost the server 2.5-3.8 ms of CPU for a stop alone: the staging tables, emptied at every
-- commit, and the PL/pgSQL steps around them. Now, when such a stop is the only start or
-- stop of its invocation in the batch (resource samples may come with it) and the rest of
-- the batch takes the direct path too, meterd COPYs its records and their ids with the
-- others (the keys still judge repeats) and
-- stores the stops with invocations_stop, in the same query as its COPYs
-- (meter/store_direct.c). The staged path stores its lone stops with the same function:
-- it is 008's update, moved here.

-- Store stops of stored invocations, given as the records' canonical bodies in a JSON
-- array: the stop's figures, the start's time, function and trigger, the first correlation
-- id, the larger peak memory, and the invocation's usage delta. A stop that came with
-- resource samples of its invocation carries their largest peak as samples_max_rss_kb:
-- the staged path applies samples before the stop, and of theirs only the peak outlasts
-- it (the stop's CPU figures are final). Each invocation is locked
-- as everywhere else, its key and then its row, in the order of the array (the callers
-- give the byte order of the keys; the lock comes after the sort by position, whatever the
-- join's plan). A stop whose invocation has a stop already (a second stop, or one closed
-- as lost) is left alone, and so is one whose invocation moved to another start time
-- while the call waited for its lock (its start came meanwhile). Returns the invocations
-- it stopped.
--
-- With p_all, every stop must be stored, or the function fails with SQLSTATE FM001: the
-- direct path's stops, whose batch meterd then stores again on the staged path, which
-- gives every record its outcome.
--
-- Plans: one index probe a stop, as in ingest_direct_prepare; a hash or merge join would
-- read whole tables for every batch. The stops are joined to their keys first, apart
-- (MATERIALIZED), as 008 found necessary. The set of stops is a parameter, estimated alike
-- whatever its size, so the plan is kept for the session.
CREATE FUNCTION invocations_stop(p_stops jsonb, p_all boolean)
RETURNS TABLE (tenant text, invocation_id text)
LANGUAGE plpgsql
SET jit = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    RETURN QUERY
    WITH alone AS MATERIALIZED (
        SELECT s.*, d.started_at AS at
          FROM ROWS FROM (jsonb_to_recordset(p_stops) AS (
                   tenant text, invocation_id text, "time" timestamptz, memory_mb integer,
                   cold_start boolean, correlation_id text, duration_us bigint,
                   init_us bigint, status text, exit_code integer, cpu_user_us bigint,
                   cpu_sys_us bigint, max_rss_kb bigint, bytes_in bigint, bytes_out bigint,
                   samples_max_rss_kb bigint))
               WITH ORDINALITY AS s(tenant, invocation_id, "time", memory_mb, cold_start,
                                    correlation_id, duration_us, init_us, status, exit_code,
                                    cpu_user_us, cpu_sys_us, max_rss_kb, bytes_in,
                                    bytes_out, samples_max_rss_kb, position)
          JOIN invocation_ids d ON d.tenant = s.tenant AND d.invocation_id = s.invocation_id
         ORDER BY s.position
           FOR UPDATE OF d),
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
         WHERE i.tenant = a.tenant AND i.invocation_id = a.invocation_id
           AND i.started_at = a.at AND NOT i.has_stop
        RETURNING i.*),
    deltas AS (
        INSERT INTO usage_delta
        SELECT v.tenant, v.function, v.started_at, 1, v.memory_mb, v.status = 'ok',
               coalesce(v.cold_start, false), v.duration_us, v.init_us, v.max_rss_kb,
               v.cpu_user_us + v.cpu_sys_us, v.bytes_in, v.bytes_out
          FROM stopped v)
    SELECT v.tenant, v.invocation_id FROM stopped v;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF p_all AND n <> jsonb_array_length(p_stops) THEN
        RAISE EXCEPTION 'a stop of a stored invocation found it stopped already, or moved'
            USING ERRCODE = 'FM001',
                  HINT = 'meterd stores such a batch on the staged path';
    END IF;
END $$;

-- 008's ingest_stored_stops on the same function; a stop it leaves alone goes through
-- invocation_apply, as before.
CREATE OR REPLACE FUNCTION ingest_stored_stops(p_ords integer[]) RETURNS void
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    v_done text[];
    r record;
BEGIN
    IF cardinality(p_ords) = 0 THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(d.tenant || '/' || d.invocation_id), '{}') INTO v_done
      FROM invocations_stop((
          SELECT jsonb_agg(s.body ORDER BY s.tenant COLLATE "C", s.invocation_id COLLATE "C")
            FROM ingest_stage s WHERE s.ord = ANY (p_ords)), false) d;

    FOR r IN SELECT s.tenant, s.type, s.time, s.body FROM ingest_stage s
              WHERE s.ord = ANY (p_ords)
                AND NOT (s.tenant || '/' || s.invocation_id) = ANY (v_done)
              ORDER BY s.tenant COLLATE "C", s.invocation_id COLLATE "C" LOOP
        PERFORM invocation_apply(r.tenant, r.type, r.time, r.body);
    END LOOP;
END $$;
