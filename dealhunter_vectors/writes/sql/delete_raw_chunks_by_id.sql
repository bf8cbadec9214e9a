-- Delete the raw chunks with the ids $1 (whatever their pre-qualification); the deleted ids.
DELETE FROM "raw_chunks" c
WHERE c."id" = ANY($1::text[])
RETURNING c."id"
