"""Audit: re-derive everything the ledger claims from its entries, in constant memory.

Every entry's bytes, leaf hash, statement hash and ``prev`` link (all of them, never only
the ends), every signature against the key valid at that seq, every stored Merkle node,
every checkpoint's signature and root, and consistency between consecutive checkpoints.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger import merkle, registry, verifier
from ledger.errors import LedgerError
from ledger.log import ZERO_HASH
from ledger.note import Checkpoint, NoteVerifier
from ledger.statements import entry_bytes, prepare
from ledger.store.db import Store
from ledger.verify import verify_chunk, verify_pool

PAGE = 2000
VERIFY_CHUNK = 256
MAX_INFLIGHT = 8

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    message: str
    seq: int | None = None
    checkpoint: int | None = None

    def line(self) -> str:
        if self.seq is not None:
            return f"seq {self.seq}: {self.message}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}: {self.message}"
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "checkpoint": self.checkpoint, "problem": self.message}


@dataclass
class AuditReport:
    entries: int = 0
    checkpoints: int = 0
    nodes: int = 0
    signatures: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "nodes": self.nodes,
            "signatures": self.signatures,
            "problems": [p.as_dict() for p in self.problems],
        }


class _Auditor:
    def __init__(self, store: Store, progress: Progress | None, log_key: str | None) -> None:
        self.store = store
        self.progress = progress
        self.report = AuditReport()
        # The registry's rules, replayed from every entry by the one verifier the page,
        # bundles and the scope audit use (with a published key, the genesis must name it).
        self.replay = verifier.RegistryReplay(log_key=log_key)
        self.reg = self.replay.state
        self.frontier = merkle.Frontier.empty()
        self.log_key = log_key
        self.verifier: NoteVerifier | None = None
        if log_key is not None:
            try:
                self.verifier = NoteVerifier.from_vkey(log_key)
            except LedgerError as e:
                self.problem(f"the published log key is unusable: {e.message}")
        self.inflight: deque[tuple[Future[list[int]], list[tuple[int, str, str]]]] = deque()

    def problem(self, message: str, *, seq: int | None = None, checkpoint: int | None = None) -> None:
        self.report.problems.append(Problem(message, seq, checkpoint))

    def run(self) -> AuditReport:
        with self.store.reading(snapshot=True) as conn:
            total = self.store.count_entries(conn)
            entries = self.store.stream_entries(conn, page=PAGE)
            leaves = self.store.stream_level(conn, 0)
            cps = self.store.stream_checkpoints(conn)
            self._entries(total, entries, leaves, cps)
            self._nodes(conn)
            self._consistency(conn)
        # Signature results arrive asynchronously: report in log order.
        self.report.problems.sort(key=_position)
        return self.report

    # -- entries, chain, signatures, checkpoints ---------------------------------------

    def _entries(self, total: int, entries: Iterator[tuple[int, bytes, bytes, bytes]],
                 leaves: Iterator[tuple[int, bytes]],
                 cps: Iterator[tuple[int, bytes, str]]) -> None:
        expected = 0
        prev = ZERO_HASH
        next_cp = next(cps, None)
        jobs: list[tuple[int, bytes, bytes, bytes]] = []
        who: list[tuple[int, str, str]] = []
        stored_leaf = next(leaves, None)
        for seq, leaf_col, sh_col, raw in entries:
            if seq != expected:
                self.problem(f"missing: the log jumps from seq {expected - 1} to {seq}"
                             if expected else f"missing: the log starts at seq {seq}",
                             seq=expected)
                # Later links are judged against what is there, so one gap is one problem.
                expected = seq
            leaf = merkle.leaf_hash(raw)
            if leaf != leaf_col:
                self.problem("entry bytes do not match the stored leaf hash", seq=seq)
            while stored_leaf is not None and stored_leaf[0] < seq:
                self.problem("Merkle leaf node has no entry", seq=stored_leaf[0])
                stored_leaf = next(leaves, None)
            if stored_leaf is None or stored_leaf[0] != seq:
                self.problem("no Merkle leaf node for this entry", seq=seq)
            else:
                if stored_leaf[1] != leaf:
                    self.problem("Merkle leaf node does not match the entry bytes", seq=seq)
                self.report.nodes += 1
                stored_leaf = next(leaves, None)
            self._entry(seq, raw, prev, leaf, sh_col, jobs, who)
            # Judge the next link against this entry as stored, so a damaged entry is
            # reported once, at its own seq, not again at its successor.
            prev = leaf if leaf == leaf_col else leaf_col
            self.frontier.append(leaf_col if leaf != leaf_col else leaf)
            expected = seq + 1
            self.report.entries += 1
            while next_cp is not None and next_cp[0] <= self.frontier.size:
                self._checkpoint(*next_cp)
                next_cp = next(cps, None)
            if len(jobs) >= VERIFY_CHUNK:
                self._flush(jobs, who)
            if self.progress and self.report.entries % PAGE == 0:
                self.progress(self.report.entries, total)
        self._flush(jobs, who, wait=True)
        if self.progress:
            self.progress(self.report.entries, total)
        while next_cp is not None:
            self.problem(f"covers {next_cp[0]} entries but the log has {self.frontier.size}; "
                         f"seq {self.frontier.size} onward is missing", checkpoint=next_cp[0])
            next_cp = next(cps, None)
        if self.report.entries == 0:
            self.problem("the ledger is empty: no genesis entry")

    def _entry(self, seq: int, raw: bytes, prev: bytes, leaf: bytes, sh_col: bytes,
               jobs: list[tuple[int, bytes, bytes, bytes]], who: list[tuple[int, str, str]]) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.problem("entry bytes are not JSON", seq=seq)
            return
        if not isinstance(doc, dict) or doc.keys() != {"v", "seq", "prev", "time", "envelope"}:
            self.problem("entry is not {v, seq, prev, time, envelope}", seq=seq)
            return
        if doc["seq"] != seq:
            self.problem(f"entry says seq {doc['seq']} but is stored at seq {seq}", seq=seq)
        if doc["prev"] != prev.hex():
            self.problem("prev link broken", seq=seq)
        try:
            p = prepare(doc["envelope"])
            registry.check_body(p)
        except LedgerError as e:
            self.problem(f"statement is malformed: {e.message}", seq=seq)
            return
        if not isinstance(doc["time"], str) or raw != entry_bytes(
            seq=doc["seq"] if type(doc["seq"]) is int else seq, prev=bytes.fromhex(doc["prev"])
            if isinstance(doc["prev"], str) and len(doc["prev"]) == 64 else prev,
            time=str(doc["time"]), envelope_bytes=p.envelope_bytes,
        ):
            self.problem("entry bytes are not canonical JSON", seq=seq)
        if p.statement_hash != sh_col:
            self.problem("stored statement hash does not match the statement", seq=seq)
        if p.kind != "event":
            # As the append path does, a registry statement's signatures are checked before
            # it may change who signs with which key; such statements are few.
            here = [(n, p.signed_message, s.sig, pk) for n, (s, pk) in
                    enumerate(zip(p.signatures, registry.signing_keys(p, self.reg), strict=True))
                    if pk is not None]
            self.report.signatures += len(here)
            bad = verify_chunk(here)
            for n in bad:
                s = p.signatures[n]
                self.problem(f"signature by {s.signer} with key {s.key} does not verify", seq=seq)
            if bad:
                return
        j = self.replay.feed(seq, p)
        if j.problem is not None:
            self.problem(j.problem, seq=seq)
        if p.kind == "genesis" and self.log_key is None and self.reg.log_key:
            try:
                self.verifier = NoteVerifier.from_vkey(self.reg.log_key)
            except LedgerError as e:
                self.problem(f"genesis log key is unusable: {e.message}", seq=seq)
        if p.kind == "event":
            for c in j.checks:
                who.append((seq, c.signer, c.key_id))
                jobs.append((len(jobs), c.message, c.sig, c.public_key))

    def _flush(self, jobs: list[tuple[int, bytes, bytes, bytes]],
               who: list[tuple[int, str, str]], *, wait: bool = False) -> None:
        """Hand the collected signature checks to the verify threads and go on reading;
        at most a few chunks are in flight, so memory stays bounded."""
        if jobs:
            future = verify_pool().submit(verify_chunk, list(jobs))
            self.inflight.append((future, list(who)))
            self.report.signatures += len(jobs)
            jobs.clear()
            who.clear()
        while self.inflight and (wait or len(self.inflight) > MAX_INFLIGHT
                                 or self.inflight[0][0].done()):
            future, owners = self.inflight.popleft()
            for n in future.result():
                seq, signer, kid = owners[n]
                self.problem(f"signature by {signer} with key {kid} does not verify", seq=seq)

    def _checkpoint(self, size: int, root: bytes, note: str) -> None:
        self.report.checkpoints += 1
        if size != self.frontier.size:
            self.problem("checkpoint size does not fall on the log", checkpoint=size)
            return
        want = self.frontier.root()
        if root != want:
            self.problem("stored root does not match the root of the entries", checkpoint=size)
        if self.verifier is None:
            self.problem("no log key to verify the checkpoint with (no valid genesis)",
                         checkpoint=size)
            return
        try:
            cp = Checkpoint.parse(self.verifier.verify(note))
        except LedgerError as e:
            self.problem(f"signature does not verify with the log key: {e.message}",
                         checkpoint=size)
            return
        if cp.size != size or cp.root != want or cp.origin != self.reg.origin:
            self.problem("signed note does not state this size, root and origin",
                         checkpoint=size)

    # -- stored tree and checkpoint consistency ------------------------------------------

    def _nodes(self, conn: Any) -> None:
        size = self.frontier.size
        top = self.store.max_level(conn)
        for level in range(1, max(top, size.bit_length() - 1) + 1):
            children = self.store.stream_level(conn, level - 1)
            want_count = size >> level
            seen = 0
            for idx, h in self.store.stream_level(conn, level):
                if idx >= want_count:
                    self.problem(f"Merkle node ({level}, {idx}) lies beyond the log's "
                                 f"{size} entries")
                    continue
                left = next(children, None)
                while left is not None and left[0] < 2 * idx:
                    left = next(children, None)
                right = next(children, None)
                if left is None or right is None or left[0] != 2 * idx or right[0] != 2 * idx + 1:
                    self.problem(f"Merkle node ({level}, {idx}) is missing a child",
                                 seq=idx << level)
                elif merkle.node_hash(left[1], right[1]) != h:
                    self.problem(f"Merkle node ({level}, {idx}) does not match its children",
                                 seq=idx << level)
                seen += 1
                self.report.nodes += 1
            if seen < want_count:
                self.problem(f"{want_count - seen} Merkle node(s) of level {level} are missing")

    def _consistency(self, conn: Any) -> None:
        def fetch(ids: Any) -> Any:
            return self.store.fetch_nodes(conn, ids)

        prev: tuple[int, bytes] | None = None
        for size, root, _note in self.store.stream_checkpoints(conn):
            if prev is not None and size <= self.frontier.size:
                try:
                    proof = merkle.consistency_proof(prev[0], size, fetch)
                    merkle.verify_consistency(first=prev[0], second=size, first_root=prev[1],
                                              second_root=root, proof=proof)
                except LedgerError as e:
                    self.problem(f"not consistent with checkpoint {prev[0]}: {e.message}",
                                 checkpoint=size)
            prev = (size, root)


def _position(p: Problem) -> float:
    if p.seq is not None:
        return p.seq
    if p.checkpoint is not None:
        return p.checkpoint - 0.5  # after the entries it covers
    return float("inf")


def audit(store: Store, *, progress: Progress | None = None,
          log_key: str | None = None) -> AuditReport:
    """Audit the whole ledger; ``progress(done, total)`` is called as entries are read.
    With ``log_key`` (the published one) checkpoints are verified with it and the genesis
    must name it; else with the key the genesis names."""
    return _Auditor(store, progress, log_key).run()
