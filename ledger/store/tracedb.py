"""SQL of the traceability projections: writing a batch's rows, and the reads that the
journey, lineage and recall queries are made of."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ledger.store.driver import IN_CHUNK, as_blob, as_int, rows_in, run, run_many
from ledger.store.schema import (
    PROJECTION_TABLES,
    checkpoints,
    entries,
    events,
    ident_entries,
    lineage,
    metadata,
)

_UPSERT_STATE = (
    "INSERT INTO current_state (code, disposition, owner, location, sold, last_seq, last_utc) "
    "VALUES (:code, :disposition, :owner, :location, :sold, :last_seq, :last_utc) "
    "ON CONFLICT (code) DO UPDATE SET "
    "disposition = COALESCE(excluded.disposition, current_state.disposition), "
    "owner = COALESCE(excluded.owner, current_state.owner), "
    "location = COALESCE(excluded.location, current_state.location), "
    "sold = CASE WHEN excluded.sold = 1 THEN 1 ELSE current_state.sold END, "
    "last_seq = excluded.last_seq, last_utc = excluded.last_utc"
)


class TraceRows(NamedTuple):
    """The rows one batch of events adds to the trace tables, in seq order (built by
    ``ledger.epcis.projection.TraceBatch``)."""

    # (seq, type, event_time, event_time_utc, stage, activity, biz_step, disposition,
    #  action, signer, read_point, biz_location)
    events: Sequence[tuple[Any, ...]]
    idents: Sequence[tuple[str, int, str]]  # (code, seq, part)
    # (src, dst, seq, kind, src_quantity, dst_quantity)
    lineage: Sequence[tuple[str, str, int, str, str | None, str | None]]
    biz: Sequence[tuple[str, str, int]]  # (type, id, seq)
    # ("add", (child, parent, seq, utc)) | ("end", (seq, utc, child, parent))
    # | ("end_all", (seq, utc, parent)), applied in this order.
    containment: Sequence[tuple[str, tuple[Any, ...]]]
    # code -> [disposition, owner, location, sold, last_seq, last_utc]
    state: Mapping[str, Sequence[Any]]


_INSERT_EVENT = (
    "INSERT INTO events (seq, type, event_time, event_time_utc, stage, activity, biz_step, "
    "disposition, action, signer, read_point, biz_location) VALUES (:seq, :type, :event_time, "
    ":event_time_utc, :stage, :activity, :biz_step, :disposition, :action, :signer, :read_point, "
    ":biz_location)"
)
_CONTAINMENT = {
    "add": "INSERT INTO containment (child, parent, start_seq, start_utc) "
    "VALUES (:child, :parent, :start_seq, :start_utc) ON CONFLICT DO NOTHING",
    "end": "UPDATE containment SET end_seq = :end_seq, end_utc = :end_utc "
    "WHERE child = :child AND parent = :parent AND end_seq IS NULL",
    "end_all": "UPDATE containment SET end_seq = :end_seq, end_utc = :end_utc "
    "WHERE parent = :parent AND end_seq IS NULL",
}


def write_trace(conn: Connection, batch: TraceRows) -> None:
    """Insert one batch's projection rows (inside the append transaction)."""
    if not batch.events:
        return
    run_many(conn, _INSERT_EVENT, batch.events)
    run_many(conn, "INSERT INTO ident_entries (code, seq, part) VALUES (:code, :seq, :part)", batch.idents)
    run_many(
        conn,
        "INSERT INTO lineage (src, dst, seq, kind, src_quantity, dst_quantity) "
        "VALUES (:src, :dst, :seq, :kind, :src_quantity, :dst_quantity)",
        batch.lineage,
    )
    run_many(conn, "INSERT INTO biz_transactions (type, id, seq) VALUES (:type, :id, :seq)", batch.biz)
    # Containment changes apply in order: an unpack may follow a pack in one batch.
    pending: list[tuple[Any, ...]] = []
    kind = None
    for op, row in [*batch.containment, ("flush", ())]:
        if op != kind and pending:
            run_many(conn, _CONTAINMENT[kind], pending)  # type: ignore[index]
            pending = []
        kind = op
        pending.append(row)
    run_many(conn, _UPSERT_STATE, [(code, *v) for code, v in batch.state.items()])


