-- Delete a qualification's chunks that match a selector; the ids of the deleted rows. The
-- pre-qualification variant replaces the one owner predicate (writes/statements.py).
-- $1 owner id; every other value NULL means "any": $2 qualification id, $3 pre-qualification
-- id, $4 agent name, $5 chunk type, $6 a JSON object the row's metadata object must contain
-- (rows whose metadata is not a JSON object never match), $7 ids.
DELETE FROM "deal_embeddings" d
WHERE d."qualification_id" = $1  -- citus: AND d."tenant_id" = :tenant
  AND ($2::text IS NULL OR $2::text = d."qualification_id")
  AND ($3::text IS NULL OR $3::text = d."pre_qualification_id")
  AND ($4::text IS NULL OR $4::text = d."agent_name")
  AND ($5::text IS NULL OR $5::text = d."chunk_type")
  AND ($6::jsonb IS NULL OR "dealhunter_metadata_object"(d."metadata") @> $6::jsonb)
  AND ($7::text[] IS NULL OR d."id" = ANY($7::text[]))
RETURNING d."id"
