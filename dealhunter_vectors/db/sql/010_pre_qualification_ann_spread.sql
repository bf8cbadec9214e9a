-- Migration 10: the global search also returns how spread out its result is (issue 22).
--
-- dealhunter_pre_qualification_ann_spread(q, exclude_id, max_distance, row_limit, base, growth,
-- cap, max_scan, spread_rows) is migration 007's dealhunter_pre_qualification_ann (the same SET
-- clauses, the same statement, the same rows, frontier, candidates and ef) with two changes:
-- * the candidate count c = least(cap, greatest(base, ceil(base * (rows / 10,000)^growth)))
--   (rows: the planner's estimate for pre_qualifications), the growth a parameter (007: 0.6);
-- * one more column, centre_norm: the norm of the mean of the unit description embeddings of
--   the first spread_rows rows of the result (NULL with fewer than 2). With n such rows,
--   n / (n - 1) * (1 - centre_norm^2) is their mean pairwise cosine distance, which the search
--   compares with their mean distance to the query to decide whether to widen
--   (search/global_search.py, docs/design.md "Global search"). The candidates carry the heap's
--   TOAST pointer of the embedding (not the 12 KB value), so only these rows are read again:
--   ~0.3 ms for 10 rows at 10,000 rows (a join back to pre_qualifications by id cost ~0.5 ms).
-- 007's function stays (a library older than this migration calls it).
-- Rows whose norm lies outside [1e-12, 1e15] (migration 008) need no filter here: every such row is
-- below 1e-12 (a component above 65504 cannot be cast to halfvec, so no such row can be stored while
-- the index exists), its halfvec is the zero vector, and pgvector's HNSW cosine index skips
-- zero-norm vectors: the index never returns one (tests/db/test_norm_constraints.py).

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
        SELECT CASE WHEN count(*) >= 2 THEN vector_norm(avg(l2_normalize(t.e))) END AS centre_norm
        FROM (SELECT s.e FROM s ORDER BY s.distance, s.id LIMIT spread_rows) t
    )
    SELECT s.id, s.distance, f.frontier, f.candidates, c, spread.centre_norm
    FROM f CROSS JOIN spread
    LEFT JOIN s ON true
    ORDER BY s.distance, s.id;
END
$$;
