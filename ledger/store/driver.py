"""Statements run on the DB-API cursor under a SQLAlchemy connection.

On the hot paths (every append, every consumer page, every proof) building a statement
through SQLAlchemy costs more than running it, so those few statements go to the driver
directly, inside the caller's transaction. They are written once, with SQLAlchemy's named
parameters (``:seq``), and compiled by SQLAlchemy once per dialect into the driver's own
positional style (``?`` on SQLite, ``%s`` on PostgreSQL) with the order of its
parameters: nothing rewrites the text afterwards, so a literal ``?`` (PostgreSQL's JSONB
operator, a string) or ``%`` means what it says on either database. A parameter that
holds a list (``IN :codes``) is compiled as SQLAlchemy's expanding parameter and given
one placeholder per value when it runs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Dialect

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


class Bound(NamedTuple):
    """A statement as the driver takes it."""

    sql: str  # in the driver's positional style; lists still as SQLAlchemy's markers
    names: tuple[str, ...]  # the parameter of each placeholder, in order (may repeat)
    lists: tuple[str, ...]  # the parameters holding a list of values, sorted
    marker: str  # the driver's placeholder


_MARKERS = {"qmark": "?", "format": "%s"}
_POSITIONAL: dict[str, Dialect] = {}
_BOUND: dict[tuple[str, str, tuple[str, ...]], Bound] = {}
# A list's statement with its lists expanded, by its placeholder (a statement with lists
# only compiles to the same text for every driver) and the lists' lengths.
_EXPANDED: dict[tuple[str, str, tuple[int, ...]], str] = {}
_MAX_CACHED = 4096  # of each (a few statements are built per call: shadow tables, pages)
_VALUES = ("values",)


def _positional(dialect: Dialect) -> Dialect:
    """``dialect``, or one of its driver with the positional ``format`` style."""
    if dialect.paramstyle in _MARKERS:
        return dialect
    key = f"{dialect.name}+{dialect.driver}"
    got = _POSITIONAL.get(key)
    if got is None:
        got = _POSITIONAL[key] = type(dialect)(paramstyle="format")  # type: ignore[call-arg]
    return got


def _compile(dialect: Dialect, sql: str, lists: tuple[str, ...]) -> Bound:
    positional = _positional(dialect)
    clause = text(sql)
    names = tuple(sorted(set(lists)))
    if names:
        clause = clause.bindparams(*(bindparam(n, expanding=True) for n in names))
    compiled = clause.compile(dialect=positional)
    return Bound(compiled.string, tuple(compiled.positiontup or ()), names, _MARKERS[positional.paramstyle])


def bound(conn: Connection, sql: str, *, lists: Collection[str] = ()) -> Bound:
    """``sql`` (named parameters; ``lists``: those holding a list, each written
    ``IN :name``) compiled for the connection's driver, once per dialect."""
    names = lists if type(lists) is tuple else tuple(lists)
    key = (conn.dialect.name, sql, names)
    got = _BOUND.get(key)
    if got is None:
        if len(_BOUND) >= _MAX_CACHED:
            _BOUND.clear()
        got = _BOUND[key] = _compile(conn.dialect, sql, names)
    return got


def expanded(b: Bound, lengths: tuple[int, ...]) -> str:
    """``b``'s statement with its lists (in ``b.lists`` order) of these lengths; an empty
    list is ``(NULL)``, which no value is in."""
    key = (b.marker, b.sql, lengths)
    sql = _EXPANDED.get(key)
    if sql is None:
        sql = b.sql
        for name, n in zip(b.lists, lengths, strict=True):
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join([b.marker] * n) if n else "NULL")
        if len(_EXPANDED) >= _MAX_CACHED:
            _EXPANDED.clear()
        _EXPANDED[key] = sql
    return sql


def driver_args(b: Bound, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The driver's statement and its positional parameters, lists expanded."""
    if not b.lists:
        return b.sql, [params[n] for n in b.names]
    sql = expanded(b, tuple(len(params[n]) for n in b.lists))
    out: list[Any] = []
    for name in b.names:
        if name in b.lists:
            out += params[name]
        else:
            out.append(params[name])
    return sql, out


@contextmanager
def cursor(conn: Connection) -> Iterator[Any]:
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cur
    finally:
        cur.close()


def execute(cur: Any, b: Bound, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Run a bound statement on ``cur``; its rows, if it returns any."""
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"parameters go by name (a mapping), not {type(params).__name__}: {b.sql}")
    sql, args = driver_args(b, params or {})
    cur.execute(sql, args)
    return list(cur.fetchall()) if cur.description else []


def run(
    conn: Connection, sql: str, params: Mapping[str, Any] | None = None, *, lists: Collection[str] = ()
) -> list[Any]:
    """Run one statement with named parameters; its rows, if it returns any."""
    with cursor(conn) as cur:
        return execute(cur, bound(conn, sql, lists=lists), params)


def run_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` once per row, in one call to the driver. Each row holds the values of
    the statement's parameters in the order they first appear in it, each named once; a
    row that is a NamedTuple must name its fields so."""
    if not rows:
        return
    b = bound(conn, sql)
    if len(set(b.names)) != len(b.names):
        raise ValueError(f"a statement run for many rows names each parameter once: {sql}")
    fields = getattr(rows[0], "_fields", None)
    if fields is not None and tuple(fields) != b.names:
        raise ValueError(f"rows of {fields} do not match the parameters {b.names} of {sql}")
    copy = _copy_of(sql) if is_pg(conn) else None
    with cursor(conn) as cur:
        if copy is not None:
            # PostgreSQL: a plain INSERT of many rows as one COPY, whose rows psycopg
            # converts in C; its pipelined executemany costs about a microsecond of Python
            # a row, and an append writes some fifteen rows a statement.
            with cur.copy(copy) as cp:
                for row in rows:
                    cp.write_row(row)
        else:
            cur.executemany(b.sql, rows)


# A plain INSERT whose parameters are its columns, in their order: nothing but the rows.
_PLAIN_INSERT = re.compile(r"\s*INSERT INTO (\w+) \(([\w ,]+)\)\s+VALUES \(([\w :,]+)\)\s*")


def _copy_of(sql: str) -> str | None:
    """The COPY that does what ``sql`` does for many rows, if it is a plain INSERT (no
    ON CONFLICT, no expressions); None otherwise."""
    m = _PLAIN_INSERT.fullmatch(sql)
    if m is None:
        return None
    columns = [c.strip() for c in m.group(2).split(",")]
    if [v.strip() for v in m.group(3).split(",")] != [":" + c for c in columns]:
        return None
    return f"COPY {m.group(1)} ({', '.join(columns)}) FROM STDIN"


def rows_in(conn: Connection, sql: str, column: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """``sql`` ends with "<column> IN"; run it for every value, in chunks (SQLite) or as
    one ``= ANY`` array (PostgreSQL)."""
    if not values:
        return []
    head = sql[: -len(" IN")]
    assert head.endswith(column)
    rows: list[tuple[Any, ...]] = []
    with cursor(conn) as cur:
        if is_pg(conn):
            b = bound(conn, head + " = ANY(:values)")
            cur.execute(b.sql, (list(values),))
            rows = list(cur.fetchall())
        else:
            b = bound(conn, head + " IN :values", lists=_VALUES)
            for i in range(0, len(values), IN_CHUNK):
                chunk = list(values[i : i + IN_CHUNK])
                cur.execute(expanded(b, (len(chunk),)), chunk)
                rows += cur.fetchall()
    return rows
