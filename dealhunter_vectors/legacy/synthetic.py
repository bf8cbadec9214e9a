"""Deterministic synthetic embeddings and texts that look like dealhunter's RAG data.

Nothing here calls a model. The vectors imitate the *geometry* of OpenAI
``text-embedding-3-large`` output well enough for retrieval tests and benchmarks:
they form topic clusters on the unit sphere, share a common offset direction (real
embeddings of unrelated texts still have a positive cosine), and have a decaying
per-dimension variance spectrum instead of being isotropic noise.

Generation model (cited by the benchmark documentation)
--------------------------------------------------------
Let ``d = dims``. All randomness comes from :class:`numpy.random.Generator` (PCG64)
seeded through :class:`numpy.random.SeedSequence`, so results are bit-for-bit
reproducible for a given seed and numpy version.

1. **Spectrum.** ``s_j = (j + 1) ** -decay`` for ``j = 0 .. d-1`` (default
   ``decay = 0.35``), scaled so that ``sum(s_j**2) = 1``, then assigned to the
   dimensions through a fixed random permutation (so variance is not ordered by
   index). With ``decay = 0.35`` and ``d = 3072`` the participation ratio
   ``(sum s^2)^2 / sum s^4`` is about 390 effective dimensions.
2. **Common direction.** ``g = normalise(z_g * s)`` with ``z_g ~ N(0, I)``.
3. **Cluster centres.** For ``k = 0 .. n_clusters-1``:
   ``u_k = normalise(z_k * s)``, ``c_k = normalise(sqrt(shared) * g + sqrt(1 - shared) * u_k)``
   (default ``shared = 0.15``), so two centres have cosine about ``shared`` (+- ~0.05).
4. **Members.** A row with label ``k`` is
   ``x = normalise(c_k + r * normalise(e * s))`` with ``e ~ N(0, I)`` and a per-row
   radius ``r = spread * U(0.6, 1.4)`` (default ``spread = 0.75``). Hence
   ``cos(x, c_k) ~ 1 / sqrt(1 + r**2)`` (about 0.8), two members of the same cluster
   have cosine about ``1 / (1 + spread**2)`` (about 0.64) and members of different
   clusters about ``shared / (1 + spread**2)`` (about 0.1).

Rows are generated in fixed chunks of :data:`CHUNK_ROWS` rows, chunk ``i`` from its
own child seed, in float32 and on a small thread pool (numpy releases the GIL while
filling arrays), so 100k x 3072 takes a few seconds; because the chunking is fixed,
the first ``m`` rows of ``clustered_embeddings(n)`` equal ``clustered_embeddings(m)``.
Every returned row is float32, non-zero and has unit L2 norm (to float32 rounding).

Texts (:class:`TextGenerator`) are short German/English sentences about bids, CMS
migrations, tech stacks, budgets and deadlines, deterministic from a seed, and can be
tied to a cluster through :func:`topic_for_cluster` so that text, metadata and
vector agree on the topic.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_DECAY",
    "DEFAULT_DIMS",
    "DEFAULT_SHARED",
    "DEFAULT_SPREAD",
    "TECH_STACKS",
    "THEMES",
    "EmbeddingSpace",
    "TechStack",
    "TextGenerator",
    "Topic",
    "clustered_embeddings",
    "clustered_embeddings_with_labels",
    "make_embedding_space",
    "query_near",
    "query_with_cosine",
    "topic_for_cluster",
]

DEFAULT_DIMS = 3072
DEFAULT_DECAY = 0.35
DEFAULT_SHARED = 0.15
DEFAULT_SPREAD = 0.75
CHUNK_ROWS = 4096
"""Rows per generation chunk; fixed so that output does not depend on thread count."""

_STREAM_SPACE = 0
_STREAM_LABELS = 1
_STREAM_SAMPLE = 2

FloatArray = NDArray[np.float32]
LabelArray = NDArray[np.int64]


def _generator(*entropy: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(entropy))))


def _normalise_rows(x: NDArray[np.float32]) -> None:
    """Normalise the rows of a float32 matrix in place (rows of norm 0 are left alone)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms[norms == 0.0] = 1.0
    x /= norms.astype(np.float32)[:, None]


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    n = float(np.linalg.norm(v))
    if n == 0.0 or not math.isfinite(n):
        raise ValueError("cannot normalise a zero or non-finite vector")
    return v / n


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, eq=False)
class EmbeddingSpace:
    """A fixed set of cluster centres plus the spectrum used to sample around them.

    Build it with :func:`make_embedding_space`; sample members with :meth:`sample`.
    The arrays are float32 and must be treated as read-only.
    """

    dims: int
    n_clusters: int
    seed: int
    decay: float
    shared: float
    spectrum: FloatArray = field(repr=False)
    """Per-dimension standard deviation, sum of squares 1, shape (dims,)."""
    common: FloatArray = field(repr=False)
    """Unit vector shared by every centre, shape (dims,)."""
    centres: FloatArray = field(repr=False)
    """Unit cluster centres, shape (n_clusters, dims)."""

    def sample(
        self,
        labels: ArrayLike,
        *,
        seed: int | Sequence[int] = 0,
        spread: float = DEFAULT_SPREAD,
    ) -> FloatArray:
        """Return one unit-norm float32 member per label (shape ``(len(labels), dims)``).

        ``seed`` selects an independent noise stream (an int or a tuple of ints, e.g.
        ``(column_tag, batch_index)``); the same labels, seed and spread always give
        the same vectors. See the module docstring for the formula.
        """
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if lab.size and (int(lab.min()) < 0 or int(lab.max()) >= self.n_clusters):
            raise ValueError(f"labels must lie in [0, {self.n_clusters})")
        if not (spread >= 0.0 and math.isfinite(spread)):
            raise ValueError("spread must be a finite number >= 0")
        stream = [seed] if isinstance(seed, int) else list(seed)
        n = int(lab.size)
        out = np.empty((n, self.dims), dtype=np.float32)
        n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS

        def fill(chunk: int) -> None:
            lo = chunk * CHUNK_ROWS
            hi = min(n, lo + CHUNK_ROWS)
            # separate streams for noise and radii keep row i independent of the chunk length
            noise_rng = _generator(self.seed, _STREAM_SAMPLE, *stream, chunk, 0)
            radius_rng = _generator(self.seed, _STREAM_SAMPLE, *stream, chunk, 1)
            noise = noise_rng.standard_normal((hi - lo, self.dims), dtype=np.float32)
            noise *= self.spectrum
            _normalise_rows(noise)
            radius = (spread * radius_rng.uniform(0.6, 1.4, size=hi - lo)).astype(np.float32)
            noise *= radius[:, None]
            noise += self.centres[lab[lo:hi]]
            _normalise_rows(noise)
            out[lo:hi] = noise

        if n_chunks <= 1:
            for c in range(n_chunks):
                fill(c)
        else:
            with ThreadPoolExecutor(max_workers=_workers()) as pool:
                list(pool.map(fill, range(n_chunks)))
        return out

    def query_near_centre(self, cluster: int, rng: np.random.Generator, *, cosine: float = 0.8) -> FloatArray:
        """A unit query vector with the given cosine to the centre of ``cluster``."""
        return query_with_cosine(self.centres[cluster], cosine, rng)


