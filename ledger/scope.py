"""Audit one product chain: its journey and lineage entries, each with an inclusion proof
against the latest checkpoint that is verified here, its signatures re-checked against the
keys valid at its seq, and the findings that touch those entries."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from ledger import merkle, registry
from ledger.errors import LedgerError
from ledger.findings import list_findings
from ledger.log import Ledger
from ledger.note import Checkpoint, NoteVerifier
from ledger.statements import prepare
from ledger.store import tracedb
from ledger.trace import MAX_DEPTH, journey_steps, lineage, normalise_code
from ledger.verify import verify_chunk


def _key_problem(reg: registry.RegistryState, signer: str, kid: str, seq: int) -> str | None:
    rec = reg.keys.get(kid)
    if rec is None or rec.party != signer:
        return f"key {kid} is not a registered key of {signer}"
    if seq < rec.valid_from or (rec.valid_until is not None and seq > rec.valid_until):
        return f"key {kid} of {signer} was not valid at seq {seq}"
    return None


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
        raw = store.entries_by_seq(conn, seqs)
        fetch = lambda ids: store.fetch_nodes(conn, ids)  # noqa: E731
        proofs = {s: merkle.inclusion_proof(s, size, fetch) for s in sorted(raw)}
        reg = store.load_registry(conn, key_ids=None, party_ids=())
        rows = tracedb.event_rows(conn, raw)
    problems: list[str] = []
    try:
        cp = Checkpoint.parse(NoteVerifier.from_vkey(reg.log_key or "").verify(note))
        if cp.size != size or cp.root != stored_root:
            problems.append("the latest signed checkpoint does not state the stored size and root")
    except LedgerError as e:
        problems.append(f"latest checkpoint: {e.message}")
        cp = Checkpoint(reg.origin or "", size, stored_root)
    out_entries = []
    jobs: list[tuple[int, bytes, bytes, bytes]] = []
    owners: list[int] = []
    by_seq: dict[int, dict[str, Any]] = {}
    for seq in sorted(raw):
        entry = raw[seq]
        leaf = merkle.leaf_hash(entry)
        item: dict[str, Any] = {
            "seq": seq, "leafHash": leaf.hex(), "entry": base64.b64encode(entry).decode(),
            "inclusionProof": {"leafIndex": seq, "treeSize": size,
                               "hashes": [h.hex() for h in proofs[seq]]},
            "proofVerified": False, "signaturesVerified": False, "problems": []}
        r = rows.get(seq, {})
        item.update({"stage": r.get("stage"), "activity": r.get("activity"),
                     "eventTime": r.get("event_time"), "signer": r.get("signer")})
        try:
            merkle.verify_inclusion(leaf=leaf, index=seq, size=cp.size, proof=proofs[seq],
                                    root=cp.root)
            item["proofVerified"] = True
        except LedgerError as e:
            item["problems"].append(f"inclusion: {e.message}")
        try:
            p = prepare(orjson.loads(entry)["envelope"])
        except (LedgerError, orjson.JSONDecodeError, KeyError, TypeError):
            item["problems"].append("entry bytes are not a valid entry")
            out_entries.append(item)
            continue
        ok = True
        for s in p.signatures:
            why = _key_problem(reg, s.signer, s.key, seq)
            if why:
                item["problems"].append(why)
                ok = False
                continue
            owners.append(seq)
            jobs.append((len(jobs), p.signed_message, s.sig, reg.keys[s.key].public_key))
        item["signaturesVerified"] = ok
        by_seq[seq] = item
        out_entries.append(item)
    for n in verify_chunk(jobs):
        it = by_seq[owners[n]]
        it["signaturesVerified"] = False
        it["problems"].append("a signature does not verify")
    findings = [f.as_dict() for f in list_findings(store) if set(f.seqs) & set(raw)]
    bad = [e["seq"] for e in out_entries if e["problems"]]
    return {
        "code": key,
        "checkpoint": {"note": note, "size": size, "root": stored_root.hex(),
                       "logKey": reg.log_key},
        "journey": [s.as_dict() for s in steps],
        "upstream": up, "downstream": down,
        "entries": out_entries,
        "findings": findings,
        "ok": not problems and not bad,
        "problems": problems + [f"seq {s}: {'; '.join(e['problems'])}"
                                for e in out_entries if e["problems"] for s in [e["seq"]]],
    }
