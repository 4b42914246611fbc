"""Audit: re-derive everything the ledger claims from its entries, in constant memory.

Every entry's bytes, leaf hash, statement hash and ``prev`` link (all of them, never only
the ends), every signature against the key valid at that seq, every stored Merkle node,
every checkpoint's signature and root, and consistency between consecutive checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ledger.compliance import findings
from ledger.compliance.findings_batch import MAX_CONTAINER_DEPTH
from ledger.core import merkle, registry
from ledger.core.errors import DamagedStore, LedgerError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.core.signatures import verify_chunk, verify_pool
from ledger.core.statements import entry_bytes, prepare
from ledger.epcis import bodies
from ledger.epcis.projection import TraceBatch
from ledger.epcis.stages import classify, event_codes
from ledger.log import sigproc, verifier
from ledger.log.projector import Rebuild
from ledger.log.sequencer import ZERO_HASH
from ledger.store import shadow, tracedb
from ledger.store.db import Store
from ledger.store.schema import PROJECTION_TABLES

PAGE = 2000
VERIFY_CHUNK = 256
MAX_INFLIGHT = 8
STREAM_WAIT_MIN = 10_000  # entries from which the audit waits for the signature helper to start

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
    # Whether the projections were checked against a rebuild from the entries (False for
    # ``audit(..., projections=False)``, ``suyuan audit --log-only``).
    projections: bool = True

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
            "projectionsChecked": self.projections,
            "problems": [p.as_dict() for p in self.problems],
        }


class _Auditor:
    def __init__(
        self, store: Store, progress: Progress | None, log_key: str | None, *, projections: bool = True
    ) -> None:
        self.store = store
        self.progress = progress
        self.report = AuditReport(projections=projections)
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
        # Signature checks in flight, oldest first: each a thread's future, or None when
        # it went to the helper process (its answer is the stream's next).
        self.inflight: deque[tuple[Future[list[int]] | None, list[tuple[int, str, str]]]] = deque()
        self.stream: sigproc.Checks | None = None
        self.conn: Connection | None = None
        self.committing: list[tuple[int, str]] = []  # (seq, commitment) not yet checked
        self.derived: dict[int, _Derived | None] = {}

    def problem(self, message: str, *, seq: int | None = None, checkpoint: int | None = None) -> None:
        self.report.problems.append(Problem(message, seq, checkpoint))

    def damaged(self, e: DamagedStore) -> None:
        """A row of another type than the ledger wrote, reported where it is; the streams
        go on past it."""
        self.problem(e.detail, seq=e.seq, checkpoint=e.checkpoint)

    def run(self) -> AuditReport:
        # The projections are re-derived beside the checks: in a process of its own for a
        # big ledger (both are mostly Python), on its own snapshot, which is consistent in
        # itself (its entries and projections), and judged only for a log found sound.
        with self.store.reading(single=True) as conn:
            head = self.store.head(conn)
        apart = (
            _Apart(self.store.engine.url.render_as_string(hide_password=False))
            if self.report.projections and head is not None and head.size >= REDERIVE_APART_MIN
            else None
        )
        # Without the re-derivation's process beside it, the checks go to the signature
        # helper: the verify threads would wait for this thread's GIL after every check.
        self.stream = (
            sigproc.Checks.open(wait=head.size >= STREAM_WAIT_MIN)
            if apart is None and head is not None and head.size >= sigproc.MIN_JOBS
            else None
        )
        try:
            with self.store.reading(snapshot=True) as conn:
                self.conn = conn
                total = self.store.count_entries(conn)
                entries = self.store.stream_entries(conn, page=PAGE, damaged=self.damaged)
                leaves = self.store.stream_level(conn, 0, damaged=self.damaged)
                cps = self.store.stream_checkpoints(conn, damaged=self.damaged)
                self._entries(total, entries, leaves, cps)
                self._nodes(conn)
                self._consistency(conn)
            if self.report.ok and self.report.projections:
                found = apart.result() if apart is not None else None
                self._projections(rederive(self.store) if found is None else found)
        finally:
            if apart is not None:
                apart.stop()
            if self.stream is not None:
                self.stream.close()
        # Signature results arrive asynchronously: report in log order.
        self.report.problems.sort(key=_position)
        return self.report

    # -- entries, chain, signatures, checkpoints ---------------------------------------

    def _entries(
        self,
        total: int,
        entries: Iterator[tuple[int, bytes, bytes, bytes]],
        leaves: Iterator[tuple[int, bytes]],
        cps: Iterator[tuple[int, bytes, str]],
    ) -> None:
        expected = 0
        prev = ZERO_HASH
        next_cp = next(cps, None)
        jobs: list[tuple[int, bytes, bytes, bytes]] = []
        who: list[tuple[int, str, str]] = []
        stored_leaf = next(leaves, None)
        for seq, leaf_col, sh_col, raw in entries:
            if seq != expected:
                self.problem(
                    f"missing: the log jumps from seq {expected - 1} to {seq}"
                    if expected
                    else f"missing: the log starts at seq {seq}",
                    seq=expected,
                )
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
            if len(self.committing) >= PAGE:
                self._commitments()
            if self.progress and self.report.entries % PAGE == 0:
                self.progress(self.report.entries, total)
        self._flush(jobs, who, wait=True)
        self._commitments()
        if self.progress:
            self.progress(self.report.entries, total)
        while next_cp is not None:
            self.problem(
                f"covers {next_cp[0]} entries but the log has {self.frontier.size}; "
                f"seq {self.frontier.size} onward is missing",
                checkpoint=next_cp[0],
            )
            next_cp = next(cps, None)
        if self.report.entries == 0:
            self.problem("the ledger is empty: no genesis entry")

    def _entry(
        self,
        seq: int,
        raw: bytes,
        prev: bytes,
        leaf: bytes,
        sh_col: bytes,
        jobs: list[tuple[int, bytes, bytes, bytes]],
        who: list[tuple[int, str, str]],
    ) -> None:
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
            bodies.check_body(p)
        except LedgerError as e:
            self.problem(f"statement is malformed: {e.message}", seq=seq)
            return
        if not isinstance(doc["time"], str) or raw != entry_bytes(
            seq=doc["seq"] if type(doc["seq"]) is int else seq,
            prev=bytes.fromhex(doc["prev"])
            if isinstance(doc["prev"], str) and len(doc["prev"]) == 64
            else prev,
            time=str(doc["time"]),
            envelope_bytes=p.envelope_bytes,
        ):
            self.problem("entry bytes are not canonical JSON", seq=seq)
        if p.statement_hash != sh_col:
            self.problem("stored statement hash does not match the statement", seq=seq)
        commitment = p.statement.get("private")
        if isinstance(commitment, str):
            self.committing.append((seq, commitment))
        if p.kind != "event":
            # As the append path does, a registry statement's signatures are checked before
            # it may change who signs with which key; such statements are few.
            here = [
                (n, p.signed_message, s.sig, pk)
                for n, (s, pk) in enumerate(
                    zip(p.signatures, registry.signing_keys(p, self.reg), strict=True)
                )
                if pk is not None
            ]
            self.report.signatures += len(here)
            bad = verify_chunk(here)
            for n in bad:
                s = p.signatures[n]
                self.problem(f"signature by {s.signer} with key {s.key} does not verify", seq=seq)
            if bad:
                return
        j = self.replay.feed(seq, p, time=str(doc["time"]), recalls=_EntryFacts(self, seq))
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

    def _commitments(self) -> None:
        """Each statement's private commitment against the statement that owns it (the first
        that committed to it, by the private_commitments projection, read once per page): a
        later one reused it (``private_reused``), and the owner named must be an entry that
        commits to it."""
        pending, self.committing = self.committing, []
        if not pending or self.conn is None:
            return
        owners = self.store.commitment_owners(self.conn, [c for _, c in pending])
        earlier = {o for seq, c in pending if (o := owners.get(c)) is not None and o < seq}
        raw = self.store.entries_by_seq(self.conn, earlier) if earlier else {}
        for seq, c in pending:
            owner = owners.get(c)
            if owner == seq:
                continue
            if owner is not None and owner < seq and owner in raw and _commits_to(raw[owner], c):
                self.problem(
                    f"private_reused: commits to private data {c[:19]}… of the statement at seq {owner}",
                    seq=seq,
                )
            else:
                self.problem(
                    f"the private_commitments projection names "
                    f"{'no statement' if owner is None else f'seq {owner}'} as the "
                    f"owner of its private data {c[:19]}…; `suyuan reindex` rebuilds it",
                    seq=seq,
                )

    def _flush(
        self,
        jobs: list[tuple[int, bytes, bytes, bytes]],
        who: list[tuple[int, str, str]],
        *,
        wait: bool = False,
    ) -> None:
        """Hand the collected signature checks to the verify threads and go on reading;
        at most a few chunks are in flight, so memory stays bounded."""
        if jobs:
            future = None
            if self.stream is not None:
                self.stream.send(jobs)
            else:
                future = verify_pool().submit(verify_chunk, list(jobs))
            self.inflight.append((future, list(who)))
            self.report.signatures += len(jobs)
            jobs.clear()
            who.clear()
        while self.inflight and (
            wait
            or len(self.inflight) > MAX_INFLIGHT
            or (self.inflight[0][0] is not None and self.inflight[0][0].done())
        ):
            future, owners = self.inflight.popleft()
            bad = future.result() if future is not None else self._streamed()
            for n in bad:
                seq, signer, kid = owners[n]
                self.problem(f"signature by {signer} with key {kid} does not verify", seq=seq)

    def _streamed(self) -> list[int]:
        assert self.stream is not None
        return self.stream.next_bad()

    def _checkpoint(self, size: int, root: bytes, note: str) -> None:
        self.report.checkpoints += 1
        if size != self.frontier.size:
            self.problem("checkpoint size does not fall on the log", checkpoint=size)
            return
        want = self.frontier.root()
        if root != want:
            self.problem("stored root does not match the root of the entries", checkpoint=size)
        if self.verifier is None:
            self.problem("no log key to verify the checkpoint with (no valid genesis)", checkpoint=size)
            return
        try:
            cp = Checkpoint.parse(self.verifier.verify(note))
        except LedgerError as e:
            self.problem(f"signature does not verify with the log key: {e.message}", checkpoint=size)
            return
        if cp.size != size or cp.root != want or cp.origin != self.reg.origin:
            self.problem("signed note does not state this size, root and origin", checkpoint=size)

    # -- projections --------------------------------------------------------------------

    def _projections(self, found: list[shadow.Difference] | str) -> None:
        """Name each projection table that differs from a rebuild from the entries, at the
        first seq where it does (see ``rederive``)."""
        if isinstance(found, str):
            self.problem(f"the projections could not be rebuilt from the entries: {found}")
            return
        for d in found:
            self.problem(
                f"the {d.table} projection does not match a rebuild from the "
                "entries; `suyuan reindex` rebuilds it",
                seq=d.seq,
            )

    # -- stored tree and checkpoint consistency ------------------------------------------

    def _nodes(self, conn: Any) -> None:
        size = self.frontier.size
        top = self.store.max_level(conn)
        for level in range(1, max(top, size.bit_length() - 1) + 1):
            # Each level's damage is reported once, when it is read as the parents.
            children = self.store.stream_level(conn, level - 1, damaged=_already_reported)
            want_count = size >> level
            seen = 0
            for idx, h in self.store.stream_level(conn, level, damaged=self.damaged):
                if idx >= want_count:
                    self.problem(f"Merkle node ({level}, {idx}) lies beyond the log's {size} entries")
                    continue
                left = next(children, None)
                while left is not None and left[0] < 2 * idx:
                    left = next(children, None)
                right = next(children, None)
                if left is None or right is None or left[0] != 2 * idx or right[0] != 2 * idx + 1:
                    self.problem(f"Merkle node ({level}, {idx}) is missing a child", seq=idx << level)
                elif merkle.node_hash(left[1], right[1]) != h:
                    self.problem(
                        f"Merkle node ({level}, {idx}) does not match its children", seq=idx << level
                    )
                seen += 1
                self.report.nodes += 1
            if seen < want_count:
                self.problem(f"{want_count - seen} Merkle node(s) of level {level} are missing")

    def _consistency(self, conn: Any) -> None:
        def fetch(ids: Any) -> Any:
            return self.store.fetch_nodes(conn, ids)

        prev: tuple[int, bytes] | None = None
        for size, root, _note in self.store.stream_checkpoints(conn, damaged=_already_reported):
            if prev is not None and size <= self.frontier.size:
                try:
                    proof = merkle.consistency_proof(prev[0], size, fetch)
                    merkle.verify_consistency(
                        first=prev[0], second=size, first_root=prev[1], second_root=root, proof=proof
                    )
                except LedgerError as e:
                    self.problem(f"not consistent with checkpoint {prev[0]}: {e.message}", checkpoint=size)
            prev = (size, root)


def _already_reported(e: DamagedStore) -> None:
    return None


def _commits_to(raw: bytes, commitment: str) -> bool:
    try:
        return bool(orjson.loads(raw)["envelope"]["statement"].get("private") == commitment)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return False


@dataclass(frozen=True)
class _Derived:
    """What one earlier event entry itself says: its lot edges, packings and marks."""

    lots: frozenset[tuple[str, str]]  # (lot, item)
    packed: frozenset[tuple[str, str]]  # (child, container)
    recalled: frozenset[str]


class _EntryFacts:
    """What the ledger held before ``before``, for judging a negative-listed party's event
    (``ledger.compliance.recalls``): the projections only say which earlier entries to read (recall
    marks, lot edges, packings), and a fact counts only if that entry, read and derived
    again here, says it. Asked only for listed parties' events, so point reads are fine."""

    def __init__(self, auditor: _Auditor, before: int) -> None:
        self.a, self.before = auditor, before

    def _derived(self, seq: int) -> _Derived | None:
        if seq not in self.a.derived:
            self.a.derived[seq] = self._derive(seq)
        return self.a.derived[seq]

    def _derive(self, seq: int) -> _Derived | None:
        assert self.a.conn is not None
        row = self.a.store.entry(self.a.conn, seq)
        try:
            doc = orjson.loads(row[1]) if row else None
            if doc is None:
                return None
            p = prepare(doc["envelope"])
            party = self.a.reg.parties.get(p.signer)
            if p.kind != "event" or party is None:
                return None
            codes = event_codes(p.body)
            classified = classify(p.body, signer_roles=party.roles)
        except (LedgerError, orjson.JSONDecodeError, KeyError, TypeError):
            return None
        trace = TraceBatch()
        trace.add_event(seq=seq, signer=p.signer, body=p.body, classified=classified, codes=codes)
        marks = findings.marks_set(
            findings.Subject(
                seq=seq,
                signer=p.signer,
                issued=str(p.statement["issued"]),
                appended=str(doc["time"]),
                body=p.body,
                codes=codes,
                classified=classified,
            )
        )
        return _Derived(
            lots=frozenset((src, dst) for src, dst, _, kind, _, _ in trace.lineage if kind == "lot"),
            packed=frozenset((r[0], r[1]) for op, r in trace.containment if op == "add"),
            recalled=frozenset(marks.get("recalled", ())),
        )

    def recalled(self, code: str) -> tuple[int, str] | None:
        assert self.a.conn is not None
        m = tracedb.first_recall(self.a.conn, code, before=self.before)
        d = self._derived(m.seq) if m else None
        return m if d is not None and code in d.recalled else None

    def lots(self, code: str) -> frozenset[str]:
        assert self.a.conn is not None
        return frozenset(
            lot
            for lot, seq in tracedb.lot_edges_to(self.a.conn, code, before=self.before)
            if (d := self._derived(seq)) is not None and (lot, code) in d.lots
        )

    def containers(self, code: str) -> frozenset[str]:
        assert self.a.conn is not None
        seen: set[str] = set()
        frontier = {code}
        for _ in range(MAX_CONTAINER_DEPTH):
            nxt = {
                parent
                for child in frontier
                for parent, seq in tracedb.packings_of(self.a.conn, child, before=self.before)
                if (d := self._derived(seq)) is not None and (child, parent) in d.packed
            }
            nxt -= seen | {code}
            if not nxt:
                break
            seen |= nxt
            frontier = nxt
        return frozenset(seen)


