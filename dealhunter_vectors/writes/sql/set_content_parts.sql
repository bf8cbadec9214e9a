-- Set the split text of the rows of {table} with ids $1: parts $2, split from the content whose
-- sha256 is $3; only where the row still holds that content (a writer that changed it since
-- wins: the row stays lacking for the next run). The ids of the rows updated.
UPDATE {table} t
SET "content_parts" = u."parts", "content_parts_hash" = u."hash"
FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u("id", "parts", "hash")
WHERE t."id" = u."id"
  AND "dealhunter_content_hash"(t."content") = u."hash"
RETURNING t."id"
