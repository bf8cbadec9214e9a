-- Citus form of the exact duplicate search: $1 query vector, $2 excluded id (NULL = none),
-- $3 max distance, $4 limit (NULL = all). A distributed top-k: every shard computes the exact
-- distances of its rows, filters and sorts them and applies the limit; the coordinator merges
-- the sorted shard results (same rows and order as the single node's exact scan). Rows whose
-- norm lies outside [1e-12, 1e15] are skipped (the norm is computed after the distance test).
SELECT p.id, p.description_embedding <=> $1::vector AS distance
FROM "pre_qualifications" p
WHERE p.description_embedding IS NOT NULL
  AND p.extracted_requirements IS NOT NULL
  AND ($2::text IS NULL OR p.id <> $2::text)
  AND (p.description_embedding <=> $1::vector) <= $3::float8
  AND vector_norm(p.description_embedding) BETWEEN '1e-12'::float8 AND '1e15'::float8
ORDER BY distance, p.id
LIMIT $4
