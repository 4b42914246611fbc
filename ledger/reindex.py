"""Rebuild every projection from the entries alone: the proof that they are projections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ledger.projector import Rebuild
from ledger.statements import prepare
from ledger.store import tracedb
from ledger.store.db import Store
from ledger.verifier import event_facts


def reindex(store: Store, *, progress: Callable[[int, int], None] | None = None
            ) -> dict[str, Any]:
    """Empty the projections and replay every entry through the projector the append path
    runs, in one transaction."""
    with store.writing() as conn:
        total = store.count_entries(conn)
        tracedb.clear_projections(conn)
        rebuild = Rebuild(store, conn)
        n = 0
        for seq, _, _, raw in store.stream_entries(conn):
            entry = orjson.loads(raw)
            p = prepare(entry["envelope"])
            rebuild.feed(seq, entry["time"], p, event_facts(p.body) if p.kind == "event" else None)
            n += 1
            if progress and n % Rebuild.FLUSH_EVERY == 0:
                progress(n, total)
        rebuild.flush()
        if progress:
            progress(n, total)
    reg = rebuild.registry
    return {"entries": n, "events": rebuild.done.events, "parties": len(reg.parties),
            "keys": len(reg.keys), "findings": rebuild.findings_raised}
