-- Executions counted in every hour they run in, for sizing servers.
--
-- usage_tenant_hourly dates an execution by the hour it started, so that an hour's
-- duration_us also held the time of runs that went on into the next hours: one run of a day
-- made its first hour look like 24 executions at once, and the comparison sized servers for
-- that. The busy_* columns share each execution out over the hours of [start, start +
-- duration): busy_us its time in the hour, busy_mb_us its configured MB x that time, and
-- busy_cpu_us its CPU time in proportion (by cumulative floors, so that the shares add up to
-- the whole exactly). meterd's fold keeps them (meter/fold.c); the comparison sizes servers
-- by them (meter/compare_stats.c). The columns dated by the start stay as they were.
--
-- The fold's lock first, as the fold takes it before the rollups: no fold runs meanwhile,
-- and the two cannot deadlock. (A meterd of an earlier build must not run through this: its
-- sessions' staging tables predate the new columns, and its fold would leave them out.
-- Stop meterd, migrate, then start the new one.)
SELECT pg_advisory_xact_lock(hashtext('faasmeter.fold'));

ALTER TABLE usage_tenant_hourly
    ADD COLUMN busy_us     bigint  NOT NULL DEFAULT 0,
    ADD COLUMN busy_cpu_us bigint  NOT NULL DEFAULT 0,
    ADD COLUMN busy_mb_us  numeric NOT NULL DEFAULT 0;

-- One execution's shares, hour by hour: the same arithmetic as the fold's, which a test
-- checks against it.
CREATE FUNCTION usage_busy_spread(p_started timestamptz, p_duration_us bigint, p_cpu_us bigint,
                                  p_memory_mb integer)
RETURNS TABLE (hour timestamptz, busy_us bigint, busy_cpu_us bigint, busy_mb_us numeric)
LANGUAGE sql IMMUTABLE AS $$
    WITH parts AS (
        SELECT h,
               least(s + p_duration_us, hu + 3600000000) - greatest(s, hu) AS part,
               sum(least(s + p_duration_us, hu + 3600000000) - greatest(s, hu))
                   OVER (ORDER BY h) AS upto
          FROM (SELECT (extract(epoch FROM p_started) * 1000000)::bigint AS s) t,
               generate_series(date_trunc('hour', p_started, 'UTC'),
                               p_started + greatest(p_duration_us - 1, 0) * interval '1 microsecond',
                               interval '1 hour') h,
               LATERAL (SELECT (extract(epoch FROM h) * 1000000)::bigint AS hu) x),
    cpu AS (
        SELECT h, part,
               CASE WHEN p_duration_us > 0 THEN div(p_cpu_us::numeric * upto, p_duration_us)
                    ELSE p_cpu_us END AS cpu_upto
          FROM parts)
    SELECT h, part,
           (cpu_upto - coalesce(lag(cpu_upto) OVER (ORDER BY h), 0))::bigint,
           p_memory_mb::numeric * part
      FROM cpu
$$;

-- What was folded before: every stopped invocation as it stands, less what is still pending
-- (those deltas fold later, with their shares).
WITH src AS (
    SELECT i.tenant, i.started_at, coalesce(i.duration_us, 0) AS duration_us,
           coalesce(i.cpu_user_us, 0) + coalesce(i.cpu_sys_us, 0) AS cpu_us,
           coalesce(i.memory_mb, 0) AS memory_mb, 1 AS sign
      FROM invocations i WHERE i.has_stop
    UNION ALL
    SELECT d.tenant, d.started_at, d.duration_us, d.cpu_us, d.memory_mb, -d.sign
      FROM usage_delta d),
spread AS (
    SELECT s.tenant, b.hour, sum(s.sign * b.busy_us) AS bu, sum(s.sign * b.busy_cpu_us) AS bc,
           sum(s.sign * b.busy_mb_us) AS bm
      FROM src s, usage_busy_spread(s.started_at, s.duration_us, s.cpu_us, s.memory_mb) b
     GROUP BY 1, 2)
INSERT INTO usage_tenant_hourly AS u (tenant, hour, invocations, errors, cold_starts,
                                      duration_us, mb_us, cpu_us, busy_us, busy_cpu_us,
                                      busy_mb_us)
SELECT tenant, hour, 0, 0, 0, 0, 0, 0, bu, bc, bm FROM spread
ON CONFLICT (tenant, hour) DO UPDATE SET
    busy_us = excluded.busy_us, busy_cpu_us = excluded.busy_cpu_us,
    busy_mb_us = excluded.busy_mb_us;
