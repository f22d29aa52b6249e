"""The ports the core owns: the state store and the CDN prefetch API.

Adapters implement these; the core (`prewarm`) only ever talks to them. Nothing
here assumes SQL: every operation is one a key-value store with conditional
writes can do atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence


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


class Problem:
    """What kind of failure stopped a CDN call: the outcome classes the core acts on, whatever the API's code."""

    NOT_ACCEPTED = "not_accepted"  # no connection, not fully sent, or an answer with an error Code:
    #                                the API took nothing; quota is given back; retry with backoff
    AMBIGUOUS = "ambiguous"  # sent, no answer: maybe accepted; quota kept until a task lookup settles it
    QUOTA_SPENT = "quota_spent"  # the account's daily quota of this kind is used up
    CONFIG = "config"  # credentials, permissions, account: nothing succeeds until a person fixes it


@dataclass(frozen=True)
class CallProblem:
    """Why a CDN call did not go through: one of the Problem kinds, with the API's code and message."""

    kind: str  # a Problem constant
    code: str  # the API's Code, or a Local.* code for failures on our side
    message: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class CdnCallFailed(Exception):
    """A read from the CDN API (task status, quota) failed; carries the problem, never a credential."""

    def __init__(self, problem: CallProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class SubmitOutcome:
    """What became of URLs handed to PushObjectCache or RefreshObjectCaches.

    Every input URL is in exactly one of accepted, rejected, unsent or ambiguous.
    """

    accepted: dict[str, str] = field(default_factory=dict)  # url -> task id
    rejected: dict[str, str] = field(default_factory=dict)  # url -> "Code: message", refused for good
    unsent: list[str] = field(default_factory=list)  # surely not accepted; see `problem`
    ambiguous: list[str] = field(default_factory=list)  # sent, answer lost: maybe accepted
    problem: CallProblem | None = None  # what stopped the submission early, if anything
    calls: int = 0  # API calls made, retries included
    sent_at: float | None = None  # epoch seconds just before the ambiguous call went out


# Task kinds, as DescribeRefreshTaskById reports ObjectType.
TASK_PRELOAD = "preload"
TASK_REFRESH = "file"
# Task states, as the API reports Status.
TASK_COMPLETE = "Complete"
TASK_FAILED = "Failed"


@dataclass(frozen=True)
class TaskStatus:
    """One URL of a prefetch or refresh task, as the API reports it."""

    task_id: str
    url: str  # ObjectPath as the API gives it back
    kind: str  # TASK_PRELOAD | TASK_REFRESH | "directory" | ...
    status: str  # "Complete" | "Refreshing" | "Pending" | "Failed"
    created_at: float | None = None  # epoch seconds
    description: str = ""  # why it failed, when it did


@dataclass(frozen=True)
class AccountQuota:
    """What the account has left today (DescribeRefreshQuota); None where the API did not say."""

    preload_remain: int | None
    refresh_remain: int | None
    preload_quota: int | None = None
    refresh_quota: int | None = None


class CdnApi(Protocol):
    """The CDN API as the core needs it. Submissions never raise; reads raise CdnCallFailed."""

    def push(self, urls: Sequence[str]) -> SubmitOutcome:
        """PushObjectCache in as few calls as the API allows, isolating bad URLs."""

    def refresh(self, urls: Sequence[str]) -> SubmitOutcome:
        """RefreshObjectCaches (ObjectType=File) in as few calls as the API allows, isolating bad URLs."""

    def task_statuses(self, task_ids: Sequence[str]) -> list[TaskStatus]:
        """DescribeRefreshTaskById, 10 ids a call; ids the API no longer knows are simply absent."""

    def find_tasks(self, url: str, kind: str, since: float) -> list[TaskStatus]:
        """DescribeRefreshTasks for one URL and kind created at or after `since` (epoch seconds)."""

    def account_quota(self) -> AccountQuota:
        """DescribeRefreshQuota."""


# -- the pre-lifecycle prefetch port, removed once the flush runs on CdnApi --------------

@dataclass
class PushOutcome:
    """What became of a list of URLs handed to the CDN: each is in exactly one of pushed, rejected or unpushed."""

    pushed: dict[str, str] = field(default_factory=dict)  # url -> task id
    rejected: dict[str, str] = field(default_factory=dict)  # url -> "Code: message"
    unpushed: list[str] = field(default_factory=list)  # not accepted; see `error`
    error: "object | None" = None  # what stopped the push early, if anything
    calls: int = 0  # PushObjectCache calls made, retries included
    maybe_accepted: list[str] = field(default_factory=list)  # part of `unpushed` whose call's answer was lost


class Prefetcher(Protocol):
    """The CDN prefetch API as the core needs it."""

    def push(self, urls: Sequence[str]) -> PushOutcome:
        """Push URLs in as few calls as the API allows, isolating bad URLs; never raises CdnError."""

    def remaining_quota(self) -> int | None:
        """The account's PreloadRemain now, or None when it cannot be read."""
