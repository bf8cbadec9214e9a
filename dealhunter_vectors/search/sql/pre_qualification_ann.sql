-- HNSW (halfvec) candidates, re-ranked by the exact vector distance.
-- $1 query vector, $2 excluded id, $3 max distance, $4 limit, $5 candidate count.
-- $1 is cast to vector explicitly everywhere: otherwise PostgreSQL infers its type from the
-- halfvec cast in the FROM clause (analysed first) and the "exact" re-rank silently becomes a
-- halfvec distance (vector -> halfvec is an implicit cast).
-- Every row also carries the candidates' count and the largest exact distance among them
-- (the frontier of the scan); with no match one row of NULLs carries them. The search widens
-- the candidate count when the frontier lies close to the result's boundary (global_search.py).
-- Rows whose norm lies outside [1e-12, 1e15] (written by another writer before migration 008's
-- check) are never a result and do not move the frontier; vector(..., 3072, false) detoasts
-- each candidate's 12 KB value once for its distance and its norm.
WITH cand AS MATERIALIZED (
    SELECT c.id, c.e <=> $1::vector AS distance,
           vector_norm(c.e) BETWEEN '1e-12'::float8 AND '1e15'::float8 AS in_range
    FROM (
        SELECT p.id, vector(p.description_embedding, 3072, false) AS e
        FROM "pre_qualifications" p
        WHERE p.description_embedding IS NOT NULL
          AND p.extracted_requirements IS NOT NULL
          AND ($2::text IS NULL OR p.id <> $2::text)
        ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
        LIMIT $5
    ) c
)
SELECT s.id, s.distance, f.frontier, f.candidates
FROM (SELECT max(distance) FILTER (WHERE distance <> 'NaN'::float8 AND in_range) AS frontier,
             count(*) AS candidates
      FROM cand) f
LEFT JOIN LATERAL (
    SELECT id, distance FROM cand
    WHERE distance <= $3 AND in_range
    ORDER BY distance, id
    LIMIT $4
) s ON true
ORDER BY s.distance, s.id
