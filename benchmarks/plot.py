"""Plot search latency vs rows (log-log) from a pytest-benchmark JSON of bench_global.

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


def plot(json_path: Path, out: Path) -> None:
    data = json.loads(json_path.read_text())
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
