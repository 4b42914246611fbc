"""The pure per-event work of big batches runs in a helper process beside the sequencer
(``ledger.log.offload``). Where the work ran must never show: the same rows, the same
receipts, the same refusals in the same order, and a helper that dies loses nothing.
SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.core.errors import BatchRejected
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.log import offload
from ledger.log.audit import audit
from ledger.store.driver import run
from tests.support import World

EVENTS = offload.OFFLOAD_MIN + offload.CHUNK + 17  # several jobs and a partial one


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SUYUAN_OFFLOAD", "1")
    assert offload.wait_ready(60), "the offload helper did not start"
    yield


def on_helper(monkeypatch: pytest.MonkeyPatch, seen: list[int]) -> None:
    """Count the events the helper derived (its answers, read in this process)."""
    results = offload.Offload.results

    def counting(self: offload.Offload) -> dict[int, offload.Derived]:
        got = results(self)
        seen.append(len(got))
        return got

    monkeypatch.setattr(offload.Offload, "results", counting)


def batch(w: World, party: str, key: PartyKey, start: int) -> list[dict[str, Any]]:
    """Commissionings and, every tenth, the same event again signed as a new statement
    (another issued time): the capture index must answer it with the first receipt."""
    out = []
    for i in range(EVENTS):
        out.append(w.event(party, key, start + i, disposition="active"))
        if i % 10 == 0:
            body = dict(out[-1]["statement"]["body"])
            out.append(
                sign_one(kind="event", signer=party, key=key, body=body, issued="2026-11-28T09:00:00+08:00")
            )
    return out


def first(r: Any) -> int:
    """The seq a receipt answers with: its own, or the entry it repeats."""
    return int(r.seq if r.duplicate_of is None else r.duplicate_of)


def rows(w: World, sql: str) -> list[tuple[Any, ...]]:
    with w.store.reading() as conn:
        return [tuple(r) for r in run(conn, sql)]


def test_helped_batch_gives_the_rows_and_receipts_of_an_unhelped_one(
    world: World, helper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    on_helper(monkeypatch, seen)
    party, key = world.register()
    helped = world.ledger.append_batch(batch(world, party, key, 0))
    assert seen and seen[-1] == EVENTS + EVENTS // 10 + 1, seen  # every event went there

    monkeypatch.setenv("SUYUAN_OFFLOAD", "0")
    # The same events again as new statements (another issued time), their capture keys
    # worked out here: each is answered with its first receipt, so the keys the helper
    # stored are exactly those.
    again = [
        sign_one(
            kind="event",
            signer=party,
            key=key,
            body=e["statement"]["body"],
            issued="2026-11-29T10:00:00+08:00",
        )
        for e in batch(world, party, key, 0)
    ]
    here = world.ledger.append_batch(again)
    assert all(r.duplicate_of is not None for r in here)
    assert [r.duplicate_of for r in here] == [first(r) for r in helped]
    assert sum(r.duplicate_of is not None for r in helped) == EVENTS // 10 + 1

    # The audit re-derives every projection in its own process without the helper: the
    # rows the helped append wrote are those.
    rep = audit(world.store)
    assert rep.ok, [p.line() for p in rep.problems]
    assert rows(world, "SELECT count(*) FROM event_keys")[0][0] == EVENTS


def refused(w: World, envelopes: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    with pytest.raises(BatchRejected) as e:
        w.ledger.append_batch(envelopes)
    return [(i, err.code, err.message) for i, err in e.value.errors]


def test_refusals_are_the_same_wherever_the_events_were_checked(
    world: World, helper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    on_helper(monkeypatch, seen)
    party, key = world.register()
    stranger = PartyKey.generate(party)
    before = rows(world, "SELECT count(*) FROM entries")

    def hostile() -> list[dict[str, Any]]:
        out = [world.event(party, key, 1000 + i) for i in range(EVENTS)]
        out[3] = world.event(party, key, 3, bizStep="no such step")  # refused by the schema
        out[200] = world.event(party, key, 200, epcList="not a list")
        out[EVENTS - 1] = world.event(party, key, 9, eventTime="yesterday")
        # An unknown key in a chunk after the first refusal: not looked up, as before.
        out[300] = world.event(party, stranger, 300)
        return out

    helped = refused(world, hostile())
    assert seen, "the helper was not used"
    monkeypatch.setenv("SUYUAN_OFFLOAD", "0")
    here = refused(world, hostile())
    assert helped == here
    assert [i for i, _, _ in helped] == [3, 200, EVENTS - 1], helped

    # Only an unknown key: looked up and refused, helper or not.
    monkeypatch.setenv("SUYUAN_OFFLOAD", "1")
    assert offload.wait_ready(60)
    only_key = [world.event(party, key, 2000 + i) for i in range(EVENTS)]
    only_key[EVENTS - 2] = world.event(party, stranger, 5)
    helped = refused(world, only_key)
    monkeypatch.setenv("SUYUAN_OFFLOAD", "0")
    assert refused(world, only_key) == helped == [(EVENTS - 2, "unknown_key", helped[0][2])]
    assert rows(world, "SELECT count(*) FROM entries") == before


def test_a_helper_killed_under_a_batch_loses_nothing(
    world: World, helper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    party, key = world.register()
    pid = offload.helper_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    receipts = world.ledger.append_batch([world.event(party, key, 5000 + i) for i in range(EVENTS)])
    assert len({r.seq for r in receipts}) == EVENTS
    # The next big batch finds the helper gone and starts another.
    assert offload.wait_ready(60)
    assert offload.helper_pid() not in (None, pid)
    seen: list[int] = []
    on_helper(monkeypatch, seen)
    world.ledger.append_batch([world.event(party, key, 9000 + i) for i in range(EVENTS)])
    assert seen == [EVENTS]
    rep = audit(world.store)
    assert rep.ok, [p.line() for p in rep.problems]


def test_the_collector_is_paused_only_while_batches_are_appended(world: World) -> None:
    """The sequencer pauses Python's cyclic garbage collector while it appends (it finds
    nothing to free there) and gives it back after, also after a refused batch; a process
    that had turned it off keeps it off."""
    import gc
    import threading

    from ledger.log import sequencer

    party, key = world.register()
    seen: list[bool] = []
    prepare = sequencer.Ledger._prepare

    def watching(self: Any, envelopes: Any) -> Any:
        seen.append(gc.isenabled())
        return prepare(self, envelopes)

    assert gc.isenabled()
    try:
        sequencer.Ledger._prepare = watching  # type: ignore[method-assign]
        world.append_events(party, key, 3)
        with pytest.raises(BatchRejected):
            world.ledger.append_batch([world.event(party, key, 1, bizStep="no such step")])
        assert seen == [False, False] and gc.isenabled()

        # Two batches at once in threads: the first to finish does not restart it under
        # the second.
        inside = threading.Event()
        release = threading.Event()

        def slow(self: Any, envelopes: Any) -> Any:
            inside.set()
            release.wait(30)
            return prepare(self, envelopes)

        sequencer.Ledger._prepare = slow  # type: ignore[method-assign]
        t = threading.Thread(target=world.append_events, args=(party, key, 2, 100))
        t.start()
        assert inside.wait(30)
        sequencer.Ledger._prepare = watching  # type: ignore[method-assign]
        world.append_events(party, key, 2, start=200)
        assert seen[-1] is False and not gc.isenabled()  # the slow batch still runs
        release.set()
        t.join(30)
        assert gc.isenabled()

        gc.disable()
        world.append_events(party, key, 1, start=300)
        assert not gc.isenabled()
    finally:
        sequencer.Ledger._prepare = prepare  # type: ignore[method-assign]
        gc.enable()
