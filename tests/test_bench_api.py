"""``python -m tools.bench api`` end to end at a tiny size: it builds a ledger, serves it
with uvicorn in its own process, loads it from another, and reports every figure beside its
bound, or names the endpoint that is missing. No figure is judged here."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_cli import REPO


def test_api_bench_runs_and_reports_each_figure_or_what_is_missing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "api", "--entries", "1500", "--queries", "20",
         "--duration", "1", "--concurrency", "4", "--generator", "python"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["entries"] >= 1500 and doc["db"] == "sqlite"
    assert "Python asyncio+httpx" in doc["load_generator"]
    assert doc["server"].startswith("uvicorn, 1 worker")
    missing = doc.get("missing", [])
    for name, bound in (("graphql_trace_ms_p95", 25.0), ("page_req_per_s", 300)):
        fig = doc[name]
        assert fig["bound"] == bound
        if fig["value"] is None:
            assert fig["missing"] in missing  # named, not crashed
        else:
            assert fig["value"] > 0 and fig["met"] in (True, False)
    assert doc["healthz_req_per_s"]["value"] > 0
