-- Resource samples of running invocations on the direct path.
--
-- A long run sends a resource sample every so often (faasrun: every 10 s) before its stop.
-- Its invocation is stored by then (its start came first), so the sample took the staged
-- path, which costs PostgreSQL 2.5-3.8 ms of CPU a transaction whatever its size, and took
-- with it the lone stops of stored invocations in the same batch. Now the samples of a
-- stored invocation that come without its start or stop go with the lone stops, in one call
-- of invocations_stop: given as one element of type 'resource' with the samples' peaks
-- (meter/store_direct.c), they raise the invocation's peak memory and CPU, as
-- invocation_apply does for an invocation with no stop yet. A sample whose invocation has
-- a stop already (a late one) fails the call as a second stop does, and the batch takes the
-- staged path, which retracts and adds again the invocation's usage.

CREATE OR REPLACE FUNCTION invocations_stop(p_stops jsonb, p_all boolean)
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
        SELECT s.*, v.toid, v.tid
          FROM ROWS FROM (jsonb_to_recordset(p_stops) AS (
                   tenant text, invocation_id text, "time" timestamptz, memory_mb integer,
                   cold_start boolean, correlation_id text, duration_us bigint,
                   init_us bigint, status text, exit_code integer, cpu_user_us bigint,
                   cpu_sys_us bigint, max_rss_kb bigint, bytes_in bigint, bytes_out bigint,
                   samples_max_rss_kb bigint, type text, samples_cpu_user_us bigint,
                   samples_cpu_sys_us bigint))
               WITH ORDINALITY AS s(tenant, invocation_id, "time", memory_mb, cold_start,
                                    correlation_id, duration_us, init_us, status, exit_code,
                                    cpu_user_us, cpu_sys_us, max_rss_kb, bytes_in,
                                    bytes_out, samples_max_rss_kb, type, samples_cpu_user_us,
                                    samples_cpu_sys_us, position)
         -- The key, locked; then the row at the start time the key holds once locked (a
         -- start that came meanwhile moved it), if it has no stop yet.
         CROSS JOIN LATERAL (
               SELECT d.started_at FROM invocation_ids d
                WHERE d.tenant = s.tenant AND d.invocation_id = s.invocation_id
                  FOR UPDATE) d
         CROSS JOIN LATERAL (
               SELECT i.tableoid AS toid, i.ctid AS tid FROM invocations i
                WHERE i.tenant = s.tenant AND i.invocation_id = s.invocation_id
                  AND i.started_at = d.started_at AND NOT i.has_stop
                  FOR UPDATE) v
         ORDER BY s.position),
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
         WHERE i.tableoid = a.toid AND i.ctid = a.tid AND a.type IS DISTINCT FROM 'resource'
        RETURNING i.*),
    -- Samples of running invocations: the peaks so far, as invocation_apply keeps them.
    sampled AS (
        UPDATE invocations i SET
            max_rss_kb = greatest(i.max_rss_kb, a.samples_max_rss_kb),
            cpu_user_us = greatest(i.cpu_user_us, a.samples_cpu_user_us),
            cpu_sys_us = greatest(i.cpu_sys_us, a.samples_cpu_sys_us), updated_at = now()
          FROM alone a
         WHERE i.tableoid = a.toid AND i.ctid = a.tid AND a.type = 'resource'
        RETURNING i.tenant, i.invocation_id),
    deltas AS (
        INSERT INTO usage_delta
        SELECT v.tenant, v.function, v.started_at, 1, v.memory_mb, v.status = 'ok',
               coalesce(v.cold_start, false), v.duration_us, v.init_us, v.max_rss_kb,
               v.cpu_user_us + v.cpu_sys_us, v.bytes_in, v.bytes_out
          FROM stopped v)
    SELECT v.tenant, v.invocation_id FROM stopped v
    UNION ALL SELECT s.tenant, s.invocation_id FROM sampled s;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF p_all AND n <> jsonb_array_length(p_stops) THEN
        RAISE EXCEPTION 'a stop or sample of a stored invocation found it stopped already, or moved'
            USING ERRCODE = 'FM001',
                  HINT = 'meterd stores such a batch on the staged path';
    END IF;
END $$;
