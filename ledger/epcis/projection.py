"""Traceability projections: what each appended event adds to the indexes the queries read.

Pure: ``TraceBatch.add_event`` turns one authorised event into rows; the store writes a
batch's rows in the append transaction, and ``suyuan reindex`` replays the same function
over all entries, so a rebuilt projection is identical to the one kept on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ledger.core.errors import IdentifierError
from ledger.core.ids import CANONICAL_BASE, DigitalLink, index_key, parse_digital_link
from ledger.epcis.stages import Classified, EventCodes

SOLD_DISPOSITIONS = frozenset({"retail_sold"})
SOLD_ACTIVITIES = frozenset({"retail_selling", "order"})


def split_lot(code: str) -> tuple[str, str | None]:
    """An item named with its lot, ``/01/g/10/L/21/S``, is the item ``/01/g/21/S`` of lot
    ``/01/g/10/L``: index it under the GS1 key alone and keep the lot as an edge."""
    if "/21/" not in code or "/10/" not in code:
        return code, None
    try:
        dl = parse_digital_link(code)
    except IdentifierError:  # the parser's one refusal (ledger.core.ids is pure)
        return code, None
    if dl.kind != "item" or dl.lot is None:
        return code, None
    item = DigitalLink("item", gtin=dl.gtin, serial=dl.serial).canonical
    lot = DigitalLink("lot", gtin=dl.gtin, lot=dl.lot).canonical
    return item, lot


_CANONICAL_GTIN = CANONICAL_BASE + "/01/"
GS1_CLASS_PREFIX = _CANONICAL_GTIN


def normalise_code(code: str) -> str:
    """Any accepted form of a product code (Digital Link on any domain, EPC URN, canonical)
    -> the key the projections index it under: canonical, an item without its lot."""
    if not isinstance(code, str) or not code.strip():
        raise IdentifierError("give a product code: a GS1 Digital Link, an EPC URN or a GTIN")
    return split_lot(index_key(code.strip()))[0]


def gtin_class(code: str) -> str | None:
    """The product (GTIN class) an index key of a GTIN, lot or item belongs to."""
    if code.startswith(GS1_CLASS_PREFIX) and len(code) >= len(GS1_CLASS_PREFIX) + 14:
        return code[: len(GS1_CLASS_PREFIX) + 14]
    return None


def named_codes(c: EventCodes, *, io: bool = True) -> list[str]:
    """Every product or unit an event names, under its index key, in event order."""
    raw = [*c.epcs, c.parent] if c.parent else list(c.epcs)
    raw += c.children
    if c.classes:
        raw += [x for x, _, _ in c.classes]
    if io:
        raw += c.inputs
        raw += c.outputs
        if c.input_classes:
            raw += [x for x, _, _ in c.input_classes]
        if c.output_classes:
            raw += [x for x, _, _ in c.output_classes]
    out: list[str] = []
    seen: set[str] = set()
    for code in raw:
        # Only a code with both /21/ and /10/ names an item with its lot (split_lot).
        key = split_lot(code)[0] if "/21/" in code and "/10/" in code else code
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def recall_scope(body: Mapping[str, Any]) -> list[str]:
    """The codes a recall's ``cbec:recall`` ``scope`` names, under their index keys."""
    rec = body.get("cbec:recall")
    scope = rec.get("scope") if isinstance(rec, Mapping) else None
    out: list[str] = []
    for u in scope if isinstance(scope, list) else ():
        if isinstance(u, str):
            try:
                out.append(split_lot(index_key(u))[0])
            except IdentifierError:  # a GS1 key with a bad check digit stays as written
                out.append(u)
    return out


def lot_of(gtin_code: str, lot: str) -> str | None:
    """The lot ``lot`` of the GTIN that ``gtin_code`` (an index key) names, if it names one."""
    # Index keys are canonical: the GTIN is the 14 digits after the base, so the common
    # case needs no parse (this runs for every commissioned item, under the append lock).
    n = len(_CANONICAL_GTIN)
    if gtin_code.startswith(_CANONICAL_GTIN) and gtin_code[n + 14 : n + 15] in ("", "/"):
        gtin = gtin_code[n : n + 14]
        if gtin.isdigit() and gtin.isascii():
            return _lot_link(gtin, lot)
    try:
        dl = parse_digital_link(gtin_code)
    except IdentifierError:
        return None
    if dl.gtin is None:
        return None
    return DigitalLink("lot", gtin=dl.gtin, lot=lot).canonical


@lru_cache(maxsize=4096)
def _lot_link(gtin: str, lot: str) -> str:
    """The canonical link of lot ``lot`` of ``gtin``: the items of one lot share it."""
    return DigitalLink("lot", gtin=gtin, lot=lot).canonical


def _ilmd_lot(body: Mapping[str, Any]) -> str | None:
    ilmd = body.get("ilmd")
    if not isinstance(ilmd, dict):
        return None
    for k in ("cbvmda:lotNumber", "lotNumber", "https://ref.gs1.org/cbv/mda#lotNumber"):
        v = ilmd.get(k)
        if isinstance(v, str) and v:
            return v
    return None


