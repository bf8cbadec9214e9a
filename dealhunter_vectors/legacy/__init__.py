"""The old dealhunter app as a reference (never imported by the core library).

* :mod:`.algorithms`: a faithful port of the old in-process retrieval (``cosineSimilarity()`` and every call site).
* :mod:`.database`: writes legacy SQLite databases the way the old app (Drizzle) did.
* :mod:`.synthetic`: clustered, embedding-like synthetic vectors.

Used by the tests, the demo and the benchmarks as the independent computation to compare with.
"""

from .algorithms import *  # noqa: F403 - the old ``dealhunter_vectors.legacy`` module's names
from .algorithms import __all__ as __all__
