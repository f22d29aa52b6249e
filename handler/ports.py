"""The ports the core owns: the state store and the CDN prefetch API.

Adapters implement these; the core (`prewarm`) only ever talks to them. Nothing
here assumes SQL: every operation is one a key-value store with conditional
writes can do atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from .cdn.errors import CdnError


@dataclass(frozen=True)
class ClaimedUrl:
    url: str
    window: int
    attempts: int  # failed push attempts before this claim


@dataclass(frozen=True)
class DeadLetter:
    url: str
    reason: str
    window: int
    at: float  # epoch seconds


@dataclass(frozen=True)
class StoreCounts:
    pending: int  # waiting to be pushed, claimed or not, due now or deferred
    deferred: int  # pending whose not_before is still in the future
    pushed: int  # pushed and still inside the dedupe horizon
    dead: int  # dead-lettered and still inside the dedupe horizon


class StoreError(Exception):
    """The store failed in a way that may pass (throttled, unreachable): the invocation should be retried."""


class Store(Protocol):
    """Shared state of every invocation: pending URLs by window, leases, quota counters, dead letters.

    A URL has one record: pending (optionally claimed under a lease), pushed, or dead.
    Every method is atomic per URL (and per quota day) under concurrent callers.
    """

    def add_pending(self, window: int, urls: Sequence[str], now: float) -> list[str]:
        """Make each URL pending in `window` unless it already has a record that is pending,
        or pushed/dead with `keep_until > now`. Idempotent. Returns the URLs newly added."""

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[ClaimedUrl]:
        """Take up to `limit` pending URLs with window <= max_window (any window if None) that are
        due (`not_before <= now`) and not under another live lease (`lease_until > now`), oldest
        window first. Each is leased to `owner` until `now + lease_seconds`; no URL is ever held
        by two live leases."""

    def mark_pushed(self, task_ids: Mapping[str, str], *, now: float, keep_until: float) -> None:
        """Record URLs as pushed with their task id; they stay known (deduped) until `keep_until`."""

    def mark_dead(self, owner: str, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        """Dead-letter URLs still leased to `owner`, each with its reason."""

    def record_dead(self, window: int, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        """Dead-letter URLs refused before they could be queued (too long to prefetch, say),
        unless they already have a record that is pending, or pushed/dead with keep_until > now."""

    def defer(
        self, owner: str, urls: Sequence[str], *, not_before: float, reason: str, count_attempt: bool
    ) -> None:
        """Release URLs still leased to `owner` back to pending, due again at `not_before`,
        remembering `reason`; `count_attempt` adds one to their failed attempts."""

    def reserve_quota(self, day: str, wanted: int, limit: int) -> int:
        """Atomically add up to `wanted` to the day's counter without passing `limit`; returns what was granted (0..wanted)."""

    def release_quota(self, day: str, amount: int) -> None:
        """Give back quota reserved for URLs the API definitely did not accept (never below 0)."""

    def quota_used(self, day: str) -> int: ...

    def counts(self, now: float) -> StoreCounts: ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    def request_flush(self, window: int) -> bool:
        """True for exactly one caller per window: the one that should ask for an early flush."""

    def pending_in_window(self, window: int) -> int:
        """How many URLs are pending in `window` (for flush-on-full; may be approximate upward)."""

    def close(self) -> None: ...


@dataclass
class PushOutcome:
    """What became of a list of URLs handed to the CDN: each is in exactly one of pushed, rejected or unpushed."""

    pushed: dict[str, str] = field(default_factory=dict)  # url -> task id
    rejected: dict[str, str] = field(default_factory=dict)  # url -> "Code: message"
    unpushed: list[str] = field(default_factory=list)  # not accepted; see `error`
    error: CdnError | None = None  # what stopped the push early, if anything
    calls: int = 0  # PushObjectCache calls made, retries included
    maybe_accepted: list[str] = field(default_factory=list)  # part of `unpushed` whose call's answer was lost


class Prefetcher(Protocol):
    """The CDN prefetch API as the core needs it."""

    def push(self, urls: Sequence[str]) -> PushOutcome:
        """Push URLs in as few calls as the API allows, isolating bad URLs; never raises CdnError."""

    def remaining_quota(self) -> int | None:
        """The account's PreloadRemain now, or None when it cannot be read."""
