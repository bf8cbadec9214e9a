-- The raw chunks with the ids $1 (any order; missing ids have no row); $2 with the embeddings.
SELECT c."id", c."pre_qualification_id", c."chunk_index", c."content", c."token_count", c."metadata",
       (c."embedding" IS NOT NULL) AS "has_embedding", CASE WHEN $2::bool THEN c."embedding" END AS "embedding",
       c."created_at", c."embedding_model", c."embedding_content_hash"
FROM "raw_chunks" c
WHERE c."id" = ANY($1::text[])
