"""``suyuan reindex`` rebuilds the projections while appends go on (issue 11, section 2):
an append made while the rebuild replays the entries completes before the rebuild ends,
is caught up with, and the swapped-in projections equal a rebuild from scratch."""

from __future__ import annotations

import threading
from typing import Any

from ledger.audit import audit
from ledger.reindex import reindex
from ledger.store import tracedb
from tests.pagechain import FormulaChain
from tests.support import World


def dump(w: World) -> dict[str, list[tuple[Any, ...]]]:
    with w.store.reading() as conn:
        return tracedb.dump_projections(conn)


def test_appends_go_on_during_a_reindex(world: World) -> None:
    chain = FormulaChain(world)
    chain.build()
    producer, key = world.register(["producer"])
    world.append_events(producer, key, 3)
    before = world.ledger.size()
    appended: list[int] = []
    finished: list[bool] = []

    def append_meanwhile() -> None:
        receipts = world.append_events(producer, key, 2, start=100)
        appended.extend(r.seq for r in receipts)

    def progress(done: int, total: int) -> None:
        # Called once the replay has reached the size the ledger had when it began, before
        # the rebuild is swapped in: an append now must not wait for the rebuild.
        if done == total == before and not finished:
            t = threading.Thread(target=append_meanwhile)
            t.start()
            t.join(timeout=120)  # a bound against a deadlock, not a speed figure
            finished.append(not t.is_alive())

    res = reindex(world.store, progress=progress)
    assert finished == [True], "an append waited for the rebuild"
    assert appended == [before, before + 1]
    assert res["entries"] == before + 2  # the rebuild caught up with them
    rebuilt = dump(world)
    assert {r[0] for r in rebuilt["events"]} >= set(appended)
    assert {r[0] for r in rebuilt["event_keys"]} >= set(appended)

    reindex(world.store)  # from scratch, with nothing appended meanwhile
    assert dump(world) == rebuilt
    assert audit(world.store).ok


def test_a_reindex_keeps_scan_findings_and_drops_stray_rows(world: World) -> None:
    """A rebuild starts from empty tables: rows no entry derives (an orphaned index row of a
    deleted finding, a forged party) are gone after it; findings raised from scans stay."""
    from ledger.findings import COUNTERFEIT_RULE, Finding
    from ledger.store.findingsdb import save_scan_findings

    FormulaChain(world).build()
    original = dump(world)
    with world.store.writing() as conn:
        save_scan_findings(conn, [Finding(
            id="scan-1", seq=3, rule=COUNTERFEIT_RULE, severity="high",
            time="2026-12-01T00:00:00.000000Z", seqs=(3,), parties=("gln:1",), codes=("x",),
            message_zh="扫码异常", message_en="scan pattern", details={}, source="scan")])
    with_scan = dump(world)
    world.store.raw("DELETE FROM findings WHERE source = 'entry'")
    world.store.raw("INSERT INTO parties (id, name, roles, registered_seq) "
                    "VALUES ('uscc:forged', 'Fake', 'producer', 1)")
    reindex(world.store)
    after = dump(world)
    assert after == with_scan
    assert after["findings"] != original["findings"]  # the scan finding is one of them
    assert any(r[0] == "scan-1" for r in after["findings"])
