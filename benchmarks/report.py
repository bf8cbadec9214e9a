"""Turn a pytest-benchmark JSON (``--benchmark-json``) into the markdown tables of docs/benchmarks.md.

    python -m benchmarks.report .benchmarks/runs/full.json > /tmp/tables.md

Every number comes from the one JSON file (one run): medians and p99 of the per-query
latencies recorded by the benchmarks (extra_info), ratios between roles of the same case.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = json.loads(path.read_text())
    return data, data["benchmarks"]


def _by_case(benchmarks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in benchmarks:
        info = b.get("extra_info", {})
        if "case" in info:
            out[info["case"]].append(b)
    return out


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x / 1000:,.2f} s"
    if x >= 10:
        return f"{x:,.1f} ms"
    return f"{x:.2f} ms"


def _p50(b: dict[str, Any]) -> float:
    return float(b["extra_info"].get("p50_ms", b["stats"]["median"] * 1e3))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}x" if b else "-"


def owner_table(items: list[dict[str, Any]]) -> list[str]:
    roles = {b["extra_info"]["role"]: b for b in items}
    ours = roles.get("ours")
    lines = [
        "| path | p50 | p99 | rounds | p50 of this path / p50 of ours |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "ours": "**ours** (`search_deal_embeddings`, exact, HNSW present)",
        "exact_sql": "exact pgvector scan (same SQL idea, written directly)",
        "design_halfvec_inline": "design experiment: inline halfvec + exact re-rank",
        "inprocess": "best in-process (SQLite + orjson + numpy)",
        "old_path": "literal old path (SQLite + json.loads + JS loop)",
    }
    for role in ("ours", "exact_sql", "design_halfvec_inline", "inprocess", "old_path"):
        b = roles.get(role)
        if b is None:
            continue
        e = b["extra_info"]
        vs = _ratio(_p50(b), _p50(ours)) if ours and role != "ours" else ""
        lines.append(f"| {names[role]} | {_ms(e.get('p50_ms'))} | {_ms(e.get('p99_ms'))} | {e.get('rounds')} | {vs} |")
    return lines


def global_table(items: list[dict[str, Any]]) -> list[str]:
    by_rows: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for item in items:
        e = item["extra_info"]
        by_rows[int(e["rows"])][e["role"]] = item
    lines = [
        "| rows | path | p50 | p99 | recall@10 | speed-up vs numpy (p50) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    order = ["ours", "hnsw_ef40", "hnsw_ef100", "hnsw_ef200", "hnsw_ef400", "exact_sql", "numpy", "old_path"]
    names = {
        "ours": "**ours** (`find_similar_pre_qualifications`, limit 10)",
        "exact_sql": "exact pgvector scan",
        "numpy": "numpy brute force (in-memory float32)",
        "old_path": "literal old duplicate check",
    }
    for rows in sorted(by_rows):
        roles = by_rows[rows]
        numpy = roles.get("numpy")
        for role in order:
            found = roles.get(role)
            if found is None:
                continue
            b = found
            e = b["extra_info"]
            name = names.get(role, f"HNSW ef_search={role.removeprefix('hnsw_ef')} (tuned planner)")
            rec = e.get("recall_at_10")
            rec_s = f"{rec:.3f}" if rec is not None else "-"
            vs = f"{_p50(numpy) / _p50(b):,.2f}x" if numpy and role != "numpy" else ""
            lines.append(f"| {rows:,} | {name} | {_ms(e.get('p50_ms'))} | {_ms(e.get('p99_ms'))} | {rec_s} | {vs} |")
    return lines


def concurrency_table(items: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| concurrent searches | throughput (queries/s) | p50 | p99 |",
        "|---:|---:|---:|---:|",
    ]
    for b in sorted(items, key=lambda b: b["extra_info"]["concurrency"]):
        e = b["extra_info"]
        lines.append(f"| {e['concurrency']} | {e['throughput_qps']:,.0f} | {_ms(e['p50_ms'])} | {_ms(e['p99_ms'])} |")
    return lines


def migration_table(items: list[dict[str, Any]]) -> list[str]:
    roles = {b["extra_info"]["role"]: b for b in items if b["extra_info"]["role"] != "ours_rss"}
    plan = roles.get("plan_script")
    raw = roles.get("raw_copy")
    names = {
        "ours": "**ours** end to end (`migrate_sqlite`, incl. HNSW rebuild + ANALYZE)",
        "ours_no_index": "**ours** without the HNSW rebuild",
        "ours_subprocess": "ours without HNSW rebuild, in a fresh process (RSS run)",
        "plan_script": "plan's script method (row-by-row INSERT, text vectors)",
        "raw_copy": "raw binary COPY of pre-parsed float32 (the limit)",
        "raw_copy_external": "raw binary COPY, vector columns STORAGE EXTERNAL",
        "design_fast_path": "design experiment: numpy fast parse (2 procs) pipelined with direct COPY",
    }
    lines = [
        "| method | seconds | rows/s | vector rows/s | vs plan | % of raw COPY |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for role in (
        "ours",
        "ours_no_index",
        "ours_subprocess",
        "design_fast_path",
        "plan_script",
        "raw_copy",
        "raw_copy_external",
    ):
        b = roles.get(role)
        if b is None:
            continue
        e = b["extra_info"]
        vs_plan = f"{e['rows_per_s'] / plan['extra_info']['rows_per_s']:,.1f}x" if plan else "-"
        of_raw = f"{100 * e['rows_per_s'] / raw['extra_info']['rows_per_s']:.0f} %" if raw else "-"
        lines.append(
            f"| {names[role]} | {e['p50_ms'] / 1000:,.2f} | {e['rows_per_s']:,.0f} | {e['vector_rows_per_s']:,.0f}"
            f" | {vs_plan} | {of_raw} |"
        )
    any_b = next(iter(roles.values()), None)
    if any_b:
        e = any_b["extra_info"]
        lines.append("")
        lines.append(
            f"Source: {e['rows']:,} rows in 29 tables, {e['vector_rows']:,} of them with a JSON embedding, "
            f"{e['source_mb']:,.0f} MB SQLite file."
        )
    return lines


def rss_lines(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for b in items:
        e = b["extra_info"]
        if e.get("role") == "ours_rss":
            out.append(
                f"Loader peak RSS: {e['peak_rss_mb']:,.0f} MB (main process), {e['worker_peak_rss_mb']:,.0f} MB "
                f"(largest parser worker) for a {e['source_mb']:,.0f} MB source."
            )
    return out


def index_table(items: list[dict[str, Any]], global_items: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| variant | rows | seconds | seconds per 10k rows | maintenance_work_mem | parallel workers |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for b in items:
        e = b["extra_info"]
        lines.append(
            f"| {e['role']} (m={e['m']}, ef_construction={e['ef_construction']}) | {e['rows']:,} | "
            f"{e['p50_ms'] / 1000:,.1f} | {e['seconds_per_10k_rows']:,.1f} | {e['maintenance_work_mem']} | "
            f"{e['max_parallel_maintenance_workers']} |"
        )
    seen = set()
    for b in global_items:
        e = b["extra_info"]
        if e.get("hnsw_build_seconds") and e["rows"] not in seen:
            seen.add(e["rows"])
            lines.append(
                f"| data-set build of the global table (m={e.get('m', '?')}, "
                f"ef_construction={e.get('ef_construction', '?')}) | {e['rows']:,} | "
                f"{e['hnsw_build_seconds']:,.1f} | {e['hnsw_build_seconds'] * 10_000 / e['rows']:,.1f} | 2GB | 1 |"
            )
    return lines


def render(path: Path) -> str:
    data, benchmarks = _load(path)
    cases = _by_case(benchmarks)
    m = data.get("machine_info", {})
    out = [
        f"Run: {data.get('datetime', '?')}, scale `{m.get('dhv_scale')}`, {m.get('dhv_cpu_count')} CPUs "
        f"({m.get('cpu', {}).get('brand_raw', '?')}), {m.get('dhv_ram_gb')} GB RAM, Python {m.get('python_version')}.",
        "",
        "### Owner-scoped search (lead retrieval, 1,000 chunks per qualification)",
        "",
        *owner_table(cases.get("owner_scoped", [])),
        "",
        "### Global search (duplicate check, top 10)",
        "",
        *global_table(cases.get("global", [])),
        "",
        "### Concurrency (owner-scoped searches through one pool, max 20 connections)",
        "",
        *concurrency_table(cases.get("concurrency", [])),
        "",
        "### Migration",
        "",
        *migration_table(cases.get("migration", []) + [b for b in cases.get("loader_rss", [])]),
        "",
        *rss_lines(cases.get("loader_rss", [])),
        "",
        "### HNSW halfvec index build",
        "",
        *index_table(cases.get("index_build", []), cases.get("global", [])),
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m benchmarks.report BENCHMARK.json")
    sys.stdout.write(render(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
