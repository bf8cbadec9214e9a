-- Hybrid search over one owner's deal_embeddings rows: an exact vector leg and a full-text
-- leg, fused by reciprocal rank fusion (search/hybrid.py). Written for rows owned by a
-- qualification; search/_sql.py derives the pre-qualification form from the one owner predicate.
--
-- $1 query vector (NULL: no vector leg)      $2 owner id
-- $3 query text (NULL: no text leg)          $4 max distance (1 - threshold; NULL: none)
-- $5 chunk categories jsonb (NULL = off)     $6 min confidence (NULL = off)
-- $7 only validated                          $8 agent name substring (NULL = off)
-- $9 agent names jsonb (NULL = off)          $10 tech stack substring (NULL = off)
-- $11 candidates per leg                     $12 rrf_k
-- $13 vector weight (0: no vector leg)       $14 text weight (0: no text leg)
-- $15 limit                                  $16 decompounded query text (NULL: none)
--
-- Vector leg: the exact ranking by `embedding <=> q` (ties by id) of the owner's rows that
-- pass the filters and the threshold, top $11. Like the owner-scoped search it scores every
-- row by the inline half copy first and computes the exact distance only for rows that the
-- proven bound 0.0017128022290748934 (search/bound.py; docs/design.md) cannot exclude from the top $11: the leg equals the exact scan.
-- Text leg: rows whose content_tsv (content and its compound parts, migration 011) matches
-- websearch_to_tsquery(config, $3) || websearch_to_tsquery(config, $16) (the query with each
-- compound as the phrase of its parts, compounds.decompound_query; only $3 when $16 is NULL),
-- ranked by ts_rank_cd (descending, ties by id), top $11. Fusion: sum of weight / (rrf_k + rank) over
-- the legs that returned the row; order by that score descending, then id.
-- A row without a half copy (no embedding, or a norm outside [1e-12, 1e15], where pgvector's
-- float32 cosine is meaningless) is not in the vector leg and has no distance (similarity None)
-- when the text leg finds it.
WITH owned AS NOT MATERIALIZED (
    SELECT s.id, s.embedding, s.embedding_half, s.content_tsv
    FROM (
        SELECT d.id, d.embedding, d.embedding_half, d.content_tsv, d.agent_name,
               CASE WHEN $10::text IS NOT NULL AND pg_input_is_valid(d.metadata, 'jsonb')
                    THEN d.metadata::jsonb END AS meta
        FROM "deal_embeddings" d
        WHERE d."qualification_id" = $2::text  -- citus: AND d."tenant_id" = :tenant
          AND ($5::jsonb IS NULL OR coalesce($5::jsonb ? d.chunk_category, false))
          AND ($6::int4 IS NULL OR d.confidence >= $6::int4)
          AND (NOT $7::bool OR d.validated_at IS NOT NULL)
          AND ($8::text IS NULL OR strpos(lower(d.agent_name), lower($8::text)) > 0)
    ) s
    WHERE coalesce($9::jsonb ? s.agent_name, $9::jsonb IS NULL)
      AND ($10::text IS NULL
           OR coalesce(jsonb_typeof(s.meta -> 'cms') = 'string'
                       AND strpos(lower(s.meta ->> 'cms'), lower($10::text)) > 0, false)
           OR coalesce(jsonb_typeof(s.meta -> 'framework') = 'string'
                       AND strpos(lower(s.meta ->> 'framework'), lower($10::text)) > 0, false))
),
query_half AS (
    -- the query's half copy, computed once (as migration 004 computes a row's; of any size: docs/reembedding.md)
    SELECT CASE WHEN vector_norm($1::vector) BETWEEN '1e-12'::float8 AND '1e15'::float8
                THEN (l2_normalize($1::vector))::halfvec END AS p
    OFFSET 0
),
half AS MATERIALIZED (
    SELECT h.id, h.embedding, h.hd, (h.hd IS NULL OR h.hd = 'NaN'::float8) AS unsure
    FROM (
        SELECT o.id, o.embedding, o.embedding_half <=> qh.p AS hd
        FROM owned o CROSS JOIN query_half qh
        WHERE $1::vector IS NOT NULL AND $13::float8 > 0 AND o.embedding_half IS NOT NULL
        OFFSET 0  -- a fence: flattened, the distance would be computed once per reference (3x)
    ) h
),
kth AS (
    -- the $11-th smallest half distance among rows surely above the threshold: a row whose
    -- half distance exceeds it by more than twice the bound is beaten by $11 rows for certain
    SELECT coalesce((SELECT hd FROM half
                     WHERE NOT unsure AND ($4::float8 IS NULL OR hd + 0.0017128022290748934 < $4::float8)
                     ORDER BY hd LIMIT 1 OFFSET $11::int4 - 1), 'Infinity'::float8) AS k
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
    LIMIT $11::int4
),
text_query AS (
    -- the query text's tsquery, ORed with that of its decompounded alternative $16 when given
    SELECT CASE WHEN $16::text IS NULL THEN websearch_to_tsquery("dealhunter_text_search_config"(), $3::text)
                ELSE websearch_to_tsquery("dealhunter_text_search_config"(), $3::text)
                     || websearch_to_tsquery("dealhunter_text_search_config"(), $16::text) END AS q
    WHERE $3::text IS NOT NULL AND $14::float8 > 0
),
text_leg AS MATERIALIZED (
    SELECT m.id, m.score, row_number() OVER (ORDER BY m.score DESC, m.id) AS rank
    FROM (
        SELECT o.id, ts_rank_cd(o.content_tsv, tq.q) AS score
        FROM owned o CROSS JOIN text_query tq
        WHERE o.content_tsv @@ tq.q
    ) m
    ORDER BY m.score DESC, m.id
    LIMIT $11::int4
),
fused AS (
    SELECT coalesce(v.id, t.id) AS id, v.rank AS vector_rank, t.rank AS text_rank,
           coalesce($13::float8 / ($12::float8 + v.rank), 0) + coalesce($14::float8 / ($12::float8 + t.rank), 0)
               AS fused_score
    FROM vector_leg v FULL JOIN text_leg t ON t.id = v.id
    ORDER BY fused_score DESC, id
    LIMIT $15::int4
)
SELECT d.id, d.pre_qualification_id, d.qualification_id, d.agent_name, d.chunk_type, d.chunk_index,
       d.content, d.metadata, d.chunk_category, d.confidence, (d.validated_at IS NOT NULL) AS is_validated,
       f.vector_rank, f.text_rank, f.fused_score,
       CASE WHEN d.embedding_half IS NOT NULL THEN d.embedding <=> $1::vector END AS distance,
       CASE WHEN d.content_tsv @@ tq.q THEN ts_rank_cd(d.content_tsv, tq.q) END AS text_score
FROM fused f
JOIN "deal_embeddings" d ON d.id = f.id  -- citus: AND d."tenant_id" = :tenant
LEFT JOIN text_query tq ON true
ORDER BY f.fused_score DESC, f.id
