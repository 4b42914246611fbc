"""The database failing under the ledger (a full disk, a read-only file, a server that is
gone), told apart from bugs and said as one ``storage`` sentence.

A full disk during an append rolls the whole transaction back: nothing of that batch
landed, and the ledger is as it was; the sentence says so. What counts is the driver's
own code (SQLite's result code, PostgreSQL's SQLSTATE), never the wording of its message.
"""

from __future__ import annotations

import errno
import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError

from ledger.core.errors import LedgerError, StorageFailure

# SQLite primary result codes (sqlite3.h).
_SQLITE = {
    5: "the database is locked by another process",  # SQLITE_BUSY
    6: "the database is locked by another process",  # SQLITE_LOCKED
    7: "the database ran out of memory",  # SQLITE_NOMEM
    8: "the database file is read-only",  # SQLITE_READONLY
    10: "the database's files could not be written or read",  # SQLITE_IOERR
    11: "the database file is damaged",  # SQLITE_CORRUPT
    13: "the disk holding the database is full",  # SQLITE_FULL
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
    26: "the database file is not a database",  # SQLITE_NOTADB
}
_SQLITE_IOERR = 10
# PostgreSQL SQLSTATE classes: 08 connection, 53 insufficient resources, 57 operator
# intervention (shutdown), 58 system error (I/O); and a read-only transaction.
_PG_CLASSES = {
    "08": "the database server cannot be reached",
    "53": "the database server is out of resources",
    "57": "the database server is shutting down or cancelled the statement",
    "58": "the database server could not write or read its files",
}
_PG_STATES = {
    "53100": "the disk holding the database is full",
    "25006": "the database is read-only",
}
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# What the database drivers raise, through SQLAlchemy or bare (the hot paths run on the
# driver's cursor): a server's exception handlers catch these and ask ``storage_error``.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, sqlite3.Error, psycopg.Error)


def storage_error(exc: BaseException, *, where: str) -> LedgerError | None:
    """The ``storage`` refusal for a database failure, or None when ``exc`` is not one
    (a bug, which should be seen as such). ``where`` names the database for the user."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return StorageFailure(
            f"the disk holding {exc.filename or where} is full; the file was not "
            "written, nothing of it is left behind"
        )
    # Through SQLAlchemy the driver's error is wrapped; the hot paths that run on the
    # driver's cursor (see store/driver.py) raise it bare.
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, sqlite3.Error) and not type(orig).__module__.startswith("psycopg"):
        return None
    what: str | None = None
    code = getattr(orig, "sqlite_errorcode", None)
    state = getattr(orig, "sqlstate", None)
    if isinstance(code, int):
        what = _SQLITE.get(code & 0xFF)
        if what is not None and code & 0xFF == _SQLITE_IOERR:
            # SQLite does not say which system error it met; a full disk is the usual one.
            what += f", {getattr(orig, 'sqlite_errorname', 'SQLITE_IOERR')}: is the disk full?"
    elif isinstance(state, str):
        what = _PG_STATES.get(state) or _PG_CLASSES.get(state[:2])
    elif (isinstance(exc, DBAPIError) and exc.connection_invalidated) or (
        type(orig).__name__ == "OperationalError"
    ):
        # psycopg raises OperationalError without a SQLSTATE when it cannot connect at all.
        what = "the database server cannot be reached"
    if what is None:
        return None
    text = str(orig).strip()
    detail = text.splitlines()[0] if text else type(orig).__name__
    return _refusal(f"{what} ({where}: {detail})")


def _refusal(what: str) -> LedgerError:
    return StorageFailure(f"{what}; a transaction it broke off was rolled back, nothing of it landed")
