-- Migration 9: what each chunk's embedding was computed from, for re-embedding without waste.
--
-- Two library-owned columns on each chunk table, filled by every library write path and by
-- the bulk loader (docs/reembedding.md):
-- * embedding_model: the name of the model that produced `embedding` (the loader writes
--   'text-embedding-3-large' for the old app's rows, the model of its 3072-d vectors; new
--   writes take it from the call or DEALHUNTER_EMBEDDING_MODEL);
-- * embedding_content_hash: sha256 of the UTF-8 `content` that was embedded. "The content
--   changed since it was embedded" is `embedding_content_hash IS DISTINCT FROM
--   dealhunter_content_hash(content)`, computed the same way by the client (hashlib).
-- Both stay NULL for a row without an embedding and for rows written by other writers
-- (plain SQL): the stale-chunk query treats NULL as stale.
-- Nullable columns without a default: ADD COLUMN changes the catalog only (no rewrite).

ALTER TABLE "deal_embeddings"
    ADD COLUMN "embedding_model" text,
    ADD COLUMN "embedding_content_hash" bytea;

ALTER TABLE "raw_chunks"
    ADD COLUMN "embedding_model" text,
    ADD COLUMN "embedding_content_hash" bytea;

COMMENT ON COLUMN "deal_embeddings"."embedding_model" IS
    'dealhunter_vectors: the model that computed embedding (NULL: unknown, written by another writer)';
COMMENT ON COLUMN "deal_embeddings"."embedding_content_hash" IS
    'dealhunter_vectors: sha256 of the UTF-8 content that was embedded';
COMMENT ON COLUMN "raw_chunks"."embedding_model" IS
    'dealhunter_vectors: the model that computed embedding (NULL: unknown, written by another writer)';
COMMENT ON COLUMN "raw_chunks"."embedding_content_hash" IS
    'dealhunter_vectors: sha256 of the UTF-8 content that was embedded';

-- Two helpers of the library's write statements, IMMUTABLE so that Citus runs them on the
-- shards inside UPDATE and DELETE (it refuses STABLE functions of columns there, and
-- convert_to and pg_input_is_valid are STABLE). Both depend on their argument only: the
-- UTF-8 bytes of a text in one database, and the jsonb parser, which reads no setting.
-- Created before the distributed layout, they are propagated to the workers by Citus.
-- sha256 of the UTF-8 bytes of a text (the client's hashlib.sha256(text.encode()) digest):
CREATE FUNCTION "dealhunter_content_hash"("content" text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN sha256(convert_to("content", 'UTF8'));

-- The JSON object a metadata text holds, NULL when the text is not JSON or not an object
-- (so a selector on metadata never fails on a row the app wrote badly):
CREATE FUNCTION "dealhunter_metadata_object"("metadata" text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN pg_input_is_valid("metadata", 'jsonb')
                THEN CASE WHEN jsonb_typeof("metadata"::jsonb) = 'object' THEN "metadata"::jsonb END
           END;
