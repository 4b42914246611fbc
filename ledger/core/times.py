"""The ledger's one way of writing a UTC time: ``2026-11-27T05:05:00.000000Z``.

Fixed width (four-digit year, six fraction digits) so that times sort as text in every
store; fewer fraction digits where a format says so (EPCIS ``creationDate``: three)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, NamedTuple


def utc_text(t: datetime | None = None, *, digits: int = 6) -> str:
    """``t`` (an aware datetime; now when None) in UTC, with ``digits`` (0 to 6) fraction
    digits, cut rather than rounded, and 'Z'. Raises OverflowError for an instant outside
    the years 1 to 9999 in UTC."""
    if not 0 <= digits <= 6:
        raise ValueError(f"a UTC time has 0 to 6 fraction digits, not {digits}")
    # isoformat() is several times faster than strftime or isoformat(timespec=...), and
    # pads the year to four digits, which strftime's %Y does not everywhere; it drops a
    # zero fraction, so that is put back. This runs on every append.
    iso = (datetime.now(UTC) if t is None else t.astimezone(UTC)).isoformat()
    if digits == 6:
        return iso[:-6] + "Z" if len(iso) == 32 else iso[:-6] + ".000000Z"
    if not digits:
        return iso[:19] + "Z"
    return iso[:19] + "." + (iso[20:26] if len(iso) == 32 else "000000")[:digits] + "Z"


# --- reading event times ------------------------------------------------------------------
#
# The event hash writes each event's eventTime in UTC with milliseconds. Its reader caches
# whole texts, which serves a batch whose events share a time but not one where every event
# has its own: there, parsing the text into a datetime, moving it to UTC and writing it out
# again cost about 2.9 µs an event. ``clock_time`` splits the common RFC 3339 shape without
# a datetime (1.8 µs with the rest of that reader): an offset is whole minutes, so seconds
# and fraction are the same in UTC and only the minute moves, which is cached, as the
# events of a batch share their minutes far more than their seconds. The schema's check and
# the trace tables' UTC time were measured with it too, and were no faster: they keep the
# standard library's parser.

_COMMON_TIME: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}):([0-5][0-9])(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})"
)


class ClockTime(NamedTuple):
    """An RFC 3339 time of the common shape, split: ``utc_minute`` ("YYYY-MM-DDTHH:MM", in
    UTC; None where the time is no real one, or falls outside the years 1000 to 9999 in
    UTC), its ``seconds`` (two digits, 00 to 59) and ``fraction`` (the digits after the
    point; "" for none)."""

    utc_minute: str | None
    seconds: str
    fraction: str


def clock_time(value: str) -> ClockTime | None:
    """``value`` split as ``ClockTime`` when it has the shape
    ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` (ASCII digits, seconds below 60, one to
    nine fraction digits, nothing before or after); None for any other text, which its
    readers parse the long way."""
    m = _COMMON_TIME.fullmatch(value)
    if m is None:
        return None
    return ClockTime(_minute_in_utc(m[1], m[4]), m[2], m[3] or "")


@lru_cache(maxsize=1 << 12)
def _minute_in_utc(local: str, offset: str) -> str | None:
    """Minute ``local`` at ``offset`` in UTC, if it is a real time in the years 1000 to 9999
    there."""
    try:
        u = datetime.fromisoformat(local + ":00" + ("+00:00" if offset == "Z" else offset)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return u.isoformat()[:16] if u.year >= 1000 else None
