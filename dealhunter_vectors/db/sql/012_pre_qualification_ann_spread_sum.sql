-- Migration 12: the global search's spread column computed with sum instead of avg (issue 22).
--
-- dealhunter_pre_qualification_ann_spread (migration 010) computed centre_norm, the norm of the
-- mean of the result rows' unit vectors, as vector_norm(avg(l2_normalize(e))). pgvector's avg
-- keeps a float8 array state per row (3072 doubles copied per step); sum adds float32 vectors:
-- vector_norm(sum(l2_normalize(e))) / count(*) is the same value (within 1e-5 for 10 unit
-- vectors) and 0.19 ms less per global search at 10,000 rows (~9 % of the call;
-- benchmarks/bench_global_function.py, docs/benchmarks.md). Same signature, SET clauses,
-- statement and rows; only the spread's expression changes.

CREATE OR REPLACE FUNCTION "dealhunter_pre_qualification_ann_spread"(
    q vector, exclude_id text, max_distance float8, row_limit integer,
    base integer, growth float8, cap integer, max_scan integer, spread_rows integer
)
RETURNS TABLE (id text, distance float8, frontier float8, candidates bigint, ef integer, centre_norm float8)
LANGUAGE plpgsql
SET hnsw.ef_search = 100
SET hnsw.max_scan_tuples = 50000
SET hnsw.iterative_scan = relaxed_order
SET enable_seqscan = off
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    c integer;
BEGIN
    SELECT least(cap, greatest(base, ceil(base * power(greatest(cl.reltuples, 0) / 10000.0, growth))::integer))
      INTO c
      FROM pg_class cl
     WHERE cl.oid = to_regclass('"pre_qualifications"');
    c := coalesce(c, least(cap, base));
    PERFORM set_config('hnsw.ef_search', c::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', greatest(max_scan, c)::text, true);
    RETURN QUERY
    WITH cand AS MATERIALIZED (
        SELECT k.id, k.description_embedding AS e, k.description_embedding <=> q AS distance
        FROM (
            SELECT p.id, p.description_embedding
            FROM "pre_qualifications" p
            WHERE p.description_embedding IS NOT NULL
              AND p.extracted_requirements IS NOT NULL
              AND (exclude_id IS NULL OR p.id <> exclude_id)
            ORDER BY (p.description_embedding)::halfvec(3072) <=> (q)::halfvec(3072)
            LIMIT c
        ) k
    ), f AS (
        SELECT max(cand.distance) FILTER (WHERE cand.distance <> 'NaN'::float8) AS frontier,
               count(*) AS candidates
        FROM cand
    ), s AS MATERIALIZED (
        SELECT cand.id, cand.e, cand.distance FROM cand
        WHERE cand.distance <= max_distance
        ORDER BY cand.distance, cand.id
        LIMIT row_limit
    ), spread AS (
        SELECT CASE WHEN count(*) >= 2 THEN vector_norm(sum(l2_normalize(t.e))) / count(*) END AS centre_norm
        FROM (SELECT s.e FROM s ORDER BY s.distance, s.id LIMIT spread_rows) t
    )
    SELECT s.id, s.distance, f.frontier, f.candidates, c, spread.centre_norm
    FROM f CROSS JOIN spread
    LEFT JOIN s ON true
    ORDER BY s.distance, s.id;
END
$$;
