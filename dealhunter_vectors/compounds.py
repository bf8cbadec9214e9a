"""German compound splitting for the hybrid search's text leg (issue 23; why and how: docs/compounds.md).

PostgreSQL's ``german`` configuration stems but never splits compounds, so ``Rahmenvertrag``
misses ``Rahmenvertragsangebot``. This module splits compounds with the German word
frequencies of ``wordfreq`` (the optional extra ``[compounds]``): a word is cut into known
words (with the linking elements ``s es n en e er ens``) whose mean Zipf frequency beats the
word's own (Koehn & Knight 2003).

* :func:`compound_parts_text`: what a compound-aware index adds to a text: for each distinct
  capitalised compound its parts and inner sub-compounds (``rahmen vertrag angebot rahmenvertrag
  vertragsangebot``), each group in order, so that a phrase of parts matches.
* :func:`decompound_text`: the text followed by those parts (the text keeps its positions,
  so phrase queries on it are unchanged).
* :func:`decompound_query`: a second ``websearch_to_tsquery`` text in which each compound of
  the query is the quoted phrase of its parts (``None`` when the query has none); the text
  leg ORs its tsquery with the original's.

Pure and deterministic: no database access; splits are cached per word.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Iterator
from typing import Final

from .errors import ConfigurationError, InvalidArgumentError

__all__ = [
    "EXTRA",
    "MAX_PARTS_CHARS",
    "MAX_QUERY_CHARS",
    "MAX_TEXT_CHARS",
    "compound_parts_text",
    "compounds_available",
    "decompound_query",
    "decompound_text",
    "load_word_list",
    "split_compound",
]

EXTRA: Final = "compounds"
"""The optional extra that brings the word frequencies: ``pip install 'dealhunter-vectors[compounds]'``."""
MAX_TEXT_CHARS: Final = 250_000
"""Only this prefix of a text is split (the full-text columns index ``left(content, 250000)``)."""
MAX_PARTS_CHARS: Final = 100_000
"""Longest :func:`compound_parts_text` (whole groups): with the text's own 250,000 characters the
tsvector stays far below PostgreSQL's 1 MB limit (a text of distinct words: ~0.66 MB)."""
MAX_QUERY_CHARS: Final = 4096
"""Longest query :func:`decompound_query` accepts (the hybrid search's own limit)."""
MAX_QUERY_COMPOUNDS: Final = 64
"""A query's words after this many compounds stay as they are in the alternative."""

MIN_PART: Final = 3
"""Shortest part, in characters."""
MAX_PART: Final = 32
"""Longest part, in characters."""
MAX_WORD: Final = 64
"""Longer words (not natural words) are not split."""
MAX_PARTS: Final = 6
"""Most parts of one word."""
MIN_ZIPF: Final = 2.0
"""A known word is one whose Zipf frequency (log10 per billion words) is at least this."""
SHORT_PARTS: Final = frozenset(
    "amt app art bad bau bio bus eis gas hof kur not öko ort rad rat ruf see tag tee tor typ tür uhr web weg zug".split()  # noqa: SIM905, E501
)
"""The only three-letter parts: nouns that start or end compounds (Web|entwicklung, Bau|amt).

Other three-letter strings are frequent in web text as abbreviations, interjections or
English (ing, ach, per, red, san) and would cut words apart (Red|aktion, Referenz|ach|weis).
"""
LINKS: Final = ("s", "es", "n", "en", "e", "er", "ens", "ns")
"""Linking elements (Fugen) that may follow a non-final part: Leistung+s+verzeichnis."""
ENDINGS: Final = ("en", "n", "e", "s", "es", "er", "ern")
"""Inflection endings a final part may carry beyond a known form (Fehler|behebung+en)."""
_VOWELS: Final = "aeiouäöüy"
_LINK_RULES: Final = {
    # link -> (last letters the part before it must end in, or None; last letters it must not end in):
    # -n/-ns only after -e (Stelle+n), the others never after -e, -s not after a sibilant, -es only
    # after a consonant.
    "n": ("e", ""), "ns": ("e", ""), "en": (None, "e"), "ens": (None, "e"), "e": (None, "e"),
    "er": (None, "e"), "s": (None, "sßxz"), "es": (None, _VOWELS),
}  # fmt: skip
_LINKS_BY_LAST: Final = {
    last: tuple((link, len(link), *_LINK_RULES[link]) for link in LINKS if link.endswith(last)) for last in "nesr"
}
_ENDINGS_BY_LAST: Final = {last: tuple((e, len(e)) for e in ENDINGS if e.endswith(last)) for last in "nesr"}

