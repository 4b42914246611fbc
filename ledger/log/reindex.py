"""Rebuild every projection from the entries alone: the proof that they are projections."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ledger.compliance import findings, findings_batch
from ledger.core import registry
from ledger.core.statements import Prepared, prepare
from ledger.epcis import masterdata
from ledger.epcis.event_hash import capture_key, document_key
from ledger.epcis.projection import TraceBatch
from ledger.epcis.stages import EventCodes, classify
from ledger.log.sequencer import event_facts
from ledger.store import capturedb, findingsdb, masterdatadb, tracedb
from ledger.store.db import Store

FLUSH_EVERY = 5000
CHUNK = 1000


def reindex(store: Store, *, progress: Callable[[int, int], None] | None = None
            ) -> dict[str, Any]:
    """Empty the projections and replay every entry through the same code the append
    path uses, in one transaction (appends wait; readers see the old rows until commit).

    Entries are replayed in chunks, like append batches: the findings rules' reads are
    fetched once per chunk, and the rows kept in memory are written only between chunks,
    so what a rule reads from the store never changes under it.
    """
    with store.writing() as conn:
        total = store.count_entries(conn)
        tracedb.clear_projections(conn)
        reg = registry.RegistryState()
        trace = TraceBatch()
        judged = findings_batch.FindingsBatch(findingsdb.DbReads(conn), reg=reg, trace=trace)
        n = events = raised = 0
        chunk: list[tuple[int, str, Prepared, EventCodes | None]] = []
        captured: list[capturedb.Row] = []
        described: list[masterdatadb.Row] = []
        commitments: list[tuple[str, int]] = []  # (commitment, seq); the first of each wins

        def replay(chunk: Sequence[tuple[int, str, Prepared, EventCodes | None]]) -> int:
            judged.prefetch([(p.body, f) for _, _, p, f in chunk if f is not None])
            count = 0
            for seq, time, p, fact in chunk:
                if fact is not None:
                    party = reg.parties[p.signer]
                    classified = classify(p.body, signer_roles=party.roles)
                    trace.add_event(seq=seq, signer=p.signer, body=p.body,
                                    classified=classified, codes=fact)
                    judged.add_event(findings.Subject(
                        seq=seq, signer=p.signer, issued=p.statement["issued"], appended=time,
                        body=p.body, codes=fact, classified=classified))
                    captured.append(capturedb.row(seq, p.signer, capture_key(p.body)))
                    count += 1
                if p.kind == "document":
                    captured.append(capturedb.row(seq, p.signer, document_key(p.body)))
                elif p.kind == "masterdata":
                    subject = masterdata.subject_of(p.body)
                    described.append(masterdatadb.Row(subject.code, seq, subject.kind, p.signer,
                                                      masterdata.body_hash(p.body)))
                registry.apply(p, seq, reg)
            return count

        for seq, _, _, raw in store.stream_entries(conn):
            entry = orjson.loads(raw)
            p = prepare(entry["envelope"])
            if "private" in p.statement:
                commitments.append((p.statement["private"], seq))
            chunk.append((seq, entry["time"], p, event_facts(p.body) if p.kind == "event" else None))
            n += 1
            if len(chunk) < CHUNK:
                continue
            events += replay(chunk)
            chunk = []
            if len(trace.events) >= FLUSH_EVERY:
                tracedb.write_trace(conn, trace)
                findingsdb.write_findings(conn, judged)
                capturedb.write(conn, captured)
                captured.clear()
                masterdatadb.write(conn, described)
                described.clear()
                store.save_commitments(conn, commitments)
                commitments = []
                raised += len(judged.findings)
                trace = TraceBatch()
                judged = findings_batch.FindingsBatch(findingsdb.DbReads(conn), reg=reg, trace=trace)
                if progress:
                    progress(n, total)
        events += replay(chunk)
        tracedb.write_trace(conn, trace)
        findingsdb.write_findings(conn, judged)
        capturedb.write(conn, captured)
        masterdatadb.write(conn, described)
        store.save_commitments(conn, commitments)
        raised += len(judged.findings)
        store.save_registry(conn, reg, existing=set())
        if progress:
            progress(n, total)
    return {"entries": n, "events": events, "parties": len(reg.parties), "keys": len(reg.keys),
            "findings": raised}
