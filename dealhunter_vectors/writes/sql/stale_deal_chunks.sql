-- Deal chunks to (re-)embed for the model $2, in id order after id $4 (NULL: from the start),
-- at most $5: rows whose slot {vector} is NULL, has no recorded model or content hash
-- (written by another writer), another model, or a hash that is not the current content's.
-- Rows without an `embedding` at all (screenshot chunks) only with $3. $1: the owner (NULL:
-- every row); the pre-qualification variant replaces the owner predicate. {vector}, {model},
-- {hash}: the embedding slot's columns (writes/statements.py).
SELECT d."id", d."content", "dealhunter_content_hash"(d."content") AS "content_hash",
       d.{model} AS "embedding_model",
       CASE WHEN d.{vector} IS NULL THEN 'no_embedding'
            WHEN d.{model} IS NULL OR d.{hash} IS NULL THEN 'unknown'
            WHEN d.{model} <> $2::text THEN 'model'
            ELSE 'content' END AS "reason"
FROM "deal_embeddings" d
WHERE ($1::text IS NULL OR d."qualification_id" = $1::text)  -- citus: AND d."tenant_id" = :tenant
  AND ($4::text IS NULL OR d."id" > $4::text)
  AND (d."embedding" IS NOT NULL OR $3::bool)
  AND (d.{vector} IS NULL OR d.{model} IS DISTINCT FROM $2::text
       OR d.{hash} IS DISTINCT FROM "dealhunter_content_hash"(d."content"))
ORDER BY d."id"
LIMIT $5
