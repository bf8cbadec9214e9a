-- Migration 4: an inline half-precision copy of the chunk embeddings for owner-scoped search.
--
-- A vector(3072) is 12 KB and always TOASTed (6-7 toast chunks fetched through the toast
-- index), so an exact scan of one owner's 1,000 chunks spends most of its time detoasting.
-- embedding_half is the embedding's direction rounded to half precision (6 KB), derived by
-- the server (a stored generated column: writers never set it, it can never disagree with
-- embedding) and kept in the heap page (STORAGE MAIN: moved out of line only if the row
-- would still exceed a page, which a row with a few KB of other data never does).
-- vector_search scores every row of an owner by this copy, then re-ranks only the rows that
-- a proven error bound cannot exclude by the exact float32 `embedding <=> q` (the bound and
-- its derivation are in the vector_search module docstring).
--
-- * l2_normalize first: cosine ignores the scale, and a unit vector's half copy has a
--   relative error of at most 2^-11 + 2^-25 * sqrt(3072) whatever the stored scale (a tiny
--   vector cast directly would lose its direction to half-precision subnormals; a large one
--   would overflow).
-- * NULL when the norm lies outside [1e-12, 1e15] (zero vectors included): there pgvector's
--   own float32 arithmetic under- or overflows, so no bound relates the two distances; the
--   search always re-ranks such rows exactly (they never occur in practice).
-- * ADD COLUMN and SET STORAGE are one ALTER TABLE per table: the table rewrite that fills
--   the column for existing rows runs after both subcommands, so existing rows get the copy
--   inline too (with two statements the rewrite uses the type's default EXTERNAL storage and
--   TOASTs every copy). The rewrite also rebuilds the table's indexes.
-- * toast_tuple_target = 8160 (the maximum): by default the toaster works until a row is
--   below ~2 KB, which a row holding a 6 KB half copy never is, so it would also compress and
--   move out of line every other text value (content, metadata: one TOAST fetch per row for
--   the tech-stack filter). With 8160 only the 12 KB float32 embedding (always) and whatever
--   makes a row exceed a page leave the heap.
-- Cost: +6 KB per row with an embedding (a row then fills most of a heap page).

ALTER TABLE "deal_embeddings"
    ADD COLUMN "embedding_half" halfvec(3072) GENERATED ALWAYS AS (
        CASE WHEN vector_norm("embedding") BETWEEN '1e-12'::float8 AND '1e15'::float8
             THEN (l2_normalize("embedding"))::halfvec(3072) END
    ) STORED,
    ALTER COLUMN "embedding_half" SET STORAGE MAIN,
    SET (toast_tuple_target = 8160);

ALTER TABLE "raw_chunks"
    ADD COLUMN "embedding_half" halfvec(3072) GENERATED ALWAYS AS (
        CASE WHEN vector_norm("embedding") BETWEEN '1e-12'::float8 AND '1e15'::float8
             THEN (l2_normalize("embedding"))::halfvec(3072) END
    ) STORED,
    ALTER COLUMN "embedding_half" SET STORAGE MAIN,
    SET (toast_tuple_target = 8160);
