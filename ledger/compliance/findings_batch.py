"""The batch side of the findings: ``FindingsBatch`` runs the rules of
``ledger.compliance.findings`` over a batch of events and answers their ``View`` from rows read in
bulk once per batch (``prefetch``), point reads for what the bulk read did not foresee,
and the batch's own earlier entries, newest first. Pure: reads go through ``Reads``,
whose SQL is ``ledger.store.findingsdb.DbReads``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Protocol

from ledger.compliance.findings import (
    DOC_TYPES,
    MOVEMENT_STEPS,
    UNPREFIXED_MARK,
    Document,
    Finding,
    Subject,
    document_of,
    evaluate,
    finding_from,
    local_year,
    marks_set,
)
from ledger.core.registry import PrefixRecord, RegistryState, customs_holder, prefix_holder
from ledger.epcis.projection import TraceBatch, gtin_class, named_codes
from ledger.epcis.stages import EventCodes


class Reads(Protocol):
    """Bulk reads of what earlier batches stored (``ledger.store.findingsdb.DbReads``)."""

    def marks(self, codes: Sequence[str]) -> dict[str, dict[str, tuple[int, str]]]: ...
    def recalled(self) -> dict[str, tuple[int, str]]: ...
    def lots(self, codes: Sequence[str]) -> dict[str, set[str]]: ...
    def parents(self, codes: Sequence[str]) -> dict[str, set[str]]: ...
    def documents(self, keys: Sequence[tuple[str, str]]) -> list[Document]: ...
    def citing(self, orders: Sequence[str]) -> list[Document]: ...
    def buyer_orders(self, pairs: Sequence[tuple[str, int]]) -> list[Document]: ...
    def positive(self, hs_codes: Sequence[str]) -> set[str]: ...


def _latest(docs: Iterable[Document]) -> dict[tuple[str, str], Document]:
    out: dict[tuple[str, str], Document] = {}
    for d in docs:
        k = (d.type, d.id)
        if k not in out or out[k].seq < d.seq:
            out[k] = d
    return out


MAX_CONTAINER_DEPTH: Final = 6


class FindingsBatch:
    """A batch's findings and index rows, and the ``View`` its rules read.

    What earlier batches stored is read through ``reads`` — in bulk by ``prefetch``, then
    one point read per miss — and cached; what this batch added is kept here and
    consulted first (newer), so a rule sees exactly the entries before the one it judges.
    """

    def __init__(self, reads: Reads, *, reg: RegistryState, trace: TraceBatch) -> None:
        self.reads, self.reg, self.trace = reads, reg, trace
        self.findings: list[Finding] = []
        self.documents: list[Document] = []
        self.new_marks: dict[tuple[str, str], tuple[int, str]] = {}
        # cached reads of stored rows
        self._db_marks: dict[str, dict[str, tuple[int, str]]] = {}
        self._db_recalled: dict[str, tuple[int, str]] | None = None
        self._db_lots: dict[str, set[str]] = {}
        self._db_parents: dict[str, set[str]] = {}
        self._db_docs: dict[tuple[str, str], Document | None] = {}
        self._db_citing: dict[str, list[Document]] = {}
        # (buyer, year) -> order -> (seq, value) of its latest version; None: not counted
        # (withdrawn, or not in CNY)
        self._db_buyers: dict[tuple[str, int], dict[str, tuple[int, Decimal | None]]] = {}
        self._db_positive: dict[str, bool] = {}
        # this batch
        self._docs: dict[tuple[str, str], Document] = {}
        self._citing: dict[str, dict[tuple[str, str], Document]] = {}
        self._lots: dict[str, set[str]] = {}
        self._parents: dict[str, set[str]] = {}
        self._new_recalled: dict[str, tuple[int, str]] = {}
        self._new_marks_of: dict[str, dict[str, tuple[int, str]]] = {}  # new_marks by code
        self._orders: dict[tuple[str, int], dict[str, Decimal | None]] = {}
        self._lineage_seen = 0
        self._containment_seen = 0

    # --- prefetch ---------------------------------------------------------------------

    def prefetch(self, events: Sequence[tuple[Mapping[str, Any], EventCodes]]) -> None:
        """Read in bulk what the rules will ask about these events."""
        if not events:
            return
        recalled = self._recalled()
        gtins = {gtin_class(c) or c for c in recalled}
        codes: set[str] = set()
        movers: set[str] = set()
        items_for_lots: set[str] = set()
        doc_keys: set[tuple[str, str]] = set()
        orders: set[str] = set()
        hs_codes: set[str] = set()
        for body, c in events:
            named = named_codes(c)
            for code in named:
                codes.add(code)
                cls = gtin_class(code)
                if cls:
                    codes.add(cls)
                    if cls in gtins:
                        items_for_lots.add(code)
            if c.biz_step in MOVEMENT_STEPS or c.disposition == "retail_sold":
                movers.update(named_codes(c, io=False))
            for t, i in c.biz_transactions:
                if t in DOC_TYPES:
                    doc_keys.add((t, i))
                    if t == "cbec:order":
                        orders.add(i)
            hs = body.get("cbec:hsCode")
            if isinstance(hs, str):
                hs_codes.update(hs[:n] for n in range(6, len(hs) + 1))
        around: set[str] = set(movers)
        frontier = self._load_parents(movers)
        for _ in range(MAX_CONTAINER_DEPTH):
            if not frontier:
                break
            around |= frontier
            frontier = self._load_parents(frontier) - around
        lots = self._load_lots(around | items_for_lots)
        for x in list(around) + list(lots):
            codes.add(x)
            cls = gtin_class(x)
            if cls:
                codes.add(cls)
        self._load_marks(codes)
        found = self._load_docs(doc_keys)
        decl_keys = {(t, i) for d in found if d.type == "cbec:declaration" for t, i in d.links.items()}
        orders |= {d.order for d in found if d.order}
        self._load_docs(decl_keys)
        self._load_citing(orders)
        pairs = set()
        for body, c in events:
            info = body.get("cbec:orderInfo")
            if isinstance(info, Mapping) and isinstance(info.get("buyerIdHash"), str):
                year = local_year(body, c.event_time)
                if year is not None:
                    pairs.add((info["buyerIdHash"], year))
        self._load_buyers(pairs)
        self._load_positive(hs_codes)

    def _recalled(self) -> dict[str, tuple[int, str]]:
        if self._db_recalled is None:
            self._db_recalled = self.reads.recalled()
        return self._db_recalled

    def _load_marks(self, codes: Iterable[str]) -> None:
        want = [c for c in codes if c not in self._db_marks]
        if want:
            got = self.reads.marks(want)
            for c in want:
                self._db_marks[c] = got.get(c, {})

    def _load_parents(self, codes: Iterable[str]) -> set[str]:
        want = [c for c in codes if c not in self._db_parents]
        if want:
            got = self.reads.parents(want)
            for c in want:
                self._db_parents[c] = got.get(c, set())
        return {p for c in codes for p in self._db_parents.get(c, ())}

    def _load_lots(self, codes: Iterable[str]) -> set[str]:
        want = [c for c in codes if c not in self._db_lots]
        if want:
            got = self.reads.lots(want)
            for c in want:
                self._db_lots[c] = got.get(c, set())
        return {x for c in codes for x in self._db_lots.get(c, ())}

    def _load_docs(self, keys: Iterable[tuple[str, str]]) -> list[Document]:
        want = [k for k in keys if k not in self._db_docs]
        if want:
            got = _latest(self.reads.documents(want))
            for k in want:
                self._db_docs[k] = got.get(k)
        return [d for k in keys if (d := self._db_docs.get(k)) is not None]

    def _load_citing(self, orders: Iterable[str]) -> None:
        want = [o for o in orders if o not in self._db_citing]
        if want:
            got: dict[str, list[Document]] = {o: [] for o in want}
            for d in _latest(self.reads.citing(want)).values():
                if d.order in got:
                    got[d.order].append(d)
            self._db_citing.update(got)

    def _load_buyers(self, pairs: Iterable[tuple[str, int]]) -> None:
        want = [p for p in pairs if p not in self._db_buyers]
        if want:
            got: dict[tuple[str, int], dict[str, tuple[int, Decimal | None]]] = {p: {} for p in want}
            for d in self.reads.buyer_orders(want):
                key = (d.buyer or "", d.year or 0)
                if key in got and (d.value is not None or d.withdrawn):
                    cur = got[key].get(d.id)
                    if cur is None or cur[0] < d.seq:
                        got[key][d.id] = (d.seq, None if d.withdrawn or d.value is None else Decimal(d.value))
            self._db_buyers.update(got)

    def _load_positive(self, hs_codes: Iterable[str]) -> None:
        want = [h for h in hs_codes if h not in self._db_positive]
        if want:
            got = self.reads.positive(want)
            for h in want:
                self._db_positive[h] = h in got

    # --- the View ---------------------------------------------------------------------

    def _sync(self) -> None:
        """Take in the lot and containment edges the trace projection added since."""
        lineage = self.trace.lineage
        for src, dst, _seq, kind, _sq, _dq in lineage[self._lineage_seen :]:
            if kind == "lot":
                self._lots.setdefault(dst, set()).add(src)
        self._lineage_seen = len(lineage)
        changes = self.trace.containment
        for op, row in changes[self._containment_seen :]:
            if op == "add":
                self._parents.setdefault(row[0], set()).add(row[1])
        self._containment_seen = len(changes)

    def marks(self, code: str) -> Mapping[str, tuple[int, str]]:
        stored = self._db_marks.get(code)
        if stored is None:
            self._load_marks([code])
            stored = self._db_marks[code]
        mine = self._new_marks_of.get(code)
        if mine is None:
            return stored
        # A mark is set once, by the first event: a stored one is never overridden.
        return {**mine, **stored}

    def lots(self, code: str) -> frozenset[str]:
        self._sync()  # the sequencer asks between events (ledger.compliance.recalls), not only rules
        self._load_lots([code])
        return frozenset(self._db_lots[code] | self._lots.get(code, set()))

    def containers(self, code: str) -> frozenset[str]:
        self._sync()
        seen: set[str] = set()
        frontier = {code}
        for _ in range(MAX_CONTAINER_DEPTH):
            nxt: set[str] = set()
            for c in frontier:
                self._load_parents([c])
                nxt |= self._db_parents[c] | self._parents.get(c, set())
            nxt -= seen | {code}
            if not nxt:
                break
            seen |= nxt
            frontier = nxt
        return frozenset(seen)

    def recalls(self) -> bool:
        return bool(self._recalled()) or bool(self._new_recalled)

    def recalled_gtins(self) -> frozenset[str]:
        codes = set(self._recalled()) | set(self._new_recalled)
        return frozenset(gtin_class(c) or c for c in codes)

    def recalled(self, code: str) -> tuple[int, str] | None:
        return self._recalled().get(code) or self._new_recalled.get(code)

    def document(self, type_: str, id_: str) -> Document | None:
        mine = self._docs.get((type_, id_))
        if mine is not None:
            return mine
        self._load_docs([(type_, id_)])
        return self._db_docs[(type_, id_)]

    def citing_order(self, order_id: str) -> Sequence[Document]:
        self._load_citing([order_id])
        merged = {(d.type, d.id): d for d in self._db_citing[order_id]}
        merged.update(self._citing.get(order_id, {}))
        return sorted(merged.values(), key=lambda d: d.seq)

    def buyer_orders(self, buyer: str, year: int) -> Mapping[str, Decimal]:
        self._load_buyers([(buyer, year)])
        out = {k: v[1] for k, v in self._db_buyers[(buyer, year)].items() if v[1] is not None}
        for order, value in self._orders.get((buyer, year), {}).items():
            if value is None:
                out.pop(order, None)
            else:
                out[order] = value
        return out

    def on_positive_list(self, hs_code: str) -> bool:
        prefixes = [hs_code[:n] for n in range(6, len(hs_code) + 1)]
        for p in prefixes:
            change = self.reg.positive_changes.get(p, ...)
            if change is not ...:
                if change is not None:
                    return True
                continue  # removed in a later entry than the stored row
            self._load_positive([p])
            if self._db_positive[p]:
                return True
        return False

    def roles(self, party: str) -> tuple[str, ...] | None:
        rec = self.reg.parties.get(party)
        return None if rec is None else rec.roles

    def prefix_holder(self, gtin: str) -> PrefixRecord | None:
        # The append path loads every prefix its batch's brand checks ask about (see
        # ledger.compliance.brands.prefixes_to_load); a rebuild replays the whole registry.
        return prefix_holder(self.reg, gtin)

    def customs_holder(self, code: str) -> str | None:
        # The append path loads the codes its batch's customs messages name (ledger.log).
        return customs_holder(self.reg, code)

    # --- adding -------------------------------------------------------------------------

    def add_event(self, s: Subject) -> list[Finding]:
        """Judge one authorised event, then remember what it adds for the next ones."""
        self._sync()
        doc = document_of(s)
        drafts = evaluate(s, self, doc)
        found = [finding_from(d, seq=s.seq, n=n, time=s.appended) for n, d in enumerate(drafts)]
        self.findings += found
        if doc is not None:
            self.documents.append(doc)
            self._docs[(doc.type, doc.id)] = doc
            if doc.order and doc.type != "cbec:order":
                self._citing.setdefault(doc.order, {})[(doc.type, doc.id)] = doc
            if doc.type == "cbec:order" and doc.buyer is not None and doc.year is not None:
                self._orders.setdefault((doc.buyer, doc.year), {})[doc.id] = (
                    None if doc.value is None or doc.withdrawn else Decimal(doc.value)
                )
        marks = marks_set(s)
        for d in drafts:
            if d.rule == "gtin.unregistered_prefix":
                marks[UNPREFIXED_MARK] = list(d.codes)
        for mark, codes in marks.items():
            for code in codes:
                if mark not in self.marks(code):
                    self.new_marks[(code, mark)] = (s.seq, s.codes.event_time_utc)
                    self._new_marks_of.setdefault(code, {})[mark] = self.new_marks[(code, mark)]
                    if mark == "recalled":
                        self._new_recalled[code] = (s.seq, s.codes.event_time_utc)
        return found


def parties_named(facts: Iterable[EventCodes | None]) -> set[str]:
    """Parties the rules will ask the registry about besides the signers: merchants that
    orders name as their owning party."""
    out: set[str] = set()
    for c in facts:
        if c is None:
            continue
        for t, i in c.sources:
            if t == "owning_party" and (i.startswith("uscc:") or i.startswith("gln:")):
                out.add(i)
    return out
