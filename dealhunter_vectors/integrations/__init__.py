"""Optional adapters to the frameworks retrieval services orchestrate with (behind extras).

``langchain`` (extra ``[langchain]``), ``llama_index`` (``[llama-index]``), ``otel``
(``[otel]``): each imports its framework only when it is imported itself, and without it
raises :class:`~dealhunter_vectors.errors.MissingExtraError` naming the extra; importing
``dealhunter_vectors`` never imports any of them. docs/integrations.md, docs/observability.md.
"""
