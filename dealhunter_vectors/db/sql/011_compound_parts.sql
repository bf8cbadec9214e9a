-- Migration 11: German compound parts in the full-text columns (issue 23; docs/compounds.md).
--
-- PostgreSQL's german configuration stems but never splits compounds, so "Rahmenvertrag" missed
-- "Rahmenvertragsangebot". Two library-owned columns per chunk table, filled by every library
-- write path and the bulk loader (db/library_columns.py, db/content_parts.py):
-- * content_parts: the compound parts of content, split in Python (dealhunter_vectors.compounds,
--   the optional extra [compounds]): "rahmen vertrag angebot rahmenvertrag vertragsangebot";
--   '' when the content holds no compound, NULL when not computed (another writer, or a write
--   without the extra);
-- * content_parts_hash: sha256 of the UTF-8 content the parts were split from
--   (dealhunter_content_hash, migration 009).
-- content_tsv is rebuilt as the content's tsvector followed by the parts' (|| shifts the
-- parts' positions past the content's, so phrase queries on the text match as before), the
-- parts only while content_parts_hash is the current content's hash: parts never outlive their
-- content (an UPDATE of content by another writer drops them from the index at once), and a
-- row without parts is indexed by its content as before (no row leaves the text leg). The
-- hash is computed only for rows with parts (CASE evaluates in order). Rows lacking their
-- parts: `dealhunter-vectors doctor` counts them, `dealhunter-vectors text backfill` fills them.
--
-- * The configuration in force is kept (dealhunter_text_search_config(), which
--   set_text_search_config may have changed): the statement is built in a DO block. The
--   expression is the one db/fulltext.py content_tsv_expression() builds (a test compares them).
-- * Only the first 100,000 characters of content_parts are indexed (the splitter writes no more):
--   with content's 250,000 the tsvector stays below PostgreSQL's 1 MB limit.
-- * Rewrites both tables (a stored generated column), as migration 005 and
--   set_text_search_config do; their other indexes are rebuilt with them.
-- * One statement, a DO block: on a database distributed before this migration Citus propagates
--   each DDL statement inside it to the shards, but refuses a file of several statements ("cannot
--   insert multiple commands into a prepared statement"); dealhunter_content_hash exists on the
--   workers since migration 009.

DO $$
DECLARE
    cfg text := quote_literal("dealhunter_text_search_config"()::text);
    expression text;
    t text;
BEGIN
    expression := format(
        'to_tsvector(%s::regconfig, left("content", 250000)) || to_tsvector(%s::regconfig, '
        'CASE WHEN "content_parts_hash" IS NULL THEN '''' '
        'WHEN "content_parts_hash" = "dealhunter_content_hash"("content") '
        'THEN left("content_parts", 100000) ELSE '''' END)',
        cfg, cfg);
    FOREACH t IN ARRAY ARRAY['deal_embeddings', 'raw_chunks'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN "content_parts" text, ADD COLUMN "content_parts_hash" bytea', t);
        EXECUTE format('COMMENT ON COLUMN %I."content_parts" IS %L', t,
                       'dealhunter_vectors: German compound parts of content, indexed in content_tsv '
                       '(NULL: not computed yet)');
        EXECUTE format('COMMENT ON COLUMN %I."content_parts_hash" IS %L', t,
                       'dealhunter_vectors: sha256 of the UTF-8 content the parts were split from');
        EXECUTE format('ALTER TABLE %I DROP COLUMN "content_tsv", '
                       'ADD COLUMN "content_tsv" tsvector GENERATED ALWAYS AS (%s) STORED', t, expression);
        EXECUTE format('CREATE INDEX %I ON %I USING gin ("content_tsv")', t || '_content_tsv_idx', t);
    END LOOP;
END
$$;
