"""Windows, the UTC+8 quota day, batches and quota grants: pure arithmetic with plain numbers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handler.planning import (
    batches,
    closed_before,
    next_quota_day_start,
    parse_instant,
    quota_day,
    quota_grant,
    window_of,
    window_start,
)


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# --- windows ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t, window",
    [(0, 0), (59.999, 0), (60, 1), (61, 1), (119.5, 1), (120, 2), (-0.5, -1), (-60, -1), (-60.5, -2)],
)
def test_window_of(t, window):
    assert window_of(t, 60) == window


def test_window_start_is_where_window_of_begins():
    assert window_start(3, 60) == 180.0
    assert window_of(window_start(3, 60), 60) == 3
    assert window_of(window_start(4, 60) - 0.001, 60) == 3


@pytest.mark.parametrize(
    "now, closed",
    [(119.999, 0), (120, 1), (150, 1), (179.999, 1), (180, 2)],
)
def test_a_window_is_closed_once_now_reaches_its_end(now, closed):
    assert closed_before(now, 60) == closed


@given(st.floats(min_value=0, max_value=4e9), st.integers(min_value=1, max_value=86400))
def test_window_properties(t, seconds):
    w = window_of(t, seconds)
    assert window_start(w, seconds) <= t < window_start(w + 1, seconds)
    last = closed_before(t, seconds)
    assert t >= window_start(last + 1, seconds)  # the last closed window has ended
    assert t < window_start(last + 2, seconds)  # and the next one has not


# --- the quota day (UTC+8) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instant, day",
    [
        ("2026-11-23T15:59:59", "2026-11-23"),
        ("2026-11-23T16:00:00", "2026-11-24"),
        ("2026-11-23T00:00:00", "2026-11-23"),
        ("2026-11-22T16:00:00", "2026-11-23"),
        ("2026-12-31T16:00:00", "2027-01-01"),
        ("2028-02-28T16:30:00", "2028-02-29"),
    ],
)
def test_quota_day_is_the_date_in_utc_plus_8(instant, day):
    assert quota_day(utc(instant)) == day


@pytest.mark.parametrize(
    "instant, next_start",
    [
        ("2026-11-23T15:59:59", "2026-11-23T16:00:00"),
        ("2026-11-23T16:00:00", "2026-11-24T16:00:00"),  # strictly after: midnight itself goes to the next one
        ("2026-11-23T16:00:00.500", "2026-11-24T16:00:00"),
        ("2026-11-23T03:00:00", "2026-11-23T16:00:00"),
        ("2026-12-31T20:00:00", "2027-01-01T16:00:00"),
    ],
)
def test_next_quota_day_start(instant, next_start):
    assert next_quota_day_start(utc(instant)) == utc(next_start)


@given(st.floats(min_value=0, max_value=4e9))
def test_next_quota_day_start_is_the_first_instant_of_the_next_quota_day(t):
    start = next_quota_day_start(t)
    assert t < start <= t + 86400
    assert quota_day(start) != quota_day(t)
    assert quota_day(start - 0.001) == quota_day(t)
    assert datetime.fromtimestamp(start, timezone.utc).strftime("%H:%M:%S") == "16:00:00"


# --- batches -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "count, cap, sizes",
    [(0, 100, []), (1, 100, [1]), (100, 100, [100]), (101, 100, [100, 1]), (250, 100, [100, 100, 50]), (3, 1, [1, 1, 1])],
)
def test_batches_sizes(count, cap, sizes):
    urls = [f"https://cdn.example.com/{i}" for i in range(count)]
    assert [len(b) for b in batches(urls, cap)] == sizes


@given(st.lists(st.text(max_size=3), max_size=300), st.integers(min_value=1, max_value=120))
def test_batches_keep_order_and_never_exceed_the_cap(urls, cap):
    chunks = batches(urls, cap)
    assert [u for chunk in chunks for u in chunk] == urls
    assert all(1 <= len(chunk) <= cap for chunk in chunks)
    assert all(len(chunk) == cap for chunk in chunks[:-1])


@pytest.mark.parametrize("cap", [0, -1])
def test_batches_refuse_a_cap_below_one(cap):
    with pytest.raises(ValueError, match="at least 1"):
        batches(["a"], cap)


# --- quota grant ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wanted, used, limit, account_remain, reserve, granted",
    [
        (100, 0, 1000, None, 0, 100),  # plenty
        (100, 950, 1000, None, 0, 50),  # our own daily limit
        (100, 1000, 1000, None, 0, 0),  # used up
        (100, 1200, 1000, None, 0, 0),  # over (counted elsewhere): never negative
        (100, 0, 1000, 30, 0, 30),  # the account has less left than our counter thinks
        (100, 0, 1000, 130, 50, 80),  # the reserve is kept for others
        (100, 0, 1000, 40, 50, 0),  # the account is inside the reserve
        (100, 0, 1000, 0, 0, 0),
        (0, 0, 1000, 500, 0, 0),  # nothing wanted
        (100, 990, 1000, 500, 100, 10),  # the tightest term wins
    ],
)
def test_quota_grant(wanted, used, limit, account_remain, reserve, granted):
    assert quota_grant(wanted, used, limit, account_remain, reserve) == granted


@given(
    st.integers(0, 2000), st.integers(0, 3000), st.integers(0, 2000),
    st.none() | st.integers(-10, 3000), st.integers(0, 500),
)
def test_quota_grant_never_exceeds_any_bound(wanted, used, limit, account_remain, reserve):
    granted = quota_grant(wanted, used, limit, account_remain, reserve)
    assert 0 <= granted <= wanted
    assert used + granted <= limit or granted == 0
    if account_remain is not None:
        assert granted <= max(0, account_remain - reserve)


# --- parse_instant ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-23T15:59:59Z", "2026-11-23T15:59:59"),
        ("2026-11-23T15:59:59z", "2026-11-23T15:59:59"),
        ("2026-11-23T15:59:59+00:00", "2026-11-23T15:59:59"),
        ("2026-11-24T00:00:00+08:00", "2026-11-23T16:00:00"),
        ("2026-11-23T10:00:00-05:30", "2026-11-23T15:30:00"),
        ("2026-11-23T15:59:59.250Z", "2026-11-23T15:59:59.250"),
        ("2026-11-23T15:59:59", "2026-11-23T15:59:59"),  # naive means UTC
        ("2026-11-23 15:59", "2026-11-23T15:59:00"),
        ("2026-11-23", "2026-11-23T00:00:00"),
        ("  2026-11-23T15:59:59Z\n", "2026-11-23T15:59:59"),
    ],
)
def test_parse_instant(text, expected):
    assert parse_instant(text) == utc(expected)


def test_parse_instant_around_the_quota_midnight():
    assert quota_day(parse_instant("2026-11-23T15:59:59Z")) == "2026-11-23"
    assert quota_day(parse_instant("2026-11-23T16:00:00Z")) == "2026-11-24"


@pytest.mark.parametrize("text", ["", "   ", "yesterday", "2026-13-01T00:00:00Z", "2026-11-23T25:00:00", "1700000000", "Z"])
def test_parse_instant_refuses_what_is_not_iso_8601(text):
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant(text)
