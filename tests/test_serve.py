"""``suyuan serve --workers N``: several processes answer on one port, each with its own
app built from the same environment; bad worker counts are refused before any port is
bound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import loopback_port
from tests.test_cli import REPO, Cli, one_error_line


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path / "home")


def test_serve_with_two_workers(cli: Cli, tmp_path: Path, port: int) -> None:
    cli("init")
    env = {**cli.env(), "SUYUAN_BASE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "serve", "--port", str(port), "--workers", "2"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
        # Two worker processes under the one supervisor, each listening on the port with
        # a socket of its own (SO_REUSEPORT): the kernel spreads connections over them,
        # where on one shared socket whichever worker wakes first may accept them all.
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        workers = [p for p in kids.stdout.split() if p]
        assert len(workers) >= 2, kids.stdout
        if sys.platform == "linux":
            while True:  # the second worker may still be starting when the first answers
                listening = _listening_inodes(port)
                owned = {w: _socket_inodes(int(w)) & listening for w in workers}
                holders = [w for w, inodes in owned.items() if inodes]
                if len(holders) == 2 or time.monotonic() > deadline + 60:
                    break
                time.sleep(0.1)
            assert len(holders) == 2, owned
            assert not owned[holders[0]] & owned[holders[1]]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def _listening_inodes(port: int) -> set[int]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` (Linux's /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == f"0100007F:{port:04X}" and f[3] == "0A":  # LISTEN
            out.add(int(f[9]))
    return out


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def test_serve_refuses_bad_worker_counts(cli: Cli) -> None:
    line = one_error_line(cli("serve", "--workers", "0", rc=2), "malformed")
    assert "--workers" in line and "at least 1" in line
    line = one_error_line(cli("serve", "--workers", "2", "--dev", rc=2), "malformed")
    assert "--dev" in line


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEADDR shares a port so on Linux only")
def test_a_held_port_goes_to_the_server_and_to_no_one_else() -> None:
    """What tests that start `suyuan serve` on a port rely on (support.loopback_port):
    while the port is held nobody else can bind it, a connection is refused as if it were
    free, a server binding with SO_REUSEADDR (as uvicorn does) takes it, and then holds it
    alone. A port found free and closed, as before, could be bound by anyone."""
    import errno
    import socket

    def bind(port: int, *, reuse: bool) -> socket.socket:
        s = socket.socket()
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            raise
        return s

    with loopback_port() as port:
        with pytest.raises(OSError) as refused:
            bind(port, reuse=False)
        assert refused.value.errno == errno.EADDRINUSE
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        with bind(port, reuse=True) as server:
            server.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"x")
                    assert c.recv(1) == b"x"
            for reuse in (False, True):  # now the server's alone
                with pytest.raises(OSError) as taken:
                    bind(port, reuse=reuse)
                assert taken.value.errno == errno.EADDRINUSE
    with socket.socket() as s:  # the old way: released, so free for anyone
        s.bind(("127.0.0.1", 0))
        released = s.getsockname()[1]
    bind(released, reuse=False).close()
