-- Migration 6: drop the HNSW indexes that no search reads (deal_embeddings, raw_chunks).
--
-- Every search of deal_embeddings and raw_chunks is owner-scoped and exact: it reads one
-- qualification's or pre-qualification's rows through the owner's btree index and scores
-- them by the inline half copy (migration 004), never through an HNSW graph (checked by
-- tests/test_recall.py::test_owner_scoped_plan_uses_no_hnsw_index). The two graphs were
-- pure write cost: every inserted chunk was linked into a 3072-d graph (~m = 32 neighbour
-- searches), which made inserts ~15-35x slower, made the bulk loader rebuild them, and made
-- VACUUM after deletes walk the graphs (docs/benchmarks.md, "Write path"). The global
-- duplicate search keeps its index on pre_qualifications.
-- A service that wants ANN over chunks again creates the index itself (migration 003's
-- statement); the library's searches would still not use it.

DROP INDEX IF EXISTS "deal_embeddings_embedding_hnsw_idx";
DROP INDEX IF EXISTS "raw_chunks_embedding_hnsw_idx";
