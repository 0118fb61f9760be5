-- The fold groups its deltas by hashing, not by sorting them.
--
-- usage_rated takes a row per delta and plan (six plans: 180,000 rows for 30,000 deltas),
-- which fold into a few thousand rollup rows. The planner cannot know how few, and chose
-- to sort all 180,000 rows to group them: 1.1 s for 30,000 deltas, about as slow as
-- meterd stores them on two cores, so the fold fell behind under load. Hashing them and
-- sorting only the groups (the rollups are still written in key order) took 0.6 s.
ALTER FUNCTION usage_fold() SET enable_sort = off;
