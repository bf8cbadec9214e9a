-- Batched exact raw-chunk search of a pre-qualification's rows: half-precision prefilter, exact re-rank.
-- Parameters (arrays, one element per request): $1 query vector[], $2 pre-qualification id text[],
-- $3 max distance float8[], $4 inclusive bool[], $5 limit int4[], $6 the query's half copy halfvec[]
-- (NULL = re-rank every row exactly). The single-request variant takes scalars (search/_sql.py).
-- Design: docs/design.md, "Owner-scoped search"; fences and the late column read as in deal_search.sql.
-- Each result row also carries how many rows were scored by their half copy and re-ranked exactly.
-- Rows without a half copy (norm outside [1e-12, 1e15]) are skipped, as in deal_search.sql.
SELECT r.ord, h.*
FROM unnest($1::vector[], $2::text[], $3::float8[], $4::bool[], $5::int4[], $6::halfvec[])
     WITH ORDINALITY AS r(q, owner_id, max_distance, inclusive, row_limit, p, ord)
CROSS JOIN LATERAL (
    WITH half AS MATERIALIZED (
        SELECT s.id, s.embedding, s.hd, (s.hd IS NULL OR s.hd = 'NaN'::float8) AS unsure
        FROM (
            SELECT c.id, c.embedding, c.embedding_half <=> r.p AS hd
            FROM "raw_chunks" c
            WHERE c.pre_qualification_id = r.owner_id  -- citus: AND c."pre_qualification_id" = :tenant
              AND c.embedding_half IS NOT NULL
            OFFSET 0
        ) s
    ),
    kth AS (
        SELECT coalesce((SELECT hd FROM half WHERE NOT unsure AND hd + 0.0017128022290748934 < r.max_distance
                         ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) AS above
    ),
    reranked AS MATERIALIZED (
        SELECT c.id, c.embedding <=> r.q AS distance
        FROM half c CROSS JOIN kth k
        WHERE c.unsure OR (c.hd <= r.max_distance + 0.0017128022290748934 AND c.hd <= k.above + 2 * 0.0017128022290748934)
    ),
    top AS (
        SELECT s.id, s.distance FROM reranked s
        WHERE s.distance < r.max_distance OR (r.inclusive AND s.distance = r.max_distance)
        ORDER BY s.distance, s.id
        LIMIT r.row_limit
    )
    SELECT c.id, c.pre_qualification_id, c.chunk_index, c.content, c.token_count, c.metadata, t.distance,
           (SELECT count(*) FROM half) AS rows_scored, (SELECT count(*) FROM reranked) AS rows_reranked
    FROM top t JOIN "raw_chunks" c ON c.id = t.id  -- citus: AND c."pre_qualification_id" = :tenant
) h
ORDER BY r.ord, h.distance, h.id
