-- The rows of {table} lacking their split text (migration 011: content_parts never computed, or
-- computed from another content), in id order after id $1 (NULL: from the start), at most $2.
-- {lacking}: db/content_parts.py LACKING. Multi-shard on Citus (every tenant's rows).
SELECT t."id", t."content"
FROM {table} t
WHERE {lacking}
  AND ($1::text IS NULL OR t."id" > $1::text)
ORDER BY t."id"
LIMIT $2::int4
