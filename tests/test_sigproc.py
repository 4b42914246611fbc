"""A big batch's Ed25519 checks run in a helper process (``ledger.log.sigproc``). Where
they ran must never show: the same bad signatures are named, a helper that dies or
answers nonsense changes nothing but where the checks are made, and the ledger is as it
was after every refusal. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import random
import signal
from collections.abc import Iterator
from typing import Any

import nacl.signing
import pytest
import sqlalchemy as sa

from ledger.core.errors import BatchRejected
from ledger.core.signatures import Job, verify_chunk
from ledger.log import sigproc
from ledger.log.audit import audit
from tests.support import World

EVENTS = sigproc.MIN_JOBS + 150  # over the bound, and several verify chunks


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SUYUAN_SIGPROC", raising=False)
    assert sigproc.wait_ready(60), "the signature helper did not start"
    yield


def _jobs(n: int, seed: int) -> tuple[list[Job], set[int]]:
    """n jobs under a few keys, some with a flipped bit in the message, the signature or
    the key, or a key of the wrong party: (jobs, the numbers that must fail)."""
    rnd = random.Random(seed)
    keys = [nacl.signing.SigningKey(bytes([k]) * 32) for k in range(1, 4)]
    jobs: list[Job] = []
    bad: set[int] = set()
    for i in range(n):
        k = rnd.choice(keys)
        msg = f"suyuan-statement/v1\n{i}:".encode() + rnd.randbytes(rnd.randrange(0, 900))
        sig = k.sign(msg).signature
        pk = bytes(k.verify_key)
        fault = rnd.random()
        if fault < 0.05:
            msg = bytes([msg[0] ^ 1]) + msg[1:]
        elif fault < 0.10:
            sig = sig[:10] + bytes([sig[10] ^ 0x80]) + sig[11:]
        elif fault < 0.15:
            pk = bytes(next(x for x in keys if x is not k).verify_key)
        if fault < 0.15:
            bad.add(i * 3)
        jobs.append((i * 3, msg, sig, pk))  # job numbers need not be positions
    return jobs, bad


def test_the_wire_format_round_trips() -> None:
    jobs, _ = _jobs(40, seed=1)
    body = sigproc.encode(jobs)[4:]
    assert [(m, s, k) for _, m, s, k in sigproc.decode(body)] == [(m, s, k) for _, m, s, k in jobs]
    with pytest.raises(ValueError):
        sigproc.decode(body[:-1])
    with pytest.raises(ValueError):
        sigproc.encode([(0, b"m", b"short", bytes(32))])


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_the_helper_names_the_same_bad_signatures_as_the_threads(helper: None, seed: int) -> None:
    jobs, bad = _jobs(700, seed)
    checks = sigproc.Checks.open()
    assert checks is not None
    for i in range(0, len(jobs), 128):
        checks.send(jobs[i : i + 128])
    got = checks.bad()
    assert sorted(got) == sorted(bad) == sorted(verify_chunk(jobs))
    assert bad, "the jobs hold bad signatures"
    again = sigproc.Checks.open()
    assert again is not None, "the helper is free again after its answer"
    again.cancel()


def test_one_batch_at_a_time_uses_the_helper(helper: None) -> None:
    first = sigproc.Checks.open()
    assert first is not None
    assert sigproc.Checks.open() is None, "a second batch at once goes to the threads"
    first.cancel()
    again = sigproc.Checks.open()
    assert again is not None
    again.cancel()


def test_a_helper_killed_mid_batch_changes_nothing_but_where_checks_run(helper: None) -> None:
    jobs, bad = _jobs(600, seed=5)
    pid = sigproc.helper_pid()
    assert pid is not None
    checks = sigproc.Checks.open()
    assert checks is not None
    checks.send(jobs[:300])
    os.kill(pid, signal.SIGKILL)
    checks.send(jobs[300:])  # the pipe may be gone already: kept, checked here
    assert sorted(checks.bad()) == sorted(bad)
    assert sigproc.wait_ready(60), "a new helper is started for the next batch"
    assert sigproc.helper_pid() not in (None, pid)


def test_an_answer_that_does_not_parse_is_not_believed(helper: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that answers "nothing is bad" with the wrong length, or names a job it
    was not sent, is not believed: the checks are made here."""
    jobs, bad = _jobs(300, seed=6)
    real = sigproc._answer

    def lying(h: Any, n: int) -> list[int]:
        real(h, n)  # read its real answer, then claim another one
        raise ValueError("the helper's answer has the wrong length")

    monkeypatch.setattr(sigproc, "_answer", lying)
    checks = sigproc.Checks.open()
    assert checks is not None
    checks.send(jobs)
    assert sorted(checks.bad()) == sorted(bad)


def _events(w: World, party: str, key: Any, start: int) -> list[dict[str, Any]]:
    return [w.event(party, key, start + i) for i in range(EVENTS)]


