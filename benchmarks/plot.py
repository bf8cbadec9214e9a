"""Plot search latency vs rows (log-log) from a pytest-benchmark JSON of bench_global, or from
``perf_side_by_side``'s JSON (issue 14's one run: library, raw HNSW statements, numpy per data set).

    python -m benchmarks.plot .benchmarks/runs/perf_side_by_side.json docs/benchmark_latency.png
    python -m benchmarks.plot .benchmarks/runs/full.json docs/benchmark_latency.png

Lines: the literal old path (duplicate check: SQLite + json.loads + Python loop), numpy
brute force over an in-memory float32 matrix, the exact pgvector scan, and the HNSW
halfvec search (ours, library defaults; and ef_search=40 with the planner settings of the
sweep). Points are medians (p50) of one run; the error bars span p50..p99.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SERIES = (
    ("old_path", "old path (SQLite + json.loads + JS-style loop)", "tab:red", "o"),
    ("numpy", "numpy brute force (in-memory float32)", "tab:orange", "s"),
    ("exact_sql", "exact pgvector scan", "tab:blue", "^"),
    ("ours", "HNSW halfvec + exact re-rank (ours)", "tab:green", "D"),
    ("hnsw_ef40", "HNSW ef_search=40, tuned planner", "tab:olive", "v"),
)


PERF_SERIES = (
    ("numpy", "numpy brute force (in memory, 1 thread)", "tab:orange", "s"),
    ("library", "find_similar_pre_qualifications (ours)", "tab:green", "D"),
    ("raw_hnsw_ef40", "raw HNSW + exact re-rank, ef_search 40", "tab:olive", "v"),
    ("raw_hnsw_ef100", "raw HNSW + exact re-rank, ef_search 100", "tab:cyan", "^"),
    ("raw_hnsw_ef400", "raw HNSW + exact re-rank, ef_search 400", "tab:purple", "x"),
)


def plot_perf(data: dict[str, Any], out: Path) -> None:
    """perf_side_by_side's global part: one line per path, solid = benchmark set, dashed = hard set."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for set_name, style in (("bench", "-"), ("hard2", "--")):
        for role, label, color, marker in PERF_SERIES:
            pts = sorted(
                (int(key.rsplit("_", 1)[1]), paths[role])
                for key, paths in data["global"].items()
                if key.rsplit("_", 1)[0] == set_name and role in paths
            )
            if not pts:
                continue
            xs = [n for n, _ in pts]
            ys = [p["p50_ms"] for _, p in pts]
            err = [[0.0 for _ in pts], [p["p99_ms"] - p["p50_ms"] for _, p in pts]]
            recall = ", ".join(f"{p['recall_at_10']:.2f}" for _, p in pts) if role != "numpy" else "exact"
            ax.errorbar(
                xs, ys, yerr=err, color=color, marker=marker, linestyle=style, capsize=3, linewidth=1.3,
                label=f"{label} [{'hard' if set_name == 'hard2' else 'bench'} set; recall {recall}]",
            )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows searched (3072-d embeddings)")
    ax.set_ylabel("latency per query, ms (p50; bar to p99)")
    ax.set_title(f"Global top-10 latency vs rows ({data['machine'].split(',')[0]}, scale {data.get('scale')})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def plot(json_path: Path, out: Path) -> None:
    data = json.loads(json_path.read_text())
    if "global" in data:
        plot_perf(data, out)
        return
    points: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for b in data["benchmarks"]:
        e = b.get("extra_info", {})
        if e.get("case") != "global":
            continue
        points[e["role"]].append((int(e["rows"]), float(e["p50_ms"]), float(e["p99_ms"])))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for role, label, color, marker in SERIES:
        pts = sorted(points.get(role, []))
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        err = [[0.0 for _ in pts], [p[2] - p[1] for p in pts]]
        ax.errorbar(xs, ys, yerr=err, label=label, color=color, marker=marker, capsize=3, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows searched (3072-d embeddings)")
    ax.set_ylabel("latency per query, ms (p50; bar to p99)")
    scale = data.get("machine_info", {}).get("dhv_scale", "?")
    cpus = data.get("machine_info", {}).get("dhv_cpu_count", "?")
    ax.set_title(f"Top-10 cosine search latency vs rows ({cpus} cores, scale {scale})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m benchmarks.plot BENCHMARK.json OUT.png")
    plot(Path(sys.argv[1]), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
