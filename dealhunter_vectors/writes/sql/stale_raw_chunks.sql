-- Raw chunks to (re-)embed for the model $2, in id order after id $4 (NULL: from the start),
-- at most $5 (as stale_deal_chunks.sql; $3 is unused: a raw chunk always has an embedding).
-- $1: the pre-qualification (NULL: every row).
SELECT c."id", c."content", "dealhunter_content_hash"(c."content") AS "content_hash",
       c.{model} AS "embedding_model",
       CASE WHEN c.{vector} IS NULL THEN 'no_embedding'
            WHEN c.{model} IS NULL OR c.{hash} IS NULL THEN 'unknown'
            WHEN c.{model} <> $2::text THEN 'model'
            ELSE 'content' END AS "reason"
FROM "raw_chunks" c
WHERE ($1::text IS NULL OR c."pre_qualification_id" = $1::text)  -- citus: AND c."pre_qualification_id" = :tenant
  AND ($4::text IS NULL OR c."id" > $4::text)
  AND (c."embedding" IS NOT NULL OR $3::bool)
  AND (c.{vector} IS NULL OR c.{model} IS DISTINCT FROM $2::text
       OR c.{hash} IS DISTINCT FROM "dealhunter_content_hash"(c."content"))
ORDER BY c."id"
LIMIT $5
