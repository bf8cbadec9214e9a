-- Delete a pre-qualification's raw chunks ($1), all or those with the ids $2 (NULL: all);
-- the ids of the deleted rows.
DELETE FROM "raw_chunks" c
WHERE c."pre_qualification_id" = $1  -- citus: AND c."pre_qualification_id" = :tenant
  AND ($2::text[] IS NULL OR c."id" = ANY($2::text[]))
RETURNING c."id"
