"""Compare German decompounders on the hand-labelled gold list (how the issue-23 splitter was chosen).

    python -m benchmarks.compare_decompounders [--out results.json]

Runs every candidate that is importable in the current environment (install them into a
scratch venv, not the project's: ``pip install split-words compound-split wordninja-pp
german-nouns wordfreq``):

* ``wordfreq`` - this library's splitter (dealhunter_vectors.compounds, wordfreq's German list);
* ``charsplit`` - CharSplit (Tuggener 2016; PyPI ``split-words`` packages the original code and
  n-gram model; ``charsplit-fst`` is its Rust port, Python >= 3.12 only), best binary split
  applied recursively while its score is above 0;
* ``compound-split`` - its ``doc_split.maximal_split`` (dictionary + CharSplit);
* ``wordninja-pp`` - Zipf-cost word segmentation with its German list;
* ``german-nouns`` - ``Nouns.parse_compound`` (Wiktionary nouns).

Every candidate gets hyphenated words piece by piece (as the library does). Parts are compared
after PostgreSQL's ``german_stem`` (an embedded server, or DATABASE_URL), so a splitter that
keeps the linking s (``vertrags``) is not penalised. Speed: words of the corpus chunks
(``benchmarks/data/german_tenders.json``) split without any cache, per 1 KB of chunk text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

DATA = Path(__file__).resolve().parent / "data"
WORD = re.compile(r"\w+(?:-\w+)*")
Splitter = Callable[[str], list[str]]


def load_wordfreq() -> Splitter:
    from dealhunter_vectors import compounds

    compounds.split_compound("Vorladen")  # loads the word list
    uncached = compounds._split_lower.__wrapped__  # the speed column is without the library's cache
    return lambda piece: [base for _s, base in uncached(piece.lower())]


def load_charsplit() -> Splitter:
    from split_words import Splitter as CharSplit

    splitter = CharSplit()
    splitter.split_compound("Vorladen")

    def split(word: str) -> list[str]:
        if len(word) < 6:
            return [word]
        score, head, tail = splitter.split_compound(word)[0]
        if score <= 0 or head.lower() == word.lower():
            return [word]
        return split(head) + split(tail)

    return split


def load_charsplit_head() -> Splitter:
    """CharSplit as compound-split uses it: only the non-final part is split further."""
    from split_words import Splitter as CharSplit

    splitter = CharSplit()

    def split(word: str) -> list[str]:
        if len(word) < 6:
            return [word]
        score, head, tail = splitter.split_compound(word)[0]
        if score <= 0 or head.lower() == word.lower():
            return [word]
        return [*split(head), tail]

    return split


def load_compound_split() -> Splitter:
    from compound_split import doc_split

    doc_split.maximal_split("Vorladen")
    return lambda word: list(doc_split.maximal_split(word[0].upper() + word[1:]))


def load_wordninja() -> Splitter:
    import wordninja

    model = wordninja.LanguageModel("de")

    def split(word: str) -> list[str]:
        out: list[str] = []
        for token in model.split(word):
            if out and len(token) <= 2:  # a linking element or a fragment: keep it on the part before
                out[-1] += token
            else:
                out.append(token)
        return out

    return split


def load_german_nouns() -> Splitter:
    from german_nouns.lookup import Nouns

    nouns = Nouns()

    def split(word: str) -> list[str]:
        parts = nouns.parse_compound(word[0].upper() + word[1:])
        return list(parts) if parts else [word]

    return split


CANDIDATES: dict[str, Callable[[], Splitter]] = {
    "wordfreq": load_wordfreq,
    "charsplit": load_charsplit,
    "charsplit-head": load_charsplit_head,
    "compound-split": load_compound_split,
    "wordninja-pp": load_wordninja,
    "german-nouns": load_german_nouns,
}


def split_token(split: Splitter, token: str) -> list[str]:
    out: list[str] = []
    for piece in token.split("-"):
        if piece:
            out.extend(split(piece) if piece.isalpha() and len(piece) >= 6 else [piece])
    return out


async def stems(words: set[str]) -> dict[str, str]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        from dealhunter_vectors.db.embedded import start_embedded

        url = start_embedded().url
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT w, coalesce((ts_lexize('german_stem', lower(w)))[1], lower(w)) AS s FROM unnest($1::text[]) AS w",
            sorted(words),
        )
    finally:
        await conn.close()
    return {r["w"]: r["s"] for r in rows}


def score(gold: list[list[str]], predicted: list[list[str]], stem: dict[str, str]) -> dict[str, float]:
    tp = fp = fn = exact = 0
    for want, got in zip(gold, predicted, strict=True):
        w = Counter(stem[p] for p in want)
        g = Counter(stem[p] for p in got)
        hit = sum((w & g).values())
        tp += hit
        fp += sum(g.values()) - hit
        fn += sum(w.values()) - hit
        exact += w == g
    return {
        "part_precision": tp / (tp + fp),
        "part_recall": tp / (tp + fn),
        "exact_split": exact / len(gold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    gold_file = json.loads((DATA / "german_compounds_gold.json").read_text(encoding="utf-8"))
    sets = {name: gold_file[name] for name in ("items", "holdout")}
    words = {name: ["".join(item.split("|")) for item in items] for name, items in sets.items()}
    gold = {name: [[seg.rstrip("-") for seg in item.split("|")] for item in items] for name, items in sets.items()}
    chunks = json.loads((DATA / "german_tenders.json").read_text(encoding="utf-8"))["chunks"]
    corpus_tokens = [t for c in chunks for t in WORD.findall(c["text"]) if len(t) >= 6]
    corpus_kb = sum(len(c["text"].encode()) for c in chunks) / 1024
    results: dict[str, Any] = {}
    for name, load in CANDIDATES.items():
        t0 = time.perf_counter()
        try:
            split = load()
        except ImportError as exc:
            print(f"{name}: not installed ({exc})")
            continue
        load_s = time.perf_counter() - t0
        predicted = {s: [split_token(split, w) for w in ws] for s, ws in words.items()}
        t0 = time.perf_counter()
        for token in corpus_tokens:  # no cache: every occurrence is split again
            split_token(split, token)
        per_kb_ms = (time.perf_counter() - t0) * 1000 / corpus_kb
        results[name] = {"load_s": load_s, "ms_per_kb_uncached": per_kb_ms, "predicted": predicted}
    all_parts = {p for g in gold.values() for parts in g for p in parts}
    all_parts |= {p for r in results.values() for pr in r["predicted"].values() for parts in pr for p in parts}
    stem = asyncio.run(stems(all_parts))
    for s in sets:
        print(f"{s}: {len(words[s])} words ({sum(len(g) > 1 for g in gold[s])} compounds)", end="; ")
    print(f"speed over the corpus chunks: {corpus_kb:.0f} KB")
    print(f"{'candidate':<16}{'set':<9}{'precision':>10}{'recall':>8}{'exact':>8}{'load s':>8}{'ms/KB':>8}")
    for name, r in results.items():
        for s in sets:
            r[s] = score(gold[s], r["predicted"][s], stem)
            print(
                f"{name:<16}{s:<9}{r[s]['part_precision']:>10.3f}{r[s]['part_recall']:>8.3f}"
                f"{r[s]['exact_split']:>8.3f}{r['load_s']:>8.2f}{r['ms_per_kb_uncached']:>8.2f}"
            )
    for name, r in results.items():
        for s in sets:
            wrong = [
                f"{w}->{'|'.join(p)}"
                for w, g, p in zip(words[s], gold[s], r["predicted"][s], strict=True)
                if Counter(stem[x] for x in g) != Counter(stem[x] for x in p)
            ]
            r[s]["wrong"] = wrong
            print(f"\n{name} {s} wrong ({len(wrong)}): {', '.join(wrong)}")
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
