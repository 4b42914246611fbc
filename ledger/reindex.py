"""Rebuild every projection from the entries alone: the proof that they are projections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ledger import registry
from ledger.domain import classify
from ledger.log import event_facts
from ledger.projections import TraceBatch
from ledger.statements import prepare
from ledger.store import tracedb
from ledger.store.db import Store

FLUSH_EVERY = 5000


def reindex(store: Store, *, progress: Callable[[int, int], None] | None = None
            ) -> dict[str, Any]:
    """Empty the projections and replay every entry through the same code the append
    path uses, in one transaction (appends wait; readers see the old rows until commit)."""
    with store.writing() as conn:
        total = store.count_entries(conn)
        tracedb.clear_projections(conn)
        reg = registry.RegistryState()
        trace = TraceBatch()
        n = events = 0
        for seq, _, _, raw in store.stream_entries(conn):
            p = prepare(orjson.loads(raw)["envelope"])
            if p.kind == "event":
                party = reg.parties[p.signer]
                trace.add_event(seq=seq, signer=p.signer, body=p.body,
                                classified=classify(p.body, signer_roles=party.roles),
                                codes=event_facts(p.body))
                events += 1
            registry.apply(p, seq, reg)
            n += 1
            if len(trace.events) >= FLUSH_EVERY:
                tracedb.write_trace(conn, trace)
                trace = TraceBatch()
                if progress:
                    progress(n, total)
        tracedb.write_trace(conn, trace)
        store.save_registry(conn, reg, existing=set())
        if progress:
            progress(n, total)
    return {"entries": n, "events": events, "parties": len(reg.parties), "keys": len(reg.keys)}
