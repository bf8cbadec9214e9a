-- Migration 7: the global (duplicate-check) HNSW search as one server-side function call.
--
-- The index search needs five settings: hnsw.ef_search (the candidate count), the iterative
-- scan, hnsw.max_scan_tuples, enable_seqscan = off (on small tables the planner prefers a seq
-- scan that reads every 12 KB vector through TOAST) and plan_cache_mode = force_custom_plan (a
-- cached generic plan was slower). Set from the client they cost a transaction and extra round
-- trips (4 per search, 2 at best); here the function's SET clauses apply them for the call only
-- (PostgreSQL restores every one of them when the function returns, also the ones changed
-- inside with set_config: they are listed in SET), so a search is one statement, one round trip.
--
-- dealhunter_pre_qualification_ann(q, exclude_id, max_distance, row_limit, base, cap, max_scan):
-- candidate count c = least(cap, greatest(base, ceil(base * (rows / 10,000)^0.6))) from the
-- planner's row estimate of pre_qualifications; rows = the best row_limit candidates with
-- exact distance <= max_distance (ties by id), each with the candidates' count, the largest
-- exact distance among them (the scan's frontier) and c; with no match one row of NULLs
-- carries them. The statement is search/sql/pre_qualification_ann.sql with the parameters
-- named (tests/test_global_adaptive.py checks both give the same rows).

CREATE OR REPLACE FUNCTION "dealhunter_pre_qualification_ann"(
    q vector, exclude_id text, max_distance float8, row_limit integer,
    base integer, cap integer, max_scan integer
)
RETURNS TABLE (id text, distance float8, frontier float8, candidates bigint, ef integer)
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
    SELECT least(cap, greatest(base, ceil(base * power(greatest(cl.reltuples, 0) / 10000.0, 0.6))::integer))
      INTO c
      FROM pg_class cl
     WHERE cl.oid = to_regclass('"pre_qualifications"');
    c := coalesce(c, base);
    PERFORM set_config('hnsw.ef_search', c::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', greatest(max_scan, c)::text, true);
    RETURN QUERY
    WITH cand AS MATERIALIZED (
        SELECT k.id, k.description_embedding <=> q AS distance
        FROM (
            SELECT p.id, p.description_embedding
            FROM "pre_qualifications" p
            WHERE p.description_embedding IS NOT NULL
              AND p.extracted_requirements IS NOT NULL
              AND (exclude_id IS NULL OR p.id <> exclude_id)
            ORDER BY (p.description_embedding)::halfvec(3072) <=> (q)::halfvec(3072)
            LIMIT c
        ) k
    )
    SELECT s.id, s.distance, f.frontier, f.candidates, c
    FROM (SELECT max(cand.distance) FILTER (WHERE cand.distance <> 'NaN'::float8) AS frontier,
                 count(*) AS candidates
          FROM cand) f
    LEFT JOIN LATERAL (
        SELECT cand.id, cand.distance FROM cand
        WHERE cand.distance <= max_distance
        ORDER BY cand.distance, cand.id
        LIMIT row_limit
    ) s ON true
    ORDER BY s.distance, s.id;
END
$$;
