"""Projection tables built beside the live ones: the audit's re-derivation (temporary
tables on its own connection) and ``suyuan reindex``'s rebuild while appends go on.

A temporary table of the same name hides the live one from the connection that made it
(SQLite and PostgreSQL both look in the temporary schema first), so the projector's own
statements, which name tables unqualified, write the rebuild there unchanged; the live
tables stay readable under their schema's name. The connection must not be returned to
the pool with them: ``drop_temp`` (or invalidating the connection) ends that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from ledger.core.errors import LedgerError
from ledger.store.driver import run
from ledger.store.schema import metadata

# The seq of the entry that last shaped a row: how far into the log a difference lies.
_TOUCHED: dict[str, str] = {
    "parties": "x.registered_seq",
    "party_keys": "COALESCE(x.valid_until, x.valid_from)",
    "log_meta": "0",
    "negative_list": "x.since_seq",
    "positive_list": "x.since_seq",
    "gs1_prefixes": "x.since_seq",
    "prefix_delegations": "x.since_seq",
    "customs_codes": "x.since_seq",
    "events": "x.seq",
    "ident_entries": "x.seq",
    "containment": "COALESCE(x.end_seq, x.start_seq)",
    "lineage": "x.seq",
    "biz_transactions": "x.seq",
    "current_state": "x.last_seq",
    "findings": "x.seq",
    "trade_documents": "x.seq",
    "code_marks": "x.seq",
    "private_commitments": "x.seq",
    "event_keys": "x.seq",
    "master_data": "x.seq",
}

# Findings raised from scans live outside the ledger: only those entries raised compare.
_FINDING_INDEXES = ("finding_parties", "finding_codes")


def live_schema(conn: Connection) -> str:
    """The schema that holds the live tables, quoted for SQL."""
    if conn.dialect.name == "sqlite":
        return "main"
    name = run(conn, "SELECT current_schema()")[0][0]
    return '"' + str(name).replace('"', '""') + '"'


def temp_schema(conn: Connection) -> str:
    return "temp" if conn.dialect.name == "sqlite" else "pg_temp"


def create_temp(conn: Connection, tables: Iterable[str]) -> None:
    """Empty temporary twins of ``tables``, with their indexes, on this connection."""
    for name in tables:
        t = metadata.tables[name]
        ddl = str(CreateTable(t).compile(dialect=conn.dialect)).strip()
        assert ddl.startswith("CREATE TABLE ")
        conn.exec_driver_sql("CREATE TEMPORARY TABLE " + ddl[len("CREATE TABLE ") :])
        for ix in t.indexes:
            conn.exec_driver_sql(str(CreateIndex(ix).compile(dialect=conn.dialect)))


def drop_temp(conn: Connection, tables: Iterable[str]) -> None:
    schema = temp_schema(conn)
    for name in tables:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{name}")


@dataclass(frozen=True)
class Difference:
    table: str
    seq: int  # the first seq at which the stored table and the rebuild part


def _rows(conn: Connection, table: str, schema: str) -> str:
    """A SELECT of ``table``'s rows in ``schema`` that entries derive, with their seq last."""
    t = metadata.tables[table]
    cols = ", ".join(f"x.{c.name}" for c in t.columns)
    if table == "findings":
        return f"SELECT {cols}, x.seq AS touched FROM {schema}.findings x WHERE x.source = 'entry'"
    if table in _FINDING_INDEXES:
        return (
            f"SELECT {cols}, f.seq AS touched FROM {schema}.{table} x "
            f"JOIN {schema}.findings f ON f.id = x.finding WHERE f.source = 'entry'"
        )
    return f"SELECT {cols}, {_TOUCHED[table]} AS touched FROM {schema}.{table} x"


def first_differences(
    conn: Connection, tables: Sequence[str], *, stored: str, derived: str, limit: int = 1000
) -> list[Difference]:
    """Each table whose rows in schema ``stored`` differ from those in ``derived``, with
    the first seq where they part: a row one side lacks counts at its own seq, a row both
    sides key differently at the later of the two (that is where it went astray)."""
    out: list[Difference] = []
    for table in tables:
        t = metadata.tables[table]
        pk = [i for i, c in enumerate(t.columns) if c.primary_key]
        a, b = _rows(conn, table, stored), _rows(conn, table, derived)
        sides: list[list[Any]] = []
        for one, other in ((a, b), (b, a)):
            sides.append(
                run(conn, f"SELECT * FROM ({one} EXCEPT {other}) d ORDER BY touched LIMIT {int(limit)}")
            )
        by_key: dict[tuple[Any, ...], int] = {}
        for rows in sides:
            for r in rows:
                key = tuple(r[i] for i in pk)
                touched = int(r[-1])
                by_key[key] = max(by_key.get(key, touched), touched)
        if by_key:
            out.append(Difference(table, min(by_key.values())))
    return out


