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

IN_CHUNK = 400  # values in one SQLite IN (...) list, below its bound-parameter limit


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


def rows_in(conn: Connection, sql: str, column: str, values: Sequence[Any], *extra: Any
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
