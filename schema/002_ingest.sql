-- Ingestion: one call per record stores it exactly once and folds it into its invocation
-- and the hourly usage, inside the caller's transaction.

-- Create the month partition of a table partitioned by a timestamptz range, when missing.
-- Partitions are named <table>_YYYY_MM. Concurrent creators take turns on an advisory
-- lock; one that still finds the partition made meanwhile (its catalog view can lag behind
-- the lock) takes the duplicate as done.
CREATE FUNCTION ensure_month_partition(p_table text, p_time timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m    timestamp := date_trunc('month', p_time AT TIME ZONE 'UTC');
    name text := p_table || '_' || to_char(m, 'YYYY_MM');
BEGIN
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('faasmeter.partitions'));
    BEGIN
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I'
                       ' FOR VALUES FROM (%L) TO (%L)',
                       name, p_table, m AT TIME ZONE 'UTC',
                       (m + interval '1 month') AT TIME ZONE 'UTC');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL;
    END;
END $$;

-- Add (sign 1) or retract (sign -1) one finished invocation's share of usage_hourly.
CREATE FUNCTION usage_apply(inv invocations, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hourly AS u (tenant, function, hour, memory_mb, invocations, errors,
                                   cold_starts, duration_us, init_us, cpu_us, bytes_in,
                                   bytes_out)
    VALUES (inv.tenant, inv.function, date_trunc('hour', inv.started_at AT TIME ZONE 'UTC')
                                          AT TIME ZONE 'UTC',
            inv.memory_mb, sign,
            sign * (inv.status <> 'ok')::integer,
            sign * coalesce(inv.cold_start, false)::integer,
            sign * inv.duration_us, sign * inv.init_us,
            sign * (inv.cpu_user_us + inv.cpu_sys_us), sign * inv.bytes_in,
            sign * inv.bytes_out)
    ON CONFLICT (tenant, function, hour, memory_mb) DO UPDATE SET
        invocations = u.invocations + excluded.invocations,
        errors      = u.errors + excluded.errors,
        cold_starts = u.cold_starts + excluded.cold_starts,
        duration_us = u.duration_us + excluded.duration_us,
        init_us     = u.init_us + excluded.init_us,
        cpu_us      = u.cpu_us + excluded.cpu_us,
        bytes_in    = u.bytes_in + excluded.bytes_in,
        bytes_out   = u.bytes_out + excluded.bytes_out;
END $$;

-- Fold one new record into its invocation row (creating it on the first record of the
-- invocation) and keep usage_hourly in step: the row's old share is retracted and its new
-- share added, so any arrival order gives the same result.
CREATE FUNCTION invocation_apply(p_tenant text, p_type text, p_time timestamptz, r jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_inv_id text := r->>'invocation_id';
    v_estimate timestamptz;
    v_at timestamptz;
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

    IF p_type = 'start' THEN
        inv.has_start := true;
        inv.timeout_ms := (r->>'timeout_ms')::bigint;
        inv.trigger := r->>'trigger';
        inv.correlation_id := coalesce(inv.correlation_id, r->>'correlation_id');
        IF NOT inv.has_stop THEN
            inv.memory_mb := (r->>'memory_mb')::integer;
            inv.cold_start := (r->>'cold_start')::boolean;
        END IF;
        -- The start's own time is the truth; the stop only estimated it.
        IF inv.started_at <> p_time THEN
            PERFORM ensure_month_partition('invocations', p_time);
            UPDATE invocation_ids SET started_at = p_time
             WHERE tenant = p_tenant AND invocation_id = v_inv_id;
            UPDATE invocations SET started_at = p_time
             WHERE tenant = p_tenant AND invocation_id = v_inv_id AND started_at = v_at;
            inv.started_at := p_time;
            v_at := p_time;
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

-- Store one validated record exactly once. Returns 'accepted', 'duplicate' (the same id
-- with the same content is stored already) or 'conflict' (the same id, other content).
CREATE FUNCTION ingest_record(p_tenant text, p_id text, p_digest bytea, p_type text,
                              p_time timestamptz, p_body jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_digest bytea;
BEGIN
    INSERT INTO record_ids VALUES (p_tenant, p_id, p_digest, p_time) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT digest INTO v_digest FROM record_ids WHERE tenant = p_tenant AND id = p_id;
        RETURN CASE WHEN v_digest = p_digest THEN 'duplicate' ELSE 'conflict' END;
    END IF;
    INSERT INTO tenants (tenant) VALUES (p_tenant) ON CONFLICT DO NOTHING;
    PERFORM ensure_month_partition('records', p_time);
    INSERT INTO records (tenant, id, type, invocation_id, time, body)
    VALUES (p_tenant, p_id, p_type, p_body->>'invocation_id', p_time, p_body);
    PERFORM invocation_apply(p_tenant, p_type, p_time, p_body);
    RETURN 'accepted';
END $$;
