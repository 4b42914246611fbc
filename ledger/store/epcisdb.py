"""SQL of the EPCIS 2.0 query interface: events selected by what the traceability
projections hold (``events``, ``ident_entries``, ``biz_transactions``), a keyset page at a
time, the distinct values behind the vocabulary lists, and the named queries of
``/epcis/queries`` (a table outside the ledger, like scans: not evidence, not derived).

Every statement is a read but for the named queries' insert and delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from sqlalchemy import delete, func, insert, literal, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ledger.store import capturedb
from ledger.store.driver import as_blob, as_int
from ledger.store.schema import (
    biz_transactions,
    entries,
    epcis_queries,
    event_keys,
    events,
    ident_entries,
)

PARTS: Final = ("epc", "parent", "child", "input", "output", "class")


@dataclass(frozen=True)
class CodeMatch:
    """Events naming, in one of ``parts``, a code equal to one of ``exact`` or starting with
    one of ``prefixes`` (an EPC pattern such as every serial of one GTIN)."""

    parts: tuple[str, ...]
    exact: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventSelection:
    """Which events, in which order: every non-empty tuple is one condition (a value IN the
    tuple), and all conditions hold together."""

    types: tuple[str, ...] = ()
    time_ge: str | None = None  # event_time_utc bounds, in its fixed-width form
    time_lt: str | None = None
    seq_lo: int = 0  # record-time bounds as seqs: [seq_lo, seq_hi)
    seq_hi: int | None = None
    actions: tuple[str, ...] = ()
    biz_steps: tuple[str, ...] = ()
    dispositions: tuple[str, ...] = ()
    read_points: tuple[str, ...] = ()
    biz_locations: tuple[str, ...] = ()
    codes: tuple[CodeMatch, ...] = ()
    biz_transactions: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (type, ids)
    # Capture keys (ledger/epcis/event_hash.py): an event's eventID, else its event hash.
    event_keys: tuple[str, ...] = ()
    by_event_time: bool = False  # else by seq, which is record-time order
    descending: bool = False


class Position(NamedTuple):
    """Where a page ended: the next page starts strictly after it in the selection's order."""

    time: str | None
    seq: int


class EventRow(NamedTuple):
    seq: int
    event_time_utc: str
    leaf_hash: bytes
    entry: bytes


def _in(column: Any, values: tuple[str, ...]) -> ColumnElement[bool] | None:
    return column.in_(values) if values else None


def _codes(match: CodeMatch) -> ColumnElement[bool]:
    code = ident_entries.c.code
    alternatives: list[ColumnElement[bool]] = []
    if match.exact:
        alternatives.append(code.in_(match.exact))
    # substr, not LIKE (case-insensitive on SQLite) or a range (collation-dependent on
    # PostgreSQL): exact on both stores, at the price of a scan of the index.
    alternatives += [func.substr(code, 1, len(p)) == p for p in match.prefixes]
    return events.c.seq.in_(
        select(ident_entries.c.seq).where(ident_entries.c.part.in_(match.parts), or_(*alternatives))
    )


def _conditions(sel: EventSelection) -> list[ColumnElement[bool]]:
    e = events.c
    found = [
        _in(e.type, sel.types),
        _in(e.action, sel.actions),
        _in(e.biz_step, sel.biz_steps),
        _in(e.disposition, sel.dispositions),
        _in(e.read_point, sel.read_points),
        _in(e.biz_location, sel.biz_locations),
        None if sel.time_ge is None else e.event_time_utc >= sel.time_ge,
        None if sel.time_lt is None else e.event_time_utc < sel.time_lt,
        e.seq >= sel.seq_lo if sel.seq_lo else None,
        None if sel.seq_hi is None else e.seq < sel.seq_hi,
    ]
    out = [c for c in found if c is not None]
    out += [_codes(m) for m in sel.codes]
    bt = biz_transactions.c
    out += [e.seq.in_(select(bt.seq).where(bt.type == t, bt.id.in_(ids))) for t, ids in sel.biz_transactions]
    if sel.event_keys:
        k = event_keys.c
        ids = sorted({capturedb.key_id(key) for key in sel.event_keys})
        out.append(e.seq.in_(select(k.seq).where(k.key_id.in_(ids), k.event_key.in_(sel.event_keys))))
    return out