NOT_PARTS: Final = frozenset(
    # PostgreSQL's German stop words of three letters or more (they give no lexeme), except
    # the adverbs that do start real compounds (weiter-, wieder-, zwischen-, gegen-, hinter-, selbst-).
    """aber alle allem allen aller alles als also ander andere anderem anderen anderer anderes anderm
    andern anderr anders auch auf aus bei bin bis bist damit dann der den des dem die das daß derselbe
    derselben denselben desselben demselben dieselbe dieselben dasselbe dazu dein deine deinem deinen
    deiner deines denn derer dessen dich dir dies diese diesem diesen dieser dieses doch dort durch ein
    eine einem einen einer eines einig einige einigem einigen einiger einiges einmal ihn ihm etwas euer
    eure eurem euren eurer eures für gewesen hab habe haben hat hatte hatten hier hin ich mich mir ihr
    ihre ihrem ihren ihrer ihres euch indem ins ist jede jedem jeden jeder jedes jene jenem jenen jener
    jenes jetzt kann kein keine keinem keinen keiner keines können könnte machen man manche manchem
    manchen mancher manches mein meine meinem meinen meiner meines mit muss musste nach nicht nichts noch
    nun nur oder ohne sehr sein seine seinem seinen seiner seines sich sie ihnen sind solche solchem
    solchen solcher solches soll sollte sondern sonst über und uns unse unsem unsen unser unses unter viel
    vom von vor während war waren warst was weg weil welche welchem welchen welcher welches wenn werde
    werden wie will wir wird wirst wollen wollte würde würden zum zur zwar
    ver ent zer emp ange
    keit keiten heit heiten lich liche lichen licher lichkeit schaft schaften ung ungen ling chen lein haft
    isch ische ischen tion tionen""".split()  # noqa: SIM905 - a word list reads best as text
)
"""Words never taken as a part: function words (Aus|schreibung, Unter|lagen), bare prefixes and the
suffixes that web-text word lists hold as words (Wirtschaft|lich|keit)."""

STOP_PARTS: Final = frozenset({"weiter", "wieder", "zwischen", "gegen", "hinter", "selbst"})
"""Parts that PostgreSQL's german configuration drops as stop words: a query phrase of parts
holding one would lose it (Weiter|entwicklung would search for any Entwicklung)."""

_TOKEN: Final = re.compile(r"\w+(?:-\w+)*")
"""A word, or words joined by hyphens (Hosting-Betriebskonzept), as PostgreSQL's parser sees them."""
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Vocabulary:
    """The German words of wordfreq (``large`` list) with their Zipf frequency, loaded once."""

    _lock = threading.Lock()
    _zipf: dict[str, float] | None = None

    @classmethod
    def get(cls) -> dict[str, float]:
        if cls._zipf is None:
            with cls._lock:
                if cls._zipf is None:
                    cls._zipf = cls._load()
        return cls._zipf

    @staticmethod
    def _load() -> dict[str, float]:
        try:
            import wordfreq
        except ImportError as exc:
            raise ConfigurationError(
                f"German compound splitting needs the optional dependency wordfreq: "
                f"pip install 'dealhunter-vectors[{EXTRA}]'"
            ) from exc
        try:
            path = wordfreq.available_languages("large")["de"]
            # Buckets of words by frequency in centibels (bucket i: 10 ** (-i / 100)), read without
            # wordfreq's own caches, which would keep all 630,000 words alive.
            buckets = wordfreq.read_cBpack(path)
        except (KeyError, OSError, ValueError) as exc:
            raise ConfigurationError(f"wordfreq's German word list could not be read: {exc}") from exc
        zipf: dict[str, float] = {}
        for index, bucket in enumerate(buckets[: int((9 - MIN_ZIPF) * 100) + 1]):
            score = 9 - index / 100
            for word in bucket:
                if (
                    MIN_PART <= len(word) <= MAX_WORD
                    and word.isalpha()
                    and word not in NOT_PARTS
                    and (len(word) > MIN_PART or word in SHORT_PARTS)
                ):
                    zipf.setdefault(word, score)
        return zipf


def load_word_list() -> None:
    """Load the German word list now (~0.5 s, once per process) instead of at the first split.

    The bulk loader calls it before it forks its worker processes, which then split without
    loading it again. Raises :class:`~dealhunter_vectors.errors.ConfigurationError` without the extra.
    """
    _Vocabulary.get()


def compounds_available() -> bool:
    """True when the optional dependency is installed (nothing is loaded)."""
    try:
        import wordfreq  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- one word


