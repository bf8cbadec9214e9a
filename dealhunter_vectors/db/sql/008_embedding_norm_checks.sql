-- Migration 8: the accepted norm range [1e-12, 1e15] of every stored embedding, enforced by
-- the database for every writer (the app's TypeScript side, psql, a backfill script), not
-- only for the library's own writes.
--
-- pgvector accumulates the norms of `<=>` in float32: a vector of 3072 values of 1e-30 has a
-- float32 sum of squares of 0, and its cosine to any query is clamped to 1 (similarity 1.0,
-- ranked first). Inside the range the float32 sums stay far from under- and overflow
-- (docs/reliability.md, "The accepted embedding range"); it is also the range in which
-- migration 004 stores the inline half copy (`embedding_half` is NULL outside it).
--
-- * vector_norm accumulates in double precision (pgvector's vector.c: `double norm`, each
--   float32 value widened before squaring; tests/db/test_norm_constraints.py checks it on
--   the server: 3072 x 1e-30 gives 5.54e-29, 3072 x 1e20 gives 5.54e21, where float32 sums
--   give 0 and Infinity), so the check itself cannot under- or overflow. It is the
--   expression of migration 004's generated column: a row passes the check exactly when it
--   has (or would have) a half copy. NULL embeddings pass (the columns stay nullable).
-- * NOT VALID: adding the constraints never scans and never fails on a database that
--   already holds out-of-range rows (written by another writer, or by 0.1); new and updated
--   rows are checked from now on. apply_schema validates them in a separate step after the
--   migrations (db/norms.py: ALTER TABLE ... VALIDATE CONSTRAINT, which takes a SHARE UPDATE
--   EXCLUSIVE lock: reads and writes go on); when rows are out of range the constraint stays
--   NOT VALID, the searches skip those rows, and `doctor` lists them by table and id.
-- * The global search's function (migration 007) is redefined to skip out-of-range rows:
--   an out-of-range pre-qualification is never indexed by the halfvec HNSW index (its half
--   cast is a zero vector, which a cosine index does not store), but without the index the
--   statement scans every row. vector(..., 3072, false) (the typmod cast, called as a
--   function) detoasts the 12 KB value once for the distance and the norm.

ALTER TABLE "deal_embeddings"
    ADD CONSTRAINT "deal_embeddings_embedding_norm_range"
    CHECK (vector_norm("embedding") BETWEEN '1e-12'::float8 AND '1e15'::float8) NOT VALID;

ALTER TABLE "raw_chunks"
    ADD CONSTRAINT "raw_chunks_embedding_norm_range"
    CHECK (vector_norm("embedding") BETWEEN '1e-12'::float8 AND '1e15'::float8) NOT VALID;

ALTER TABLE "pre_qualifications"
    ADD CONSTRAINT "pre_qualifications_description_embedding_norm_range"
    CHECK (vector_norm("description_embedding") BETWEEN '1e-12'::float8 AND '1e15'::float8) NOT VALID;

CREATE OR REPLACE FUNCTION "dealhunter_pre_qualification_ann"(
    q vector, exclude_id text, max_distance float8, row_limit integer,
    base integer, cap integer, max_scan integer
)
RETURNS TABLE (id text, distance float8, frontier float8, candidates bigint, ef integer)
LANGUAGE plpgsql
SET hnsw.ef_search = 100
SET hnsw.max_scan_tuples = 50000
SET hnsw.iterative_scan = relaxed_order
SET enable_seqscan = off
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    c integer;
BEGIN
    SELECT least(cap, greatest(base, ceil(base * power(greatest(cl.reltuples, 0) / 10000.0, 0.6))::integer))
      INTO c
      FROM pg_class cl
     WHERE cl.oid = to_regclass('"pre_qualifications"');
    c := coalesce(c, base);
    PERFORM set_config('hnsw.ef_search', c::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', greatest(max_scan, c)::text, true);
    RETURN QUERY
    WITH cand AS MATERIALIZED (
        SELECT k.id, k.e <=> q AS distance,
               vector_norm(k.e) BETWEEN '1e-12'::float8 AND '1e15'::float8 AS in_range
        FROM (
            SELECT p.id, vector(p.description_embedding, 3072, false) AS e
            FROM "pre_qualifications" p
            WHERE p.description_embedding IS NOT NULL
              AND p.extracted_requirements IS NOT NULL
              AND (exclude_id IS NULL OR p.id <> exclude_id)
            ORDER BY (p.description_embedding)::halfvec(3072) <=> (q)::halfvec(3072)
            LIMIT c
        ) k
    )
    SELECT s.id, s.distance, f.frontier, f.candidates, c
    FROM (SELECT max(cand.distance) FILTER (WHERE cand.distance <> 'NaN'::float8 AND cand.in_range) AS frontier,
                 count(*) AS candidates
          FROM cand) f
    LEFT JOIN LATERAL (
        SELECT cand.id, cand.distance FROM cand
        WHERE cand.distance <= max_distance AND cand.in_range
        ORDER BY cand.distance, cand.id
        LIMIT row_limit
    ) s ON true
    ORDER BY s.distance, s.id;
END
$$;
