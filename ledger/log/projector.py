"""The projection seam: every table derived from the entries is kept by a ``Projection``,
and one ``Projector`` runs them all, on the append path and in a rebuild alike.

A statement goes through the projections in four steps:

* ``prepare`` — without any lock: what a projection can work out from the statement alone
  (capture keys, master-data subjects, which registry records and rows to read);
* ``prefetch`` — under the sequencer's lock, once per batch: the bulk reads;
* ``check`` — under the lock, per statement, at its seq: refuse it (raise ``LedgerError``
  with the code and message the user sees) or say it repeats an entry already on the
  ledger (return that entry as ``Captured``: its receipt answers, nothing is appended);
* ``apply`` — the statement is appended at its seq: remember the rows it adds.

``write`` stores the rows applied since the last write; ``reset`` forgets them. A rebuild
(``suyuan reindex``, the audit's re-derivation) runs the same projections with
``rebuild=True``: no checks (the entries were accepted when they were appended), and the
registry is replayed from entry 0 instead of read from its tables.

The sequencer (``ledger.log``) knows the protocol and ``Projector.standard``, never a
projection by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.engine import Connection

from ledger.compliance import brands, findings, findings_batch
from ledger.compliance.recalls import RecallFacts
from ledger.core import registry
from ledger.core.errors import NotAuthorised
from ledger.core.records import CodeMark
from ledger.core.statements import Prepared
from ledger.epcis import masterdata
from ledger.epcis.event_hash import Captured, CaptureKey, capture_key, document_key, earlier_capture
from ledger.epcis.projection import TraceBatch, split_lot
from ledger.epcis.stages import Classified, EventCodes, classify
from ledger.log.verifier import judge_event
from ledger.store import capturedb, findingsdb, masterdatadb, schema, tracedb
from ledger.store.db import Store


@dataclass(eq=False)
class Pending:
    """One statement on its way through the projections."""

    p: Prepared
    codes: EventCodes | None  # what an event says (None: not an event)
    # Set by the sequencer before ``prefetch``: the statement is already on the ledger (or
    # earlier in its batch) by its statement hash, and goes through no projection.
    duplicate: bool = False
    # Per projection, what ``prepare`` worked out without the lock.
    capture: CaptureKey | None = None
    subject: masterdata.Subject | None = None
    version: tuple[str, str] | None = None  # master data: (body hash, vocabulary type)
    # Set by ``check`` (append) or ``apply`` (rebuild): the event's stage and activity.
    classified: Classified | None = None

    @property
    def commitment(self) -> str | None:
        c = self.p.statement.get("private")
        return c if isinstance(c, str) else None


@dataclass
class Facts:
    """What the projections share while a batch (or a rebuild) goes through them."""

    store: Store
    conn: Connection
    time: str  # the ledger time of the entry being applied
    reg: registry.RegistryState = field(default_factory=registry.RegistryState)
    # What the ledger held before the statement being judged, for the negative list's
    # recall exception (``ledger.compliance.recalls``): the findings projection provides it.
    recalls: RecallFacts | None = None


class Projection(Protocol):
    """One derived set of tables (see the module's docstring for the steps)."""

    name: str
    tables: tuple[str, ...]

    def prepare(self, batch: Sequence[Pending]) -> None: ...

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None: ...

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None: ...

    def apply(self, seq: int, item: Pending, facts: Facts) -> None: ...

    def write(self, facts: Facts) -> None: ...

    def reset(self) -> None: ...


# --- the projections ----------------------------------------------------------------------


class CaptureIndex:
    """``event_keys``: each event's capture key, so that an event its signer already has on
    the ledger (the same eventID or event hash) is answered with the first receipt."""

    name: str = "capture"
    tables: tuple[str, ...] = schema.CAPTURE_TABLES

    def __init__(self, *, rebuild: bool = False) -> None:
        self.rebuild = rebuild
        self.rows: list[capturedb.Row] = []
        self.on_ledger: dict[str, list[Captured]] = {}
        self.ids: dict[str, int] = {}  # the batch's keys' key_id, worked out once

    def prepare(self, batch: Sequence[Pending]) -> None:
        for item in batch:
            if item.capture is None:  # else worked out beside the sequencer (ledger.log.offload)
                if item.codes is not None:
                    item.capture = capture_key(item.p.body)
                elif item.p.kind == "document":
                    item.capture = document_key(item.p.body)
            if item.capture is not None:
                key = item.capture.key
                if key not in self.ids:
                    self.ids[key] = capturedb.key_id(key)

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        if not self.rebuild:
            self.on_ledger = capturedb.captured(
                facts.conn, {i.capture.key for i in batch if i.capture is not None}, ids=self.ids
            )

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        if item.capture is None:
            return None
        return earlier_capture(item.p.signer, item.capture, self.on_ledger.get(item.capture.key, ()))

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        ck = item.capture
        if ck is None:
            return
        self.rows.append(capturedb.row(seq, signer=item.p.signer, key=ck, kid=self.ids.get(ck.key)))
        if not self.rebuild:
            self.on_ledger.setdefault(ck.key, []).append(
                Captured(seq, item.p.signer, ck, item.p.statement_hash)
            )

    def write(self, facts: Facts) -> None:
        capturedb.write(facts.conn, self.rows)
        self.rows = []
        self.ids = {}

    def reset(self) -> None:
        self.rows = []
        self.on_ledger = {}
        self.ids = {}


@dataclass
class _RegistrySlice:
    key_ids: set[str]
    party_ids: set[str]
    prefixes: set[str] | None  # None: all of them
    codes: set[str]


class Registry:
    """Parties, keys, lists, GS1 company prefixes and their delegations, customs codes.

    On the append path the batch's slice of it is read under the lock (``prepare`` works
    out which records); a rebuild replays it whole from entry 0, in memory."""

    name: str = "registry"
    tables: tuple[str, ...] = schema.REGISTRY_TABLES

    def __init__(self, *, rebuild: bool = False) -> None:
        self.rebuild = rebuild
        self.slice: _RegistrySlice | None = None
        self.stored: set[str] = set()  # key ids (and "registrar") already in the tables

    def prepare(self, batch: Sequence[Pending]) -> None:
        if self.rebuild:
            return
        key_ids = {s.key for i in batch for s in i.p.signatures}
        party_ids = {i.p.signer for i in batch}
        for i in batch:
            p = i.p
            key_ids.update(registry.embedded_keys(p))
            if p.kind == "party.key.revoke":
                key_ids.add(p.body["key"])
                party_ids.add(p.body["party"])
            elif p.kind == "party.register":
                party_ids.add(p.body["id"])
            elif p.kind in registry.PREFIX_KINDS:
                party_ids.add(p.body["to"])
        party_ids |= findings_batch.parties_named(i.codes for i in batch)
        # GS1 company prefixes: all of them when the batch registers new ones (they must
        # not overlap any), else those its events' GTINs, delegations and master data name.
        prefixes: set[str] | None = brands.prefixes_to_load((i.p.body, i.codes) for i in batch)
        for i in batch:
            if i.p.kind == "party.register" and "gs1Prefixes" in i.p.body:
                prefixes = None
                break
            if i.p.kind in registry.PREFIX_KINDS:
                prefixes.add(i.p.body["prefix"])  # type: ignore[union-attr]
        if prefixes is not None:
            for i in batch:
                if i.p.kind == "masterdata":
                    prefixes |= masterdata.prefix_candidates(masterdata.subject_of(i.p.body))
        # Customs codes: those registrations claim (one holder each) and those the customs
        # messages' events name as responsible enterprises (finding party.unregistered).
        codes = {c for i in batch if i.p.kind == "party.register" for c in i.p.body.get("customsCodes", ())}
        codes |= {c for i in batch if i.codes is not None for c in findings.customs_codes_named(i.p.body)}
        self.slice = _RegistrySlice(key_ids, party_ids, prefixes, codes)

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        if self.rebuild or self.slice is None:
            return
        s = self.slice
        facts.reg = facts.store.load_registry(
            facts.conn, key_ids=s.key_ids, party_ids=s.party_ids, prefixes=s.prefixes, codes=s.codes
        )
        self.stored = set(facts.reg.keys) | ({"registrar"} if facts.reg.registrar else set())

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        registry.authorise(item.p, seq, facts.reg)
        return None

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        registry.apply(item.p, seq, facts.reg)

    def write(self, facts: Facts) -> None:
        reg = facts.reg
        facts.store.save_registry(facts.conn, reg, existing=self.stored)
        self.stored |= set(reg.keys) | ({"registrar"} if reg.registrar else set())

    def reset(self) -> None:
        self.slice = None


def _check_commitment(commitment: str, owners: Mapping[str, int]) -> None:
    """Refuse a statement that commits to private data another statement (on the ledger,
    or earlier in its batch) committed to first: commitments are public, so naming one
    must not make its blob readable to the namer."""
    owner = owners.get(commitment)
    if owner is not None:
        raise NotAuthorised(
            f"private data {commitment[:19]}… belongs to the statement at seq {owner}; a "
            "statement may commit only to private data of its own (a fresh salt makes a new "
            "commitment)",
            code="private_reused",
        )


class Commitments:
    """``private_commitments``: the statement that first committed to each private blob,
    which alone decides who may read it."""

    name: str = "commitments"
    tables: tuple[str, ...] = schema.PRIVATE_TABLES

    def __init__(self, *, rebuild: bool = False) -> None:
        self.rebuild = rebuild
        self.owners: dict[str, int] = {}
        self.rows: list[tuple[str, int]] = []

    def prepare(self, batch: Sequence[Pending]) -> None:
        return None

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        if self.rebuild:
            return
        wanted = {c for i in batch if (c := i.commitment) is not None}
        self.owners = facts.store.commitment_owners(facts.conn, wanted) if wanted else {}

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        c = item.commitment
        if c is not None:
            _check_commitment(c, self.owners)
        return None

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        # Every statement that names a commitment, in seq order: the first wins (a rebuild
        # replays statements that reused one before ``private_reused`` refused them).
        c = item.p.statement.get("private")
        if c is not None:
            if not self.rebuild:
                self.owners[c] = seq
            self.rows.append((c, seq))

    def write(self, facts: Facts) -> None:
        facts.store.save_commitments(facts.conn, self.rows)
        self.rows = []

    def reset(self) -> None:
        self.rows = []
        self.owners = {}


class MasterDataIndex:
    """``master_data``: every version of each location's and product's master data; the
    same element signed again by its signer is a repeat, and only an owner may sign one."""

    name: str = "masterdata"
    tables: tuple[str, ...] = schema.MASTERDATA_TABLES

    def __init__(self, *, rebuild: bool = False) -> None:
        self.rebuild = rebuild
        self.versions: dict[tuple[str, str], masterdatadb.Latest] = {}
        self.rows: list[masterdatadb.Row] = []

    def prepare(self, batch: Sequence[Pending]) -> None:
        for item in batch:
            if item.p.kind == "masterdata":
                item.subject = masterdata.subject_of(item.p.body)
                item.version = (masterdata.body_hash(item.p.body), masterdatadb.vocabulary_type(item.p.body))

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        if self.rebuild:
            return
        codes = {i.subject.code for i in batch if i.subject is not None}
        self.versions = masterdatadb.in_force(facts.conn, codes) if codes else {}

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        if item.subject is None or item.version is None:
            return None
        p = item.p
        masterdata.check_owner(facts.reg, signer=p.signer, body=p.body, time=facts.time)
        body_hash, vtype = item.version
        now = self.versions.get((item.subject.code, vtype))
        if now is not None and now.row.signer == p.signer and now.row.body_hash == body_hash:
            # The version in force, signed again: its receipt, no new entry.
            return Captured(
                now.row.seq, p.signer, CaptureKey(item.subject.code, body_hash, False), now.statement_hash
            )
        return None

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        if item.subject is None or item.version is None:
            return
        body_hash, vtype = item.version
        row = masterdatadb.Row(item.subject.code, seq, item.subject.kind, item.p.signer, body_hash)
        self.rows.append(row)
        if not self.rebuild:
            self.versions[(row.code, vtype)] = masterdatadb.Latest(row, item.p.statement_hash)

    def write(self, facts: Facts) -> None:
        masterdatadb.write(facts.conn, self.rows)
        self.rows = []

    def reset(self) -> None:
        self.rows = []
        self.versions = {}


class Trace:
    """Events, the identifiers they name, containment, lineage, business transactions and
    current state (``ledger.epcis.projection``). Its check judges the event: the stage the
    signer's roles may sign, brands, the negative list, and that a recall is of one's own
    products."""

    name: str = "trace"
    tables: tuple[str, ...] = schema.TRACE_TABLES

    def __init__(self, *, rebuild: bool = False) -> None:
        self.rebuild = rebuild
        self.batch = TraceBatch()

    def prepare(self, batch: Sequence[Pending]) -> None:
        return None

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        return None

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        if item.codes is None:
            return None
        item.classified = judge_event(
            item.p, facts.reg, codes=item.codes, time=facts.time, recalls=facts.recalls
        )
        if item.classified.stage == "recall":
            self._check_own_products(facts, item.p, item.codes)
        return None

    def _check_own_products(self, facts: Facts, p: Prepared, fact: EventCodes) -> None:
        """A regulator may recall anything; a producer or brand owner only what it made,
        or what was made under a GS1 company prefix it holds or was delegated."""
        reg = facts.reg
        if "regulator" in reg.parties[p.signer].roles:
            return
        codes = {
            split_lot(c)[0]
            for c in (
                *fact.epcs,
                *fact.children,
                *fact.inputs,
                *fact.outputs,
                *(c for c, _, _ in fact.classes),
            )
        }
        if fact.parent:
            codes.add(split_lot(fact.parent)[0])
        if not codes:
            return
        trace = self.batch
        # trace.events rows: (seq, type, time, utc, stage, activity, ..., signer at 9, ...)
        made_here = {ev[0] for ev in trace.events if ev[9] == p.signer and ev[4] == "production"}
        mine = {code for code, seq, _ in trace.idents if seq in made_here}
        missing = {c for c in codes - mine if not brands.speaks_for_brand(reg, p.signer, c, facts.time)}
        if missing:
            missing -= tracedb.produced_by(facts.conn, missing, party=p.signer)
        if missing:
            raise NotAuthorised(
                f"{p.signer} may recall only products it made; no production event of its "
                f"names {sorted(missing)[0]}",
                code="not_own_product",
            )

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        if item.codes is None:
            return
        if item.classified is None:
            party = facts.reg.parties[item.p.signer]
            item.classified = classify(item.p.body, signer_roles=party.roles)
        self.batch.add_event(
            seq=seq, signer=item.p.signer, body=item.p.body, classified=item.classified, codes=item.codes
        )

    def write(self, facts: Facts) -> None:
        tracedb.write_trace(facts.conn, trace_rows(self.batch))
        self.batch = TraceBatch()

    def reset(self) -> None:
        self.batch = TraceBatch()


def trace_rows(batch: TraceBatch) -> tracedb.TraceRows:
    """The rows a trace batch adds, as the store writes them."""
    return tracedb.TraceRows(
        events=batch.events,
        idents=batch.idents,
        lineage=batch.lineage,
        biz=batch.biz,
        containment=batch.containment,
        state=batch.state,
    )


class Findings:
    """Compliance findings, trade documents and code marks (``ledger.compliance.findings``): business
    violations never refuse a statement, they become findings. Reads the trace rows the
    batch added (lots, packings), so it comes after ``Trace``."""

    name: str = "findings"
    tables: tuple[str, ...] = schema.FINDINGS_TABLES

    def __init__(self, trace: Trace, *, rebuild: bool = False) -> None:
        self.trace, self.rebuild = trace, rebuild
        self.batch: findings_batch.FindingsBatch | None = None
        self.raised = 0

    def _batch(self, facts: Facts) -> findings_batch.FindingsBatch:
        if self.batch is None or self.batch.trace is not self.trace.batch:
            self.batch = findings_batch.FindingsBatch(
                findingsdb.DbReads(facts.conn), reg=facts.reg, trace=self.trace.batch
            )
        return self.batch

    def prepare(self, batch: Sequence[Pending]) -> None:
        return None

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        judged = self._batch(facts)
        judged.prefetch([(i.p.body, i.codes) for i in batch if i.codes is not None and not i.duplicate])
        facts.recalls = judged

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        return None

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        if item.codes is None:
            return
        assert item.classified is not None  # Trace, before this one, set it
        self._batch(facts).add_event(
            findings.Subject(
                seq=seq,
                signer=item.p.signer,
                issued=item.p.statement["issued"],
                appended=facts.time,
                body=item.p.body,
                codes=item.codes,
                classified=item.classified,
            )
        )

    def write(self, facts: Facts) -> None:
        if self.batch is not None:
            b = self.batch
            findingsdb.write_findings(
                facts.conn,
                found=b.findings,
                documents=b.documents,
                marks=[CodeMark(code=c, mark=m, seq=s, utc=u) for (c, m), (s, u) in b.new_marks.items()],
            )
            self.raised += len(b.findings)
        self.batch = None

    def reset(self) -> None:
        self.batch = None


# --- the projector ------------------------------------------------------------------------


class Projector:
    """The registered projections, run in order: checks in this order decide which refusal
    a statement gets, and a later projection may read what an earlier one applied."""

    def __init__(self, projections: Sequence[Projection], *, rebuild: bool = False) -> None:
        self.projections = tuple(projections)
        self.rebuild = rebuild

    @classmethod
    def standard(cls, *, rebuild: bool = False) -> Projector:
        """Every projection of the ledger, each a fresh instance (one per batch or rebuild)."""
        trace = Trace(rebuild=rebuild)
        return cls(
            [
                CaptureIndex(rebuild=rebuild),
                Registry(rebuild=rebuild),
                Commitments(rebuild=rebuild),
                MasterDataIndex(rebuild=rebuild),
                trace,
                Findings(trace, rebuild=rebuild),
            ],
            rebuild=rebuild,
        )

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(t for p in self.projections for t in p.tables)

    def get(self, name: str) -> Projection:
        return next(p for p in self.projections if p.name == name)

    def prepare(self, batch: Sequence[Pending]) -> None:
        for proj in self.projections:
            proj.prepare(batch)

    def prefetch(self, facts: Facts, batch: Sequence[Pending]) -> None:
        for proj in self.projections:
            proj.prefetch(facts, batch)

    def check(self, seq: int, item: Pending, facts: Facts) -> Captured | None:
        """Raise ``LedgerError`` to refuse; the entry ``item`` repeats, if it does."""
        for proj in self.projections:
            repeat = proj.check(seq, item, facts)
            if repeat is not None:
                return repeat
        return None

    def apply(self, seq: int, item: Pending, facts: Facts) -> None:
        for proj in self.projections:
            proj.apply(seq, item, facts)

    def write(self, facts: Facts) -> None:
        for proj in self.projections:
            proj.write(facts)

    def reset(self) -> None:
        for proj in self.projections:
            proj.reset()


@dataclass
class Replayed:
    """What a rebuild went through."""

    entries: int = 0
    events: int = 0


class Rebuild:
    """The projections of stored entries, fed in seq order (``suyuan reindex``, and the
    audit's re-derivation). Entries are applied in chunks like append batches: the findings
    rules' reads are fetched once per chunk, and rows are written only between chunks (every
    ``flush_every`` events), so what a rule reads from the store never changes under it."""

    CHUNK = 1000
    FLUSH_EVERY = 5000

    def __init__(self, store: Store, conn: Connection, *, flush_every: int = FLUSH_EVERY) -> None:
        self.projector = Projector.standard(rebuild=True)
        self.facts = Facts(store=store, conn=conn, time="")
        self.flush_every = flush_every
        self.chunk: list[tuple[int, str, Pending]] = []
        self.done = Replayed()
        self._unwritten = 0
        self.next_seq = 0

    def feed(self, seq: int, time: str, p: Prepared, codes: EventCodes | None) -> None:
        """The entry at ``seq`` (recorded at ``time``), after ``seq - 1``."""
        self.chunk.append((seq, time, Pending(p, codes)))
        self.next_seq = seq + 1
        if len(self.chunk) >= self.CHUNK:
            self._replay()
            if self._unwritten >= self.flush_every:
                self.flush()

    def _replay(self) -> None:
        chunk, self.chunk = self.chunk, []
        if not chunk:
            return
        items = [item for _, _, item in chunk]
        self.projector.prepare(items)
        self.projector.prefetch(self.facts, items)
        for seq, time, item in chunk:
            self.facts.time = time
            self.projector.apply(seq, item, self.facts)
            if item.codes is not None:
                self._unwritten += 1
                self.done.events += 1
        self.done.entries += len(chunk)

    def flush(self) -> None:
        """Apply what is buffered and write every row applied so far."""
        self._replay()
        self.projector.write(self.facts)
        self._unwritten = 0

    @property
    def registry(self) -> registry.RegistryState:
        return self.facts.reg

    @property
    def findings_raised(self) -> int:
        proj = self.projector.get("findings")
        return proj.raised if isinstance(proj, Findings) else 0


__all__ = ["Facts", "Pending", "Projection", "Projector", "Rebuild", "Replayed"]
