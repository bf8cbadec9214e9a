-- Citus form of search/sql/raw_search.sql (the distributed layout): one request instead of a batch
-- ($1..$5 are the elements of the single-node arrays); $2, the pre-qualification, is compared with
-- the distribution column directly: a single-shard router query.
SELECT r.ord, h.*
FROM (
    SELECT $1::vector AS q,
        $2::text AS owner_id,
        $3::float8 AS max_distance,
        $4::bool AS inclusive,
        $5::int4 AS row_limit,
        1::bigint AS ord
) r
CROSS JOIN LATERAL (
    SELECT CASE WHEN vector_norm(r.q) BETWEEN '1e-12'::float8 AND '1e15'::float8
                THEN (l2_normalize(r.q))::halfvec(3072) END AS p
    OFFSET 0
) qh
CROSS JOIN LATERAL (
    WITH half AS MATERIALIZED (
        SELECT s.*, (s.hd IS NULL OR s.hd = 'NaN'::float8) AS unsure
        FROM (
            SELECT c.id, c.pre_qualification_id, c.chunk_index, c.content, c.token_count, c.metadata,
                   c.embedding, c.embedding_half <=> qh.p AS hd
            FROM "raw_chunks" c
            WHERE c.pre_qualification_id = r.owner_id
              AND c."pre_qualification_id" = $2::text
        ) s
    ),
    kth AS (
        SELECT coalesce((SELECT hd FROM half WHERE NOT unsure AND hd + 0.0017128022290748934 < r.max_distance
                         ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) AS above
    )
    SELECT s.* FROM (
        SELECT c.id, c.pre_qualification_id, c.chunk_index, c.content, c.token_count, c.metadata,
               c.embedding <=> r.q AS distance
        FROM half c CROSS JOIN kth k
        WHERE c.unsure OR (c.hd <= r.max_distance + 0.0017128022290748934 AND c.hd <= k.above + 2 * 0.0017128022290748934)
        OFFSET 0
    ) s
    WHERE s.distance < r.max_distance OR (r.inclusive AND s.distance = r.max_distance)
    ORDER BY s.distance, s.id
    LIMIT r.row_limit
) h
ORDER BY r.ord, h.distance, h.id
