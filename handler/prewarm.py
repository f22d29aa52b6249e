"""The imperative shell: ingest upload records into windows, flush closed windows to the CDN.

Decisions (which URLs, which window, how much quota) come from the pure modules;
this file only sequences them over the Store and Prefetcher ports, so that every
URL ends pushed, deferred with a reason, or dead-lettered with a reason.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from .cdn.errors import FatalConfigError, QuotaExhaustedError
from .events import ObjectRecord, ObjectRemoved
from .planning import closed_before, next_quota_day_start, quota_day, quota_grant, window_of
from .ports import ClaimedUrl, Prefetcher, PushOutcome, Store
from .settings import Settings
from .urls import urls_for

log = logging.getLogger("handler.prewarm")

# Claim and reserve quota for several batches per store round trip; each batch is still marked
# as soon as its own call returns.
BATCHES_PER_CLAIM = 10


@dataclass
class IngestReport:
    records: int = 0
    urls: int = 0  # URLs the records mapped to, duplicates included
    added: int = 0  # newly pending (the rest were already known)
    refused: int = 0  # dead-lettered at once (cannot be prefetched)
    unmatched: int = 0  # records no rule applies to
    window: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FlushReport:
    quota_day: str
    pushed: int = 0
    calls: int = 0
    deferred: int = 0
    dead: int = 0
    task_ids: list[str] = field(default_factory=list)
    maybe_duplicated: int = 0  # deferred URLs whose call may have been accepted anyway
    error: str | None = None  # what stopped the flush early, if anything

    def as_dict(self) -> dict:
        return asdict(self)


def ingest(records: Sequence[ObjectRecord], settings: Settings, store: Store, now: float) -> IngestReport:
    """Map records to URLs and add them to the pending set of the window `now` falls in."""
    report = IngestReport(records=len(records), window=window_of(now, settings.window_seconds))
    urls: list[str] = []
    refused: dict[str, str] = {}
    for record in records:
        if isinstance(record, ObjectRemoved):
            # Removals are parsed but not acted on yet: refreshing deleted objects is ingest's next step.
            log.info("removal of bucket=%r key=%r: not handled yet, ignored", record.bucket, record.key)
            continue
        mapped = urls_for(record, settings.rules)
        if not mapped.urls and not mapped.refused:
            report.unmatched += 1
            log.info("no rule matches bucket=%r key=%r: ignored", record.bucket, record.key)
        urls.extend(mapped.urls)
        refused.update(mapped.refused)
    report.urls = len(urls) + len(refused)
    if urls:
        report.added = len(store.add_pending(report.window, urls, now))
    if refused:
        for url, reason in refused.items():
            log.error("dead-lettered %s: %s", url[:200], reason)
        store.record_dead(report.window, refused, now=now, keep_until=now + settings.dedupe_seconds)
        report.refused = len(refused)
    return report


def flush(
    store: Store,
    prefetcher: Prefetcher,
    settings: Settings,
    now: float,
    *,
    flush_all: bool = False,
    owner: str | None = None,
    seconds: float | None = None,
) -> FlushReport:
    """Push every due URL of the closed windows (all windows with `flush_all`) within the day's quota,
    starting no new batch after `seconds` (so that a flush ends cleanly inside its function's timeout)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    return _Flush(store, prefetcher, settings, now, owner or os.urandom(16).hex(), deadline).run(flush_all)


class _Flush:
    """One flush: claim a batch, reserve its quota, push, record each URL's fate; repeat."""

    def __init__(
        self, store: Store, prefetcher: Prefetcher, settings: Settings, now: float, owner: str, deadline: float | None
    ) -> None:
        self.store = store
        self.prefetcher = prefetcher
        self.settings = settings
        self.now = now
        self.owner = owner
        self.day = quota_day(now)
        self.report = FlushReport(quota_day=self.day)
        self.account_quota_spent = False
        self.deadline = deadline

    def run(self, flush_all: bool) -> FlushReport:
        max_window = None if flush_all else closed_before(self.now, self.settings.window_seconds)
        limit = self._day_limit()
        cap = self.settings.cdn.max_urls_per_call
        while not self._out_of_time():
            claims = self.store.claim(
                max_window=max_window,
                now=self.now,
                limit=cap * BATCHES_PER_CLAIM,
                owner=self.owner,
                lease_seconds=self.settings.lease_seconds,
            )
            if not claims:
                break
            granted = self.store.reserve_quota(self.day, len(claims), limit)
            if granted < len(claims):
                self._defer_to_next_day(claims[granted:], f"quota: the {self.day} limit of {limit} URLs is used")
            if not self._push_claimed(claims[:granted], cap):
                break
        log.info("flush %s", self.report.as_dict())
        return self.report

    def _push_claimed(self, claims: Sequence[ClaimedUrl], cap: int) -> bool:
        """Push claimed URLs a batch at a time, recording each batch's fate as soon as its call
        returns, so that a crash can repeat at most one batch; False when the flush should stop."""
        for start in range(0, len(claims), cap):
            keep_going = self._push(claims[start : start + cap])
            rest = claims[start + cap :]
            if keep_going and rest and self._out_of_time():
                keep_going = False
                log.warning("flush out of time; %d claimed URLs go back to pending", len(rest))
            if self.account_quota_spent:  # the day's counter stays full: no release
                self._defer_to_next_day(rest, "quota: the account refused")
                return keep_going
            if not keep_going:
                if rest:
                    self.store.release_quota(self.day, len(rest))
                self._defer(rest, self.now, "not pushed: the flush stopped early", count_attempt=False)
                return False
        return True

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _day_limit(self) -> int:
        """The day's counter limit: daily_quota - quota_reserve, lowered to what the account still has."""
        cdn = self.settings.cdn
        used = self.store.quota_used(self.day)
        remain = self.prefetcher.remaining_quota()
        return used + quota_grant(cdn.daily_limit, used, cdn.daily_limit, remain, cdn.quota_reserve)

    def _push(self, claims: Sequence[ClaimedUrl]) -> bool:
        """Push one batch and record the fate of each URL; False when the flush should stop."""
        outcome = self.prefetcher.push([c.url for c in claims])
        report = self.report
        report.calls += outcome.calls
        if outcome.pushed:
            self.store.mark_pushed(
                outcome.pushed, now=self.now, keep_until=self.now + self.settings.dedupe_seconds
            )
            report.pushed += len(outcome.pushed)
            report.task_ids.extend(dict.fromkeys(outcome.pushed.values()))
        if outcome.rejected:
            self._dead(outcome.rejected)
        # The API accepted none of these, except perhaps those of a call whose answer was lost.
        not_accepted = len(outcome.rejected) + len(outcome.unpushed) - len(outcome.maybe_accepted)
        self.store.release_quota(self.day, not_accepted)
        if outcome.error is None:
            return True
        unpushed = set(outcome.unpushed)
        return self._after_error(outcome, [c for c in claims if c.url in unpushed])

    def _after_error(self, outcome: PushOutcome, unpushed: list[ClaimedUrl]) -> bool:
        error = outcome.error
        self.report.maybe_duplicated += len(outcome.maybe_accepted)
        if isinstance(error, QuotaExhaustedError):
            # The account says the day is spent: fill our counter up to the day's limit (no flusher's
            # limit is higher), so that no flusher tries again today and `status` shows 0 left.
            daily_limit = self.settings.cdn.daily_limit
            self.store.reserve_quota(self.day, daily_limit, daily_limit)
            self.account_quota_spent = True
            self._defer_to_next_day(unpushed, f"quota: the account refused ({error.code})")
            return True
        if isinstance(error, FatalConfigError):
            self.report.error = str(error)
            log.error("flush stopped, fix the configuration: %s", error)
            self._defer(unpushed, self.now, f"not pushed: {error.code}", count_attempt=False)
            return False
        self.report.error = str(error)
        log.warning("flush paused by %s; %d URLs retry on a later flush", error, len(unpushed))
        retry_at = self.now + self.settings.retry_after_seconds
        exhausted = [c for c in unpushed if c.attempts + 1 >= self.settings.max_attempts]
        if exhausted:
            self._dead({c.url: f"gave up after {c.attempts + 1} attempts: {error}" for c in exhausted})
        retry = [c for c in unpushed if c not in exhausted]
        self._defer(retry, retry_at, f"retry: {error.code}", count_attempt=True)
        return False

    def _defer_to_next_day(self, claims: Sequence[ClaimedUrl], reason: str) -> None:
        next_day = next_quota_day_start(self.now)
        at = datetime.fromtimestamp(next_day, timezone.utc).isoformat()
        self._defer(claims, next_day, f"{reason}; retry after {at}", count_attempt=False)

    def _defer(self, claims: Sequence[ClaimedUrl], not_before: float, reason: str, *, count_attempt: bool) -> None:
        if claims:
            self.store.defer(
                self.owner, [c.url for c in claims], not_before=not_before, reason=reason, count_attempt=count_attempt
            )
            self.report.deferred += len(claims)

    def _dead(self, reasons: dict[str, str]) -> None:
        for url, reason in reasons.items():
            log.error("dead-lettered %s: %s", url, reason)
        self.store.mark_dead(
            self.owner, reasons, now=self.now, keep_until=self.now + self.settings.dedupe_seconds
        )
        self.report.dead += len(reasons)
