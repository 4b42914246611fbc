"""ledger.core.times.utc_text, the ledger's one UTC time format, against the standard library's
own spellings of the same instant (which the copies it replaced used), for any instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.registry import utc_time
from ledger.core.times import utc_text

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS))
def test_the_same_text_as_the_standard_library(t: datetime) -> None:
    u = t.astimezone(UTC)
    assert utc_text(t) == u.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert utc_text(t, digits=3) == u.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert utc_text(t, digits=0) == u.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(utc_text(t)) == 27 and utc_text(t, digits=1) == utc_text(t)[:21] + "Z"


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS),
)
def test_text_sorts_as_the_instants_do(a: datetime, b: datetime) -> None:
    assert (utc_text(a) < utc_text(b)) == (a < b)
    assert (utc_text(a) == utc_text(b)) == (a == b)


def test_the_edges() -> None:
    # A year before 1000 keeps four digits (strftime's %Y writes "999" here), so it sorts.
    assert utc_time("0999-01-02T03:04:05Z") == "0999-01-02T03:04:05.000000Z"
    assert utc_text(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    assert (
        utc_text(datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))), digits=3)
        == "2026-01-01T00:00:00.000Z"
    )
    assert (
        utc_text(datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC), digits=3) == "2026-01-01T00:00:00.999Z"
    )  # cut, not rounded
    now = utc_text()
    assert len(now) == 27 and now.endswith("Z")
    with pytest.raises(OverflowError):
        utc_text(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    with pytest.raises(ValueError, match="0 to 6"):
        utc_text(digits=7)


# --- the common shape of an event time, read without a datetime ------------------------------
#
# The event hash writes every eventTime in UTC with milliseconds. It splits the common RFC
# 3339 shape with ledger.core.times.clock_time, and parses anything else (or a fraction that
# rounds up) the long way: here it is held to its long way on texts of that shape, real and
# not, and on texts just outside it. The other readers of eventTime (the schema's check, the
# trace tables' UTC time) are held to the same edges.


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=lo, max_value=hi).map(lambda n: f"{n:02d}")


_OFFSET_TEXT = st.one_of(
    st.just("Z"),
    st.tuples(st.sampled_from("+-"), _two(0, 25), _two(0, 61))
    .map("".join)
    .map(lambda s: s[:3] + ":" + s[3:]),
)
_COMMON = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: f"{y:04d}-{mo}-{d}T{h}:{mi}:{s}{frac}{off}",
    st.one_of(st.integers(min_value=0, max_value=9999), st.sampled_from([1, 999, 1000, 9999])),
    _two(0, 13),
    _two(0, 32),
    _two(0, 24),
    _two(0, 60),
    _two(0, 61),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=10).map(lambda f: "." + f)),
    _OFFSET_TEXT,
)
# Texts next to the shape: a character changed, added or taken away somewhere.
_NEAR = st.tuples(
    _COMMON,
    st.integers(min_value=0, max_value=40),
    st.sampled_from(["", "z", "t", "\n", " ", "٣", "9", ":", ".", "Z"]),
    st.booleans(),
).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + (1 if t[3] else 0) :])
EVENT_TIMES = st.one_of(_COMMON, _NEAR)


def _outcome(read: object, value: str) -> tuple[str, object]:
    try:
        return ("value", read(value))  # type: ignore[operator]
    except Exception as e:  # noqa: BLE001 - the same refusal, whatever it is
        return (type(e).__name__, str(e))


@given(EVENT_TIMES)
def test_the_event_hash_reads_an_event_time_as_its_long_way_does(value: str) -> None:
    from ledger.epcis import event_hash

    assert _outcome(event_hash._timestamp, value) == _outcome(event_hash._parsed_timestamp, value)


@pytest.mark.parametrize(
    ("value", "problem", "utc", "hashed"),
    [
        ("2025-01-01T00:00:20+08:00", None, "2024-12-31T16:00:20.000000Z", "2024-12-31T16:00:20.000Z"),
        (
            "2025-03-01T07:59:59.1234567-08:00",
            None,
            "2025-03-01T15:59:59.123456Z",
            "2025-03-01T15:59:59.123Z",
        ),
        # The fourth fraction digit rounds the milliseconds up: the long way, into the next day.
        ("2025-12-31T23:59:59.9996Z", None, "2025-12-31T23:59:59.999600Z", "2026-01-01T00:00:00.000Z"),
        ("2025-06-30T10:00:00.1235+08:00", None, "2025-06-30T02:00:00.123500Z", "2025-06-30T02:00:00.124Z"),
        (
            "2025-06-30T10:00:00.1234999+08:00",
            None,
            "2025-06-30T02:00:00.123499Z",
            "2025-06-30T02:00:00.123Z",
        ),
        ("2024-02-29T12:00:00+14:00", None, "2024-02-28T22:00:00.000000Z", "2024-02-28T22:00:00.000Z"),
        ("2025-02-29T12:00:00Z", "date", None, None),  # no such day
        ("2025-01-01T00:00:60Z", "date", None, None),  # no leap second
        ("2025-01-01T00:00:00+24:00", "date", None, None),
        ("1000-01-01T00:30:00+01:00", None, "0999-12-31T23:30:00.000000Z", "999-12-31T23:30:00.000Z"),
        ("2025-01-01 00:00:00Z", "form", "2025-01-01T00:00:00.000000Z", None),
    ],
)
def test_event_times_at_the_edges(
    value: str, problem: str | None, utc: str | None, hashed: str | None
) -> None:
    from ledger.core.errors import MalformedInput
    from ledger.epcis import event_hash, stages, validation

    assert validation._cached_time_problem.__wrapped__(value) == problem
    if utc is None:
        with pytest.raises(MalformedInput):
            stages._utc_of(value)
    else:
        assert stages._utc_of(value) == utc
    assert event_hash._timestamp(value) == hashed


def test_the_common_shape_is_split_without_a_datetime() -> None:
    from ledger.core.times import ClockTime, clock_time

    assert clock_time("2025-01-01T00:00:20.5+08:00") == ClockTime("2024-12-31T16:00", "20", "5")
    assert clock_time("2025-13-01T00:00:20Z") == ClockTime(None, "20", "")  # no such month
    assert clock_time("0001-01-01T00:00:00+08:00") == ClockTime(None, "00", "")  # year 0 in UTC
    for other in (
        "2025-01-01T00:00:60Z",
        "2025-01-01T00:00:00",
        "2025-01-01T00:00:00Z\n",
        "2025-01-01T00:00:00.Z",
    ):
        assert clock_time(other) is None