def _position(p: Problem) -> float:
    if p.seq is not None:
        return p.seq
    if p.checkpoint is not None:
        return p.checkpoint - 0.5  # after the entries it covers
    return float("inf")


REDERIVE_APART_MIN = 20_000  # entries from which the re-derivation runs in a process


def rederive(store: Store) -> list[shadow.Difference] | str:
    """Every projection table whose rows differ from those the projector derives from the
    entries (the one the append path runs, into temporary tables on one connection and
    snapshot), with the first seq where they part; or why they could not be derived."""
    tables = PROJECTION_TABLES
    # A connection of its own to the primary, never a request's pinned read-only snapshot
    # (or a replica's): it writes temporary tables, which must not outlive it.
    with store.engine.connect() as plain:
        conn = (
            plain.execution_options(isolation_level="REPEATABLE READ")
            if store.dialect == "postgresql"
            else plain
        )
        with conn.begin():
            return _rederive_on(store, conn, tables)


def _rederive_on(store: Store, conn: Connection, tables: Sequence[str]) -> list[shadow.Difference] | str:
    """``rederive`` on ``conn``, inside its transaction."""
    stored = shadow.live_schema(conn)
    shadow.create_temp(conn, tables)
    try:
        rebuild = Rebuild(store, conn)
        for seq, _, _, raw in store.stream_entries(conn, page=PAGE):
            entry = orjson.loads(raw)
            p = prepare(entry["envelope"])
            rebuild.feed(seq, entry["time"], p, event_codes(p.body) if p.kind == "event" else None)
        rebuild.flush()
        return shadow.first_differences(conn, tables, stored=stored, derived=shadow.temp_schema(conn))
    except (LedgerError, KeyError, ValueError, TypeError, orjson.JSONDecodeError) as e:
        return str(e)
    finally:
        shadow.drop_temp(conn, tables)


