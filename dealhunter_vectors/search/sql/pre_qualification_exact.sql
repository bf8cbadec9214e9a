-- Exact scan of every pre-qualification with a description embedding and requirements.
-- $1 query vector, $2 excluded id (NULL = none), $3 max distance, $4 limit (NULL = all).
SELECT s.id, s.distance
FROM (
    SELECT p.id, p.description_embedding <=> $1::vector AS distance
    FROM "pre_qualifications" p
    WHERE p.description_embedding IS NOT NULL
      AND p.extracted_requirements IS NOT NULL
      AND ($2::text IS NULL OR p.id <> $2::text)
    OFFSET 0
) s
WHERE s.distance <= $3
ORDER BY s.distance, s.id
LIMIT $4
