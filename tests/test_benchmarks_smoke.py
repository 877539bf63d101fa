"""The benchmark harness runs end to end (``python -m benchmarks.run --quick``).

A handful of calls per workload, so this proves the harness works, not how fast rpcbd is.
The harness forks its own server and client processes, so it runs as a subprocess here:
no rpcbd thread is left in the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("seq", "inflight-128", "shared", "str-1MiB", "notify", "conns")


def test_quick_run_measures_every_workload(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--json-lib",
        "stdlib",
        "--impl",
        "floor-threads,rpcbd-threaded-tcp",
        "--only",
        ",".join(WORKLOADS),
        "--no-plot",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

    report = json.loads((tmp_path / "results.json").read_text())
    results = report["runs"]["stdlib"]
    measured = {(r["impl"], r["workload"]) for r in results}
    for impl in ("floor-threads", "rpcbd-threaded-tcp"):
        for workload in WORKLOADS:
            assert (impl, workload) in measured
    for result in results:
        # The notification flood fails with an error unless the server counted every one.
        assert result["error"] is None, result
        assert result["calls"] > 0 and result["calls_s"] > 0
        assert result["server_cpu_us"] is not None and result["server_cpu_us"] >= 0
    large = next(r for r in results if r["workload"] == "str-1MiB")
    assert large["mb_s"] > 0

    text = (tmp_path / "RESULTS.md").read_text()
    assert "| seq | rpcbd-threaded-tcp |" in text
    assert "Targets (issue 7)" in text
    assert "sequential p50 latency" in text
