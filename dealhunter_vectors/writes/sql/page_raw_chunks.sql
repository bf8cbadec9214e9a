-- One page of a pre-qualification's raw chunks ($1), in id order after id $2 (NULL: the first
-- page); $3 page size; $4 with the embeddings.
SELECT c."id", c."pre_qualification_id", c."chunk_index", c."content", c."token_count", c."metadata",
       (c."embedding" IS NOT NULL) AS "has_embedding", CASE WHEN $4::bool THEN c."embedding" END AS "embedding",
       c."created_at", c."embedding_model", c."embedding_content_hash"
FROM "raw_chunks" c
WHERE c."pre_qualification_id" = $1  -- citus: AND c."pre_qualification_id" = :tenant
  AND ($2::text IS NULL OR c."id" > $2::text)
ORDER BY c."id"
LIMIT $3
