-- Delete the deal chunks with the ids $1 (whatever their owner); the ids of the deleted rows.
DELETE FROM "deal_embeddings" d
WHERE d."id" = ANY($1::text[])
RETURNING d."id"
