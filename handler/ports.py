"""The ports the core owns: the state store and the CDN API.

Adapters implement these; the core (`prewarm`) only ever talks to them. Nothing
here assumes SQL: every operation is one a key-value store with conditional
writes can do atomically.
"""

from __future__ import annotations

from types import MappingProxyType

from .values import ValueType

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Callable, Mapping, Protocol, Sequence

    from .lifecycle import UrlState

    Change = Callable[[UrlState | None], UrlState | None]
    """A pure transition: the URL's new state (None: forget it), or the very state given (no change)."""
else:
    Protocol = object  # the ports are contracts that type checkers check; at run time, plain classes

PREFETCH = "preload"  # quota counters: the daily prefetch quota
REFRESH = "refresh"  # and the daily URL refresh quota
BACKFILL = "backfill"  # the part of the prefetch quota spent on backfill (capped by backfill_share)


class DeadLetter(ValueType):
    """A URL given up on, and why."""

    url: str
    reason: str
    window: int
    at: float  # epoch seconds


class StoreCounts(ValueType):
    pending: int  # waiting to be refreshed or pushed (pending and ready), due now or deferred
    deferred: int  # pending, told to wait (quota, back-off) rather than for its window
    refreshing: int  # waiting on a refresh task before their prefetch
    pushed: int  # prefetch submitted, its task not yet seen to end
    verified: int  # prefetch task completed, inside the remembering horizon
    unverified: int  # prefetch task never seen to end within the API's 3 days
    dead: int  # dead-lettered, inside the remembering horizon
    failed_tasks: int  # URLs whose refresh or prefetch task ended Failed at least once
    deferred_reasons: Mapping[str, int] = MappingProxyType({})  # reason (without times) -> URLs
    oldest_pending_window: int | None = None  # the window of the oldest URL not yet pushed
    last_task_at: float = 0.0  # when the newest refresh or prefetch task was submitted
    last_task_ids: tuple[str, ...] = ()  # the tasks submitted then


class StoreError(Exception):
    """The store failed in a way that may pass (throttled, unreachable): the invocation should be retried."""


class Store(Protocol):
    """Shared state of every invocation: one state per URL (lifecycle.UrlState), quota counters, flush requests.

    `update` is the only way a URL's state changes: read, apply a pure transition, write on
    condition that nothing changed in between (retrying the transition if it did).
    """

    def update(self, changes: Mapping[str, Change], now: float) -> dict[str, "UrlState | None"]:
        """Apply each URL's transition atomically; returns the new state of every URL whose state changed."""

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list["UrlState"]:
        """Lease up to `limit` URLs in an active phase (lifecycle.ACTIVE) that are due (`not_before <= now`),
        in a window <= max_window (any if None) and not under another live lease, oldest window first.
        No URL is ever held by two live leases."""

    def states(self, urls: Sequence[str]) -> dict[str, "UrlState"]:
        """The current state of each URL that has one."""

    def reserve_quota(self, counter: str, day: str, wanted: int, limit: int) -> int:
        """Atomically add up to `wanted` to the day's counter without passing `limit`; returns what was granted."""

    def release_quota(self, counter: str, day: str, amount: int) -> None:
        """Give back quota reserved for URLs the API did not accept (never below 0)."""

    def quota_used(self, counter: str, day: str) -> int: ...

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


class CallProblem(ValueType):
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


class SubmitOutcome:
    """What became of URLs handed to PushObjectCache or RefreshObjectCaches.

    Every input URL is in exactly one of accepted, rejected, unsent or ambiguous.
    """

    __slots__ = ("accepted", "rejected", "unsent", "ambiguous", "problem", "calls", "sent_at")

    def __init__(self) -> None:
        self.accepted: dict[str, str] = {}  # url -> task id
        self.rejected: dict[str, str] = {}  # url -> "Code: message", refused for good
        self.unsent: list[str] = []  # surely not accepted; see `problem`
        self.ambiguous: list[str] = []  # sent, answer lost: maybe accepted
        self.problem: CallProblem | None = None  # what stopped the submission early, if anything
        self.calls = 0  # API calls made, retries included
        self.sent_at: float | None = None  # epoch seconds just before the ambiguous call went out

    def __repr__(self) -> str:
        return "SubmitOutcome(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"


# Task kinds, as DescribeRefreshTaskById reports ObjectType.
TASK_PRELOAD = "preload"
TASK_REFRESH = "file"
# Task states, as the API reports Status.
TASK_COMPLETE = "Complete"
TASK_FAILED = "Failed"
TASK_IDS_PER_CALL = 10  # DescribeRefreshTaskById takes at most 10 ids


class TaskStatus(ValueType):
    """One URL of a prefetch or refresh task, as the API reports it."""

    task_id: str
    url: str  # ObjectPath as the API gives it back
    kind: str  # TASK_PRELOAD | TASK_REFRESH | "directory" | ...
    status: str  # "Complete" | "Refreshing" | "Pending" | "Failed"
    created_at: float | None = None  # epoch seconds
    description: str = ""  # why it failed, when it did


class AccountQuota(ValueType):
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

