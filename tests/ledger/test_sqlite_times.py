"""The SQLite ledger writes times exactly as SQLAlchemy's SQLite ``DateTime`` does (naive UTC,
microseconds always), so rows either one wrote compare and sort alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from minitoolai.ledger.store.sqlite_rows import read_time, stored_time

ZONES = st.one_of(
    st.just(UTC),
    st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-23 * 60, 23 * 60)),
)


@given(st.datetimes(min_value=datetime(2, 1, 1), timezones=ZONES))
def test_times_are_written_as_sqlalchemy_writes_them(value: datetime) -> None:
    expected = (
        value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    )
    assert stored_time(value) == expected
    assert read_time(stored_time(value)) == value
