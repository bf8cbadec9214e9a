-- Set the embeddings staged in "dhv_embedding_update" (id, embedding, content_hash) on the
-- rows of {table} with those ids whose content still has that hash (NULL: whatever it holds),
-- with the model $1 and the content's hash; the ids of the updated rows. {vector}, {model},
-- {hash}: the embedding slot's columns (writes/statements.py).
UPDATE {table} t
SET {vector} = u."embedding", {model} = $1::text, {hash} = "dealhunter_content_hash"(t."content")
FROM "dhv_embedding_update" u
WHERE t."id" = u."id"
  AND (u."content_hash" IS NULL OR u."content_hash" = "dealhunter_content_hash"(t."content"))
RETURNING t."id"
