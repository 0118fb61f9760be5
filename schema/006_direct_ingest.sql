-- Direct ingestion: the common batch, records of invocations that are new to the database
-- with at most one start and one stop each, is COPYed by meterd straight into record_ids,
-- records, invocation_ids, invocations and usage_delta (meter/store_direct.c). The unique
-- keys of record_ids and invocation_ids stay the judges: when a COPY meets a key that
-- exists (a repeated record, or an invocation that another batch created meanwhile), the
-- transaction is rolled back and the batch takes the staged path of 003, which gives every
-- record its outcome. Records of invocations that exist already take the staged path in
-- the same transaction.

-- Get a batch ready for direct COPY, and tell which of its invocations exist already.
-- p_months: the months its records and invocations fall in; p_inv_tenants and p_inv_ids:
-- its invocations, pairwise. Returns the positions (from 1) of the invocations that exist.
-- (meterd adds the batch's tenants after its COPYs, as ingest_staged adds them after it
-- claims the record ids: one lock order for both paths.)
CREATE FUNCTION ingest_direct_prepare(p_months timestamptz[], p_inv_tenants text[],
                                      p_inv_ids text[])
RETURNS SETOF bigint
LANGUAGE plpgsql
-- One index probe per invocation of the batch: a hash or merge join would read all of
-- invocation_ids for every batch, and a plan made while the table was small would keep
-- doing so as it grows.
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
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
    RETURN QUERY
    SELECT u.ord FROM unnest(p_inv_tenants, p_inv_ids) WITH ORDINALITY AS u(tenant, id, ord)
     WHERE EXISTS (SELECT 1 FROM invocation_ids i
                    WHERE i.tenant = u.tenant AND i.invocation_id = u.id);
END $$;