def dump_projections(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection row in a stable order, for comparing a rebuild with the original."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in PROJECTION_TABLES:
        t = metadata.tables[name]
        rows = conn.execute(select(t).order_by(*t.primary_key.columns)).all()
        out[name] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    return out


# --- reads ---------------------------------------------------------------------------------


def seqs_naming(conn: Connection, codes: Collection[str]) -> dict[int, tuple[str, str]]:
    """seq -> (code, part) of every event naming any of ``codes``."""
    out: dict[int, tuple[str, str]] = {}
    wanted = list(codes)
    for i in range(0, len(wanted), IN_CHUNK):
        for code, seq, part in conn.execute(
            select(ident_entries.c.code, ident_entries.c.seq, ident_entries.c.part).where(
                ident_entries.c.code.in_(wanted[i : i + IN_CHUNK])
            )
        ):
            out.setdefault(int(seq), (code, part))
    return out


def event_rows(conn: Connection, seqs: Collection[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    wanted = sorted(seqs)
    for i in range(0, len(wanted), IN_CHUNK):
        for r in conn.execute(select(events).where(events.c.seq.in_(wanted[i : i + IN_CHUNK]))):
            out[int(r.seq)] = dict(r._mapping)
    return out


def edges_from(conn: Connection, codes: Collection[str], *, forward: bool) -> list[tuple[str, str, str]]:
    """(from, to, via) lineage and containment edges leaving ``codes``.

    Forward: what each became (transformation outputs, lot items) or held (children).
    Backward: what each was made of (inputs, its lot) or packed in (parents).
    """
    # Straight to the driver: a lot's downstream asks about a thousand codes at each
    # depth, and building those IN lists through SQLAlchemy cost more than the lookups.
    wanted = list(codes)
    src, dst = ("src", "dst") if forward else ("dst", "src")
    outer, inner = ("parent", "child") if forward else ("child", "parent")
    out: list[tuple[str, str, str]] = [
        (a, b, kind)
        for a, b, kind in rows_in(
            conn, f"SELECT DISTINCT {src}, {dst}, kind FROM lineage WHERE {src} IN", src, wanted
        )
    ]
    out += [
        (a, b, "aggregation")
        for a, b in rows_in(
            conn, f"SELECT DISTINCT {outer}, {inner} FROM containment WHERE {outer} IN", outer, wanted
        )
    ]
    return out


_STATE_COLUMNS = ("code", "disposition", "owner", "location", "sold", "last_seq", "last_utc")


def states(conn: Connection, codes: Collection[str]) -> dict[str, dict[str, Any]]:
    """code -> its current state row, for those of ``codes`` the ledger has seen."""
    rows = rows_in(
        conn, f"SELECT {', '.join(_STATE_COLUMNS)} FROM current_state WHERE code IN", "code", list(codes)
    )
    return {r[0]: dict(zip(_STATE_COLUMNS, r, strict=True)) for r in rows}


def produced_by(conn: Connection, codes: Collection[str], *, party: str) -> set[str]:
    """Those of ``codes`` that ``party`` named in a production-stage event of its own."""
    out: set[str] = set()
    wanted = list(codes)
    for i in range(0, len(wanted), IN_CHUNK):
        rows = conn.execute(
            select(ident_entries.c.code)
            .distinct()
            .join(events, events.c.seq == ident_entries.c.seq)
            .where(
                ident_entries.c.code.in_(wanted[i : i + IN_CHUNK]),
                events.c.signer == party,
                events.c.stage == "production",
            )
        )
        out.update(r[0] for r in rows)
    return out


def lot_members(conn: Connection, lot: str) -> list[tuple[str, int]]:
    """(code, first seq) of everything the ledger linked to ``lot`` as one of its members:
    items commissioned with its lot number, or named with ``/10/{lot}`` in their link."""
    rows = conn.execute(
        select(lineage.c.dst, func.min(lineage.c.seq))
        .where(lineage.c.src == lot, lineage.c.kind == "lot")
        .group_by(lineage.c.dst)
    )
    return [(r[0], int(r[1])) for r in rows]


class SeqRange(NamedTuple):
    lo: int
    hi: int | None  # exclusive; None: no bound


def seq_bounds_for_time(conn: Connection, *, since: str | None, until: str | None) -> SeqRange:
    """[lo, hi) of the seqs the ledger recorded at ``since`` <= time < ``until``.

    Every entry of a batch carries the batch's ledger time, and so does the checkpoint the
    batch ends with; ledger times only grow, so two index reads on checkpoints bound the
    range without reading any entry.
    """
    lo, hi = 0, None
    if since is not None:
        # The last batch recorded before ``since`` ends where the range starts.
        row = conn.execute(
            select(checkpoints.c.size)
            .where(checkpoints.c.time < since)
            .order_by(checkpoints.c.size.desc())
            .limit(1)
        ).first()
        lo = int(row[0]) if row else 0
    if until is not None:
        row = conn.execute(
            select(checkpoints.c.size)
            .where(checkpoints.c.time < until)
            .order_by(checkpoints.c.size.desc())
            .limit(1)
        ).first()
        hi = int(row[0]) if row else 0
    return SeqRange(lo=lo, hi=hi)


class PageEntry(NamedTuple):
    seq: int
    leaf_hash: bytes
    entry: bytes


def entry_page(
    conn: Connection,
    *,
    after: int,
    limit: int,
    lo: int = 0,
    hi: int | None = None,
    signer: str | None = None,
    stage: str | None = None,
) -> list[PageEntry]:
    """Up to ``limit`` entries with seq > ``after`` in
    [lo, hi), by signer and (for events) stage, in seq order: a keyset page."""
    q = select(entries.c.seq, entries.c.leaf_hash, entries.c.entry)
    if stage is not None:
        q = q.join(events, events.c.seq == entries.c.seq).where(events.c.stage == stage)
    q = q.where(entries.c.seq > after, entries.c.seq >= lo)
    if hi is not None:
        q = q.where(entries.c.seq < hi)
    if signer is not None:
        q = q.where(entries.c.signer == signer)
    rows = conn.execute(q.order_by(entries.c.seq).limit(limit)).all()
    out = []
    for s, h, e in rows:
        seq = as_int(s, "entries.seq")
        out.append(
            PageEntry(
                seq=seq,
                leaf_hash=as_blob(h, "entries.leaf_hash", seq=seq),
                entry=as_blob(e, "entries.entry", seq=seq),
            )
        )
    return out


class Marked(NamedTuple):
    seq: int
    utc: str


def first_recall(conn: Connection, code: str, *, before: int) -> Marked | None:
    """The seq and UTC time of the first recall mark of ``code`` below seq ``before``."""
    rows = run(
        conn,
        "SELECT seq, utc FROM code_marks WHERE code = :code AND mark = 'recalled' AND seq < :before",
        {"code": code, "before": before},
    )
    return Marked(seq=int(rows[0][0]), utc=str(rows[0][1])) if rows else None


class LotEdge(NamedTuple):
    lot: str
    seq: int


def lot_edges_to(conn: Connection, code: str, *, before: int) -> list[LotEdge]:
    """The lots, with the seq of the entry, that entries below ``before`` made ``code`` an
    item of."""
    return [
        LotEdge(lot=str(a), seq=int(b))
        for a, b in run(
            conn,
            "SELECT src, seq FROM lineage WHERE kind = 'lot' AND dst = :code AND seq < :before",
            {"code": code, "before": before},
        )
    ]


class Packing(NamedTuple):
    container: str
    seq: int


def packings_of(conn: Connection, child: str, *, before: int) -> list[Packing]:
    """The containers, with the seq of the entry, that entries below ``before`` packed
    ``child`` in."""
    return [
        Packing(container=str(a), seq=int(b))
        for a, b in run(
            conn,
            "SELECT parent, start_seq FROM containment WHERE child = :child AND start_seq < :before",
            {"child": child, "before": before},
        )
    ]


def lineage_seqs(conn: Connection, src: str, *, kind: str) -> list[int]:
    """Seqs of the events that drew ``kind`` lineage edges from ``src`` (for a lot: the
    commissioning events of its items)."""
    return [
        int(r[0])
        for r in conn.execute(
            select(lineage.c.seq)
            .where(lineage.c.src == src, lineage.c.kind == kind)
            .distinct()
            .order_by(lineage.c.seq)
        )
    ]
