"""The imperative shell: ingest object records into URL states, flush due URLs through the CDN API.

Decisions come from the pure modules (`lifecycle` for a URL's next state, `planning` for
windows and quota); this file only sequences them over the Store and CdnApi ports, so that
every URL ends verified, deferred with a reason, or dead-lettered with a reason.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial

from . import lifecycle as lc
from .events import ObjectRemoved
from .lifecycle import UrlState
from .planning import closed_before, next_quota_day_start, quota_day, quota_grant, window_of
from .ports import (
    BACKFILL, PREFETCH, REFRESH, TASK_COMPLETE, TASK_FAILED, TASK_IDS_PER_CALL, TASK_PRELOAD, TASK_REFRESH,
    CdnCallFailed, Problem,
)
from .urls import priority_for, urls_for

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Sequence

    from .events import ObjectRecord
    from .ports import AccountQuota, CdnApi, Change, Store, SubmitOutcome, TaskStatus
    from .settings import Settings

log = logging.getLogger("handler.prewarm")

# Claim several batches' worth per store round trip; each batch is still recorded as soon as its call returns.
BATCHES_PER_CLAIM = 10
# A call whose answer was lost and whose task the API does not list this long after is taken as not accepted.
AMBIGUITY_SETTLE_SECONDS = 120


class IngestReport:
    __slots__ = ("records", "urls", "added", "purges", "cancelled", "refused", "unmatched", "window")

    def __init__(self, records: int = 0, window: int = 0) -> None:
        self.records = records
        self.urls = 0  # URLs the records mapped to, duplicates included
        self.added = 0  # URLs given new work: a first prefetch, or a refresh and prefetch of a new version
        self.purges = 0  # deleted URLs queued for a refresh that purges the CDN's copy
        self.cancelled = 0  # deleted URLs whose prefetch was not sent yet: dropped at no quota
        self.refused = 0  # dead-lettered at once (cannot be prefetched)
        self.unmatched = 0  # records no rule applies to
        self.window = window

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"IngestReport({self.as_dict()})"


class FlushReport:
    __slots__ = (
        "quota_day", "pushed", "refreshed", "verified", "resolved", "calls", "refresh_calls", "deferred",
        "deferred_to_next_day", "oldest_waiting_seconds", "dead", "task_ids", "error",
    )

    def __init__(self, quota_day: str) -> None:
        self.quota_day = quota_day
        self.pushed = 0  # URLs whose prefetch the API accepted
        self.refreshed = 0  # URLs whose refresh the API accepted
        self.verified = 0  # prefetch tasks seen to complete
        self.resolved = 0  # calls whose answer was lost, settled by a task lookup
        self.calls = 0  # PushObjectCache calls, retries included
        self.refresh_calls = 0  # RefreshObjectCaches calls, retries included
        self.deferred = 0
        self.deferred_to_next_day = 0  # of `deferred`: out of quota (or backfill share) for today
        self.oldest_waiting_seconds = 0  # age of the oldest URL this flush could not push yet
        self.dead = 0
        self.task_ids: list[str] = []
        self.error: str | None = None  # what stopped the flush early, if anything

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["task_ids"] = list(self.task_ids)
        return out

    def __repr__(self) -> str:
        return f"FlushReport({self.as_dict()})"


def ingest(
    records: Sequence[ObjectRecord], settings: Settings, store: Store, now: float, *, backfill: bool = False
) -> IngestReport:
    """Turn uploads and deletes into state changes of their URLs, in the window `now` falls in.

    With `backfill`, the records are existing objects listed by a backfill: URLs the store does not
    know are queued behind live uploads; known ones are left as they are."""
    report = IngestReport(records=len(records), window=window_of(now, settings.window_seconds))
    steps: dict[str, list[Change]] = {}
    mode = settings.refresh_before_prefetch
    for record in records:
        mapped = urls_for(record, settings.rules)
        if not mapped.urls and not mapped.refused:
            report.unmatched += 1
            log.info("no rule matches bucket=%r key=%r: ignored", record.bucket, record.key)
        report.urls += len(mapped.urls) + len(mapped.refused)
        if isinstance(record, ObjectRemoved):
            if settings.on_delete == "ignore":
                continue
            for url in mapped.urls:
                steps.setdefault(url, []).append(partial(lc.removed, url=url, window=report.window, now=now, mode=mode))
            continue
        arrived = lc.backfilled if backfill else lc.written
        priority = priority_for(record, settings.rules)
        # None is the version of a removed object: an upload without ETag is named by its event's time,
        # so a redelivery of it is still recognised and any other upload counts as a new version.
        version = record.version or f"at:{record.event_time or now}"
        for url in mapped.urls:
            steps.setdefault(url, []).append(
                partial(arrived, url=url, version=version, window=report.window, now=now, mode=mode,
                        priority=priority)
            )
        for url, reason in mapped.refused.items():
            log.error("dead-lettered %s: %s", url[:200], reason)
            steps.setdefault(url, []).append(
                partial(_unpushable, url=url, reason=reason, window=report.window, now=now,
                        keep_until=now + settings.dedupe_seconds)
            )
    if not steps:
        return report
    before: dict[str, UrlState | None] = {}
    changed = store.update({url: _chain(url, chain, before) for url, chain in steps.items()}, now)
    for url, new in changed.items():
        old = before.get(url)
        if new is None:
            report.cancelled += 1
        elif new.phase == lc.DEAD and (old is None or old.phase != lc.DEAD):
            report.refused += 1
        elif new.phase == lc.PENDING and new.version is None and new.refresh and not new.backfill:
            report.purges += old is None or old.version is not None
        elif new.phase == lc.PENDING and (old is None or old.phase in lc.SETTLED or old.phase == lc.PUSHED):
            report.added += 1
    return report


def _chain(url: str, steps: list[Change], before: dict) -> Change:
    """One transition made of several (a payload may name a URL more than once), noting the state it met."""

    def change(state: UrlState | None) -> UrlState | None:
        before[url] = state
        for step in steps:
            state = step(state)
        return state if state != before[url] else before[url]

    return change


def _unpushable(state, *, url, reason, window, now, keep_until):
    """A URL no CDN call can take (too long, not ASCII after encoding): dead-lettered unless already known."""
    if lc.is_known(state, now):
        return state
    return lc.dead(UrlState(url, lc.DEAD, window), reason, now=now, keep_until=keep_until)


def flush(
    store: Store,
    cdn: CdnApi,
    settings: Settings,
    now: float,
    *,
    flush_all: bool = False,
    owner: str | None = None,
    seconds: float | None = None,
) -> FlushReport:
    """Do every due thing: check tasks, refresh overwritten URLs, prefetch the rest within the day's quotas,
    starting no new batch after `seconds` (so that a flush ends cleanly inside its function's timeout)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    return _Flush(store, cdn, settings, now, owner or os.urandom(16).hex(), deadline).run(flush_all)


class _Flush:
    """One flush: claim due URLs, then per claimed group check tasks, refresh, push; repeat."""

    def __init__(self, store: Store, cdn: CdnApi, settings: Settings, now: float, owner: str, deadline: float | None):
        self.store = store
        self.cdn = cdn
        self.settings = settings
        self.now = now
        self.owner = owner
        self.deadline = deadline
        self.day = quota_day(now)
        self.report = FlushReport(quota_day=self.day)
        self.keep_until = now + settings.dedupe_seconds
        self._account: AccountQuota | None = None
        self._account_read = False
        self._used_at_read: dict[str, int] = {}  # our counters when the account's quota was read
        self._spent: set[str] = set()  # quota counters the account said are used up today
        self._stopped = False
        self._prefetches_sent = 0  # URLs this flush's prefetch calls may have made the CDN fetch
        self._capped = False  # max_prefetch_per_flush reached: claim nothing more

    def run(self, flush_all: bool) -> FlushReport:
        max_window = None if flush_all else closed_before(self.now, self.settings.window_seconds)
        cap = max(self.settings.cdn.max_urls_per_call, 1)
        # Claimed URLs wait here until a batch is full, so a round's last partial batch does not
        # cost a call of its own; backfill waits for the end, after every live URL had its turn.
        waiting: dict[str, list[UrlState]] = {"refresh": [], "live": [], "backfill": []}
        while not self._stopped and not self._capped:
            if self._out_of_time():
                log.warning("flush out of time; the rest waits for the next flush")
                break
            claims = self.store.claim(
                max_window=max_window, now=self.now, limit=cap * BATCHES_PER_CLAIM, owner=self.owner,
                lease_seconds=self.settings.lease_seconds,
            )
            if not claims:
                break
            self._check([s for s in claims if s.phase in (lc.REFRESHING, lc.PUSHED)])
            claims.sort(key=lambda s: (s.backfill, -s.priority, s.window))  # live first, then by priority, oldest
            for state in claims:
                if state.phase == lc.PENDING and state.refresh:
                    waiting["refresh"].append(state)
                elif state.phase == lc.READY or state.phase == lc.PENDING:
                    waiting["backfill" if state.backfill else "live"].append(state)
            self._submit_full(waiting, "refresh", REFRESH)
            self._submit_full(waiting, "live", PREFETCH)
        self._submit(REFRESH, waiting["refresh"])
        self._submit(PREFETCH, waiting["live"])
        self._submit(PREFETCH, waiting["backfill"], share=BACKFILL)
        self._alert_if_backlogged()
        log.info("flush %s", self.report.as_dict())
        return self.report

    def _alert_if_backlogged(self) -> None:
        """One ERROR line, for a log-based alert, when uploads wait too long or the quota cannot keep up."""
        report, settings = self.report, self.settings
        old = report.oldest_waiting_seconds > settings.alert_after_seconds
        outgrown = report.deferred_to_next_day > settings.cdn.daily_limit
        if old or outgrown:
            log.error(
                "backlog: %d URLs wait for the next quota day, the oldest for %d s (alert_after_seconds %d);"
                " the daily limit is %d URLs", report.deferred_to_next_day, report.oldest_waiting_seconds,
                settings.alert_after_seconds, settings.cdn.daily_limit,
            )

    # -- submitting ---------------------------------------------------------------------------

    def _submit_full(self, waiting: dict[str, list[UrlState]], key: str, counter: str) -> None:
        """Submit the full batches waiting under `key`; the rest keeps waiting."""
        cap = self.settings.cdn.max_urls_per_call if counter == PREFETCH else self.settings.cdn.max_urls_per_refresh
        full = len(waiting[key]) - len(waiting[key]) % cap
        if full:
            self._submit(counter, waiting[key][:full])
            waiting[key] = waiting[key][full:]

    def _submit(self, counter: str, claims: list[UrlState], share: str | None = None) -> None:
        """Refresh or push claimed URLs in batches under the day's quota; each batch recorded as its call returns.

        With `share`, the batch must also fit that counter's part of the day (backfill_share of the
        daily limit), so that a backfill never takes what later live uploads need."""
        if counter == PREFETCH:
            gone = [s for s in claims if s.version is None]  # deleted with nothing left to purge
            self._apply({s.url: partial(lc.forgotten, owner=self.owner, now=self.now) for s in gone})
            claims = [s for s in claims if s.version is not None]
        cap = self.settings.cdn.max_urls_per_call if counter == PREFETCH else self.settings.cdn.max_urls_per_refresh
        for start in range(0, len(claims), cap):
            batch = claims[start : start + cap]
            if counter == PREFETCH:
                batch = self._within_origin_cap(batch)
                if not batch:
                    continue
            if self._stopped or self._out_of_time() or counter in self._spent:
                why = "quota: the account's daily quota is used up" if counter in self._spent else "flush stopped early"
                self._release(batch, self._next_day() if counter in self._spent else self.now, why)
                continue
            if share is not None:
                allowed = self.store.reserve_quota(share, self.day, len(batch), self._share_limit())
                if allowed < len(batch):
                    self._release(batch[allowed:], self._next_day(), "quota: today's backfill share is used")
                    batch = batch[:allowed]
            granted = self.store.reserve_quota(counter, self.day, len(batch), self._limit(counter)) if batch else 0
            if granted < len(batch):
                self._release(batch[granted:], self._next_day(), f"quota: today's {_kind(counter)} limit is used")
                if share is not None:
                    self.store.release_quota(share, self.day, len(batch) - granted)
                batch = batch[:granted]
            if batch:
                self._send(counter, batch, share)

    def _within_origin_cap(self, batch: list[UrlState]) -> list[UrlState]:
        """The part of the batch that max_prefetch_per_flush lets this flush send; the rest waits for the next flush."""
        cap = self.settings.cdn.max_prefetch_per_flush
        room = max(0, cap - self._prefetches_sent)
        if not cap or room >= len(batch):
            return batch
        self._capped = True
        self._release(batch[room:], self.now, f"origin: max_prefetch_per_flush ({cap}) reached; the next flush goes on")
        return batch[:room]

    def _share_limit(self) -> int:
        return int(self.settings.cdn.daily_limit * self.settings.backfill_share)

    def _send(self, counter: str, batch: list[UrlState], share: str | None = None) -> None:
        urls = [s.url for s in batch]
        outcome = self.cdn.push(urls) if counter == PREFETCH else self.cdn.refresh(urls)
        by_url = {s.url: s for s in batch}
        if counter == PREFETCH:
            self.report.calls += outcome.calls
            self._prefetches_sent += len(outcome.accepted) + len(outcome.ambiguous)
        else:
            self.report.refresh_calls += outcome.calls
        self.store.release_quota(counter, self.day, len(outcome.rejected) + len(outcome.unsent))
        if share is not None:
            self.store.release_quota(share, self.day, len(outcome.rejected) + len(outcome.unsent))
        changes: dict[str, Change] = {}
        sent_at = outcome.sent_at if outcome.sent_at is not None else self.now
        for url, task_id in outcome.accepted.items():
            changes[url] = self._accepted(counter, by_url[url], task_id, self.now)
        for url in outcome.ambiguous:
            changes[url] = self._accepted(counter, by_url[url], None, sent_at)
        for url, reason in outcome.rejected.items():
            log.error("dead-lettered %s: %s", url, reason)
            changes[url] = partial(lc.refused, owner=self.owner, reason=reason, now=self.now, keep_until=self.keep_until)
        changes.update(self._unsent_changes(counter, outcome))
        self._apply(changes)
        if counter == PREFETCH:
            self.report.pushed += len(outcome.accepted)
        else:
            self.report.refreshed += len(outcome.accepted)
        self.report.dead += len(outcome.rejected)
        self.report.task_ids.extend(dict.fromkeys(outcome.accepted.values()))

    def _accepted(self, counter: str, state: UrlState, task_id: str | None, at: float) -> Change:
        if counter == REFRESH:
            return partial(lc.refresh_accepted, owner=self.owner, task_id=task_id, now=at)
        return partial(
            lc.push_accepted, owner=self.owner, task_id=task_id, pushed=state.version, now=at,
            mode=self.settings.refresh_before_prefetch,
        )

    def _unsent_changes(self, counter: str, outcome: SubmitOutcome) -> dict[str, Change]:
        problem = outcome.problem
        if not outcome.unsent or problem is None:
            return {}
        self.report.deferred += len(outcome.unsent)
        if problem.kind == Problem.QUOTA_SPENT:
            # The account says today is spent: fill our counter too, so no flusher tries again today.
            limit = self._limit(counter)
            self.store.reserve_quota(counter, self.day, limit, limit)
            self._spent.add(counter)
            why, at = f"quota: the account refused ({problem.code})", self._next_day()
            return {u: partial(lc.released, owner=self.owner, not_before=at, reason=why, now=self.now) for u in outcome.unsent}
        if problem.kind == Problem.CONFIG:
            self.report.error = str(problem)
            self._stopped = True
            log.error("flush stopped, fix the configuration: %s", problem)
            why = f"not sent: {problem.code}"
            return {u: partial(lc.released, owner=self.owner, not_before=self.now, reason=why, now=self.now) for u in outcome.unsent}
        # Not accepted: back-pressure or an outage. Back off per URL; give up only after a long time.
        self.report.error = str(problem)
        self._stopped = True
        log.warning("flush paused by %s; %d URLs back off", problem, len(outcome.unsent))
        return {
            u: partial(lc.not_accepted, owner=self.owner, reason=problem.code, now=self.now,
                       give_up_after=self.settings.give_up_after_seconds)
            for u in outcome.unsent
        }

    def _limit(self, counter: str) -> int:
        """The day's counter limit: our own daily limit, lowered to what the account still has."""
        cdn = self.settings.cdn
        used = self.store.quota_used(counter, self.day)
        account = self._account_quota()
        remain = None if account is None else account.preload_remain if counter == PREFETCH else account.refresh_remain
        if remain is not None:
            # Read once per flush: what our counter gained since then came out of the account's remainder.
            remain -= max(0, used - self._used_at_read.get(counter, used))
        if counter == PREFETCH:
            return used + quota_grant(cdn.daily_limit, used, cdn.daily_limit, remain, cdn.quota_reserve)
        return used + quota_grant(cdn.daily_refresh_quota, used, cdn.daily_refresh_quota, remain, 0)

    def _account_quota(self) -> AccountQuota | None:
        """The account's quota, read once per flush and only when a batch is about to go out."""
        if not self._account_read:
            self._account_read = True
            try:
                self._account = self.cdn.account_quota()
            except CdnCallFailed as exc:
                log.warning("cannot read the account's quota: %s", exc)
            self._used_at_read = {c: self.store.quota_used(c, self.day) for c in (PREFETCH, REFRESH)}
        return self._account

    # -- checking tasks -----------------------------------------------------------------------

    def _check(self, claims: list[UrlState]) -> None:
        if not claims:
            return
        known = [s for s in claims if s.task_id]
        statuses: dict[str, list[TaskStatus]] = {}
        unread: set[str] = set()
        ids = sorted({s.task_id for s in known})
        # One read per TASK_IDS_PER_CALL ids: a failed read leaves only its own tasks unchecked this time.
        for start in range(0, len(ids), TASK_IDS_PER_CALL):
            chunk = ids[start : start + TASK_IDS_PER_CALL]
            try:
                for task in self.cdn.task_statuses(chunk):
                    statuses.setdefault(task.task_id, []).append(task)
            except CdnCallFailed as exc:
                log.warning("cannot read the status of %d tasks: %s", len(chunk), exc)
                unread.update(chunk)
        changes: dict[str, Change] = {}
        for state in known:
            changes[state.url] = self._after_check(state, None if state.task_id in unread else statuses)
        for state in claims:
            if not state.task_id:
                changes[state.url] = self._resolve(state)
        self._apply(changes)

    def _after_check(self, state: UrlState, statuses: dict[str, list[TaskStatus]] | None) -> Change:
        running = partial(
            lc.task_running, owner=self.owner, now=self.now, settle_seconds=self.settings.refresh_settle_seconds,
            keep_until=self.keep_until,
        )
        if statuses is None:
            return running
        mine = [t for t in statuses.get(state.task_id, []) if same_url(t.url, state.url)] or statuses.get(state.task_id, [])
        if any(t.status == TASK_FAILED for t in mine):
            description = next((t.description for t in mine if t.status == TASK_FAILED), "")
            return partial(lc.task_failed, owner=self.owner, description=description, now=self.now,
                           give_up_after=self.settings.give_up_after_seconds)
        if mine and all(t.status == TASK_COMPLETE for t in mine):
            if state.phase == lc.PUSHED:
                self.report.verified += 1
            return partial(lc.task_completed, owner=self.owner, now=self.now, keep_until=self.keep_until)
        return running

    def _resolve(self, state: UrlState) -> Change:
        """A call whose answer was lost: find its task, or after a while take it as not accepted."""
        kind = TASK_REFRESH if state.phase == lc.REFRESHING else TASK_PRELOAD
        try:
            found = [t for t in self.cdn.find_tasks(state.url, kind, state.task_at - 5) if same_url(t.url, state.url)]
        except CdnCallFailed as exc:
            log.warning("cannot look up the task of %s: %s", state.url, exc)
            found = None
        if found:
            self.report.resolved += 1
            return partial(lc.task_found, owner=self.owner, task_id=found[0].task_id, now=self.now)
        if found is not None and self.now - state.task_at >= AMBIGUITY_SETTLE_SECONDS:
            self.report.resolved += 1
            self.store.release_quota(REFRESH if kind == TASK_REFRESH else PREFETCH, quota_day(state.task_at), 1)
            return partial(lc.task_lost, owner=self.owner, now=self.now)
        return partial(lc.task_running, owner=self.owner, now=self.now, settle_seconds=float("inf"),
                       keep_until=self.keep_until)

    # -- helpers ------------------------------------------------------------------------------

    def _apply(self, changes: dict[str, Change]) -> None:
        if changes:
            self.store.update(changes, self.now)

    def _release(self, claims: list[UrlState], not_before: float, reason: str) -> None:
        self.report.deferred += len(claims)
        if claims and not_before > self.now:
            self.report.deferred_to_next_day += len(claims)
            oldest = min(s.window for s in claims) * self.settings.window_seconds
            self.report.oldest_waiting_seconds = max(self.report.oldest_waiting_seconds, int(self.now - oldest))
        self._apply({
            s.url: partial(lc.released, owner=self.owner, not_before=not_before, reason=reason, now=self.now)
            for s in claims
        })

    def _next_day(self) -> float:
        return next_quota_day_start(self.now)

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def _kind(counter: str) -> str:
    return "prefetch" if counter == PREFETCH else "refresh"


def same_url(reported: str, ours: str) -> bool:
    """Whether the API's ObjectPath names our URL: it may drop or change the scheme."""
    return reported.split("://", 1)[-1] == ours.split("://", 1)[-1]
