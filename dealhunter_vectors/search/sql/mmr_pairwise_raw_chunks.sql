-- Exact pairwise cosine distances between MMR candidates (search/mmr.py), computed by the
-- server so that no 12 KB vector travels to the client (raw_chunks; the same statement
-- exists for the other chunk table). $1: candidate ids (text[]), $2: the searched owner (the
-- candidates are its rows; on Citus its tenant routes the statement to one shard). Returns the
-- upper triangle (i < j, 1-based positions in $1) for the owner's candidates that have an embedding
-- with a half copy (a norm in [1e-12, 1e15]; outside it pgvector's float32 cosine is meaningless):
-- the others get 0.
-- array_agg detoasts each embedding once (array elements are never TOAST pointers): the
-- cross join then reads plain in-memory values instead of fetching 6-7 TOAST chunks per pair.
WITH c AS (
    SELECT array_agg(u.ord ORDER BY u.ord) AS ords, array_agg(c.embedding ORDER BY u.ord) AS embs
    FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord)
    JOIN "raw_chunks" c ON c.id = u.id
    WHERE c.embedding_half IS NOT NULL
      AND c.pre_qualification_id = $2::text  -- citus: AND c."pre_qualification_id" = :tenant
)
SELECT a.ord AS i, b.ord AS j, a.e <=> b.e AS distance
FROM c
CROSS JOIN LATERAL unnest(c.ords, c.embs) AS a(ord, e)
CROSS JOIN LATERAL unnest(c.ords, c.embs) AS b(ord, e)
WHERE a.ord < b.ord
