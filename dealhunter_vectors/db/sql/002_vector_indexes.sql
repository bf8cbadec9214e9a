-- Migration 2: approximate-nearest-neighbour indexes for the three embedding columns.
--
-- pgvector indexes `vector` only up to 2000 dimensions (HNSW and IVFFlat alike), so the
-- migration plan's `ivfflat (embedding vector_cosine_ops)` on vector(3072) fails. `halfvec`
-- indexes reach 4000 dimensions: index the expression embedding::halfvec(3072) and re-rank
-- the candidates by the full-precision column (vector_search does this).
-- m / ef_construction: pgvector's defaults (16 / 64); see docs/benchmarks.md for the recall
-- they give on clustered 3072-d data.

CREATE INDEX IF NOT EXISTS "deal_embeddings_embedding_hnsw_idx" ON "deal_embeddings"
    USING hnsw ((("embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);

CREATE INDEX IF NOT EXISTS "raw_chunks_embedding_hnsw_idx" ON "raw_chunks"
    USING hnsw ((("embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);

CREATE INDEX IF NOT EXISTS "pre_qualifications_description_embedding_hnsw_idx" ON "pre_qualifications"
    USING hnsw ((("description_embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);
