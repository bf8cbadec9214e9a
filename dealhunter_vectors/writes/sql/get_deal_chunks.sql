-- The deal chunks with the ids $1 (any order; missing ids have no row); $2 with the embeddings.
SELECT d."id", d."pre_qualification_id", d."qualification_id", d."agent_name", d."chunk_type",
       d."chunk_index", d."content", d."metadata", (d."embedding" IS NOT NULL) AS "has_embedding",
       CASE WHEN $2::bool THEN d."embedding" END AS "embedding", d."chunk_category", d."confidence",
       d."requires_validation", d."validated_at", d."validated_by", d."created_at", d."updated_at",
       d."embedding_model", d."embedding_content_hash"
FROM "deal_embeddings" d
WHERE d."id" = ANY($1::text[])
