"""A monitor: follows a ledger's checkpoints and raises an alarm on a fork or a rollback.

It pins the log key on first contact, keeps the last verified (size, root) in a state file,
and accepts a new checkpoint only with a consistency proof from that size. Fetching is
injected, so the logic is pure and the CLI supplies HTTP. ``observe`` asks the ledger's own
API for proofs; ``observe_tiles`` computes them from a tlog-tiles mirror, with witnesses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.core import merkle, tiles
from ledger.core.errors import LedgerError, NotFound, ProofError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.log.cosigner import CosignatureVerifier
from ledger.log.sequencer import ConsistencyProof

Fetch = Callable[[str], str]
"""GET a path of the ledger (``/checkpoint``, ``/log-key``, ``/proof/...``) as text."""


@dataclass(frozen=True)
class Observation:
    ok: bool
    size: int
    previous: int | None
    alarm: str | None = None
    # From tiles (``observe_tiles``): the witnesses whose cosignature the checkpoint carries,
    # and why it was not followed yet when they are fewer than the quorum.
    cosigned_by: tuple[str, ...] | None = None
    waiting: str | None = None

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": self.ok,
            "size": self.size,
            "previous": self.previous,
            "alarm": self.alarm,
        }
        if self.cosigned_by is not None:
            doc.update(cosignedBy=list(self.cosigned_by), waiting=self.waiting)
        return doc


def observe(fetch: Fetch, state: Path, *, log_key: str | None = None) -> Observation:
    """One round: fetch the latest checkpoint, verify it against what was seen before."""
    doc: dict[str, Any] = json.loads(state.read_text()) if state.exists() else {}
    pinned = doc.get("logKey") or log_key or fetch("/log-key").strip()
    if log_key and doc.get("logKey") and log_key != doc["logKey"]:
        return Observation(
            False, 0, doc.get("size"), "the log key given differs from the one pinned in the state file"
        )
    verifier = NoteVerifier.from_vkey(pinned)
    note = fetch("/checkpoint")
    try:
        cp = Checkpoint.parse(verifier.verify(note))
    except LedgerError as e:
        return Observation(False, 0, doc.get("size"), f"checkpoint does not verify: {e.message}")
    prev_size = doc.get("size")
    if prev_size is not None:
        prev_root = base64.b64decode(doc["root"])
        if cp.size < prev_size:
            return Observation(
                False,
                cp.size,
                prev_size,
                f"ROLLBACK: the log now shows size {cp.size}, below the {prev_size} it showed before",
            )
        try:
            proof = ConsistencyProof.from_dict(json.loads(fetch(f"/proof/consistency/{prev_size}/{cp.size}")))
            if (proof.first, proof.second) != (prev_size, cp.size):
                raise ProofError("the proof is for other sizes")
            merkle.verify_consistency(
                first=prev_size, second=cp.size, first_root=prev_root, second_root=cp.root, proof=proof.hashes
            )
        except (LedgerError, ValueError) as e:
            msg = e.message if isinstance(e, LedgerError) else "unreadable proof"
            return Observation(
                False,
                cp.size,
                prev_size,
                f"FORK: checkpoint {cp.size} is not consistent with "
                f"checkpoint {prev_size} seen before ({msg})",
            )
    _save(state, doc, pinned, cp, note)
    return Observation(True, cp.size, prev_size)


def _save(state: Path, doc: dict[str, Any], pinned: str, cp: Checkpoint, note: str) -> None:
    doc.update(
        {
            "logKey": pinned,
            "origin": cp.origin,
            "size": cp.size,
            "root": base64.b64encode(cp.root).decode(),
            "checkpoint": note,
        }
    )
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(state)


def observe_tiles(
    fetch: tiles.TileFetch, state: Path, *, log_key: str, witness_keys: Sequence[str] = (), quorum: int = 0
) -> Observation:
    """One round from a tlog-tiles URL alone (a mirror, a CDN): no API, no database.

    The log key must be given: a mirror is not the log, so nothing it serves can vouch for
    the key. The checkpoint must verify with it; the tiles must hash to its root; its
    consistency with the last checkpoint followed is computed from the tiles. A checkpoint
    cosigned by fewer than ``quorum`` of ``witness_keys`` is checked all the same (a fork
    signed by the log is an alarm, witnessed or not) but not followed until it is.
    """
    doc: dict[str, Any] = json.loads(state.read_text()) if state.exists() else {}
    prev_size = doc.get("size")
    if doc.get("logKey") and log_key != doc["logKey"]:
        return Observation(
            False, 0, prev_size, "the log key given differs from the one pinned in the state file"
        )
    verifier = NoteVerifier.from_vkey(log_key)
    raw = fetch(tiles.CHECKPOINT_PATH)
    if raw is None:
        raise NotFound("the tiles URL serves no checkpoint")
    note = raw.decode("utf-8", "replace")
    try:
        cp = Checkpoint.parse(verifier.verify(note))
    except LedgerError as e:
        return Observation(False, 0, prev_size, f"checkpoint does not verify: {e.message}")
    cosigned = []
    for wk in witness_keys:
        w = CosignatureVerifier.from_vkey(wk)
        try:
            w.verify(note)
        except LedgerError:
            continue
        cosigned.append(w.name)
    reader = tiles.TileReader(cp.size, fetch)
    try:
        if reader.root() != cp.root:
            return Observation(
                False,
                cp.size,
                prev_size,
                f"the tiles do not hash to the root of checkpoint {cp.size}",
                tuple(cosigned),
            )
    except LedgerError as e:
        return Observation(
            False,
            cp.size,
            prev_size,
            f"the tiles of checkpoint {cp.size} cannot be read: {e.message}",
            tuple(cosigned),
        )
    if prev_size is not None:
        if cp.size < prev_size:
            return Observation(
                False,
                cp.size,
                prev_size,
                f"ROLLBACK: the log now shows size {cp.size}, below the {prev_size} it showed before",
                tuple(cosigned),
            )
        try:
            merkle.verify_consistency(
                first=prev_size,
                second=cp.size,
                first_root=base64.b64decode(doc["root"]),
                second_root=cp.root,
                proof=reader.consistency_proof(prev_size),
            )
        except LedgerError as e:
            return Observation(
                False,
                cp.size,
                prev_size,
                f"FORK: checkpoint {cp.size} is not consistent with "
                f"checkpoint {prev_size} seen before ({e.message})",
                tuple(cosigned),
            )
    if len(cosigned) < quorum:
        return Observation(
            True,
            cp.size,
            prev_size,
            None,
            tuple(cosigned),
            f"checkpoint {cp.size} is cosigned by {len(cosigned)} of the "
            f"{len(witness_keys)} witnesses given, {quorum} required: "
            "not followed until it is",
        )
    _save(state, doc, log_key, cp, note)
    return Observation(True, cp.size, prev_size, None, tuple(cosigned))
