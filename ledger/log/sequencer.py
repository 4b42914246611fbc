"""The log: the sequencer that appends signed statements, and the proofs it can give.

``append_batch`` is the only writer. It checks everything that needs no lock first
(shape, canonical bytes, every signature, in parallel) and lets the projections prepare
what they can (``ledger.log.projector``); then under the sequencer lock it has the projector
check each statement at its seq (a refusal, or the entry it repeats) and apply it, chains
and hashes the entries, extends the Merkle tree, signs a checkpoint consistent with the
last one, has the projector write its rows, and commits all of it in one transaction — or
nothing. It names no projection.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ledger.core import canonical, merkle, registry
from ledger.core.errors import (
    BatchRejected,
    ConfigError,
    LedgerError,
    MalformedInput,
    NotAuthentic,
    NotFound,
    ProofError,
)
from ledger.core.note import Checkpoint, NoteSigner, NoteVerifier
from ledger.core.private import Viewer, check_view, commitment_of, entitled
from ledger.core.signatures import PARALLEL_VERIFY_MIN, VERIFY_CHUNK, verify_chunk, verify_pool
from ledger.core.signatures import verify_many as verify_many  # callers import it from here
from ledger.core.statements import Prepared, entry_bytes, ledger_time, prepare
from ledger.core.times import utc_text
from ledger.core.tokens import check_token, read_token
from ledger.epcis import bodies
from ledger.epcis.event_hash import Captured, CaptureKey
from ledger.epcis.stages import STAGES, EventCodes
from ledger.log import admission, offload, sigproc
from ledger.log.projector import Facts, Pending, Projector
from ledger.log.verifier import Genesis, PinnedKey, pin_log_key, read_genesis
from ledger.log.verifier import event_facts as event_facts  # reindex imports it from here
from ledger.store import tracedb
from ledger.store.db import CheckpointRow, EntryRow, NodeRow, Store
from ledger.store.schema import NODE_LEVEL_SHIFT, node_key

ZERO_HASH = bytes(32)
MAX_PAGE = 1000  # entries in one page of a listing


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "leafIndex": self.leaf_index,
            "treeSize": self.tree_size,
            "hashes": [h.hex() for h in self.hashes],
        }

    @classmethod
    def from_dict(cls, d: object) -> InclusionProof:
        if not isinstance(d, dict) or d.keys() != {"leafIndex", "treeSize", "hashes"}:
            raise MalformedInput("an inclusion proof has exactly leafIndex, treeSize and hashes")
        return cls(_int(d["leafIndex"], "leafIndex"), _int(d["treeSize"], "treeSize"), _hashes(d["hashes"]))


@dataclass(frozen=True)
class ConsistencyProof:
    first: int
    second: int
    hashes: tuple[bytes, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second, "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_dict(cls, d: object) -> ConsistencyProof:
        if not isinstance(d, dict) or d.keys() != {"first", "second", "hashes"}:
            raise MalformedInput("a consistency proof has exactly first, second and hashes")
        return cls(_int(d["first"], "first"), _int(d["second"], "second"), _hashes(d["hashes"]))


def _int(v: object, name: str) -> int:
    if type(v) is not int or v < 0:
        raise MalformedInput(f"proof field {name} must be a non-negative integer")
    return v


def _hashes(v: object) -> tuple[bytes, ...]:
    if not isinstance(v, list):
        raise MalformedInput("proof hashes must be a list of hex strings")
    out = []
    for h in v:
        try:
            b = bytes.fromhex(h) if isinstance(h, str) else b""
        except ValueError:
            b = b""
        if len(b) != 32:
            raise MalformedInput("each proof hash must be 64 hex characters")
        out.append(b)
    return tuple(out)


@dataclass(frozen=True)
class PrivateView:
    """What a viewer may see of a statement's private data.

    ``status``: ``shown`` (``data`` and ``salt`` given), ``not_entitled``, ``shredded``
    (erased; ``shredded`` says when) or ``missing`` (never given to this ledger).
    """

    commitment: str
    status: str
    data: dict[str, Any] | None = None
    salt: str | None = None
    shredded: str | None = None


def _utc_bound(value: str | None, name: str) -> str | None:
    """An RFC 3339 time (or a date, meaning its UTC midnight) in the ledger's time format."""
    if value is None:
        return None
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MalformedInput(
            f"{name} {value!r} is not an RFC 3339 time such as 2026-11-27T08:00:00Z"
        ) from None
    if t.tzinfo is None:
        if len(value) != 10:
            raise MalformedInput(f"{name} {value!r} has no time zone; add Z or an offset such as +08:00")
        t = t.replace(tzinfo=UTC)
    return utc_text(t)


@dataclass(frozen=True)
class Receipt:
    seq: int
    leaf_hash: bytes
    statement_hash: bytes
    checkpoint: str
    proof: InclusionProof
    # Set when the envelope was an event its signer already had on the ledger (same eventID,
    # or same event hash): this is that entry's receipt, and nothing was appended for it.
    duplicate_of: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {
            "seq": self.seq,
            "leafHash": self.leaf_hash.hex(),
            "statementHash": self.statement_hash.hex(),
            "checkpoint": self.checkpoint,
            "inclusionProof": self.proof.as_dict(),
        }
        if self.duplicate_of is not None:
            d["duplicateOf"] = self.duplicate_of
        return d


