"""A monitor: follows a ledger's checkpoints and raises an alarm on a fork or a rollback.

It pins the log key on first contact, keeps the last verified (size, root) in a state file,
and accepts a new checkpoint only with a consistency proof from that size. Fetching is
injected, so the logic is pure and the CLI supplies HTTP.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import merkle
from ledger.errors import LedgerError, ProofError
from ledger.log import ConsistencyProof
from ledger.note import Checkpoint, NoteVerifier

Fetch = Callable[[str], str]
"""GET a path of the ledger (``/checkpoint``, ``/log-key``, ``/proof/...``) as text."""


@dataclass(frozen=True)
class Observation:
    ok: bool
    size: int
    previous: int | None
    alarm: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "previous": self.previous,
                "alarm": self.alarm}


def observe(fetch: Fetch, state: Path, *, log_key: str | None = None) -> Observation:
    """One round: fetch the latest checkpoint, verify it against what was seen before."""
    doc: dict[str, Any] = json.loads(state.read_text()) if state.exists() else {}
    pinned = doc.get("logKey") or log_key or fetch("/log-key").strip()
    if log_key and doc.get("logKey") and log_key != doc["logKey"]:
        return Observation(False, 0, doc.get("size"),
                           "the log key given differs from the one pinned in the state file")
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
            return Observation(False, cp.size, prev_size,
                               f"ROLLBACK: the log now shows size {cp.size}, "
                               f"below the {prev_size} it showed before")
        try:
            proof = ConsistencyProof.from_dict(json.loads(
                fetch(f"/proof/consistency/{prev_size}/{cp.size}")))
            if (proof.first, proof.second) != (prev_size, cp.size):
                raise ProofError("the proof is for other sizes")
            merkle.verify_consistency(first=prev_size, second=cp.size, first_root=prev_root,
                                      second_root=cp.root, proof=proof.hashes)
        except (LedgerError, ValueError) as e:
            msg = e.message if isinstance(e, LedgerError) else "unreadable proof"
            return Observation(False, cp.size, prev_size,
                               f"FORK: checkpoint {cp.size} is not consistent with "
                               f"checkpoint {prev_size} seen before ({msg})")
    doc.update({"logKey": pinned, "origin": cp.origin, "size": cp.size,
                "root": base64.b64encode(cp.root).decode(), "checkpoint": note})
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(state)
    return Observation(True, cp.size, prev_size)
