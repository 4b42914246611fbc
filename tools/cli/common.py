"""What the command groups share: the answer on stdout, files and stdin read, and the ledger
each command opens."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ledger.core import canonical
from ledger.core.errors import LedgerError, NotFound
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.queries import trace
from ledger.store.db import DEFAULT_URL, Store
from tools import cli

# What each command group's `add_…` functions add their subcommands to.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_STOPPED = 3  # stdout was closed while entries were being appended: the rest was not


def out(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _missing_database() -> str | None:
    """The SQLite file SUYUAN_DB names, when it does not exist: opening it would create an
    empty one (and its directory), so commands that need a ledger look first."""
    try:
        url = make_url(os.environ.get("SUYUAN_DB") or DEFAULT_URL)
    except ArgumentError:
        return None  # the store refuses it with its own sentence
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    path = Path(db).expanduser()
    return None if path.exists() else str(path)


def open_ledger(home: Home) -> Ledger:
    """The ledger of SUYUAN_DB, for every command but `init` and `demo`: refused, creating
    nothing, when there is none (no SQLite file, or a database or schema without tables)."""
    missing = _missing_database()
    if missing is not None:
        raise LedgerError(
            f"there is no ledger at {missing} (no such file); run `suyuan init` "
            "to create one, or set SUYUAN_DB to the ledger's database URL",
            code="no_ledger",
        )
    # Through the package's `_ledger`, so that replacing it there (the in-process tests do,
    # to dispose of every store a command opens) replaces it for every command.
    led = cli._ledger(home)
    if not led.store.is_initialised():
        led.store.dispose()
        raise LedgerError(
            "this database holds no ledger (it has no tables); run `suyuan init` "
            "to create one, or set SUYUAN_DB to the ledger's database URL",
            code="no_ledger",
        )
    return led


def read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise LedgerError(f"cannot read {path}: {e.strerror}", code="not_found") from None


def read_json_file(path: str) -> Any:
    raw = sys.stdin.buffer.read() if path == "-" else read_bytes(path)
    return canonical.parse_json(raw)


def silence_stdout() -> None:
    """After EPIPE: Python flushes stdout once more at exit, which would raise again and
    print a traceback; send what is left to /dev/null instead."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a file (tests capturing it): nothing to flush at exit


def journey_or_refuse(store: Store, code: str, *, allow_empty: bool) -> dict[str, Any]:
    """The journey of ``code``; a code no entry names is refused as the resolver answers it
    (404), unless an empty journey is what the caller wants."""
    doc = trace.journey(store, code)
    if not doc["journey"] and not allow_empty:
        raise NotFound(
            f"the ledger has no event about {doc['code']}; check the code, or give "
            "--allow-empty to print an empty journey",
            code="not_found",
        )
    return doc