def rederive_main() -> None:
    """``rederive`` in a process of its own: the store's URL in ``SUYUAN_DB`` (not in the
    process list), the differences as JSON on stdout."""
    store = Store(os.environ["SUYUAN_DB"])
    try:
        found = rederive(store)
    finally:
        store.dispose()
    sys.stdout.write(
        json.dumps(
            {"error": found} if isinstance(found, str) else {"differences": [[d.table, d.seq] for d in found]}
        )
    )


class _Apart:
    """``rederive`` running in a child interpreter beside the audit's own checks (both are
    mostly Python, and a second core is there). The child imports this module by name, so
    it needs nothing of the caller's ``__main__``; if it cannot run, ``result`` is None and
    the audit re-derives in its own process."""

    def __init__(self, url: str) -> None:
        self.proc: subprocess.Popen[str] | None = None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"import {__name__} as m; m.rederive_main()"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "SUYUAN_DB": url},
            )
        except OSError:
            self.proc = None

    def result(self) -> list[shadow.Difference] | str | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        out, _ = proc.communicate()
        if proc.returncode != 0:
            return None
        try:
            doc = json.loads(out)
        except json.JSONDecodeError:
            return None
        if "error" in doc:
            return str(doc["error"])
        return [shadow.Difference(str(t), int(q)) for t, q in doc["differences"]]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()  # reaps it and closes its pipes


def audit(
    store: Store,
    *,
    progress: Progress | None = None,
    log_key: str | None = None,
    projections: bool = True,
) -> AuditReport:
    """Audit the whole ledger; ``progress(done, total)`` is called as entries are read.
    With ``log_key`` (the published one) checkpoints are verified with it and the genesis
    must name it; else with the key the genesis names. With ``projections=False`` the log
    alone is checked (entries, chain, signatures and the registry's key rules, tree,
    checkpoints), not the projection tables the page and the API read."""
    return _Auditor(store, progress, log_key, projections=projections).run()