def _final(segment: str, zipf: dict[str, float]) -> float | None:
    """The frequency of a final segment: its own, else that of the word it inflects (Behebung-en)."""
    score = zipf.get(segment)
    if score is not None:
        return score
    for ending, size in _ENDINGS_BY_LAST.get(segment[-1], ()):
        if len(segment) - size >= MIN_PART and segment.endswith(ending):
            score = zipf.get(segment[:-size])
            if score is not None:
                return score
    return None


def _base(segment: str, zipf: dict[str, float]) -> tuple[str, float] | None:
    """The best-known word a non-final segment stands for: itself or itself less a linking element."""
    score = zipf.get(segment)
    best = None if score is None else (segment, score)
    for link, size, must, must_not in _LINKS_BY_LAST.get(segment[-1], ()):
        if len(segment) - size < MIN_PART or not segment.endswith(link):
            continue
        base = segment[:-size]
        last = base[-1]
        if (must is not None and last not in must) or last in must_not:
            continue
        score = zipf.get(base)
        if score is not None and (best is None or score > best[1]):
            best = (base, score)
    return best


@functools.lru_cache(maxsize=65536)
def _split_lower(word: str) -> tuple[tuple[str, str], ...]:
    """(surface, base) segments of a lower-case alphabetic word; one segment when it is no compound.

    The split with the highest mean Zipf frequency of its parts, taken when that mean beats the
    word's own frequency (an unknown word counts 0). Ties: fewer parts, then the first found.
    """
    zipf = _Vocabulary.get()
    n = len(word)
    if n < 2 * MIN_PART or n > MAX_WORD:
        return ((word, word),)
    # best[i][k]: highest sum of Zipf frequencies splitting word[i:] into k known parts, and the parts.
    best: list[dict[int, tuple[float, tuple[tuple[str, str], ...]]]] = [{} for _ in range(n + 1)]
    splittable: list[int] = []  # positions j where word[j:] splits into known parts, ascending
    for i in range(n - MIN_PART, -1, -1):
        row = best[i]
        final = word[i:]
        if len(final) <= MAX_PART and (score := _final(final, zipf)) is not None:
            row[1] = (score, ((final, final),))
        for j in splittable:
            if j < i + MIN_PART:
                continue
            if j > i + MAX_PART:
                break
            rest = best[j]
            segment = word[i:j]
            known = _base(segment, zipf)
            if known is None:
                continue
            base, score = known
            for k, (total, parts) in rest.items():
                if k + 1 > MAX_PARTS:
                    continue
                candidate = total + score
                held = row.get(k + 1)
                if held is None or candidate > held[0]:
                    row[k + 1] = (candidate, ((segment, base), *parts))
        if row:
            splittable.insert(0, i)
    chosen: tuple[tuple[str, str], ...] = ((word, word),)
    chosen_mean = zipf.get(word, 0.0)
    for k in sorted(best[0]):
        if k < 2:
            continue
        total, parts = best[0][k]
        if total / k > chosen_mean:
            chosen, chosen_mean = parts, total / k
    return chosen


def split_compound(word: str) -> list[str]:
    """The parts of *word*, lower case, linking elements removed; ``[word.lower()]`` when it is no compound.

    Hyphenated words are split at the hyphens and each piece on its own:
    ``Hosting-Betriebskonzept`` -> ``["hosting", "betrieb", "konzept"]``.
    """
    if not isinstance(word, str):
        raise InvalidArgumentError("word", f"expected a string, got {type(word).__name__}")
    return [base for _surface, base, _hyphen in _segments(_normalize(word))]


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFC", _CONTROL.sub(" ", text))


def _segments(token: str) -> list[tuple[str, str, bool]]:
    """(surface, base, follows a hyphen) for each part of a token; pieces with digits stay whole."""
    out: list[tuple[str, str, bool]] = []
    for index, piece in enumerate(token.lower().split("-")):
        if not piece:
            continue
        parts = _split_lower(piece) if piece.isalpha() else ((piece, piece),)
        out.extend((surface, base, index > 0 and n == 0) for n, (surface, base) in enumerate(parts))
    return out


