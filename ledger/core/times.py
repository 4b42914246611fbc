"""The ledger's one way of writing a UTC time: ``2026-11-27T05:05:00.000000Z``.

Fixed width (four-digit year, six fraction digits) so that times sort as text in every
store; fewer fraction digits where a format says so (EPCIS ``creationDate``: three)."""

from __future__ import annotations

from datetime import UTC, datetime


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
