"""``python -m tools.bench api`` end to end at a tiny size: it builds a ledger, serves it
with uvicorn in its own process, loads GraphQL and the consumer page from another, and
reports every figure beside its bound. No figure is judged here, only that each one was
measured over real answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgcluster import pg_bin
from tests.test_cli import REPO


def test_api_bench_measures_graphql_and_the_page_over_http(tmp_path: Path) -> None:
    kept = tmp_path / "ledger"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench",
            "api",
            "--entries",
            "1500",
            "--queries",
            "20",
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--warm-items",
            "3",
            "--generator",
            "python",
            "--runs",
            "2",
            "--ledger",
            str(kept),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "missing" not in doc, doc["missing"]
    assert doc["entries"] >= 1500 and doc["db"] == "sqlite"
    assert "Python asyncio+httpx" in doc["load_generator"]
    assert doc["server"].startswith("uvicorn, ")
    assert doc["workers"] == {"graphql": 1, "page": 2, "healthz": 2}  # --workers 2 by default
    g = doc["graphql_trace_ms_p95"]
    assert g["bound"] == 25.0 and g["value"] > 0 and g["met"] in (True, False)
    assert g["queries"] == 20 and g["failed"] == 0 and g["journey_events_median"] > 0
    assert g["workers"] == 1
    for name, workers in (
        ("page_req_per_s", 2),
        ("page_warm_req_per_s", 2),
        ("page_one_worker_req_per_s", 1),
    ):
        page = doc[name]
        assert page["value"] > 0 and page["requests"] > 0 and page["non_2xx"] == 0
        assert page["workers"] == workers
    assert doc["page_req_per_s"]["bound"] == 300
    assert doc["healthz_req_per_s"]["value"] > 0
    # The page beside /healthz: the ratio of each run, its median judged by the bound, on
    # one server of 2 workers and on 2 servers of one worker each (--runs 2 of each).
    for name in ("page_to_healthz", "page_to_healthz_split"):
        r = doc[name]
        assert r["bound"] == 0.3 and len(r["runs"]) == 2 and r["met"] == (r["value"] >= 0.3)
        for ratio, p, h in zip(r["runs"], r["page_req_per_s_runs"], r["healthz_req_per_s_runs"], strict=True):
            assert abs(ratio - p / h) < 0.002  # each figure rounded on its own
        assert min(r["runs"]) <= r["value"] <= max(r["runs"])
        # Where the load went: CPU seconds of each worker during each page run, and the
        # server's CPU per answer of the page and of /healthz.
        assert all(sum(cpu) > 0 for cpu in r["page_worker_cpu_s"]), r
        assert r["page_server_cpu_ms_per_request"] > 0 and r["healthz_server_cpu_ms_per_request"] > 0
        assert len(r["cpu_ratio_runs"]) == 2 and r["cpu_ratio"] > 0
    assert len(doc["page_to_healthz_split"]["page_worker_cpu_s"][0]) == 2
    tl = doc["tiles_req_per_s"]
    assert tl["value"] > 0 and tl["requests"] > 0 and tl["non_2xx"] == 0 and tl["workers"] == 2
    assert tl["distinct_tiles"] >= 5  # 1,500 entries and more: full level-0 tiles
    pt = doc["proof_from_tiles_ms_p50"]
    assert pt["value"] > 0 and pt["proofs"] == 200 and pt["tiles_per_proof_median"] >= 1
    # The ledger is kept for the next run; one asked of another size is refused, not rebuilt.
    assert json.loads((kept / "build.json").read_text())["entries"] == doc["entries"]
    # The next run starts without this run's scans, as a fresh build would; the log stays.
    import sqlite3

    from tools import bench

    def counts() -> tuple[int, int]:
        with sqlite3.connect(kept / "api.db") as db:
            return db.execute(
                "SELECT (SELECT COUNT(*) FROM scans), (SELECT COUNT(*) FROM entries)"
            ).fetchone()

    scanned, entries = counts()
    assert scanned > 0 and entries == doc["entries"]
    bench._forget_scans(f"sqlite:///{kept}/api.db")
    assert counts() == (0, entries)
    again = subprocess.run(
        [sys.executable, "-m", "tools.bench", "api", "--entries", "5000", "--ledger", str(kept)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "not one for --entries 5000" in again.stderr, again.stderr


@pytest.mark.postgres
def test_api_bench_with_and_without_a_read_replica() -> None:
    """``bench api --replica``: a primary and a streaming standby of the bench's own, the page
    beside /healthz and the tile read path served from the primary alone, then read from the
    standby; each figure beside its bound, measured over real answers."""
    if pg_bin() is None:
        msg = "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.environ.get("CI"):
            pytest.fail(msg + " — CI must run the replica bench (.ci/run installs them)")
        pytest.skip(msg)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench",
            "api",
            "--replica",
            "--entries",
            "600",
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--generator",
            "python",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["entries"] >= 600 and doc["db"].startswith("postgresql")
    for setup in ("primary_only", "with_replica"):
        got = doc[setup]
        page = got["page_req_per_s"]
        assert page["bound"] == 300 and page["value"] > 0 and len(page["runs"]) == 1
        ratio = got["page_to_healthz"]
        assert ratio["bound"] == 0.3 and ratio["met"] == (ratio["value"] >= 0.3)
        assert ratio["page_req_per_s_median"] > 0 and ratio["healthz_req_per_s_median"] > 0
        assert got["tiles_req_per_s"]["value"] > 0 and got["tiles_req_per_s"]["non_2xx"] == 0
        assert got["proof_from_tiles_ms_p50"]["value"] > 0
