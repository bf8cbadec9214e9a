"""benchmarks/soak.py, a few hundred operations: every exception typed, every connection returned.

Not a timing test: the long run (100,000 operations) is a benchmark, its figures in
docs/reliability.md. Here the script runs as a user runs it, against the tests' server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_sees_only_typed_errors_and_returns_every_connection(dhv_server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--operations", "400", "--concurrency", "50",
         "--pool-max", "10", "--sample-every", "0.5", "--cancel-share", "0.1", "--timeout-share", "0.1",
         "--database-url", dhv_server_url, "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert out.exists(), done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["operations_done"] == 400
    assert report["untyped"] == {}, json.dumps(report["untyped"], indent=1)[:4000]
    assert all(name.startswith("dealhunter_vectors.errors.") for name in report["exceptions"]), report["exceptions"]
    # the mix really ran: cancellations and statement timeouts happened, and plain calls succeeded
    outcomes = report["outcomes"]
    assert sum(n for k, n in outcomes.items() if k.endswith(" cancelled CancelledError")) > 0, outcomes
    assert sum(n for k, n in outcomes.items() if " timeout " in k) > 0, outcomes
    assert sum(n for k, n in outcomes.items() if k.endswith(" plain ok")) > 300, outcomes
    # every connection back in the pool, none left on the server after close, never more than max_size
    end = report["pool_at_end"]
    assert end["in_use"] == 0 and end["server_backends_after_close"] == 0, end
    assert max(s["server_backends"] for s in report["samples"]) <= 10 + 1
    assert max(s["pool_size"] for s in report["samples"]) <= 10
    assert report["verdict"]["checks"]["no_untyped_exception"] is True
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
