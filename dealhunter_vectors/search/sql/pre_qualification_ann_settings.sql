-- Settings of one HNSW search, transaction-local when $4 (inside the search's transaction), else
-- session settings of a pooled connection that asyncpg's reset (RESET ALL) clears on release.
-- Sized to the table: the candidate count (hnsw.ef_search) is $1 (the request's base count) scaled by
-- (rows / 10,000)^0.6 from the planner's row estimate, capped at $2. Returns the count.
-- enable_seqscan off: this path exists to use the index (on small tables the planner prefers a
-- seq scan that reads every 12 KB vector through TOAST); force_custom_plan: a prepared statement
-- may otherwise switch to a slower generic plan after five executions (benchmarks/bench_global.py).
SELECT t.c AS candidates,
       set_config('hnsw.ef_search', t.c::text, $4::bool) AS ef_search,
       set_config('hnsw.max_scan_tuples', greatest($3::int, t.c)::text, $4::bool) AS max_scan_tuples,
       set_config('hnsw.iterative_scan', 'relaxed_order', $4::bool) AS iterative_scan,
       set_config('enable_seqscan', 'off', $4::bool) AS enable_seqscan,
       set_config('plan_cache_mode', 'force_custom_plan', $4::bool) AS plan_cache_mode
FROM (
    SELECT least($2::int, greatest($1::int, ceil($1::int * power(greatest(c.reltuples, 0) / 10000.0, 0.6))::int)) AS c
    FROM pg_class c
    WHERE c.oid = to_regclass('"pre_qualifications"')
    UNION ALL
    SELECT $1::int
    LIMIT 1
) t
