-- Exact scan of every pre-qualification with a description embedding and requirements.
-- $1 query vector, $2 excluded id (NULL = none), $3 max distance, $4 limit (NULL = all).
-- Rows whose norm lies outside [1e-12, 1e15] (written by another writer before migration 008's
-- check; pgvector's float32 cosine of such a row is meaningless) are skipped. The norm is
-- computed only for rows within the distance; vector(..., 3072, false) detoasts each 12 KB
-- value once for both.
SELECT s.id, s.distance
FROM (
    SELECT d.id, d.e, d.e <=> $1::vector AS distance
    FROM (
        SELECT p.id, vector(p.description_embedding, 3072, false) AS e
        FROM "pre_qualifications" p
        WHERE p.description_embedding IS NOT NULL
          AND p.extracted_requirements IS NOT NULL
          AND ($2::text IS NULL OR p.id <> $2::text)
        OFFSET 0
    ) d
    OFFSET 0
) s
WHERE s.distance <= $3
  AND vector_norm(s.e) BETWEEN '1e-12'::float8 AND '1e15'::float8
ORDER BY s.distance, s.id
LIMIT $4
