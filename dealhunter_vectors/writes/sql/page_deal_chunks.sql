-- One page of a qualification's chunks that match a selector, in id order (keyset: the rows
-- after id $7). The pre-qualification variant replaces the one owner predicate.
-- $1 owner id; $2-$6 the selector of delete_deal_chunks.sql (NULL: any); $7 the last id of
-- the previous page (NULL: the first page); $8 page size; $9 with the embeddings.
SELECT d."id", d."pre_qualification_id", d."qualification_id", d."agent_name", d."chunk_type",
       d."chunk_index", d."content", d."metadata", (d."embedding" IS NOT NULL) AS "has_embedding",
       CASE WHEN $9::bool THEN d."embedding" END AS "embedding", d."chunk_category", d."confidence",
       d."requires_validation", d."validated_at", d."validated_by", d."created_at", d."updated_at",
       d."embedding_model", d."embedding_content_hash"
FROM "deal_embeddings" d
WHERE d."qualification_id" = $1  -- citus: AND d."tenant_id" = :tenant
  AND ($2::text IS NULL OR $2::text = d."qualification_id")
  AND ($3::text IS NULL OR $3::text = d."pre_qualification_id")
  AND ($4::text IS NULL OR $4::text = d."agent_name")
  AND ($5::text IS NULL OR $5::text = d."chunk_type")
  AND ($6::jsonb IS NULL OR "dealhunter_metadata_object"(d."metadata") @> $6::jsonb)
  AND ($7::text IS NULL OR d."id" > $7::text)
ORDER BY d."id"
LIMIT $8
