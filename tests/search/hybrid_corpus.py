"""A synthetic German corpus for hybrid search (tests/search/test_hybrid.py, benchmarks/bench_hybrid.py).

Topics set both the words and the embedding cluster of a document, so text and vectors agree
by construction. Each query names an exact term (a product name or a tender number) and a
topic:

* ``needles``: 2 documents whose text holds the exact term but whose text and embedding
  otherwise belong to another topic (off-topic embedding);
* ``paraphrases``: 3 documents of the query's topic whose embedding is very close to the
  query's but whose text does not hold the term;
* every other document is an ordinary document of a random topic.

Relevant for a query: its needles and its paraphrases (5 documents, so recall@5 can reach 1).
Vector-only search finds the paraphrases but not the needles, text-only search the needles
but not the paraphrases; hybrid search should find both. Synthetic: it shows the mechanism,
not the quality on real dealhunter data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIMENSIONS = 3072

TOPICS: dict[str, list[str]] = {
    "relaunch": ["Relaunch", "Webseite", "Gestaltung", "Barrierefreiheit", "Navigation", "Startseite", "Designsystem"],
    "betrieb": ["Rechenzentrum", "Betrieb", "Verfügbarkeit", "Wartung", "Sicherheitsupdates", "Überwachung", "Störung"],
    "vergabe": ["Vergabe", "Angebot", "Angebotsfrist", "Zuschlag", "Leistungsverzeichnis", "Eignung", "Bieter"],
    "schulung": ["Schulung", "Redakteure", "Workshop", "Handbuch", "Einarbeitung", "Lernplattform", "Trainer"],
    "migration": ["Datenübernahme", "Migration", "Altsystem", "Schnittstelle", "Inhaltstypen", "Umleitungen", "Größe"],
    "commerce": ["Onlineshop", "Warenkorb", "Zahlungsarten", "Produktkatalog", "Bestellung", "Versand", "Kundenkonto"],
    "analyse": ["Auswertung", "Kennzahlen", "Nutzerverhalten", "Suchmaschine", "Sichtbarkeit", "Bericht", "Straße"],
    "personal": ["Projektleitung", "Entwickler", "Beratung", "Stundensatz", "Teamgröße", "Verfügbarkeit", "Kontakt"],
}

TERMS = [
    "TYPO3",
    "Drupal",
    "Magnolia",
    "Contentful",
    "Shopware",
    "Pimcore",
    "VgV-2024-0815",
    "EU-2025-S-113",
    "Sitecore",
    "Neos",
]

_TEMPLATES = [
    "Die {0} umfasst {1} und {2}.",
    "Für {0} sind {1} sowie {2} vorgesehen.",
    "Wir beschreiben {0}, {1} und die {2}.",
    "Im Angebot stehen {0}, {1} und {2} im Mittelpunkt.",
]


@dataclass
class Doc:
    id: str
    topic: str
    content: str
    embedding: np.ndarray


@dataclass
class Query:
    term: str
    topic: str
    embedding: np.ndarray
    needles: list[str] = field(default_factory=list)
    paraphrases: list[str] = field(default_factory=list)

    @property
    def relevant(self) -> set[str]:
        return {*self.needles, *self.paraphrases}


@dataclass
class Corpus:
    docs: list[Doc]
    queries: list[Query]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _sentence(rng: np.random.Generator, words: list[str]) -> str:
    picked = rng.choice(len(words), size=3, replace=False)
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(*(words[i] for i in picked))


def build_corpus(n_docs: int = 200, n_queries: int = 10, seed: int = 13, prefix: str = "h") -> Corpus:
    """*n_docs* documents (ids ``{prefix}0000``...) and *n_queries* queries (at most len(TERMS))."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    centers = {t: _unit(rng.normal(size=DIMENSIONS)) for t in names}

    def topic_vector(topic: str, spread: float) -> np.ndarray:
        return _unit(centers[topic] + spread * _unit(rng.normal(size=DIMENSIONS))).astype(np.float32)

    def topic_text(topic: str, sentences: int = 2) -> str:
        return " ".join(_sentence(rng, TOPICS[topic]) for _ in range(sentences))

    queries: list[Query] = []
    docs: list[Doc] = []
    n_special = 5 * min(n_queries, len(TERMS))
    if n_docs < n_special + len(names):
        raise ValueError(f"n_docs must be >= {n_special + len(names)}")
    next_id = iter(range(n_docs))

    def new_id() -> str:
        return f"{prefix}{next(next_id):04d}"

    for term in TERMS[:n_queries]:
        topic = names[int(rng.integers(len(names)))]
        query = Query(term=term, topic=topic, embedding=topic_vector(topic, 0.8))
        for _ in range(2):  # needles: the exact term, everything else off-topic
            other = names[(names.index(topic) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            doc = Doc(
                new_id(),
                other,
                f"{topic_text(other, 1)} Eingesetzt wird {term}. {topic_text(other, 1)}",
                topic_vector(other, 0.8),
            )
            docs.append(doc)
            query.needles.append(doc.id)
        for _ in range(3):  # paraphrases: close to the query embedding, without the term
            vec = _unit(query.embedding.astype(np.float64) + 0.3 * _unit(rng.normal(size=DIMENSIONS)))
            doc = Doc(new_id(), topic, topic_text(topic), vec.astype(np.float32))
            docs.append(doc)
            query.paraphrases.append(doc.id)
        queries.append(query)
    while len(docs) < n_docs:
        topic = names[int(rng.integers(len(names)))]
        docs.append(Doc(new_id(), topic, topic_text(topic), topic_vector(topic, 0.8)))
    order = rng.permutation(len(docs))  # ids stay, insertion order shuffled
    return Corpus(docs=[docs[i] for i in order], queries=queries)


def recall_at(found: list[str], relevant: set[str], k: int = 5) -> float:
    """Share of *relevant* among the first *k* of *found*."""
    return len(set(found[:k]) & relevant) / min(k, len(relevant))
