-- Unranked listing of a qualification's chunks (with or without embedding); the pre-qualification
-- variant replaces the one owner predicate (search/_sql.py).
-- $1 owner id, $2 agent names jsonb, $3 categories jsonb, $4 min confidence, $5 only validated,
-- $6 agent name substring, $7 filter fallback, $8 limit (NULL = all).
WITH base AS MATERIALIZED (
    SELECT d.id, d.pre_qualification_id, d.qualification_id, d.agent_name, d.chunk_type, d.chunk_index,
           d.content, d.metadata, d.chunk_category, d.confidence, (d.validated_at IS NOT NULL) AS is_validated, d.created_at,
           coalesce($2::jsonb ? d.agent_name, $2::jsonb IS NULL) AS matches
    FROM "deal_embeddings" d
    WHERE d."qualification_id" = $1  -- citus: AND d."tenant_id" = :tenant
      AND ($3::jsonb IS NULL OR coalesce($3::jsonb ? d.chunk_category, false))
      AND ($4::int4 IS NULL OR d.confidence >= $4)
      AND (NOT $5::bool OR d.validated_at IS NOT NULL)
      AND ($6::text IS NULL OR strpos(lower(d.agent_name), lower($6)) > 0)
)
SELECT b.* FROM base b
WHERE b.matches OR ($7::bool AND NOT EXISTS (SELECT 1 FROM base WHERE matches))
ORDER BY b.created_at NULLS LAST, b.id
LIMIT $8