@dataclass
class TraceBatch:
    """Rows one batch of events adds, in seq order."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    idents: list[tuple[str, int, str]] = field(default_factory=list)
    lineage: list[tuple[str, str, int, str, str | None, str | None]] = field(default_factory=list)
    biz: list[tuple[str, str, int]] = field(default_factory=list)
    # ("add", (child, parent, seq, utc)) | ("end", (seq, utc, child, parent))
    # | ("end_all", (seq, utc, parent)), applied in this order.
    containment: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    state: dict[str, list[Any]] = field(default_factory=dict)
    _edges: set[tuple[str, str, int]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.events)

    def add_event(
        self, *, seq: int, signer: str, body: Mapping[str, Any], classified: Classified, codes: EventCodes
    ) -> None:
        utc = codes.event_time_utc
        self.events.append(
            (
                seq,
                codes.type,
                codes.event_time,
                utc,
                classified.stage,
                classified.activity,
                codes.biz_step,
                codes.disposition,
                codes.action,
                signer,
                codes.read_point,
                codes.biz_location,
            )
        )
        seen: set[tuple[str, str]] = set()
        idents = self.idents

        def ident(code: str, part: str) -> str:
            key, lot = split_lot(code) if "/21/" in code and "/10/" in code else (code, None)
            if (key, part) not in seen:
                seen.add((key, part))
                idents.append((key, seq, part))
            if lot is not None:
                # An edge, not an index entry: this event is about the item, and the
                # lot's own journey must not grow with every event of its items.
                self._edge(lot, key, seq, "lot")
            return key

        # Most events name a few kinds of code: an empty list is skipped without a loop.
        aggregation = codes.type == "AggregationEvent"
        epcs = [ident(c, "epc") for c in codes.epcs] if codes.epcs else []
        parent = ident(codes.parent, "parent") if codes.parent else None
        children = [ident(c, "child") for c in codes.children] if codes.children else []
        if aggregation and codes.classes:
            children += [ident(c, "child") for c, _, _ in codes.classes]
        inputs: list[tuple[str, str | None]] = []
        if codes.inputs:
            inputs += [(ident(c, "input"), None) for c in codes.inputs]
        if codes.input_classes:
            inputs += [(ident(c, "input"), _qty(q, u)) for c, q, u in codes.input_classes]
        outputs: list[tuple[str, str | None]] = []
        if codes.outputs:
            outputs += [(ident(c, "output"), None) for c in codes.outputs]
        if codes.output_classes:
            outputs += [(ident(c, "output"), _qty(q, u)) for c, q, u in codes.output_classes]
        classes = [] if aggregation or not codes.classes else [ident(c, "class") for c, _, _ in codes.classes]
        for t, i in codes.biz_transactions:
            self.biz.append((t, i, seq))

        if codes.type == "TransformationEvent":
            for src, sq in inputs:
                for dst, dq in outputs:
                    self._edge(src, dst, seq, "transformation", sq, dq)
        if codes.action == "ADD" and epcs:
            lot = _ilmd_lot(body)
            if lot is not None:
                for item in epcs:
                    lot_code = lot_of(item, lot)
                    if lot_code is not None:
                        self._edge(lot_code, item, seq, "lot")
        if aggregation and parent is not None:
            if codes.action == "ADD":
                for c in children:
                    self.containment.append(("add", (c, parent, seq, utc)))
            elif codes.action == "DELETE":
                if children:
                    for c in children:
                        self.containment.append(("end", (seq, utc, c, parent)))
                else:
                    self.containment.append(("end_all", (seq, utc, parent)))

        owner = signer
        for t, i in codes.destinations:
            if t == "owning_party":
                owner = i or signer
                break
        location = codes.biz_location or codes.read_point
        disposition = codes.disposition
        sold = disposition in SOLD_DISPOSITIONS or classified.activity in SOLD_ACTIVITIES
        state = self._state
        for group in (epcs, children, classes):
            for code in group:
                state(code, seq, utc, disposition, owner, location, sold)
        for code, _ in outputs:
            state(code, seq, utc, disposition, owner, location, sold)
        if parent is not None:
            state(parent, seq, utc, disposition, owner, location, sold)
        for code, _ in inputs:
            state(code, seq, utc, disposition, owner, location, False)

    def _edge(
        self, src: str, dst: str, seq: int, kind: str, sq: str | None = None, dq: str | None = None
    ) -> None:
        if (src, dst, seq) not in self._edges:
            self._edges.add((src, dst, seq))
            self.lineage.append((src, dst, seq, kind, sq, dq))

    def _state(
        self,
        code: str,
        seq: int,
        utc: str,
        disposition: str | None,
        owner: str,
        location: str | None,
        sold: bool,
    ) -> None:
        cur = self.state.get(code)
        if cur is None:
            self.state[code] = [disposition, owner, location, int(sold), seq, utc]
            return
        # Later events win field by field; what an event does not say, it leaves alone.
        cur[0] = disposition or cur[0]
        cur[1] = owner or cur[1]
        cur[2] = location or cur[2]
        cur[3] = cur[3] | int(sold)
        cur[4], cur[5] = seq, utc


def _qty(q: float | int | None, uom: str | None) -> str | None:
    if q is None:
        return None
    return f"{q:g} {uom}" if uom else f"{q:g}"
