"""SQL of the regulator's reads: credit inputs, statistics and the parties table.

Everything here reads projections or raw entry bytes; the meaning of a body is decided
by the callers (``ledger.queries.credit``, ``ledger.queries.stats``), which decode the bytes they get.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ledger.store.driver import IN_CHUNK, as_blob, as_int
from ledger.store.schema import entries, events, ident_entries, lineage, parties


def entries_of_kind(conn: Connection, kind: str) -> list[tuple[int, bytes]]:
    """(seq, entry bytes) of every entry of one statement kind, in log order."""
    rows = conn.execute(
        select(entries.c.seq, entries.c.entry).where(entries.c.kind == kind).order_by(entries.c.seq)
    )
    return [
        (seq, as_blob(e, "entries.entry", seq=seq))
        for seq, e in ((as_int(s, "entries.seq"), e) for s, e in rows)
    ]


def entry_bytes(conn: Connection, seqs: Collection[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    wanted = sorted(set(seqs))
    for i in range(0, len(wanted), IN_CHUNK):
        for s, e in conn.execute(
            select(entries.c.seq, entries.c.entry).where(entries.c.seq.in_(wanted[i : i + IN_CHUNK]))
        ):
            seq = as_int(s, "entries.seq")
            out[seq] = as_blob(e, "entries.entry", seq=seq)
    return out


def event_seqs(
    conn: Connection, *, stage: str | None = None, activities: Collection[str] | None = None
) -> list[tuple[int, str, str]]:
    """(seq, event_time_utc, signer) of the events of a stage and/or activities."""
    q = select(events.c.seq, events.c.event_time_utc, events.c.signer).order_by(events.c.seq)
    if stage is not None:
        q = q.where(events.c.stage == stage)
    if activities is not None:
        q = q.where(events.c.activity.in_(list(activities)))
    return [(int(s), str(t), str(g)) for s, t, g in conn.execute(q)]


def codes_of(conn: Connection, seqs: Collection[int]) -> dict[int, set[str]]:
    """seq -> every identifier that event names (any part)."""
    out: dict[int, set[str]] = {}
    wanted = sorted(set(seqs))
    for i in range(0, len(wanted), IN_CHUNK):
        for code, seq in conn.execute(
            select(ident_entries.c.code, ident_entries.c.seq).where(
                ident_entries.c.seq.in_(wanted[i : i + IN_CHUNK])
            )
        ):
            out.setdefault(int(seq), set()).add(code)
    return out


def produced_codes(conn: Connection, party: str) -> set[str]:
    """Identifiers ``party`` named in production-stage events it signed, and their lots."""
    codes = {
        r[0]
        for r in conn.execute(
            select(ident_entries.c.code)
            .distinct()
            .join(events, events.c.seq == ident_entries.c.seq)
            .where(events.c.signer == party, events.c.stage == "production")
        )
    }
    lots: set[str] = set()
    wanted = list(codes)
    for i in range(0, len(wanted), IN_CHUNK):
        lots.update(
            r[0]
            for r in conn.execute(
                select(lineage.c.src)
                .distinct()
                .where(lineage.c.kind == "lot", lineage.c.dst.in_(wanted[i : i + IN_CHUNK]))
            )
        )
    return codes | lots


def party_rows(conn: Connection) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "name": r.name, "roles": r.roles.split(","), "registered_seq": int(r.registered_seq)}
        for r in conn.execute(select(parties).order_by(parties.c.registered_seq))
    ]


def events_by_stage_month(conn: Connection) -> list[tuple[str, str, int]]:
    """(stage, YYYY-MM of the event time in UTC, count)."""
    month = func.substr(events.c.event_time_utc, 1, 7)
    rows = conn.execute(
        select(events.c.stage, month, func.count())
        .group_by(events.c.stage, month)
        .order_by(month, events.c.stage)
    )
    return [(str(s), str(m), int(n)) for s, m, n in rows]


def entries_by_kind(conn: Connection) -> list[tuple[str, int]]:
    rows = conn.execute(
        select(entries.c.kind, func.count()).group_by(entries.c.kind).order_by(entries.c.kind)
    )
    return [(str(k), int(n)) for k, n in rows]
