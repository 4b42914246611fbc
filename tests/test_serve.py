"""``suyuan serve --workers N``: several processes answer on one port, each with its own
app built from the same environment; bad worker counts are refused before any port is
bound."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_cli import REPO, Cli, one_error_line


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path / "home")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    port = _free_port()
    env = {**cli.env(), "SUYUAN_BASE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "serve", "--port", str(port),
                                 "--workers", "2"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        answers = []
        while time.monotonic() < deadline and len(answers) < 5:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    answers.append(json.loads(r.read()))
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
        assert answers and all(a == {"ok": True, "size": 1} for a in answers), answers
        # Two worker processes under the one uvicorn supervisor.
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        workers = [p for p in kids.stdout.split() if p]
        assert len(workers) >= 2, kids.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_serve_refuses_bad_worker_counts(cli: Cli) -> None:
    line = one_error_line(cli("serve", "--workers", "0", rc=2), "malformed")
    assert "--workers" in line and "at least 1" in line
    line = one_error_line(cli("serve", "--workers", "2", "--dev", rc=2), "malformed")
    assert "--dev" in line
