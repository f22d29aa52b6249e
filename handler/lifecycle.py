"""The life of one CDN URL as an explicit state machine: pure functions of (state, event) → new state.

    written ──► pending ──(refresh needed)──► refreshing ──(task Complete)──► ready ──► pushed ──► verified
                   │                                                            ▲          │
                   └──────────────(no refresh needed)───────────────────────────┘          └─(not found in 3 days)─► unverified
    any active phase ──(refused for good, or failing past give_up_after)──► dead

`version` is the origin version the CDN must end up serving (an ETag or S3 version id; None once
the object was removed, which leaves only a purge to do). `pushed_version` is what a prefetch last
asked the CDN to hold: an upload of another version of a URL with a pushed_version is an
overwrite, and a prefetch alone would not replace the copy the CDN keeps, so it is refreshed first.

Every function here returns a new state, None (forget the URL), or the very state it was given
(nothing to change). The stores apply them with conditional writes, retrying on a lost race, so
they must stay pure: no clock, no randomness, no I/O. Jitter comes from a hash of the URL.
"""

from __future__ import annotations

from .values import ValueType

PENDING = "pending"  # waiting for its window to close (and for quota): refresh first if `refresh`
REFRESHING = "refreshing"  # a refresh task was submitted; the prefetch waits for it to complete
READY = "ready"  # the refresh completed: prefetch now
PUSHED = "pushed"  # a prefetch task was submitted; it is checked until it ends
VERIFIED = "verified"  # the prefetch task completed: the CDN holds `version`
UNVERIFIED = "unverified"  # pushed, but the task could not be found within the API's 3 days
DEAD = "dead"  # refused for good, or failing for longer than give_up_after_seconds

ACTIVE = frozenset({PENDING, REFRESHING, READY, PUSHED})  # phases the flush still has work for
SETTLED = frozenset({VERIFIED, UNVERIFIED, DEAD})  # remembered until keep_until, then forgotten
PHASES = (PENDING, REFRESHING, READY, PUSHED, VERIFIED, UNVERIFIED, DEAD)

# Refresh modes (settings.refresh_before_prefetch)
AUTO, ALWAYS, NEVER = "auto", "always", "never"

TASK_WINDOW_SECONDS = 3 * 86400  # the task APIs answer for the last 3 days only
BACKOFF_FIRST_SECONDS = 60
BACKOFF_CAP_SECONDS = 3600
CHECK_FIRST_SECONDS = 60  # first look at a new task: refreshes take about 5 minutes, prefetches 5-30
CHECK_CAP_SECONDS = 600


class UrlState(ValueType):
    """Everything the store keeps about one URL."""

    url: str
    phase: str
    window: int  # the upload window it was queued in; the flush waits for it to close
    version: str | None = None
    pushed_version: str | None = None
    refresh: bool = False  # pending only: a refresh must complete before the prefetch
    not_before: float = 0.0  # when it is due (to push, or to check its task)
    lease_owner: str | None = None
    lease_until: float = 0.0
    task_id: str | None = None  # the current refresh or prefetch task; None while its answer is lost
    task_at: float = 0.0  # when the current task was submitted (or the ambiguous call was sent)
    failing_since: float = 0.0  # first failure of the current attempt; 0 when not failing
    failures: int = 0
    task_failures: int = 0  # prefetch or refresh tasks that ended Failed, over the URL's life
    priority: int = 0  # its rule's priority: higher goes first when quota is short
    backfill: bool = False  # queued by a backfill of existing objects: after live uploads, within its share
    reason: str = ""  # why it waits (deferred) or died
    keep_until: float = 0.0  # settled phases: remembered until then
    updated_at: float = 0.0

    def to_fields(self) -> dict[str, object]:
        """Primitive fields for a store row; None and defaults left out."""
        out: dict[str, object] = {}
        for name, value in zip(self._fields, self):
            if value is None or (name in self._field_defaults and value == self._field_defaults[name]):
                continue
            out[name] = int(value) if isinstance(value, bool) else value
        return out

    @classmethod
    def from_fields(cls, data: dict) -> "UrlState":
        values = {k: v for k, v in data.items() if k in cls._fields and v is not None}
        for name in ("refresh", "backfill"):
            if name in values:
                values[name] = bool(values[name])
        for name in ("window", "failures", "task_failures", "priority"):
            if name in values:
                values[name] = int(values[name])
        for name in ("not_before", "lease_until", "task_at", "failing_since", "keep_until", "updated_at"):
            if name in values:
                values[name] = float(values[name])
        return cls(**values)

    @property
    def deferred(self) -> bool:
        """Pending, but told to wait (quota, back-off) rather than for its window."""
        return self.phase in (PENDING, READY) and bool(self.reason)

    def leased_to(self, owner: str, now: float) -> bool:
        return self.lease_owner == owner and self.lease_until > now

    def is_due(self, now: float) -> bool:
        return self.phase in ACTIVE and self.not_before <= now and self.lease_until <= now


