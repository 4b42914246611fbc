"""Rebuild every projection from the entries alone: the proof that they are projections.

The rebuild does not stop appends. It runs the projector the append path runs over the
stored entries into fresh tables beside the live ones (``ledger.store.shadow``) while
batches go on being appended, catches up with those from the seq it started at, and only
then takes the sequencer's lock: it applies the last few entries and swaps the fresh
tables in, in one transaction (on PostgreSQL a rename; on SQLite a copy of the rows).
Readers see the old projections until that commit, and the new ones after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ledger.core.statements import prepare
from ledger.log.projector import Projector, Rebuild
from ledger.log.verifier import event_facts
from ledger.store import shadow
from ledger.store.db import Store

log = logging.getLogger("suyuan.reindex")

CATCH_UP = 2000  # entries left behind at most when the lock is taken
MAX_ROUNDS = 20  # catch-up rounds before the lock is taken whatever is left
LOCK_TRIES = 10  # PostgreSQL: tries to lock the live tables within 2 s before waiting

Progress = Callable[[int, int], None]


def _replay(
    store: Store,
    conn: Connection,
    rebuild: Rebuild,
    *,
    stop: int | None,
    total: int,
    progress: Progress | None,
) -> None:
    """Feed ``rebuild`` the entries from where it stands up to ``stop`` (None: the end)."""
    for seq, _, _, raw in store.stream_entries(conn, start=rebuild.next_seq, stop=stop):
        entry = orjson.loads(raw)
        p = prepare(entry["envelope"])
        rebuild.feed(seq, entry["time"], p, event_facts(p.body) if p.kind == "event" else None)
        if progress and (seq + 1) % Rebuild.FLUSH_EVERY == 0:
            progress(seq + 1, max(total, seq + 1))


def _size(store: Store, conn: Connection) -> int:
    head = store.head(conn)
    return head.size if head else 0


def reindex(store: Store, *, progress: Progress | None = None) -> dict[str, Any]:
    """Rebuild every projection while appends go on, and swap the result in atomically.

    ``progress(done, total)`` is called as entries are replayed, and once more when the
    replay has reached the size the ledger had when it began (appends made after that
    are caught up with before the swap)."""
    tables = Projector.standard().tables
    conn = store.engine.connect()
    rebuilt: str | None = None
    left: list[str] = []
    swapped = False
    try:
        with conn.begin():
            live = shadow.live_schema(conn)
            left = shadow.claim_rebuild(conn, live=live)
            if left:
                log.warning(
                    "dropped %d rebuild schema(s) a crashed reindex left: %s", len(left), ", ".join(left)
                )
            rebuilt = shadow.create_rebuild(conn, tables, live=live)
            rebuild = Rebuild(store, conn)
            start = _size(store, conn)
            _replay(store, conn, rebuild, stop=start, total=start, progress=progress)
            rebuild.flush()
        if progress:
            progress(rebuild.next_seq, start)
        # Catch up with what was appended meanwhile, without the lock, until little is left.
        for _ in range(MAX_ROUNDS):
            with conn.begin():
                size = _size(store, conn)
                if size - rebuild.next_seq <= CATCH_UP:
                    break
                _replay(store, conn, rebuild, stop=size, total=size, progress=progress)
                rebuild.flush()
        for attempt in range(LOCK_TRIES + 1):
            try:
                with store.writing_on(conn, lock_schema=None if rebuilt is None else live.strip('"')):
                    if rebuilt is not None:
                        # The rename waits for readers of the live tables (a long audit):
                        # the sequencer's lock is given back meanwhile, and taken again.
                        shadow.lock_live(
                            conn, tables, live=live, timeout_ms=None if attempt == LOCK_TRIES else 2000
                        )
                    size = _size(store, conn)
                    _replay(store, conn, rebuild, stop=size, total=size, progress=None)
                    rebuild.flush()
                    shadow.swap_in(conn, tables, live=live, rebuilt=rebuilt)
                    swapped = True
                break
            except OperationalError as e:
                if swapped or getattr(e.orig, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
    finally:
        if rebuilt is not None and not swapped:
            conn.rollback()
            with conn.begin():
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {rebuilt} CASCADE")
        # Its temporary tables and search path must not go back to the pool.
        conn.invalidate()
        conn.close()
    if progress:
        progress(rebuild.next_seq, rebuild.next_seq)
    reg = rebuild.registry
    return {
        "entries": rebuild.done.entries,
        "events": rebuild.done.events,
        "parties": len(reg.parties),
        "keys": len(reg.keys),
        "findings": rebuild.findings_raised,
        # Rebuild schemas of crashed reindexes, dropped before this one began (PostgreSQL).
        "dropped": left,
    }
