"""Audit one product chain: its journey and lineage entries, each with an inclusion proof
against the latest checkpoint that is verified here with the pinned log key, and judged
with the genesis and its signers' registry entries (each proved too) by the one verifier
(``ledger.log.verifier``); and the findings that touch those entries."""

from __future__ import annotations

import base64
from typing import Any

from ledger.core import merkle
from ledger.core.errors import LedgerError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.epcis.projection import normalise_code
from ledger.log import verifier
from ledger.log.sequencer import Ledger
from ledger.queries.findings import list_findings
from ledger.queries.trace import MAX_DEPTH, journey_steps, lineage
from ledger.store import pagedb, tracedb


def scope_audit(ledger: Ledger, code: str) -> dict[str, Any]:
    """Everything about one product chain, proved against the latest checkpoint."""
    key = normalise_code(code)
    store = ledger.store
    with store.reading(snapshot=True) as conn:
        head = store.head(conn)
        if head is None:
            raise LedgerError("the ledger is empty; run `suyuan init` first", code="not_found")
        size, stored_root, note = head.size, head.root, head.note
        steps = journey_steps(conn, key)
        up = lineage(conn, key, depth=MAX_DEPTH, forward=False)
        down = lineage(conn, key, depth=MAX_DEPTH, forward=True)
        related = {i["code"] for i in up + down}
        seqs = {s.seq for s in steps} | set(tracedb.seqs_naming(conn, related))
        pin = ledger.pinned_key(conn)
        raw = verifier.with_evidence(
            store.entries_by_seq(conn, [*seqs, 0]),
            parse=verifier.parse_entry,
            fetch=lambda ids: pagedb.evidence_entries(conn, ids),
            registrar=pin.genesis.registrar if pin.genesis else None,
        )
        raw = {s: b for s, b in raw.items() if s < size}
        fetch = lambda ids: store.fetch_nodes(conn, ids)  # noqa: E731
        proofs = {s: merkle.inclusion_proof(s, size, fetch) for s in sorted(raw)}
    problems: list[str] = [f"log key: {pin.problem}"] if pin.problem else []
    try:
        cp = Checkpoint.parse(NoteVerifier.from_vkey(pin.key or "").verify(note))
        if cp.size != size or cp.root != stored_root:
            problems.append("the latest signed checkpoint does not state the stored size and root")
    except LedgerError as e:
        problems.append(f"latest checkpoint: {e.message}")
        cp = None
    parsed = {s: verifier.parse_entry(b) for s, b in raw.items()}
    included: dict[int, bool] = {}
    unusable: dict[int, str] = {}
    for seq in sorted(raw):
        try:
            if cp is None:
                raise LedgerError("no checkpoint verifies with the pinned log key")
            merkle.verify_inclusion(
                leaf=merkle.leaf_hash(raw[seq]), index=seq, size=cp.size, proof=proofs[seq], root=cp.root
            )
            included[seq] = True
        except LedgerError as e:
            included[seq] = False
            unusable[seq] = f"inclusion: {e.message}"
    verdicts = verifier.verify_entries(parsed, log_key=pin.key, unusable=unusable)
    out_entries = []
    for seq in sorted(seqs):
        if seq not in raw:
            continue
        entry, pe = raw[seq], parsed[seq]
        p = pe.prepared if pe.seq == seq else None
        classified = verdicts.classified.get(seq)
        why = verdicts.problems.get(seq)
        # What is shown of an entry comes from its bytes; its stage from the roles of its
        # signer's verified registration, so only for an entry that verified.
        out_entries.append(
            {
                "seq": seq,
                "leafHash": merkle.leaf_hash(entry).hex(),
                "entry": base64.b64encode(entry).decode(),
                "inclusionProof": {
                    "leafIndex": seq,
                    "treeSize": size,
                    "hashes": [h.hex() for h in proofs[seq]],
                },
                "proofVerified": included[seq],
                "signaturesVerified": verdicts.ok(seq),
                "problems": [] if why is None else [why],
                "stage": classified.stage if classified else None,
                "activity": classified.activity if classified else None,
                "eventTime": pe.codes.event_time if pe.codes and p else None,
                "signer": p.signer if p else None,
            }
        )
    evidence = []
    for seq in sorted(raw):
        p = parsed[seq].prepared
        if seq not in seqs:
            evidence.append(
                {
                    "seq": seq,
                    "kind": p.kind if p else None,
                    "verified": verdicts.ok(seq),
                    "problems": [verdicts.problems[seq]] if seq in verdicts.problems else [],
                }
            )
    findings = [f.as_dict() for f in list_findings(store) if set(f.seqs) & seqs]
    problems += verdicts.general
    problems += [f"seq {s}: {why}" for s, why in sorted(verdicts.problems.items())]
    return {
        "code": key,
        "checkpoint": {"note": note, "size": size, "root": stored_root.hex(), "logKey": pin.key},
        "journey": [s.as_dict() for s in steps],
        "upstream": up,
        "downstream": down,
        "entries": out_entries,
        "evidence": evidence,
        "findings": findings,
        "ok": not problems,
        "problems": problems,
    }