def _remembered(state: UrlState | None, now: float) -> UrlState | None:
    """The state, unless it is settled and past its horizon (then the URL counts as unknown)."""
    if state is not None and state.phase in SETTLED and state.keep_until <= now:
        return None
    return state


def is_known(state: UrlState | None, now: float) -> bool:
    """Whether the store still remembers the URL (settled states are forgotten after keep_until)."""
    return _remembered(state, now) is not None


# -- uploads and deletes -----------------------------------------------------------------------


def written(
    state: UrlState | None, url: str, version: str | None, *, window: int, now: float, mode: str, priority: int = 0
) -> UrlState | None:
    """An upload of `version` of the object behind `url`."""
    state = _remembered(state, now)
    if state is None:
        return UrlState(
            url, PENDING, window, version=version, refresh=mode == ALWAYS, priority=priority, updated_at=now,
        )
    if state.phase == DEAD:
        if version is not None and version == state.version:
            return state  # the same bytes that were refused: refused again
        return _new_cycle(state, version, window=window, now=now, mode=mode, priority=priority)
    if state.phase in (PENDING, REFRESHING, READY):
        if version == state.version and version is not None and not state.backfill:
            return state  # a redelivery or an identical re-upload: nothing to do
        # Not pushed yet: coalesce into the one refresh and prefetch, of the newest version. A live
        # upload of a URL a backfill queued makes it live: it goes before the backfill now.
        return state._replace(version=version, backfill=False, priority=priority, updated_at=now)
    # PUSHED, VERIFIED, UNVERIFIED
    if version is not None and version == state.pushed_version and version == state.version:
        return state
    return _new_cycle(state, version, window=window, now=now, mode=mode, priority=priority)


def backfilled(
    state: UrlState | None, url: str, version: str | None, *, window: int, now: float, mode: str, priority: int = 0
) -> UrlState | None:
    """An existing object listed by a backfill: queued behind live uploads, unless the URL is known already."""
    if is_known(state, now):
        return state
    return UrlState(
        url, PENDING, window, version=version, refresh=mode == ALWAYS, priority=priority, backfill=True,
        updated_at=now,
    )


def removed(state: UrlState | None, url: str, *, window: int, now: float, mode: str) -> UrlState | None:
    """The object behind `url` was deleted: purge what the CDN may hold, cancel any prefetch not yet sent."""
    state = _remembered(state, now)
    if state is None:
        if mode == ALWAYS:  # the CDN may hold a copy from before this tool saw the URL
            return UrlState(url, PENDING, window, version=None, refresh=True, updated_at=now)
        return None
    if state.phase == DEAD or state.phase == READY:
        return None  # READY: its refresh completed, the CDN holds nothing
    if state.phase == PENDING and not state.refresh and state.lease_owner is None:
        return None  # never pushed: cancelled without spending any quota
    if state.phase in (PENDING, REFRESHING):
        return state._replace(version=None, updated_at=now)
    # PUSHED, VERIFIED, UNVERIFIED: the CDN may hold it
    if mode == NEVER:
        return None
    return _new_cycle(state, None, window=window, now=now, mode=ALWAYS)


def _new_cycle(
    state: UrlState, version: str | None, *, window: int, now: float, mode: str, priority: int | None = None
) -> UrlState:
    """Start over for a URL the CDN may already hold: refresh first unless the mode says never."""
    refresh = mode == ALWAYS or (mode == AUTO and state.pushed_version is not None)
    return UrlState(
        state.url, PENDING, window, version=version, pushed_version=state.pushed_version, refresh=refresh,
        task_failures=state.task_failures, priority=state.priority if priority is None else priority,
        updated_at=now,
    )


