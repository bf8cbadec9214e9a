-- Migration 3: denser HNSW graphs for the three halfvec indexes (m = 32, ef_construction = 128).
--
-- Measured on clustered 3072-d data (docs/benchmarks.md): with m = 16 / ef_construction = 64
-- recall@10 stayed at 0.95 on 100k rows for every hnsw.ef_search from 40 to 400 (parts of the
-- graph are unreachable, a raised ef_search cannot help); m = 32 / ef_construction = 128 gives
-- 0.98+ at ef_search 100. The price is about twice the build time and index size.
-- The indexes keep their names and the expression (embedding::halfvec(3072)).

DROP INDEX IF EXISTS "deal_embeddings_embedding_hnsw_idx";
DROP INDEX IF EXISTS "raw_chunks_embedding_hnsw_idx";
DROP INDEX IF EXISTS "pre_qualifications_description_embedding_hnsw_idx";

CREATE INDEX IF NOT EXISTS "deal_embeddings_embedding_hnsw_idx" ON "deal_embeddings"
    USING hnsw ((("embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128);

CREATE INDEX IF NOT EXISTS "raw_chunks_embedding_hnsw_idx" ON "raw_chunks"
    USING hnsw ((("embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128);

CREATE INDEX IF NOT EXISTS "pre_qualifications_description_embedding_hnsw_idx" ON "pre_qualifications"
    USING hnsw ((("description_embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128);
