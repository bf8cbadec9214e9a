-- Migration 5: full-text search over chunk content, for hybrid (text + vector) retrieval.
--
-- content_tsv is a stored generated tsvector of content (writers never set it; it can never
-- disagree with content), with a GIN index per table. The text search configuration is a
-- database setting, `german` by default: dealhunter's content is mostly German bid and website
-- text (stemming: Angebote -> angebot; umlauts and ß are kept). `simple` (no stemming, no stop
-- words) suits mixed-language corpora, `english` English ones.
--
-- * The configuration in force is what dealhunter_text_search_config() returns; the hybrid
--   search parses query text with it, so query and column always use the same one.
-- * Changing it is a library call, not a manual step: set_text_search_config(pool, 'simple')
--   (or apply_schema(pool, text_search_config='simple'), or the CLI's
--   `schema apply --text-search-config simple`) rebuilds both columns and their GIN indexes
--   and redefines the function, in one transaction. This file keeps `german`: an applied
--   migration is never edited.
-- * to_tsvector(regconfig, text) with a constant configuration is immutable, as a generated
--   column requires.
-- * Only the first 250,000 characters of content are indexed: a tsvector is limited to 1 MB
--   and to_tsvector fails beyond it, which would make a write (or this migration) fail on a
--   huge chunk; 250,000 characters of distinct words give at most ~0.5 MB.
-- * ADD COLUMN ... STORED rewrites the table (and rebuilds its indexes, the HNSW ones
--   included): the cost is measured in docs/benchmarks.md ("Hybrid search").
-- * The loader's staging tables copy the definition without generated expressions (the
--   column stays NULL there) and the loader names the legacy columns only; verify compares
--   the legacy columns only. Both ignore library-owned columns (content_tsv, embedding_half).

CREATE OR REPLACE FUNCTION "dealhunter_text_search_config"() RETURNS regconfig
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT 'german'::regconfig $$;

COMMENT ON FUNCTION "dealhunter_text_search_config"() IS
    'Text search configuration of content_tsv (deal_embeddings, raw_chunks); change it with set_text_search_config()';

ALTER TABLE "deal_embeddings"
    ADD COLUMN "content_tsv" tsvector GENERATED ALWAYS AS (to_tsvector('german'::regconfig, left("content", 250000))) STORED;

CREATE INDEX "deal_embeddings_content_tsv_idx" ON "deal_embeddings" USING gin ("content_tsv");

ALTER TABLE "raw_chunks"
    ADD COLUMN "content_tsv" tsvector GENERATED ALWAYS AS (to_tsvector('german'::regconfig, left("content", 250000))) STORED;

CREATE INDEX "raw_chunks_content_tsv_idx" ON "raw_chunks" USING gin ("content_tsv");