# -- leases ------------------------------------------------------------------------------------


def leased(state: UrlState | None, owner: str, *, now: float, lease_seconds: float) -> UrlState | None:
    """Take a due URL for one flush; anything not due (or leased to another) is left as it is."""
    if state is None or not state.is_due(now):
        return state
    return state._replace(lease_owner=owner, lease_until=now + lease_seconds)


def forgotten(state: UrlState | None, owner: str, *, now: float) -> UrlState | None:
    """Drop a leased URL with nothing left to do (deleted, and no copy to purge)."""
    return None if _settle(state, owner, now) else state


def _settle(state: UrlState | None, owner: str, now: float) -> bool:
    """Whether `owner` still holds the URL's lease, so its result may be recorded."""
    return state is not None and state.lease_owner == owner


def _unleased(state: UrlState, **changes) -> UrlState:
    return state._replace(lease_owner=None, lease_until=0.0, **changes)


def released(state: UrlState | None, owner: str, *, not_before: float, reason: str, now: float) -> UrlState | None:
    """Give a leased URL back without counting a failure (quota spent, flush out of time, config error)."""
    if not _settle(state, owner, now):
        return state
    return _unleased(state, not_before=not_before, reason=reason, updated_at=now)


# -- submissions -------------------------------------------------------------------------------


def refresh_accepted(state: UrlState | None, owner: str, task_id: str | None, *, now: float) -> UrlState | None:
    """The refresh was accepted (task_id) or sent with its answer lost (task_id None)."""
    if not _settle(state, owner, now):
        return state
    return _unleased(
        state, phase=REFRESHING, refresh=False, task_id=task_id, task_at=now,
        not_before=now + CHECK_FIRST_SECONDS, failing_since=0.0, failures=0, reason="", updated_at=now,
    )


def push_accepted(
    state: UrlState | None, owner: str, task_id: str | None, *, pushed: str | None, now: float, mode: str
) -> UrlState | None:
    """The prefetch of version `pushed` was accepted (task_id) or sent with its answer lost (None)."""
    if not _settle(state, owner, now):
        return state
    done = _unleased(
        state, phase=PUSHED, pushed_version=pushed, refresh=False, task_id=task_id, task_at=now,
        not_before=now + CHECK_FIRST_SECONDS, failing_since=0.0, failures=0, reason="", updated_at=now,
    )
    if state.version != pushed:
        # Overwritten or deleted while the prefetch was on its way: the CDN may now hold `pushed`.
        return _new_cycle(done, state.version, window=state.window, now=now, mode=ALWAYS if mode != NEVER else NEVER)
    return done


def not_accepted(
    state: UrlState | None, owner: str, reason: str, *, now: float, give_up_after: float
) -> UrlState | None:
    """The API took nothing (throttled, unreachable, busy): back off, and give up only after a long time."""
    if not _settle(state, owner, now):
        return state
    return _failed(_unleased(state), reason, now=now, give_up_after=give_up_after)


def _failed(state: UrlState, reason: str, *, now: float, give_up_after: float) -> UrlState:
    since = state.failing_since or now
    if now - since >= give_up_after:
        return dead(state, f"gave up after {int(now - since)} s of failures: {reason}", now=now, keep_until=now)
    failures = state.failures + 1
    return state._replace(
        failing_since=since, failures=failures, not_before=now + backoff_seconds(state.url, failures),
        reason=f"retry: {reason}", updated_at=now,
    )


def refused(state: UrlState | None, owner: str, reason: str, *, now: float, keep_until: float) -> UrlState | None:
    """The API refused the URL for good (malformed, unknown domain)."""
    if not _settle(state, owner, now):
        return state
    return dead(_unleased(state), reason, now=now, keep_until=keep_until)


def dead(state: UrlState, reason: str, *, now: float, keep_until: float) -> UrlState:
    return state._replace(
        phase=DEAD, lease_owner=None, lease_until=0.0, reason=reason, keep_until=keep_until,
        not_before=0.0, updated_at=now,
    )


