"""``suyuan reindex`` rebuilds the projections while appends go on (issue 11, section 2):
an append made while the rebuild replays the entries completes before the rebuild ends,
is caught up with, and the swapped-in projections equal a rebuild from scratch."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from ledger.log.audit import audit
from ledger.log.reindex import reindex
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
    from ledger.compliance.findings import COUNTERFEIT_RULE, Finding
    from ledger.store.findingsdb import save_scan_findings

    FormulaChain(world).build()
    original = dump(world)
    with world.store.writing() as conn:
        save_scan_findings(
            conn,
            [
                Finding(
                    id="scan-1",
                    seq=3,
                    rule=COUNTERFEIT_RULE,
                    severity="high",
                    time="2026-12-01T00:00:00.000000Z",
                    seqs=(3,),
                    parties=("gln:1",),
                    codes=("x",),
                    message_zh="扫码异常",
                    message_en="scan pattern",
                    details={},
                    source="scan",
                )
            ],
        )
    with_scan = dump(world)
    world.store.raw("DELETE FROM findings WHERE source = 'entry'")
    world.store.raw(
        "INSERT INTO parties (id, name, roles, registered_seq) VALUES ('uscc:forged', 'Fake', 'producer', 1)"
    )
    reindex(world.store)
    after = dump(world)
    assert after == with_scan
    assert after["findings"] != original["findings"]  # the scan finding is one of them
    assert any(r[0] == "scan-1" for r in after["findings"])


def test_a_reader_holding_the_tables_does_not_stall_appends_during_the_swap(world: World) -> None:
    """PostgreSQL swaps by renaming, which waits for every reader of the live tables (a long
    audit's snapshot): the rebuild gives the sequencer's lock back while it waits, so
    appends go on, and it swaps once the reader is done."""
    import time

    from sqlalchemy import text

    if world.store.dialect != "postgresql":
        pytest.skip("SQLite's swap copies rows; readers do not hold it up")
    FormulaChain(world).build()
    producer, key = world.register(["producer"])
    reader = world.store.engine.connect()
    reader.begin()
    reader.execute(text("SELECT count(*) FROM events")).scalar()
    done: list[dict[str, Any]] = []
    rebuilding = threading.Thread(target=lambda: done.append(reindex(world.store)))
    rebuilding.start()
    try:
        # Until the rebuild waits for the reader's lock (a bound, not a speed figure).
        for _ in range(600):
            with world.store.engine.connect() as c:
                waiting = c.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND (query LIKE 'LOCK TABLE%' OR query LIKE 'DROP TABLE%')"
                    )
                ).scalar()
            if waiting:
                break
            time.sleep(0.1)
        assert waiting, "the rebuild never waited for the reader"
        appended: list[int] = []
        t = threading.Thread(
            target=lambda: appended.extend(r.seq for r in world.append_events(producer, key, 1, start=500))
        )
        t.start()
        t.join(timeout=120)
        assert appended, "an append waited for the swap"
        assert not done  # still waiting for the reader
    finally:
        reader.rollback()
        reader.close()
        rebuilding.join(timeout=300)
    assert done and done[0]["entries"] == world.ledger.size()
    assert audit(world.store).ok


@pytest.mark.postgres
def test_a_crashed_reindex_leaves_nothing_behind_and_two_do_not_run_at_once(
    pg_database: str, tmp_path: Path
) -> None:
    """PostgreSQL builds the rebuild in a schema of its own: a reindex killed before its
    swap (SIGKILL: no cleanup runs) leaves that schema. The next reindex drops it, and a
    reindex refuses to start while another holds the schema's reindex lock. (SQLite
    rebuilds in temporary tables, which end with their connection.)"""
    import sqlalchemy as sa

    from tests.conftest import fresh_schema_url

    world = World.create(fresh_schema_url(pg_database), home=tmp_path / "home")

    from ledger.core.errors import LedgerError
    from ledger.log.reindex import reindex

    producer, key = world.register()
    world.append_events(producer, key, 3)
    with world.store.engine.connect() as conn:
        live = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        left = f"{live}__reindex_0badcafe"
        keep = f"{live}__reindex_notmine"  # not a name reindex makes: left alone
        for name in (left, keep):
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
            conn.exec_driver_sql(f'CREATE TABLE "{name}".events (seq integer)')
        conn.commit()

    def schemas() -> set[str]:
        with world.store.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :p)"), {"p": live}
            )
            return {r[0] for r in rows}

    # Another reindex holds the lock: this one refuses and touches nothing.
    other = world.store.engine.connect()
    try:
        assert other.exec_driver_sql(
            f"SELECT pg_try_advisory_lock(hashtext('suyuan reindex {live}'))"
        ).scalar_one()
        with pytest.raises(LedgerError) as refused:
            reindex(world.store)
        assert refused.value.code == "reindex_running"
        assert schemas() == {live, left, keep}
    finally:
        # Released here rather than by closing: a closed session's backend ends (and lets
        # go of its locks) a moment after the client has gone.
        other.exec_driver_sql(f"SELECT pg_advisory_unlock(hashtext('suyuan reindex {live}'))")
        other.close()

    done = reindex(world.store)
    assert done["dropped"] == [left]
    assert schemas() == {live, keep}
    assert reindex(world.store)["dropped"] == []
    world.close()
