"""Rules a statement must meet to enter the ledger now, on top of ``statements.prepare``.

The append path calls ``admit`` before it takes the lock. Entries already in a ledger are
read with ``prepare`` alone (audit, reindex, pages, bundles) and are never judged by these
rules, so tightening them never makes an older ledger unreadable. Each rule reads only the
statement and a clock: no SQL.
"""

from __future__ import annotations

import functools
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ledger.core.errors import MalformedInput
from ledger.core.statements import Prepared, entry_bytes
from ledger.core.tiles import MAX_ENTRY_BYTES, MAX_INDEX
from ledger.core.times import utc_text
from ledger.epcis.validation import child_path

MAX_ISSUED_AHEAD: Final = timedelta(days=1)
"""How far after the ledger's clock a statement may say it was issued: a day covers any
clock drift and a local time sent as UTC, never a statement signed years ahead."""

MAX_NAME_CHARS: Final = 200

MAX_ENVELOPE_BYTES: Final = MAX_ENTRY_BYTES - len(
    entry_bytes(seq=MAX_INDEX, prev=bytes(32), time="2026-01-01T00:00:00.000000Z", envelope_bytes=b"")
)
"""The largest envelope whose entry, at any seq, fits the 65,535 bytes an entry bundle
(C2SP tlog-tiles) can carry: 65,381 bytes of canonical JSON."""

# Bidirectional embeddings, overrides and isolates: they reorder the text around them, so
# "ACME\u202eemca" shows as another name than it holds (the "Trojan Source" trick).
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters that render as nothing: a name of them alone looks blank.
_INVISIBLE_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def admit(p: Prepared, *, now: datetime) -> None:
    """Refuse (``MalformedInput``) what may not enter the ledger at ``now`` (UTC)."""
    # JCS writes U+0000 as the six bytes \u0000, so one search of the canonical bytes
    # clears nearly every statement; a hit is confirmed (a text holding a backslash
    # followed by "u0000" is written \\u0000) and located by a walk.
    if b"\\u0000" in p.statement_bytes:
        path = _nul_path(p.statement, "$.statement")
        if path is not None:
            raise MalformedInput(
                f"{path} contains the character U+0000 (NUL), which no text "
                "in a statement may hold; remove it"
            )
    _check_issued(p.statement["issued"], now)
    if p.kind == "party.register":
        check_display_name(p.body["name"], where="party.register body name")
        if "nameEn" in p.body:
            check_display_name(p.body["nameEn"], where="party.register body nameEn")
    elif p.kind == "masterdata":
        from ledger.epcis.masterdata import shown_texts

        for where, text in shown_texts(p.body):
            check_display_name(text, where=f"masterdata {where}")
    elif p.kind == "genesis":
        check_display_name(p.body["registrar"]["name"], where="genesis registrar name")


def check_entry_size(p: Prepared) -> None:
    """Refuse (``entry_too_large``) an envelope whose entry would not fit an entry bundle.
    The append runs it after the body's own checks, so a field over its bound is refused
    naming that field first."""
    if len(p.envelope_bytes) > MAX_ENVELOPE_BYTES:
        raise MalformedInput(
            f"envelope is {len(p.envelope_bytes)} bytes; an entry must fit the 65,535 bytes of "
            f"a tile bundle, so an envelope holds at most {MAX_ENVELOPE_BYTES}: split the event "
            "or put large documents in private data",
            code="entry_too_large",
        )


def _nul_path(value: Any, path: str) -> str | None:
    if type(value) is str:
        return path if "\x00" in value else None
    if type(value) is dict:
        for k, v in value.items():
            where = child_path(path, k)
            if "\x00" in k:
                return where + " (its key)"
            found = _nul_path(v, where)
            if found is not None:
                return found
    elif type(value) is list:
        for i, v in enumerate(value):
            found = _nul_path(v, child_path(path, i))
            if found is not None:
                return found
    return None


@functools.lru_cache(maxsize=1024)
def _utc(issued: str) -> datetime:
    # prepare has checked the form and the calendar; statements of a batch share times.
    return datetime.fromisoformat(issued.replace("Z", "+00:00")).astimezone(UTC)


def _check_issued(issued: str, now: datetime) -> None:
    try:
        when = _utc(issued)
    except OverflowError:
        # 9999-12-31T23:59:59-14:00 or 0001-01-01T00:00:00+14:00: no instant the ledger
        # can compare (the findings' time rules would fail on it under the lock).
        raise MalformedInput(f"statement issued {issued} is outside the years 1 to 9999 in UTC") from None
    if when > now + MAX_ISSUED_AHEAD:
        raise MalformedInput(
            f"statement issued {issued} is more than a day after the ledger's clock "
            f"({utc_text(now, digits=0)}); a statement cannot be signed in the "
            "future: check the signer's clock",
            code="issued_future",
        )


def check_display_name(value: object, *, where: str) -> str:
    """A name people read (a party's, the registrar's): at most 200 characters of printable
    text, not blank, without control characters, line separators or bidirectional controls."""
    if not isinstance(value, str):
        raise MalformedInput(f"{where} must be a string")
    if len(value) > MAX_NAME_CHARS:
        raise MalformedInput(f"{where} is {len(value)} characters long; a name has at most {MAX_NAME_CHARS}")
    visible = False
    for c in value:
        if c in _BIDI_CONTROLS:
            raise MalformedInput(
                f"{where} contains U+{ord(c):04X} ({unicodedata.name(c)}), a bidirectional "
                "control that makes a name display as another; remove it"
            )
        category = unicodedata.category(c)
        if category == "Cc" or category in ("Zl", "Zp"):
            raise MalformedInput(
                f"{where} contains the control character U+{ord(c):04X}; a name is one line of printable text"
            )
        if not (c.isspace() or category == "Cf" or c in _INVISIBLE_LETTERS):
            visible = True
    if not visible:
        raise MalformedInput(
            f"{where} shows nothing: it holds only spaces or invisible "
            "characters; give the name as it is registered"
        )
    return value
