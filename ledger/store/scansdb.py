"""SQL of the scans table (outside the ledger): recording, pruning and reading scans."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import Engine, case, delete, func, or_, select
from sqlalchemy.engine import Connection

from ledger.store.driver import run, run_many
from ledger.store.schema import scans


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction for scans, apart from the sequencer's lock: scans never wait
    for appends, nor appends for scans. On SQLite its commit skips the fsync (WAL with
    synchronous=NORMAL: a power cut may lose the last scans, never corrupt anything);
    the ledger's own transactions keep synchronous=FULL."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if engine.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA synchronous=NORMAL")
        try:
            with conn.begin():
                yield conn
        finally:
            if raw is not None:
                raw.execute("PRAGMA synchronous=FULL")


def insert_scan(conn: Connection, *, code: str, time: str, region: str, client: str, visitor: str) -> None:
    run(
        conn,
        "INSERT INTO scans (code, time, region, client, visitor) "
        "VALUES (:code, :time, :region, :client, :visitor)",
        {"code": code, "time": time, "region": region, "client": client, "visitor": visitor},
    )


class ScanRow(NamedTuple):
    code: str
    time: str
    region: str
    client: str
    visitor: str


def insert_scans(conn: Connection, rows: Sequence[ScanRow]) -> None:
    """Several scans in one statement per driver call (a batch of the page's scans)."""
    run_many(
        conn,
        "INSERT INTO scans (code, time, region, client, visitor) "
        "VALUES (:code, :time, :region, :client, :visitor)",
        rows,
    )


class Visit(NamedTuple):
    region: str
    visitor: str
    last: str  # time of this visitor's latest scan from this region


def visits_of(conn: Connection, code: str, *, exclude_client: str) -> list[Visit]:
    """The code's distinct (region, visitor) pairs without ``exclude_client`` scans, each
    with its latest time: what its counterfeit signal counts (at most the code's scans,
    which retention bounds), in one statement."""
    rows = run(
        conn,
        "SELECT region, visitor, MAX(time) FROM scans WHERE code = :code AND client <> :exclude "
        "GROUP BY region, visitor",
        {"code": code, "exclude": exclude_client},
    )
    return [Visit(str(r), str(v), str(t)) for r, v, t in rows]


class Tally(NamedTuple):
    regions: int  # distinct regions of the code's scans, without the excluded client's
    after: int  # of those, distinct visitors at or after ``since`` (0 when it is None)
    scans: int  # all the code's scans
    oldest: str | None  # time of its oldest scan
    finding: bool  # whether the finding ``finding_id`` exists


def tally(conn: Connection, code: str, *, since: str | None, exclude_client: str, finding_id: str) -> Tally:
    """What a scan's write needs to know after its insert, in one statement: the counts
    of ``counts_of``, whether retention has anything to prune, whether the code's
    counterfeit finding was raised already."""
    rows = run(
        conn,
        "SELECT COUNT(DISTINCT CASE WHEN client <> :exclude THEN region END), "
        "COUNT(DISTINCT CASE WHEN client <> :exclude AND time >= :since THEN visitor END), COUNT(*), "
        "MIN(time), "
        "(SELECT COUNT(*) FROM findings WHERE id = :finding) FROM scans WHERE code = :code",
        {"exclude": exclude_client, "since": since, "finding": finding_id, "code": code},
    )
    regions, after, n, oldest, found = rows[0]
    return Tally(
        int(regions or 0), int(after or 0) if since is not None else 0, int(n or 0), oldest, bool(found)
    )


def prune_code(conn: Connection, code: str, *, before: str, cap: int) -> int:
    """Delete the code's scans older than ``before`` and all but its newest ``cap``."""
    # One statement (it runs on every scan): the id of the cap-th newest scan is the edge,
    # and everything up to it goes; none when the code has no more than ``cap`` scans.
    newer = scans.alias("newer")
    edge = (
        select(newer.c.id)
        .where(newer.c.code == code)
        .order_by(newer.c.id.desc())
        .offset(cap)
        .limit(1)
        .scalar_subquery()
    )
    return int(
        conn.execute(
            delete(scans).where(scans.c.code == code, or_(scans.c.time < before, scans.c.id <= edge))
        ).rowcount
    )


def prune_all(conn: Connection, *, before: str) -> int:
    return int(conn.execute(delete(scans).where(scans.c.time < before)).rowcount)


def scans_of(conn: Connection, code: str, *, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(scans.c.time, scans.c.region, scans.c.client)
        .where(scans.c.code == code)
        .order_by(scans.c.time.desc(), scans.c.id.desc())
        .limit(limit)
    ).all()
    return [{"time": t, "region": r, "client": c} for t, r, c in rows]


def counts_of(conn: Connection, code: str, *, since: str | None, exclude_client: str) -> tuple[int, int]:
    """(distinct regions of all the code's scans, distinct visitors at or after ``since``),
    both without ``exclude_client`` scans; the second is 0 when ``since`` is None."""
    base = (scans.c.code == code, scans.c.client != exclude_client)
    after = (
        func.count()
        if since is None
        else func.count(case((scans.c.time >= since, scans.c.visitor)).distinct())
    )
    regions, n = conn.execute(select(func.count(scans.c.region.distinct()), after).where(*base)).one()
    return int(regions or 0), int(n or 0) if since is not None else 0


def candidate_codes(conn: Connection, *, min_regions: int, min_scans: int, exclude_client: str) -> list[str]:
    """Codes with at least ``min_regions`` regions or ``min_scans`` visitors (a superset
    of those with a counterfeit signal; the signal itself is decided per code)."""
    rows = conn.execute(
        select(scans.c.code)
        .where(scans.c.client != exclude_client)
        .group_by(scans.c.code)
        .having(
            (func.count(scans.c.region.distinct()) >= min_regions)
            | (func.count(scans.c.visitor.distinct()) >= min_scans)
        )
        .order_by(scans.c.code)
    ).all()
    return [r[0] for r in rows]


def has_table(conn: Connection) -> bool:
    """Whether the scans table is there with its ``visitor`` column (migration 0008)."""
    from sqlalchemy import inspect

    insp = inspect(conn)
    return bool(insp.has_table("scans")) and any(c["name"] == "visitor" for c in insp.get_columns("scans"))