def select_events(
    conn: Connection, sel: EventSelection, *, after: Position | None, limit: int
) -> list[EventRow]:
    """Up to ``limit`` events of ``sel`` after ``after``, in its order, with their entries."""
    e = events.c
    q = (
        select(e.seq, e.event_time_utc, entries.c.leaf_hash, entries.c.entry)
        .join(entries, entries.c.seq == e.seq)
        .where(*_conditions(sel))
    )
    if sel.by_event_time:
        key: list[Any] = [e.event_time_utc, e.seq]
        if after is not None:
            mark = tuple_(literal(after.time), literal(after.seq))
            q = q.where(tuple_(*key) < mark if sel.descending else tuple_(*key) > mark)
    else:
        key = [e.seq]
        if after is not None:
            q = q.where(e.seq < after.seq if sel.descending else e.seq > after.seq)
    q = q.order_by(*[k.desc() if sel.descending else k.asc() for k in key]).limit(limit)
    out = []
    for s, t, h, raw in conn.execute(q):
        seq = as_int(s, "events.seq")
        out.append(
            EventRow(seq, t, as_blob(h, "entries.leaf_hash", seq=seq), as_blob(raw, "entries.entry", seq=seq))
        )
    return out


Vocabulary = Literal["biz_step", "disposition", "read_point", "biz_location", "type"]


def distinct_values(conn: Connection, column: Vocabulary, *, after: str | None, limit: int) -> list[str]:
    """The distinct non-null values of one column of ``events``, in order, after ``after``."""
    col = events.c[column]
    q = select(col).distinct().where(col.is_not(None))
    if after is not None:
        q = q.where(col > after)
    return [r[0] for r in conn.execute(q.order_by(col).limit(limit))]


def known_codes(conn: Connection, *, after: str | None, limit: int) -> list[str]:
    """Distinct instance identifiers events name (EPCs, parents, children, inputs,
    outputs), in order, after ``after``: the primary key's leading column, so no sort."""
    c = ident_entries.c
    q = select(c.code).distinct().where(c.part.in_(("epc", "parent", "child", "input", "output")))
    if after is not None:
        q = q.where(c.code > after)
    return [r[0] for r in conn.execute(q.order_by(c.code).limit(limit))]


# --- named queries -------------------------------------------------------------------------


class NamedQuery(NamedTuple):
    name: str
    query: str  # the EPCIS query as JSON text
    owner: str
    created: str


def save_query(conn: Connection, q: NamedQuery) -> bool:
    """Store ``q``; False when a query of that name exists (nothing is changed)."""
    t = epcis_queries.c
    if conn.execute(select(t.name).where(t.name == q.name)).first() is not None:
        return False
    conn.execute(insert(epcis_queries).values(name=q.name, query=q.query, owner=q.owner, created=q.created))
    return True


def named_query(conn: Connection, name: str) -> NamedQuery | None:
    t = epcis_queries.c
    r = conn.execute(select(t.name, t.query, t.owner, t.created).where(t.name == name)).first()
    return None if r is None else NamedQuery(*r)


def named_queries(conn: Connection, *, after: str | None, limit: int) -> list[NamedQuery]:
    t = epcis_queries.c
    q = select(t.name, t.query, t.owner, t.created)
    if after is not None:
        q = q.where(t.name > after)
    return [NamedQuery(*r) for r in conn.execute(q.order_by(t.name).limit(limit))]


def count_queries(conn: Connection, owner: str) -> int:
    t = epcis_queries.c
    return int(conn.execute(select(func.count()).where(t.owner == owner)).scalar_one())


def delete_query(conn: Connection, name: str) -> None:
    conn.execute(delete(epcis_queries).where(epcis_queries.c.name == name))
