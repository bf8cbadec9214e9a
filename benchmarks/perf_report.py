"""Issue 14's tables in markdown, from one run's JSON (no transcription by hand).

    python -m benchmarks.perf_report [.benchmarks/runs/perf_side_by_side.json] [--peers PATH] [--workers PATH]

Reads what ``perf_side_by_side``, ``perf_peers`` and ``bench_workers`` wrote and prints the
tables docs/benchmarks.md quotes: per goal the library, its anchors and the ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RUNS = Path(__file__).resolve().parents[1] / ".benchmarks" / "runs"


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def owner(res: dict[str, Any]) -> str:
    paths = res["paths"]
    lib = paths["library"]["p50_ms"]
    names = {
        "library": "**`search_deal_embeddings`**",
        "library_sql": "the library's statement, prepared, called directly",
        "bare_half": "**bare statement** (half scan + k-th bound + exact re-rank, no filters)",
        "old_library_sql": "the statement before issue 14",
        "bare_exact_scan": "plain exact scan (`embedding <=> q`, TOAST)",
        "numpy": "**numpy** exact scoring of the owner's float32 rows in memory",
        "select_1": "`SELECT 1` through the pool",
    }
    out = [
        f"{res['owner_rows']} rows of one owner ({res['rows_in_table']} rows in the table).",
        "",
        "| path | p50 ms | p90 ms | server ms | Python CPU ms / call | library p50 / path p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in names.items():
        p = paths.get(key)
        if p is None:
            continue
        ratio = "" if key == "library" else f"{lib / p['p50_ms']:.2f}x"
        out.append(
            f"| {label} | {_ms(p['p50_ms'])} | {_ms(p['p90_ms'])} | {_ms(p.get('server_ms'))} "
            f"| {p['python_cpu_ms']:.2f} | {ratio} |"
        )
    return "\n".join(out)


def global_(res: dict[str, Any]) -> str:
    efs = sorted({int(k.removeprefix("raw_hnsw_ef")) for v in res.values() for k in v if k.startswith("raw_hnsw_ef")})
    head = (
        "| rows | set | library p50 ms / recall | its statement on a held connection | "
        + " | ".join(f"raw ef {e}" for e in efs)
        + " | numpy (1 thread) |"
    )
    out = [head, "|" + "---:|---|---|---|" + "---|" * len(efs) + "---:|"]
    for key, paths in sorted(res.items(), key=lambda kv: (int(kv[0].split("_")[-1]), kv[0])):
        set_name, n = key.rsplit("_", 1)
        cells = [f"{int(n):,}", set_name, f"{_ms(paths['library']['p50_ms'])} / {paths['library']['recall_at_10']:.3f}"]
        call = paths.get("library_call")
        cells.append("-" if call is None else f"{_ms(call['p50_ms'])} / {call['recall_at_10']:.3f}")
        for e in efs:
            p = paths[f"raw_hnsw_ef{e}"]
            cells.append(f"{_ms(p['p50_ms'])} / {p['recall_at_10']:.3f}")
        cells.append(_ms(paths["numpy"]["p50_ms"]))
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| rows | set | cheapest raw statement with recall >= 0.99 | library / it | library Python CPU ms |"]
    out.append("|---:|---|---|---:|---:|")
    for key, paths in sorted(res.items(), key=lambda kv: (int(kv[0].split("_")[-1]), kv[0])):
        set_name, n = key.rsplit("_", 1)
        ok = [(paths[f"raw_hnsw_ef{e}"]["p50_ms"], e) for e in efs if paths[f"raw_hnsw_ef{e}"]["recall_at_10"] >= 0.99]
        lib = paths["library"]
        if ok:
            ms, e = min(ok)
            out.append(
                f"| {int(n):,} | {set_name} | ef {e}: {_ms(ms)} ms | {lib['p50_ms'] / ms:.2f}x "
                f"| {lib['python_cpu_ms']:.2f} |"
            )
        else:
            out.append(f"| {int(n):,} | {set_name} | none of ef {efs} | - | {lib['python_cpu_ms']:.2f} |")
    return "\n".join(out)


def write(res: dict[str, Any]) -> str:
    w, wo = res["with_hnsw"], res["without_hnsw"]
    return "\n".join(
        [
            "| `insert_deal_chunks`, batches of 50 | with the chunk HNSW index (before 006) | without (now) | gain |",
            "|---|---:|---:|---:|",
            f"| rows/s (all batches) | {w['rows_per_s_total']:.0f} | {wo['rows_per_s_total']:.0f} "
            f"| {wo['rows_per_s_total'] / w['rows_per_s_total']:.1f}x |",
            f"| p50 per batch, ms | {_ms(w['p50_ms'])} | {_ms(wo['p50_ms'])} | |",
        ]
    )


def migration(res: dict[str, Any]) -> str:
    med = res["seconds_median"]
    rows = res["rows"]
    out = [
        f"Legacy file: {res['source_mb']} MB, {rows:,} rows ({res['chunk_rows']:,} chunk rows), "
        f"{res['rounds']} rounds, medians.",
        "",
        "| method | seconds | rows/s | vs the plan's method | share of raw COPY's speed |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("ours_end_to_end", "**`migrate_sqlite`** end to end (every index, ANALYZE)"),
        ("plan_script", "the plan's script method (row-by-row INSERT, text vectors)"),
        ("raw_copy", "raw binary COPY of pre-parsed rows (the limit; no index, no parsing)"),
    ):
        s = med[key]
        out.append(
            f"| {label} | {s:.2f} | {rows / s:,.0f} | {med['plan_script'] / s:.1f}x | {med['raw_copy'] / s:.0%} |"
        )
    before = res["before_006_estimate_s"]
    out.append(
        f"| `migrate_sqlite` + the two chunk HNSW builds (the schema before 006) | {before:.2f} | {rows / before:,.0f} "
        f"| {med['plan_script'] / before:.1f}x | {med['raw_copy'] / before:.0%} |"
    )
    return "\n".join(out)


def concurrency(res: dict[str, Any]) -> str:
    levels = sorted({int(k.rsplit("_c", 1)[1]) for k in res})
    out = [
        "| concurrent | library q/s | bare asyncpg q/s | ratio | Python CPU ms / query (library / bare) "
        "| server CPU ms / query (library / bare) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        lib, bare = res[f"library_c{c}"], res[f"bare_asyncpg_c{c}"]
        srv = (
            f"{lib['server_cpu_ms_per_query']:.2f} / {bare['server_cpu_ms_per_query']:.2f}"
            if lib.get("server_cpu_ms_per_query") is not None
            else "-"
        )
        out.append(
            f"| {c} | {lib['throughput_qps']:.0f} | {bare['throughput_qps']:.0f} "
            f"| {lib['throughput_qps'] / bare['throughput_qps']:.2f} "
            f"| {lib['python_cpu_ms_per_query']:.2f} / {bare['python_cpu_ms_per_query']:.2f} | {srv} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", nargs="?", default=str(RUNS / "perf_side_by_side.json"))
    args = ap.parse_args()
    report = json.loads(Path(args.path).read_text())
    print(f"run {report['run']}, {report['machine']}, scale {report.get('scale')}, loop {report.get('loop')}")
    for part, render in (
        ("owner", owner),
        ("global", global_),
        ("write", write),
        ("migration", migration),
        ("concurrency", concurrency),
    ):
        if part in report:
            print(f"\n### {part}\n\n{render(report[part])}")


if __name__ == "__main__":
    main()