@dataclass(frozen=True)
class Entry:
    seq: int
    leaf_hash: bytes
    raw: bytes

    def decoded(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.raw)
        return doc

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leafHash": self.leaf_hash.hex(),
            "entry": base64.b64encode(self.raw).decode(),
            "decoded": self.decoded(),
        }


class _BatchNodes:
    """Node fetcher over this batch's new subtrees, falling back to the store."""

    def __init__(self, store: Store, conn: Connection, new: Mapping[tuple[int, int], bytes]):
        self.store, self.conn, self.new = store, conn, dict(new)

    def __call__(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        missing = [i for i in ids if i not in self.new]
        if missing:
            self.new.update(self.store.fetch_nodes(self.conn, missing))
        return {i: self.new[i] for i in ids if i in self.new}


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a batch is appended: a batch makes
    thousands of short-lived dicts and lists, which set off collections that find nothing
    to free (about a tenth of the sequencer's time). What a batch leaves in cycles is
    collected after it. Counted, so that batches appended at once in threads pause it once
    and the last to finish lets it go on (unless it was off before)."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


@dataclass
class _Checked:
    """A batch after ``Ledger._prepare``: per statement that passed its shape checks, the
    statement, its event's codes and capture key (None: not an event, or the projection
    works the key out); the refusals found so far, by index in the batch; and the
    signature checks still running in the helper process or the verify threads (see
    ``signature_errors``)."""

    prepared: list[Prepared]
    facts: list[EventCodes | None]
    captures: list[CaptureKey | None]
    errors: list[tuple[int, LedgerError]]
    pending: list[Future[list[int]]] = field(default_factory=list)
    owners: list[tuple[int, str, str]] = field(default_factory=list)
    checks: sigproc.Checks | None = None

    def signature_errors(self) -> list[tuple[int, LedgerError]]:
        """Wait for the batch's signature checks: a refusal per signature that does not
        verify, in batch order. A big batch is sequenced while its signatures are still
        being checked on the other core; nothing is committed before this is empty."""
        pending, self.pending = self.pending, []
        checks, self.checks = self.checks, None
        bad = [n for f in pending for n in f.result()] + (checks.bad() if checks else [])
        return _bad_signatures(bad, self.owners)

    def cancel(self) -> None:
        for f in self.pending:
            f.cancel()
        self.pending = []
        if self.checks is not None:
            self.checks.cancel()
            self.checks = None


def _bad_signatures(
    bad: Sequence[int], owners: Sequence[tuple[int, str, str]]
) -> list[tuple[int, LedgerError]]:
    out: list[tuple[int, LedgerError]] = []
    for n in bad:
        i, signer, kid = owners[n]
        out.append(
            (
                i,
                NotAuthentic(
                    f"the signature by {signer} with key {kid} does not verify", code="bad_signature"
                ),
            )
        )
    out.sort(key=lambda e: e[0])
    return out


def _refusals(
    shape: Sequence[Sequence[tuple[int, LedgerError]]], keys: Sequence[Sequence[tuple[int, LedgerError]]]
) -> list[tuple[int, LedgerError]]:
    """The refusals of a batch, per chunk in order: every shape error; a chunk's unknown
    keys only while no earlier chunk and not itself was refused (keys are looked up only
    for a batch that could still pass)."""
    out: list[tuple[int, LedgerError]] = []
    for chunk_shape, chunk_keys in zip(shape, keys, strict=True):
        refused = bool(out) or bool(chunk_shape)
        out += chunk_shape
        if not refused:
            out += chunk_keys
    out.sort(key=lambda e: e[0])
    return out


class Ledger:
    """One log on one store, with the checkpoint key it signs with (if it appends)."""

    def __init__(
        self, store: Store, *, note_signer: NoteSigner | None = None, log_key: str | None = None
    ) -> None:
        self.store = store
        self.note_signer = note_signer
        # The verifier key an operator published (SUYUAN_LOG_KEY); None: the genesis's.
        self.published_log_key = log_key
        # key id -> (party, public key): immutable once registered, so safe to cache.
        self._pubkeys: dict[str, tuple[str, bytes]] = {}
        # Entry 0, pinned at its first read: a genesis never changes, so bytes that say
        # otherwise later are a forgery, not news.
        self._genesis: Genesis | None = None

    @classmethod
    def open(cls, url: str | None = None, *, home: Path | None = None) -> Ledger:
        from ledger.log.home import Home

        h = Home(home)
        return cls(Store(url), note_signer=h.note_signer_if_any(), log_key=h.published_log_key())

    # --- appending -----------------------------------------------------------------------

    def append(self, envelope: object) -> Receipt:
        return self.append_batch([envelope])[0]

    def append_batch(
        self, envelopes: Sequence[object], *, private: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[Receipt]:
        """Append all envelopes in one transaction, or refuse them all (BatchRejected).

        A statement already in the ledger is not appended again: its first receipt is
        returned in its place. ``private`` maps commitments to their blobs
        ({"salt", "data"}); each must match a statement of the batch, and is stored apart.
        """
        if not envelopes:
            return []
        with _collector_paused():
            return self._append(envelopes, private)

    def _append(
        self, envelopes: Sequence[object], private: Mapping[str, Mapping[str, Any]] | None
    ) -> list[Receipt]:
        checked = self._prepare(envelopes)
        try:
            return self._checked_append(checked, private)
        finally:
            checked.cancel()  # a batch refused or failed before its signatures were awaited

    def _checked_append(
        self, checked: _Checked, private: Mapping[str, Mapping[str, Any]] | None
    ) -> list[Receipt]:
        prepared, errors = checked.prepared, checked.errors
        blobs: dict[str, bytes] = {}
        if private and not errors:
            committed = {p.statement.get("private"): i for i, p in enumerate(prepared)}
            for commitment, blob in private.items():
                try:
                    if commitment not in committed:
                        raise MalformedInput(
                            f"private data {commitment[:19]}… matches no statement of the batch"
                        )
                    if commitment_of(blob) != commitment:
                        raise MalformedInput(f"private data does not match its commitment {commitment[:19]}…")
                except LedgerError as e:
                    errors.append((committed.get(commitment, 0), e))
                    continue
                blobs[commitment] = canonical.canonical_bytes(dict(blob))
        if errors:
            raise BatchRejected(checked.signature_errors() or errors)
        return self._sequence(checked, blobs)

    def _prepare(self, envelopes: Sequence[object]) -> _Checked:
        """Check shapes and signatures of a batch; no lock is held.

        Signature checks are handed to the helper process (``ledger.log.sigproc``) or the
        verify threads chunk by chunk while this thread goes on preparing the next
        statements and then sequences the batch, so both cores work at once; the batch is
        refused before commit if one does not verify (``_Checked.signature_errors``). With
        ``SUYUAN_OFFLOAD=1``, a big batch's schema checks, codes and capture keys are
        worked out by another helper process (``ledger.log.offload``).
        """
        # A big batch's checks go to the helper process chunk by chunk (see
        # ledger.log.sigproc); others, or when it cannot take them, to the verify threads.
        checks = sigproc.Checks.open() if len(envelopes) >= sigproc.MIN_JOBS else None
        try:
            return self._prepare_with(envelopes, checks)
        except BaseException:
            if checks is not None:
                checks.cancel()
            raise

    def _prepare_with(self, envelopes: Sequence[object], checks: sigproc.Checks | None) -> _Checked:
        """``_prepare``, sending its signature checks to ``checks`` if given."""
        prepared: list[Prepared] = []
        facts: list[EventCodes | None] = []
        captures: list[CaptureKey | None] = []
        # Per chunk of VERIFY_CHUNK envelopes: its shape errors, and its unknown keys.
        shape: list[list[tuple[int, LedgerError]]] = []
        keys: list[list[tuple[int, LedgerError]]] = []
        introduced: dict[str, tuple[str, bytes]] = {}
        jobs: list[tuple[int, bytes, bytes, bytes]] = []
        owners: list[tuple[int, str, str]] = []
        pending: list[Future[list[int]]] = []
        parallel = len(envelopes) >= PARALLEL_VERIFY_MIN
        helper = offload.Offload(len(envelopes))
        derived_at: dict[int, int] = {}  # envelope index -> prepared index, for the helper's
        queued = 0
        refused = False  # a chunk so far had a shape error or an unknown key
        now = datetime.now(UTC)
        for start in range(0, len(envelopes), VERIFY_CHUNK):
            chunk: list[Prepared] = []
            shape.append([])
            keys.append([])
            for i in range(start, min(start + VERIFY_CHUNK, len(envelopes))):
                try:
                    p = prepare(envelopes[i])
                    bodies.check_body(p)
                    admission.admit(p, now=now)
                    there = helper.active and p.kind == "event"
                    if there:
                        fact = None  # from the helper, below
                        try:
                            admission.check_entry_size(p)
                        except LedgerError:
                            event_facts(p.body)  # its refusal comes first, as below
                            raise
                    else:
                        fact = event_facts(p.body) if p.kind == "event" else None
                        admission.check_entry_size(p)
                except LedgerError as e:
                    shape[-1].append((i, e))
                    continue
                if there:
                    derived_at[i] = len(prepared)
                    helper.add(i, p.statement_bytes)
                prepared.append(p)
                facts.append(fact)
                captures.append(None)
                chunk.append(p)
                owner = p.body["registrar"]["id"] if p.kind == "genesis" else p.signer
                for kid, pk in registry.embedded_keys(p).items():
                    introduced[kid] = (owner, pk)
            refused = refused or bool(shape[-1])
            if refused:
                if not helper.active:
                    continue  # the batch is refused; keep collecting every shape error
            unknown = {s.key for p in chunk for s in p.signatures} - self._pubkeys.keys()
            unknown -= introduced.keys()
            if unknown:
                with self.store.reading() as conn:
                    self._pubkeys.update(self.store.public_keys(conn, unknown))
            base = len(prepared) - len(chunk)
            for j, p in enumerate(chunk):
                msg = p.signed_message
                for s in p.signatures:
                    known = self._pubkeys.get(s.key) or introduced.get(s.key)
                    if known is None:
                        keys[-1].append(
                            (
                                base + j,
                                NotAuthentic(
                                    f"key {s.key} of {s.signer} is not registered", code="unknown_key"
                                ),
                            )
                        )
                        continue
                    owners.append((base + j, s.signer, s.key))
                    jobs.append((len(jobs), msg, s.sig, known[1]))
            refused = refused or bool(keys[-1])
            if parallel and not refused:
                if checks is not None:
                    checks.send(jobs[queued:])
                else:
                    pending.append(verify_pool().submit(verify_chunk, jobs[queued:]))
                queued = len(jobs)
        if helper.active:
            got = helper.results()
            for i, k in derived_at.items():
                d = got.get(i)
                if d is not None:
                    facts[k], captures[k] = d.codes, d.capture
                    continue
                try:  # the helper could not: derive it here, raising what it raises
                    facts[k] = event_facts(prepared[k].body)
                except LedgerError as e:
                    shape[i // VERIFY_CHUNK].append((i, e))
        errors = _refusals(shape, keys)
        if errors:
            for f in pending:
                f.cancel()
            helper.cancel()
            if checks is not None:
                checks.cancel()
            return _Checked(prepared, facts, captures, errors)
        if parallel:  # checked while the batch is sequenced: see _Checked.signature_errors
            return _Checked(prepared, facts, captures, [], pending, owners, checks)
        return _Checked(prepared, facts, captures, _bad_signatures(verify_chunk(jobs), owners))

    def _sequence(self, checked: _Checked, blobs: Mapping[str, bytes]) -> list[Receipt]:
        store = self.store
        prepared = checked.prepared
        # What the projections can work out without the lock (capture keys, which registry
        # records and rows to read), before it is taken.
        batch = [
            Pending(p, f, capture=c)
            for p, f, c in zip(prepared, checked.facts, checked.captures, strict=True)
        ]
        projector = Projector.standard()
        projector.prepare(batch)

        def queued() -> None:
            # Another batch holds the sequencer: this one's signature checks are awaited
            # now, rather than while holding it after that batch.
            bad = checked.signature_errors()
            if bad:
                raise BatchRejected(bad)

        with store.writing(while_queued=queued) as conn:
            head = store.head(conn)
            size, old_root = (head.size, head.root) if head else (0, merkle.EMPTY_ROOT)
            dup_seqs = store.seqs_of_statements(conn, {p.statement_hash for p in prepared})
            for item in batch:
                item.duplicate = item.p.statement_hash in dup_seqs
            repeats: dict[int, Captured] = {}  # index in prepared -> the entry it repeats

            # The frontier of the old tree: with the batch's new nodes, every proof of a
            # new entry needs nothing else (see merkle.PathBuilder).
            edge_ids = merkle.range_nodes(0, size) + ([(0, size - 1)] if size else [])
            edge = store.fetch_nodes(conn, edge_ids)
            frontier = merkle.Frontier.load(size, lambda ids: edge)
            prev = edge[(0, size - 1)] if size else ZERO_HASH
            # Ledger times never go back, even when the clock does (time queries bound seq
            # ranges by them): a batch is never stamped before the one it follows.
            time = max(ledger_time(), head.time) if head else ledger_time()
            shared = Facts(store=store, conn=conn, time=time)
            projector.prefetch(shared, batch)
            seq = size
            errors: list[tuple[int, LedgerError]] = []
            placed: dict[bytes, int] = {}  # statement hash -> seq, this batch
            slots: list[int] = []  # per prepared: the seq that answers it
            entry_rows: list[EntryRow] = []
            new_nodes: dict[tuple[int, int], bytes] = {}
            prepared_hash = {p.statement.get("private"): p.statement_hash for p in prepared} if blobs else {}
            for i, item in enumerate(batch):
                p = item.p
                h = p.statement_hash
                if h in dup_seqs or h in placed:
                    slots.append(dup_seqs.get(h, placed.get(h, -1)))
                    continue
                try:
                    earlier = projector.check(seq, item, shared)
                    if earlier is not None:
                        repeats[i] = earlier
                        slots.append(earlier.seq)
                        continue
                    if p.kind == "attest":
                        self._check_attested(p, seq, new_nodes, conn)
                except LedgerError as e:
                    errors.append((i, e))
                    slots.append(-1)
                    continue
                projector.apply(seq, item, shared)
                raw = entry_bytes(seq=seq, prev=prev, time=time, envelope_bytes=p.envelope_bytes)
                leaf = merkle.leaf_hash(raw)
                for level, idx, nh in frontier.append(leaf):
                    new_nodes[(level, idx)] = nh
                entry_rows.append(
                    EntryRow(
                        seq=seq, leaf_hash=leaf, statement_hash=h, kind=p.kind, signer=p.signer, entry=raw
                    )
                )
                placed[h] = seq
                slots.append(seq)
                prev = leaf
                seq += 1
            # A statement whose signature does not verify refuses the batch before any
            # other reason does, as it would have had the batch waited for its checks.
            bad = checked.signature_errors()
            if bad or errors:
                raise BatchRejected(bad or errors)

            note = head.note if head else ""
            known = {**edge, **new_nodes}
            if entry_rows:
                note = self._sign_checkpoint(
                    conn, shared.reg, size, old_root, frontier, _BatchNodes(store, conn, known)
                )
                store.append_rows(
                    conn,
                    entry_rows=entry_rows,
                    node_rows=[NodeRow(node=node_key(lv, ix), hash=hh) for (lv, ix), hh in new_nodes.items()],
                    checkpoint_row=CheckpointRow(
                        size=frontier.size, root=frontier.root(), note=note, time=time
                    ),
                )
                projector.write(shared)
            if blobs:
                store.save_private(
                    conn,
                    [
                        (c, b, placed[prepared_hash[c]])
                        for c, b in blobs.items()
                        if prepared_hash[c] in placed
                    ],
                )
            firsts = self._earlier_receipts(conn, prepared, slots, size)
        # The new entries' receipts are worked out from the nodes in hand, after commit:
        # another batch need not wait for them.
        receipts = self._receipts(prepared, slots, size, note, known, firsts)
        for i, first in repeats.items():
            receipts[i] = replace(receipts[i], statement_hash=first.statement_hash, duplicate_of=first.seq)
        return receipts

    def _check_attested(
        self, p: Prepared, seq: int, new_nodes: Mapping[tuple[int, int], bytes], conn: Connection
    ) -> None:
        target = int(p.body["seq"])
        if target >= seq:
            raise NotFound(f"attest names seq {target}, which is not yet in the ledger")
        node = new_nodes.get((0, target)) or self.store.fetch_nodes(conn, [(0, target)]).get((0, target))
        if node is None or node.hex() != p.body["entry"]:
            raise MalformedInput(
                f"attest names entry {p.body['entry'][:16]}… but seq {target} has another leaf hash"
            )

    def _sign_checkpoint(
        self,
        conn: Connection,
        reg: registry.RegistryState,
        old_size: int,
        old_root: bytes,
        frontier: merkle.Frontier,
        fetch: _BatchNodes,
    ) -> str:
        signer = self.note_signer
        if signer is None:
            raise ConfigError(
                "this ledger has no checkpoint key here; "
                "set SUYUAN_HOME to the operator's home (see `suyuan init`)"
            )
        # The genesis entry's key and origin, never the log_meta row (a database writer
        # could change that); for the batch that holds the genesis, its own.
        log_key: str | None
        origin: str | None
        if old_size:
            genesis, why = self.genesis_in(conn)
            if genesis is None:
                raise ConfigError(f"{why}; no checkpoint is signed")
            log_key, origin = genesis.log_key, genesis.origin
        else:  # the batch that holds the genesis
            log_key, origin = reg.log_key, reg.origin
        mine = signer.verifier_key()
        if log_key and mine != log_key:
            raise ConfigError(
                f"the checkpoint key in SUYUAN_HOME ({signer.name}+{signer.key_hash.hex()}) is "
                "not the one this ledger's genesis names; point SUYUAN_HOME at its operator"
            )
        if self.published_log_key and mine != self.published_log_key.strip():
            raise ConfigError(
                f"the checkpoint key in SUYUAN_HOME ({signer.name}+{signer.key_hash.hex()}) is "
                "not the published SUYUAN_LOG_KEY; nothing signed with it would verify"
            )
        new_root = frontier.root()
        # Never sign a checkpoint inconsistent with the last one signed.
        proof = merkle.consistency_proof(old_size, frontier.size, fetch)
        merkle.verify_consistency(
            first=old_size, second=frontier.size, first_root=old_root, second_root=new_root, proof=proof
        )
        self._check_fence(signer, frontier.size, new_root, fetch)
        return signer.sign(Checkpoint(origin or signer.name, frontier.size, new_root).body())

    def _check_fence(self, signer: NoteSigner, size: int, root: bytes, fetch: merkle.NodeFetcher) -> None:
        """Never sign off the newest cosigned checkpoint another database of the cluster
        holds (ledger/log/fencing.py); only with replicas configured is there one to see."""
        if not self.store.replicas:
            return
        from ledger.log import fencing  # here: the seam stays one call in the signing path

        seen = fencing.cosigned_elsewhere(self.store, NoteVerifier.from_vkey(signer.verifier_key()))
        fencing.check_extends(seen, size=size, root_at=lambda n: root if n == size else merkle.root(n, fetch))

    def _earlier_receipts(
        self, conn: Connection, prepared: Sequence[Prepared], slots: Sequence[int], old_size: int
    ) -> dict[int, Receipt]:
        """The first receipts of the batch's statements already in the ledger before it."""
        earlier: dict[int, Receipt] = {}
        for p, s in zip(prepared, slots, strict=True):
            if s < old_size and s not in earlier:
                earlier[s] = self._first_receipt(conn, s, p.statement_hash)
        return earlier

    @staticmethod
    def _receipts(
        prepared: Sequence[Prepared],
        slots: Sequence[int],
        old_size: int,
        note: str,
        known: Mapping[tuple[int, int], bytes],
        earlier: Mapping[int, Receipt],
    ) -> list[Receipt]:
        size = old_size + len({s for s in slots if s >= old_size})
        paths = merkle.PathBuilder(size, known).proofs(s for s in slots if s >= old_size)
        out: list[Receipt] = []
        for p, s in zip(prepared, slots, strict=True):
            if s >= old_size:
                out.append(
                    Receipt(s, known[(0, s)], p.statement_hash, note, InclusionProof(s, size, paths[s]))
                )
            else:
                out.append(earlier[s])
        return out

    def _first_receipt(self, conn: Connection, seq: int, statement_hash: bytes) -> Receipt:
        cp = self.store.checkpoint_covering(conn, seq)
        if cp is None:
            raise NotFound(f"no checkpoint covers seq {seq}")
        proof = merkle.inclusion_proof(seq, cp.size, lambda ids: self.store.fetch_nodes(conn, ids))
        leaf = self.store.fetch_nodes(conn, [(0, seq)])[(0, seq)]
        return Receipt(seq, leaf, statement_hash, cp.note, InclusionProof(seq, cp.size, tuple(proof)))

    def receipt_of(self, seq: int) -> Receipt:
        """The receipt entry ``seq`` got when it was appended, proven against the first
        checkpoint that covers it: what a repeated submission gets back."""
        entry = self.entry(seq)
        statement = orjson.loads(entry.raw)["envelope"]["statement"]
        digest = hashlib.sha256(canonical.canonical_bytes(statement)).digest()
        with self.store.reading() as conn:
            return self._first_receipt(conn, seq, digest)

    # --- reading -------------------------------------------------------------------------

    def size(self) -> int:
        with self.store.reading() as conn:
            head = self.store.head(conn)
        return head.size if head else 0

    def latest_checkpoint(self) -> str:
        with self.store.reading() as conn:
            head = self.store.head(conn)
        if head is None:
            raise NotFound("the ledger is empty; run `suyuan init` first")
        return head.note

    def checkpoint_note(self, size: int) -> str:
        with self.store.reading() as conn:
            row = self.store.checkpoint_at(conn, size)
        if row is None:
            raise NotFound(f"no checkpoint was signed at size {size}")
        return row.note

    def genesis_in(self, conn: Connection) -> tuple[Genesis | None, str | None]:
        """The genesis entry as read (once per ledger object) and checked; else (None, why)."""
        if self._genesis is None:
            row = self.store.entry(conn, 0)
            if row is None:
                return None, "the ledger has no genesis entry; run `suyuan init` first"
            try:
                self._genesis = read_genesis(row.entry)
            except LedgerError as e:
                return None, f"entry 0 is not a valid genesis: {e.message}"
        return self._genesis, None

    def pinned_key(self, conn: Connection | None = None) -> PinnedKey:
        """The key checkpoints must verify with (``PinnedKey``): the published one, else
        the genesis entry's; never a row a database writer could change."""
        if conn is None and self._genesis is None:
            with self.store.reading() as c:
                return self.pinned_key(c)
        genesis, why = (self._genesis, None) if conn is None else self.genesis_in(conn)
        return pin_log_key(published=self.published_log_key, genesis=genesis, genesis_problem=why)

    def log_verifier(self) -> NoteVerifier:
        """The verifier of the pinned log key (see ``pinned_key``)."""
        pin = self.pinned_key()
        if pin.key is None:
            raise NotFound(pin.problem or "the ledger has no genesis entry; run `suyuan init` first")
        return NoteVerifier.from_vkey(pin.key)

    def entry(self, seq: int) -> Entry:
        with self.store.reading() as conn:
            row = self.store.entry(conn, seq)
        if row is None:
            raise NotFound(f"there is no entry at seq {seq} (the ledger has {self.size()})")
        return Entry(seq, row.leaf_hash, row.entry)

    def entries(self, seqs: Iterable[int]) -> list[Entry]:
        wanted = sorted(set(seqs))
        with self.store.reading() as conn:
            raw = self.store.entries_by_seq(conn, wanted)
            leaves = self.store.fetch_nodes(conn, [(0, s) for s in raw])
        missing = [s for s in wanted if s not in raw]
        if missing:
            raise NotFound(f"there is no entry at seq {missing[0]}")
        return [Entry(s, leaves[(0, s)], raw[s]) for s in wanted]

    def _tree_size(self, conn: Connection, size: int | None) -> int:
        head = self.store.head(conn)
        current = head.size if head else 0
        if size is None:
            return current
        if size > current:
            raise NotFound(f"the tree has {current} entries, not {size}")
        return size

    def _sized_fetch(self, conn: Connection, n: int) -> tuple[merkle.NodeFetcher, Callable[[], None]]:
        """A node fetcher for proofs in a tree of ``n`` leaves that also proves the tree is
        that big, and a check to call after the proof: a tree's last leaf comes with the
        first fetch (the same statement), and without it the proof is refused with the
        ledger's size. Nodes alone do not tell: a proof for leaf n-1 of a tree one leaf
        too big, or a consistency proof from 0, reads only nodes that exist."""
        if n >= 1 << NODE_LEVEL_SHIFT:  # beyond the node keys: no ledger is that big
            self._tree_size(conn, n)
        last = (0, n - 1)
        fetched = [n == 0]

        def fetch(ids: Collection[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
            got = self.store.fetch_nodes(conn, {*ids, last} if not fetched[0] else ids)
            if not fetched[0]:
                fetched[0] = True
                if last not in got:
                    self._tree_size(conn, n)
                    raise ProofError(f"the store has no hash for leaf {n - 1}")
            return got

        def confirm() -> None:
            if not fetched[0]:
                fetch(())

        return fetch, confirm

    def _proof_hashes(
        self,
        size: int | None,
        low: int,
        check: str,
        compute: Callable[[int, merkle.NodeFetcher], list[bytes]],
    ) -> tuple[int, list[bytes]]:
        """(tree size, proof hashes). With a size given, the nodes themselves tell whether
        the tree is that big (one statement, no BEGIN); the head is read only to word a
        refusal."""
        with self.store.reading(single=size is not None) as conn:
            n = self._tree_size(conn, None) if size is None else size
            if check == "seq" and not 0 <= low < n:
                raise NotFound(f"seq {low} is not in a tree of size {n}")
            if check == "size" and not 0 <= low <= n:
                raise ProofError(f"size {low} is not between 0 and {n}")
            fetch, confirm = self._sized_fetch(conn, n)
            try:
                hashes = compute(n, fetch)
            except ProofError:
                self._tree_size(conn, n)
                raise
            confirm()
            return n, hashes

    def inclusion_proof(self, seq: int, size: int | None = None) -> InclusionProof:
        n, hashes = self._proof_hashes(
            size, seq, "seq", lambda n, fetch: merkle.inclusion_proof(seq, n, fetch)
        )
        return InclusionProof(seq, n, tuple(hashes))

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        if second is not None and first > second:
            raise ProofError(
                f"a consistency proof goes from an older tree to a newer one: the "
                f"first size must be ≤ the second, and {first} > {second}"
            )
        n, hashes = self._proof_hashes(
            second, first, "size", lambda n, fetch: merkle.consistency_proof(first, n, fetch)
        )
        return ConsistencyProof(first, n, tuple(hashes))

    def root(self, size: int | None = None) -> bytes:
        with self.store.reading() as conn:
            n = self._tree_size(conn, size)
            return merkle.root(n, lambda ids: self.store.fetch_nodes(conn, ids))

    def _owning_statements(
        self, conn: Connection, committing: Mapping[int, str]
    ) -> dict[int, tuple[Mapping[str, Any], list[str]]]:
        """For statements (seq -> commitment) that committed to private data first committed
        to by another one (before ``private_reused`` was refused): seq -> that owner's
        (statement, cosigners), whose parties alone are entitled to it. Two reads at most."""
        owners = self.store.commitment_owners(conn, committing.values())
        other = {seq: owners[c] for seq, c in committing.items() if c in owners and owners[c] != seq}
        if not other:
            return {}
        raw = self.store.entries_by_seq(conn, other.values())
        out: dict[int, tuple[Mapping[str, Any], list[str]]] = {}
        for seq, owner in other.items():
            if owner not in raw:  # an index naming no entry: nobody but regulators
                out[seq] = ({}, [])
                continue
            env = orjson.loads(raw[owner])["envelope"]
            out[seq] = (env["statement"], [s["signer"] for s in env["signatures"][1:]])
        return out

    def private_data(self, seq: int, viewer: Viewer) -> dict[str, Any]:
        """The private blob a statement commits to, for a viewer entitled to it by the
        statement that first committed to it."""
        decoded = self.entry(seq).decoded()
        st = decoded["envelope"]["statement"]
        commitment = st.get("private")
        if commitment is None:
            raise NotFound(f"the statement at seq {seq} has no private data")
        with self.store.reading() as conn:
            owner_st, cosigners = self._owning_statements(conn, {seq: commitment}).get(
                seq, (st, [s["signer"] for s in decoded["envelope"]["signatures"][1:]])
            )
            check_view(viewer, owner_st, cosigners)
            row = self.store.private_blob(conn, commitment)
        if row is None:
            raise NotFound(f"private data {commitment[:19]}… was never given to this ledger")
        if row.blob is None:
            raise NotFound(f"private data {commitment[:19]}… was erased at {row.shredded}", code="shredded")
        doc: dict[str, Any] = orjson.loads(row.blob)
        return doc

    def shred(self, commitment: str) -> dict[str, Any]:
        """Erase a private blob for good; the commitment and every proof stay valid."""
        with self.store.writing() as conn:
            seq = self.store.shred_private(conn, commitment, when=ledger_time())
        if seq is None:
            raise NotFound(f"no private data {commitment[:19]}… is held here")
        return {"commitment": commitment, "seq": seq, "shredded": True}

    def origin(self) -> str:
        """The checkpoint origin, which bearer tokens name as their audience."""
        with self.store.reading() as conn:
            reg = self.store.load_registry(conn, key_ids=(), party_ids=())
        if not reg.origin:
            raise ConfigError("the ledger has no genesis entry; run `suyuan init` first")
        return reg.origin

    def viewer_for_token(self, token: str, *, now: float | None = None) -> Viewer:
        """Who a bearer token speaks for: a regulator if its party has the ``regulator``
        role, else that party. Checked against the registry as of the ledger's current
        size, so the tokens of a revoked key stop working at once; raises NotAuthentic
        with the reason."""
        claims, _, _ = read_token(token)
        with self.store.reading() as conn:
            head = self.store.head(conn)
            reg = self.store.load_registry(conn, key_ids=[claims.key], party_ids=[claims.sub])
        if not reg.origin:
            raise ConfigError("the ledger has no genesis entry; run `suyuan init` first")
        claims = check_token(token, reg, audience=reg.origin, seq=head.size if head else 0, now=now)
        party = reg.parties[claims.sub]  # its key is registered to it, so it is registered
        return Viewer("regulator" if "regulator" in party.roles else "party", claims.sub)

    def entries_found(self, seqs: Iterable[int]) -> dict[int, Entry]:
        """The entries at those seqs that exist (two reads whatever their number)."""
        wanted = sorted(set(seqs))
        with self.store.reading() as conn:
            raw = self.store.entries_by_seq(conn, wanted)
            leaves = self.store.fetch_nodes(conn, [(0, s) for s in raw])
        return {s: Entry(s, leaves[(0, s)], raw[s]) for s in wanted if s in raw}

    def inclusion_proofs(self, seqs: Iterable[int], size: int) -> dict[int, InclusionProof]:
        """Proofs of many entries against the tree of ``size``, from one read of nodes."""
        wanted = sorted(set(seqs))
        with self.store.reading() as conn:
            for seq in wanted:
                if not 0 <= seq < size:
                    raise NotFound(f"seq {seq} is not in a tree of size {size}")
            fetch, confirm = self._sized_fetch(conn, size)
            try:
                got = merkle.inclusion_proofs(wanted, size, fetch)
            except ProofError:
                self._tree_size(conn, size)
                raise
            confirm()
        return {s: InclusionProof(s, size, tuple(h)) for s, h in got.items()}

    def private_views(self, entries: Sequence[Entry], viewer: Viewer) -> dict[int, PrivateView]:
        """For each entry whose statement commits to private data: what ``viewer`` may see
        of it (the same rule as ``private_data``), with one read for all entitled blobs."""
        out: dict[int, PrivateView] = {}
        entitled_to: dict[int, str] = {}
        committing: dict[int, tuple[str, Mapping[str, Any], list[str]]] = {}
        for e in entries:
            env = e.decoded()["envelope"]
            st = env["statement"]
            commitment = st.get("private")
            if isinstance(commitment, str):
                committing[e.seq] = (commitment, st, [s["signer"] for s in env["signatures"][1:]])
        if not committing:
            return out
        with self.store.reading() as conn:
            owned_by = self._owning_statements(conn, {s: c[0] for s, c in committing.items()})
            for seq, (commitment, st, cosigners) in committing.items():
                if entitled(viewer, *owned_by.get(seq, (st, cosigners))):
                    entitled_to[seq] = commitment
                else:
                    out[seq] = PrivateView(commitment, "not_entitled")
            blobs = self.store.private_blobs_of(conn, entitled_to.values()) if entitled_to else {}
        for seq, c in entitled_to.items():
            row = blobs.get(c)
            if row is None:
                out[seq] = PrivateView(c, "missing")
            elif row[0] is None:
                out[seq] = PrivateView(c, "shredded", shredded=row[1])
            else:
                doc = orjson.loads(row[0])
                out[seq] = PrivateView(c, "shown", data=doc["data"], salt=doc["salt"])
        return out

    def list_entries(
        self,
        *,
        first: int = 50,
        after: int = -1,
        signer: str | None = None,
        stage: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[list[Entry], bool]:
        """One keyset page of entries in seq order: (entries, whether more follow).

        ``signer`` and ``stage`` (events only) filter; ``since``/``until`` bound the time
        the ledger recorded the entry (RFC 3339; ``until`` exclusive)."""
        if not 1 <= first <= MAX_PAGE:
            raise MalformedInput(f"a page holds 1 to {MAX_PAGE} entries, not {first}")
        if stage is not None and stage not in STAGES:
            raise MalformedInput(f"stage {stage!r} is not one of {', '.join(STAGES)}")
        lo_t, hi_t = _utc_bound(since, "since"), _utc_bound(until, "until")
        with self.store.reading() as conn:
            lo, hi = (
                (0, None)
                if lo_t is None and hi_t is None
                else tracedb.seq_bounds_for_time(conn, since=lo_t, until=hi_t)
            )
            rows = tracedb.entry_page(
                conn, after=after, limit=first + 1, lo=lo, hi=hi, signer=signer, stage=stage
            )
        return [Entry(r.seq, r.leaf_hash, r.entry) for r in rows[:first]], len(rows) > first

    def party_records(self, ids: Iterable[str] | None) -> dict[str, registry.PartyRecord]:
        """The registered parties among ``ids`` (None: all), without their keys."""
        with self.store.reading() as conn:
            reg = self.store.load_registry(conn, key_ids=(), party_ids=ids)
        wanted = None if ids is None else set(ids)
        return {k: v for k, v in reg.parties.items() if wanted is None or k in wanted}

    def party_keys(self, ids: Iterable[str]) -> dict[str, list[registry.KeyRecord]]:
        with self.store.reading() as conn:
            return self.store.keys_of_parties(conn, list(ids))

    def registry_view(self) -> registry.RegistryState:
        """The whole registry projection (parties, keys, GS1 prefixes and delegations,
        customs codes), for listings."""
        with self.store.reading() as conn:
            return self.store.load_registry(conn, key_ids=None, party_ids=None, prefixes=None, codes=None)
