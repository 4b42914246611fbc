"""Writers killed mid-batch and writers racing each other leave a sound ledger."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time

import pytest

from ledger.log.audit import audit
from ledger.store.schema import entries
from tests.support import World, new_uscc

pytestmark = pytest.mark.slow


def _party(world: World, name: str) -> str:
    party = new_uscc()
    key = world.home.keys.create(name)
    world.ledger.append(world.registration(party, key))
    return party


def _spawn(world: World, name: str, party: str, start: int, batches: int, size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.appender",
            world.url,
            str(world.home.path),
            name,
            party,
            str(start),
            str(batches),
            str(size),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )


def _stored(world: World) -> dict[int, str]:
    with world.store.reading() as conn:
        rows = conn.execute(entries.select().with_only_columns(entries.c.seq, entries.c.statement_hash))
        return {int(s): bytes(h).hex() for s, h in rows}


def _receipt_lines(child: subprocess.Popen[str], count: int, timeout: float) -> bytes:
    """The child's output until it has printed ``count`` complete receipt lines (or ended),
    read from its pipe directly (so that nothing is left in a reader's buffer)."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    while (n := got.count(b"\n")) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"the writer printed {n} of {count} receipts in {timeout} s"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            got += chunk
    return got


def _rest(child: subprocess.Popen[str]) -> bytes:
    assert child.stdout is not None
    chunks = []
    while chunk := os.read(child.stdout.fileno(), 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigkill_mid_batch_loses_no_receipt(world: World) -> None:
    """Each writer is killed at a point the test picks: once it has printed the receipts of
    1 to 3 whole batches (so each kill follows commits whatever the machine's speed), then
    a random moment later, which lands anywhere in what comes next: signing, the append, the
    commit, printing. What is asserted holds for any such moment."""
    party = _party(world, "crashy")
    rng = random.Random(20261127)
    printed: list[dict[str, object]] = []
    start = 0
    batch = 200
    for _ in range(20):
        committed = rng.randint(1, 3)
        with _spawn(world, "crashy", party, start, 1000, batch) as child:
            try:
                out = _receipt_lines(child, committed * batch, timeout=120)
                time.sleep(rng.uniform(0.0, 0.2))
            finally:
                child.send_signal(signal.SIGKILL)
            out += _rest(child)
            assert child.stderr is not None
            err = child.stderr.read()
        start += 1_000_000
        assert child.returncode == -signal.SIGKILL, err
        # Only complete lines count: a receipt cut off mid-line was never fully printed.
        lines = [line for line in out.decode().split("\n")[:-1] if line]
        assert len(lines) >= committed * batch
        printed += [json.loads(line) for line in lines]
        report = audit(world.store)
        assert report.ok, [p.line() for p in report.problems]
        stored = _stored(world)
        for r in printed:
            assert stored.get(int(r["seq"])) == r["statementHash"]  # type: ignore[call-overload]
        assert sorted(stored) == list(range(len(stored)))


def test_four_writers_at_once(world: World) -> None:
    parties = [(f"w{i}", _party(world, f"w{i}")) for i in range(4)]
    base = world.ledger.size()
    children = [_spawn(world, name, party, 0, 10, 50) for name, party in parties]
    seen: list[int] = []
    for c in children:
        out, err = c.communicate(timeout=600)
        assert c.returncode == 0, err
        seen += [json.loads(line)["seq"] for line in out.splitlines()]
    assert len(seen) == 2000 and len(set(seen)) == 2000
    stored = _stored(world)
    assert sorted(stored) == list(range(base + 2000))
    assert sorted(seen) == list(range(base, base + 2000))
    report = audit(world.store)
    assert report.ok, [p.line() for p in report.problems]
