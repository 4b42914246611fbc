"""Offline trace bundles: entries, their inclusion proofs and one signed checkpoint.

A bundle also carries the evidence its entries' signatures need: the genesis entry (which
names the log key and the registrar with its key) and the registry entries of every signer
(its registration, cosigned by the registrar, and the entries that introduced or ended its
keys), so ``verify_bundle`` judges every entry as the append path did, with nothing but
the bundle and (ideally) the log's published verifier key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.core import merkle, registry, tiles
from ledger.core.errors import LedgerError, MalformedInput, NotFound
from ledger.core.note import Checkpoint, NoteVerifier, split_note
from ledger.core.statements import prepare
from ledger.log import verifier
from ledger.log.cosigner import CosignatureVerifier
from ledger.log.sequencer import InclusionProof, Ledger
from ledger.store import pagedb

BUNDLE_VERSION = 1


def make_bundle(ledger: Ledger, seqs: Iterable[int]) -> dict[str, Any]:
    wanted = sorted(set(seqs))
    if not wanted:
        raise MalformedInput("name at least one seq to bundle")
    from ledger.log.witnesses import cosigned_note

    note = cosigned_note(ledger)  # with the witnesses' cosignatures gathered so far
    note_verifier = ledger.log_verifier()  # the pinned key
    cp = Checkpoint.parse(note_verifier.verify(note))
    for s in wanted:
        if not 0 <= s < cp.size:
            raise NotFound(f"there is no entry at seq {s} (the ledger has {cp.size})")
    # The evidence: the genesis and the registry entries of every signer, as the
    # projections point to them (the verifier believes only what their bytes say).
    genesis = ledger.pinned_key().genesis
    with ledger.store.reading() as conn:
        raw = verifier.with_evidence(
            ledger.store.entries_by_seq(conn, [*wanted, 0]),
            parse=verifier.parse_entry,
            fetch=lambda ids: pagedb.evidence_entries(conn, ids),
            registrar=genesis.registrar if genesis else None,
        )
    raw = {s: b for s, b in raw.items() if s < cp.size}
    proofs = ledger.inclusion_proofs(raw, cp.size)
    return {
        "v": BUNDLE_VERSION,
        "logKey": note_verifier.vkey(),
        "checkpoint": note,
        "entries": [
            {
                "seq": s,
                "entry": base64.b64encode(raw[s]).decode(),
                "inclusionProof": proofs[s].as_dict(),
            }
            for s in sorted(raw)
        ],
        "requested": wanted,
    }


@dataclass
class BundleResult:
    checkpoint: Checkpoint | None = None
    verified: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    trusted_key: bool = True
    cosigned_by: list[str] = field(default_factory=list)
    quorum: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and self.checkpoint is not None and len(self.cosigned_by) >= self.quorum

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "treeSize": self.checkpoint.size if self.checkpoint else None,
            "origin": self.checkpoint.origin if self.checkpoint else None,
            "verified": self.verified,
            "logKeyFromBundle": not self.trusted_key,
            "cosignedBy": self.cosigned_by,
            "quorum": self.quorum,
            "problems": self.problems,
        }


def verify_bundle(
    doc: object, *, log_key: str | None = None, witness_keys: Sequence[str] = (), quorum: int = 0
) -> BundleResult:
    """Check every entry's inclusion and signatures against the bundle's checkpoint.

    Without ``log_key`` the bundle's own key is used and the result says so: that only
    proves internal consistency, not that this is the log you trust.
    """
    res = BundleResult(trusted_key=log_key is not None, quorum=quorum)
    if not isinstance(doc, dict) or doc.get("v") != BUNDLE_VERSION:
        res.problems.append("not a version 1 trace bundle")
        return res
    verifier_key = log_key or str(doc.get("logKey", ""))
    try:
        note_verifier = NoteVerifier.from_vkey(verifier_key)
        res.checkpoint = cp = Checkpoint.parse(note_verifier.verify(str(doc.get("checkpoint", ""))))
    except LedgerError as e:
        res.problems.append(f"checkpoint: {e.message}")
        return res
    for wk in witness_keys:
        try:
            w = CosignatureVerifier.from_vkey(wk)
            w.verify(str(doc.get("checkpoint", "")))
            res.cosigned_by.append(w.name)
        except LedgerError:
            continue
    if len(res.cosigned_by) < quorum:
        res.problems.append(
            f"checkpoint: cosigned by {len(res.cosigned_by)} of the "
            f"{len(witness_keys)} witnesses given; {quorum} are required"
        )
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        res.problems.append("the bundle has no entries")
        return res
    parsed: dict[int, verifier.ParsedEntry] = {}
    unusable: dict[int, str] = {}
    for item in raw_entries:
        seq = item.get("seq") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict) or type(seq) is not int or seq < 0:
                raise MalformedInput("an entry item is an object with a seq")
            if seq in parsed or seq in unusable:
                raise MalformedInput("the bundle holds this seq twice")
            raw = base64.b64decode(str(item.get("entry")), validate=True)
            proof = InclusionProof.from_dict(item.get("inclusionProof"))
            if proof.tree_size != cp.size or proof.leaf_index != seq:
                raise MalformedInput(
                    f"its proof is for leaf {proof.leaf_index} of size {proof.tree_size}, "
                    f"not seq {seq} of the checkpoint's size {cp.size}"
                )
            merkle.verify_inclusion(
                leaf=merkle.leaf_hash(raw),
                index=proof.leaf_index,
                size=proof.tree_size,
                proof=proof.hashes,
                root=cp.root,
            )
        except (LedgerError, binascii.Error) as e:
            msg = e.message if isinstance(e, LedgerError) else "entry is not base64"
            if type(seq) is int and seq >= 0:
                parsed.pop(seq, None)
                unusable[seq] = msg
            else:
                res.problems.append(f"seq {seq}: {msg}")
            continue
        parsed[seq] = verifier.parse_entry(raw)
    # Judged with the key the checkpoint verified with: the genesis must name that key.
    verdicts = verifier.verify_entries(parsed, log_key=verifier_key, unusable=unusable)
    res.problems.extend(verdicts.lines())
    res.verified = sorted(s for s in parsed if verdicts.ok(s))
    return res


_KEY_KINDS = (b'"kind":"genesis"', b'"kind":"party.register"', b'"kind":"party.key.rotate"')


def bundle_from_tiles(fetch: tiles.TileFetch, seqs: Iterable[int]) -> dict[str, Any]:
    """The trace bundle of ``seqs`` built from a tlog-tiles URL alone (a mirror, a CDN):
    the checkpoint as served, each entry from its bundle with its inclusion proof computed
    from the hash tiles, and the entries that introduced the keys their signatures use.
    Nothing is trusted here: ``verify_bundle`` checks all of it against the pinned key.

    A mirror has no index of keys, so those entries are found by reading the bundles up to
    the last seq asked (a key signs only after the entry that introduced it)."""
    wanted = sorted(set(seqs))
    if not wanted:
        raise MalformedInput("name at least one seq to verify")
    raw_note = fetch(tiles.CHECKPOINT_PATH)
    if raw_note is None:
        raise NotFound("the tiles URL serves no checkpoint")
    note = raw_note.decode("utf-8", "replace")
    cp = Checkpoint.parse(split_note(note)[0])  # its signature is verify_bundle's to check
    for s in wanted:
        if not 0 <= s < cp.size:
            raise NotFound(f"there is no entry at seq {s} (the checkpoint has {cp.size})")
    reader = tiles.TileReader(cp.size, fetch)
    raw = reader.entries(wanted)
    introduced: dict[str, int] = {}  # key id -> seq of the entry that introduced it
    for start in range(0, wanted[-1] + 1, tiles.TILE_WIDTH):
        got = reader.entries(range(start, min(start + tiles.TILE_WIDTH, wanted[-1] + 1)))
        for seq, entry in got.items():
            if any(k in entry for k in _KEY_KINDS):
                try:
                    p = prepare(orjson.loads(entry)["envelope"])
                except (LedgerError, orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # verify_bundle names it if it is one the bundle needs
                for kid in registry.embedded_keys(p):
                    introduced.setdefault(kid, seq)
    todo = list(raw)
    while todo:
        seq = todo.pop()
        try:
            sigs = orjson.loads(raw[seq])["envelope"]["signatures"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        for sig in sigs if isinstance(sigs, list) else ():
            intro = introduced.get(str(sig.get("key"))) if isinstance(sig, dict) else None
            if intro is not None and intro not in raw:
                raw.update(reader.entries([intro]))
                todo.append(intro)
    return {
        "v": BUNDLE_VERSION,
        "checkpoint": note,
        "entries": [
            {
                "seq": s,
                "entry": base64.b64encode(raw[s]).decode(),
                "inclusionProof": InclusionProof(s, cp.size, tuple(reader.inclusion_proof(s))).as_dict(),
            }
            for s in sorted(raw)
        ],
        "requested": wanted,
    }