# --- suyuan reindex: a rebuild beside the live tables, swapped in under the write lock ----


REBUILD_MARK = "__reindex_"


def claim_rebuild(conn: Connection, *, live: str) -> list[str]:
    """PostgreSQL: take the reindex lock of ``live`` for this connection's session (an
    advisory lock: a crashed reindex's session ends, and its lock with it), or refuse when
    another reindex holds it; then drop the rebuild schemas crashed reindexes left (none
    can be in use: only the lock's holder builds one). Returns their names. SQLite: the
    rebuild is in temporary tables, which end with their connection; nothing to do."""
    if conn.dialect.name == "sqlite":
        return []
    bare = live.strip('"').replace('""', '"')
    held = run(conn, "SELECT pg_try_advisory_lock(hashtext(:key))", {"key": "suyuan reindex " + bare})
    if not held[0][0]:
        raise LedgerError(
            f"another `suyuan reindex` is rebuilding schema {bare}; wait for it to finish",
            code="reindex_running",
        )
    prefix = bare + REBUILD_MARK
    stale = [
        str(name)
        for (name,) in run(
            conn, "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :prefix)", {"prefix": prefix}
        )
        if _is_rebuild_name(str(name)[len(prefix) :])
    ]
    for name in stale:
        conn.exec_driver_sql('DROP SCHEMA "' + name.replace('"', '""') + '" CASCADE')
    return stale


def _is_rebuild_name(suffix: str) -> bool:
    return len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix)


def create_rebuild(conn: Connection, tables: Sequence[str], *, live: str) -> str | None:
    """Empty twins of ``tables`` that hide the live ones from this connection; returns the
    PostgreSQL schema that holds them (None on SQLite, where they are temporary tables).

    PostgreSQL: a schema of their own, first in this connection's search path, so that the
    swap is a rename. SQLite has no such move between databases: temporary tables, copied
    into the live ones at the swap."""
    if conn.dialect.name == "sqlite":
        create_temp(conn, tables)
        return None
    name = '"' + live.strip('"').replace('""', '"') + REBUILD_MARK + uuid.uuid4().hex[:8] + '"'
    conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    conn.exec_driver_sql(f"SET search_path TO {name}, {live}")
    for table in tables:
        t = metadata.tables[table]
        conn.exec_driver_sql(str(CreateTable(t).compile(dialect=conn.dialect)))
        for ix in t.indexes:
            conn.exec_driver_sql(str(CreateIndex(ix).compile(dialect=conn.dialect)))
    return name


def lock_live(conn: Connection, tables: Sequence[str], *, live: str, timeout_ms: int | None) -> None:
    """PostgreSQL: lock the live tables for the swap, giving up after ``timeout_ms`` (None:
    wait) with SQLSTATE 55P03, before anything of the swap is done."""
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(timeout_ms or 0)}")
    conn.exec_driver_sql(
        "LOCK TABLE " + ", ".join(f"{live}.{t}" for t in tables) + " IN ACCESS EXCLUSIVE MODE"
    )
    conn.exec_driver_sql("SET LOCAL lock_timeout = 0")


def _copy(conn: Connection, table: str, *, into: str, src: str, where: str = "") -> None:
    """Copy rows by column name: a table a migration made may order its columns otherwise."""
    cols = ", ".join(c.name for c in metadata.tables[table].columns)
    conn.exec_driver_sql(
        f"INSERT INTO {into}.{table} ({cols}) SELECT {cols} FROM {src}.{table}"
        + (f" WHERE {where}" if where else "")
    )


def swap_in(conn: Connection, tables: Sequence[str], *, live: str, rebuilt: str | None) -> None:
    """Replace the live tables by the rebuilt ones, inside the caller's write transaction;
    findings raised from scans (no entry holds them) are carried over."""
    scans = f"SELECT id FROM {live}.findings WHERE source = 'scan'"
    if rebuilt is None:  # SQLite: copy the temporary tables in
        for table in tables:
            if table == "findings":
                conn.exec_driver_sql(f"DELETE FROM {live}.findings WHERE source <> 'scan'")
            elif table in _FINDING_INDEXES:
                conn.exec_driver_sql(f"DELETE FROM {live}.{table} WHERE finding NOT IN ({scans})")
            else:
                conn.exec_driver_sql(f"DELETE FROM {live}.{table}")
        for table in tables:
            _copy(conn, table, into=live, src="temp")
        return
    _copy(conn, "findings", into=rebuilt, src=live, where="source = 'scan'")
    for table in _FINDING_INDEXES:
        _copy(conn, table, into=rebuilt, src=live, where=f"finding IN ({scans})")
    for table in tables:
        conn.exec_driver_sql(f"DROP TABLE {live}.{table}")
        conn.exec_driver_sql(f"ALTER TABLE {rebuilt}.{table} SET SCHEMA {live}")
    conn.exec_driver_sql(f"DROP SCHEMA {rebuilt}")
