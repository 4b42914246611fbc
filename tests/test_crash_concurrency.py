"""Writers killed mid-batch and writers racing each other leave a sound ledger."""

from __future__ import annotations

import json
import os
import random
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


def _spawn(world: World, name: str, party: str, start: int, batches: int, size: int
           ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.appender", world.url, str(world.home.path), name, party,
         str(start), str(batches), str(size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)))


def _stored(world: World) -> dict[int, str]:
    with world.store.reading() as conn:
        rows = conn.execute(entries.select().with_only_columns(entries.c.seq,
                                                                 entries.c.statement_hash))
        return {int(s): bytes(h).hex() for s, h in rows}


def test_sigkill_mid_batch_loses_no_receipt(world: World) -> None:
    party = _party(world, "crashy")
    rng = random.Random(20261127)
    printed: list[dict[str, object]] = []
    start = 0
    kills = 0
    while kills < 20:
        child = _spawn(world, "crashy", party, start, 1000, 200)
        start += 1_000_000
        time.sleep(rng.uniform(0.3, 2.0))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err
        kills += 1
        # Only complete lines count: a receipt cut off mid-line was never fully printed.
        printed += [json.loads(line) for line in out.split("\n")[:-1] if line]
        report = audit(world.store)
        assert report.ok, [p.line() for p in report.problems]
        stored = _stored(world)
        for r in printed:
            assert stored.get(int(r["seq"])) == r["statementHash"]  # type: ignore[call-overload]
        assert sorted(stored) == list(range(len(stored)))
    assert printed, "the writer never committed a batch before being killed"


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
