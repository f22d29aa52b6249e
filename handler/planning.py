"""Pure time and batching arithmetic: windows, the quota day (UTC+8), batches under a cap, quota grants."""

from __future__ import annotations

import math
import time

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Sequence

QUOTA_OFFSET_SECONDS = 8 * 3600  # Alibaba CDN quotas refill at 00:00:00 UTC+8
_DAY = 86400


def window_of(t: float, window_seconds: int) -> int:
    """The id of the window that instant t (epoch seconds) falls in: floor(t / window_seconds)."""
    return math.floor(t / window_seconds)


def window_start(window: int, window_seconds: int) -> float:
    """The epoch second at which a window opens."""
    return float(window * window_seconds)


def closed_before(now: float, window_seconds: int) -> int:
    """The last closed window at `now`; a window is closed once now >= its end."""
    return window_of(now, window_seconds) - 1


def quota_day(t: float) -> str:
    """The quota day ("YYYY-MM-DD", in UTC+8) that instant t belongs to."""
    # Plain arithmetic rather than datetime: the upload path calls this, and datetime costs its import.
    return time.strftime("%Y-%m-%d", time.gmtime(math.floor(t) + QUOTA_OFFSET_SECONDS))


def next_quota_day_start(t: float) -> float:
    """Epoch seconds of the first 00:00:00 UTC+8 strictly after t."""
    day_index = math.floor((t + QUOTA_OFFSET_SECONDS) / _DAY)
    return float((day_index + 1) * _DAY - QUOTA_OFFSET_SECONDS)


def batches(urls: Sequence[str], cap: int) -> list[list[str]]:
    """Consecutive chunks of at most `cap` URLs, order kept, never an empty chunk."""
    if cap < 1:
        raise ValueError(f"a batch cap must be at least 1, not {cap}")
    return [list(urls[i:i + cap]) for i in range(0, len(urls), cap)]


def quota_grant(wanted: int, used: int, limit: int, account_remain: int | None, reserve: int) -> int:
    """How many URLs may be pushed now.

    grant = max(0, min(wanted, limit - used, account_remain - reserve)), where
    `limit` is our own daily limit (daily_quota - quota_reserve), `used` what our
    counter has spent of it today, and the last term applies only when the
    account's remaining quota (PreloadRemain) is known; `reserve` keeps that much
    of the account's quota for other tools and people.
    """
    grant = min(wanted, limit - used)
    if account_remain is not None:
        grant = min(grant, account_remain - reserve)
    return max(0, grant)


def parse_instant(text: str) -> float:
    """ISO 8601 date-time ("Z" or an offset; naive means UTC) → epoch seconds; ValueError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected an ISO 8601 time such as 2026-11-23T15:59:59Z, got {text!r}")
    from datetime import datetime, timezone  # only the CLI and replays parse times

    cleaned = text.strip()
    if cleaned[-1] in "Zz":
        cleaned = cleaned[:-1] + "+00:00"
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits; ISO 8601 allows any number.
    head, dot, rest = cleaned.partition(".")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if dot and digits:
        cleaned = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-11-23T15:59:59Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
