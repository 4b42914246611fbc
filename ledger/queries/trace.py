"""Where did it come from, where did it go: journeys, lineage and recall impact.

All reads go to the projections (never a scan of entries); a journey follows an item into
every container it was packed in, for the time it was inside, and to its lot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from ledger.core.errors import IdentifierError, MalformedInput
from ledger.core.ids import parse_code
from ledger.epcis.projection import normalise_code
from ledger.store import pagedb, tracedb
from ledger.store.db import Store

DEFAULT_DEPTH = 10
MAX_DEPTH = 50
MAX_NESTING = 16  # containers inside containers followed by a journey


def _depth(depth: int | None) -> int:
    d = DEFAULT_DEPTH if depth is None else depth
    if not 1 <= d <= MAX_DEPTH:
        raise MalformedInput(f"depth must be between 1 and {MAX_DEPTH}, not {d}")
    return d


@dataclass(frozen=True)
class Step:
    seq: int
    event_time: str
    event_time_utc: str
    stage: str
    activity: str
    biz_step: str | None
    signer: str
    location: str | None
    via: str | None  # None: the item's own event; else the container or lot it came through

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "eventTime": self.event_time,
            "stage": self.stage,
            "activity": self.activity,
            "bizStep": self.biz_step,
            "signer": self.signer,
            "location": self.location,
            "via": self.via,
        }


def journey_steps(conn: Connection, code: str) -> list[Step]:
    return journey_rows(conn, code)[0]


def journey_rows(
    conn: Connection, code: str, *, lot_items: bool = False
) -> tuple[list[Step], dict[int, dict[str, Any]]]:
    """The journey's steps in time order, and the event rows they were made from.

    The code's own events, then its lots' (a lot's own events, production or recall,
    belong to every item of it), then those of every container it was packed in, for the
    time it was inside, following containers inside containers up to ``MAX_NESTING``
    deep and never round a cycle. An event reached more than one way is shown through the
    first of them in that order: its own, its lots' by code, then the containers depth
    first, a container's parents in (parent, packing seq) order. With ``lot_items`` (a lot's
    page) also the commissioning events of the lot's items, as its own, and their customs
    releases (rank 4 in their rows: a lot's page counts them, it does not list them). One
    statement.
    """
    best: dict[int, tuple[tuple[Any, ...], str | None]] = {}
    rows: dict[int, dict[str, Any]] = {}
    for rank, via, path, starts, row in pagedb.journey_claims(
        conn, code, max_nesting=MAX_NESTING, lot_items=lot_items
    ):
        seq = int(row["seq"])
        key: tuple[Any, ...]
        if rank == 1:
            key = (1, via)
        elif rank == 2:
            # Depth-first order: the path's (container, packing seq) pairs, a prefix first.
            assert path is not None and starts is not None
            key = (2, tuple(zip(path.split()[1:], map(int, starts.split()), strict=True)))
        else:
            key = (rank,)
        had = best.get(seq)
        if had is None or key < had[0]:
            best[seq] = (key, via if rank in (1, 2) else None)
        rows[seq] = row
    for seq, r in rows.items():
        r["rank"] = best[seq][0][0]  # how the journey reached it (see pagedb._JOURNEY)
    steps = [
        Step(
            seq,
            r["event_time"],
            r["event_time_utc"],
            r["stage"],
            r["activity"],
            r["biz_step"],
            r["signer"],
            r["biz_location"] or r["read_point"],
            best[seq][1],
        )
        for seq, r in rows.items()
    ]
    steps.sort(key=lambda s: (s.event_time_utc, s.seq))
    return steps, rows


def journey(store: Store, code: str) -> dict[str, Any]:
    key = normalise_code(code)
    with store.reading() as conn:
        steps = journey_steps(conn, key)
    return {"code": key, "journey": [s.as_dict() for s in steps]}


def lineage(conn: Connection, code: str, *, depth: int, forward: bool) -> list[dict[str, Any]]:
    seen = {code}
    frontier = {code}
    items: list[dict[str, Any]] = []
    for d in range(1, depth + 1):
        nxt: set[str] = set()
        for a, b, how in sorted(tracedb.edges_from(conn, frontier, forward=forward)):
            if b not in seen:
                seen.add(b)
                nxt.add(b)
                items.append({"code": b, "depth": d, "via": how, "from": a})
        if not nxt:
            break
        frontier = nxt
    return items


def upstream(store: Store, code: str, depth: int | None = None) -> dict[str, Any]:
    key, d = normalise_code(code), _depth(depth)
    with store.reading() as conn:
        return {"code": key, "items": lineage(conn, key, depth=d, forward=False)}


def downstream(store: Store, code: str, depth: int | None = None) -> dict[str, Any]:
    key, d = normalise_code(code), _depth(depth)
    with store.reading() as conn:
        items = lineage(conn, key, depth=d, forward=True)
        st = tracedb.states(conn, [i["code"] for i in items])
    for i in items:
        s = st.get(i["code"])
        i["receiver"] = s["owner"] if s else None
    return {"code": key, "items": items}


def recall_impact(store: Store, code: str) -> dict[str, Any]:
    """Everything downstream of a lot or item, with its last known owner and place."""
    key = normalise_code(code)
    with store.reading() as conn:
        items = lineage(conn, key, depth=MAX_DEPTH, forward=True)
        st = tracedb.states(conn, [i["code"] for i in items])
    affected = []
    by_owner: dict[str, int] = {}
    sold = 0
    for i in items:
        s = st.get(i["code"], {})
        owner = s.get("owner")
        affected.append(
            {
                "code": i["code"],
                "owner": owner,
                "location": s.get("location"),
                "sold": bool(s.get("sold")),
                "depth": i["depth"],
                "via": i["via"],
            }
        )
        sold += bool(s.get("sold"))
        if owner:
            by_owner[owner] = by_owner.get(owner, 0) + 1
    return {
        "code": key,
        "affected": affected,
        "counts": {
            "affected": len(affected),
            "sold": sold,
            "unsold": len(affected) - sold,
            "byOwner": by_owner,
        },
    }


def _serial_order(serial: str) -> tuple[tuple[int, int | str], ...]:
    # Serials 2 before 10: digit runs compare as numbers, the rest as text.
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", serial) if p)


def lot_items(store: Store, code: str) -> dict[str, Any]:
    """The items of a lot the ledger knows: commissioned with its lot number (``ilmd``
    ``cbvmda:lotNumber``) or named with the lot in their Digital Link (an lgtin class),
    in the order they were first recorded, then by serial."""
    if not isinstance(code, str) or not code.strip():
        raise IdentifierError("give a lot code, such as https://id.gs1.org/01/09506000134352/10/L1")
    link = parse_code(code.strip())
    if link.kind != "lot":
        raise IdentifierError(
            f"{code} names {'an' if link.kind == 'item' else 'a'} {link.kind}, not a lot; give "
            "a code with a lot number, such as …/01/09506000134352/10/L1 or an "
            "urn:epc:class:lgtin URN"
        )
    lot = link.canonical
    with store.reading() as conn:
        members = tracedb.lot_members(conn, lot)
    items = []
    for member, first_seq in members:
        try:
            m = parse_code(member)
        except IdentifierError:
            continue
        if m.kind == "item" and m.gtin == link.gtin:
            items.append((first_seq, _serial_order(m.serial or ""), member))
    items.sort()
    return {"lot": lot, "items": [c for _, _, c in items]}


def journey_of(store: Store, code: str) -> tuple[str, list[Step]]:
    """(canonical code, its journey's steps in event-time order)."""
    key = normalise_code(code)
    with store.reading() as conn:
        return key, journey_steps(conn, key)


def stages_of(store: Store, seqs: list[int]) -> dict[int, str]:
    """seq -> journey stage, for those of ``seqs`` that are events."""
    with store.reading() as conn:
        return {s: str(r["stage"]) for s, r in tracedb.event_rows(conn, seqs).items()}
