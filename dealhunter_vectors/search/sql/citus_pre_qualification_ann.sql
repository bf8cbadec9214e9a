-- Citus form of the index (HNSW halfvec) duplicate search: $1 query vector, $2 excluded id,
-- $3 max distance, $4 limit, $5 candidate count. The CTE is a distributed top-k: each shard
-- returns its best $5 rows by the halfvec index (with the exact distance computed there), the
-- coordinator keeps the best $5 of them by half distance; the outer query re-ranks those
-- candidates by the exact vector distance. As on a single node (pre_qualification_ann.sql) every
-- row also carries the candidates' count and the farthest candidate's exact distance (the
-- frontier), with one row of NULLs when nothing matches, so the same widening rule applies
-- (search/global_search.py). The hnsw.* settings reach the shards through
-- citus.propagate_set_commands = 'local' (dealhunter_vectors.layout.citus.set_local). Rows whose
-- norm lies outside [1e-12, 1e15] are filtered on the shards (the iterative scan goes on past them).
WITH cand AS MATERIALIZED (
    SELECT p.id, p.description_embedding <=> $1::vector AS distance
    FROM "pre_qualifications" p
    WHERE p.description_embedding IS NOT NULL
      AND p.extracted_requirements IS NOT NULL
      AND ($2::text IS NULL OR p.id <> $2::text)
      AND vector_norm(p.description_embedding) BETWEEN '1e-12'::float8 AND '1e15'::float8
    ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
    LIMIT $5
)
SELECT s.id, s.distance, f.frontier, f.candidates
FROM (SELECT max(distance) FILTER (WHERE distance <> 'NaN'::float8) AS frontier, count(*) AS candidates FROM cand) f
LEFT JOIN LATERAL (
    SELECT id, distance FROM cand
    WHERE distance <= $3::float8
    ORDER BY distance, id
    LIMIT $4
) s ON true
ORDER BY s.distance, s.id
