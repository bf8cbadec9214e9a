-- Hybrid search over one pre-qualification's raw_chunks rows: an exact vector leg and a
-- full-text leg, fused by reciprocal rank fusion (search/hybrid.py; the same statement as
-- hybrid_deal_embeddings.sql without the deal-chunk filters).
--
-- $1 query vector (NULL: no vector leg)      $2 pre-qualification id
-- $3 query text (NULL: no text leg)          $4 max distance (1 - threshold; NULL: none)
-- $5 candidates per leg                      $6 rrf_k
-- $7 vector weight (0: no vector leg)        $8 text weight (0: no text leg)
-- $9 limit                                   $10 decompounded query text (NULL: none)
-- The half-distance error bound 0.0017128022290748934: search/bound.py, docs/design.md.
-- Rows without a half copy (norm outside [1e-12, 1e15]) are not in the vector leg and have no
-- distance, as in hybrid_deal_embeddings.sql.
WITH owned AS NOT MATERIALIZED (
    SELECT c.id, c.embedding, c.embedding_half, c.content_tsv
    FROM "raw_chunks" c
    WHERE c.pre_qualification_id = $2::text  -- citus: AND c."pre_qualification_id" = :tenant
),
query_half AS (
    SELECT CASE WHEN vector_norm($1::vector) BETWEEN '1e-12'::float8 AND '1e15'::float8
                THEN (l2_normalize($1::vector))::halfvec END AS p
    OFFSET 0
),
half AS MATERIALIZED (
    SELECT h.id, h.embedding, h.hd, (h.hd IS NULL OR h.hd = 'NaN'::float8) AS unsure
    FROM (
        SELECT o.id, o.embedding, o.embedding_half <=> qh.p AS hd
        FROM owned o CROSS JOIN query_half qh
        WHERE $1::vector IS NOT NULL AND $7::float8 > 0 AND o.embedding_half IS NOT NULL
        OFFSET 0  -- a fence: flattened, the distance would be computed once per reference (3x)
    ) h
),
kth AS (
    SELECT coalesce((SELECT hd FROM half
                     WHERE NOT unsure AND ($4::float8 IS NULL OR hd + 0.0017128022290748934 < $4::float8)
                     ORDER BY hd LIMIT 1 OFFSET $5::int4 - 1), 'Infinity'::float8) AS k
),
vector_leg AS MATERIALIZED (
    SELECT e.id, e.distance, row_number() OVER (ORDER BY e.distance, e.id) AS rank
    FROM (
        SELECT c.id, c.embedding <=> $1::vector AS distance
        FROM half c CROSS JOIN kth
        WHERE c.unsure
           OR (($4::float8 IS NULL OR c.hd <= $4::float8 + 0.0017128022290748934) AND c.hd <= kth.k + 2 * 0.0017128022290748934)
        OFFSET 0
    ) e
    WHERE e.distance <> 'NaN'::float8 AND ($4::float8 IS NULL OR e.distance < $4::float8)
    ORDER BY e.distance, e.id
    LIMIT $5::int4
),
text_query AS (
    -- the query text's tsquery, ORed with that of its decompounded alternative $10 when given
    SELECT CASE WHEN $10::text IS NULL THEN websearch_to_tsquery("dealhunter_text_search_config"(), $3::text)
                ELSE websearch_to_tsquery("dealhunter_text_search_config"(), $3::text)
                     || websearch_to_tsquery("dealhunter_text_search_config"(), $10::text) END AS q
    WHERE $3::text IS NOT NULL AND $8::float8 > 0
),
text_leg AS MATERIALIZED (
    SELECT m.id, m.score, row_number() OVER (ORDER BY m.score DESC, m.id) AS rank
    FROM (
        SELECT o.id, ts_rank_cd(o.content_tsv, tq.q) AS score
        FROM owned o CROSS JOIN text_query tq
        WHERE o.content_tsv @@ tq.q
    ) m
    ORDER BY m.score DESC, m.id
    LIMIT $5::int4
),
fused AS (
    SELECT coalesce(v.id, t.id) AS id, v.rank AS vector_rank, t.rank AS text_rank,
           coalesce($7::float8 / ($6::float8 + v.rank), 0) + coalesce($8::float8 / ($6::float8 + t.rank), 0)
               AS fused_score
    FROM vector_leg v FULL JOIN text_leg t ON t.id = v.id
    ORDER BY fused_score DESC, id
    LIMIT $9::int4
)
SELECT c.id, c.pre_qualification_id, c.chunk_index, c.content, c.token_count, c.metadata,
       f.vector_rank, f.text_rank, f.fused_score,
       CASE WHEN c.embedding_half IS NOT NULL THEN c.embedding <=> $1::vector END AS distance,
       CASE WHEN c.content_tsv @@ tq.q THEN ts_rank_cd(c.content_tsv, tq.q) END AS text_score
FROM fused f
JOIN "raw_chunks" c ON c.id = f.id  -- citus: AND c."pre_qualification_id" = :tenant
LEFT JOIN text_query tq ON true
ORDER BY f.fused_score DESC, f.id
