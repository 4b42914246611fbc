"""Statements run on the DB-API cursor under a SQLAlchemy connection.

On the hot paths (every append, every consumer page, every proof) building a statement
through SQLAlchemy costs more than running it, so those few statements go to the driver
directly, inside the caller's transaction. They are written with ``?`` placeholders;
on PostgreSQL these become ``%s``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection

from ledger.core.errors import DamagedStore

IN_CHUNK = 400  # values in one SQLite IN (...) list, below its bound-parameter limit

# SQLite keeps whatever type a value is written with, whatever the column's declared type:
# a row written outside the ledger may hold TEXT where the ledger wrote bytes. Readers of
# the log convert through these, so such a row is a refusal naming its place, never a
# TypeError (or, worse, bytes(5) read as five zero bytes).
_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", type(None): "NULL", bytes: "BLOB"}


def _sql_type(value: object) -> str:
    return _SQL_TYPES.get(type(value), type(value).__name__)


def as_blob(value: object, column: str, *, seq: int | None = None, checkpoint: int | None = None) -> bytes:
    """A BLOB column's value (``column`` is ``table.column``), or ``DamagedStore``."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise DamagedStore(
        f"{column} holds {_sql_type(value)}, not the bytes the ledger wrote; "
        "the database was changed outside the ledger",
        seq=seq,
        checkpoint=checkpoint,
    )


def as_text(value: object, column: str, *, seq: int | None = None, checkpoint: int | None = None) -> str:
    """A TEXT column's value, or ``DamagedStore``."""
    if type(value) is str:
        return value
    raise DamagedStore(
        f"{column} holds {_sql_type(value)}, not the text the ledger wrote; "
        "the database was changed outside the ledger",
        seq=seq,
        checkpoint=checkpoint,
    )


def as_int(value: object, column: str) -> int:
    """An integer key column's value (a seq, a size, a node), or ``DamagedStore``."""
    if type(value) is int:
        return value
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:40] + "\u2026"
    raise DamagedStore(
        f"a row has {column} {shown} ({_sql_type(value)}), not an integer; "
        "the database was changed outside the ledger"
    )


def is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def placeholders(conn: Connection, sql: str) -> str:
    """``sql`` with the driver's placeholder (``?`` on SQLite, ``%s`` on PostgreSQL)."""
    return sql.replace("?", "%s") if is_pg(conn) else sql


@contextmanager
def cursor(conn: Connection) -> Iterator[Any]:
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cur
    finally:
        cur.close()


def run(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run one statement; its rows, if it returns any."""
    with cursor(conn) as cur:
        cur.execute(placeholders(conn, sql), params)
        return list(cur.fetchall()) if cur.description else []


def rows_in(
    conn: Connection, sql: str, column: str, values: Sequence[Any], *extra: Any
) -> list[tuple[Any, ...]]:
    """``sql`` ends with "<column> IN"; run it for every value, in chunks (SQLite) or as
    one ``= ANY`` array (PostgreSQL). ``extra`` parameters follow the values'."""
    if not values:
        return []
    head = sql[: -len(" IN")]
    assert head.endswith(column)
    rows: list[tuple[Any, ...]] = []
    with cursor(conn) as cur:
        if is_pg(conn):
            cur.execute(head + " = ANY(%s)", (list(values), *extra))
            rows = list(cur.fetchall())
        else:
            for i in range(0, len(values), IN_CHUNK):
                chunk = list(values[i : i + IN_CHUNK])
                cur.execute(head + " IN (" + ",".join("?" * len(chunk)) + ")", (*chunk, *extra))
                rows += cur.fetchall()
    return rows
