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