def make_embedding_space(
    *,
    dims: int = DEFAULT_DIMS,
    n_clusters: int = 64,
    seed: int = 0,
    decay: float = DEFAULT_DECAY,
    shared: float = DEFAULT_SHARED,
) -> EmbeddingSpace:
    """Create the spectrum, common direction and cluster centres (steps 1-3 of the model)."""
    if dims < 2:
        raise ValueError("dims must be >= 2")
    if n_clusters < 1:
        raise ValueError("n_clusters must be >= 1")
    if not 0.0 <= shared < 1.0:
        raise ValueError("shared must lie in [0, 1)")
    if not (decay >= 0.0 and math.isfinite(decay)):
        raise ValueError("decay must be a finite number >= 0")
    rng = _generator(seed, _STREAM_SPACE)
    spec = np.arange(1, dims + 1, dtype=np.float64) ** -decay
    spec /= np.sqrt(np.sum(spec**2))
    spec = spec[rng.permutation(dims)]
    common = _unit(rng.standard_normal(dims) * spec)
    raw = rng.standard_normal((n_clusters, dims)) * spec
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    centres = math.sqrt(shared) * common[None, :] + math.sqrt(1.0 - shared) * raw
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return EmbeddingSpace(
        dims=dims,
        n_clusters=n_clusters,
        seed=seed,
        decay=decay,
        shared=shared,
        spectrum=spec.astype(np.float32),
        common=common.astype(np.float32),
        centres=centres.astype(np.float32),
    )