def backoff_seconds(url: str, failures: int) -> float:
    """Capped exponential back-off, 60 s doubling to an hour, jittered by the URL so retries spread out."""
    import hashlib  # only the flush path backs off: the upload path never loads OpenSSL

    base = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** min(max(failures - 1, 0), 16))
    jitter = int(hashlib.sha1(f"{url}#{failures}".encode()).hexdigest()[:4], 16) / 0xFFFF  # 0..1
    return base * (0.5 + 0.5 * jitter)


# -- task checks -------------------------------------------------------------------------------


def task_completed(state: UrlState | None, owner: str, *, now: float, keep_until: float) -> UrlState | None:
    """The current task ended Complete."""
    if not _settle(state, owner, now):
        return state
    if state.phase == REFRESHING:
        if state.version is None:
            return None  # purged after a delete: nothing left to warm, and a re-create is new
        return _unleased(state, phase=READY, task_id=None, not_before=now, reason="", updated_at=now)
    return _unleased(
        state, phase=VERIFIED, not_before=0.0, reason="", keep_until=keep_until, updated_at=now,
    )


def task_failed(
    state: UrlState | None, owner: str, description: str, *, now: float, give_up_after: float
) -> UrlState | None:
    """The current task ended Failed: do it again (a refresh stays owed), counted against the give-up time."""
    if not _settle(state, owner, now):
        return state
    again = _unleased(
        state, phase=PENDING, refresh=state.phase == REFRESHING, task_id=None,
        task_failures=state.task_failures + 1,
    )
    return _failed(again, f"task failed: {description or 'no description'}", now=now, give_up_after=give_up_after)


def task_running(state: UrlState | None, owner: str, *, now: float, settle_seconds: float, keep_until: float) -> UrlState | None:
    """The task has not ended (or could not be read): look again later, within the API's 3-day window.

    A refresh whose status stays unreadable counts as done `settle_seconds` after it was sent; a
    prefetch never seen to end within 3 days is settled as unverified.
    """
    if not _settle(state, owner, now):
        return state
    age = now - state.task_at
    if state.phase == REFRESHING and state.task_id is not None and age >= settle_seconds:
        return task_completed(state, owner, now=now, keep_until=keep_until)
    if state.phase == PUSHED and age >= TASK_WINDOW_SECONDS:
        return _unleased(state, phase=UNVERIFIED, not_before=0.0, keep_until=keep_until, updated_at=now)
    wait = min(CHECK_CAP_SECONDS, max(CHECK_FIRST_SECONDS, age / 2))
    return _unleased(state, not_before=now + wait, updated_at=now)


def task_lost(state: UrlState | None, owner: str, *, now: float) -> UrlState | None:
    """An ambiguous call turned out not to have been accepted: the URL is due again, as it was."""
    if not _settle(state, owner, now):
        return state
    if state.phase == REFRESHING:
        return _unleased(state, phase=PENDING, refresh=True, task_id=None, task_at=0.0, not_before=now, updated_at=now)
    # A lost prefetch: push_accepted had recorded the version it sent; the CDN holds nothing new.
    return _unleased(
        state, phase=PENDING, refresh=False, pushed_version=None, task_id=None, task_at=0.0, not_before=now,
        updated_at=now,
    )


def task_found(state: UrlState | None, owner: str, task_id: str, *, now: float) -> UrlState | None:
    """An ambiguous call was accepted after all: it has a task to follow."""
    if not _settle(state, owner, now):
        return state
    return _unleased(state, task_id=task_id, not_before=now, updated_at=now)


# -- recovery (an operator's commands) ---------------------------------------------------------


def requeued(state: UrlState | None, *, now: float, mode: str) -> UrlState | None:
    """A dead letter put back to pending, due now, its failures forgotten; anything else is left as it is.

    It starts a new cycle: refreshed first if the CDN may hold a copy (as after an overwrite),
    and given the whole give-up time again.
    """
    state = _remembered(state, now)
    if state is None or state.phase != DEAD:
        return state
    return _new_cycle(state, state.version, window=state.window, now=now, mode=mode)


def dropped(state: UrlState | None, *, now: float) -> UrlState | None:
    """Forget the URL, so that its next upload is new work; a URL a flush holds right now is left alone."""
    if state is not None and state.lease_owner is not None and state.lease_until > now:
        return state
    return None
