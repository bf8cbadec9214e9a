-- Citus form of search/sql/deal_search.sql (the distributed layout, dealhunter_vectors.scale.citus):
-- one request instead of a batch ($1..$13 are the elements of the single-node arrays, same order)
-- and $14, the tenant (the owning pre-qualification: the owner itself, or the qualification's
-- pre-qualification), on the distribution column: a single-shard router query. Everything else is
-- the single-node statement. Written for rows owned by a qualification; the pre-qualification
-- variant replaces the one owner predicate (search/_sql.py owner_variant).
SELECT r.ord, h.*
FROM (
    SELECT $1::vector AS q,
        $2::text AS owner_id,
        $3::float8 AS max_distance,
        $4::bool AS inclusive,
        $5::jsonb AS categories,
        $6::int4 AS min_confidence,
        $7::bool AS only_validated,
        $8::text AS agent_contains,
        $9::jsonb AS agent_names,
        $10::text AS tech_stack,
        $11::bool AS filter_fallback,
        $12::bool AS top_k_fallback,
        $13::int4 AS row_limit,
        1::bigint AS ord
) r
CROSS JOIN LATERAL (
    SELECT CASE WHEN vector_norm(r.q) BETWEEN '1e-12'::float8 AND '1e15'::float8
                THEN (l2_normalize(r.q))::halfvec(3072) END AS p
    OFFSET 0
) qh
CROSS JOIN LATERAL (
    WITH half AS MATERIALIZED (
        SELECT s.*,
               (s.hd IS NULL OR s.hd = 'NaN'::float8) AS unsure,
               (s.hd + 0.0017128022290748934 < r.max_distance) AS sure_above,
               (s.hd <= r.max_distance + 0.0017128022290748934) AS may_above,
               (coalesce(r.agent_names ? s.agent_name, r.agent_names IS NULL)
                AND (r.tech_stack IS NULL
                     OR coalesce(jsonb_typeof(s.meta -> 'cms') = 'string'
                                 AND strpos(lower(s.meta ->> 'cms'), lower(r.tech_stack)) > 0, false)
                     OR coalesce(jsonb_typeof(s.meta -> 'framework') = 'string'
                                 AND strpos(lower(s.meta ->> 'framework'), lower(r.tech_stack)) > 0, false)
                )) AS matches
        FROM (
            SELECT d.id, d.pre_qualification_id, d.qualification_id, d.agent_name, d.chunk_type, d.chunk_index,
                   d.content, d.metadata, d.chunk_category, d.confidence, (d.validated_at IS NOT NULL) AS is_validated, d.embedding,
                   d.embedding_half <=> qh.p AS hd,
                   CASE WHEN r.tech_stack IS NOT NULL AND pg_input_is_valid(d.metadata, 'jsonb')
                        THEN d.metadata::jsonb END AS meta
            FROM "deal_embeddings" d
            WHERE d."qualification_id" = r.owner_id
              AND d."tenant_id" = $14::text
              AND d.embedding IS NOT NULL
              AND (r.categories IS NULL OR coalesce(r.categories ? d.chunk_category, false))
              AND (r.min_confidence IS NULL OR d.confidence >= r.min_confidence)
              AND (NOT r.only_validated OR d.validated_at IS NOT NULL)
              AND (r.agent_contains IS NULL OR strpos(lower(d.agent_name), lower(r.agent_contains)) > 0)
        ) s
    ),
    kth AS (
        -- k-th smallest half distance among the rows surely in each set the result can be
        -- drawn from (Infinity when fewer than k): a row whose half distance exceeds it by
        -- more than 2 x bound is beaten by k rows of that set for certain.
        SELECT coalesce((SELECT hd FROM half WHERE NOT unsure AND sure_above AND matches
                         ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) AS above_match,
               CASE WHEN r.filter_fallback THEN
                   coalesce((SELECT hd FROM half WHERE NOT unsure AND sure_above
                             ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) END AS above_any,
               CASE WHEN r.top_k_fallback THEN
                   coalesce((SELECT hd FROM half WHERE NOT unsure AND matches
                             ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) END AS match_any,
               CASE WHEN r.top_k_fallback AND r.filter_fallback THEN
                   coalesce((SELECT hd FROM half WHERE NOT unsure
                             ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) END AS any_row
    ),
    scored AS MATERIALIZED (
        SELECT e.*,
               (e.distance < r.max_distance OR (r.inclusive AND e.distance = r.max_distance)) AS above
        FROM (
            SELECT c.id, c.pre_qualification_id, c.qualification_id, c.agent_name, c.chunk_type, c.chunk_index,
                   c.content, c.metadata, c.chunk_category, c.confidence, c.is_validated, c.matches,
                   c.embedding <=> r.q AS distance
            FROM half c CROSS JOIN kth k
            WHERE c.unsure
               OR (c.may_above AND c.matches AND c.hd <= k.above_match + 2 * 0.0017128022290748934)
               OR (c.may_above AND c.hd <= k.above_any + 2 * 0.0017128022290748934)
               OR (c.matches AND c.hd <= k.match_any + 2 * 0.0017128022290748934)
               OR c.hd <= k.any_row + 2 * 0.0017128022290748934
               -- rows near the threshold decide the fallback flags below
               OR (c.may_above AND c.hd >= r.max_distance - 0.0017128022290748934 AND (c.matches OR r.filter_fallback))
            OFFSET 0
        ) e
    ),
    flags AS (
        SELECT coalesce(bool_or(above AND matches), false) AS any_above_match,
               coalesce(bool_or(above), false) AS any_above,
               coalesce(bool_or(matches AND distance <> 'NaN'::float8), false) AS any_match
        FROM scored
    )
    SELECT s.id, s.pre_qualification_id, s.qualification_id, s.agent_name, s.chunk_type, s.chunk_index,
           s.content, s.metadata, s.chunk_category, s.confidence, s.is_validated, s.distance
    FROM scored s CROSS JOIN flags f
    WHERE s.distance <> 'NaN'::float8
      AND CASE WHEN f.any_above_match OR (r.filter_fallback AND f.any_above) OR NOT r.top_k_fallback
               THEN s.above AND (s.matches OR (r.filter_fallback AND NOT f.any_above_match))
               ELSE s.matches OR (r.filter_fallback AND NOT f.any_match)
          END
    ORDER BY s.distance, s.id
    LIMIT r.row_limit
) h
ORDER BY r.ord, h.distance, h.id