def clustered_embeddings_with_labels(
    n: int,
    *,
    dims: int = DEFAULT_DIMS,
    n_clusters: int = 64,
    seed: int = 0,
    spread: float = DEFAULT_SPREAD,
    decay: float = DEFAULT_DECAY,
    shared: float = DEFAULT_SHARED,
) -> tuple[FloatArray, LabelArray]:
    """Return ``(vectors, labels)``: ``n`` clustered unit vectors and their cluster ids.

    Labels are drawn uniformly from ``range(n_clusters)``; the vectors follow the model
    in the module docstring. Deterministic for a seed; float32, shape ``(n, dims)``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    space = make_embedding_space(dims=dims, n_clusters=n_clusters, seed=seed, decay=decay, shared=shared)
    labels = np.empty(n, dtype=np.int64)
    for chunk, lo in enumerate(range(0, n, CHUNK_ROWS)):
        hi = min(n, lo + CHUNK_ROWS)
        labels[lo:hi] = _generator(seed, _STREAM_LABELS, chunk).integers(0, n_clusters, size=hi - lo)
    return space.sample(labels, seed=0, spread=spread), labels


def clustered_embeddings(
    n: int,
    *,
    dims: int = DEFAULT_DIMS,
    n_clusters: int = 64,
    seed: int = 0,
    spread: float = DEFAULT_SPREAD,
    decay: float = DEFAULT_DECAY,
    shared: float = DEFAULT_SHARED,
) -> FloatArray:
    """Return ``n`` embedding-like float32 unit vectors of shape ``(n, dims)``.

    A mixture of ``n_clusters`` cluster directions with a decaying spectrum; see the
    module docstring for the exact generation model and
    :func:`clustered_embeddings_with_labels` for the cluster ids.
    """
    vectors, _ = clustered_embeddings_with_labels(
        n, dims=dims, n_clusters=n_clusters, seed=seed, spread=spread, decay=decay, shared=shared
    )
    return vectors


def query_with_cosine(target: ArrayLike, cosine: float, rng: np.random.Generator) -> FloatArray:
    """A unit float32 vector whose cosine with ``target`` is ``cosine`` (to float32 rounding).

    ``q = cosine * t + sqrt(1 - cosine**2) * r`` where ``t`` is the normalised target and
    ``r`` a random unit vector orthogonal to it (computed in float64, then cast).
    """
    if not -1.0 <= cosine <= 1.0:
        raise ValueError("cosine must lie in [-1, 1]")
    t = _unit(np.asarray(target, dtype=np.float64).reshape(-1))
    r = rng.standard_normal(t.size)
    r -= float(r @ t) * t
    r = _unit(r)
    q = cosine * t + math.sqrt(max(0.0, 1.0 - cosine * cosine)) * r
    return _unit(q).astype(np.float32)


def query_near(target: ArrayLike, rng: np.random.Generator, noise: float = 0.3) -> FloatArray:
    """A unit float32 query close to ``target`` (a row or a cluster centre).

    ``normalise(t + noise * r)`` with ``t`` the normalised target and ``r`` a random unit
    vector, so the cosine to the target is about ``1 / sqrt(1 + noise**2)``
    (0.3 -> ~0.96, 0.75 -> ~0.8, 1.0 -> ~0.71). Use :func:`query_with_cosine` for an
    exact value.
    """
    if not (noise >= 0.0 and math.isfinite(noise)):
        raise ValueError("noise must be a finite number >= 0")
    t = _unit(np.asarray(target, dtype=np.float64).reshape(-1))
    r = _unit(rng.standard_normal(t.size))
    return _unit(t + noise * r).astype(np.float32)


# --------------------------------------------------------------------------- texts


@dataclass(frozen=True)
class TechStack:
    """A technology as the agents name it: ``kind`` says which metadata key holds it."""

    name: str
    kind: Literal["cms", "framework"]
    version: str
    companion: str
    """A typical partner technology of the other kind (e.g. Symfony for Drupal)."""


TECH_STACKS: tuple[TechStack, ...] = (
    TechStack("Drupal", "cms", "10", "Symfony"),
    TechStack("TYPO3", "cms", "12 LTS", "Symfony"),
    TechStack("WordPress", "cms", "6.4", "React"),
    TechStack("Next.js", "framework", "14", "Contentful"),
    TechStack("Sitecore", "cms", "10.3", "ASP.NET"),
    TechStack("Adobe Experience Manager", "cms", "6.5", "Java"),
    TechStack("Magnolia", "cms", "6.2", "Java"),
    TechStack("Contentful", "cms", "SaaS", "Next.js"),
    TechStack("Strapi", "cms", "4", "Nuxt"),
    TechStack("Nuxt", "framework", "3", "Strapi"),
    TechStack("Angular", "framework", "17", "Spring Boot"),
    TechStack("Vue.js", "framework", "3", "Laravel"),
    TechStack("Symfony", "framework", "6.4", "Drupal"),
    TechStack("Laravel", "framework", "10", "Vue.js"),
    TechStack("Spring Boot", "framework", "3.2", "Angular"),
    TechStack("Ibexa DXP", "cms", "4", "Symfony"),
)

THEMES: tuple[str, ...] = (
    "migration",
    "accessibility",
    "hosting",
    "budget",
    "deadline",
    "legal",
    "security",
    "performance",
    "integration",
    "team",
)

_INDUSTRIES = (
    "Öffentliche Verwaltung",
    "Versicherung",
    "Automotive",
    "Gesundheitswesen",
    "Energie",
    "Handel",
    "Banken",
    "Hochschule",
    "Logistik",
    "Tourismus",
)


@dataclass(frozen=True)
class Topic:
    """What a cluster is about: a tech stack, a theme and an industry."""

    cluster: int
    tech: TechStack
    theme: str
    industry: str


def topic_for_cluster(cluster: int) -> Topic:
    """The topic assigned to a cluster id (deterministic, cycles through the lists)."""
    if cluster < 0:
        raise ValueError("cluster must be >= 0")
    tech = TECH_STACKS[cluster % len(TECH_STACKS)]
    theme = THEMES[(cluster // len(TECH_STACKS) + cluster) % len(THEMES)]
    industry = _INDUSTRIES[(cluster * 7 + 3) % len(_INDUSTRIES)]
    return Topic(cluster=cluster, tech=tech, theme=theme, industry=industry)


_FIRST_NAMES = (
    "Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Laura", "Paul", "Lea", "Max",
    "Julia", "Tim", "Sarah", "Jan", "Katrin", "Stefan", "Nina", "Tobias", "Miriam", "David",
)  # fmt: skip
_LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Hoffmann", "Schulz", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz",
    "Zimmermann", "Braun", "Krüger", "Hartmann",
)  # fmt: skip
_COMPANY_STEMS = (
    "Stadtwerke", "Rheinland", "Nordlicht", "Alpen", "Hanse", "Bergmann", "Sonnen", "Elbe",
    "Westfalen", "Isar", "Kronen", "Lindner", "Falken", "Brücken", "Tannen", "Quell",
)  # fmt: skip
_COMPANY_SUFFIXES = ("GmbH", "AG", "Versicherung AG", "Gruppe", "SE", "eG", "Holding GmbH", "Kliniken")
_CITIES = ("Köln", "Hamburg", "München", "Dortmund", "Leipzig", "Stuttgart", "Bremen", "Essen", "Berlin")
_THEME_PHRASES_DE = {
    "migration": "die Migration von {pages} Seiten und {types} Inhaltstypen",
    "accessibility": "die Barrierefreiheit nach WCAG 2.1 AA und BITV 2.0",
    "hosting": "den Betrieb in einer deutschen Cloud mit 99,9 % Verfügbarkeit",
    "budget": "ein Budget von {budget} EUR brutto",
    "deadline": "die Abgabefrist am {date} um 12:00 Uhr",
    "legal": "die Vertragsbedingungen nach EVB-IT Erstellung",
    "security": "ein Sicherheitskonzept nach BSI IT-Grundschutz",
    "performance": "Ladezeiten unter 2 Sekunden (LCP) auf mobilen Geräten",
    "integration": "Schnittstellen zu SAP, Salesforce und dem Intranet",
    "team": "ein Team aus {people} Personen mit Scrum-Erfahrung",
}
_THEME_PHRASES_EN = {
    "migration": "migrating {pages} pages and {types} content types",
    "accessibility": "WCAG 2.1 AA accessibility across all templates",
    "hosting": "hosting in an EU cloud region with 99.9% availability",
    "budget": "a budget of EUR {budget}",
    "deadline": "the submission deadline on {date}",
    "legal": "liability caps and GDPR data processing terms",
    "security": "penetration tests and an ISO 27001 aligned security concept",
    "performance": "Core Web Vitals in the green range on mobile",
    "integration": "integrations with SAP, Salesforce and the customer's SSO",
    "team": "a delivery team of {people} people working in two-week sprints",
}
_AGENT_TEMPLATES_DE = (
    "Die Ausschreibung fordert {phrase}. Die bestehende Website läuft auf {tech} {version}.",
    "Empfehlung: {tech} {version} mit {companion}, weil {phrase} im Vordergrund steht.",
    "Risiko: {phrase} ist im Zeitplan knapp bemessen; {tech}-Know-how ist im Team vorhanden.",
    "Der Auftraggeber aus dem Bereich {industry} erwartet {phrase}.",
    "Bewertung {theme}: {score} von 100 Punkten. {tech} erfüllt die Muss-Kriterien.",
    "Für {customer} ist {phrase} entscheidend; ein Relaunch auf Basis von {tech} ist realistisch.",
)
_AGENT_TEMPLATES_EN = (
    "The tender asks for {phrase_en}. The current site runs {tech} {version}.",
    "Recommendation: {tech} {version} with {companion}, because {phrase_en} is the main driver.",
    "Risk: {phrase_en} leaves little slack in the timeline; the team has {tech} experience.",
    "The {industry} client expects {phrase_en}.",
    "{theme} assessment: {score}/100. {tech} meets the mandatory criteria.",
    "For {customer}, {phrase_en} is decisive; a relaunch on {tech} is feasible.",
)
_RAW_TEMPLATES = (
    "{n}. Leistungsbeschreibung: Der Auftragnehmer übernimmt {phrase}. Das Zielsystem ist {tech} oder gleichwertig.",
    "Abschnitt {n} – Anforderungen: Es wird {phrase} erwartet. Angebote sind bis zum {date} einzureichen.",
    "Section {n} – Scope: the contractor is responsible for {phrase_en}. Preferred platform: {tech}.",
    "{n}. Zuschlagskriterien: Preis 40 %, Qualität 60 %. Referenzen mit {tech} sind nachzuweisen.",
    "Anlage {n}: Mengengerüst mit {pages} Seiten, {types} Inhaltstypen und {langs} Sprachen.",
    "Section {n} – Timeline: kick-off in {month}, go-live after {weeks} weeks, {phrase_en}.",
)
_MONTHS = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "September", "Oktober", "November")


class TextGenerator:
    """Readable, deterministic German/English texts for chunks, names and descriptions.

    All methods draw from one :class:`random.Random` seeded with ``seed``; calling the
    same methods in the same order with the same arguments reproduces the texts.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def person_name(self) -> str:
        """A German first and last name."""
        return f"{self.rng.choice(_FIRST_NAMES)} {self.rng.choice(_LAST_NAMES)}"

    def company_name(self) -> str:
        """A plausible German customer name, e.g. ``Stadtwerke Köln GmbH``."""
        r = self.rng
        return f"{r.choice(_COMPANY_STEMS)} {r.choice(_CITIES)} {r.choice(_COMPANY_SUFFIXES)}"

    def _fill(self, template: str, topic: Topic, customer: str | None) -> str:
        r = self.rng
        values = {
            "pages": f"{r.randrange(200, 20000):,}".replace(",", "."),
            "types": str(r.randrange(5, 60)),
            "budget": f"{r.randrange(80, 2500) * 1000:,}".replace(",", "."),
            "date": f"{r.randrange(1, 29):02d}.{r.randrange(1, 13):02d}.2026",
            "people": str(r.randrange(3, 15)),
        }
        phrase = _THEME_PHRASES_DE[topic.theme].format(**values)
        phrase_en = _THEME_PHRASES_EN[topic.theme].format(**values)
        return template.format(
            phrase=phrase,
            phrase_en=phrase_en,
            tech=topic.tech.name,
            version=topic.tech.version,
            companion=topic.tech.companion,
            industry=topic.industry,
            theme=topic.theme.capitalize(),
            score=r.randrange(35, 96),
            customer=customer or self.company_name(),
            n=r.randrange(1, 15),
            date=values["date"],
            pages=values["pages"],
            types=values["types"],
            langs=r.randrange(1, 6),
            month=r.choice(_MONTHS),
            weeks=r.randrange(12, 52),
        )

    def sentence(self, topic: Topic, *, language: Literal["de", "en"] | None = None) -> str:
        """One sentence about ``topic`` (German or English, random if not given)."""
        lang = language or ("de" if self.rng.random() < 0.65 else "en")
        templates = _AGENT_TEMPLATES_DE if lang == "de" else _AGENT_TEMPLATES_EN
        return self._fill(self.rng.choice(templates), topic, None)

    def agent_chunk(
        self,
        topic: Topic,
        agent_name: str,
        *,
        customer: str | None = None,
        language: Literal["de", "en"] | None = None,
    ) -> str:
        """An agent output chunk (``deal_embeddings.content``): 2-4 sentences on ``topic``."""
        lang = language or ("de" if self.rng.random() < 0.65 else "en")
        templates = _AGENT_TEMPLATES_DE if lang == "de" else _AGENT_TEMPLATES_EN
        count = self.rng.randrange(2, 5)
        body = " ".join(self._fill(self.rng.choice(templates), topic, customer) for _ in range(count))
        label = agent_name.replace("-", " ").title()
        return f"[{label}] {body}"

    def raw_chunk(self, topic: Topic, *, customer: str | None = None) -> str:
        """A raw document chunk (``raw_chunks.content``): 2-5 tender-document sentences."""
        count = self.rng.randrange(2, 6)
        return " ".join(self._fill(self.rng.choice(_RAW_TEMPLATES), topic, customer) for _ in range(count))

    def description(self, topic: Topic, customer: str) -> str:
        """A project description as a pre-qualification would carry it."""
        intro = self.rng.choice(
            (
                "Ausschreibung: Relaunch des Webportals von {c}.",
                "Anfrage von {c}: Modernisierung der Unternehmenswebsite.",
                "RFP from {c}: replatforming of the corporate website.",
                "{c} sucht einen Partner für Konzeption, Umsetzung und Betrieb.",
            )
        ).format(c=customer)
        return " ".join([intro, self.sentence(topic, language="de"), self.sentence(topic)])

    def words(self, n: int) -> str:
        """``n`` loosely related words (tech and bid vocabulary), space separated."""
        pool = (
            "Angebot", "Ausschreibung", "Migration", "Relaunch", "Barrierefreiheit", "Hosting",
            "Schnittstelle", "Budget", "Frist", "Konzept", "Redaktion", "Workflow", "Suche",
            "Formular", "Portal", "Intranet", "Design", "Betrieb", "Wartung", "Schulung",
        )  # fmt: skip
        return " ".join(self.rng.choice(pool) for _ in range(n))