def test_a_bad_signature_refuses_a_big_batch_checked_by_the_helper(world: World, helper: None) -> None:
    party, key = world.register()
    batch = _events(world, party, key, 1000)
    batch[-3]["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    size, cp = world.ledger.size(), world.ledger.latest_checkpoint()
    with pytest.raises(BatchRejected) as e:
        world.ledger.append_batch(batch)
    assert [(i, err.code) for i, err in e.value.errors] == [(EVENTS - 3, "bad_signature")]
    assert world.ledger.size() == size and world.ledger.latest_checkpoint() == cp
    # A shape error refuses a batch before its checks are awaited: the helper's answer
    # is still read, and the next batch is checked by it with its own answer.
    broken = _events(world, party, key, 3000)
    broken[5] = {"statement": "not an envelope"}
    with pytest.raises(BatchRejected) as e:
        world.ledger.append_batch(broken)
    assert [i for i, _ in e.value.errors] == [5]
    good = _events(world, party, key, 2000)
    receipts = world.ledger.append_batch(good)
    assert [r.seq for r in receipts] == list(range(size, size + EVENTS))
    assert audit(world.store).ok


def test_a_helper_killed_under_a_batch_loses_nothing(
    world: World, helper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    party, key = world.register()
    pid = sigproc.helper_pid()
    assert pid is not None
    send = sigproc.Checks.send
    sent = 0

    def killing(self: sigproc.Checks, jobs: Any) -> None:
        nonlocal sent
        send(self, jobs)
        sent += 1
        if sent == 2:
            os.kill(pid, signal.SIGKILL)

    monkeypatch.setattr(sigproc.Checks, "send", killing)
    size = world.ledger.size()
    bad = _events(world, party, key, 5000)
    bad[-1]["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    with pytest.raises(BatchRejected) as e:
        world.ledger.append_batch(bad)
    assert [(i, err.code) for i, err in e.value.errors] == [(EVENTS - 1, "bad_signature")]
    assert sent >= 2 and world.ledger.size() == size
    receipts = world.ledger.append_batch(bad[:-1])
    assert len(receipts) == EVENTS - 1 and world.ledger.size() == size + EVENTS - 1
    assert audit(world.store).ok


def test_turned_off_no_helper_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUYUAN_SIGPROC", "0")
    assert sigproc.Checks.open() is None
    assert not sigproc.wait_ready(0.2)


@pytest.mark.parametrize("use_helper", [True, False])
def test_a_batch_queued_behind_another_is_refused_for_its_signature_without_waiting(
    world: World, monkeypatch: pytest.MonkeyPatch, use_helper: bool
) -> None:
    """While another writer holds the sequencer, a queued batch's signature checks are
    awaited before it waits for the lock: a bad one refuses it at once, with the lock
    still held elsewhere, and nothing is written."""
    import threading

    monkeypatch.setenv("SUYUAN_SIGPROC", "1" if use_helper else "0")
    if use_helper:
        assert sigproc.wait_ready(60)
    party, key = world.register()
    batch = _events(world, party, key, 7000)
    batch[100]["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    size = world.ledger.size()
    outcome: list[object] = []

    def append() -> None:
        try:
            world.ledger.append_batch(batch)
            outcome.append("appended")
        except BatchRejected as e:
            outcome.append([(i, err.code) for i, err in e.errors])

    with world.store.writing():  # another writer holds the sequencer
        t = threading.Thread(target=append)
        t.start()
        t.join(timeout=60)
        assert not t.is_alive(), "the queued batch waited for the lock to be refused"
        assert outcome == [[(100, "bad_signature")]]
    assert world.ledger.size() == size
    receipts = world.ledger.append_batch([b for i, b in enumerate(batch) if i != 100])
    assert len(receipts) == EVENTS - 1


def test_the_audit_names_the_same_bad_signature_with_the_helper_or_the_threads(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's checks go to the helper (log only, or below the re-derivation's own
    process); a signature forged in the database file is named the same either way."""
    import re

    party, key = world.register()
    world.append_events(party, key, sigproc.MIN_JOBS + 40)
    world.store.drop_append_only()
    with world.store.engine.connect() as conn:
        raw = bytes(conn.execute(sa.text("SELECT entry FROM entries WHERE seq = 150")).scalar_one())
    forged = re.sub(rb'"sig":"[^"]+"', b'"sig":"' + base64.b64encode(bytes(64)) + b'"', raw, count=1)
    assert forged != raw
    world.store.raw("UPDATE entries SET entry = :e WHERE seq = 150", {"e": forged})
    streamed: list[int] = []
    next_bad = sigproc.Checks.next_bad

    def counting(self: sigproc.Checks) -> list[int]:
        got = next_bad(self)
        streamed.append(len(got))
        return got

    monkeypatch.setattr(sigproc.Checks, "next_bad", counting)
    lines = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("SUYUAN_SIGPROC", setting)
        rep = audit(world.store, projections=False)
        assert not rep.ok
        lines[setting] = [p.line() for p in rep.problems]
    assert streamed and sum(streamed) == 1, "the helper's answers were read, naming one"
    assert lines["1"] == lines["0"]
    assert any(line.startswith("seq 150: signature by") for line in lines["1"]), lines["1"]


def test_a_helper_that_cannot_start_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that ends before it says it is up (here: one that exits at once) makes
    ``wait_ready`` answer False as soon as that is seen, not after its whole timeout, and
    batches go on with the verify threads."""
    import subprocess
    import sys
    import time

    from ledger.log import helperproc

    monkeypatch.delenv("SUYUAN_SIGPROC", raising=False)
    sigproc._slot.shutdown()

    def broken(module: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", "raise SystemExit(1)"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    monkeypatch.setattr(helperproc, "spawn", broken)
    start = time.monotonic()
    assert not sigproc.wait_ready(20)
    assert time.monotonic() - start < 10
    assert sigproc.Checks.open() is None
    monkeypatch.undo()
    sigproc._slot.shutdown()
    assert sigproc.wait_ready(60), "a working helper starts again"