@functools.lru_cache(maxsize=65536)
def _expansion(token: str) -> tuple[str, ...]:
    """What a compound token adds to the index: its parts, then every inner run of two or more parts.

    A run is written as in the word (linking elements kept inside, removed at its end; hyphens
    kept), so ``rahmen|vertrags|angebot`` adds ``rahmen vertrag angebot rahmenvertrag
    vertragsangebot``. Empty when no piece of the token is a compound.
    """
    segments = _segments(token)
    pieces = token.count("-") + 1
    if len(segments) <= pieces:
        return ()
    out = [base for _surface, base, _hyphen in segments]
    k = len(segments)
    for length in range(2, k):
        for start in range(k - length + 1):
            run = segments[start : start + length]
            text = "".join(
                ("-" if hyphen and n else "") + surface for n, (surface, _base, hyphen) in enumerate(run[:-1])
            )
            last = run[-1]
            text += ("-" if last[2] else "") + last[1]
            out.append(text)
    return tuple(out)


def _compound_tokens(text: str) -> Iterator[str]:
    """The words of a text that may be compounds: long enough and capitalised.

    German capitalises nouns; the lower-case words are verbs, adjectives and participles, which a
    frequency splitter cuts wrongly (fehl|ende, sicher|gestellt, zug|lassen). Queries are split
    whatever their case (users type lower case), see :func:`decompound_query`.
    """
    for match in _TOKEN.finditer(text):
        token = match.group()
        if len(token) >= 2 * MIN_PART and token[0].isupper():
            yield token


# --------------------------------------------------------------------------- texts


def compound_parts_text(text: str) -> str:
    """The parts to index next to *text*: each distinct compound's expansion, space-separated ('' when none).

    Only the first :data:`MAX_TEXT_CHARS` characters are read, and at most :data:`MAX_PARTS_CHARS`
    characters are returned (the groups that fit whole). Deterministic: compounds in order of first
    occurrence.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError("text", f"expected a string, got {type(text).__name__}")
    seen: dict[str, None] = {}
    for token in _compound_tokens(_normalize(text[:MAX_TEXT_CHARS])):
        key = token.lower()
        if key not in seen:
            seen[key] = None
    groups: list[str] = []
    size = -1
    for key in seen:
        expansion = _expansion(key)
        if not expansion:
            continue
        group = " ".join(expansion)
        size += len(group) + 1
        if size > MAX_PARTS_CHARS:
            break
        groups.append(group)
    return "\n".join(groups)


def decompound_text(text: str) -> str:
    """The text to index: *text* (NUL and control characters as spaces), then :func:`compound_parts_text`.

    The parts come after the text, so the text's words keep their positions (phrase queries on
    the text match as before) and the parts of one compound are adjacent (a phrase of parts
    matches).
    """
    parts = compound_parts_text(text)
    clean = _CONTROL.sub(" ", text)
    return f"{clean}\n{parts}" if parts else clean


def decompound_query(query: str) -> str | None:
    """A second websearch query text: each compound (or hyphenated word) replaced by the quoted phrase of its parts.

    ``Rahmenvertrag -Hosting`` -> ``"rahmen vertrag" -Hosting``, ``TYPO3-Erweiterung`` ->
    ``"typo3 erweiterung"`` (which also finds ``TYPO3-Erweiterungen``); inside quotes the parts go in
    unquoted (``"Rahmenvertrag für Web"`` -> ``"rahmen vertrag für Web"``). Everything else is
    kept, so the user's operators mean the same; a negated word (``-Rahmenvertrag``) stays as it
    is, so both queries exclude the same rows and their OR excludes them too. ``None`` when the
    query holds no compound outside a negation.
    The text leg searches ``websearch_to_tsquery(cfg, query) || websearch_to_tsquery(cfg, alt)``:
    both are parameters; websearch_to_tsquery accepts any text.
    """
    if not isinstance(query, str):
        raise InvalidArgumentError("query", f"expected a string, got {type(query).__name__}")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidArgumentError("query", f"{len(query)} characters, at most {MAX_QUERY_CHARS} are accepted")
    text = _normalize(query)
    out: list[str] = []
    done = 0
    quoted = False
    replaced = 0
    for match in _TOKEN.finditer(text):
        between = text[done : match.start()]
        quoted ^= between.count('"') % 2 == 1
        out.append(between)
        token = match.group()
        done = match.end()
        negated = not quoted and between.endswith("-")
        if not negated and replaced < MAX_QUERY_COMPOUNDS and (len(token) >= 2 * MIN_PART or "-" in token):
            parts = [base for _surface, base, _hyphen in _segments(token)]
            if len(parts) > 1 and not STOP_PARTS.intersection(parts):
                phrase = " ".join(parts)
                out.append(phrase if quoted else f'"{phrase}"')
                replaced += 1
                continue
        out.append(token)
    if not replaced:
        return None
    out.append(text[done:])
    return "".join(out)
