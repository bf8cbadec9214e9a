"""The write paths: store, replace, delete, upsert and read back chunks; re-embed them.

* :mod:`.deal_chunks`: ``deal_embeddings``: insert (binary COPY), replace a section
  atomically, delete by ids or selector, upsert by id, get by ids, keyset pages.
* :mod:`.raw_chunks`: ``raw_chunks``: replace a pre-qualification's set, delete, upsert, get, pages.
* :mod:`.embeddings`: the stale-chunk query and the bulk embedding update (docs/reembedding.md);
  the description embedding of a pre-qualification.
* :mod:`.content_parts`: the backfill of the German compound parts (migration 011; docs/compounds.md).
* :mod:`.records` (chunks validated into records, the library-owned values filled),
  :mod:`.selectors` (what a replace/delete/page picks), :mod:`.rows` (stored rows as models),
  :mod:`.statements` (the SQL in ``writes/sql/``).

Design: docs/design.md ("Writes"); re-embedding and model switches: docs/reembedding.md.
"""

from __future__ import annotations

from .content_parts import BackfillProgress, backfill_content_parts
from .deal_chunks import (
    delete_deal_chunks,
    get_deal_chunks,
    insert_deal_chunks,
    iter_deal_chunks,
    page_deal_chunks,
    replace_deal_chunks,
    upsert_deal_chunks,
)
from .embeddings import set_description_embedding, stale_chunks, update_embeddings
from .raw_chunks import delete_raw_chunks, get_raw_chunks, page_raw_chunks, replace_raw_chunks, upsert_raw_chunks
from .records import DEAL_EMBEDDING_COLUMNS, RAW_CHUNK_COLUMNS, new_id, utc_now

__all__ = [
    "DEAL_EMBEDDING_COLUMNS",
    "RAW_CHUNK_COLUMNS",
    "BackfillProgress",
    "backfill_content_parts",
    "delete_deal_chunks",
    "delete_raw_chunks",
    "get_deal_chunks",
    "get_raw_chunks",
    "insert_deal_chunks",
    "iter_deal_chunks",
    "new_id",
    "page_deal_chunks",
    "page_raw_chunks",
    "replace_deal_chunks",
    "replace_raw_chunks",
    "set_description_embedding",
    "stale_chunks",
    "update_embeddings",
    "upsert_deal_chunks",
    "upsert_raw_chunks",
    "utc_now",
]
