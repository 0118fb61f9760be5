-- The comparison sizes servers for the busiest hour's mean load, and a server with less
-- memory than one invocation's configured memory cannot run that invocation at all, however
-- rarely it comes. usage_monthly now keeps, per tenant, function and month, the largest
-- configured memory of an invocation folded into it, so that the comparison of every tenant
-- reads it from this small rollup rather than from every row of usage_hourly (4.7 million
-- for 1,000 tenants and 10 million invocations a month). The fold raises it; a retraction
-- leaves it, so a size whose invocations were all taken back still counts while the
-- function has invocations left that month.
ALTER TABLE usage_monthly ADD COLUMN max_memory_mb integer NOT NULL DEFAULT 0;

UPDATE usage_monthly m
   SET max_memory_mb = coalesce((SELECT max(h.memory_mb) FROM usage_hourly h
                                  WHERE h.tenant = m.tenant AND h.function = m.function
                                    AND h.hour >= m.month
                                    AND h.hour < m.month + interval '1 month'
                                    AND h.invocations > 0), 0);

-- A fold of an earlier build would leave the new column at 0: it is refused, as 015 refuses
-- one that does not keep usage_rated_hourly (a fold says which rollups it keeps).
CREATE OR REPLACE FUNCTION usage_rated_writer_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('faasmeter.rollups', true), '') < '020' THEN
        RAISE EXCEPTION 'usage_rated: written by a fold older than schema 020, which would'
                        ' leave usage_monthly''s largest memory short'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'run meterd and faasbill of the build that migrated the database';
    END IF;
    RETURN NULL;
END $$;

ALTER FUNCTION plan_register(text, bigint, bigint, boolean, text, integer, integer, integer,
                             jsonb)
    SET faasmeter.rollups = '020';
