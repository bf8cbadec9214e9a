-- Batched exact deal-chunk search over one owner's rows: half-precision prefilter, exact re-rank.
-- Written for rows owned by a qualification; the pre-qualification variant replaces the one
-- owner predicate, the single-request variant replaces the unnest head by scalar parameters
-- (search/_sql.py). Design and the error bound 0.0017128022290748934: docs/design.md, "Owner-scoped search".
-- Parameters (arrays, one element per request): $1 query vector[], $2 owner id text[],
-- $3 max distance float8[], $4 inclusive bool[], $5 chunk categories jsonb[] (array of strings or
-- NULL), $6 min confidence int4[] (NULL = off), $7 only validated bool[], $8 agent name substring
-- text[] (NULL = off), $9 agent names jsonb[] (NULL = off), $10 tech stack text[] (NULL = off),
-- $11 filter fallback bool[], $12 top-k fallback bool[], $13 limit int4[], $14 the query's half
-- copy halfvec[] (l2_normalize(q)::halfvec computed by the client; NULL = re-rank every row exactly).
-- Only rows with a half copy are searched: embedding_half is NULL when the embedding is NULL or
-- its norm lies outside [1e-12, 1e15] (migration 004), where pgvector's float32 cosine is
-- meaningless (a row of 1e-30 values scores 1.0); migration 008's check keeps new ones out.
-- Only ids, distances and filter results flow through the steps; the display columns are read
-- for the <= limit result rows. Each result row also says which fallback produced it (NULL: none)
-- and how many rows were scored by their half copy and re-ranked exactly (for observers). The OFFSET 0 fences keep the subqueries from being pulled up:
-- otherwise every reference to hd (and to the parsed metadata) re-evaluates it per row.
SELECT r.ord, h.*
FROM unnest($1::vector[], $2::text[], $3::float8[], $4::bool[], $5::jsonb[], $6::int4[], $7::bool[],
            $8::text[], $9::jsonb[], $10::text[], $11::bool[], $12::bool[], $13::int4[], $14::halfvec[])
     WITH ORDINALITY AS r(q, owner_id, max_distance, inclusive, categories, min_confidence, only_validated,
                          agent_contains, agent_names, tech_stack, filter_fallback, top_k_fallback, row_limit, p, ord)
CROSS JOIN LATERAL (
    WITH half AS MATERIALIZED (
        SELECT s.id, s.embedding, s.hd,
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
            SELECT d.id, d.agent_name, d.embedding,
                   d.embedding_half <=> r.p AS hd,
                   CASE WHEN r.tech_stack IS NOT NULL AND pg_input_is_valid(d.metadata, 'jsonb')
                        THEN d.metadata::jsonb END AS meta
            FROM "deal_embeddings" d
            WHERE d."qualification_id" = r.owner_id  -- citus: AND d."tenant_id" = :tenant
              AND d.embedding_half IS NOT NULL
              AND (r.categories IS NULL OR coalesce(r.categories ? d.chunk_category, false))
              AND (r.min_confidence IS NULL OR d.confidence >= r.min_confidence)
              AND (NOT r.only_validated OR d.validated_at IS NOT NULL)
              AND (r.agent_contains IS NULL OR strpos(lower(d.agent_name), lower(r.agent_contains)) > 0)
            OFFSET 0
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
            SELECT c.id, c.matches, c.embedding <=> r.q AS distance
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
    ),
    top AS (
        SELECT s.id, s.distance,
               CASE WHEN f.any_above_match OR (r.filter_fallback AND f.any_above) OR NOT r.top_k_fallback
                    THEN CASE WHEN r.filter_fallback AND NOT f.any_above_match THEN 'filter' END
                    WHEN r.filter_fallback AND NOT f.any_match THEN 'top_k+filter'
                    ELSE 'top_k'
               END AS fallback
        FROM scored s CROSS JOIN flags f
        WHERE s.distance <> 'NaN'::float8
          AND CASE WHEN f.any_above_match OR (r.filter_fallback AND f.any_above) OR NOT r.top_k_fallback
                   THEN s.above AND (s.matches OR (r.filter_fallback AND NOT f.any_above_match))
                   ELSE s.matches OR (r.filter_fallback AND NOT f.any_match)
              END
        ORDER BY s.distance, s.id
        LIMIT r.row_limit
    )
    SELECT d.id, d.pre_qualification_id, d.qualification_id, d.agent_name, d.chunk_type, d.chunk_index,
           d.content, d.metadata, d.chunk_category, d.confidence, (d.validated_at IS NOT NULL) AS is_validated,
           t.distance, t.fallback,
           (SELECT count(*) FROM half) AS rows_scored, (SELECT count(*) FROM scored) AS rows_reranked
    FROM top t JOIN "deal_embeddings" d ON d.id = t.id  -- citus: AND d."tenant_id" = :tenant
) h
ORDER BY r.ord, h.distance, h.id
