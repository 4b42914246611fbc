"""What someone with write access to the database can do without asking the ledger's rules:
INSERT entries with their Merkle nodes and a checkpoint signed by a note key of their
choosing (their own, or the operator's if they hold it), and the projection rows the
append path would have written for them. The append-only triggers refuse UPDATE and
DELETE of entries, nodes and checkpoints; INSERT is what is left to them.

The library's own writers are used as the forger's tools (the bytes are what raw SQL
would insert); no rule of ``registry.authorise`` or ``judge_event`` is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.core import merkle, registry
from ledger.core.note import Checkpoint, NoteSigner
from ledger.core.statements import entry_bytes, ledger_time, prepare
from ledger.epcis.projection import TraceBatch
from ledger.epcis.stages import classify
from ledger.log.verifier import event_facts
from ledger.store import tracedb
from ledger.store.schema import node_key
from tests.support import ORIGIN, World


def forge(
    world: World, envelopes: Sequence[dict[str, Any]], *, note_signer: NoteSigner, origin: str = ORIGIN
) -> list[int]:
    """INSERT ``envelopes`` as the next entries, sealed by a checkpoint ``note_signer``
    signs, with the rows the projections would hold; returns their seqs."""
    store = world.store
    prepared = [prepare(e) for e in envelopes]
    with store.writing() as conn:
        head = store.head(conn)
        assert head is not None
        size = head.size
        edge = store.fetch_nodes(conn, merkle.range_nodes(0, size) + [(0, size - 1)])
        frontier = merkle.Frontier.load(size, lambda ids: edge)
        prev = edge[(0, size - 1)]
        reg = store.load_registry(conn, key_ids=None, party_ids=None)
        existing = set(reg.keys) | {"registrar"}
        trace = TraceBatch()
        time = ledger_time()
        rows, nodes = [], {}
        seq = size
        for p in prepared:
            raw = entry_bytes(seq=seq, prev=prev, time=time, envelope_bytes=p.envelope_bytes)
            leaf = merkle.leaf_hash(raw)
            for level, idx, h in frontier.append(leaf):
                nodes[(level, idx)] = h
            rows.append((seq, leaf, p.statement_hash, p.kind, p.signer, raw))
            if p.kind in ("party.register", "party.key.rotate", "party.key.revoke"):
                registry.apply(p, seq, reg)
            elif p.kind == "event":
                roles = reg.parties[p.signer].roles if p.signer in reg.parties else ()
                trace.add_event(
                    seq=seq,
                    signer=p.signer,
                    body=p.body,
                    codes=event_facts(p.body),
                    classified=classify(p.body, signer_roles=roles),
                )
            prev = leaf
            seq += 1
        note = note_signer.sign(Checkpoint(origin, frontier.size, frontier.root()).body())
        store.append_rows(
            conn,
            entry_rows=rows,
            node_rows=[(node_key(lv, ix), h) for (lv, ix), h in nodes.items()],
            checkpoint_row=(frontier.size, frontier.root(), note, time),
        )
        store.save_registry(conn, reg, existing=existing)
        tracedb.write_trace(conn, trace)
    return list(range(size, seq))
