-- A stop without its start dates its invocation by its time less its duration (DESIGN.md),
-- whatever came before it. A resource sample that comes first of its invocation stores the
-- row at the sample's own time, the only one it knows; a start moves the row to its own
-- time (002), but a stop left it there, so the run was billed in the sample's hour, and in
-- the sample's month when the two sides of a month's end differed: a stop at 00:00:10 on
-- 1 February of a 20 s run whose sample came at 00:00:05 went to February, and to January
-- when both came in one batch. invocation_apply now moves such a row to the stop's date,
-- as it moves one to a start's, and invocations_stop (016) leaves those stops to it: with
-- p_all (meterd's direct path) the batch goes to the staged path, without (the staged
-- path's lone stops) the stop goes through invocation_apply.

-- 002's invocation_apply, with 008's setting, and the stop's move.
CREATE OR REPLACE FUNCTION invocation_apply(p_tenant text, p_type text, p_time timestamptz,
                                            r jsonb)
RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    v_inv_id text := r->>'invocation_id';
    v_estimate timestamptz;
    v_at timestamptz;
    v_date timestamptz;
    inv invocations;
BEGIN
    v_estimate := CASE p_type
        WHEN 'stop' THEN p_time - (r->>'duration_us')::bigint * interval '1 microsecond'
        ELSE p_time END;

    SELECT started_at INTO v_at FROM invocation_ids
     WHERE tenant = p_tenant AND invocation_id = v_inv_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO invocation_ids VALUES (p_tenant, v_inv_id, v_estimate)
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            PERFORM ensure_month_partition('invocations', v_estimate);
            INSERT INTO invocations (tenant, invocation_id, started_at, function)
            VALUES (p_tenant, v_inv_id, v_estimate, r->>'function');
            v_at := v_estimate;
        ELSE
            -- Another transaction created it meanwhile; wait for it and use its row.
            SELECT started_at INTO v_at FROM invocation_ids
             WHERE tenant = p_tenant AND invocation_id = v_inv_id FOR UPDATE;
        END IF;
    END IF;

    SELECT * INTO inv FROM invocations
     WHERE tenant = p_tenant AND invocation_id = v_inv_id AND started_at = v_at FOR UPDATE;
    IF inv.has_stop THEN
        PERFORM usage_apply(inv, -1);
    END IF;

    -- The row moves to the run's date when it is better known: the start's own time is the
    -- truth; without its start, a stop dates the run by its time less its duration, as it
    -- does alone (a resource sample that came first stored the row at its own time).
    v_date := CASE WHEN p_type = 'start' OR (p_type = 'stop' AND NOT inv.has_start)
                   THEN v_estimate END;
    IF v_date IS NOT NULL AND inv.started_at <> v_date THEN
        PERFORM ensure_month_partition('invocations', v_date);
        UPDATE invocation_ids SET started_at = v_date
         WHERE tenant = p_tenant AND invocation_id = v_inv_id;
        UPDATE invocations SET started_at = v_date
         WHERE tenant = p_tenant AND invocation_id = v_inv_id AND started_at = v_at;
        inv.started_at := v_date;
        v_at := v_date;
    END IF;

    IF p_type = 'start' THEN
        inv.has_start := true;
        inv.timeout_ms := (r->>'timeout_ms')::bigint;
        inv.trigger := r->>'trigger';
        inv.correlation_id := coalesce(inv.correlation_id, r->>'correlation_id');
        IF NOT inv.has_stop THEN
            inv.memory_mb := (r->>'memory_mb')::integer;
            inv.cold_start := (r->>'cold_start')::boolean;
        END IF;
    ELSIF p_type = 'stop' THEN
        inv.has_stop := true;
        inv.memory_mb := (r->>'memory_mb')::integer;
        inv.cold_start := (r->>'cold_start')::boolean;
        inv.correlation_id := coalesce(inv.correlation_id, r->>'correlation_id');
        inv.stopped_at := p_time;
        inv.duration_us := (r->>'duration_us')::bigint;
        inv.init_us := (r->>'init_us')::bigint;
        inv.status := r->>'status';
        inv.exit_code := (r->>'exit_code')::integer;
        inv.cpu_user_us := (r->>'cpu_user_us')::bigint;
        inv.cpu_sys_us := (r->>'cpu_sys_us')::bigint;
        inv.max_rss_kb := greatest(inv.max_rss_kb, (r->>'max_rss_kb')::bigint);
        inv.bytes_in := (r->>'bytes_in')::bigint;
        inv.bytes_out := (r->>'bytes_out')::bigint;
    ELSE
        -- A resource sample: the peak so far; the stop's figures are final.
        inv.max_rss_kb := greatest(inv.max_rss_kb, (r->>'max_rss_kb')::bigint);
        IF NOT inv.has_stop THEN
            inv.cpu_user_us := greatest(inv.cpu_user_us, (r->>'cpu_user_us')::bigint);
            inv.cpu_sys_us := greatest(inv.cpu_sys_us, (r->>'cpu_sys_us')::bigint);
        END IF;
    END IF;
    inv.updated_at := now();

    UPDATE invocations SET
        has_start = inv.has_start, has_stop = inv.has_stop, memory_mb = inv.memory_mb,
        timeout_ms = inv.timeout_ms, cold_start = inv.cold_start, trigger = inv.trigger,
        correlation_id = inv.correlation_id, stopped_at = inv.stopped_at,
        duration_us = inv.duration_us, init_us = inv.init_us, status = inv.status,
        exit_code = inv.exit_code, cpu_user_us = inv.cpu_user_us,
        cpu_sys_us = inv.cpu_sys_us, max_rss_kb = inv.max_rss_kb, bytes_in = inv.bytes_in,
        bytes_out = inv.bytes_out, updated_at = inv.updated_at
     WHERE tenant = p_tenant AND invocation_id = v_inv_id AND started_at = v_at;

    IF inv.has_stop THEN
        PERFORM usage_apply(inv, 1);
    END IF;
END $$;

-- 016's invocations_stop; a stop of a row it would move is left to invocation_apply.
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
              AND (i.has_start OR s.e->>'type' = 'resource'
                   OR i.started_at = (s.e->>'time')::timestamptz
                                     - (s.e->>'duration_us')::bigint
                                       * interval '1 microsecond')
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

-- 016 as first shipped also turned hash and merge joins off in invocations_stop_locked; the
-- later text of 016 does not, and neither does invocations_stop above. A database migrated
-- with the first text is brought to the same settings.
ALTER FUNCTION invocations_stop_locked(jsonb, bigint[], oid[], tid[], timestamptz[],
                                       boolean[], bigint[])
    RESET enable_hashjoin;
ALTER FUNCTION invocations_stop_locked(jsonb, bigint[], oid[], tid[], timestamptz[],
                                       boolean[], bigint[])
    RESET enable_mergejoin;
