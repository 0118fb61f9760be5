-- close_orphans locked the invocations it closes in start-time order, while ingestion locks
-- in key order (tenant, then invocation id, in the "C" collation): a sweep and a batch that
-- met on two invocations could deadlock, and one of them failed. The sweep still picks the
-- oldest starts, and now locks them in key order. Like invocation_apply (008), it reaches
-- every row through an index whatever the planner made of small tables at first call.
CREATE OR REPLACE FUNCTION close_orphans(p_grace interval, p_policy text, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
SET jit = off
SET enable_seqscan = off
AS $$
DECLARE
    cand record;
    inv invocations;
    n integer := 0;
BEGIN
    IF p_policy NOT IN ('timeout', 'none') THEN
        RAISE EXCEPTION 'orphan policy must be timeout or none, not %', p_policy;
    END IF;
    -- Hold off plan_register until this commits, as ingestion does (see 009).
    LOCK TABLE plans IN ROW SHARE MODE;
    -- The oldest first, but locked in key order, as ingestion locks.
    FOR cand IN
        SELECT c.tenant, c.invocation_id FROM (
            SELECT i.tenant, i.invocation_id FROM invocations i
             WHERE i.has_start AND NOT i.has_stop
               AND i.started_at + i.timeout_ms * interval '1 millisecond' + p_grace < now()
             ORDER BY i.started_at
             LIMIT p_limit) c
         ORDER BY c.tenant COLLATE "C", c.invocation_id COLLATE "C"
    LOOP
        -- The same lock order as ingestion (invocation_ids, then the row), and a second
        -- look under the lock: a stop may have come meanwhile.
        PERFORM 1 FROM invocation_ids
          WHERE tenant = cand.tenant AND invocation_id = cand.invocation_id FOR UPDATE;
        SELECT i.* INTO inv FROM invocations i JOIN invocation_ids d
            ON d.tenant = i.tenant AND d.invocation_id = i.invocation_id
           AND d.started_at = i.started_at
         WHERE i.tenant = cand.tenant AND i.invocation_id = cand.invocation_id
         FOR UPDATE OF i;
        IF NOT FOUND OR inv.has_stop OR NOT inv.has_start
           OR inv.started_at + inv.timeout_ms * interval '1 millisecond' + p_grace >= now() THEN
            CONTINUE;
        END IF;
        inv.has_stop := true;
        inv.status := 'lost';
        inv.exit_code := 0;
        inv.duration_us := CASE p_policy WHEN 'timeout' THEN inv.timeout_ms * 1000 ELSE 0 END;
        inv.init_us := 0;
        inv.stopped_at := inv.started_at + inv.duration_us * interval '1 microsecond';
        inv.cpu_user_us := coalesce(inv.cpu_user_us, 0);
        inv.cpu_sys_us := coalesce(inv.cpu_sys_us, 0);
        inv.max_rss_kb := coalesce(inv.max_rss_kb, 0);
        inv.bytes_in := 0;
        inv.bytes_out := 0;
        inv.updated_at := now();
        UPDATE invocations SET
            has_stop = true, status = inv.status, exit_code = inv.exit_code,
            duration_us = inv.duration_us, init_us = 0, stopped_at = inv.stopped_at,
            cpu_user_us = inv.cpu_user_us, cpu_sys_us = inv.cpu_sys_us,
            max_rss_kb = inv.max_rss_kb, bytes_in = 0, bytes_out = 0,
            updated_at = inv.updated_at
         WHERE tenant = inv.tenant AND invocation_id = inv.invocation_id
           AND started_at = inv.started_at;
        PERFORM usage_apply(inv, 1);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
